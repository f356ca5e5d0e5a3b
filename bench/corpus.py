"""Your corpus, any corpus: prepare, train a short run, generate, and see what broke.

    python bench/corpus.py                          # a synthetic three-track corpus
    python bench/corpus.py --data ~/midi/pop909     # a MIDI folder (prepared here) ...
    python bench/corpus.py --data data/bach --model checkpoints/bach-chorales.safetensors
                                                    # ... or a prepared corpus and a model

Without ``--model`` it trains a small model for ``--epochs`` on the corpus's train split
(the windows ``musegan train`` would choose) and judges that. Reported side by side with
the corpus's own validation pieces (cut to ``--bars`` bars):

  * the corpus: pieces, parts learned, tokens per bar, the seq_len and adv_seq_len chosen;
  * notes per bar by bar index (first, middle, last): a last bar that floods shows here;
  * voices (programs and parts) per piece, and voices or meters the corpus never had;
  * bars of rest at the end (where the model wanted to stop early);
  * ``musegan evaluate``: mean overlap and copy rate against the train split;
  * for corpora with parts: each voice's range (the median of the pieces' lowest and
    highest pitches) and parallel fifths and octaves per 100 beats
    (``musegan.metrics.voice_leading``).

Writes OUT/corpus.md and OUT/corpus.json (default bench/corpus-out/, not committed).
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
from symusic import Note, Score, Tempo, TimeSignature, Track  # noqa: E402

from musegan.config import RunConfig, fit_windows  # noqa: E402
from musegan.corpus import Corpus, is_corpus  # noqa: E402
from musegan.decoding import rest_bars_at_end  # noqa: E402
from musegan.evaluate import evaluate  # noqa: E402
from musegan.export import export_model  # noqa: E402
from musegan.metrics import voice_leading  # noqa: E402
from musegan.prepare import prepare_corpus  # noqa: E402
from musegan.sampling import Sampler  # noqa: E402
from musegan.training import train  # noqa: E402

# The synthetic corpus: a pop-piano layout, every track on program 0 and told apart only
# by its name; half the files say 1/4, as many real pop-piano files do.
CHORDS = ((0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14))  # I vi IV V in C


def synthetic_song(seed: int, bars: int = 16) -> Score:
    """MELODY (eighths over the chord), BRIDGE (held chords), PIANO (a bass on the beat)."""
    rng = np.random.default_rng(seed)
    tpq = 480
    score = Score(tpq)
    score.time_signatures.append(TimeSignature(0, *((1, 4) if seed % 2 else (4, 4))))
    score.tempos.append(Tempo(0, qpm=float(rng.choice([90, 100, 110]))))
    key = int(rng.integers(-3, 4))
    lines: dict[str, list[tuple[int, int, int]]] = {"MELODY": [], "BRIDGE": [], "PIANO": []}
    for bar in range(bars):
        chord = CHORDS[(bar + int(rng.integers(0, 2))) % 4]
        start = bar * 4 * tpq
        for beat in range(8):
            pitch = 72 + key + int(rng.choice(chord)) + int(rng.choice([0, 2, -1]))
            lines["MELODY"].append((start + beat * tpq // 2, tpq // 2, pitch))
        for step in chord:
            lines["BRIDGE"].append((start, 4 * tpq, 60 + key + step))
        for beat in range(4):
            lines["PIANO"].append((start + beat * tpq, tpq, 36 + key + chord[beat % 2 * 2]))
    for name, notes in lines.items():
        track = Track(name=name, program=0)
        rows = np.array(notes)
        track.notes = Note.from_numpy(rows[:, 0].astype(np.int32), rows[:, 1].astype(np.int32),
                                      rows[:, 2].astype(np.int8),
                                      np.full(len(rows), 90, dtype=np.int8))
        score.tracks.append(track)
    return score


def bar_notes(ids: list[int], tok) -> list[int]:
    """Notes starting in each bar of a token sequence."""
    pitches = set(tok.token_range("pitch"))
    bars = [i for i, t in enumerate(ids) if t == tok.BAR] + [len(ids)]
    return [sum(t in pitches for t in ids[a:b]) for a, b in zip(bars, bars[1:], strict=False)]


def first_bars(ids: list[int], bars: int, tok) -> list[int]:
    starts = [i for i, t in enumerate(ids) if t == tok.BAR]
    return ids[:starts[bars]] + [tok.EOS] if len(starts) > bars else ids


def voices_in(rows: list[list[int]], tok) -> set[str]:
    """The voices (programs and parts) a set of token sequences plays, by name."""
    return {tok.part_name(int(tok.voice[t])) for row in rows for t in row if tok.voice[t] >= 0}


def describe(midis: list[pretty_midi.PrettyMIDI], rows: list[list[int]], tok,
             corpus_voices: set, corpus_meters: set, parts: bool) -> dict:
    """The figures of one set of pieces (``rows``: their token ids)."""
    per_bar = [bar_notes(row, tok) for row in rows]
    length = min((len(b) for b in per_bar), default=0)
    figures: dict = {"pieces": len(midis),
                     "voices_per_piece": float(np.mean([len(voices_in([row], tok))
                                                        for row in rows]))}
    if length:
        table = np.array([b[:length] for b in per_bar], dtype=float)
        figures["notes_per_bar"] = {"first": table[:, 0].mean(),
                                    "middle": table[:, length // 2].mean(),
                                    "last": table[:, -1].mean(),
                                    "median": float(np.median(table))}
        figures["last_bar_over_3x_median"] = int(sum(
            b[-1] > 3 * max(np.median(b), 1) for b in per_bar))
    figures["voices_outside_corpus"] = sorted(voices_in(rows, tok) - corpus_voices)
    figures["meters_outside_corpus"] = sorted(
        {f"{ts.numerator}/{ts.denominator}" for m in midis for ts in m.time_signature_changes}
        - corpus_meters)
    if parts:
        leading = [voice_leading(m) for m in midis]
        beats = sum(r["beats"] for r in leading)
        figures["parallels_per_100_beats"] = 100 * sum(
            r["parallel_fifths"] + r["parallel_octaves"] for r in leading) / max(beats, 1e-9)
        figures["parallel_fifths_per_100_beats"] = 100 * sum(
            r["parallel_fifths"] for r in leading) / max(beats, 1e-9)
        ranges: dict[str, list] = {}
        for r in leading:
            for name, (low, high) in r["ranges"].items():
                ranges.setdefault(name, []).append((low, high))
        # per voice: the median of the pieces' lowest and highest pitches (outliers aside)
        figures["voice_ranges"] = {name: [int(np.median([lo for lo, _ in v])),
                                          int(np.median([hi for _, hi in v]))]
                                   for name, v in sorted(ranges.items())}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a MIDI folder or a prepared corpus (default: a "
                                       "synthetic three-track corpus made here)")
    parser.add_argument("--model", help="judge this model instead of training one")
    parser.add_argument("--meter", default="4/4",
                        help="prepare's --meter for a MIDI folder (default 4/4; '' for none)")
    parser.add_argument("--epochs", type=int, default=30,
                        help="training epochs (no --model)")
    parser.add_argument("--transpose", default="0,0",
                        help="train.transpose LOW,HIGH in semitones (no --model; default 0,0)")
    parser.add_argument("--size", choices=("small", "default"), default="small",
                        help="model size when training (small: 128 hidden units)")
    parser.add_argument("--pieces", type=int, default=24)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/corpus-out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # ------------------------------------------------------------------ the corpus
    if args.data and is_corpus(Path(args.data)):
        corpus_dir, report = Path(args.data), None
    else:
        midi_dir = Path(args.data) if args.data else out / "synthetic-midi"
        if not args.data:
            shutil.rmtree(midi_dir, ignore_errors=True)
            midi_dir.mkdir(parents=True)
            for seed in range(48):
                synthetic_song(seed).dump_midi(str(midi_dir / f"song{seed:03d}.mid"))
        corpus_dir = out / "corpus"
        meter = tuple(int(x) for x in args.meter.split("/")) if args.meter else None
        report = prepare_corpus([str(midi_dir)], corpus_dir, force=True, val_fraction=0.15,
                                meter=meter, progress=False)  # type: ignore[arg-type]
    corpus = Corpus(corpus_dir)
    tok = corpus.tokenizer
    per_bar = corpus.tokens_per_bar()
    seq_len, adv_seq_len = fit_windows(per_bar)
    seen = corpus.token_counts() > 0
    corpus_info = {"folder": str(corpus_dir), "pieces": len(corpus.pieces),
                   "parts": [tok.part_name(v) for v in tok.part_voices],
                   "tokens_per_bar": per_bar, "seq_len": seq_len, "adv_seq_len": adv_seq_len,
                   "rebarred": report.rebarred if report else None}
    print(f"corpus {corpus_dir}: {len(corpus.pieces)} pieces, parts "
          f"{corpus_info['parts'] or 'none'}, {per_bar:.0f} tokens per bar -> seq_len "
          f"{seq_len}, adv_seq_len {adv_seq_len}"
          + (f", {report.rebarred} re-barred" if report else ""))

    # ------------------------------------------------------------------ the model
    model = args.model
    if model is None:
        config = RunConfig()
        if args.size == "small":
            for key, value in {"embed_dim": 64, "hidden_dim": 128, "num_layers": 2,
                               "theme_dim": 16, "noise_dim": 16, "mapping_width": 64,
                               "encoder_dim": 64, "disc_embed_dim": 16,
                               "disc_hidden_dim": 32}.items():
                config.set(f"model.{key}", value)
        transpose = [int(x) for x in args.transpose.split(",")]
        for key, value in {"mle_epochs": args.epochs, "adversarial": False, "batch_size": 16,
                           "transpose": transpose, "num_workers": 0,
                           "samples_per_validation": 0}.items():
            config.set(f"train.{key}", value)
        config.set("trainer.enable_progress_bar", False)
        run = out / "run"
        shutil.rmtree(run, ignore_errors=True)
        train(corpus_dir, run, config)
        model = str(export_model(run, run / "model.safetensors", force=True))
    sampler = Sampler.from_pretrained(model)
    trained = time.perf_counter()

    # ------------------------------------------------------------------ the sets
    generated_dir = out / "generated"
    shutil.rmtree(generated_dir, ignore_errors=True)
    generated_dir.mkdir(parents=True)
    rows = []
    for start in range(0, args.pieces, 32):
        rows += sampler.generate_ids(min(32, args.pieces - start), args.bars, form="",
                                     seed=args.seed + start, temperature=args.temperature)
    midis = sampler.to_midi(rows)
    for i, midi in enumerate(midis):
        midi.write(str(generated_dir / f"piece{i:03d}.mid"))
    rests = [rest_bars_at_end(row, tok) for row in rows]
    real_dir = out / "real-val"
    shutil.rmtree(real_dir, ignore_errors=True)
    real_dir.mkdir(parents=True)
    real_rows = []
    for i in corpus.split("val") or corpus.split("train")[:args.pieces]:
        ids = first_bars(corpus.tokens(i).tolist(), args.bars, tok)
        real_rows.append(ids)
        tok.decode(ids).write(str(real_dir / f"val{i:05d}.mid"))
    real = [pretty_midi.PrettyMIDI(str(p)) for p in sorted(real_dir.glob("*.mid"))]
    corpus_voices = {tok.part_name(int(tok.voice[i])) for i in np.flatnonzero(seen)
                     if tok.voice[i] >= 0}
    corpus_meters = {name.split("_")[1] for name, s in zip(tok.vocab, seen, strict=True)
                     if s and name.startswith("TimeSig_")}
    parts = bool(tok.parts)
    figures = {"generated": describe(midis, rows, tok, corpus_voices, corpus_meters, parts),
               "real": describe(real, real_rows, tok, corpus_voices, corpus_meters, parts)}
    figures["generated"]["rest_bars_at_end"] = float(np.mean(rests))
    result = evaluate(generated_dir, real_dir, train=str(corpus_dir), out=out / "report",
                      force=True)
    figures["generated"]["mean_overlap"] = result["mean_overlap"]
    for name in ("scale_consistency", "pitch_class_entropy"):
        feature = result["features"][name]
        figures["generated"][name] = feature["generated"]["mean"]
        figures["real"][name] = feature["reference"]["mean"]
    copying = result.get("copying") or {}
    for name in ("generated", "reference"):
        if copying.get(name):
            key = "generated" if name == "generated" else "real"
            figures[key]["copy_rate"] = copying[name]["copy_rate"]["mean"]

    table = format_table(corpus_info, figures, args.bars)
    print(table)
    (out / "corpus.md").write_text(table + "\n")
    (out / "corpus.json").write_text(json.dumps({"corpus": corpus_info, "model": model,
                                                 "transpose": args.transpose,
                                                 "temperature": args.temperature,
                                                 **figures}, indent=1, default=float) + "\n")
    print(f"\nwrote {out / 'corpus.md'}; training {trained - started:.0f} s, "
          f"judging {time.perf_counter() - trained:.0f} s")
    return 0


def format_table(corpus: dict, figures: dict, bars: int) -> str:
    g, r = figures["generated"], figures["real"]

    def cell(figure: dict, *keys, digits=2):
        value = figure
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return "n/a"
        if isinstance(value, list):
            return ", ".join(value) if value else "none"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = [f"corpus: {corpus['pieces']} pieces; parts: {', '.join(corpus['parts']) or 'none'}; "
             f"{corpus['tokens_per_bar']:.0f} tokens per bar; seq_len {corpus['seq_len']}, "
             f"adv_seq_len {corpus['adv_seq_len']}; re-barred: {corpus['rebarred']}", "",
             f"| {bars} bars | generated | real (validation) |", "|---|---:|---:|"]
    for label, keys in (("notes in bar 1", ("notes_per_bar", "first")),
                        ("notes in the middle bar", ("notes_per_bar", "middle")),
                        ("notes in the last bar", ("notes_per_bar", "last")),
                        ("median notes per bar", ("notes_per_bar", "median")),
                        ("pieces whose last bar > 3x median", ("last_bar_over_3x_median",)),
                        ("voices per piece", ("voices_per_piece",)),
                        ("voices outside the corpus", ("voices_outside_corpus",)),
                        ("meters outside the corpus", ("meters_outside_corpus",)),
                        ("rest bars at the end", ("rest_bars_at_end",)),
                        ("musegan evaluate mean overlap", ("mean_overlap",)),
                        ("scale consistency (in-key share)", ("scale_consistency",)),
                        ("pitch-class entropy", ("pitch_class_entropy",)),
                        ("8-gram copy rate (vs train)", ("copy_rate",)),
                        ("parallel 5ths + 8ves per 100 beats", ("parallels_per_100_beats",)),
                        ("of which 5ths", ("parallel_fifths_per_100_beats",))):
        lines.append(f"| {label} | {cell(g, *keys)} | {cell(r, *keys)} |")
    if "voice_ranges" in g:
        for name in sorted(set(g["voice_ranges"]) | set(r["voice_ranges"])):
            lines.append(f"| range of {name} (median low, high) | "
                         f"{g['voice_ranges'].get(name, 'n/a')} | "
                         f"{r['voice_ranges'].get(name, 'n/a')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
