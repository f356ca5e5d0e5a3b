"""Features of a piece, computed from its MIDI, and comparisons between sets of pieces."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pretty_midi
from symusic import Score

ONSET_GRID = 12  # onset positions per quarter note for the rhythm histogram (16ths, triplets)


def pitch_class_histogram(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """(12,) share of sounding time per pitch class (C = 0), drums left out."""
    histogram = np.zeros(12)
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        for note in instrument.notes:
            histogram[note.pitch % 12] += note.end - note.start
    total = histogram.sum()
    return histogram / total if total else histogram


def onset_histogram(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Share of note onsets at each position of the bar, on a 12-per-quarter grid,
    folded onto a 4-quarter span (a rhythm fingerprint that ignores pitch)."""
    span = 4 * ONSET_GRID
    histogram = np.zeros(span)
    downbeats = midi.get_downbeats()
    for instrument in midi.instruments:
        for note in instrument.notes:
            bar = max(0, int(np.searchsorted(downbeats, note.start, side="right")) - 1)
            start = downbeats[bar] if len(downbeats) else 0.0
            quarters = (midi.time_to_tick(note.start) - midi.time_to_tick(start)) / midi.resolution
            histogram[int(round(quarters * ONSET_GRID)) % span] += 1
    total = histogram.sum()
    return histogram / total if total else histogram


def theme_consistency(groups: list[list[pretty_midi.PrettyMIDI]]) -> dict:
    """How alike pieces from one theme are, against pieces from different themes.

    ``groups`` holds, per theme, the pieces written from it. For each feature (pitch-class
    histogram, onset histogram), the mean L1 distance between pieces of the same theme
    ("within") and between pieces of different themes ("across"). A ratio within/across
    below 1 means that one theme gives variations on one idea.
    """
    features = {"pitch_classes": pitch_class_histogram, "rhythm": onset_histogram}
    result = {}
    for name, feature in features.items():
        values = [[feature(m) for m in group] for group in groups]
        within = [np.abs(a - b).sum() for group in values for a, b in combinations(group, 2)]
        across = [np.abs(a - b).sum() for g, h in combinations(range(len(values)), 2)
                  for a in values[g] for b in values[h]]
        result[name] = {"within": float(np.mean(within)), "across": float(np.mean(across)),
                        "ratio": float(np.mean(within) / max(np.mean(across), 1e-9))}
    return result


# ---------------------------------------------------------------------------- piece features
#
# References:
#   Yang & Lerch 2018, "On the evaluation of generative models in music" (mgeval).
#   Dong et al. 2018, "MuseGAN: multi-track sequential GANs for symbolic music generation".
#   Harte, Sandler & Gasser 2006, "Detecting harmonic change in musical audio" (tonal centroid).
#   Dong et al. 2020, "MusPy: a toolkit for symbolic music generation".

STEPS_PER_QUARTER = 12  # the tokenizer's grid: 16ths and eighth-note triplets are both exact
WHOLE_NOTE_STEPS = 4 * STEPS_PER_QUARTER
QUALIFIED_QUARTERS = 0.125  # a 32nd note, MuseGAN's shortest "qualified" note
NOTE_LENGTHS = np.array([  # mgeval's 12 note-length classes, in quarter notes
    4, 2, 1, 1 / 2, 1 / 4,  # whole, half, quarter, 8th, 16th
    3, 3 / 2, 3 / 4, 3 / 8,  # dotted half, quarter, 8th, 16th
    4 / 3, 2 / 3, 1 / 3,  # half-, quarter- and 8th-note triplets
])
DRUM_GRID = 24  # MuseGAN's time steps per quarter note
# MuseGAN's weight by offset from a 16th (24/quarter)
DRUM_FILTER = np.array([1.0, 0.3, 0.0, 0.0, 0.0, 0.3])
MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)  # natural minor, as in MusPy
SCALES = np.array([np.roll(scale, root) for scale in (MAJOR, MINOR)
                   for root in range(12)])  # (24, 12)
_CIRCLES = np.arange(12)
# Harte et al. 2006: circles of fifths (r1 = 1), minor thirds (r2 = 1), major thirds (r3 = 0.5)
TONAL_CENTROID = np.array([
    np.sin(_CIRCLES * 7 * np.pi / 6), np.cos(_CIRCLES * 7 * np.pi / 6),
    np.sin(_CIRCLES * 3 * np.pi / 2), np.cos(_CIRCLES * 3 * np.pi / 2),
    0.5 * np.sin(_CIRCLES * 2 * np.pi / 3), 0.5 * np.cos(_CIRCLES * 2 * np.pi / 3),
])  # (6, 12)


class Feature(NamedTuple):
    """What a feature measures, where its definition comes from, and its shape."""

    description: str
    reference: str
    histogram: bool = False  # a vector or matrix (compared by Euclidean distance), not a number


FEATURES: dict[str, Feature] = {
    "used_pitches": Feature("distinct MIDI pitches", "Yang & Lerch 2018, PC/total_used_pitch"),
    "used_pitch_classes": Feature("distinct pitch classes", "Yang & Lerch 2018, total_pitch_class"),
    "notes_per_bar": Feature("pitched notes / bars", "Yang & Lerch 2018, NC/bar_used_note"),
    "pitch_range": Feature("highest - lowest pitch, semitones", "Yang & Lerch 2018, PR"),
    "pitch_interval": Feature("mean |interval| between melody notes, semitones",
                              "Yang & Lerch 2018, PI"),
    "inter_onset_interval": Feature("mean time between distinct onsets, quarter notes",
                                    "Yang & Lerch 2018, IOI"),
    "pitch_class_histogram": Feature("share of sounding time per pitch class (12)",
                                     "Yang & Lerch 2018, PCH", histogram=True),
    "pitch_class_transitions": Feature("melody pitch-class transition matrix (12 x 12), sums to 1",
                                       "Yang & Lerch 2018, PCTM", histogram=True),
    "note_length_histogram": Feature("share of notes per length class (12)",
                                     "Yang & Lerch 2018, NLH", histogram=True),
    "empty_bar_rate": Feature("share of bars where no note starts or sounds",
                              "Dong et al. 2018, EB (inverted there by mistake)"),
    "pitch_classes_per_bar": Feature("distinct pitch classes per non-empty bar",
                                     "Dong et al. 2018, UPC"),
    "qualified_note_rate": Feature("share of notes at least a 32nd long", "Dong et al. 2018, QN"),
    "drum_pattern_rate": Feature("share of drum onsets on a 16th grid (with tolerance)",
                                 "Dong et al. 2018, DP"),
    "tonal_distance": Feature("tonal-centroid distance between the two busiest tracks, per bar",
                              "Dong et al. 2018, TD; Harte et al. 2006"),
    "scale_consistency": Feature("share of notes in the best-fitting major/minor scale",
                                 "Dong et al. 2020 (MusPy)"),
    "pitch_class_entropy": Feature("entropy of the pitch-class counts, bits",
                                   "Dong et al. 2020 (MusPy)"),
    "polyphony": Feature("distinct pitches sounding, over steps where any sounds",
                         "Dong et al. 2020 (MusPy)"),
    "polyphony_rate": Feature("share of sounding steps with more than one pitch",
                              "Dong et al. 2020 (MusPy), over sounding steps"),
    "groove_consistency": Feature("1 - mean Hamming distance of consecutive bars' onsets",
                                  "Dong et al. 2020 (MusPy)"),
    "empty_beat_rate": Feature("share of beats where no note starts or sounds",
                               "Dong et al. 2020 (MusPy; inverted in pypianoroll 1.0.4)"),
}
QUICK_FEATURES = ("qualified_note_rate", "pitch_classes_per_bar", "empty_bar_rate",
                  "scale_consistency", "pitch_class_entropy", "notes_per_bar")

NAN = float("nan")


@dataclass
class _Notes:
    """Every note of a piece as arrays, with its bar and beat grid (steps of 1/12 quarter)."""

    start: np.ndarray  # (N,) onset, quarter notes, unquantised
    length: np.ndarray  # (N,) duration, quarter notes, unquantised
    onset: np.ndarray  # (N,) onset, grid steps
    end: np.ndarray  # (N,) end, grid steps, at least onset + 1 so that every note sounds
    pitch: np.ndarray  # (N,)
    drum: np.ndarray  # (N,) bool
    track: np.ndarray  # (N,) index into midi.instruments
    bars: np.ndarray  # (B + 1,) bar edges, grid steps
    beats: np.ndarray  # (K + 1,) beat edges, grid steps

    def select(self, mask: np.ndarray) -> _Notes:
        return _Notes(self.start[mask], self.length[mask], self.onset[mask], self.end[mask],
                      self.pitch[mask], self.drum[mask], self.track[mask], self.bars, self.beats)


def _steps(quarters: np.ndarray) -> np.ndarray:
    """Quarter notes to the nearest grid step; halves round up, a hair of float error
    does not tip them (so ticks and seconds give the same steps)."""
    return np.floor(np.asarray(quarters) * STEPS_PER_QUARTER + 0.5 + 1e-6).astype(np.int64)


def _quarters(midi: pretty_midi.PrettyMIDI, times: np.ndarray) -> np.ndarray:
    """Seconds to quarter notes from the start: ``time_to_tick(t) / resolution``, vectorised
    over the tempo map, so that tempo changes do not bend the grid."""
    change_times, tempi = midi.get_tempo_changes()
    elapsed = np.concatenate([[0.0], np.cumsum(np.diff(change_times) * tempi[:-1] / 60.0)])
    i = np.clip(np.searchsorted(change_times, times, side="right") - 1, 0, None)
    return elapsed[i] + (np.asarray(times) - change_times[i]) * tempi[i] / 60.0


def _meter(midi: pretty_midi.PrettyMIDI, time: float) -> tuple[int, int]:
    """The time signature in force at ``time`` seconds (4/4 where none is given)."""
    current = (4, 4)
    for change in sorted(midi.time_signature_changes, key=lambda c: c.time):
        if change.time <= time + 1e-9:
            current = (change.numerator, change.denominator)
    return current


def _edges(midi: pretty_midi.PrettyMIDI, times: np.ndarray, beats: bool,
           music_end: int) -> np.ndarray:
    """Bar or beat start times as grid steps, closed by the end of the last one. Starts at
    or after the last note's end are dropped: pretty_midi's rounding can add one there."""
    times = np.asarray(times, dtype=np.float64)
    steps = _steps(_quarters(midi, times))
    keep = steps < music_end
    if not keep.any():
        return np.zeros(0, dtype=np.int64)
    numerator, denominator = _meter(midi, float(times[keep][-1]))
    steps = np.unique(steps[keep])
    unit = WHOLE_NOTE_STEPS / denominator
    if beats:  # pretty_midi's get_beats: a compound meter (6/8, 9/8, 12/8) beats in dotted notes
        length = unit * (3 if numerator % 3 == 0 and numerator > 3 else 1)
    else:
        length = unit * numerator
    return np.append(steps, steps[-1] + max(1, int(round(length))))


def _read(midi: pretty_midi.PrettyMIDI) -> _Notes:
    starts, ends, pitches, drums, tracks = [], [], [], [], []
    for index, instrument in enumerate(midi.instruments):
        if not instrument.notes:
            continue
        rows = np.array([(n.start, n.end, n.pitch) for n in instrument.notes], dtype=np.float64)
        starts.append(rows[:, 0])
        ends.append(rows[:, 1])
        pitches.append(rows[:, 2].astype(np.int64))
        drums.append(np.full(len(rows), instrument.is_drum))
        tracks.append(np.full(len(rows), index))
    if starts:
        start = _quarters(midi, np.concatenate(starts))
        end = _quarters(midi, np.concatenate(ends))
        pitch, drum, track = np.concatenate(pitches), np.concatenate(drums), np.concatenate(tracks)
    else:
        start = end = np.zeros(0)
        pitch = track = np.zeros(0, dtype=np.int64)
        drum = np.zeros(0, dtype=bool)
    onset = _steps(start)
    end_step = np.maximum(_steps(end), onset + 1)
    music_end = int(end_step.max()) if len(end_step) else 0
    return _Notes(start, np.maximum(end - start, 0.0), onset, end_step, pitch, drum, track,
                  bars=_edges(midi, midi.get_downbeats(), beats=False, music_end=music_end),
                  beats=_edges(midi, midi.get_beats(), beats=True, music_end=music_end))


def _span_indices(edges: np.ndarray, onset: np.ndarray,
                  end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last segment (bar or beat) each note [onset, end) touches."""
    last_segment = len(edges) - 2
    first = np.clip(np.searchsorted(edges, onset, side="right") - 1, 0, last_segment)
    last = np.clip(np.searchsorted(edges, end - 1, side="right") - 1, first, last_segment)
    return first, last


def _occupied(edges: np.ndarray, onset: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(segments,) bool: some note starts or sounds in the segment."""
    count = np.zeros(len(edges), dtype=np.int64)
    first, last = _span_indices(edges, onset, end)
    np.add.at(count, first, 1)
    np.add.at(count, last + 1, -1)
    return np.cumsum(count)[:-1] > 0


def _expand(edges: np.ndarray, notes: _Notes) -> tuple[np.ndarray, np.ndarray]:
    """(note, bar) pairs for every bar a note touches: the note index and the bar index."""
    first, last = _span_indices(edges, notes.onset, notes.end)
    counts = last - first + 1
    note = np.repeat(np.arange(len(first)), counts)
    bar = first[note] + np.arange(len(note)) - np.repeat(np.cumsum(counts) - counts, counts)
    return note, bar


def _melody(onset: np.ndarray, end: np.ndarray,
            pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The highest note at each distinct onset: (onset, pitch, duration), in onset order."""
    order = np.lexsort((-pitch, onset))
    onset, end, pitch = onset[order], end[order], pitch[order]
    keep = np.ones(len(onset), dtype=bool)
    keep[1:] = onset[1:] != onset[:-1]
    return onset[keep], pitch[keep], end[keep] - onset[keep]


def melody_line(midi: pretty_midi.PrettyMIDI | Score) -> tuple[np.ndarray, np.ndarray]:
    """The melody line of a piece: at each distinct onset of a non-drum note, the highest
    note sounding from it. Returns ``(pitches, durations)``, durations in steps of 1/12 of a
    quarter note (the tokenizer's grid), in onset order.

    Accepts a ``pretty_midi.PrettyMIDI`` or a symusic ``Score`` (read in ticks, faster).
    """
    if isinstance(midi, pretty_midi.PrettyMIDI):
        notes = _read(midi)
        notes = notes.select(~notes.drum)
        onset, end, pitch = notes.onset, notes.end, notes.pitch
    else:
        score = midi if str(midi.ttype).lower().endswith("tick") else midi.to("tick")
        columns = [track.notes.numpy() for track in score.tracks
                   if not track.is_drum and len(track.notes)]
        if not columns:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        time = np.concatenate([c["time"] for c in columns]).astype(np.float64)
        duration = np.concatenate([c["duration"] for c in columns]).astype(np.float64)
        pitch = np.concatenate([c["pitch"] for c in columns]).astype(np.int64)
        onset = _steps(time / score.ticks_per_quarter)
        end = np.maximum(_steps((time + duration) / score.ticks_per_quarter), onset + 1)
    _, pitches, durations = _melody(onset, end, pitch)
    return pitches, durations


def piece_features(midi: pretty_midi.PrettyMIDI) -> dict[str, float | np.ndarray]:
    """The features of ``FEATURES`` for one piece: numbers, and 12-bin / 12 x 12 arrays.

    Time is measured in quarter notes, so tempo does not matter; bars and beats are the
    MIDI file's own (``get_downbeats``, ``get_beats``: meter changes are followed). Tick-based
    features use onsets and ends rounded to a grid of 12 steps per quarter; note lengths
    (``qualified_note_rate``, ``note_length_histogram``) are measured before rounding. Drums
    count only where said. A feature that is undefined for the piece is NaN (NaN-filled for
    arrays): no pitched notes, a single melody note, no drums, fewer than two tracks.

    Yang & Lerch 2018 (pitched notes only):

    * ``used_pitches``, ``used_pitch_classes``: counts of distinct pitches / pitch classes.
    * ``notes_per_bar``: number of pitched notes / number of bars.
    * ``pitch_range``: max pitch - min pitch.
    * ``pitch_interval``: mean |p[i+1] - p[i]| along the melody line (the highest note at
      each onset, as in ``melody_line``).
    * ``inter_onset_interval``: mean gap between consecutive distinct onsets, in quarters.
    * ``pitch_class_histogram``: sounding time per pitch class / total, (12,).
    * ``pitch_class_transitions``: counts of (pc[i], pc[i+1]) along the melody line, divided
      by their total (the joint distribution; mgeval's ``normalize=2``), (12, 12).
    * ``note_length_histogram``: share of notes per length class, (12,): whole, half,
      quarter, 8th, 16th, dotted half, quarter, 8th, 16th, half-, quarter-, 8th-note
      triplet (``NOTE_LENGTHS``); each note goes to the class nearest its length.

    Dong et al. 2018 (MuseGAN):

    * ``empty_bar_rate``: bars in which no note (drums included) starts or sounds / bars.
      The original code returns the non-empty share; this is the empty share.
    * ``pitch_classes_per_bar``: mean over bars where a pitched note sounds of the number of
      distinct pitch classes sounding in the bar.
    * ``qualified_note_rate``: pitched notes lasting at least a 32nd (0.125 quarter) / notes.
    * ``drum_pattern_rate``: sum over drum onsets of ``DRUM_FILTER[(p - phase) % 6]``, p
      the onset on MuseGAN's 24-per-quarter grid (1 on a 16th, 0.3 one step off), divided
      by the number of drum onsets; the best of the 6 phases, as MuseGAN does.
    * ``tonal_distance``: for the two non-drum tracks with the most notes, per bar where
      both sound, the Euclidean distance between the 6-D tonal centroids
      ``TONAL_CENTROID @ c / sum(c)`` of their duration-weighted chroma ``c`` (Harte et
      al. 2006); the mean over those bars.

    Dong et al. 2020 (MusPy), pitched notes except the last two:

    * ``scale_consistency``: max over the 24 major and natural-minor scales of the share of
      notes whose pitch class is in the scale.
    * ``pitch_class_entropy``: ``-sum p log2 p`` of the pitch-class counts of notes.
    * ``polyphony``: mean number of distinct pitches sounding, over grid steps where at
      least one sounds.
    * ``polyphony_rate``: steps where more than one pitch sounds / steps where at least one
      sounds. MusPy divides by all steps, so rests lower its figure; here they do not.
    * ``groove_consistency``: ``1 - mean_b H(o_b, o_b+1) / L``, with ``o_b`` the binary
      onset pattern of bar ``b`` on the grid (all notes, drums included), H the Hamming
      distance, L the longer bar's length in steps. NaN below two bars.
    * ``empty_beat_rate``: beats in which no note (drums included) starts or sounds / beats.
    """
    notes = _read(midi)
    pitched = notes.select(~notes.drum)
    n_bars = len(notes.bars) - 1
    features: dict[str, float | np.ndarray] = {}

    # --- Yang & Lerch
    pitch = pitched.pitch
    pc = pitch % 12
    pc_counts = np.bincount(pc, minlength=12).astype(np.float64)
    has_notes = len(pitch) > 0
    features["used_pitches"] = float(len(np.unique(pitch)))
    features["used_pitch_classes"] = float(np.count_nonzero(pc_counts))
    features["notes_per_bar"] = len(pitch) / n_bars if n_bars > 0 else NAN
    features["pitch_range"] = float(pitch.max() - pitch.min()) if has_notes else NAN
    onsets, melody, _ = _melody(pitched.onset, pitched.end, pitch)
    features["pitch_interval"] = float(np.abs(np.diff(melody)).mean()) if len(melody) > 1 else NAN
    features["inter_onset_interval"] = (float(np.diff(onsets).mean() / STEPS_PER_QUARTER)
                                        if len(onsets) > 1 else NAN)
    sounding = np.bincount(pc, weights=pitched.length, minlength=12)
    features["pitch_class_histogram"] = (sounding / sounding.sum() if sounding.sum() > 0
                                         else np.full(12, NAN))
    if len(melody) > 1:
        transitions = np.bincount(melody[:-1] % 12 * 12 + melody[1:] % 12, minlength=144)
        features["pitch_class_transitions"] = (transitions / transitions.sum()).reshape(12, 12)
    else:
        features["pitch_class_transitions"] = np.full((12, 12), NAN)
    if has_notes:
        classes = np.abs(pitched.length[:, None] - NOTE_LENGTHS[None, :]).argmin(axis=1)
        features["note_length_histogram"] = np.bincount(classes, minlength=12) / len(classes)
    else:
        features["note_length_histogram"] = np.full(12, NAN)

    # --- MuseGAN
    features["empty_bar_rate"] = (1.0 - float(_occupied(notes.bars, notes.onset, notes.end).mean())
                                  if n_bars > 0 else NAN)
    features["pitch_classes_per_bar"] = _pitch_classes_per_bar(pitched)
    features["qualified_note_rate"] = (float(np.mean(pitched.length >= QUALIFIED_QUARTERS - 1e-6))
                                       if has_notes else NAN)
    features["drum_pattern_rate"] = _drum_pattern_rate(notes.start[notes.drum])
    features["tonal_distance"] = _tonal_distance(pitched)

    # --- MusPy
    features["scale_consistency"] = (float((SCALES @ pc_counts).max() / len(pitch)) if has_notes
                                     else NAN)
    if has_notes:
        p = pc_counts[pc_counts > 0] / len(pitch)
        features["pitch_class_entropy"] = float(max(0.0, -(p * np.log2(p)).sum()))
    else:
        features["pitch_class_entropy"] = NAN
    features["polyphony"], features["polyphony_rate"] = _polyphony(pitched)
    features["groove_consistency"] = _groove_consistency(notes)
    n_beats = len(notes.beats) - 1
    features["empty_beat_rate"] = (1.0 - float(_occupied(notes.beats, notes.onset,
                                                         notes.end).mean())
                                   if n_beats > 0 else NAN)
    return {name: features[name] for name in FEATURES}


def _pitch_classes_per_bar(pitched: _Notes) -> float:
    n_bars = len(pitched.bars) - 1
    if not len(pitched.pitch) or n_bars < 1:
        return NAN
    note, bar = _expand(pitched.bars, pitched)
    used = np.unique(bar * 12 + pitched.pitch[note] % 12)
    per_bar = np.bincount(used // 12, minlength=n_bars)
    return float(per_bar[per_bar > 0].mean())


def _drum_pattern_rate(starts: np.ndarray) -> float:
    if not len(starts):
        return NAN
    offsets = np.rint(starts * DRUM_GRID).astype(np.int64) % len(DRUM_FILTER)
    counts = np.bincount(offsets, minlength=len(DRUM_FILTER))
    scores = [counts @ np.roll(DRUM_FILTER, phase) for phase in range(len(DRUM_FILTER))]
    return float(max(scores) / len(starts))


def _tonal_distance(pitched: _Notes) -> float:
    n_bars = len(pitched.bars) - 1
    tracks, sizes = np.unique(pitched.track, return_counts=True)
    if len(tracks) < 2 or n_bars < 1:
        return NAN
    busiest = tracks[np.argsort(-sizes, kind="stable")[:2]]
    centroids, sound = [], []
    for track in busiest:
        notes = pitched.select(pitched.track == track)
        note, bar = _expand(pitched.bars, notes)
        overlap = (np.minimum(notes.end[note], pitched.bars[bar + 1])
                   - np.maximum(notes.onset[note], pitched.bars[bar]))
        chroma = np.zeros((n_bars, 12))
        np.add.at(chroma, (bar, notes.pitch[note] % 12), np.maximum(overlap, 0))
        total = chroma.sum(axis=1, keepdims=True)  # (B, 1)
        centroids.append((chroma / np.where(total > 0, total, 1)) @ TONAL_CENTROID.T)  # (B, 6)
        sound.append(total[:, 0] > 0)
    both = sound[0] & sound[1]
    if not both.any():
        return NAN
    return float(np.linalg.norm(centroids[0][both] - centroids[1][both], axis=1).mean())


def _polyphony(pitched: _Notes) -> tuple[float, float]:
    """(polyphony, polyphony_rate), computed on the segments between note boundaries,
    weighted by their length in steps (the same as step by step, without the steps)."""
    if not len(pitched.pitch):
        return NAN, NAN
    breaks = np.unique(np.concatenate([pitched.onset, pitched.end]))
    low = pitched.pitch.min()
    width = pitched.pitch.max() - low + 1
    change = np.zeros((len(breaks), width), dtype=np.int32)
    column = pitched.pitch - low
    np.add.at(change, (np.searchsorted(breaks, pitched.onset), column), 1)
    np.add.at(change, (np.searchsorted(breaks, pitched.end), column), -1)
    pitches = (np.cumsum(change, axis=0)[:-1] > 0).sum(axis=1)  # distinct pitches per segment
    steps = np.diff(breaks)
    active = pitches > 0
    sounding = steps[active].sum()
    return (float((pitches * steps)[active].sum() / sounding),
            float(steps[active & (pitches > 1)].sum() / sounding))


def _groove_consistency(notes: _Notes) -> float:
    n_bars = len(notes.bars) - 1
    if n_bars < 2:
        return NAN
    lengths = np.diff(notes.bars)
    bar, _ = _span_indices(notes.bars, notes.onset, notes.onset + 1)
    position = np.clip(notes.onset - notes.bars[bar], 0, lengths.max() - 1)
    patterns = np.zeros((n_bars, lengths.max()), dtype=bool)
    patterns[bar, position] = True
    hamming = (patterns[1:] != patterns[:-1]).sum(axis=1)
    return float(1.0 - (hamming / np.maximum(lengths[1:], lengths[:-1])).mean())


def quick_metrics(midis: list[pretty_midi.PrettyMIDI]) -> dict[str, float]:
    """Set means of a few features that need no reference set, for logging in training:
    ``QUICK_FEATURES`` (qualified notes, pitch classes per bar, empty bars, scale
    consistency, pitch-class entropy, notes per bar). A feature that is NaN for every piece
    (or an empty list) gives NaN."""
    features = [piece_features(midi) for midi in midis]
    result = {}
    for name in QUICK_FEATURES:
        values = np.array([f[name] for f in features], dtype=np.float64)
        values = values[~np.isnan(values)]
        result[name] = float(values.mean()) if len(values) else NAN
    return result


def distinct_ngrams(sequences, n: int = 4, pad_id: int = 0) -> float:
    """Share of distinct n-grams among all n-grams of a batch of token sequences (a (B, S)
    tensor or lists of ids): 1 = all different, near 0 = mode collapse."""
    grams = set()
    total = 0
    rows = sequences.tolist() if hasattr(sequences, "tolist") else sequences
    for row in rows:
        row = [t for t in row if t != pad_id]
        for i in range(len(row) - n + 1):
            grams.add(tuple(row[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


def voice_leading(midi: pretty_midi.PrettyMIDI) -> dict:
    """How the voices (pitched tracks) of a part-writing piece move, as harmony teachers
    count it.

    Returns ``ranges`` ({track name: [lowest, highest pitch]}), ``beats`` (quarter notes
    from the start to the last note's end), and ``parallel_fifths`` / ``parallel_octaves``:
    for each pair of voices, moves from one onset of either to the next where both voices
    move in the same direction and stand a perfect fifth (or an octave or unison), up to
    octaves, apart before and after; ``parallels_per_100_beats`` is their sum per 100
    quarter notes.
    """
    voices = [i for i in midi.instruments if not i.is_drum and i.notes]
    quarters = [(np.array([midi.time_to_tick(n.start) for n in i.notes]) / midi.resolution,
                 np.array([midi.time_to_tick(n.end) for n in i.notes]) / midi.resolution,
                 np.array([n.pitch for n in i.notes])) for i in voices]
    beats = max((float(end.max()) for _, end, _ in quarters), default=0.0)
    fifths = octaves = 0
    for (s1, e1, p1), (s2, e2, p2) in combinations(quarters, 2):
        times = np.union1d(s1, s2)
        a, b = _sounding(s1, e1, p1, times), _sounding(s2, e2, p2, times)
        both = (a >= 0) & (b >= 0)
        a, b = a[both], b[both]
        if len(a) < 2:
            continue
        interval = np.abs(a - b) % 12
        move_a, move_b = np.sign(np.diff(a)), np.sign(np.diff(b))
        parallel = (move_a != 0) & (move_a == move_b)
        fifths += int(np.sum(parallel & (interval[:-1] == 7) & (interval[1:] == 7)))
        octaves += int(np.sum(parallel & (interval[:-1] == 0) & (interval[1:] == 0)))
    return {
        "ranges": {i.name or pretty_midi.program_to_instrument_name(i.program):
                   [min(n.pitch for n in i.notes), max(n.pitch for n in i.notes)]
                   for i in voices},
        "beats": beats,
        "parallel_fifths": fifths,
        "parallel_octaves": octaves,
        "parallels_per_100_beats": 100 * (fifths + octaves) / beats if beats else 0.0,
    }


def _sounding(start: np.ndarray, end: np.ndarray, pitch: np.ndarray,
              times: np.ndarray) -> np.ndarray:
    """The highest pitch sounding at each time (-1: none)."""
    on = (start[None, :] <= times[:, None] + 1e-9) & (end[None, :] > times[:, None] + 1e-9)
    return np.where(on.any(1), np.where(on, pitch[None, :], -1).max(1), -1)
