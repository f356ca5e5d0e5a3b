"""The token grammar: which token may follow which, and its batched state for decoding.

The stream ``musegan.tokenizer`` writes is::

    BOS
    Bar [TimeSig] [Tempo] [Program|Track]               # a bar's header
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
* one tempo, stated in the first bar, unless ``tempo_changes``; with
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

    Everything that depends only on (state, tempo still to state) is a row of one table
    built up front, so a step's mask is a row lookup, then positions are
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
        self.bars_wanted = torch.full((n,), bars, dtype=torch.long, device=device)
        self.tempo_id = tempo_id
        self.hold_meter = hold_meter
        self.allowed = allowed
        kinds = kind_codes(tok)
        self.kind = kinds.to(device)  # (V,)
        self.value = torch.as_tensor(tok.value, device=device)  # (V,)
        positions = tok.token_range("position")
        self.positions = slice(positions.start, positions.stop)
        self.position_value = self.value[self.positions]
        tempos, meters = tok.token_range("tempo"), tok.token_range("time_signature")
        self.tempos = slice(tempos.start, tempos.stop)
        self.meters = slice(meters.start, meters.stop)
        self.voice_value = torch.as_tensor(tok.voice, device=device)  # (V,) -1: not a voice
        self.is_voice = self.voice_value >= 0
        # a voice's value, and above every voice for the other tokens: at one position
        # voices rise, so a token passes where its key is above the highest voice so far
        self.voice_key = torch.where(self.is_voice, self.voice_value,
                                     int(self.voice_value.max()) + 1)
        # Each voice token's row in ``sounding``; notes before any voice token play
        # program 0's own voice (row 0).
        self.voice_row = torch.cumsum(self.is_voice.long(), 0) - 1  # (V,) valid for voices
        self.table = self._table(kinds)  # (states * 2, V)
        # Notes before any Program or Track token play program 0's own voice; where the
        # corpus never has that voice, a piece must name its voice first.
        self.default_voice = True
        if allowed is not None:
            self.table &= self._usable(allowed.cpu(), kinds)
            self.default_voice = bool(self.table[:, tok.token_range("program")[0]].any())
        self.table = self.table.to(device)
        next_state = torch.full((len(tok),), KEEPS_STATE, dtype=torch.long)
        for name, state in LEADS_TO.items():
            next_state[kinds == code(name)] = state
        next_state[kinds == code("tempo")] = TEMPO_STATE
        # (state, token) -> the next state, in one lookup: PAD and BOS keep the state, a
        # tempo's depends on where it stands (in a bar's header or after a position) ...
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
        self.transition = transition.flatten().to(device)  # (states * V,)
        # What each token is and carries, for _advance: two lookups per step instead of
        # a comparison per kind and a lookup per number.
        is_ = {name: kinds == code(name) for name in
               ("bar", "position", "pitch", "program", "duration", "tempo", "time_signature",
                "eos")}
        self.flags = torch.stack([  # in the order _advance unpacks them
            is_["bar"], is_["position"], is_["pitch"], is_["program"], is_["duration"],
            is_["time_signature"], is_["eos"],
            is_["bar"] | is_["position"],  # a new onset
            is_["bar"] | is_["position"] | is_["program"],  # a new onset or voice
            ~(is_["tempo"] | is_["pitch"] | is_["position"]),  # the tempo may still be stated
            ~is_["tempo"], ~is_["time_signature"]], 1).to(device)
        meter_steps = torch.as_tensor(tok.bar_steps)[self.value.cpu().clamp(
            min=0, max=len(tok.bar_steps) - 1)]
        self.numbers = torch.stack([  # (V, 4): value, voice, row in sounding, bar length
            self.value.cpu(), self.voice_value.cpu(), self.voice_row.cpu(),
            torch.where(is_["time_signature"], meter_steps, 0)], 1).to(device)
        self.can_end = torch.zeros(len(State), dtype=torch.bool, device=device)  # (states,)
        self.can_end[[State.BAR, State.TIME_SIGNATURE, State.BAR_TEMPO, State.HEADER_PROGRAM,
                      State.DURATION]] = True
        self.ends_bar = (self.kind == code("eos")) | (self.kind == code("bar"))  # (V,)
        self.pad_only = torch.arange(len(tok), device=device) == tok.PAD  # (V,)
        self.state = torch.full((n,), State.START, dtype=torch.long, device=device)
        self.bars = torch.zeros(n, dtype=torch.long, device=device)  # bars started
        self.position = torch.full((n,), -1, dtype=torch.long, device=device)
        self.bar_length = torch.full((n,), int(tok.bar_steps[tok.default_time_signature]),
                                     device=device)
        self.tokens_in_bar = torch.zeros(n, dtype=torch.long, device=device)
        self.tokens_in_bars = torch.zeros(n, dtype=torch.long, device=device)  # closed bars'
        # At the current position: the highest pitch written in the current voice, and
        # the highest voice that has notes (-1: none yet).
        self.pitch_floor = torch.full((n,), -1, dtype=torch.long, device=device)
        self.voice_floor = torch.full((n,), -1, dtype=torch.long, device=device)
        self.voice = torch.full((n,), -1, dtype=torch.long, device=device)  # -1: none stated
        self.row = torch.zeros(n, dtype=torch.long, device=device)  # its row in sounding
        # Per piece, voice and pitch: the step where its last note ends.
        # (int32: half the bytes to copy when pieces leave the batch; steps fit easily)
        self.sounding = torch.zeros(n, int(self.is_voice.sum()), 128, dtype=torch.int32,
                                    device=device)
        self.bar_start = torch.zeros(n, dtype=torch.long, device=device)  # in steps
        self.reach = torch.zeros(n, dtype=torch.long, device=device)  # the bar's notes end here
        pitches = tok.token_range("pitch")
        self.pitches = slice(pitches.start, pitches.stop)
        self.pitch_value = self.value[self.pitches]
        self.done = torch.zeros(n, dtype=torch.bool, device=device)
        # The tempo may be stated until the first bar's first note (then, only with
        # tempo_changes); a chosen meter is stated in the first bar header.
        self.tempo_open = torch.ones(n, dtype=torch.bool, device=device)
        self.meter_pending = torch.full((n,), time_signature_id is not None, dtype=torch.bool,
                                        device=device)
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
        """(state, tempo pending) -> allowed ids, flattened to rows."""
        rows = torch.zeros(len(State), 2, len(kind), dtype=torch.bool)
        tempo, time_signature = code("tempo"), code("time_signature")
        for state, names in FOLLOWS.items():
            for pending in (0, 1):
                # Bar and EOS both stand where a bar may close; resolve() says which it is.
                ok = torch.isin(kind, torch.tensor([code(k) for k in names]))
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
                rows[state, pending] = ok
        return rows.view(-1, len(kind))

    def mask(self) -> torch.Tensor:
        """(n, V) true where a token is allowed next."""
        ok = self.table[self.state * 2 + self.tempo_pending]
        # (Each section of the vocabulary below is a view of ``ok``: ``&=`` writes into it.
        # Bar and EOS are one token each: their columns, not the whole mask.)
        # EOS only in the last bar, which closes (with EOS) once its sound reaches the bar
        # line, or when the model ends it itself with EOS; until then its Bar is not taken.
        finished = self.bars >= self.bars_wanted
        bar, eos = ok[:, self.tok.BAR], ok[:, self.tok.EOS]
        bar &= ~finished | (self.reach >= self.bar_length)
        eos &= finished
        # Positions rise within a bar and stay inside its meter.
        positions = ok[:, self.positions]
        positions &= self.position_value > self.position[:, None]
        positions &= self.position_value < self.bar_length[:, None]
        # At one position, voices rise, and pitches strictly rise within a voice; a voice
        # strikes no pitch it still sounds.
        ok &= self.voice_key > self.voice_floor[:, None]
        pitches = ok[:, self.pitches]
        pitches &= self.pitch_value > self.pitch_floor[:, None]
        if not self.default_voice:
            pitches &= (self.voice >= 0)[:, None]
        now = self.bar_start + self.position.clamp(min=0)
        held = self.sounding[torch.arange(len(now), device=now.device), self.row]  # (n, 128)
        pitches &= held <= now[:, None]
        if not self.tempo_changes:
            tempos = ok[:, self.tempos]
            tempos &= (self.tempo_open | self.tempo_pending)[:, None]
        if self.time_signature_id is not None and not self.hold_meter:
            meter = torch.zeros(ok.size(1), dtype=torch.bool, device=ok.device)
            meter[self.time_signature_id] = True
            meters = ok[:, self.meters]
            meters &= meter[self.meters] & self.meter_pending[:, None]
            at_bar = (self.state == State.BAR) & self.meter_pending
            ok = torch.where(at_bar[:, None], ok & meter, ok)  # state it first
        # A bar over its budget must close as soon as the grammar lets it; finished
        # sequences pad. (No branches on the batch's values: no host syncs on a GPU.)
        runaway = (self.tokens_in_bar >= self.budget()) & self.can_end[self.state]
        ok &= self.ends_bar | ~runaway[:, None]
        return torch.where(self.done[:, None], self.pad_only, ok)

    def budget(self) -> torch.Tensor:
        """(n,) the tokens the current bar may hold: ``BUDGET_FACTOR`` times the mean of
        the piece's closed bars (at least ``BUDGET_FLOOR``), at most ``MAX_TOKENS_PER_BAR``."""
        closed = (self.bars - 1).clamp(min=1)
        relative = torch.where(self.bars > 1, BUDGET_FACTOR * self.tokens_in_bars // closed,
                               MAX_TOKENS_PER_BAR)
        return relative.clamp(min=BUDGET_FLOOR, max=MAX_TOKENS_PER_BAR)

    def resolve(self, token: torch.Tensor) -> torch.Tensor:
        """The token the piece gets for the one drawn (n,): a Bar drawn in the last bar
        ends the piece (EOS)."""
        finished = self.bars >= self.bars_wanted
        return torch.where(finished & (token == self.tok.BAR), self.tok.EOS, token)

    def update(self, token: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """Advance every sequence by its next token (n,); with ``active`` (n,) only those
        where it is true (the others keep their state, whatever their token)."""
        if active is None:
            self._advance(token)
            return
        before = {name: getattr(self, name) for name in _PER_PIECE if name != "sounding"}
        self._advance(token, active)
        for name, old in before.items():
            setattr(self, name, torch.where(active, getattr(self, name), old))

    def _advance(self, token: torch.Tensor, active: torch.Tensor | None = None) -> None:
        value, voice, row, meter_steps = self.numbers[token].unbind(1)
        (new_bar, is_position, is_pitch, is_voice, is_duration, is_ts, is_eos, new_onset,
         new_onset_or_voice, tempo_still_open, not_tempo, not_ts) = self.flags[token].unbind(1)
        position = self.position.clamp(min=0)
        self.voice = torch.where(is_voice, voice, self.voice)
        self.pitch_floor = torch.where(new_onset_or_voice, -1,
                                       torch.where(is_pitch, value, self.pitch_floor))
        self.voice_floor = torch.where(new_onset, -1, torch.where(
            is_pitch, torch.maximum(self.voice_floor, self.voice.clamp(min=0)), self.voice_floor))
        closes = new_bar & (self.bars > 0)
        self.tokens_in_bars = self.tokens_in_bars + torch.where(closes, self.tokens_in_bar, 0)
        self.bar_start = self.bar_start + torch.where(closes, self.bar_length, 0)
        self.row = torch.where(is_voice, row, self.row)
        if active is not None:  # sounding is updated in place: only where active
            is_duration = is_duration & active
        note_end = position + value  # in the bar, for a Duration
        self.reach = torch.where(new_bar, 0, torch.where(
            is_duration, torch.maximum(self.reach, note_end), self.reach))
        # the note just written sounds until its end
        flat = self.sounding.view(len(token), -1)
        at = (self.row * 128 + self.pitch_floor.clamp(min=0))[:, None]
        end = (self.bar_start + note_end)[:, None].to(flat.dtype)
        flat.scatter_(1, at, torch.where(is_duration[:, None], end, flat.gather(1, at)))
        self.bars = self.bars + new_bar
        self.tokens_in_bar = torch.where(new_bar, 0, self.tokens_in_bar + 1)
        self.tempo_open = self.tempo_open & tempo_still_open
        self.meter_pending = self.meter_pending & not_ts
        self.position = torch.where(new_bar, -1, torch.where(is_position, value, self.position))
        self.bar_length = torch.where(is_ts, meter_steps, self.bar_length)
        self.state = self.transition[self.state * len(self.kind) + token]
        self.done = self.done | is_eos
        self.tempo_pending = self.tempo_pending & not_tempo

    def held(self) -> Grammar:
        """These pieces' state under a continuation's settings (``hold_meter``; no tempo or
        meter to state): the grammar that goes on writing them after their tokens so far,
        in the state ``read_prefix`` would give for those tokens (set ``bars_wanted``)."""
        held = Grammar(self.tok, 0, 0, self.state.device, None, hold_meter=True,
                       allowed=self.allowed, tempo_changes=self.tempo_changes)
        for name in _PER_PIECE:
            setattr(held, name, getattr(self, name))
        held.sounding = self.sounding.clone()  # _advance writes into it
        held.tempo_pending = torch.zeros_like(self.tempo_pending)
        held.meter_pending = torch.zeros_like(self.meter_pending)
        return held

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these sequences (indices into the batch)."""
        for name in _PER_PIECE:
            setattr(self, name, getattr(self, name)[rows])

    def append(self, other: Grammar) -> None:
        """Add ``other``'s sequences (a grammar of the same settings) after these."""
        for name in _PER_PIECE:
            setattr(self, name, torch.cat([getattr(self, name), getattr(other, name)]))


# The state Grammar keeps for each piece of the batch.
_PER_PIECE = ("state", "bars", "bars_wanted", "position", "bar_length", "tokens_in_bar",
              "tokens_in_bars", "pitch_floor", "voice_floor", "voice", "row", "sounding",
              "bar_start", "reach", "done", "tempo_pending", "tempo_open", "meter_pending")
