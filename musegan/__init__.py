"""musegan: symbolic music generation with an LSTM-GAN whose GAN samples a theme.

Heavy modules (torch, lightning) load only when a name that needs them is used, so
``musegan prepare`` and the tokenizer start fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("musegan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

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
    "RunConfig": "musegan.training",
    "train": "musegan.training",
    "export_model": "musegan.export",
    "load_model": "musegan.export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'musegan' has no attribute {name!r}")
