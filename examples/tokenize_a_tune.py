"""Tokenize a MIDI file, look at its tokens, and write it back from the tokens.

    python examples/tokenize_a_tune.py [FILE.mid] [--out again.mid]

With no file, it uses a Bach chorale from music21's bundled corpus.
"""

import argparse

from musegan import Tokenizer
from musegan.prepare import bach_chorales, render_chorale

parser = argparse.ArgumentParser(description="Tokenize a MIDI file and write it back.")
parser.add_argument("midi", nargs="?", help="a MIDI file (default: a Bach chorale)")
parser.add_argument("--out", default="again.mid", help="where to write the decoded file")
args = parser.parse_args()

if args.midi:
    source = args.midi
else:
    chorale = bach_chorales()[0]
    print(f"using {chorale.name} from music21's corpus")
    source = render_chorale(chorale.path)

tok = Tokenizer()
ids = tok.encode(source)
print(f"{len(ids)} tokens from a vocabulary of {len(tok)}; the first bar:")
first_bars = tok.tokens(ids[:ids.index(Tokenizer.BAR, 2)])
print("  " + " ".join(first_bars))

midi = tok.decode(ids)
midi.write(args.out)
notes = sum(len(i.notes) for i in midi.instruments)
print(f"wrote {args.out}: {notes} notes, {len(midi.instruments)} instruments, "
      f"{midi.get_end_time():.1f} s")
