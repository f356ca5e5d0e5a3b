import math

import numpy as np
import pytest
import torch
from midi_factory import make_score, random_melody

from musegan.regularize import ATTRIBUTES, WindowAttributes, attribute_order_loss
from musegan.steer import attributes
from musegan.tokenizer import Tokenizer


def _pieces() -> list:
    """Tunes that exercise every formula: chords (the melody is their top note), rests,
    off-beat onsets, a compound meter, a drum track that must not count."""
    chords = make_score([(0, False, [
        (0, 480, 60, 80), (0, 480, 64, 80), (0, 480, 67, 80),  # C major, top note G
        (480, 240, 72, 80), (720, 240, 65, 80),  # leap up then down, the second off the beat
        (1200, 480, 62, 80), (1200, 480, 69, 80),
        (1920, 960, 71, 80)]),
        (0, True, [(i * 480, 120, 36, 100) for i in range(8)])])
    jig = make_score([(0, False, [(i * 240, 240, 62 + (3 * i) % 9, 80) for i in range(24)])],
                     time_signatures=[(0, 6, 8)])
    syncopated = make_score([(0, False, [(120 + i * 480, 240, 67 - (i % 4), 80)
                                         for i in range(12)])])
    return [chords, jig, syncopated, random_melody(3, 40), random_melody(4, 33, step=160)]


def test_window_attributes_follow_steering_formulas_on_the_decoded_music():
    tokenizer = Tokenizer()
    rows = [tokenizer.encode(piece) for piece in _pieces()]
    width = max(map(len, rows))
    ids = torch.tensor([row + [tokenizer.PAD] * (width - len(row)) for row in rows])
    got = WindowAttributes(tokenizer)(ids).numpy()
    assert got.shape == (len(rows), len(ATTRIBUTES))
    for row, values in zip(rows, got, strict=True):
        expected = attributes(tokenizer.decode(row))
        for name, value in zip(ATTRIBUTES, values, strict=True):
            assert value == pytest.approx(expected[name], abs=1e-5), name


def test_window_attributes_are_nan_where_undefined_and_subsets_keep_their_order():
    tokenizer = Tokenizer()
    empty = [tokenizer.BOS, tokenizer.BAR, tokenizer.EOS]
    single = tokenizer.encode(make_score([(0, False, [(0, 480, 60, 80)])]))
    width = max(len(empty), len(single))
    ids = torch.tensor([row + [tokenizer.PAD] * (width - len(row)) for row in (empty, single)])
    values = WindowAttributes(tokenizer, ("entropy", "leaps", "register"))(ids)
    assert values[0].isnan().all()
    assert values[1, 0] == 0 and math.isnan(values[1, 1]) and values[1, 2] == 60
    with pytest.raises(ValueError, match="unknown theme attribute 'loudness'"):
        WindowAttributes(tokenizer, ("loudness",))


def test_the_order_loss_is_low_when_a_theme_number_orders_the_attribute_and_high_when_reversed():
    attribute = torch.tensor([[0.1], [0.5], [0.9], [0.3], [float("nan")]])
    ordered = torch.zeros(5, 4)
    ordered[:, 0] = torch.tensor([-1.0, 0.0, 1.0, -0.5, 7.0])  # NaN's theme is ignored
    reversed_ = ordered.clone()
    reversed_[:, 0] = -ordered[:, 0]
    low, high = attribute_order_loss(ordered, attribute), attribute_order_loss(reversed_, attribute)
    assert low < 0.01
    assert high == pytest.approx(2 * 12 / 16, abs=1e-3)  # every pair but the 4 self-pairs off by 2
    theme = torch.randn(5, 4, requires_grad=True)
    attribute_order_loss(theme, attribute).backward()
    assert theme.grad[:, 0].abs().sum() > 0 and theme.grad[:, 1:].abs().sum() == 0
    assert theme.grad[4].abs().sum() == 0
    nothing = attribute_order_loss(theme, torch.full((5, 1), float("nan")))
    assert nothing == 0 and nothing.requires_grad
    # attributes are averaged; one with a single defined value does not count
    one = torch.full((5, 1), float("nan"))
    one[2] = 3.0
    both = torch.cat([attribute, -attribute], 1)
    assert attribute_order_loss(reversed_, torch.cat([attribute, one], 1)) == pytest.approx(
        float(high))
    flat = 12 / 16  # theme number 1 is 0 for all: every pair off by 1
    assert attribute_order_loss(ordered, both) == pytest.approx((float(low) + flat) / 2,
                                                                abs=1e-3)


def test_training_with_the_order_loss_makes_a_theme_number_follow_register():
    """A few optimizer steps of a tiny encoder on tunes in different registers: after
    them, theme number 1 ("register") ranks held-out tunes by register."""
    from musegan.models import ModelConfig, ThemeEncoder

    torch.manual_seed(0)
    tokenizer = Tokenizer()

    def batch(seeds):
        rows = [tokenizer.encode(random_melody(s, 24, low=40 + 3 * (s % 12),
                                               high=52 + 3 * (s % 12)))
                for s in seeds]
        width = max(map(len, rows))
        return torch.tensor([row + [tokenizer.PAD] * (width - len(row)) for row in rows])

    config = ModelConfig(vocab_size=len(tokenizer), embed_dim=16, encoder_dim=16, theme_dim=8)
    encoder = ThemeEncoder(config)
    measure = WindowAttributes(tokenizer)
    train, held = batch(range(48)), batch(range(100, 124))
    train_values, held_values = measure(train), measure(held)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)

    def rank_agreement() -> float:
        with torch.no_grad():
            z = encoder(held)[:, ATTRIBUTES.index("register")].numpy()
        a = held_values[:, ATTRIBUTES.index("register")].numpy()
        return float(np.corrcoef(np.argsort(np.argsort(z)), np.argsort(np.argsort(a)))[0, 1])

    before = rank_agreement()
    for _ in range(60):
        optimizer.zero_grad()
        attribute_order_loss(encoder(train), train_values).backward()
        optimizer.step()
    after = rank_agreement()
    assert after > 0.8 and after > before + 0.3
