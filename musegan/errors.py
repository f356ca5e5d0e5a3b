"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class MuseganError(Exception):
    """A problem with the user's input (a path, a file, a setting), not a bug.

    The message is one line that names the thing at fault and says what to do.
    """


class MidiError(MuseganError, ValueError):
    """A MIDI file that cannot be read or tokenized, with the reason why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")
