"""A run folder's layout, and loading its checkpoints, without importing Lightning.

Sampling from a ``.ckpt`` and exporting one need only these, so ``musegan generate``
starts without Lightning's import cost.
"""

from __future__ import annotations

import pickle
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
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise MuseganError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as err:
        raise MuseganError(
            f"{path}: refused to load: it holds more than plain weights "
            f"({str(err).strip().splitlines()[0][:160]}); only load checkpoints you trust"
        ) from None
    except Exception as err:
        raise MuseganError(f"{path}: cannot load this checkpoint "
                           f"({str(err).strip().splitlines()[0][:160]})") from None
