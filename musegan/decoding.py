"""Grammar-constrained, batched decoding: the loop that writes pieces token by token.

It carries the LSTM state from step to step (a prefix is read once, never re-run), masks
at every step the tokens ``musegan.grammar`` forbids, and drops finished pieces from the
batch. Each piece draws its random numbers from a stream of its own (``RowUniforms``), so
a piece depends on its seed, theme and place in the batch, never on what the other pieces
of the batch write: one piece regenerates alone from its sidecar.

It serves ``Sampler``, the validation samples written during training, and the Markov
baseline alike: anything whose ``incremental(theme)`` gives a step-by-step runner. It runs
under ``torch.inference_mode`` (a step is some 100 small operations, and inference mode
spares each one autograd's bookkeeping); what it returns is plain lists of ids.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from musegan.errors import MuseganError
from musegan.grammar import MAX_TOKENS_PER_BAR, Grammar
from musegan.tokenizer import KINDS, Tokenizer

UNIFORMS_AT_ONCE = 64  # random numbers a piece's stream draws at a time


class RowUniforms:
    """One stream of uniform random numbers per piece of a batch.

    Each piece draws from its own ``torch.Generator``, seeded with its entry of ``seeds``,
    ``UNIFORMS_AT_ONCE`` numbers at a time. All pieces still being written take one number
    per step. ``drawn`` draws the seeds from a generator (n of them, whatever the pieces
    write).
    """

    def __init__(self, seeds: list[int], device: torch.device):
        self.streams = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.device = device
        self.buffer = torch.empty(len(seeds), UNIFORMS_AT_ONCE, device=device)
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

    @classmethod
    def drawn(cls, n: int, generator: torch.Generator | None,
              device: torch.device) -> RowUniforms:
        """Streams for n pieces, their seeds drawn from ``generator``."""
        return cls(stream_seeds(n, generator), device)


def stream_seeds(n: int, generator: torch.Generator | None) -> list[int]:
    """The seeds of n pieces' random streams, drawn from ``generator``."""
    return torch.randint(0, 2**62, (n,), generator=generator,
                         device=generator.device if generator is not None else "cpu").tolist()


class PieceSeeds:
    """One seed per piece, and from it every random stream the piece draws from.

    Writing a piece can take several streams: one per part of a form, one per candidate
    ending. Stream k of a piece is seeded from the piece's own seed and k alone (the
    first is the piece's seed itself), so a piece draws the same numbers however many
    pieces are written beside it, in one batch or in several.
    """

    def __init__(self, seeds: list[int]):
        self.seeds = [int(s) for s in seeds]
        self.taken = 0  # streams handed out per piece so far

    @classmethod
    def drawn(cls, n: int, generator: torch.Generator | None) -> PieceSeeds:
        """Seeds for n pieces, drawn from ``generator``: the first n of its draws, so
        piece i's seed is the same for any n above i."""
        return cls(stream_seeds(n, generator))

    def next(self, per_piece: int = 1) -> list[int]:
        """The seeds of each piece's next ``per_piece`` streams, piece by piece (piece i's
        at ``i * per_piece`` on)."""
        k = self.taken
        self.taken += per_piece
        return [seed if k + j == 0 else _mix(seed, k + j)
                for seed in self.seeds for j in range(per_piece)]


def _mix(seed: int, k: int) -> int:
    """A seed for stream k of a piece whose seed is ``seed`` (splitmix64's finaliser over
    both: distinct, well-spread seeds for nearby inputs)."""
    mask = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 + k + 1) & mask
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        x = ((x ^ (x >> shift)) * factor) & mask
    return (x ^ (x >> 31)) >> 2  # below 2**62, as stream_seeds draws


class Runner(Protocol):
    """A step-by-step runner, as ``Generator.incremental(theme)`` gives. ``feed`` reads a
    prefix from the start, ``read`` more tokens after those read so far. ``select``
    replaces its state by the rows chosen (it never changes state in place), so a
    shallow copy selected is a fork that leaves the original as it was; ``append`` adds
    another runner's rows (of the same model) after its own, replacing its state too."""

    def feed(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None
             ) -> torch.Tensor: ...
    def read(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None
             ) -> torch.Tensor: ...
    def step(self, token: torch.Tensor) -> torch.Tensor: ...
    def select(self, rows: torch.Tensor) -> None: ...
    def append(self, other) -> None: ...


class Writer(Protocol):
    """What decoding needs of a model: a runner for a batch of themes."""

    def incremental(self, theme: torch.Tensor) -> Runner: ...


@dataclasses.dataclass
class Sampling:
    """How tokens are drawn: temperature, top-k and top-p."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None


@dataclasses.dataclass
class Prefixed:
    """n pieces with their prefixes read: the grammar, the runner and the logits of the
    first token to write. ``write(..., rows)`` writes from a fork of this state, as often
    as asked; ``write`` without rows writes every piece from the state itself, once.
    ``write_to_last_bar`` and ``read`` give the state further on, without reading again
    what has been read (a tonic ending's candidates, a form's next part)."""

    grammar: Grammar
    runner: Runner
    logits: torch.Tensor  # (n, V)
    prefix_ids: torch.Tensor  # (n, S), PAD where a piece has fewer tokens
    bars: int  # bars each piece gets (the bound on the steps)
    pad: int

    def rows(self) -> list[list[int]]:
        """Each piece's ids so far, PAD removed."""
        return _unpadded(self.prefix_ids, self.pad)

    @torch.inference_mode()
    def write(self, uniforms: RowUniforms, sampling: Sampling,
              rows: torch.Tensor | None = None) -> list[list[int]]:
        """Pieces written from here: every one, or those of ``rows`` (indices), each
        drawing from its own stream of ``uniforms`` (one per piece written). Returns
        each piece's ids, prefix included, PAD removed."""
        ids, _ = self._write(uniforms, sampling, rows, park=False)
        return _unpadded(ids, self.pad)

    @torch.inference_mode()
    def read(self, rows: list[list[int]], bars: int) -> Prefixed:
        """The pieces with ``rows[i]`` read after piece i's tokens so far (at least one
        token each, or none at all), ready to write ``bars`` more bars with their meter and
        tempo held: the state ``read_prefix(..., continuation=True)`` gives for all their
        tokens, up to float rounding, without reading those before again."""
        device = self.logits.device
        grammar, runner, logits, ids = self.grammar.held(), copy.copy(self.runner), \
            self.logits, self.prefix_ids
        lengths = torch.tensor([len(row) for row in rows], device=device)
        if bool(lengths.any()):
            more = _padded(rows, self.pad, device)
            _replay(grammar, more, lengths, 0)
            logits = runner.read(more, lengths)
            ids = torch.cat([ids, more], 1)
        grammar.bars_wanted = grammar.bars + bars
        return Prefixed(grammar, runner, logits, ids, bars, self.pad)

    @torch.inference_mode()
    def write_to_last_bar(self, uniforms: RowUniforms, sampling: Sampling) -> Prefixed:
        """Every piece written until it starts its last bar: the state there, its last
        Bar read, from which ``write`` writes the last bar (as often as asked, forking).

        What the pieces write up to there is what ``write`` would (the grammar's rules
        are the same), and the state is the one ``read_prefix`` gives for those tokens,
        up to float rounding, without reading them again. A piece stops where its last
        Bar is written, so the loop looks for such pieces at every step on a GPU too.
        """
        if bool((self.grammar.bars >= self.grammar.bars_wanted).all()):
            return self  # every piece is in its last bar already
        ids, (grammar, runner) = self._write(uniforms, sampling, None, park=True)
        logits = runner.step(torch.full((len(ids),), self.grammar.tok.BAR, device=ids.device))
        return Prefixed(grammar, runner, logits, ids, 1, self.pad)

    def _write(self, uniforms: RowUniforms, sampling: Sampling, rows: torch.Tensor | None,
               park: bool) -> tuple[torch.Tensor, tuple]:
        """``write``'s loop: the pieces' ids (n, S), prefix included, PAD where a piece
        has fewer. With ``park``, each piece stops once it starts its last bar, and the
        grammar and runner of every piece there are returned too (in the pieces' order;
        the runner has not read the last Bar yet)."""
        grammar, runner, logits, prefix_ids = self.grammar, self.runner, self.logits, \
            self.prefix_ids
        if rows is not None:  # a fork: select() replaces tensors, it never writes into them
            grammar, runner = _fork(grammar, runner, rows)
            logits, prefix_ids = logits[rows], prefix_ids[rows]
        n, device = logits.size(0), logits.device
        active = torch.arange(n, device=device)  # pieces still being written
        written = []  # (which pieces, their tokens) at each step
        parked: list[tuple[torch.Tensor, Grammar, Runner]] = []  # (pieces, their state)
        points: list[torch.Tensor] = []  # the points draw() gave, since the last look
        # Finished pieces leave the batch, and unusable logits (NaN) stop the decode.
        # Looking is a host sync on a GPU, so there finished pieces are looked for every
        # DROP_EVERY steps, writing PAD until then; on a CPU a look costs microseconds, and
        # is done every step. Unusable logits are looked for every DROP_EVERY steps.
        every = 1 if park else looks_every(device)
        # The grammar closes a bar over budget within a few tokens: this bound is never
        # reached.
        for step in range((self.bars + 1) * (MAX_TOKENS_PER_BAR + 8)):
            token, point = draw(logits, grammar.mask(), sampling.temperature, sampling.top_k,
                                sampling.top_p, uniform=uniforms.next(active))
            points.append(point)
            token = grammar.resolve(token)
            grammar.update(token)
            written.append((active, token))
            if len(points) == DROP_EVERY:
                _check(points)
            if step % every == every - 1:
                left = grammar.bars >= grammar.bars_wanted if park else grammar.done
                if bool(left.any()):  # one host sync on a GPU
                    if park:
                        leaving = left.nonzero().squeeze(1)
                        parked.append((active[leaving], *_fork(grammar, runner, leaving)))
                    keep = (~left).nonzero().squeeze(1)
                    if not len(keep):
                        break
                    active = active[keep]
                    grammar.select(keep)
                    runner.select(keep)
                    token = token[keep]
            logits = runner.step(token)
        _check(points)
        ids = torch.full((n, len(written)), self.pad, device=device)
        for step, (at, token) in enumerate(written):
            ids[at, step] = token
        ids = torch.cat([prefix_ids, ids], 1)
        if not park:
            return ids, ()
        pieces, grammar, runner = parked[0]
        for more, grammar_more, runner_more in parked[1:]:
            pieces = torch.cat([pieces, more])
            grammar.append(grammar_more)
            runner.append(runner_more)
        order = torch.argsort(pieces)  # back to the pieces' order
        grammar.select(order)
        runner.select(order)
        return ids, (grammar, runner)


def _fork(grammar: Grammar, runner: Runner, rows: torch.Tensor) -> tuple[Grammar, Runner]:
    """Copies of the grammar and runner holding only these rows (the originals unchanged)."""
    grammar, runner = copy.copy(grammar), copy.copy(runner)
    grammar.select(rows)
    runner.select(rows)
    return grammar, runner


DROP_EVERY = 8  # steps between looks for finished pieces, on a GPU


def looks_every(device: torch.device) -> int:
    """Steps between looks for finished pieces on this device (see ``Prefixed._write``)."""
    return 1 if device.type == "cpu" else DROP_EVERY


@torch.inference_mode()
def read_prefix(net: Writer, tokenizer: Tokenizer, theme: torch.Tensor, bars: int,
                prefix: list[int] | list[list[int]], tempo_id: int | None = None,
                continuation: bool = False, allowed: torch.Tensor | None = None,
                tempo_changes: bool = False,
                time_signature_id: int | None = None) -> Prefixed:
    """The pieces of ``decode`` with their prefixes read, ready to ``write``."""
    n, device = theme.size(0), theme.device
    grammar = Grammar(tokenizer, n, bars, device, tempo_id, hold_meter=continuation,
                      allowed=allowed, tempo_changes=tempo_changes,
                      time_signature_id=None if continuation else time_signature_id)
    lengths = None
    if prefix and isinstance(prefix[0], list):  # one prefix per piece
        lengths = torch.tensor([len(row) for row in prefix], device=device)
        prefix_ids = _padded(prefix, tokenizer.PAD, device)
    else:
        prefix_ids = torch.tensor(prefix, device=device).expand(n, -1)
    _replay(grammar, prefix_ids, lengths, 1)  # BOS stands before the grammar's start
    if continuation:
        grammar.tempo_pending = tempo_id is not None  # the primer's own tempo does not count
        grammar.bars_wanted = grammar.bars + bars
    runner = net.incremental(theme)
    logits = runner.feed(prefix_ids, lengths)  # the primer sets the state
    return Prefixed(grammar, runner, logits, prefix_ids, bars, tokenizer.PAD)


def _unpadded(ids: torch.Tensor, pad: int) -> list[list[int]]:
    """Each row of ids (n, S) as a list, PAD removed."""
    return [[t for t in row if t != pad] for row in ids.tolist()]


def _padded(rows: list[list[int]], pad: int, device: torch.device) -> torch.Tensor:
    """(n, longest) ids, PAD after the shorter rows."""
    width = max(len(row) for row in rows)
    return torch.tensor([list(row) + [pad] * (width - len(row)) for row in rows],
                        device=device)


def _replay(grammar: Grammar, ids: torch.Tensor, lengths: torch.Tensor | None,
            start: int) -> None:
    """The grammar advanced by ids[:, start:] (row b's up to lengths[b], if given)."""
    shortest = ids.size(1) if lengths is None else int(lengths.min())
    for i in range(start, ids.size(1)):  # every row reads its first `shortest` tokens
        grammar.update(ids[:, i], active=None if i < shortest or lengths is None
                       else lengths > i)


@torch.inference_mode()
def decode(net: Writer, tokenizer: Tokenizer, theme: torch.Tensor, bars: int,
           prefix: list[int] | list[list[int]], temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, tempo_id: int | None = None,
           continuation: bool = False, allowed: torch.Tensor | None = None,
           tempo_changes: bool = False,
           time_signature_id: int | None = None,
           seeds: PieceSeeds | None = None) -> list[list[int]]:
    """Write n = len(theme) pieces after ``prefix`` (BOS, or a primer's ids without EOS;
    or one such list per piece); returns the ids of each piece, PAD removed.

    ``net`` is a ``MuseGAN`` or a ``MarkovModel``. With ``continuation`` the prefix's
    meter and tempo hold, and ``bars`` bars are written after its own. ``allowed`` (V,)
    limits the tokens written; ``tempo_changes`` lets the tempo change within a piece;
    ``time_signature_id`` is the meter of a new piece (see ``Grammar``). The pieces draw
    from ``seeds`` (default: drawn from ``generator``).
    """
    n, device = theme.size(0), theme.device
    if n == 0:
        return []
    seeds = seeds or PieceSeeds.drawn(n, generator)
    start = read_prefix(net, tokenizer, theme, bars, prefix, tempo_id, continuation, allowed,
                        tempo_changes, time_signature_id)
    return start.write(RowUniforms(seeds.next(), device), Sampling(temperature, top_k, top_p))


@torch.inference_mode()
def decode_until(start: Prefixed, tries: int, accept: Callable[[int, list[list[int]]], bool],
                 sampling: Sampling | None = None,
                 generator: torch.Generator | None = None,
                 seeds: list[int] | None = None) -> list[list[list[int]]]:
    """Up to ``tries`` candidates of each piece written from ``start``, until
    ``accept(piece, its candidates so far)`` takes the last one; returns each piece's
    candidates (prefix included), in order.

    Candidates are written in rounds of about ``ROUND_ROWS`` rows: several per piece
    while few pieces wait (a step costs about the same for 1 row as for 64), one each
    while many do. Candidate j of piece i draws from the stream seeded with
    ``seeds[i * tries + j]`` (default: drawn from ``generator``), as row ``i * tries + j``
    of ``decode(theme.repeat_interleave(tries, 0), ..., seeds=PieceSeeds(seeds))`` would,
    so the candidates are those that call writes; only the ones after the accepted one
    are not.
    """
    n, device = start.logits.size(0), start.logits.device
    seeds = stream_seeds(n * tries, generator) if seeds is None else seeds
    sampling = sampling or Sampling()
    candidates: list[list[list[int]]] = [[] for _ in range(n)]
    waiting = list(range(n))
    while waiting:
        round_ = [(i, j) for i in waiting
                  for j in range(len(candidates[i]), min(tries, len(candidates[i])
                                                          + -(-ROUND_ROWS // len(waiting))))]
        uniforms = RowUniforms([seeds[i * tries + j] for i, j in round_], device)
        rows = torch.tensor([i for i, _ in round_], device=device)
        written = start.write(uniforms, sampling, rows)
        accepted = set()
        for (i, _), ids in zip(round_, written, strict=True):
            if i not in accepted:  # the later ones of an accepted piece are dropped
                candidates[i].append(ids)
                if accept(i, candidates[i]):
                    accepted.add(i)
        waiting = [i for i in waiting if i not in accepted and len(candidates[i]) < tries]
    return candidates


ROUND_ROWS = 64  # rows a round of decode_until writes, at least


def sample_token(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None,
                 uniform: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row from logits (n, V), only where mask (n, V) is true, after
    temperature, top-k and top-p (nucleus) filtering; ``uniform`` (n, 1) holds the random
    numbers in [0, 1) to draw with (default: from ``generator``)."""
    token, point = draw(logits, mask, temperature, top_k, top_p, generator, uniform)
    _check([point])
    return token


def _check(points: list[torch.Tensor]) -> None:
    """Raise if any of the points ``draw`` gave is not finite (NaN logits); empties the
    list. One host sync on a GPU, for as many steps as the list holds."""
    if points and not bool(torch.isfinite(torch.cat(points)).all()):
        raise _unusable()
    points.clear()


def _unusable() -> MuseganError:
    return MuseganError("the model gave no usable probabilities (NaN or infinite logits); "
                        "check its theme and weights")


def draw(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
         top_k: int | None = None, top_p: float | None = None,
         generator: torch.Generator | None = None,
         uniform: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``sample_token``'s tokens (n,) and the point each row drew on its running total of
    probability (n,), raising nothing: that point is not finite where the row had no
    usable probabilities (NaN logits). A decoding loop looks at many steps' points at
    once (``_check``), not at every step: each look is a host sync on a GPU."""
    logits = torch.where(mask, logits if logits.dtype == torch.float32 else logits.float(),
                         float("-inf"))
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
    if uniform is None:
        uniform = torch.rand(cdf.size(0), 1, generator=generator, device=cdf.device)
    u = (1 - uniform) * cdf[:, -1:]  # at most the total: the index found is in the vocabulary
    # (unless the total is NaN, where the clamp keeps the token one the model can read)
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=cdf.size(1) - 1), u.squeeze(1)


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


def cut_notes(ids: list[int], start: int, end_step: int, tokenizer: Tokenizer) -> list[int]:
    """``ids`` with every note from index ``start`` on cut to end by ``end_step`` (the
    longest Duration that fits)."""
    notes, _, _ = note_steps(ids, tokenizer)
    out = list(ids)
    for index, (onset, length) in notes.items():
        if index >= start and onset + length > end_step:
            out[index] = duration_at_most(tokenizer, max(1, end_step - onset))
    return out


def rest_bars_at_end(ids: list[int], tokenizer: Tokenizer) -> int:
    """How many of a piece's last bars are silent (no note starts or sounds in them): the
    bars a model wrote after it wanted to stop."""
    notes, starts, _ = note_steps(ids, tokenizer)
    sounding = max((onset + length for onset, length in notes.values()), default=0)
    return sum(start >= sounding for start in starts)
