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
    parser.add_argument("--discriminator", metavar="CKPT",
                        help="also score the sets with the sequence-GAN discriminator of a "
                             "training checkpoint (one that went through the adversarial "
                             "phase from the same model), side by side")
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
    judge_d = discriminator(args.discriminator, tok) if args.discriminator else None
    d_real = judge_d(real) if judge_d else None
    print("| real validation windows against | ROC AUC | mean score, fake | mean score, real |"
          + (" GAN discriminator's ROC AUC |" if judge_d else ""))
    print("|---|---:|---:|---:|" + ("---:|" if judge_d else ""))
    for name, rows in sets.items():
        rows = [canonical(r, tok) for r in rows]
        scores = np.array([j.score for j in sampler.judge(rows)])
        extra = f" {auc(d_real, judge_d(rows)):.3f} |" if judge_d else ""
        print(f"| {name} | {auc(real_scores, scores):.3f} | {scores.mean():.3f} | "
              f"{real_scores.mean():.3f} |{extra}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def discriminator(checkpoint: str, tok):
    """A function scoring token sequences with a training checkpoint's sequence-GAN
    discriminator: its sequence logit, as it judged windows in training (no BOS)."""
    import torch

    from musegan.runs import load_checkpoint
    from musegan.training import GANModule

    saved = load_checkpoint(checkpoint)
    hyper = saved["hyper_parameters"]
    module = GANModule(hyper["model"], hyper["train"], hyper["tokenizer"])
    module.load_state_dict(saved["state_dict"], strict=False)
    net = module.net.discriminator.eval()

    @torch.no_grad()
    def score(rows: list[list[int]]) -> np.ndarray:
        out = []
        for row in rows:
            ids = torch.tensor([[t for t in row if t != tok.BOS]])
            _, sequence, _ = net(ids != tok.PAD, tokens=ids)
            out.append(float(sequence[0]))
        return np.array(out)

    return score


def _markov(corpus: Corpus, data: str):
    path = f"{data.rstrip('/')}-markov8.safetensors"
    if not os.path.exists(path):
        MarkovModel.fit(corpus, order=8).save(path, force=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
