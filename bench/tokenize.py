"""Tokenization throughput (notes/s, parse + encode), side by side in one run.

    python bench/tokenize.py            # needs `pip install -e .[bench]` for MidiTok

Compares musegan's tokenizer (batched, as `musegan prepare` runs it, and one file at a
time) with MidiTok's REMI on the same files, with symusic's parse alone as the floor and
pretty_midi's parse for reference. One process, one thread, best of a few interleaved
repeats: the machines are noisy, so read the ratios.

Sets: the CRÉ corpus (../shared/corpora/cre, skipped when absent), 100 Bach chorales
(rendered to MIDI once, cached in bench/out/), and 20 synthetic 4-track pieces with drums,
about two minutes each, made in code.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
from symusic import Note, Score, Tempo, TimeSignature, Track  # noqa: E402

from musegan.prepare import CHUNK_FILES, bach_chorales, render_chorale  # noqa: E402
from musegan.tokenizer import Tokenizer  # noqa: E402

HERE = Path(__file__).resolve().parent
CRE = HERE.parent.parent / "shared" / "corpora" / "cre" / "MIDI"
OUT = HERE / "out"


def bach_files(n: int) -> list[Path]:
    folder = OUT / "bach_midi"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for source in bach_chorales()[:n]:
        path = folder / (source.name.replace("/", "_") + ".mid")
        if not path.exists():
            path.write_bytes(render_chorale(source.path, source.name))
        files.append(path)
    return files


def synthetic_files(n: int = 20, bars: int = 60) -> list[Path]:
    """4 tracks (drums, bass, piano chords, lead) at 120 bpm: 60 bars of 4/4 = 2 minutes."""
    folder = OUT / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for seed in range(n):
        path = folder / f"multitrack_{seed:02d}.mid"
        files.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(seed)
        score = Score(480)
        score.time_signatures.append(TimeSignature(0, 4, 4))
        score.tempos.append(Tempo(0, qpm=120.0))
        eighths = np.arange(bars * 8) * 240
        beats = np.arange(bars * 4) * 480
        parts = {
            (0, True): [(t, 60, 42, 90) for t in eighths]
                       + [(t, 120, 36 if i % 2 == 0 else 38, 110) for i, t in enumerate(beats)],
            (33, False): [(t, 220, int(p), 95) for t, p in
                          zip(eighths, rng.integers(33, 52, len(eighths)), strict=True)],
            (0, False): [(t, 460, int(root + k), 70) for t, root in
                         zip(beats, rng.integers(55, 67, len(beats)), strict=True)
                         for k in (0, 4, 7)],
            (73, False): [(t, int(d), int(p), int(v)) for t, d, p, v in
                          zip(eighths, rng.choice([120, 240, 360], len(eighths)),
                              rng.integers(67, 91, len(eighths)),
                              rng.integers(60, 120, len(eighths)), strict=True)],
        }
        for (program, is_drum), notes in parts.items():
            track = Track(program=program, is_drum=is_drum)
            rows = np.array(notes, dtype=np.int64)
            track.notes = Note.from_numpy(rows[:, 0].astype(np.int32), rows[:, 1].astype(np.int32),
                                          rows[:, 2].astype(np.int8), rows[:, 3].astype(np.int8))
            score.tracks.append(track)
        score.dump_midi(str(path))
    return files


def timed(fn, files, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(files)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import miditok
    except ImportError:
        print("MidiTok is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 1

    tok = Tokenizer()
    remi = miditok.REMI(miditok.TokenizerConfig(use_programs=True, use_time_signatures=True,
                                                use_tempos=True))
    methods = {
        "symusic parse": lambda files: [Score(str(f)) for f in files],
        "musegan batch": lambda files: [tok.encode_batch(files[i:i + CHUNK_FILES])
                                        for i in range(0, len(files), CHUNK_FILES)],
        "musegan 1 by 1": lambda files: [tok.encode_piece(f) for f in files],
        "MidiTok REMI": lambda files: [remi.encode(f) for f in files],
        "pretty_midi parse": lambda files: [pretty_midi.PrettyMIDI(str(f)) for f in files],
    }
    sets = {}
    if CRE.is_dir():
        sets["CRÉ (all)"] = sorted(CRE.glob("*.mid"))
    else:
        print(f"skipping CRÉ: {CRE} not found", file=sys.stderr)
    sets["Bach chorales (100)"] = bach_files(100)
    sets["synthetic 4-track (20)"] = synthetic_files()

    print(f"notes per second, parse + encode, best of {args.repeats}; one process, one thread\n")
    header = f"{'set':24s}{'files':>6s}{'notes':>9s}" + "".join(f"{m:>19s}" for m in methods)
    print(header + f"{'batch / MidiTok':>17s}{'1 by 1 / MidiTok':>18s}")
    for name, files in sets.items():
        notes = sum(Score(str(f)).note_num() for f in files)
        speeds = {m: notes / timed(fn, files, args.repeats) for m, fn in methods.items()}
        row = f"{name:24s}{len(files):6d}{notes:9d}" + "".join(f"{speeds[m]:19,.0f}"
                                                               for m in methods)
        print(row + f"{speeds['musegan batch'] / speeds['MidiTok REMI']:16.1f}x"
              f"{speeds['musegan 1 by 1'] / speeds['MidiTok REMI']:17.1f}x")
    print("\ntarget: musegan >= 20x MidiTok REMI, batched (as `musegan prepare` runs, and "
          "`encode_many`) and one file at a time (`encode`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
