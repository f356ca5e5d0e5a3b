"""The token grammar: random walks through its masks always write well-formed pieces."""

from __future__ import annotations

import pytest
import torch
from midi_factory import make_score

from musegan.grammar import BUDGET_FLOOR, FOLLOWS, MAX_TOKENS_PER_BAR, Grammar, State
from musegan.tokenizer import KINDS, Tokenizer

TOK = Tokenizer()


def test_the_table_names_every_state_and_only_known_kinds():
    assert set(FOLLOWS) == set(State)
    for kinds in FOLLOWS.values():
        assert set(kinds) <= set(KINDS) | {"eos"}


def walk(grammar: Grammar, n: int, seed: int, steps: int = 4000,
         prefer: int | None = None) -> list[list[int]]:
    """Each piece picks uniformly among the tokens its mask allows, until EOS; with
    ``prefer``, that token wherever the mask allows it."""
    generator = torch.Generator().manual_seed(seed)
    rows: list[list[int]] = [[TOK.BOS] for _ in range(n)]
    for _ in range(steps):
        mask = grammar.mask()
        assert mask.any(1).all(), "a piece was left with no allowed token"
        token = torch.multinomial(mask.float(), 1, generator=generator).squeeze(1)
        if prefer is not None:
            token = torch.where(mask[:, prefer], prefer, token)
        token = grammar.resolve(token)
        grammar.update(token)
        for row, t in zip(rows, token.tolist(), strict=True):
            if not row or row[-1] != TOK.EOS:
                row.append(t)
        if grammar.done.all():
            return rows
    raise AssertionError("the walk never ended")


def check_well_formed(ids: list[int], bars: int, tempo: str | None = None) -> None:
    """An oracle written from the stream's description, not from Grammar's code."""
    names = TOK.tokens(ids)
    assert names[0] == "BOS" and names[-1] == "EOS" and names.count("EOS") == 1
    assert names.count("Bar") == bars
    bar_steps = int(TOK.bar_steps[TOK.default_time_signature])
    position = -1
    expect: str | None = None  # the kind a note still needs
    previous = ""
    for name in names[1:]:
        kind = name.split("_")[0]
        if previous in ("Program", "Track") and position < 0:
            # A voice may close a bar's header (training windows start that way); the
            # bar's notes still start at a Position.
            assert kind in ("Position", "Bar", "EOS"), f"{name} after a header's voice"
        if kind == "EOS":
            break
        if expect:
            assert kind == expect, f"{expect} expected, got {name} in {names}"
            expect = {"Velocity": "Duration", "Duration": None}[kind]
            continue
        if kind == "Bar":
            position = -1
        elif kind == "TimeSig":
            assert position == -1, "a meter change inside a bar"
            n, d = map(int, name.split("_")[1].split("/"))
            bar_steps = 4 * n * TOK.steps_per_quarter // d
        elif kind == "Position":
            value = int(name.split("_")[1])
            assert position < value < bar_steps, f"position {value} out of order in {names}"
            position = value
        elif kind == "Pitch":
            assert position >= 0, "a note before any position"
            expect = "Velocity"
        elif kind == "Tempo" and tempo is not None:
            assert name == tempo
        previous = kind
    assert expect is None, "the piece ends inside a note"


def doubled_notes(ids: list[int]) -> int:
    """Notes sharing instrument, pitch and onset with another, in the decoded MIDI."""
    score = TOK.decode_score(ids)
    seen, doubled = set(), 0
    for track in score.tracks:
        for note in track.notes:
            key = (track.program, track.is_drum, note.time, note.pitch)
            doubled += key in seen
            seen.add(key)
    return doubled


@pytest.mark.parametrize("seed", range(8))
def test_no_piece_ever_holds_a_doubled_note(seed):
    """Random walks stand for any logits: whatever a model prefers, the grammar leaves it
    no way to write the same pitch twice at one onset in one instrument."""
    grammar = Grammar(TOK, 6, 3, "cpu", tempo_id=None)
    for row in walk(grammar, 6, seed):
        assert doubled_notes(row) == 0


@pytest.mark.parametrize("seed", range(6))
def test_random_walks_write_well_formed_pieces_with_exactly_the_bars_asked(seed):
    bars = 1 + seed % 4
    grammar = Grammar(TOK, 4, bars, "cpu", tempo_id=None)
    for row in walk(grammar, 4, seed):
        check_well_formed(row, bars)


def test_a_chosen_tempo_is_stated_first_and_is_the_only_tempo():
    tempo_id = TOK.tempo_id(140)
    grammar = Grammar(TOK, 3, 2, "cpu", tempo_id=tempo_id)
    tempo = TOK.tokens([tempo_id])[0]
    for row in walk(grammar, 3, seed=1):
        check_well_formed(row, 2, tempo)
        names = TOK.tokens(row)
        header = names[names.index("Bar") + 1:names.index("Bar") + 3]
        assert tempo in header


def test_holding_the_meter_writes_no_time_signature_or_tempo():
    grammar = Grammar(TOK, 3, 2, "cpu", tempo_id=None, hold_meter=True)
    for row in walk(grammar, 3, seed=2):
        assert not any(name.startswith(("TimeSig", "Tempo")) for name in TOK.tokens(row))


def test_a_runaway_bar_is_made_to_end():
    grammar = Grammar(TOK, 1, 2, "cpu", tempo_id=None)
    pitch, velocity, duration = (TOK.token_range(kind)[0] for kind in ("pitch", "velocity",
                                                                       "duration"))
    for token in (TOK.BAR, TOK.token_id("Position_0")):
        grammar.update(torch.tensor([token]))
    while int(grammar.tokens_in_bar[0]) <= MAX_TOKENS_PER_BAR:
        for token in (pitch, velocity, duration):
            grammar.update(torch.tensor([token]))
    allowed = grammar.mask()[0].nonzero().squeeze(1).tolist()
    assert allowed == [TOK.BAR]  # bar 1 of 2: no EOS before the last bar


def test_the_last_bar_closes_with_eos_once_its_notes_reach_the_bar_line():
    grammar = Grammar(TOK, 1, 1, "cpu", tempo_id=None)
    for token in [TOK.BAR, TOK.token_id("Position_0"), *note(60)]:  # a 16th of 4/4
        grammar.update(torch.tensor([token]))
    assert not grammar.mask()[0, TOK.BAR] and grammar.mask()[0, TOK.EOS]
    for token in [TOK.token_id("Position_24"), TOK.token_id("Pitch_62"),
                  TOK.token_id("Velocity_79"), TOK.token_id("Duration_24")]:  # to the end
        grammar.update(torch.tensor([token]))
    assert grammar.mask()[0, TOK.BAR]
    assert grammar.resolve(torch.tensor([TOK.BAR])).tolist() == [TOK.EOS]


def test_an_ended_piece_writes_only_pad_while_the_others_go_on():
    """On a GPU finished pieces stay in the batch a few steps, writing PAD."""
    grammar = Grammar(TOK, 2, 1, "cpu", tempo_id=None)
    for first, second in [(TOK.BAR, TOK.BAR), (TOK.EOS, TOK.token_id("Position_0"))]:
        grammar.update(torch.tensor([first, second]))
    assert grammar.done.tolist() == [True, False]
    for token in note(60) + [TOK.token_id("Position_12"), *note(64)]:
        mask = grammar.mask()
        assert mask[0].nonzero().squeeze(1).tolist() == [TOK.PAD]
        assert mask[1, token]  # the other piece writes its notes
        grammar.update(torch.tensor([TOK.PAD, token]))
    assert grammar.done.tolist() == [True, False]


def note(pitch: int) -> list[int]:
    return [TOK.token_id(f"Pitch_{pitch}"), TOK.token_id("Velocity_79"),
            TOK.token_id("Duration_3")]


def test_a_bar_may_hold_a_few_times_the_pieces_mean_bar_and_no_more():
    grammar = Grammar(TOK, 1, 8, "cpu", tempo_id=None)
    sparse_bar = [TOK.BAR, TOK.token_id("Position_0"), *note(60)]  # 5 tokens
    for _ in range(3):
        for token in sparse_bar:
            grammar.update(torch.tensor([token]))
    grammar.update(torch.tensor([TOK.BAR]))
    assert int(grammar.budget()[0]) == BUDGET_FLOOR  # 3 x 5 tokens is under the floor
    position = 0
    while int(grammar.tokens_in_bar[0]) < BUDGET_FLOOR:
        for token in [TOK.token_id(f"Position_{position}"), *note(60)]:
            grammar.update(torch.tensor([token]))
        position += 1
    allowed = set(grammar.mask()[0].nonzero().squeeze(1).tolist())
    assert allowed == {TOK.BAR}  # bar 4 of 8


def test_a_piece_keeps_one_tempo_unless_tempo_changes_are_asked_for():
    tempo, meter = TOK.tempo_id(100), TOK.token_id("TimeSig_3/4")
    for changes in (False, True):
        grammar = Grammar(TOK, 1, 4, "cpu", tempo_id=None, tempo_changes=changes)
        grammar.update(torch.tensor([TOK.BAR]))
        # the first header states the meter, then the tempo, before anything else
        assert set(grammar.mask()[0].nonzero().squeeze(1).tolist()) == set(
            TOK.token_range("time_signature"))
        grammar.update(torch.tensor([meter]))
        assert set(grammar.mask()[0].nonzero().squeeze(1).tolist()) == set(
            TOK.token_range("tempo"))
        for token in [tempo, TOK.token_id("Position_0"), *note(60)]:
            grammar.update(torch.tensor([token]))
        grammar.update(torch.tensor([TOK.BAR]))
        assert bool(grammar.mask()[0, tempo]) == changes
        assert grammar.mask()[0, TOK.token_id("Position_0")]  # later headers may be bare


def test_every_new_piece_opens_with_its_meter_and_tempo_whatever_the_model_wants():
    # A model that would rather write bars of nothing: the first bar states both anyway,
    # from those the corpus holds.
    allowed = torch.ones(len(TOK), dtype=torch.bool)
    allowed[list(TOK.token_range("time_signature"))] = False
    allowed[TOK.token_id("TimeSig_3/4")] = True
    grammar = Grammar(TOK, 4, 3, "cpu", tempo_id=None, allowed=allowed)
    for row in walk(grammar, 4, seed=2, prefer=TOK.BAR):
        names = TOK.tokens(row)
        assert names[1:3] == ["Bar", "TimeSig_3/4"] and names[3].startswith("Tempo_"), names
        assert sum(name.startswith(("TimeSig", "Tempo")) for name in names) == 2


def test_a_chosen_meter_is_stated_first_and_kept():
    six_eight = TOK.token_id("TimeSig_6/8")
    grammar = Grammar(TOK, 3, 4, "cpu", tempo_id=None, time_signature_id=six_eight)
    for row in walk(grammar, 3, seed=5):
        names = TOK.tokens(row)
        assert names[2] == "TimeSig_6/8"
        assert sum(name.startswith("TimeSig") for name in names) == 1


def test_parts_are_voices_that_rise_at_an_onset_after_their_program():
    tok = Tokenizer(parts=[("Soprano", 0), ("Alto", 0), ("Bass", 0)])
    grammar = Grammar(tok, 1, 1, "cpu", tempo_id=None)
    alto = tok.token_id("Track_Alto")
    for token in [tok.BAR, tok.token_id("Position_0"), alto, tok.token_id("Pitch_60"),
                  tok.token_id("Velocity_79"), tok.token_id("Duration_3")]:
        grammar.update(torch.tensor([token]))
    allowed = grammar.mask()[0]
    assert not allowed[tok.token_id("Program_0")] and not allowed[tok.token_id("Track_Soprano")]
    assert not allowed[alto] and allowed[tok.token_id("Track_Bass")]
    assert allowed[tok.token_id("Program_1")]


def test_a_training_window_is_a_piece_the_grammar_can_write():
    """A window starting inside a piece states the voice in force at the end of its first
    bar's header (musegan.data); the grammar takes it, and then wants a Position: a note
    needs one."""
    bass = [(i * 960, 960, 40 + i % 5, 70) for i in range(8)]
    tune = [(i * 240, 240, 60 + (i * 3) % 12, 90) for i in range(32)]
    ids = TOK.encode_piece(make_score([(0, False, tune), (33, False, bass)])).ids
    table = TOK.bar_table(ids)
    assert table["program"][1:].all(), "the test wants a voice in force at every bar"
    for bar in range(1, len(table)):
        row = table[bar]
        header = [TOK.BAR, int(row["time_signature"]), int(row["tempo"]), int(row["program"])]
        window = header + ids[int(row["offset"]) + 1 + int(row["header"]):].tolist()
        grammar = Grammar(TOK, 1, len(table) - bar, "cpu", tempo_id=None)
        for step, token in enumerate(window):
            if step == len(header):  # a header's voice: no note before a Position
                allowed = grammar.mask()[0]
                assert not allowed[TOK.token_range("pitch")].any()
                assert allowed[TOK.token_id("Position_0")]
            assert grammar.mask()[0, token], f"bar {bar}: {TOK.tokens(window[:step + 1])}"
            grammar.update(torch.tensor([token]))
        assert grammar.done.all()


def test_tempo_bins_are_the_nearest_on_a_log_scale():
    for bpm in (31.0, 90.0, 120.0, 141.3, 299.0):
        nearest = min(range(len(TOK.tempo_values)),
                      key=lambda i: abs(torch.log(torch.tensor(TOK.tempo_values[i] / bpm))))
        assert TOK.tempo_bin(bpm) == nearest
    assert TOK.tokens([TOK.tempo_id(120)]) == ["Tempo_120.0"]
    assert TOK.tempo_bin(1.0) == 0 and TOK.tempo_bin(10_000.0) == len(TOK.tempo_values) - 1


@pytest.mark.parametrize("seed", range(4))
def test_a_voice_never_strikes_a_pitch_it_still_sounds(seed):
    """So decoding never needs an extra track for overlapping notes of one pitch: every
    voice of a random walk decodes to exactly one MIDI track."""
    tok = Tokenizer(parts=[("Lead", 0), ("Pad", 0)])
    grammar = Grammar(tok, 6, 4, "cpu", tempo_id=None)
    generator = torch.Generator().manual_seed(seed)
    rows: list[list[int]] = [[tok.BOS] for _ in range(6)]
    while not grammar.done.all():
        token = torch.multinomial(grammar.mask().float(), 1, generator=generator).squeeze(1)
        token = grammar.resolve(token)
        grammar.update(token)
        for row, t in zip(rows, token.tolist(), strict=True):
            if row[-1] != tok.EOS:
                row.append(t)
    pitches = set(tok.token_range("pitch"))
    for row in rows:
        voices, voice = set(), 0  # notes before any voice token play program 0's own voice
        for t in row:
            if tok.voice[t] >= 0:
                voice = int(tok.voice[t])
            elif t in pitches:
                voices.add(voice)  # the voices that play a note (a header may name one
                # over an empty bar)
        tracks = tok.decode_score(row).tracks
        assert len([t for t in tracks if len(t.notes)]) == len(voices)
