"""The ``musegan`` command: a thin layer over functions users can import.

Each verb parses its arguments, calls the library, and turns a MuseganError into one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from musegan import __version__
from musegan.errors import MuseganError, output_exists

EXIT_USER_ERROR = 2  # bad input: a path, a file, a setting
MODEL_HELP = ("a bundled model (see `musegan models`), an exported .safetensors, a .ckpt or "
              "a run folder (default: the bundled default)")
SEED_HELP = "the same seed gives the same result (default: random, recorded in the .json)"


@contextlib.contextmanager
def quick_imports() -> Iterator[None]:
    """A verb's imports with the garbage collector off, and what they made frozen after.

    Importing torch makes about a million objects that live as long as the process; the
    collector walked them again and again, during the imports and after: 0.26 s of a
    3.3 s ``musegan generate`` (timed with ``gc.callbacks``), 3 ms with them frozen
    (``gc.freeze``: never scanned again). Only what the block imported for the first
    time is frozen: in-process callers of ``main`` that import nothing new keep their
    collector as it was.
    """
    before, was_enabled = len(sys.modules), gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > before:
            gc.freeze()
        if was_enabled:
            gc.enable()


def _prepare(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.prepare import MAX_FILE_MB, format_summary, prepare_corpus
        from musegan.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else Tokenizer(
        steps_per_quarter=args.steps_per_quarter, velocity_bins=args.velocity_bins,
        tempo_bins=args.tempo_bins)
    report = prepare_corpus(
        args.sources, args.out, tokenizer=tokenizer, val_fraction=args.val_fraction,
        workers=args.workers, force=args.force, limit=args.limit,
        max_file_mb=args.max_file_mb if args.max_file_mb is not None else MAX_FILE_MB,
        progress=not args.quiet and sys.stderr.isatty(),
        learn_parts=not (args.merge_tracks or args.tokenizer),
        meter=_meter(args.meter, "--meter") if args.meter else None,
    )
    if not args.quiet:
        print(format_summary(report))
    return 0


def _meter(text: str, flag: str) -> tuple[int, int]:
    """``"4/4"`` as (4, 4), or a one-line error naming the flag."""
    try:
        numerator, denominator = (int(x) for x in text.split("/"))
    except ValueError:
        raise MuseganError(f"{flag} takes a time signature such as 4/4 or 6/8, "
                           f"got {text!r}") from None
    return numerator, denominator


def _train(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.config import fit_windows
        from musegan.corpus import Corpus, is_corpus
        from musegan.training import CONFIG_FILE, RunConfig, check_config, train

    saved = Path(args.out or "") / CONFIG_FILE
    if args.resume and args.out and saved.is_file():
        config = RunConfig.load(saved)  # flags given now apply on top of the run's settings
    else:
        config = RunConfig.load(args.config) if args.config else RunConfig()
    flags = {
        "train.batch_size": args.batch_size, "train.seq_len": args.seq_len,
        "train.mle_epochs": args.mle_epochs, "train.adv_epochs": args.adv_epochs,
        "trainer.accelerator": args.accelerator, "trainer.devices": args.devices,
        "trainer.strategy": args.strategy, "trainer.num_nodes": args.num_nodes,
        "trainer.precision": args.precision, "trainer.max_epochs": args.max_epochs,
        "trainer.seed": args.seed, "trainer.limit_train_batches": args.limit_train_batches,
        "trainer.limit_val_batches": args.limit_val_batches,
        "trainer.fast_dev_run": args.fast_dev_run, "train.monitor": args.monitor,
    }
    for key, value in flags.items():
        if value is not None:
            config.set(key, value)
    if args.adversarial is not None:
        config.set("train.adversarial", args.adversarial == "on")
    elif args.adv_epochs:  # asking for adversarial epochs asks for the phase
        config.set("train.adversarial", True)
    for assignment in args.set or []:
        key, _, value = assignment.partition("=")
        config.set(key, value)
    check_config(config)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if args.out is None:
        raise MuseganError("--out RUN_DIR is required (where checkpoints, logs and samples go)")
    s = config.train
    if args.data_dir and (not s.seq_len or not s.adv_seq_len) and is_corpus(Path(args.data_dir)):
        per_bar = Corpus(args.data_dir).tokens_per_bar()
        seq_len, adv_seq_len = fit_windows(per_bar)
        s.seq_len = s.seq_len or seq_len
        s.adv_seq_len = s.adv_seq_len or min(adv_seq_len, s.seq_len)
        print(f"windows: seq_len {s.seq_len}, adv_seq_len {s.adv_seq_len} (the corpus's median "
              f"bar is {per_bar:.0f} tokens; set train.seq_len to choose)", file=sys.stderr)
    run = train(args.data_dir, args.out, config, resume=args.resume, verbose=args.verbose)
    print(f"trained {run}; export it with: musegan export {shlex.quote(str(run))}")
    return 0


def _export(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.export import export_model

    path = export_model(args.run_dir, args.out, fp16=args.fp16, checkpoint=args.checkpoint,
                        force=args.force, credit=args.credit, form=args.form,
                        melody=args.melody)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.md')}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    if args.no_primer and not args.primer:
        raise MuseganError("--no-primer is for --primer FILE.mid (it leaves the primer's "
                           "notes out)")
    with quick_imports():
        from musegan.sampling import PART_BARS, Sampler, generate_files

    sampler = Sampler.from_pretrained(args.model, device=args.device,
                                      cuda_graphs=args.cuda_graphs)
    themes = None
    if (args.theme or args.theme_from or args.interpolate) and not sampler.theme_dim:
        flag = "--theme" if args.theme else "--theme-from" if args.theme_from else "--interpolate"
        raise MuseganError(f"{sampler.name} has no themes (a Markov baseline), so {flag} "
                           "would change nothing; use a musegan model")
    if args.theme:
        themes = sampler.load_theme(args.theme)
    elif args.theme_from:
        themes = sampler.encode_theme(args.theme_from)
    elif args.interpolate:
        if args.n is not None and args.steps is not None and args.n != args.steps:
            raise MuseganError(f"--interpolate writes one piece per step: -n {args.n} and "
                               f"--steps {args.steps} disagree; give one of them")
        a, b = (sampler.encode_theme(path) for path in args.interpolate)
        themes = Sampler.interpolate(a, b, args.steps or args.n or 5)
    elif args.steps is not None:
        raise MuseganError("--steps is for --interpolate A.mid B.mid")
    if args.primer:
        _note_foreign_voice(sampler, args.primer)
    part_bars = PART_BARS if args.part_bars is None else args.part_bars
    if args.part_bars is not None and not sampler.plan(args.bars, args.form, part_bars)[0]:
        raise MuseganError("--part-bars is for a form; give --form LETTERS (without --bars, "
                           "the model's own form is used)")
    steer = _parse_steer(args.steer or [])
    paths = generate_files(
        sampler, args.out, n=args.n if args.n is not None else 4, bars=args.bars,
        temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, themes=themes, primer=args.primer,
        include_primer=not args.no_primer, tempo=args.tempo, plot=args.plot, audio=args.audio,
        force=args.force, progress=sys.stderr.isatty(), steer=steer, form=args.form,
        part_bars=part_bars, open_end=args.open_end, melody=args.melody,
        any_token=args.any_token, tempo_changes=args.tempo_changes, best_of=args.best_of,
        meter=f"{'/'.join(map(str, _meter(args.meter, '--meter')))}" if args.meter else None)
    print(f"wrote {_pieces(len(paths))} to {args.out} (each with a .json to regenerate it)")
    for path in paths:
        rests = json.loads(path.with_suffix(".json").read_text()).get("rest_bars_at_end")
        if rests:
            print(f"note: the model ended {path.name} early; its last {rests} bars are rests",
                  file=sys.stderr)
    if steer:
        _note_poor_steering(sampler, steer)
    return 0


def _note_foreign_voice(sampler, primer: str) -> None:
    """Say so when a primer ends in a voice the model's corpus never had: the
    continuation plays in it (a folk model's melody on the drum channel, say)."""
    tok, allowed = sampler.tokenizer, sampler.corpus_tokens
    voice = next((t for t in reversed(tok.encode(primer)) if tok.voice[t] >= 0), None)
    if allowed is not None and voice is not None and not bool(allowed[voice]):
        print(f"note: {Path(primer).name} ends in {tok.tokens([voice])[0]}, a voice "
              f"{sampler.name}'s corpus never had, and the new music plays in it; give a "
              "primer in one of its voices (musegan models NAME lists them)", file=sys.stderr)


def _note_poor_steering(sampler, steer: dict[str, float]) -> None:
    from musegan.steer import shortcomings

    for name, alpha in steer.items():
        problems = shortcomings(sampler.steering[name]) if alpha else []
        if problems:
            print(f"note: {name} steers poorly in this model ({'; '.join(problems)}); "
                  "see musegan steer --list", file=sys.stderr)


def _parse_steer(assignments: list[str]) -> dict[str, float]:
    steer = {}
    for assignment in assignments:
        name, _, alpha = assignment.partition("=")
        name = name.strip()
        if name in steer:
            raise MuseganError(f"--steer {name} is given twice; give each attribute once")
        try:
            steer[name] = float(alpha)
        except ValueError:
            raise MuseganError(f"--steer takes NAME=ALPHA, e.g. density=+1.5; "
                               f"got '{assignment}'") from None
    return steer


def _steer(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.sampling import Sampler

    if args.fit:
        return _steer_fit(args)
    sampler = Sampler.from_pretrained(args.model)
    if not sampler.steering:
        print(f"{sampler.name} has no steering directions; add them with: "
              f"musegan steer --fit MODEL --data DATA_DIR")
        return 0
    print(f"{sampler.name}: --steer NAME=ALPHA moves NAME by about ALPHA standard deviations "
          "of real excerpts; measured at alpha = -1, +1:")
    from musegan.steer import shortcomings

    for name, facts in sorted(sampler.steering.items()):
        print(f"  {name:12s} {facts['effect'][0]:+.2f}, {facts['effect'][1]:+.2f}  "
              f"real {facts['real_mean']:.3g} ± {facts['real_std']:.3g}  ({facts['formula']})")
        for problem in shortcomings(facts):
            print(f"  {'':12s} ! {problem}")
    return 0


def _steer_fit(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.steer import fit_model

    if not args.data:
        raise MuseganError("--fit needs --data DATA_DIR, the corpus (from musegan prepare) the "
                           "model was trained on: its pieces set the attributes' real-data units")
    names = [n.strip() for n in args.attributes.split(",")] if args.attributes else None
    path, report = fit_model(args.fit, args.data, args.out, names, themes=args.themes,
                             bars=args.bars, calibration_themes=args.calibration_themes,
                             seed=args.seed, force=args.force,
                             progress=lambda message: print(message, file=sys.stderr))
    print("attribute    method        moved at -1, +1   others moved   overlap drop  (* kept)")
    for name, methods in report.items():
        if name == "assessor":
            continue
        for method, (down, up) in methods.items():
            if method != "chosen":
                kept = "".join(mark for side, mark in zip(methods["chosen"], ("-", "+"),
                                                          strict=True)
                               if side == method)
                print(f"{name:12s} {method:12s} {down['effect']:+6.2f}, {up['effect']:+.2f}"
                      f"  {down['leakage']:6.2f}, {up['leakage']:.2f}  "
                      f"{down['overlap_drop']:5.0%}, "
                      f"{up['overlap_drop']:.0%}" + (f"  * {kept}" if kept else ""))
    print("how much of each attribute the theme decides (held-out R^2 of ridge regression, "
          "assessor): " + ", ".join(f"{name} {r2['ridge']:.2f}, {r2['assessor']:.2f}"
                                    for name, r2 in report["assessor"].items()))
    print(f"wrote {path}")
    return 0


def _critic(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.critic import fit_model

    path, facts = fit_model(args.fit, args.data, args.out, bars=args.bars,
                            samples=args.samples, epochs=args.epochs, seed=args.seed,
                            force=args.force)
    print(f"wrote {path}: a critic fitted on {facts['windows']['real']} real windows of "
          f"{facts['bars']} bars against {facts['windows']['own']} of the model's own; "
          f"held-out ROC AUC {facts['auc_own_samples']:.3f}")
    return 0


def _critique(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.sampling import Sampler

    sampler = Sampler.from_pretrained(args.model)
    sampler.require_critic("musegan critique")
    results, skipped = [], []
    for file in args.files:  # a file that cannot be read is reported, and the rest scored
        try:
            result = {"file": file, **sampler.critique(file)}
        except MuseganError as err:
            skipped.append(err.for_cli())
            print(f"skipped {err.for_cli()}", file=sys.stderr)
            continue
        results.append(result)
        if args.plot:
            import pretty_midi

            from musegan.render import piano_roll_png

            png = Path(file).with_suffix(".critique.png")
            if png.exists() and not args.force:
                raise output_exists(png, has_out=False)
            piano_roll_png(pretty_midi.PrettyMIDI(file), png, title=Path(file).name,
                           bar_scores=result["bars"])
            result["plot"] = str(png)
    if not results:
        raise MuseganError(f"none of the {len(args.files)} files could be scored "
                           f"({skipped[0]}{', ...' if len(skipped) > 1 else ''})")
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for result in results:
        weakest = sorted(range(len(result["bars"])), key=lambda i: result["bars"][i])[:3]
        print(f"{result['file']}: {result['score']:.2f} real; {len(result['bars'])} bars, "
              "weakest " + ", ".join(f"{i + 1} ({result['bars'][i]:.2f})" for i in weakest))
    return 0


def _seed(seed: int | None) -> int:
    import random

    return random.SystemRandom().randrange(2**31) if seed is None else seed


def _edit_theme(sampler, args: argparse.Namespace, source: str):
    """The theme an edit writes from: --theme FILE, --theme-from MIDI, else ``source``'s
    own; then --steer moves."""
    if getattr(args, "theme", None):
        theme = sampler.load_theme(args.theme)[:1]
    elif getattr(args, "theme_from", None):
        theme = sampler.encode_theme(args.theme_from)
    else:
        theme = sampler.encode_theme(source)
    steer = _parse_steer(getattr(args, "steer", None) or [])
    return (sampler.steer(theme, **steer) if steer else theme), steer


def _infill(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.edit import check_bars, check_outputs, parse_bars, write_edits
        from musegan.sampling import Sampler

    sampler = Sampler.from_pretrained(args.model)
    first, last = parse_bars(args.bars)
    ids = sampler.tokenizer.encode(args.file)
    check_bars((first, last), sum(t == sampler.tokenizer.BAR for t in ids), args.file)
    seed = _seed(args.seed)
    stem = f"{Path(args.file).stem}-bars{first}-{last}-s{seed}"
    check_outputs(args.out, [f"{stem}-{i:03d}" for i in range(max(args.n, 1))], args.plot,
                  args.force)
    _note_merged_tracks(sampler, args.file, ids)
    theme, steer = _edit_theme(sampler, args, args.file)
    edits = sampler.infill_edits(args.file, (first, last), n=args.n, seed=seed, theme=theme,
                                 temperature=args.temperature, candidates=args.candidates,
                                 method=args.method)
    count = sum(t == sampler.tokenizer.BAR for t in edits[0].ids)
    kept = [f"1-{first - 1}"] * (first > 1) + [f"{last + 1}-{count}"] * (last < count)
    paths = write_edits(
        sampler, [e.ids for e in edits], args.out, [f"{stem}-{i:03d}" for i in range(len(edits))],
        [{"tool": "infill", "source": args.file, "bars": [first, last],
          "kept_bars": ", ".join(kept) or "none", "seed": seed, "index": i,
          "method": args.method, "candidates": args.candidates, "candidate": e.candidate,
          "after_log_likelihood": e.after_log_likelihood, "temperature": args.temperature,
          "steer": steer or None, "theme": theme.reshape(-1).tolist(),
          "regenerate": "Sampler.infill(source, bars, n, seed=seed, theme=theme, "
                        "temperature=temperature, candidates=candidates, method=method)[index]"}
         for i, e in enumerate(edits)],
        plot=args.plot, shade=[list(range(first, last + 1))] * len(edits), force=args.force)
    print(f"wrote {_pieces(len(paths))} to {args.out}, bars {first}-{last} written again "
          f"(seed {seed})")
    return 0


def _note_merged_tracks(sampler, file: str, ids: list[int] | None = None) -> None:
    """Say so when the model's tokenizer writes a piece's tracks as fewer (a four-voice
    chorale edited with a one-line folk model comes back as one track); ``ids``: the
    file's tokens, where the caller has them."""
    from musegan.midi import load_score

    tok = sampler.tokenizer
    tracks = sum(1 for t in load_score(file).tracks if t.notes)
    kept = sum(1 for t in tok.decode_score(tok.encode(file) if ids is None else ids).tracks
               if t.notes)
    if kept < tracks:
        print(f"note: {Path(file).name} has {tracks} tracks, and {sampler.name} writes them as "
              f"{kept} (its corpus had no parts like them); a model trained on such pieces "
              "keeps them (see musegan models)", file=sys.stderr)


def _pieces(n: int) -> str:
    return f"{n} piece" + ("" if n == 1 else "s")


def _polish(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.edit import check_outputs, polish, write_edits
        from musegan.sampling import Sampler

    sampler = Sampler.from_pretrained(args.model)
    sampler.require_critic("musegan polish")
    seed = _seed(args.seed)
    stem = f"{Path(args.file).stem}-polished-s{seed}"
    check_outputs(args.out, [stem], args.plot, args.force)
    ids = sampler.tokenizer.encode(args.file)
    _note_merged_tracks(sampler, args.file, ids)
    new, changes = polish(sampler, ids, args.bars_max, seed, args.candidates, piece=args.file)
    kept = [c.bar for c in changes if c.kept]
    [path] = write_edits(
        sampler, [new], args.out, [stem],
        [{"tool": "polish", "source": args.file, "seed": seed, "bars_max": args.bars_max,
          "candidates": args.candidates, "changed_bars": kept,
          "tried": [c.__dict__ for c in changes],
          "regenerate": "Sampler.polish(source, bars_max, seed=seed, candidates=candidates)"}],
        plot=args.plot, shade=[kept], force=args.force)
    # The scores `critique` gives the piece and the written file (the critic reads the
    # whole piece both ways, so a bar's score also moves with the bars changed after it).
    before, after = sampler.judge([ids, new], as_written=True)
    for c in changes:
        print(f"bar {c.bar}: {before.bars[c.bar - 1]:.2f} -> {after.bars[c.bar - 1]:.2f} "
              + ("changed" if c.kept else "not changed (no new bar scored higher)"))
    print(f"wrote {path}: {len(kept)} of {len(changes)} weak bars changed (seed {seed}); "
          f"the piece scores {before.score:.2f} -> {after.score:.2f}")
    return 0


def _restyle(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.edit import check_outputs, write_edits
        from musegan.sampling import Sampler

    sampler = Sampler.from_pretrained(args.model)
    seed = _seed(args.seed)
    if not args.style and not args.steer:
        raise MuseganError("give the style: --style B.mid (or a theme file), or --steer moves")
    style = args.style or args.file
    theme_file = Path(style).suffix.lower() in (".npy", ".json")
    source = sampler.load_theme(style)[:1] if theme_file else style  # a theme, or a piece
    theme = source if theme_file else sampler.encode_theme(style)
    steer = _parse_steer(args.steer or [])
    if steer:
        theme = sampler.steer(theme, **steer)
    meter = "/".join(map(str, _meter(args.meter, "--meter"))) if args.meter else None
    if meter and args.keep == "rhythm":
        raise MuseganError("--keep rhythm keeps the piece's meter; drop --meter")
    stem = f"{Path(args.file).stem}-as-{Path(style).stem}-{args.keep}-s{seed}"
    check_outputs(args.out, [f"{stem}-{i:03d}" for i in range(max(args.n, 1))], args.plot,
                  args.force)
    _note_merged_tracks(sampler, args.file)
    rows = sampler.restyle_ids(args.file, source, args.keep, args.n, seed, args.temperature,
                               meter, theme=theme)
    written_in = [sampler.written_meter(row) if args.keep == "pitches" else None
                  for row in rows]
    wanted = sampler.style_meter(style) if args.keep == "pitches" and not theme_file else None
    # The meter the call forced (for the sidecar's recipe): --meter, else the style's own
    # where the model's corpus has it; None where the model chose.
    forced = meter or (wanted if wanted in sampler.meters else None)
    if wanted and not meter and wanted not in sampler.meters:
        shown = ", ".join(sorted({m for m in written_in if m}))
        print(f"note: {Path(style).name} is in {wanted}, which {sampler.name}'s corpus does "
              f"not have; the model chose the meter ({shown}); --meter N/D picks one",
              file=sys.stderr)
    paths = write_edits(
        sampler, rows, args.out, [f"{stem}-{i:03d}" for i in range(len(rows))],
        [{"tool": "restyle", "source": args.file, "style": args.style, "keep": args.keep,
          "meter": forced, "written_meter": written_in[i], "seed": seed, "index": i,
          "temperature": args.temperature,
          "steer": steer or None, "theme": theme.reshape(-1).tolist(),
          "regenerate": "Sampler.restyle(source, theme, keep, n, seed=seed, "
                        "temperature=temperature, meter=meter)[index]"}
         for i in range(len(rows))],
        plot=args.plot, force=args.force)
    print(f"wrote {_pieces(len(paths))} to {args.out}: {args.file} with "
          f"{args.style or 'its own steered'} theme, its {args.keep} kept (seed {seed})")
    return 0


def _baseline(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.corpus import Corpus, is_corpus
        from musegan.markov import MarkovModel

    data = Path(args.data_dir)
    if not is_corpus(data):
        raise MuseganError(f"{data} is not a prepared corpus; make one with: "
                           f"musegan prepare MIDI_FOLDER --out {shlex.quote(str(data))}")
    out = Path(args.out)
    if out.exists() and not args.force:  # checked before the fit
        raise output_exists(out)
    model = MarkovModel.fit(Corpus(data), **({} if args.order is None else {"order": args.order}))
    path = model.save(out, force=args.force)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): an order-{model.order} Markov "
          f"model of {model.card['pieces']} pieces; sample it with: "
          f"musegan generate --model {shlex.quote(str(path))}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.evaluate import evaluate

    result = evaluate(args.generated, args.reference, train=args.train, out=args.out,
                      n=args.ngram, max_pieces=args.max_pieces, force=args.force,
                      progress=sys.stderr.isatty())
    print(f"mean overlap {result['mean_overlap']:.3f}, mean KL {result['mean_kl']:.3f} "
          f"({result['counts']['generated']} generated vs {result['counts']['reference']} "
          f"reference pieces); report: {Path(args.out) / 'report.md'}")
    for skipped in result.get("skipped") or []:
        print(f"skipped ({skipped['set']}) {skipped['source']}: {skipped['reason']}",
              file=sys.stderr)
    return 0


def _models(args: argparse.Namespace) -> int:
    with quick_imports():
        from musegan.modelfile import load_model, model_card_markdown, model_file
        from musegan.sampling import DEFAULT_MODEL, bundled_models

    models = bundled_models()
    if args.name:
        if args.name in models:
            path = models[args.name]
        elif Path(args.name).exists():  # a model file or run folder of one's own
            path = model_file(args.name)
        else:
            raise MuseganError(f"no bundled model is called {args.name}, and there is no such "
                               "file; the bundled models are "
                               f"{', '.join(sorted(models)) or 'none'}")
        card = path.with_suffix(".md")
        print(card.read_text().rstrip() if card.is_file() and path.suffix != ".ckpt" else
              model_card_markdown(load_model(path).card, path.name).rstrip())
        return 0
    if not models:
        print("no model is bundled with this musegan")
        return 0
    for name, path in sorted(models.items()):
        print(model_line(name, path, load_model(path).card, default=name == DEFAULT_MODEL))
    print("musegan models NAME (or a model file) prints a model's card")
    return 0


def model_line(name: str, path: Path, card: dict, default: bool = False) -> str:
    """One line about a bundled model: name, size, data, what it writes, its figures."""
    data = card.get("data") or {}
    pieces = (data.get("pieces") or {}).get("train")
    sources = ", ".join(data.get("sources") or []) or data.get("path") or "?"
    trained = f"{sources}, {pieces} tunes" if pieces else sources
    nll = (card.get("validation") or {}).get("val/nll")
    facts = [f"{path.stat().st_size / 1e6:.1f} MB", trained,
             card.get("form") and f"form {card['form']}", card.get("melody") and "melody",
             "adversarial phase" if card.get("adversarial") else "MLE only",
             nll is not None and f"val NLL {nll:.3f}"]
    return f"{name}{' (default)' if default else ''}: " + "; ".join(f for f in facts if f)


def _fraction_or_count(text: str) -> float | int:
    """'10' is ten batches; '0.25' a quarter of them (Lightning reads 1.0 as all)."""
    value = float(text)
    return int(value) if value.is_integer() and value >= 1 else value


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
               "  musegan prepare oneills ryans aird --out data/books\n"
               "  musegan prepare 'songs/**/*.mid' more/ --out data/mix --val-fraction 0.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("sources", nargs="+", metavar="SRC",
                         help="a folder (searched recursively for .mid/.midi/.kar and .abc), "
                              "a file, a glob pattern, the word 'bach' (music21's chorales), "
                              "or 'oneills', 'ryans', 'aird' (music21's fiddle-tune books)")
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
    prepare.add_argument("--merge-tracks", action="store_true",
                         help="merge the tracks of one program into one voice (default: "
                              "tracks that share a program keep their names as parts)")
    prepare.add_argument("--meter", metavar="N/D",
                         help="bar files with no time signature, or an implausible one "
                              "such as 1/4, in this meter (e.g. 4/4)")
    prepare.add_argument("--tokenizer", metavar="FILE",
                         help="a tokenizer.json to use as it is, instead of the options "
                              "below (no parts learned)")
    prepare.add_argument("--steps-per-quarter", type=int, default=12, metavar="N",
                         help="time grid per quarter note (default 12: 16ths and triplets exact)")
    prepare.add_argument("--velocity-bins", type=int, default=16, metavar="N",
                         help="velocity levels (default 16)")
    prepare.add_argument("--tempo-bins", type=int, default=64, metavar="N",
                         help="tempo levels, log-spaced over 30-300 bpm (default 64)")
    prepare.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    prepare.set_defaults(handler=_prepare)

    train = verbs.add_parser(
        "train", help="train the LSTM-GAN on a prepared corpus",
        description="Train the LSTM-GAN on a corpus from `musegan prepare` (with no DATA_DIR, "
                    "on music21's Bach chorales). Settings come from defaults, then --config "
                    "FILE.yaml, then flags; --print-config shows them all.",
        epilog="examples:\n  musegan train data/folk --out runs/folk\n"
               "  musegan train data/folk --out runs/folk --resume\n"
               "  musegan train data/folk --out runs/mle --adversarial off\n"
               "  musegan train data/folk --out runs/big --accelerator gpu --devices 4 "
               "--strategy ddp --precision bf16-mixed\n"
               "  musegan train --print-config > my.yaml   # then edit, and --config my.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("data_dir", nargs="?", metavar="DATA_DIR",
                       help="a corpus folder from `musegan prepare` (default: Bach chorales)")
    train.add_argument("--out", metavar="RUN_DIR", help="the run folder (required to train)")
    train.add_argument("--config", metavar="FILE", help="a YAML config (see --print-config)")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="any config field, e.g. --set model.hidden_dim=256 (repeatable)")
    train.add_argument("--print-config", action="store_true",
                       help="print the full config with every default and exit")
    train.add_argument("--verbose", action="store_true",
                       help="show Lightning's tips, hardware lines and third-party warnings")
    train.add_argument("--resume", action="store_true",
                       help="continue RUN_DIR from its last checkpoint")
    train.add_argument("--adversarial", choices=["on", "off"],
                       help="on: after MLE, the sequence-GAN phases (an experiment: measured, "
                            "they do not improve the music; default off)")
    group = train.add_argument_group("common settings (shortcuts for --set)")
    group.add_argument("--batch-size", type=int)
    group.add_argument("--seq-len", type=int,
                       help="tokens per training window (default: 8 of the corpus's bars)")
    group.add_argument("--mle-epochs", type=int)
    group.add_argument("--adv-epochs", type=int)
    group.add_argument("--monitor", choices=["val/nll", "val/music/gap", "val/diversity_4gram"],
                       help="what picks the best checkpoint (default val/nll; val/music/gap: "
                            "how far the samples' music metrics are from the validation data's)")
    group = train.add_argument_group("Lightning Trainer")
    group.add_argument("--accelerator", help="cpu, gpu, auto (default auto)")
    group.add_argument("--devices", help="how many (or which) devices, e.g. 1, 4, auto")
    group.add_argument("--strategy", help="auto, ddp, ... (ddp for several GPUs or machines)")
    group.add_argument("--num-nodes", type=int, help="machines, for multi-node DDP")
    group.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed")
    group.add_argument("--max-epochs", type=int, help="override the sum of the phases")
    group.add_argument("--seed", type=int, help="the same seed gives the same run (default 1234)")
    group.add_argument("--limit-train-batches", type=_fraction_or_count, metavar="N|F",
                       help="train on N batches per epoch, or a fraction F (e.g. 0.25)")
    group.add_argument("--limit-val-batches", type=_fraction_or_count, metavar="N|F",
                       help="validate on N batches, or a fraction F")
    group.add_argument("--fast-dev-run", type=int, metavar="N",
                       help="one epoch of each phase with N batches: checks that everything works")
    train.set_defaults(handler=_train)

    export = verbs.add_parser(
        "export", help="write a trained model in the pickle-free sharing format",
        description="Write RUN_DIR's model as one .safetensors file (generator and theme "
                    "networks, config, tokenizer) plus a model card (.md). It loads with "
                    "no pickle.")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder from `musegan train`")
    export.add_argument("--out", metavar="FILE", help="default RUN_DIR/model.safetensors")
    export.add_argument("--checkpoint", default="last",
                        help="last (default), best (by the run's --monitor, val/nll unless set), "
                             "or a path")
    export.add_argument("--fp16", action="store_true", help="half-precision weights: half the size")
    export.add_argument("--credit", default="", help="the training data's licence credit")
    export.add_argument("--form", default="", metavar="LETTERS",
                        help="the form a plain `musegan generate` writes with this model, "
                             "e.g. AABB (default: none, 16 bars)")
    export.add_argument("--melody", action="store_true",
                        help="a melody model: generate writes one line with it (the top "
                             "note of each onset)")
    export.add_argument("--force", action="store_true", help="replace an existing file")
    export.set_defaults(handler=_export)

    generate = verbs.add_parser(
        "generate", help="write new MIDI files with a trained model",
        description="Write new MIDI files (and a .json per piece to regenerate it) with the "
                    "bundled model or one you trained and exported.",
        epilog="examples:\n  musegan generate --out songs/\n"
               "  musegan generate -n 8 --bars 32 --temperature 0.9 --seed 7 --plot\n"
               "  musegan generate --primer start.mid --bars 8\n"
               "  musegan generate --theme-from tune.mid -n 4        # variations on a tune\n"
               "  musegan generate --interpolate a.mid b.mid --steps 5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    generate.add_argument("--model", metavar="NAME|PATH", help=MODEL_HELP)
    generate.add_argument("-n", type=int, help="how many pieces (default 4; with --interpolate, "
                                               "the steps)")
    generate.add_argument("--bars", type=int, default=None,
                          help="bars per piece (default: what --form makes; the model's own "
                               "form if it has one, else 16)")
    generate.add_argument("--form", metavar="LETTERS",
                          help="part letters such as AABB, AB, AABA: a letter seen before "
                               "repeats its part exactly (default: the model's own form; '' "
                               "for none)")
    generate.add_argument("--part-bars", type=int, metavar="N",
                          help="bars per part of the form (default 8)")
    generate.add_argument("--open-end", action="store_true",
                          help="end where the model stops, not on a tonic-chord note")
    generate.add_argument("--melody", action=argparse.BooleanOptionalAction, default=None,
                          help="one melody line: the top note of each onset, each note "
                               "ending where the next begins (default: the model's own)")
    generate.add_argument("--any-token", "--any-program", action="store_true",
                          dest="any_token",
                          help="allow programs, parts, note lengths, meters and tempos the "
                               "model's training corpus never had")
    generate.add_argument("--best-of", type=int, default=1, metavar="K",
                          help="write K candidates per piece and keep the one the model's "
                               "critic finds most real (default 1)")
    generate.add_argument("--tempo-changes", action="store_true",
                          help="let the tempo change within a piece (default: one tempo, "
                               "unless the primer changes tempo)")
    generate.add_argument("--meter", metavar="N/D",
                          help="the pieces' time signature, one of the corpus's "
                               "(see musegan models)")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="below 1 plays safe, above 1 takes risks (default 1.0)")
    generate.add_argument("--top-k", type=int, help="sample from the K likeliest tokens only")
    generate.add_argument("--top-p", type=float, help="sample from the smallest set holding "
                                                      "probability P")
    generate.add_argument("--seed", type=int, help=SEED_HELP)
    generate.add_argument("--primer", metavar="FILE.mid", help="continue this MIDI file")
    generate.add_argument("--no-primer", action="store_true",
                          help="leave the primer's notes out of the written files; its "
                               "bars stay as rests, so the new music lines up after the "
                               "primer in a DAW")
    themes = generate.add_mutually_exclusive_group()
    themes.add_argument("--theme", metavar="FILE", help="themes from a .npy or .json file")
    themes.add_argument("--theme-from", metavar="FILE.mid",
                        help="the theme of this piece: variations on it")
    themes.add_argument("--interpolate", nargs=2, metavar=("A.mid", "B.mid"),
                        help="walk from A's theme to B's, one piece per step")
    generate.add_argument("--steps", type=int,
                          help="pieces from A to B for --interpolate (default 5)")
    generate.add_argument("--tempo", type=float, metavar="BPM",
                          help="tempo of the new music, 30-300 bpm")
    generate.add_argument("--out", default="songs", metavar="DIR", help="output folder (songs)")
    generate.add_argument("--plot", action="store_true", help="also write a piano-roll PNG")
    generate.add_argument("--audio", action="store_true",
                          help="also render a WAV (needs FluidSynth and a GM soundfont)")
    generate.add_argument("--steer", action="append", metavar="NAME=ALPHA",
                          help="move the themes along a learned direction, e.g. density=+1.5 "
                               "(+1 is about one real-data std; see musegan steer --list); "
                               "repeat it to steer several")
    generate.add_argument("--force", action="store_true", help="replace existing files")
    generate.add_argument("--device", default="cpu",
                          help="cpu (default), cuda or cuda:N; a GPU pays off for many pieces")
    generate.add_argument("--cuda-graphs", action="store_true",
                          help="with --device cuda: replay each decoding step from a CUDA "
                               "graph (fewer kernel launches; a little start-up time)")
    generate.set_defaults(handler=_generate)

    steer = verbs.add_parser(
        "steer", help="list or fit the musical directions themes can be steered along",
        description="--list shows what `musegan generate --steer NAME=ALPHA` can move in a "
                    "model; --fit learns the directions for a model and writes them into it.",
        epilog="examples:\n  musegan steer --list\n"
               "  musegan steer --fit runs/cre/model.safetensors --data data/cre --force\n"
               "  musegan steer --fit runs/cre --data data/cre --attributes density,register",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    action = steer.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="the attributes a model knows")
    action.add_argument("--fit", metavar="RUN_OR_MODEL",
                        help="learn directions for this exported model, checkpoint or run")
    steer.add_argument("--model", metavar="NAME|PATH", help="for --list: " + MODEL_HELP)
    steer.add_argument("--data", metavar="DATA_DIR", help="for --fit: the model's training corpus")
    steer.add_argument("--attributes", help="for --fit: comma-separated (default: all of "
                                            "density,register,range,syncopation,leaps,entropy,novelty)")
    steer.add_argument("--themes", type=int, default=2048, help="for --fit: themes to fit on")
    steer.add_argument("--calibration-themes", type=int, default=128,
                       help="for --fit: themes each direction's effect is measured on")
    steer.add_argument("--bars", type=int, default=8, help="for --fit: bars per piece")
    steer.add_argument("--seed", type=int, default=0, help="for --fit (default 0)")
    steer.add_argument("--out", help="for --fit: write here instead of into the model")
    steer.add_argument("--force", action="store_true", help="replace the model file in place")
    steer.set_defaults(handler=_steer)

    critic = verbs.add_parser(
        "critic", help="fit a model's critic, which scores how real music is",
        description="Fit the critic of an exported model: a bidirectional LSTM that tells "
                    "real windows of the corpus from the model's own pieces, calibrated so a "
                    "score is the probability of real. It goes into the model file, for "
                    "musegan critique and musegan generate --best-of.",
        epilog="example:\n  musegan critic --fit runs/cre/model.safetensors --data data/cre "
               "--force",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    critic.add_argument("--fit", required=True, metavar="MODEL", help="an exported model file")
    critic.add_argument("--data", required=True, metavar="DATA_DIR",
                        help="the corpus the model was trained on")
    critic.add_argument("--bars", type=int, default=8, help="bars per window (default 8)")
    critic.add_argument("--samples", type=int, default=512,
                        help="the model's own pieces to fit against (default 512)")
    critic.add_argument("--epochs", type=int, default=8,
                        help="passes over the windows while fitting (default 8)")
    critic.add_argument("--seed", type=int, default=0, help="the fit's seed (default 0)")
    critic.add_argument("--out", help="write here instead of into the model")
    critic.add_argument("--force", action="store_true", help="replace the model file in place")
    critic.set_defaults(handler=_critic)

    critique = verbs.add_parser(
        "critique", help="score MIDI files with a model's critic, per bar and per piece",
        description="How real a model's critic finds each file (0-1) and each of its bars.")
    critique.add_argument("files", nargs="+", metavar="FILE.mid", help="the pieces to score")
    critique.add_argument("--model", metavar="NAME|PATH", help=MODEL_HELP)
    critique.add_argument("--json", action="store_true",
                          help="print a list with one {file, score, bars} object per file")
    critique.add_argument("--plot", action="store_true",
                          help="write FILE.critique.png: the piano roll, bars shaded by score")
    critique.add_argument("--force", action="store_true", help="replace existing plots")
    critique.set_defaults(handler=_critique)

    baseline = verbs.add_parser(
        "baseline", help="fit a baseline model (an n-gram Markov model over the same tokens)",
        description="Fit an order-K Markov model on a prepared corpus's train split. It "
                    "samples through the same grammar-constrained decoder as the LSTM: "
                    "musegan generate --model FILE.")
    baseline.add_argument("kind", choices=["markov"])
    baseline.add_argument("data_dir", metavar="DATA_DIR", help="a corpus from musegan prepare")
    baseline.add_argument("--order", type=int, default=None,
                          help="tokens per n-gram, the one predicted included (default 8: "
                               "about two notes of context)")
    baseline.add_argument("--out", required=True, help="the .safetensors file to write")
    baseline.add_argument("--force", action="store_true", help="replace an existing file")
    baseline.set_defaults(handler=_baseline)

    evaluate = verbs.add_parser(
        "evaluate", help="compare generated MIDI with real MIDI: features, overlap, copying",
        description="Compare a set of generated MIDI files with a reference set (Yang & "
                    "Lerch overlap and KL per feature) and measure how much they copy "
                    "from the training data. Writes report.md, report.json and pictures.")
    evaluate.add_argument("generated", metavar="GENERATED", help="folder of generated MIDI")
    evaluate.add_argument("--reference", required=True, metavar="REAL",
                          help="folder of real MIDI to compare with (e.g. a validation set)")
    evaluate.add_argument("--train", metavar="TRAIN",
                          help="training data, for the copying figures: a MIDI folder or a "
                               "corpus from musegan prepare (its train split)")
    evaluate.add_argument("--out", required=True, help="folder for the report")
    evaluate.add_argument("--ngram", type=int, default=8,
                          help="notes per n-gram for the copying figures (default 8)")
    evaluate.add_argument("--max-pieces", type=int, help="use at most this many pieces per set")
    evaluate.add_argument("--force", action="store_true", help="replace an existing report")
    evaluate.set_defaults(handler=_evaluate)

    def edit_parser(name: str, help: str, description: str, epilog: str):
        verb = verbs.add_parser(name, help=help, description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        verb.add_argument("file", metavar="FILE.mid", help="the piece to edit")
        verb.add_argument("--model", metavar="NAME|PATH", help=MODEL_HELP)
        verb.add_argument("--seed", type=int, help=SEED_HELP)
        verb.add_argument("--out", default="edits", metavar="DIR",
                          help="folder for the MIDI and its .json (default edits/)")
        verb.add_argument("--plot", action="store_true",
                          help="also draw a piano roll with the rewritten bars shaded")
        verb.add_argument("--force", action="store_true", help="replace existing files")
        return verb

    infill = edit_parser(
        "infill", "write chosen bars of a piece again, leading into what follows",
        "Write bars FIRST-LAST (counted from 1) of a piece again, n ways; every other bar "
        "stays as it is. Candidates for the gap are weighed by how likely they make the "
        "bars after it.",
        "example:\n  musegan infill tune.mid --bars 5-8 -n 4 --seed 1 --plot")
    infill.add_argument("--bars", required=True, metavar="FIRST-LAST",
                        help="the bars to write again, e.g. 5-8 (or one bar: 5)")
    infill.add_argument("-n", type=int, default=4, help="how many versions (default 4)")
    infill.add_argument("--candidates", type=int, default=16,
                        help="gap candidates weighed per version (default 16)")
    infill.add_argument("--method", choices=("rescore", "continue"), default="rescore",
                        help="continue: ignore what follows the gap (for comparison)")
    infill.add_argument("--temperature", type=float, default=1.0)
    infill.add_argument("--theme", metavar="FILE", help="a theme file (.npy/.json) to write "
                                                         "the gap from (default: the piece's)")
    infill.add_argument("--theme-from", metavar="MIDI", help="write the gap from this "
                                                              "piece's theme")
    infill.add_argument("--steer", action="append", metavar="NAME=ALPHA",
                        help="move the theme, e.g. density=+1 (repeatable)")
    infill.set_defaults(handler=_infill)

    polish_verb = edit_parser(
        "polish", "write a piece's weakest bars again where the critic finds them better",
        "The model's critic scores every bar; the weakest (a quarter of the piece at "
        "most) are written again, and a new bar is kept only where the critic scores it "
        "higher. Prints each bar's score before and after.",
        "example:\n  musegan polish tune.mid --bars-max 4 --seed 1 --plot")
    polish_verb.add_argument("--bars-max", type=int, metavar="N",
                             help="bars to try at most (default: a quarter of the piece)")
    polish_verb.add_argument("--candidates", type=int, default=16,
                             help="candidates weighed per bar (default 16)")
    polish_verb.set_defaults(handler=_polish)

    restyle_verb = edit_parser(
        "restyle", "write a piece again with another's theme, keeping its rhythm or pitches",
        "Write FILE again from another piece's theme. --keep rhythm: every onset and "
        "duration stays and the model chooses the pitches; --keep pitches: the sequence "
        "of pitches stays and the model writes the rhythm, in the style's meter.",
        "examples:\n  musegan restyle a.mid --style b.mid --keep rhythm -n 4\n"
        "  musegan restyle a.mid --style b.mid --keep pitches --meter 6/8\n"
        "  musegan restyle a.mid --steer density=+1.5 --keep pitches")
    restyle_verb.add_argument("--style", metavar="B.mid|THEME",
                              help="the piece (or theme file, .npy/.json) whose theme to use")
    restyle_verb.add_argument("--keep", choices=("rhythm", "pitches"), required=True,
                              help="what stays of FILE: its rhythm (onsets and durations) or "
                                   "its sequence of pitches")
    restyle_verb.add_argument("-n", type=int, default=4, help="how many versions (default 4)")
    restyle_verb.add_argument("--meter", metavar="N/D",
                              help="with --keep pitches: the meter (default: the style's)")
    restyle_verb.add_argument("--steer", action="append", metavar="NAME=ALPHA",
                              help="move the theme, e.g. density=+1 (repeatable)")
    restyle_verb.add_argument("--temperature", type=float, default=1.0)
    restyle_verb.set_defaults(handler=_restyle)

    models = verbs.add_parser("models", help="list the bundled models, one line each, or "
                                             "print one's model card")
    models.add_argument("name", nargs="?", metavar="NAME|PATH",
                        help="print this model's card: a bundled model's name, or a model "
                             "file or run folder of your own")
    models.set_defaults(handler=_models)
    for verb in verbs.choices.values():
        verb.add_argument("--threads", type=int, metavar="N",
                          help="CPU threads for torch (default: 1 to sample and to train "
                               "small models, all to train larger ones; OMP_NUM_THREADS "
                               "is respected)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        if getattr(args, "threads", None) is not None:
            from musegan.threads import set_threads

            set_threads(args.threads)
        return args.handler(args)
    except MuseganError as err:
        print(f"musegan {args.verb}: error: {err.for_cli()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"musegan {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`musegan steer --list | head -3`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error
        return 0
    except OSError as err:  # a file the system would not read or write: one line, no trace
        where = f"{err.filename}: " if err.filename else ""
        print(f"musegan {args.verb}: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
