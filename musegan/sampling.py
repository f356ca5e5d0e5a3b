"""Writing music with a trained model: ``from musegan import Sampler``.

    sampler = Sampler.from_pretrained("model.safetensors")
    midis = sampler.generate(n=4, bars=16, temperature=0.9, seed=7)
    midis[0].write("tune.mid")

``Sampler`` chooses themes (sampled, encoded from a piece, loaded, steered or
interpolated) and hands them to the decoder (``musegan.decoding``), which is batched,
carries the LSTM state from step to step, and is grammar-constrained
(``musegan.grammar``), so each piece is well formed:

- bars come in order, exactly ``bars`` of them;
- positions rise within a bar and stay inside its meter;
- every note is complete: Pitch, then Velocity, then Duration;
- the piece ends only between notes.

``generate_files`` writes the pieces to a folder, each with a JSON sidecar that
regenerates it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import torch

from musegan.critic import Judgement, canonical, judge
from musegan.decoding import PieceSeeds, decode, one_line, rest_bars_at_end, stream_seeds
from musegan.edit import CANDIDATES, Change, Edit, infill, polish, restyle
from musegan.errors import MuseganError, output_exists, writable_folder
from musegan.files import write_bytes, write_midi, write_text
from musegan.form import PART_BARS, check_form, decode_form
from musegan.grammar import MAX_TOKENS_PER_BAR  # noqa: F401  (re-exported for callers)
from musegan.midi import MidiSource
from musegan.modelfile import DEFAULT_MODEL, LoadedModel, bundled_models, load_model, model_file
from musegan.threads import note_default, sampling
from musegan.tokenizer import KINDS

DEFAULT_BARS = 16  # bars of a piece with no form, unless asked for
# Rows `generate_files` writes at once (pieces times best-of candidates): on 2 CPU cores
# 32 pieces of 16 bars took 3.9-4.1 s in one batch against 6.5-7.4 s in batches of 8.
WRITE_AT_ONCE = 64
# Steering directions are measured at alpha = -1 and +1 (in real excerpts' standard
# deviations); past this many the theme is far from any the model has written from.
STEER_LIMIT = 5.0
note_default()


class Sampler:
    """Generates MIDI from a trained model.

    Example::

        sampler = Sampler.from_pretrained("model.safetensors")
        theme = sampler.sample_theme(1, seed=3)
        variations = sampler.generate(n=4, bars=8, theme=theme, seed=1)
    """

    def __init__(self, model: LoadedModel, device: str | torch.device = "cpu",
                 cuda_graphs: bool = False):
        self.device = check_device(device)
        if cuda_graphs and self.device.type != "cuda":
            raise MuseganError("CUDA graphs need a CUDA device; use device='cuda' or "
                               "leave cuda_graphs off",
                               cli="--cuda-graphs needs --device cuda")
        self.model = model
        self.net = model.net.to(self.device).eval()
        if cuda_graphs and not hasattr(self.net, "generator"):
            raise MuseganError("CUDA graphs are for the LSTM models; this is a Markov model",
                               cli="--cuda-graphs is for the LSTM models; this is a Markov "
                                   "model")
        if hasattr(self.net, "generator"):  # this sampler's choice, whatever an earlier one's
            self.net.generator.cuda_graphs = cuda_graphs
        self.tokenizer = model.tokenizer
        self.name: str | None = None  # set by from_pretrained
        self.path: Path | None = None  # set by from_pretrained
        self.steering = {name: {**facts, "steps": facts["steps"].to(self.device)}
                         for name, facts in model.steering.items()}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None,
                        device: str = "cpu", cuda_graphs: bool = False) -> Sampler:
        """A bundled model by name (default: the bundled default), an exported
        ``.safetensors`` file (loaded with no pickle), or a Lightning ``.ckpt``
        (loaded with ``weights_only=True``). ``device``: "cpu", "cuda" or "cuda:N";
        ``cuda_graphs``: replay decoding steps from CUDA graphs (``musegan.graphs``)."""
        check_device(device)
        bundled = bundled_models()
        name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
        if name in bundled:
            path = bundled[name]
        elif Path(name).suffix in (".safetensors", ".ckpt") or Path(name).exists():
            path = model_file(name)  # a run folder: its model
        else:
            known = ", ".join(sorted(bundled)) or "none yet"
            raise MuseganError(f"unknown model '{name}': give a .safetensors or .ckpt file, or "
                               f"a bundled model ({known})")
        sampler = cls(load_model(path, device), device, cuda_graphs)
        sampler.name = name if name in bundled else str(path)
        sampler.path = path
        return sampler

    @staticmethod
    def available() -> list[str]:
        """Names of the bundled models."""
        return sorted(bundled_models())

    # ------------------------------------------------------------------ themes

    @property
    def theme_dim(self) -> int:
        """Numbers in a theme; 0 for a model without themes (the Markov baseline)."""
        return self.net.theme_dim

    @torch.no_grad()
    def sample_theme(self, n: int = 1, seed: int | None = None) -> torch.Tensor:
        """n themes (n, theme_dim) drawn by the theme GAN."""
        if not self.theme_dim:
            return torch.zeros(n, 0, device=self.device)
        generator = _generator(seed, self.device)
        return self.net.mapping.sample(n, generator=generator, device=self.device)

    @torch.no_grad()
    @sampling
    def encode_theme(self, midi: MidiSource) -> torch.Tensor:
        """The theme (1, theme_dim) of an existing piece, for variations on it."""
        ids = torch.tensor([self.tokenizer.encode(midi)], device=self.device)
        if not self.theme_dim:
            return torch.zeros(1, 0, device=self.device)
        return self.net.encoder(ids)

    def steer(self, theme: torch.Tensor, **alphas: float) -> torch.Tensor:
        """Move themes along the model's learned directions, e.g.
        ``sampler.steer(theme, density=1.5, register=-1)``: alpha = +1 moves an attribute
        by about one standard deviation of its value over real excerpts as long as the
        pieces the directions were calibrated on (``sampler.steering`` lists them with
        their measured effect at alpha = -1 and +1)."""
        from musegan.steer import steer_theme

        for name, alpha in alphas.items():
            if name not in self.steering:
                known = ", ".join(sorted(self.steering))
                raise MuseganError(
                    f"this model cannot steer '{name}'; it knows: {known or 'none'}"
                    + ("; add directions with musegan.steer.fit_model(MODEL, DATA_DIR)"
                       if not known else ""),
                    cli=f"this model cannot steer '{name}'; it knows: "
                        + (known
                           or "none; add them with: musegan steer --fit MODEL --data DATA_DIR"))
            if not (isinstance(alpha, (int, float)) and abs(alpha) <= STEER_LIMIT):
                raise MuseganError(
                    f"steering {name} takes an alpha from -{STEER_LIMIT:g} to "
                    f"+{STEER_LIMIT:g} (standard deviations of real music), got {alpha}",
                    cli=f"--steer {name}=ALPHA takes an ALPHA from -{STEER_LIMIT:g} to "
                        f"+{STEER_LIMIT:g} (standard deviations of real music), got {alpha}")
            theme = steer_theme(theme, self.steering[name]["steps"], alpha)
        return self.on_theme_space(theme) if alphas else theme

    def on_theme_space(self, theme: torch.Tensor) -> torch.Tensor:
        """Bring a moved theme back where the model's themes live (its themes are
        layer-normalised: a step along a direction is followed by the same normalisation)."""
        if self.theme_dim and self.net.config.theme_norm == "layernorm":
            return self.net.mapping.bound(theme)
        return theme  # tanh themes (older models) are steered as they are

    @staticmethod
    def interpolate(theme_a: torch.Tensor, theme_b: torch.Tensor, steps: int,
                    method: str = "slerp") -> torch.Tensor:
        """``steps`` themes (steps, theme_dim) from a to b, ends included.

        ``slerp`` follows the great circle between them (keeps their norm, the usual choice
        for GAN latents); ``lerp`` a straight line.
        """
        a, b = theme_a.reshape(-1), theme_b.reshape(-1)
        if steps < 2:
            raise MuseganError("interpolation needs at least 2 steps")
        t = torch.linspace(0, 1, steps, device=a.device)[:, None]
        if method == "lerp":
            return (1 - t) * a + t * b
        if method != "slerp":
            raise MuseganError(f"unknown interpolation '{method}' (use slerp or lerp)")
        cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-8)
        omega = torch.arccos(cos.clamp(-1, 1))
        if omega.abs() < 1e-4:  # (nearly) the same direction: slerp is lerp
            return (1 - t) * a + t * b
        return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)

    @staticmethod
    def save_theme(theme: torch.Tensor, path: str | Path, force: bool = False) -> Path:
        """Write themes as .npy or .json (a list of lists), by the file's suffix; an
        existing file only with ``force``. Returns the path."""
        path = Path(path)
        if path.suffix.lower() not in (".npy", ".json"):
            raise MuseganError(f"{path}: a theme file is .npy or .json")
        if path.exists() and not force:
            raise output_exists(path)
        array = theme.detach().cpu().reshape(-1, theme.shape[-1]).numpy()
        if path.suffix.lower() == ".json":
            return write_text(path, json.dumps(array.tolist()) + "\n")
        buffer = io.BytesIO()
        np.save(buffer, array)
        return write_bytes(path, buffer.getvalue())

    def load_theme(self, path: str | Path) -> torch.Tensor:
        """Read themes written by ``save_theme`` (.npy or .json); checks their size."""
        path = Path(path)
        if not path.is_file():
            raise MuseganError(f"{path}: " + ("is a folder, not a theme file" if path.is_dir()
                                              else "no such theme file; check the path"))
        if path.suffix.lower() not in (".npy", ".json"):
            raise MuseganError(f"{path}: not a theme file; give a .npy or .json theme file "
                               "or a sidecar musegan wrote (for a piece's theme, "
                               "theme_from / --theme-from)",
                               cli=f"{path}: not a theme file; give a .npy or .json theme "
                                   "file, or use --theme-from for a MIDI file's theme")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(path.read_text())
                if isinstance(data, dict):  # a sidecar of generate or an edit: its theme
                    if "theme" not in data:
                        raise MuseganError(f"{path}: a JSON object with no \"theme\"; give a "
                                           "theme file or a sidecar musegan wrote")
                    data = data["theme"]
                array = np.array(data, dtype=np.float32)
            else:
                array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, TypeError) as err:
            raise MuseganError(f"{path}: cannot read a theme ({str(err)[:160]}); give a .npy "
                               "or .json theme file, or a sidecar musegan wrote") from None
        array = np.atleast_2d(array).astype(np.float32)
        if array.shape[-1] != self.theme_dim:
            raise MuseganError(f"{path}: themes have {array.shape[-1]} numbers, this model's "
                               f"have {self.theme_dim}")
        return torch.from_numpy(array).to(self.device)

    def as_themes(self, theme) -> torch.Tensor:
        """Themes as a (k, theme_dim) tensor on the model's device, from a tensor of one
        theme or several, a numpy array, or a list of numbers (a sidecar's ``theme``)."""
        try:
            theme = torch.as_tensor(theme, dtype=torch.float32, device=self.device)
        except (TypeError, ValueError, RuntimeError):
            raise MuseganError("a theme is a tensor or a list of numbers (a sidecar's "
                               "'theme', or Sampler.load_theme(FILE))") from None
        if not self.theme_dim:
            return theme.new_zeros(theme.size(0) if theme.dim() > 1 else 1, 0)
        if theme.numel() == 0 or theme.numel() % self.theme_dim:
            raise MuseganError(f"a theme of this model has {self.theme_dim} numbers; got "
                               f"{theme.numel()}")
        return theme.reshape(-1, self.theme_dim)

    @torch.no_grad()
    def themes(self, n: int, theme: torch.Tensor | None = None,
               primer: MidiSource | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The (n, theme_dim) themes n pieces are written from: ``theme`` (one for all, or
        one each), else the primer's own theme, else n drawn by the theme GAN."""
        if not self.theme_dim:  # a model without themes (the Markov baseline)
            return torch.zeros(n, 0, device=self.device)
        if theme is None:
            theme = (self.encode_theme(primer) if primer is not None
                     else self.net.mapping.sample(n, generator=generator, device=self.device))
        theme = self.as_themes(theme)
        if theme.size(0) == 1 and n > 1:
            theme = theme.expand(n, -1)
        if theme.size(0) != n:
            raise MuseganError(f"got {theme.size(0)} themes for {n} pieces")
        return theme

    # ------------------------------------------------------------------ generation

    @property
    def corpus_tokens(self) -> torch.Tensor | None:
        """(V,) true for the tokens the model's training corpus holds (the card's
        ``unseen_tokens`` are the others); None when the card does not say."""
        unseen = self.model.card.get("unseen_tokens")
        if not unseen:
            return None
        allowed = torch.ones(len(self.tokenizer), dtype=torch.bool, device=self.device)
        allowed[torch.as_tensor(unseen, device=self.device)] = False
        return allowed

    @property
    def meters(self) -> list[str]:
        """The meters the model writes ("4/4", "6/8", ...): those its training corpus holds,
        or every one of the vocabulary when the card does not say."""
        tok, allowed = self.tokenizer, self.corpus_tokens
        ids = tok.token_range("time_signature")
        return [f"{n}/{d}" for (n, d), i in zip(tok.time_signatures, ids, strict=True)
                if allowed is None or bool(allowed[i])]

    def meter_id(self, meter: str, any_token: bool = False) -> int:
        """The TimeSig token of ``meter`` ("4/4"), which must be one of ``meters`` unless
        ``any_token``."""
        meters = self.meters
        try:
            token = self.tokenizer.token_id(f"TimeSig_{meter}")
        except KeyError:
            token = None
        if token is None or (not any_token and meter not in meters):
            shown = ", ".join(meters[:12]) + (", ..." if len(meters) > 12 else "")
            raise MuseganError(f"meter {meter} is not one this model's corpus has; choose one "
                               f"of {shown}")
        return token

    def tempo_id(self, tempo: float) -> int:
        """The Tempo token of ``tempo`` bpm, which must lie in the tokenizer's range."""
        low, high = self.tokenizer.config.tempo_range
        if not (math.isfinite(tempo) and low <= tempo <= high):
            raise MuseganError(f"tempo must be from {low:g} to {high:g} bpm (the tokenizer's "
                               f"range), got {tempo}",
                               cli=f"--tempo must be from {low:g} to {high:g} bpm (the "
                                   f"tokenizer's range), got {tempo}")
        return self.tokenizer.tempo_id(tempo)

    @property
    def melody(self) -> bool:
        """Whether the model writes one melody line (the model card's ``melody``): at each
        onset only the top note, each note ending where the next begins."""
        return bool(self.model.card.get("melody"))

    @property
    def default_form(self) -> str:
        """The form a plain ``generate()`` writes (the model card's ``form``; "" for none)."""
        return str(self.model.card.get("form") or "")

    def plan(self, bars: int | None = None, form: str | None = None,
             part_bars: int = PART_BARS) -> tuple[str, int]:
        """The (form, bars) a call writes. With neither bars nor form, the model's default
        form (or 16 bars when it has none); a form makes ``len(form) * part_bars`` bars,
        and bars given with it must agree; ``form=""`` writes no form."""
        if form is None:
            form = self.default_form if bars is None else ""
        if form:
            return form, check_form(form, part_bars, bars)
        bars = DEFAULT_BARS if bars is None else bars
        if bars < 1:
            raise MuseganError(f"bars must be at least 1, got {bars}",
                               cli=f"--bars must be at least 1, got {bars}")
        return "", bars

    @torch.no_grad()
    def generate_ids(self, n: int = 1, bars: int | None = None, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None,
                     seed: int | None = None, theme: torch.Tensor | None = None,
                     primer: MidiSource | None = None, tempo: float | None = None,
                     form: str | None = None, part_bars: int = PART_BARS,
                     open_end: bool = False, melody: bool | None = None,
                     any_token: bool = False, *, tempo_changes: bool = False,
                     meter: str | None = None, best_of: int = 1,
                     first: int = 0) -> list[list[int]]:
        """Token ids of n pieces (see ``generate``)."""
        return [choice.ids for choice in self.generate_choices(
            n, bars, temperature, top_k, top_p, seed, theme, primer, tempo, form, part_bars,
            open_end, melody, any_token, tempo_changes=tempo_changes, meter=meter,
            best_of=best_of, first=first)]

    @torch.no_grad()
    @sampling
    def generate_choices(self, n: int = 1, bars: int | None = None, temperature: float = 1.0,
                         top_k: int | None = None, top_p: float | None = None,
                         seed: int | None = None, theme: torch.Tensor | None = None,
                         primer: MidiSource | None = None, tempo: float | None = None,
                         form: str | None = None, part_bars: int = PART_BARS,
                         open_end: bool = False, melody: bool | None = None,
                         any_token: bool = False, *, tempo_changes: bool = False,
                         meter: str | None = None, best_of: int = 1,
                         first: int = 0) -> list[Choice]:
        """n pieces, each the best of ``best_of`` candidates by the critic (see
        ``generate``), with which candidate won and the scores."""
        check_sampling(n, temperature, top_k, top_p, best_of)
        if first < 0:
            raise MuseganError(f"first must be at least 0, got {first}")
        if best_of > 1:
            self.require_critic("best-of-K")
        form, bars = self.plan(bars, form, part_bars)
        melody = self.melody if melody is None else melody
        tok, net = self.tokenizer, self.net
        # Piece i of a seed is the same whatever n is: its theme is the seed's i-th draw
        # and its random streams come from the seed's i-th piece seed (``PieceSeeds``),
        # drawn from two generators of the seed, so themes drawn before (as
        # ``generate_files`` draws them) give the same pieces; ``first`` starts at the
        # seed's piece ``first``.
        if theme is None and primer is None:
            theme = self.themes(first + n, None, None, _generator(seed, self.device))[first:]
        else:
            theme = self.themes(n, theme, primer)
        seeds = PieceSeeds(stream_seeds((first + n) * best_of,
                                        _generator(seed, self.device))[first * best_of:])
        if best_of > 1:  # K candidates per piece, from its theme, in one batch
            theme = theme.repeat_interleave(best_of, dim=0)
        tempo_id = None if tempo is None else self.tempo_id(tempo)
        prefix = tok.encode(primer)[:-1] if primer is not None else [tok.BOS]  # no EOS
        allowed = None if any_token else self.corpus_tokens
        meter_id = self.meter_id(meter, any_token) if meter else None
        if meter_id is not None and primer is not None:
            raise MuseganError("a continuation keeps its primer's meter; leave meter out",
                               cli="a continuation keeps its primer's meter; drop --meter")
        tempos = set(tok.token_range("tempo"))
        tempo_changes = tempo_changes or sum(t in tempos for t in prefix) > 1
        options: dict[str, Any] = {"allowed": allowed, "tempo_changes": tempo_changes,
                                   "time_signature_id": meter_id}
        if not form and open_end:
            rows = decode(net, tok, theme, bars, prefix, temperature, top_k, top_p, None,
                          tempo_id, continuation=primer is not None, seeds=seeds, **options)
        else:  # a piece without a form is one part of all its bars (and ends on the tonic)
            rows = decode_form(net, tok, theme, form or "A", part_bars if form else bars,
                               prefix, continuation=primer is not None, tempo_id=tempo_id,
                               ending=not open_end, temperature=temperature, top_k=top_k,
                               top_p=top_p, seeds=seeds, **options)
        rows = [one_line(row, tok) for row in rows] if melody else rows
        if best_of == 1:
            return [Choice(row, 0, None, []) for row in rows]
        scores = [j.score for j in self.judge(rows)]
        choices = []
        for piece in range(n):
            group = scores[piece * best_of:(piece + 1) * best_of]
            index = int(np.argmax(group))
            choices.append(Choice(rows[piece * best_of + index], index, group[index], group))
        return choices

    # ------------------------------------------------------------------ the critic

    @property
    def has_critic(self) -> bool:
        return self.model.critic is not None

    def require_critic(self, what: str = "critique") -> None:
        """A clear error when the model has no critic."""
        if self.model.critic is None:
            name = self.path or self.name
            raise MuseganError(f"{name} has no critic, which {what} needs; fit one with "
                               f"musegan critic --fit {shlex.quote(str(name))} --data DATA_DIR")

    @sampling
    def judge(self, rows: list[list[int]], as_written: bool = False) -> list[Judgement]:
        """The critic's scores of token sequences. They are first put in the form it was
        fitted on (as the tokenizer writes a file), unless ``as_written`` says they are."""
        self.require_critic()
        tok = self.tokenizer
        if not as_written:
            rows = [canonical(row, tok) for row in rows]
        return judge(self.model.critic, tuple(self.model.critic_facts["calibration"]), rows,
                     tok.BAR)

    def critique(self, midi: MidiSource) -> dict:
        """How real the critic finds a piece: ``{"score": 0-1, "bars": [one per bar]}``,
        the bars counted as the tokenizer bars the file."""
        return self.judge([self.tokenizer.encode(midi)], as_written=True)[0].to_dict()

    # ------------------------------------------------------------------ editing

    @sampling
    def infill_edits(self, midi: MidiSource, bars: tuple[int, int], n: int = 1,
                     seed: int | None = None, theme: torch.Tensor | None = None,
                     temperature: float = 1.0, candidates: int = CANDIDATES,
                     method: str = "rescore") -> list[Edit]:
        """``infill``'s pieces as token ids, with which candidate each came from."""
        return infill(self, self.tokenizer.encode(midi), bars, n, theme, seed, temperature,
                      candidates, method, piece=_piece_name(midi))

    def infill(self, midi: MidiSource, bars: tuple[int, int], n: int = 1,
               seed: int | None = None, theme: torch.Tensor | None = None,
               temperature: float = 1.0, candidates: int = CANDIDATES,
               method: str = "rescore") -> list[pretty_midi.PrettyMIDI]:
        """Write bars ``first..last`` (counted from 1, both included) of a piece again, n
        ways, so that they lead into what follows; every other bar stays as the tokenizer
        keeps it. ``candidates`` gap candidates per piece are weighed by how likely they
        make the bars after the gap (``method="continue"``: none, the plain continuation).
        The theme defaults to the whole piece's own (``musegan.edit.infill``)."""
        edits = self.infill_edits(midi, bars, n, seed, theme, temperature, candidates, method)
        return self.to_midi([e.ids for e in edits])

    @sampling
    def polish(self, midi: MidiSource, bars_max: int | None = None, seed: int | None = None,
               candidates: int = CANDIDATES) -> tuple[pretty_midi.PrettyMIDI, list[Change]]:
        """The piece with its weakest bars (by the critic; a quarter of them at most,
        unless ``bars_max``) written again, each new bar kept only where the critic scores
        it higher; returns the piece and what was tried (``musegan.edit.Change``)."""
        ids, changes = polish(self, self.tokenizer.encode(midi), bars_max, seed, candidates,
                              piece=_piece_name(midi))
        return self.tokenizer.decode(ids), changes

    @sampling
    def restyle_ids(self, midi: MidiSource, style: MidiSource | torch.Tensor,
                    keep: str = "rhythm", n: int = 1, seed: int | None = None,
                    temperature: float = 1.0, meter: str | None = None,
                    theme: torch.Tensor | None = None) -> list[list[int]]:
        """``restyle``'s pieces as token ids; ``theme`` replaces the style's own theme
        (the style's steered, say) while the style still gives the meter."""
        if theme is None:
            theme = style if isinstance(style, torch.Tensor) else self.encode_theme(style)
        if meter and keep == "rhythm":
            raise MuseganError("keep='rhythm' keeps the piece's meter; leave meter out",
                               cli="--keep rhythm keeps the piece's meter; drop --meter")
        meter_id = self.meter_id(meter) if meter else None
        if meter_id is None and keep == "pitches" and not isinstance(style, torch.Tensor):
            found = self.style_meter(style)  # the style's own, where the model writes it;
            # a meter its corpus lacked would be masked out as it writes (the model's own
            # meter, then, as ``written_meter`` of the rows says)
            meter_id = self.meter_id(found) if found in self.meters else None
        return restyle(self, self.tokenizer.encode(midi), theme, keep, n, seed, temperature,
                       meter_id)

    def style_meter(self, style: MidiSource) -> str | None:
        """The first time signature a piece states, as "6/8" (None if it states none):
        the meter ``restyle(keep="pitches")`` writes in, where the model's corpus has it."""
        return self.written_meter(self.tokenizer.encode(style))

    def written_meter(self, ids: list[int]) -> str | None:
        """The first time signature token ``ids`` hold, as "6/8" (None if none)."""
        meter = KINDS.index("time_signature")
        token = next((t for t in ids if self.tokenizer.kind[t] == meter), None)
        return None if token is None else self.tokenizer.tokens([token])[0].split("_", 1)[1]

    def restyle(self, midi: MidiSource, style: MidiSource | torch.Tensor,
                keep: str = "rhythm", n: int = 1, seed: int | None = None,
                temperature: float = 1.0, meter: str | None = None
                ) -> list[pretty_midi.PrettyMIDI]:
        """Write a piece again with another's theme (``style``: a piece, or a theme
        (1, theme_dim)). ``keep="rhythm"``: every onset, duration, velocity and voice is
        the piece's own and the model chooses the pitches; ``keep="pitches"``: its
        sequence of pitches stays and the model writes the rhythm, in the style's meter
        where the model's corpus has it, else in one the model chooses (or ``meter``)."""
        return self.to_midi(self.restyle_ids(midi, style, keep, n, seed, temperature, meter))

    def generate(self, n: int = 1, bars: int | None = None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 theme: torch.Tensor | None = None, primer: MidiSource | None = None,
                 include_primer: bool = True, tempo: float | None = None,
                 form: str | None = None, part_bars: int = PART_BARS, open_end: bool = False,
                 melody: bool | None = None, any_token: bool = False, *,
                 tempo_changes: bool = False, meter: str | None = None, best_of: int = 1,
                 first: int = 0) -> list[pretty_midi.PrettyMIDI]:
        """Write n new pieces.

        Args:
            n: how many pieces.
            bars: bars per piece, exactly (after the primer's, if any); default: what the
                form makes, or 16.
            temperature: below 1 plays safe, above 1 takes risks.
            top_k / top_p: sample only from the k likeliest tokens / the smallest set
                holding probability p.
            seed: the same model, settings and seed give the same pieces; piece i of a
                seed is the same whatever ``n`` (and whatever else is written with it).
            theme: (theme_dim,) or (n, theme_dim) themes; default: sampled, or the
                primer's own theme when there is a primer.
            primer: a MIDI file (or object) to continue, in its meter and tempo.
            include_primer: keep the primer at the start of each piece.
            tempo: bpm for the new music (default: what the model chooses).
            form: part letters such as "AABB": a letter seen before repeats its part
                exactly (``musegan.form``); default: the model's own (``default_form``),
                unless ``bars`` is given; "" for none.
            part_bars: bars per part of the form.
            open_end: end where the model stops, not on the tonic.
            melody: write one line, the top note of each onset, each note ending where
                the next begins (``decoding.one_line``); default: the model's own
                (``Sampler.melody``).
            any_token: write any token of the vocabulary, not only those the model's
                training corpus holds (``corpus_tokens``: no note length, meter, tempo or
                instrument or part the corpus never had).
            tempo_changes: let the tempo change within a piece (default: one tempo, unless
                the primer changes tempo).
            meter: the time signature of the pieces, e.g. "6/8", one of ``meters``
                (default: what the model chooses).
            best_of: write this many candidates per piece, in one batch, and keep the one
                the model's critic finds most real (``generate_choices`` says which);
                1 is plain sampling.
            first: write the seed's pieces ``first`` to ``first + n - 1`` (so
                ``generate(n=1, seed=s, first=i)`` is piece i of ``generate(n=i + 1,
                seed=s)``, alone; ``theme``, when given, is theirs).

        Returns:
            ``pretty_midi.PrettyMIDI`` objects.
        """
        ids = self.generate_ids(n, bars, temperature, top_k, top_p, seed, theme, primer, tempo,
                                form, part_bars, open_end, melody, any_token,
                                tempo_changes=tempo_changes, meter=meter, best_of=best_of,
                                first=first)
        return self.to_midi(ids, primer, include_primer)

    def to_midi(self, ids: list[list[int]], primer: MidiSource | None = None,
                include_primer: bool = True) -> list[pretty_midi.PrettyMIDI]:
        """MIDI of ``generate_ids``'s pieces; without ``include_primer``, the primer's notes
        are left out (its bars stay, as rests)."""
        if primer is not None and not include_primer:
            # Blank the primer's notes (PAD is skipped by the decoder) but keep its bars,
            # positions, meter and tempo, so the new music keeps its place in time.
            primer_length = len(self.tokenizer.encode(primer)) - 1
            notes = (set(self.tokenizer.token_range("pitch"))
                     | set(self.tokenizer.token_range("velocity"))
                     | set(self.tokenizer.token_range("duration")))
            ids = [[self.tokenizer.PAD if i < primer_length and t in notes else t
                    for i, t in enumerate(row)] for row in ids]
        return [self.tokenizer.decode(row) for row in ids]


@dataclass
class Choice:
    """A piece and how it was chosen: ``index`` of the winning candidate, its critic
    ``score`` and every candidate's ``scores`` (None and [] without best-of-K)."""

    ids: list[int]
    index: int
    score: float | None
    scores: list[float]


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, or a one-line error if it is not one this machine
    has."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise MuseganError(f"unknown device {device!r}; use cpu, cuda or cuda:N",
                           cli=f"--device {device}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MuseganError("no CUDA device here (torch.cuda.is_available() is false); "
                           "use device='cpu'", cli="--device cuda: no CUDA device here; "
                                                   "use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise MuseganError(f"{device} does not exist: this machine has {count} CUDA "
                           f"device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})",
                           cli=f"--device {device} does not exist: this machine has {count} "
                               f"CUDA device{'s' if count != 1 else ''}")
    if device.type not in ("cpu", "cuda"):
        raise MuseganError(f"device {device.type} is not supported; use cpu or cuda",
                           cli=f"--device {device.type} is not supported; use cpu or cuda")
    return device


def check_sampling(n: int, temperature: float, top_k: int | None,
                   top_p: float | None, best_of: int = 1) -> None:
    """One clear error for a setting that sampling cannot use."""
    if n < 1:
        raise MuseganError(f"n must be at least 1, got {n}", cli=f"-n must be at least 1, got {n}")
    if not 1 <= best_of <= WRITE_AT_ONCE:  # a piece's candidates are written in one batch
        raise MuseganError(f"best_of must be from 1 to {WRITE_AT_ONCE}, got {best_of}",
                           cli=f"--best-of must be from 1 to {WRITE_AT_ONCE}, got {best_of}")
    if temperature <= 0:
        raise MuseganError(f"temperature must be above 0, got {temperature}",
                           cli=f"--temperature must be above 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise MuseganError(f"top_k must be at least 1 (or None for all), got {top_k}",
                           cli=f"--top-k must be at least 1 (leave it out for all), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise MuseganError(f"top_p must be in (0, 1] (or None for all), got {top_p}",
                           cli=f"--top-p must be above 0 and at most 1, got {top_p}")


def _piece_name(midi: MidiSource) -> str:
    return str(midi) if isinstance(midi, (str, Path)) else "the piece"


def _generator(seed: int | None, device) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(seed))


def generate_files(sampler: Sampler, out: str | Path, n: int = 4, bars: int | None = None,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   seed: int | None = None, themes: torch.Tensor | None = None,
                   primer: str | Path | None = None, include_primer: bool = True,
                   tempo: float | None = None, plot: bool = False, audio: bool = False,
                   force: bool = False, progress: bool = False, batch: int | None = None,
                   steer: dict[str, float] | None = None, form: str | None = None,
                   part_bars: int = PART_BARS, open_end: bool = False,
                   melody: bool | None = None, any_token: bool = False,
                   tempo_changes: bool = False, meter: str | None = None,
                   best_of: int = 1) -> list[Path]:
    """Generate pieces into a folder: ``tune-sSEED-III.mid`` with a JSON sidecar holding
    everything needed to regenerate it, and optionally a piano-roll PNG and a WAV.
    ``bars``, ``form``, ``part_bars``, ``open_end``, ``melody``, ``any_token``,
    ``tempo_changes``, ``meter`` and ``best_of`` are ``Sampler.generate``'s; with
    ``best_of``, the sidecar names the winning candidate and the critic's scores. A piece
    the model ended early (its last bars are rests) says so in its sidecar, as
    ``rest_bars_at_end``. ``batch`` pieces are written at once (default
    ``WRITE_AT_ONCE // best_of``, at least 1); the pieces do not depend on it: piece i
    of a seed is the one ``Sampler.generate`` writes, and its sidecar's ``regenerate``
    writes it alone.

    Never overwrites a file unless ``force``. Returns the MIDI paths.
    """
    from tqdm import tqdm

    from musegan.render import INSTALL_AUDIO, audio_available, piano_roll_png, render_wav

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MuseganError(f"{out} is a file; the output must be a folder",
                           cli=f"{out} is a file; give --out a folder")
    form, bars = sampler.plan(bars, form, part_bars)
    if themes is not None:
        themes = sampler.as_themes(themes)  # (k, theme_dim), from a tensor, array or list
    check_sampling(n if themes is None or themes.size(0) <= 1 else themes.size(0),
                   temperature, top_k, top_p, best_of)
    if audio and not audio_available():
        raise MuseganError(INSTALL_AUDIO)
    if primer is not None:
        sampler.tokenizer.encode(primer)  # a clear error now if it is not usable MIDI
    if meter:
        sampler.meter_id(meter, any_token)  # a clear error now for a meter it cannot write
    if tempo is not None:
        sampler.tempo_id(tempo)  # and for a tempo
    if best_of > 1:
        sampler.require_critic("--best-of")
    if steer:
        sampler.steer(torch.zeros(1, sampler.theme_dim, device=sampler.device), **steer)
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    batch = max(1, WRITE_AT_ONCE // best_of) if batch is None else batch
    if batch < 1:
        raise MuseganError(f"batch must be at least 1, got {batch}")
    if themes is not None:
        n = themes.size(0) if themes.size(0) > 1 else n
    names = [out / f"tune-s{seed}-{i:03d}.mid" for i in range(n)]
    suffixes = [".mid", ".json"] + [".png"] * plot + [".wav"] * audio  # what is written
    clashes = [q for p in names for q in map(p.with_suffix, suffixes) if q.exists()]
    if clashes and not force:
        raise output_exists(clashes[0])
    writable_folder(out)
    model_sha = (hashlib.sha256(Path(sampler.path).read_bytes()).hexdigest()
                 if sampler.path else None)
    # All n themes at once, as Sampler.generate(n, seed=seed) draws them; each batch then
    # writes the seed's pieces from `start` on (`first`), so the files are what one call
    # of Sampler.generate writes, whatever the batch.
    themes = sampler.themes(n, themes, primer, _generator(seed, sampler.device))
    if steer:
        themes = sampler.steer(themes, **steer)
    written = []
    with tqdm(total=n, unit="piece", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch):
            count = min(batch, n - start)
            theme = themes[start:start + count]
            choices = sampler.generate_choices(count, bars, temperature, top_k, top_p,
                                               seed, theme, primer, tempo, form,
                                               part_bars, open_end, melody, any_token,
                                               tempo_changes=tempo_changes, meter=meter,
                                               best_of=best_of, first=start)
            rows = [choice.ids for choice in choices]
            midis = sampler.to_midi(rows, primer, include_primer)
            for j, midi in enumerate(midis):
                path = names[start + j]
                write_midi(midi, path)
                write_text(path.with_suffix(".json"), json.dumps({
                    "model": sampler.name, "model_sha256": model_sha,
                    "seed": seed, "index": start + j,
                    "theme": theme[j].tolist() if sampler.theme_dim else [],
                    "settings": {"bars": bars, "form": form, "part_bars": part_bars,
                                 "open_end": open_end, "melody": melody,
                                 "any_token": any_token, "tempo_changes": tempo_changes,
                                 "meter": meter,
                                 "temperature": temperature, "top_k": top_k,
                                 "top_p": top_p, "tempo": tempo,
                                 "primer": str(primer) if primer else None,
                                 "include_primer": include_primer, "best_of": best_of},
                    "steer": steer or None,  # already in the theme
                    "best_of": ({"k": best_of, "winner": choices[j].index,
                                 "score": choices[j].score, "scores": choices[j].scores}
                                if best_of > 1 else None),
                    "regenerate": "Sampler.generate(n=1, seed=seed, theme=theme, "
                                  "first=index, **settings)[0]",
                    "rest_bars_at_end": rest_bars_at_end(rows[j], sampler.tokenizer),
                }, indent=1) + "\n")
                if plot:
                    piano_roll_png(midi, path.with_suffix(".png"), title=path.name)
                if audio:
                    render_wav(path, path.with_suffix(".wav"))
                written.append(path)
            bar.update(count)
    return written
