"""Model files and checkpoints (musegan.export): export and load, fp16, model cards,
steering directions in the file, and refusing anything that is not a model."""

import json
import os
from pathlib import Path

import pytest
import torch
from midi_factory import musegan_cli, tiny_config

from musegan import MuseganError, Sampler
from musegan.evaluate import melody_tokens
from musegan.export import export_model
from musegan.modelfile import add_steering, load_model
from musegan.regularize import ATTRIBUTES as THEME_ATTRIBUTES
from musegan.steer import fit_directions
from musegan.training import GANModule, load_checkpoint, train


@pytest.fixture(scope="module")
def trained_run(training_corpus, tmp_path_factory) -> Path:
    config = tiny_config()
    config.set("trainer.fast_dev_run", 2)
    return train(training_corpus, tmp_path_factory.mktemp("runs") / "run", config)


@pytest.mark.parametrize("fp16", [False, True])
def test_export_and_load_give_the_same_logits_with_no_pickle(trained_run, tmp_path, fp16):
    path = export_model(trained_run, tmp_path / "model.safetensors", fp16=fp16,
                        credit="tiny test corpus")
    assert path.read_bytes()[8:9] == b"{"  # safetensors: a length, then a JSON header
    model = load_model(path)
    state = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    module = GANModule(**state["hyper_parameters"])
    module.load_state_dict(state["state_dict"])
    module.eval()
    tokens = torch.randint(1, len(model.tokenizer), (2, 12))
    theme = module.net.mapping.sample(2, generator=torch.Generator().manual_seed(0))
    want, _ = module.net.generator(tokens, theme)
    got, _ = model.net.generator(tokens, theme)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-2 if fp16 else 1e-6)
    assert model.tokenizer == module.tokenizer
    best = export_model(trained_run, tmp_path / "best.safetensors", checkpoint="best")
    assert load_model(best).card["checkpoint"].startswith("best-epoch")
    assert model.card["credit"] == "tiny test corpus"
    # steering finds each attribute's own theme number from the card (musegan.regularize)
    assert model.card["theme_attributes"] == list(THEME_ATTRIBUTES)
    assert load_model(trained_run / "checkpoints" / "last.ckpt").card["theme_attributes"] == \
        list(THEME_ATTRIBUTES)
    assert "validation" in path.with_suffix(".md").read_text()
    assert not any(k.startswith(("discriminator", "critic")) for k in
                   __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(path)))


def test_a_checkpoint_keeps_to_its_corpus_as_its_exported_model_does(trained_run, tmp_path):
    exported = load_model(export_model(trained_run, tmp_path / "model.safetensors"))
    unseen = exported.card["unseen_tokens"]
    assert unseen  # the tiny corpus lacks most programs, meters and tempos
    assert not (trained_run / "model.safetensors").exists()  # the folder loads last.ckpt
    for path in (trained_run / "checkpoints" / "last.ckpt", trained_run):
        sampler = Sampler.from_pretrained(path)
        assert sampler.model.card["unseen_tokens"] == unseen
        assert sampler.meters == Sampler.from_pretrained(tmp_path / "model.safetensors").meters
        written = {t for row in sampler.generate_ids(n=3, bars=2, seed=1) for t in row}
        assert not written & set(unseen)
    # a checkpoint away from its run (no run.json beside it) has no corpus to keep to
    moved = tmp_path / "elsewhere" / "last.ckpt"
    moved.parent.mkdir()
    moved.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes())
    assert "unseen_tokens" not in load_model(moved).card


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc here")
def test_exporting_where_nothing_can_be_written_is_one_line(trained_run):
    done = musegan_cli("export", str(trained_run), "--out", "/proc/musegan-test.safetensors")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("musegan export: error: cannot write to /proc (No such "
                                   "file or directory); choose another --out"), done.stderr


def test_export_never_replaces_a_model_card_unasked(trained_run, tmp_path):
    (tmp_path / "mine.md").write_text("my notes")
    with pytest.raises(MuseganError, match="mine.md exists; pass force=True"):
        export_model(trained_run, tmp_path / "mine.safetensors")
    assert (tmp_path / "mine.md").read_text() == "my notes"
    assert not (tmp_path / "mine.safetensors").exists()
    export_model(trained_run, tmp_path / "mine.safetensors", force=True)
    assert "my notes" not in (tmp_path / "mine.md").read_text()


def test_a_checkpoint_crafted_to_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Exploit()}, evil)
    with pytest.raises(MuseganError, match="refused to load"):
        load_checkpoint(evil)
    with pytest.raises(MuseganError, match="refused to load"):
        export_model(evil, tmp_path / "out.safetensors")
    assert not marker.exists()
    result = musegan_cli("export", str(evil), "--out", str(tmp_path / "x.safetensors"))
    assert result.returncode == 2 and "refused to load" in result.stderr
    assert not marker.exists()


def test_load_model_rejects_files_that_are_not_models(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(MuseganError, match="not a musegan model"):
        load_model(tmp_path / "junk.safetensors")


# ---------------------------------------------------------------- steering directions

def fit(model: Path, corpus: Path, names):
    from musegan.corpus import Corpus

    data = Corpus(corpus)
    real = [data.tokenizer.decode(data.tokens(i).tolist()) for i in data.split("train")]
    train = [melody_tokens(m) for m in real]
    return fit_directions(Sampler.from_pretrained(model), real, names, train_melodies=train,
                          themes=32, bars=2, calibration_themes=8)


@pytest.mark.slow
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
    assert sampler.steering["register"]["effect"] == pytest.approx(
        list(directions["register"].effect), abs=1e-3)
    assert "## Steering directions" in steered.with_suffix(".md").read_text()
    theme = sampler.sample_theme(2, seed=1)
    # alpha 0 leaves the theme where it was (up to the layer norm's epsilon)
    torch.testing.assert_close(sampler.steer(theme, density=0.0), theme, atol=2e-3, rtol=0)
    moved = sampler.steer(theme, density=1.5, register=-1)
    step = theme + 1.5 * directions["density"].steps[1] + directions["register"].steps[0]
    torch.testing.assert_close(moved, sampler.on_theme_space(step))  # back onto the theme sphere
    torch.testing.assert_close(moved.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
    a = sampler.generate_ids(n=2, bars=2, seed=3, theme=moved)
    assert a == sampler.generate_ids(n=2, bars=2, seed=3,
                                     theme=sampler.steer(theme, density=1.5, register=-1))
    with pytest.raises(MuseganError, match="density, register"):
        sampler.steer(theme, loudness=1)
    with pytest.raises(MuseganError, match="force=True"):
        add_steering(model, directions, steered)
    # the unsteered model still loads, and knows no directions
    assert Sampler.from_pretrained(model).steering == {}


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
