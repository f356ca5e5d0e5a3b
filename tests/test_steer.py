import numpy as np
import pytest
import torch
from midi_factory import make_score

from musegan import Sampler
from musegan.evaluate import CopyIndex, melody_tokens
from musegan.midi import score_to_pretty_midi
from musegan.steer import ATTRIBUTES, attributes


def midi(notes, **kwargs):
    """notes: (start quarter, length quarter, pitch)."""
    return score_to_pretty_midi(make_score(
        [(0, False, [(int(s * 480), int(d * 480), p, 80) for s, d, p in notes])], **kwargs))


def test_attributes_have_known_values():
    on_beat_scale = midi([(i, 1, p) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])
    a = attributes(on_beat_scale)
    assert (a["density"] == 4
            and a["register"] == pytest.approx(np.mean([60, 62, 64, 65, 67, 69, 71, 72])))
    assert a["range"] == 12 and a["syncopation"] == 0 and a["leaps"] == 0
    off_beat_leaps = midi([(i + 0.5, 0.5, 60 + 7 * (i % 2)) for i in range(8)])
    b = attributes(off_beat_leaps)
    assert b["syncopation"] == 1 and b["leaps"] == 1 and b["entropy"] == pytest.approx(1.0)
    index = CopyIndex([melody_tokens(on_beat_scale)], n=4)
    assert attributes(on_beat_scale, index)["novelty"] == 0
    assert attributes(off_beat_leaps, index)["novelty"] == 1
    assert set(attributes(on_beat_scale, index)) == set(ATTRIBUTES)


def test_excerpts_cut_real_pieces_to_the_length_steering_is_calibrated_at():
    from musegan.steer import excerpts

    six_bars = midi([(i, 1, 60 + i % 12) for i in range(24)])  # 4/4, one note a beat
    pieces = excerpts(six_bars, 2)
    assert len(pieces) == 3
    for k, piece in enumerate(pieces):
        pitches = [n.pitch for n in piece.instruments[0].notes]
        assert pitches == [60 + i % 12 for i in range(8 * k, 8 * k + 8)]
        assert piece.instruments[0].notes[0].start == 0
        assert attributes(piece)["density"] == 4  # two whole bars, not more
    assert excerpts(six_bars, 8) == [six_bars]  # shorter than an excerpt: kept whole


def test_each_side_keeps_the_candidate_that_best_keeps_steerings_promises():
    from musegan.steer import _Side, shortcomings

    step = torch.zeros(8)
    on_target_leaky = _Side("a", step, 0.9, 0.8, 0.05)
    on_target_clean = _Side("b", step, 0.7, 0.1, 0.05)
    weak_clean = _Side("c", step, 0.3, 0.0, 0.0)
    unmusical = _Side("d", step, 1.0, 0.0, 0.20)
    ranked = sorted([weak_clean, unmusical, on_target_leaky, on_target_clean],
                    key=lambda s: s.rank(1))
    assert [s.method for s in ranked] == ["b", "a", "d", "c"]
    assert _Side("e", step, -0.9, 0.1, 0.0).rank(-1) < _Side("f", step, 0.9, 0.1, 0.0).rank(-1)
    good = {"effect": [-0.9, 1.1], "leakage": 0.2, "overlap_drop": 0.03}
    assert shortcomings(good) == []
    bad = {"effect": [-0.2, 0.8], "leakage": 0.9, "overlap_drop": 0.3}
    assert len(shortcomings(bad)) == 3


@pytest.mark.slow
def test_a_theme_number_trained_to_follow_an_attribute_is_a_candidate_direction(setup):
    """Models trained with attribute-regularised themes (musegan.regularize) offer each
    attribute's own theme number as a direction, scaled by how much it moves it."""
    from musegan.steer import _candidates

    _, model = setup
    sampler = Sampler.from_pretrained(model)
    themes = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    noise = np.random.default_rng(0).normal(0, 0.1, (256, 2))
    values = np.stack([2 * themes[:, 1].numpy(), -themes[:, 0].numpy()], 1) + noise
    candidates, _ = _candidates(sampler, themes, values, ["register", "density"], 0,
                                lambda message: None, axes={"register": 1, "density": 0})
    np.testing.assert_allclose(candidates["register"]["axis"], np.eye(8)[1] / 2, atol=0.02)
    assert "axis" not in candidates["density"]  # its number runs the wrong way: no candidate
    without, _ = _candidates(sampler, themes, values, ["register", "density"], 0, lambda m: None)
    assert "axis" not in without["register"]
