"""Speed on a CUDA GPU, in one run of under five minutes; skips cleanly without CUDA.

    python bench/gpu.py [--device cuda:0] [--quick]
    python bench/gpu.py --device cpu --quick     # a rehearsal: every step but the graphs

(The rehearsal checks that the script runs before a GPU's scarce minutes are spent on
it; its CPU figures use torch's default threads, so compare them with nothing.)

1. Training tokens/s at the default size (batch 32 x 256, the rollout 128 tokens): the
   MLE step and the adversarial step, fp32 (32-true) and bf16-mixed.
2. Steps per second at the tiny size (all 16, batch 4 x 32) and the default size: the
   fixed cost of a step (launches and host syncs), beside a bare PyTorch loop.
3. Decoding tokens/s at batch 1 and 64 (the bundled model, 8 bars, open end), with and
   without CUDA graphs, beside the teacher-forced forward pass over as many tokens; on a
   GPU also at batch 512, which says whether ``generate_files``' 64 pieces at once
   (``WRITE_AT_ONCE``, measured on a CPU) leaves a GPU idle.
4. `musegan generate -n 4 --bars 16 --device cuda`, end to end, process start included.

Each figure comes from bench/train.py's and bench/sample.py's own functions, so the CPU
and GPU figures measure the same thing. Write the output into bench/RESULTS.md.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402


def bench_train():
    """bench/train.py as a module (its folder is off sys.path, see above)."""
    spec = importlib.util.spec_from_file_location("bench_train",
                                                  os.path.join(_HERE, "train.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training(device: str, quick: bool) -> None:
    from musegan.models import ModelConfig
    from musegan.tokenizer import Tokenizer
    from musegan.training import TrainSettings

    bt = bench_train()
    tokenizer = Tokenizer()
    torch.manual_seed(0)
    adversarial = bt.PHASES["adversarial"]

    batch, seq_len, count = 32, 256, 3 if quick else 6
    batches = [torch.randint(4, len(tokenizer), (batch, seq_len)) for _ in range(count + 1)]
    mle = TrainSettings(seq_len=seq_len, adv_seq_len=seq_len // 2, batch_size=batch,
                        samples_per_validation=0)
    tokens = count * batch * (seq_len - 1)
    print(f"1. training, default size, batch {batch} x {seq_len}, {count} timed steps\n")
    print(f"{'':34s}{'fp32 tok/s':>12s}{'bf16 tok/s':>12s}")
    for name, settings in (("MLE step", mle),
                           ("adversarial step", dataclasses.replace(mle, **adversarial))):
        row = [tokens / bt.lightning_seconds(batches, settings, precision, tokenizer, device)
               for precision in ("32-true", "bf16-mixed")]
        print(f"{name:34s}{row[0]:12,.0f}{row[1]:12,.0f}")
    bare = bt.bare_seconds(batches, len(tokenizer), True, device)
    print(f"{'bare loop, same networks (fp32)':34s}{tokens / bare:12,.0f}")

    print("\n2. fixed cost of a step (median ms)\n")
    print(f"{'':34s}{'tiny':>10s}{'default':>10s}")
    tiny_batches = bt.tiny_batches(len(tokenizer), 41)
    tiny = bt.TINY_SETTINGS
    rows = {
        "bare loop, LSTM language model": (
            bt.bare_seconds(tiny_batches, len(tokenizer), False, device, bt.TINY, median=True),
            bt.bare_seconds(batches, len(tokenizer), False, device, ModelConfig(),
                            median=True)),
        "musegan MLE step": (
            bt.lightning_seconds(tiny_batches, tiny, "32-true", tokenizer, device, bt.TINY,
                                 median=True),
            bt.lightning_seconds(batches, mle, "32-true", tokenizer, device, median=True)),
        "musegan adversarial step": (
            bt.lightning_seconds(tiny_batches, dataclasses.replace(tiny, **adversarial),
                                 "32-true", tokenizer, device, bt.TINY, median=True),
            bt.lightning_seconds(batches, dataclasses.replace(mle, **adversarial), "32-true",
                                 tokenizer, device, median=True)),
    }
    for name, (small, default) in rows.items():
        print(f"{name:34s}{1000 * small:10.1f}{1000 * default:10.1f}")


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on a CPU, which runs in order)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def graph_settings(device: str) -> tuple[bool, ...]:
    """With and without CUDA graphs on a GPU; a CPU has none."""
    return (False, True) if device.startswith("cuda") else (False,)


def decoding(device: str) -> None:
    from musegan.sampling import Sampler

    print("\n3. decoding, the bundled model, 8 bars, open end (tokens/s)\n")
    print(f"{'batch':>6s}{'plain':>10s}{'graphs':>10s}{'forward':>10s}{'plain/fwd':>11s}"
          f"{'graphs/fwd':>11s}")
    samplers = {graphs: Sampler.from_pretrained(None, device=device, cuda_graphs=graphs)
                for graphs in graph_settings(device)}
    for batch in (1, 64, 512) if device.startswith("cuda") else (1, 64):
        speeds = {}
        for graphs, sampler in samplers.items():
            theme = sampler.sample_theme(batch, seed=0)
            sampler.generate_ids(n=batch, bars=2, seed=0, theme=theme, open_end=True)  # warm
            sync(device)
            start = time.perf_counter()
            ids = sampler.generate_ids(n=batch, bars=8, seed=0, theme=theme, open_end=True)
            sync(device)
            speeds[graphs] = sum(map(len, ids)) / (time.perf_counter() - start)
        sampler = samplers[False]
        theme = sampler.sample_theme(batch, seed=0)
        tokens = torch.randint(4, len(sampler.tokenizer), (batch, 256), device=device)
        with torch.no_grad():
            sampler.net.generator(tokens, theme)
            sync(device)
            start = time.perf_counter()
            sampler.net.generator(tokens, theme)
            sync(device)
        forward = batch * 256 / (time.perf_counter() - start)
        graphed, graphed_ratio = ((f"{speeds[True]:10,.0f}", f"{speeds[True] / forward:10.2f}x")
                                  if True in speeds else (f"{'-':>10s}", f"{'-':>11s}"))
        print(f"{batch:6d}{speeds[False]:10,.0f}{graphed}{forward:10,.0f}"
              f"{speeds[False] / forward:10.2f}x{graphed_ratio}")


def end_to_end(device: str) -> None:
    print()
    with tempfile.TemporaryDirectory() as out:
        for graphs in (["--cuda-graphs"] if on else [] for on in graph_settings(device)):
            command = [sys.executable, "-m", "musegan.cli", "generate", "-n", "4", "--bars",
                       "16", "--seed", "0", "--out", out, "--force", "--device", device,
                       *graphs]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            print(f"4. musegan generate -n 4 --bars 16 --device {device} {' '.join(graphs)}: "
                  f"{time.perf_counter() - start:.2f} s end to end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device here (torch.cuda.is_available() is false); "
              "skipped")
        return 0
    name = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
            else f"CPU rehearsal ({torch.get_num_threads()} threads)")
    print(f"{name}, torch {torch.__version__}\n")
    training(args.device, args.quick)
    decoding(args.device)
    end_to_end(args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
