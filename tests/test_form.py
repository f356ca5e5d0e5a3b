"""Form (parts that repeat) and endings on the tonic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TOK, tiny_net
from midi_factory import musegan_cli

from musegan import MuseganError, Sampler
from musegan.form import (
    check_form,
    ends_on_tonic,
    force_tonic_ending,
    key_of,
    last_bar,
    tonic_chord,
)
from musegan.modelfile import save_model


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A tiny untrained model that keeps its bars short (so tests are fast) and its meter
    4/4 (so bars are easy to compare), saved with a default form on its card."""
    net = tiny_net()
    with torch.no_grad():
        net.generator.head.bias[TOK.BAR] += 3.0
        net.generator.head.bias[list(TOK.token_range("time_signature"))] = -50.0
        net.generator.head.bias[TOK.token_id("TimeSig_4/4")] = -8.0  # when one must be
    path = save_model(net, TOK, tmp_path_factory.mktemp("form") / "m.safetensors",
                      card={"form": "AB"})
    return Sampler.from_pretrained(path)


def bars_of(ids: list[int]) -> list[list[tuple]]:
    """The notes of each bar as (onset in the bar, duration, pitch, program) in MIDI ticks,
    from the MIDI the ids decode to (what a listener gets; bar lines where its meters put
    them)."""
    midi = TOK.decode(ids)
    downbeats = [midi.time_to_tick(t) for t in midi.get_downbeats()]
    count = TOK.tokens(ids).count("Bar")
    bars: list[list[tuple]] = [[] for _ in range(count)]
    for instrument in midi.instruments:
        for note in instrument.notes:
            start, end = midi.time_to_tick(note.start), midi.time_to_tick(note.end)
            bar = max(i for i, tick in enumerate(downbeats) if tick <= start)
            bars[bar].append((start - downbeats[bar], end - start, note.pitch,
                              int(instrument.program)))
    return [sorted(bar) for bar in bars]


def test_aabb_pieces_repeat_their_parts_exactly_bar_by_bar(quick):
    pieces = quick.generate_ids(n=3, form="AABB", part_bars=2, seed=4, open_end=True)
    for ids in pieces:
        bars = bars_of(ids)
        assert len(bars) == 8
        assert bars[0:2] == bars[2:4] and bars[4:6] == bars[6:8]
        assert bars[0:2] != bars[4:6]  # B is a part of its own
        assert TOK.tokens(ids).count("TimeSig_4/4") <= 1  # repeats restate nothing


def test_a_tune_with_a_form_ends_on_the_tonic_unless_asked_not_to(quick):
    checked = 0
    for ids in quick.generate_ids(n=8, form="AABA", part_bars=2, seed=5):
        body = ids[:-1]
        # The piece ends as the first A did, whose last bar was chosen in the key of the
        # notes before it: its first bar's (where that bar has notes).
        second_bar = [i for i, t in enumerate(body) if t == TOK.BAR][1]
        if "Pitch" in " ".join(TOK.tokens(body[:second_bar])):
            assert ends_on_tonic(body, TOK, tonic_chord(body[:second_bar], TOK))
            checked += 1
        bars = bars_of(ids)
        assert bars[0:2] == bars[2:4] == bars[6:8]
    assert checked >= 3
    assert len(quick.generate_ids(n=2, bars=3, seed=5, open_end=True)) == 2


def test_plain_pieces_have_their_bars_and_end_on_the_tonic(quick):
    checked = 0
    for ids in quick.generate_ids(n=6, bars=3, seed=6):
        body = ids[:-1]
        assert TOK.tokens(ids).count("Bar") == 3
        before = body[:last_bar(body, TOK)[0]]
        if "Pitch" in " ".join(TOK.tokens(before)):  # else the key is the last bar's own
            assert ends_on_tonic(body, TOK, tonic_chord(before, TOK))
            checked += 1
    assert checked >= 3


def test_the_model_card_names_the_default_form_and_bars_alone_write_none(quick):
    assert quick.plan() == ("AB", 16)
    assert quick.plan(bars=5) == ("", 5)
    assert quick.plan(form="ABAC", part_bars=4) == ("ABAC", 16)
    assert quick.plan(form="") == ("", 16)
    assert TOK.tokens(quick.generate_ids(n=1, seed=1, part_bars=2)[0]).count("Bar") == 4


def test_form_and_bars_that_disagree_are_a_clear_error(quick, tmp_path):
    with pytest.raises(MuseganError, match="makes 32 bars, not 16"):
        quick.generate_ids(n=1, bars=16, form="AABB")
    with pytest.raises(MuseganError, match="capital part letters"):
        check_form("aab", 8)
    model = str(quick.path)
    result = musegan_cli("generate", "--model", model, "--form", "AABB", "--bars", "16",
                         "--out", str(tmp_path / "songs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("musegan generate: error: --form AABB with --part-bars 8 "
                                     "makes 32 bars, not --bars 16; drop --bars or make it 32")
    assert not (tmp_path / "songs").exists()


def test_the_key_finder_finds_major_and_minor_keys():
    scale = np.array([60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60])
    assert key_of(scale, np.ones(len(scale))) == (0, "major")
    a_minor = np.array([57, 59, 60, 62, 64, 65, 67, 69, 64, 60, 57, 57])
    assert key_of(a_minor, np.ones(len(a_minor))) == (9, "minor")
    assert key_of(scale + 7, np.ones(len(scale))) == (7, "major")
    assert key_of(np.arange(12), np.ones(12)) == (0, "major")  # no key: the first
    assert key_of(np.array([], dtype=int), np.array([])) == (0, "major")


def test_the_key_finder_is_music21s_krumhansl_schmuckler():
    """The written-out profiles are music21's, and the key is the one whose rolled profile
    correlates best, as music21's finder rates them."""
    from music21.analysis.discrete import KrumhanslSchmuckler

    from musegan.form import KEY_PROFILES

    finder = KrumhanslSchmuckler()
    for mode in ("major", "minor"):
        assert list(KEY_PROFILES[mode]) == finder.getWeights(mode)
    rng = np.random.default_rng(0)
    cases = [(rng.integers(55, 80, 20), rng.integers(1, 8, 20).astype(float))
             for _ in range(50)]
    cases += [(np.array(p), np.ones(len(p))) for p in  # keys that tie: rounding decides
              ([60, 66], [62, 68], [60, 64, 68], [60, 62, 64, 66, 68, 70], [61, 67])]
    for pitches, durations in cases:
        histogram = np.bincount(pitches % 12, weights=durations, minlength=12)
        rated = [(np.corrcoef(histogram, np.roll(finder.getWeights(mode), tonic))[0, 1],
                  -i, (tonic, mode)) for i, (mode, tonic) in
                 enumerate((m, t) for m in ("major", "minor") for t in range(12))]
        assert key_of(pitches, durations) == max(rated)[2]


def test_an_ending_made_by_hand_holds_a_tonic_chord_note_to_the_bar_line():
    position, pitch = TOK.token_range("position"), TOK.token_range("pitch")
    velocity, duration = TOK.token_range("velocity")[8], TOK.token_id("Duration_3")
    ids = [TOK.BOS, TOK.BAR, TOK.token_id("TimeSig_4/4")]
    for step, note in ((0, 61), (24, 63), (45, 66)):  # C#, D#, F# in the last bar of 4/4
        ids += [position[step], pitch[note], velocity, duration]
    chord = {0, 4, 7}  # C major
    assert not ends_on_tonic(ids, TOK, chord)
    ended = force_tonic_ending(ids, TOK, chord)
    assert ends_on_tonic(ended, TOK, chord)
    names = TOK.tokens(ended)
    # 45 leaves no beat (12 steps) before the bar line, so the onset at 24 ends the piece,
    # on the nearest tonic-chord pitch to 63, held to the bar line (48 - 24 = 24 steps)
    assert names[-4:] == ["Position_24", "Pitch_64", names[-2], "Duration_24"]
    assert "Pitch_66" not in names


def test_an_ending_made_by_hand_strikes_no_pitch_its_voice_still_holds():
    # A soprano E4 held from the bar's start past the bar line; the last onset's note
    # would move to E4 as the nearest tonic-chord pitch, and MIDI could not tell the two
    # E4s of one track apart (decoding puts one on a second track).
    position, pitch = TOK.token_range("position"), TOK.token_range("pitch")
    velocity = TOK.token_range("velocity")[8]
    ids = [TOK.BOS, TOK.BAR, TOK.token_id("TimeSig_4/4"), position[0], pitch[64], velocity,
           TOK.token_id("Duration_72"), position[24], pitch[65], velocity,
           TOK.token_id("Duration_6")]
    chord = {0, 4, 7}
    ended = force_tonic_ending(ids, TOK, chord)
    assert ends_on_tonic(ended, TOK, chord)
    assert TOK.tokens(ended)[-3] == "Pitch_67"  # the nearest free one: G4, not E4
    assert len(TOK.decode(ended).instruments) == 1


def test_a_melody_model_writes_one_line_each_note_ending_where_the_next_begins(quick):
    for melody in (True, False):
        overlaps = 0
        for midi in quick.generate(n=4, bars=3, seed=7, melody=melody):
            notes = sorted(n for i in midi.instruments for n in
                           [(note.start, note.end) for note in i.notes])
            overlaps += sum(b[0] < a[1] - 1e-6 for a, b in zip(notes, notes[1:], strict=False))
        assert (overlaps == 0) == melody


def test_a_model_writes_only_what_its_corpus_holds_unless_told(tmp_path):
    net = tiny_net()
    with torch.no_grad():
        net.generator.head.bias[TOK.BAR] += 3.0
    kept = {TOK.token_id(f"Duration_{d}") for d in (6, 12, 24, 48)} | {TOK.token_id("Program_0")}
    unseen = [t for kind in ("duration", "program") for t in TOK.token_range(kind)
              if t not in kept]
    path = save_model(net, TOK, tmp_path / "m.safetensors", card={"unseen_tokens": unseen})
    sampler = Sampler.from_pretrained(path)
    written = {t for row in sampler.generate_ids(n=4, bars=3, seed=8) for t in row}
    assert not written & set(unseen)  # the ending made by hand keeps to them too
    free = {t for row in sampler.generate_ids(n=4, bars=3, seed=8, any_token=True) for t in row}
    assert free & set(unseen)
