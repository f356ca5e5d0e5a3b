"""Form and endings: pieces made of parts that repeat, and a last note on the tonic.

**Form.** A form is a string of part letters, ``"AABB"``, ``"AB"``, ``"AABA"``, ...; each
part is ``part_bars`` bars. A letter seen for the first time is written by the model,
continuing the piece so far; a letter seen before repeats that part exactly. The model
reads every repeat (its state runs through the repeated tokens), so what follows answers
what came before, as in a folk tune played AABB.

**Endings.** Unless asked not to, a piece ends on a note of the tonic chord held at least
a beat. The tonic is the key of the notes so far (primer included): the Krumhansl-
Schmuckler key finder, music21's major and minor profiles correlated with the piece's
duration-weighted pitch-class histogram. The last bar is written ``ENDING_CANDIDATES``
times; the first candidate whose last onset holds a tonic-chord note of a beat or more is
kept. If none does, the first candidate is ended by hand: its last onset that leaves a
beat before the bar line keeps one note, moved to the nearest pitch of the tonic chord
and held to the bar line, and what followed it in the bar is dropped.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from musegan.decoding import (
    PieceSeeds,
    Prefixed,
    RowUniforms,
    Sampling,
    Writer,
    decode_until,
    note_steps,
    read_prefix,
)
from musegan.errors import MuseganError
from musegan.tokenizer import KINDS, MIDI_DEFAULT_TEMPO, Tokenizer

PART_BARS = 8  # bars per part: the 8-bar strain of dance tunes
ENDING_CANDIDATES = 8  # last bars written per piece to find one that ends on the tonic
FORM_PATTERN = re.compile(r"^[A-Z]+$")
MAJOR_TRIAD, MINOR_TRIAD = (0, 4, 7), (0, 3, 7)


def check_form(form: str, part_bars: int, bars: int | None = None) -> int:
    """The bars a form makes; a clear error for a bad form, or one that disagrees with
    ``bars``."""
    if not FORM_PATTERN.match(form):
        raise MuseganError(f"a form is a string of capital part letters such as AABB, "
                           f"got {form!r}")
    if part_bars < 1:
        raise MuseganError(f"part_bars must be at least 1, got {part_bars}",
                           cli=f"--part-bars must be at least 1, got {part_bars}")
    total = len(form) * part_bars
    if bars is not None and bars != total:
        raise MuseganError(
            f"form {form} of {part_bars}-bar parts makes {total} bars, not {bars}; "
            f"ask for {total} bars or leave bars out",
            cli=f"--form {form} with --part-bars {part_bars} makes {total} bars, not "
                f"--bars {bars}; drop --bars or make it {total}")
    return total


@torch.inference_mode()
def decode_form(net: Writer, tokenizer: Tokenizer, theme: torch.Tensor, form: str,
                part_bars: int, prefix: list[int], continuation: bool = False,
                tempo_id: int | None = None, ending: bool = True, *,
                temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None,
                seeds: PieceSeeds | None = None, **options) -> list[list[int]]:
    """Write n = len(theme) pieces in ``form`` after ``prefix`` (BOS, or a primer's ids
    without EOS); ``options`` are ``decode``'s ``allowed``, ``tempo_changes`` and
    ``time_signature_id``. Returns the ids of each piece, ending with EOS. Each part and
    the ending draw from streams of the pieces' ``seeds`` (default: drawn from
    ``generator``), so a piece is the same however many are written beside it.

    A part written before another is written on to that part's first Bar, and the state
    there is kept (``Prefixed.write_to_last_bar``): the next part written reads only the
    repeats since (``Prefixed.read``), not the whole piece again.
    """
    n, sampling = theme.size(0), Sampling(temperature, top_k, top_p)
    seeds = seeds or PieceSeeds.drawn(n, generator)
    rows = [list(prefix) for _ in range(n)]
    parts: dict[str, list[tuple[list[int], dict]]] = {}  # its tokens, what held at its start
    ends_with = form[-1] if ending else None  # the part whose first writing ends the piece
    kept: Prefixed | None = None  # the pieces so far read, and the Bar after them
    unread: list[list[int]] = [[] for _ in range(n)]  # repeats since, their first Bar read
    for index, letter in enumerate(form):
        if letter in parts:
            restated = [_restated(part, start, row, tokenizer)
                        for row, (part, start) in zip(rows, parts[letter], strict=True)]
            rows = [row + more for row, more in zip(rows, restated, strict=True)]
            unread = [row + more for row, more in zip(unread, restated, strict=True)]
            continue
        starts = [len(row) for row in rows]
        more_after = any(later not in form[:index + 1] for later in form[index + 1:])
        # the bar to stop at: the next part's first (to go on from), or the last (to end on)
        stop = 1 if letter != ends_with and more_after else 0
        if kept is None:  # the first part, or one after an ending chosen among candidates
            opening = index == 0 and not continuation  # the rows are only the BOS
            bars, start_ids, held = _bars_after(tokenizer, part_bars + stop, rows, opening)
            start = read_prefix(net, tokenizer, theme, bars, start_ids, tempo_id, held,
                                **options)
        else:  # the repeats since the last part written, then this part's first Bar
            start = kept.read([row[1:] + [tokenizer.BAR] if row else [] for row in unread],
                            part_bars - 1 + stop)
        tempo_id = None  # the chosen tempo is stated once, first
        uniforms = RowUniforms(seeds.next(), theme.device)
        if letter == ends_with:
            rows, kept = end_on_tonic(start.write_to_last_bar(uniforms, sampling), tokenizer,
                                    sampling, allowed=options.get("allowed"),
                                    seeds=seeds.next(ENDING_CANDIDATES)), None
        elif stop:
            kept = start.write_to_last_bar(uniforms, sampling)
            rows = [row[:-1] for row in kept.rows()]  # its last Bar is the next part's
        else:
            rows = [_without_eos(row, tokenizer) for row in start.write(uniforms, sampling)]
        unread = [[] for _ in range(n)]
        parts[letter] = [(row[at:], state_of(row[:at], tokenizer))
                         for row, at in zip(rows, starts, strict=True)]
    return [row + [tokenizer.EOS] for row in rows]


def _bars_after(tokenizer: Tokenizer, bars: int, rows: list[list[int]],
                opening: bool) -> tuple[int, list, bool]:
    """``read_prefix``'s bars, prefix and continuation for writing ``bars`` more bars
    after ``rows``: a piece's opening (the rows are only BOS, the first bar states meter
    and tempo), or new music that starts at a bar line (the last bar so far is not added
    to) and keeps the meter (and the tempo, unless one is chosen) in force."""
    if opening:
        return bars, rows[0], False
    # the Bar is given, so the decoder finishes it and writes bars - 1 more
    return bars - 1, [row + [tokenizer.BAR] for row in rows], True


def _without_eos(row: list[int], tokenizer: Tokenizer) -> list[int]:
    return row[:-1] if row[-1] == tokenizer.EOS else row


def _restated(part: list[int], start: dict[str, int], row: list[int],
              tokenizer: Tokenizer) -> list[int]:
    """A part's tokens as they repeat after ``row``, sounding the same.

    ``start`` holds the time signature, tempo and program in force where the part was
    first written. The repeat's first bar states the meter and tempo the part had, where
    they differ from those in force now, and only then (the tokenizer writes them only
    when they change); its first note states its program on the same rule.
    """
    kind = tokenizer.kind
    now = state_of(row, tokenizer)
    body = 1  # part[0] is the part's first Bar; its header follows
    header: dict[str, int] = {}
    while body < len(part) and KINDS[kind[part[body]]] in ("time_signature", "tempo"):
        header[KINDS[kind[part[body]]]] = part[body]
        body += 1
    out = part[:1]
    for name in ("time_signature", "tempo"):
        wanted = header.get(name, start[name])
        if wanted != now[name]:
            out.append(wanted)
    program, stated = now["program"], False
    for token in part[body:]:
        name = "program" if tokenizer.voice[token] >= 0 else KINDS[kind[token]]
        if not stated and name == "program":
            stated = True
            if token == program:
                continue
        elif not stated and name == "pitch":
            stated = True
            if start["program"] != program:
                out.append(start["program"])
        out.append(token)
    return out


def state_of(row: list[int], tokenizer: Tokenizer) -> dict[str, int]:
    """The time signature, tempo and voice (Program or Track) tokens in force after ``row``
    (MIDI's 4/4, 120 bpm and the first program until a piece states others)."""
    defaults = {"time_signature":
                tokenizer.token_range("time_signature")[tokenizer.default_time_signature],
                "tempo": tokenizer.tempo_id(MIDI_DEFAULT_TEMPO),
                "program": tokenizer.token_range("program")[0]}
    return {name: _last_of(row, tokenizer, name) or default
            for name, default in defaults.items()}


def _last_of(row: list[int], tokenizer: Tokenizer, name: str) -> int | None:
    code = KINDS.index(name)
    for token in reversed(row):
        if tokenizer.kind[token] == code or (name == "program" and tokenizer.voice[token] >= 0):
            return token
    return None


# ---------------------------------------------------------------------- endings

# music21's Krumhansl-Schmuckler key profiles (KrumhanslSchmuckler().getWeights(mode)),
# written out: importing music21 to read them took 0.24 s of every `musegan generate`.
# tests/test_form.py checks them against music21's.
KEY_PROFILES = {
    "major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
    "minor": (6.33, 2.68, 3.52, 5.38, 2.6, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
}


# (24, 12): each mode's profile rolled to each tonic, major first; and standardised
ROLLED_RAW = np.array([np.roll(np.array(KEY_PROFILES[mode]), tonic)
                       for mode in ("major", "minor") for tonic in range(12)])
ROLLED_PROFILES = ROLLED_RAW - ROLLED_RAW.mean(1, keepdims=True)
ROLLED_PROFILES /= np.linalg.norm(ROLLED_PROFILES, axis=1, keepdims=True)


def key_of(pitches: np.ndarray, durations: np.ndarray) -> tuple[int, str]:
    """(tonic pitch class, "major" or "minor") of notes, by the Krumhansl-Schmuckler key
    finder with music21's profiles: the key whose profile correlates best with the
    duration-weighted pitch-class histogram (the first of equals, major before minor)."""
    histogram = np.bincount(np.asarray(pitches) % 12, weights=durations, minlength=12)
    centred = histogram - histogram.mean()
    if not np.any(centred):  # no notes, or all pitch classes alike: no key to find
        return 0, "major"
    correlation = ROLLED_PROFILES @ (centred / np.linalg.norm(centred))  # Pearson's r
    # Keys that tie (a tritone, an augmented triad) are told apart as the old loop over
    # np.corrcoef did, whose rounding decides: the first of its highest.
    tied = np.flatnonzero(correlation >= correlation.max() - 1e-9)
    if len(tied) > 1:
        exact = [np.corrcoef(histogram, ROLLED_RAW[k])[0, 1] for k in tied]
        best = int(tied[int(np.argmax(exact))])
    else:
        best = int(tied[0])
    return best % 12, ("major", "minor")[best // 12]


def tonic_chord(ids: list[int], tokenizer: Tokenizer) -> set[int]:
    """The pitch classes of the tonic triad of the key of the notes in ``ids``."""
    score = tokenizer.decode_score(ids)
    pitches = [n.pitch for t in score.tracks if not t.is_drum for n in t.notes]
    durations = [n.duration for t in score.tracks if not t.is_drum for n in t.notes]
    tonic, mode = key_of(np.array(pitches, dtype=np.int64), np.array(durations, dtype=float))
    return {(tonic + step) % 12 for step in (MAJOR_TRIAD if mode == "major" else MINOR_TRIAD)}


def beat_steps(tokenizer: Tokenizer, time_signature: int) -> int:
    """Grid steps in a beat of a time signature (compound meters such as 6/8 beat in
    dotted quarters, as pretty_midi counts them)."""
    n, d = tokenizer.time_signatures[time_signature]
    compound = n % 3 == 0 and n > 3
    return 4 * tokenizer.steps_per_quarter // d * (3 if compound else 1)


def last_bar(ids: list[int], tokenizer: Tokenizer) -> tuple[int, int, int, list[tuple]]:
    """The last bar of ``ids``: where its Bar token is, its length and its beat in steps,
    and its notes as (position, token index of Pitch, pitch, duration)."""
    bar_at = max(i for i, t in enumerate(ids) if t == tokenizer.BAR)
    ts = int(tokenizer.value[state_of(ids, tokenizer)["time_signature"]])
    notes, position = [], 0
    kind, value = tokenizer.kind, tokenizer.value
    for i in range(bar_at + 1, len(ids)):
        name = KINDS[kind[ids[i]]]
        if name == "position":
            position = int(value[ids[i]])
        elif name == "pitch" and i + 2 < len(ids):
            notes.append((position, i, int(value[ids[i]]), int(value[ids[i + 2]])))
    return bar_at, int(tokenizer.bar_steps[ts]), beat_steps(tokenizer, ts), notes


def held_to_bar_line(ids: list[int], tokenizer: Tokenizer,
                     allowed: torch.Tensor | None = None) -> list[int]:
    """``ids`` with each note of its last bar that would sound past the bar line cut to
    end there (or as near before it as an ``allowed`` Duration can), so that the piece
    ends with its last bar. (Notes of earlier bars are kept: the key was found from them.)"""
    _, bar_length, _, notes = last_bar(ids, tokenizer)
    values = tokenizer.value
    durations = [t for t in tokenizer.token_range("duration")
                 if allowed is None or bool(allowed[t])] or list(tokenizer.token_range("duration"))
    out = list(ids)
    for position, index, _, duration in notes:  # index: the note's Pitch token
        room = bar_length - position
        if duration > room:
            fitting = [t for t in durations if values[t] <= room]
            out[index + 2] = (max(fitting, key=lambda t: values[t]) if fitting
                              else min(durations, key=lambda t: values[t]))
    return out


def ends_on_tonic(ids: list[int], tokenizer: Tokenizer, chord: set[int]) -> bool:
    """Whether the last onset of ``ids`` holds a tonic-chord note of a beat or more."""
    _, _, beat, notes = last_bar(ids, tokenizer)
    if not notes:
        return False
    last = max(note[0] for note in notes)
    return any(position == last and pitch % 12 in chord and duration >= beat
               for position, _, pitch, duration in notes)


def force_tonic_ending(ids: list[int], tokenizer: Tokenizer, chord: set[int],
                       allowed: torch.Tensor | None = None) -> list[int]:
    """``ids`` with its last bar ended on the tonic (see the module docstring), with
    pitches and durations among the ``allowed`` tokens (V,) where it can."""
    def ok(token: int) -> bool:
        return allowed is None or bool(allowed[token])

    pitches = [p for p in range(128) if p % 12 in chord
               and ok(tokenizer.token_range("pitch")[p])] or \
        [p for p in range(128) if p % 12 in chord]
    bar_at, bar_length, beat, notes = last_bar(ids, tokenizer)
    if not notes:  # an empty last bar: one note of the tonic chord, the whole bar long
        written = [int(tokenizer.value[t]) for t in ids if KINDS[tokenizer.kind[t]] == "pitch"]
        near = written[-1] if written else 67  # G4: the middle of a fiddle tune's range
        pitch = min(pitches, key=lambda p: (abs(p - near), p))
        velocities = tokenizer.token_range("velocity")
        velocity = next((t for t in reversed(ids) if t in velocities),
                        velocities[len(velocities) // 2])
        return ids[:bar_at + 1] + [tokenizer.token_range("position")[0],
                                   tokenizer.token_range("pitch")[pitch], velocity,
                                   _duration_token(tokenizer, bar_length, allowed)]
    fits = [n for n in notes if n[0] <= bar_length - beat] or [min(notes)]
    position = max(n[0] for n in fits)
    top = max((n for n in fits if n[0] == position), key=lambda n: n[2])
    # The bar up to the Pitch of that onset's first note, then the one note, held: of a
    # pitch its voice is not still sounding there (MIDI could not tell the two apart).
    first_pitch = min(n[1] for n in notes if n[0] == position)
    held = _sounding(ids[:first_pitch], tokenizer, position)
    pitch = min(pitches, key=lambda p: (p in held, abs(p - top[2]), p))
    velocity = ids[top[1] + 1]
    return ids[:first_pitch] + [tokenizer.token_range("pitch")[pitch], velocity,
                                _duration_token(tokenizer, max(beat, bar_length - position),
                                                allowed)]


def _sounding(ids: list[int], tokenizer: Tokenizer, position: int) -> set[int]:
    """The pitches the voice in force at the end of ``ids`` still sounds at ``position``
    of the last bar: its notes struck before then whose durations reach past it."""
    durations, starts, _ = note_steps(ids, tokenizer)
    now = starts[-1] + position
    voice, voices = tokenizer.token_range("program")[0], {}  # program 0's own voice first
    for i, token in enumerate(ids):
        if tokenizer.voice[token] >= 0:
            voice = token
        elif i in durations:
            voices[i] = voice
    return {int(tokenizer.value[ids[i - 2]]) for i, (onset, length) in durations.items()
            if voices.get(i) == voice and onset < now < onset + length}


def _duration_token(tokenizer: Tokenizer, steps: int, allowed: torch.Tensor | None = None) -> int:
    """The Duration token of the shortest duration of at least ``steps`` (of the
    ``allowed`` ones, if any is that long; else the longest allowed)."""
    tokens = list(tokenizer.token_range("duration"))
    usable = [t for t in tokens if allowed is None or bool(allowed[t])] or tokens
    values = tokenizer.value
    longer = [t for t in usable if values[t] >= steps]
    return min(longer, key=lambda t: values[t]) if longer else max(usable, key=lambda t: values[t])


def end_on_tonic(start: Prefixed, tokenizer: Tokenizer, sampling: Sampling,
                 generator: torch.Generator | None = None,
                 allowed: torch.Tensor | None = None,
                 seeds: list[int] | None = None) -> list[list[int]]:
    """The pieces of ``start`` (each at the start of its last bar, its Bar read) with
    their last bar chosen or made to end on the tonic chord (with pitches and durations
    among the ``allowed`` tokens where it can). Returns them without EOS. The candidates
    draw from ``decode_until``'s ``seeds`` (default: drawn from ``generator``).

    Up to ``ENDING_CANDIDATES`` last bars per piece, written one round at a time: only
    the pieces whose candidates so far all miss the tonic get another.
    """
    rows = [row[:-1] for row in start.rows()]  # the pieces up to their last Bar
    # The key of the notes so far, or, in a piece of one bar, of its first candidate.
    chords: list[set[int] | None] = [tonic_chord(row, tokenizer)
                                     if _has_notes(row, tokenizer) else None for row in rows]
    ended_well: set[int] = set()  # the pieces whose last candidate ends on the tonic

    def ends_well(piece: int, candidates: list[list[int]]) -> bool:
        chord = chords[piece]
        if chord is None:
            chord = chords[piece] = tonic_chord(_without_eos(candidates[0], tokenizer),
                                                tokenizer)
        if ends_on_tonic(held(candidates[-1]), tokenizer, chord):
            ended_well.add(piece)
        return piece in ended_well

    def held(candidate: list[int]) -> list[int]:  # the last bar ends at its bar line
        return held_to_bar_line(_without_eos(candidate, tokenizer), tokenizer, allowed)

    written = decode_until(start, ENDING_CANDIDATES, ends_well, sampling, generator, seeds)
    ended = []
    for piece, candidates in enumerate(written):
        chord = chords[piece]
        assert chord is not None  # set by ends_well
        if piece in ended_well:
            ended.append(held(candidates[-1]))
            continue
        forced = force_tonic_ending(held(candidates[0]), tokenizer, chord, allowed)
        cut = held_to_bar_line(forced, tokenizer, allowed)
        # held a beat, past the bar line, where the bar's notes all lie in its last beat
        ended.append(cut if ends_on_tonic(cut, tokenizer, chord) else forced)
    return ended


def _has_notes(ids: list[int], tokenizer: Tokenizer) -> bool:
    code = KINDS.index("pitch")
    return any(tokenizer.kind[t] == code for t in ids)
