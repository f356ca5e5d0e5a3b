import io
from collections import Counter

import numpy as np
import pretty_midi
import pytest
import torch

from midi_factory import make_score
from musegan import MuseganError, Sampler, Tokenizer
from musegan.export import save_model
from musegan.models import ModelConfig, MuseGAN

TOK = Tokenizer()


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    torch.manual_seed(0)
    net = MuseGAN(ModelConfig(vocab_size=len(TOK), embed_dim=16, hidden_dim=32, num_layers=1,
                              theme_dim=8, noise_dim=8, mapping_width=16, encoder_dim=16,
                              disc_embed_dim=8, disc_hidden_dim=8))
    return Sampler.from_pretrained(save_model(net, TOK, tmp_path_factory.mktemp("m") / "m.safetensors"))


def midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def assert_well_formed(ids: list[int], bars: int):
    names = TOK.tokens(ids)
    assert names[0] == "BOS" and names[-1] == "EOS" and names.count("EOS") == 1
    assert names.count("Bar") == bars
    position = -1
    for i, name in enumerate(names):
        kind = name.split("_")[0]
        if kind == "Bar":
            position = -1
        elif kind == "Position":
            assert int(name.split("_")[1]) > position, "positions rise within a bar"
            position = int(name.split("_")[1])
        elif kind == "Pitch":
            assert names[i + 1].startswith("Velocity_") and names[i + 2].startswith("Duration_")


def test_generates_exactly_the_bars_asked_for_and_well_formed(sampler):
    ids = sampler.generate_ids(n=3, bars=3, seed=0, top_k=40)
    assert len(ids) == 3
    for row in ids:
        assert_well_formed(row, bars=3)
    midis = sampler.generate(n=2, bars=2, seed=0)
    assert all(isinstance(m, pretty_midi.PrettyMIDI) for m in midis)


def test_a_runaway_bar_is_ended_by_the_grammar(sampler):
    from musegan.sampling import MAX_TOKENS_PER_BAR

    head = sampler.net.generator.head
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():  # a model that never wants to leave the bar
            head.bias[TOK.BAR] = head.bias[TOK.EOS] = -50.0
            head.bias[list(TOK.token_range("pitch"))] += 20.0
            ids = sampler.generate_ids(n=2, bars=2, seed=0)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
    for row in ids:
        assert_well_formed(row, bars=2)
        bar_starts = [i for i, t in enumerate(row) if t == TOK.BAR] + [len(row)]
        longest = max(b - a for a, b in zip(bar_starts, bar_starts[1:]))
        assert MAX_TOKENS_PER_BAR < longest <= MAX_TOKENS_PER_BAR + 6


def test_nan_logits_are_a_clear_error_and_no_pieces_is_no_work():
    from musegan.sampling import _sample, decode

    logits = torch.full((2, 5), float("nan"))
    with pytest.raises(MuseganError, match="NaN"):
        _sample(logits, torch.ones(2, 5, dtype=torch.bool), 1.0, None, None, None)
    net = MuseGAN(ModelConfig(vocab_size=len(TOK), embed_dim=8, hidden_dim=8, num_layers=1,
                              theme_dim=4, noise_dim=4, mapping_width=8, encoder_dim=8,
                              disc_embed_dim=4, disc_hidden_dim=4)).eval()
    assert decode(net, TOK, torch.zeros(0, 4), 4, [TOK.BOS]) == []


def test_sampling_draws_from_the_masked_distribution():
    from musegan.sampling import _sample

    logits = torch.tensor([[1.0, 2.0, 5.0, -1.0]]).expand(100_000, -1)
    mask = torch.tensor([[True, True, False, True]]).expand(100_000, -1)
    drawn = _sample(logits, mask, 1.0, None, None, torch.Generator().manual_seed(0))
    share = torch.bincount(drawn, minlength=4) / len(drawn)
    want = torch.softmax(torch.tensor([1.0, 2.0, float("-inf"), -1.0]), -1)
    assert share[2] == 0
    torch.testing.assert_close(share, want, atol=0.006, rtol=0)
    hot = _sample(logits, mask, 0.5, None, None, torch.Generator().manual_seed(0))
    assert (hot == 1).float().mean() > share[1] + 0.05  # a lower temperature sharpens


def test_the_same_seed_gives_byte_identical_midi(sampler):
    a = [midi_bytes(m) for m in sampler.generate(n=2, bars=2, seed=11, temperature=0.9, top_p=0.95)]
    b = [midi_bytes(m) for m in sampler.generate(n=2, bars=2, seed=11, temperature=0.9, top_p=0.95)]
    c = [midi_bytes(m) for m in sampler.generate(n=2, bars=2, seed=12, temperature=0.9, top_p=0.95)]
    assert a == b and a != c


def test_top_k_1_is_greedy(sampler):
    theme = sampler.sample_theme(1, seed=3)
    a = sampler.generate_ids(n=1, bars=2, top_k=1, seed=1, theme=theme)
    b = sampler.generate_ids(n=1, bars=2, top_k=1, seed=2, theme=theme)
    assert a == b


def test_themes_sample_interpolate_save_and_load(sampler, tmp_path):
    themes = sampler.sample_theme(2, seed=5)
    assert themes.shape == (2, 8)
    torch.testing.assert_close(sampler.sample_theme(2, seed=5), themes)
    path = Sampler.interpolate(themes[0], themes[1], steps=5)
    torch.testing.assert_close(path[0], themes[0])
    torch.testing.assert_close(path[-1], themes[1], atol=1e-5, rtol=1e-5)
    lerp = Sampler.interpolate(themes[0], themes[1], steps=3, method="lerp")
    torch.testing.assert_close(lerp[1], (themes[0] + themes[1]) / 2)
    for name in ("t.npy", "t.json"):
        Sampler.save_theme(themes, tmp_path / name)
        torch.testing.assert_close(sampler.load_theme(tmp_path / name), themes)
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3), np.float32))
    with pytest.raises(MuseganError, match="3 numbers"):
        sampler.load_theme(tmp_path / "wrong.npy")
    assert sampler.generate_ids(n=2, bars=1, theme=themes, seed=0)


def test_a_primer_is_continued_in_its_meter_and_tempo(sampler):
    primer = make_score([(0, False, [(i * 480, 480, 60 + i, 90) for i in range(6)])],
                        time_signatures=[(0, 3, 4)], tempos=[(0, 90.0)])  # two bars of 3/4
    ids = sampler.generate_ids(n=2, bars=3, seed=4, primer=primer)
    primer_ids = TOK.encode(primer)[:-1]
    for row in ids:
        assert row[:len(primer_ids)] == primer_ids
        names = TOK.tokens(row)
        assert names.count("Bar") == 2 + 3
        assert not any(n.startswith(("TimeSig_", "Tempo_")) for n in names[len(primer_ids):])
    with_primer, without = (sampler.generate(n=1, bars=2, seed=4, primer=primer,
                                             include_primer=keep)[0] for keep in (True, False))
    notes = lambda m: sorted((round(n.start, 3), n.pitch) for i in m.instruments for n in i.notes)  # noqa: E731
    primer_notes = notes(TOK.decode(TOK.encode(primer)))
    # The primer's notes, then the new ones (which may start with the primer's last note).
    new_notes = Counter(notes(with_primer)) - Counter(primer_notes)
    assert sum(new_notes.values()) == len(notes(with_primer)) - len(primer_notes) > 0
    assert min(new_notes)[0] >= primer_notes[-1][0]
    assert notes(without) == sorted(new_notes.elements())
    assert [(t.numerator, t.denominator) for t in with_primer.time_signature_changes] == [(3, 4)]


def test_tempo_sets_the_tempo(sampler):
    want = round(float(TOK.tempo_values[TOK._bin(np.log(140), TOK._tempo_edges)]), 1)
    midi = sampler.generate(n=1, bars=2, seed=0, tempo=140)[0]
    assert set(np.round(midi.get_tempo_changes()[1], 1)) == {want}
    primer = make_score([(0, False, [(0, 480, 60, 90)])], tempos=[(0, 90.0)])
    continued = sampler.generate(n=1, bars=2, seed=0, tempo=140, primer=primer)[0]
    assert want in set(np.round(continued.get_tempo_changes()[1], 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"bars": 0}, "bars must be at least 1"),
    ({"temperature": 0}, "temperature must be above 0"),
    ({"tempo": -5}, "tempo must be above 0"),
])
def test_bad_settings_are_clear_errors(sampler, kwargs, message):
    with pytest.raises(MuseganError, match=message):
        sampler.generate(**kwargs)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "x.safetensors").write_text("hello")
    with pytest.raises(MuseganError, match="not a musegan model"):
        Sampler.from_pretrained(tmp_path / "x.safetensors")


# ---------------------------------------------------------------- command line

def run_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "musegan.cli", *args], capture_output=True,
                          text=True, timeout=300)


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
    again = sampler.generate(n=sidecar["batch_size"], bars=2, seed=sidecar["seed"],
                             theme=torch.tensor([sidecar["theme"]] * sidecar["batch_size"]))
    assert midi_bytes(again[sidecar["batch_index"]]) == midi_bytes(pretty_midi.PrettyMIDI(str(mids[0])))
    before = mids[0].read_bytes()
    clash = run_cli("generate", "--model", model, "-n", "2", "--bars", "2", "--seed", "5",
                    "--out", str(tmp_path / "songs"))
    assert clash.returncode == 2 and "--force" in clash.stderr
    assert mids[0].read_bytes() == before


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


def test_cli_generate_rejects_a_file_that_is_not_a_model_a_bad_primer_and_a_file_as_out(sampler, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.safetensors").write_text("hello")
    cases = [
        (["--model", str(tmp_path / "fake.safetensors")], "not a musegan model"),
        (["--model", str(sampler.path), "--primer", str(tmp_path / "notes.txt")], "not a MIDI file"),
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
        assert result.returncode == 2 and "apt-get install fluidsynth fluid-soundfont-gm" in result.stderr
        pytest.skip("FluidSynth or a GM soundfont is not installed")
    assert result.returncode == 0, result.stderr
    import wave

    import numpy as np

    with wave.open(str(next((tmp_path / "a").glob("*.wav")))) as wav:
        assert wav.getframerate() == 44100 and wav.getnframes() > 44100 // 4
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert np.abs(samples).max() > 100  # notes were played, not silence


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
    themes = [json.loads(p.read_text())["theme"] for p in sorted((tmp_path / "walk").glob("*.json"))]
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
