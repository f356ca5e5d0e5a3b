"""Steering themes along learned musical directions: ``--steer density=+1``.

Image GANs are steered by walking their latent space along a direction that changes one
property (GANalyze). Our theme vector is the natural place for it. For each attribute
below we fit a direction ``d`` in theme space, then calibrate its length so that

    attribute(G(theme + alpha * d)) ~ attribute(G(theme)) + alpha * sigma

where sigma is the attribute's standard deviation over real excerpts as long as the
pieces written (``excerpts``): ``alpha = +1`` moves the music by about one real-data
standard deviation.

Candidate directions, compared for each attribute:

* ``regression``: a ridge regression of the attribute on sampled themes; ``d`` is its
  weight vector. The image work's first baseline.
* ``contrast``: the mean theme of the pieces in the attribute's top quarter minus that of
  its bottom quarter (MusicVAE's attribute vectors).
* ``axis``: for a model trained with attribute-regularised themes (``musegan.regularize``,
  AR-VAE), the theme number trained to order pieces by this attribute.
* ``joint``: from the regressions of all attributes fitted together, the smallest step
  predicted to move this attribute by one std and the others not at all (conditional
  manipulation, as in InterFaceGAN), to keep steering from leaking into the others.
* ``ganalyze`` (and ``ganalyze-0.3``, ``ganalyze-0.1``): GANalyze's loss,
  ``|A(theme + alpha d) - A(theme) - alpha e_j|^2``, minimised over ``d``. GANalyze
  back-propagates through the generator and an assessor; our generator writes discrete
  tokens under a grammar, so there is no gradient to follow. ``A`` is instead a small
  network trained to predict every attribute from the theme (from the same sampled
  pieces), and the other attributes' errors count 1, 0.3 or 0.1 times.

Each candidate is calibrated by generating: the sides alpha = -1 and alpha = +1 apart
(attributes saturate), each rescaled until it moves its attribute by one std. Each side
keeps the candidate that best keeps steering's promises (``_Side.rank``). A moved theme
is brought back onto the theme space (the model's layer normalisation).

The attributes (each computed from the MIDI of a piece; ``ATTRIBUTES`` documents them):
``density``, ``register``, ``range``, ``syncopation``, ``leaps``, ``entropy`` and
``novelty``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from musegan.copying import CopyIndex, melody_tokens
from musegan.errors import MuseganError, output_exists
from musegan.evaluate import evaluate
from musegan.metrics import melody_line, piece_features

EFFECT_RANGE = (0.5, 1.5)  # alpha = +-1 promises a move of this many real stds
MAX_OVERLAP_DROP = 0.10  # and music whose overlap with real music drops by at most this
GANALYZE_WEIGHTS = (1.0, 0.3, 0.1)  # how much the other attributes' moves count in the
# GANalyze loss: from "leave them alone" to "mostly move this one" (selection picks)
NOVELTY_NGRAM = 4  # notes per n-gram for novelty: long enough to mean something, short
# enough that generated pieces share some (8-grams are almost never shared)


@dataclass(frozen=True)
class Attribute:
    description: str
    formula: str


ATTRIBUTES: dict[str, Attribute] = {
    "density": Attribute("notes per bar",
                         "pitched notes / bars (Yang & Lerch's note count per bar)"),
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


def attributes(midi: pretty_midi.PrettyMIDI,
               copy_index: CopyIndex | None = None) -> dict[str, float]:
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


def excerpts(midi: pretty_midi.PrettyMIDI, bars: int) -> list[pretty_midi.PrettyMIDI]:
    """``midi`` cut into consecutive excerpts of ``bars`` bars, each starting at time 0.

    Steering's units are the spread of each attribute over real music of the length the
    model writes: range, register and entropy spread more over 8 bars than over whole
    tunes. A shorter leftover is dropped, a piece shorter than ``bars`` is kept whole, and
    an excerpt with a tempo change inside is skipped (its beats could not be kept).
    """
    downbeats = midi.get_downbeats()
    if len(downbeats) <= bars:
        return [midi]
    # bar lines, closing the last bar as long as the one before it
    edges = np.append(downbeats, 2 * downbeats[-1] - downbeats[-2])
    tempo_times, tempi = midi.get_tempo_changes()
    pieces = []
    for first in range(0, len(downbeats) - bars + 1, bars):
        start, end = edges[first], edges[first + bars]
        if np.any((tempo_times > start + 1e-6) & (tempo_times < end - 1e-6)):
            continue
        tempo = tempi[max(0, np.searchsorted(tempo_times, start + 1e-6) - 1)]
        piece = pretty_midi.PrettyMIDI(resolution=midi.resolution, initial_tempo=float(tempo))
        meters = [m for m in midi.time_signature_changes if m.time <= start + 1e-6]
        if meters:
            piece.time_signature_changes = [
                pretty_midi.TimeSignature(meters[-1].numerator, meters[-1].denominator, 0.0)]
        for instrument in midi.instruments:
            copy = pretty_midi.Instrument(instrument.program, instrument.is_drum, instrument.name)
            copy.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start - start,
                                           min(n.end, end) - start)
                          for n in instrument.notes if start - 1e-6 <= n.start < end - 1e-6]
            piece.instruments.append(copy)
        pieces.append(piece)
    return pieces


@dataclass
class Direction:
    """A calibrated direction: ``theme + |alpha| * steps[alpha > 0]`` moves ``name`` by
    about ``alpha`` real-data standard deviations (``effect`` says what was measured).

    The two sides are calibrated apart, because attributes saturate: a model that writes
    busy tunes can still be made sparser more easily than busier."""

    name: str
    steps: torch.Tensor  # (2, theme_dim): the step for alpha = -1, then for alpha = +1
    effect: tuple[float, float]  # measured change at alpha = -1 and +1, in real stds
    leakage: float  # mean |change| of the other attributes at alpha = -1 and +1, in stds
    overlap_drop: float  # relative drop of evaluate's mean overlap at alpha = -1 or +1
    real_mean: float
    real_std: float
    method: str
    bars: int  # piece length it was calibrated at, and of the real excerpts behind the std

    def info(self) -> dict:
        return {"effect": [round(e, 4) for e in self.effect], "leakage": round(self.leakage, 4),
                "overlap_drop": round(self.overlap_drop, 4), "real_mean": self.real_mean,
                "real_std": self.real_std, "method": self.method, "bars": self.bars,
                "description": ATTRIBUTES[self.name].description,
                "formula": ATTRIBUTES[self.name].formula}


def shortcomings(facts: dict) -> list[str]:
    """What a stored direction (``Direction.info()``) fails to deliver, in words: an
    alpha = +-1 that moves its attribute by less than 0.5 or over 1.5 std, other attributes
    moving by over half as much as it, or music much less like real music."""
    down, up = facts["effect"]
    problems = [f"alpha = {sign}1 moves it by {moved:+.2f} std"
                for sign, moved, wanted in (("-", down, -1), ("+", up, 1))
                if not _on_target(wanted * moved)]
    if facts.get("leakage", 0) > 0.5 * min(abs(down), abs(up)):
        problems.append(f"the other attributes move by {facts['leakage']:.2f} std on average")
    if facts.get("overlap_drop", 0) > MAX_OVERLAP_DROP:
        problems.append(f"the music's overlap with real pieces drops by "
                        f"{facts['overlap_drop']:.0%}")
    return problems


def _on_target(moved: float) -> bool:
    return EFFECT_RANGE[0] <= moved <= EFFECT_RANGE[1]


def steer_theme(theme: torch.Tensor, steps: torch.Tensor, alpha: float) -> torch.Tensor:
    """``theme`` moved by ``alpha`` along a direction's ``steps`` (2, theme_dim)."""
    steps = steps.to(theme.device, theme.dtype)
    return theme + abs(float(alpha)) * steps[1 if alpha > 0 else 0]


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


class _Probe:
    """Writes pieces from themes and measures them: attributes in real-data stds, and
    ``musegan evaluate``'s mean overlap with real excerpts."""

    def __init__(self, sampler, names, stats: dict[str, tuple[float, float]], copy_index, real,
                 bars, temperature):
        self.sampler, self.names, self.stats = sampler, names, stats
        self.copy_index, self.real = copy_index, real
        self.bars, self.temperature = bars, temperature

    def __call__(self, themes: torch.Tensor, seed: int) -> tuple[np.ndarray, list]:
        themes = self.sampler.on_theme_space(themes)  # as Sampler.steer does
        midis = []
        for start in range(0, len(themes), 64):
            midis += self.sampler.generate(n=len(themes[start:start + 64]), bars=self.bars,
                                           temperature=self.temperature, seed=seed + start,
                                           theme=themes[start:start + 64])
        rows = [attributes(m, self.copy_index) for m in midis]
        values = np.array([[(r.get(n, math.nan) - self.stats[n][0]) / self.stats[n][1]
                            for n in self.names] for r in rows])
        return values, midis

    def overlap(self, midis) -> float:
        return evaluate(midis, self.real)["mean_overlap"]


def fit_directions(sampler, real: Sequence[pretty_midi.PrettyMIDI], names: Sequence[str],
                   train_melodies: Sequence[np.ndarray] | None = None, themes: int = 2048,
                   bars: int = 8, calibration_themes: int = 128, temperature: float = 1.0,
                   seed: int = 0, progress: Callable[[str], None] | None = None
                   ) -> tuple[dict[str, Direction], dict]:
    """Fit and calibrate one direction per attribute for ``sampler``'s model.

    Args:
        sampler: a ``musegan.Sampler`` whose model has themes.
        real: real pieces the model was not trained on; cut into excerpts of ``bars`` bars,
            they give the attributes' real-data means and spreads (the units of alpha).
        names: attributes to fit (keys of ``ATTRIBUTES``).
        train_melodies: ``melody_tokens`` of the training pieces; needed for ``novelty``.
        themes: sampled themes to fit on; calibration_themes: themes to measure effects on.
        bars: length of the pieces written while fitting and calibrating.

    Returns:
        The directions, and a report: per attribute and method, the measured effect at
        alpha = -1 and +1, the leakage and the overlap drop, and the method chosen; under
        ``"assessor"``, how well each attribute is predicted from the theme (held-out R^2
        of the ridge regression and of the learned assessor).
    """
    unknown = [n for n in names if n not in ATTRIBUTES]
    if unknown:
        raise MuseganError(f"unknown attribute '{unknown[0]}'; known: {', '.join(ATTRIBUTES)}")
    if not sampler.theme_dim:
        raise MuseganError("this model has no themes to steer (a Markov baseline?)")
    if "novelty" in names and not train_melodies:
        raise MuseganError("novelty needs the training pieces: pass their melodies "
                           "(train_melodies)",
                           cli="novelty needs the training pieces: give the corpus (--data)")
    say = progress or (lambda message: None)
    copy_index = CopyIndex(train_melodies, n=NOVELTY_NGRAM) if train_melodies else None
    real = [piece for midi in real for piece in excerpts(midi, bars)]
    probe = _Probe(sampler, names, real_statistics(real, names, copy_index), copy_index, real,
                   bars, temperature)

    say(f"writing {themes} pieces from sampled themes")
    fit_themes = sampler.sample_theme(themes, seed=seed)
    values, _ = probe(fit_themes, seed)
    axes = {name: k for k, name in enumerate(sampler.model.card.get("theme_attributes") or [])
            if name in names}
    candidates, assessor_report = _candidates(sampler, fit_themes, values, names, seed, say, axes)

    calibration = sampler.sample_theme(calibration_themes, seed=seed + 10_000)
    base, base_midis = probe(calibration, seed)
    base_overlap = probe.overlap(base_midis)
    # A step longer than a theme itself turns it into another theme: the most we allow.
    longest = float(sampler.on_theme_space(calibration).norm(dim=1).mean())
    directions, report = {}, {"assessor": assessor_report}
    for j, name in enumerate(names):
        best: dict[int, _Side]
        report[name], best = {}, {}
        for method, candidate in candidates[name].items():
            say(f"calibrating {name} ({method})")
            vector = torch.as_tensor(candidate, dtype=calibration.dtype, device=calibration.device)
            report[name][method] = []
            for side in (-1, 1):
                step, moves, midis = _calibrate(probe, calibration, base, side * vector, j, side,
                                                longest, seed)
                measured = _Side(method, step.cpu(), float(moves[j]),
                                 float(np.nanmean(np.abs(np.delete(moves, j))))
                                 if len(names) > 1 else 0.0,
                                 max(0.0, 1 - probe.overlap(midis) / base_overlap))
                report[name][method].append(measured.facts())
                if side not in best or measured.rank(side) < best[side].rank(side):
                    best[side] = measured
        down, up = best[-1], best[1]
        report[name]["chosen"] = [down.method, up.method]
        directions[name] = Direction(
            name, torch.stack([down.step, up.step]), (down.effect, up.effect),
            (down.leakage + up.leakage) / 2, max(down.overlap_drop, up.overlap_drop),
            *probe.stats[name],
            down.method if down.method == up.method else f"{down.method} / {up.method}",
            bars)
    return directions, report


def fit_model(model: str | Path, data: str | Path, out: str | Path | None = None,
              names: Sequence[str] | None = None, themes: int = 2048, bars: int = 8,
              calibration_themes: int = 128, seed: int = 0, force: bool = False,
              progress: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Fit steering directions for a model and write them into a model file
    (``musegan steer --fit``); returns the file written and ``fit_directions``' report.

    Args:
        model: a model file, a Lightning ``.ckpt``, or a run folder (its last checkpoint).
        data: the corpus (``musegan prepare``) the model was trained on: its validation
            pieces set the attributes' units, its training pieces novelty's reference.
        out: the file to write; default: the model file itself (which needs ``force``),
            or, for a checkpoint or run, ``RUN/model.safetensors`` where export writes.
        names: attributes to fit (default: all of ``ATTRIBUTES``).
        force: replace an existing file.
        progress: called with a line of text at each stage.
    """
    from musegan.corpus import Corpus, is_corpus
    from musegan.modelfile import add_steering, save_model
    from musegan.runs import CHECKPOINTS, LAST
    from musegan.sampling import Sampler

    say = progress or (lambda message: None)
    if not is_corpus(Path(data)):
        raise MuseganError(
            f"{data} is not a prepared corpus; fitting needs the corpus (from musegan prepare) "
            "the model was trained on: its pieces set the attributes' real-data units",
            cli="--fit needs --data DATA_DIR, the corpus (from musegan prepare) the model was "
                "trained on: its pieces set the attributes' real-data units")
    names = list(names) if names else list(ATTRIBUTES)
    model = Path(model)
    run = model if model.is_dir() else None
    if run is not None:  # a run folder: its last checkpoint, written where export writes
        model = run / CHECKPOINTS / LAST
    sampler = Sampler.from_pretrained(model)
    assert sampler.path is not None  # from_pretrained sets it
    source = Path(sampler.path)
    if source.suffix == ".ckpt":  # the directions go into a model in the sharing format
        out = Path(out) if out else (run or source.parent.parent) / "model.safetensors"
    else:
        out = Path(out) if out else source
    clashes = [p for p in (out, out.with_suffix(".md")) if p.exists()]
    if clashes and not force:  # checked now, not after minutes of fitting
        raise output_exists(clashes[0])
    corpus = Corpus(data)
    held_out = corpus.split("val")
    if len(held_out) < 20:  # too few unseen pieces: measure on training pieces instead
        held_out = corpus.split("train")
        if "novelty" in names:  # a training piece is never novel against itself
            names.remove("novelty")
            say("novelty left out: the corpus has under 20 validation pieces, and novelty "
                "needs real pieces that are not in the training set")
    real = [corpus.tokenizer.decode(corpus.tokens(i).tolist()) for i in held_out[:300]]
    train = [melody_tokens(corpus.tokenizer.decode_score(corpus.tokens(i).tolist()))
             for i in corpus.split("train")]
    directions, report = fit_directions(
        sampler, real, names, train_melodies=train, themes=themes, bars=bars,
        calibration_themes=calibration_themes, seed=seed, progress=say)
    if source.suffix == ".ckpt":
        source = save_model(sampler.net, sampler.tokenizer, out, sampler.model.card)
        path = add_steering(source, directions, force=True)
    else:
        path = add_steering(source, directions, out, force=force)
    return path, report


@dataclass
class _Side:
    """One side (alpha = -1 or +1) of a candidate direction, as calibrated."""

    method: str
    step: torch.Tensor
    effect: float  # change of its attribute, in real stds
    leakage: float  # mean |change| of the others
    overlap_drop: float

    def rank(self, side: int) -> tuple:
        """Steering's promises, most important first: the attribute moves by 0.5-1.5 std,
        the music's overlap with real pieces drops by at most 10 %; then the least
        unintended movement, in stds: the attribute's miss of 1 plus the others' moves."""
        moved = side * self.effect
        return (not _on_target(moved), self.overlap_drop > MAX_OVERLAP_DROP,
                abs(moved - 1) + self.leakage)

    def facts(self) -> dict:
        return {"effect": round(self.effect, 4), "leakage": round(self.leakage, 4),
                "overlap_drop": round(self.overlap_drop, 4)}


def _calibrate(probe: _Probe, themes: torch.Tensor, base: np.ndarray, step: torch.Tensor,
               j: int, side: int, longest: float, seed: int, rounds: int = 3):
    """Rescale ``step`` until it moves attribute ``j`` by ``side`` (-1 or +1) std on
    ``themes``, measuring by generating; ``rounds`` measurements at most, and never a
    step longer than ``longest``. Returns the best step, its mean moves and its pieces."""
    best = None
    for _ in range(rounds):
        step = step * min(1.0, longest / max(float(step.norm()), 1e-12))
        values, midis = probe(themes + step, seed)
        moves = np.nanmean(values, axis=0) - np.nanmean(base, axis=0)
        if best is None or abs(side * moves[j] - 1) < abs(side * best[1][j] - 1):
            best = (step, moves, midis)
        gained = side * moves[j]
        if abs(gained - 1) < 0.1 or (gained < 1 and float(step.norm()) >= longest * 0.999):
            break  # on target, or too weak and already as long as allowed
        step = step * (min(4.0, 1 / gained) if gained > 0.05 else 2.0)
    return best


def _candidates(sampler, themes: torch.Tensor, values: np.ndarray, names: Sequence[str],
                seed: int, say, axes: dict[str, int] | None = None
                ) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Directions to try per attribute, each scaled to be predicted to move it by one std.
    ``axes``: attribute -> the theme number trained to order pieces by it, if any."""
    x = themes.cpu().double().numpy()
    x_centered = x - x.mean(0)
    ridge = 1.0 * len(x)  # a mild prior: the themes are correlated numbers
    weights = np.zeros((x.shape[1], len(names)))
    candidates: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for j, name in enumerate(names):
        ok = np.isfinite(values[:, j])
        y = values[ok, j] - values[ok, j].mean()
        xs = x_centered[ok]
        weights[:, j] = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]), xs.T @ y)
        candidates[name]["regression"] = (weights[:, j]
                                          / max(float(weights[:, j] @ weights[:, j]), 1e-12))
        order = np.argsort(values[ok, j])
        quarter = max(1, len(order) // 4)
        contrast = xs[order[-quarter:]].mean(0) - xs[order[:quarter]].mean(0)
        spread = values[ok, j][order[-quarter:]].mean() - values[ok, j][order[:quarter]].mean()
        candidates[name]["contrast"] = contrast / max(spread, 1e-6)
        if name in (axes or {}):  # the theme number trained to follow it (musegan.regularize)
            assert axes is not None
            k = axes[name]
            slope = (xs[:, k] @ y) / max(xs[:, k] @ xs[:, k], 1e-12)
            if slope > 0:  # a model whose axis does not follow its attribute gets no candidate
                candidates[name]["axis"] = np.eye(x.shape[1])[k] / slope
    if len(names) > 1:
        # The smallest step that the regressions predict moves this attribute by one std
        # and the others not at all: W (W^T W)^-1 e_j (conditional manipulation).
        joint = weights @ np.linalg.inv(weights.T @ weights + 1e-6 * np.eye(len(names)))
        for j, name in enumerate(names):
            candidates[name]["joint"] = joint[:, j]
    say("training the attribute assessor")
    order = np.random.default_rng(seed).permutation(len(x))
    held, train = order[: len(x) // 5], order[len(x) // 5:]  # both judged on the same 20 %
    assessor, r2 = _fit_assessor(themes, values, held, train, seed)
    report = {name: {"ridge": _ridge_r2(x, values[:, j], ridge, held, train), "assessor": r2[j]}
              for j, name in enumerate(names)}
    for j, name in enumerate(names):
        start = candidates[name].get("joint", candidates[name]["regression"])
        for weight in GANALYZE_WEIGHTS if len(names) > 1 else (0.0,):
            method = "ganalyze" if weight == 1 else f"ganalyze-{weight:g}"
            candidates[name][method] = _ganalyze(sampler, assessor, themes, j, start, weight, seed)
    return candidates, report


def _fit_assessor(themes: torch.Tensor, values: np.ndarray, held: np.ndarray | torch.Tensor,
                  train: np.ndarray | torch.Tensor, seed: int, steps: int = 2000
                  ) -> tuple[torch.nn.Sequential, list[float]]:
    """A small network predicting every attribute from the theme (the GANalyze
    assessor, stood in for the generator + attribute pipeline, which has no gradient).
    Trained on the ``train`` rows, kept at its best loss on the ``held`` rows; returns it
    and the held-out R^2 per attribute."""
    x = themes.detach().cpu().float()
    y = torch.as_tensor(values, dtype=torch.float32)
    known = torch.isfinite(y)
    y = torch.where(known, y, torch.zeros_like(y))
    held, train = torch.as_tensor(held), torch.as_tensor(train)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.SiLU(),
                              torch.nn.Linear(128, 128), torch.nn.SiLU(),
                              torch.nn.Linear(128, y.shape[1]))
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)

    def loss(rows):
        error = (net(x[rows]) - y[rows]) ** 2 * known[rows]
        return error.sum(0) / known[rows].sum(0).clamp(min=1)

    best, best_state = math.inf, None
    for step in range(steps):
        optimiser.zero_grad()
        loss(train).mean().backward()
        optimiser.step()
        if step % 20 == 0:
            with torch.no_grad():
                held_loss = float(loss(held).mean())
            if held_loss < best:
                best, best_state = held_loss, {k: v.clone() for k, v in net.state_dict().items()}
    assert best_state is not None  # NaN held-out losses all along, or steps < 1
    net.load_state_dict(best_state)
    net.requires_grad_(False)
    with torch.no_grad():
        residual = loss(held)
        variance = torch.stack([y[held][known[held][:, j], j].var() if known[held][:, j].sum() > 1
                                else torch.tensor(math.nan) for j in range(y.shape[1])])
    return net.eval(), [round(float(1 - r / v), 4)
                        for r, v in zip(residual, variance, strict=True)]


def _ridge_r2(x: np.ndarray, y: np.ndarray, ridge: float, held: np.ndarray,
              train: np.ndarray) -> float:
    """Held-out R^2 of the ridge regression (fitted on ``train``, judged on ``held``)."""
    held, train = held[np.isfinite(y[held])], train[np.isfinite(y[train])]
    if len(held) < 2 or len(train) < 2:
        return math.nan
    mean = x[train].mean(0)
    xs = x[train] - mean
    w = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]), xs.T @ (y[train] - y[train].mean()))
    predicted = (x[held] - mean) @ w + y[train].mean()
    return round(float(1 - np.mean((predicted - y[held]) ** 2) / y[held].var()), 4)


def _ganalyze(sampler, assessor: torch.nn.Sequential, themes: torch.Tensor, j: int,
              start: np.ndarray, weight: float, seed: int, steps: int = 300) -> np.ndarray:
    """GANalyze's direction, through the learned assessor A: the d minimising
    E_{theme, alpha ~ U(-1, 1)} |A(theme + alpha d) - A(theme) - alpha e_j|^2, where the
    other attributes' errors count ``weight`` times: they are asked not to move."""
    generator = torch.Generator().manual_seed(seed)
    x = themes.detach().cpu().float()
    target = torch.zeros(assessor[-1].out_features)  # type: ignore[call-overload]
    target[j] = 1.0
    weights = torch.full_like(target, weight)
    weights[j] = 1.0
    direction = torch.tensor(start, dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.Adam([direction], lr=0.02)
    bound = sampler.on_theme_space  # a layer norm without weights: works on any device
    with torch.no_grad():
        before = assessor(x)
    for _ in range(steps):
        alpha = torch.rand(len(x), 1, generator=generator) * 2 - 1
        moved = bound(x + alpha * direction)
        loss = ((assessor(moved) - before - alpha * target) ** 2 * weights).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return direction.detach().double().numpy()
