"""How good is the music? Markov vs MLE-only vs LSTM-GAN vs real, in one run.

    python bench/quality.py --data data/cre [--gan MODEL] [--mle MODEL] [--pieces 200] [--seed 0]

Every set is compared with the corpus's validation split by ``musegan evaluate``
(Yang & Lerch overlap and KL per feature) and checked for copying against its train
split. The rows:

  markov     an order-8 n-gram model over the same tokens (``musegan baseline markov``)
  mle-only   the bundled cre-melody, the default (maximum likelihood, with the theme GAN
             but no sequence-GAN epoch), or --mle
  lstm-gan   the bundled cre-melody-gan (the same after an adversarial epoch), or --gan
  real train pieces of the train split: the ceiling. Their copying figures are left
             out, since they are the training data.

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

from musegan.corpus import Corpus  # noqa: E402
from musegan.evaluate import evaluate  # noqa: E402
from musegan.markov import MarkovModel  # noqa: E402
from musegan.sampling import Sampler, generate_files  # noqa: E402

ROWS = ("markov", "mle-only", "lstm-gan", "real train")


def write_real(corpus: Corpus, split: str, folder: Path, limit: int, seed: int = 0) -> Path:
    """Decode a split's pieces back to MIDI files."""
    pieces = corpus.split(split)
    random.Random(seed).shuffle(pieces)
    folder.mkdir(parents=True, exist_ok=True)
    for i in pieces[:limit]:
        corpus.tokenizer.decode(corpus.tokens(i).tolist()).write(
            str(folder / f"{split}{i:05d}.mid"))
    return folder


def generate(model, folder: Path, pieces: int, bars: int, temperature: float, seed: int) -> Path:
    sampler = Sampler.from_pretrained(model)
    for old in folder.glob("*.mid"):  # a fresh set: no pieces left from another seed
        old.unlink()
    generate_files(sampler, folder, n=pieces, bars=bars, seed=seed, temperature=temperature,
                   force=True, batch=64)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/cre", help="a corpus from musegan prepare")
    parser.add_argument("--gan", default="cre-melody-gan",
                        help="a model that went through the adversarial phase: bundled name, "
                             "file, or run folder (default: the bundled cre-melody-gan)")
    parser.add_argument("--mle", default="cre-melody",
                        help="the MLE-only model (default: the bundled cre-melody)")
    parser.add_argument("--pieces", type=int, default=200)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--order", type=int, default=8, help="Markov order")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for every model")
    parser.add_argument("--out", default="bench/quality-out")
    args = parser.parse_args()

    out = Path(args.out)
    corpus = Corpus(args.data)
    started = time.perf_counter()
    reference = write_real(corpus, "val", out / "real-val", len(corpus.split("val")))
    sets = {}
    markov = out / f"markov{args.order}.safetensors"
    MarkovModel.fit(corpus, order=args.order).save(markov, force=True)
    sets["markov"] = generate(markov, out / "markov", args.pieces, args.bars, args.temperature,
                               args.seed)
    sets["mle-only"] = generate(args.mle, out / "mle-only", args.pieces, args.bars,
                                args.temperature, args.seed)
    gan = Path(args.gan) / "checkpoints" / "last.ckpt" if Path(args.gan).is_dir() else args.gan
    sets["lstm-gan"] = generate(gan, out / "lstm-gan", args.pieces, args.bars, args.temperature,
                                args.seed)
    sets["real train"] = write_real(corpus, "train", out / "real-train", args.pieces)
    print(f"sets written in {time.perf_counter() - started:.0f} s "
          f"({len(list(reference.glob('*.mid')))} validation pieces as the reference)")

    results = {}
    for name, folder in sets.items():
        results[name] = evaluate(folder, reference,
                                 train=args.data if name != "real train" else None,
                                 out=out / "reports" / name.replace(" ", "-"), force=True,
                                 n=8)
    for name, r in results.items():
        print(f"musegan evaluate, {name}: {r['counts']['generated']} vs {r['counts']['reference']} "
              f"pieces, {r['counts']['train'] or 0} training pieces: {r['seconds']:.1f} s")
    table = format_table(results)
    print(table)
    (out / "quality.md").write_text(table + "\n")
    (out / "quality.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nwrote {out / 'quality.md'}; total {time.perf_counter() - started:.0f} s")
    return 0


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
