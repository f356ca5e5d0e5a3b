"""Copy detection: how much of a melody exists, up to transposition, in a training set.

A melody (the highest note at each onset, ``musegan.metrics.melody_line``) becomes one
token per note after the first: (interval from the previous note, the note's duration).
``CopyIndex`` keeps every n-gram of those tokens in a training set, with where it occurs,
so a piece's share of n-grams found there and its longest run copied from one training
piece are a lookup away. ``musegan evaluate`` reports both; ``musegan steer`` steers
novelty by them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pretty_midi
from symusic import Score

from musegan.errors import MuseganError
from musegan.metrics import melody_line

INTERVAL_OFFSET = 128  # token = (interval + 128) * DURATION_CODES + duration
DURATION_CODES = 1 << 12  # durations clamped to 4095 steps (341 quarters): longer is the same
POSITION_BITS = 24  # an n-gram occurrence is stored as piece << 24 | position


def melody_tokens(midi: pretty_midi.PrettyMIDI | Score) -> np.ndarray:
    """Transposition-invariant tokens of the melody line (``musegan.metrics.melody_line``):
    one per note after the first, coding (interval from the previous note, the note's
    duration on the 12-per-quarter grid). A run of k equal tokens is k + 1 equal notes."""
    pitches, durations = melody_line(midi)
    intervals = np.diff(pitches)
    return ((intervals + INTERVAL_OFFSET) * DURATION_CODES
            + np.minimum(durations[1:], DURATION_CODES - 1)).astype(np.int64)


def _ngrams(tokens: np.ndarray, n: int) -> list[tuple]:
    if len(tokens) < n:
        return []
    return list(map(tuple, np.lib.stride_tricks.sliding_window_view(tokens, n).tolist()))


class CopyIndex:
    """Every melodic n-gram of a training set, with where it occurs, for copy detection.

    Example::

        index = CopyIndex([melody_tokens(m) for m in train_midis], n=8)
        index.copying(melody_tokens(generated_midi))  # {copy_rate, longest_copy, source}
    """

    def __init__(self, melodies: Sequence[np.ndarray], n: int = 8):
        if n < 1:
            raise MuseganError(f"n-gram length {n} is not positive; pass n=8 or so",
                               cli=f"--ngram must be at least 1 (8 is the default), got {n}")
        self.n = n
        self.table: dict[tuple, list[int]] = {}
        for piece, tokens in enumerate(melodies):
            base = piece << POSITION_BITS
            for position, gram in enumerate(_ngrams(tokens, n)):
                self.table.setdefault(gram, []).append(base | position)

    def copying(self, tokens: np.ndarray) -> dict:
        """``copy_rate``: share of the piece's n-grams found anywhere in the training set
        (NaN when the melody has fewer than n + 1 notes). ``longest_copy``: the longest run
        of consecutive notes equal (up to transposition) to a run in ONE training piece,
        in notes; runs shorter than n + 1 notes are not looked for and count as 0.
        ``source``: the index of that training piece (None when there is none)."""
        grams = _ngrams(tokens, self.n)
        if not grams:
            return {"copy_rate": math.nan, "longest_copy": 0, "source": None}
        found = [self.table.get(gram) for gram in grams]
        copy_rate = sum(hit is not None for hit in found) / len(grams)
        position = [i for i, hits in enumerate(found) if hits for _ in hits]
        if not position:
            return {"copy_rate": copy_rate, "longest_copy": 0, "source": None}
        codes = np.fromiter((code for hits in found if hits for code in hits), dtype=np.int64)
        i = np.array(position, dtype=np.int64)
        piece, j = codes >> POSITION_BITS, codes & ((1 << POSITION_BITS) - 1)
        diagonal = j - i
        # runs are consecutive i on one diagonal of one piece
        order = np.lexsort((i, diagonal, piece))
        piece, diagonal, i = piece[order], diagonal[order], i[order]
        starts = np.ones(len(i), dtype=bool)
        starts[1:] = ((piece[1:] != piece[:-1]) | (diagonal[1:] != diagonal[:-1])
                      | (i[1:] != i[:-1] + 1))
        run_id = np.cumsum(starts) - 1
        run_length = np.bincount(run_id)  # consecutive n-gram hits per run
        best = int(run_length.argmax())
        # m consecutive n-grams cover m + n - 1 tokens, that is m + n notes
        return {"copy_rate": copy_rate, "longest_copy": int(run_length[best] + self.n),
                "source": int(piece[np.flatnonzero(starts)[best]])}
