"""MIDI built in code for the tests: no binary fixtures."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from symusic import Note, Score, Tempo, TimeSignature, Track

CRE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "cre" / "MIDI"
SKIP_NO_CRE = "the CRÉ corpus (../shared/corpora/cre) is not on this machine"


def make_score(
    tracks: list[tuple[int, bool, list[tuple[int, int, int, int]]]],
    tpq: int = 480,
    time_signatures: list[tuple[int, int, int]] = ((0, 4, 4),),
    tempos: list[tuple[int, float]] = ((0, 120.0),),
) -> Score:
    """A Score from (program, is_drum, [(time, duration, pitch, velocity), ...]) tracks,
    (time, numerator, denominator) time signatures and (time, qpm) tempos, all in ticks."""
    score = Score(tpq)
    for time, n, d in time_signatures:
        score.time_signatures.append(TimeSignature(time, n, d))
    for time, qpm in tempos:
        score.tempos.append(Tempo(time, qpm=qpm))
    for program, is_drum, notes in tracks:
        track = Track(program=program, is_drum=is_drum)
        if notes:
            rows = np.array(notes, dtype=np.int64)
            track.notes = Note.from_numpy(rows[:, 0].astype(np.int32), rows[:, 1].astype(np.int32),
                                          rows[:, 2].astype(np.int8), rows[:, 3].astype(np.int8))
        score.tracks.append(track)
    return score


def melody(n_notes: int = 16, tpq: int = 480, pitch: int = 60, step: int = 240) -> Score:
    """A one-track scale-like tune of eighth notes in 4/4."""
    notes = [(i * step, step, pitch + (i * 2) % 12, 80) for i in range(n_notes)]
    return make_score([(0, False, notes)], tpq=tpq)


def write(score: Score, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


def raw_midi(track_events: bytes, tpq: int = 480) -> bytes:
    """A format-0 MIDI file around raw track event bytes (delta times included), for
    files no well-behaved library would write."""
    body = track_events + b"\x00\xff\x2f\x00"  # end of track
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
            + b"MTrk" + struct.pack(">I", len(body)) + body)


def random_melody(seed: int, n_notes: int, step: int = 240, low: int = 60, high: int = 76) -> Score:
    """A one-track tune of ``n_notes`` random pitches in [low, high), each ``step`` ticks."""
    pitches = np.random.default_rng(seed).integers(low, high, n_notes)
    return make_score([(0, False, [(i * step, step, int(p), 80) for i, p in enumerate(pitches)])])


def random_corpus(root: Path, count: int, tune, val_fraction: float = 0.0) -> Path:
    """``count`` tunes ``tune(seed)`` written to ROOT/midi and prepared into ROOT/corpus."""
    from musegan.prepare import prepare_corpus

    for seed in range(count):
        write(tune(seed), root / "midi" / f"tune{seed}.mid")
    prepare_corpus([str(root / "midi")], root / "corpus", val_fraction=val_fraction, progress=False)
    return root / "corpus"
