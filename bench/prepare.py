"""`musegan prepare` wall time and peak memory, 1x and 4x the CRÉ corpus, in one run.

    python bench/prepare.py [--workers 2]

Targets: the whole CRÉ corpus in under 10 s wall on 2 cores, and peak memory that does
not grow with the corpus (4x the files, ~1x the memory), since pieces stream to shards.
The 4x corpus is CRÉ four times, transposed by 0-3 semitones so that no copy is a
duplicate. Memory is the resident set of the whole process tree (the command, the
forkserver and its workers), sampled every 10 ms.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from symusic import Score

HERE = Path(__file__).resolve().parent
CRE = HERE.parent.parent / "shared" / "corpora" / "cre" / "MIDI"
TARGET_SECONDS = 10.0


def tree_rss_kb(root: int) -> tuple[int, int]:
    """(sum, max) resident memory in kB over ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total = largest = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                        total += rss
                        largest = max(largest, rss)
        except OSError:
            pass
    return total, largest


def run_prepare(source: Path, out: Path, workers: int) -> tuple[float, int, int]:
    command = [sys.executable, "-m", "musegan.cli", "prepare", str(source), "--out", str(out),
               "--workers", str(workers), "--quiet"]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak_total = peak_largest = 0
    while process.poll() is None:
        total, largest = tree_rss_kb(process.pid)
        peak_total, peak_largest = max(peak_total, total), max(peak_largest, largest)
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"prepare failed with status {process.returncode}")
    return wall, peak_total, peak_largest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not CRE.is_dir():
        print(f"the CRÉ corpus is not at {CRE}; nothing to measure", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        four = tmp / "cre_x4"
        for shift in range(4):
            folder = four / f"transposed_{shift}"
            folder.mkdir(parents=True)
            for path in CRE.glob("*.mid"):
                Score(str(path)).shift_pitch(shift).dump_midi(str(folder / path.name))
        print(f"musegan prepare, {args.workers} workers; "
              "memory = resident set of the process tree\n")
        print(f"{'corpus':10s}{'files':>7s}{'wall s':>9s}{'vs 10 s':>9s}{'peak MB':>10s}"
              f"{'largest process MB':>20s}")
        results = {}
        for name, source in (("CRÉ 1x", CRE), ("CRÉ 4x", four)):
            out = tmp / f"out_{name[-2:]}"
            wall, total, largest = run_prepare(source, out, args.workers)
            files = sum(1 for _ in Path(source).rglob("*.mid"))
            results[name] = (wall, total, largest)
            print(f"{name:10s}{files:7d}{wall:9.2f}{wall / TARGET_SECONDS:8.2f}x"
                  f"{total / 1024:10.0f}{largest / 1024:20.0f}")
            shutil.rmtree(out)
        ratio = results["CRÉ 4x"][1] / results["CRÉ 1x"][1]
        print(f"\npeak memory 4x / 1x: {ratio:.2f} (streaming: should stay near 1)")
        print(f"wall 4x / 1x: {results['CRÉ 4x'][0] / results['CRÉ 1x'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
