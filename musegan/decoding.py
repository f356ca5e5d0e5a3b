"""Grammar-constrained, batched decoding: the loop that writes pieces token by token.

It carries the LSTM state from step to step (a prefix is read once, never re-run), masks
at every step the tokens ``musegan.grammar`` forbids, and drops finished pieces from the
batch. It serves ``Sampler``, the validation samples written during training, and the
Markov baseline alike: anything whose ``incremental(theme)`` gives a step-by-step runner.
"""

from __future__ import annotations

from typing import Protocol

import torch

from musegan.errors import MuseganError
from musegan.grammar import MAX_TOKENS_PER_BAR, Grammar
from musegan.tokenizer import Tokenizer


class Runner(Protocol):
    """A step-by-step runner, as ``Generator.incremental(theme)`` gives."""

    def feed(self, tokens: torch.Tensor) -> torch.Tensor: ...
    def step(self, token: torch.Tensor) -> torch.Tensor: ...
    def select(self, rows: torch.Tensor) -> None: ...


class Writer(Protocol):
    """What decoding needs of a model: a runner for a batch of themes."""

    def incremental(self, theme: torch.Tensor) -> Runner: ...


@torch.no_grad()
def decode(net: Writer, tokenizer: Tokenizer, theme: torch.Tensor, bars: int,
           prefix: list[int], temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None,
           tempo_id: int | None = None, continuation: bool = False) -> list[list[int]]:
    """Write n = len(theme) pieces after ``prefix`` (BOS, or a primer's ids without EOS);
    returns the ids of each piece, PAD removed.

    ``net`` is a ``MuseGAN`` or a ``MarkovModel``. With ``continuation`` the prefix's
    meter and tempo hold, and ``bars`` bars are written after its own.
    """
    n, device = theme.size(0), theme.device
    if n == 0:
        return []
    grammar = Grammar(tokenizer, n, bars, device, tempo_id, hold_meter=continuation)
    prefix_ids = torch.tensor(prefix, device=device).expand(n, -1)
    for i in range(1, prefix_ids.size(1)):
        grammar.update(prefix_ids[:, i])
    grammar.tempo_pending[:] = tempo_id is not None  # the primer's own tempo does not count
    grammar.bars_wanted = int(grammar.bars[0]) + bars if continuation else bars
    runner = net.incremental(theme)
    logits = runner.feed(prefix_ids)  # the primer sets the state
    active = torch.arange(n, device=device)  # pieces still being written
    written = []  # (which pieces, their tokens) at each step
    # The grammar ends a runaway bar within a few tokens, so this bound is never reached.
    for _ in range((bars + 1) * (MAX_TOKENS_PER_BAR + 8)):
        token = sample_token(logits, grammar.mask(), temperature, top_k, top_p, generator)
        grammar.update(token)
        written.append((active, token))
        if grammar.done.any():  # finished pieces leave the batch
            keep = (~grammar.done).nonzero().squeeze(1)
            if len(keep) == 0:
                break
            active = active[keep]
            grammar.select(keep)
            runner.select(keep)
            token = token[keep]
        logits = runner.step(token)
    ids = torch.full((n, len(written)), tokenizer.PAD, device=device)
    for step, (rows, token) in enumerate(written):
        ids[rows, step] = token
    rows_out = torch.cat([prefix_ids, ids], 1).tolist()
    return [[t for t in row if t != tokenizer.PAD] for row in rows_out]


def sample_token(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from logits (n, V), only where mask (n, V) is true, after
    temperature, top-k and top-p (nucleus) filtering."""
    logits = torch.where(mask, logits.float(), float("-inf"))
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, -1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, -1) > top_p  # keep the first over p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    # Inverse-CDF sampling, which is what torch.multinomial does, at a tenth of its cost
    # here. u lies in (0, total], so a token of probability 0 is never drawn: searchsorted
    # takes the first index whose running total reaches u.
    cdf = logits.softmax(-1).cumsum_(-1)
    if not torch.isfinite(cdf[:, -1]).all():
        raise MuseganError("the model gave no usable probabilities (NaN or infinite logits); "
                           "check its theme and weights")
    u = (1 - torch.rand(cdf.size(0), 1, generator=generator, device=cdf.device)) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=cdf.size(1) - 1)
