"""The `musegan` command line: every verb's output, exit status and one-line errors,
run as a user runs them (``musegan.cli.main`` in-process, or ``python -m musegan.cli``)."""

import json
import os
import subprocess
import sys
import zipfile

import pretty_midi
import pytest
import torch
from midi_factory import make_score, midi_bytes, musegan_cli, piece, random_tune, scale

from musegan import Sampler
from musegan.cli import main
from musegan.config import RunConfig
from musegan.regularize import ATTRIBUTES as THEME_ATTRIBUTES


def run_cli(*args):
    return musegan_cli(*args, timeout=300)


# ---------------------------------------------------------------- prepare

def test_cli_prepare_prints_a_summary_and_exits_zero(good_folder, tmp_path, capsys):
    assert main(["prepare", str(good_folder), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "8 files" not in out  # counts are in columns
    assert "files found   8" in out and "Details:" in out


def test_cli_bad_input_is_one_line_and_non_zero(tmp_path, capsys):
    (tmp_path / "x.mid").write_bytes(b"garbage")
    code = main(["prepare", str(tmp_path / "x.mid"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("musegan prepare: error: no usable MIDI file")
    assert "x.mid: not a MIDI file" in err[0]


# ---------------------------------------------------------------- train

@pytest.mark.slow
def test_data_that_is_not_a_prepared_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "songs").mkdir()
    result = musegan_cli("train", str(tmp_path / "songs"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"musegan train: error: {tmp_path / 'songs'} is not a prepared corpus (no corpus.json); "
        f"make one with: musegan prepare SRC --out {tmp_path / 'songs'}")


@pytest.mark.slow
def test_print_config_shows_every_default_and_reads_back(tmp_path):
    result = musegan_cli("train", "--print-config", "--set", "train.lr=3e-4", "--precision",
                         "bf16-mixed")
    assert result.returncode == 0
    (tmp_path / "c.yaml").write_text(result.stdout)
    config = RunConfig.load(tmp_path / "c.yaml")
    assert config.train.lr == 3e-4 and config.trainer.precision == "bf16-mixed"
    assert config.model.hidden_dim == RunConfig().model.hidden_dim
    assert config.train.theme_attributes == list(THEME_ATTRIBUTES)  # on by default
    some = musegan_cli("train", "--print-config", "--set", "train.theme_attributes=[entropy,leaps]")
    (tmp_path / "some.yaml").write_text(some.stdout)
    assert RunConfig.load(tmp_path / "some.yaml").train.theme_attributes == ["entropy", "leaps"]
    bad = musegan_cli("train", "--print-config", "--set", "train.nope=1")
    assert bad.returncode == 2 and "unknown setting 'train.nope'" in bad.stderr
    for flags, says in [(["--batch-size", "0"], "--batch-size (train.batch_size) must be "
                                                 "at least 1; got 0"),
                        (["--precision", "banana"], "--precision must be one of 32-true"),
                        (["--devices", "0"], "--devices (trainer.devices) must be auto")]:
        bad = musegan_cli("train", "--print-config", *flags)  # never echoed as a config
        assert bad.returncode == 2 and says in bad.stderr and not bad.stdout
        assert len(bad.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- generate

@pytest.mark.slow
def test_cli_generate_writes_midi_json_and_pictures_and_never_overwrites(sampler, tmp_path):
    import json

    model = str(sampler.path)
    result = run_cli("generate", "--model", model, "-n", "2", "--bars", "2", "--seed", "5",
                     "--plot", "--out", str(tmp_path / "songs"))
    assert result.returncode == 0, result.stderr
    mids = sorted((tmp_path / "songs").glob("*.mid"))
    assert len(mids) == 2
    sidecar = json.loads(mids[0].with_suffix(".json").read_text())
    assert sidecar["seed"] == 5 and sidecar["settings"]["bars"] == 2
    assert len(sidecar["theme"]) == 8 and len(sidecar["model_sha256"]) == 64
    assert mids[0].with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # Regenerating from the sidecar gives the same file.
    again = sampler.generate(n=1, bars=2, seed=sidecar["seed"], theme=sidecar["theme"],
                             first=sidecar["index"])
    assert midi_bytes(again[0]) == midi_bytes(pretty_midi.PrettyMIDI(str(mids[0])))
    before = mids[0].read_bytes()
    clash = run_cli("generate", "--model", model, "-n", "2", "--bars", "2", "--seed", "5",
                    "--out", str(tmp_path / "songs"))
    assert clash.returncode == 2 and "--force" in clash.stderr
    assert mids[0].read_bytes() == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tune-s5-000.png").write_text("my drawing")
    (mine / "tune-s5-001.json").write_text("my notes")
    for flags, named in [(["--plot"], "tune-s5-000.png exists"),
                         ([], "tune-s5-001.json exists")]:  # the file that is there
        kept = run_cli("generate", "--model", model, "-n", "2", "--bars", "2", "--seed", "5",
                       *flags, "--out", str(mine))
        assert kept.returncode == 2 and named in kept.stderr
    assert (mine / "tune-s5-000.png").read_text() == "my drawing"
    assert sorted(p.name for p in mine.iterdir()) == ["tune-s5-000.png", "tune-s5-001.json"]


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--bars", "0"], "--bars must be at least 1"),
])
def test_cli_generate_errors_are_one_line(sampler, tmp_path, args, message):
    if "--model" not in args:
        args = ["--model", str(sampler.path), *args]
    result = run_cli("generate", *args, "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr


@pytest.mark.slow
def test_cli_generate_rejects_a_file_that_is_not_a_model_a_bad_primer_and_a_file_as_out(sampler,
                                                                                        tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.safetensors").write_text("hello")
    cases = [
        (["--model", str(tmp_path / "fake.safetensors")], "not a musegan model"),
        (["--model", str(sampler.path), "--primer", str(tmp_path / "notes.txt")],
         "not a MIDI file"),
        (["--model", str(sampler.path), "--out", str(tmp_path / "notes.txt")], "is a file"),
    ]
    for args, message in cases:
        result = run_cli("generate", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_cli_audio_renders_a_wav_or_says_how_to_install_fluidsynth(sampler, tmp_path):
    from musegan.render import audio_available

    result = run_cli("generate", "--model", str(sampler.path), "-n", "1", "--bars", "1",
                     "--audio", "--out", str(tmp_path / "a"))
    if not audio_available():
        assert (result.returncode == 2
                and "apt-get install fluidsynth fluid-soundfont-gm" in result.stderr)
        pytest.skip("FluidSynth or a GM soundfont is not installed")
    assert result.returncode == 0, result.stderr
    import wave

    import numpy as np

    with wave.open(str(next((tmp_path / "a").glob("*.wav")))) as wav:
        assert wav.getframerate() == 44100 and wav.getnframes() > 44100 // 4
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert np.abs(samples).max() > 100  # notes were played, not silence


@pytest.mark.slow
def test_cli_theme_from_interpolate_and_theme_files(sampler, tmp_path):
    import json

    from midi_factory import write

    a = write(make_score([(0, False, [(i * 240, 240, 60 + i % 5, 90) for i in range(16)])]),
              tmp_path / "a.mid")
    b = write(make_score([(0, False, [(i * 720, 480, 70 - i % 7, 90) for i in range(8)])],
                         time_signatures=[(0, 6, 8)]), tmp_path / "b.mid")
    model = str(sampler.path)
    walk = run_cli("generate", "--model", model, "--interpolate", str(a), str(b), "--steps", "3",
                   "--bars", "1", "--seed", "2", "--out", str(tmp_path / "walk"))
    assert walk.returncode == 0, walk.stderr
    themes = [json.loads(p.read_text())["theme"]
              for p in sorted((tmp_path / "walk").glob("*.json"))]
    assert len(themes) == 3
    ends = Sampler.interpolate(sampler.encode_theme(a), sampler.encode_theme(b), steps=3)
    torch.testing.assert_close(torch.tensor(themes), ends, atol=1e-5, rtol=1e-5)

    variations = run_cli("generate", "--model", model, "--theme-from", str(a), "-n", "2",
                         "--bars", "1", "--out", str(tmp_path / "var"))
    assert variations.returncode == 0, variations.stderr
    for path in (tmp_path / "var").glob("*.json"):
        torch.testing.assert_close(torch.tensor([json.loads(path.read_text())["theme"]]),
                                   sampler.encode_theme(a), atol=1e-5, rtol=1e-5)

    Sampler.save_theme(sampler.sample_theme(1, seed=9), tmp_path / "mine.json")
    from_file = run_cli("generate", "--model", model, "--theme", str(tmp_path / "mine.json"),
                        "-n", "1", "--bars", "1", "--out", str(tmp_path / "file"))
    assert from_file.returncode == 0, from_file.stderr


# ---------------------------------------------------------------- evaluate, baseline, steer

def test_cli_evaluate_writes_the_report_and_fails_in_one_line(tmp_path):

    for name in ("generated", "real", "empty"):
        (tmp_path / name).mkdir()
    for i in range(3):
        piece(random_tune(i)).write(str(tmp_path / "generated" / f"g{i}.mid"))
        piece(scale(60 + i)).write(str(tmp_path / "real" / f"r{i}.mid"))
    (tmp_path / "real" / "notes.mid").write_text("not MIDI")

    def run(*args):
        return run_cli("evaluate", *args)

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
    for flags, says in [(["--max-pieces", "-1"], "--max-pieces must be at least 2"),
                        (["--max-pieces", "0"], "--max-pieces must be at least 2"),
                        (["--ngram", "0"], "--ngram must be at least 1 (8 is the default)")]:
        bad = run(str(tmp_path / "generated"), "--reference", str(tmp_path / "real"),
                  "--out", str(tmp_path / "r3"), *flags)
        assert bad.returncode == 2 and says in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "r3").exists()


@pytest.mark.slow
def test_cli_baseline_markov_then_generate(corpus, tmp_path):
    out = tmp_path / "markov.safetensors"
    result = run_cli("baseline", "markov", str(corpus), "--order", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    again = run_cli("baseline", "markov", str(corpus), "--order", "4", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    not_corpus = run_cli("baseline", "markov", str(tmp_path), "--out", str(tmp_path / "x.st"))
    assert not_corpus.returncode == 2 and "musegan prepare" in not_corpus.stderr
    generated = run_cli("generate", "--model", str(out), "-n", "2", "--bars", "2", "--seed", "0",
                        "--out", str(tmp_path / "songs"))
    assert generated.returncode == 0, generated.stderr
    songs = sorted((tmp_path / "songs").glob("*.mid"))
    assert len(songs) == 2
    themed = run_cli("generate", "--model", str(out), "--theme-from", str(songs[0]), "--out",
                     str(tmp_path / "themed"))  # it has no themes to take: not ignored
    assert themed.returncode == 2 and "has no themes (a Markov baseline)" in themed.stderr


@pytest.mark.slow
def test_cli_steer_fit_list_and_generate(setup, tmp_path):
    root, model = setup
    out = tmp_path / "s.safetensors"

    run = run_cli
    fitted = run("steer", "--fit", str(model), "--data", str(root / "corpus"),
                 "--attributes", "density,leaps", "--themes", "32", "--calibration-themes", "8",
                 "--bars", "2", "--out", str(out))
    assert fitted.returncode == 0, fitted.stderr
    listed = run("steer", "--list", "--model", str(out))
    assert listed.returncode == 0 and "density" in listed.stdout and "leaps" in listed.stdout
    songs = tmp_path / "songs"
    ok = run("generate", "--model", str(out), "-n", "2", "--bars", "2", "--seed", "1",
             "--steer", "density=+1.5", "--out", str(songs))
    assert ok.returncode == 0, ok.stderr
    sidecar = json.loads(next(songs.glob("*.json")).read_text())
    assert sidecar["steer"] == {"density": 1.5}
    unknown = run("generate", "--model", str(out), "--steer", "loudness=1", "--out",
                  str(tmp_path / "x"))
    assert unknown.returncode == 2 and "density, leaps" in unknown.stderr
    assert not (tmp_path / "x").exists()  # nothing written
    for alpha in ("1000", "nan", "-inf"):
        far = run("generate", "--model", str(out), "--steer", f"density={alpha}", "--out",
                  str(tmp_path / "x"))
        assert far.returncode == 2 and "--steer density=ALPHA takes an ALPHA from -5 to +5" \
            in far.stderr and len(far.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    no_data = run("steer", "--fit", str(model))
    assert no_data.returncode == 2 and "--data" in no_data.stderr
    in_place = run("steer", "--fit", str(out), "--data", str(root / "corpus"))
    assert in_place.returncode == 2 and "--force" in in_place.stderr  # refused before fitting
    assert "calibrating" not in in_place.stderr


# ---------------------------------------------------------------- help and version

def test_cli_help_and_version():
    result = subprocess.run([sys.executable, "-m", "musegan.cli", "--version"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("musegan ")
    for verb in ([], ["prepare"], ["train"], ["export"], ["generate"], ["models"]):
        result = run_cli(*verb, "--help")
        assert result.returncode == 0 and "usage: musegan" in result.stdout


def test_a_verbs_first_imports_are_frozen_and_the_collector_comes_back(tmp_path, monkeypatch):
    import gc

    from musegan.cli import quick_imports

    module = tmp_path / "fresh_module_for_quick_imports.py"
    module.write_text("ITEMS = [[i] for i in range(999)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    frozen = gc.get_freeze_count()
    try:
        with quick_imports():
            assert not gc.isenabled()
            import fresh_module_for_quick_imports
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(fresh_module_for_quick_imports.ITEMS)
        frozen = gc.get_freeze_count()
        with quick_imports():  # nothing new imported: nothing frozen
            import fresh_module_for_quick_imports  # noqa: F401,F811
        assert gc.get_freeze_count() == frozen and gc.isenabled()
        gc.disable()  # a caller's disabled collector stays off
        with quick_imports():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
        sys.modules.pop("fresh_module_for_quick_imports", None)


# ---------------------------------------------------------------- bad input, row by row

@pytest.fixture(scope="module")
def files(sampler, tmp_path_factory):
    """What the rows need: the tiny model, a run folder holding it, a tune, a sidecar,
    a file that is not a checkpoint, a plain pickle, a plain file, a MIDI folder."""
    import pickle
    import shutil

    root = tmp_path_factory.mktemp("rows")
    run = root / "run"
    run.mkdir()
    shutil.copy(sampler.path, run / "model.safetensors")
    piece(random_tune(1, bars=4)).write(str(root / "a.mid"))
    piece(random_tune(2, bars=4)).write(str(root / "b.mid"))
    done = run_cli("generate", "--model", str(sampler.path), "-n", "1", "--bars", "2",
                   "--seed", "3", "--out", str(root / "songs"))
    assert done.returncode == 0, done.stderr
    (root / "random.ckpt").write_bytes(bytes(range(256)) * 20)
    (root / "text.ckpt").write_text("hello world")
    (root / "empty.ckpt").write_bytes(b"")
    with zipfile.ZipFile(root / "zip.ckpt", "w") as archive:  # a zip, not torch's
        archive.writestr("notes.txt", "x")
    with open(root / "pickled.ckpt", "wb") as file:
        pickle.dump({"weights": [1, 2, 3]}, file, protocol=4)
    (root / "afile").write_text("not a folder")
    (root / "read-only").mkdir()
    (root / "read-only").chmod(0o555)
    (root / "midi").mkdir()
    piece(random_tune(3, bars=4)).write(str(root / "midi" / "t.mid"))
    return root


GENERATE_ROWS = [  # (flags, what the one-line error must say)
    (["--top-p", "2"], "--top-p must be above 0 and at most 1, got 2.0"),
    (["--top-p", "0"], "--top-p must be above 0 and at most 1, got 0.0"),
    (["--top-k", "0"], "--top-k must be at least 1"),
    (["-n", "0"], "-n must be at least 1, got 0"),
    (["-n", "-2"], "-n must be at least 1, got -2"),
    (["--temperature", "0"], "--temperature must be above 0"),
    (["--best-of", "0"], "--best-of must be from 1 to 64, got 0"),
    (["--steer", "density=1", "--steer", "density=-1"], "--steer density is given twice"),
    (["--bars", "4", "--part-bars", "2"], "--part-bars is for a form"),
    (["--form", "", "--part-bars", "2"], "--part-bars is for a form"),
    (["--tempo", "400"], "--tempo must be from 30 to 300 bpm"),
    (["--tempo", "inf"], "--tempo must be from 30 to 300 bpm"),
    (["--best-of", "100000"], "--best-of must be from 1 to 64, got 100000"),
    (["--interpolate", "{root}/a.mid", "{root}/b.mid", "-n", "3", "--steps", "5"],
     "-n 3 and --steps 5 disagree"),
    (["--steps", "3"], "--steps is for --interpolate"),
    (["--model", "{root}/random.ckpt"], "random.ckpt is not a PyTorch checkpoint"),
    (["--model", "{root}/text.ckpt"], "text.ckpt is not a PyTorch checkpoint"),
    (["--model", "{root}/empty.ckpt"], "empty.ckpt is not a PyTorch checkpoint"),
    (["--model", "{root}/zip.ckpt"], "zip.ckpt is not a PyTorch checkpoint"),
    (["--model", "{root}/pickled.ckpt"], "pickled.ckpt is a plain pickle"),
    (["--model", "{root}/midi"], "is a folder with no model.safetensors"),
    (["--out", "{root}/afile/sub"], "cannot write to"),
    pytest.param(["--out", "/proc/musegan-test"], "cannot write to /proc/musegan-test",
                 marks=pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc here")),
    pytest.param(["--out", "{root}/read-only/sub"], "cannot write to",
                 marks=pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                                          reason="root writes to read-only folders")),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--cuda-graphs"], "--cuda-graphs needs --device cuda"),
    (["--no-primer"], "--no-primer is for --primer"),
    (["--device", "tpu"], "--device tpu: use cpu, cuda or cuda:N"),
    pytest.param(["--device", "cuda"], "--device cuda: no CUDA device here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
]


@pytest.mark.parametrize("flags, message", GENERATE_ROWS,
                         ids=[" ".join(x for x in (row.values[0] if hasattr(row, "values")
                                                   else row[0]) if "{" not in x)
                              for row in GENERATE_ROWS])
def test_generate_refuses_bad_input_in_one_line_and_writes_nothing(sampler, files, flags,
                                                                    message):
    out = files / "untouched"
    flags = [f.format(root=files) for f in flags]
    model = [] if "--model" in flags else ["--model", str(sampler.path)]
    target = [] if "--out" in flags else ["--out", str(out)]
    done = run_cli("generate", *model, *target, "--bars", "2", *flags)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musegan generate: error: "), done.stderr
    assert message in lines[0] and "Traceback" not in done.stderr
    assert "Warning" not in done.stderr  # torch's note on pickles is not shown
    assert not out.exists()  # no folder left behind


def test_generate_takes_its_own_sidecar_as_a_theme_and_a_run_folder_as_a_model(files):
    sidecar = files / "songs" / "tune-s3-000.json"
    done = run_cli("generate", "--model", str(files / "run"), "--theme", str(sidecar),
                   "-n", "1", "--bars", "2", "--seed", "1", "--out", str(files / "again"))
    assert done.returncode == 0, done.stderr
    assert "wrote 1 piece to" in done.stdout  # one piece, not "1 pieces"
    theme = json.loads(sidecar.read_text())["theme"]
    again = json.loads((files / "again" / "tune-s1-000.json").read_text())["theme"]
    assert again == pytest.approx(theme)


def test_interpolate_writes_one_piece_per_step_given_by_n(sampler, files):
    done = run_cli("generate", "--model", str(sampler.path), "--interpolate",
                   str(files / "a.mid"), str(files / "b.mid"), "-n", "3", "--bars", "2",
                   "--out", str(files / "walk"))
    assert done.returncode == 0, done.stderr
    assert len(list((files / "walk").glob("*.mid"))) == 3


def test_evaluate_to_an_unwritable_folder_is_one_line(files):
    done = run_cli("evaluate", str(files / "songs"), "--reference", str(files / "midi"),
                   "--out", str(files / "afile" / "report"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # (the sets are checked first: two pieces each are needed)
    assert done.stderr.count("\n") == 1 and "musegan evaluate: error:" in done.stderr


def test_train_on_a_midi_folder_says_to_prepare_it_into_a_new_folder(files):
    done = run_cli("train", str(files / "midi"), "--out", str(files / "r"))
    assert done.returncode == 2
    assert f"musegan prepare {files / 'midi'} --out data/midi" in done.stderr


def test_a_closed_pipe_is_not_an_error(sampler):
    done = subprocess.run(f"{sys.executable} -m musegan.cli steer --list | head -c 1",
                          shell=True, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_models_lists_one_line_each_and_prints_a_card_by_name(sampler, tmp_path):
    done = run_cli("models")
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == len(Sampler.available()) + 1
    assert lines[0].startswith(Sampler.available()[0] + ":") and "MB" in lines[0]
    assert "/work/" not in done.stdout
    card = run_cli("models", "cre-melody")
    assert card.returncode == 0 and card.stdout.startswith("# Model card: cre-melody")
    assert run_cli("models", "nope").returncode == 2
    own = run_cli("models", str(sampler.path))  # a model file of one's own, by its path
    assert own.returncode == 0 and own.stdout.startswith("# Model card: m.safetensors")
    bare = tmp_path / "bare.safetensors"  # no card beside it: written from the file's own
    bare.write_bytes(sampler.path.read_bytes())
    card = run_cli("models", str(bare))
    assert card.returncode == 0 and card.stdout.startswith("# Model card: bare.safetensors")


def test_the_prepare_summary_counts_warnings_without_placeholders():
    from musegan.prepare import PrepareReport, format_summary

    report = PrepareReport(sources=["midi"], output="data/x")
    report.warnings = [{"file": "a.mid", "warnings": ["5 tempos outside 30-300 bpm clamped"]},
                       {"file": "b.mid", "warnings": ["2 tempos outside 30-300 bpm clamped"]}]
    text = format_summary(report)
    assert "2  files: 7 tempos outside 30-300 bpm clamped" in text and "N-N" not in text


def test_cli_errors_name_flags_and_library_errors_name_arguments(files, tmp_path):
    from musegan import MuseganError
    from musegan.evaluate import evaluate

    songs, reference = files / "songs", files / "midi"
    for name in ("x.mid", "y.mid"):  # evaluate needs two pieces a set
        piece(random_tune(len(name), bars=2)).write(str(tmp_path / name))
    assert run_cli("evaluate", str(tmp_path), "--reference", str(tmp_path),
                   "--out", str(tmp_path / "report")).returncode == 0
    again = run_cli("evaluate", str(tmp_path), "--reference", str(tmp_path),
                    "--out", str(tmp_path / "report"))
    assert again.returncode == 2 and "pass --force" in again.stderr
    assert "force=True" not in again.stderr
    with pytest.raises(MuseganError, match="pass force=True") as raised:
        evaluate(str(tmp_path), str(tmp_path), out=str(tmp_path / "report"))
    assert "--force" not in str(raised.value)
    assert songs.is_dir() and reference.is_dir()
