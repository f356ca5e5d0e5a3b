"""Musical features of single pieces (musegan.metrics), with known answers: every piece
is built in code."""

from __future__ import annotations

import math
import time

import numpy as np
import pretty_midi
import pytest
from midi_factory import piece, random_tune, scale, score

from musegan.evaluate import melody_tokens
from musegan.metrics import (
    FEATURES,
    QUICK_FEATURES,
    _quarters,
    melody_line,
    piece_features,
    quick_metrics,
)
from musegan.midi import score_to_pretty_midi

# ---------------------------------------------------------------------------- features

def test_c_major_scale_has_the_known_answers():
    f = piece_features(piece(scale()))  # C4 .. C5, quarter notes, two bars of 4/4
    assert f["scale_consistency"] == 1.0
    assert f["used_pitch_classes"] == 7
    assert f["used_pitches"] == 8
    assert f["pitch_range"] == 12
    assert f["qualified_note_rate"] == 1.0
    assert f["notes_per_bar"] == 4
    assert f["pitch_interval"] == pytest.approx(12 / 7)
    assert f["inter_onset_interval"] == pytest.approx(1.0)
    assert f["empty_bar_rate"] == 0 and f["empty_beat_rate"] == 0
    assert f["polyphony"] == 1 and f["polyphony_rate"] == 0
    assert f["pitch_class_histogram"].sum() == pytest.approx(1)
    assert f["pitch_class_histogram"][0] == pytest.approx(2 / 8)  # C4 and C5
    assert f["note_length_histogram"][2] == 1.0  # every note in the quarter-note class
    assert f["pitch_class_transitions"].shape == (12, 12)
    assert f["pitch_class_transitions"].sum() == pytest.approx(1)
    assert f["pitch_class_transitions"][0, 2] == pytest.approx(1 / 7)  # C -> D once of 7
    assert math.isnan(f["drum_pattern_rate"]) and math.isnan(f["tonal_distance"])
    assert list(f) == list(FEATURES)


def test_two_empty_bars_of_four():
    notes = [(b * 4 + i, 1, 60 + i) for b in (0, 3) for i in range(4)]  # bars 1 and 4 only
    f = piece_features(piece(notes))
    assert f["empty_bar_rate"] == 0.5
    assert f["empty_beat_rate"] == 0.5
    assert f["notes_per_bar"] == 2
    assert f["pitch_classes_per_bar"] == 4  # over the two bars that have notes


def test_a_held_note_keeps_its_bars_from_being_empty():
    f = piece_features(piece([(0, 8, 60), (12, 4, 62)]))  # sounds through bar 2; bar 3 silent
    assert f["empty_bar_rate"] == 0.25


def test_no_phantom_bar_after_the_last_note():
    # at 333333 microseconds a quarter, pretty_midi's get_downbeats and get_beats add a bar
    # and a beat at the very end of the music, through float rounding
    notes = [(t, 1, 60 + t % 12) for t in range(32)]  # 8 bars of quarter notes
    midi = piece(notes, tempos=((0, 60e6 / 333333),))
    assert len(midi.get_downbeats()) == 9  # the phantom bar
    f = piece_features(midi)
    assert f["empty_bar_rate"] == 0 and f["empty_beat_rate"] == 0 and f["notes_per_bar"] == 4


def test_pitch_class_entropy():
    assert piece_features(piece([(i, 1, 62) for i in range(8)]))["pitch_class_entropy"] == 0
    chromatic = piece_features(piece([(i, 1, 60 + i) for i in range(12)]))
    assert chromatic["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert chromatic["used_pitch_classes"] == 12
    assert chromatic["scale_consistency"] == pytest.approx(7 / 12)


def test_polyphony_of_chords_and_of_a_melody():
    chords = [(t, 1, p + root) for t, root in enumerate([0, 5, 7, 0]) for p in (60, 64, 67)]
    f = piece_features(piece(chords))
    assert f["polyphony"] == 3
    assert f["polyphony_rate"] == 1
    assert f["pitch_interval"] == pytest.approx((5 + 2 + 7) / 3)  # along the top line
    assert piece_features(piece(scale()))["polyphony_rate"] == 0
    # a C held for two beats under two quarter notes: 2 pitches half the time
    f = piece_features(piece([(0, 2, 48), (0, 1, 64), (1, 1, 65), (2, 2, 67)]))
    assert f["polyphony_rate"] == pytest.approx(0.5)
    assert f["polyphony"] == pytest.approx(1.5)
    # rests do not count: a two-note chord, a rest, a single note (MusPy would give 1/3)
    f = piece_features(piece([(0, 1, 60), (0, 1, 64), (2, 1, 67)]))
    assert f["polyphony_rate"] == pytest.approx(0.5) and f["polyphony"] == pytest.approx(1.5)


def test_groove_consistency():
    rhythm = [0, 1, 1.5, 2, 3]
    same = [(b * 4 + t, 0.5, 60 + b) for b in range(4) for t in rhythm]
    assert piece_features(piece(same))["groove_consistency"] == 1
    # the second bar drops two onsets (at 1.5 and 3): 2 of 48 grid steps differ
    other = [(t, 0.5, 60) for t in rhythm] + [(4 + t, 0.5, 60) for t in (0, 1, 2)]
    assert piece_features(piece(other))["groove_consistency"] == pytest.approx(1 - 2 / 48)


def test_meter_changes_follow_the_files_own_bars_and_beats():
    # two bars of 3/4, then two of 6/8 whose first is silent: 4 bars, 6 + 4 beats
    notes = [(t, 1, 60) for t in range(6)] + [(9 + 1.5 * k, 1.5, 62) for k in range(2)]
    f = piece_features(piece(notes, time_signatures=((0, 3, 4), (6, 6, 8))))
    assert f["notes_per_bar"] == pytest.approx(8 / 4)
    assert f["empty_bar_rate"] == 0.25
    assert f["empty_beat_rate"] == pytest.approx(2 / 10)


def test_tempo_does_not_change_features_and_ticks_match_pretty_midi():
    notes = random_tune(1)
    slow = piece(notes, tempos=((0, 70.0),))
    varied = piece(notes, tempos=((0, 70.0), (3, 150.0), (9.5, 97.0)))
    a, b = piece_features(slow), piece_features(varied)
    for name in FEATURES:
        np.testing.assert_allclose(a[name], b[name], err_msg=name)
    times = np.linspace(0, varied.get_end_time(), 97)
    ticks = [varied.time_to_tick(t) / varied.resolution for t in times]
    np.testing.assert_allclose(_quarters(varied, times), ticks, atol=1.5 / varied.resolution)


def test_short_notes_are_not_qualified():
    f = piece_features(piece([(0, 1, 60), (1, 0.1, 62), (2, 0.125, 64), (3, 1, 65)]))
    assert f["qualified_note_rate"] == 0.75  # the 0.1-quarter note is shorter than a 32nd
    assert f["note_length_histogram"][4] == 0.5  # both short notes sit nearest the 16th class


def test_drum_pattern_rate():
    melody = scale()
    on_grid = [(k * 0.25, 0.1, 36) for k in range(32)]
    assert piece_features(piece(melody, drums=on_grid))["drum_pattern_rate"] == 1
    triplets = [(k / 3, 0.1, 38) for k in range(24)]  # a third of them land on a 16th
    assert (piece_features(piece(melody, drums=triplets))["drum_pattern_rate"]
            == pytest.approx(1 / 3))


def test_tonal_distance_between_the_two_busiest_tracks():
    c_chord = [(0, 4, p) for p in (60, 64, 67)] + [(4, 4, p) for p in (60, 64, 67)]
    same = piece_features(piece(c_chord, others=[[(0, 8, 48)], c_chord]))
    assert same["tonal_distance"] == pytest.approx(0, abs=1e-9)  # the bass has fewest notes
    far = [(0, 4, p) for p in (66, 70, 73)] + [(4, 4, p) for p in (66, 70, 73)]  # F# major
    assert piece_features(piece(c_chord, others=[far]))["tonal_distance"] > 1


def test_undefined_features_are_nan_not_errors():
    empty = piece_features(pretty_midi.PrettyMIDI())
    assert math.isnan(empty["pitch_range"]) and math.isnan(empty["scale_consistency"])
    assert np.isnan(empty["pitch_class_histogram"]).all()
    one = piece_features(piece([(0, 1, 60)]))
    assert math.isnan(one["pitch_interval"]) and math.isnan(one["inter_onset_interval"])
    assert math.isnan(one["groove_consistency"])  # a single bar
    assert one["pitch_class_entropy"] == 0
    drums_only = piece_features(piece([], drums=[(k, 0.1, 36) for k in range(4)]))
    assert drums_only["empty_bar_rate"] == 0 and math.isnan(drums_only["pitch_range"])


def test_quick_metrics_are_set_means_and_fast():
    midis = [piece(random_tune(seed, bars=16)) for seed in range(8)]
    quick = quick_metrics(midis)
    assert list(quick) == list(QUICK_FEATURES)
    expected = np.mean([piece_features(m)["notes_per_bar"] for m in midis])
    assert quick["notes_per_bar"] == pytest.approx(expected)
    assert math.isnan(quick_metrics([pretty_midi.PrettyMIDI()])["scale_consistency"])
    began = time.perf_counter()
    quick_metrics(midis)
    assert time.perf_counter() - began < 2.0  # about 10 ms here; loose for busy CI machines


# ---------------------------------------------------------------------------- melody line

def test_melody_line_is_the_top_note_and_the_same_from_score_or_pretty_midi():
    chords = [(t, 1, p + root) for t, root in enumerate([0, 5, 7, 0]) for p in (60, 64, 67)]
    pitches, durations = melody_line(piece(chords, drums=[(0, 0.1, 80)]))
    assert pitches.tolist() == [67, 72, 74, 67] and durations.tolist() == [12] * 4
    notes = random_tune(4) + [(1 / 3, 1 / 3, 90), (2 + 1 / 12, 0.125, 91)]
    s = score(notes, tempos=((0, 97.0), (2.5, 61.0)))
    assert np.array_equal(melody_tokens(s), melody_tokens(score_to_pretty_midi(s)))


def test_voice_leading_counts_parallel_fifths_and_octaves():
    from musegan.metrics import voice_leading

    def voices(upper, lower):
        midi = pretty_midi.PrettyMIDI()
        for name, line in (("Soprano", upper), ("Bass", lower)):
            track = pretty_midi.Instrument(0, name=name)
            track.notes = [pretty_midi.Note(80, p, i * 0.5, (i + 1) * 0.5)
                           for i, p in enumerate(line)]
            midi.instruments.append(track)
        return midi

    # C-G to D-A: a parallel fifth; then D-A to E-E': an octave reached by contrary
    # motion does not count; E-E to F-F: parallel octaves (a compound octave apart).
    result = voice_leading(voices([67, 69, 76, 77], [60, 62, 52, 53]))
    assert result["parallel_fifths"] == 1 and result["parallel_octaves"] == 1
    assert result["ranges"] == {"Soprano": [67, 77], "Bass": [52, 62]}
    assert result["beats"] == 4.0 and result["parallels_per_100_beats"] == 50.0
    # Contrary and oblique motion: none.
    clean = voice_leading(voices([67, 69, 71, 72], [60, 57, 55, 55]))
    assert clean["parallel_fifths"] == clean["parallel_octaves"] == 0
