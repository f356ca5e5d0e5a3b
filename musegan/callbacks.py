"""Lightning callbacks of a training run: what it measures and records besides training.

* ``MusicMetrics``: at each validation, writes a few pieces with the sampler's decoder and
  logs a cheap subset of ``musegan evaluate`` on them (``val/music/*``), their distance
  from the validation windows (``val/music/gap``) and their diversity.
* ``RandomState``: saves and restores every random number generator with the checkpoint,
  so a resumed run draws what the uninterrupted run would have.
* ``RunInfo``: keeps RUN/run.json current at the end of every epoch.
"""

from __future__ import annotations

import json
import platform
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import numpy as np
import torch

from musegan.decoding import decode
from musegan.metrics import QUICK_FEATURES, distinct_ngrams, piece_features, quick_metrics
from musegan.runs import RUN_INFO

if TYPE_CHECKING:
    from musegan.training import GANModule

MUSIC_REFERENCE_WINDOWS = 32  # validation windows the music metrics are compared with
MIN_MUSIC_STD = 0.05  # the smallest spread val/music/gap divides by


def music_gap(generated: dict[str, float], reference: dict[str, tuple[float, float]]) -> float:
    """Mean distance of the samples' quick metrics from the validation data's, in units of
    the validation data's standard deviation (0 = alike; NaN features are left out). The
    std is floored at MIN_MUSIC_STD: a feature that never varies in the data (real tunes
    have no empty bars) would otherwise turn any difference into an enormous gap."""
    gaps = [abs(generated[name] - mean) / max(std, MIN_MUSIC_STD)
            for name, (mean, std) in reference.items()
            if np.isfinite(generated.get(name, np.nan)) and np.isfinite(mean)]
    return float(np.mean(gaps)) if gaps else float("nan")


class MusicMetrics(L.Callback):
    """Music figures of validation samples, logged at the end of every validation.

    Keeps the first ``MUSIC_REFERENCE_WINDOWS`` validation windows as the reference, writes
    ``train.samples_per_validation`` pieces of ``train.sample_bars`` bars from sampled
    themes (seeded by the epoch), logs ``val/diversity_4gram``, ``val/music/NAME`` and
    ``val/music/gap``, and on rank 0 writes the pieces to RUN/samples/epochNNN_i.mid.
    """

    def __init__(self) -> None:
        self.reference_windows: list[list[int]] = []
        self._reference: dict[str, tuple[float, float]] | None = None

    def on_validation_batch_end(self, trainer: L.Trainer,  # type: ignore[override]
                                module: GANModule, outputs: Any,
                                batch: torch.Tensor, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if len(self.reference_windows) < MUSIC_REFERENCE_WINDOWS:
            self.reference_windows += batch[:MUSIC_REFERENCE_WINDOWS].tolist()

    def reference(self, module: GANModule) -> dict[str, tuple[float, float]]:
        """Mean and std of each quick metric over validation windows (computed once)."""
        if self._reference is None and self.reference_windows:
            pad = module.tokenizer.PAD
            rows = [[t for t in window if t != pad]
                    for window in self.reference_windows[:MUSIC_REFERENCE_WINDOWS]]
            features = [piece_features(module.tokenizer.decode(row)) for row in rows]
            self._reference = {}
            for name in QUICK_FEATURES:
                values = np.array([f[name] for f in features], dtype=np.float64)
                values = values[np.isfinite(values)]
                self._reference[name] = ((float(values.mean()), float(values.std()))
                                         if len(values) else (float("nan"), 0.0))
        return self._reference or {}

    def on_validation_epoch_end(self, trainer: L.Trainer,  # type: ignore[override]
                                module: GANModule) -> None:
        s = module.settings
        if trainer.sanity_checking or not s.samples_per_validation:
            return
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if (epoch + 1) % max(1, s.sample_every) and not last:
            return
        tokenizer = module.tokenizer
        was_training = module.training
        module.eval()
        generator = torch.Generator(device=module.device).manual_seed(trainer.current_epoch)
        theme = module.net.mapping.sample(s.samples_per_validation, generator=generator,
                                          device=module.device)
        ids = decode(module.net, tokenizer, theme, s.sample_bars, [tokenizer.BOS],
                     generator=generator)
        module.train(was_training)
        module.log("val/diversity_4gram", distinct_ngrams(ids, 4, tokenizer.PAD), sync_dist=True)
        music = quick_metrics([tokenizer.decode(row) for row in ids])
        # Every key on every rank (NaN included): DDP's sync must see the same names.
        logs = {f"val/music/{name}": value for name, value in music.items()}
        logs["val/music/gap"] = music_gap(music, self.reference(module))
        module.log_dict(logs, sync_dist=True)
        if trainer.is_global_zero and trainer.default_root_dir:
            folder = Path(trainer.default_root_dir) / "samples"
            folder.mkdir(parents=True, exist_ok=True)
            for i, row in enumerate(ids):
                score = tokenizer.decode_score(row)
                score.dump_midi(str(folder / f"epoch{trainer.current_epoch:03d}_{i}.mid"))


class RandomState(L.Callback):
    """Every random number generator (torch, CUDA, Python, NumPy) saved in the checkpoint
    under ``checkpoint["musegan"]["rng"]`` as plain types and tensors, so the checkpoint
    still loads with ``weights_only=True``, and restored on resume."""

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule,
                           checkpoint: dict) -> None:
        # legacy=True (the default) gives the tuple; numpy's stubs pick the dict overload
        numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
        checkpoint.setdefault("musegan", {})["rng"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                      *numpy_state[2:]],
        }

    def on_load_checkpoint(self, trainer: L.Trainer, module: L.LightningModule,
                           checkpoint: dict) -> None:
        rng = (checkpoint.get("musegan") or {}).get("rng")
        if not rng:
            return
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        version, state, gauss = rng["python"]
        random.setstate((version, tuple(state), gauss))
        name, keys, *rest = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def epoch_line(trainer: L.Trainer, module: GANModule, seconds: float) -> str:
    """One plain line per epoch, for logs (where a progress bar writes \\r noise)."""
    metrics = trainer.callback_metrics
    # The discriminator's pre-training writes no train/nll: the MLE epoch's would linger.
    names = ("train/nll", "val/nll", "train/d_acc_fake", "val/music/gap")
    shown = [f"{name} {float(metrics[name]):.3f}" for name in names if name in metrics
             and not (name == "train/nll" and module.phase == "d_pretrain")]
    total = trainer.max_epochs if trainer.max_epochs is not None else "?"
    return (f"epoch {trainer.current_epoch + 1}/{total} ({module.phase}): "
            + ", ".join(shown) + f"; {seconds:.0f} s")


class RunInfo(L.Callback):
    """Keeps RUN/run.json current at the end of every epoch, so that a run that is killed
    still says what it trained on, for how long, on what, and how well; every rank also
    records what it trained in RUN/logs/ranks/rankN.json."""

    def __init__(self, out: Path, data_dir: str | Path, resumed: bool):
        self.out, self.data_dir = out, data_dir
        previous = {}
        if resumed and (out / RUN_INFO).is_file():
            previous = json.loads((out / RUN_INFO).read_text())
        self.earlier_seconds = previous.get("wall_seconds", 0.0)
        self.resumed = previous.get("resumed", 0) + int(resumed)
        self.started = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, module: GANModule) -> None:  # type: ignore[override]
        self.write(trainer, module, epochs=trainer.current_epoch + 1)  # this one just ended
        if trainer.is_global_zero and not trainer.progress_bar_callback:
            print(epoch_line(trainer, module, time.time() - self.started), flush=True)

    def write(self, trainer: L.Trainer, module: GANModule, epochs: int | None = None) -> None:
        """Write run.json (rank 0) and this rank's record now."""
        wall_seconds = self.earlier_seconds + time.time() - self.started
        epochs = trainer.current_epoch if epochs is None else epochs
        ranks = self.out / "logs" / "ranks"
        ranks.mkdir(parents=True, exist_ok=True)
        (ranks / f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "global_rank": trainer.global_rank, "world_size": trainer.world_size,
            "batches_trained": trainer.fit_loop.epoch_loop.total_batch_idx + 1,
            "epochs": trainer.current_epoch}) + "\n")
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if torch.is_tensor(v) and v.numel() == 1}
        info = {
            "data": str(Path(self.data_dir).resolve()),
            "epochs": epochs,
            "optimizer_steps": trainer.global_step,
            "adversarial_steps": module.adv_steps_done,
            "phase": module.phase,
            "wall_seconds": round(wall_seconds, 1),
            "hardware": hardware(trainer),
            "metrics": metrics,
            "resumed": self.resumed,
        }
        (self.out / RUN_INFO).write_text(json.dumps(info, indent=1) + "\n")


def hardware(trainer: L.Trainer) -> str:
    """What a run trains on, in words: nodes, devices and their kind, precision."""
    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "")
    if torch.cuda.is_available() and accelerator == "CUDA":
        device = torch.cuda.get_device_name(0)
    else:
        device = platform.processor() or platform.machine()
    return (f"{trainer.num_nodes} node(s) x {trainer.num_devices} {accelerator} ({device}), "
            f"precision {trainer.precision}")
