"""A run folder's layout, and loading its checkpoints, without importing Lightning.

Sampling from a ``.ckpt`` and exporting one need only these, so ``musegan generate``
starts without Lightning's import cost.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from musegan.errors import MuseganError

CHECKPOINTS = "checkpoints"  # RUN/checkpoints/: last.ckpt and best-epochNNN.ckpt
LAST = "last.ckpt"
RUN_INFO = "run.json"
CONFIG_FILE = "config.yaml"


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a Lightning checkpoint with ``weights_only=True``: tensors and plain types only.

    A file whose pickle would build other objects, or run code, is refused with a clear
    error; a checkpoint can carry code, so never load one from someone you do not trust
    any other way.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's own notes on old pickles: ours says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise MuseganError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):  # torch has written zip archives since 1.6
            with open(path, "rb") as file:
                pickled = file.read(1) == b"\x80"  # a pickle's protocol marker
            raise MuseganError(
                f"{path} is " + ("a plain pickle, not a PyTorch checkpoint; musegan does not "
                                 "load pickles, which can run code" if pickled else
                                 "not a PyTorch checkpoint") + "; give a .ckpt that musegan "
                "train wrote, or a .safetensors model") from None
        raise MuseganError(
            f"{path}: refused to load: it holds more than plain weights (tensors and "
            "settings), and loading it could run code; only load checkpoints you trust, "
            "and share models as .safetensors (musegan export)") from None
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "central directory" in message or "zip archive" in message:
            raise MuseganError(f"{path} is not a PyTorch checkpoint; give a .ckpt that "
                               "musegan train wrote, or a .safetensors model") from None
        raise MuseganError(f"{path}: cannot load this checkpoint ({message[:160]})") from None
