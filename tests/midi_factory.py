"""MIDI built in code for the tests (no binary fixtures), and the helpers that several
test files share: tiny training settings and a runner for the command line."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
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


def tune(i: int):
    """A distinct small tune per i: random pitches and rhythm from seed i."""
    rng = np.random.default_rng(i)
    onsets = np.cumsum(rng.choice([120, 240, 480], size=12))
    return make_score([(0, False, [(int(t), 240, int(p), 80) for t, p in
                                    zip(onsets, rng.integers(48, 84, size=12), strict=True)])])


def midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- pieces in quarter notes

TPQ = 480
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def score(notes, drums=(), others=(), time_signatures=((0, 4, 4),), tempos=((0, 120.0),)):
    """A Score from notes given in quarter notes: (start, duration, pitch) for the first
    track, ``others`` more pitched tracks, ``drums`` a drum track."""
    def ticks(rows):
        return [(round(s * TPQ), round(d * TPQ), p, 80) for s, d, p in rows]

    tracks = [(0, False, ticks(notes))] + [(33, False, ticks(rows)) for rows in others]
    if drums:
        tracks.append((0, True, ticks(drums)))
    return make_score(tracks, tpq=TPQ,
                      time_signatures=[(round(t * TPQ), n, d) for t, n, d in time_signatures],
                      tempos=[(round(t * TPQ), qpm) for t, qpm in tempos])


def piece(notes, **kwargs) -> pretty_midi.PrettyMIDI:
    """``score(notes, ...)`` as a PrettyMIDI."""
    from musegan.midi import score_to_pretty_midi

    return score_to_pretty_midi(score(notes, **kwargs))


def scale(root=60, start=0.0, length=1.0):
    return [(start + i * length, length, root + step - 60) for i, step in enumerate(C_MAJOR)]


def random_tune(seed: int, bars: int = 4, low: int = 60, high: int = 79, lengths=(0.5, 1.0)):
    """A monophonic tune of random pitches and lengths, filling ``bars`` bars of 4/4."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    while t < 4 * bars:
        length = min(float(rng.choice(lengths)), 4 * bars - t)
        notes.append((t, length, int(rng.integers(low, high + 1))))
        t += length
    return notes


# ---------------------------------------------------------------- tiny runs, the command line

TINY_MODEL = {"embed_dim": 16, "hidden_dim": 32, "num_layers": 1, "theme_dim": 8,
              "noise_dim": 8, "mapping_width": 16, "encoder_dim": 16, "disc_embed_dim": 8,
              "disc_hidden_dim": 16}


def tiny_config(**train_settings):
    """A RunConfig of the TINY_MODEL, on CPU, with short windows and small batches."""
    from musegan.config import RunConfig

    config = RunConfig()
    for key, value in TINY_MODEL.items():
        config.set(f"model.{key}", value)
    for key, value in {"seq_len": 48, "batch_size": 4, "adv_seq_len": 16, "num_workers": 0,
                       "sample_bars": 2, "adversarial": True,  # every phase, unless told
                       **train_settings}.items():
        config.set(f"train.{key}", value)
    config.set("trainer.accelerator", "cpu")
    config.set("trainer.enable_progress_bar", False)
    return config


def musegan_cli(*args, process: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """``musegan ARGS``, its exit status and output captured as text.

    By default ``musegan.cli.main`` runs in this process (a new one spends ~2.5 s
    importing torch, which made the CLI tests a third of the suite), with musegan's
    thread choice, warnings and the working directory as they were before. With
    ``process=True`` (or an ``env``/``input``), ``python -m musegan.cli ARGS`` runs in a
    new process, for what only a real process shows: start-up, environment, signals."""
    if process or kwargs.keys() & {"env", "input", "cwd"}:
        return subprocess.run([sys.executable, "-m", "musegan.cli", *args],
                              capture_output=True, text=True, **kwargs)
    return _in_process([str(a) for a in args])


def _in_process(args: list[str]) -> subprocess.CompletedProcess:
    import contextlib
    import logging
    import warnings

    import torch

    from musegan import threads
    from musegan.cli import main

    out, err = io.StringIO(), io.StringIO()
    chosen, count = threads._chosen, torch.get_num_threads()
    handler = logging.StreamHandler(err)  # Lightning's own lines, as a process prints them
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("default")  # each call shows its warnings, as a process does
            warnings.showwarning = (lambda message, category, filename, lineno, file=None,
                                    line=None: err.write(warnings.formatwarning(
                                        message, category, filename, lineno, line)))
            try:
                code = main(args)
            except SystemExit as exit_:  # argparse's own errors and --help
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        threads._chosen = chosen
        torch.set_num_threads(count)
    return subprocess.CompletedProcess(["musegan", *args], code, out.getvalue(), err.getvalue())
