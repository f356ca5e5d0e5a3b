"""Training the LSTM-GAN with Lightning: ``musegan train`` and ``train()``.

Phases, bounded by epochs (under manual optimization Lightning's ``global_step`` counts
every optimizer's steps, Lightning issue 17958):

1. ``mle_epochs``: maximum likelihood. The generator writes each real window back from
   its encoded theme (teacher forcing). The theme GAN learns the real themes' distribution.
2. ``d_pretrain_epochs``: the discriminator learns real from generated, the generator
   frozen.
3. ``adv_epochs``: adversarial. The generator writes from sampled themes with Gumbel-softmax
   tokens whose inverse temperature rises exponentially to ``gumbel_beta_max``. It keeps an
   MLE term (``mle_weight``) and optional feature matching. The discriminator sits out a
   step when it is winning (accuracy above ``d_win_accuracy``).

The theme GAN (mapping network vs theme critic, hinge loss) trains in every phase.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from musegan.errors import MuseganError
from musegan.models import ModelConfig, MuseGAN
from musegan.regularize import (ATTRIBUTES as THEME_ATTRIBUTES, WindowAttributes,
                                attribute_order_loss, trained_attributes)
from musegan.runs import CHECKPOINTS, CONFIG_FILE, LAST, RUN_INFO, load_checkpoint  # noqa: F401
from musegan.tokenizer import Tokenizer



# ---------------------------------------------------------------------- configuration

@dataclass
class ModelSettings:
    """The network sizes a user chooses (``ModelConfig`` less what the tokenizer gives)."""

    embed_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 2
    theme_dim: int = 64
    noise_dim: int = 64
    mapping_layers: int = 3
    mapping_width: int = 256
    encoder_dim: int = 128  # a summary needs little width; 256 made MLE steps ~40 % slower
    disc_embed_dim: int = 128
    disc_hidden_dim: int = 256
    dropout: float = 0.1
    theme_norm: str = "layernorm"


@dataclass
class TrainSettings:
    """What the training loop does. Every field has a default; see ``--print-config``."""

    seq_len: int = 256  # tokens per training window (~12 bars of a folk tune)
    batch_size: int = 32
    transpose: list = field(default_factory=lambda: [-5, 6])  # random key change, semitones
    num_workers: int | None = None  # data loader processes (default: up to 2)
    mle_epochs: int = 20
    d_pretrain_epochs: int = 1
    adv_epochs: int = 10
    adversarial: bool = True  # False: the MLE-only model, for honest comparison
    lr: float = 1e-3  # generator + encoder, MLE phase
    adv_lr: float = 1e-4  # generator + encoder, adversarial phase (Transformer-GAN uses ~1e-4)
    d_lr: float = 1e-4
    theme_lr: float = 2e-4  # mapping network and theme critic
    grad_clip: float = 1.0
    theme_noise: float = 0.1  # std of noise on encoded themes: keeps theme space smooth
    token_dropout: float = 0.2  # share of input tokens hidden in MLE, so the theme must be used
    mle_weight: float = 1.0  # MLE term kept in the adversarial phase
    feature_matching: float = 0.0  # weight of ||E f(real) - E f(fake)||^2 on D's features
    # Attribute-regularised themes (AR-VAE, musegan.regularize): theme number k orders the
    # windows by attribute k, so that steering along it moves the music. [] turns it off.
    theme_attributes: list = field(default_factory=lambda: list(THEME_ATTRIBUTES))
    attribute_weight: float = 1.0  # AR-VAE's gamma; the loss is ~1 untrained, NLL ~0.5-1
    real_label: float = 0.9  # one-sided label smoothing
    gumbel_beta_max: float = 100.0  # inverse temperature reached at the end (RelGAN: 100-1000)
    adv_seq_len: int = 128  # tokens the generator writes per adversarial step
    d_win_accuracy: float = 0.95  # skip D's update while it is this accurate
    max_bad_steps: int = 10  # non-finite losses in a row before training stops
    samples_per_validation: int = 4  # MIDI files written at each validation
    sample_bars: int = 16  # bars per validation sample
    monitor: str = "val/nll"  # what picks the best checkpoint: one of MONITORS

    @property
    def epochs(self) -> int:
        return self.mle_epochs + (self.d_pretrain_epochs + self.adv_epochs if self.adversarial else 0)


@dataclass
class TrainerSettings:
    """Lightning Trainer options passed through."""

    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"  # "ddp" for several GPUs or machines
    num_nodes: int = 1
    precision: str = "32-true"  # "bf16-mixed": ~2.5x faster on CPUs with AMX, and on GPUs
    max_epochs: int | None = None  # default: the sum of the phases
    seed: int = 1234
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    fast_dev_run: int = 0  # N > 0: one epoch of each phase, N batches each, to check a setup
    log_every_n_steps: int = 25
    enable_progress_bar: bool = True


@dataclass
class RunConfig:
    """Everything a run needs, as written to RUN/config.yaml."""

    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        config = cls()
        for section, values in (data or {}).items():
            if not hasattr(config, section) or section == "__class__":
                raise MuseganError(f"unknown config section '{section}' "
                                   "(expected model, train, trainer)")
            config.set_section(section, values or {})
        return config

    def set_section(self, section: str, values: dict) -> None:
        target = getattr(self, section)
        names = {f.name for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in names:
                raise MuseganError(f"unknown setting '{section}.{key}'; "
                                   f"see `musegan train --print-config`")
            setattr(target, key, _coerce(f"{section}.{key}", getattr(target, key), value))

    def set(self, dotted: str, value: Any) -> None:
        """Set 'section.key' from a string or value (YAML-parsed, so '1e-4' is a float)."""
        if "." not in dotted:
            raise MuseganError(f"settings are written section.key=value, got '{dotted}'")
        section, key = dotted.split(".", 1)
        if not hasattr(self, section):
            raise MuseganError(f"unknown config section '{section}'")
        if isinstance(value, str):
            value = yaml.safe_load(value)
        self.set_section(section, {key: value})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text()))
        except (OSError, yaml.YAMLError) as err:
            raise MuseganError(f"{path}: cannot read the config ({err})") from None


def _coerce(name: str, current: Any, value: Any) -> Any:
    """``value`` as the type of the setting's default. YAML 1.1 reads '3e-4' as a string,
    and flags arrive as strings."""
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.strip() else value
    try:
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError
        elif isinstance(current, float) and isinstance(value, (int, float, str)):
            value = float(value)
        elif isinstance(current, int) and isinstance(value, (int, float, str)):
            if float(value) != int(float(value)):
                raise ValueError
            value = int(float(value))
    except ValueError:
        raise MuseganError(f"setting {name} must be a {type(current).__name__}, "
                           f"got {value!r}") from None
    return value


# ---------------------------------------------------------------------- the module

# What can pick the best checkpoint (--monitor), and which way is better.
MONITORS = {"val/nll": "min", "val/music/gap": "min", "val/diversity_4gram": "max"}
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


def distinct_ngrams(sequences, n: int = 4, pad_id: int = 0) -> float:
    """Share of distinct n-grams among all n-grams of a batch (a (B, S) tensor or lists of
    ids): 1 = all different, near 0 = mode collapse."""
    grams = set()
    total = 0
    for row in sequences.tolist() if torch.is_tensor(sequences) else sequences:
        row = [t for t in row if t != pad_id]
        for i in range(len(row) - n + 1):
            grams.add(tuple(row[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


class GANModule(L.LightningModule):
    """The LSTM-GAN with its theme GAN, trained under manual optimization.

    Takes plain dicts (saved as hyperparameters, so checkpoints load with
    ``weights_only=True``) and builds its networks itself.
    """

    def __init__(self, model: dict, train: dict, tokenizer: dict):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.tokenizer = Tokenizer.from_dict(tokenizer)
        self.settings = TrainSettings(**train)
        self.net = MuseGAN(ModelConfig.from_dict(
            {**model, "vocab_size": len(self.tokenizer), "pad_id": self.tokenizer.PAD}))
        self.adv_steps_done = 0
        self.adv_steps_total = 1
        self._reference_windows: list[list[int]] = []  # validation windows, for val/music/*
        self._music_reference: dict | None = None
        self.bad_steps: dict[int, int] = {}  # per optimizer: non-finite losses in a row
        self.d_accuracy = 0.5  # the discriminator's accuracy on the last batch
        names = tuple(trained_attributes(dataclasses.asdict(self.settings)))
        if len(names) > self.net.theme_dim:
            raise MuseganError(f"train.theme_attributes lists {len(names)} attributes but themes "
                               f"have {self.net.theme_dim} numbers; list fewer or raise theme_dim")
        try:
            self.window_attributes = WindowAttributes(self.tokenizer, names) if names else None
        except ValueError as error:
            raise MuseganError(f"train.theme_attributes: {error}") from None

    # ------------------------------------------------------------------ phases

    @property
    def phase(self) -> str:
        s, epoch = self.settings, self.current_epoch
        if epoch < s.mle_epochs or not s.adversarial:
            return "mle"
        if epoch < s.mle_epochs + s.d_pretrain_epochs:
            return "d_pretrain"
        return "adversarial"

    def gumbel_beta(self) -> float:
        """Inverse temperature: 1 at the start of the adversarial phase, rising
        exponentially to gumbel_beta_max at its end."""
        progress = min(1.0, self.adv_steps_done / max(1, self.adv_steps_total))
        return self.settings.gumbel_beta_max ** progress

    def on_train_start(self) -> None:
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches):
            batches = 1
        self.adv_steps_total = max(1, int(batches) * self.settings.adv_epochs)

    def configure_optimizers(self):
        s, net = self.settings, self.net
        generator = torch.optim.Adam([*net.generator.parameters(), *net.encoder.parameters()],
                                     lr=s.lr)
        discriminator = torch.optim.Adam(net.discriminator.parameters(), lr=s.d_lr,
                                         betas=(0.5, 0.999))
        mapping = torch.optim.Adam(net.mapping.parameters(), lr=s.theme_lr, betas=(0.5, 0.999))
        critic = torch.optim.Adam(net.critic.parameters(), lr=s.theme_lr, betas=(0.5, 0.999))
        return [generator, discriminator, mapping, critic]

    def on_train_epoch_start(self) -> None:
        generator_opt = self.optimizers()[0]
        lr = self.settings.adv_lr if self.phase == "adversarial" else self.settings.lr
        for group in generator_opt.param_groups:
            group["lr"] = lr

    # ------------------------------------------------------------------ losses

    def mle_loss(self, tokens: torch.Tensor, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced NLL per token of windows (B, S) from their own themes."""
        theme = self.net.encoder(tokens)  # (B, T)
        noisy = theme + noise * torch.randn_like(theme) if noise else theme
        inputs = tokens[:, :-1]
        if self.training and self.settings.token_dropout:
            hidden = torch.rand(inputs.shape, device=inputs.device) < self.settings.token_dropout
            inputs = inputs.masked_fill(hidden, self.tokenizer.PAD)  # PAD embeds to zeros
        logits, _ = self.net.generator(inputs, noisy)  # (B, S-1, V)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                              tokens[:, 1:].reshape(-1), ignore_index=self.tokenizer.PAD)
        return nll, theme

    def attribute_loss(self, tokens: torch.Tensor, theme: torch.Tensor) -> torch.Tensor | None:
        """AR-VAE's ordering loss of the windows' themes by their attributes (None: off)."""
        if self.window_attributes is None:
            return None
        return attribute_order_loss(theme, self.window_attributes(tokens))

    def _regularised(self, loss: torch.Tensor, tokens: torch.Tensor, theme: torch.Tensor,
                     logs: dict) -> torch.Tensor:
        """``loss`` plus the weighted attribute-ordering loss when it is on (logged)."""
        ordering = self.attribute_loss(tokens, theme)
        if ordering is None:
            return loss
        logs["train/attribute_order"] = ordering.detach()
        return loss + self.settings.attribute_weight * ordering

    def _agree(self, decision: bool) -> bool:
        """True only if every process decided True (DDP: all ranks must take the same
        backward passes, or their gradient syncs pair up wrongly and hang)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return decision
        return bool(trainer.strategy.reduce_boolean_decision(decision, all=True))

    def _step(self, optimizer, loss: torch.Tensor) -> bool:
        """Backward and step one optimizer; a non-finite loss (on any process) skips it."""
        key = id(getattr(optimizer, "optimizer", optimizer))
        if not self._agree(bool(torch.isfinite(loss))):
            self._bad_step(key, loss)
            return False
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=self.settings.grad_clip,
                            gradient_clip_algorithm="norm")
        optimizer.step()
        self.bad_steps[key] = 0
        return True

    def _bad_step(self, key: int, loss: torch.Tensor) -> None:
        self.bad_steps[key] = self.bad_steps.get(key, 0) + 1
        warnings.warn(f"non-finite loss ({loss.item()}) at epoch {self.current_epoch}: "
                      "step skipped", RuntimeWarning, stacklevel=3)
        if self.bad_steps[key] >= self.settings.max_bad_steps:
            raise MuseganError(
                f"training diverged: {self.bad_steps[key]} non-finite losses in a row at epoch "
                f"{self.current_epoch}; the last good checkpoint is kept in "
                f"{CHECKPOINTS}/{LAST}; try a lower learning rate or precision 32-true")

    def _theme_gan_step(self, real_themes: torch.Tensor) -> dict:
        net, (_, _, mapping_opt, critic_opt) = self.net, self.optimizers()
        fake = net.mapping.sample(real_themes.size(0), device=real_themes.device)
        critic_loss = (F.relu(1 - net.critic(real_themes.detach())).mean()
                       + F.relu(1 + net.critic(fake.detach())).mean())
        self._step(critic_opt, critic_loss)
        mapping_loss = -net.critic(fake).mean()
        self._step(mapping_opt, mapping_loss)
        return {"theme/critic_loss": critic_loss.detach(), "theme/mapping_loss": mapping_loss.detach()}

    def _real_for_discriminator(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        """Real windows as the discriminator sees them: without BOS, ``length`` tokens."""
        starts_with_bos = (tokens[:, :1] == self.tokenizer.BOS)
        shifted = torch.where(starts_with_bos, tokens[:, 1:length + 1], tokens[:, :length])
        return shifted

    def _fake_sequences(self, n: int, length: int, beta: float):
        """Sequences the generator writes from sampled themes: hard ids, soft one-hots and
        the mask of positions up to and including the first EOS."""
        theme = self.net.mapping.sample(n, device=self.device).detach()
        start = torch.full((n,), self.tokenizer.BOS, dtype=torch.long, device=self.device)
        hard, soft = self.net.generator.gumbel_rollout(theme, length, 1.0 / beta, start)
        eos = (hard == self.tokenizer.EOS).long()
        mask = (torch.cumsum(eos, 1) - eos) == 0  # (B, L)
        return hard, soft, mask

    def _bce_steps(self, logits: torch.Tensor, target: float, mask: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy at every step, averaged over the masked steps."""
        loss = F.binary_cross_entropy_with_logits(
            logits.float(), torch.full_like(logits.float(), target), reduction="none")
        return (loss * mask).sum() / mask.sum().clamp(min=1)

    def _discriminator_losses(self, real: torch.Tensor, soft: torch.Tensor, fake_mask):
        s, disc = self.settings, self.net.discriminator
        real_mask = real != self.tokenizer.PAD
        real_steps, real_seq, real_features = disc(real_mask, tokens=real)
        fake_steps, fake_seq, _ = disc(fake_mask, soft=soft.detach())
        loss = (self._bce_steps(real_steps, s.real_label, real_mask)
                + F.binary_cross_entropy_with_logits(real_seq.float(),
                                                     torch.full_like(real_seq.float(), s.real_label))
                + self._bce_steps(fake_steps, 0.0, fake_mask)
                + F.binary_cross_entropy_with_logits(fake_seq.float(), torch.zeros_like(fake_seq.float())))
        accuracy_real = (real_seq > 0).float().mean()
        accuracy_fake = (fake_seq < 0).float().mean()
        return loss, accuracy_real, accuracy_fake, real_features.detach()

    # ------------------------------------------------------------------ steps

    def training_step(self, tokens: torch.Tensor, batch_idx: int) -> None:
        s = self.settings
        generator_opt, discriminator_opt, _, _ = self.optimizers()
        logs: dict[str, torch.Tensor | float] = {}
        phase = self.phase

        if phase == "mle":
            nll, theme = self.mle_loss(tokens, s.theme_noise)
            self._step(generator_opt, self._regularised(nll, tokens, theme, logs))
            logs["train/nll"] = nll.detach()
        else:
            with torch.no_grad():
                theme = self.net.encoder(tokens)
            beta = self.gumbel_beta() if phase == "adversarial" else 1.0
            length = min(s.adv_seq_len, tokens.size(1) - 1)
            real = self._real_for_discriminator(tokens, length)
            if phase == "d_pretrain":
                with torch.no_grad():
                    hard, soft, fake_mask = self._fake_sequences(tokens.size(0), length, beta)
            else:
                hard, soft, fake_mask = self._fake_sequences(tokens.size(0), length, beta)
            d_loss, acc_real, acc_fake, real_features = self._discriminator_losses(real, soft, fake_mask)
            self.d_accuracy = float((acc_real + acc_fake) / 2)
            # Every process must make the same choice: skip only if D wins everywhere.
            skip_d = self._agree(phase == "adversarial" and self.d_accuracy > s.d_win_accuracy)
            if not skip_d:
                self._step(discriminator_opt, d_loss)
            logs.update({"train/d_loss": d_loss.detach(), "train/d_acc_real": acc_real,
                         "train/d_acc_fake": acc_fake, "train/d_skipped": float(skip_d),
                         "train/gumbel_beta": beta})
            if phase == "adversarial":
                fake_steps, fake_seq, fake_features = self.net.discriminator(fake_mask, soft=soft)
                adversarial = (self._bce_steps(fake_steps, 1.0, fake_mask)
                               + F.binary_cross_entropy_with_logits(
                                   fake_seq.float(), torch.ones_like(fake_seq.float())))
                nll, theme = self.mle_loss(tokens, s.theme_noise)
                g_loss = self._regularised(adversarial + s.mle_weight * nll, tokens, theme, logs)
                if s.feature_matching:
                    matching = (real_features.mean(0) - fake_features.mean(0)).pow(2).sum()
                    g_loss = g_loss + s.feature_matching * matching
                    logs["train/feature_matching"] = matching.detach()
                self._step(generator_opt, g_loss)
                self.adv_steps_done += 1
                logs.update({"train/g_adv": adversarial.detach(), "train/nll": nll.detach(),
                             "train/g_loss": g_loss.detach()})
            if batch_idx % self.trainer.log_every_n_steps == 0:
                logs["train/diversity_4gram"] = distinct_ngrams(hard, 4, self.tokenizer.PAD)

        logs.update(self._theme_gan_step(theme.detach()))
        self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False,
                      batch_size=tokens.size(0))
        if "train/nll" in logs:
            self.log("nll", logs["train/nll"], prog_bar=True, on_step=True, on_epoch=False,
                     logger=False, batch_size=tokens.size(0))

    def validation_step(self, tokens: torch.Tensor, batch_idx: int) -> None:
        nll, theme = self.mle_loss(tokens, noise=0.0)
        self.log("val/nll", nll, prog_bar=True, on_epoch=True, sync_dist=True,
                 batch_size=tokens.size(0))
        ordering = self.attribute_loss(tokens, theme)
        if ordering is not None:
            self.log("val/attribute_order", ordering, on_epoch=True, sync_dist=True,
                     batch_size=tokens.size(0))
        if len(self._reference_windows) < MUSIC_REFERENCE_WINDOWS:  # kept for the music metrics
            self._reference_windows += tokens[:MUSIC_REFERENCE_WINDOWS].tolist()

    def music_reference(self) -> dict[str, tuple[float, float]]:
        """Mean and std of each quick metric over validation windows (computed once)."""
        if self._music_reference is None and self._reference_windows:
            from musegan.metrics import QUICK_FEATURES, piece_features

            rows = [[t for t in window if t != self.tokenizer.PAD]
                    for window in self._reference_windows[:MUSIC_REFERENCE_WINDOWS]]
            features = [piece_features(self.tokenizer.decode(row)) for row in rows]
            self._music_reference = {}
            for name in QUICK_FEATURES:
                values = np.array([f[name] for f in features], dtype=np.float64)
                values = values[np.isfinite(values)]
                self._music_reference[name] = ((float(values.mean()), float(values.std()))
                                               if len(values) else (float("nan"), 0.0))
        return self._music_reference or {}

    def on_validation_epoch_end(self) -> None:
        s = self.settings
        if self.trainer.sanity_checking or not s.samples_per_validation:
            return
        # The sampler's own grammar-constrained decoder (imported here: sampling imports
        # export, which imports this module).
        from musegan.sampling import decode

        was_training = self.training
        self.eval()
        generator = torch.Generator(device=self.device).manual_seed(self.current_epoch)
        theme = self.net.mapping.sample(s.samples_per_validation, generator=generator,
                                        device=self.device)
        ids = decode(self.net, self.tokenizer, theme, s.sample_bars, [self.tokenizer.BOS],
                     generator=generator)
        self.train(was_training)
        self.log("val/diversity_4gram", distinct_ngrams(ids, 4, self.tokenizer.PAD),
                 sync_dist=True)
        # A cheap subset of `musegan evaluate` on the samples, so a run shows when its music
        # gets better or collapses; val/music/gap can pick the best checkpoint (--monitor).
        from musegan.metrics import quick_metrics

        music = quick_metrics([self.tokenizer.decode(row) for row in ids])
        # Every key on every rank (NaN included): DDP's sync must see the same names.
        logs = {f"val/music/{name}": value for name, value in music.items()}
        logs["val/music/gap"] = music_gap(music, self.music_reference())
        self.log_dict(logs, sync_dist=True)
        if self.trainer.is_global_zero and self.trainer.default_root_dir:
            folder = Path(self.trainer.default_root_dir) / "samples"
            folder.mkdir(parents=True, exist_ok=True)
            for i, row in enumerate(ids):
                score = self.tokenizer.decode_score(row)
                score.dump_midi(str(folder / f"epoch{self.current_epoch:03d}_{i}.mid"))

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain types and tensors only, so the checkpoint loads with weights_only=True.
        numpy_state = np.random.get_state()
        checkpoint["musegan"] = {
            "adv_steps_done": self.adv_steps_done,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
                "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                          *numpy_state[2:]],
            },
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("musegan", {})
        self.adv_steps_done = saved.get("adv_steps_done", 0)
        rng = saved.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            version, state, gauss = rng["python"]
            random.setstate((version, tuple(state), gauss))
            name, keys, *rest = rng["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place,
    so a crash or kill -9 during a save never leaves a corrupt checkpoint."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint(path, map_location or "cpu")  # Lightning moves it to the device


# ---------------------------------------------------------------------- train()

def bach_corpus_dir() -> Path:
    """Where ``musegan train`` with no data keeps its prepared Bach chorales."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "musegan" / "corpora" / "bach"


def train(data_dir: str | Path | None, out: str | Path, config: RunConfig | None = None,
          resume: bool = False) -> Path:
    """Train a model on a prepared corpus; returns the run folder.

    Args:
        data_dir: a folder written by ``musegan prepare``; None prepares and uses music21's
            Bach chorales (cached in ``~/.cache/musegan``).
        out: the run folder: config.yaml, checkpoints/, logs/ (TensorBoard), samples/,
            run.json.
        config: settings (default ``RunConfig()``).
        resume: continue from ``out/checkpoints/last.ckpt``: same epoch, step, phase,
            optimizer state and random state.

    Raises:
        MuseganError: the data is not a prepared corpus, or ``out`` holds a run and
            ``resume`` is false.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    from musegan.data import MidiDataModule
    from musegan.prepare import prepare_corpus

    config = config or RunConfig()
    out = Path(out)
    last = out / CHECKPOINTS / LAST
    if resume and not last.is_file():
        raise MuseganError(f"nothing to resume: {last} does not exist")
    monitor = config.train.monitor
    if monitor not in MONITORS:
        raise MuseganError(f"cannot pick checkpoints by '{monitor}'; use one of: "
                           + ", ".join(MONITORS))
    if monitor != "val/nll" and not config.train.samples_per_validation:
        raise MuseganError(f"--monitor {monitor} is computed on validation samples; set "
                           "train.samples_per_validation above 0")
    # Under DDP Lightning re-runs this command for the other ranks after rank 0 has
    # written config.yaml: only rank 0 checks for an earlier run.
    if not resume and (out / CONFIG_FILE).exists() and _rank_zero():
        raise MuseganError(f"{out} already holds a run; pass --resume to continue it, "
                           "or choose another --out")
    if resume:
        saved = RunConfig.load(out / CONFIG_FILE)
        if config is None:
            config = saved
        elif config.model != saved.model:
            raise MuseganError(f"--resume continues {out} with its own model sizes; "
                               "start a new run (another --out) to change them")
    if data_dir is None:
        data_dir = bach_corpus_dir()
        ready = Path(data_dir) / "corpus.json"
        if not ready.exists() and _rank_zero():
            prepare_corpus(["bach"], data_dir, progress=True)
        deadline = time.time() + 3600
        while not ready.exists() and time.time() < deadline:  # other ranks wait for rank 0
            time.sleep(5)
    s, t = config.train, config.trainer
    _check_precision(t)
    if t.fast_dev_run:  # Lightning's own counts every optimizer's steps and runs one epoch
        s.mle_epochs, s.d_pretrain_epochs, s.adv_epochs = 1, 1, 1
        t.limit_train_batches = t.limit_val_batches = int(t.fast_dev_run)
        t.max_epochs = None
    data = MidiDataModule(str(data_dir), seq_len=s.seq_len, batch_size=s.batch_size,
                          num_workers=s.num_workers, transpose=tuple(s.transpose))
    tokenizer = data.tokenizer  # a clear error here if data_dir is not a corpus

    L.seed_everything(t.seed, workers=True, verbose=False)
    module = GANModule(model=dataclasses.asdict(config.model), train=dataclasses.asdict(s),
                       tokenizer=tokenizer.to_dict())
    if _rank_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(config.to_yaml())
    # Two callbacks: with save_last=True Lightning writes last.ckpt only when a better
    # checkpoint is saved, so a resume after validation stops improving would lose epochs.
    last_checkpoint = ModelCheckpoint(dirpath=out / CHECKPOINTS, filename=LAST[:-5],
                                      save_top_k=1, every_n_epochs=1,
                                      enable_version_counter=False)
    best_checkpoint = ModelCheckpoint(dirpath=out / CHECKPOINTS, filename="best-epoch{epoch:03d}",
                                      auto_insert_metric_name=False, save_top_k=1,
                                      monitor=s.monitor, mode=MONITORS[s.monitor],
                                      every_n_epochs=1)
    # Each of the four optimizers' backward passes reaches one network only, which plain
    # DDP refuses: let it find the unused parameters (each optimizer zeroes its own grads).
    strategy = "ddp_find_unused_parameters_true" if t.strategy == "ddp" else t.strategy
    info = RunInfo(out, config, data_dir, resume)
    trainer = L.Trainer(
        default_root_dir=str(out), accelerator=t.accelerator, devices=t.devices,
        strategy=strategy, num_nodes=t.num_nodes, precision=t.precision,
        max_epochs=t.max_epochs if t.max_epochs is not None else s.epochs,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        logger=TensorBoardLogger(str(out), name="logs", version=""),
        # best first, so that last.ckpt records the best path as it stands after this epoch
        callbacks=[best_checkpoint, last_checkpoint, info], plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None,
                weights_only=True)
    info.write(trainer, module)
    return out


class RunInfo(L.Callback):
    """Keeps RUN/run.json current at the end of every epoch, so that a run that is killed
    still says what it trained on, for how long, on what, and how well."""

    def __init__(self, out: Path, config: RunConfig, data_dir, resumed: bool):
        self.out, self.data_dir = out, data_dir
        previous = {}
        if resumed and (out / RUN_INFO).is_file():
            previous = json.loads((out / RUN_INFO).read_text())
        self.earlier_seconds = previous.get("wall_seconds", 0.0)
        self.resumed = previous.get("resumed", 0) + int(resumed)
        self.started = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, module: "GANModule") -> None:
        self.write(trainer, module, epochs=trainer.current_epoch + 1)  # this one just ended

    def write(self, trainer: L.Trainer, module: "GANModule", epochs: int | None = None) -> None:
        _write_run_info(self.out, trainer, module, self.data_dir,
                        self.earlier_seconds + time.time() - self.started, self.resumed,
                        trainer.current_epoch if epochs is None else epochs)


def cpu_supports_bf16_lstm() -> bool:
    """Whether this CPU runs LSTMs under bf16 autocast (oneDNN needs AMX or AVX512-BF16)."""
    lstm = torch.nn.LSTM(8, 8, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 8))
        return True
    except RuntimeError:
        return False


def _check_precision(trainer: "TrainerSettings") -> None:
    on_cpu = trainer.accelerator == "cpu" or (trainer.accelerator == "auto"
                                              and not torch.cuda.is_available())
    if on_cpu and str(trainer.precision).startswith("bf16") and not cpu_supports_bf16_lstm():
        raise MuseganError(f"precision {trainer.precision} needs a CPU with AMX or AVX512-BF16 "
                           "(this one has neither) or a GPU; use --precision 32-true")


def _rank_zero() -> bool:
    """Whether this is global rank 0, under torchrun, SLURM or Lightning's own launcher."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return (_get_rank() or 0) == 0


def _write_run_info(out: Path, trainer: L.Trainer, module: GANModule, data_dir,
                    wall_seconds: float, resumed: int, epochs: int) -> None:
    ranks = out / "logs" / "ranks"
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
        "data": str(Path(data_dir).resolve()),
        "epochs": epochs,
        "optimizer_steps": trainer.global_step,
        "adversarial_steps": module.adv_steps_done,
        "phase": module.phase,
        "wall_seconds": round(wall_seconds, 1),
        "hardware": _hardware(trainer),
        "metrics": metrics,
        "resumed": resumed,
    }
    (out / RUN_INFO).write_text(json.dumps(info, indent=1) + "\n")


def _hardware(trainer: L.Trainer) -> str:
    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "")
    if torch.cuda.is_available() and accelerator == "CUDA":
        device = torch.cuda.get_device_name(0)
    else:
        device = platform.processor() or platform.machine()
    return (f"{trainer.num_nodes} node(s) x {trainer.num_devices} {accelerator} ({device}), "
            f"precision {trainer.precision}")
