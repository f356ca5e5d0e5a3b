"""Training data: windows of tokens from a prepared corpus, read by memory map.

Every window starts at a bar. A window that starts inside a piece begins with the state
in force there, ``Bar TimeSig Tempo [Program]``, so that each window is a well-formed,
self-describing piece of music on its own (``Tokenizer.bar_table``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from musegan.config import BATCH_SIZE, SEQ_LEN, TRANSPOSE, fit_windows
from musegan.corpus import Corpus
from musegan.errors import MuseganError
from musegan.tokenizer import DRUMS


class TokenWindowDataset(Dataset):
    """Windows of ``seq_len`` token ids (int64, PAD-padded) from one split of a corpus.

    Args:
        corpus: a ``Corpus`` or the path of a prepared corpus folder.
        split: "train" or "val".
        seq_len: tokens per window; 0 (the default) fits them to the corpus's bars
            (``musegan.config.fit_windows``).
        transpose: (low, high) semitone range, inclusive, for random transposition at load
            time; drums are never transposed and pitches stay within 0-127. (0, 0) turns it off.
        random_start: start each window at a random bar of its stretch of the piece, so
            epochs see different crops (training); otherwise always at the same bar.

    Each piece is cut into stretches of about ``seq_len`` tokens, one window per stretch,
    so an epoch reads each token about once. Randomness comes from torch's generator, so
    ``lightning.seed_everything`` and DataLoader worker seeding apply.
    """

    def __init__(self, corpus: Corpus | str | Path, split: str = "train", seq_len: int = SEQ_LEN,
                 transpose: tuple[int, int] = TRANSPOSE, random_start: bool = True):
        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
        if seq_len == 0:  # the default: windows of the corpus's bars
            seq_len = fit_windows(self.corpus.tokens_per_bar())[0]
        if seq_len < 8:
            raise MuseganError(f"seq_len must be at least 8 tokens, got {seq_len}")
        if transpose[0] > 0 or transpose[1] < 0:
            raise MuseganError(f"transpose must include 0, e.g. (-5, 6); got {transpose}")
        self.split = split
        self.seq_len = seq_len
        self.transpose = transpose
        self.random_start = random_start
        tok = self.corpus.tokenizer
        self._pitch = tok.token_range("pitch")
        self._program_of = tok.program_of  # (V,) per Program and Track token, else -1
        self.windows = self._cut_windows(self.corpus.split(split))

    def _cut_windows(self, pieces: list[int]) -> np.ndarray:
        """(piece, first bar, end bar) per window: the window starts at a bar in [first, end)."""
        windows = []
        for piece in pieces:
            offsets = np.asarray(self.corpus.bars(piece)["offset"])
            first = 0
            while first < len(offsets):
                end = int(np.searchsorted(offsets, offsets[first] + self.seq_len, side="left"))
                end = max(end, first + 1)
                windows.append((piece, first, end))
                first = end
        return np.array(windows, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        piece, first, end = self.windows[index].tolist()
        bar = first
        if self.random_start and end - first > 1:
            bar = int(torch.randint(first, end, ()).item())
        window = self.window(piece, bar)
        if self.transpose != (0, 0):
            self._transpose(window, self.corpus.pieces[piece]["has_drums"])
        return torch.from_numpy(window)

    def window(self, piece: int, bar: int) -> np.ndarray:
        """The ``seq_len`` ids (int64) of ``piece`` from bar ``bar`` on, header first."""
        ids = self.corpus.tokens(piece)
        out = np.zeros(self.seq_len, dtype=np.int64)  # PAD
        if bar == 0:
            body = ids[:self.seq_len]  # from BOS
            out[:len(body)] = body
            return out
        row = self.corpus.bars(piece)[bar]
        header = [self.corpus.tokenizer.BAR, int(row["time_signature"]), int(row["tempo"])]
        if row["program"]:
            header.append(int(row["program"]))
        start = int(row["offset"]) + 1 + int(row["header"])
        body = ids[start:start + self.seq_len - len(header)]
        out[:len(header)] = header
        out[len(header):len(header) + len(body)] = body
        return out

    def _transpose(self, window: np.ndarray, has_drums: bool) -> None:
        """Shift the window's pitched notes by a random interval that keeps them in range."""
        is_pitch = (window >= self._pitch.start) & (window < self._pitch.stop)
        if has_drums:  # which notes are drums: the Program in force at each token
            program = self._program_of[window]
            last_voice = np.maximum.accumulate(np.where(program >= 0, np.arange(len(window)), -1))
            is_drum = (last_voice >= 0) & (program[np.maximum(last_voice, 0)] == DRUMS)
            is_pitch &= ~is_drum
        pitches = window[is_pitch] - self._pitch.start
        if not len(pitches):
            return
        low = max(self.transpose[0], -int(pitches.min()))
        high = min(self.transpose[1], 127 - int(pitches.max()))
        if high > low:
            window[is_pitch] += int(torch.randint(low, high + 1, ()).item())


class MidiDataModule(L.LightningDataModule):
    """Train and validation windows of a prepared corpus for a Lightning Trainer.

    Under DDP, Lightning gives each process its own share of the windows.
    """

    def __init__(self, data_dir: str, seq_len: int = SEQ_LEN, batch_size: int = BATCH_SIZE,
                 num_workers: int | None = None, transpose: tuple[int, int] = TRANSPOSE):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.seq_len = seq_len
        self.batch_size = batch_size
        # Loading a window is ~50 us of numpy: a worker or two keeps up with a GPU.
        self.num_workers = (min(2, max(0, (os.cpu_count() or 1) - 1))
                            if num_workers is None else num_workers)
        self.transpose = cast(tuple[int, int], tuple(transpose))
        self.corpus: Corpus | None = None
        self.train_set: TokenWindowDataset | None = None
        self.val_set: TokenWindowDataset | None = None

    @property
    def tokenizer(self):
        if self.corpus is None:
            self.corpus = Corpus(self.data_dir)
        return self.corpus.tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.corpus = self.corpus or Corpus(self.data_dir)
        self.train_set = TokenWindowDataset(self.corpus, "train", self.seq_len, self.transpose,
                                            random_start=True)
        if len(self.train_set) == 0:
            raise MuseganError(f"{self.data_dir} has no training pieces; prepare more music")
        self.val_set = TokenWindowDataset(self.corpus, "val", self.seq_len, (0, 0),
                                          random_start=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return self._loader(self.val_set, shuffle=False)
