"""The ``musegan`` command: a thin layer over functions users can import.

Each verb parses its arguments, calls the library, and turns a MuseganError into one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from musegan import __version__
from musegan.errors import MuseganError

EXIT_USER_ERROR = 2  # bad input: a path, a file, a setting
EXIT_NOT_AVAILABLE = 3  # the feature needs something that is not there yet (a model)


def _prepare(args: argparse.Namespace) -> int:
    from musegan.prepare import MAX_FILE_MB, NoUsableMidiError, format_summary, prepare_corpus
    from musegan.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else Tokenizer(
        steps_per_quarter=args.steps_per_quarter, velocity_bins=args.velocity_bins,
        tempo_bins=args.tempo_bins)
    try:
        report = prepare_corpus(
            args.sources, args.out, tokenizer=tokenizer, val_fraction=args.val_fraction,
            workers=args.workers, force=args.force, limit=args.limit,
            max_file_mb=args.max_file_mb if args.max_file_mb is not None else MAX_FILE_MB,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except NoUsableMidiError as err:
        for skipped in err.report.skipped[:20]:
            print(f"  skipped {skipped['source']}: {skipped['reason']}", file=sys.stderr)
        raise
    if not args.quiet:
        print(format_summary(report))
    return 0


def _generate(args: argparse.Namespace) -> int:
    print("musegan generate: no model is bundled yet (the sampler and the default model "
          "come in a later release); prepare a corpus with `musegan prepare` meanwhile",
          file=sys.stderr)
    return EXIT_NOT_AVAILABLE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musegan",
        description="Symbolic music generation with an LSTM-GAN: tokenize MIDI corpora, "
                    "train, and generate MIDI files.",
        epilog="Run `musegan VERB --help` for a verb's options.",
    )
    parser.add_argument("--version", action="version", version=f"musegan {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    prepare = verbs.add_parser(
        "prepare", help="tokenize MIDI files into a corpus for training",
        description="Tokenize MIDI files into a corpus folder (token shards, index, tokenizer, "
                    "report). Files that cannot be used are listed in report.json with the "
                    "reason; re-running reuses unchanged files.",
        epilog="examples:\n  musegan prepare ~/midi/folk --out data/folk\n"
               "  musegan prepare bach --out data/bach\n"
               "  musegan prepare 'songs/**/*.mid' more/ --out data/mix --val-fraction 0.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("sources", nargs="+", metavar="SRC",
                         help="a folder (searched recursively for .mid/.midi/.kar), a file, "
                              "a glob pattern, or the word 'bach' (music21's chorales)")
    prepare.add_argument("--out", required=True, metavar="DIR", help="the corpus folder to write")
    prepare.add_argument("--val-fraction", type=float, default=0.05, metavar="F",
                         help="share of pieces held out for validation (default 0.05)")
    prepare.add_argument("--workers", type=int, default=None, metavar="N",
                         help="processes to use (default: all cores)")
    prepare.add_argument("--force", action="store_true",
                         help="replace an existing corpus made from other sources or settings")
    prepare.add_argument("--limit", type=int, default=None, metavar="N",
                         help="use only the first N files (for a quick trial)")
    prepare.add_argument("--max-file-mb", type=float, default=None, metavar="MB",
                         help="skip files larger than this (default 32)")
    prepare.add_argument("--tokenizer", metavar="FILE",
                         help="a tokenizer.json to use instead of the options below")
    prepare.add_argument("--steps-per-quarter", type=int, default=12, metavar="N",
                         help="time grid per quarter note (default 12: 16ths and triplets exact)")
    prepare.add_argument("--velocity-bins", type=int, default=16, metavar="N",
                         help="velocity levels (default 16)")
    prepare.add_argument("--tempo-bins", type=int, default=64, metavar="N",
                         help="tempo levels, log-spaced over 30-300 bpm (default 64)")
    prepare.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    prepare.set_defaults(run=_prepare)

    generate = verbs.add_parser(
        "generate", help="write new MIDI files with a trained model",
        description="Write new MIDI files with a trained model. No model is bundled yet.")
    generate.add_argument("--out", default="songs", metavar="DIR", help="output folder")
    generate.set_defaults(run=_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.run(args)
    except MuseganError as err:
        print(f"musegan {args.verb}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"musegan {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
