"""Share of notes that survive encode -> decode, on the whole CRÉ corpus and on all of
music21's Bach chorales.

    python bench/roundtrip.py

Three figures per set, over every note the MIDI parser reads:
  kept       the note comes back with the same pitch, instrument, onset and duration on
             the grid, and velocity in the same bin (what the tokenizer promises);
  on grid    its onset and end lie within one source tick of a grid step, so the grid
             itself lost nothing of its timing;
  exact      on grid and its velocity unchanged by binning.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from symusic import Score

from musegan.prepare import bach_chorales, render_chorale
from musegan.tokenizer import Tokenizer

HERE = Path(__file__).resolve().parent
CRE = HERE.parent.parent / "shared" / "corpora" / "cre" / "MIDI"
BACH_CACHE = HERE / "out" / "bach_midi"
TOK = Tokenizer()


def _render(source) -> Path | None:
    path = BACH_CACHE / (source.name.replace("/", "_") + ".mid")
    if not path.exists():
        try:
            path.write_bytes(render_chorale(source.path, source.name))
        except Exception as err:  # reported, like prepare does
            print(f"  skipped {source.name}: {err}", file=sys.stderr)
            return None
    return path


def bach_files() -> list[Path]:
    BACH_CACHE.mkdir(parents=True, exist_ok=True)
    with Pool(2) as pool:
        return [p for p in pool.map(_render, bach_chorales()) if p is not None]


def measure(path: Path) -> tuple[int, int, int, int]:
    """(notes, kept, on grid, exact) for one file."""
    score = Score(str(path))
    original = TOK.quantize(score)
    decoded = TOK.quantize(TOK.decode(TOK.encode(score)))
    kept = sum((Counter(map(tuple, original.tolist()))
                & Counter(map(tuple, decoded.tolist()))).values())
    tick = score.ticks_per_quarter / TOK.steps_per_quarter  # source ticks per grid step
    on_grid = exact = 0
    for track in score.tracks:
        notes = track.notes.numpy()
        if not len(notes["time"]):
            continue
        start = notes["time"].astype(float)
        end = start + notes["duration"]
        grid_ok = (np.abs(start - np.floor(start / tick + 0.5) * tick) <= 1) & \
                  (np.abs(end - np.floor(end / tick + 0.5) * tick) <= 1) & (end - start >= tick - 1)
        velocity_ok = np.isin(notes["velocity"], TOK.velocity_values)
        on_grid += int(grid_ok.sum())
        exact += int((grid_ok & velocity_ok).sum())
    return len(original), kept, on_grid, exact


def main() -> int:
    sets = {}
    if CRE.is_dir():
        sets["CRÉ"] = sorted(CRE.glob("*.mid"))
    else:
        print(f"skipping CRÉ: {CRE} not found", file=sys.stderr)
    sets["Bach chorales"] = bach_files()
    print(f"{'set':16s}{'files':>7s}{'notes':>9s}{'kept':>10s}{'on grid':>10s}{'exact':>10s}")
    for name, files in sets.items():
        with Pool(2) as pool:
            totals = np.sum(pool.map(measure, files), axis=0)
        notes, kept, on_grid, exact = totals.tolist()
        print(f"{name:16s}{len(files):7d}{notes:9d}{kept / notes:10.2%}{on_grid / notes:10.2%}"
              f"{exact / notes:10.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
