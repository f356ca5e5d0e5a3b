"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class MuseganError(Exception):
    """A problem with the user's input (a path, a file, a setting), not a bug.

    The message is one line that names the thing at fault and says what to do, in the
    words of the Python API (arguments such as ``force=True``). Where the command line
    says it differently (``--force``), ``cli`` holds its version, and ``musegan`` prints
    that one.
    """

    def __init__(self, message: str, cli: str | None = None):
        super().__init__(message)
        self.cli = cli

    def for_cli(self) -> str:
        """The message as the command line says it."""
        return self.cli or str(self)


class OutputExistsError(MuseganError):
    """A file or folder would be replaced, and the caller did not ask for that."""

    def __init__(self, path: str | Path, has_out: bool = True):
        self.path, self.has_out = Path(path), has_out
        elsewhere = " or choose another --out" if has_out else ""
        super().__init__(f"{path} exists; pass force=True to replace it, or write elsewhere",
                         cli=f"{path} exists; pass --force to replace it{elsewhere}")

    def __reduce__(self):
        return type(self), (self.path, self.has_out)


def output_exists(path: str | Path, has_out: bool = True) -> OutputExistsError:
    """The error for an output that exists (raise it); ``has_out=False`` for a command
    with no ``--out`` to choose another place with."""
    return OutputExistsError(path, has_out)


class MidiError(MuseganError, ValueError):
    """A MIDI file that cannot be read or tokenized, with the reason why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


def writable_folder(path: str | Path, keep: bool = True) -> Path:
    """Make the folder ``path`` (and its parents) and check a file can be written in it,
    before any work is done: a clear error now rather than a traceback after the work.
    With ``keep=False`` the folders it made are removed again (a check only, for work
    that may still fail before it writes)."""
    import os
    import tempfile

    folder = Path(os.path.abspath(path))  # "new/../out" is out, not a new folder
    made: list[Path] = []  # the folders this call makes, outermost first
    try:
        for part in reversed([folder, *folder.parents]):
            if not part.exists():
                part.mkdir()
                made.append(part)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".musegan-probe-")
        os.close(handle)
        os.unlink(probe)
        if not keep:
            _remove(made)
    except OSError as err:
        _remove(made)
        reason = err.strerror or str(err)
        raise MuseganError(f"cannot write to {path} ({reason}); choose a folder you can "
                           "write to", cli=f"cannot write to {path} ({reason}); choose "
                                           "another --out") from None
    return Path(path)


def _remove(folders: list) -> None:
    """Remove the (empty) folders ``writable_folder`` made, innermost first."""
    for made in reversed(folders):
        try:
            made.rmdir()
        except OSError:
            pass
