import copy

import pytest
import torch
import torch.nn.functional as F

from musegan.models import ModelConfig, MuseGAN

CONFIG = ModelConfig(vocab_size=40, embed_dim=16, hidden_dim=24, num_layers=2, theme_dim=8,
                     noise_dim=6, mapping_width=16, encoder_dim=12, disc_embed_dim=10,
                     disc_hidden_dim=14, dropout=0.1)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return MuseGAN(CONFIG).eval()


def test_shapes(net):
    tokens = torch.randint(1, 40, (3, 11))
    tokens[0, 7:] = 0  # padding
    theme = net.encoder(tokens)
    assert theme.shape == (3, 8)
    torch.testing.assert_close(theme.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)  # layer norm
    torch.testing.assert_close(theme.var(-1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    logits, (h, c) = net.generator(tokens, theme)
    assert logits.shape == (3, 11, 40) and h.shape == c.shape == (2, 3, 24)
    sampled = net.mapping.sample(5)
    assert sampled.shape == (5, 8)
    torch.testing.assert_close(sampled.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)
    assert net.critic(sampled).shape == (5,)
    steps, sequence, features = net.discriminator(tokens != 0, tokens=tokens)
    assert steps.shape == (3, 11) and sequence.shape == (3,) and features.shape == (3, 28)


def test_configs_from_before_theme_norm_load_as_tanh():
    legacy = {k: v for k, v in CONFIG.to_dict().items() if k != "theme_norm"}
    config = ModelConfig.from_dict(legacy)
    assert config.theme_norm == "tanh"
    themes = MuseGAN(config).mapping.sample(4)
    assert themes.abs().max() <= 1
    assert ModelConfig.from_dict(CONFIG.to_dict()).theme_norm == "layernorm"


def test_step_gives_the_same_logits_as_the_full_forward_pass(net):
    tokens = torch.randint(1, 40, (4, 20))
    theme = net.mapping.sample(4)
    full, _ = net.generator(tokens, theme)
    state = net.generator.initial_state(theme)
    for t in range(tokens.size(1)):
        logits, state = net.generator.step(tokens[:, t], theme, state)
        torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 3])
def test_the_incremental_runner_matches_the_forward_pass_and_drops_rows(layers):
    torch.manual_seed(1)
    generator = MuseGAN(ModelConfig(**{**CONFIG.to_dict(), "num_layers": layers})).eval().generator
    tokens = torch.randint(1, 40, (4, 12))
    theme = torch.randn(4, 8)
    with torch.no_grad():
        full, _ = generator(tokens, theme)
        primed = generator.incremental(theme)  # a prefix in one pass, then step by step
        torch.testing.assert_close(primed.feed(tokens[:, :3]), full[:, 2], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(primed.step(tokens[:, 3]), full[:, 3], rtol=1e-4, atol=1e-5)
        runner = generator.incremental(theme)
        rows = torch.arange(4)
        for t in range(tokens.size(1)):
            if t == 5:  # pieces 0 and 2 finish: the rest must go on unchanged
                rows = rows[[1, 3]]
                runner.select(torch.tensor([1, 3]))
            torch.testing.assert_close(runner.step(tokens[rows, t]), full[rows, t],
                                       rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hidden", [16, 256])
def test_a_rows_step_does_not_depend_on_the_rest_of_its_batch(hidden):
    # A batch shrinks as its pieces end: each piece must step as it would alone, down to
    # the bit (a CPU takes other matrix routines for a few rows: they run padded).
    torch.manual_seed(2)
    config = ModelConfig(**{**CONFIG.to_dict(), "hidden_dim": hidden})
    generator = MuseGAN(config).eval().generator
    theme, tokens = torch.randn(8, 8), torch.randint(1, 40, (8, 6))
    with torch.no_grad():
        batch = generator.incremental(theme)
        together = [batch.step(tokens[:, t]) for t in range(tokens.size(1))]
        for rows in ([0], [5], [2, 3], [1, 4, 6, 7]):
            apart = generator.incremental(theme)
            apart.select(torch.tensor(rows))  # (as pieces leave a batch, or a fork starts)
            for t in range(tokens.size(1)):
                assert torch.equal(apart.step(tokens[rows, t]), together[t][rows]), (rows, t)


def test_the_theme_changes_what_the_generator_writes(net):
    tokens = torch.randint(1, 40, (2, 6))
    a, _ = net.generator(tokens, net.mapping.sample(2))
    b, _ = net.generator(tokens, net.mapping.sample(2))
    assert not torch.allclose(a, b)


def test_discriminator_reads_one_hots_like_ids(net):
    tokens = torch.randint(1, 40, (2, 9))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    by_ids = net.discriminator(mask, tokens=tokens)
    by_soft = net.discriminator(mask, soft=F.one_hot(tokens, 40).float())
    for x, y in zip(by_ids, by_soft, strict=True):
        torch.testing.assert_close(x, y)


def test_gumbel_rollout_passes_gradients_from_the_discriminator_to_the_generator(net):
    net.train()
    theme = net.mapping.sample(3).detach()
    start = torch.full((3,), 1, dtype=torch.long)
    hard, soft = net.generator.gumbel_rollout(theme, 7, tau=0.5, start=start)
    assert hard.shape == (3, 7) and soft.shape == (3, 7, 40)
    torch.testing.assert_close(soft.sum(-1), torch.ones(3, 7))
    steps, sequence, _ = net.discriminator(torch.ones(3, 7, dtype=torch.bool), soft=soft)
    (steps.mean() + sequence.mean()).backward()
    assert net.generator.head.weight.grad.abs().sum() > 0
    assert net.generator.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_gumbel_rollout_soft_one_hots_peak_at_the_hard_tokens(net):
    """The loop picks each token from its own step's head; the soft one-hots come from
    one head pass over all steps after it: the same logits, dropout masks and noise."""
    generator = copy.deepcopy(net.generator)
    with torch.no_grad():  # logits that outweigh the noise, so a wrong mask shows
        generator.head.weight.mul_(30)
    theme = net.mapping.sample(8).detach()
    start = torch.full((8,), 1, dtype=torch.long)
    for training in (False, True):
        generator.train(training)
        torch.manual_seed(3)
        hard, soft = generator.gumbel_rollout(theme, 12, tau=0.5, start=start)
        assert torch.equal(soft.argmax(-1), hard)


def test_spectral_norm_on_the_discriminator_and_critic_linear_layers(net):
    from torch.nn.utils import parametrize

    assert parametrize.is_parametrized(net.discriminator.step_head, "weight")
    assert parametrize.is_parametrized(net.discriminator.sequence_head, "weight")
    assert all(parametrize.is_parametrized(m, "weight") for m in net.critic.net
               if isinstance(m, torch.nn.Linear))


def test_rollouts_step_the_same_lstm_as_teacher_forcing(net):
    """free_run's and gumbel_rollout's per-token cells compute what ``hidden`` computes
    over the whole sequence (eval mode: no dropout)."""
    net.eval()
    theme = net.mapping.sample(3)
    start = torch.full((3,), 1, dtype=torch.long)
    ids, outputs = net.generator.free_run(theme, 6, start)
    inputs = torch.cat([start[:, None], ids[:, :-1]], 1)
    taught, _ = net.generator.hidden(inputs, theme)
    assert torch.allclose(outputs, taught, atol=1e-5)
    torch.manual_seed(5)
    hard, soft = net.generator.gumbel_rollout(theme, 6, tau=0.5, start=start)
    logits, _ = net.generator(torch.cat([start[:, None], hard[:, :-1]], 1), theme)
    assert soft.shape == (3, 6, logits.size(-1)) and torch.allclose(soft.sum(-1), torch.ones(3, 6))
    torch.manual_seed(5)  # the rollout's one draw in eval mode: its Gumbel noise
    gumbel = -torch.rand(3, 6, logits.size(-1)).log().neg().log()
    assert torch.equal(hard, (logits + gumbel).argmax(-1))
    assert torch.allclose(soft, torch.softmax((logits + gumbel) / 0.5, -1), atol=1e-6)
    net.train()


def test_rollouts_drop_out_in_training_and_not_in_eval(net):
    """The rollouts' dropout masks, drawn for all steps at once, keep each unit with
    probability 1 - p and scale it by 1 / (1 - p), as ``nn.Dropout`` does; none in eval."""
    gen, p = net.generator, net.generator.drop.p
    assert p > 0 and all(m is None for m in gen._dropout_masks(5, 3, "cpu"))
    net.train()
    masks = gen._dropout_masks(200, 8, "cpu")
    widths = [gen.config.embed_dim + gen.config.theme_dim] + [gen.config.hidden_dim] * (
        gen.config.num_layers)
    assert [m.shape for m in masks] == [(200, 8, w) for w in widths]
    for mask in masks:
        values = mask.unique()
        assert torch.allclose(values, torch.tensor([0.0, 1 / (1 - p)]))
        assert abs((mask == 0).float().mean().item() - p) < 0.02
    theme = net.mapping.sample(3).detach()
    start = torch.full((3,), 1, dtype=torch.long)
    torch.manual_seed(1)
    first = gen.gumbel_rollout(theme, 6, tau=0.5, start=start)
    torch.manual_seed(1)
    again = gen.gumbel_rollout(theme, 6, tau=0.5, start=start)
    torch.manual_seed(2)
    other = gen.gumbel_rollout(theme, 6, tau=0.5, start=start)
    assert torch.equal(first[1], again[1]) and not torch.equal(first[1], other[1])
    # The masks are what changes the training rollout: with masks of ones it is eval's;
    # a drawn mask at any one site (the same noise after it) changes it.
    drawn = gen._dropout_masks(6, 3, "cpu")
    ones = [torch.ones_like(m) for m in drawn]
    runs = []
    for masks in [ones] + [ones[:j] + [drawn[j]] + ones[j + 1:] for j in range(len(drawn))]:
        gen._dropout_masks = lambda *a, masks=masks: masks  # drawing nothing, as in eval
        torch.manual_seed(1)
        runs.append(gen.gumbel_rollout(theme, 6, tau=0.5, start=start)[1])
    del gen._dropout_masks
    net.eval()
    torch.manual_seed(1)
    plain = gen.gumbel_rollout(theme, 6, tau=0.5, start=start)[1]
    assert torch.allclose(runs[0], plain)
    assert not any(torch.allclose(run, plain) for run in runs[1:])


def test_feeding_prefixes_of_several_lengths_and_repeats_gives_each_rows_own_logits(net):
    net.eval()
    theme = net.mapping.sample(2).repeat_interleave(2, 0)  # rows 0, 1 share a theme; 2, 3 too
    rows = [[1, 5, 6, 7, 8], [1, 5, 6, 7, 8], [1, 9, 10], [1, 9, 10, 11]]
    lengths = torch.tensor([len(r) for r in rows])
    padded = torch.tensor([r + [0] * (5 - len(r)) for r in rows])
    runner = net.incremental(theme)
    logits = runner.feed(padded, lengths)
    with torch.no_grad():
        for i, row in enumerate(rows):
            want, (h, c) = net.generator(torch.tensor([row]), theme[i:i + 1])
            assert torch.allclose(logits[i], want[0, -1], atol=1e-5)
            assert torch.allclose(runner.h[-1][i], h[-1, 0], atol=1e-5)
            assert torch.allclose(runner.c[-1][i], c[-1, 0], atol=1e-5)
    net.train()
