"""``musegan export``: a training run's model as a shareable model file.

It picks a checkpoint of the run (last, best or one named), keeps the networks sampling
needs, and writes them with the facts of the run (data, epochs, wall time, validation
figures) as a model card. The file format itself is ``musegan.modelfile``'s.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from musegan import __version__
from musegan.config import TrainSettings
from musegan.errors import MuseganError, output_exists
from musegan.form import PART_BARS, check_form
from musegan.modelfile import (  # noqa: F401  (the loader's old home: musegan.export.load_model)
    LoadedModel,
    add_steering,
    checkpoint_networks,
    load_model,
    save_model,
)
from musegan.regularize import trained_attributes
from musegan.runs import CHECKPOINTS, CONFIG_FILE, LAST, RUN_INFO, corpus_limits, load_checkpoint

PHASE_NAMES = {"mle": "maximum likelihood", "d_pretrain": "discriminator pre-training",
               "adversarial": "adversarial"}


def export_model(run: str | Path, out: str | Path | None = None, fp16: bool = False,
                 checkpoint: str = "last", force: bool = False, credit: str = "",
                 form: str = "", melody: bool = False) -> Path:
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
        form: the model's default form (``Sampler.default_form``), e.g. "AABB".
        melody: a melody model, which writes one line (``Sampler.melody``).
    """
    run = Path(run)
    path = pick_checkpoint(run, checkpoint)
    state = load_checkpoint(path)
    net, tokenizer, hparams = checkpoint_networks(state, path)
    run_dir = run if run.is_dir() else path.parent.parent
    card = _card_facts(run_dir, path, state, hparams, fp16)
    card["credit"] = credit
    if form:
        check_form(form, PART_BARS)
        card["form"] = form
    if melody:
        card["melody"] = True
    card.update(corpus_limits(run_dir, tokenizer))  # what the sampler keeps to
    out = Path(out) if out else run_dir / "model.safetensors"
    clashes = [p for p in (out, out.with_suffix(".md")) if p.exists()]  # the model, its card
    if clashes and not force:
        raise output_exists(clashes[0])
    return save_model(net, tokenizer, out, card, fp16=fp16)


def pick_checkpoint(run: Path, which: str) -> Path:
    """The checkpoint file of a run: "last", "best" (as the run's monitoring callback
    recorded it) or a path; a checkpoint file given as ``run`` is itself."""
    if run.is_file():
        return run
    if not run.is_dir():
        raise MuseganError(f"{run}: no such run folder or checkpoint")
    folder = run / CHECKPOINTS
    if which == "last":
        path = folder / LAST
    elif which == "best":  # as recorded by the monitoring callback in the last checkpoint
        state = load_checkpoint(folder / LAST) if (folder / LAST).is_file() else {}
        best = [c["best_model_path"] for c in (state.get("callbacks") or {}).values()
                if isinstance(c, dict) and c.get("monitor") and c.get("best_model_path")]
        if not best:
            raise MuseganError(f"{folder} holds no best checkpoint yet")
        path = folder / Path(best[0]).name
    else:
        path = Path(which)
    if not path.is_file():
        raise MuseganError(f"{path}: no checkpoint there; has {run} been trained "
                           f"(musegan train DATA --out {shlex.quote(str(run))})?")
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
        sources = [Path(source).name for source in sources]  # no machine paths in a card
        shown = sources[:3] + ([f"... {len(sources) - 3} more"] if len(sources) > 3 else [])
        data_report = {"sources": shown, "pieces": report.get("pieces"),
                       "notes": report.get("notes"), "hours": report.get("hours")}
    config_text = (run_dir / CONFIG_FILE).read_text() if (run_dir / CONFIG_FILE).is_file() else ""
    epoch = state.get("epoch") or 0  # Lightning stores the finished epoch's index
    settings = TrainSettings.from_dict(hparams["train"])
    phase = PHASE_NAMES[settings.phase(epoch)]
    if phase == PHASE_NAMES["mle"]:
        phase += f" (epoch {epoch + 1} of {settings.mle_epochs})"
    return {
        "musegan_version": __version__,
        "checkpoint": checkpoint.name,
        "epoch": epoch + 1,
        "optimizer_steps": state.get("global_step"),
        "adversarial_steps": (state.get("musegan") or {}).get("adv_steps_done"),
        "adversarial": settings.adversarial,
        "phase": phase,
        "data": data_report or {"path": Path(data).name if data else None},
        "wall_seconds": info.get("wall_seconds"),
        "hardware": info.get("hardware"),
        "validation": {k: v for k, v in (info.get("metrics") or {}).items()
                       if k.startswith("val/")},
        "weights": "fp16" if fp16 else "fp32",
        "theme_attributes": trained_attributes(hparams["train"]),
        "config": config_text,
    }
