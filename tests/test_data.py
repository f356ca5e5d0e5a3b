import numpy as np
import pytest
import torch
from midi_factory import make_score, write

from musegan import Corpus, MidiDataModule, MuseganError, Tokenizer, TokenWindowDataset
from musegan.prepare import prepare_corpus

TOK = Tokenizer()
PITCH = TOK.token_range("pitch")


def long_tune(seed: int, bars: int = 24, high: bool = False, drums: bool = False):
    rng = np.random.default_rng(seed)
    melody = [(i * 240, 240, int(p), 80)
              for i, p in enumerate(rng.integers(110 if high else 50, 128 if high else 80,
                                                 size=bars * 8))]
    tracks = [(40, False, melody)]
    if drums:
        tracks.append((0, True, [(i * 480, 120, 36 + i % 3, 100) for i in range(bars * 4)]))
    return make_score(tracks, time_signatures=[(0, 4, 4), (8 * 1920, 3, 4)],
                      tempos=[(0, 100.0), (4 * 1920, 132.0)])


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for i in range(6):
        write(long_tune(i), root / "midi" / f"t{i}.mid")
    write(long_tune(100, high=True, drums=True), root / "midi" / "high_with_drums.mid")
    prepare_corpus([str(root / "midi")], root / "corpus", val_fraction=0.2, progress=False)
    return root / "corpus"


def test_windows_have_the_right_shape_and_start_at_a_bar(corpus_dir):
    dataset = TokenWindowDataset(corpus_dir, "train", seq_len=64, transpose=(0, 0))
    assert len(dataset) > 6  # pieces are cut into several windows
    for i in range(len(dataset)):
        window = dataset[i]
        assert window.shape == (64,) and window.dtype == torch.int64
        assert window[0].item() in (TOK.BOS, TOK.BAR)
        if window[0].item() == TOK.BOS:
            assert window[1].item() == TOK.BAR


def test_a_window_inside_a_piece_carries_the_meter_tempo_and_program(corpus_dir):
    corpus = Corpus(corpus_dir)
    dataset = TokenWindowDataset(corpus, "train", seq_len=80, transpose=(0, 0))
    piece = next(w[0] for w in dataset.windows if not corpus.pieces[w[0]]["has_drums"])
    window = dataset.window(piece, 10).tolist()  # bar 10 is in 3/4, after the tempo change
    names = TOK.tokens(window[:4])
    assert names[0] == "Bar" and names[1] == "TimeSig_3/4"
    assert names[2].startswith("Tempo_") and float(names[2][6:]) == pytest.approx(132, rel=0.02)
    assert names[3] == "Program_40"
    # The window decodes on its own to the piece's notes from bar 10 on.
    whole = TOK.quantize(TOK.decode(corpus.tokens(piece)))
    part = TOK.quantize(TOK.decode(window))
    start = 8 * 48 + 2 * 36  # 8 bars of 4/4 then 2 of 3/4, in steps
    expected = whole[whole["onset"] >= start][:len(part)]
    assert np.array_equal(part["pitch"], expected["pitch"])
    assert np.array_equal(part["onset"] + start, expected["onset"])
    assert all(p == 40 for p in part["program"])


def test_random_starts_vary_and_are_reproducible_with_a_seed(corpus_dir):
    dataset = TokenWindowDataset(corpus_dir, "train", seq_len=64, transpose=(0, 0))
    torch.manual_seed(1)
    first = [dataset[0].tolist() for _ in range(10)]
    torch.manual_seed(1)
    assert [dataset[0].tolist() for _ in range(10)] == first
    assert len({tuple(w) for w in first}) > 1


def test_transposition_moves_pitches_within_range_and_never_drums(corpus_dir):
    corpus = Corpus(corpus_dir)
    piece = next(i for i, p in enumerate(corpus.pieces) if p["has_drums"])
    dataset = TokenWindowDataset(corpus, corpus.pieces[piece]["split"], seq_len=200,
                                 transpose=(-6, 6), random_start=False)
    index = next(i for i, w in enumerate(dataset.windows) if w[0] == piece)
    plain = dataset.window(piece, int(dataset.windows[index][1]))
    shifts = set()
    torch.manual_seed(0)
    for _ in range(40):
        window = dataset[index].numpy()
        changed = window != plain
        assert np.all((window[changed] >= PITCH.start) & (window[changed] < PITCH.stop))
        assert window.max() < len(TOK)
        names = TOK.tokens(window.tolist())
        drum_pitches = {names[i] for i in range(len(names))
                        if names[i].startswith("Pitch_")
                        and _program_at(names, i) == "Program_drums"}
        assert drum_pitches and drum_pitches <= {"Pitch_36", "Pitch_37", "Pitch_38"}
        if changed.any():
            shifts.add(int((window[changed] - plain[changed])[0]))
    # The melody reaches 127: it can only go down, and must go down sometimes.
    assert shifts and max(shifts) <= 0 and min(shifts) >= -6


def _program_at(names, i):
    for name in reversed(names[:i]):
        if name.startswith("Program_"):
            return name
    return None


def test_validation_windows_do_not_depend_on_the_random_state(corpus_dir):
    module = MidiDataModule(str(corpus_dir), seq_len=64, batch_size=4, num_workers=0)
    module.setup("fit")
    assert len(module.val_set) > 0
    windows = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        windows.append([module.val_set[i].tolist() for i in range(len(module.val_set))])
    assert windows[0] == windows[1]
    torch.manual_seed(0)
    first = [module.train_set[i].tolist() for i in range(len(module.train_set))]
    torch.manual_seed(1)
    assert first != [module.train_set[i].tolist() for i in range(len(module.train_set))]


def test_datamodule_serves_batches(corpus_dir):
    module = MidiDataModule(str(corpus_dir), seq_len=48, batch_size=4, num_workers=0)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch.shape == (4, 48) and batch.dtype == torch.int64
    assert next(iter(module.val_dataloader())).shape[1] == 48
    assert module.tokenizer == TOK


def test_bad_settings_and_paths_are_clear_errors(corpus_dir, tmp_path):
    with pytest.raises(MuseganError, match="not a prepared corpus"):
        TokenWindowDataset(tmp_path)
    with pytest.raises(MuseganError, match="transpose must include 0"):
        TokenWindowDataset(corpus_dir, transpose=(2, 5))
