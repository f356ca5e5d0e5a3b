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
