"""Fixtures that several test files share: tiny models, small corpora, a folder of MIDI.

Each is built in code, once per test module that asks for it."""

from pathlib import Path

import pytest
import torch
from midi_factory import random_corpus, random_melody, tune, write

from musegan import Sampler, Tokenizer
from musegan.modelfile import save_model
from musegan.models import ModelConfig, MuseGAN

TOK = Tokenizer()

# One thread for the whole suite: its models are tiny, and on a machine whose other core
# is busy two threads fight for one (the suite took 5.4 minutes beside one busy process).
# musegan's own thread choices are tested in new processes (test_threads.py).
torch.set_num_threads(1)


def tiny_net() -> MuseGAN:
    """An untrained MuseGAN small enough to sample from in milliseconds, seeded."""
    torch.manual_seed(0)
    return MuseGAN(ModelConfig(vocab_size=len(TOK), embed_dim=16, hidden_dim=32, num_layers=1,
                               theme_dim=8, noise_dim=8, mapping_width=16, encoder_dim=16,
                               disc_embed_dim=8, disc_hidden_dim=8))


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    """A Sampler of the tiny net, loaded from the model file it was saved to."""
    net = tiny_net()
    path = save_model(net, TOK, tmp_path_factory.mktemp("m") / "m.safetensors")
    return Sampler.from_pretrained(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(root, model): ROOT/corpus of 24 tunes whose densities differ, and a tiny model
    file whose theme matters a lot, so that steering directions have something to find."""
    root = tmp_path_factory.mktemp("steer")

    def varied_density(seed):
        step = (120, 240, 480)[seed % 3]  # 16ths, 8ths or quarters: densities differ
        return random_melody(seed, 7680 // step, step=step, low=55, high=80)

    random_corpus(root, 24, varied_density)
    net = tiny_net()
    with torch.no_grad():  # make the theme matter a lot, so directions have something to find
        net.generator.init_state.weight.mul_(8)
        net.generator.head.bias[TOK.BAR] += 3.0  # and keep bars short, so the test is quick
    model = save_model(net, TOK, root / "m.safetensors", card={"name": "tiny"})
    return root, model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four 4-bar tunes; every tune is a different random melody of quarter notes (what the
    Markov baseline is fitted to; test_training.py has a corpus of its own)."""
    return random_corpus(tmp_path_factory.mktemp("markov"), 4,
                         lambda seed: random_melody(seed, 16, step=480, low=60, high=84))


@pytest.fixture(scope="module")
def training_corpus(tmp_path_factory) -> Path:
    """16 tunes of 64 eighth notes, a quarter of them held out for validation."""
    return random_corpus(tmp_path_factory.mktemp("train"), 16,
                         lambda seed: random_melody(seed, 64), val_fraction=0.25)


@pytest.fixture
def good_folder(tmp_path) -> Path:
    """Eight small tunes: six in the folder, one two folders down with an upper-case
    suffix, one as a .kar file."""
    folder = tmp_path / "good"
    for i in range(6):
        write(tune(i), folder / f"tune{i}.mid")
    write(tune(10), folder / "sub" / "deeper" / "UPPER.MID")
    write(tune(11), folder / "karaoke.kar")
    return folder
