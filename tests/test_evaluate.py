"""Evaluation of a set of pieces (musegan.evaluate): distances and their KDE overlap,
copying, the set comparison and the report. Every piece is built in code; the per-piece
features are tested in test_metrics.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from midi_factory import piece, random_tune, scale, score, write

from musegan.errors import MuseganError
from musegan.evaluate import (
    CopyIndex,
    compare_distances,
    evaluate,
    gaussian_kde,
    melody_tokens,
    pairwise_distances,
)
from musegan.metrics import FEATURES

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
    with pytest.raises(MuseganError, match="only.mid is a file; give a folder of the generated"):
        evaluate(lonely / "only.mid", folder)
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
    with pytest.raises(MuseganError, match="force=True"):
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
