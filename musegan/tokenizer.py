"""A REMI-family tokenizer for multi-track MIDI.

A piece becomes one stream of tokens::

    BOS
    Bar [TimeSig_n/d] [Tempo_t]                       # a bar; meter and tempo when they change
        Position_p [Tempo_t] ([Program_k|Track_name] Pitch_x Velocity_v Duration_d)+
        ...
    Bar ...
    EOS

* Time is a grid of ``steps_per_quarter`` steps per quarter note (12 by default, so that
  16ths and eighth-note triplets are both exact). A bar's length follows its time signature.
* Notes are ordered by onset, then voice, then pitch. A voice is a program, or a *part*:
  a named track (``Track_Soprano``, ``Track_MELODY``) of a program that several tracks of
  a piece share. The parts are the tokenizer's ``parts`` setting, which ``musegan prepare``
  learns from the corpus; tracks of one program that are not parts merge into one voice.
  A ``Program`` or ``Track`` token is written only when the voice changes, so a
  one-instrument melody pays a single token.
* ``Duration`` is exact in steps up to the longest bar, then in quarter notes up to
  ``max_duration_quarters``; longer notes are clamped.
* Velocity and tempo are binned (velocity linearly, tempo on a log scale).

Decoding is total: any sequence of ids decodes to valid MIDI; tokens that make no sense
where they stand (a Velocity with no Pitch before it, a Position past the bar's end, ...)
are skipped.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import numpy as np
import pretty_midi
from symusic import Note, Score, Tempo, TimeSignature, Track

from musegan.errors import MidiError, MuseganError, output_exists
from musegan.midi import MidiSource, load_score, score_to_pretty_midi

TOKENIZER_FORMAT = "musegan-tokenizer"
TOKENIZER_VERSION = 1  # bump when the meaning of an id changes; from_dict refuses others

DRUMS = 128  # the Program value of drum tracks (GM channel 10)
MIDI_DEFAULT_TEMPO = 120.0  # MIDI files without a tempo event play at 120 quarters/minute
MIDI_DEFAULT_TIME_SIGNATURE = (4, 4)
MAX_QUARTERS_PER_BAR = 8  # 4/2, 8/4, 16/8: longer "bars" are almost always broken files
DECODE_TICKS_PER_QUARTER = 480  # resolution of decoded MIDI files (a multiple of the grid)
VOICE_SLOTS = 64  # a voice is program * VOICE_SLOTS + slot; slot 0 is the program's own
MAX_PARTS = 48  # part tokens a vocabulary may hold
PIECE_SHIFT = 20  # a batch puts piece i's steps at i << 20: ~12 hours at 120 bpm a piece
MAX_BATCH_PIECES = 1024  # keeps (piece << PIECE_SHIFT) * 8 * span inside int64


def _all_time_signatures() -> tuple[tuple[int, int], ...]:
    """Every n/d with d in 2, 4, 8, 16 and at most MAX_QUARTERS_PER_BAR quarters a bar."""
    return tuple(
        (n, d)
        for d in (2, 4, 8, 16)
        for n in range(1, MAX_QUARTERS_PER_BAR * d // 4 + 1)
    )


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything that defines a tokenizer's vocabulary. JSON-safe through ``to_dict``."""

    steps_per_quarter: int = 12  # 16ths (3 steps) and eighth triplets (4 steps) are exact
    velocity_bins: int = 16  # dynamics from ppp to fff in steps a listener can hear
    tempo_bins: int = 64  # log-spaced, 3.7 % apart: within 1.9 % of any tempo in range
    tempo_range: tuple[float, float] = (30.0, 300.0)  # largo to prestissimo; clamped outside
    max_duration_quarters: int = 16  # four bars of 4/4: longer notes are clamped
    time_signatures: tuple[tuple[int, int], ...] = field(default_factory=_all_time_signatures)
    # Named parts, (track name, program 0-127 or DRUMS), in the order notes of one onset
    # are written. Empty: tracks of one program merge (the vocabulary of musegan 0.1).
    parts: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        # Accept lists (from JSON) and normalise to tuples so configs compare and hash.
        object.__setattr__(self, "tempo_range", tuple(float(t) for t in self.tempo_range))
        object.__setattr__(
            self, "time_signatures", tuple((int(n), int(d)) for n, d in self.time_signatures)
        )
        object.__setattr__(self, "parts", tuple((str(name), int(program))
                                                for name, program in self.parts))
        if self.steps_per_quarter < 1:
            raise MuseganError("steps_per_quarter must be at least 1")
        if self.velocity_bins < 1 or self.tempo_bins < 1:
            raise MuseganError("velocity_bins and tempo_bins must be at least 1")
        low, high = self.tempo_range
        if not 0 < low <= high:
            raise MuseganError(f"tempo_range must be 0 < low <= high, got {self.tempo_range}")
        if not self.time_signatures:
            raise MuseganError("time_signatures must not be empty")
        for n, d in self.time_signatures:
            if n < 1 or d < 1 or d & (d - 1) or (4 * n * self.steps_per_quarter) % d:
                raise MuseganError(
                    f"time signature {n}/{d} does not fit a grid of "
                    f"{self.steps_per_quarter} steps per quarter"
                )
        if self.max_duration_quarters < 1:
            raise MuseganError("max_duration_quarters must be at least 1")
        if len(self.parts) > MAX_PARTS:
            raise MuseganError(f"at most {MAX_PARTS} parts, got {len(self.parts)}")
        seen = set()
        for name, program in self.parts:
            key = (part_key(name), program)
            if not key[0] or not 0 <= program <= DRUMS or key in seen:
                raise MuseganError(f"part {name!r} on program {program}: a part needs a name, "
                                   "a program 0-128 and no twin")
            seen.add(key)


PART_MIN_SHARE = 0.05  # a track name becomes a part if this share of the pieces ...
PART_MIN_PIECES = 2  # ... and at least this many, have it beside another track of its program


def learn_parts(pieces: Iterable[Sequence[tuple[int, str, float]]]
                ) -> tuple[tuple[str, int], ...]:
    """The parts a corpus needs, for ``TokenizerConfig.parts``.

    ``pieces`` gives, per piece, (program, track name, mean pitch) for each track with
    notes. Where several tracks of a piece share a program, their names become parts when
    enough pieces have them (``PART_MIN_SHARE``, ``PART_MIN_PIECES``); tracks without
    such a name become numbered parts ``"#2"``, ``"#3"``, ... of their program, on the same
    rule (the first stays the program's own voice, as ``Tokenizer.assign_parts`` does).
    Parts are ordered by program, then from the highest voice down (Soprano before Bass).
    A corpus of one track per program needs none: the result is empty.
    """
    pieces = [list(tracks) for tracks in pieces]
    need = max(PART_MIN_PIECES, math.ceil(PART_MIN_SHARE * len(pieces)))

    def shared(tracks):
        count: dict[int, int] = {}
        for program, _, _ in tracks:
            count[program] = count.get(program, 0) + 1
        return [t for t in tracks if count[t[0]] > 1]

    named: dict[tuple[str, int], set[int]] = {}
    spelling: dict[tuple[str, int], dict[str, int]] = {}
    pitch: dict[tuple[str, int], list[float]] = {}
    for i, tracks in enumerate(pieces):
        for program, name, mean_pitch in shared(tracks):
            key = (part_key(name), program)
            if key[0]:
                named.setdefault(key, set()).add(i)
                words = " ".join(name.split())
                spelling.setdefault(key, {})[words] = spelling.get(key, {}).get(words, 0) + 1
                pitch.setdefault(key, []).append(mean_pitch)
    kept = {key for key, where in named.items() if len(where) >= need}
    numbered: dict[tuple[str, int], set[int]] = {}
    for i, tracks in enumerate(pieces):
        unnamed: dict[int, int] = {}
        for program, name, mean_pitch in shared(tracks):
            if (part_key(name), program) in kept:
                continue
            unnamed[program] = unnamed.get(program, 0) + 1
            if unnamed[program] > 1:
                key = (f"#{unnamed[program]}", program)
                numbered.setdefault(key, set()).add(i)
                pitch.setdefault(key, []).append(mean_pitch)
                spelling.setdefault(key, {key[0]: 1})
    kept |= {key for key, where in numbered.items() if len(where) >= need}
    counts = {**{k: len(v) for k, v in named.items()}, **{k: len(v) for k, v in numbered.items()}}
    chosen = sorted(kept, key=lambda key: -counts[key])[:MAX_PARTS]
    chosen.sort(key=lambda key: (key[1], 1, int(key[0][1:])) if key[0].startswith("#")
                else (key[1], 0, -float(np.mean(pitch[key]))))
    return tuple((max(spelling[key], key=lambda words: spelling[key][words]), key[1])
                 for key in chosen)


def plausible_meter(numerator: int, denominator: int) -> bool:
    """Whether a time signature is one a bar of music has: at least a dotted quarter long
    (1/4, 2/8 or 1/8 mostly mean a file whose maker did not set the meter) and within the
    vocabulary's longest bar."""
    quarters = 4 * numerator / denominator if numerator > 0 and denominator > 0 else 0
    return 1.5 <= quarters <= MAX_QUARTERS_PER_BAR


def part_key(name: str) -> str:
    """How track names are compared: case and spacing do not matter."""
    return " ".join(name.split()).casefold()


@dataclass
class _Piece:
    """A parsed piece before its notes are gridded (see ``Tokenizer._read_piece``)."""

    name: str
    tpq: int
    notes: dict  # every track's notes, track after track: time, duration, pitch, velocity
    track_sizes: list[int]  # notes per track
    programs: list[int]  # per track: 0-127, or DRUMS
    voices: list[int]  # per track: program * VOICE_SLOTS + slot (0, or 1 + its part's rank)
    bar_segments: list[tuple[int, int, int, int]]  # (first bar's step, bar length, ts, bars)
    tempo_changes: list[tuple[int, int]]  # (step, tempo bin)
    warnings: list[str]


@dataclass
class _GridNotes:
    """Notes of a batch of pieces on the grid, sorted by piece then encoding order."""

    piece: np.ndarray  # (N,) index of the piece in the batch
    step: np.ndarray  # (N,) onset in grid steps from the piece's start
    duration_bin: np.ndarray  # (N,) index into duration_values (too long: the last)
    pitch: np.ndarray
    velocity_bin: np.ndarray  # (N,) index into velocity_values
    program: np.ndarray  # 0-127, or DRUMS
    voice: np.ndarray  # program * VOICE_SLOTS + slot
    piece_sizes: list[int]  # notes per piece
    short: list[int]  # per piece: notes shorter than a step, lengthened to one
    too_long: list[int]  # per piece: notes longer than the longest duration, shortened


@dataclass
class EncodedPiece:
    """What encoding a piece yields besides its ids, for corpus building and reports."""

    ids: np.ndarray  # (T,) uint16 token ids, BOS ... EOS
    n_notes: int
    seconds: float  # length of the music, from the first bar to the end of the last note
    time_signature: str  # the first one, e.g. "6/8"
    has_drums: bool
    warnings: list[str]


# The kinds of token, in vocabulary order; ``Tokenizer.kind`` holds each id's index in
# this tuple. "special" is PAD, BOS and EOS. musegan.grammar says which kind may follow which.
KINDS = ("special", "bar", "position", "time_signature", "tempo", "program", "pitch",
         "velocity", "duration", "part")


class Tokenizer:
    """Turns MIDI into token ids and back.

    Example::

        tok = Tokenizer()
        ids = tok.encode("tune.mid")          # list[int]
        midi = tok.decode(ids)                # pretty_midi.PrettyMIDI
        tok.save("tokenizer.json"); Tokenizer.load("tokenizer.json") == tok
    """

    PAD, BOS, EOS, BAR = 0, 1, 2, 3

    def __init__(self, config: TokenizerConfig | None = None, **overrides):
        if config is None:
            config = TokenizerConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        spq = config.steps_per_quarter
        self.steps_per_quarter = spq
        self.time_signatures = config.time_signatures
        self.bar_steps = np.array([4 * n * spq // d for n, d in config.time_signatures])
        self.max_bar_steps = int(self.bar_steps.max())
        self.velocity_values = np.unique(
            np.round(np.linspace(127 / config.velocity_bins, 127, config.velocity_bins))
        ).astype(np.int64)
        self.tempo_values = _tempo_grid(*config.tempo_range, config.tempo_bins)
        long_steps = np.arange(
            self.max_bar_steps + spq, config.max_duration_quarters * spq + 1, spq
        )
        self.duration_values = np.concatenate(
            [np.arange(1, self.max_bar_steps + 1), long_steps]
        ).astype(np.int64)

        names = ["PAD", "BOS", "EOS", "Bar"]
        kinds = [0, 0, 0, 1]
        values = [0, 1, 2, 0]
        self._offset: dict[str, int] = {}

        def add(kind: str, labels: Iterable, vals: Iterable[int]):
            self._offset[kind] = len(names)
            for label, value in zip(labels, vals, strict=True):
                names.append(f"{kind_label[kind]}_{label}")
                kinds.append(KINDS.index(kind))
                values.append(int(value))

        kind_label = {"position": "Position", "time_signature": "TimeSig", "tempo": "Tempo",
                      "program": "Program", "pitch": "Pitch", "velocity": "Velocity",
                      "duration": "Duration", "part": "Track"}
        add("position", range(self.max_bar_steps), range(self.max_bar_steps))
        add("time_signature", [f"{n}/{d}" for n, d in self.time_signatures],
            range(len(self.time_signatures)))
        add("tempo", [f"{t:.1f}" for t in self.tempo_values], range(len(self.tempo_values)))
        add("program", [*range(128), "drums"], range(129))
        add("pitch", range(128), range(128))
        add("velocity", self.velocity_values, self.velocity_values)
        add("duration", self.duration_values, self.duration_values)
        # Parts come last, so a vocabulary without them is the one musegan 0.1 wrote.
        self.parts = config.parts
        labels = [_part_label(name) for name, _ in self.parts]
        clash = {label for label in labels if labels.count(label) > 1}
        add("part", [f"{label}@{program}" if label in clash else label
                     for label, (_, program) in zip(labels, self.parts, strict=True)],
            range(len(self.parts)))
        # Voices: every Program token is its program's own voice (slot 0), every Track
        # token a further voice of its program, in the order the parts are listed.
        self.part_voices = []
        slots: dict[int, int] = {}
        for _, program in self.parts:
            slots[program] = slots.get(program, 0) + 1
            self.part_voices.append(program * VOICE_SLOTS + slots[program])
        self._part_lookup = {(part_key(name), program): k
                             for k, (name, program) in enumerate(self.parts)}

        self.vocab: list[str] = names
        self._ids = {name: i for i, name in enumerate(names)}
        self.kind = np.array(kinds, dtype=np.int8)  # (V,) index into KINDS
        self.value = np.array(values, dtype=np.int64)  # (V,) the number a token carries
        self._kind_list = kinds  # plain lists: ~5x faster than numpy scalars in decode's loop
        self._value_list = values
        # (V,) per token: its voice and program (Program and Track tokens), else -1.
        self.voice = np.full(len(names), -1, dtype=np.int64)
        self.program_of = np.full(len(names), -1, dtype=np.int64)
        programs = self.token_range("program")
        self.voice[programs.start:programs.stop] = np.arange(len(programs)) * VOICE_SLOTS
        self.program_of[programs.start:programs.stop] = np.arange(len(programs))
        part_ids = self.token_range("part")
        self.voice[part_ids.start:part_ids.stop] = self.part_voices
        self.program_of[part_ids.start:part_ids.stop] = [p for _, p in self.parts]
        self._voice_lookup = np.zeros((DRUMS + 1) * VOICE_SLOTS, dtype=np.int64)
        self._voice_lookup[self.voice[self.voice >= 0]] = np.flatnonzero(self.voice >= 0)
        # The meter in force until a piece states one (MIDI's 4/4), as an index into
        # time_signatures.
        self.default_time_signature = (
            self.time_signatures.index(MIDI_DEFAULT_TIME_SIGNATURE)
            if MIDI_DEFAULT_TIME_SIGNATURE in self.time_signatures else 0
        )
        # The nearest bin of every raw velocity (1-127) and duration in steps, as tables: a
        # lookup costs a third of a search. A duration past the table is clamped to its
        # end, which is past the longest value: the last bin, as for any longer note.
        self._velocity_bin = _nearest_bins(self.velocity_values, 128)
        self._longest = int(self.duration_values[-1])
        self._duration_bin = _nearest_bins(self.duration_values, self._longest + 2)
        log_tempo = np.log(self.tempo_values)
        self._tempo_edges = (log_tempo[1:] + log_tempo[:-1]) / 2
        self._tempo_edges_list = self._tempo_edges.tolist()  # bisect on floats beats numpy
        self._default_tempo_bin = bisect.bisect_left(self._tempo_edges_list,
                                                     math.log(MIDI_DEFAULT_TEMPO))
        self._ts_lookup = {ts: i for i, ts in enumerate(self.time_signatures)}
        # Steps a piece may span: a longer one has an event far past the music.
        self.max_steps = (1 << PIECE_SHIFT) - 2 * self.max_bar_steps

    # ------------------------------------------------------------------ vocabulary

    def __len__(self) -> int:
        return len(self.vocab)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and other.config == self.config

    def __repr__(self) -> str:
        c = self.config
        parts = f", parts={[name for name, _ in c.parts]}" if c.parts else ""
        return (f"Tokenizer(vocab={len(self)}, steps_per_quarter={c.steps_per_quarter}, "
                f"velocity_bins={c.velocity_bins}, tempo_bins={c.tempo_bins}{parts})")

    def token_id(self, name: str) -> int:
        """The id of a token name such as ``"Pitch_60"`` or ``"TimeSig_6/8"``."""
        try:
            return self._ids[name]
        except KeyError:
            raise KeyError(f"no token named {name!r} in this vocabulary") from None

    def token_range(self, kind: str) -> range:
        """The contiguous ids of one kind: 'position', 'time_signature', 'tempo', 'program',
        'pitch', 'velocity', 'duration' or 'part' (Track tokens; empty without parts)."""
        code = KINDS.index(kind)
        start = self._offset[kind]
        return range(start, start + int(np.count_nonzero(self.kind == code)))

    def tempo_bin(self, bpm: float) -> int:
        """The index into ``tempo_values`` of the bin nearest ``bpm`` (on a log scale;
        tempos outside ``tempo_range`` fall in the end bins)."""
        if not bpm > 0:
            raise MuseganError(f"a tempo must be above 0 bpm, got {bpm}")
        return bisect.bisect_left(self._tempo_edges_list, math.log(bpm))

    def tempo_id(self, bpm: float) -> int:
        """The id of the ``Tempo`` token nearest ``bpm``."""
        return self.token_range("tempo")[self.tempo_bin(bpm)]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Token names for ids, for reading sequences by eye."""
        return [self.vocab[i] for i in ids]

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """A JSON-safe, versioned description that rebuilds an equal tokenizer."""
        config = dataclasses.asdict(self.config)
        config["tempo_range"] = list(config["tempo_range"])
        config["time_signatures"] = [list(ts) for ts in config["time_signatures"]]
        config["parts"] = [list(part) for part in config["parts"]]
        if not config["parts"]:  # the description musegan 0.1 wrote, which it can still read
            del config["parts"]
        return {"format": TOKENIZER_FORMAT, "version": TOKENIZER_VERSION, "config": config}

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        """Rebuild a tokenizer from ``to_dict()``; refuses other formats and versions."""
        if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT:
            raise MuseganError("not a musegan tokenizer description (no 'format' field)")
        version = data.get("version")
        if version != TOKENIZER_VERSION:
            raise MuseganError(
                f"tokenizer version {version} is not supported by this musegan "
                f"(it reads version {TOKENIZER_VERSION}); use the musegan that made it"
            )
        fields = {f.name for f in dataclasses.fields(TokenizerConfig)}
        unknown = set(data["config"]) - fields
        if unknown:
            raise MuseganError(f"unknown tokenizer settings {sorted(unknown)}")
        return cls(TokenizerConfig(**data["config"]))

    def save(self, path: str | Path, force: bool = False) -> None:
        """Write ``to_dict()`` as JSON; an existing file only with ``force``."""
        path = Path(path)
        if path.exists() and not force:
            raise output_exists(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer written by ``save``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise MuseganError(f"{path}: cannot read tokenizer JSON ({err})") from None
        try:
            return cls.from_dict(data)
        except MuseganError as err:
            raise MuseganError(f"{path}: {err}") from None

    # ------------------------------------------------------------------ encoding

    def encode(self, source: MidiSource) -> list[int]:
        """Token ids of a piece: a path, MIDI bytes, a PrettyMIDI or a symusic Score.

        Raises:
            MidiError: the file cannot be read or holds nothing the vocabulary can express.
        """
        return self.encode_piece(source).ids.tolist()

    def encode_many(self, sources: Sequence[MidiSource]) -> list[list[int]]:
        """Token ids of many pieces in one vectorized pass (``encode_batch``): about 2x
        faster than ``encode`` file by file. Raises the first file's ``MidiError``; use
        ``encode_batch`` to get the errors in place and keep going."""
        results = self.encode_batch(sources)
        for result in results:
            if isinstance(result, MidiError):
                raise result
        return [r.ids.tolist() for r in results]  # type: ignore[union-attr]

    def encode_piece(self, source: MidiSource, name: str | None = None) -> EncodedPiece:
        """Like ``encode`` but returns uint16 ids with the piece's statistics and warnings."""
        # encode_batch's work for one piece, without its bookkeeping
        piece = self._read_piece(load_score(source), _source_name(source) if name is None
                                 else name)
        return self._encode_pieces([piece])[0]

    def encode_batch(self, sources: Sequence[MidiSource],
                     names: Sequence[str] | None = None,
                     meter: tuple[int, int] | None = None) -> list[EncodedPiece | MidiError]:
        """Encode many pieces in one vectorized pass, the fast path for corpora.

        A piece that cannot be encoded yields its ``MidiError`` in its place; the others
        are unaffected. With ``meter`` (say ``(4, 4)``), a piece whose file states no time
        signature, or one a bar of music rarely has (``plausible_meter``), is barred in
        that meter instead, with a warning.
        """
        if meter is not None and tuple(meter) not in self._ts_lookup:
            raise MuseganError(f"meter {meter[0]}/{meter[1]} is not in the tokenizer's "
                               "time signatures")
        names = list(names) if names is not None else [_source_name(s) for s in sources]
        results: list[EncodedPiece | MidiError | None] = [None] * len(sources)
        pieces: list[tuple[int, _Piece]] = []
        for i, (source, name) in enumerate(zip(sources, names, strict=False)):
            try:
                pieces.append((i, self._read_piece(load_score(source), name, meter)))
            except MidiError as err:
                results[i] = err
        for start in range(0, len(pieces), MAX_BATCH_PIECES):
            chunk = pieces[start:start + MAX_BATCH_PIECES]
            for (i, _), encoded in zip(chunk, self._encode_pieces([p for _, p in chunk]),
                                       strict=True):
                results[i] = encoded
        return results  # type: ignore[return-value]

    def quantize(self, source: MidiSource) -> np.ndarray:
        """The notes exactly as the tokenizer keeps them, in encoding order.

        Returns a structured array with fields ``onset`` and ``duration`` (grid steps),
        ``pitch``, ``velocity`` (binned value), ``program`` (128 for drums) and ``part``
        (an index into ``parts``, -1 for a program's own voice).
        ``quantize(decode(encode(m)))`` equals ``quantize(m)``: that is the round trip.
        """
        piece = self._read_piece(load_score(source), _source_name(source))
        notes = self._grid_notes([piece])
        out = np.empty(len(notes.step), dtype=[("onset", "i8"), ("duration", "i8"),
                                               ("pitch", "i8"), ("velocity", "i8"),
                                               ("program", "i8"), ("part", "i8")])
        out["onset"], out["pitch"], out["program"] = notes.step, notes.pitch, notes.program
        token = self._voice_lookup[notes.voice]  # its Program or Track token
        out["part"] = np.where(self.kind[token] == KINDS.index("part"), self.value[token], -1)
        out["duration"] = self.duration_values[notes.duration_bin]
        out["velocity"] = self.velocity_values[notes.velocity_bin]
        return out

    def part_name(self, voice: int) -> str:
        """The track name decoding gives a voice: the part's name, else the instrument's."""
        program, slot = divmod(voice, VOICE_SLOTS)
        instrument = "Drums" if program == DRUMS else pretty_midi.program_to_instrument_name(
            program)
        if slot == 0:
            return instrument
        name = self.parts[self.part_voices.index(voice)][0]
        return f"{instrument} {name[1:]}" if name.startswith("#") else name

    def _to_step(self, tick: int, tpq: int) -> int:
        # Round half up, in exact integer arithmetic.
        return (tick * 2 * self.steps_per_quarter + tpq) // (2 * tpq)

    def _read_piece(self, score: Score, name: str,
                    meter: tuple[int, int] | None = None) -> _Piece:
        """Everything per piece that is not per note: checks, meter, bars and tempo."""
        tpq = score.ticks_per_quarter
        if tpq <= 0:
            raise MidiError(name, f"invalid resolution ({tpq} ticks per quarter note)")
        warnings: list[str] = []
        tracks = [track for track in _items(score.tracks) if track.note_num()]
        if not tracks:
            raise MidiError(name, "no notes in the file; nothing to learn from")
        notes, track_sizes, doubled = _untangle(*_track_notes(tracks))
        programs = [DRUMS if track.is_drum else track.program for track in tracks]
        names = [track.name for track in tracks]
        if doubled:
            warnings.append(f"{doubled} doubled notes (one pitch struck twice at once in "
                            "one track) played once")
        voices = [p * VOICE_SLOTS + (self.part_voices[k] % VOICE_SLOTS if k is not None else 0)
                  for p, k in zip(programs, self.assign_parts(programs, names), strict=True)]
        last_step = self._to_step(int(notes["time"].max()), tpq)
        meters = [(ts.time, ts.numerator, ts.denominator) for ts in _items(score.time_signatures)]
        stated = {(n, d) for _, n, d in meters}
        if meter is not None and not (stated and all(plausible_meter(*ts) for ts in stated)):
            ts_changes = [(0, self._ts_lookup[(meter[0], meter[1])])]
            was = ", ".join(f"{n}/{d}" for n, d in sorted(stated)) or "none"
            warnings.append(f"re-barred in {meter[0]}/{meter[1]} (the file's time "
                            f"signature: {was})")
        else:
            ts_changes = self._time_signature_changes(meters, name, tpq)
        bar_segments = self._bar_segments(ts_changes, last_step, name, warnings)
        tempo_changes = self._tempo_changes(score, tpq, last_step, warnings)
        return _Piece(name, tpq, notes, track_sizes, programs, voices, bar_segments,
                      tempo_changes, warnings)

    def assign_parts(self, programs: Sequence[int], names: Sequence[str]) -> list[int | None]:
        """Which part (an index into ``parts``) each track of a piece plays, or None for
        its program's own voice.

        A track whose name and program are a part's plays that part. Of the other tracks
        of one program, the first plays the program's voice and the n-th plays the
        numbered part ``"#n"`` where the vocabulary has it (else the program's voice).
        """
        if not self.parts:
            return [None] * len(programs)
        out: list[int | None] = []
        unnamed: dict[int, int] = {}
        for program, name in zip(programs, names, strict=True):
            k = self._part_lookup.get((part_key(name), program))
            if k is None:
                unnamed[program] = unnamed.get(program, 0) + 1
                if unnamed[program] > 1:
                    k = self._part_lookup.get((f"#{unnamed[program]}", program))
            out.append(k)
        return out

    def _time_signature_changes(self, meters: list[tuple[int, int, int]], name: str,
                                tpq: int) -> list[tuple[int, int]]:
        """(step, time-signature index) pairs from a file's (tick, numerator, denominator)
        events: the first at step 0, then one per change."""
        # Sort by time only (stable): of several events at one tick, the last in the file wins.
        events = sorted(meters, key=itemgetter(0)) if len(meters) > 1 else meters
        # MIDI plays 4/4 until told otherwise.
        changes: list[tuple[int, int]] = [(0, self.default_time_signature)]
        for tick, n, d in events:
            index = self._ts_lookup.get((n, d))
            if index is None:
                if n < 1 or d < 1 or d & (d - 1):
                    raise MidiError(name, f"invalid time signature {n}/{d}; fix the meter "
                                          "in your editor and export again")
                raise MidiError(name, f"time signature {n}/{d} is not in the tokenizer's "
                                      "vocabulary; add it to time_signatures")
            step = self._to_step(tick, tpq)
            if changes[-1][0] == step:  # several at one time: the last wins
                changes[-1] = (step, index)
            else:
                changes.append((step, index))
        return _runs(changes)

    def _bar_segments(self, changes: list[tuple[int, int]], last_step: int, name: str,
                      warnings: list[str]) -> list[tuple[int, int, int, int]]:
        """The bars covering steps 0..last_step, as runs of one time signature:
        (first bar's step, bar length in steps, time-signature index, number of bars).

        A time signature that changes mid-bar takes effect at the next bar line.
        """
        segments = []
        start = snapped = 0
        for j, (_, index) in enumerate(changes):
            if start > last_step:
                break
            length = int(self.bar_steps[index])
            next_change = changes[j + 1][0] if j + 1 < len(changes) else last_step + 1
            if next_change > last_step:
                n_bars = (last_step - start) // length + 1
            elif next_change <= start:  # superseded before it took effect
                continue
            else:
                n_bars = -(-(next_change - start) // length)
                snapped += start + n_bars * length != next_change
            segments.append((start, length, index, n_bars))
            start += n_bars * length
            if start > self.max_steps:
                quarters = self.max_steps // self.steps_per_quarter
                raise MidiError(name, f"the music lasts more than {quarters:,} quarter notes "
                                      f"(about {quarters / 120 / 60:.0f} hours at 120 bpm): "
                                      "an event lies far past the end of the music; trim "
                                      "the file")
        if snapped:
            warnings.append(f"{snapped} time-signature changes moved to the next bar line")
        return segments

    def _tempo_changes(self, score: Score, tpq: int, last_step: int,
                       warnings: list[str]) -> list[tuple[int, int]]:
        """(step, tempo bin) pairs from step 0, one per change of bin, within the music."""
        low, high = self.config.tempo_range
        changes: list[tuple[int, int]] = []
        zero = clamped = late = 0
        events = [(t.time, t.mspq) for t in _items(score.tempos)]
        for tick, mspq in sorted(events, key=itemgetter(0)) if len(events) > 1 else events:
            step = self._to_step(tick, tpq)
            if step > last_step:  # no note starts after it, so no token can hold it
                late += mspq > 0 and bool(changes) and changes[-1][1] != bisect.bisect_left(
                    self._tempo_edges_list, math.log(60_000_000.0 / mspq))
                continue
            if mspq <= 0:
                zero += 1
                continue
            qpm = 60_000_000.0 / mspq
            if not low * 0.999 <= qpm <= high * 1.001:
                clamped += 1
            tempo_bin = bisect.bisect_left(self._tempo_edges_list, math.log(qpm))
            if not changes and step > 0:
                changes.append((0, self._default_tempo_bin))  # MIDI plays 120 until told
            if changes and changes[-1][0] == step:  # several at one step: the last wins
                changes[-1] = (step, tempo_bin)
            else:
                changes.append((step, tempo_bin))
        if zero:
            warnings.append(f"{zero} tempo events of zero ignored")
        if clamped:
            warnings.append(f"{clamped} tempos outside {low:g}-{high:g} bpm clamped")
        if late:
            warnings.append(f"{late} tempo changes after the last note's onset dropped "
                            "(a final ritardando: the length in seconds leaves it out)")
        if not changes:
            changes.append((0, self._default_tempo_bin))
        return _runs(changes)

    def _grid_notes(self, pieces: list[_Piece]) -> _GridNotes:
        """The notes of all pieces on the grid, in one set of arrays sorted by (piece,
        onset, program, pitch, duration, velocity). ``step`` is the onset in the piece."""
        track_sizes = [size for p in pieces for size in p.track_sizes]
        piece_sizes = [len(p.notes["time"]) for p in pieces]
        # The voices present, ranked: at most 129 programs and MAX_PARTS parts, 8 bits.
        # (Ranked per track, not per note: np.unique over the notes was a fifth of
        # encoding a one-track file.)
        track_voices = [v for p in pieces for v in p.voices]
        rank = {v: i for i, v in enumerate(sorted(set(track_voices)))}
        # What a track's notes share, one row per track, repeated per note in one call.
        # `high` is their sort key's top: the piece, then (below the onset) the voice.
        per_track = np.repeat(np.array(
            [(i, p.tpq, program, voice, i << (PIECE_SHIFT + 32) | rank[voice] << 24)
             for i, p in enumerate(pieces)
             for program, voice in zip(p.programs, p.voices, strict=True)], dtype=np.int64),
            track_sizes, axis=0)
        high = per_track[:, 4]
        if len(pieces) == 1:
            notes = pieces[0].notes
            time, length, pitch, velocity = (notes[k] for k in
                                             ("time", "duration", "pitch", "velocity"))
        else:
            time, length, pitch, velocity = (np.concatenate([p.notes[k] for p in pieces])
                                             for k in ("time", "duration", "pitch", "velocity"))
        tpq: int | np.ndarray = pieces[0].tpq
        if any(p.tpq != tpq for p in pieces):
            tpq = per_track[:, 1]
        # Onsets and ends to the grid together, rounding half up in integers.
        onset, end = ticks = np.empty((2, len(time)), dtype=np.int64)
        onset[:] = time
        np.add(onset, np.maximum(length, 0), out=end)
        ticks *= 2 * self.steps_per_quarter
        ticks += tpq
        ticks //= 2 * tpq
        duration = end - onset
        short = duration < 1
        np.maximum(duration, 1, out=duration)
        duration_bin = self._duration_bin[np.minimum(duration, len(self._duration_bin) - 1)]
        too_long = duration > self._longest
        pitch = pitch.astype(np.int64)
        velocity = np.maximum(velocity, 1)  # 1-127: MIDI caps it, symusic keeps it in int8
        # One int64 key sorts everything: piece and onset in the high 32 bits; voice,
        # pitch, duration and velocity below, so that unisons always come out one way.
        key = onset << 32 | pitch << 17 | np.minimum(duration, 1023) << 7 | velocity
        if len(track_sizes) > 1:  # (one track: piece 0, voice ranked 0, high is 0)
            key |= high
        order: slice | np.ndarray = slice(None)  # one track in order (most melodies): as is
        if len(track_sizes) > 1 or bool((key[1:] < key[:-1]).any()):
            order = key.argsort(kind="stable")  # timsort: one sorted run per track
        # (one track: every row is the same, nothing to reorder)
        piece, _, program, voice, _ = (per_track if len(track_sizes) == 1 else
                                       per_track[order]).T
        if len(pieces) == 1:
            short_counts = [int(np.count_nonzero(short))]
            long_counts = [int(np.count_nonzero(too_long))]
        else:
            short_counts, long_counts = (np.bincount(per_track[mask, 0], minlength=len(pieces))
                                         .tolist() for mask in (short, too_long))
        return _GridNotes(piece, onset[order], duration_bin[order], pitch[order],
                          self._velocity_bin[velocity[order]], program, voice, piece_sizes,
                          short_counts, long_counts)

    def _encode_pieces(self, pieces: list[_Piece]) -> list[EncodedPiece]:
        notes = self._grid_notes(pieces)
        off = self._offset
        n_notes = len(notes.step)
        one = len(pieces) == 1
        # (N,) onsets on one global axis, pieces far apart
        step = notes.step if one else (notes.piece << PIECE_SHIFT) + notes.step
        duration_value = self.duration_values[notes.duration_bin]

        # Bars of all pieces at once, from runs of one meter: (first step, length, ts, count).
        segments = [((i << PIECE_SHIFT) + first, length, ts, count) for i, p in enumerate(pieces)
                    for first, length, ts, count in p.bar_segments]
        if len(segments) == 1:  # one meter throughout
            first, length, _, count = segments[0]
            bar_start = np.arange(first, first + count * length, length)
        else:
            runs = np.array(segments, dtype=np.int64)
            counts = runs[:, 3]
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            bar_start = np.repeat(runs[:, 0], counts) + within * np.repeat(runs[:, 1], counts)
        scale = n_notes + 3  # steps apart in the layout's sort keys (see `groups` below)

        # TimeSig and Tempo tokens, a few per piece: their keys and ids in Python lists, as a
        # numpy call costs what a hundred Python steps do. A TimeSig token opens each piece
        # and each run whose meter differs from the last.
        meta_key, meta_id = [], []
        for j, (first, _, ts, _) in enumerate(segments):
            if j == 0 or ts != segments[j - 1][2] or (
                    first >> PIECE_SHIFT != segments[j - 1][0] >> PIECE_SHIFT):
                meta_key.append(first * scale)
                meta_id.append(off["time_signature"] + ts)
        between_bars = []  # steps of tempo changes off the bar lines: each needs a Position
        segment_starts = [first for first, _, _, _ in segments]
        for i, piece in enumerate(pieces):
            for at, tempo_bin in piece.tempo_changes:
                at += i << PIECE_SHIFT
                first, length, _, _ = segments[bisect.bisect_right(segment_starts, at) - 1]
                between = (at - first) % length != 0
                if between:
                    between_bars.append(at)
                meta_key.append(at * scale + between)
                meta_id.append(off["tempo"] + tempo_bin)

        new_position = np.empty(n_notes, dtype=bool)
        new_position[0] = True
        np.not_equal(step[1:], step[:-1], out=new_position[1:])
        position_step = step[new_position]
        if between_bars:  # a tempo change between onsets needs a Position of its own
            position_step = np.union1d(position_step, between_bars)
        if len(segments) == 1:
            position_value = (position_step - segments[0][0]) % segments[0][1]
        else:
            position_value = position_step - bar_start[bar_start.searchsorted(position_step,
                                                                              "right") - 1]
        if not one:
            first_note = np.cumsum([0, *notes.piece_sizes[:-1]])
        new_voice: slice | np.ndarray = slice(0, 1)  # one voice: stated at the first note
        if not one or len(set(pieces[0].voices)) > 1:
            new_voice = np.empty(n_notes, dtype=bool)
            new_voice[0] = True
            np.not_equal(notes.voice[1:], notes.voice[:-1], out=new_voice[1:])
            if not one:
                new_voice[first_note] = True  # each piece states its voice

        # One stable sort lays out the stream between each piece's BOS and EOS. A token's
        # key is its step * K plus its place at that step: 0 for the bar's header (Bar,
        # TimeSig, a Tempo on the bar line), 1 for the Position (and a Tempo between bar
        # lines), 2 + n for note n. Tokens of one key keep the order of their groups: Bar,
        # Position, TimeSig, Tempo, then a note's Program or Track, Pitch, Velocity and
        # Duration.
        note_key = step * scale + np.arange(2, n_notes + 2)
        groups = [
            (bar_start * scale, _BAR_ID.repeat(len(bar_start))),
            (position_step * scale + 1, off["position"] + position_value),
            (np.array(meta_key, dtype=np.int64), np.array(meta_id, dtype=np.int64)),
            (note_key[new_voice], self._voice_lookup[notes.voice[new_voice]]),
            (note_key, off["pitch"] + notes.pitch),
            (note_key, off["velocity"] + notes.velocity_bin),
            (note_key, off["duration"] + notes.duration_bin),
        ]
        keys = np.concatenate([k for k, _ in groups])
        order = keys.argsort(kind="stable")  # timsort: the groups are sorted runs
        tokens = np.concatenate([t for _, t in groups])[order]
        if one:
            bounds = [0, len(tokens)]
            end_step = [int((notes.step + duration_value).max())]
        else:
            piece_key = (np.arange(len(pieces), dtype=np.int64) << PIECE_SHIFT) * scale
            bounds = np.append(keys.searchsorted(piece_key, sorter=order), len(tokens)).tolist()
            end_step = np.maximum.reduceat(notes.step + duration_value, first_note).tolist()
        results = []
        for i, piece in enumerate(pieces):
            ids = np.empty(bounds[i + 1] - bounds[i] + 2, dtype=np.uint16)
            ids[0], ids[1:-1], ids[-1] = self.BOS, tokens[bounds[i]:bounds[i + 1]], self.EOS
            warnings = list(piece.warnings)
            if notes.short[i]:
                warnings.append(f"{notes.short[i]} notes shorter than a grid step "
                                "were given one step")
            if notes.too_long[i]:
                warnings.append(f"{notes.too_long[i]} notes longer than "
                                f"{self.config.max_duration_quarters} quarters were shortened")
            results.append(EncodedPiece(
                ids=ids,
                n_notes=notes.piece_sizes[i],
                seconds=self._seconds(piece.tempo_changes, end_step[i]),
                time_signature="{:d}/{:d}".format(
                    *self.time_signatures[piece.bar_segments[0][2]]),
                has_drums=DRUMS in piece.programs,
                warnings=warnings,
            ))
        return results

    def _seconds(self, tempo_changes: list[tuple[int, int]], end_step: int) -> float:
        """Length in seconds of steps 0..end_step under the (binned) tempo map."""
        seconds = 0.0
        for j, (step, tempo_bin) in enumerate(tempo_changes):
            stop = tempo_changes[j + 1][0] if j + 1 < len(tempo_changes) else end_step
            seconds += max(0, min(stop, end_step) - step) * 60.0 / (
                self.tempo_values[tempo_bin] * self.steps_per_quarter)
        return seconds

    # ------------------------------------------------------------------ decoding

    def decode(self, ids: Iterable[int]) -> pretty_midi.PrettyMIDI:
        """A ``pretty_midi.PrettyMIDI`` from token ids. Never raises for ids in the
        vocabulary; decoding stops at the first EOS."""
        return score_to_pretty_midi(self.decode_score(ids))

    def decode_score(self, ids: Iterable[int]) -> Score:
        """Like ``decode`` but returns a symusic Score (faster; ``.dump_midi(path)`` writes it)."""
        ids = [int(i) for i in ids]
        vocab_size = len(self.vocab)
        bad = [i for i in ids if not 0 <= i < vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary (0..{vocab_size - 1})")
        kinds, values = self._kind_list, self._value_list
        (SPECIAL, BAR, POSITION, TIME_SIGNATURE, TEMPO, PROGRAM, PITCH, VELOCITY,
         DURATION, PART) = range(len(KINDS))
        part_voices = self.part_voices
        ts = self.default_time_signature
        bar_length = int(self.bar_steps[ts])
        bar_start = 0
        started = False  # a bar is open
        in_body = False  # a Position or note has been seen in this bar
        position = 0
        voice = 0
        pitch = velocity = None
        notes: dict[int, list[tuple[int, int, int, int]]] = {}
        time_signatures: list[tuple[int, int]] = []  # (step, ts index)
        tempos: list[tuple[int, int]] = []  # (step, tempo bin)
        for token in ids:
            kind, value = kinds[token], values[token]
            if kind == SPECIAL:
                if token == self.EOS:
                    break
                continue
            if kind == BAR:
                if started:
                    bar_start += bar_length
                started, in_body, position, pitch = True, False, 0, None
            elif kind == TIME_SIGNATURE:
                if in_body:
                    continue  # meter changes only at a bar line
                started = True
                ts, bar_length = value, int(self.bar_steps[value])
                if time_signatures and time_signatures[-1][0] == bar_start:
                    time_signatures[-1] = (bar_start, ts)
                else:
                    time_signatures.append((bar_start, ts))
            elif kind == POSITION:
                pitch = None
                if value < bar_length:
                    started, in_body, position = True, True, value
            elif kind == TEMPO:
                step = bar_start + position if in_body else bar_start
                if tempos and tempos[-1][0] == step:
                    tempos[-1] = (step, value)
                else:
                    tempos.append((step, value))
            elif kind == PROGRAM:
                voice = value * VOICE_SLOTS
            elif kind == PART:
                voice = part_voices[value]
            elif kind == PITCH:
                started, in_body, pitch, velocity = True, True, value, None
            elif kind == VELOCITY:
                if pitch is not None:
                    velocity = value
            elif kind == DURATION:
                if pitch is not None and velocity is not None:
                    notes.setdefault(voice, []).append(
                        (bar_start + position, value, pitch, velocity))
                    pitch = None
        end = bar_start + bar_length if started else 0  # the last bar line
        return self._build_score(notes, time_signatures, tempos, end)

    def _build_score(self, notes, time_signatures, tempos, end: int = 0) -> Score:
        tpq = math.lcm(self.steps_per_quarter, DECODE_TICKS_PER_QUARTER)
        tick = tpq // self.steps_per_quarter
        last = max([end, *(onset + length for voice in notes.values()
                           for onset, length, *_ in voice),
                    *(step for step, _ in time_signatures), *(step for step, _ in tempos)])
        if last * tick >= PRETTY_MIDI_MAX_TICK:  # a very long piece (~5,000 bars of 4/4):
            tpq, tick = self.steps_per_quarter, 1  # the grid's own resolution loses nothing
        score = Score(tpq)
        for step, index in time_signatures:
            n, d = self.time_signatures[index]
            score.time_signatures.append(TimeSignature(step * tick, n, d))
        if not tempos or tempos[0][0] > 0:  # always state the tempo (empty files need an event)
            tempos = [(0, self._default_tempo_bin), *tempos]
        for step, index in tempos:
            score.tempos.append(Tempo(step * tick, qpm=float(self.tempo_values[index])))
        for voice in sorted(notes):
            program = int(voice // VOICE_SLOTS)
            is_drum = program == DRUMS
            name = self.part_name(voice)
            for layer, layer_notes in enumerate(_unison_free_layers(notes[voice])):
                # (N, 4): onset, duration, pitch, velocity
                rows = np.array(layer_notes, dtype=np.int64)
                track = Track(name=name if layer == 0 else f"{name} {layer + 1}",
                              program=0 if is_drum else program, is_drum=is_drum)
                track.notes = Note.from_numpy(
                    (rows[:, 0] * tick).astype(np.int32), (rows[:, 1] * tick).astype(np.int32),
                    rows[:, 2].astype(np.int8), rows[:, 3].astype(np.int8),
                )
                score.tracks.append(track)
        if not notes:  # symusic writes meta events out of order in a file with no track
            score.tracks.append(Track(name=pretty_midi.program_to_instrument_name(0), program=0))
        last_bar = end - (int(self.bar_steps[time_signatures[-1][1]]) if time_signatures
                          else int(self.bar_steps[self.default_time_signature]))
        sounding = max((onset + duration for voice in notes.values()
                        for onset, duration, _, _ in voice), default=0)
        if sounding <= last_bar:  # bars of rest at the end: restate the meter at the last
            n, d = self.time_signatures[time_signatures[-1][1] if time_signatures  # bar line
                                        else self.default_time_signature]
            score.time_signatures.append(TimeSignature(end * tick, n, d))  # so they last
        return score

    # ------------------------------------------------------------------ bar table

    def bar_table(self, ids: np.ndarray) -> np.ndarray:
        """Where each bar starts in ``ids`` and the state in force at its first note.

        Returns a structured array, one row per Bar token, with ``offset`` (index of the
        Bar token), ``header`` (how many TimeSig/Tempo tokens follow it) and ``time_signature``,
        ``tempo``, ``program``: the token ids in force after the header (0 if none yet).
        Training windows start at a bar and begin with these, so each window is
        self-describing: ``[Bar, TimeSig, Tempo, Program] + ids[offset + 1 + header:]``.
        """
        ids = np.asarray(ids)
        kind = self.kind[ids]
        bars = np.flatnonzero(ids == self.BAR)
        header = np.zeros(len(bars), dtype=np.int64)
        for _ in range(2):  # at most a TimeSig then a Tempo follow a Bar
            nxt = np.minimum(bars + 1 + header, len(ids) - 1)
            is_header = ((kind[nxt] == KINDS.index("time_signature")) & (header == 0)) | (
                kind[nxt] == KINDS.index("tempo"))
            header += is_header & (bars + 1 + header < len(ids))
        end = bars + 1 + header  # first index after the bar's header

        def state(kind_name: str) -> np.ndarray:
            where = np.flatnonzero(self.voice[ids] >= 0 if kind_name == "program"
                                   else kind == KINDS.index(kind_name))
            last = np.searchsorted(where, end, side="left") - 1  # last such token before end
            return np.where(last >= 0, ids[where[np.maximum(last, 0)]], 0) if len(where) else \
                np.zeros(len(bars), dtype=np.int64)

        table = np.empty(len(bars), dtype=BAR_TABLE_DTYPE)
        table["offset"] = bars
        table["header"] = header
        table["time_signature"] = state("time_signature")
        table["tempo"] = state("tempo")
        table["program"] = state("program")
        return table

    def music_hash(self, ids: np.ndarray) -> str:
        """sha256 of a token stream: equal for pieces that tokenize the same."""
        return hashlib.sha256(np.ascontiguousarray(ids, dtype="<u2").tobytes()).hexdigest()


def _track_notes(tracks: list) -> tuple[dict, list[int]]:
    """The notes of a piece's tracks (symusic ``Track``s, none empty) as one set of arrays,
    track after track, as ``Track.notes.numpy()`` gives them; with the notes per track.
    symusic joins the tracks' lists and converts them once: a conversion costs about 40k
    instructions whatever its length, and four of them were a tenth of encoding a chorale."""
    sizes = [track.note_num() for track in tracks]
    if len(tracks) == 1:
        return tracks[0].notes.numpy(), sizes
    notes = tracks[0].notes.copy()
    for track in tracks[1:]:
        notes.extend(track.notes)
    return notes.numpy(), sizes


def untangle(notes: dict) -> tuple[dict, int]:
    """One reading of a track's overlapping notes of one pitch, whichever library paired
    the file's note-offs with its note-ons (symusic and pretty_midi pair them
    differently): while a pitch sounds, striking it again ends the note before, and the
    last note of such a chain ends when the last of them did. The times when each pitch
    sounds, and every onset, stay as they were; only the pairing is decided. A second
    note struck at the same moment is dropped. Returns the notes (``time``, ``duration``,
    ``pitch``, ``velocity`` arrays, as ``Track.notes.numpy()`` gives them) and how many
    were dropped."""
    out, _, dropped = _untangle(notes, [len(notes["time"])])
    return out, dropped


def _untangle(notes: dict, sizes: list[int]) -> tuple[dict, list[int], int]:
    """``untangle`` of several tracks' notes, track after track (``sizes``: the notes of
    each, none empty), each track read on its own: (notes, notes per track, dropped)."""
    start, length = np.asarray(notes["time"]), np.asarray(notes["duration"])
    apart = start[1:] - start[:-1] >= np.maximum(length[:-1], 0)
    last = -1
    for size in sizes[:-1]:  # a track's last note, the next one's first (a few tracks)
        last += size
        apart[last] = True
    if apart.all():
        return notes, sizes, 0  # one note at a time (a melody line): nothing overlaps
    time = start.astype(np.int64)
    pitch = np.asarray(notes["pitch"], dtype=np.int64)
    if len(sizes) > 1:  # a pitch of one track is not that pitch in another
        pitch = pitch + np.repeat(np.arange(len(sizes)) << 8, sizes)
    order = np.lexsort((time, pitch))
    time, pitch = time[order], pitch[order]
    end = time + np.maximum(np.asarray(notes["duration"], dtype=np.int64)[order], 0)
    # (slices into arrays made once, not np.r_, which costs ~20 us a call: this runs for
    # every piece, and was half of encoding the Bach chorales' four-track files)
    same_pitch = np.zeros(len(time), dtype=bool)  # the next note has the same pitch
    np.equal(pitch[1:], pitch[:-1], out=same_pitch[:-1])
    group = np.zeros(len(time), dtype=np.int64)  # one number per pitch
    np.cumsum(~same_pitch[:-1], out=group[1:])
    span = int(end.max() - min(0, int(time.min()))) + 1
    sounding_until = np.maximum.accumulate(end + group * span) - group * span
    next_time = np.zeros(len(time), dtype=np.int64)
    next_time[:-1] = time[1:]
    overlaps = same_pitch & (next_time < sounding_until)
    if not overlaps.any():
        return notes, sizes, 0
    duration = np.empty(len(time), dtype=np.int64)  # back in the tracks' own order
    duration[order] = np.where(overlaps, next_time, sounding_until) - time
    keep = np.ones(len(time), dtype=bool)
    keep[order] = ~(overlaps & (next_time == time))  # struck twice at once: once
    out = {key: np.asarray(notes[key])[keep] for key in notes}
    out["duration"] = duration[keep].astype(np.asarray(notes["duration"]).dtype)
    kept = np.add.reduceat(keep, np.cumsum([0, *sizes[:-1]])).tolist()  # per track
    return out, kept, len(keep) - sum(kept)


_BAR_ID = np.array([Tokenizer.BAR])  # repeated, the Bar tokens of a piece (cheaper than np.full)
PRETTY_MIDI_MAX_TICK = 10_000_000  # pretty_midi refuses a file with a later tick as corrupt
BAR_TABLE_DTYPE = np.dtype([("offset", "<i4"), ("header", "u1"), ("time_signature", "<u2"),
                            ("tempo", "<u2"), ("program", "<u2")])


def _unison_free_layers(notes: list[tuple[int, int, int, int]]) -> list[list]:
    """Split (onset, duration, pitch, velocity) notes into layers with no two notes of
    one pitch sounding at once.

    MIDI cannot tell overlapping notes of the same pitch on one channel apart (readers
    pair note-offs differently; pretty_midi closes them all at the first), so such notes
    go to an extra track of the same instrument instead of losing their durations.
    """
    layers: list[list] = []
    ends: list[dict[int, int]] = []  # per layer: pitch -> end step of its last note
    for note in sorted(notes):
        onset, duration, pitch, _ = note
        # layer is used after the loop (the one the note goes to), hence the noqa
        for layer, layer_ends in zip(layers, ends, strict=True):  # noqa: B007
            if layer_ends.get(pitch, -1) <= onset:
                break
        else:
            layer, layer_ends = [], {}
            layers.append(layer)
            ends.append(layer_ends)
        layer.append(note)
        layer_ends[pitch] = onset + duration
    return layers


def _part_label(name: str) -> str:
    """A part's name as a token label: ``Track_Soprano``, ``Track_Lead_Vocal``."""
    return "_".join(name.split())


def _nearest_bins(values: np.ndarray, size: int) -> np.ndarray:
    """For each integer 0..size-1, the index of the nearest of the sorted ``values`` (a
    midpoint goes to the lower one)."""
    return np.searchsorted((values[1:] + values[:-1]) / 2, np.arange(size), side="left")


def _tempo_grid(low: float, high: float, bins: int) -> np.ndarray:
    """``bins`` log-spaced tempos spanning about low..high, one of them exactly 120 bpm
    (the MIDI default and the most common tempo), so it comes back unchanged."""
    if bins == 1 or low == high:
        return np.array([min(max(MIDI_DEFAULT_TEMPO, low), high)] * bins)
    step = math.log(high / low) / (bins - 1)
    first = round(math.log(low / MIDI_DEFAULT_TEMPO) / step)
    return MIDI_DEFAULT_TEMPO * np.exp((first + np.arange(bins)) * step)


def _runs(changes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(step, value) changes without those that repeat the value before them."""
    if len(changes) < 2:
        return changes
    return [c for i, c in enumerate(changes) if i == 0 or c[1] != changes[i - 1][1]]


def _items(events) -> list:
    """A symusic list (tracks, tempos, ...) as a Python list: its items one by one cost a
    third of what its iterator does."""
    return [events[i] for i in range(len(events))]


def _source_name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "<midi>"
