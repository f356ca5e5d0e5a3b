"""The token grammar: which token may follow which, and its batched state for decoding.

The stream ``musegan.tokenizer`` writes is::

    BOS
    Bar [TimeSig] [Tempo]                               # a bar's header
        Position [Tempo] ([Program] Pitch Velocity Duration)+
        ...
    Bar ...
    EOS

``FOLLOWS`` says it as a table: after a token of each ``State``, the kinds
(``musegan.tokenizer.KINDS``, plus ``"eos"``) that may come next. ``Grammar`` turns the
table into masks over the tokenizer's vocabulary, for a batch of pieces being written, and
adds what a table cannot say:

* positions rise within a bar and stay inside its meter;
* at one position, programs rise (the tokenizer's order, drums last), and within a
  program pitches strictly rise, so no piece holds the same pitch twice at one onset
  (a doubled note, which MIDI can only write as a second track);
* with ``allowed``, only those tokens (say, those the training corpus holds);
* a piece has exactly the bars asked for, and a runaway bar is made to end.

The tokenizer's own decoder accepts more than this (it skips what makes no sense where
it stands); the grammar is what a sampler must write so that nothing is skipped.
"""

from __future__ import annotations

from enum import IntEnum

import torch

from musegan.tokenizer import KINDS, Tokenizer

MAX_TOKENS_PER_BAR = 400  # a bar longer than this is forced to end (a runaway model)


class State(IntEnum):
    """Where a piece stands: the kind of the last token written (a tempo counts as part of
    a bar's header or of a position, by where it stands)."""

    START = 0  # BOS, or nothing yet
    BAR = 1
    TIME_SIGNATURE = 2
    BAR_TEMPO = 3  # a Tempo in a bar's header
    POSITION = 4
    POSITION_TEMPO = 5  # a Tempo after a Position
    PROGRAM = 6
    PITCH = 7
    VELOCITY = 8
    DURATION = 9


# After each state, the kinds that may come next. "bar" and "eos" are further subject to
# the bar count: another Bar only while bars are wanted, EOS only once all are written.
FOLLOWS: dict[State, tuple[str, ...]] = {
    State.START: ("bar",),
    State.BAR: ("time_signature", "tempo", "program", "position", "bar", "eos"),
    State.TIME_SIGNATURE: ("tempo", "program", "position", "bar", "eos"),
    State.BAR_TEMPO: ("program", "position", "bar", "eos"),
    State.POSITION: ("tempo", "program", "pitch"),
    State.POSITION_TEMPO: ("program", "pitch"),
    State.PROGRAM: ("pitch",),
    State.PITCH: ("velocity",),
    State.VELOCITY: ("duration",),
    State.DURATION: ("program", "pitch", "position", "bar", "eos"),
}
# The state each kind leads to; a tempo's depends on where it stands (see State).
LEADS_TO = {"bar": State.BAR, "time_signature": State.TIME_SIGNATURE,
            "position": State.POSITION, "program": State.PROGRAM, "pitch": State.PITCH,
            "velocity": State.VELOCITY, "duration": State.DURATION}
EOS_KIND = len(KINDS)  # the grammar's code for EOS, which the tokenizer files as "special"
KEEPS_STATE = -1  # PAD and BOS leave the state as it is
TEMPO_STATE = -2  # placeholder: BAR_TEMPO or POSITION_TEMPO


def kind_codes(tokenizer: Tokenizer) -> torch.Tensor:
    """(V,) the kind of every id as an index into ``KINDS``; EOS gets ``EOS_KIND`` and PAD
    and BOS -1, since the grammar treats them apart."""
    kind = torch.from_numpy(tokenizer.kind.astype("int64"))
    kind[kind == KINDS.index("special")] = -1
    kind[tokenizer.EOS] = EOS_KIND
    return kind


def code(name: str) -> int:
    """The grammar's code of a kind name (``KINDS`` or "eos")."""
    return EOS_KIND if name == "eos" else KINDS.index(name)


class Grammar:
    """Batched grammar state: which tokens may come next for each of ``n`` pieces.

    Everything that depends only on (state, all bars written, tempo still to state) is a
    row of one table built up front, so a step's mask is a row lookup, then positions are
    checked against the bar.

    Args:
        tokenizer: the vocabulary.
        n: pieces in the batch.
        bars: bars each piece must have.
        device: where the masks live.
        tempo_id: a Tempo token every piece must use (stated in its first bar header), or
            None to let the model choose.
        hold_meter: no TimeSig or Tempo tokens at all: a continuation keeps its primer's.
        allowed: (V,) true for the tokens that may be written at all (None: every one);
            the special tokens, and a kind none of whose tokens is allowed, stay allowed.
    """

    def __init__(self, tokenizer: Tokenizer, n: int, bars: int, device: torch.device | str,
                 tempo_id: int | None, hold_meter: bool = False,
                 allowed: torch.Tensor | None = None):
        tok = self.tok = tokenizer
        self.bars_wanted = torch.full((n,), bars, dtype=torch.long, device=device)
        self.tempo_id = tempo_id
        self.hold_meter = hold_meter
        kinds = kind_codes(tok)
        self.kind = kinds.to(device)  # (V,)
        self.value = torch.as_tensor(tok.value, device=device)  # (V,)
        self.bar_steps = torch.as_tensor(tok.bar_steps, device=device)  # (TS,)
        positions = tok.token_range("position")
        self.positions = slice(positions.start, positions.stop)
        self.position_value = self.value[self.positions]
        self.table = self._table(kinds)  # (states * 2 * 2, V)
        if allowed is not None:
            self.table &= self._usable(allowed.cpu(), kinds)
        self.table = self.table.to(device)
        next_state = torch.full((len(tok),), KEEPS_STATE, dtype=torch.long)
        for name, state in LEADS_TO.items():
            next_state[kinds == code(name)] = state
        next_state[kinds == code("tempo")] = TEMPO_STATE
        self.next_state = next_state.to(device)
        self.state = torch.full((n,), State.START, dtype=torch.long, device=device)
        self.bars = torch.zeros(n, dtype=torch.long, device=device)  # bars started
        self.position = torch.full((n,), -1, dtype=torch.long, device=device)
        self.bar_length = torch.full((n,), int(tok.bar_steps[tok.default_time_signature]),
                                     device=device)
        self.tokens_in_bar = torch.zeros(n, dtype=torch.long, device=device)
        # At the current position: the highest pitch written in the current program, and
        # the highest program that has notes (-1: none yet).
        self.pitch_floor = torch.full((n,), -1, dtype=torch.long, device=device)
        self.program_floor = torch.full((n,), -1, dtype=torch.long, device=device)
        self.program = torch.zeros(n, dtype=torch.long, device=device)  # in force
        pitches, programs = tok.token_range("pitch"), tok.token_range("program")
        self.pitches = slice(pitches.start, pitches.stop)
        self.pitch_value = self.value[self.pitches]
        self.programs = slice(programs.start, programs.stop)
        self.program_value = self.value[self.programs]
        self.done = torch.zeros(n, dtype=torch.bool, device=device)
        # A chosen tempo is stated in the first bar header the sampler writes.
        self.tempo_pending = torch.full((n,), tempo_id is not None, dtype=torch.bool,
                                        device=device)

    def _usable(self, allowed: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
        """``allowed``, widened so every kind keeps a token, the specials and a chosen
        tempo stay writable."""
        usable = allowed.clone().bool()
        usable[kinds < 0] = True  # PAD, BOS
        usable[(kinds == code("bar")) | (kinds == code("eos"))] = True
        for kind in kinds.unique().tolist():
            if kind >= 0 and not usable[kinds == kind].any():
                usable[kinds == kind] = True
        if self.tempo_id is not None:
            usable[self.tempo_id] = True
        return usable

    def _table(self, kind: torch.Tensor) -> torch.Tensor:
        """(state, finished, tempo pending) -> allowed ids, flattened to rows."""
        rows = torch.zeros(len(State), 2, 2, len(kind), dtype=torch.bool)
        tempo, time_signature = code("tempo"), code("time_signature")
        for state, names in FOLLOWS.items():
            for finished in (0, 1):
                for pending in (0, 1):
                    ok = torch.isin(kind, torch.tensor([code(k) for k in names]))
                    # Another Bar only while bars are wanted; EOS only once all are written.
                    ok &= kind != (code("bar") if finished else code("eos"))
                    if self.tempo_id is not None:  # the caller chose the tempo
                        ok &= (kind != tempo) | (torch.arange(len(kind)) == self.tempo_id)
                        if pending and state in (State.BAR, State.TIME_SIGNATURE):
                            # state it before anything else
                            ok &= (kind == tempo) | ((kind == time_signature)
                                                     & (state == State.BAR))
                    elif self.hold_meter:
                        ok &= kind != tempo
                    if self.hold_meter:
                        ok &= kind != time_signature
                    rows[state, finished, pending] = ok
        return rows.view(-1, len(kind))

    def mask(self) -> torch.Tensor:
        """(n, V) true where a token is allowed next."""
        finished = self.bars >= self.bars_wanted
        ok = self.table[(self.state * 2 + finished) * 2 + self.tempo_pending]
        # Positions rise within a bar and stay inside its meter.
        ok[:, self.positions] &= ((self.position_value > self.position[:, None])
                                  & (self.position_value < self.bar_length[:, None]))
        # At one position, programs rise, and pitches strictly rise within a program.
        ok[:, self.pitches] &= self.pitch_value > self.pitch_floor[:, None]
        ok[:, self.programs] &= self.program_value > self.program_floor[:, None]
        runaway = self.tokens_in_bar > MAX_TOKENS_PER_BAR
        if runaway.any():  # a runaway bar must end as soon as the grammar lets it
            can_end = ((self.state == State.BAR) | (self.state == State.TIME_SIGNATURE)
                       | (self.state == State.BAR_TEMPO) | (self.state == State.DURATION))
            ends_bar = torch.where(finished[:, None], self.kind == code("eos"),
                                   self.kind == code("bar"))
            ok = torch.where((runaway & can_end)[:, None], ok & ends_bar, ok)
        if self.done.any():  # finished sequences pad
            ok[self.done] = False
            ok[self.done, self.tok.PAD] = True
        return ok

    def update(self, token: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Advance every sequence by its next token (n,); with ``active`` (n,) only those
        where it is true (the others keep their state, whatever their token)."""
        if active is None:
            self._advance(token)
            return
        before = {name: getattr(self, name) for name in _PER_PIECE}
        self._advance(token)
        for name, old in before.items():
            setattr(self, name, torch.where(active, getattr(self, name), old))

    def _advance(self, token: torch.Tensor) -> None:
        kind, value = self.kind[token], self.value[token]
        new_bar = kind == code("bar")
        new_onset = new_bar | (kind == code("position"))
        is_pitch, is_program = kind == code("pitch"), kind == code("program")
        self.program = torch.where(is_program, value, self.program)
        self.pitch_floor = torch.where(new_onset | is_program, -1,
                                       torch.where(is_pitch, value, self.pitch_floor))
        self.program_floor = torch.where(new_onset, -1, torch.where(
            is_pitch, torch.maximum(self.program_floor, self.program), self.program_floor))
        self.bars = self.bars + new_bar
        self.tokens_in_bar = torch.where(new_bar, 0, self.tokens_in_bar + 1)
        self.position = torch.where(new_bar, -1, torch.where(kind == code("position"), value,
                                                             self.position))
        is_ts = kind == code("time_signature")
        if is_ts.any():
            steps = self.bar_steps[value.clamp(max=len(self.bar_steps) - 1)]
            self.bar_length = torch.where(is_ts, steps, self.bar_length)
        next_state = self.next_state[token]
        in_bar_header = (self.state == State.BAR) | (self.state == State.TIME_SIGNATURE)
        tempo_state = torch.where(in_bar_header, State.BAR_TEMPO, State.POSITION_TEMPO)
        next_state = torch.where(next_state == TEMPO_STATE, tempo_state, next_state)
        self.state = torch.where(next_state >= 0, next_state, self.state)
        self.done = self.done | (kind == code("eos"))
        self.tempo_pending = self.tempo_pending & (kind != code("tempo"))

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these sequences (indices into the batch)."""
        for name in _PER_PIECE:
            setattr(self, name, getattr(self, name)[rows])


# The state Grammar keeps for each piece of the batch.
_PER_PIECE = ("state", "bars", "bars_wanted", "position", "bar_length", "tokens_in_bar",
              "pitch_floor", "program_floor", "program", "done", "tempo_pending")
