import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from midi_factory import make_score, random_corpus, random_melody
from musegan import MuseganError, Sampler, Tokenizer
from musegan.evaluate import CopyIndex, melody_tokens
from musegan.export import add_steering, save_model
from musegan.midi import score_to_pretty_midi
from musegan.models import ModelConfig, MuseGAN
from musegan.steer import ATTRIBUTES, attributes, fit_directions

TOK = Tokenizer()


def midi(notes, **kwargs):
    """notes: (start quarter, length quarter, pitch)."""
    return score_to_pretty_midi(make_score(
        [(0, False, [(int(s * 480), int(d * 480), p, 80) for s, d, p in notes])], **kwargs))


def test_attributes_have_known_values():
    on_beat_scale = midi([(i, 1, p) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])
    a = attributes(on_beat_scale)
    assert a["density"] == 4 and a["register"] == pytest.approx(np.mean([60, 62, 64, 65, 67, 69, 71, 72]))
    assert a["range"] == 12 and a["syncopation"] == 0 and a["leaps"] == 0
    off_beat_leaps = midi([(i + 0.5, 0.5, 60 + 7 * (i % 2)) for i in range(8)])
    b = attributes(off_beat_leaps)
    assert b["syncopation"] == 1 and b["leaps"] == 1 and b["entropy"] == pytest.approx(1.0)
    index = CopyIndex([melody_tokens(on_beat_scale)], n=4)
    assert attributes(on_beat_scale, index)["novelty"] == 0
    assert attributes(off_beat_leaps, index)["novelty"] == 1
    assert set(attributes(on_beat_scale, index)) == set(ATTRIBUTES)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("steer")

    def tune(seed):
        step = (120, 240, 480)[seed % 3]  # 16ths, 8ths or quarters: densities differ
        return random_melody(seed, 7680 // step, step=step, low=55, high=80)

    random_corpus(root, 24, tune)
    torch.manual_seed(0)
    net = MuseGAN(ModelConfig(vocab_size=len(TOK), embed_dim=16, hidden_dim=32, num_layers=1,
                              theme_dim=8, noise_dim=8, mapping_width=16, encoder_dim=16,
                              disc_embed_dim=8, disc_hidden_dim=8))
    with torch.no_grad():  # make the theme matter a lot, so directions have something to find
        net.generator.init_state.weight.mul_(8)
        net.generator.head.bias[TOK.BAR] += 3.0  # and keep bars short, so the test is quick
    model = save_model(net, TOK, root / "m.safetensors", card={"name": "tiny"})
    return root, model


def fit(model: Path, corpus: Path, names):
    from musegan.corpus import Corpus

    data = Corpus(corpus)
    real = [data.tokenizer.decode(data.tokens(i).tolist()) for i in data.split("train")]
    train = [melody_tokens(m) for m in real]
    return fit_directions(Sampler.from_pretrained(model), real, names, train_melodies=train,
                          themes=32, bars=2, calibration_themes=8)


def test_directions_survive_export_and_load_and_steer_reproducibly(setup, tmp_path):
    root, model = setup
    directions, report = fit(model, root / "corpus", ["density", "register"])
    methods = {"regression", "contrast", "joint", "ganalyze", "ganalyze-0.3", "ganalyze-0.1"}
    assert set(report["density"]) == methods | {"chosen"}
    assert len(report["density"]["chosen"]) == 2 and set(report["density"]["chosen"]) <= methods
    assert set(report["assessor"]) == {"density", "register"}
    assert set(report["assessor"]["density"]) == {"ridge", "assessor"}
    for direction in directions.values():  # each side calibrated on its own
        assert direction.steps.shape == (2, 8) and direction.bars == 2
        assert direction.steps.norm(dim=1).max() <= 8 ** 0.5 + 1e-4  # never longer than a theme
    # (whether a direction really moves its attribute is tested on the bundled model:
    # this random tiny model has nothing to find)
    steered = add_steering(model, directions, tmp_path / "steered.safetensors")
    sampler = Sampler.from_pretrained(steered)
    assert set(sampler.steering) == {"density", "register"}
    torch.testing.assert_close(sampler.steering["density"]["steps"], directions["density"].steps)
    assert sampler.steering["register"]["effect"] == pytest.approx(list(directions["register"].effect), abs=1e-3)
    assert "## Steering directions" in steered.with_suffix(".md").read_text()
    theme = sampler.sample_theme(2, seed=1)
    # alpha 0 leaves the theme where it was (up to the layer norm's epsilon)
    torch.testing.assert_close(sampler.steer(theme, density=0.0), theme, atol=2e-3, rtol=0)
    moved = sampler.steer(theme, density=1.5, register=-1)
    step = theme + 1.5 * directions["density"].steps[1] + directions["register"].steps[0]
    torch.testing.assert_close(moved, sampler.on_theme_space(step))  # back onto the theme sphere
    torch.testing.assert_close(moved.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
    a = sampler.generate_ids(n=2, bars=2, seed=3, theme=moved)
    assert a == sampler.generate_ids(n=2, bars=2, seed=3, theme=sampler.steer(theme, density=1.5, register=-1))
    with pytest.raises(MuseganError, match="density, register"):
        sampler.steer(theme, loudness=1)
    with pytest.raises(MuseganError, match="--force"):
        add_steering(model, directions, steered)
    # the unsteered model still loads, and knows no directions
    assert Sampler.from_pretrained(model).steering == {}


def test_cli_steer_fit_list_and_generate(setup, tmp_path):
    root, model = setup
    out = tmp_path / "s.safetensors"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "musegan.cli", *args], capture_output=True,
                              text=True)

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
    assert sidecar["settings"]["steer"] == {"density": 1.5}
    unknown = run("generate", "--model", str(out), "--steer", "loudness=1", "--out",
                  str(tmp_path / "x"))
    assert unknown.returncode == 2 and "density, leaps" in unknown.stderr
    assert not (tmp_path / "x").exists()  # nothing written
    no_data = run("steer", "--fit", str(model))
    assert no_data.returncode == 2 and "--data" in no_data.stderr
    in_place = run("steer", "--fit", str(out), "--data", str(root / "corpus"))
    assert in_place.returncode == 2 and "--force" in in_place.stderr  # refused before fitting
    assert "calibrating" not in in_place.stderr


def test_excerpts_cut_real_pieces_to_the_length_steering_is_calibrated_at():
    from musegan.steer import excerpts

    six_bars = midi([(i, 1, 60 + i % 12) for i in range(24)])  # 4/4, one note a beat
    pieces = excerpts(six_bars, 2)
    assert len(pieces) == 3
    for k, piece in enumerate(pieces):
        pitches = [n.pitch for n in piece.instruments[0].notes]
        assert pitches == [60 + i % 12 for i in range(8 * k, 8 * k + 8)]
        assert piece.instruments[0].notes[0].start == 0
        assert attributes(piece)["density"] == 4  # two whole bars, not more
    assert excerpts(six_bars, 8) == [six_bars]  # shorter than an excerpt: kept whole


def test_models_with_one_vector_per_direction_still_steer(setup, tmp_path):
    """Files written before per-side calibration hold one vector and one effect."""
    from safetensors.torch import load_file, safe_open, save_file

    root, model = setup
    tensors = load_file(str(model))
    with safe_open(str(model), framework="pt") as file:
        metadata = dict(file.metadata())
    vector = torch.linspace(-1, 1, 8)
    tensors["steering.density"] = vector
    metadata["steering"] = json.dumps({"density": {"effect": 0.9, "real_mean": 6.0, "real_std": 1.5,
                                                   "method": "regression"}})
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=metadata)
    sampler = Sampler.from_pretrained(old)
    assert sampler.steering["density"]["effect"] == [-0.9, 0.9]
    theme = sampler.sample_theme(1, seed=0)
    torch.testing.assert_close(sampler.steer(theme, density=-2),
                               sampler.on_theme_space(theme - 2 * vector))


def test_each_side_keeps_the_candidate_that_best_keeps_steerings_promises():
    from musegan.steer import _Side, shortcomings

    step = torch.zeros(8)
    on_target_leaky = _Side("a", step, 0.9, 0.8, 0.05)
    on_target_clean = _Side("b", step, 0.7, 0.1, 0.05)
    weak_clean = _Side("c", step, 0.3, 0.0, 0.0)
    unmusical = _Side("d", step, 1.0, 0.0, 0.20)
    ranked = sorted([weak_clean, unmusical, on_target_leaky, on_target_clean], key=lambda s: s.rank(1))
    assert [s.method for s in ranked] == ["b", "a", "d", "c"]
    assert _Side("e", step, -0.9, 0.1, 0.0).rank(-1) < _Side("f", step, 0.9, 0.1, 0.0).rank(-1)
    good = {"effect": [-0.9, 1.1], "leakage": 0.2, "overlap_drop": 0.03}
    assert shortcomings(good) == []
    bad = {"effect": [-0.2, 0.8], "leakage": 0.9, "overlap_drop": 0.3}
    assert len(shortcomings(bad)) == 3


def test_a_theme_number_trained_to_follow_an_attribute_is_a_candidate_direction(setup):
    """Models trained with attribute-regularised themes (musegan.regularize) offer each
    attribute's own theme number as a direction, scaled by how much it moves it."""
    from musegan.steer import _candidates

    _, model = setup
    sampler = Sampler.from_pretrained(model)
    themes = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    noise = np.random.default_rng(0).normal(0, 0.1, (256, 2))
    values = np.stack([2 * themes[:, 1].numpy(), -themes[:, 0].numpy()], 1) + noise
    candidates, _ = _candidates(sampler, themes, values, ["register", "density"], 0,
                                lambda message: None, axes={"register": 1, "density": 0})
    np.testing.assert_allclose(candidates["register"]["axis"], np.eye(8)[1] / 2, atol=0.02)
    assert "axis" not in candidates["density"]  # its number runs the wrong way: no candidate
    without, _ = _candidates(sampler, themes, values, ["register", "density"], 0, lambda m: None)
    assert "axis" not in without["register"]
