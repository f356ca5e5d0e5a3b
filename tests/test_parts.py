"""Any corpus: named tracks that share a program stay apart (parts), meters get fixed, and
the sampler keeps to what its corpus holds and ends its pieces where asked."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
import torch
from midi_factory import make_score, musegan_cli, write
from symusic import Note, Track

from musegan import Sampler, Tokenizer
from musegan.config import fit_windows
from musegan.corpus import Corpus
from musegan.errors import MuseganError
from musegan.modelfile import save_model
from musegan.models import ModelConfig, MuseGAN
from musegan.prepare import prepare_corpus
from musegan.runs import corpus_holds
from musegan.sampling import generate_files
from musegan.tokenizer import learn_parts, plausible_meter

# Three tracks, all on program 0, as a pop-piano corpus has them: (name, lowest pitch).
TRACKS = (("MELODY", 72), ("BRIDGE", 60), ("PIANO", 43))


def pop_song(seed: int, tracks=TRACKS, time_signature=(4, 4)):
    """Four bars of 4/4: each named track on program 0 plays its own random line."""
    rng = np.random.default_rng(seed)
    score = make_score([], time_signatures=[(0, *time_signature)])
    for name, low in tracks:
        track = Track(name=name, program=0)
        rows = [(i * 480, 480, int(p), 90) for i, p in enumerate(rng.integers(low, low + 12, 16))]
        array = np.array(rows)
        track.notes = Note.from_numpy(array[:, 0].astype(np.int32), array[:, 1].astype(np.int32),
                                      array[:, 2].astype(np.int8), array[:, 3].astype(np.int8))
        score.tracks.append(track)
    return score


@pytest.fixture(scope="module")
def pop(tmp_path_factory):
    """(folder of MIDI, prepared corpus) of six three-track songs."""
    root = tmp_path_factory.mktemp("pop")
    for seed in range(6):
        write(pop_song(seed), root / "midi" / f"song{seed}.mid")
    prepare_corpus([str(root / "midi")], root / "corpus", val_fraction=0.0, progress=False,
                   workers=1)
    return root / "midi", root / "corpus"


def test_named_tracks_on_one_program_come_back_as_three_named_tracks(pop):
    midi, corpus_dir = pop
    corpus = Corpus(corpus_dir)
    tok = corpus.tokenizer
    assert [name for name, _ in tok.parts] == ["MELODY", "BRIDGE", "PIANO"]  # high to low
    assert tok.tokens(tok.token_range("part")) == ["Track_MELODY", "Track_BRIDGE",
                                                   "Track_PIANO"]
    for i, piece in enumerate(corpus.pieces):
        decoded = tok.decode(corpus.tokens(i))
        assert [(t.name, t.program) for t in decoded.instruments] == [
            ("MELODY", 0), ("BRIDGE", 0), ("PIANO", 0)]
        source = tok.quantize(piece["source"])
        back = tok.quantize(decoded)
        assert np.array_equal(source, back)  # every note, in its own part
        for k, (name, _) in enumerate(tok.parts):
            played = [n.pitch for n in next(t for t in decoded.instruments if t.name == name).notes]
            assert sorted(played) == sorted(source["pitch"][source["part"] == k].tolist())


def test_merge_tracks_keeps_the_old_single_voice(pop, tmp_path):
    midi, _ = pop
    prepare_corpus([str(midi)], tmp_path / "merged", learn_parts=False, progress=False,
                   workers=1)
    corpus = Corpus(tmp_path / "merged")
    assert corpus.tokenizer == Tokenizer()  # the vocabulary of musegan 0.1, id for id
    tracks = corpus.tokenizer.decode(corpus.tokens(0)).instruments
    assert len(tracks) == 1 and len(tracks[0].notes) == 48


def test_a_corpus_of_one_track_per_program_learns_no_parts():
    melody = [[(0, "Fiddle", 70.0)], [(0, "Flute", 72.0)], [(0, "Whistle", 74.0)]]
    assert learn_parts(melody) == ()
    duet = [[(0, "Right", 70.0), (40, "Cello", 40.0)]] * 4  # two programs: no part needed
    assert learn_parts(duet) == ()


def test_unnamed_tracks_of_one_program_become_numbered_parts():
    pieces = [[(0, f"Tune title {i}", 70.0), (0, "", 45.0), (0, "", 55.0)] for i in range(5)]
    assert learn_parts(pieces) == (("#2", 0), ("#3", 0))
    tok = Tokenizer(parts=learn_parts(pieces))
    assert tok.assign_parts([0, 0, 0], ["A tune", "", ""]) == [None, 0, 1]
    assert [tok.part_name(v) for v in tok.part_voices] == ["Acoustic Grand Piano 2",
                                                           "Acoustic Grand Piano 3"]


def test_a_rare_name_is_not_a_part():
    pieces = [[(0, "Lead", 70.0), (0, "Pad", 50.0)]] * 40 + [[(0, "Lead", 70.0),
                                                               (0, "Oddity", 50.0)]]
    assert learn_parts(pieces) == (("Lead", 0), ("Pad", 0))


def test_names_match_whatever_their_case_and_spacing():
    tok = Tokenizer(parts=[("Lead Vocal", 0)])
    assert tok.assign_parts([0, 0], ["piano", "  lead   VOCAL "]) == [None, 0]
    assert tok.tokens(tok.token_range("part")) == ["Track_Lead_Vocal"]


def test_a_tokenizer_without_parts_is_saved_as_musegan_0_1_wrote_it(tmp_path):
    plain = Tokenizer()
    assert "parts" not in plain.to_dict()["config"]
    with_parts = Tokenizer(parts=[("Soprano", 0), ("Bass", 0)])
    with_parts.save(tmp_path / "t.json")
    assert Tokenizer.load(tmp_path / "t.json") == with_parts
    assert len(with_parts) == len(plain) + 2  # parts come last: the old ids keep their meaning
    assert with_parts.vocab[:len(plain)] == plain.vocab


def test_bad_parts_are_refused():
    with pytest.raises(MuseganError, match="part"):
        Tokenizer(parts=[("Soprano", 0), ("soprano", 0)])
    with pytest.raises(MuseganError, match="part"):
        Tokenizer(parts=[("", 0)])


# ---------------------------------------------------------------- meter

def test_prepare_meter_rebars_a_one_four_file_into_four_four(tmp_path):
    write(pop_song(0, tracks=TRACKS[:1], time_signature=(1, 4)), tmp_path / "midi" / "a.mid")
    write(pop_song(1, tracks=TRACKS[:1], time_signature=(3, 4)), tmp_path / "midi" / "b.mid")
    plain = prepare_corpus([str(tmp_path / "midi")], tmp_path / "plain", progress=False,
                           workers=1, val_fraction=0.0)
    assert plain.rebarred == 0
    report = prepare_corpus([str(tmp_path / "midi")], tmp_path / "fixed", meter=(4, 4),
                            progress=False, workers=1, val_fraction=0.0)
    assert report.rebarred == 1  # b.mid's 3/4 is plausible and stays
    corpus = Corpus(tmp_path / "fixed")
    bars = {p["source"].rsplit("/", 1)[1]: len(corpus.bars(i))
            for i, p in enumerate(corpus.pieces)}
    assert bars == {"a.mid": 4, "b.mid": 6}  # 16 quarters: 4 bars of 4/4, 6 of 3/4 (rounded up)
    assert Corpus(tmp_path / "plain").pieces[0]["time_signature"] == "1/4"
    a = next(i for i, p in enumerate(corpus.pieces) if p["source"].endswith("a.mid"))
    assert corpus.pieces[a]["time_signature"] == "4/4"
    assert any("re-barred in 4/4" in w for w in corpus.pieces[a]["warnings"])


def test_plausible_meters():
    assert all(plausible_meter(*ts) for ts in ((4, 4), (3, 4), (2, 4), (6, 8), (3, 8), (2, 2)))
    assert not any(plausible_meter(*ts) for ts in ((1, 4), (1, 8), (2, 8), (1, 16)))


def test_prepare_meter_on_the_command_line(tmp_path):
    write(pop_song(0, tracks=TRACKS[:1], time_signature=(1, 4)), tmp_path / "midi" / "a.mid")
    result = musegan_cli("prepare", str(tmp_path / "midi"), "--out", str(tmp_path / "c"),
                         "--meter", "4/4", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "re-barred     1 pieces" in result.stdout
    bad = musegan_cli("prepare", str(tmp_path / "midi"), "--out", str(tmp_path / "d"),
                      "--meter", "four")
    assert bad.returncode == 2 and "--meter takes a time signature" in bad.stderr


# ---------------------------------------------------------------- windows

def test_training_windows_fit_the_corpus_bars():
    assert fit_windows(29) == (256, 128)  # a folk melody: the settings of musegan 0.1
    assert fit_windows(78) == (640, 320)  # four voices
    assert fit_windows(1000) == (2048, 1024)  # capped


# ---------------------------------------------------------------- the sampler

def random_model(tok: Tokenizer, path, card=None, seed: int = 0):
    """An untrained model of ``tok``'s vocabulary: near-uniform over what the grammar
    allows, the hardest case for keeping to a corpus and ending bars."""
    torch.manual_seed(seed)
    net = MuseGAN(ModelConfig(vocab_size=len(tok), embed_dim=16, hidden_dim=32, num_layers=1,
                              theme_dim=8, noise_dim=8, mapping_width=16, encoder_dim=16,
                              disc_embed_dim=8, disc_hidden_dim=8))
    return save_model(net, tok, path, card=card or {})


def test_a_model_never_writes_a_program_or_part_its_corpus_lacks(pop, tmp_path):
    _, corpus_dir = pop
    corpus = Corpus(corpus_dir)
    tok = corpus.tokenizer
    seen = corpus.token_counts() > 0
    card = {"unseen_tokens": np.flatnonzero(~seen).tolist(),
            "corpus_holds": corpus_holds(tok, seen)}
    assert card["corpus_holds"]["voices"] == ["MELODY", "BRIDGE", "PIANO"]
    sampler = Sampler.from_pretrained(random_model(tok, tmp_path / "m.safetensors", card))
    names = set()
    for midi in sampler.generate(n=8, bars=4, seed=1, form=""):
        names |= {(t.name, t.program, t.is_drum) for t in midi.instruments}
    assert names and names <= {("MELODY", 0, False), ("BRIDGE", 0, False), ("PIANO", 0, False)}
    assert sampler.meters == ["4/4"]
    with pytest.raises(MuseganError, match="not one this model's corpus has; choose one of 4/4"):
        sampler.generate(n=1, bars=2, meter="6/8")
    anything = set()
    for midi in sampler.generate(n=8, bars=4, seed=1, form="", any_token=True):
        anything |= {t.program for t in midi.instruments}
    assert anything - {0}  # with any_token the random model roams the whole vocabulary


@pytest.mark.parametrize("seed", range(4))
def test_no_last_bar_floods(seed, tmp_path):
    """Property test: whatever an untrained model prefers, a piece's last bar holds at
    most three times the notes of its median bar."""
    tok = Tokenizer()
    sampler = Sampler.from_pretrained(random_model(tok, tmp_path / "m.safetensors", seed=seed))
    pitches = set(tok.token_range("pitch"))
    for row in sampler.generate_ids(n=6, bars=8, seed=seed, form=""):
        bars = [i for i, t in enumerate(row) if t == tok.BAR] + [len(row)]
        assert len(bars) == 9
        per_bar = [sum(t in pitches for t in row[a:b])
                   for a, b in zip(bars, bars[1:], strict=False)]
        assert per_bar[-1] <= 3 * max(np.median(per_bar), 1), per_bar


def test_a_piece_keeps_one_tempo_unless_asked(tmp_path):
    tok = Tokenizer()
    sampler = Sampler.from_pretrained(random_model(tok, tmp_path / "m.safetensors"))
    tempos = set(tok.token_range("tempo"))
    for row in sampler.generate_ids(n=6, bars=6, seed=2, form=""):
        assert sum(t in tempos for t in row) <= 1
    changing = [sum(t in tempos for t in row)
                for row in sampler.generate_ids(n=6, bars=6, seed=2, form="",
                                                tempo_changes=True)]
    assert max(changing) > 1


def test_a_chosen_meter_is_the_pieces_meter(tmp_path):
    tok = Tokenizer()
    sampler = Sampler.from_pretrained(random_model(tok, tmp_path / "m.safetensors"))
    for midi in sampler.generate(n=3, bars=4, seed=0, meter="6/8"):
        signatures = {(ts.numerator, ts.denominator) for ts in midi.time_signature_changes}
        assert signatures == {(6, 8)}
        assert len(midi.get_downbeats()) >= 4


def test_generate_says_when_a_piece_ends_in_rests(tmp_path):
    tok = Tokenizer()
    torch.manual_seed(0)
    net = MuseGAN(ModelConfig(vocab_size=len(tok), embed_dim=16, hidden_dim=32, num_layers=1,
                              theme_dim=8, noise_dim=8, mapping_width=16, encoder_dim=16,
                              disc_embed_dim=8, disc_hidden_dim=8))
    # The model wants nothing but bar lines and the end: it writes no notes at all.
    with torch.no_grad():
        net.generator.head.bias[tok.BAR] += 40.0
        net.generator.head.bias[tok.EOS] += 40.0
    model = save_model(net, tok, tmp_path / "m.safetensors")
    sampler = Sampler.from_pretrained(model)
    paths = generate_files(sampler, tmp_path / "out", n=2, bars=6, seed=0, form="",
                           open_end=True)
    for path in paths:
        sidecar = json.loads(path.with_suffix(".json").read_text())
        midi = pretty_midi.PrettyMIDI(str(path))
        assert len(midi.get_downbeats()) >= 6  # the bars are there, as rests
        assert sidecar["rest_bars_at_end"] == 6
    cli = musegan_cli("generate", "--model", str(model), "-n", "1", "--bars", "3",
                      "--open-end", "--out", str(tmp_path / "cli"))
    assert cli.returncode == 0 and "its last 3 bars are rests" in cli.stderr
    bad = musegan_cli("generate", "--model", str(model), "--meter", "7/3", "--out",
                      str(tmp_path / "none"))
    assert bad.returncode == 2 and "choose one of" in bad.stderr
