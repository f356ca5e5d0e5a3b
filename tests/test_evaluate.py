"""Evaluation: per-piece features with known answers, the set comparison, copying, and
the report. Every piece is built in code."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pretty_midi
import pytest

from midi_factory import make_score, write
from musegan.errors import MuseganError
from musegan.evaluate import (CopyIndex, compare_distances, evaluate, gaussian_kde, melody_tokens,
                              pairwise_distances)
from musegan.metrics import (FEATURES, QUICK_FEATURES, _quarters, melody_line, piece_features,
                             quick_metrics)
from musegan.midi import score_to_pretty_midi

TPQ = 480
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def score(notes, drums=(), others=(), time_signatures=((0, 4, 4),), tempos=((0, 120.0),)):
    """A Score from notes given in quarter notes: (start, duration, pitch) for the first
    track, ``others`` more pitched tracks, ``drums`` a drum track."""
    def ticks(rows):
        return [(round(s * TPQ), round(d * TPQ), p, 80) for s, d, p in rows]

    tracks = [(0, False, ticks(notes))] + [(33, False, ticks(rows)) for rows in others]
    if drums:
        tracks.append((0, True, ticks(drums)))
    return make_score(tracks, tpq=TPQ,
                      time_signatures=[(round(t * TPQ), n, d) for t, n, d in time_signatures],
                      tempos=[(round(t * TPQ), qpm) for t, qpm in tempos])


def piece(notes, **kwargs) -> pretty_midi.PrettyMIDI:
    return score_to_pretty_midi(score(notes, **kwargs))


def scale(root=60, start=0.0, length=1.0):
    return [(start + i * length, length, root + step - 60) for i, step in enumerate(C_MAJOR)]


def random_tune(seed: int, bars: int = 4, low: int = 60, high: int = 79, lengths=(0.5, 1.0)):
    """A monophonic tune of random pitches and lengths, filling ``bars`` bars of 4/4."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    while t < 4 * bars:
        length = min(float(rng.choice(lengths)), 4 * bars - t)
        notes.append((t, length, int(rng.integers(low, high + 1))))
        t += length
    return notes


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
    assert piece_features(piece(melody, drums=triplets))["drum_pattern_rate"] == pytest.approx(1 / 3)


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


# ---------------------------------------------------------------------------- distances and KDE

def test_pairwise_distances():
    values = np.array([0.0, 1.0, 3.0])
    assert sorted(pairwise_distances(values)) == [1, 2, 3]
    assert sorted(pairwise_distances(values, np.array([1.0]))) == [0, 1, 2]
    matrices = np.random.default_rng(0).random((70, 12, 12))  # more rows than one chunk
    distances = pairwise_distances(matrices)
    assert len(distances) == 70 * 69 // 2
    assert distances[0] == pytest.approx(np.linalg.norm(matrices[0] - matrices[1]))


def test_kde_on_one_grid():
    rng = np.random.default_rng(0)
    grid = np.linspace(-5, 5, 2048)
    density = gaussian_kde(rng.normal(size=500), grid, 0.3)
    assert density.sum() * (grid[1] - grid[0]) == pytest.approx(1)
    assert density[1024] == pytest.approx(1 / math.sqrt(2 * math.pi), rel=0.15)
    same = compare_distances(rng.normal(size=400), rng.normal(size=400))
    assert same["overlap"] > 0.85 and same["kl"] < 0.1
    apart = compare_distances(rng.normal(size=400), rng.normal(10, 1, size=400))
    assert apart["overlap"] < 0.01 and apart["kl"] > 5
    constant = compare_distances(np.zeros(10), np.zeros(30))  # zero variance
    assert constant["overlap"] == pytest.approx(1) and constant["kl"] == pytest.approx(0, abs=1e-9)


# ---------------------------------------------------------------------------- copying

def test_copies_and_transposed_copies_are_found():
    train = [piece(random_tune(seed, bars=8)) for seed in range(20)]
    index = CopyIndex([melody_tokens(m) for m in train], n=8)
    source = random_tune(3, bars=8)
    n_notes = len(source)
    copy = index.copying(melody_tokens(piece(source)))
    assert copy == {"copy_rate": 1.0, "longest_copy": n_notes, "source": 3}
    transposed = index.copying(melody_tokens(piece([(s, d, p + 5) for s, d, p in source])))
    assert transposed == copy
    unrelated = index.copying(melody_tokens(piece(random_tune(99, bars=8, low=40, high=90,
                                                              lengths=(0.25, 0.75, 1.5)))))
    assert unrelated["copy_rate"] < 0.05 and unrelated["longest_copy"] == 0
    # 12 notes of tune 5, transposed, in the middle of something else
    run = random_tune(5, bars=8)[8:20]
    borrowed = [(s - run[0][0], d, p - 3) for s, d, p in run]
    medley = ([(t, 1.5, 40) for t in range(0, 6, 2)] + [(6 + s, d, p) for s, d, p in borrowed]
              + [(30 + t, 0.75, 90 - 7 * t) for t in range(5)])
    found = index.copying(melody_tokens(piece(medley)))
    assert found["longest_copy"] == 12 and found["source"] == 5


def test_melody_line_is_the_top_note_and_the_same_from_score_or_pretty_midi():
    chords = [(t, 1, p + root) for t, root in enumerate([0, 5, 7, 0]) for p in (60, 64, 67)]
    pitches, durations = melody_line(piece(chords, drums=[(0, 0.1, 80)]))
    assert pitches.tolist() == [67, 72, 74, 67] and durations.tolist() == [12] * 4
    notes = random_tune(4) + [(1 / 3, 1 / 3, 90), (2 + 1 / 12, 0.125, 91)]
    s = score(notes, tempos=((0, 97.0), (2.5, 61.0)))
    assert np.array_equal(melody_tokens(s), melody_tokens(score_to_pretty_midi(s)))


# ---------------------------------------------------------------------------- evaluate

def test_identical_sets_overlap_and_different_sets_do_not():
    tunes = [piece(random_tune(seed)) for seed in range(40)]
    same = evaluate(tunes, list(tunes))
    assert same["mean_overlap"] > 0.95 and same["mean_kl"] < 0.05
    scales = [piece(scale(root=48 + k % 12, length=0.5 + (k % 3) / 2)) for k in range(30)]
    high = [piece(random_tune(seed, low=84, high=108, lengths=(0.25, 0.75))) for seed in range(30)]
    apart = evaluate(high, scales)
    assert apart["mean_overlap"] < 0.6  # rests, note lengths and polyphony alike: overlap 1
    assert apart["mean_kl"] > 1
    for name in ("pitch_range", "used_pitch_classes", "scale_consistency", "pitch_interval"):
        assert apart["features"][name]["overlap"] < 0.05, name
    assert apart["features"]["pitch_range"]["generated"]["mean"] > 12
    assert apart["features"]["scale_consistency"]["reference"] == {"mean": 1.0, "std": 0.0}
    json.dumps(apart, allow_nan=False)  # NaN became None: strict JSON


def test_bad_files_are_skipped_and_too_few_pieces_is_a_clear_error(tmp_path):
    folder = tmp_path / "generated"
    for seed in range(3):
        write(score(random_tune(seed)), folder / f"tune{seed}.mid")
    (folder / "notes.mid").write_text("this is not MIDI")
    write(score([]), folder / "sub" / "silent.mid")
    (folder / "tune0.json").write_text("{}")  # sidecars of `musegan generate`: not pieces
    result = evaluate(folder, [piece(random_tune(s)) for s in range(10, 14)])
    assert result["counts"]["generated"] == 3
    reasons = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in result["skipped"]}
    assert set(reasons) == {"notes.mid", "silent.mid"}
    assert "not a MIDI file" in reasons["notes.mid"] and reasons["silent.mid"] == "no notes"
    assert all(s["set"] == "generated" for s in result["skipped"])

    lonely = tmp_path / "lonely"
    write(score(random_tune(0)), lonely / "only.mid")
    (lonely / "broken.mid").write_bytes(b"MThd\x00\x00")
    with pytest.raises(MuseganError, match=r"lonely: only 1 usable reference piece\(s\) of 2"):
        evaluate(folder, lonely)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MuseganError, match=r"empty: no MIDI files .* --reference"):
        evaluate(folder, tmp_path / "empty")
    with pytest.raises(MuseganError, match="no such folder"):
        evaluate(tmp_path / "missing", folder)
    with pytest.raises(MuseganError, match="list of 1 pieces: only 1 usable generated"):
        evaluate([piece(scale())], folder)


def test_max_pieces_samples_the_same_pieces_every_time():
    tunes = [piece(random_tune(seed)) for seed in range(12)]
    first = evaluate(tunes, tunes[::-1], max_pieces=5)
    assert first["counts"]["generated"] == first["counts"]["reference"] == 5
    assert evaluate(tunes, tunes[::-1], max_pieces=5)["features"] == first["features"]
    assert evaluate(tunes, tunes, max_pieces=None)["counts"]["generated"] == 12


def test_report_files_are_written_and_kept(tmp_path):
    generated = [piece(random_tune(seed)) for seed in range(6)]
    reference = [piece(random_tune(seed)) for seed in range(10, 16)]
    train = [piece(random_tune(seed)) for seed in range(3, 12)]
    out = tmp_path / "eval"
    result = evaluate(generated, reference, train=train, out=out)
    assert set(result) == {"sources", "counts", "features", "mean_overlap", "mean_kl", "copying",
                           "skipped", "files", "seconds"}
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["counts"] == {"generated": 6, "reference": 6, "train": 9, "skipped": 0}
    assert set(on_disk["features"]) == set(FEATURES)
    assert set(on_disk["features"]["pitch_range"]) == {"generated", "reference", "overlap", "kl",
                                                       "n_valid"}
    copying = on_disk["copying"]
    assert copying["generated"]["copy_rate"]["max"] == 1.0  # tunes 3, 4 and 5 are in train
    assert copying["reference"]["copy_rate"]["max"] == pytest.approx(1.0)  # 10 and 11 too
    assert copying["generated"]["pieces"][3]["longest_copy"] == len(random_tune(3))
    markdown = (out / "report.md").read_text()
    assert "| feature | generated | reference | overlap | KL |" in markdown
    assert "| pitch_range |" in markdown and "(features.png)" in markdown
    assert "reference (yardstick)" in markdown
    for name in ["features.png"] + [f"piano-roll-{k}.png" for k in range(1, 5)]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    before = (out / "report.md").read_text()
    with pytest.raises(MuseganError, match="--force"):
        evaluate(generated, reference, out=out)
    assert (out / "report.md").read_text() == before
    again = evaluate(generated[:3], reference, out=out, force=True)
    assert again["counts"]["generated"] == 3
    assert not (out / "piano-roll-4.png").exists()  # no stale picture from the first report
    assert json.loads((out / "report.json").read_text())["copying"] is None


def test_a_prepared_corpus_is_a_training_set(tmp_path):
    from musegan.prepare import prepare_corpus

    for seed in range(5):
        write(score(random_tune(seed, bars=8)), tmp_path / "midi" / f"t{seed}.mid")
    prepare_corpus([str(tmp_path / "midi")], tmp_path / "corpus", val_fraction=0.0, workers=1,
                   progress=False)
    generated = [piece(random_tune(2, bars=8)), piece(random_tune(77, bars=8, low=40, high=90,
                                                                  lengths=(0.25, 0.75)))]
    reference = [piece(random_tune(s)) for s in (20, 21, 22)]
    result = evaluate(generated, reference, train=tmp_path / "corpus", progress=True)
    assert result["counts"]["train"] == 5
    rows = result["copying"]["generated"]["pieces"]
    assert rows[0]["copy_rate"] == 1.0 and rows[0]["source"].endswith("t2.mid")
    assert rows[1]["copy_rate"] < 0.05


def test_cli_evaluate_writes_the_report_and_fails_in_one_line(tmp_path):
    import subprocess
    import sys

    for name in ("generated", "real", "empty"):
        (tmp_path / name).mkdir()
    for i in range(3):
        piece(random_tune(i)).write(str(tmp_path / "generated" / f"g{i}.mid"))
        piece(scale(60 + i)).write(str(tmp_path / "real" / f"r{i}.mid"))
    (tmp_path / "real" / "notes.mid").write_text("not MIDI")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "musegan.cli", "evaluate", *args],
                              capture_output=True, text=True)

    ok = run(str(tmp_path / "generated"), "--reference", str(tmp_path / "real"),
             "--train", str(tmp_path / "real"), "--out", str(tmp_path / "report"))
    assert ok.returncode == 0, ok.stderr
    assert "mean overlap" in ok.stdout and "notes.mid" in ok.stderr  # the bad file is reported
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["counts"]["generated"] == 3 and report["copying"] is not None
    again = run(str(tmp_path / "generated"), "--reference", str(tmp_path / "real"),
                "--out", str(tmp_path / "report"))
    assert again.returncode == 2 and "--force" in again.stderr
    empty = run(str(tmp_path / "empty"), "--reference", str(tmp_path / "real"),
                "--out", str(tmp_path / "r2"))
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "empty") in empty.stderr
