import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from midi_factory import TINY_MODEL, musegan_cli, tiny_config

from musegan import MuseganError
from musegan.export import export_model
from musegan.models import ModelConfig
from musegan.tokenizer import Tokenizer
from musegan.training import AtomicCheckpointIO, GANModule, RunConfig, load_checkpoint, train

TINY_FLAGS = [f"--set=model.{k}={v}" for k, v in TINY_MODEL.items()] + [
    "--set=train.seq_len=48", "--set=train.batch_size=4", "--set=train.adv_seq_len=16",
    "--set=train.num_workers=0", "--set=train.sample_bars=2", "--accelerator=cpu",
    "--adversarial=on",  # every phase, unless a test turns it off
]


@pytest.fixture(scope="module")
def corpus(training_corpus) -> Path:
    """The training corpus of conftest.py (not its four-tune ``corpus``)."""
    return training_corpus


def test_fast_dev_run_trains_every_phase_and_writes_the_run(corpus, tmp_path):
    config = tiny_config()
    config.set("trainer.fast_dev_run", 2)
    run = train(corpus, tmp_path / "run", config)
    info = json.loads((run / "run.json").read_text())
    assert info["epochs"] == 3 and info["phase"] == "adversarial"
    assert info["adversarial_steps"] == 2
    assert {"val/nll", "train/d_acc_real", "train/d_acc_fake", "train/gumbel_beta",
            "train/g_adv", "theme/critic_loss", "train/attribute_order",
            "val/attribute_order"} <= set(info["metrics"])
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 2  # every epoch
    assert list((run / "checkpoints").glob("best-epoch*.ckpt"))
    assert list((run / "logs").glob("events.out.tfevents.*"))
    samples = sorted((run / "samples").glob("*.mid"))
    assert len(samples) == 3 * config.train.samples_per_validation
    assert all(pretty_midi.PrettyMIDI(str(s)) is not None for s in samples)
    assert RunConfig.load(run / "config.yaml").to_dict() == config.to_dict()
    with pytest.raises(MuseganError, match="was a fast_dev_run check"):  # not "trained"
        train(corpus, run, resume=True)
    with pytest.raises(MuseganError, match="holds a fast_dev_run check, not a run to continue"):
        train(corpus, run, config)  # and not "pass resume=True", which is refused


def test_music_metrics_are_logged_and_can_pick_the_best_checkpoint(corpus, tmp_path):
    config = tiny_config(adversarial=False, monitor="val/music/gap")
    config.set("trainer.fast_dev_run", 2)
    run = train(corpus, tmp_path / "run", config)
    metrics = json.loads((run / "run.json").read_text())["metrics"]
    assert {"val/music/gap", "val/music/qualified_note_rate", "val/music/notes_per_bar",
            "val/music/scale_consistency"} <= set(metrics)
    assert 0 <= metrics["val/music/qualified_note_rate"] <= 1 and metrics["val/music/gap"] >= 0
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")
    monitors = [c.get("monitor") for c in state["callbacks"].values() if isinstance(c, dict)]
    assert "val/music/gap" in monitors
    assert export_model(run, tmp_path / "best.safetensors", checkpoint="best").is_file()
    config.set("train.monitor", "val/loudness")
    with pytest.raises(MuseganError, match="val/music/gap"):
        train(corpus, tmp_path / "bad", config)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    config.set("train.monitor", "val/music/gap")
    config.set("train.samples_per_validation", 0)
    with pytest.raises(MuseganError, match="samples_per_validation"):
        train(corpus, tmp_path / "bad", config)


def test_a_file_as_the_run_folder_is_a_clear_error_and_stays_as_it_was(corpus, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    with pytest.raises(MuseganError, match="notes.txt is a file; the run folder must be"):
        train(corpus, taken, tiny_config())
    assert taken.read_text() == "mine"


def test_resume_from_python_continues_a_run_of_other_sizes_with_its_own_config(corpus, tmp_path):
    config = tiny_config(adversarial=False, mle_epochs=2, samples_per_validation=0)
    config.set("trainer.max_epochs", 1)
    config.set("trainer.limit_train_batches", 2)
    run = train(corpus, tmp_path / "run", config)
    saved = run / "config.yaml"
    saved.write_text(saved.read_text().replace("max_epochs: 1", "max_epochs: 2"))
    train(corpus, run, resume=True)  # no config: the run's own, TINY_MODEL sizes included
    info = json.loads((run / "run.json").read_text())
    assert info["epochs"] == 2 and info["resumed"] == 1
    bigger = tiny_config(adversarial=False)
    bigger.set("model.hidden_dim", 2 * TINY_MODEL["hidden_dim"])
    with pytest.raises(MuseganError, match="its own model sizes"):
        train(corpus, run, bigger, resume=True)
    before = saved.read_text()
    with pytest.raises(MuseganError, match="has trained 2 epochs already, and these settings "
                                           r"stop at 2; raise trainer.max_epochs \(to 3"):
        train(corpus, run, resume=True)  # all its epochs are trained: not "trained" again
    assert saved.read_text() == before


@pytest.mark.parametrize(("key", "value", "says"), [
    ("train.batch_size", 0, "train.batch_size must be at least 1; got 0"),
    ("train.lr", -1e-3, "train.lr must be above 0"),
    ("train.token_dropout", 1.5, "train.token_dropout must be at least 0 and at most 1"),
    ("train.transpose", [5, -5], "LOW <= HIGH"),
    ("train.mle_epochs", -1, "train.mle_epochs must be at least 0"),
    ("trainer.devices", 0, "trainer.devices must be auto, a count"),
    ("trainer.num_nodes", 0, "trainer.num_nodes must be at least 1"),
    ("trainer.precision", "banana", "trainer.precision must be one of 32-true"),
    ("trainer.strategy", "banana", "trainer.strategy must be one of auto, ddp"),
    ("trainer.accelerator", "banana", "trainer.accelerator must be one of auto, cpu"),
    ("trainer.limit_train_batches", 2.5, "a count of batches .* or a share in"),
    ("trainer.limit_val_batches", 0, "validates every epoch to pick its checkpoints"),
    ("train.monitor", "val/loudness", "train.monitor must be one of val/nll"),
])
def test_a_setting_that_makes_no_sense_is_refused_before_anything_is_written(
        corpus, tmp_path, key, value, says):
    config = tiny_config()
    config.set(key, value)
    config.set("trainer.fast_dev_run", 1)  # which must not hide a bad count either
    with pytest.raises(MuseganError, match=says):
        train(corpus, tmp_path / "run", config)
    assert not (tmp_path / "run").exists()


def test_a_start_that_fails_before_its_first_checkpoint_leaves_the_folder_as_it_was(
        corpus, tmp_path, monkeypatch):
    def broken(self, tokens, batch_idx):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(GANModule, "training_step", broken)
    config = tiny_config(adversarial=False)
    config.set("trainer.fast_dev_run", 1)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(corpus, tmp_path / "new", config)
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="out of memory"):
        train(corpus, mine, config)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]  # no config.yaml: trainable


def test_model_settings_are_the_model_config_less_what_the_tokenizer_gives():
    config = RunConfig()
    assert set(config.to_dict()["model"]) == set(ModelConfig().sizes())
    assert "vocab_size" not in config.to_dict()["model"]
    with pytest.raises(MuseganError, match="unknown setting 'model.vocab_size'"):
        config.set("model.vocab_size", 10)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_professor_forcing_trains_the_generator_on_its_own_behaviour(corpus, tmp_path):
    config = tiny_config(adversarial_mode="professor", samples_per_validation=0)
    config.set("trainer.fast_dev_run", 2)
    run = train(corpus, tmp_path / "run", config)
    info = json.loads((run / "run.json").read_text())
    assert info["phase"] == "adversarial" and info["adversarial_steps"] == 2
    assert {"train/d_acc_real", "train/d_acc_fake", "train/g_adv"} <= set(info["metrics"])
    weights = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert any(k.startswith("behaviour.") for k in weights)  # kept for resuming
    exported = export_model(run, tmp_path / "model.safetensors")
    from safetensors import safe_open
    with safe_open(str(exported), "pt") as f:
        assert not any(k.startswith("behaviour.") for k in f.keys())  # never shipped


def test_validation_samples_only_every_nth_epoch_and_at_the_last(corpus, tmp_path):
    config = tiny_config(adversarial=False, mle_epochs=3, sample_every=2,
                         samples_per_validation=1)
    run = train(corpus, tmp_path / "run", config)
    epochs = sorted({p.name.split("_")[0] for p in (run / "samples").glob("*.mid")})
    assert epochs == ["epoch001", "epoch002"]  # the 2nd validation, and the last
    with pytest.raises(MuseganError, match="sample_every=1 or monitor val/nll"):
        train(corpus, tmp_path / "other", tiny_config(sample_every=2, monitor="val/music/gap"))


def test_an_unknown_adversarial_mode_is_refused(corpus, tmp_path):
    with pytest.raises(MuseganError, match="adversarial_mode.*gumbel, professor"):
        train(corpus, tmp_path / "run", tiny_config(adversarial_mode="wgan"))


def test_free_run_samples_tokens_and_keeps_gradients_through_the_outputs():
    tok = Tokenizer()
    net = GANModule(ModelConfig(**TINY_MODEL).sizes(), {}, tok.to_dict()).net
    theme = net.mapping.sample(3)
    ids, outputs = net.generator.free_run(theme, 5, torch.full((3,), tok.BOS))
    assert ids.shape == (3, 5) and outputs.shape == (3, 5, TINY_MODEL["hidden_dim"])
    outputs.sum().backward()
    assert net.generator.lstm.weight_hh_l0.grad.abs().sum() > 0


def test_adversarial_off_gives_the_mle_only_model(corpus, tmp_path):
    config = tiny_config(adversarial=False, mle_epochs=2)
    config.set("trainer.limit_train_batches", 2)
    run = train(corpus, tmp_path / "run", config)
    info = json.loads((run / "run.json").read_text())
    assert info["epochs"] == 2 and info["phase"] == "mle" and info["adversarial_steps"] == 0
    assert "train/d_loss" not in info["metrics"]


def test_fine_tuning_from_a_model_file_keeps_its_mapping_while_a_fresh_critic_learns(
        corpus, tmp_path):
    from musegan.modelfile import load_model

    config = tiny_config(adversarial=False, samples_per_validation=0)
    config.set("trainer.fast_dev_run", 1)
    start = export_model(train(corpus, tmp_path / "a", config), tmp_path / "a.safetensors")
    tuned = tiny_config(samples_per_validation=0, init_from=str(start))
    tuned.set("trainer.fast_dev_run", 2)
    run = train(corpus, tmp_path / "b", tuned)
    weights = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    before = load_model(start).net.mapping.state_dict()
    assert all(torch.equal(weights[f"net.mapping.{k}"], v) for k, v in before.items())
    assert not torch.equal(weights["net.generator.head.weight"],
                           load_model(start).net.generator.head.weight)  # it did train
    other = tiny_config(init_from=str(start))
    other.set("model.hidden_dim", 24)
    with pytest.raises(MuseganError, match="its sizes differ"):
        train(corpus, tmp_path / "c", other)


def test_training_is_quiet_unless_verbose(corpus, tmp_path):
    args = ["train", str(corpus), "--out", str(tmp_path / "run"), *TINY_FLAGS,
            "--fast-dev-run", "1"]
    done = musegan_cli(*args, timeout=300)
    assert done.returncode == 0, done.stderr
    for noise in ("Tip:", "GPU available", "LeafSpec", "logging interval", "\r"):
        assert noise not in done.stdout + done.stderr, noise
    assert "epoch 1/3 (mle): train/nll" in done.stdout  # a plain line per epoch, not a bar
    loud = musegan_cli(*args[:3], str(tmp_path / "loud"), *args[4:], "--verbose", timeout=300)
    assert loud.returncode == 0 and "GPU available" in loud.stdout + loud.stderr


def test_checkpoint_saves_are_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", lambda obj, f: (f.write(b"half a checkpoint"), killed()))
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1  # the previous checkpoint, intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left


def kill_9_after(args: list[str], run: Path, epoch: int) -> int:
    """Start ``musegan train ARGS``, SIGKILL it once its last checkpoint is at ``epoch``
    or later; returns the epoch of the checkpoint that survived."""
    process = subprocess.Popen([sys.executable, "-m", "musegan.cli", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if last.exists() and load_checkpoint(last)["epoch"] >= epoch:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return load_checkpoint(last)["epoch"]  # the checkpoint survived the kill intact


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_continues_where_it_stopped(corpus, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(corpus), "--out", str(run), *TINY_FLAGS, "--adversarial", "off",
            "--mle-epochs", "40", "--limit-train-batches", "3", "--limit-val-batches", "1",
            "--set=train.samples_per_validation=0"]
    killed_at = kill_9_after(args, run, 2)
    assert 2 <= killed_at < 39, "the run finished or never checkpointed before the kill"
    so_far = json.loads((run / "run.json").read_text())  # written at every epoch's end
    assert killed_at <= so_far["epochs"] <= killed_at + 2 and so_far["resumed"] == 0

    result = musegan_cli("train", str(corpus), "--out", str(run), "--resume", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((run / "run.json").read_text())
    assert info["epochs"] == 40 and info["resumed"] == 1
    assert info["wall_seconds"] > so_far["wall_seconds"]
    # Three optimizers step per batch in the MLE phase (generator, critic, mapping):
    # resuming restored the step count, so the total is that of an unbroken run.
    assert info["optimizer_steps"] == 40 * 3 * 3

    again = musegan_cli("train", str(corpus), "--out", str(run))
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.slow
def test_a_run_killed_in_its_adversarial_phase_resumes_there(corpus, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(corpus), "--out", str(run), *TINY_FLAGS, "--mle-epochs", "1",
            "--adv-epochs", "20", "--set=train.d_pretrain_epochs=1",
            "--set=train.d_win_accuracy=1",  # D always steps: a fixed count to check
            "--limit-train-batches", "2", "--limit-val-batches", "1",
            "--set=train.samples_per_validation=0"]
    killed_at = kill_9_after(args, run, 4)  # epochs 0 MLE, 1 D pre-training, 2- adversarial
    assert 4 <= killed_at < 21, "the run finished or never reached its adversarial phase"
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["musegan"]["adv_steps_done"] > 0

    result = musegan_cli("train", str(corpus), "--out", str(run), "--resume", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((run / "run.json").read_text())
    assert info["epochs"] == 22 and info["phase"] == "adversarial" and info["resumed"] == 1
    # The Gumbel schedule's step count came back with the weights: an unbroken run's.
    assert info["adversarial_steps"] == 20 * 2


@pytest.mark.slow
def test_two_process_ddp_on_cpu_steps_both_ranks_and_checkpoints_once(corpus, tmp_path):
    run = tmp_path / "ddp"
    result = musegan_cli("train", str(corpus), "--out", str(run), *TINY_FLAGS,
                         "--devices", "2", "--strategy", "ddp", "--fast-dev-run", "2",
                         timeout=300, process=True)  # Lightning re-runs the command per rank
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = sorted((run / "logs" / "ranks").glob("rank*.json"))
    assert [r.name for r in ranks] == ["rank0.json", "rank1.json"]
    for rank in ranks:
        info = json.loads(rank.read_text())
        assert info["world_size"] == 2 and info["batches_trained"] > 0
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["best-epoch002.ckpt", "last.ckpt"]


def tiny_module(corpus, **train) -> GANModule:
    """A GANModule of the tiny model with no Trainer: backward and clipping by hand."""
    module = GANModule(model=TINY_MODEL, train=train,
                       tokenizer=__import__("musegan").Corpus(corpus).tokenizer.to_dict())
    module.manual_backward = lambda loss: loss.backward()  # no Trainer attached here
    module.clip_gradients = lambda *args, **kwargs: None
    return module


def test_non_finite_losses_are_skipped_then_stop_training(corpus):
    state_module = tiny_module(corpus, max_bad_steps=3)
    optimizer = torch.optim.SGD(state_module.net.generator.parameters(), lr=1.0)
    before = [p.clone() for p in state_module.net.generator.parameters()]
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        state_module._step(optimizer, torch.tensor(float("nan")))
        state_module._step(optimizer, torch.tensor(float("inf")))
    assert all(torch.equal(a, b)
               for a, b in zip(before, state_module.net.generator.parameters(), strict=True))
    # Another optimizer stepping fine does not reset this one's count.
    other = torch.optim.SGD(state_module.net.mapping.parameters(), lr=0.0)
    state_module._step(other, state_module.net.mapping.sample(2).sum() * 0)
    with pytest.warns(RuntimeWarning), pytest.raises(MuseganError, match="training diverged"):
        state_module._step(optimizer, torch.tensor(float("nan")))


def test_on_a_gpu_steps_are_skipped_on_the_device_and_looked_at_when_logging(corpus,
                                                                              monkeypatch):
    """Where deciding on the host would stall a GPU, a non-finite loss or a sit-out skips
    the fused optimizer's update on the device (found_inf), with no host sync; the
    non-finite losses are counted there and looked at on logging steps. (On this CPU the
    device path is forced.)"""
    monkeypatch.setattr(GANModule, "_skips_on_device", lambda self, optimizer, loss: True)
    module = tiny_module(corpus, max_bad_steps=3)
    generator = module.net.generator
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.1, fused=True)

    def loss(value: float = 1.0) -> torch.Tensor:
        return generator.head.bias.sum() * value

    module._step(optimizer, loss())
    stepped = [p.clone() for p in generator.parameters()]
    steps = optimizer.state[generator.head.bias]["step"].clone()
    module._step(optimizer, loss(float("nan")))  # skipped, and nothing said yet
    module._step(optimizer, loss(), sit_out=torch.tensor(True))  # skipped: sitting out
    assert all(torch.equal(a, b) for a, b in zip(stepped, generator.parameters(), strict=True))
    assert torch.equal(optimizer.state[generator.head.bias]["step"], steps)
    assert generator.head.bias.grad is not None  # the backward pass ran all the same
    with pytest.warns(RuntimeWarning, match="1 step skipped"):
        module._look_at_bad_steps()
    module._step(optimizer, loss())
    assert not torch.equal(stepped[-1], generator.head.bias)  # a finite loss steps
    for _ in range(3):
        module._step(optimizer, loss(float("inf")))
    with pytest.warns(RuntimeWarning, match="3 steps skipped"), \
            pytest.raises(MuseganError, match="training diverged: 3 non-finite"):
        module._look_at_bad_steps()


def test_deciding_steps_on_the_device_trains_the_same_weights(corpus, tmp_path, monkeypatch):
    """The GPU's way of skipping steps (every backward pass run, the update skipped on the
    device) trains exactly what the CPU's way does, through every phase, the
    discriminator sitting out in the adversarial one."""
    config = tiny_config(mle_epochs=1, d_pretrain_epochs=1, adv_epochs=1,
                         d_win_accuracy=0.4, samples_per_validation=0)
    config.set("trainer.limit_train_batches", 3)
    config.set("trainer.limit_val_batches", 1)
    weights = []
    for on_device in (False, True):
        monkeypatch.setattr(GANModule, "_skips_on_device",
                            lambda self, optimizer, loss, on=on_device: on)
        run = tmp_path / f"run-{on_device}"
        train(corpus, run, config)
        weights.append(load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_bf16_on_a_cpu_without_bf16_is_a_clear_error(corpus, tmp_path):
    from musegan.training import cpu_supports_bf16_lstm

    if cpu_supports_bf16_lstm():
        pytest.skip("this CPU runs bf16 LSTMs (AMX or AVX512-BF16)")
    config = tiny_config()
    config.set("trainer.precision", "bf16-mixed")
    with pytest.raises(MuseganError, match="needs a CPU with AMX or AVX512-BF16"):
        train(corpus, tmp_path / "run", config)


def test_bf16_mixed_trains_every_phase_where_the_cpu_runs_bf16(corpus, tmp_path):
    # (Lightning refuses to clip a fused optimizer's gradients under mixed precision, for
    # fear of a loss scaler bf16 does not have: the trainer clips them itself there.)
    from musegan.training import cpu_supports_bf16_lstm

    if not cpu_supports_bf16_lstm():
        pytest.skip("this CPU has neither AMX nor AVX512-BF16: bf16 LSTMs do not run")
    config = tiny_config()
    config.set("trainer.precision", "bf16-mixed")
    config.set("trainer.fast_dev_run", 2)
    run = train(corpus, tmp_path / "run", config)
    info = json.loads((run / "run.json").read_text())
    assert info["epochs"] == 3 and info["phase"] == "adversarial"
    weights = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(bool(torch.isfinite(w).all()) for w in weights.values() if w.is_floating_point())
    from musegan.sampling import Sampler

    pieces = Sampler.from_pretrained(run).generate(n=2, bars=2, seed=0)
    assert all(piece.instruments and piece.instruments[0].notes for piece in pieces)


def test_with_no_data_it_prepares_the_bach_chorales_and_trains(tmp_path, monkeypatch):
    import musegan.prepare

    prepare = musegan.prepare.prepare_corpus
    monkeypatch.setattr(musegan.prepare, "prepare_corpus",  # 4 chorales keep the test short
                        lambda sources, out, **kw: prepare(sources, out, limit=4, workers=1, **kw))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = tiny_config()
    config.set("trainer.fast_dev_run", 1)
    run = train(None, tmp_path / "run", config)
    corpus = tmp_path / "cache" / "musegan" / "corpora" / "bach"
    assert (corpus / "corpus.json").is_file()
    assert json.loads((run / "run.json").read_text())["data"] == str(corpus.resolve())


def test_music_gap_is_in_validation_stds_and_skips_what_is_undefined():
    from musegan.callbacks import MIN_MUSIC_STD, music_gap

    reference = {"notes_per_bar": (6.0, 2.0), "empty_bar_rate": (0.0, 0.0),
                 "tonal": (float("nan"), 0.0)}
    generated = {"notes_per_bar": 10.0, "empty_bar_rate": 0.1, "tonal": 3.0}
    assert music_gap(generated, reference) == pytest.approx((2.0 + 0.1 / MIN_MUSIC_STD) / 2)
    assert music_gap({"notes_per_bar": 6.0}, reference) == 0
    assert np.isnan(music_gap({}, reference))


def test_theme_attribute_settings_are_checked_when_training_starts():
    tokenizer = Tokenizer().to_dict()
    model = {**TINY_MODEL, "theme_dim": 4}
    with pytest.raises(MuseganError, match="unknown theme attribute 'loudness'"):
        GANModule(model, {"theme_attributes": ["loudness"]}, tokenizer)
    with pytest.raises(MuseganError, match="lists 6 attributes but themes have 4 numbers"):
        GANModule(model, {}, tokenizer)
    assert GANModule(model, {"theme_attributes": []}, tokenizer).attribute_loss(None, None) is None
    assert GANModule(model, {"attribute_weight": 0.0}, tokenizer).window_attributes is None


def test_train_fits_its_windows_to_the_corpus_and_says_so(corpus, tmp_path):
    flags = [f for f in TINY_FLAGS if "seq_len" not in f]
    result = musegan_cli("train", str(corpus), "--out", str(tmp_path / "run"), *flags,
                         "--adversarial", "off", "--fast-dev-run", "1", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from musegan.config import fit_windows
    from musegan.corpus import Corpus

    per_bar = Corpus(corpus).tokens_per_bar()
    seq_len, adv_seq_len = fit_windows(per_bar)
    assert seq_len == 64 * -(-8 * per_bar // 64) >= 256
    assert f"windows: seq_len {seq_len}, adv_seq_len {adv_seq_len}" in result.stderr
    saved = RunConfig.load(tmp_path / "run" / "config.yaml").train
    assert (saved.seq_len, saved.adv_seq_len) == (seq_len, adv_seq_len)


def test_a_judge_passes_gradients_to_what_it_judges_but_takes_none_itself():
    from musegan.training import judging

    judge = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    made = torch.randn(5, 3, requires_grad=True)
    with judging(judge):
        score = judge(made).mean()
    score.backward()
    assert made.grad is not None and made.grad.abs().sum() > 0
    assert all(p.grad is None for p in judge.parameters())
    assert all(p.requires_grad for p in judge.parameters())  # given back afterwards


def test_the_epoch_line_shows_what_its_phase_measured():
    from types import SimpleNamespace

    from musegan.callbacks import epoch_line

    trainer = SimpleNamespace(callback_metrics={"train/nll": torch.tensor(1.25),
                                                "train/d_acc_fake": torch.tensor(0.5)},
                              max_epochs=3, current_epoch=1)
    line = epoch_line(trainer, SimpleNamespace(phase="d_pretrain"), 2.0)
    assert line == "epoch 2/3 (d_pretrain): train/d_acc_fake 0.500; 2 s"  # no stale MLE nll
    assert "train/nll 1.250" in epoch_line(trainer, SimpleNamespace(phase="mle"), 2.0)


def test_ddp_over_several_devices_finds_unused_parameters_however_it_is_asked_for():
    from musegan.config import TrainerSettings
    from musegan.training import ddp_strategy

    for settings, strategy in [
            ({"strategy": "ddp"}, "ddp_find_unused_parameters_true"),
            ({"strategy": "ddp_spawn"}, "ddp_spawn_find_unused_parameters_true"),
            ({"strategy": "auto", "accelerator": "cpu", "devices": 2},
             "ddp_find_unused_parameters_true"),  # Lightning would pick plain DDP
            ({"strategy": "auto", "devices": "0,1"}, "ddp_find_unused_parameters_true"),
            ({"strategy": "auto", "num_nodes": 2}, "ddp_find_unused_parameters_true"),
            ({"strategy": "auto", "accelerator": "cpu", "devices": 1}, "auto"),
            ({"strategy": "fsdp"}, "fsdp")]:
        assert ddp_strategy(TrainerSettings(**settings)) == strategy, settings


@pytest.mark.parametrize(("key", "value", "says"), [
    ("trainer.precision", "64-true", "precision 64-true is not one musegan's networks run in"),
    ("trainer.precision", "16-mixed", "precision 16-mixed needs a GPU"),
])
def test_a_precision_musegan_cannot_train_in_is_refused_before_anything_is_written(
        corpus, tmp_path, key, value, says):
    config = tiny_config()
    config.set(key, value)
    config.set("trainer.accelerator", "cpu")
    with pytest.raises(MuseganError, match=says):
        train(corpus, tmp_path / "run", config)
    assert not (tmp_path / "run").exists()


def test_a_strategy_object_is_refused_as_a_setting(corpus, tmp_path):
    from lightning.pytorch.strategies import SingleDeviceStrategy

    config = tiny_config()
    config.trainer.strategy = SingleDeviceStrategy("cpu")  # config.yaml holds names only
    with pytest.raises(MuseganError, match="takes a strategy's name"):
        train(corpus, tmp_path / "run", config)


def test_a_run_stopped_before_its_first_checkpoint_says_there_is_nothing_to_resume(
        corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(tiny_config().to_yaml())  # as a SIGKILL leaves it
    with pytest.raises(MuseganError, match="saved no checkpoint .* nothing to resume"):
        train(corpus, run, tiny_config())
