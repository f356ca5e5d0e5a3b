"""What does choosing by the critic do? The same candidates, chosen several ways, in one
run.

    python bench/best_of.py --data data/cre [--model cre-melody] [--pieces 200] [--k 8]

Writes ``--k`` candidates for each of ``--pieces`` pieces (32 bars in AABB, each piece's
candidates from one theme, as ``--best-of`` does), has the model's critic score them,
and compares, by ``musegan evaluate``'s mean overlap with the corpus's validation tunes
(cut to 32 bars, as ``bench/quality.py`` does): the first candidate, the second (another
plain draw: the bench's noise), the critic's favourite of 4 and of K, a draw in
proportion to the critic's odds (importance resampling, the idea of Azadi et al.'s
discriminator rejection sampling) of 4 and of K, and the critic's least favourite of K.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from musegan.corpus import Corpus  # noqa: E402
from musegan.evaluate import evaluate  # noqa: E402
from musegan.sampling import Sampler, _generator  # noqa: E402

BATCH = 8  # pieces per batch (K candidates each)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/cre")
    parser.add_argument("--model", default="cre-melody")
    parser.add_argument("--pieces", type=int, default=200)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sampler = Sampler.from_pretrained(args.model)
    sampler.require_critic("bench/best_of.py")
    corpus, k = Corpus(args.data), args.k
    sys.path.insert(0, _HERE)
    from quality import write_real  # noqa: E402

    started = time.perf_counter()
    rows, scores = [], []
    for start in range(0, args.pieces, BATCH):
        count = min(BATCH, args.pieces - start)
        theme = sampler.themes(count, generator=_generator(args.seed + start, sampler.device))
        choices = sampler.generate_choices(count * k, None, seed=args.seed + start,
                                           theme=theme.repeat_interleave(k, 0), form="AABB")
        batch = [c.ids for c in choices]
        rows += batch
        scores += [j.score for j in sampler.judge(batch)]
    seconds = (time.perf_counter() - started) / (args.pieces * k)
    scores_by_piece = np.array(scores).reshape(args.pieces, k)
    rng = np.random.default_rng(args.seed)

    def pick(how: str, among: int) -> list[list[int]]:
        chosen = []
        for piece, group in enumerate(scores_by_piece[:, :among]):
            if how == "max":
                index = int(np.argmax(group))
            elif how == "min":
                index = int(np.argmin(group))
            else:  # in proportion to the odds of being real
                odds = np.clip(group, 1e-6, 1 - 1e-6) / (1 - np.clip(group, 1e-6, 1 - 1e-6))
                index = int(rng.choice(among, p=odds / odds.sum()))
            chosen.append(rows[piece * k + index])
        return chosen

    sets = {"the first candidate (K = 1)": [rows[p * k] for p in range(args.pieces)],
            "the second candidate (another draw)": [rows[p * k + 1] for p in range(args.pieces)],
            "the critic's favourite of 4": pick("max", 4),
            f"the critic's favourite of {k}": pick("max", k),
            "drawn in proportion to the critic's odds, of 4": pick("odds", 4),
            f"drawn in proportion to the critic's odds, of {k}": pick("odds", k),
            f"the critic's least favourite of {k}": pick("min", k)}
    with tempfile.TemporaryDirectory() as folder:
        reference = write_real(corpus, "val", Path(folder), len(corpus.split("val")), 32)
        print(f"{sampler.name}: {args.pieces} pieces x {k} candidates, "
              f"{seconds:.2f} s per candidate")
        print("| choice among the same candidates | mean overlap ↑ | mean critic score |")
        print("|---|---:|---:|")
        for name, chosen in sets.items():
            result = evaluate(sampler.to_midi(chosen), reference, n=8)
            mean_score = np.mean([j.score for j in sampler.judge(chosen)])
            print(f"| {name} | {result['mean_overlap']:.3f} | {mean_score:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
