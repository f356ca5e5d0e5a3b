"""Reading and writing MIDI.

symusic (a C++ MIDI parser, ~100x faster than pretty_midi) reads everything the tokenizer
consumes; pretty_midi is the object users get back, because it is what people use to
read, analyse and write MIDI in Python.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import pretty_midi
from symusic import Score
from symusic.core import ScoreTick  # what the Score factory makes, without its dispatch

from musegan.errors import MidiError

MIDI_SUFFIXES = (".mid", ".midi", ".kar")

# Union, not `|`: at runtime symusic's Score is a factory object, which `|` rejects.
MidiSource = Union[str, os.PathLike, bytes, pretty_midi.PrettyMIDI, Score]  # noqa: UP007


def is_midi_path(path: Path) -> bool:
    """True when the file name has a MIDI extension (.mid, .midi, .kar, any case)."""
    return path.suffix.lower() in MIDI_SUFFIXES


def score_from_bytes(data: bytes, name: str = "<bytes>") -> Score:
    """Parse MIDI bytes into a symusic Score (in ticks); a MidiError if they are not MIDI."""
    if not data:
        raise MidiError(name, "file is empty; export it again from your editor")
    if data[:4] != b"MThd" and data[:4] != b"RIFF":
        raise MidiError(name, "not a MIDI file (no MThd header); check that this is a .mid file")
    try:
        return ScoreTick.from_midi(data)
    except Exception as err:  # symusic raises plain RuntimeErrors with a reason
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MidiError(name, f"corrupt or truncated MIDI ({reason}); export it again") from None


def load_score(source: MidiSource) -> Score:
    """Read any supported MIDI source into a symusic Score in ticks.

    Args:
        source: a path to a MIDI file, the file's bytes, a ``pretty_midi.PrettyMIDI``
            or a ``symusic.Score``.

    Raises:
        MidiError: the file is missing, unreadable, or not valid MIDI.
        TypeError: ``source`` is none of these.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            return ScoreTick.from_file(path)  # symusic reads it: a third faster than Python
        except Exception:  # the checks below say what is wrong, in one line
            pass
        try:
            with open(path, "rb") as file:
                data = file.read()
        except IsADirectoryError:
            raise MidiError(str(path), "is a folder, not a MIDI file") from None
        except FileNotFoundError:
            raise MidiError(str(path), "no such file; check the path") from None
        except OSError as err:
            raise MidiError(str(path), f"cannot read the file ({err.strerror}); "
                                       "check its permissions") from None
        return score_from_bytes(data, path)
    if isinstance(source, (bytes, bytearray)):
        return score_from_bytes(bytes(source))
    if isinstance(source, Score):
        return source if str(source.ttype).lower().endswith("tick") else source.to("tick")
    if isinstance(source, pretty_midi.PrettyMIDI):
        buffer = io.BytesIO()
        source.write(buffer)
        return score_from_bytes(buffer.getvalue(), "<PrettyMIDI>")
    raise TypeError(f"cannot read MIDI from a {type(source).__name__}; pass a path, MIDI "
                    "bytes, a PrettyMIDI or a symusic Score")


def score_to_pretty_midi(score: Score) -> pretty_midi.PrettyMIDI:
    """Convert a symusic Score to pretty_midi through MIDI bytes (both public APIs)."""
    return pretty_midi.PrettyMIDI(io.BytesIO(score.dumps_midi()))
