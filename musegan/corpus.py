"""The on-disk format of a prepared corpus, written by ``musegan prepare``.

A corpus is a folder::

    corpus.json        manifest: format, version, tokenizer, sources, shards, counts
    tokenizer.json     the tokenizer alone, for other tools
    index.jsonl        one JSON record per piece (see ``CorpusWriter.add``)
    tokens-00000.u16   token shards: raw little-endian uint16, memory-mapped when read
    bars.u8            one BAR_TABLE_DTYPE row per bar of every piece, memory-mapped
    report.json        what ``prepare`` read, skipped and why

Pieces never straddle shards; a piece's bars are rows ``bars[first_bar:first_bar+n_bars]``
with offsets counted from the piece's first token.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import BinaryIO

import numpy as np

from musegan.errors import MuseganError
from musegan.tokenizer import BAR_TABLE_DTYPE, Tokenizer

CORPUS_FORMAT = "musegan-corpus"
CORPUS_VERSION = 1
MANIFEST = "corpus.json"
INDEX = "index.jsonl"
BARS = "bars.u8"
REPORT = "report.json"
TOKENIZER = "tokenizer.json"
SHARD_TOKENS = 1 << 26  # 128 MB per shard: few files, yet each is cheap to copy or map
TOKEN_DTYPE = np.dtype("<u2")


class CorpusWriter:
    """Streams pieces to shards so that memory does not grow with the corpus."""

    def __init__(self, directory: Path, tokenizer: Tokenizer, shard_tokens: int | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True)
        self.tokenizer = tokenizer
        self.shard_tokens = shard_tokens or SHARD_TOKENS
        self.shards: list[int] = []  # tokens per shard
        self.n_bars = 0
        self._shard: BinaryIO | None = None
        self._index = open(self.directory / INDEX, "w")
        self._bars = open(self.directory / BARS, "wb")

    def add(self, record: dict, ids: np.ndarray, bars: np.ndarray) -> dict:
        """Append a piece's ids and bar table; ``record`` gains shard, offset, length
        and bar rows, and is written to the index."""
        if self._shard is None or (self.shards[-1]
                                   and self.shards[-1] + len(ids) > self.shard_tokens):
            self._open_shard()
        assert self._shard is not None
        record = {**record, "shard": len(self.shards) - 1, "offset": self.shards[-1],
                  "length": int(len(ids)), "first_bar": self.n_bars, "n_bars": int(len(bars))}
        self._shard.write(np.ascontiguousarray(ids, dtype=TOKEN_DTYPE).tobytes())
        self._bars.write(np.ascontiguousarray(bars, dtype=BAR_TABLE_DTYPE).tobytes())
        self._index.write(json.dumps(record) + "\n")
        self.shards[-1] += len(ids)
        self.n_bars += len(bars)
        return record

    def _open_shard(self):
        if self._shard is not None:
            self._shard.close()
        self.shards.append(0)
        self._shard = open(self.directory / shard_name(len(self.shards) - 1), "wb")

    def close(self, manifest: dict) -> None:
        """Finish the files and write the manifest (last, so its presence means complete)."""
        for file in (self._shard, self._index, self._bars):
            if file is not None:
                file.close()
        self.tokenizer.save(self.directory / TOKENIZER)
        manifest = {
            "format": CORPUS_FORMAT,
            "version": CORPUS_VERSION,
            "tokenizer": self.tokenizer.to_dict(),
            "token_dtype": TOKEN_DTYPE.str,
            "shards": [{"file": shard_name(i), "tokens": n} for i, n in enumerate(self.shards)],
            "n_bars": self.n_bars,
            **manifest,
        }
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def shard_name(index: int) -> str:
    return f"tokens-{index:05d}.u16"


def is_corpus(directory: Path) -> bool:
    """True when ``directory`` holds a corpus manifest."""
    return (Path(directory) / MANIFEST).is_file()


def read_manifest(directory: Path) -> dict:
    """The manifest of a prepared corpus; a clear error when there is none."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        problem = f"{directory} is not a prepared corpus (no {MANIFEST})"
        holds_midi = directory.is_dir() and any(
            p.suffix.lower() in (".mid", ".midi") for p in directory.rglob("*"))
        if holds_midi:  # MIDI files themselves: prepare them into a new folder
            target = f"data/{directory.resolve().name or 'corpus'}"
            raise MuseganError(f"{problem}; it holds MIDI files: prepare them first with "
                               f"musegan.prepare_corpus(['{directory}'], '{target}')",
                               cli=f"{problem}; it holds MIDI files: prepare them first "
                                   f"with: musegan prepare {shlex.quote(str(directory))} --out "
                                       f"{shlex.quote(target)}")
        raise MuseganError(f"{problem}; make one with musegan.prepare_corpus(SOURCES, "
                           f"'{directory}')",
                           cli=f"{problem}; make one with: musegan prepare SRC --out "
                               f"{shlex.quote(str(directory))}")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise MuseganError(f"{path}: damaged manifest ({err}); prepare the corpus again") from None
    if manifest.get("format") != CORPUS_FORMAT:
        raise MuseganError(f"{path} is not a musegan corpus manifest")
    if manifest.get("version") != CORPUS_VERSION:
        problem = (f"{directory}: corpus format version {manifest.get('version')} is "
                   f"not supported (this musegan reads {CORPUS_VERSION})")
        raise MuseganError(f"{problem}; prepare it again with force=True",
                           cli=f"{problem}; prepare it again with --force")
    return manifest


class Corpus:
    """Read access to a prepared corpus; tokens and bars are memory-mapped.

    Example::

        corpus = Corpus("data/cre")
        ids = corpus.tokens(0)                   # np.uint16 view of piece 0
        train = corpus.split("train")            # piece indices

    Memory maps are opened lazily in each process, so a Corpus can be handed to
    DataLoader workers (fork or spawn) without copying the data.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.tokenizer = Tokenizer.from_dict(self.manifest["tokenizer"])
        with open(self.directory / INDEX) as index:
            self.pieces: list[dict] = [json.loads(line) for line in index]
        self._maps: dict | None = None

    def __len__(self) -> int:
        return len(self.pieces)

    def __getstate__(self):
        return {**self.__dict__, "_maps": None}

    def _open(self) -> dict:
        if self._maps is None:
            shards = [np.memmap(self.directory / s["file"], dtype=TOKEN_DTYPE, mode="r")
                      if s["tokens"] else np.zeros(0, TOKEN_DTYPE)
                      for s in self.manifest["shards"]]
            bars_path = self.directory / BARS
            bars = (np.memmap(bars_path, dtype=BAR_TABLE_DTYPE, mode="r")
                    if bars_path.stat().st_size else np.zeros(0, BAR_TABLE_DTYPE))
            self._maps = {"shards": shards, "bars": bars}
        return self._maps

    def tokens(self, piece: int) -> np.ndarray:
        """The token ids of a piece (BOS ... EOS), a read-only uint16 view."""
        record = self.pieces[piece]
        shard = self._open()["shards"][record["shard"]]
        return shard[record["offset"]:record["offset"] + record["length"]]

    def bars(self, piece: int) -> np.ndarray:
        """The piece's bar table (``Tokenizer.bar_table``), a read-only view."""
        record = self.pieces[piece]
        return self._open()["bars"][record["first_bar"]:record["first_bar"] + record["n_bars"]]

    def split(self, name: str) -> list[int]:
        """Indices of the pieces in split ``name`` ("train" or "val")."""
        return [i for i, p in enumerate(self.pieces) if p["split"] == name]

    def token_counts(self, split: str = "train") -> np.ndarray:
        """(V,) how often each token id occurs in a split's pieces."""
        counts = np.zeros(len(self.tokenizer), dtype=np.int64)
        for piece in self.split(split):
            counts += np.bincount(self.tokens(piece), minlength=len(counts))
        return counts

    def tokens_per_bar(self, split: str = "train") -> float:
        """The median length of a split's bars in tokens (header and notes): what sizes
        training windows (``musegan.config.fit_windows``). 0 for an empty split."""
        lengths = [np.diff(np.append(self.bars(piece)["offset"], len(self.tokens(piece)) - 1))
                   for piece in self.split(split)]
        return float(np.median(np.concatenate(lengths))) if lengths else 0.0

    @property
    def n_tokens(self) -> int:
        return sum(s["tokens"] for s in self.manifest["shards"])
