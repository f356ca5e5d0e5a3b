"""Writing files so that a kill or a full disk never leaves half a file where a whole one
was expected: each is written beside its target and renamed into place."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pretty_midi


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file in the same folder, then a
    rename, which replaces the target in one step)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as file:
            file.write(data)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``write_bytes`` for text (UTF-8)."""
    return write_bytes(path, text.encode())


def write_midi(midi: pretty_midi.PrettyMIDI, path: str | Path) -> Path:
    """A PrettyMIDI written to ``path`` atomically."""
    buffer = io.BytesIO()
    midi.write(buffer)
    return write_bytes(path, buffer.getvalue())
