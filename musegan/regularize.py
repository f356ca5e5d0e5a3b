"""Attribute-regularised themes: theme number k rises with musical attribute k.

A theme learned by maximum likelihood carries what helps predict the piece, in whatever
directions the encoder finds. Steering (``musegan.steer``) then has to find each
attribute's direction after the fact, and finds none for an attribute the generator does
not take from its theme: the first bundled model's themes decided only 16 % of
pitch-class entropy and 24 % of leaps, so neither could be steered.

AR-VAE (Pati & Lerch 2020, "Attribute-based regularization of latent spaces for
variational auto-encoders") fixes this in training: for each attribute a and its own
latent number z_k, over every pair of pieces (i, j) in a batch,

    loss_k = mean |tanh(delta * (z_ik - z_jk)) - sign(a_i - a_j)|

so that z_k orders the pieces as a does. The generator, which writes each window back
from its theme, then learns to follow z_k, and moving a theme along axis k moves the
attribute. We add it to the MLE loss on the encoder's themes, with the attributes of the
real training windows.

``WindowAttributes`` computes the attributes from token ids, on the whole batch at once
(a few tensor operations, negligible beside the LSTMs). They follow ``musegan.steer``'s
formulas on notes as the tokens give them; ``novelty`` needs the training set and is not
one of them.
"""

from __future__ import annotations

import torch

from musegan.tokenizer import DRUMS, KINDS, Tokenizer

ATTRIBUTES = ("density", "register", "range", "syncopation", "leaps", "entropy")
SHARPNESS = 10.0  # AR-VAE's delta: themes 0.1 apart already count as ordered
LEAP = 2  # semitones; a larger melody interval is a leap (steer's "leaps")


def _last_index(mask: torch.Tensor) -> torch.Tensor:
    """For each position of mask (B, S), the index of the last true position at or
    before it, or -1."""
    index = torch.arange(mask.size(1), device=mask.device).expand_as(mask)
    return torch.where(mask, index, -1).cummax(1).values


def _next_index(mask: torch.Tensor) -> torch.Tensor:
    """For each position of mask (B, S), the index of the first true position after it,
    or S."""
    size = mask.size(1)
    index = torch.arange(size, device=mask.device).expand_as(mask)
    at_or_after = torch.where(mask, index, size).flip(1).cummin(1).values.flip(1)
    return torch.cat([at_or_after[:, 1:], torch.full_like(at_or_after[:, :1], size)], 1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 where mask; NaN for a row with none."""
    count = mask.sum(1)
    total = torch.where(mask, values, torch.zeros_like(values)).sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.nan)


class WindowAttributes:
    """Musical attributes of token windows: ``(B, S)`` ids -> ``(B, len(names))`` floats,
    NaN where undefined (no notes, no intervals).

    * density: pitched notes per bar (Bar tokens in the window)
    * register: mean pitch
    * range: highest - lowest pitch
    * syncopation: share of notes whose onset falls between beats (beats of the time signature
      in force; compound meters such as 6/8 beat every three, as pretty_midi does)
    * leaps: share of melody intervals larger than a whole tone, the melody being the
      highest note at each onset
    * entropy: entropy of the pitch-class counts, in bits
    """

    def __init__(self, tokenizer: Tokenizer, names: tuple[str, ...] = ATTRIBUTES):
        unknown = [n for n in names if n not in ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown theme attribute '{unknown[0]}'; "
                             f"known: {', '.join(ATTRIBUTES)}")
        self.names = tuple(names)
        self.bar = tokenizer.BAR
        self.kind = torch.from_numpy(tokenizer.kind.astype("int64"))  # (V,) index into KINDS
        self.value = torch.from_numpy(tokenizer.value)  # (V,) pitch, position, ... of each id
        self.program_of = torch.from_numpy(tokenizer.program_of)  # (V,) of voice tokens, else -1
        spq = tokenizer.steps_per_quarter
        beats = []
        for n, d in tokenizer.time_signatures:
            compound = n % 3 == 0 and n > 3  # pretty_midi's rule
            beats.append(4 * spq // d * (3 if compound else 1))
        self.beat_steps = torch.tensor(beats)  # (time signatures,) grid steps per beat
        self.default_time_signature = tokenizer.default_time_signature  # before any TimeSig

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        kind = self.kind.to(ids.device)[ids]  # (B, S)
        value = self.value.to(ids.device)[ids]  # (B, S)
        program = self.program_of.to(ids.device)[ids]  # (B, S)
        last_voice = _last_index(program >= 0)
        drums = (last_voice >= 0) & (program.gather(1, last_voice.clamp(min=0)) == DRUMS)
        pitched = (kind == KINDS.index("pitch")) & ~drums
        pitch = value.float()  # meaningful where pitched
        onset = (kind == KINDS.index("position")) | (ids == self.bar)  # a new onset or bar
        columns = {}
        bars = (ids == self.bar).sum(1).clamp(min=1)
        notes = pitched.sum(1)
        columns["density"] = torch.where(notes > 0, notes / bars, torch.nan)
        columns["register"] = _masked_mean(pitch, pitched)
        high = torch.where(pitched, pitch, -1.0).amax(1)
        low = torch.where(pitched, pitch, 1e9).amin(1)
        columns["range"] = torch.where(notes > 0, high - low, torch.nan)
        if "syncopation" in self.names:
            columns["syncopation"] = self._syncopation(ids, kind, value, pitched)
        if "leaps" in self.names:
            columns["leaps"] = self._leaps(onset, pitched, pitch)
        if "entropy" in self.names:
            classes = torch.zeros(ids.size(0), 12, device=ids.device)
            classes.scatter_add_(1, value % 12, pitched.float())
            share = classes / classes.sum(1, keepdim=True).clamp(min=1)
            entropy = -(share * torch.log2(share.clamp(min=1e-12))).sum(1)
            columns["entropy"] = torch.where(notes > 0, entropy, torch.nan)
        return torch.stack([columns[name] for name in self.names], 1)

    def _syncopation(self, ids: torch.Tensor, kind: torch.Tensor, value: torch.Tensor,
                     pitched: torch.Tensor) -> torch.Tensor:
        position = value.gather(1, _last_index(kind == KINDS.index("position")).clamp(min=0))
        last_ts = _last_index(kind == KINDS.index("time_signature"))
        ts = torch.where(last_ts >= 0, value.gather(1, last_ts.clamp(min=0)),
                         self.default_time_signature)
        beat = self.beat_steps.to(ids.device)[ts]
        return _masked_mean((position % beat != 0).float(), pitched)  # per note, as in steer

    def _leaps(self, onset: torch.Tensor, pitched: torch.Tensor,
               pitch: torch.Tensor) -> torch.Tensor:
        size = pitched.size(1)
        onset_group = torch.cumsum(onset.long(), 1)  # (B, S)
        following = _next_index(pitched)  # notes at one onset are in rising pitch order
        same_onset = onset_group.gather(1, following.clamp(max=size - 1)) == onset_group
        top = pitched & ~((following < size) & same_onset)  # the highest at its onset
        previous = _last_index(top)
        previous = torch.cat([torch.full_like(previous[:, :1], -1), previous[:, :-1]], 1)
        interval = top & (previous >= 0)
        step = (pitch - pitch.gather(1, previous.clamp(min=0))).abs()
        return _masked_mean((step > LEAP).float(), interval)


def trained_attributes(train: dict) -> list[str]:
    """The attributes that theme numbers 0, 1, ... are trained to order pieces by, from a
    run's train settings (``TrainSettings`` as a dict); [] when the regulariser is off."""
    return list(train.get("theme_attributes") or []) if train.get("attribute_weight") else []


def attribute_order_loss(theme: torch.Tensor, attributes: torch.Tensor,
                         sharpness: float = SHARPNESS) -> torch.Tensor:
    """AR-VAE's loss: theme number k (``theme[:, k]``) should order the batch as
    ``attributes[:, k]`` does. theme (B, T), attributes (B, K) with K <= T, NaN ignored.

    Returns the mean over attributes of the mean pairwise |tanh(delta dz) - sign(da)|,
    over the attributes with at least two defined values (all attributes at once: no
    per-attribute loop, no host sync).
    """
    k = attributes.size(1)
    valid = torch.isfinite(attributes)  # (B, K)
    a = torch.where(valid, attributes, 0.0)
    z = theme[:, :k]
    ordered = torch.tanh(sharpness * (z[:, None, :] - z[None, :, :]))  # (B, B, K)
    target = torch.sign(a[:, None, :] - a[None, :, :]).to(ordered.dtype)
    pairs = valid[:, None, :] & valid[None, :, :]
    count = valid.sum(0)  # (K,)
    per_attribute = ((ordered - target).abs() * pairs).sum((0, 1)) / (count * count).clamp(min=1)
    used = count >= 2
    # An attribute with too few values adds 0 and keeps the graph (and DDP's sync) whole.
    return (per_attribute * used).sum() / used.sum().clamp(min=1)
