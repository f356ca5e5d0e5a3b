"""Does steering work? The acceptance figures of `--steer`, measured in one run.

    python bench/steer.py [--model NAME|PATH] --data data/cre [--themes 100] [--bars 8]

For every attribute the model can steer, on --themes sampled themes:

1. Monotone control: the attribute's mean over alpha = -2, -1, 0, 1, 2, its Spearman
   correlation with alpha (target >= 0.9), and the moves at alpha = -1 and +1 in
   real-data standard deviations (target 0.5-1.5; the units are the spread over real
   excerpts as long as the pieces written, see musegan.steer.excerpts).
2. Leakage: steering one attribute by +1 moves every other by how much (a matrix, in
   real-data standard deviations; the diagonal is the intended effect).
3. Music stays music: `musegan evaluate`'s mean overlap against the validation split, at
   alpha = -1 and +1, relative to unsteered pieces (target: at most 10 % lower). Measured
   against the validation tunes cut into excerpts of --bars bars (like for like), and
   against the whole tunes.
4. A picture: piano rolls of one theme at alpha = -2 ... +2 for two attributes.

Writes OUT/steer.md, OUT/steer.json and OUT/steer.png (default bench/steer-out/).
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from musegan.copying import CopyIndex, melody_tokens  # noqa: E402
from musegan.corpus import Corpus  # noqa: E402
from musegan.evaluate import evaluate  # noqa: E402
from musegan.sampling import Sampler  # noqa: E402
from musegan.steer import NOVELTY_NGRAM, attributes, excerpts  # noqa: E402

ALPHAS = (-2, -1, 0, 1, 2)


def spearman(x, y) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1]) if np.std(ry) else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="bundled name or path (default: bundled)")
    parser.add_argument("--data", default="data/cre", help="the model's training corpus")
    parser.add_argument("--themes", type=int, default=100)
    parser.add_argument("--bars", type=int, default=None,
                        help="bars per piece (default: what the directions were calibrated at)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench/steer-out")
    args = parser.parse_args()
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sampler = Sampler.from_pretrained(args.model)
    names = sorted(sampler.steering)
    if not names:
        print(f"{sampler.name} has no steering directions (musegan steer --fit)")
        return 1
    args.bars = args.bars or next(iter(sampler.steering.values())).get("bars", 8)
    corpus = Corpus(args.data)
    val = [corpus.tokenizer.decode(corpus.tokens(i).tolist()) for i in corpus.split("val")]
    val_excerpts = [piece for midi in val for piece in excerpts(midi, args.bars)]
    index = CopyIndex([melody_tokens(corpus.tokenizer.decode_score(corpus.tokens(i).tolist()))
                       for i in corpus.split("train")], n=NOVELTY_NGRAM)
    themes = sampler.sample_theme(args.themes, seed=args.seed)

    def write(name: str | None, alpha: float):
        theme = sampler.steer(themes, **{name: alpha}) if name else themes
        midis = sampler.generate(n=len(theme), bars=args.bars, seed=args.seed, theme=theme)
        rows = [attributes(m, index) for m in midis]
        means = {a: float(np.nanmean([r[a] for r in rows])) for a in names}
        return midis, means

    base_midis, base = write(None, 0.0)
    std = {a: sampler.steering[a]["real_std"] for a in names}
    results = {"model": sampler.name, "themes": args.themes, "bars": args.bars, "attributes": {}}
    def overlap(midis) -> tuple[float, float]:
        return (evaluate(midis, val_excerpts)["mean_overlap"], evaluate(midis, val)["mean_overlap"])

    base_overlap = overlap(base_midis)
    for name in names:
        curve, leakage, overlaps = [], {}, {}
        for alpha in ALPHAS:
            if alpha == 0:
                midis, means = base_midis, base
            else:
                midis, means = write(name, alpha)
            curve.append(means[name])
            if alpha == 1:
                leakage = {a: (means[a] - base[a]) / std[a] for a in names}
            if abs(alpha) == 1:
                overlaps[alpha] = overlap(midis)
        results["attributes"][name] = {
            "means": dict(zip(map(str, ALPHAS), curve, strict=True)),
            "rho": spearman(ALPHAS, curve),
            "effect_at_minus_1": (curve[1] - curve[2]) / std[name],
            "effect_at_plus_1": (curve[3] - curve[2]) / std[name],
            "leakage": leakage,
            "overlap": {"unsteered": base_overlap, **{str(k): v for k, v in overlaps.items()}},
            "overlap_drop": max(0.0, 1 - min(o[0] for o in overlaps.values()) / base_overlap[0]),
            "overlap_drop_whole_tunes": max(0.0, 1 - min(o[1] for o in overlaps.values())
                                            / base_overlap[1]),
        }
        r = results["attributes"][name]
        print(f"{name:12s} rho {r['rho']:+.2f}  "
              f"alpha=-1, +1 move it {r['effect_at_minus_1']:+.2f}, "
              f"{r['effect_at_plus_1']:+.2f} std  overlap drop {r['overlap_drop']:.1%} "
              f"({r['overlap_drop_whole_tunes']:.1%} against whole tunes)", flush=True)
    table = format_results(results, names)
    print(table)
    (out / "steer.md").write_text(table + "\n")
    (out / "steer.json").write_text(json.dumps(results, indent=1) + "\n")
    picture(sampler, names, args, out / "steer.png")
    print(f"\nwrote {out}/steer.md, steer.json, steer.png in {time.perf_counter() - started:.0f} s")
    return 0


def format_results(results: dict, names: list[str]) -> str:
    lines = ["| attribute | mean at alpha = -2, -1, 0, +1, +2 | Spearman rho (≥ 0.9) | "
             "alpha = -1, +1 move it (0.5-1.5 std) | overlap drop at ±1 (≤ 10 %) | "
             "against whole tunes |",
             "|---|---|---:|---:|---:|---:|"]
    for name in names:
        r = results["attributes"][name]
        means = ", ".join(f"{v:.3g}" for v in r["means"].values())
        lines.append(f"| {name} | {means} | {r['rho']:+.2f} | {r['effect_at_minus_1']:+.2f}, "
                     f"{r['effect_at_plus_1']:+.2f} | {r['overlap_drop']:.1%} | "
                     f"{r['overlap_drop_whole_tunes']:.1%} |")
    lines += ["", "Leakage: steering the row's attribute by +1 moves the column's by (real stds):",
              "", "| steered \\ moved | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for name in names:
        leak = results["attributes"][name]["leakage"]
        lines.append(f"| {name} | " + " | ".join(
            ("**" if a == name else "") + f"{leak[a]:+.2f}" + ("**" if a == name else "")
            if not math.isnan(leak[a]) else "n/a" for a in names) + " |")
    return "\n".join(lines)


def picture(sampler, names, args, path: Path) -> None:
    """Piano rolls of one theme at alpha = -2 ... +2 for the first two attributes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [n for n in ("density", "register") if n in names] or names[:2]
    theme = sampler.sample_theme(1, seed=args.seed + 7)
    figure, axes = plt.subplots(len(shown), len(ALPHAS),
                                figsize=(3.2 * len(ALPHAS), 2.4 * len(shown)),
                                squeeze=False, sharey=True)
    for row, name in enumerate(shown):
        for col, alpha in enumerate(ALPHAS):
            midi = sampler.generate(n=1, bars=4, seed=args.seed,
                                    theme=sampler.steer(theme, **{name: alpha}))[0]
            ax = axes[row][col]
            for instrument in midi.instruments:
                for note in instrument.notes:
                    ax.add_patch(plt.Rectangle((note.start, note.pitch - 0.4),
                                               note.end - note.start, 0.8, color="tab:blue",
                                               alpha=0.7))
            ax.set_xlim(0, max(midi.get_end_time(), 1.0))
            ax.set_xlabel("seconds", fontsize=7)
            ax.set_ylim(30, 100)
            ax.set_title(f"{name} {alpha:+d}", fontsize=9)
            ax.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
