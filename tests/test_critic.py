"""The critic: fitted into a model file, it scores pieces and bars, and picks best-of-K."""

from __future__ import annotations

import json

import numpy as np
import pytest
from midi_factory import make_score, musegan_cli, random_melody, write

from musegan import Sampler
from musegan.critic import auc, fit_model, platt
from musegan.errors import MuseganError
from musegan.sampling import generate_files


@pytest.fixture(scope="module")
def critic_model(setup, tmp_path_factory):
    """The tiny model of conftest's ``setup``, with a critic fitted on its corpus."""
    root, model = setup
    out = tmp_path_factory.mktemp("critic") / "with-critic.safetensors"
    path, facts = fit_model(model, root / "corpus", out, bars=4, samples=48, epochs=4)
    return path, facts, root


def random_notes(seed: int, bars: int = 4):
    """Noise: random pitches over the whole keyboard at random onsets and lengths."""
    rng = np.random.default_rng(seed)
    notes = [(int(t), int(d), int(p), 80) for t, d, p in zip(
        np.sort(rng.integers(0, bars * 1920, 40)), rng.integers(30, 900, 40),
        rng.integers(21, 108, 40), strict=True)]
    return make_score([(0, False, notes)])


def test_the_critic_lives_in_the_model_file(critic_model):
    path, facts, _ = critic_model
    sampler = Sampler.from_pretrained(path)
    assert sampler.has_critic and sampler.model.critic_facts["bars"] == 4
    assert 0 <= facts["auc_own_samples"] <= 1
    assert "## Critic" in path.with_suffix(".md").read_text()


def test_critique_gives_a_score_per_bar_in_0_1(critic_model, tmp_path):
    path, _, _ = critic_model
    sampler = Sampler.from_pretrained(path)
    tune = write(random_melody(3, 48, step=480), tmp_path / "six-bars.mid")  # 48 quarters
    result = sampler.critique(tune)
    assert len(result["bars"]) == 12  # 48 quarter notes of 4/4
    assert 0 <= result["score"] <= 1 and all(0 <= s <= 1 for s in result["bars"])
    cli = musegan_cli("critique", str(tune), "--model", str(path), "--json")
    assert cli.returncode == 0, cli.stderr
    [row] = json.loads(cli.stdout)
    assert row["file"] == str(tune) and len(row["bars"]) == 12
    assert row["score"] == pytest.approx(result["score"])
    plot = ("critique", str(tune), "--model", str(path), "--plot")
    assert musegan_cli(*plot).returncode == 0 and tune.with_suffix(".critique.png").is_file()
    again = musegan_cli(*plot)  # critique has no --out: the error does not offer one
    assert again.returncode == 2
    assert again.stderr.strip().endswith("six-bars.critique.png exists; pass --force to "
                                         "replace it"), again.stderr
    (tmp_path / "notes.mid").write_text("not MIDI")  # one bad file stops nothing
    both = musegan_cli("critique", str(tmp_path / "notes.mid"), str(tune), "--model", str(path))
    assert both.returncode == 0 and "six-bars.mid" in both.stdout
    assert "skipped" in both.stderr and "notes.mid" in both.stderr
    alone = musegan_cli("critique", str(tmp_path / "notes.mid"), "--model", str(path))
    assert alone.returncode == 2 and "none of the 1 files could be scored" in alone.stderr


def test_the_critic_ranks_real_tunes_above_random_notes(critic_model, tmp_path):
    path, _, root = critic_model
    sampler = Sampler.from_pretrained(path)
    real = [sampler.critique(p)["score"] for p in sorted((root / "midi").glob("*.mid"))[:12]]
    noise = [sampler.critique(write(random_notes(s), tmp_path / f"n{s}.mid"))["score"]
             for s in range(12)]
    assert auc(np.array(real), np.array(noise)) > 0.8


def test_best_of_one_is_plain_generate_and_best_of_k_keeps_the_top_score(critic_model):
    path, _, _ = critic_model
    sampler = Sampler.from_pretrained(path)
    plain = sampler.generate_ids(n=3, bars=2, seed=5, form="")
    assert sampler.generate_ids(n=3, bars=2, seed=5, form="", best_of=1) == plain
    choices = sampler.generate_choices(n=3, bars=2, seed=5, form="", best_of=4)
    for choice in choices:
        assert len(choice.scores) == 4 and choice.score == max(choice.scores)
        assert choice.scores.index(choice.score) == choice.index


def test_best_of_k_regenerates_from_its_sidecar(critic_model, tmp_path):
    path, _, _ = critic_model
    sampler = Sampler.from_pretrained(path)
    [first, second] = generate_files(sampler, tmp_path / "out", n=2, bars=2, seed=9,
                                     best_of=3, form="")
    sidecar = json.loads(second.with_suffix(".json").read_text())
    assert sidecar["best_of"]["k"] == 3 and 0 <= sidecar["best_of"]["winner"] < 3
    import torch

    again = sampler.generate(n=1, seed=sidecar["seed"], bars=2, form="",
                             theme=torch.tensor(sidecar["theme"]), best_of=3,
                             first=sidecar["index"])
    again[0].write(str(tmp_path / "again.mid"))
    assert (tmp_path / "again.mid").read_bytes() == second.read_bytes()
    batched = generate_files(sampler, tmp_path / "batched", n=2, bars=2, seed=9, best_of=3,
                             form="", batch=1)  # one piece's candidates a batch
    assert [p.read_bytes() for p in batched] == [first.read_bytes(), second.read_bytes()]


def test_polish_replaces_only_weak_bars_and_only_with_better_ones(critic_model, tmp_path):
    path, _, _ = critic_model
    sampler = Sampler.from_pretrained(path)
    tune = write(random_melody(3, 32, step=480), tmp_path / "eight-bars.mid")
    scores = sampler.critique(tune)["bars"]
    polished, changes = sampler.polish(tune, bars_max=2, seed=1, candidates=4)
    weakest = sorted(range(len(scores)), key=lambda i: scores[i])[:2]
    assert sorted(c.bar - 1 for c in changes) == sorted(weakest)  # only the weakest tried
    tok = sampler.tokenizer
    bars_before = notes_by_bar(tok, tok.quantize(tune))
    bars_after = notes_by_bar(tok, tok.quantize(polished))
    changed = {b for b in set(bars_before) | set(bars_after)
               if bars_before.get(b) != bars_after.get(b)}
    assert changed <= {c.bar for c in changes if c.kept}  # nothing else moved
    for change in changes:
        assert (change.after > change.before) == change.kept  # never a lower-scoring bar
    done = musegan_cli("polish", str(tune), "--bars-max", "2", "--seed", "1", "--candidates",
                       "4", "--model", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert f"{sum(c.kept for c in changes)} of 2 weak bars changed" in done.stdout
    written = tmp_path / "out" / "eight-bars-polished-s1.mid"
    last = changes[-1]  # the written piece is the one its last score was given to
    assert sampler.critique(written)["bars"][last.bar - 1] == pytest.approx(
        last.after if last.kept else last.before, abs=1e-6)
    was, now = sampler.critique(tune)["bars"], sampler.critique(written)["bars"]
    for change in changes:  # the command prints what `critique` says of both files
        assert f"bar {change.bar}: {was[change.bar - 1]:.2f} -> {now[change.bar - 1]:.2f}" \
            in done.stdout
    for flags, says in [(["--bars-max", "0"], "--bars-max must be at least 1, got 0"),
                        (["--candidates", "0"], "--candidates must be at least 1, got 0")]:
        bad = musegan_cli("polish", str(tune), *flags, "--model", str(path), "--out",
                          str(tmp_path / "never"))
        assert bad.returncode == 2 and says in bad.stderr
        assert not (tmp_path / "never").exists()  # a failed edit leaves no empty folder


def notes_by_bar(tok, notes) -> dict[int, list]:
    steps = int(tok.bar_steps[tok.default_time_signature])
    bars: dict[int, list] = {}
    for note in notes:
        bars.setdefault(int(note["onset"]) // steps + 1, []).append(tuple(note.tolist()))
    return bars


def test_a_model_without_a_critic_says_how_to_fit_one(setup, tmp_path):
    _, model = setup
    sampler = Sampler.from_pretrained(model)
    with pytest.raises(MuseganError, match="has no critic.*musegan critic --fit"):
        sampler.critique(write(random_melody(1, 8), tmp_path / "a.mid"))
    with pytest.raises(MuseganError, match="has no critic"):
        sampler.generate(n=1, bars=2, best_of=2)
    cli = musegan_cli("generate", "--model", str(model), "--best-of", "2", "--out",
                      str(tmp_path / "x"))
    assert cli.returncode == 2 and "has no critic" in cli.stderr
    assert not (tmp_path / "x").exists()
    cli = musegan_cli("critique", str(tmp_path / "a.mid"), "--model", str(model))
    assert cli.returncode == 2 and "musegan critic --fit" in cli.stderr


def test_auc_and_platt_scaling():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    a, b = platt(np.array([2.0, 3.0, 1.0, 2.5]), np.array([-1.0, 0.0, -2.0, 1.5]))
    assert a > 0  # higher logits mean more likely real


def test_the_critic_reads_each_row_as_a_packed_bidirectional_lstm_would():
    """Critic.forward runs its two directions as one-way passes (a packed LSTM's backward
    pass is 80x slower on a CPU); the logits within each row must be the packed ones."""
    import torch

    from musegan.critic import Critic, CriticConfig

    torch.manual_seed(0)
    critic = Critic(CriticConfig(vocab_size=50, embed_dim=8, hidden_dim=6)).eval()
    lengths = torch.tensor([7, 3, 5])
    tokens = torch.randint(1, 50, (3, 7)) * (torch.arange(7)[None] < lengths[:, None])
    packed = torch.nn.utils.rnn.pack_padded_sequence(critic.embed(tokens), lengths,
                                                     batch_first=True, enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(critic.lstm(packed)[0], batch_first=True,
                                                    total_length=7)
    want = critic.head(out).squeeze(-1)
    got = critic(tokens, lengths)
    inside = torch.arange(7)[None] < lengths[:, None]
    assert torch.allclose(got[inside], want[inside], atol=1e-6)
