"""Tokenizing one file at a time, counted in CPU instructions: the figure noise cannot move.

    python bench/instructions.py          # needs valgrind, and MidiTok (pip install -e .[bench])
    python bench/instructions.py --training rollout|step [--tree OTHER_CHECKOUT]

On a shared machine the wall-clock figures of bench/tokenize.py move by a third from one
run to the next, MidiTok's as much as musegan's. Instructions do not. Each count runs a
fresh Python under ``valgrind --tool=callgrind`` twice, once encoding the files and once
not, and takes the difference per file: musegan's ``Tokenizer.encode_piece(path)``
(parse included), symusic's parse alone, and MidiTok's REMI ``encode(path)``. It takes
about 10 minutes, most of it MidiTok's import under valgrind.

--training counts training instead, at bench/train.py --tiny's sizes (all 16, dropout on):
``rollout``, the generator writing 32 tokens at batch 4 with ``gumbel_rollout`` and the
backward pass from its soft one-hots (6 rollouts less 1; about 4 minutes a tree), or
``step``, the whole adversarial step as ``bench/train.py --tiny`` runs it, Lightning and
four optimizers included (11 steps less 1, after two uncounted; about 9 minutes a tree).
``--tree`` counts another checkout's musegan beside this one's (say, a ``git worktree``
of the commit before a change): a change's before-and-after, as a ratio to this tree.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CRE = ROOT.parent / "shared" / "corpora" / "cre" / "MIDI"

# What each count runs: files come from argv, `work` says whether to encode them. The first
# file is encoded before counting starts either way, so one-time work is not counted.
RUNNERS = {
    "musegan": """
from musegan.tokenizer import Tokenizer
tok = Tokenizer()
encode = tok.encode_piece
""",
    "symusic parse": """
from musegan.midi import load_score
encode = load_score
""",
    "MidiTok REMI": """
import miditok
remi = miditok.REMI(miditok.TokenizerConfig(use_programs=True, use_time_signatures=True,
                                            use_tempos=True))
encode = remi.encode
""",
}
SCRIPT = """
import sys
work, files = int(sys.argv[1]), sys.argv[2:]
{setup}
encode(files[0])
if work:
    for f in files:
        encode(f)
"""


# The training counts: argv[1] says how many, musegan comes from the tree in argv[2],
# argv[3] is bench/train.py and argv[4] its TINY config (JSON).
TRAINING = {
    "rollout": """
import sys
sys.path.insert(0, sys.argv[2])
import json, torch
from musegan.models import ModelConfig, MuseGAN
from musegan.tokenizer import Tokenizer
torch.set_num_threads(1)
torch.manual_seed(0)
config = ModelConfig.from_dict(json.loads(sys.argv[4])).for_tokenizer(Tokenizer())
net = MuseGAN(config).train()
theme, start = torch.randn(4, config.theme_dim), torch.ones(4, dtype=torch.long)
for _ in range(int(sys.argv[1])):
    _, soft = net.generator.gumbel_rollout(theme, 32, 0.5, start)
    soft.pow(2).sum().backward()
""",
    # bench/train.py --tiny's adversarial phase: its first two steps, then argv[1] more
    "step": """
import sys
sys.path.insert(0, sys.argv[2])
import dataclasses, importlib.util, torch
spec = importlib.util.spec_from_file_location("bench_train", sys.argv[3])
bench_train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_train)
from musegan.tokenizer import Tokenizer
torch.set_num_threads(1)
torch.manual_seed(0)
tokenizer = Tokenizer()
batches = bench_train.tiny_batches(len(tokenizer), int(sys.argv[1]) + 2)
settings = dataclasses.replace(bench_train.TINY_SETTINGS, **bench_train.PHASES["adversarial"])
bench_train.lightning_seconds(batches, settings, "32-true", tokenizer, "cpu", bench_train.TINY)
""",
}
COUNTED = {"rollout": (1, 6), "step": (1, 11)}  # counted: the second figure less the first
WHAT = {"rollout": "tiny training rollout: 32 tokens at batch 4, forward and backward",
        "step": "tiny adversarial training step (bench/train.py --tiny's, with Lightning)"}


def instructions(setup: str, files: list[Path], work: bool) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               "-c", SCRIPT.format(setup=setup), str(int(work)), *map(str, files)]
    return counted(command)


def counted(command: list[str]) -> int:
    """The instructions valgrind counts running ``command``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode or not found:
        raise SystemExit(f"valgrind failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_file(setup: str, files: list[Path]) -> float:
    return (instructions(setup, files, True) - instructions(setup, files, False)) / len(files)


def per_repeat(what: str, tree: Path, tiny: str) -> float:
    """Instructions one rollout or step takes, musegan from ``tree``, at the ``tiny``
    sizes (JSON): the difference of two counts (COUNTED) over the repeats between them,
    each count in a fresh process."""
    def run(repeats: int) -> int:
        return counted(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        sys.executable, "-c", TRAINING[what], str(repeats), str(tree),
                        str(HERE / "train.py"), tiny])
    fewer, more = COUNTED[what]
    return (run(more) - run(fewer)) / (more - fewer)


def training(what: str, trees: list[Path]) -> int:
    # bench/train.py's tiny sizes, read here (outside valgrind) and handed to each count
    spec = importlib.util.spec_from_file_location("bench_train", HERE / "train.py")
    assert spec is not None and spec.loader is not None
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    tiny = json.dumps(bench_train.TINY.to_dict())
    print(f"CPU instructions per {WHAT[what]} (valgrind)\n")
    counts = [per_repeat(what, tree, tiny) for tree in trees]
    for tree, count in zip(trees, counts, strict=True):
        print(f"{str(tree):40s}{count:16,.0f}{count / counts[0]:8.3f}x", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50, help="files per set (default 50)")
    parser.add_argument("--training", choices=sorted(TRAINING),
                        help="count a tiny training rollout or step instead of tokenizing")
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="with --training: another checkout to count beside this one")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed; this bench counts instructions with it",
              file=sys.stderr)
        return 1
    if args.training:
        return training(args.training, [ROOT, *(tree.resolve() for tree in args.tree)])
    # bench/tokenize.py's Bach chorales (rendered to MIDI once, cached in bench/out/)
    spec = importlib.util.spec_from_file_location("bench_tokenize", HERE / "tokenize.py")
    assert spec is not None and spec.loader is not None
    bench_tokenize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_tokenize)
    sets = {"Bach chorales": bench_tokenize.bach_files(args.files)}
    if CRE.is_dir():
        sets = {"CRÉ": sorted(CRE.glob("*.mid"))[:args.files], **sets}
    else:
        print(f"skipping CRÉ: {CRE} not found", file=sys.stderr)
    print(f"CPU instructions per file (valgrind), {args.files} files a set\n")
    print(f"{'set':16s}" + "".join(f"{name:>16s}" for name in RUNNERS)
          + f"{'MidiTok / musegan':>20s}")
    for name, files in sets.items():
        counts = {runner: per_file(setup, files) for runner, setup in RUNNERS.items()}
        print(f"{name:16s}" + "".join(f"{counts[r]:16,.0f}" for r in RUNNERS)
              + f"{counts['MidiTok REMI'] / counts['musegan']:19.1f}x", flush=True)
    print("\ntarget: musegan one file at a time >= 20x MidiTok REMI")
    return 0


if __name__ == "__main__":
    sys.exit(main())
