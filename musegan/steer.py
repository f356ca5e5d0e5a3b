"""Steering themes along learned musical directions: ``--steer density=+1``.

Image GANs are steered by walking their latent space along a direction that changes one
property (GANalyze). Our theme vector is the natural place for it. For each attribute
below we fit a direction ``d`` in theme space, then calibrate its length so that

    attribute(G(theme + alpha * d)) ~ attribute(G(theme)) + alpha * sigma

where sigma is the attribute's standard deviation over real pieces: ``alpha = +1`` moves
the music by about one real-data standard deviation.

Three ways to find ``d`` are compared, and each attribute keeps the best:

* ``regression``: a ridge regression of the attribute on sampled themes; ``d`` is its
  weight vector. The image work's first baseline.
* ``contrast``: the mean theme of the pieces in the attribute's top quarter minus that of
  its bottom quarter (MusicVAE's attribute vectors).
* ``joint``: from the regressions of all attributes fitted together, the smallest step
  predicted to move this attribute by one std and the others not at all (conditional
  manipulation, as in InterFaceGAN), to keep steering from leaking into the others.

Each candidate is calibrated by generating at alpha = -1 and +1 and rescaling; of those
that then move their attribute by 0.5-1.5 std, the one moving the others least is kept.
A moved theme is brought back onto the theme space (the model's layer normalisation).

GANalyze learns ``d`` by back-propagating an assessor's score through the generator. Our
generator writes discrete tokens under a grammar, so there is no gradient to follow;
instead the calibration step measures the real effect of ``d`` by generating, as
GANalyze's loss would, and rescales it.

The attributes (each computed from the MIDI of a piece; ``ATTRIBUTES`` documents them):
``density``, ``register``, ``range``, ``syncopation``, ``leaps``, ``entropy`` and
``novelty``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pretty_midi
import torch

from musegan.errors import MuseganError
from musegan.evaluate import CopyIndex, melody_tokens
from musegan.metrics import melody_line, piece_features

NOVELTY_NGRAM = 4  # notes per n-gram for novelty: long enough to mean something, short
# enough that generated pieces share some (8-grams are almost never shared)


@dataclass(frozen=True)
class Attribute:
    description: str
    formula: str


ATTRIBUTES: dict[str, Attribute] = {
    "density": Attribute("notes per bar", "pitched notes / bars (Yang & Lerch's note count per bar)"),
    "register": Attribute("how high the music sits", "mean MIDI pitch of the pitched notes"),
    "range": Attribute("pitch range", "highest - lowest pitch, in semitones"),
    "syncopation": Attribute("rhythmic activity off the beat",
                             "share of note onsets that fall between beats"),
    "leaps": Attribute("leaps rather than steps",
                       "share of melody intervals larger than a whole tone (> 2 semitones)"),
    "entropy": Attribute("pitch-class variety", "entropy of the pitch-class counts, in bits"),
    "novelty": Attribute("distance from the training pieces",
                         f"1 - share of the melody's {NOVELTY_NGRAM}-note-step n-grams "
                         "(transposition-invariant) found in the training set"),
}


def attributes(midi: pretty_midi.PrettyMIDI, copy_index: CopyIndex | None = None) -> dict[str, float]:
    """The attributes of one piece (NaN where undefined; novelty needs ``copy_index``)."""
    features = piece_features(midi)
    pitched = [note for instrument in midi.instruments if not instrument.is_drum
               for note in instrument.notes]
    result = {"density": float(features["notes_per_bar"]),
              "range": float(features["pitch_range"]),
              "entropy": float(features["pitch_class_entropy"])}
    result["register"] = float(np.mean([n.pitch for n in pitched])) if pitched else math.nan
    if pitched:
        onsets = np.array([midi.time_to_tick(n.start) for n in pitched], dtype=np.float64)
        beats = np.array([midi.time_to_tick(t) for t in midi.get_beats()], dtype=np.float64)
        tolerance = midi.resolution / 24  # half a step of the 12-per-quarter grid
        nearest = np.abs(onsets[:, None] - beats[None, :]).min(axis=1) if len(beats) else onsets
        result["syncopation"] = float(np.mean(nearest > tolerance))
    else:
        result["syncopation"] = math.nan
    pitches, _ = melody_line(midi)
    intervals = np.abs(np.diff(pitches))
    result["leaps"] = float(np.mean(intervals > 2)) if len(intervals) else math.nan
    if copy_index is not None:
        copy_rate = copy_index.copying(melody_tokens(midi))["copy_rate"]
        result["novelty"] = 1.0 - copy_rate if not math.isnan(copy_rate) else math.nan
    return result


@dataclass
class Direction:
    """A calibrated direction: ``theme + alpha * vector`` moves ``name`` by about
    ``alpha * effect`` real-data standard deviations."""

    name: str
    vector: torch.Tensor  # (theme_dim,)
    effect: float  # measured change per unit alpha, in real-data standard deviations
    real_mean: float
    real_std: float
    method: str

    def info(self) -> dict:
        return {"effect": round(self.effect, 4), "real_mean": self.real_mean,
                "real_std": self.real_std, "method": self.method,
                "description": ATTRIBUTES[self.name].description,
                "formula": ATTRIBUTES[self.name].formula}


def real_statistics(midis: Sequence[pretty_midi.PrettyMIDI], names: Sequence[str],
                    copy_index: CopyIndex | None) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of each attribute over real pieces."""
    rows = [attributes(m, copy_index) for m in midis]
    stats = {}
    for name in names:
        values = np.array([r.get(name, math.nan) for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) < 2 or values.std() == 0:
            raise MuseganError(f"attribute '{name}' does not vary over the real pieces given; "
                               "cannot put steering in real-data units")
        stats[name] = (float(values.mean()), float(values.std()))
    return stats


def fit_directions(sampler, real: Sequence[pretty_midi.PrettyMIDI], names: Sequence[str],
                   train_melodies: Sequence[np.ndarray] | None = None, themes: int = 256,
                   bars: int = 8, calibration_themes: int = 64, temperature: float = 1.0,
                   seed: int = 0, progress: Callable[[str], None] | None = None
                   ) -> tuple[dict[str, Direction], dict]:
    """Fit and calibrate one direction per attribute for ``sampler``'s model.

    Args:
        sampler: a ``musegan.Sampler`` whose model has themes.
        real: real pieces (not generated), for the attributes' real-data means and spreads.
        names: attributes to fit (keys of ``ATTRIBUTES``).
        train_melodies: ``melody_tokens`` of the training pieces; needed for ``novelty``.
        themes: sampled themes to fit on; calibration_themes: themes to measure effects on.

    Returns:
        The directions, and a report: per attribute and method, the measured effect and
        the Spearman correlation of the attribute with alpha over -2..2.
    """
    unknown = [n for n in names if n not in ATTRIBUTES]
    if unknown:
        raise MuseganError(f"unknown attribute '{unknown[0]}'; known: {', '.join(ATTRIBUTES)}")
    if not sampler.theme_dim:
        raise MuseganError("this model has no themes to steer (a Markov baseline?)")
    if "novelty" in names and not train_melodies:
        raise MuseganError("novelty needs the training pieces: give the corpus (--data)")
    say = progress or (lambda message: None)
    copy_index = CopyIndex(train_melodies, n=NOVELTY_NGRAM) if train_melodies else None
    stats = real_statistics(real, names, copy_index)

    def measure(theme: torch.Tensor, seed: int) -> np.ndarray:
        """(themes, attributes) in real-data standard deviations."""
        theme = sampler.on_theme_space(theme)  # as Sampler.steer does
        rows = []
        for start in range(0, len(theme), 64):
            midis = sampler.generate(n=len(theme[start:start + 64]), bars=bars,
                                     temperature=temperature, seed=seed + start,
                                     theme=theme[start:start + 64])
            rows += [attributes(m, copy_index) for m in midis]
        return np.array([[(r.get(n, math.nan) - stats[n][0]) / stats[n][1] for n in names]
                         for r in rows])

    say(f"writing {themes} pieces from sampled themes")
    fit_themes = sampler.sample_theme(themes, seed=seed)
    values = measure(fit_themes, seed)
    candidates = {n: {} for n in names}
    x = fit_themes.cpu().double().numpy()
    x_centered = x - x.mean(0)
    ridge = 1.0 * len(x)  # a mild prior: the themes are 32 correlated numbers
    weights = np.zeros((x.shape[1], len(names)))
    for j, name in enumerate(names):
        ok = np.isfinite(values[:, j])
        y = values[ok, j] - values[ok, j].mean()
        xs = x_centered[ok]
        weights[:, j] = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]), xs.T @ y)
        # A step that the regression predicts moves the attribute by one std.
        candidates[name]["regression"] = weights[:, j] / max(weights[:, j] @ weights[:, j], 1e-12)
        order = np.argsort(values[ok, j])
        quarter = max(1, len(order) // 4)
        contrast = xs[order[-quarter:]].mean(0) - xs[order[:quarter]].mean(0)
        spread = values[ok, j][order[-quarter:]].mean() - values[ok, j][order[:quarter]].mean()
        candidates[name]["contrast"] = contrast / max(spread, 1e-6)
    if len(names) > 1:
        # The smallest step that the regressions predict moves this attribute by one std
        # and the others not at all: W (W^T W)^-1 e_j (conditional manipulation).
        joint = weights @ np.linalg.inv(weights.T @ weights + 1e-6 * np.eye(len(names)))
        for j, name in enumerate(names):
            candidates[name]["joint"] = joint[:, j]

    calibration = sampler.sample_theme(calibration_themes, seed=seed + 10_000)
    directions, report = {}, {}
    for j, name in enumerate(names):
        report[name], scaled = {}, {}
        for method, vector in candidates[name].items():
            say(f"calibrating {name} ({method})")
            vector = torch.as_tensor(vector, dtype=calibration.dtype, device=calibration.device)
            moves = _moves(measure, calibration, vector, seed)
            if abs(moves[j]) > 1e-3:  # rescale once so that alpha = 1 is one std, then re-measure
                vector = vector / moves[j]
                moves = _moves(measure, calibration, vector, seed)
            others = np.abs(np.delete(moves, j))
            report[name][method] = {"effect": round(float(moves[j]), 4),
                                    "leakage": round(float(np.nanmean(others)), 4) if len(others) else 0.0}
            scaled[method] = vector
        # The best method: of those whose effect is within 0.5-1.5 std (what alpha = 1
        # promises), the one moving the other attributes least; else the nearest to 1.
        fits = [m for m in scaled if 0.5 <= report[name][m]["effect"] <= 1.5]
        method = (min(fits, key=lambda m: report[name][m]["leakage"]) if fits else
                  min(scaled, key=lambda m: abs(report[name][m]["effect"] - 1)))
        report[name]["chosen"] = method
        directions[name] = Direction(name, scaled[method].cpu(), report[name][method]["effect"],
                                     *stats[name], method)
    return directions, report


def _moves(measure, themes: torch.Tensor, vector: torch.Tensor, seed: int) -> np.ndarray:
    """Mean change of every attribute per unit alpha, from alpha = -1 to +1, in stds."""
    up = measure(themes + vector, seed)
    down = measure(themes - vector, seed)  # measure() brings themes back to theme space
    return (np.nanmean(up, axis=0) - np.nanmean(down, axis=0)) / 2
