"""The model file: one ``.safetensors`` file that rebuilds a model with no pickle.

What it holds, written down where it is read:

* tensors: the networks sampling needs (``generator.*``, ``encoder.*``, ``mapping.*``),
  fp32 or fp16; the discriminator and theme critic are training-only and left out.
  Optional ``steering.NAME`` tensors (2, theme_dim): a direction's steps for alpha = -1
  and +1 (``musegan.steer``). Optional ``critic.*`` tensors: the critic
  (``musegan.critic``).
* metadata (strings): ``format`` = "musegan-model", ``version`` (``MODEL_VERSION``),
  ``model`` (``ModelConfig`` as JSON), ``tokenizer`` (``Tokenizer.to_dict()`` as JSON),
  ``card`` (the model card's facts as JSON) and, with steering, ``steering`` (each
  direction's measured facts as JSON); with a critic, ``critic`` (its config,
  calibration and measured AUC as JSON).

A Markdown model card is written beside it (``FILE.md``). Loading reads JSON and raw
tensors only: nothing in the file can run code. ``load_model`` also reads a Lightning
``.ckpt`` (with ``weights_only=True``) and the Markov baseline's files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from musegan.errors import MuseganError, output_exists, writable_folder
from musegan.models import ModelConfig, MuseGAN, build_model
from musegan.regularize import trained_attributes
from musegan.runs import corpus_limits, load_checkpoint
from musegan.tokenizer import Tokenizer

MODEL_FORMAT = "musegan-model"
MODEL_VERSION = "1"  # bump when a file of this version would load wrongly; see CHANGELOG.md
STEERING_PREFIX = "steering."  # tensors of theme directions (musegan.steer)
STEERING_HEADING = "## Steering directions"
CRITIC_PREFIX = "critic."  # tensors of the critic (musegan.critic)
DEFAULT_MODEL = "cre-melody"  # the bundled model `Sampler.from_pretrained()` loads


@dataclass
class LoadedModel:
    """A model file's contents, ready to sample: networks in eval mode, tokenizer, card."""

    net: Any  # a MuseGAN, or a MarkovModel for the baseline's files
    tokenizer: Tokenizer
    card: dict
    steering: dict = field(default_factory=dict)  # name -> {"steps": (2, theme_dim), facts...}
    critic: Any = None  # a musegan.critic.Critic, or None
    critic_facts: dict = field(default_factory=dict)


def bundled_models() -> dict[str, Path]:
    """Bundled model names and their files (musegan.checkpoints, i.e. checkpoints/)."""
    folder = resources.files("musegan.checkpoints")
    return {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir()
            if str(entry).endswith(".safetensors")}


def save_model(net: MuseGAN, tokenizer: Tokenizer, out: str | Path, card: dict | None = None,
               fp16: bool = False) -> Path:
    """Write the sampling networks of ``net`` with their config, tokenizer and card facts
    (and the card as Markdown beside it); returns the path written."""
    tensors = {name: (t.detach().cpu().half() if fp16 and t.is_floating_point() else
                      t.detach().cpu()).contiguous()
               for name, t in net.state_dict().items()
               if name.split(".")[0] in MuseGAN.SAMPLING_PARTS}
    out = Path(out)
    writable_folder(out.parent)  # a clear error, not safetensors' I/O traceback
    save_file(tensors, str(out), metadata={
        "format": MODEL_FORMAT, "version": MODEL_VERSION,
        "model": json.dumps(net.config.to_dict()), "tokenizer": json.dumps(tokenizer.to_dict()),
        "card": json.dumps(card or {}),
    })
    out.with_suffix(".md").write_text(model_card_markdown(card or {}, out.name))
    return out


def model_file(path: str | Path) -> Path:
    """The file a model path names: itself, or for a run folder (as ``musegan export``
    takes) its exported ``model.safetensors``, else its ``checkpoints/last.ckpt``."""
    path = Path(path)
    if path.is_dir():
        exported, last = path / "model.safetensors", path / "checkpoints" / "last.ckpt"
        if not (exported.is_file() or last.is_file()):
            raise MuseganError(f"{path} is a folder with no model.safetensors or "
                               "checkpoints/last.ckpt; give a model file or a run folder")
        return exported if exported.is_file() else last
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model file (no pickle), a Markov baseline's file, or a Lightning checkpoint
    (``.ckpt``, loaded with ``weights_only=True``). Raises MuseganError for anything else."""
    path = model_file(path)
    if not path.is_file():
        raise MuseganError(f"{path}: no such model file")
    if path.suffix == ".ckpt":
        return _load_lightning(path, device)
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise MuseganError(f"{path} is not a musegan model (not safetensors: {err})") from None
    if metadata.get("format") == "musegan-markov":
        from musegan.markov import MarkovModel

        model = MarkovModel.load(path)
        return LoadedModel(model, model.tokenizer, model.card)
    if metadata.get("format") != MODEL_FORMAT:
        raise MuseganError(f"{path} is safetensors but not a musegan model")
    if metadata.get("version") != MODEL_VERSION:
        raise MuseganError(f"{path}: model format version {metadata.get('version')} is not "
                           f"supported by this musegan (it reads {MODEL_VERSION})")
    tokenizer = Tokenizer.from_dict(json.loads(metadata["tokenizer"]))
    config = ModelConfig.from_dict(json.loads(metadata["model"]))
    steering = {name: _direction(facts, tensors.pop(STEERING_PREFIX + name).float().to(device))
                for name, facts in json.loads(metadata.get("steering", "{}")).items()
                if STEERING_PREFIX + name in tensors}
    critic_tensors = {k[len(CRITIC_PREFIX):]: tensors.pop(k) for k in list(tensors)
                      if k.startswith(CRITIC_PREFIX)}
    critic, critic_facts = None, json.loads(metadata.get("critic", "{}"))
    if critic_tensors and critic_facts:
        from musegan.critic import Critic, CriticConfig

        critic = Critic(CriticConfig(**critic_facts["config"]))
        critic.load_state_dict({k: v.float() for k, v in critic_tensors.items()})
        critic.to(device).eval()
    net = MuseGAN(config)
    missing, unexpected = net.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, strict=False)
    missing = [k for k in missing if k.split(".")[0] in MuseGAN.SAMPLING_PARTS]
    if missing or unexpected:
        raise MuseganError(f"{path}: weights do not match the model "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    net.to(device).eval()
    return LoadedModel(net, tokenizer, json.loads(metadata.get("card", "{}")), steering,
                       critic, critic_facts)


def checkpoint_networks(state: dict, path: Path) -> tuple[MuseGAN, Tokenizer, dict]:
    """The networks (all five, weights loaded), tokenizer and hyperparameters of a
    Lightning checkpoint's contents."""
    hparams = state.get("hyper_parameters") or {}
    if not {"model", "tokenizer", "train"} <= set(hparams):
        raise MuseganError(f"{path} is not a musegan training checkpoint")
    tokenizer = Tokenizer.from_dict(hparams["tokenizer"])
    net = build_model(hparams["model"], tokenizer)
    prefix = "net."
    net.load_state_dict({k[len(prefix):]: v for k, v in state["state_dict"].items()
                         if k.startswith(prefix)})
    return net, tokenizer, hparams


def _load_lightning(path: Path, device: str | torch.device) -> LoadedModel:
    state = load_checkpoint(path)
    net, tokenizer, hparams = checkpoint_networks(state, path)
    net.to(device).eval()
    # (RUN/checkpoints/NAME.ckpt) the run's corpus says what the model may write, as the
    # card of a model exported from it does
    limits = corpus_limits(path.parent.parent, tokenizer)
    return LoadedModel(net, tokenizer, {"checkpoint": path.name, "epoch": state.get("epoch"),
                                        "theme_attributes": trained_attributes(hparams["train"]),
                                        **limits})


def _direction(facts: dict, steps: torch.Tensor) -> dict:
    """A stored direction: its facts and its steps (2, theme_dim) for alpha = -1 and +1.
    Files from before per-side calibration hold one vector and one effect, used both ways."""
    if steps.dim() == 1:
        effect = float(facts.get("effect", 1.0))
        return {**facts, "effect": [-effect, effect], "steps": torch.stack([-steps, steps])}
    return {**facts, "steps": steps}


def add_steering(path: str | Path, directions: dict, out: str | Path | None = None,
                 force: bool = False) -> Path:
    """Write a copy of a model file with steering directions in it (tensors
    ``steering.NAME`` and their facts as JSON in the header), replacing any it had.

    ``directions`` maps names to ``musegan.steer.Direction``. Writes ``out`` (default:
    the model itself, which needs ``force``) and its model card with a steering section.
    """
    path, out = Path(path), Path(out) if out is not None else Path(path)
    card = _replace_part(path, out, force, STEERING_PREFIX,
                         {name: d.steps for name, d in directions.items()},
                         "steering", {name: d.info() for name, d in directions.items()})
    card = card.split(STEERING_HEADING)[0].rstrip() + "\n\n" + steering_markdown(directions)
    out.with_suffix(".md").write_text(card.lstrip())
    return out


def _replace_part(path: Path, out: Path, force: bool, prefix: str,
                  tensors: dict[str, torch.Tensor], key: str, facts: dict) -> str:
    """Write ``path`` to ``out`` with its ``prefix`` tensors replaced by ``tensors`` and
    its header's ``key`` by ``facts`` (JSON); returns the model's Markdown card, for the
    caller to rewrite. Refuses to replace ``out`` or its card without ``force``."""
    clashes = [p for p in (out, out.with_suffix(".md")) if p.exists()]
    if clashes and not force:
        raise output_exists(clashes[0])
    with safe_open(str(path), framework="pt") as file:
        metadata = dict(file.metadata() or {})
    if metadata.get("format") != MODEL_FORMAT:
        raise MuseganError(f"{path} is not an exported musegan model (musegan.export_model, or "
                           "musegan export, makes one)",
                           cli=f"{path} is not an exported musegan model "
                               "(musegan export makes one)")
    kept = {k: v for k, v in load_file(str(path)).items() if not k.startswith(prefix)}
    for name, tensor in tensors.items():
        kept[prefix + name] = tensor.detach().float().cpu().contiguous()
    metadata[key] = json.dumps(facts)
    temporary = out.with_name(f".{out.name}.partial")
    save_file(kept, str(temporary), metadata=metadata)
    _put_in_place(temporary, out, path)
    markdown = path.with_suffix(".md")
    return markdown.read_text() if markdown.is_file() else ""


def add_critic(path: str | Path, critic, facts: dict, out: str | Path | None = None,
               force: bool = False) -> Path:
    """Write a copy of a model file with a critic in it (``critic.*`` tensors and its
    facts in the header), replacing any it had; weights, steering and card unchanged but
    for a critic section in the Markdown card. Writes ``out`` (default: the model itself,
    which needs ``force``)."""
    path, out = Path(path), Path(out) if out is not None else Path(path)
    card = _replace_part(path, out, force, CRITIC_PREFIX, critic.state_dict(), "critic", facts)
    before, _, after = card.partition(CRITIC_HEADING)
    rest = after.split("\n## ", 1)[1] if "\n## " in after else ""
    card = before.rstrip() + "\n\n" + critic_markdown(facts) + ("\n## " + rest if rest else "")
    out.with_suffix(".md").write_text(card.lstrip())
    return out


CRITIC_HEADING = "## Critic"


def critic_markdown(facts: dict) -> str:
    """The model card's section on its critic."""
    return (f"{CRITIC_HEADING}\n\nA bidirectional LSTM ({facts['config']['hidden_dim']} units "
            f"each way) fitted on {facts['windows']['real']} real windows of {facts['bars']} bars "
            f"against {facts['windows']['own']} of this model's own pieces, "
            f"{facts['windows'].get('wrong_notes', 0)} real windows with wrong notes and "
            f"{facts['windows'].get('random_notes', 0)} of random notes (`musegan critic "
            f"--fit`). ROC AUC on held-out windows (real validation windows against fresh "
            f"samples): {facts['auc_own_samples']:.3f}. Scores are calibrated (Platt scaling "
            f"on those windows): a piece's score is the probability that it is real.\n")


def update_card(path: str | Path, facts: dict, out: str | Path | None = None,
                force: bool = False) -> Path:
    """Write a copy of a model file whose card holds ``facts`` besides its own (say,
    ``{"form": "AABB", "melody": True}``), weights and steering unchanged; its Markdown
    card's table is written anew, the sections after it kept. Writes ``out`` (default:
    the model itself, which needs ``force``)."""
    path = Path(path)
    out = Path(out) if out is not None else path
    if out.exists() and not force:
        raise output_exists(out)
    with safe_open(str(path), framework="pt") as file:
        metadata = dict(file.metadata() or {})
    if metadata.get("format") != MODEL_FORMAT:
        raise MuseganError(f"{path} is not an exported musegan model")
    card = {**json.loads(metadata.get("card", "{}")), **facts}
    metadata["card"] = json.dumps(card)
    temporary = out.with_name(f".{out.name}.partial")
    save_file(load_file(str(path)), str(temporary), metadata=metadata)
    _put_in_place(temporary, out, path)
    markdown = path.with_suffix(".md")
    rest = markdown.read_text().split("\n## ", 1)[1] if markdown.is_file() else ""
    table = model_card_markdown({**card, "config": ""}, out.name)
    out.with_suffix(".md").write_text(table + ("\n## " + rest if rest else ""))
    return out


def _put_in_place(temporary: Path, out: Path, original: Path) -> None:
    """Rename the finished file over ``out``, with the original file's permissions
    (safetensors writes new files readable by their owner only)."""
    temporary.chmod(original.stat().st_mode & 0o777 | 0o644)
    temporary.replace(out)


# ---------------------------------------------------------------------- model cards

def model_card_markdown(card: dict, file_name: str) -> str:
    """The model card as Markdown."""
    lines = [f"# Model card: {file_name}", ""]
    rows = [
        ("musegan", card.get("musegan_version")),
        ("training data", json.dumps(card.get("data"))),
        ("licence / credit", card.get("credit") or "see the training data's licence"),
        ("adversarial phase", ("yes" if card.get("adversarial_steps") else "planned, not reached")
                               if card.get("adversarial") else "no (MLE only)"),
        ("phase of this checkpoint", card.get("phase")),
        ("epochs completed / optimizer steps",
         f"{card.get('epoch')} / {card.get('optimizer_steps')}"),
        ("adversarial steps", card.get("adversarial_steps")),
        ("wall time", f"{card.get('wall_seconds')} s"),
        ("hardware", card.get("hardware")),
        ("validation", json.dumps(card.get("validation"))),
        ("weights", card.get("weights")),
        ("default form", card.get("form") or "none (16 bars)"),
        ("melody model (one line)", "yes" if card.get("melody") else "no"),
    ]
    holds = card.get("corpus_holds")
    if holds:
        tempo = holds.get("tempo_bpm") or []
        rows.append(("writes only what its corpus holds (`--any-program` for more)",
                     f"voices: {', '.join(holds['voices'])}; meters: "
                     f"{', '.join(holds['meters'])}"
                     + (f"; tempo {tempo[0]:.0f}-{tempo[1]:.0f} bpm" if tempo else "")))
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if card.get("config"):
        lines += ["", "## Training config", "", "```yaml", card["config"].strip(), "```"]
    return "\n".join(lines) + "\n"


def steering_markdown(directions: dict) -> str:
    """The model card's section on steering directions (``musegan.steer.Direction``s)."""
    lines = [STEERING_HEADING, "",
             "`musegan generate --steer NAME=ALPHA`: alpha = +1 moves the attribute by about one "
             "standard deviation of its value over real excerpts of the same length. Measured "
             "when the directions were fitted, on pieces of "
             f"{next(iter(directions.values())).bars if directions else '?'} bars:", "",
             "| attribute | what it measures | moved at alpha = -1, +1 (real stds) | "
             "others moved (mean size, stds) | overlap drop | real mean ± std | method |",
             "|---|---|---:|---:|---:|---:|---|"]
    for name, d in directions.items():
        info = d.info()
        lines.append(f"| {name} | {info['formula']} | {info['effect'][0]:+.2f}, "
                     f"{info['effect'][1]:+.2f} | {info['leakage']:.2f} | "
                     f"{info['overlap_drop']:.0%} | {info['real_mean']:.3g} ± "
                     f"{info['real_std']:.3g} | {info['method']} |")
    return "\n".join(lines) + "\n"
