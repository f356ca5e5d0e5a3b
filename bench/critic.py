"""Does the critic know real music? ROC AUC against three kinds of fake, in one run.

    python bench/critic.py --data data/cre [--model cre-melody] [--pieces 128] [--bars 8]

The model's critic (``musegan critic --fit``) scores, per piece, windows of ``--bars``
bars of the corpus's validation tunes (unseen in fitting) against:

  own     the model's own pieces, freshly sampled (a seed the fit never used)
  markov  an order-8 Markov model's pieces over the same tokens
  random  random notes: random pitches over the keyboard, onsets and lengths (the fit
          sees a few such pieces among its fakes, from other seeds)

and prints the ROC AUC of each (1.0: every real piece outscores every fake one; 0.5:
chance), with the mean scores. ``bench/quality.py --best-of K`` measures what choosing
by the critic does to the music.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from musegan.corpus import Corpus  # noqa: E402
from musegan.critic import auc, canonical, random_notes, real_windows  # noqa: E402
from musegan.markov import MarkovModel  # noqa: E402
from musegan.sampling import Sampler  # noqa: E402


def noise(tokenizer, n: int, bars: int, seed: int) -> list[list[int]]:
    """Random-note pieces of ``bars`` bars, from a seed the critic's fit never used."""
    rng = random.Random(seed + 99_991)
    return [random_notes(tokenizer, bars, rng) for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/cre", help="the model's training corpus")
    parser.add_argument("--model", default="cre-melody", help="a model with a critic")
    parser.add_argument("--pieces", type=int, default=128, help="pieces of each kind")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    started = time.perf_counter()
    sampler = Sampler.from_pretrained(args.model)
    sampler.require_critic("bench/critic.py")
    corpus = Corpus(args.data)
    tok = sampler.tokenizer
    real = real_windows(corpus, "val", args.bars, args.pieces, args.seed, sampler.melody)
    own = sampler.generate_ids(args.pieces, args.bars, form="", open_end=True, seed=args.seed)
    markov = Sampler.from_pretrained(_markov(corpus, args.data)).generate_ids(
        args.pieces, args.bars, form="", open_end=True, seed=args.seed)
    noises = noise(tok, args.pieces, args.bars, args.seed)
    if sampler.melody:
        from musegan.decoding import one_line

        markov = [one_line(row, tok) for row in markov]
    sets = {"own samples": own, "markov": markov, "random notes": noises}
    real_scores = np.array([j.score for j in sampler.judge(real)])
    fitted = sampler.model.critic_facts["auc_own_samples"]
    print(f"critic of {sampler.name}: AUC {fitted:.3f} on the fit's held-out windows; "
          f"{args.pieces} pieces of {args.bars} bars per set")
    print("| real validation windows against | ROC AUC | mean score, fake | mean score, real |")
    print("|---|---:|---:|---:|")
    for name, rows in sets.items():
        scores = np.array([j.score for j in sampler.judge([canonical(r, tok) for r in rows])])
        print(f"| {name} | {auc(real_scores, scores):.3f} | {scores.mean():.3f} | "
              f"{real_scores.mean():.3f} |")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def _markov(corpus: Corpus, data: str):
    path = f"{data.rstrip('/')}-markov8.safetensors"
    if not os.path.exists(path):
        MarkovModel.fit(corpus, order=8).save(path, force=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
