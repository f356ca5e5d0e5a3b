"""The token grammar: which token may follow which, and its batched state for decoding.

The stream ``musegan.tokenizer`` writes is::

    BOS
    Bar [TimeSig] [Tempo] [Program|Track]               # a bar's header (the first
                                                        # bar states TimeSig and Tempo)
        Position [Tempo] ([Program|Track] Pitch Velocity Duration)+
        ...
    Bar ...
    EOS

A Program (or Track) in a header is the voice in force when a training window starts
inside a piece (``musegan.data``); the bar's notes follow it, from a Position on.
``FOLLOWS`` says it as a table: after a token of each ``State``, the kinds
(``musegan.tokenizer.KINDS``, plus ``"eos"``) that may come next. ``Grammar`` turns the
table into masks over the tokenizer's vocabulary, for a batch of pieces being written, and
adds what a table cannot say:

* positions rise within a bar and stay inside its meter;
* at one position, voices rise (the tokenizer's order: programs, each followed by its
  parts, drums last; a Track token is a voice as a Program token is), and within a
  voice pitches strictly rise, so no piece holds the same pitch twice at one onset
  (a doubled note, which MIDI can only write as a second track); nor does a voice strike
  a pitch it is still sounding (MIDI cannot tell such notes apart either);
* with ``allowed``, only those tokens (say, those the training corpus holds);
* a new piece's first bar states its meter and then its tempo, as every stream the
  tokenizer writes does (a file without them would play in MIDI's 4/4 at 120 bpm, and
  a tempo stated later would be a change); one tempo, unless ``tempo_changes``; with
  ``time_signature_id``, one meter;
* a piece has exactly the bars asked for. EOS stands only in the last bar; there the
  model's Bar is taken as the end too (``resolve``), once the bar's notes reach its bar
  line, so a model that would go on still ends its last bar rather than crowd it with
  notes. Before the last bar the model cannot end (letting an EOS there leave the rest
  of the piece in rests cost 0.02 of ``bench/quality.py``'s overlap on the default
  model: it wants to end where its 16-bar training tunes end). A bar that has spent its
  token budget (``BUDGET_FACTOR`` times the piece's mean bar so far) is made to close.

The tokenizer's own decoder accepts more than this (it skips what makes no sense where
it stands); the grammar is what a sampler must write so that nothing is skipped.
"""

from __future__ import annotations

from enum import IntEnum

import torch

from musegan.tokenizer import KINDS, Tokenizer

MAX_TOKENS_PER_BAR = 400  # a bar longer than this is forced to end (a runaway model)
BUDGET_FACTOR = 3  # a bar may hold this many times the piece's mean bar so far ...
BUDGET_FLOOR = 64  # ... or this many tokens (about 16 notes), whichever is more


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
    HEADER_PROGRAM = 10  # a Program or Track closing a bar's header (a window's first bar)
    DONE = 11  # EOS written: only PAD follows (the last state: see Grammar.done)


# After each state, the kinds that may come next. "bar" and "eos" are further subject to
# the bar count: another Bar only while bars are wanted, EOS only once all are written.
FOLLOWS: dict[State, tuple[str, ...]] = {
    State.START: ("bar",),
    State.BAR: ("time_signature", "tempo", "program", "position", "bar", "eos"),
    State.TIME_SIGNATURE: ("tempo", "program", "position", "bar", "eos"),
    State.BAR_TEMPO: ("program", "position", "bar", "eos"),
    State.HEADER_PROGRAM: ("position", "bar", "eos"),
    State.POSITION: ("tempo", "program", "pitch"),
    State.POSITION_TEMPO: ("program", "pitch"),
    State.PROGRAM: ("pitch",),
    State.PITCH: ("velocity",),
    State.VELOCITY: ("duration",),
    State.DURATION: ("program", "pitch", "position", "bar", "eos"),
    State.DONE: (),  # only PAD, which no kind names
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
    kind[kind == KINDS.index("part")] = KINDS.index("program")  # a Track token is a voice
    kind[tokenizer.EOS] = EOS_KIND
    return kind


def code(name: str) -> int:
    """The grammar's code of a kind name (``KINDS`` or "eos")."""
    return EOS_KIND if name == "eos" else KINDS.index(name)


class Grammar:
    """Batched grammar state: which tokens may come next for each of ``n`` pieces.

    A piece's state is one row of a single integer tensor (``s``, a column per quantity,
    see ``COLUMNS``) plus what it still sounds (``sounding``), so a step costs a few
    whole-batch operations, with no branch on the batch's values (no host syncs on a
    GPU). Most of a step is two lookups by token:

    * ``rules[token]``: each column's new value as ``old * a + b``. A Bar sets the
      position to -1, a Position sets it to its value, every other token keeps it
      (a = 1, b = 0); counts add 1; flags are and-ed. What depends on two columns (a
      closing bar's length, a note's end, the voice floor at a pitch) is a few more
      operations.
    * ``modes[mode, token]``: the next ``mode`` (the ``State``, whether a chosen tempo is
      still to state and whether the tempo may still be stated, in one number).

    A mask is one row of ``table``, chosen by the mode and by whether the bar is over
    budget, whether the piece has all its bars and whether the bar's notes reach its bar
    line; then positions are checked against the bar, voices and pitches against those
    written at the position, and pitches against the notes still sounding.

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
        tempo_changes: let the tempo change after the first bar's header.
        time_signature_id: a TimeSig token every piece must use (stated in its first bar
            header, never changed), or None to let the model choose.
    """

    def __init__(self, tokenizer: Tokenizer, n: int, bars: int, device: torch.device | str,
                 tempo_id: int | None, hold_meter: bool = False,
                 allowed: torch.Tensor | None = None, tempo_changes: bool = False,
                 time_signature_id: int | None = None):
        tok = self.tok = tokenizer
        self.tempo_changes = tempo_changes
        self.time_signature_id = time_signature_id
        self.tempo_id = tempo_id
        self.hold_meter = hold_meter
        self.allowed = allowed
        kinds = kind_codes(tok)
        value = torch.as_tensor(tok.value)  # (V,)
        positions, pitches = tok.token_range("position"), tok.token_range("pitch")
        tempos, meters = tok.token_range("tempo"), tok.token_range("time_signature")
        self.positions = slice(positions.start, positions.stop)
        self.pitches = slice(pitches.start, pitches.stop)
        self.tempos = slice(tempos.start, tempos.stop)
        self.meters = slice(meters.start, meters.stop)
        self.position_value = value[self.positions].to(device)
        self.pitch_value = value[self.pitches].to(device)
        voice_value = torch.as_tensor(tok.voice)  # (V,) -1: not a voice
        is_voice = voice_value >= 0
        # a voice's value, and above every voice for the other tokens: at one position
        # voices rise, so a token passes where its key is above the highest voice so far
        # (checked over the span of the voice tokens, where the other tokens' keys pass)
        span = is_voice.nonzero().squeeze(1)
        self.voices = slice(int(span[0]), int(span[-1]) + 1)
        self.voice_key = torch.where(is_voice, voice_value,
                                     int(voice_value.max()) + 1)[self.voices].to(device)
        is_ = {name: kinds == code(name) for name in LEADS_TO.keys() | {"tempo", "eos"}}
        base = self._table(kinds)  # (states, 2, V): by state and tempo pending
        # Notes before any Program or Track token play program 0's own voice; where the
        # corpus never has that voice, a piece must name its voice first.
        self.default_voice = True
        if allowed is not None:
            base &= self._usable(allowed.cpu(), kinds)
            self.default_voice = bool(base[:, :, tok.token_range("program")[0]].any())
        self.table = self._masks(base, is_).to(device)
        self.modes = self._modes(kinds, is_).to(device)
        self.rules = self._rules(value, voice_value, is_).to(device)
        # Per piece, voice and pitch: the step where its last note ends; notes before any
        # voice token play program 0's own voice (row 0). The last row is where the
        # tokens that end no note write (one scatter per step, no branch).
        # (int32: half the bytes to copy when pieces leave the batch; steps fit easily)
        self._sounding = torch.zeros(n, int(is_voice.sum()) + 1, 128, dtype=torch.int32,
                                     device=device)
        self._trash = int(is_voice.sum()) * 128  # that row's first cell, flattened
        start = torch.zeros(len(COLUMNS), dtype=torch.long)
        # A new piece's tempo is pending (it must state one, in its first bar's header,
        # after its meter); a continuation's only when one is chosen. The tempo is open.
        pending = tempo_id is not None or not hold_meter
        start[_MODE] = (State.START * 2 + pending) * 2 + 1
        start[[_BARS_WANTED, _POSITION, _PITCH_FLOOR, _VOICE_FLOOR, _VOICE]] = torch.tensor(
            [bars, -1, -1, -1, -1])
        start[_BAR_LENGTH] = int(tok.bar_steps[tok.default_time_signature])
        start[_VOICE1] = 1
        start[_METER_PENDING] = time_signature_id is not None
        self.s = start.to(device).repeat(n, 1)

    @property
    def s(self) -> torch.Tensor:
        """(n, columns): each piece's state, a column per name in ``COLUMNS``."""
        return self._s

    @s.setter
    def s(self, s: torch.Tensor) -> None:
        # A step updates s in place, so its columns' views are made once, here: (n,)
        # each in ``_c`` and (n, 1) each in ``_c1``; and the mask's three flags have rows
        # to be written into (as integers: they index its table).
        self._s, self._c, self._c1 = s, s.unbind(1), s.split(1, 1)
        self._rows = torch.arange(len(s), device=s.device)
        self._flags = torch.empty(3, len(s), dtype=torch.long, device=s.device).unbind(0)

    # What callers read (and two they set) of a piece's state, as (n,) tensors.
    @property
    def state(self) -> torch.Tensor:
        return self._c[_MODE] // 4

    @property
    def sounding(self) -> torch.Tensor:
        """(n, voices, 128): per piece, voice and pitch, the step where its last note ends."""
        return self._sounding[:, :-1]

    @property
    def bars(self) -> torch.Tensor:
        """Bars started."""
        return self._c[_BARS]

    @property
    def bars_wanted(self) -> torch.Tensor:
        return self._c[_BARS_WANTED]

    @bars_wanted.setter
    def bars_wanted(self, bars: torch.Tensor | int) -> None:
        self._c[_BARS_WANTED].copy_(torch.as_tensor(bars))

    @property
    def tokens_in_bar(self) -> torch.Tensor:
        return self._c[_TOKENS_IN_BAR]

    @property
    def done(self) -> torch.Tensor:
        """(n,) true where the piece has ended (EOS)."""
        return self._c[_MODE] >= State.DONE * 4  # DONE is the last state

    @property
    def tempo_pending(self) -> torch.Tensor:
        """(n,) true where a chosen tempo is still to be stated."""
        return self._c[_MODE] & 2 != 0

    @tempo_pending.setter
    def tempo_pending(self, pending: torch.Tensor | bool) -> None:
        mode = self._c[_MODE]
        mode.copy_((mode & ~2) | torch.as_tensor(pending, device=mode.device).long() * 2)

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
        """(state, tempo pending) -> allowed ids: (states, 2, V)."""
        rows = torch.zeros(len(State), 2, len(kind), dtype=torch.bool)
        tempo, time_signature = code("tempo"), code("time_signature")
        for state, names in FOLLOWS.items():
            for pending in (0, 1):
                # Bar and EOS both stand where a bar may close; resolve() says which it is.
                ok = torch.isin(kind, torch.tensor([code(k) for k in names], dtype=kind.dtype))
                if self.tempo_id is not None:  # the caller chose the tempo
                    ok &= (kind != tempo) | (torch.arange(len(kind)) == self.tempo_id)
                elif self.hold_meter:
                    ok &= kind != tempo
                if pending and state == State.BAR:  # a header that must state the tempo:
                    # a new piece's meter first, then its tempo; a continuation's tempo
                    ok &= kind == (tempo if self.hold_meter else time_signature)
                elif pending and state == State.TIME_SIGNATURE:
                    ok &= kind == tempo
                if self.hold_meter:
                    ok &= kind != time_signature
                rows[state, pending] = ok
        rows[State.DONE] = torch.arange(len(kind)) == self.tok.PAD  # ended: PAD only
        return rows

    def _masks(self, base: torch.Tensor, is_: dict[str, torch.Tensor]) -> torch.Tensor:
        """The rows of ``mask`` before positions, voices and pitches are checked:
        (mode, over budget, all bars started, bar line reached) -> allowed ids."""
        V = base.size(-1)
        # axes: state, tempo pending, tempo open, over budget, finished, reached, V
        table = base[:, :, None, None, None, None, :].repeat(1, 1, 2, 2, 2, 2, 1)
        if not self.tempo_changes:  # the tempo is stated in the first bar (or not at all)
            table[:, 0, 0, ..., self.tempos] = False
        # A bar over its budget must close as soon as the grammar lets it.
        can_end = [State.BAR, State.TIME_SIGNATURE, State.BAR_TEMPO, State.HEADER_PROGRAM,
                   State.DURATION]
        ends_bar = is_["bar"] | is_["eos"]
        table[can_end, :, :, 1] &= ends_bar
        # EOS only in the last bar, which closes (with EOS) once its sound reaches the bar
        # line, or when the model ends it itself with EOS; until then its Bar is not taken.
        table[..., 0, :, self.tok.EOS] = False
        table[..., 1, 0, self.tok.BAR] = False
        table[State.DONE] = base[State.DONE, 0]  # PAD, whatever else holds
        return table.view(-1, 2, 2, 2, V)  # modes = state * 4 + pending * 2 + open

    def _modes(self, kinds: torch.Tensor, is_: dict[str, torch.Tensor]) -> torch.Tensor:
        """(mode, token) -> the next mode."""
        next_state = torch.full((len(kinds),), KEEPS_STATE, dtype=torch.long)
        for name, state in LEADS_TO.items():
            next_state[is_[name]] = state
        next_state[is_["tempo"]] = TEMPO_STATE
        next_state[is_["eos"]] = State.DONE
        # (state, token) -> the next state: PAD and BOS keep the state, a tempo's depends
        # on where it stands (in a bar's header or after a position) ...
        header = torch.tensor([s in (State.BAR, State.TIME_SIGNATURE) for s in State])
        tempo_state = torch.where(header, State.BAR_TEMPO, State.POSITION_TEMPO)  # (states,)
        transition = next_state.expand(len(State), -1).clone()
        transition = torch.where(transition == TEMPO_STATE, tempo_state[:, None], transition)
        # and a voice's on whether it closes a bar's header
        in_header = torch.tensor([s in (State.BAR, State.TIME_SIGNATURE, State.BAR_TEMPO)
                                  for s in State])
        transition = torch.where(in_header[:, None] & (transition == State.PROGRAM),
                                 State.HEADER_PROGRAM, transition)
        transition = torch.where(transition == KEEPS_STATE,
                                 torch.arange(len(State))[:, None], transition)
        transition[State.DONE] = State.DONE  # an ended piece stays ended
        # A chosen tempo is pending until a Tempo; the tempo may be stated until the
        # first bar's first note (or a Tempo, or a Position).
        pending = torch.tensor([0, 1])[:, None] * ~is_["tempo"]  # (2, V)
        open_ = torch.tensor([0, 1])[:, None] * ~(is_["tempo"] | is_["pitch"]
                                                 | is_["position"])
        modes = (transition[:, None, None] * 2 + pending[None, :, None]) * 2 + open_[None, None]
        return modes.view(-1, len(kinds))  # (states * 4, V)

    def _rules(self, value: torch.Tensor, voice: torch.Tensor,
               is_: dict[str, torch.Tensor]) -> torch.Tensor:
        """(V, 2 * columns + extras): per token, each column's a and b (new = old * a + b),
        then the numbers ``_advance`` reads: whether it is a Bar, a Pitch, a Duration;
        a Duration's length; where a Duration writes in ``sounding`` (row scale, trash)."""
        V, C = len(value), len(COLUMNS)
        a, b = torch.ones(V, C, dtype=torch.long), torch.zeros(V, C, dtype=torch.long)

        def becomes(column: int, where: torch.Tensor, to: torch.Tensor | int) -> None:
            a[where, column] = 0
            b[where, column] = to[where] if isinstance(to, torch.Tensor) else to

        bar, position, pitch = is_["bar"], is_["position"], is_["pitch"]
        is_voice = voice >= 0
        meter_steps = torch.as_tensor(self.tok.bar_steps)[value.clamp(
            min=0, max=len(self.tok.bar_steps) - 1)]
        b[:, _BARS] = bar
        becomes(_POSITION, bar, -1)
        becomes(_POSITION, position, value)
        becomes(_POSITION0, bar, 0)
        becomes(_POSITION0, position, value)
        becomes(_TOKENS_IN_BAR, bar, 0)
        b[~bar, _TOKENS_IN_BAR] = 1
        becomes(_BAR_LENGTH, is_["time_signature"], meter_steps)
        # a new onset or voice starts the pitches afresh; a Pitch raises the floor
        becomes(_PITCH_FLOOR, bar | position | is_["program"], -1)
        becomes(_PITCH_FLOOR, pitch, value)
        becomes(_PITCH0, bar | position | is_["program"], 0)
        becomes(_PITCH0, pitch, value)
        becomes(_VOICE_FLOOR, bar | position, -1)  # (and at a Pitch, see _advance)
        becomes(_VOICE, is_voice, voice)
        becomes(_VOICE1, is_voice, voice + 1)
        becomes(_ROW, is_voice, torch.cumsum(is_voice.long(), 0) - 1)  # its row in sounding
        becomes(_REACH, bar, 0)
        becomes(_STARTED, bar, 1)
        a[:, _METER_PENDING] = ~is_["time_signature"]
        duration = is_["duration"]
        voices = int(is_voice.sum())
        extras = torch.stack([bar, pitch, duration, torch.where(duration, value, 0),
                              torch.where(duration, 128, 0),
                              torch.where(duration, 0, voices * 128)], 1).long()
        return torch.cat([a, b, extras], 1)

    def mask(self) -> torch.Tensor:
        """(n, V) true where a token is allowed next."""
        c, c1 = self._c, self._c1
        runaway, finished, reached = self._flags
        torch.ge(c[_TOKENS_IN_BAR], self.budget(), out=runaway)
        torch.ge(c[_BARS], c[_BARS_WANTED], out=finished)
        torch.ge(c[_REACH], c[_BAR_LENGTH], out=reached)
        ok = self.table[c[_MODE], runaway, finished, reached]
        # (Each section of the vocabulary below is a view of ``ok``: ``&=`` writes into it.)
        # Positions rise within a bar and stay inside its meter.
        positions = ok[:, self.positions]
        positions &= self.position_value > c1[_POSITION]
        positions &= self.position_value < c1[_BAR_LENGTH]
        # At one position, voices rise, and pitches strictly rise within a voice; a voice
        # strikes no pitch it still sounds.
        voices = ok[:, self.voices]
        voices &= self.voice_key > c1[_VOICE_FLOOR]
        pitches = ok[:, self.pitches]
        pitches &= self.pitch_value > c1[_PITCH_FLOOR]
        if not self.default_voice:
            pitches &= c1[_VOICE] >= 0
        now = c1[_BAR_START] + c1[_POSITION0]
        pitches &= self._sounding[self._rows, c[_ROW]] <= now
        if self.time_signature_id is not None and not self.hold_meter:
            meter = torch.zeros(ok.size(1), dtype=torch.bool, device=ok.device)
            meter[self.time_signature_id] = True
            pending = c[_METER_PENDING] != 0
            meters = ok[:, self.meters]
            meters &= meter[self.meters] & pending[:, None]
            at_bar = (self.state == State.BAR) & pending
            ok = torch.where(at_bar[:, None], ok & meter, ok)  # state it first
        return ok

    def budget(self) -> torch.Tensor:
        """(n,) the tokens the current bar may hold: ``BUDGET_FACTOR`` times the mean of
        the piece's closed bars (at least ``BUDGET_FLOOR``), at most ``MAX_TOKENS_PER_BAR``."""
        bars = self._c[_BARS]
        closed = (bars - 1).clamp_(min=1)
        relative = torch.where(bars > 1, BUDGET_FACTOR * self._c[_TOKENS_IN_BARS] // closed,
                               MAX_TOKENS_PER_BAR)
        return relative.clamp_(min=BUDGET_FLOOR, max=MAX_TOKENS_PER_BAR)

    def resolve(self, token: torch.Tensor) -> torch.Tensor:
        """The token the piece gets for the one drawn (n,): a Bar drawn in the last bar
        ends the piece (EOS)."""
        finished = self._c[_BARS] >= self._c[_BARS_WANTED]
        return torch.where(finished & (token == self.tok.BAR), self.tok.EOS, token)

    def update(self, token: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Advance every sequence by its next token (n,); with ``active`` (n,) only those
        where it is true (the others keep their state, whatever their token)."""
        if active is None:
            self._advance(token)
            return
        before = self.s.clone()
        self._advance(token, active)
        torch.where(active[:, None], self.s, before, out=self.s)

    def _advance(self, token: torch.Tensor, active: torch.Tensor | None = None) -> None:
        s, c, C = self._s, self._c, len(COLUMNS)
        rule = self.rules.index_select(0, token)  # (n, 2C + extras)
        is_bar, is_pitch, is_duration, length, row_scale, trash = rule[:, 2 * C:].unbind(1)
        # A Bar closes the bar before it (from the second on): its tokens and its length
        # in steps add to those of the closed bars.
        carried = s[:, _TOKENS_IN_BAR:_BAR_LENGTH + 1] * (is_bar * c[_STARTED])[:, None]
        mode = self.modes[c[_MODE], token]
        s.mul_(rule[:, :C]).add_(rule[:, C:2 * C])
        c[_MODE].copy_(mode)
        s[:, _TOKENS_IN_BARS:_BAR_START + 1].add_(carried)
        # At a Pitch, the highest voice with notes here rises to the current one.
        c[_VOICE_FLOOR].clamp_(min=is_pitch * c[_VOICE1] - 1)
        # A Duration's note ends here in the bar (0 for the other tokens), and sounds
        # until then; the bar's notes reach at least that far.
        note_end = torch.addcmul(length, is_duration, c[_POSITION0])
        c[_REACH].clamp_(min=note_end)
        at = torch.addcmul(trash + c[_PITCH0] * is_duration, c[_ROW], row_scale)
        if active is not None:  # sounding is updated in place: only where active
            at = torch.where(active, at, self._trash)
        end = (c[_BAR_START] + note_end).to(self._sounding.dtype)
        self._sounding.view(len(s), -1).scatter_(1, at[:, None], end[:, None])

    def held(self) -> Grammar:
        """These pieces' state under a continuation's settings (``hold_meter``; no tempo or
        meter to state): the grammar that goes on writing them after their tokens so far,
        in the state ``read_prefix`` would give for those tokens (set ``bars_wanted``)."""
        held = Grammar(self.tok, 0, 0, self.s.device, None, hold_meter=True,
                       allowed=self.allowed, tempo_changes=self.tempo_changes)
        held.s, held._sounding = self.s.clone(), self._sounding.clone()
        held.tempo_pending = False
        held._c[_METER_PENDING].zero_()
        return held

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these sequences (indices into the batch)."""
        # (index_select: a quarter of the time of indexing, for the (n, voices, 128) array)
        self.s, self._sounding = self.s[rows], self._sounding.index_select(0, rows)

    def append(self, other: Grammar) -> None:
        """Add ``other``'s sequences (a grammar of the same settings) after these."""
        self.s = torch.cat([self.s, other.s])
        self._sounding = torch.cat([self._sounding, other._sounding])


# The state Grammar keeps for each piece of the batch: the columns of ``s`` and what it
# sounds. (tokens_in_bar, bar_length) and (tokens_in_bars, bar_start) stand side by side:
# a closing Bar adds the first pair to the second in one operation.
COLUMNS = ("mode",  # state * 4 + a chosen tempo still to state * 2 + the tempo still open
           "bars", "bars_wanted",
           "position", "position0",  # in the bar (-1: none yet), and at least 0
           "tokens_in_bar", "bar_length",  # the current bar's tokens; its length in steps
           "tokens_in_bars", "bar_start",  # the closed bars' tokens; where the bar starts
           "pitch_floor", "pitch0",  # the highest pitch at the position in the voice
           # (-1: none yet), and the same at least 0
           "voice_floor",  # the highest voice with notes at the position (-1: none)
           "voice", "voice1",  # the voice stated (-1: none), and at least 0, plus 1
           "row",  # the voice's row in sounding
           "reach",  # where the bar's notes end, in steps from its start
           "started",  # 1 once the first Bar is written
           "meter_pending")  # 1 while a chosen meter is still to state
(_MODE, _BARS, _BARS_WANTED, _POSITION, _POSITION0, _TOKENS_IN_BAR, _BAR_LENGTH,
 _TOKENS_IN_BARS, _BAR_START, _PITCH_FLOOR, _PITCH0, _VOICE_FLOOR, _VOICE, _VOICE1, _ROW,
 _REACH, _STARTED, _METER_PENDING) = range(len(COLUMNS))
_PER_PIECE = ("s", "sounding")
