"""Threads: OpenMP waits passively, sampling and small models' training run one thread,
and the user's choice wins."""

from __future__ import annotations

import os
import subprocess
import sys

from midi_factory import musegan_cli

PROBE = """
import musegan  # before torch, as the command line does
import torch
from musegan.sampling import Sampler
from musegan import threads
import os
default = torch.get_num_threads()
with threads.sampling_threads():
    inside = torch.get_num_threads()
after = torch.get_num_threads()
with threads.training_threads(64):
    small = torch.get_num_threads()
with threads.training_threads(512):
    large = torch.get_num_threads()
torch.set_num_threads(3)
with threads.sampling_threads():
    chosen = torch.get_num_threads()
with threads.training_threads(64):
    chosen_small = torch.get_num_threads()
print(os.environ.get("OMP_WAIT_POLICY"), default, inside, after, chosen, small, large,
      chosen_small)
"""


def probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                               "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**clean, **env}, check=True)
    return done.stdout.split()


def test_sampling_and_small_models_run_one_thread_and_give_the_rest_back():
    policy, default, inside, after, chosen, small, large, chosen_small = probe()
    assert policy == "PASSIVE"  # set before torch loaded OpenMP
    assert inside == "1" and after == default
    assert small == "1" and large == default  # training: one thread for a small model
    assert chosen == chosen_small == "3"  # torch.set_num_threads by the user is left alone


def test_the_users_environment_wins():
    policy, default, inside, _, _, small, _, _ = probe(OMP_NUM_THREADS="2",
                                                       OMP_WAIT_POLICY="ACTIVE")
    assert policy == "ACTIVE" and default == inside == small == "2"


def test_threads_on_the_command_line_must_be_positive():
    done = musegan_cli("generate", "--threads", "0", "--out", "nowhere")
    assert done.returncode == 2 and "--threads must be at least 1, got 0" in done.stderr
    assert "Traceback" not in done.stderr and not os.path.exists("nowhere")
