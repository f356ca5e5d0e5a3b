"""Tokenize a MIDI file, look at its tokens, and write it back from the tokens.

    python examples/tokenize_a_tune.py [FILE.mid] [--out again.mid]

With no file, it uses a Bach chorale from music21's bundled corpus.
"""

import argparse
import sys
from pathlib import Path

from musegan import MuseganError, Tokenizer
from musegan.prepare import bach_chorales, render_chorale

parser = argparse.ArgumentParser(description="Tokenize a MIDI file and write it back.")
parser.add_argument("midi", nargs="?", help="a MIDI file (default: a Bach chorale)")
parser.add_argument("--out", default="again.mid", help="where to write the decoded file")
parser.add_argument("--force", action="store_true", help="replace --out if it exists")
args = parser.parse_args()
if Path(args.out).exists() and not args.force:
    sys.exit(f"{args.out} exists; pass --force to replace it or choose another --out")

if args.midi:
    source = args.midi
else:
    chorale = bach_chorales()[0]
    print(f"using {chorale.name} from music21's corpus")
    source = render_chorale(chorale.path)

tok = Tokenizer()
try:
    ids = tok.encode(source)
except MuseganError as err:
    sys.exit(f"error: {err}")
bars = [i for i, t in enumerate(ids) if t == Tokenizer.BAR] + [len(ids) - 1]  # and EOS
print(f"{len(ids)} tokens from a vocabulary of {len(tok)}; the first bar:")
print("  " + " ".join(tok.tokens(ids[:bars[1]])))

midi = tok.decode(ids)
midi.write(args.out)
notes = sum(len(i.notes) for i in midi.instruments)
print(f"wrote {args.out}: {notes} notes, {len(midi.instruments)} instruments, "
      f"{midi.get_end_time():.1f} s")
