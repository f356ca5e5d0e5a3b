"""Training speed, side by side in one run.

    python bench/train.py [--batch 32 --seq-len 256 --batches 4 --threads 2]
    python bench/train.py --tiny [--batches 40]

--tiny: the fixed cost of a step, at the thread count musegan picks (one). All sizes 16,
batch 4 x 32 tokens, the rollout 32 tokens: milliseconds per MLE, discriminator and
adversarial step (Lightning, four optimizers, theme GAN, regulariser) beside a bare
PyTorch loop training an LSTM language model of the same size. Targets: MLE <= 15 ms,
adversarial <= 50 ms. On a GPU this is what launches and host syncs cost. Then the
adversarial step's Gumbel rollout alone, forward and backward, with its operation count.

Default sizes:

1. MLE-phase tokens/s of musegan's training step (Lightning, manual optimization, theme
   GAN included) against a bare PyTorch loop training the same networks (theme encoder +
   generator, same loss, same batches). Target: at least 0.9x.
2. The same bare loop without the theme encoder: a plain LSTM language model, for scale.
3. One adversarial step (Gumbel rollout of adv_seq_len tokens, discriminator and
   generator updates, MLE term) against one MLE step. Target: at most 3x.
4. bf16-mixed against fp32 (32-true) for the MLE step.

Default model sizes; random token batches (the cost does not depend on the values).
bench/gpu.py runs the same measurements on a CUDA GPU.
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
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from musegan.models import ModelConfig, MuseGAN  # noqa: E402
from musegan.tokenizer import Tokenizer  # noqa: E402
from musegan.training import (  # noqa: E402
    GANModule,
    TrainSettings,
    cpu_supports_bf16_lstm,
    quiet,
)

warnings.filterwarnings("ignore")


class Timer(L.Callback):
    """Wall time of the training batches after the first (warm-up) one, in all and each."""

    def __init__(self):
        self.start = None
        self.seconds = 0.0
        self.steps: list[float] = []
        self.began = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 1:
            self.start = time.perf_counter()
        self.began = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if batch_idx:
            self.steps.append(time.perf_counter() - self.began)

    def on_train_epoch_end(self, trainer, module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start


TINY = ModelConfig(embed_dim=16, hidden_dim=16, num_layers=2, theme_dim=16, noise_dim=16,
                   mapping_width=16, encoder_dim=16, disc_embed_dim=16, disc_hidden_dim=16)


TINY_SETTINGS = TrainSettings(seq_len=32, adv_seq_len=32, batch_size=4,
                              samples_per_validation=0)
# TrainSettings changes that make every training step one of these phases
PHASES = {"discriminator": dict(mle_epochs=0, d_pretrain_epochs=1, adv_epochs=0,
                                adversarial=True),
          "adversarial": dict(mle_epochs=0, d_pretrain_epochs=0, adv_epochs=1,
                              adversarial=True)}


def tiny_batches(vocab_size: int, count: int) -> list[torch.Tensor]:
    """``count`` random batches of 4 x 32 token ids (the cost does not depend on them)."""
    return [torch.randint(4, vocab_size, (4, 32)) for _ in range(count)]


def lightning_seconds(batches, settings: TrainSettings, precision: str, tokenizer,
                      device: str, sizes: ModelConfig | None = None,
                      median: bool = False) -> float:
    """Seconds for the batches after the first (with ``median``: the median step's)."""
    module = GANModule(model=(sizes or ModelConfig()).sizes(),
                       train=dataclasses.asdict(settings), tokenizer=tokenizer.to_dict())
    timer = Timer()
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    with quiet():  # Lightning's tips and hardware lines
        trainer = L.Trainer(accelerator=accelerator, devices=1, max_epochs=1,
                            precision=precision, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, callbacks=[timer], limit_val_batches=0)
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches,
                                                                          batch_size=None))
    return statistics.median(timer.steps) if median else timer.seconds


def bare_seconds(batches, vocab_size: int, with_encoder: bool, device: str,
                 sizes: ModelConfig | None = None, median: bool = False) -> float:
    """The same networks trained by a plain loop: embedding, LSTM, head (+ theme encoder).
    Seconds for the batches after the first (with ``median``: the median step's)."""
    net = MuseGAN(dataclasses.replace(sizes or ModelConfig(), vocab_size=vocab_size))
    net.to(device)
    batches = [b.to(device) for b in batches]
    parameters = list(net.generator.parameters()) + (
        list(net.encoder.parameters()) if with_encoder else [])
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    net.train()
    zero_theme = torch.zeros(batches[0].size(0), net.config.theme_dim, device=device)
    start, steps = 0.0, []
    for i, tokens in enumerate(batches):
        began = time.perf_counter()
        if i == 1:
            start = began
        theme = net.encoder(tokens) if with_encoder else zero_theme
        logits, _ = net.generator(tokens[:, :-1], theme)
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), tokens[:, 1:].reshape(-1),
                               ignore_index=0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            steps.append(time.perf_counter() - began)
    return statistics.median(steps) if median else time.perf_counter() - start


def tiny(args) -> int:
    """Milliseconds per step at the tiny size, beside a bare loop (medians of the steps:
    a noisy machine's spikes do not move them)."""
    from musegan import threads

    with threads.sampling_threads():  # the one thread musegan picks for tiny models
        torch.manual_seed(0)
        tokenizer = Tokenizer()
        batches = tiny_batches(len(tokenizer), args.batches + 1)
        mle = TINY_SETTINGS
        steps = {"bare loop, LSTM language model": bare_seconds(
            batches, len(tokenizer), False, args.device, TINY, median=True)}
        steps["musegan MLE step"] = lightning_seconds(batches, mle, "32-true", tokenizer,
                                                      args.device, TINY, median=True)
        for name, epochs in PHASES.items():
            settings = dataclasses.replace(mle, **epochs)
            steps[f"musegan {name} step"] = lightning_seconds(
                batches, settings, "32-true", tokenizer, args.device, TINY, median=True)
        rollout_ms, rollout_ops, rollout_kernels = rollout_cost(len(tokenizer), args.batches)
        used = torch.get_num_threads()
    targets = {"musegan MLE step": 15, "musegan adversarial step": 50}
    print(f"tiny sizes (all 16), batch 4 x 32 tokens, rollout 32, median of {args.batches} "
          f"steps, {used} thread(s), {args.device}\n")
    bare = steps["bare loop, LSTM language model"]
    print(f"{'':32s}{'ms/step':>9s}{'x bare':>8s}{'target':>9s}")
    for name, seconds in steps.items():
        target = f"<= {targets[name]}" if name in targets else ""
        print(f"{name:32s}{1000 * seconds:9.1f}{seconds / bare:8.1f}{target:>9s}")
    counted = ("" if rollout_ops is None else f", {rollout_ops:,} tensor operations "
               f"({rollout_kernels:,} not views: on a GPU about one launch each)")
    print(f"\nof the adversarial step, its rollout of 32 tokens, forward and backward: "
          f"{rollout_ms:.1f} ms{counted}")
    return 0


def rollout_cost(vocab_size: int, repeats: int) -> tuple[float, int | None, int | None]:
    """The tiny generator's Gumbel rollout (training mode: dropout on), forward and
    backward: the median's milliseconds, and its tensor operations, all and not views
    (``count_operations`` of bench/sample.py)."""
    spec = importlib.util.spec_from_file_location("bench_sample", os.path.join(_HERE, "sample.py"))
    assert spec is not None and spec.loader is not None
    bench_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_sample)
    net = MuseGAN(dataclasses.replace(TINY, vocab_size=vocab_size)).train()
    theme = torch.randn(4, TINY.theme_dim)
    start = torch.ones(4, dtype=torch.long)

    def once():
        _, soft = net.generator.gumbel_rollout(theme, 32, 0.5, start)
        soft.pow(2).sum().backward()

    once()
    _, total, not_views = bench_sample.count_operations(once)
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        once()
        seconds.append(time.perf_counter() - began)
    return 1000 * statistics.median(seconds), total, not_views


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="fixed per-step cost at tiny sizes (ms per step)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batches", type=int, default=None,
                        help="timed batches, after 1 warm-up (default 4; --tiny 40)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.tiny:
        args.batches = args.batches or 40
        return tiny(args)
    args.batches = args.batches or 4
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = Tokenizer()
    batches = [torch.randint(4, len(tokenizer), (args.batch, args.seq_len))
               for _ in range(args.batches + 1)]
    tokens = args.batches * args.batch * (args.seq_len - 1)

    mle = TrainSettings(seq_len=args.seq_len, adv_seq_len=args.seq_len // 2,
                        batch_size=args.batch, samples_per_validation=0)
    adversarial = dataclasses.replace(mle, **PHASES["adversarial"])
    figures = {
        "bare loop, same networks": bare_seconds(batches, len(tokenizer), True, args.device),
        "bare loop, LM only": bare_seconds(batches, len(tokenizer), False, args.device),
        "musegan MLE step (fp32)": lightning_seconds(batches, mle, "32-true", tokenizer,
                                                     args.device),
        "musegan adversarial step (fp32)": lightning_seconds(batches, adversarial, "32-true",
                                                             tokenizer, args.device),
    }
    if args.device.startswith("cuda") or cpu_supports_bf16_lstm():
        figures["musegan MLE step (bf16-mixed)"] = lightning_seconds(
            batches, mle, "bf16-mixed", tokenizer, args.device)
    print(f"batch {args.batch} x {args.seq_len} tokens, {args.batches} timed batches, "
          f"{args.threads} threads, {args.device}, default model sizes\n")
    print(f"{'':34s}{'s/batch':>9s}{'tokens/s':>10s}")
    for name, seconds in figures.items():
        print(f"{name:34s}{seconds / args.batches:9.2f}{tokens / seconds:10.0f}")
    mle_fp32 = figures["musegan MLE step (fp32)"]
    bf16 = figures.get("musegan MLE step (bf16-mixed)")
    print(f"\nmusegan MLE / bare loop (same networks): "
          f"{figures['bare loop, same networks'] / mle_fp32:.2f}x   (target >= 0.9x)")
    print(f"adversarial step / MLE step:            "
          f"{figures['musegan adversarial step (fp32)'] / mle_fp32:.2f}x   (target <= 3x; "
          f"rollout of {adversarial.adv_seq_len} tokens)")
    print("bf16-mixed speed-up over fp32:          " + (
        f"{mle_fp32 / bf16:.2f}x" if bf16 else
        "not measured: this CPU has no AMX or AVX512-BF16, so bf16 LSTMs do not run"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
