"""The prepared-corpus format (musegan.corpus): what a Corpus reads back is what the
tokenizer wrote, shard by shard."""

import json

import numpy as np

from musegan import Corpus, Tokenizer
from musegan.prepare import prepare_corpus


def test_prepare_writes_a_corpus_that_matches_the_tokenizer(good_folder, tmp_path):
    report = prepare_corpus([str(good_folder)], tmp_path / "out", workers=1, progress=False)
    assert report.files_found == 8 and report.files_used == 8 and not report.skipped
    corpus = Corpus(tmp_path / "out")
    assert len(corpus) == 8
    assert corpus.tokenizer == Tokenizer()
    for i, piece in enumerate(corpus.pieces):
        assert corpus.tokens(i).tolist() == Tokenizer().encode(piece["source"])
        assert corpus.tokens(i).dtype == np.uint16
        assert corpus.bars(i)["offset"].tolist() == \
            np.flatnonzero(corpus.tokens(i) == Tokenizer.BAR).tolist()
        assert piece["split"] in ("train", "val") and len(piece["sha256"]) == 64
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["notes"] == report.notes == sum(p["notes"] for p in corpus.pieces)
    assert Tokenizer.load(tmp_path / "out" / "tokenizer.json") == corpus.tokenizer


def test_shards_roll_over_and_pieces_stay_whole(good_folder, tmp_path):
    from musegan import corpus as fmt

    original = fmt.SHARD_TOKENS
    fmt.SHARD_TOKENS = 100
    try:
        prepare_corpus([str(good_folder)], tmp_path / "out", progress=False)
    finally:
        fmt.SHARD_TOKENS = original
    corpus = Corpus(tmp_path / "out")
    assert len(corpus.manifest["shards"]) > 1
    for i, _piece in enumerate(corpus.pieces):
        assert corpus.tokens(i)[0] == Tokenizer.BOS and corpus.tokens(i)[-1] == Tokenizer.EOS
