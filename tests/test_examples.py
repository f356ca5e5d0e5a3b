import subprocess
import sys
from pathlib import Path

import pretty_midi
from midi_factory import melody, write

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_tokenize_a_tune_example_writes_a_readable_file(tmp_path):
    source = write(melody(16), tmp_path / "tune.mid")
    result = subprocess.run([sys.executable, str(EXAMPLES / "tokenize_a_tune.py"), str(source),
                             "--out", str(tmp_path / "again.mid")],
                            capture_output=True, text=True, check=True)
    assert "tokens from a vocabulary" in result.stdout
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "again.mid"))
    assert sum(len(i.notes) for i in midi.instruments) == 16
    # a one-bar tune prints its one bar; an existing --out is kept unless --force
    short = write(melody(2), tmp_path / "short.mid")
    again = subprocess.run([sys.executable, str(EXAMPLES / "tokenize_a_tune.py"), str(short),
                            "--out", str(tmp_path / "again.mid")], capture_output=True, text=True)
    assert again.returncode != 0 and "again.mid exists; pass --force" in again.stderr
    assert sum(len(i.notes) for i in pretty_midi.PrettyMIDI(
        str(tmp_path / "again.mid")).instruments) == 16
    forced = subprocess.run([sys.executable, str(EXAMPLES / "tokenize_a_tune.py"), str(short),
                             "--out", str(tmp_path / "again.mid"), "--force"],
                            capture_output=True, text=True, check=True)
    assert "EOS" not in forced.stdout and "Pitch_" in forced.stdout
