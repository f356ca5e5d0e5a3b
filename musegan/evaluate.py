"""Objective evaluation of a set of generated pieces against a set of real ones.

Two questions, each answered with numbers a reader can check:

* **Do the generated pieces look like the real ones?** The protocol of Yang & Lerch 2018
  (mgeval): for every feature of ``musegan.metrics.FEATURES``, the distances between real
  pieces ("intra-set") and between generated and real pieces ("inter-set"); a Gaussian KDE
  of each, both evaluated on one common grid; their overlap area (1 = the same
  distribution) and KL divergence (0 = the same).
* **Do they copy the training set?** The share of each piece's melodic n-grams found in
  the training set and its longest verbatim run, next to the same figures for the real
  pieces (which the model never saw) as the yardstick.

Example::

    from musegan.evaluate import evaluate
    result = evaluate("songs/", "data/cre-val/", train="data/cre", out="eval/")
    result["mean_overlap"], result["copying"]["generated"]["copy_rate"]["mean"]
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
from tqdm import tqdm

from musegan.copying import CopyIndex, melody_tokens
from musegan.errors import MuseganError, writable_folder
from musegan.metrics import FEATURES, piece_features, quick_metrics
from musegan.midi import is_midi_path, load_score, score_to_pretty_midi

__all__ = ["evaluate", "quick_metrics", "compare_features", "compare_distances", "gaussian_kde",
           "scott_bandwidth", "pairwise_distances", "melody_tokens", "CopyIndex"]

PieceSet = str | os.PathLike | Sequence[str | os.PathLike | pretty_midi.PrettyMIDI]

GRID_POINTS = 2048  # KDE grid: fine enough that the narrowest kernel spans several points
MIN_BANDWIDTH_SHARE = 0.01  # narrowest kernel, as a share of the distances' range (zero variance)
KDE_TAIL = 4.0  # the grid reaches this many bandwidths past the extreme distances
KL_EPSILON = 1e-10  # keeps log finite where the inter-set density vanishes
DISTANCE_CHUNK = 64  # rows of pairwise distances computed at once (bounds memory for matrices)
SAMPLE_SEED = 0  # max_pieces draws the same pieces on every run
PIANO_ROLLS = 4  # generated pieces drawn in the report
REPORT_FILES = ("report.json", "report.md", "features.png")
REFERENCE_IN_TRAIN = 0.9  # a reference copy rate above this means the reference was in train


# ---------------------------------------------------------------------------- KDE and distances

def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Distances between feature values: |x - y| for numbers, Euclidean for arrays.

    ``a`` is (N,) or (N, ...). Without ``b``, the N (N - 1) / 2 distances between distinct
    pieces of ``a`` (each pair once); with ``b``, all N x M distances, flattened.
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)  # (N, D)
    other = a if b is None else np.asarray(b, dtype=np.float64).reshape(len(b), -1)  # (M, D)
    rows = []
    for start in range(0, len(a), DISTANCE_CHUNK):
        block = np.sqrt(((a[start:start + DISTANCE_CHUNK, None, :]
                          - other[None, :, :]) ** 2).sum(-1))
        if b is None:  # keep the pairs (i, j) with i < j
            i = np.arange(start, start + len(block))[:, None]
            block = block[np.arange(len(other))[None, :] > i]
        rows.append(block.ravel())
    return np.concatenate(rows) if rows else np.zeros(0)


def scott_bandwidth(samples: np.ndarray) -> float:
    """Scott's rule for a 1-D Gaussian KDE: std * n^(-1/5) (what scipy's gaussian_kde uses)."""
    if len(samples) < 2:
        return 0.0
    return float(np.std(samples, ddof=1) * len(samples) ** (-0.2))


def gaussian_kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Density of a Gaussian KDE of ``samples`` on the even ``grid``, normalised to
    integrate to 1 over it. Samples are linearly binned onto the grid and convolved with
    the kernel, so the cost does not grow with the number of samples times grid points."""
    dx = grid[1] - grid[0]
    position = np.clip((np.asarray(samples) - grid[0]) / dx, 0, len(grid) - 1)
    left = np.minimum(np.floor(position).astype(np.int64), len(grid) - 2)
    right_share = position - left
    counts = (np.bincount(left, 1 - right_share, minlength=len(grid))
              + np.bincount(left + 1, right_share, minlength=len(grid)))
    half = min(int(math.ceil(KDE_TAIL * bandwidth / dx)), (len(grid) - 1) // 2)
    offsets = np.arange(-half, half + 1) * dx
    density = np.convolve(counts, np.exp(-0.5 * (offsets / bandwidth) ** 2), mode="same")
    return density / (density.sum() * dx)


def compare_distances(intra: np.ndarray, inter: np.ndarray) -> dict:
    """Overlap area and KL divergence of the KDEs of two distance samples.

    Both KDEs (Scott's bandwidth each, at least ``MIN_BANDWIDTH_SHARE`` of the common range
    so that zero variance is fine) are evaluated on ONE grid spanning both samples (mgeval
    used two grids, which makes its KL meaningless). ``overlap = integral of min(p, q)``;
    ``kl = sum P log((P + eps) / (Q + eps))`` with P, Q the grid densities times the step
    (intra || inter). Returns ``{grid, intra, inter, overlap, kl}`` (arrays for plotting).
    """
    low = min(intra.min(), inter.min())
    high = max(intra.max(), inter.max())
    span = high - low
    floor = span * MIN_BANDWIDTH_SHARE if span > 0 else 1.0
    bandwidths = [max(scott_bandwidth(intra), floor), max(scott_bandwidth(inter), floor)]
    margin = KDE_TAIL * max(bandwidths)
    grid = np.linspace(low - margin, high + margin, GRID_POINTS)
    dx = grid[1] - grid[0]
    p = gaussian_kde(intra, grid, bandwidths[0])
    q = gaussian_kde(inter, grid, bandwidths[1])
    overlap = float(np.minimum(p, q).sum() * dx)
    p_mass, q_mass = p * dx, q * dx
    kl = float((p_mass * np.log((p_mass + KL_EPSILON) / (q_mass + KL_EPSILON))).sum())
    return {"grid": grid, "intra": p, "inter": q, "overlap": min(overlap, 1.0), "kl": max(kl, 0.0)}


def compare_features(generated: list[dict], reference: list[dict]) -> dict:
    """The Yang & Lerch comparison, feature by feature, of two lists of ``piece_features``.

    Per feature, pieces whose value is NaN (or holds a NaN) are dropped. Returns
    ``{name: {generated: {mean, std}, reference: {mean, std}, overlap, kl, n_valid, curves}}``;
    means and stds are lists for histogram features, overlap and kl NaN when fewer than two
    reference pieces or no generated piece has a value. ``curves`` holds the KDE arrays.
    """
    result = {}
    for name in FEATURES:
        values = {}
        for label, features in (("generated", generated), ("reference", reference)):
            stacked = np.array([np.asarray(f[name], dtype=np.float64) for f in features])
            if not len(stacked):
                values[label] = np.zeros(0)
                continue
            valid = ~np.isnan(stacked.reshape(len(stacked), -1)).any(axis=1)
            values[label] = stacked[valid]
        entry: dict[str, Any] = {label: _summary(v) for label, v in values.items()}
        entry["n_valid"] = {label: int(len(v)) for label, v in values.items()}
        entry["overlap"] = entry["kl"] = math.nan
        entry["curves"] = None
        if len(values["reference"]) >= 2 and len(values["generated"]) >= 1:
            intra = pairwise_distances(values["reference"])
            inter = pairwise_distances(values["generated"], values["reference"])
            curves = compare_distances(intra, inter)
            entry["overlap"], entry["kl"] = curves["overlap"], curves["kl"]
            entry["curves"] = curves
        result[name] = entry
    return result


def _summary(values: np.ndarray) -> dict:
    if not len(values):
        return {"mean": math.nan, "std": math.nan}
    mean, std = values.mean(axis=0), values.std(axis=0)
    if np.ndim(mean):
        return {"mean": np.round(mean, 6).tolist(), "std": np.round(std, 6).tolist()}
    return {"mean": float(mean), "std": float(std)}


# ---------------------------------------------------------------------------- copying

def _copy_summary(rows: list[dict]) -> dict:
    summary: dict[str, Any] = {}
    for key in ("copy_rate", "longest_copy"):
        values = np.array([r[key] for r in rows], dtype=np.float64)
        values = values[~np.isnan(values)]
        summary[key] = ({"mean": float(values.mean()), "median": float(np.median(values)),
                         "max": float(values.max())} if len(values)
                        else {"mean": math.nan, "median": math.nan, "max": math.nan})
    summary["n_pieces"] = len(rows)
    return summary


# ---------------------------------------------------------------------------- reading sets

def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if all(isinstance(item, (str, os.PathLike)) for item in source):
        return f"a list of {len(source)} files"
    return f"a list of {len(source)} pieces"


def _items(source, label: str) -> list[tuple[str, object]]:
    """(name, path or PrettyMIDI) for each piece of a set: a folder, or a list."""
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if folder.is_file():
            raise MuseganError(f"{folder} is a file; give a folder of the {label} pieces")
        if not folder.is_dir():
            raise MuseganError(f"{folder}: no such folder for the {label} pieces; check the path")
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and is_midi_path(p))
        return [(str(p), p) for p in paths]
    items = []
    for k, item in enumerate(source):
        if isinstance(item, pretty_midi.PrettyMIDI):
            items.append((f"{label}[{k}]", item))
        else:
            items.append((str(item), Path(item)))
    return items


def _too_few(source, label: str, usable: int, found: int) -> MuseganError:
    where = _describe(source)
    flag = "the generated set" if label == "generated" else f"--{label}"
    if not found:
        return MuseganError(f"{where}: no MIDI files (.mid, .midi) for the {label} set; "
                            f"point {flag} at a folder of MIDI files")
    return MuseganError(f"{where}: only {usable} usable {label} piece(s) of {found}, and the "
                        f"comparison needs at least 2; add MIDI files with notes (see 'skipped')")


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text


def _load(items, label: str, skipped: list, progress: bool, as_score: bool = False) -> list:
    """(name, PrettyMIDI, Score) for every readable piece that has notes, the others going
    to ``skipped`` with their reason. The Score (None for a PrettyMIDI given in code) is the
    fast way to the melody; ``as_score`` skips the PrettyMIDI (None) where only that is needed."""
    pieces = []
    for name, item in tqdm(items, desc=f"reading {label}", disable=not progress, leave=False):
        try:
            if isinstance(item, pretty_midi.PrettyMIDI):
                midi, score = item, None
                n_notes = sum(len(i.notes) for i in midi.instruments)
            else:
                score = load_score(item)
                n_notes = sum(len(t.notes) for t in score.tracks)
                midi = None if as_score or not n_notes else score_to_pretty_midi(score)
        except MuseganError as err:
            skipped.append({"set": label, "source": name,
                            "reason": _reason(err).removeprefix(f"{name}: ")})
            continue
        except Exception as err:  # a parser's own error on a damaged file: report, go on
            skipped.append({"set": label, "source": name, "reason": f"unreadable ({_reason(err)})"})
            continue
        if not n_notes:
            skipped.append({"set": label, "source": name, "reason": "no notes"})
            continue
        pieces.append((name, midi, score))
    return pieces


def _train_melodies(train, skipped: list, progress: bool) -> tuple[list[str], list[np.ndarray]]:
    """Names and melody tokens of the training pieces: a prepared corpus (its train split)
    or MIDI files / PrettyMIDI objects like the other sets."""
    from musegan.corpus import Corpus, is_corpus

    names, melodies = [], []
    if isinstance(train, (str, os.PathLike)) and is_corpus(Path(train)):
        corpus = Corpus(train)
        for index in tqdm(corpus.split("train"), desc="reading train corpus", disable=not progress,
                          leave=False):
            name = corpus.pieces[index].get("source", f"{train}[{index}]")
            score = corpus.tokenizer.decode_score(corpus.tokens(index))
            if not sum(len(t.notes) for t in score.tracks):
                skipped.append({"set": "train", "source": str(name), "reason": "no notes"})
                continue
            names.append(str(name))
            melodies.append(melody_tokens(score))
        if not names:
            raise MuseganError(f"{train}: the corpus has no usable pieces in its train split; "
                               "prepare it again")
        return names, melodies
    items = _items(train, "train")
    pieces = _load(items, "train", skipped, progress, as_score=True)
    if not pieces:
        raise _too_few(train, "train", 0, len(items))
    return ([name for name, _, _ in pieces],
            [melody_tokens(midi if score is None else score) for _, midi, score in pieces])


# ---------------------------------------------------------------------------- evaluate

def evaluate(generated: PieceSet, reference: PieceSet, train: PieceSet | None = None,
             out: str | os.PathLike | None = None, n: int = 8, max_pieces: int | None = None,
             progress: bool = False, force: bool = False) -> dict:
    """Compare generated pieces with real ones, and (with ``train``) measure copying.

    Args:
        generated, reference: each a folder (searched recursively for .mid/.midi files), a
            list of paths, or a list of ``pretty_midi.PrettyMIDI``. Each needs at least two
            usable pieces. ``reference`` should be real music the model was not trained on.
        train: the training pieces, the same way, or a prepared corpus folder (its train
            split is used). Optional: without it there are no copying figures.
        out: a folder for ``report.json``, ``report.md``, ``features.png`` and piano rolls
            of the first generated pieces; existing reports are kept unless ``force``.
        n: n-gram length for copying, in melody intervals (an n-gram spans n + 1 notes).
        max_pieces: use at most this many generated and reference pieces (a fixed-seed
            random sample, the same on every run). The training set is always used whole.
        progress: show progress bars.

    Returns:
        A JSON-able dict: ``sources``, ``counts``, ``features`` (per feature: generated and
        reference ``{mean, std}``, ``overlap``, ``kl``, ``n_valid``), ``mean_overlap``,
        ``mean_kl``, ``copying`` (None without ``train``), ``skipped`` (``{set, source,
        reason}`` per piece left out), ``files`` (with ``out``: the names written there),
        ``seconds``. ``copying`` holds ``n`` and, for generated and reference, ``copy_rate``
        and ``longest_copy`` as ``{mean, median, max}``, ``n_pieces`` and per-piece
        ``pieces`` rows (``piece``, ``copy_rate``, ``longest_copy``, ``source``: the
        training piece of the longest copy). NaN is written as None.

    Raises:
        MuseganError: a set is missing, empty or has fewer than two usable pieces; ``out``
            holds a report and ``force`` is not set.
    """
    began = time.perf_counter()
    if max_pieces is not None and max_pieces < 2:
        raise MuseganError(f"max_pieces must be at least 2 (the comparison needs two pieces a "
                           f"set), got {max_pieces}",
                           cli=f"--max-pieces must be at least 2 (the comparison needs two "
                               f"pieces a set), got {max_pieces}")
    if n < 1:
        raise MuseganError(f"n, the n-gram length, must be at least 1, got {n}",
                           cli=f"--ngram must be at least 1 (8 is the default), got {n}")
    out = Path(out) if out is not None else None
    if out is not None and not force:
        existing = [name for name in REPORT_FILES if (out / name).exists()] + \
            sorted(p.name for p in out.glob("piano-roll-*.png"))
        if existing:
            problem = f"{out} already holds an evaluation report ({', '.join(existing)})"
            raise MuseganError(f"{problem}; pass force=True to replace it, or choose another "
                               "folder",
                               cli=f"{problem}; pass --force to replace it, or choose another "
                                   "--out")
    skipped: list[dict] = []
    sets = {}
    for label, source in (("generated", generated), ("reference", reference)):
        items = _items(source, label)
        if max_pieces is not None and len(items) > max_pieces:
            keep = np.random.default_rng(SAMPLE_SEED).choice(len(items), max_pieces, replace=False)
            items = [items[k] for k in sorted(keep)]
        pieces = _load(items, label, skipped, progress)
        if len(pieces) < 2:
            raise _too_few(source, label, len(pieces), len(items))
        sets[label] = pieces
    if out is not None:
        writable_folder(out)  # before the work, not a traceback after it

    features = {label: [piece_features(midi) for _, midi, _ in
                        tqdm(pieces, desc=f"features of {label}", disable=not progress,
                             leave=False)]
                for label, pieces in sets.items()}
    comparison = compare_features(features["generated"], features["reference"])
    overlaps = [c["overlap"] for c in comparison.values() if not math.isnan(c["overlap"])]
    kls = [c["kl"] for c in comparison.values() if not math.isnan(c["kl"])]

    copying: dict[str, Any] | None = None
    train_count = None
    if train is not None:
        names, melodies = _train_melodies(train, skipped, progress)
        train_count = len(names)
        index = CopyIndex(melodies, n=n)
        copying = {"n": n}
        for label, pieces in sets.items():
            rows = []
            for name, midi, score in tqdm(pieces, desc=f"copying in {label}",
                                          disable=not progress, leave=False):
                row = index.copying(melody_tokens(midi if score is None else score))
                row["source"] = names[row["source"]] if row["source"] is not None else None
                rows.append({"piece": name, **row})
            copying[label] = {**_copy_summary(rows), "pieces": rows}

    result = {
        "sources": {"generated": _describe(generated), "reference": _describe(reference),
                    "train": None if train is None else _describe(train)},
        "counts": {"generated": len(sets["generated"]), "reference": len(sets["reference"]),
                   "train": train_count, "skipped": len(skipped)},
        "features": {name: {k: v for k, v in entry.items() if k != "curves"}
                     for name, entry in comparison.items()},
        "mean_overlap": float(np.mean(overlaps)) if overlaps else math.nan,
        "mean_kl": float(np.mean(kls)) if kls else math.nan,
        "copying": copying,
        "skipped": skipped,
    }
    if out is not None:
        result["files"] = _write_report(result, comparison, sets["generated"], out)
    result["seconds"] = round(time.perf_counter() - began, 3)
    result = _json_safe(result)
    if out is not None:
        (out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _json_safe(value):
    """NaN and infinities become None; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------------------- report

def _number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _write_report(result: dict, comparison: dict, generated: list, out: Path) -> list[str]:
    """Write report.md, features.png and piano rolls (report.json is written last, by
    ``evaluate``). Returns the file names."""
    from musegan.render import piano_roll_png

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("piano-roll-*.png"):  # an earlier report's (evaluate checked force)
        stale.unlink()
    files = ["report.json", "report.md", "features.png"]
    _plot_features(comparison, out / "features.png")
    rolls = []
    for k, (name, midi, _) in enumerate(generated[:PIANO_ROLLS]):
        path = out / f"piano-roll-{k + 1}.png"
        piano_roll_png(midi, path, title=Path(name).name)
        rolls.append(path.name)
    files += rolls
    (out / "report.md").write_text(_markdown(result, rolls))
    return files


def _markdown(result: dict, rolls: list[str]) -> str:
    counts, sources = result["counts"], result["sources"]
    lines = [
        "# Evaluation: generated against reference",
        "",
        f"Generated: {counts['generated']} pieces from `{sources['generated']}`. "
        f"Reference: {counts['reference']} pieces from `{sources['reference']}`."
        + (f" Train: {counts['train']} pieces from `{sources['train']}`."
           if counts["train"] else "")
        + f" Skipped: {counts['skipped']}.",
        "",
        f"**Mean overlap area {_number(result['mean_overlap'])}** (1 = the generated pieces sit "
        f"among the reference pieces as the reference pieces sit among themselves); "
        f"**mean KL {_number(result['mean_kl'])}** (0 = the same). Protocol of Yang & Lerch 2018; "
        "feature definitions in `musegan.metrics.FEATURES` and `piece_features`.",
        "",
        "| feature | generated | reference | overlap | KL | pieces (gen/ref) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in result["features"].items():
        if FEATURES[name].histogram:
            generated = reference = "(histogram)"
        else:
            generated = (f"{_number(entry['generated']['mean'])} ± "
                         f"{_number(entry['generated']['std'])}")
            reference = (f"{_number(entry['reference']['mean'])} ± "
                         f"{_number(entry['reference']['std'])}")
        lines.append(f"| {name} | {generated} | {reference} | {_number(entry['overlap'])} | "
                     f"{_number(entry['kl'])} | {entry['n_valid']['generated']}/"
                     f"{entry['n_valid']['reference']} |")
    copying = result["copying"]
    if copying:
        lines += [
            "",
            f"## Copying from the training set ({copying['n']}-grams of melody intervals, "
            "transposition-invariant)",
            "",
            "| set | copy rate: mean | median | max | longest copy (notes): mean | median | max |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, title in (("generated", "generated"), ("reference", "reference (yardstick)")):
            c = copying[label]
            rate, run = c["copy_rate"], c["longest_copy"]
            lines.append(f"| {title} | {_number(rate['mean'])} | {_number(rate['median'])} | "
                         f"{_number(rate['max'])} | {_number(run['mean'], 1)} | "
                         f"{_number(run['median'], 1)} | {_number(run['max'], 0)} |")
        lines += ["", "Copy rate: share of a piece's n-grams found anywhere in the training set. "
                      "Longest copy: longest run of notes equal to a run of one training piece "
                      f"(runs under {copying['n'] + 1} notes count as 0). Generated figures well "
                      "above the reference's point to memorisation."]
        if (copying["reference"]["copy_rate"]["mean"] or 0) > REFERENCE_IN_TRAIN:
            lines += ["", "**Warning:** most reference n-grams are in the training set: the "
                          "reference pieces were probably trained on, so the yardstick means "
                          "little. Compare with held-out pieces (a corpus's val split)."]
    lines += ["", "## Figures", "",
              "[Intra-set (reference) and inter-set distance densities per feature](features.png)"]
    lines += [f"[Piano roll {k + 1}]({roll})" for k, roll in enumerate(rolls)]
    if result["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- {s['set']}: `{s['source']}`: {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def _plot_features(comparison: dict, path: Path) -> None:
    """A grid of small plots: per feature, the intra-set and inter-set distance KDEs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(comparison)
    columns = 5
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), dpi=80)
    for axis, name in zip(axes.ravel(), names, strict=False):
        entry = comparison[name]
        curves = entry["curves"]
        if curves is not None:
            axis.plot(curves["grid"], curves["intra"], label="intra (ref)", color="tab:blue")
            axis.plot(curves["grid"], curves["inter"], label="inter (gen-ref)", color="tab:orange")
            axis.set_title(f"{name}\nOA {entry['overlap']:.2f}  KL {entry['kl']:.2f}", fontsize=8)
        else:
            axis.set_title(f"{name}\n(not enough values)", fontsize=8)
        axis.tick_params(labelsize=6)
        axis.set_yticks([])
    for axis in axes.ravel()[len(names):]:
        axis.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
