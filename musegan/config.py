"""A training run's settings: ``RunConfig`` and its sections, as RUN/config.yaml holds them.

Three sections, each a dataclass whose every field has a default:

* ``model``: the network sizes (``musegan.models.ModelConfig``; the vocabulary's size and
  padding id come from the corpus's tokenizer, so they are not settings);
* ``train``: what the training loop does (``TrainSettings``), including its phases;
* ``trainer``: Lightning Trainer options passed through (``TrainerSettings``).

Settings come from the defaults, then a YAML file, then ``section.key=value`` strings
(``musegan train --set``). Nothing here imports Lightning.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from musegan.errors import MuseganError
from musegan.models import TOKENIZER_FIELDS, ModelConfig
from musegan.regularize import ATTRIBUTES as THEME_ATTRIBUTES

# What can pick the best checkpoint (--monitor), and which way is better.
MONITORS = {"val/nll": "min", "val/music/gap": "min", "val/diversity_4gram": "max"}
PHASES = ("mle", "d_pretrain", "adversarial")
ADVERSARIAL_MODES = ("gumbel", "professor")  # train.adversarial_mode
SEQ_LEN = 0  # tokens per training window; 0: WINDOW_BARS bars of the corpus (fit_windows)
WINDOW_BARS = 8  # a window holds this many of the corpus's median bars ...
WINDOW_TOKENS = (256, 2048)  # ... within these bounds (memory grows with the window)
BATCH_SIZE = 32
# Random transposition of training windows, in semitones, inclusive. Off by default:
# each window moves to a key of its own, so the model must find the key from a window's
# notes, and short runs write out of key. bench/corpus.py on CRÉ (3 epochs, same steps):
# in-key share 0.97 without, 0.68 with (-5, 6); real tunes 1.00. (-5, 6) reaches every
# key once by the smallest move, for a small corpus in few keys.
TRANSPOSE = (0, 0)


def fit_windows(tokens_per_bar: float) -> tuple[int, int]:
    """(seq_len, adv_seq_len) for a corpus whose median bar takes ``tokens_per_bar``
    tokens: ``WINDOW_BARS`` bars, rounded up to 64 and kept within ``WINDOW_TOKENS``, and
    half that for the adversarial rollout. A folk melody (~29 tokens a bar) gets 256 and
    128; four-voice chorales (~78) 640 and 320; piano (~140) 1152 and 576."""
    low, high = WINDOW_TOKENS
    seq_len = min(high, max(low, -(-int(math.ceil(WINDOW_BARS * tokens_per_bar)) // 64) * 64))
    return seq_len, seq_len // 2


@dataclass
class TrainSettings:
    """What the training loop does. Every field has a default; see ``--print-config``."""

    seq_len: int = SEQ_LEN
    batch_size: int = BATCH_SIZE
    transpose: list = field(default_factory=lambda: list(TRANSPOSE))  # random key change
    num_workers: int | None = None  # data loader processes (default: up to 2)
    mle_epochs: int = 20
    d_pretrain_epochs: int = 1
    adv_epochs: int = 10
    # The sequence-GAN phases (d_pretrain_epochs, adv_epochs) after MLE. Off by default:
    # measured, no variant made the music better (README, "The adversarial phase").
    adversarial: bool = False
    # What the discriminator judges in the adversarial phase: "gumbel", the tokens the
    # generator writes, relaxed by Gumbel-softmax (RelGAN); "professor", the generator's
    # LSTM outputs while it writes against while it reads real music (Professor Forcing).
    adversarial_mode: str = "gumbel"
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
    adv_seq_len: int = 0  # tokens the generator writes per adversarial step; 0: seq_len / 2
    d_win_accuracy: float = 0.95  # skip D's update while more accurate (1: never)
    max_bad_steps: int = 10  # non-finite losses in a row before training stops
    samples_per_validation: int = 4  # MIDI files written at each validation
    sample_bars: int = 16  # bars per validation sample
    # Sample at every Nth validation only (and always at the last epoch): sampling can
    # cost more than a small corpus's epoch. Monitoring val/music/* needs 1.
    sample_every: int = 1
    monitor: str = "val/nll"  # what picks the best checkpoint: one of MONITORS
    # Start from another model's weights (a model file or a .ckpt of the same sizes and
    # tokenizer), to fine-tune it on this corpus; "" starts from scratch.
    init_from: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> TrainSettings:
        """Rebuild from ``dataclasses.asdict``; settings this musegan does not know are
        left out, so checkpoints of other versions still load."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def epochs(self) -> int:
        """Epochs of all phases together."""
        adversarial = self.d_pretrain_epochs + self.adv_epochs if self.adversarial else 0
        return self.mle_epochs + adversarial

    def phase(self, epoch: int) -> str:
        """The phase an epoch (counted from 0) belongs to: one of ``PHASES``."""
        if epoch < self.mle_epochs or not self.adversarial:
            return "mle"
        if epoch < self.mle_epochs + self.d_pretrain_epochs:
            return "d_pretrain"
        return "adversarial"


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
    enable_progress_bar: bool | None = None  # default: on a terminal only (else one line an epoch)


@dataclass
class RunConfig:
    """Everything a run needs, as written to RUN/config.yaml."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)

    def to_dict(self) -> dict:
        return {"model": self.model.sizes(), "train": dataclasses.asdict(self.train),
                "trainer": dataclasses.asdict(self.trainer)}

    @classmethod
    def from_dict(cls, data: dict | None) -> RunConfig:
        config = cls()
        for section, values in (data or {}).items():
            if section not in SECTIONS:
                raise MuseganError(f"unknown config section '{section}' "
                                   "(expected model, train, trainer)")
            config.set_section(section, values or {})
        return config

    def set_section(self, section: str, values: dict) -> None:
        target = getattr(self, section)
        names = {f.name for f in dataclasses.fields(target)} - set(TOKENIZER_FIELDS)
        for key, value in values.items():
            if key not in names:
                raise MuseganError(f"unknown setting '{section}.{key}'; "
                                   "RunConfig().to_yaml() lists them all",
                                   cli=f"unknown setting '{section}.{key}'; "
                                       "see `musegan train --print-config`")
            setattr(target, key, _coerce(f"{section}.{key}", getattr(target, key), value))

    def set(self, dotted: str, value: Any) -> None:
        """Set 'section.key' from a string or value (YAML-parsed, so '1e-4' is a float)."""
        if "." not in dotted:
            raise MuseganError(f"settings are written section.key=value, got '{dotted}'")
        section, key = dotted.split(".", 1)
        if section not in SECTIONS:
            raise MuseganError(f"unknown config section '{section}'")
        if isinstance(value, str):
            value = yaml.safe_load(value)
        self.set_section(section, {key: value})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def check(self) -> None:
        """Raise a one-line MuseganError for the first setting that makes no sense (a
        batch of 0, a learning rate below 0, an unknown monitor, ...), before anything
        is built or written. The Lightning Trainer's own names (accelerator, strategy,
        precision) are checked by ``musegan.training.check_config``."""
        for section in SECTIONS:
            for name, value in vars(getattr(self, section)).items():
                key = f"{section}.{name}"
                if key in RANGES and value is not None:
                    _check_range(key, value, *RANGES[key])
                elif key in CHOICES and value not in CHOICES[key]:
                    _refuse(key, value, "one of " + ", ".join(map(str, CHOICES[key])))
        s, t = self.train, self.trainer
        low_high = s.transpose
        if (not isinstance(low_high, (list, tuple)) or len(low_high) != 2
                or not all(_is_int(x) for x in low_high) or low_high[0] > low_high[1]):
            _refuse("train.transpose", low_high, "[LOW, HIGH] semitones, LOW <= HIGH, "
                    "e.g. [-5, 6] (or [0, 0]: off)")
        unknown = [a for a in s.theme_attributes or [] if a not in THEME_ATTRIBUTES]
        if unknown:
            _refuse("train.theme_attributes", unknown,
                    "a list of " + ", ".join(THEME_ATTRIBUTES) + " ([] turns it off)")
        if not s.epochs and t.max_epochs is None and not t.fast_dev_run:
            raise MuseganError("no epochs to train: train.mle_epochs is 0 and the adversarial "
                               "phase is off; set train.mle_epochs (or trainer.max_epochs)",
                               cli="no epochs to train: --mle-epochs is 0 and the adversarial "
                                   "phase is off; give --mle-epochs N")
        if t.limit_val_batches is not None and t.limit_val_batches == 0:
            _refuse("trainer.limit_val_batches", t.limit_val_batches, "above 0: training "
                    "validates every epoch to pick its checkpoints (a count or a share)")
        for key in ("trainer.limit_train_batches", "trainer.limit_val_batches"):
            value = getattr(t, key.split(".")[1])
            if value is not None and not (_is_int(value) and value >= 1 or isinstance(
                    value, float) and 0 < value <= 1):
                _refuse(key, value, "a count of batches (1 or more) or a share in (0, 1]")
        if not _devices_ok(t.devices):
            _refuse("trainer.devices", t.devices,
                    "auto, a count (1 or more; -1 for all), or device numbers such as 0,1")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text()))
        except (OSError, yaml.YAMLError) as err:
            raise MuseganError(f"{path}: cannot read the config ({err})") from None


SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig))

# What each number may be: (lowest, highest, whether the lowest itself is allowed);
# None is no bound. A setting left at None (a default chosen at run time) is not checked.
RANGES = {
    **{f"model.{name}": (1, None, True) for name in (
        "embed_dim", "hidden_dim", "num_layers", "theme_dim", "noise_dim", "mapping_layers",
        "mapping_width", "encoder_dim", "disc_embed_dim", "disc_hidden_dim")},
    "model.dropout": (0, 1, True),
    "train.seq_len": (0, None, True), "train.adv_seq_len": (0, None, True),
    "train.batch_size": (1, None, True), "train.num_workers": (0, None, True),
    "train.mle_epochs": (0, None, True), "train.d_pretrain_epochs": (0, None, True),
    "train.adv_epochs": (0, None, True),
    **{f"train.{name}": (0, None, False) for name in (
        "lr", "adv_lr", "d_lr", "theme_lr", "gumbel_beta_max")},
    **{f"train.{name}": (0, None, True) for name in (
        "grad_clip", "theme_noise", "mle_weight", "feature_matching", "attribute_weight",
        "samples_per_validation")},
    "train.token_dropout": (0, 1, True),
    "train.real_label": (0, 1, False), "train.d_win_accuracy": (0, 1, False),
    "train.max_bad_steps": (1, None, True), "train.sample_bars": (1, None, True),
    "train.sample_every": (1, None, True),
    "trainer.num_nodes": (1, None, True), "trainer.max_epochs": (1, None, True),
    "trainer.seed": (0, 2**32 - 1, True), "trainer.fast_dev_run": (0, None, True),
    "trainer.log_every_n_steps": (1, None, True),
}
CHOICES = {"train.monitor": tuple(MONITORS), "train.adversarial_mode": ADVERSARIAL_MODES,
           "model.theme_norm": ("layernorm", "tanh")}
# The command line's shortcut for a setting, named in its errors.
FLAGS = {"train.batch_size": "--batch-size", "train.seq_len": "--seq-len",
         "train.mle_epochs": "--mle-epochs", "train.adv_epochs": "--adv-epochs",
         "train.monitor": "--monitor", "trainer.accelerator": "--accelerator",
         "trainer.devices": "--devices", "trainer.strategy": "--strategy",
         "trainer.num_nodes": "--num-nodes", "trainer.precision": "--precision",
         "trainer.max_epochs": "--max-epochs", "trainer.seed": "--seed",
         "trainer.limit_train_batches": "--limit-train-batches",
         "trainer.limit_val_batches": "--limit-val-batches",
         "trainer.fast_dev_run": "--fast-dev-run"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse(key: str, value: Any, expected: str) -> None:
    flag = f"{FLAGS[key]} ({key})" if key in FLAGS else key
    raise MuseganError(f"setting {key} must be {expected}; got {value!r}",
                       cli=f"{flag} must be {expected}; got {value!r}")


def _check_range(key: str, value: Any, low: float | None, high: float | None,
                 low_allowed: bool) -> None:
    """Refuse ``value`` unless it is a finite number from ``low`` (or above it, where
    ``low_allowed`` is false) up to ``high`` inclusive."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (number and math.isfinite(value)
            and (low is None or (value >= low if low_allowed else value > low))
            and (high is None or value <= high)):
        return
    lowest = f"at least {low}" if low_allowed else f"above {low}"
    _refuse(key, value, lowest if high is None else f"{lowest} and at most {high}")


def _devices_ok(devices: Any) -> bool:
    """Whether Lightning can read ``devices``: auto, a count, -1, or device numbers."""
    if devices in ("auto", -1, "-1") or _is_int(devices) and devices >= 1:
        return True
    if isinstance(devices, str):
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        return bool(parts) and all(p.isdigit() for p in parts) and (
            "," in devices or int(parts[0]) >= 1)
    return (isinstance(devices, (list, tuple)) and bool(devices)
            and all(_is_int(d) and d >= 0 for d in devices))


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
