"""Sampling speed, side by side in one run.

    python bench/sample.py [--model NAME|PATH] [--tokens 256] [--threads 1] [--repeats 5]

Tokens per second at batch 1 and batch 64 for:
  generate    Sampler.generate_ids (grammar-constrained, state carried step to step),
              --bars per piece, counting the tokens it writes; its last bar is chosen
              from up to 8 candidates to end on the tonic
  decoder     the same with open_end=True and melody=False: the decoding loop alone, no
              ending chosen, every token it writes counted
  (a)         a bare loop calling nn.LSTM once per step (the model's own step(), no grammar)
  (b)         the teacher-forced forward pass over as many tokens: the floor step-by-step
              decoding can approach. Target: musegan at batch 64 >= 0.8x of (b).
The four run in rounds, one after another; a speed is the best round's, a ratio the
median round's (both figures of a ratio seconds apart, so a busy spell moves both).
Then the tensor operations a step takes at batch 64 (counted: noise does not move them),
and the wall time of `musegan generate -n 4 --bars 16` end to end, on its own and while
two other processes keep both cores busy (the bench starts and stops them); and the
garbage collector's time in that command, with the CLI's imports frozen (``quick_imports``)
and without.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import collections  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from musegan.sampling import Sampler  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def count_operations(fn):
    """Run ``fn()`` and count the tensor operations it dispatches: (its result, all
    operations, those that are not views), or (its result, None, None) where this torch
    has no TorchDispatchMode. A count does not move with the machine's noise; on a GPU
    each operation that is not a view is about one kernel launch."""
    try:
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:  # a private module: say so rather than fail
        return fn(), None, None

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: collections.Counter[str] = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    count = Count()
    with count:
        result = fn()
    total = sum(count.ops.values())
    return result, total, total - sum(n for name, n in count.ops.items() if name in VIEWS)


def print_operations(sampler: Sampler, bars: int) -> None:
    """Tensor operations per step at batch 64, counted: the decoder against the bare
    loop's nn.LSTM step."""

    def counted(fn) -> tuple[int, int] | None:
        steps, total, not_views = count_operations(fn)
        return None if total is None else (round(total / steps), round(not_views / steps))

    net, tok = sampler.net, sampler.tokenizer
    theme = sampler.sample_theme(64, seed=0)

    def decoder() -> int:
        ids = sampler.generate_ids(n=64, bars=bars, seed=0, theme=theme, open_end=True,
                                   melody=False)
        return max(len(row) for row in ids) - 1  # steps: the longest piece, less its BOS

    def bare(steps: int = 64) -> int:
        token, state = torch.full((64,), tok.BOS), net.generator.initial_state(theme)
        for _ in range(steps):
            logits, state = net.generator.step(token, theme, state)
            token = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(1)
        return steps

    ours, theirs = counted(decoder), counted(bare)
    if ours is None or theirs is None:
        print("(operations per step: not counted, this torch has no TorchDispatchMode)\n")
        return
    print(f"tensor operations per step at batch 64 (not views): decoder {ours[0]} ({ours[1]}),"
          f" (a) {theirs[0]} ({theirs[1]})\n")


VIEWS = {"view", "select", "slice", "unsqueeze", "squeeze", "expand", "t", "transpose",
         "as_strided", "alias", "unbind", "split", "split_with_sizes", "chunk", "narrow",
         "_unsafe_view", "detach", "permute", "reshape"}


# `musegan <args>` in this process, timing every collection (gc.callbacks); without
# `frozen`, the CLI's quick_imports does nothing, as before it existed.
GC_TIMED = """
import contextlib, gc, sys, time
seconds, counts, began = [0.0], [0, 0, 0], [0.0]
def timed(phase, info):
    if phase == "start":
        began[0] = time.perf_counter()
    else:
        seconds[0] += time.perf_counter() - began[0]
        counts[info["generation"]] += 1
gc.callbacks.append(timed)
import musegan.cli
if not {frozen}:
    musegan.cli.quick_imports = contextlib.nullcontext
status = musegan.cli.main(sys.argv[1:])
print(f"{{sum(counts)}} collections ({{counts[2]}} of the oldest generation), "
      f"{{seconds[0]:.3f}} s", file=sys.stderr)
sys.exit(status)
"""


@torch.no_grad()
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="bundled name or path (default: bundled)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for all three (default 1: what musegan samples with)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--bars", type=int, default=8, help="bars per piece for musegan")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampler = Sampler.from_pretrained(args.model)
    net, tok = sampler.net, sampler.tokenizer
    length = args.tokens

    print(f"model {sampler.name}, {length} tokens per sequence, {args.threads} threads\n")
    print(f"{'batch':>6s}{'generate':>10s}{'decoder':>10s}{'(a) LSTM/step':>15s}"
          f"{'(b) forward':>13s}{'generate/(b)':>14s}{'decoder/(b)':>13s}")
    for batch in (1, 64):
        theme = sampler.sample_theme(batch, seed=0)
        written: dict[bool, list[float]] = {False: [], True: []}
        longest: list[int] = []

        # loop variables bound as defaults, so each closure holds this batch's values
        def musegan(open_end, batch=batch, theme=theme, written=written, longest=longest):
            # the real API; tokens counted from what it writes
            # the decoder's own tokens: a melody model's pieces are cut to one line after
            ids = sampler.generate_ids(n=batch, bars=args.bars, seed=0, theme=theme,
                                       open_end=open_end, melody=False if open_end else None)
            written[open_end].append(sum(len(row) for row in ids) / batch)
            if not open_end:
                longest.append(max(len(row) for row in ids))

        def per_step(batch=batch, theme=theme):
            token = torch.full((batch,), tok.BOS)
            state = net.generator.initial_state(theme)
            for _ in range(length):
                logits, state = net.generator.step(token, theme, state)
                token = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(1)

        tokens = torch.randint(4, len(tok), (batch, length))

        def forward(tokens=tokens, theme=theme):
            net.generator(tokens, theme)

        # Rounds of all four, one after another: a ratio is taken within a round (the two
        # figures seconds apart, so a busy spell on the machine moves both), and the
        # median round's is printed; the speeds are each one's best round.
        runs = [lambda: musegan(False), lambda: musegan(True), per_step, forward]
        seconds = [[timed(fn) for fn in runs] for _ in range(args.repeats)]
        counts = [batch * written[False][-1], batch * written[True][-1], batch * length,
                  batch * length]
        speeds = [counts[i] / min(round_[i] for round_ in seconds) for i in range(4)]
        ratios = [statistics.median(counts[i] / round_[i] / (counts[3] / round_[3])
                                    for round_ in seconds) for i in (0, 1)]
        print(f"{batch:6d}{speeds[0]:10,.0f}{speeds[1]:10,.0f}{speeds[2]:15,.0f}"
              f"{speeds[3]:13,.0f}{ratios[0]:13.2f}x{ratios[1]:12.2f}x"
              f"   pieces: mean {written[False][-1]:.0f} tokens, longest {longest[-1]}")

    print("(the batch runs until its longest piece ends; finished pieces leave the batch)\n")
    print_operations(sampler, args.bars)
    for module in ("torch", "musegan.sampling"):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        print(f"python -c 'import {module}': {time.perf_counter() - start:.2f} s")
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "musegan.cli", "generate", "-n", "4", "--bars", "16",
                   "--seed", "0", "--out", out, "--force"] + (
                       ["--model", args.model] if args.model else [])
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}  # musegan's choice
        for busy, target in ((0, 3), (2, 4)):
            # `busy` processes spinning for at most a minute: a machine doing other work
            spinners = [subprocess.Popen([sys.executable, "-c", "import time\n"
                                          "end = time.time() + 60\nwhile time.time() < end: pass"])
                        for _ in range(busy)]
            try:
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=environment)
                seconds = time.perf_counter() - start
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
            print(f"musegan generate -n 4 --bars 16, end to end, {busy} other busy processes: "
                  f"{seconds:.2f} s (target: under {target} s)")
        for frozen in (True, False):
            collected = subprocess.run(
                [sys.executable, "-c", GC_TIMED.format(frozen=frozen), *command[3:]],
                check=True, capture_output=True, env=environment, text=True).stderr
            print(f"  garbage collection in it, imports {'frozen' if frozen else 'not frozen'}: "
                  f"{collected.strip().splitlines()[-1]}")
    print("target: musegan at batch 64 >= 0.8x of (b)")
    print("(the decoder's figure is the loop the target is about; generate's adds the "
          "tonic ending's candidates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
