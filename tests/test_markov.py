import os
from collections import Counter

import numpy as np
import pytest

from musegan import MuseganError, Sampler
from musegan.corpus import Corpus
from musegan.markov import MarkovModel
from musegan.tokenizer import KINDS


def test_probabilities_are_the_smoothed_counts(corpus):
    data = Corpus(corpus)
    pieces = [list(data.tokens(i)) for i in data.split("train")]
    model = MarkovModel.fit(data, order=2)
    # Order 2: P(w | v) = (c(v, w) + t(v) P_1(w)) / (c(v) + t(v)), P_1 the token frequencies.
    unigram = Counter(t for p in pieces for t in p)
    total = sum(unigram.values())
    after_bar = Counter(p[i + 1] for p in pieces for i in range(len(p) - 1)
                        if p[i] == data.tokenizer.BAR)
    c, t = sum(after_bar.values()), len(after_bar)
    p = model.probabilities([data.tokenizer.BOS, data.tokenizer.BAR])
    for token in list(after_bar) + [data.tokenizer.EOS]:
        want = (after_bar[token] + t * unigram[token] / total) / (c + t)
        assert p[token] == pytest.approx(want, rel=1e-3)
    assert p.sum() == pytest.approx(1.0)
    assert (p > 0).all()  # every token keeps some probability: the grammar can always mask


def test_a_high_order_model_of_a_tiny_corpus_plays_its_tunes_back(corpus, tmp_path):
    data = Corpus(corpus)
    model = MarkovModel.fit(data, order=12)
    path = model.save(tmp_path / "m.safetensors")
    sampler = Sampler.from_pretrained(path)
    assert sampler.theme_dim == 0
    # greedy, and ending where the tune ends (the tonic ending would rewrite the last bar)
    ids = sampler.generate_ids(n=3, bars=4, seed=0, top_k=1, open_end=True)
    pieces = [list(map(int, data.tokens(i))) for i in data.split("train")]
    for row in ids:
        assert row in pieces  # 12 tokens of context pin each tune down
    midis = sampler.generate(n=2, bars=2, seed=1)
    assert [len(m.get_downbeats()) for m in midis] == [2, 2]
    # it keeps to the corpus's meters, as a trained model does
    seen = {t for p in pieces for t in p}
    meters = [name.split("_")[1] for t, name in enumerate(data.tokenizer.vocab)
              if t in seen and KINDS[data.tokenizer.kind[t]] == "time_signature"]
    assert sampler.meters == meters == sampler.model.card["corpus_holds"]["meters"]
    unheld = next(m for m in ("5/4", "7/8", "1/4") if m not in meters)
    with pytest.raises(MuseganError, match=f"meter {unheld} is not one"):
        sampler.generate_ids(n=1, bars=2, seed=0, meter=unheld)


def test_reading_on_gives_what_reading_everything_gives_and_forms_repeat(corpus, tmp_path):
    import torch

    data = Corpus(corpus)
    model = MarkovModel.fit(data, order=3)
    tune = torch.tensor([list(map(int, data.tokens(i)[:9])) for i in data.split("train")[:2]])
    whole = model.incremental(torch.zeros(2, 0))
    on = model.incremental(torch.zeros(2, 0))
    on.feed(tune[:, :4])
    torch.testing.assert_close(on.read(tune[:, 4:]), whole.feed(tune))
    path = model.save(tmp_path / "m.safetensors")
    tok = data.tokenizer
    notes = {"position", "pitch", "velocity", "duration"}  # what a repeat plays again
    for ids in Sampler.from_pretrained(path).generate_ids(n=2, form="AAB", part_bars=1, seed=3):
        bars = [i for i, t in enumerate(ids) if t == tok.BAR]
        played = [[t for t in ids[a:b] if KINDS[tok.kind[t]] in notes]
                  for a, b in zip(bars, bars[1:] + [len(ids)], strict=True)]
        assert len(bars) == 3 and played[0] == played[1] != played[2]


def test_save_and_load_keep_the_model_and_never_overwrite(corpus, tmp_path):
    model = MarkovModel.fit(Corpus(corpus), order=3)
    path = model.save(tmp_path / "m.safetensors")
    loaded = MarkovModel.load(path)
    history = [1, 2]
    np.testing.assert_allclose(loaded.probabilities(history), model.probabilities(history))
    with pytest.raises(MuseganError, match="force=True"):
        model.save(path)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc here")
def test_a_folder_it_cannot_write_to_is_a_clear_error(corpus):
    model = MarkovModel.fit(Corpus(corpus), order=2)
    with pytest.raises(MuseganError, match="cannot write to /proc"):
        model.save("/proc/musegan-test.safetensors")


def test_unique_rows_matches_numpy():
    from musegan.markov import _unique_rows

    rng = np.random.default_rng(0)
    for width in (1, 3, 8):
        rows = rng.integers(0, 4, size=(500, width))
        grams, counts = _unique_rows(rows)
        expected, expected_counts = np.unique(rows, axis=0, return_counts=True)
        np.testing.assert_array_equal(grams, expected)
        np.testing.assert_array_equal(counts, expected_counts)
    grams, counts = _unique_rows(np.zeros((0, 2), dtype=np.int64))
    assert grams.shape == (0, 2) and counts.shape == (0,)
