"""Editing pieces: infill keeps every other bar, restyle keeps rhythm or pitches, range
errors read well, and the command line writes files it never overwrites unasked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from midi_factory import musegan_cli, piece, random_tune

from musegan import MuseganError, Tokenizer
from musegan.edit import bar_offsets, check_bars, parse_bars
from musegan.tokenizer import KINDS

TOK = Tokenizer()
BAR_STEPS = int(TOK.bar_steps[TOK.default_time_signature])  # 4/4


@pytest.fixture(scope="module")
def tune():
    return piece(random_tune(3, bars=8))


def notes_by_bar(midi) -> dict[int, list[tuple]]:
    """The tokenizer's quantized notes of a piece, grouped by bar (numbered from 1)."""
    bars: dict[int, list[tuple]] = {}
    for note in TOK.quantize(midi):
        bars.setdefault(int(note["onset"]) // BAR_STEPS + 1, []).append(tuple(note.tolist()))
    return bars


@pytest.mark.parametrize("method", ["rescore", "continue"])
def test_infill_keeps_every_other_bar_exactly_and_rewrites_the_range(sampler, tune, method):
    before = notes_by_bar(tune)
    results = sampler.infill(tune, bars=(3, 5), n=3, seed=1, method=method, candidates=4)
    assert len(results) == 3
    changed = False
    for midi in results:
        after = notes_by_bar(midi)
        for bar in range(1, 9):
            if not 3 <= bar <= 5:
                assert after.get(bar) == before.get(bar), f"bar {bar} changed"
        changed |= any(after.get(bar) != before.get(bar) for bar in (3, 4, 5))
    assert changed


def test_infilled_bars_are_well_formed_and_end_at_the_gap(sampler, tune):
    original = TOK.encode(tune)
    for edit in sampler.infill_edits(tune, bars=(2, 4), n=2, seed=5, candidates=4):
        assert len(bar_offsets(edit.ids, TOK)) == len(bar_offsets(original, TOK)) == 8
        pitches = sum(TOK.kind[t] == KINDS.index("pitch") for t in edit.ids)
        assert len(TOK.quantize(TOK.decode(edit.ids))) == pitches  # the decoder skips none
        gap = [n for n in TOK.quantize(TOK.decode(edit.ids))
               if BAR_STEPS <= n["onset"] < 4 * BAR_STEPS]
        assert all(n["onset"] + n["duration"] <= 4 * BAR_STEPS for n in gap)
        assert edit.after_log_likelihood is not None and edit.after_log_likelihood < 0


def test_infill_with_the_same_seed_writes_the_same_piece(sampler, tune):
    a = sampler.infill_edits(tune, bars=(6, 8), n=2, seed=9, candidates=3)
    b = sampler.infill_edits(tune, bars=(6, 8), n=2, seed=9, candidates=3)
    assert [e.ids for e in a] == [e.ids for e in b]


@pytest.mark.parametrize("bars, message", [
    ((0, 3), "bar 0 does not exist: bars count from 1; the piece has 8 bars"),
    ((5, 9), "bar 9 is past the end; the piece has 8 bars"),
    ((10, 12), "bar 10 is past the end; the piece has 8 bars"),  # the range's first
    ((5, 4), "bars 5-4 is an empty range; the piece has 8 bars"),
])
def test_a_range_outside_the_piece_is_a_clear_error(sampler, tune, bars, message):
    with pytest.raises(MuseganError, match=message):
        sampler.infill(tune, bars=bars)


def test_bars_parse_as_a_score_counts_them():
    assert parse_bars("5-8") == (5, 8) and parse_bars("5") == (5, 5)
    assert check_bars((1, 8), 8) == (1, 8)
    for text in ("five", "5-", "-4"):
        with pytest.raises(MuseganError, match="FIRST-LAST"):
            parse_bars(text)


def test_restyle_keeping_rhythm_keeps_every_onset_and_duration(sampler, tune):
    style = piece(random_tune(11, bars=4, low=40, high=55))
    kept = TOK.quantize(tune)
    for midi in sampler.restyle(tune, style, keep="rhythm", n=2, seed=2):
        notes = TOK.quantize(midi)
        assert np.array_equal(notes["onset"], kept["onset"])
        assert np.array_equal(notes["duration"], kept["duration"])
        assert np.array_equal(notes["velocity"], kept["velocity"])


def test_restyle_keeping_pitches_keeps_the_pitch_sequence(sampler, tune):
    style = piece(random_tune(11, bars=4), time_signatures=((0, 3, 4),))
    kept = TOK.quantize(tune)["pitch"].tolist()
    for midi in sampler.restyle(tune, style, keep="pitches", n=2, seed=2):
        assert TOK.quantize(midi)["pitch"].tolist() == kept
        assert (midi.time_signature_changes[0].numerator,
                midi.time_signature_changes[0].denominator) == (3, 4)  # the style's meter


def test_restyle_refuses_what_it_cannot_do(sampler, tune):
    with pytest.raises(MuseganError, match="keep must be one of rhythm, pitches"):
        sampler.restyle(tune, tune, keep="harmony")
    with pytest.raises(MuseganError, match="keeps the piece's meter"):
        sampler.restyle(tune, tune, keep="rhythm", meter="3/4")


def test_the_infill_command_writes_pieces_sidecars_and_plots_and_never_overwrites(
        sampler, tune, tmp_path):
    source = tmp_path / "tune.mid"
    tune.write(str(source))
    out = tmp_path / "edits"
    args = ["infill", str(source), "--bars", "2-3", "-n", "2", "--seed", "4", "--candidates",
            "3", "--model", str(sampler.path), "--out", str(out), "--plot"]
    done = musegan_cli(*args)
    assert done.returncode == 0, done.stderr
    written = sorted(out.glob("*.mid"))
    assert [p.name for p in written] == ["tune-bars2-3-s4-000.mid", "tune-bars2-3-s4-001.mid"]
    facts = json.loads(written[0].with_suffix(".json").read_text())
    assert facts["bars"] == [2, 3] and facts["kept_bars"] == "1-1, 4-8" and facts["seed"] == 4
    assert written[0].with_suffix(".png").stat().st_size > 0
    again = sampler.infill(source, bars=(2, 3), n=2, seed=4, candidates=3,
                           theme=sampler.encode_theme(source))
    assert TOK.encode(again[0]) == TOK.encode(str(written[0]))  # the sidecar regenerates it
    stamp = written[0].stat().st_mtime_ns
    refused = musegan_cli(*args)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr and written[0].stat().st_mtime_ns == stamp
    wrong = musegan_cli("infill", str(source), "--bars", "7-12", "--model", str(sampler.path),
                        "--out", str(tmp_path / "other"))
    assert wrong.returncode == 2 and "has 8 bars (1-8)" in wrong.stderr
    assert not (tmp_path / "other").exists()


def test_the_restyle_command_keeps_rhythm(sampler, tune, tmp_path):
    source, style = tmp_path / "a.mid", tmp_path / "b.mid"
    tune.write(str(source))
    piece(random_tune(11, bars=4)).write(str(style))
    done = musegan_cli("restyle", str(source), "--style", str(style), "--keep", "rhythm",
                       "-n", "1", "--seed", "1", "--model", str(sampler.path),
                       "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    [written] = (tmp_path / "out").glob("*.mid")
    assert written.name == "a-as-b-rhythm-s1-000.mid"
    assert np.array_equal(TOK.quantize(str(written))["onset"], TOK.quantize(tune)["onset"])
    for flags, says in [(["--keep", "rhythm", "-n", "0"], "-n must be at least 1, got 0"),
                        (["--keep", "pitches", "--meter", "7/3"], "meter 7/3 is not one")]:
        bad = musegan_cli("restyle", str(source), "--style", str(style), *flags,
                          "--model", str(sampler.path), "--out", str(tmp_path / "never"))
        assert bad.returncode == 2 and says in bad.stderr, bad.stderr
        assert not (tmp_path / "never").exists()  # a failed edit leaves no empty folder
