"""ABC tune books: one file of many tunes, music21's folk collections, in prepare."""

from __future__ import annotations

import json

import pytest

from musegan import Corpus, MidiError, Tokenizer, prepare_corpus
from musegan.tunebooks import COLLECTIONS, DEFAULT_TEMPO, collection_files, render_tune, split_tunes

TOK = Tokenizer()

BOOK = """% A book of three tunes, the second one broken
%%abc-version 2.1

X:1
T:The First Reel
M:4/4
L:1/8
K:G
|:GABc dedB|dedB dBGB:|
|:gfga gedB|dedB A2G2:|

X:2
T:The Broken One
M:4/4
L:1/8
K:D
|: a2 f :| :| :|| [2 b

X:3
T:The Third Jig
M:6/8
L:1/8
Q:3/8=100
K:D
A|dfa afd|dfa a2g|fed edc|d3 d2:|
"""


def notes_and_bars(data: bytes) -> tuple[int, list[str]]:
    piece = TOK.encode_piece(data)
    return piece.n_notes, TOK.tokens(piece.ids.tolist())


def test_a_file_of_three_tunes_splits_into_three_with_their_numbers_and_titles():
    tunes = split_tunes(BOOK)
    assert [(t.number, t.title) for t in tunes] == [("1", "The First Reel"),
                                                    ("2", "The Broken One"),
                                                    ("3", "The Third Jig")]
    assert all(t.text.startswith("% A book of three tunes") for t in tunes)  # the header


def test_repeats_are_played_and_a_pickup_keeps_the_bar_lines():
    first, third = split_tunes(BOOK)[0], split_tunes(BOOK)[2]
    count, names = notes_and_bars(render_tune(first.text, "reel"))
    assert count == 2 * 16 + 2 * 14 and names.count("Bar") == 8  # two strains, each twice
    assert "Tempo_179.4" in names  # no Q: field: the 4/4 default, 180 bpm's bin
    assert DEFAULT_TEMPO[(4, 4)] == 180.0
    count, names = notes_and_bars(render_tune(third.text, "jig"))
    assert names[:4] == ["BOS", "Bar", "TimeSig_6/8", names[3]]
    assert names[4] == "Position_30"  # the pickup eighth ends the first bar of 6/8
    assert count == 2 * 20 and names.count("Bar") == 9  # the strain twice, after the pickup
    # The short last bar and the pickup that starts the repeat make one bar, as played.
    fifth = names[[i for i, n in enumerate(names) if n == "Bar"][4]:]
    assert fifth.index("Position_30") < fifth[1:].index("Bar")
    assert abs(float(names[3].split("_")[1]) - 150) < 3  # Q:3/8=100 is 150 quarters a minute


def test_a_broken_tune_is_reported_by_number_and_title_and_the_others_kept(tmp_path):
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "book.abc").write_text(BOOK)
    report = prepare_corpus([str(tmp_path / "abc")], tmp_path / "corpus", progress=False,
                            workers=1, val_fraction=0.0)
    assert report.files_found == 3 and report.files_used == 2
    assert [s["source"] for s in report.skipped] == [
        f"{tmp_path / 'abc' / 'book.abc'} X:2 The Broken One"]
    corpus = Corpus(tmp_path / "corpus")
    assert len(corpus.split("train")) == 2
    # A re-run reuses every tune: the cache key is the file and the tune's place in it.
    again = prepare_corpus([str(tmp_path / "abc")], tmp_path / "corpus", progress=False,
                           workers=1, val_fraction=0.0)
    assert again.up_to_date and again.reused == 2


def test_render_tune_errors_name_the_tune():
    with pytest.raises(MidiError, match="^book X:9: "):
        render_tune("X:9\nT:Empty\nK:C\n", "book X:9")


def test_the_folk_collections_are_named_and_never_the_reserved_test_set(tmp_path):
    files = {name: collection_files(name) for name in COLLECTIONS}
    assert all(files.values())
    assert not any("nottingham" in str(f).lower() for fs in files.values() for f in fs)
    report = prepare_corpus(["aird"], tmp_path / "aird", limit=3, workers=1, progress=False)
    assert report.files_used == 3
    sources = [json.loads(line)["source"] for line in
               (tmp_path / "aird" / "index.jsonl").read_text().splitlines()]
    assert sources[0].startswith("aird/book1.abc X:0001 The Ranting Highlandman")


def test_a_book_of_three_good_tunes_gives_three_pieces(tmp_path):
    first, _, third = split_tunes(BOOK)
    second = first.text.replace("X:1\nT:The First Reel", "X:7\nT:The Second Reel").replace(
        "GABc", "BcdB")
    (tmp_path / "three.abc").write_text("\n".join([first.text, second, third.text]))
    report = prepare_corpus([str(tmp_path / "three.abc")], tmp_path / "corpus", workers=1,
                            progress=False, val_fraction=0.0)
    assert report.files_found == 3 and report.files_used == 3 and not report.skipped
    assert len(Corpus(tmp_path / "corpus")) == 3
