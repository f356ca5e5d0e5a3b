"""ABC tune books: music21's folk collections and your own ``.abc`` files, as MIDI.

One ABC file may hold many tunes, each starting at an ``X:`` field. ``split_tunes`` cuts a
file into single tunes (the file's header, before the first ``X:``, goes with each), so
that every tune is parsed on its own: in a worker process, and a broken tune never takes
its neighbours with it. ``render_tune`` parses one with music21 and writes it as MIDI:

* repeats and first/second endings are expanded as played (``expandRepeats``);
* ties are merged, grace notes and chord symbols left out (they are not part of the
  melody as written);
* a pickup bar is padded at its start, so the bar lines fall where the ABC puts them;
* meter changes are kept; the key is in the pitches;
* the tempo is the ABC's ``Q:`` field, else ``DEFAULT_TEMPO`` for its meter: the
  conventions of the CRÉ corpus (itself converted from ABC), so the books and CRÉ agree.

music21 ships three fiddle-tune books, usable offline by name in ``musegan prepare``:
``oneills`` (O'Neill's *Music of Ireland*, 1850), ``ryans`` (*Ryan's Mammoth
Collection*, 1883) and ``aird`` (*Aird's Airs*, 1782-1797). Its ``nottingham-dataset``
folder is never read here: it is kept as an independent test set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from musegan.errors import MidiError

# name in `musegan prepare` -> music21 corpus folder, and what to credit
COLLECTIONS = {
    "oneills": "oneills1850",
    "ryans": "ryansMammoth",
    "aird": "airdsAirs",
}
CREDITS = {
    "oneills": "O'Neill's Music of Ireland (1850), ABC by Norbert Paap, from music21's corpus",
    "ryans": "Ryan's Mammoth Collection (1883), ABC by Ray Davies and others, from "
             "music21's corpus",
    "aird": "Aird's Selection of Scotch, English, Irish and Foreign Airs (1782-1797), ABC "
            "by Jack Campin, from music21's corpus",
}
ABC_SUFFIXES = (".abc",)
# Quarter notes per minute when a tune has no Q: field, by meter, as in CRÉ: reels and
# hornpipes (4/4, 2/2) 180, jigs, slip jigs and slides (6/8, 9/8, 12/8) 160, polkas and
# marches (2/4) 120; anything else 120.
DEFAULT_TEMPO = {(4, 4): 180.0, (2, 2): 180.0, (6, 8): 160.0, (9, 8): 160.0,
                 (12, 8): 160.0, (2, 4): 120.0}
OTHER_TEMPO = 120.0
VELOCITY = 90  # ABC has no dynamics to speak of; music21's default loudness, mezzo-forte
TICKS_PER_QUARTER = 480
_TUNE_START = re.compile(r"^X:", re.MULTILINE)


@dataclass(frozen=True)
class Tune:
    """One tune of an ABC file: its ``X:`` number, title and text (with the file header)."""

    number: str
    title: str
    text: str


def is_abc_path(path: Path) -> bool:
    return path.suffix.lower() in ABC_SUFFIXES


def collection_folder(name: str) -> Path:
    """Where music21 keeps a named collection's ABC files."""
    import music21

    return Path(music21.__file__).parent / "corpus" / COLLECTIONS[name]


def collection_files(name: str) -> list[Path]:
    """The ABC files of a named collection, in order."""
    return sorted(p for p in collection_folder(name).iterdir() if is_abc_path(p))


def split_tunes(text: str) -> list[Tune]:
    """The tunes of an ABC file, in order. Lines before the first ``X:`` (the file header:
    comments, ``%%`` directives, default fields) are put before each tune."""
    starts = [m.start() for m in _TUNE_START.finditer(text)]
    if not starts:
        return []
    header = text[:starts[0]]
    tunes = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        body = text[start:end]
        first = body.splitlines()[0]
        number = first[2:].strip() or "?"
        title = next((line[2:].strip() for line in body.splitlines()
                      if line.startswith("T:")), "")
        tunes.append(Tune(number, title, header + body))
    return tunes


def tune_label(source: str, tune: Tune) -> str:
    """How reports name a tune: its file, ``X:`` number and title."""
    return f"{source} X:{tune.number}" + (f" {tune.title}" if tune.title else "")


def render_tune(text: str, name: str) -> bytes:
    """One ABC tune as MIDI bytes (see the module docstring for what is kept)."""
    from music21 import converter, stream, tempo

    try:
        parsed = converter.parse(text, format="abc")
    except Exception as err:
        raise MidiError(name, f"music21 cannot read this tune ({_one_line(err)})") from None
    parts = list(parsed.parts) if isinstance(parsed, stream.Score) else [parsed]
    if not parts:
        raise MidiError(name, "the tune holds no music")
    try:
        part = parts[0].expandRepeats().stripTies()
    except Exception as err:
        raise MidiError(name, f"music21 cannot expand its repeats ({_one_line(err)})") from None
    if isinstance(part, stream.Score):
        part = part.parts[0]
    notes, meters = _lay_out(part)
    if not notes:
        raise MidiError(name, "the tune holds no notes")
    marks = [(float(m.getOffsetInHierarchy(part)), m.getQuarterBPM())
             for m in part.recurse().getElementsByClass(tempo.MetronomeMark)]
    marks = [(0.0, float(bpm)) for _, bpm in marks[:1] if bpm and bpm > 0]  # the first one
    if not marks:
        marks = [(0.0, DEFAULT_TEMPO.get(meters[0][1:], OTHER_TEMPO))]
    return _midi(notes, meters, marks)


def _lay_out(part) -> tuple[list[tuple[float, float, int]], list[tuple[float, int, int]]]:
    """The notes (onset, length, pitch) and meters (time, n, d) of an expanded part, in
    quarter notes, with bar lines where the ABC puts them.

    music21 reads the pickup that opens a section as a one-bar meter change (1/16, 1/8,
    ...). Such a bar is not a change of meter: played, its notes take the place of the
    previous bar's last beat (usually a rest or a held note, cut short here), or complete
    a previous bar that was short by as much.
    """
    from music21 import harmony, stream

    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        measures = [part]
    ruling = measures[0].timeSignature or _four_four()
    bar = float(ruling.barDuration.quarterLength)
    meters = [(0.0, ruling.numerator, ruling.denominator)]
    notes: list[list] = []  # [onset, length, pitch]
    time = 0.0  # where the next bar starts
    short_by = 0.0  # how much the last bar lacked of a full one
    for index, measure in enumerate(measures):
        ts = measure.timeSignature if index else None
        length = float(measure.highestTime)
        following = measures[index + 1].timeSignature if index + 1 < len(measures) else None
        pickup = (ts is not None and ts.barDuration.quarterLength < bar
                  and (following is not None or index + 1 == len(measures)))
        if ts is not None and not pickup and ts.ratioString != ruling.ratioString:
            ruling, bar = ts, float(ts.barDuration.quarterLength)
            meters.append((time, ts.numerator, ts.denominator))
        completes = pickup and abs(short_by - length) < 1e-9
        if index == 0 and length < bar:  # an anacrusis: the tune starts inside its bar
            start, time = bar - length, bar
        elif pickup and not completes:  # it takes the place of the last bar's end
            start = time - length
            for note in notes:
                note[1] = min(note[1], max(0.0, start - note[0]))
            notes = [note for note in notes if note[1] > 0]
        else:
            start, time = time, time + length
        short_by = 0.0 if pickup or index == 0 else max(0.0, bar - length)
        for element in measure.recurse().notes:
            if isinstance(element, harmony.Harmony) or element.duration.isGrace:
                continue
            onset = start + float(element.getOffsetInHierarchy(measure))
            duration = float(element.quarterLength)
            if duration > 0:
                notes.extend([onset, duration, int(p.midi)] for p in element.pitches)
    return [(onset, length, pitch) for onset, length, pitch in notes], meters


def _four_four():
    from music21 import meter

    return meter.TimeSignature("4/4")


def _midi(notes: list[tuple[float, float, int]], meters: list[tuple[float, int, int]],
          marks: list[tuple[float, float]]) -> bytes:
    """A one-track MIDI file of (onset, length, pitch) notes in quarter notes."""
    def tick(quarters: float) -> int:
        return round(quarters * TICKS_PER_QUARTER)

    score = Score(TICKS_PER_QUARTER)
    for time, numerator, denominator in meters:
        score.time_signatures.append(TimeSignature(tick(time), numerator, denominator))
    for time, bpm in marks:
        score.tempos.append(Tempo(tick(time), qpm=bpm))
    track = Track(name="Melody", program=0)
    for onset, length, pitch in notes:
        track.notes.append(Note(tick(onset), max(1, tick(length)), pitch, VELOCITY))
    score.tracks.append(track)
    return score.dumps_midi()


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
