from collections import Counter

import numpy as np
import pretty_midi
import pytest
import torch
from midi_factory import make_score, midi_bytes

from musegan import MuseganError, Sampler, Tokenizer
from musegan.models import ModelConfig, MuseGAN
from musegan.tokenizer import KINDS

TOK = Tokenizer()


def assert_well_formed(ids: list[int], bars: int):
    names = TOK.tokens(ids)
    assert names[0] == "BOS" and names[-1] == "EOS" and names.count("EOS") == 1
    assert names.count("Bar") == bars
    position = -1
    for i, name in enumerate(names):
        kind = name.split("_")[0]
        if kind == "Bar":
            position = -1
        elif kind == "Position":
            assert int(name.split("_")[1]) > position, "positions rise within a bar"
            position = int(name.split("_")[1])
        elif kind == "Pitch":
            assert names[i + 1].startswith("Velocity_") and names[i + 2].startswith("Duration_")


def test_generates_exactly_the_bars_asked_for_and_well_formed(sampler):
    ids = sampler.generate_ids(n=3, bars=3, seed=0, top_k=40)
    assert len(ids) == 3
    for row in ids:
        assert_well_formed(row, bars=3)
    midis = sampler.generate(n=2, bars=2, seed=0)
    assert all(isinstance(m, pretty_midi.PrettyMIDI) for m in midis)


def test_a_runaway_bar_is_ended_by_the_grammar(sampler):
    from musegan.grammar import MAX_TOKENS_PER_BAR

    head = sampler.net.generator.head
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():  # a model that never wants to leave the bar
            head.bias[TOK.BAR] = head.bias[TOK.EOS] = -50.0
            head.bias[list(TOK.token_range("pitch"))] += 20.0
            ids = sampler.generate_ids(n=2, bars=2, seed=0)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
    for row in ids:
        assert_well_formed(row, bars=2)
        bar_starts = [i for i, t in enumerate(row) if t == TOK.BAR] + [len(row)]
        longest = max(b - a for a, b in zip(bar_starts, bar_starts[1:], strict=False))
        # Rising pitches and positions usually close such a bar first; whatever happens,
        # no bar runs past the cap (test_grammar.py forces the cap itself).
        assert longest <= MAX_TOKENS_PER_BAR + 6


def test_nan_logits_are_a_clear_error_and_no_pieces_is_no_work():
    from musegan.decoding import decode, sample_token

    logits = torch.full((2, 5), float("nan"))
    with pytest.raises(MuseganError, match="NaN"):
        sample_token(logits, torch.ones(2, 5, dtype=torch.bool), 1.0, None, None, None)
    net = MuseGAN(ModelConfig(vocab_size=len(TOK), embed_dim=8, hidden_dim=8, num_layers=1,
                              theme_dim=4, noise_dim=4, mapping_width=8, encoder_dim=8,
                              disc_embed_dim=4, disc_hidden_dim=4)).eval()
    assert decode(net, TOK, torch.zeros(0, 4), 4, [TOK.BOS]) == []
    with torch.no_grad():  # a model whose logits are NaN: decoding says so, once, at the end
        net.generator.head.bias.fill_(float("nan"))
    with pytest.raises(MuseganError, match="NaN"):
        decode(net, TOK, torch.zeros(2, 4), 2, [TOK.BOS])


def test_candidates_written_in_rounds_are_those_written_all_at_once(sampler):
    """decode_until writes only the candidates it looks at, and each is the one a batch of
    all of them would have written (so a piece's ending does not depend on how many
    candidates its neighbours needed)."""
    from musegan.decoding import decode, decode_until, read_prefix

    tries, theme = 3, sampler.sample_theme(5, seed=2)
    prefix = [TOK.BOS]
    every = decode(sampler.net, TOK, theme.repeat_interleave(tries, 0), 2, prefix,
                   generator=torch.Generator().manual_seed(7))
    looked = []

    def accept(piece, candidates):  # piece 1 takes its first, piece 3 its second
        looked.append((piece, len(candidates)))
        return (piece, len(candidates)) in {(1, 1), (3, 2)}

    start = read_prefix(sampler.net, TOK, theme, 2, prefix)
    written = decode_until(start, tries, accept, generator=torch.Generator().manual_seed(7))
    assert [len(c) for c in written] == [3, 1, 3, 2, 3]
    for piece, candidates in enumerate(written):
        assert candidates == every[piece * tries:piece * tries + len(candidates)]
    assert sorted(looked) == sorted({(p, k) for p, c in enumerate(written)
                                     for k in range(1, len(c) + 1)})  # each looked at once


def test_writing_to_the_last_bar_leaves_the_state_reading_those_tokens_gives(sampler):
    """A tonic ending writes each piece up to its last bar once and forks its candidates
    from there: that state is the one reading the piece's tokens again would give."""
    from musegan.decoding import RowUniforms, Sampling, read_prefix
    from musegan.grammar import _PER_PIECE

    theme = sampler.sample_theme(3, seed=4)
    start = read_prefix(sampler.net, TOK, theme, 4, [TOK.BOS])
    parked = start.write_to_last_bar(RowUniforms.drawn(3, torch.Generator().manual_seed(1),
                                                       theme.device), Sampling())
    rows = [[t for t in row if t != TOK.PAD] for row in parked.prefix_ids.tolist()]
    assert [row.count(TOK.BAR) for row in rows] == [4, 4, 4]
    assert all(row[-1] == TOK.BAR and TOK.EOS not in row for row in rows)
    assert len({len(row) for row in rows}) > 1  # pieces of different lengths, joined
    reread = read_prefix(sampler.net, TOK, theme, 4, rows)
    for name in _PER_PIECE:
        assert torch.equal(getattr(parked.grammar, name), getattr(reread.grammar, name)), name
    torch.testing.assert_close(parked.logits, reread.logits, atol=1e-4, rtol=1e-4)
    for ours, theirs in zip(parked.runner.h + parked.runner.c,
                            reread.runner.h + reread.runner.c, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert parked.write_to_last_bar(RowUniforms([0, 1, 2], theme.device), Sampling()) is parked


def test_reading_on_from_a_kept_state_gives_the_state_reading_everything_gives(sampler):
    """A form's next part reads only the repeats since the last part written: the state is
    the one reading the whole piece again would give."""
    from musegan.decoding import RowUniforms, Sampling, read_prefix
    from musegan.grammar import _PER_PIECE

    theme = sampler.sample_theme(3, seed=5)
    parked = read_prefix(sampler.net, TOK, theme, 3, [TOK.BOS]).write_to_last_bar(
        RowUniforms.drawn(3, torch.Generator().manual_seed(2), theme.device), Sampling())
    rows = parked.rows()
    bar_lines = [[i for i, t in enumerate(row) if t == TOK.BAR] for row in rows]
    # each piece's first bar again (its Bar already read), then a Bar: of different lengths
    more = [row[at[0] + 1:at[1]] + [TOK.BAR] for row, at in zip(rows, bar_lines, strict=True)]
    assert len({len(m) for m in more}) > 1
    ours = parked.read(more, 2)
    theirs = read_prefix(sampler.net, TOK, theme, 2,
                         [row + m for row, m in zip(rows, more, strict=True)], continuation=True)
    assert ours.rows() == theirs.rows()
    for name in _PER_PIECE:
        assert torch.equal(getattr(ours.grammar, name), getattr(theirs.grammar, name)), name
    assert torch.equal(ours.grammar.table, theirs.grammar.table)  # a continuation's settings
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-4, rtol=1e-4)
    assert parked.read([[], [], []], 1).grammar.bars_wanted.tolist() == \
        (parked.grammar.bars + 1).tolist()


def test_sampling_draws_from_the_masked_distribution():
    from musegan.decoding import sample_token

    logits = torch.tensor([[1.0, 2.0, 5.0, -1.0]]).expand(100_000, -1)
    mask = torch.tensor([[True, True, False, True]]).expand(100_000, -1)
    drawn = sample_token(logits, mask, 1.0, None, None, torch.Generator().manual_seed(0))
    share = torch.bincount(drawn, minlength=4) / len(drawn)
    want = torch.softmax(torch.tensor([1.0, 2.0, float("-inf"), -1.0]), -1)
    assert share[2] == 0
    torch.testing.assert_close(share, want, atol=0.006, rtol=0)
    hot = sample_token(logits, mask, 0.5, None, None, torch.Generator().manual_seed(0))
    assert (hot == 1).float().mean() > share[1] + 0.05  # a lower temperature sharpens


def test_the_same_seed_gives_byte_identical_midi(sampler):
    a = [midi_bytes(m) for m in sampler.generate(n=2, bars=2, seed=11, temperature=0.9, top_p=0.95)]
    b = [midi_bytes(m) for m in sampler.generate(n=2, bars=2, seed=11, temperature=0.9, top_p=0.95)]
    c = [midi_bytes(m) for m in sampler.generate(n=2, bars=2, seed=12, temperature=0.9, top_p=0.95)]
    assert a == b and a != c


def test_top_k_1_is_greedy(sampler):
    theme = sampler.sample_theme(1, seed=3)
    a = sampler.generate_ids(n=1, bars=2, top_k=1, seed=1, theme=theme)
    b = sampler.generate_ids(n=1, bars=2, top_k=1, seed=2, theme=theme)
    assert a == b


def test_themes_sample_interpolate_save_and_load(sampler, tmp_path):
    themes = sampler.sample_theme(2, seed=5)
    assert themes.shape == (2, 8)
    torch.testing.assert_close(sampler.sample_theme(2, seed=5), themes)
    path = Sampler.interpolate(themes[0], themes[1], steps=5)
    torch.testing.assert_close(path[0], themes[0])
    torch.testing.assert_close(path[-1], themes[1], atol=1e-5, rtol=1e-5)
    lerp = Sampler.interpolate(themes[0], themes[1], steps=3, method="lerp")
    torch.testing.assert_close(lerp[1], (themes[0] + themes[1]) / 2)
    for name in ("t.npy", "t.json"):
        Sampler.save_theme(themes, tmp_path / name)
        torch.testing.assert_close(sampler.load_theme(tmp_path / name), themes)
        with pytest.raises(MuseganError, match="exists; pass force=True"):
            Sampler.save_theme(themes[:1], tmp_path / name)  # nothing replaced unasked
        torch.testing.assert_close(sampler.load_theme(tmp_path / name), themes)
        Sampler.save_theme(themes[:1], tmp_path / name, force=True)
        torch.testing.assert_close(sampler.load_theme(tmp_path / name), themes[:1])
    with pytest.raises(MuseganError, match=r"\.npy or \.json"):
        Sampler.save_theme(themes, tmp_path / "t")
    tune = tmp_path / "tune.mid"
    tune.write_bytes(make_score([(0, False, [(0, 480, 60, 90)])]).dumps_midi())
    for path, message in ((tune, "not a theme file"), (tmp_path / "nope.json", "no such theme"),
                          (tmp_path, "is a folder")):
        with pytest.raises(MuseganError, match=message):
            sampler.load_theme(path)
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3), np.float32))
    with pytest.raises(MuseganError, match="3 numbers"):
        sampler.load_theme(tmp_path / "wrong.npy")
    assert sampler.generate_ids(n=2, bars=1, theme=themes, seed=0)


def test_a_primer_is_continued_in_its_meter_and_tempo(sampler):
    primer = make_score([(0, False, [(i * 480, 480, 60 + i, 90) for i in range(6)])],
                        time_signatures=[(0, 3, 4)], tempos=[(0, 90.0)])  # two bars of 3/4
    ids = sampler.generate_ids(n=2, bars=3, seed=4, primer=primer)
    primer_ids = TOK.encode(primer)[:-1]
    for row in ids:
        assert row[:len(primer_ids)] == primer_ids
        names = TOK.tokens(row)
        assert names.count("Bar") == 2 + 3
        assert not any(n.startswith(("TimeSig_", "Tempo_")) for n in names[len(primer_ids):])
    with_primer, without = (sampler.generate(n=1, bars=2, seed=4, primer=primer,
                                             include_primer=keep)[0] for keep in (True, False))
    notes = lambda m: sorted((round(n.start, 3), n.pitch) for i in m.instruments for n in i.notes)  # noqa: E731
    primer_notes = notes(TOK.decode(TOK.encode(primer)))
    # The primer's notes, then the new ones (which may start with the primer's last note).
    new_notes = Counter(notes(with_primer)) - Counter(primer_notes)
    assert sum(new_notes.values()) == len(notes(with_primer)) - len(primer_notes) > 0
    assert min(new_notes)[0] >= primer_notes[-1][0]
    assert notes(without) == sorted(new_notes.elements())
    assert [(t.numerator, t.denominator) for t in with_primer.time_signature_changes] == [(3, 4)]


def test_tempo_sets_the_tempo(sampler):
    want = round(float(TOK.tempo_values[TOK.tempo_bin(140)]), 1)
    midi = sampler.generate(n=1, bars=2, seed=0, tempo=140)[0]
    assert set(np.round(midi.get_tempo_changes()[1], 1)) == {want}
    primer = make_score([(0, False, [(0, 480, 60, 90)])], tempos=[(0, 90.0)])
    continued = sampler.generate(n=1, bars=2, seed=0, tempo=140, primer=primer)[0]
    assert want in set(np.round(continued.get_tempo_changes()[1], 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"bars": 0}, "bars must be at least 1"),
    ({"temperature": 0}, "temperature must be above 0"),
    ({"tempo": -5}, "tempo must be from 30 to 300 bpm"),
    ({"tempo": 400}, "tempo must be from 30 to 300 bpm .*got 400"),
    ({"tempo": float("inf")}, "tempo must be from 30 to 300 bpm"),
    ({"best_of": 0}, "best_of must be from 1 to 64, got 0"),
])
def test_bad_settings_are_clear_errors(sampler, kwargs, message):
    with pytest.raises(MuseganError, match=message):
        sampler.generate(**kwargs)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "x.safetensors").write_text("hello")
    with pytest.raises(MuseganError, match="not a musegan model"):
        Sampler.from_pretrained(tmp_path / "x.safetensors")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graphs_write_the_pieces_the_plain_steps_write(sampler):
    graphed = Sampler.from_pretrained(sampler.path, device="cuda", cuda_graphs=True)
    plain = Sampler.from_pretrained(sampler.path, device="cuda")
    for n in (1, 5):  # batch sizes that round up to a power of two, shrinking as pieces end
        ids = graphed.generate_ids(n=n, bars=4, seed=3)
        assert ids == plain.generate_ids(n=n, bars=4, seed=3)
        for row in ids:
            assert_well_formed(row, bars=4)


def test_looking_for_finished_pieces_every_few_steps_as_on_a_gpu_writes_the_same_pieces(
        sampler, monkeypatch):
    # On a GPU the loop looks for finished pieces every DROP_EVERY steps (a look is a host
    # sync), and a finished piece stays in the batch until then. Run that path here.
    import musegan.decoding as decoding

    settings = [dict(n=6, bars=3, seed=4), dict(n=3, bars=4, seed=1, form="AB", part_bars=2),
                dict(n=2, bars=2, seed=7, open_end=True, melody=False)]
    plain = [sampler.generate_ids(**kwargs) for kwargs in settings]
    looks = []
    monkeypatch.setattr(decoding, "looks_every",
                        lambda device: looks.append(device) or decoding.DROP_EVERY)
    assert [sampler.generate_ids(**kwargs) for kwargs in settings] == plain
    assert looks  # the patched path ran
    for ids, kwargs in zip(plain, settings, strict=True):
        for row in ids:
            assert_well_formed(row, bars=kwargs["bars"])


@pytest.mark.parametrize("kwargs", [{"bars": 3}, {"form": "AB", "part_bars": 2},
                                    {"bars": 2, "open_end": True}])
def test_a_seeds_piece_is_the_same_whatever_is_written_with_it(sampler, kwargs):
    """Piece i of a seed does not depend on how many pieces are written (a form's parts and
    the tonic ending draw from streams of the piece's own seed), and another seed's pieces
    are others."""
    four = [midi_bytes(m) for m in sampler.generate(n=4, seed=7, **kwargs)]
    assert [midi_bytes(m) for m in sampler.generate(n=2, seed=7, **kwargs)] == four[:2]
    assert [midi_bytes(m) for m in sampler.generate(n=2, seed=7, first=2, **kwargs)] == four[2:]
    assert len(set(four)) == 4
    assert not {midi_bytes(m) for m in sampler.generate(n=4, seed=8, **kwargs)} & set(four)


@pytest.mark.parametrize("noise_dim", [8, 5, 16])
def test_theme_i_of_a_seed_is_the_same_whatever_n(noise_dim):
    from musegan.models import MappingNetwork

    mapping = MappingNetwork(ModelConfig(theme_dim=4, noise_dim=noise_dim, mapping_width=8))
    with torch.no_grad():  # as sampling draws them
        one, five, many = (mapping.sample(k, torch.Generator().manual_seed(3)) for k in (1, 5, 70))
    assert torch.equal(one[0], five[0]) and torch.equal(five, many[:5])


def test_a_note_that_would_ring_past_the_last_bar_line_is_held_to_it():
    from midi_factory import piece

    from musegan.decoding import note_steps
    from musegan.form import held_to_bar_line

    ids = TOK.encode(piece([(0, 1, 60), (1, 3, 64)]))  # quarters: the E ends the bar
    duration = max(i for i, t in enumerate(ids) if TOK.kind[t] == KINDS.index("duration"))
    longer = list(ids)
    longer[duration] = max(TOK.token_range("duration"), key=lambda t: TOK.value[t])
    notes, _, end = note_steps(longer, TOK)
    assert max(onset + length for onset, length in notes.values()) > end  # past the bar
    held = held_to_bar_line(longer, TOK)
    notes, _, end = note_steps(held, TOK)
    assert max(onset + length for onset, length in notes.values()) == end  # to it exactly
    assert held_to_bar_line(ids, TOK) == ids  # a piece that fits is left as it is


def test_generate_files_writes_in_batches_each_piece_regenerating_from_its_sidecar(sampler,
                                                                                  tmp_path):
    import json

    from musegan.sampling import generate_files

    paths = generate_files(sampler, tmp_path / "small", n=3, bars=2, seed=4, batch=2)
    sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in paths]
    assert [(s["seed"], s["index"]) for s in sidecars] == [(4, 0), (4, 1), (4, 2)]
    last = sidecars[-1]  # the second batch's piece, from its own record alone
    # the recipe, as the sidecar writes it
    assert last["regenerate"] == ("Sampler.generate(n=1, seed=seed, theme=theme, first=index, "
                                  "**settings)[0]")
    again = sampler.generate(n=1, seed=last["seed"], theme=last["theme"], first=last["index"],
                             **last["settings"])
    assert midi_bytes(again[0]) == midi_bytes(pretty_midi.PrettyMIDI(str(paths[-1])))
    # Batches change nothing: the pieces are what one generate() call gives for the seed
    # (musegan generate --seed 4 as Sampler.generate(seed=4)).
    one_call = [midi_bytes(m) for m in sampler.generate(n=3, bars=2, seed=4)]
    assert [midi_bytes(pretty_midi.PrettyMIDI(str(p))) for p in paths] == one_call
    paths = generate_files(sampler, tmp_path / "default", n=3, bars=2, seed=4)
    assert [midi_bytes(pretty_midi.PrettyMIDI(str(p))) for p in paths] == one_call
    with pytest.raises(MuseganError, match="batch must be at least 1"):
        generate_files(sampler, tmp_path / "none", n=1, bars=2, batch=0)
