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

import contextlib
import dataclasses
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.plugins.precision import MixedPrecision

from musegan.callbacks import MusicMetrics, RandomState, RunInfo
from musegan.config import (
    ADVERSARIAL_MODES,
    MONITORS,
    RunConfig,
    TrainerSettings,
    TrainSettings,
    fit_windows,
)
from musegan.corpus import Corpus, is_corpus
from musegan.errors import MuseganError
from musegan.metrics import distinct_ngrams
from musegan.models import BehaviourDiscriminator, MuseGAN, build_model
from musegan.regularize import WindowAttributes, attribute_order_loss, trained_attributes
from musegan.runs import CHECKPOINTS, CONFIG_FILE, LAST, RUN_INFO, load_checkpoint
from musegan.threads import training_threads
from musegan.tokenizer import Tokenizer

__all__ = ["GANModule", "RunConfig", "TrainSettings", "TrainerSettings", "train"]

THEME_CRITIC_WARMUP = 500  # steps a fresh theme critic learns before the mapping follows it


# ---------------------------------------------------------------------- the module

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
        self.settings = TrainSettings.from_dict(train)
        self.net = build_model(model, self.tokenizer)
        self.adv_steps_done = 0
        self.adv_steps_total = 1
        # Per optimizer: non-finite losses in a row; and how many since the last look
        # (tensors: on a GPU they are counted on the device, see _step).
        self.bad_runs: dict[int, torch.Tensor] = {}
        self.bad_since_look = torch.zeros((), dtype=torch.long)
        # Steps the mapping network waits while a fresh theme critic learns (start_from a
        # model file, which has none): a fresh critic's first gradients pull the trained
        # mapping away from real themes (Professor Forcing from cre-melody: 0.820 and
        # 0.832 mean overlap on bench/quality.py, against 0.852 and 0.841 frozen).
        self.mapping_waits = 0
        if self.settings.sample_every < 1:
            raise MuseganError(f"train.sample_every must be at least 1, got "
                               f"{self.settings.sample_every}")
        if self.settings.sample_every > 1 and self.settings.monitor != "val/nll":
            raise MuseganError(f"train.monitor {self.settings.monitor} is measured on "
                               "validation samples, which train.sample_every > 1 skips; "
                               "set train.sample_every=1 or monitor val/nll")
        if self.settings.adversarial_mode not in ADVERSARIAL_MODES:
            raise MuseganError(f"train.adversarial_mode is {self.settings.adversarial_mode!r}; "
                               f"use one of {', '.join(ADVERSARIAL_MODES)}")
        # Professor Forcing's discriminator lives here, not in the model: it judges
        # training behaviour and is never exported.
        self.behaviour = (BehaviourDiscriminator(self.net.config)
                          if self.settings.adversarial_mode == "professor" else None)
        names = tuple(trained_attributes(dataclasses.asdict(self.settings)))
        if len(names) > self.net.theme_dim:
            raise MuseganError(f"train.theme_attributes lists {len(names)} attributes but themes "
                               f"have {self.net.theme_dim} numbers; list fewer or raise theme_dim")
        try:
            self.window_attributes = WindowAttributes(self.tokenizer, names) if names else None
        except ValueError as error:
            raise MuseganError(f"train.theme_attributes: {error}") from None

    def start_from(self, path: str | Path) -> None:
        """Take the weights of another model (a model file or a checkpoint) with the same
        sizes and tokenizer: every network it has (a model file has no discriminator or
        theme critic; those keep their fresh weights)."""
        from musegan.modelfile import load_model

        other = load_model(path)
        if not isinstance(other.net, MuseGAN):
            raise MuseganError(f"{path}: cannot start from this model: it is not an LSTM-GAN")
        if other.tokenizer != self.tokenizer:
            hint = ""
            if other.tokenizer.config.parts != self.tokenizer.config.parts:
                hint = ("; its parts are " + (", ".join(n for n, _ in other.tokenizer.parts)
                                              or "none") + ": prepare the corpus again with "
                        + ("--merge-tracks" if not other.tokenizer.parts
                           else "--tokenizer and the model's tokenizer, saved with "
                                "load_model(M).tokenizer.save(FILE)"))
            raise MuseganError(f"{path}: cannot start from this model: it was made with "
                               f"another tokenizer than this corpus's{hint}")
        if other.net.config.sizes() != self.net.config.sizes():
            raise MuseganError(f"{path}: cannot start from this model: its sizes differ "
                               f"({other.net.config.sizes()}); set model.* to match")
        weights = other.net.state_dict()
        parts = set(MuseGAN.SAMPLING_PARTS) if Path(path).suffix != ".ckpt" else None
        if parts is not None:  # a model file: the theme critic starts fresh
            self.mapping_waits = THEME_CRITIC_WARMUP
        self.net.load_state_dict({k: v for k, v in weights.items()
                                  if parts is None or k.split(".")[0] in parts}, strict=False)

    # ------------------------------------------------------------------ phases

    @property
    def phase(self) -> str:
        """The phase of the current epoch: "mle", "d_pretrain" or "adversarial"."""
        return self.settings.phase(self.current_epoch)

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
        # Fused Adam: one kernel per step for all of an optimizer's tensors (62 -> 11 ms a
        # generator step at the default size on a CPU core), where the device has it. Not
        # under fp16 AMP, whose gradient scaler cannot unscale before clipping for it.
        precision = str(getattr(self._trainer, "precision", "32-true"))
        fp16 = precision.startswith("16") or precision == "fp16-mixed"
        fused: dict[str, Any] = ({"fused": True} if self.device.type in ("cpu", "cuda")
                                 and not fp16 else {})
        generator = torch.optim.Adam([*net.generator.parameters(), *net.encoder.parameters()],
                                     lr=s.lr, **fused)
        judge = self.behaviour if self.behaviour is not None else net.discriminator
        discriminator = torch.optim.Adam(judge.parameters(), lr=s.d_lr, betas=(0.5, 0.999),
                                         **fused)
        mapping = torch.optim.Adam(net.mapping.parameters(), lr=s.theme_lr, betas=(0.5, 0.999),
                                   **fused)
        critic = torch.optim.Adam(net.critic.parameters(), lr=s.theme_lr, betas=(0.5, 0.999),
                                  **fused)
        return [generator, discriminator, mapping, critic]

    def on_train_epoch_start(self) -> None:
        generator_opt = self.optimizers()[0]  # type: ignore[index]
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

    def _everywhere(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` (a 0-d bool tensor) and-ed over every process, on the device (DDP: all
        ranks must take the same backward passes and steps, or their gradient syncs pair
        up wrongly and hang)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return flag
        agreed = trainer.strategy.reduce(flag.float(), reduce_op="sum")
        return agreed == trainer.world_size

    def _step(self, optimizer, loss: torch.Tensor,
              sit_out: torch.Tensor | None = None) -> None:
        """Backward and step one optimizer, unless its loss is not finite (on any process)
        or ``sit_out`` (a 0-d bool tensor, the same on every process) says to skip.

        On a GPU a decision made on the host stalls the device, so where the optimizer
        can skip on the device (fused Adam, and no fp16 loss scaler), the decision stays
        there: the backward pass always runs, the optimizer skips its update
        (``found_inf``), and the non-finite losses are counted on the device and looked at
        on logging steps (``_look_at_bad_steps``): a step makes no host sync. On a CPU a
        look costs microseconds: the step is decided first, and a skipped step skips its
        backward pass too.
        """
        inner = getattr(optimizer, "optimizer", optimizer)
        bad = ~self._everywhere(torch.isfinite(loss.detach()))
        skip = bad if sit_out is None else bad | sit_out
        on_device = self._skips_on_device(inner, loss)
        if on_device or not bool(skip):
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self._clip(inner, optimizer)
            if on_device:
                inner.grad_scale, inner.found_inf = None, skip.float()
            try:
                optimizer.step()
            finally:
                if on_device:
                    del inner.grad_scale, inner.found_inf
        key = id(inner)
        self.bad_runs[key] = torch.where(bad, self.bad_runs.get(key, 0) + 1, 0)
        self.bad_since_look = self.bad_since_look + bad
        if not on_device and bool(bad):
            self._look_at_bad_steps(loss)

    def _clip(self, inner, optimizer) -> None:
        """Clip the gradients' norm to ``grad_clip``, as Lightning's ``clip_gradients``
        does. Under bf16-mixed Lightning's mixed-precision plugin refuses to for a fused
        optimizer (which would unscale an fp16 loss scaler's gradients itself; bf16 has no
        scaler): there they are clipped here, by the same function that plugin calls.
        (Other plugins, FSDP's and DeepSpeed's, clip in their own ways: Lightning's path.)"""
        precision = getattr(self._trainer, "precision_plugin", None)
        if (isinstance(precision, MixedPrecision) and precision.scaler is None
                and getattr(inner, "_step_supports_amp_scaling", False)):
            if self.settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for group in inner.param_groups
                                                for p in group["params"]],
                                               self.settings.grad_clip)
        else:
            self.clip_gradients(optimizer, gradient_clip_val=self.settings.grad_clip,
                                gradient_clip_algorithm="norm")

    def _skips_on_device(self, optimizer, loss: torch.Tensor) -> bool:
        """Whether ``_step`` decides on the device: on a GPU, with an optimizer that skips
        an update it is told to (``found_inf``), unless a loss scaler (fp16) tells it."""
        precision = getattr(self._trainer, "precision_plugin", None)
        return (loss.device.type == "cuda"
                and getattr(optimizer, "_step_supports_amp_scaling", False)
                and getattr(precision, "scaler", None) is None)

    def _look_at_bad_steps(self, loss: torch.Tensor | None = None) -> None:
        """Warn of the steps skipped for non-finite losses since the last look, and stop
        training once an optimizer has had ``max_bad_steps`` of them in a row."""
        skipped = int(self.bad_since_look)
        if not skipped:
            return
        self.bad_since_look = torch.zeros((), dtype=torch.long, device=self.bad_since_look.device)
        value = "" if loss is None else f" ({loss.item()})"
        warnings.warn(f"non-finite loss{value} at epoch {self.current_epoch}: "
                      f"{skipped} step{'s' if skipped > 1 else ''} skipped", RuntimeWarning,
                      stacklevel=3)
        worst = max(int(run) for run in self.bad_runs.values())
        if worst >= self.settings.max_bad_steps:
            raise MuseganError(
                f"training diverged: {worst} non-finite losses in a row at epoch "
                f"{self.current_epoch}; the last good checkpoint is kept in "
                f"{CHECKPOINTS}/{LAST}; try a lower learning rate or precision 32-true")

    def _theme_gan_step(self, real_themes: torch.Tensor) -> dict:
        net, (_, _, mapping_opt, critic_opt) = self.net, self.optimizers()  # type: ignore[attr-defined]
        n = real_themes.size(0)
        fake = net.mapping.sample(n, device=real_themes.device)
        # One critic pass over real and fake themes (each pass also runs the spectral
        # norms' power iterations); after the critic's step, one more for the mapping.
        scores = net.critic(torch.cat([real_themes.detach(), fake.detach()]))
        critic_loss = F.relu(1 - scores[:n]).mean() + F.relu(1 + scores[n:]).mean()
        self._step(critic_opt, critic_loss)
        with judging(net.critic):
            mapping_loss = -net.critic(fake).mean()
        if self.mapping_waits > 0:
            self.mapping_waits -= 1
        else:
            self._step(mapping_opt, mapping_loss)
        return {"theme/critic_loss": critic_loss.detach(),
                "theme/mapping_loss": mapping_loss.detach()}

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

    def _judged(self, steps: torch.Tensor, sequence: torch.Tensor, mask: torch.Tensor,
                target: float) -> torch.Tensor:
        """Binary cross-entropy of a discriminator's step and sequence logits against
        ``target`` (1 real, 0 generated, or the smoothed real label)."""
        return self._bce_steps(steps, target, mask) + F.binary_cross_entropy_with_logits(
            sequence.float(), torch.full_like(sequence.float(), target))

    def _discriminator_losses(self, real: torch.Tensor, soft: torch.Tensor, fake_mask):
        s, disc = self.settings, self.net.discriminator
        real_mask = real != self.tokenizer.PAD
        n = real.size(0)
        # One pass over real and generated sequences together (same length).
        steps, sequence, features = disc.judge(
            torch.cat([disc.inputs(tokens=real), disc.inputs(soft=soft.detach())]),
            torch.cat([real_mask, fake_mask]))
        real_steps, real_seq, real_features = steps[:n], sequence[:n], features[:n]
        fake_steps, fake_seq = steps[n:], sequence[n:]
        loss = (self._judged(real_steps, real_seq, real_mask, s.real_label)
                + self._judged(fake_steps, fake_seq, fake_mask, 0.0))
        accuracy_real = (real_seq > 0).float().mean()
        accuracy_fake = (fake_seq < 0).float().mean()
        return loss, accuracy_real, accuracy_fake, real_features.detach()

    # ------------------------------------------------------------------ steps

    def training_step(self, tokens: torch.Tensor, batch_idx: int) -> None:
        s = self.settings
        generator_opt, discriminator_opt, _, _ = self.optimizers()  # type: ignore[attr-defined]
        logs: dict[str, torch.Tensor | float] = {}
        phase = self.phase

        if phase == "mle":
            nll, theme = self.mle_loss(tokens, s.theme_noise)
            self._step(generator_opt, self._regularised(nll, tokens, theme, logs))
            logs["train/nll"] = nll.detach()
        elif self.behaviour is not None:
            theme = self._professor_step(tokens, batch_idx, phase == "adversarial", logs)
        else:
            if phase == "d_pretrain":  # (the adversarial phase's MLE term encodes them)
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
            d_loss, acc_real, acc_fake, real_features = self._discriminator_losses(real, soft,
                                                                                   fake_mask)
            skip_d = self._sits_out(acc_real, acc_fake, phase == "adversarial")
            self._step(discriminator_opt, d_loss, skip_d)
            logs.update({"train/d_loss": d_loss.detach(), "train/d_acc_real": acc_real,
                         "train/d_acc_fake": acc_fake, "train/d_skipped": skip_d.float(),
                         "train/gumbel_beta": beta})
            if phase == "adversarial":
                with judging(self.net.discriminator):
                    fake_steps, fake_seq, fake_features = self.net.discriminator(fake_mask,
                                                                                 soft=soft)
                adversarial = self._judged(fake_steps, fake_seq, fake_mask, 1.0)
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
            if batch_idx % self.trainer.log_every_n_steps == 0:  # type: ignore[attr-defined]
                logs["train/diversity_4gram"] = distinct_ngrams(hard, 4, self.tokenizer.PAD)

        logs.update(self._theme_gan_step(theme.detach()))
        if not self._logging_step(batch_idx):
            return  # each logged value costs ~0.6 ms; Lightning would drop these anyway
        self._look_at_bad_steps()  # those counted on the device since the last look
        self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False,
                      batch_size=tokens.size(0))
        if "train/nll" in logs:
            self.log("nll", logs["train/nll"], prog_bar=True, on_step=True, on_epoch=False,
                     logger=False, batch_size=tokens.size(0))

    def _sits_out(self, acc_real: torch.Tensor, acc_fake: torch.Tensor,
                  adversarial: bool) -> torch.Tensor:
        """Whether the discriminator skips its update (a 0-d bool tensor): in the
        adversarial phase, while it is winning (its accuracy above ``d_win_accuracy``) on
        every process."""
        winning = (acc_real + acc_fake) / 2 > self.settings.d_win_accuracy
        return self._everywhere(winning & adversarial)

    def _logging_step(self, batch_idx: int) -> bool:
        """Whether to log this step: when Lightning writes logs (every log_every_n_steps),
        and at an epoch's last batch, so that the run's figures (run.json, the progress
        bar) are those of the epoch's end even in runs shorter than the interval."""
        trainer = self._trainer
        if trainer is None:
            return True
        if batch_idx + 1 >= trainer.num_training_batches:
            return True
        connector = getattr(trainer, "_logger_connector", None)  # Lightning 2.x
        return bool(connector.should_update_logs) if connector is not None else True

    def _professor_step(self, tokens: torch.Tensor, batch_idx: int, adversarial: bool,
                        logs: dict) -> torch.Tensor:
        """Professor Forcing: from each real window's theme and first token, the generator
        reads the window (teacher forcing) and writes its own (free running); the
        behaviour discriminator learns to tell their LSTM outputs apart, and in the
        adversarial phase the generator learns, beside its MLE loss, to write the way it
        reads. Returns the windows' themes (for the theme GAN)."""
        s, tok, behaviour = self.settings, self.tokenizer, self.behaviour
        assert behaviour is not None
        generator_opt, discriminator_opt, _, _ = self.optimizers()  # type: ignore[attr-defined]
        generator = self.net.generator
        length = min(s.adv_seq_len, tokens.size(1) - 1)
        with torch.set_grad_enabled(adversarial):
            nll, theme = self.mle_loss(tokens, s.theme_noise)
            start = theme.detach()
            taught, _ = generator.hidden(tokens[:, :length], start)
            ids, free = generator.free_run(start, length, tokens[:, 0])
        taught_mask = tokens[:, 1:length + 1] != tok.PAD
        eos = (ids == tok.EOS).long()
        free_mask = (torch.cumsum(eos, 1) - eos) == 0
        real_steps, real_seq = behaviour(taught.detach(), taught_mask)
        fake_steps, fake_seq = behaviour(free.detach(), free_mask)
        d_loss = (self._judged(real_steps, real_seq, taught_mask, s.real_label)
                  + self._judged(fake_steps, fake_seq, free_mask, 0.0))
        acc_real, acc_fake = (real_seq > 0).float().mean(), (fake_seq < 0).float().mean()
        skip_d = self._sits_out(acc_real, acc_fake, adversarial)
        self._step(discriminator_opt, d_loss, skip_d)
        logs.update({"train/d_loss": d_loss.detach(), "train/d_acc_real": acc_real,
                     "train/d_acc_fake": acc_fake, "train/d_skipped": skip_d.float()})
        if adversarial:
            with judging(behaviour):
                steps, sequence = behaviour(free, free_mask)
            fooling = self._judged(steps, sequence, free_mask, 1.0)
            g_loss = self._regularised(fooling + s.mle_weight * nll, tokens, theme, logs)
            self._step(generator_opt, g_loss)
            self.adv_steps_done += 1
            logs.update({"train/g_adv": fooling.detach(), "train/nll": nll.detach(),
                         "train/g_loss": g_loss.detach()})
        if batch_idx % self.trainer.log_every_n_steps == 0:  # type: ignore[attr-defined]
            logs["train/diversity_4gram"] = distinct_ngrams(ids, 4, tok.PAD)
        return theme

    def validation_step(self, tokens: torch.Tensor, batch_idx: int) -> None:
        nll, theme = self.mle_loss(tokens, noise=0.0)
        self.log("val/nll", nll, prog_bar=True, on_epoch=True, sync_dist=True,
                 batch_size=tokens.size(0))
        ordering = self.attribute_loss(tokens, theme)
        if ordering is not None:
            self.log("val/attribute_order", ordering, on_epoch=True, sync_dist=True,
                     batch_size=tokens.size(0))

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain types and tensors only, so the checkpoint loads with weights_only=True.
        # (callbacks.RandomState adds the random state under the same key.)
        checkpoint.setdefault("musegan", {})["adv_steps_done"] = self.adv_steps_done

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.adv_steps_done = (checkpoint.get("musegan") or {}).get("adv_steps_done", 0)


@contextlib.contextmanager
def judging(judge: torch.nn.Module):
    """The judge's parameters take no gradients in the block: the generator's (or the
    mapping's) loss flows through the judge to what it judges, and backward skips the
    judge's own weight gradients, which no optimizer of that loss would use."""
    parameters = [p for p in judge.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


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
          resume: bool = False, verbose: bool = False) -> Path:
    """Train a model on a prepared corpus; returns the run folder.

    Args:
        data_dir: a folder written by ``musegan prepare``; None prepares and uses music21's
            Bach chorales (cached in ``~/.cache/musegan``).
        out: the run folder: config.yaml, checkpoints/, logs/ (TensorBoard), samples/,
            run.json.
        config: settings (default ``RunConfig()``). A ``seq_len`` or ``adv_seq_len`` of 0
            is chosen from the corpus's bars (``musegan.config.fit_windows``) and saved
            in the run's config.yaml.
        resume: continue from ``out/checkpoints/last.ckpt``: same epoch, step, phase,
            optimizer state and random state.
        verbose: show Lightning's tips and hardware lines and third-party warnings
            (``quiet``); by default only musegan's own messages and Lightning's warnings.

    Raises:
        MuseganError: the data is not a prepared corpus, or ``out`` holds a run and
            ``resume`` is false.
    """
    from musegan.data import MidiDataModule
    from musegan.prepare import prepare_corpus

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MuseganError(f"{out} is a file; the run folder must be a folder",
                           cli=f"{out} is a file; give --out a folder")
    last = out / CHECKPOINTS / LAST
    if resume and not last.is_file():
        raise MuseganError(f"nothing to resume: {last} does not exist")
    if resume:
        saved = RunConfig.load(out / CONFIG_FILE)
        if saved.trainer.fast_dev_run:  # its settings are a smoke test's: one step a phase
            raise MuseganError(f"{out} was a fast_dev_run check, which trains nothing worth "
                               "resuming; start a run in another folder",
                               cli=f"{out} was a --fast-dev-run check, which trains nothing "
                                   "worth resuming; start a run with another --out")
        if config is None:  # the run's own settings
            config = saved
        elif config.model != saved.model:
            raise MuseganError(f"resuming continues {out} with its own model sizes; "
                               "start a new run in another folder to change them",
                               cli=f"--resume continues {out} with its own model sizes; "
                                   "start a new run (another --out) to change them")
    config = config or RunConfig()
    check_config(config)
    monitor = config.train.monitor
    if monitor != "val/nll" and not config.train.samples_per_validation:
        raise MuseganError(f"train.monitor {monitor} is computed on validation samples; set "
                           "train.samples_per_validation above 0",
                           cli=f"--monitor {monitor} is computed on validation samples; set "
                               "train.samples_per_validation above 0")
    # Under DDP Lightning re-runs this command for the other ranks after rank 0 has
    # written config.yaml: only rank 0 checks for an earlier run.
    if not resume and (out / CONFIG_FILE).exists() and _rank_zero():
        if RunConfig.load(out / CONFIG_FILE).trainer.fast_dev_run:  # nothing to continue
            raise MuseganError(f"{out} holds a fast_dev_run check, not a run to continue; "
                               "delete it or choose another folder",
                               cli=f"{out} holds a --fast-dev-run check, not a run to "
                                   "continue; delete it or choose another --out")
        if not last.exists():  # killed (SIGKILL, out of memory) before its first save
            raise MuseganError(f"{out} holds a run that saved no checkpoint (stopped in its "
                               "first epoch?), so there is nothing to resume; delete it or "
                               "choose another folder",
                               cli=f"{out} holds a run that saved no checkpoint (stopped in "
                                   "its first epoch?), so there is nothing to resume; delete "
                                   "it or choose another --out")
        raise MuseganError(f"{out} already holds a run; pass resume=True to continue it, "
                           "or choose another folder",
                           cli=f"{out} already holds a run; pass --resume to continue it, "
                               "or choose another --out")
    if resume:
        _check_epochs_left(config, last)
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
    if is_corpus(Path(data_dir)) and not Corpus(data_dir).split("val"):
        raise MuseganError(f"{data_dir} has no validation pieces, which training needs to "
                           "pick and judge its checkpoints; prepare it again with a larger "
                           "val_fraction (or more files)",
                           cli=f"{data_dir} has no validation pieces, which training needs to "
                               "pick and judge its checkpoints; prepare it again with a larger "
                               "--val-fraction (or more files)")
    if t.fast_dev_run:  # Lightning's own counts every optimizer's steps and runs one epoch
        s.mle_epochs, s.d_pretrain_epochs, s.adv_epochs = 1, 1, 1
        t.limit_train_batches = t.limit_val_batches = int(t.fast_dev_run)
        t.max_epochs = None
    if not s.seq_len or not s.adv_seq_len:
        seq_len, adv_seq_len = fit_windows(Corpus(data_dir).tokens_per_bar())
        s.seq_len = s.seq_len or seq_len
        s.adv_seq_len = s.adv_seq_len or min(adv_seq_len, s.seq_len)
    data = MidiDataModule(str(data_dir), seq_len=s.seq_len, batch_size=s.batch_size,
                          num_workers=s.num_workers, transpose=tuple(s.transpose))
    tokenizer = data.tokenizer  # a clear error here if data_dir is not a corpus

    L.seed_everything(t.seed, workers=True, verbose=False)
    module = GANModule(model=config.model.sizes(), train=dataclasses.asdict(s),
                       tokenizer=tokenizer.to_dict())
    if s.init_from and not resume:
        module.start_from(s.init_from)
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
    strategy = ddp_strategy(t)
    info = RunInfo(out, data_dir, resume)
    with quiet(verbose), training_threads(module.net.config.hidden_dim):
        try:
            trainer = _trainer(t, s, out, strategy, best_checkpoint, last_checkpoint, info)
        except (MisconfigurationException, TypeError, ValueError) as err:
            raise MuseganError(f"the Lightning Trainer refused these trainer settings: "
                               f"{str(err).splitlines()[0]}") from None
        with _clean_if_no_checkpoint(out, last, keep=resume or not _rank_zero()):
            if _rank_zero():
                out.mkdir(parents=True, exist_ok=True)
                (out / CONFIG_FILE).write_text(config.to_yaml())
            trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None,
                        weights_only=True)
    info.write(trainer, module)
    return out


def check_config(config: RunConfig) -> None:
    """Raise a one-line MuseganError for a setting that makes no sense: the ranges of
    ``RunConfig.check``, and Trainer names Lightning does not know (an accelerator,
    strategy or precision), before anything is written."""
    from lightning.fabric.connector import _convert_precision_to_unified_args
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    config.check()
    t = config.trainer
    known = {"auto", "gpu", *AcceleratorRegistry.available_accelerators()}
    if not isinstance(t.accelerator, str) or t.accelerator not in known:
        _refuse_trainer("accelerator", t.accelerator, sorted(known))
    known = {"auto", *StrategyRegistry.available_strategies()}
    if not isinstance(t.strategy, str):  # it is written to config.yaml, and read back
        raise MuseganError(f"setting trainer.strategy takes a strategy's name (auto, ddp, "
                           f"fsdp, ...), not a {type(t.strategy).__name__} object")
    if t.strategy not in known:
        _refuse_trainer("strategy", t.strategy, ["auto", "ddp", "fsdp", "deepspeed", "..."])
    with warnings.catch_warnings():  # Lightning's note on legacy values such as 16
        warnings.simplefilter("ignore")
        try:
            _convert_precision_to_unified_args(t.precision)  # type: ignore[arg-type]
        except ValueError:
            _refuse_trainer("precision", t.precision, ["32-true", "bf16-mixed", "16-mixed",
                                                       "64-true", "..."])


def _refuse_trainer(name: str, value: Any, known: list[str]) -> None:
    expected = "one of " + ", ".join(map(str, known))
    raise MuseganError(f"setting trainer.{name} must be {expected}; got {value!r}",
                       cli=f"--{name} must be {expected}; got {value!r}")


def _check_epochs_left(config: RunConfig, last: Path) -> None:
    """Refuse a resume whose epochs are all trained already: Lightning would stop at
    once, and the run would say it trained."""
    # mmap: the epoch counter without reading the weights
    done = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("epoch", -1) + 1
    t = config.trainer
    total = t.max_epochs if t.max_epochs is not None else config.train.epochs
    if total <= done:
        setting, flag, now = (("trainer.max_epochs", "--max-epochs", t.max_epochs)
                              if t.max_epochs is not None else
                              ("train.mle_epochs", "--mle-epochs", config.train.mle_epochs))
        more = now + done + 1 - total
        problem = (f"{last.parent.parent} has trained {done} epochs already, and these "
                   f"settings stop at {total}")
        raise MuseganError(f"{problem}; raise {setting} (to {more}, say) to train on",
                           cli=f"{problem}; give {flag} {more} (or more) to train on")


@contextlib.contextmanager
def _clean_if_no_checkpoint(out: Path, last: Path, keep: bool):
    """Remove what a failed start wrote into ``out`` (its config.yaml, logs, samples)
    when it failed before its first checkpoint, so that the folder can be trained into
    again: only the files a run writes, new since the start; what was there before, and
    anything else, is kept, and so is everything when ``keep``."""
    import shutil

    existed = out.exists()
    before = set(out.iterdir()) if existed else set()
    try:
        yield
    except BaseException:
        if not keep and not last.exists():
            ours = {CONFIG_FILE, CHECKPOINTS, "logs", "samples", RUN_INFO}  # what a run writes
            new = set(out.iterdir()) - before if out.exists() else set()
            for path in (p for p in new if p.name in ours):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            if not existed and out.exists() and not any(out.iterdir()):
                out.rmdir()
        raise


def _trainer(t: TrainerSettings, s: TrainSettings, out: Path, strategy: str, best_checkpoint,
             last_checkpoint, info) -> L.Trainer:
    from lightning.pytorch.loggers import TensorBoardLogger

    return L.Trainer(
        default_root_dir=str(out), accelerator=t.accelerator, devices=t.devices,
        strategy=strategy, num_nodes=t.num_nodes,
        precision=t.precision,  # type: ignore[arg-type]
        max_epochs=t.max_epochs if t.max_epochs is not None else s.epochs,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=(t.enable_progress_bar if t.enable_progress_bar is not None
                             else sys.stderr.isatty()),
        logger=TensorBoardLogger(str(out), name="logs", version=""),
        # best first, so that last.ckpt records the best path as it stands after this epoch
        callbacks=[best_checkpoint, last_checkpoint, info, MusicMetrics(), RandomState()],
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
    )


NOISE = (  # third-party messages a musegan user cannot act on (shown with verbose=True)
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's own use of a deprecated torch API
    r"The number of training batches .* is smaller than the logging interval",
    r".*does not have many workers",  # musegan chooses num_workers itself
    r".*Checkpoint directory .* exists and is not empty",  # a resumed run's own folder
)


@contextlib.contextmanager
def quiet(verbose: bool = False):
    """Lightning's tips and hardware lines, and the third-party warnings in ``NOISE``,
    filtered unless ``verbose``; musegan's own warnings always show."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for pattern in NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def cpu_supports_bf16_lstm() -> bool:
    """Whether this CPU runs LSTMs under bf16 autocast (oneDNN needs AMX or AVX512-BF16)."""
    lstm = torch.nn.LSTM(8, 8, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 8))
        return True
    except RuntimeError:
        return False


def ddp_strategy(t: TrainerSettings) -> str:
    """The strategy to give Lightning: a DDP strategy (``ddp``, ``ddp_spawn``, ..., or
    ``auto`` over several devices or machines, where Lightning picks DDP) that finds the
    unused parameters, which plain DDP refuses (each of the four optimizers' backward
    passes reaches one network only)."""
    strategy = t.strategy
    if strategy == "auto" and (_device_count(t) > 1 or t.num_nodes > 1):
        strategy = "ddp"
    if strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        return f"{strategy}_find_unused_parameters_true"
    return strategy


def _device_count(t: TrainerSettings) -> int:
    """How many devices ``t.devices`` asks for on this machine (auto and -1: every GPU
    there is for a GPU run, else one)."""
    devices = t.devices
    if isinstance(devices, str) and devices not in ("auto", "-1"):
        parts = [p for p in devices.split(",") if p.strip()]
        devices = [int(p) for p in parts] if "," in devices else int(parts[0])
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices in ("auto", -1, "-1"):
        on_gpu = t.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        return torch.cuda.device_count() if on_gpu else 1
    return int(devices)


def _check_precision(trainer: TrainerSettings) -> None:
    on_cpu = trainer.accelerator == "cpu" or (trainer.accelerator == "auto"
                                              and not torch.cuda.is_available())
    precision = str(trainer.precision)
    problem = None
    if precision.startswith("64") or precision.startswith("transformer-engine"):
        problem = f"precision {precision} is not one musegan's networks run in"
    elif on_cpu and precision.startswith("16"):
        problem = (f"precision {precision} needs a GPU (a CPU's LSTMs have no fp16); on a "
                   "CPU use 32-true, or bf16-mixed where the CPU has AMX or AVX512-BF16")
    elif on_cpu and precision.startswith("bf16") and not cpu_supports_bf16_lstm():
        problem = (f"precision {precision} needs a CPU with AMX or AVX512-BF16 "
                   "(this one has neither) or a GPU")
    if problem:
        raise MuseganError(f"{problem}; use trainer.precision 32-true",
                           cli=f"{problem}; use --precision 32-true")


def _rank_zero() -> bool:
    """Whether this is global rank 0, under torchrun, SLURM or Lightning's own launcher."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return (_get_rank() or 0) == 0
