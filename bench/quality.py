"""How good is the music? Markov vs the default model, with and without form, vs the
LSTM-GAN vs real, at 32 bars, in one run.

    python bench/quality.py --data data/cre [--model M] [--gan M] [--bars 32] [--form AABB]
                            [--pieces 200] [--seed 0] [--temperature 1.0]

Every set is compared by ``musegan evaluate`` (Yang & Lerch overlap and KL per feature)
with the corpus's validation tunes cut to their first ``--bars`` bars, and checked for
copying against its train split. The rows:

  markov          an order-8 n-gram model over the same tokens (``musegan baseline markov``)
  default         the bundled default (or --model), ``--bars`` bars, no form
  default + FORM  the same with ``--form`` (8-bar parts, each repeat exact)
  lstm-gan        with --gan M: a model after the adversarial phase
  real train      train pieces cut the same way: the ceiling. Their copying figures are
                  left out, since they are the training data.

Then, per feature, the generated means of both default rows beside the real mean and
standard deviation, and whether they lie within one standard deviation of it.

Writes OUT/quality.md and OUT/quality.json (default bench/quality-out/, not committed),
and a report folder per row.
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
import random  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from musegan.corpus import Corpus  # noqa: E402
from musegan.evaluate import evaluate  # noqa: E402
from musegan.markov import MarkovModel  # noqa: E402
from musegan.metrics import FEATURES  # noqa: E402
from musegan.sampling import Sampler, generate_files  # noqa: E402


def first_bars(ids: list[int], bars: int, bar_id: int, eos_id: int) -> list[int]:
    """A piece's tokens up to its ``bars``-th bar (the whole piece if it is shorter)."""
    starts = [i for i, t in enumerate(ids) if t == bar_id]
    return ids[:starts[bars]] + [eos_id] if len(starts) > bars else ids


def write_real(corpus: Corpus, split: str, folder: Path, limit: int, bars: int,
               seed: int = 0) -> Path:
    """Decode a split's pieces, cut to their first ``bars`` bars, back to MIDI files."""
    pieces = corpus.split(split)
    random.Random(seed).shuffle(pieces)
    folder.mkdir(parents=True, exist_ok=True)
    tok = corpus.tokenizer
    for old in folder.glob("*.mid"):
        old.unlink()
    for i in pieces[:limit]:
        ids = first_bars(corpus.tokens(i).tolist(), bars, tok.BAR, tok.EOS)
        tok.decode(ids).write(str(folder / f"{split}{i:05d}.mid"))
    return folder


def generate(model, folder: Path, pieces: int, bars: int, temperature: float, seed: int,
             form: str = "", melody: bool | None = None,
             best_of: int = 1) -> tuple[Path, float]:
    """Write a set; returns its folder and the seconds per piece it took."""
    sampler = Sampler.from_pretrained(model)
    for old in folder.glob("*.mid"):  # a fresh set: no pieces left from another seed
        old.unlink()
    started = time.perf_counter()
    generate_files(sampler, folder, n=pieces, bars=None if form else bars, seed=seed,
                   temperature=temperature, force=True, form=form, melody=melody,
                   best_of=best_of)
    return folder, (time.perf_counter() - started) / pieces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/cre", help="a corpus from musegan prepare")
    parser.add_argument("--model", default="cre-melody",
                        help="the model to judge (default: the bundled default)")
    parser.add_argument("--gan", default="",
                        help="a model that went through the adversarial phase: a file or run "
                             "folder, for a row of its own (default: no such row)")
    parser.add_argument("--pieces", type=int, default=200)
    parser.add_argument("--bars", type=int, default=32)
    parser.add_argument("--form", default="AABB", help="the form of the second default row")
    parser.add_argument("--order", type=int, default=8, help="Markov order")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--melody", action=argparse.BooleanOptionalAction, default=None,
                        help="one melody line in the default rows (default: the model's own)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for every model")
    parser.add_argument("--best-of", default="",
                        help="comma-separated K: add a default + FORM row per K, each piece "
                             "the best of K by the model's critic (e.g. 4,8)")
    parser.add_argument("--skip", default="",
                        help="comma-separated rows to leave out: markov, default, lstm-gan")
    parser.add_argument("--out", default="bench/quality-out")
    args = parser.parse_args()

    out = Path(args.out)
    corpus = Corpus(args.data)
    started = time.perf_counter()
    reference = write_real(corpus, "val", out / "real-val", len(corpus.split("val")), args.bars)
    sets, speed = {}, {}
    markov = out / f"markov{args.order}.safetensors"
    MarkovModel.fit(corpus, order=args.order).save(markov, force=True)
    settings = (args.pieces, args.bars, args.temperature, args.seed)
    skip = set(args.skip.split(",")) if args.skip else set()
    if "markov" not in skip:
        sets["markov"], speed["markov"] = generate(markov, out / "markov", *settings)
    if "default" not in skip:
        sets["default"], speed["default"] = generate(args.model, out / "default", *settings,
                                                     melody=args.melody)
    with_form = f"default + {args.form}"
    sets[with_form], speed[with_form] = generate(args.model, out / "default-form", *settings,
                                                 form=args.form, melody=args.melody)
    for k in [int(k) for k in args.best_of.split(",") if k]:
        name = f"{with_form}, best of {k}"
        sets[name], speed[name] = generate(args.model, out / f"default-form-best{k}",
                                           *settings, form=args.form, melody=args.melody,
                                           best_of=k)
    if args.gan and "lstm-gan" not in skip:
        gan = Path(args.gan) / "checkpoints" / "last.ckpt" if Path(args.gan).is_dir() \
            else args.gan
        sets["lstm-gan"], speed["lstm-gan"] = generate(gan, out / "lstm-gan", *settings)
    sets["real train"] = write_real(corpus, "train", out / "real-train", args.pieces, args.bars)
    print(f"sets written in {time.perf_counter() - started:.0f} s "
          f"({len(list(reference.glob('*.mid')))} validation pieces, cut to {args.bars} bars, "
          "as the reference); seconds per piece: "
          + ", ".join(f"{name} {seconds:.3f}" for name, seconds in speed.items()))

    results = {}
    for name, folder in sets.items():
        results[name] = evaluate(folder, reference,
                                 train=args.data if name != "real train" else None,
                                 out=out / "reports" / name.replace(" ", "-").replace("+", ""),
                                 force=True, n=8)
    for name, r in results.items():
        print(f"musegan evaluate, {name}: {r['counts']['generated']} vs {r['counts']['reference']} "
              f"pieces, {r['counts']['train'] or 0} training pieces: {r['seconds']:.1f} s")
    rows = [row for row in ("default", with_form) if row in results]
    table = format_table(results) + "\n\n" + feature_table(results, rows)
    print(table)
    (out / "quality.md").write_text(table + "\n")
    (out / "quality.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nwrote {out / 'quality.md'}; total {time.perf_counter() - started:.0f} s")
    return 0


def feature_table(results: dict, rows: list[str]) -> str:
    """Per feature: the real mean and std, each row's generated mean (a check where it is
    within one std of the real mean) and overlap."""
    heads = " | ".join(f"{row} mean | {row} overlap" for row in rows)
    lines = [f"| feature | real mean ± std | {heads} |",
             "|---|---:|" + "---:|---:|" * len(rows)]
    within = {row: 0 for row in rows}
    scalars = 0
    for name in FEATURES:
        real = results[rows[0]]["features"][name]["reference"]
        if real["mean"] is None or (not np.ndim(real["mean"]) and np.isnan(real["mean"])):
            continue  # undefined for these pieces (drums, two-track figures in a melody)
        cells = []
        scalar = not np.ndim(real["mean"])
        scalars += scalar
        for row in rows:
            feature = results[row]["features"][name]
            mean = feature["generated"]["mean"]
            if mean is None:
                cells.append("n/a | n/a")
            elif scalar:
                ok = abs(mean - real["mean"]) <= real["std"]
                within[row] += ok
                cells.append(f"{mean:.3g}{' ✓' if ok else ''} | {feature['overlap']:.3f}")
            else:
                cells.append(f"(histogram) | {feature['overlap']:.3f}")
        spread = f"{real['mean']:.3g} ± {real['std']:.3g}" if scalar else "(histogram)"
        lines.append(f"| {name} | {spread} | " + " | ".join(cells) + " |")
    lines.append("| within one std (of " + str(scalars) + ") | | "
                 + " | ".join(f"{within[row]} | " for row in rows) + " |")
    return "\n".join(lines)


def format_table(results: dict) -> str:
    features = ("qualified_note_rate", "pitch_classes_per_bar")

    def copy_cells(summary: dict | None) -> str:
        if not summary:
            return "n/a | n/a"
        longest = summary["longest_copy"]
        return (f"{summary['copy_rate']['mean']:.3f} | {longest['mean']:.1f} "
                f"(max {longest['max']:.0f})")

    lines = ["| set | mean overlap ↑ | mean KL ↓ | qualified-note rate | used pitch classes "
             "per bar | 8-gram copy rate | longest copy (notes) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    yardstick = None
    for name, r in results.items():
        values = " | ".join(f"{r['features'][f]['generated']['mean']:.3f}" for f in features)
        copying = r.get("copying") or {}
        yardstick = copying.get("reference") or yardstick
        lines.append(f"| {name} | {r['mean_overlap']:.3f} | {r['mean_kl']:.3f} | {values} | "
                     f"{copy_cells(copying.get('generated'))} |")
    if yardstick:
        reference = next(iter(results.values()))["features"]
        values = " | ".join(f"{reference[f]['reference']['mean']:.3f}" for f in features)
        lines.append(f"| validation set (yardstick) | | | {values} | {copy_cells(yardstick)} |")
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
