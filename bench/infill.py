"""How well does infill lead into what follows? Rescoring vs plain continuation vs the
true bars, on unseen tunes, in one run.

    python bench/infill.py --data data/cre [--model cre-melody] [--tunes 50] [--bars 5-8]
                           [--candidates 16] [--seed 0]

Each of ``--tunes`` validation tunes (unseen in training, at least one bar longer than
the gap) has bars 5-8 written again, once per method:

  rescore    ``Sampler.infill``: candidates from the bars before, weighed by the
             likelihood of the bars after (``--candidates`` per tune)
  continue   the plain continuation: one candidate, what follows ignored
  true bars  the tune's own bars 5-8 (the yardstick)

and prints per method: the model's log-likelihood per token of the bars after the gap
given the gap (how well the gap leads into them), the critic's mean score of the gap's
bars, ``musegan evaluate``'s mean overlap of the gap's bars (cut out as 4-bar clips)
against the true ones, and seconds per infill. Fill-in-the-middle training is not
measured: no model has been trained with it yet.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from musegan.corpus import Corpus  # noqa: E402
from musegan.edit import bar_offsets, infill, log_likelihood_after, parse_bars  # noqa: E402
from musegan.evaluate import evaluate  # noqa: E402
from musegan.sampling import Sampler  # noqa: E402


def clip(ids: list[int], first: int, last: int, tok) -> list[int]:
    """Bars first..last of a piece as a piece of their own (their meter, tempo, voice)."""
    table = tok.bar_table(np.asarray(ids))
    start = int(table["offset"][first - 1]) + 1 + int(table["header"][first - 1])
    stop = int(table["offset"][last]) if last < len(table) else len(ids) - 1
    header = [int(table[k][first - 1]) for k in ("time_signature", "tempo", "program")]
    return [tok.BOS, tok.BAR] + [t for t in header if t] + ids[start:stop] + [tok.EOS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/cre", help="the model's training corpus")
    parser.add_argument("--model", default="cre-melody")
    parser.add_argument("--tunes", type=int, default=50)
    parser.add_argument("--bars", default="5-8")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sampler = Sampler.from_pretrained(args.model)
    tok, corpus = sampler.tokenizer, Corpus(args.data)
    first, last = parse_bars(args.bars)
    tunes = [corpus.tokens(i).tolist() for i in corpus.split("val")]
    tunes = [t for t in tunes if len(bar_offsets(t, tok)) > last][:args.tunes]
    print(f"{sampler.name}: {len(tunes)} validation tunes, bars {first}-{last} written again")
    pieces: dict[str, list[list[int]]] = {"rescore": [], "continue": [], "true bars": tunes}
    seconds = {"rescore": 0.0, "continue": 0.0, "true bars": 0.0}
    for i, ids in enumerate(tunes):
        for method in ("rescore", "continue"):
            started = time.perf_counter()
            [edit] = infill(sampler, ids, (first, last), n=1, seed=args.seed + i,
                            candidates=args.candidates, method=method)
            seconds[method] += time.perf_counter() - started
            pieces[method].append(edit.ids)
    real_clips = [tok.decode(clip(t, first, last, tok)) for t in tunes]
    print("| method | log-likelihood per token of the bars after ↑ | critic, gap bars ↑ | "
          "overlap with the true bars ↑ | seconds per infill |")
    print("|---|---:|---:|---:|---:|")
    for method, rows in pieces.items():
        themes = torch.cat([sampler.encode_theme(tok.decode(t)) for t in tunes])
        starts = [bar_offsets(r, tok)[last] for r in rows]
        after = log_likelihood_after(sampler.net, tok, themes, rows, starts)
        tokens_after = sum(len(r) - s for r, s in zip(rows, starts, strict=True))
        per_token = float(np.sum(after) / tokens_after)
        critic = "n/a"
        if sampler.has_critic:
            judged = sampler.judge(rows, as_written=True)
            critic = f"{np.mean([np.mean(j.bars[first - 1:last]) for j in judged]):.3f}"
        if method == "true bars":
            print(f"| {method} | {per_token:.3f} | {critic} | | |")
            continue
        clips = [tok.decode(clip(r, first, last, tok)) for r in rows]
        overlap = evaluate(clips, real_clips, n=4)["mean_overlap"]
        print(f"| {method} | {per_token:.3f} | {critic} | {overlap:.3f} | "
              f"{seconds[method] / len(rows):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
