import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from midi_factory import CRE, SKIP_NO_CRE, raw_midi, tune, write

from musegan import Corpus, MuseganError, Tokenizer
from musegan.prepare import NoUsableMidiError, prepare_corpus

NOTE = b"\x00\x90\x3c\x50\x83\x60\x80\x3c\x00"  # C4 for a quarter note at tpq 480


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    """Every kind of bad input the issue lists, made in code."""
    folder = tmp_path / "bad"
    folder.mkdir()
    write(tune(20), folder / "fine.mid")
    (folder / "corrupt.mid").write_bytes(os.urandom(300))
    (folder / "truncated.mid").write_bytes((folder / "fine.mid").read_bytes()[:40])
    (folder / "empty.mid").write_bytes(b"")
    (folder / "no_notes.mid").write_bytes(raw_midi(b"\x00\xff\x51\x03\x07\xa1\x20"))
    (folder / "absurd_tempo.mid").write_bytes(raw_midi(b"\x00\xff\x51\x03\x00\x00\x01" + NOTE))
    (folder / "absurd_meter.mid").write_bytes(raw_midi(b"\x00\xff\x58\x04\x00\x02\x18\x08" + NOTE))
    (folder / "odd_meter.mid").write_bytes(raw_midi(b"\x00\xff\x58\x04\x0d\x02\x18\x08" + NOTE))
    (folder / "zero_length.mid").write_bytes(raw_midi(b"\x00\x90\x3e\x50\x00\x80\x3e\x00"))
    # A note released after the End of Track event: the parser never sees the note-off.
    (folder / "past_end.mid").write_bytes(raw_midi(b"\x00\x90\x3c\x50\x83\x60\xff\x2f\x00"
                                                   b"\x00\x80\x3c\x00"))
    with open(folder / "huge.mid", "wb") as huge:  # 100 MB, sparse: instant to make
        huge.truncate(100 * 2**20)
    (folder / "dangling.mid").symlink_to(folder / "does-not-exist.mid")
    (folder / "looks_like.mid").mkdir()  # a folder with a MIDI name is not a file
    (folder / "notes.txt").write_text("not music")
    return folder


def reasons(report) -> dict[str, str]:
    return {Path(s["source"]).name: s["reason"] for s in report.skipped}


def test_every_bad_file_is_reported_and_the_job_goes_on(bad_folder, tmp_path):
    report = prepare_corpus([str(bad_folder)], tmp_path / "out", workers=1, progress=False)
    why = reasons(report)
    assert "corrupt or truncated" in why["truncated.mid"]
    assert "not a MIDI file" in why["corrupt.mid"] or "corrupt" in why["corrupt.mid"]
    assert "empty" in why["empty.mid"]
    assert "no notes" in why["no_notes.mid"]
    assert "no notes" in why["past_end.mid"]
    assert "invalid time signature 0/4" in why["absurd_meter.mid"]
    assert "13/4 is not in the tokenizer's vocabulary" in why["odd_meter.mid"]
    assert "104.9 MB, over the 32 MB limit; raise --max-file-mb" in why["huge.mid"]
    assert "cannot read the file" in why["dangling.mid"]
    assert "looks_like.mid" not in why and "notes.txt" not in why
    used = {Path(p["source"]).name for p in Corpus(tmp_path / "out").pieces}
    assert used == {"fine.mid", "absurd_tempo.mid", "zero_length.mid"}
    warned = {Path(w["source"]).name: " ".join(w["warnings"]) for w in report.warnings}
    assert "tempos outside 30-300 bpm clamped" in warned["absurd_tempo.mid"]
    assert "shorter than a grid step" in warned["zero_length.mid"]


def test_source_problems_are_reported(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    write(tune(1), tmp_path / "one.mid")
    report = prepare_corpus([str(empty), str(tmp_path / "missing"), str(tmp_path / "one.mid"),
                             str(tmp_path / "*.nomatch")], tmp_path / "out", progress=False)
    why = {s["source"]: s["reason"] for s in report.skipped}
    assert "no MIDI files" in why[str(empty)]
    assert "no such file or folder" in why[str(tmp_path / "missing")]
    assert "matches no MIDI file" in why[str(tmp_path / "*.nomatch")]
    assert report.files_used == 1


def test_globs_and_duplicates(good_folder, tmp_path):
    shutil.copy(good_folder / "tune0.mid", good_folder / "copy_of_tune0.mid")
    # Same music at another resolution: different bytes, same tokens.
    score = tune(0)
    write(score.resample(240), good_folder / "tune0_at_240.mid")
    report = prepare_corpus([str(good_folder / "*.mid")], tmp_path / "out", progress=False)
    dropped = {Path(d["source"]).name for d in report.duplicates}
    assert dropped == {"tune0_at_240.mid", "tune0.mid"}  # the first (sorted) copy is kept
    assert report.files_used == 6


def test_no_usable_file_is_an_error_and_writes_nothing(bad_folder, tmp_path):
    (bad_folder / "fine.mid").unlink()
    (bad_folder / "absurd_tempo.mid").unlink()
    (bad_folder / "zero_length.mid").unlink()
    with pytest.raises(NoUsableMidiError, match="no usable MIDI file"):
        prepare_corpus([str(bad_folder)], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_split_is_stable_when_files_are_added_and_reruns_reuse_work(tmp_path):
    folder = tmp_path / "music"
    for i in range(40):
        write(tune(i * 7), folder / f"a{i:02d}.mid")
    out = tmp_path / "out"
    first = prepare_corpus([str(folder)], out, val_fraction=0.3, workers=2, progress=False)
    assert first.pieces["val"] > 0 and first.pieces["train"] > 0
    splits = {p["sha256"]: p["split"] for p in Corpus(out).pieces}

    again = prepare_corpus([str(folder)], out, val_fraction=0.3, progress=False)
    assert again.up_to_date and again.reused == len(splits)

    for i in range(40, 60):
        write(tune(i * 7 + 3), folder / f"b{i:02d}.mid")
    more = prepare_corpus([str(folder)], out, val_fraction=0.3, workers=2, progress=False)
    assert more.reused == len(splits) and not more.up_to_date
    after = {p["sha256"]: p["split"] for p in Corpus(out).pieces}
    assert all(after[sha] == split for sha, split in splits.items())


def test_an_existing_output_is_never_clobbered_without_force(good_folder, tmp_path):
    out = tmp_path / "out"
    prepare_corpus([str(good_folder)], out, progress=False)
    with pytest.raises(MuseganError, match=r"other sources or settings \(sources\); pass "
                                           "force=True"):
        prepare_corpus([str(good_folder / "tune1.mid")], out, progress=False)
    with pytest.raises(MuseganError, match="another tokenizer; pass force=True"):
        prepare_corpus([str(good_folder)], out, tokenizer=Tokenizer(velocity_bins=8),
                       progress=False)
    with pytest.raises(MuseganError, match=r"other parts \(it has none; now "
                                           "Lead, in that order"):
        prepare_corpus([str(good_folder)], out, tokenizer=Tokenizer(parts=[("Lead", 0)]),
                       progress=False)
    assert len(Corpus(out)) == 8
    prepare_corpus([str(good_folder / "tune1.mid")], out, force=True, progress=False)
    assert len(Corpus(out)) == 1

    mine = tmp_path / "my_files"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    for force in (False, True):
        with pytest.raises(MuseganError, match="not a musegan corpus"):
            prepare_corpus([str(good_folder)], mine, force=force, progress=False)
    assert (mine / "thesis.tex").read_text() == "precious"
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(MuseganError, match="is a file"):
        prepare_corpus([str(good_folder)], tmp_path / "a_file", progress=False)


def test_a_leftover_partial_output_is_cleaned_up(good_folder, tmp_path):
    partial = tmp_path / ".out.partial"
    partial.mkdir()
    (partial / "tokens-00000.u16").write_bytes(b"junk")
    prepare_corpus([str(good_folder)], tmp_path / "out", progress=False)
    assert not partial.exists() and len(Corpus(tmp_path / "out")) == 8


def test_bach_chorales_prepare_offline(tmp_path):
    report = prepare_corpus(["bach"], tmp_path / "bach", limit=3, workers=1, progress=False)
    assert report.files_used + len(report.skipped) == 3
    assert report.files_used >= 2
    corpus = Corpus(tmp_path / "bach")
    assert corpus.pieces[0]["source"].startswith("bach/bwv")
    midi = corpus.tokenizer.decode(corpus.tokens(0))
    assert len({i.program for i in midi.instruments}) >= 1 and midi.get_end_time() > 10


# ---------------------------------------------------------------- real corpus

@pytest.mark.skipif(not CRE.is_dir(), reason=SKIP_NO_CRE)
def test_the_whole_cre_corpus_matches_its_manifest(tmp_path):
    manifest = json.loads((Path(__file__).parents[1] / "datasets" / "manifests" / "cre.json")
                          .read_text())
    report = prepare_corpus([str(CRE)], tmp_path / "cre", progress=False)
    for key in ("files_found", "files_used", "pieces", "notes", "tokens", "hours"):
        assert getattr(report, key) == manifest[key], key
    assert not report.skipped and not report.duplicates


def test_parallel_prepare_works_from_an_unguarded_script_on_stdin(tmp_path):
    # Worker processes must not re-import the caller's __main__ (forkserver and spawn do).
    for i in range(40):
        write(tune(1000 + i), tmp_path / "midi" / f"t{i}.mid")
    script = (f"from musegan.prepare import prepare_corpus\n"
              f"r = prepare_corpus([{str(tmp_path / 'midi')!r}], {str(tmp_path / 'out')!r}, "
              f"workers=2, progress=False)\nprint(r.files_used)\n")
    result = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "40"
