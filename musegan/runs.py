"""A run folder's layout, and loading its checkpoints, without importing Lightning.

Sampling from a ``.ckpt`` and exporting one need only these, so ``musegan generate``
starts without Lightning's import cost.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from musegan.errors import MuseganError

if TYPE_CHECKING:
    from musegan.tokenizer import Tokenizer

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
        if not _is_torch_archive(path):  # text, an empty file, another zip, ...
            raise MuseganError(f"{path} is not a PyTorch checkpoint; give a .ckpt that "
                               "musegan train wrote, or a .safetensors model") from None
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MuseganError(f"{path}: cannot load this checkpoint ({message[:160]})") from None


def _is_torch_archive(path: Path) -> bool:
    """Whether ``path`` is a zip archive as ``torch.save`` writes them (NAME/data.pkl)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def corpus_limits(run_dir: Path, tokenizer: Tokenizer) -> dict:
    """What a run's training corpus holds, for the model card and the sampler
    (``Sampler.corpus_tokens``): ``unseen_tokens``, the token ids its training split never
    has, and ``corpus_holds``, its voices, meters and tempo range in words. Empty when the
    run does not say where its corpus is, or the corpus is gone or has another tokenizer."""
    from musegan.corpus import Corpus, is_corpus

    info = run_dir / RUN_INFO
    data = json.loads(info.read_text()).get("data") if info.is_file() else None
    if not data or not is_corpus(Path(data)):
        return {}
    corpus = Corpus(data)
    if corpus.tokenizer != tokenizer:
        return {}
    counts = corpus.token_counts("train")
    return {"unseen_tokens": np.flatnonzero(counts == 0).tolist(),
            "corpus_holds": corpus_holds(tokenizer, counts > 0)}


def corpus_holds(tokenizer: Tokenizer, seen: np.ndarray) -> dict:
    """What a corpus holds, in words, from which of the vocabulary's tokens it has (V,):
    its instruments (programs and parts), meters and tempo range."""
    def names(kind: str) -> list[str]:
        return [tokenizer.vocab[i].split("_", 1)[1] for i in tokenizer.token_range(kind)
                if seen[i]]

    voices = [tokenizer.part_name(int(tokenizer.voice[i]))
              for kind in ("program", "part") for i in tokenizer.token_range(kind) if seen[i]]
    tempos = [float(t) for t in names("tempo")]
    return {"voices": voices, "meters": names("time_signature"),
            "tempo_bpm": [min(tempos), max(tempos)] if tempos else []}
