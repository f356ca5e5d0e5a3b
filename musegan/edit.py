"""Editing existing pieces with a model: infill chosen bars, polish the weak ones, restyle
a tune with another's theme. ``Sampler.infill``, ``Sampler.polish`` and
``Sampler.restyle`` call these; ``musegan infill|polish|restyle`` write files.

Bars are counted from 1, as in a score, and every bar these tools do not rewrite stays
exactly as the tokenizer keeps it (``Tokenizer.quantize``): they edit the piece's tokens,
never its MIDI.

* **Infill** (``infill``) writes candidates for the gap from the bars before it
  (batched, grammar-constrained, the gap's meter and tempo held) and weighs each by the
  model's likelihood of the bars after the gap given it: the winners are drawn from
  those weights without replacement, so they sample p(gap | before, after) rather than
  p(gap | before) (importance resampling; ``method="continue"`` skips the weighing, for
  comparison). A note in the gap is cut at the gap's last bar line, so nothing it holds
  reaches a kept bar.
* **Polish** (``polish``) has the critic score every bar, infills the lowest (one bar at
  a time, a quarter of the piece at most) and keeps a new bar only where the critic
  scores it above the old one.
* **Restyle** (``restyle``) writes a piece again from another theme: with
  ``keep="rhythm"`` every token but the pitches is the piece's own (bars, positions,
  velocities, durations, voices) and the model chooses each pitch; with
  ``keep="pitches"`` the model writes the rhythm freely and every pitch it writes is
  the piece's next one, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from musegan.critic import canonical
from musegan.decoding import (
    RowUniforms,
    cut_notes,
    decode,
    duration_at_most,
    note_steps,
    one_line,
    sample_token,
)
from musegan.errors import MuseganError
from musegan.grammar import MAX_TOKENS_PER_BAR, Grammar
from musegan.tokenizer import KINDS, Tokenizer

CANDIDATES = 16  # gap candidates written per infill asked for
KEEP = ("rhythm", "pitches")


def bar_offsets(ids: list[int], tokenizer: Tokenizer) -> list[int]:
    """Index of each Bar token of a piece's ids: bar k (from 1) starts at offsets[k - 1]."""
    return [i for i, t in enumerate(ids) if t == tokenizer.BAR]


def parse_bars(text: str) -> tuple[int, int]:
    """'5-8' -> (5, 8); '5' -> (5, 5)."""
    first, dash, last = text.partition("-")
    try:
        if dash and not last.strip():
            raise ValueError  # "5-" is not "bar 5"; say which bars
        return int(first), int(last or first)
    except ValueError:
        raise MuseganError(f"bars are written FIRST-LAST, counted from 1 (say 5-8), "
                           f"not {text!r}") from None


def check_bars(bars: tuple[int, int], count: int, piece: str = "the piece") -> tuple[int, int]:
    """The range (first, last), checked against a piece of ``count`` bars."""
    first, last = bars
    if first < 1 or last < first or last > count:
        what = ("bar 0 does not exist: bars count from 1" if first < 1 or last < 1
                else f"bars {first}-{last} is an empty range" if last < first
                else f"bar {max(first, count + 1)} is past the end")
        raise MuseganError(f"{what}; {piece} has {count} bars (1-{count})")
    return first, last


@dataclass
class Edit:
    """One edited piece: its ``ids``, the bars (first, last) it rewrote, the candidate
    it came from and that candidate's log-likelihood of the bars after the gap (None
    where nothing follows or nothing was weighed)."""

    ids: list[int]
    bars: tuple[int, int]
    candidate: int
    after_log_likelihood: float | None


# ---------------------------------------------------------------------- infill

def _header_end(ids: list[int], offset: int, tokenizer: Tokenizer) -> int:
    """The index after a bar's Bar token and its TimeSig/Tempo header."""
    kinds = tokenizer.kind
    end = offset + 1
    while end < len(ids) and KINDS[kinds[ids[end]]] in ("time_signature", "tempo"):
        end += 1
    return end


def _voice_in_force(ids: list[int], tokenizer: Tokenizer) -> int:
    """The voice token in force at the end of ``ids`` (a voice token is written only when
    the voice changes; before any, the first program's own voice)."""
    return next((t for t in reversed(ids) if tokenizer.voice[t] >= 0),
                tokenizer.token_range("program").start)


def _voice_restated(before: list[int], after: list[int], original: list[int],
                    tokenizer: Tokenizer) -> list[int]:
    """``after`` with its first note's voice stated where the new ``before`` leaves
    another voice in force than the original did (as the tokenizer writes a change of
    voice: just before the note's Pitch)."""
    voice = _voice_in_force(original, tokenizer)
    if _voice_in_force(before, tokenizer) == voice:
        return after
    pitch = KINDS.index("pitch")
    for i, token in enumerate(after):
        if tokenizer.voice[token] >= 0:
            return after  # it states its own voice before any note
        if tokenizer.kind[token] == pitch:
            return after[:i] + [voice] + after[i:]
    return after


@torch.no_grad()
def log_likelihood_after(net, tokenizer: Tokenizer, theme: torch.Tensor,
                         rows: list[list[int]], starts: list[int], batch: int = 16) -> np.ndarray:
    """The model's log-likelihood of each row's tokens from index ``starts[i]`` on, given
    everything before them (teacher forcing, eval mode)."""
    out = []
    for first in range(0, len(rows), batch):
        chunk, chunk_starts = rows[first:first + batch], starts[first:first + batch]
        width = max(len(r) for r in chunk)
        ids = torch.full((len(chunk), width), tokenizer.PAD, dtype=torch.long,
                         device=theme.device)
        for i, row in enumerate(chunk):
            ids[i, :len(row)] = torch.tensor(row, device=theme.device)
        logits, _ = net.generator(ids[:, :-1], theme[first:first + len(chunk)])
        picked = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        step = torch.arange(width - 1, device=theme.device)[None, :] + 1  # index of the target
        keep = (step >= torch.tensor(chunk_starts, device=theme.device)[:, None]) \
            & (ids[:, 1:] != tokenizer.PAD)
        out.append((picked * keep).sum(1).cpu().numpy())
    return np.concatenate(out)


def infill(sampler, ids: list[int], bars: tuple[int, int], n: int = 1,
           theme: torch.Tensor | None = None, seed: int | None = None,
           temperature: float = 1.0, candidates: int = CANDIDATES,
           method: str = "rescore", piece: str = "the piece") -> list[Edit]:
    """``n`` versions of a piece (its token ``ids``) with bars ``first..last`` written
    again by ``sampler``'s model; see the module's docstring. ``theme`` (1, theme_dim)
    defaults to the whole piece's own."""
    if method not in ("rescore", "continue"):
        raise MuseganError(f"unknown infill method {method!r} (rescore or continue)")
    if n < 1:
        raise MuseganError(f"n must be at least 1, got {n}", cli=f"-n must be at least 1, got {n}")
    _check_candidates(candidates)
    tok = sampler.tokenizer
    offsets = bar_offsets(ids, tok)
    first, last = check_bars(bars, len(offsets), piece)
    # The gap starts after bar `first`'s Bar token and header (its meter and tempo kept)
    # and ends at the next bar line (or the EOS).
    begin = _header_end(ids, offsets[first - 1], tok)
    stop = offsets[last] if last < len(offsets) else len(ids) - 1
    prefix, after = ids[:begin], ids[stop:]
    _, starts, end = note_steps(ids, tok)
    gap_end = starts[last] if last < len(starts) else end
    if theme is None:
        theme = sampler.encode_theme(tok.decode(ids))
    count = n if method == "continue" else candidates * n
    themes = theme.reshape(1, -1).expand(count, -1).contiguous()
    generator = (torch.Generator(device=sampler.device).manual_seed(int(seed))
                 if seed is not None else None)
    rows = decode(sampler.net, tok, themes, last - first, prefix, temperature,
                  generator=generator, continuation=True, allowed=sampler.corpus_tokens)
    gaps = []
    for row in rows:
        row = row[:-1] if row and row[-1] == tok.EOS else row
        if sampler.melody:  # one line, as the model writes its pieces
            reduced = one_line(row + [tok.EOS], tok)[:-1]
            row = prefix + reduced[_header_end(reduced, bar_offsets(reduced, tok)[first - 1],
                                               tok):]
        gaps.append(cut_notes(row, begin, gap_end, tok)[begin:])
    whole = [prefix + gap + _voice_restated(prefix + gap, after, ids[:stop], tok)
             for gap in gaps]
    scored = method == "rescore" and len(after) > 1
    if not scored:
        return [Edit(whole[i], (first, last), i, None) for i in range(n)]
    weights = log_likelihood_after(sampler.net, tok, themes, whole,
                                   [len(prefix) + len(g) for g in gaps])
    # Gumbel-top-n: n draws without replacement, each in proportion to exp(weight).
    gumbel = -torch.log(-torch.log(torch.rand(count, generator=generator,
                                              device=generator.device if generator else None)
                                   .clamp(1e-12, 1 - 1e-12)))
    order = torch.argsort(torch.from_numpy(weights).float() + gumbel.cpu(), descending=True)
    return [Edit(whole[i], (first, last), i, float(weights[i])) for i in order[:n].tolist()]


def _check_candidates(candidates: int) -> None:
    if candidates < 1:
        raise MuseganError(f"candidates must be at least 1, got {candidates}",
                           cli=f"--candidates must be at least 1, got {candidates}")


# ---------------------------------------------------------------------- polish

@dataclass
class Change:
    """A bar polish looked at: its number (from 1), the critic's score before and after,
    and whether the new bar was kept."""

    bar: int
    before: float
    after: float
    kept: bool


def polish(sampler, ids: list[int], bars_max: int | None = None, seed: int | None = None,
           candidates: int = CANDIDATES, temperature: float = 1.0,
           piece: str = "the piece") -> tuple[list[int], list[Change]]:
    """The piece with its weakest bars (by the critic, at most ``bars_max``, default a
    quarter of the piece) infilled, each kept only if the critic scores it higher."""
    sampler.require_critic("polish")
    tok = sampler.tokenizer
    count = len(bar_offsets(ids, tok))
    if count == 0:
        raise MuseganError(f"{piece} has no bars to polish")
    bars_max = max(1, count // 4) if bars_max is None else bars_max
    if bars_max < 1:
        raise MuseganError(f"bars_max must be at least 1, got {bars_max}",
                           cli=f"--bars-max must be at least 1, got {bars_max}")
    _check_candidates(candidates)
    theme = sampler.encode_theme(tok.decode(ids))
    scores = sampler.judge([ids], as_written=True)[0].bars
    weakest = sorted(range(count), key=lambda i: scores[i])[:bars_max]
    changes = []
    for number, bar in enumerate(sorted(weakest)):
        before = scores[bar]  # the piece as it stands, with the bars kept so far
        options = infill(sampler, ids, (bar + 1, bar + 1), n=4, theme=theme,
                         seed=None if seed is None else seed + number, candidates=candidates,
                         temperature=temperature, piece=piece)
        # Each option as the file it would be written as, so that the scores are the ones
        # `critique` gives the written piece.
        rows = [canonical(o.ids, tok) for o in options]
        judged = sampler.judge(rows, as_written=True)
        best = max(range(len(rows)), key=lambda i: judged[i].bars[bar])
        after = judged[best].bars[bar]
        kept = after > before
        if kept:
            ids, scores = rows[best], judged[best].bars
        changes.append(Change(bar + 1, before, after, kept))
    return ids, changes


# ---------------------------------------------------------------------- restyle

@torch.no_grad()
def restyle(sampler, ids: list[int], theme: torch.Tensor, keep: str = "rhythm", n: int = 1,
            seed: int | None = None, temperature: float = 1.0,
            meter_id: int | None = None) -> list[list[int]]:
    """``n`` versions of a piece (its ``ids``) written from ``theme`` (1, theme_dim),
    keeping its rhythm or its pitches; see the module's docstring. ``meter_id`` (a
    TimeSig token) is the meter of a ``keep="pitches"`` piece (default: the model's
    choice)."""
    if keep not in KEEP:
        raise MuseganError(f"keep must be one of {', '.join(KEEP)}, not {keep!r}")
    if n < 1:
        raise MuseganError(f"n must be at least 1, got {n}", cli=f"-n must be at least 1, got {n}")
    tok, device = sampler.tokenizer, sampler.device
    themes = theme.reshape(1, -1).expand(n, -1).contiguous()
    generator = torch.Generator(device=device).manual_seed(int(seed)) if seed is not None \
        else None
    pitch_tokens = torch.zeros(len(tok), dtype=torch.bool, device=device)
    pitch_tokens[tok.token_range("pitch").start:tok.token_range("pitch").stop] = True
    if keep == "rhythm":
        return _keep_rhythm(sampler, ids, themes, pitch_tokens, generator, temperature)
    return _keep_pitches(sampler, ids, themes, pitch_tokens, generator, temperature, meter_id)


def _start(sampler, themes, generator):
    """What both restyles begin with: the runner fed BOS and its logits, the pieces'
    random streams, every row's index, and the rows (BOS each)."""
    tok, device, n = sampler.tokenizer, sampler.device, themes.size(0)
    runner = sampler.net.incremental(themes)
    logits = runner.feed(torch.tensor([[tok.BOS]], device=device).expand(n, -1))
    return (runner, logits, RowUniforms.drawn(n, generator, device), torch.arange(n, device=device),
            [[tok.BOS] for _ in range(n)])


def _keep_rhythm(sampler, ids, themes, pitch_tokens, generator, temperature):
    """Every token the piece's own but its pitches, which the model chooses."""
    tok, device, n = sampler.tokenizer, sampler.device, themes.size(0)
    grammar = Grammar(tok, n, len(bar_offsets(ids, tok)), device, None,
                      allowed=sampler.corpus_tokens, tempo_changes=True)
    runner, logits, uniforms, every, rows = _start(sampler, themes, generator)
    for index in range(1, len(ids)):
        template = ids[index]
        if pitch_tokens[template]:
            mask = grammar.mask() & pitch_tokens
            mask[~mask.any(1), template] = True  # the grammar allows none: keep the piece's
            token = sample_token(logits, mask, temperature, uniform=uniforms.next(every))
        else:
            token = torch.full((n,), template, dtype=torch.long, device=device)
        grammar.update(token)
        for row, t in zip(rows, token.tolist(), strict=True):
            row.append(t)
        if index + 1 < len(ids):
            logits = runner.step(token)
    return rows


def _keep_pitches(sampler, ids, themes, pitch_tokens, generator, temperature, meter_id):
    """The model writes freely, but each pitch it writes is the piece's next one."""
    tok, device, n = sampler.tokenizer, sampler.device, themes.size(0)
    wanted = [t for t in ids if pitch_tokens[t]]
    if not wanted:
        raise MuseganError("the piece has no notes whose pitches could be kept")
    count = len(bar_offsets(ids, tok))
    bars = 4 * count + 8  # room enough: the piece ends when its pitches run out
    grammar = Grammar(tok, n, bars, device, None, allowed=sampler.corpus_tokens,
                      time_signature_id=meter_id)
    runner, logits, uniforms, every, rows = _start(sampler, themes, generator)
    used = [0] * n  # pitches written so far, per piece
    finished = [False] * n
    for _ in range(len(ids) * 4 + bars * MAX_TOKENS_PER_BAR):
        grammar.sounding.zero_()  # repeated pitches are cut apart afterwards
        mask = grammar.mask()
        for row in range(n):  # only the piece's next pitch may be written
            nxt = wanted[used[row]] if used[row] < len(wanted) else None
            allowed_next = nxt is not None and bool(mask[row, nxt])
            mask[row] &= ~pitch_tokens
            if allowed_next:
                mask[row, nxt] = True
            if not mask[row].any():  # a note must come but its pitch cannot: take it
                mask[row, nxt if nxt is not None else tok.EOS] = True
        token = sample_token(logits, mask, temperature, uniform=uniforms.next(every))
        grammar.update(token)
        for row, t in enumerate(token.tolist()):
            if finished[row]:
                continue
            rows[row].append(t)
            if pitch_tokens[t]:
                used[row] += 1
            # After the last pitch's Duration, or at the grammar's end, the piece ends.
            if t == tok.EOS or (used[row] == len(wanted)
                                and KINDS[tok.kind[t]] == "duration"):
                finished[row] = True
        if all(finished):
            break
        logits = runner.step(token)
    return [_separate_repeats(ids if ids[-1] == tok.EOS else ids + [tok.EOS], tok)
            for ids in rows]


def _separate_repeats(ids: list[int], tokenizer: Tokenizer) -> list[int]:
    """Cut a note short where the same pitch is struck again while it sounds (MIDI cannot
    tell two such notes apart)."""
    notes, _, _ = note_steps(ids, tokenizer)
    out = list(ids)
    last_onset: dict[int, int] = {}  # pitch -> index of its note's Duration token, later first
    for index in sorted(notes, reverse=True):
        pitch = int(tokenizer.value[ids[index - 2]])
        onset, length = notes[index]
        if pitch in last_onset:
            nxt = notes[last_onset[pitch]][0]
            if onset + length > nxt > onset:
                out[index] = duration_at_most(tokenizer, nxt - onset)
        last_onset[pitch] = index
    return out


# ---------------------------------------------------------------------- files

def check_outputs(out, stems: list[str], plot: bool = False, force: bool = False) -> list:
    """The MIDI paths ``write_edits`` would write; an error now if one exists (unless
    ``force``) or ``out`` is not a folder that can be written to, before any work is
    done. Nothing is made: an edit that fails leaves no empty folder behind."""
    from pathlib import Path

    from musegan.errors import output_exists, writable_folder

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MuseganError(f"{out} is a file; the output must be a folder",
                           cli=f"{out} is a file; give --out a folder")
    paths = [out / f"{stem}.mid" for stem in stems]
    clashes = [q for p in paths for q in (p, p.with_suffix(".json"), p.with_suffix(".png"))
               if q.exists() and (q.suffix != ".png" or plot)]
    if clashes and not force:
        raise output_exists(clashes[0])
    writable_folder(out, keep=False)
    return paths


def write_edits(sampler, rows: list[list[int]], out, stems: list[str], sidecars: list[dict],
                plot: bool = False, shade: list[list[int]] | None = None,
                force: bool = False) -> list:
    """Write each edited piece as ``out/STEM.mid`` with a JSON sidecar (what was kept, the
    seed, the theme: everything needed to make it again) and, with ``plot``, a piano roll
    with the rewritten bars (``shade``, numbered from 1) shaded. Nothing is written if
    any file would be replaced, unless ``force``."""
    import json

    from musegan.files import write_midi, write_text
    from musegan.render import piano_roll_png

    paths = check_outputs(out, stems, plot, force)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for i, (path, row) in enumerate(zip(paths, rows, strict=True)):
        midi = sampler.tokenizer.decode(row)
        write_midi(midi, path)
        write_text(path.with_suffix(".json"), json.dumps(
            {"model": sampler.name, **sidecars[i]}, indent=1) + "\n")
        if plot:
            piano_roll_png(midi, path.with_suffix(".png"), title=path.name,
                           shade=shade[i] if shade else None)
    return paths


__all__ = ["CANDIDATES", "Change", "Edit", "bar_offsets", "check_bars", "check_outputs", "infill",
           "log_likelihood_after", "parse_bars", "polish", "restyle", "write_edits"]

