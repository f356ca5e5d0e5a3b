"""musegan: symbolic music generation with an LSTM-GAN whose GAN samples a theme.

Heavy modules (torch, lightning) load only when a name that needs them is used, so
``musegan prepare`` and the tokenizer start fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import musegan.threads  # noqa: F401  (asks OpenMP to wait passively, before torch loads)

try:
    __version__ = version("musegan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time the names load lazily
    from musegan.config import RunConfig as RunConfig
    from musegan.corpus import Corpus as Corpus
    from musegan.data import MidiDataModule as MidiDataModule
    from musegan.data import TokenWindowDataset as TokenWindowDataset
    from musegan.errors import MidiError as MidiError
    from musegan.errors import MuseganError as MuseganError
    from musegan.export import export_model as export_model
    from musegan.modelfile import load_model as load_model
    from musegan.prepare import prepare_corpus as prepare_corpus
    from musegan.sampling import Sampler as Sampler
    from musegan.tokenizer import Tokenizer as Tokenizer
    from musegan.tokenizer import TokenizerConfig as TokenizerConfig
    from musegan.training import train as train

_LAZY = {
    "Tokenizer": "musegan.tokenizer",
    "TokenizerConfig": "musegan.tokenizer",
    "MuseganError": "musegan.errors",
    "MidiError": "musegan.errors",
    "prepare_corpus": "musegan.prepare",
    "Corpus": "musegan.corpus",
    "TokenWindowDataset": "musegan.data",
    "MidiDataModule": "musegan.data",
    "Sampler": "musegan.sampling",
    "RunConfig": "musegan.config",
    "train": "musegan.training",
    "export_model": "musegan.export",
    "load_model": "musegan.modelfile",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'musegan' has no attribute {name!r}")
