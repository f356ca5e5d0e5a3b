"""Grammar-constrained, batched decoding: the loop that writes pieces token by token.

It carries the LSTM state from step to step (a prefix is read once, never re-run), masks
at every step the tokens ``musegan.grammar`` forbids, and drops finished pieces from the
batch. Each piece draws its random numbers from a stream of its own (``RowUniforms``), so
a piece depends on its seed, theme and place in the batch, never on what the other pieces
of the batch write: one piece regenerates alone from its sidecar.

It serves ``Sampler``, the validation samples written during training, and the Markov
baseline alike: anything whose ``incremental(theme)`` gives a step-by-step runner.
"""

from __future__ import annotations

import bisect
from typing import Protocol

import numpy as np
import torch

from musegan.errors import MuseganError
from musegan.grammar import MAX_TOKENS_PER_BAR, Grammar
from musegan.tokenizer import KINDS, Tokenizer

UNIFORMS_AT_ONCE = 64  # random numbers a piece's stream draws at a time


class RowUniforms:
    """One stream of uniform random numbers per piece of a batch.

    The streams' seeds are drawn from ``generator`` (n of them, whatever the pieces
    write), then each piece draws from its own ``torch.Generator``, ``UNIFORMS_AT_ONCE``
    numbers at a time. All pieces still being written take one number per step.
    """

    def __init__(self, n: int, generator: torch.Generator | None, device: torch.device):
        seeds = torch.randint(0, 2**62, (n,), generator=generator,
                              device=generator.device if generator is not None else "cpu")
        self.streams = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.device = device
        self.buffer = torch.empty(n, UNIFORMS_AT_ONCE, device=device)
        self.step = 0

    def next(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), 1) numbers in [0, 1) for these pieces (indices into the batch)."""
        column = self.step % UNIFORMS_AT_ONCE
        if column == 0:
            for row, stream in enumerate(self.streams):
                self.buffer[row] = torch.rand(UNIFORMS_AT_ONCE, generator=stream,
                                              device=self.device)
        self.step += 1
        return self.buffer[rows, column:column + 1]


class Runner(Protocol):
    """A step-by-step runner, as ``Generator.incremental(theme)`` gives."""

    def feed(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None
             ) -> torch.Tensor: ...
    def step(self, token: torch.Tensor) -> torch.Tensor: ...
    def select(self, rows: torch.Tensor) -> None: ...


class Writer(Protocol):
    """What decoding needs of a model: a runner for a batch of themes."""

    def incremental(self, theme: torch.Tensor) -> Runner: ...


@torch.no_grad()
def decode(net: Writer, tokenizer: Tokenizer, theme: torch.Tensor, bars: int,
           prefix: list[int] | list[list[int]], temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, tempo_id: int | None = None,
           continuation: bool = False, allowed: torch.Tensor | None = None,
           tempo_changes: bool = False,
           time_signature_id: int | None = None) -> list[list[int]]:
    """Write n = len(theme) pieces after ``prefix`` (BOS, or a primer's ids without EOS;
    or one such list per piece); returns the ids of each piece, PAD removed.

    ``net`` is a ``MuseGAN`` or a ``MarkovModel``. With ``continuation`` the prefix's
    meter and tempo hold, and ``bars`` bars are written after its own. ``allowed`` (V,)
    limits the tokens written; ``tempo_changes`` lets the tempo change within a piece;
    ``time_signature_id`` is the meter of a new piece (see ``Grammar``).
    """
    n, device = theme.size(0), theme.device
    if n == 0:
        return []
    grammar = Grammar(tokenizer, n, bars, device, tempo_id, hold_meter=continuation,
                      allowed=allowed, tempo_changes=tempo_changes,
                      time_signature_id=None if continuation else time_signature_id)
    lengths = None
    if prefix and isinstance(prefix[0], list):  # one prefix per piece
        starts = [list(row) for row in prefix]
        lengths = torch.tensor([len(row) for row in starts], device=device)
        width = int(lengths.max())
        prefix_ids = torch.tensor([row + [tokenizer.PAD] * (width - len(row))
                                   for row in starts], device=device)
        for i in range(1, width):
            grammar.update(prefix_ids[:, i], active=lengths > i)
    else:
        prefix_ids = torch.tensor(prefix, device=device).expand(n, -1)
        for i in range(1, prefix_ids.size(1)):
            grammar.update(prefix_ids[:, i])
    grammar.tempo_pending[:] = tempo_id is not None  # the primer's own tempo does not count
    if continuation:
        grammar.bars_wanted = grammar.bars + bars
    runner = net.incremental(theme)
    logits = runner.feed(prefix_ids, lengths)  # the primer sets the state
    active = torch.arange(n, device=device)  # pieces still being written
    uniforms = RowUniforms(n, generator, device)
    written = []  # (which pieces, their tokens) at each step
    # The grammar closes a bar over budget within a few tokens: this bound is never reached.
    for _ in range((bars + 1) * (MAX_TOKENS_PER_BAR + 8)):
        token = sample_token(logits, grammar.mask(), temperature, top_k, top_p,
                             uniform=uniforms.next(active))
        token = grammar.resolve(token)
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
                 generator: torch.Generator | None = None,
                 uniform: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row from logits (n, V), only where mask (n, V) is true, after
    temperature, top-k and top-p (nucleus) filtering; ``uniform`` (n, 1) holds the random
    numbers in [0, 1) to draw with (default: from ``generator``)."""
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
    if uniform is None:
        uniform = torch.rand(cdf.size(0), 1, generator=generator, device=cdf.device)
    u = (1 - uniform) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=cdf.size(1) - 1)


def one_line(ids: list[int], tokenizer: Tokenizer) -> list[int]:
    """``ids`` as one melody line: at each onset only its highest note (the skyline),
    each note cut short where the next onset begins, so no two notes sound at once. The
    last note keeps its length."""
    values = tokenizer.value[np.asarray(ids, dtype=np.int64)]
    bar_start, position, started = 0, 0, False
    bar_length = int(tokenizer.bar_steps[tokenizer.default_time_signature])
    notes: list[tuple[int, int, int]] = []  # (index of the Pitch token, onset, pitch)
    for i, token in enumerate(ids):
        kind = KINDS[tokenizer.kind[token]]
        if kind == "bar":
            bar_start += bar_length if started else 0
            started, position = True, 0
        elif kind == "time_signature":
            bar_length = int(tokenizer.bar_steps[values[i]])
        elif kind == "position":
            position = int(values[i])
        elif kind == "pitch" and i + 2 < len(ids):
            notes.append((i, bar_start + position, int(values[i])))
    top: dict[int, tuple[int, int, int]] = {}
    for note in notes:
        if note[1] not in top or note[2] > top[note[1]][2]:
            top[note[1]] = note
    onsets = sorted(top)
    dropped: set[int] = set()
    cut: dict[int, int] = {}
    for index, onset, _ in notes:
        if top[onset][0] != index:
            dropped.update((index, index + 1, index + 2))  # Pitch, Velocity, Duration
            continue
        later = bisect.bisect_right(onsets, onset)
        if later < len(onsets) and values[index + 2] > onsets[later] - onset:
            cut[index + 2] = duration_at_most(tokenizer, onsets[later] - onset)
    return [cut.get(i, token) for i, token in enumerate(ids) if i not in dropped]


def note_steps(ids: list[int], tokenizer: Tokenizer
               ) -> tuple[dict[int, tuple[int, int]], list[int], int]:
    """Where a piece's notes lie in time, in grid steps from its start: for each Duration
    token's index, (its note's onset, its length); the step where each bar starts; and
    the step where the last bar ends."""
    values = tokenizer.value
    bar_start, position, started = 0, 0, False
    bar_length = int(tokenizer.bar_steps[tokenizer.default_time_signature])
    notes: dict[int, tuple[int, int]] = {}
    starts: list[int] = []
    for i, token in enumerate(ids):
        kind = KINDS[tokenizer.kind[token]]
        if kind == "bar":
            bar_start += bar_length if started else 0
            started, position = True, 0
            starts.append(bar_start)
        elif kind == "time_signature":
            bar_length = int(tokenizer.bar_steps[values[token]])
        elif kind == "position":
            position = int(values[token])
        elif kind == "duration":
            notes[i] = (bar_start + position, int(values[token]))
    return notes, starts, bar_start + bar_length


def duration_at_most(tokenizer: Tokenizer, steps: int) -> int:
    """The longest Duration token of at most ``steps`` grid steps (the shortest, if none
    is that short)."""
    fits = int(np.searchsorted(tokenizer.duration_values, steps, side="right")) - 1
    return tokenizer.token_range("duration")[max(0, fits)]


def rest_bars_at_end(ids: list[int], tokenizer: Tokenizer) -> int:
    """How many of a piece's last bars are silent (no note starts or sounds in them): the
    bars a model wrote after it wanted to stop."""
    notes, starts, _ = note_steps(ids, tokenizer)
    sounding = max((onset + length for onset, length in notes.values()), default=0)
    return sum(start >= sounding for start in starts)
