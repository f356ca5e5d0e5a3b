"""Writing music with a trained model: ``from musegan import Sampler``.

    sampler = Sampler.from_pretrained("model.safetensors")
    midis = sampler.generate(n=4, bars=16, temperature=0.9, seed=7)
    midis[0].write("tune.mid")

Decoding is batched, carries the LSTM state from step to step (the prefix is never
re-run), and is grammar-constrained. At every step the tokens that cannot come next are
masked, so each piece is well formed:

- bars come in order, exactly ``bars`` of them;
- positions rise within a bar and stay inside its meter;
- every note is complete: Pitch, then Velocity, then Duration;
- the piece ends only between notes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from importlib import resources
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from musegan.errors import MuseganError
from musegan.export import LoadedModel, load_model
from musegan.midi import MidiSource
from musegan.tokenizer import Tokenizer

# What may follow each kind of token (the grammar of musegan.tokenizer).
_START, _BAR, _TS, _BAR_TEMPO, _POSITION, _MID_TEMPO, _PROGRAM, _PITCH, _VELOCITY, _DURATION = range(10)
_KIND_CODES = {"bar": 0, "time_signature": 1, "tempo": 2, "position": 3, "program": 4,
               "pitch": 5, "velocity": 6, "duration": 7, "eos": 8}
_NEXT = {  # state -> kinds allowed next ("bar" and "eos" are subject to the bar count)
    _START: ("bar",),
    _BAR: ("time_signature", "tempo", "program", "position", "bar", "eos"),
    _TS: ("tempo", "program", "position", "bar", "eos"),
    _BAR_TEMPO: ("program", "position", "bar", "eos"),
    _POSITION: ("tempo", "program", "pitch"),
    _MID_TEMPO: ("program", "pitch"),
    _PROGRAM: ("pitch",),
    _PITCH: ("velocity",),
    _VELOCITY: ("duration",),
    _DURATION: ("program", "pitch", "position", "bar", "eos"),
}
MAX_TOKENS_PER_BAR = 400  # a bar longer than this is forced to end (a runaway model)
DEFAULT_MODEL = "cre-melody"  # the bundled model `from_pretrained()` loads


def bundled_models() -> dict[str, Path]:
    """Bundled model names and their files (musegan.checkpoints, i.e. checkpoints/)."""
    folder = resources.files("musegan.checkpoints")
    return {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir()
            if str(entry).endswith(".safetensors")}


class Grammar:
    """Batched grammar state: which tokens may come next for each sequence.

    Everything that depends only on (state, all bars written, tempo still to state) is
    a row of one table built up front, so a step's mask is a row lookup, then positions
    are checked against the bar.
    """

    def __init__(self, tokenizer: Tokenizer, n: int, bars: int, device, tempo_id: int | None,
                 hold_meter: bool = False):
        tok = self.tok = tokenizer
        self.bars_wanted = bars
        self.tempo_id = tempo_id
        self.hold_meter = hold_meter  # a continuation keeps its primer's meter and tempo
        kinds = torch.full((len(tok),), -1, dtype=torch.long)
        for name, code in _KIND_CODES.items():
            if name == "bar":
                kinds[tok.BAR] = code
            elif name == "eos":
                kinds[tok.EOS] = code
            else:
                kinds[list(tok.token_range(name))] = code
        self.kind = kinds.to(device)  # (V,) kind code of every id, -1 for PAD/BOS
        self.value = torch.as_tensor(tok.value, device=device)  # (V,)
        self.bar_steps = torch.as_tensor(tok.bar_steps, device=device)  # (TS,)
        positions = tok.token_range("position")
        self.positions = slice(positions.start, positions.stop)
        self.position_value = self.value[self.positions]
        self.table = self._table(kinds).to(device)  # (states * 2 * 2, V)
        # The state each token leads to: -1 keeps the state (PAD, BOS), -2 is a tempo,
        # whose state depends on where it stands.
        next_state = torch.full((len(tok),), -1, dtype=torch.long)
        for kind_name, state in (("bar", _BAR), ("time_signature", _TS), ("position", _POSITION),
                                 ("program", _PROGRAM), ("pitch", _PITCH),
                                 ("velocity", _VELOCITY), ("duration", _DURATION), ("tempo", -2)):
            next_state[kinds == _KIND_CODES[kind_name]] = state
        self.next_state = next_state.to(device)
        self.state = torch.full((n,), _START, dtype=torch.long, device=device)
        self.bars = torch.zeros(n, dtype=torch.long, device=device)  # bars started
        self.position = torch.full((n,), -1, dtype=torch.long, device=device)
        default_ts = tok.time_signatures.index((4, 4)) if (4, 4) in tok.time_signatures else 0
        self.bar_length = torch.full((n,), int(tok.bar_steps[default_ts]), device=device)
        self.tokens_in_bar = torch.zeros(n, dtype=torch.long, device=device)
        self.done = torch.zeros(n, dtype=torch.bool, device=device)
        # A chosen tempo is stated in the first bar header the sampler writes.
        self.tempo_pending = torch.full((n,), tempo_id is not None, dtype=torch.bool, device=device)

    def _table(self, kind: torch.Tensor) -> torch.Tensor:
        """(state, finished, tempo pending) -> allowed ids, flattened to rows."""
        code = _KIND_CODES
        rows = torch.zeros(10, 2, 2, len(kind), dtype=torch.bool)
        for state, names in _NEXT.items():
            for finished in (0, 1):
                for pending in (0, 1):
                    ok = torch.isin(kind, torch.tensor([code[k] for k in names]))
                    # Another Bar only while bars are wanted; EOS only once all are written.
                    ok &= kind != (code["bar"] if finished else code["eos"])
                    if self.tempo_id is not None:  # the caller chose the tempo
                        ok &= (kind != code["tempo"]) | (torch.arange(len(kind)) == self.tempo_id)
                        if pending and state in (_BAR, _TS):  # state it before anything else
                            ok &= (kind == code["tempo"]) | (
                                (kind == code["time_signature"]) & (state == _BAR))
                    elif self.hold_meter:
                        ok &= kind != code["tempo"]
                    if self.hold_meter:
                        ok &= kind != code["time_signature"]
                    rows[state, finished, pending] = ok
        return rows.view(-1, len(kind))

    def mask(self) -> torch.Tensor:
        """(n, V) true where a token is allowed next."""
        finished = self.bars >= self.bars_wanted
        ok = self.table[(self.state * 2 + finished) * 2 + self.tempo_pending]
        # Positions rise within a bar and stay inside its meter.
        ok[:, self.positions] &= ((self.position_value > self.position[:, None])
                                  & (self.position_value < self.bar_length[:, None]))
        runaway = self.tokens_in_bar > MAX_TOKENS_PER_BAR
        if runaway.any():  # a runaway bar must end as soon as the grammar lets it
            can_end = ((self.state == _BAR) | (self.state == _TS) | (self.state == _BAR_TEMPO)
                       | (self.state == _DURATION))
            ends_bar = torch.where(finished[:, None], self.kind == _KIND_CODES["eos"],
                                   self.kind == _KIND_CODES["bar"])
            ok = torch.where((runaway & can_end)[:, None], ok & ends_bar, ok)
        if self.done.any():  # finished sequences pad
            ok[self.done] = False
            ok[self.done, self.tok.PAD] = True
        return ok

    def update(self, token: torch.Tensor) -> None:
        """Advance every sequence by its next token (n,)."""
        kind, value = self.kind[token], self.value[token]
        code = _KIND_CODES
        new_bar = kind == code["bar"]
        self.bars += new_bar
        self.tokens_in_bar = torch.where(new_bar, 0, self.tokens_in_bar + 1)
        self.position = torch.where(new_bar, -1, torch.where(kind == code["position"], value,
                                                             self.position))
        is_ts = kind == code["time_signature"]
        if is_ts.any():
            steps = self.bar_steps[value.clamp(max=len(self.bar_steps) - 1)]
            self.bar_length = torch.where(is_ts, steps, self.bar_length)
        next_state = self.next_state[token]
        in_bar_header = (self.state == _BAR) | (self.state == _TS)
        next_state = torch.where(next_state == -2, torch.where(in_bar_header, _BAR_TEMPO,
                                                                _MID_TEMPO), next_state)
        self.state = torch.where(next_state >= 0, next_state, self.state)
        self.done |= kind == code["eos"]
        self.tempo_pending &= kind != code["tempo"]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these sequences (indices into the batch)."""
        for name in ("state", "bars", "position", "bar_length", "tokens_in_bar", "done",
                     "tempo_pending"):
            setattr(self, name, getattr(self, name)[rows])


class Sampler:
    """Generates MIDI from a trained model.

    Example::

        sampler = Sampler.from_pretrained("model.safetensors")
        theme = sampler.sample_theme(1, seed=3)
        variations = sampler.generate(n=4, bars=8, theme=theme, seed=1)
    """

    def __init__(self, model: LoadedModel, device: str | torch.device = "cpu"):
        self.model = model
        self.net = model.net.to(device).eval()
        self.tokenizer = model.tokenizer
        self.device = torch.device(device)
        self.name = self.path = None  # set by from_pretrained
        self.steering = {name: {**facts, "steps": facts["steps"].to(self.device)}
                         for name, facts in model.steering.items()}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None,
                        device: str = "cpu") -> "Sampler":
        """A bundled model by name (default: the bundled default), an exported
        ``.safetensors`` file (loaded with no pickle), or a Lightning ``.ckpt``
        (loaded with ``weights_only=True``)."""
        bundled = bundled_models()
        name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
        if name in bundled:
            path = bundled[name]
        elif Path(name).suffix in (".safetensors", ".ckpt") or Path(name).exists():
            path = Path(name)
        else:
            known = ", ".join(sorted(bundled)) or "none yet"
            raise MuseganError(f"unknown model '{name}': give a .safetensors or .ckpt file, or "
                               f"a bundled model ({known})")
        sampler = cls(load_model(path, device), device)
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
                known = ", ".join(sorted(self.steering)) or \
                    "none; add them with: musegan steer --fit MODEL --data DATA_DIR"
                raise MuseganError(f"this model cannot steer '{name}'; it knows: {known}")
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
    def save_theme(theme: torch.Tensor, path: str | Path) -> None:
        """Write themes as .npy or .json (a list of lists)."""
        path = Path(path)
        array = theme.detach().cpu().reshape(-1, theme.shape[-1]).numpy()
        if path.suffix == ".json":
            path.write_text(json.dumps(array.tolist()) + "\n")
        else:
            np.save(path, array)

    def load_theme(self, path: str | Path) -> torch.Tensor:
        """Read themes written by ``save_theme`` (.npy or .json); checks their size."""
        path = Path(path)
        try:
            array = (np.array(json.loads(path.read_text()), dtype=np.float32)
                     if path.suffix == ".json" else np.load(path, allow_pickle=False))
        except (OSError, ValueError) as err:
            raise MuseganError(f"{path}: cannot read a theme ({err})") from None
        array = np.atleast_2d(array).astype(np.float32)
        if array.shape[-1] != self.theme_dim:
            raise MuseganError(f"{path}: themes have {array.shape[-1]} numbers, this model's "
                               f"have {self.theme_dim}")
        return torch.from_numpy(array).to(self.device)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate_ids(self, n: int = 1, bars: int = 16, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None,
                     seed: int | None = None, theme: torch.Tensor | None = None,
                     primer: MidiSource | None = None, tempo: float | None = None) -> list[list[int]]:
        """Token ids of n pieces (see ``generate``)."""
        if bars < 1:
            raise MuseganError(f"bars must be at least 1, got {bars}")
        if temperature <= 0:
            raise MuseganError(f"temperature must be above 0, got {temperature}")
        tok, net = self.tokenizer, self.net
        generator = _generator(seed, self.device)
        if not self.theme_dim:  # a model without themes (the Markov baseline)
            theme = torch.zeros(n, 0, device=self.device)
        else:
            if theme is None:
                theme = (self.encode_theme(primer).expand(n, -1) if primer is not None
                         else net.mapping.sample(n, generator=generator, device=self.device))
            theme = theme.to(self.device).reshape(-1, self.theme_dim)
        if theme.size(0) == 1 and n > 1:
            theme = theme.expand(n, -1)
        if theme.size(0) != n:
            raise MuseganError(f"got {theme.size(0)} themes for {n} pieces")
        tempo_id = None
        if tempo is not None:
            if tempo <= 0:
                raise MuseganError(f"tempo must be above 0 bpm, got {tempo}")
            tempo_id = tok.token_range("tempo")[int(tok._bin(math.log(tempo), tok._tempo_edges))]
        prefix = tok.encode(primer)[:-1] if primer is not None else [tok.BOS]  # no EOS
        return decode(net, tok, theme, bars, prefix, temperature, top_k, top_p, generator,
                      tempo_id, continuation=primer is not None)

    def generate(self, n: int = 1, bars: int = 16, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 theme: torch.Tensor | None = None, primer: MidiSource | None = None,
                 include_primer: bool = True, tempo: float | None = None
                 ) -> list[pretty_midi.PrettyMIDI]:
        """Write n new pieces.

        Args:
            n: how many pieces.
            bars: bars per piece, exactly (after the primer's, if any).
            temperature: below 1 plays safe, above 1 takes risks.
            top_k / top_p: sample only from the k likeliest tokens / the smallest set
                holding probability p.
            seed: the same model, settings and seed give the same pieces.
            theme: (theme_dim,) or (n, theme_dim) themes; default: sampled, or the
                primer's own theme when there is a primer.
            primer: a MIDI file (or object) to continue, in its meter and tempo.
            include_primer: keep the primer at the start of each piece.
            tempo: bpm for the new music (default: what the model chooses).

        Returns:
            ``pretty_midi.PrettyMIDI`` objects.
        """
        ids = self.generate_ids(n, bars, temperature, top_k, top_p, seed, theme, primer, tempo)
        if primer is not None and not include_primer:
            # Blank the primer's notes (PAD is skipped by the decoder) but keep its bars,
            # positions, meter and tempo, so the new music keeps its place in time.
            primer_length = len(self.tokenizer.encode(primer)) - 1
            notes = set(self.tokenizer.token_range("pitch")) | set(
                self.tokenizer.token_range("velocity")) | set(self.tokenizer.token_range("duration"))
            ids = [[self.tokenizer.PAD if i < primer_length and t in notes else t
                    for i, t in enumerate(row)] for row in ids]
        return [self.tokenizer.decode(row) for row in ids]


@torch.no_grad()
def decode(net, tokenizer: Tokenizer, theme: torch.Tensor, bars: int, prefix: list[int],
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, tempo_id: int | None = None,
           continuation: bool = False) -> list[list[int]]:
    """Grammar-constrained decoding of n = len(theme) pieces after ``prefix`` (BOS, or a
    primer's ids without EOS), carrying the LSTM state; the ids of each piece, PAD removed.

    ``net`` is a ``MuseGAN`` or a ``MarkovModel``: anything whose ``incremental(theme)``
    gives a step-by-step runner (``IncrementalGenerator``). With ``continuation`` the
    prefix's meter and tempo hold, and ``bars`` bars are written after its own.
    """
    n, device = theme.size(0), theme.device
    if n == 0:
        return []
    grammar = Grammar(tokenizer, n, bars, device, tempo_id, hold_meter=continuation)
    prefix_ids = torch.tensor(prefix, device=device).expand(n, -1)
    for i in range(1, prefix_ids.size(1)):
        grammar.update(prefix_ids[:, i])
    grammar.tempo_pending[:] = tempo_id is not None  # the primer's own tempo does not count
    grammar.bars_wanted = int(grammar.bars[0]) + bars if continuation else bars
    runner = net.incremental(theme)
    logits = runner.feed(prefix_ids)  # the primer sets the state
    active = torch.arange(n, device=device)  # pieces still being written
    written = []  # (which pieces, their tokens) at each step
    # The grammar ends a runaway bar within a few tokens, so this bound is never reached.
    for _ in range((bars + 1) * (MAX_TOKENS_PER_BAR + 8)):
        token = _sample(logits, grammar.mask(), temperature, top_k, top_p, generator)
        grammar.update(token)
        written.append((active, token))
        if grammar.done.any():  # finished pieces leave the batch
            keep = (~grammar.done).nonzero().squeeze(1)
            if len(keep) == 0:
                break
            active = active[keep]
            grammar.select(keep)
            runner.select(keep)
            token = token[keep]
        logits = runner.step(token)
    ids = torch.full((n, len(written)), tokenizer.PAD, device=device)
    for step, (rows, token) in enumerate(written):
        ids[rows, step] = token
    ids = torch.cat([prefix_ids, ids], 1).tolist()
    return [[t for t in row if t != tokenizer.PAD] for row in ids]


def _generator(seed: int | None, device) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(seed))


def _sample(logits: torch.Tensor, mask: torch.Tensor, temperature: float, top_k: int | None,
            top_p: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from logits (n, V), only where mask is true."""
    logits = torch.where(mask, logits.float(), float("-inf"))
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, -1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, -1) > top_p  # keep the first over p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    # Inverse-CDF sampling, which is what torch.multinomial does, at a tenth of its cost
    # here. u lies in (0, total], so a token of probability 0 is never drawn: searchsorted
    # takes the first index whose running total reaches u.
    cdf = logits.softmax(-1).cumsum_(-1)
    if not torch.isfinite(cdf[:, -1]).all():
        raise MuseganError("the model gave no usable probabilities (NaN or infinite logits); "
                           "check its theme and weights")
    u = (1 - torch.rand(cdf.size(0), 1, generator=generator, device=cdf.device)) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=cdf.size(1) - 1)


def generate_files(sampler: Sampler, out: str | Path, n: int = 4, bars: int = 16,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   seed: int | None = None, themes: torch.Tensor | None = None,
                   primer: str | Path | None = None, include_primer: bool = True,
                   tempo: float | None = None, plot: bool = False, audio: bool = False,
                   force: bool = False, progress: bool = False, batch: int = 8,
                   steer: dict[str, float] | None = None) -> list[Path]:
    """Generate pieces into a folder: ``tune-sSEED-III.mid`` with a JSON sidecar holding
    everything needed to regenerate it, and optionally a piano-roll PNG and a WAV.

    Never overwrites a file unless ``force``. Returns the MIDI paths.
    """
    from tqdm import tqdm

    from musegan.render import INSTALL_AUDIO, audio_available, piano_roll_png, render_wav

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MuseganError(f"{out} is a file; give --out a folder")
    if bars < 1:
        raise MuseganError(f"--bars must be at least 1, got {bars}")
    if audio and not audio_available():
        raise MuseganError(INSTALL_AUDIO)
    if primer is not None:
        sampler.tokenizer.encode(primer)  # a clear error now if it is not usable MIDI
    if steer:
        sampler.steer(torch.zeros(1, sampler.theme_dim, device=sampler.device), **steer)
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    if themes is not None:
        n = themes.size(0) if themes.size(0) > 1 else n
    names = [out / f"tune-s{seed}-{i:03d}.mid" for i in range(n)]
    clashes = [p for p in names for q in (p, p.with_suffix(".json")) if q.exists()]
    if clashes and not force:
        raise MuseganError(f"{clashes[0]} exists; pass --force to replace it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    model_sha = (hashlib.sha256(Path(sampler.path).read_bytes()).hexdigest()
                 if sampler.path else None)
    written = []
    with tqdm(total=n, unit="piece", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch):
            count = min(batch, n - start)
            chunk_seed = seed + start
            theme = (themes[start:start + count] if themes is not None and themes.size(0) > 1
                     else themes)
            if theme is None and primer is None:
                theme = sampler.sample_theme(count, seed=chunk_seed)
            elif theme is None:
                theme = sampler.encode_theme(primer).expand(count, -1)
            if steer:
                theme = sampler.steer(theme, **steer)
            midis = sampler.generate(count, bars, temperature, top_k, top_p, chunk_seed,
                                     theme, primer, include_primer, tempo)
            for j, midi in enumerate(midis):
                path = names[start + j]
                midi.write(str(path))
                path.with_suffix(".json").write_text(json.dumps({
                    "model": sampler.name, "model_sha256": model_sha,
                    "seed": chunk_seed, "batch_index": j, "batch_size": count,
                    "theme": (theme.reshape(-1, sampler.theme_dim)[min(j, theme.size(0) - 1)].tolist()
                              if sampler.theme_dim else []),
                    "settings": {"bars": bars, "temperature": temperature, "top_k": top_k,
                                 "top_p": top_p, "tempo": tempo,
                                 "primer": str(primer) if primer else None,
                                 "include_primer": include_primer, "steer": steer or None},
                    "regenerate": "Sampler.generate(n=batch_size, seed=seed, theme=theme, ...)"
                                  "[batch_index]",
                }, indent=1) + "\n")
                if plot:
                    piano_roll_png(midi, path.with_suffix(".png"), title=path.name)
                if audio:
                    render_wav(path, path.with_suffix(".wav"))
                written.append(path)
            bar.update(count)
    return written
