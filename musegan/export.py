"""The sharing format: ``musegan export`` and loading a model with no pickle.

An exported model is one ``.safetensors`` file:

* tensors: the networks sampling needs (``generator.*``, ``encoder.*``, ``mapping.*``),
  fp32 or fp16. The discriminator and theme critic are training-only and left out.
* metadata (strings): ``format`` = "musegan-model", ``version``, ``model`` (ModelConfig
  as JSON), ``tokenizer`` (Tokenizer.to_dict() as JSON) and ``card`` (the model card
  facts as JSON).

A Markdown model card is written beside it (``FILE.md``). Loading reads JSON and raw
tensors only: nothing in the file can run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from musegan import __version__
from musegan.errors import MuseganError
from musegan.models import ModelConfig, MuseGAN
from musegan.regularize import trained_attributes
from musegan.tokenizer import Tokenizer
from musegan.runs import CHECKPOINTS, CONFIG_FILE, LAST, RUN_INFO, load_checkpoint

MODEL_FORMAT = "musegan-model"
STEERING_PREFIX = "steering."  # tensors of theme directions (musegan.steer)
STEERING_HEADING = "## Steering directions"
MODEL_VERSION = "1"


@dataclass
class LoadedModel:
    """An exported model, ready to sample: networks in eval mode, tokenizer and card."""

    net: MuseGAN
    tokenizer: Tokenizer
    card: dict
    steering: dict = field(default_factory=dict)  # name -> {"vector": (theme_dim,), facts...}


def export_model(run: str | Path, out: str | Path | None = None, fp16: bool = False,
                 checkpoint: str = "last", force: bool = False, credit: str = "") -> Path:
    """Write a run's model in the sharing format; returns the .safetensors path.

    Args:
        run: a run folder from ``musegan train`` (or a checkpoint file).
        out: the file to write (default ``RUN/model.safetensors``).
        fp16: store weights in half precision (half the size; sampling is unchanged to
            the ear).
        checkpoint: "last", "best" (by the run's monitor, val/nll unless set), or a
            checkpoint path.
        force: replace an existing file.
        credit: the training data's licence credit, for the model card.
    """
    run = Path(run)
    path = _pick_checkpoint(run, checkpoint)
    state = load_checkpoint(path)
    hparams = state.get("hyper_parameters") or {}
    if not {"model", "tokenizer", "train"} <= set(hparams):
        raise MuseganError(f"{path} is not a musegan training checkpoint")
    tokenizer = Tokenizer.from_dict(hparams["tokenizer"])
    config = ModelConfig.from_dict({**hparams["model"], "vocab_size": len(tokenizer),
                                    "pad_id": tokenizer.PAD})
    prefix = "net."
    tensors = {}
    for name, tensor in state["state_dict"].items():
        if name.startswith(prefix) and name[len(prefix):].split(".")[0] in MuseGAN.SAMPLING_PARTS:
            tensor = tensor.detach().to("cpu").contiguous()
            tensors[name[len(prefix):]] = tensor.half() if fp16 and tensor.is_floating_point() else tensor
    run_dir = run if run.is_dir() else path.parent.parent
    card = _card_facts(run_dir, path, state, hparams, fp16)
    card["credit"] = credit
    out = Path(out) if out else run_dir / "model.safetensors"
    if out.exists() and not force:
        raise MuseganError(f"{out} exists; pass --force to replace it or choose another --out")
    return _write(tensors, config, tokenizer, card, out)


def save_model(net: MuseGAN, tokenizer: Tokenizer, out: str | Path, card: dict | None = None,
               fp16: bool = False) -> Path:
    """Write networks built in code (not from a run) in the sharing format."""
    tensors = {name: (t.detach().cpu().half() if fp16 and t.is_floating_point() else
                      t.detach().cpu()).contiguous()
               for name, t in net.state_dict().items()
               if name.split(".")[0] in MuseGAN.SAMPLING_PARTS}
    return _write(tensors, net.config, tokenizer, card or {}, Path(out))


def _write(tensors: dict, config: ModelConfig, tokenizer: Tokenizer, card: dict,
           out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={
        "format": MODEL_FORMAT, "version": MODEL_VERSION,
        "model": json.dumps(config.to_dict()), "tokenizer": json.dumps(tokenizer.to_dict()),
        "card": json.dumps(card),
    })
    out.with_suffix(".md").write_text(model_card_markdown(card, out.name))
    return out


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load an exported model (no pickle), or a Lightning checkpoint (``.ckpt``, loaded
    with ``weights_only=True``). Raises MuseganError for anything else."""
    path = Path(path)
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
    net = MuseGAN(config)
    missing, unexpected = net.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, strict=False)
    missing = [k for k in missing if k.split(".")[0] in MuseGAN.SAMPLING_PARTS]
    if missing or unexpected:
        raise MuseganError(f"{path}: weights do not match the model "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    net.to(device).eval()
    return LoadedModel(net, tokenizer, json.loads(metadata.get("card", "{}")), steering)


def _direction(facts: dict, steps: torch.Tensor) -> dict:
    """A stored direction: its facts and its steps (2, theme_dim) for alpha = -1 and +1.
    Files from before per-side calibration hold one vector and one effect, used both ways."""
    if steps.dim() == 1:
        effect = float(facts.get("effect", 1.0))
        return {**facts, "effect": [-effect, effect], "steps": torch.stack([-steps, steps])}
    return {**facts, "steps": steps}


def add_steering(path: str | Path, directions: dict, out: str | Path | None = None,
                 force: bool = False) -> Path:
    """Write a copy of an exported model with steering directions in it (tensors
    ``steering.NAME`` and their facts as JSON in the header), replacing any it had.

    ``directions`` maps names to ``musegan.steer.Direction``. Writes ``out`` (default:
    the model itself, which needs ``force``) and its model card with a steering section.
    """
    path = Path(path)
    out = Path(out) if out is not None else path
    clashes = [p for p in (out, out.with_suffix(".md")) if p.exists()]
    if clashes and not force:
        raise MuseganError(f"{clashes[0]} exists; pass --force to replace it, or --out NEW_FILE")
    with safe_open(str(path), framework="pt") as file:
        metadata = dict(file.metadata() or {})
    if metadata.get("format") != MODEL_FORMAT:
        raise MuseganError(f"{path} is not an exported musegan model (musegan export makes one)")
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith(STEERING_PREFIX)}
    for name, direction in directions.items():
        tensors[STEERING_PREFIX + name] = direction.steps.detach().float().cpu().contiguous()
    metadata["steering"] = json.dumps({name: d.info() for name, d in directions.items()})
    temporary = out.with_name(f".{out.name}.partial")
    save_file(tensors, str(temporary), metadata=metadata)
    temporary.replace(out)
    card = path.with_suffix(".md").read_text() if path.with_suffix(".md").is_file() else ""
    card = card.split(STEERING_HEADING)[0].rstrip() + "\n\n" + steering_markdown(directions)
    out.with_suffix(".md").write_text(card.lstrip())
    return out


def steering_markdown(directions: dict) -> str:
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


def _load_lightning(path: Path, device) -> LoadedModel:
    state = load_checkpoint(path)
    hparams = state.get("hyper_parameters") or {}
    if not {"model", "tokenizer"} <= set(hparams):
        raise MuseganError(f"{path} is not a musegan training checkpoint")
    tokenizer = Tokenizer.from_dict(hparams["tokenizer"])
    net = MuseGAN(ModelConfig.from_dict({**hparams["model"], "vocab_size": len(tokenizer),
                                         "pad_id": tokenizer.PAD}))
    net.load_state_dict({k[4:]: v for k, v in state["state_dict"].items() if k.startswith("net.")})
    net.to(device).eval()
    return LoadedModel(net, tokenizer, {"checkpoint": path.name, "epoch": state.get("epoch"),
                                        "theme_attributes": trained_attributes(hparams.get("train") or {})})



def _pick_checkpoint(run: Path, which: str) -> Path:
    if run.is_file():
        return run
    if not run.is_dir():
        raise MuseganError(f"{run}: no such run folder or checkpoint")
    folder = run / CHECKPOINTS
    if which == "last":
        path = folder / LAST
    elif which == "best":  # as recorded by the monitoring callback in the last checkpoint
        state = load_checkpoint(folder / LAST) if (folder / LAST).is_file() else {}
        best = [c.get("best_model_path") for c in (state.get("callbacks") or {}).values()
                if isinstance(c, dict) and c.get("monitor") and c.get("best_model_path")]
        if not best:
            raise MuseganError(f"{folder} holds no best checkpoint yet")
        path = folder / Path(best[0]).name
    else:
        path = Path(which)
    if not path.is_file():
        raise MuseganError(f"{path}: no checkpoint there; has {run} been trained "
                           f"(musegan train DATA --out {run})?")
    return path


def _card_facts(run_dir: Path, checkpoint: Path, state: dict, hparams: dict, fp16: bool) -> dict:
    info = {}
    if (run_dir / RUN_INFO).is_file():
        info = json.loads((run_dir / RUN_INFO).read_text())
    data_report = {}
    data = info.get("data")
    if data and (Path(data) / "report.json").is_file():
        report = json.loads((Path(data) / "report.json").read_text())
        sources = report.get("sources") or []
        shown = sources[:3] + ([f"... {len(sources) - 3} more"] if len(sources) > 3 else [])
        data_report = {"sources": shown, "pieces": report.get("pieces"),
                       "notes": report.get("notes"), "hours": report.get("hours")}
    config_text = (run_dir / CONFIG_FILE).read_text() if (run_dir / CONFIG_FILE).is_file() else ""
    return {
        "musegan_version": __version__,
        "checkpoint": checkpoint.name,
        "epoch": (state.get("epoch") or 0) + 1,  # Lightning stores the finished epoch's index
        "optimizer_steps": state.get("global_step"),
        "adversarial_steps": (state.get("musegan") or {}).get("adv_steps_done"),
        "adversarial": hparams["train"].get("adversarial", True),
        "phase": _phase(state.get("epoch") or 0, hparams["train"]),
        "data": data_report or {"path": data},
        "wall_seconds": info.get("wall_seconds"),
        "hardware": info.get("hardware"),
        "validation": {k: v for k, v in (info.get("metrics") or {}).items() if k.startswith("val/")},
        "weights": "fp16" if fp16 else "fp32",
        "theme_attributes": trained_attributes(hparams["train"]),
        "config": config_text,
    }


def _phase(epoch: int, train: dict) -> str:
    mle = train.get("mle_epochs", 0)
    if epoch < mle or not train.get("adversarial", True):
        return f"maximum likelihood (epoch {epoch + 1} of {mle})"
    if epoch < mle + train.get("d_pretrain_epochs", 0):
        return "discriminator pre-training"
    return "adversarial"


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
    ]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if card.get("config"):
        lines += ["", "## Training config", "", "```yaml", card["config"].strip(), "```"]
    return "\n".join(lines) + "\n"
