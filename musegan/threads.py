"""How many CPU threads torch uses, chosen from the work unless the user chose.

torch's OpenMP threads *spin* while they wait for work. On a machine whose cores are busy
with anything else, two spinning threads fight for one core: ``musegan generate`` took
14.3 s against 2.2 s with one thread, and a tiny training run 13x longer. So:

* ``musegan`` asks OpenMP to wait passively (``OMP_WAIT_POLICY=PASSIVE``) when it is
  imported before torch, unless the user set a policy. Measured on 2 busy cores, a
  2-layer LSTM's forward pass took 2,588 ms with 2 spinning threads, 943 ms with 1 and
  714 ms with 2 passive ones.
* Sampling (``Sampler``: generate, critique, infill, ...) runs one thread: a decoding
  step is many small operations, which threads only slow down (``bench/sample.py``).
* Training a small model (generator ``hidden_dim`` up to ``SMALL_MODEL_HIDDEN``) runs one
  thread too: on 2 cores a training step of a 64-wide model took 51 ms with one thread
  and 250 ms with two, a 128-wide one 112 and 369 ms; at 256 wide the two were even, and
  at the default 512 two threads were 1.2x faster. Larger models keep torch's default.
* Nothing is changed where the user chose: ``OMP_NUM_THREADS`` set,
  ``torch.set_num_threads`` called after importing ``Sampler``, or ``--threads N`` on the
  command line (``set_threads``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

SAMPLING_THREADS = 1
SMALL_MODEL_HIDDEN = 128  # a generator this wide or narrower trains on one thread

if "OMP_WAIT_POLICY" not in os.environ and "torch" not in sys.modules:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read once, when torch loads OpenMP

_chosen: int | None = None  # threads the user asked for (set_threads), if any
_default: int | None = None  # torch's thread count when musegan first looked


def note_default() -> None:
    """Remember torch's thread count as its default (musegan's modules that use torch
    call this as they load), so that a later ``torch.set_num_threads`` reads as the
    user's choice."""
    _torch_threads()


def _torch_threads() -> int:
    import torch

    global _default
    if _default is None:
        _default = torch.get_num_threads()
    return torch.get_num_threads()


def sampling(function):
    """Decorate a function to run under ``sampling_threads``."""
    import functools

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with sampling_threads():
            return function(*args, **kwargs)

    return wrapped


def user_chose() -> bool:
    """Whether the user set the thread count: ``set_threads``, ``OMP_NUM_THREADS``, or
    ``torch.set_num_threads`` since musegan first looked."""
    current = _torch_threads()
    return _chosen is not None or "OMP_NUM_THREADS" in os.environ or current != _default


def set_threads(n: int) -> None:
    """Use n threads from now on, for all work (the command line's ``--threads``)."""
    import torch

    from musegan.errors import MuseganError

    global _chosen
    if n < 1:
        raise MuseganError(f"threads must be at least 1, got {n}",
                           cli=f"--threads must be at least 1, got {n}")
    _torch_threads()  # note the default first
    torch.set_num_threads(n)
    _chosen = n


@contextlib.contextmanager
def sampling_threads() -> Iterator[None]:
    """Run the block with ``SAMPLING_THREADS`` threads, unless the user chose; torch's
    count is restored afterwards."""
    with _threads(SAMPLING_THREADS):
        yield


@contextlib.contextmanager
def training_threads(hidden_dim: int) -> Iterator[None]:
    """Run a training block on one thread if the model is small (``hidden_dim`` at most
    ``SMALL_MODEL_HIDDEN``), unless the user chose; else on torch's default."""
    with _threads(1 if hidden_dim <= SMALL_MODEL_HIDDEN else None):
        yield


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None or user_chose():
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
