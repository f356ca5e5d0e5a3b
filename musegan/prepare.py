"""``musegan prepare``: MIDI files in, a tokenized corpus out (see ``musegan.corpus``).

Files are read, hashed and tokenized in worker processes, a chunk at a time (the
tokenizer encodes a chunk in one vectorized pass), and streamed to shards in a fixed
order, so memory stays flat and the output is the same on every run. A file that cannot
be used is reported with its reason and the job goes on.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musegan import corpus as fmt
from musegan import tokenizer as vocabulary
from musegan.errors import MidiError, MuseganError
from musegan.midi import is_midi_path, load_score
from musegan.tokenizer import DRUMS, Tokenizer
from musegan.tunebooks import (
    COLLECTIONS,
    collection_files,
    is_abc_path,
    render_tune,
    split_tunes,
    tune_label,
)

BACH = "bach"  # the source word for music21's bundled Bach chorales
ABC = "abc"
VAL_FRACTION = 0.05
MAX_FILE_MB = 32.0  # the largest real MIDI files are a few MB; beyond this it is rarely music
CHUNK_FILES = 32  # files per task: big enough to amortise the batch encoder's fixed cost
# What the index keeps of each piece, besides where its tokens and bars are.
RECORD_FIELDS = ("sha256", "music_sha256", "notes", "seconds", "time_signature", "has_drums",
                 "warnings")


@dataclass(frozen=True)
class SourceFile:
    """One input: a MIDI file, a music21 chorale, or one tune of an ABC file (the last
    two rendered to MIDI on the fly)."""

    name: str  # shown in reports: the path, "bach/bwv269" or "oneills/0001-0050.abc X:1 ..."
    path: str  # the file read and hashed (the .mxl for a chorale, the whole .abc file)
    kind: str = "midi"  # "midi", "bach" or "abc"
    tune: int = 0  # for "abc": which tune of the file, counted from 0

    def key(self, data: bytes) -> str:
        """What identifies this input's content: the file's sha256, and for a tune of an
        ABC file, which tune it is."""
        digest = hashlib.sha256(data)
        if self.kind == ABC:
            digest.update(f"\0tune {self.tune}".encode())
        return digest.hexdigest()


@dataclass
class PrepareReport:
    """What ``prepare_corpus`` did; saved as report.json and summarised by the CLI."""

    output: str
    sources: list[str]
    files_found: int = 0
    files_used: int = 0
    reused: int = 0  # pieces taken from the existing output instead of re-reading
    up_to_date: bool = False  # nothing changed: the existing output was kept as it was
    pieces: dict = field(default_factory=lambda: {"train": 0, "val": 0})
    parts: list[str] = field(default_factory=list)  # the vocabulary's named tracks
    rebarred: int = 0  # pieces barred in the --meter asked for
    notes: int = 0
    tokens: int = 0
    hours: float = 0.0
    seconds_elapsed: float = 0.0
    skipped: list[dict] = field(default_factory=list)  # {"source", "reason"}
    duplicates: list[dict] = field(default_factory=list)  # {"source", "duplicate_of"}
    warnings: list[dict] = field(default_factory=list)  # {"source", "warnings"}

    def to_dict(self) -> dict:
        return asdict(self)


class NoUsableMidiError(MuseganError):
    """Nothing in the sources could be used; carries the report with the reasons."""

    def __init__(self, message: str, report: PrepareReport):
        super().__init__(message)
        self.report = report


# ---------------------------------------------------------------------- sources

def find_sources(specs: Sequence[str], skipped: list[dict]) -> list[SourceFile]:
    """Expand folders (recursively), globs, the word ``bach`` and the names of the ABC
    collections (``oneills``, ``ryans``, ``aird``) into sources; an ABC file gives one
    source per tune.

    Problems with a spec itself (missing path, folder without music) go to ``skipped``.
    """
    found: list[SourceFile] = []
    seen: set[tuple[str, int]] = set()

    def add(source: SourceFile):
        key = (os.path.realpath(source.path), source.tune)
        if key not in seen:
            seen.add(key)
            found.append(source)

    def add_file(file: Path, name: str):
        if is_abc_path(file):
            for source in abc_tunes(file, name, skipped):
                add(source)
        else:
            add(SourceFile(name, str(file)))

    for spec in specs:
        path = Path(spec).expanduser()
        if spec == BACH and not path.exists():
            for source in bach_chorales():
                add(source)
        elif spec in COLLECTIONS and not path.exists():
            for file in collection_files(spec):
                add_file(file, f"{spec}/{file.name}")
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if (is_midi_path(p) or is_abc_path(p)) and not p.is_dir())
            if not files:
                skipped.append({"source": spec, "reason": "no MIDI files (.mid, .midi, .kar) "
                                                          "or ABC files (.abc) in this folder "
                                                          "or below it"})
            for file in files:
                add_file(file, str(file))
        elif path.exists() or path.is_symlink():
            add_file(path, str(path))
        elif glob.has_magic(spec):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                             if (is_midi_path(Path(p)) or is_abc_path(Path(p)))
                             and not os.path.isdir(p))
            if not matches:
                skipped.append({"source": spec, "reason": "the pattern matches no MIDI file "
                                                          "(nor ABC file)"})
            for match in matches:
                add_file(match, str(match))
        else:
            words = ", ".join([BACH, *COLLECTIONS])
            skipped.append({"source": spec, "reason": "no such file or folder; check the "
                                                      f"path (or use one of the words {words})"})
    return found


def abc_tunes(path: Path, name: str, skipped: list[dict]) -> list[SourceFile]:
    """One source per tune of an ABC file (an unreadable file or one with no ``X:`` field
    goes to ``skipped``)."""
    try:
        text = read_abc(path.read_bytes())
    except OSError as err:
        skipped.append({"source": name, "reason": f"cannot read the file ({err.strerror}); "
                                                  "check the path and permissions"})
        return []
    tunes = split_tunes(text)
    if not tunes:
        skipped.append({"source": name, "reason": "no tunes in this ABC file (no X: field)"})
    return [SourceFile(tune_label(name, tune), str(path), ABC, i) for i, tune in enumerate(tunes)]


def read_abc(data: bytes) -> str:
    """ABC text: UTF-8, or Latin-1 as older tune books are."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def bach_chorales() -> list[SourceFile]:
    """music21's bundled Bach chorales (~370), as sources rendered offline."""
    from music21 import corpus

    sources = []
    for name in corpus.chorales.Iterator(returnType="filename"):
        paths = corpus.getWork(name)  # a list when the work comes in several formats
        if isinstance(paths, list):
            paths = sorted(paths, key=lambda p: Path(p).suffix != ".mxl")[0]
        sources.append(SourceFile(name, str(paths), kind=BACH))
    return sources


def render_chorale(path: str, name: str | None = None) -> bytes:
    """A music21 score file (e.g. a bundled chorale) as MIDI bytes, repeats expanded."""
    from music21 import converter
    from music21.midi import translate

    name = name or path
    try:
        score = converter.parse(path)
    except Exception as err:
        raise MidiError(name, f"music21 cannot read it ({_one_line(err)})") from None
    try:
        score = score.expandRepeats()
    except Exception as err:
        raise MidiError(name, f"music21 cannot expand its repeats ({_one_line(err)})") from None
    try:
        return translate.streamToMidiFile(score).writestr()
    except Exception as err:
        raise MidiError(name, f"music21 cannot write it as MIDI ({_one_line(err)})") from None


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


# ---------------------------------------------------------------------- workers

_worker_tokenizer: Tokenizer | None = None
_worker_cached: frozenset = frozenset()
_worker_meter: tuple[int, int] | None = None


def _init_worker(tokenizer: dict, cached: frozenset, meter: tuple[int, int] | None) -> None:
    global _worker_tokenizer, _worker_cached, _worker_meter
    _worker_tokenizer = Tokenizer.from_dict(tokenizer)
    _worker_cached = cached
    _worker_meter = meter


def _read_source(source: SourceFile, max_bytes: float, rendered: bytes | None = None,
                 cached: frozenset = frozenset()) -> tuple[str, bytes | None]:
    """(the source's key, its MIDI bytes): chorales and tunes rendered (unless already
    ``rendered``); None for the bytes when the key is in ``cached``."""
    size = os.stat(source.path).st_size
    if size > max_bytes:
        raise MidiError(source.name, f"file is {size / 1e6:.1f} MB, over the "
                                     f"{max_bytes / 1e6:g} MB limit; raise --max-file-mb "
                                     "if it really is music")
    with open(source.path, "rb") as file:
        data = file.read()
    key = source.key(data)
    if key in cached:
        return key, None
    if rendered is not None:
        return key, rendered
    if source.kind == BACH:
        data = render_chorale(source.path, source.name)
    elif source.kind == ABC:
        data = render_tune(split_tunes(read_abc(data))[source.tune].text, source.name)
    return key, data


def _survey_chunk(task: tuple[list[SourceFile], float, list]) -> list[dict]:
    """The tracks of a chunk of files, for learning parts: per file, (program, name,
    mean pitch) of each track with notes, and the MIDI bytes of a rendered source. Files
    that cannot be read are left for the main pass to report."""
    sources, max_bytes, _ = task
    results: list[dict] = []
    for source in sources:
        result: dict[str, Any] = {}
        results.append(result)
        if source.kind == ABC:
            continue  # a rendered tune is one melody track
        try:
            _, data = _read_source(source, max_bytes)
            score = load_score(data)
        except (MidiError, OSError):
            continue
        result["tracks"] = [(DRUMS if t.is_drum else t.program, t.name,
                             float(t.notes.numpy()["pitch"].mean()))
                            for t in score.tracks if len(t.notes)]
        if source.kind != "midi":
            result["data"] = data
    return results


def _process_chunk(task: tuple[list[SourceFile], float, list]) -> list[dict]:
    """Read, hash and tokenize a chunk of files. Never raises for a bad file."""
    sources, max_bytes, rendered = task
    tok = _worker_tokenizer
    results: list[dict] = []
    to_encode: list[tuple[int, bytes]] = []
    for source, data in zip(sources, rendered, strict=True):
        result: dict[str, Any] = {"source": source.name}
        results.append(result)
        try:
            result["sha256"], data = _read_source(source, max_bytes, data, _worker_cached)
            if data is None:
                result["cached"] = True
                continue
            to_encode.append((len(results) - 1, data))
        except MidiError as err:
            result["reason"] = err.reason
        except OSError as err:
            result["reason"] = (f"cannot read the file ({err.strerror}); "
                                "check the path and permissions")
    if to_encode:
        assert tok is not None, "_init_worker sets the tokenizer"
        names = [results[i]["source"] for i, _ in to_encode]
        datas = [data for _, data in to_encode]
        try:
            encoded = tok.encode_batch(datas, names, _worker_meter)
        except Exception:  # a bug, not a bad file: find which file and go on without it
            encoded = []
            for data, name in zip(datas, names, strict=True):
                try:
                    encoded.append(tok.encode_batch([data], [name], _worker_meter)[0])
                except Exception as err:
                    encoded.append(MidiError(name, f"internal error while tokenizing "
                                                   f"({_one_line(err)}); please report it"))
        for (i, _), piece in zip(to_encode, encoded, strict=False):
            if isinstance(piece, MidiError):
                results[i]["reason"] = piece.reason
                continue
            results[i].update(
                ids=piece.ids, bars=tok.bar_table(piece.ids),
                music_sha256=tok.music_hash(piece.ids),
                notes=piece.n_notes, seconds=round(piece.seconds, 3),
                time_signature=piece.time_signature, has_drums=piece.has_drums,
                warnings=piece.warnings,
            )
    return results


def _run_chunks(work, tasks: list, tokenizer: Tokenizer, cached: frozenset,
                meter: tuple[int, int] | None, workers: int) -> Iterator[list[dict]]:
    """Results of ``work`` (``_process_chunk`` or ``_survey_chunk``) in task order, from
    worker processes when it pays."""
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(tokenizer.to_dict(), cached, meter)
        yield from map(work, tasks)
        return
    # fork where the platform has it: workers need only the tokenizer, and forkserver or
    # spawn would re-import the caller's __main__ (re-running an unguarded script, or
    # failing outright for `python -` and some notebooks).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context,
                             initializer=_init_worker,
                             initargs=(tokenizer.to_dict(), cached, meter)) as pool:
        results = pool.map(work, tasks)
        for task in tasks:
            try:
                yield next(results)
            except BrokenProcessPool:
                names = ", ".join(s.name for s in task[0][:3])
                problem = (f"a worker process died while reading {names}, ...: a file "
                           "crashed the MIDI parser")
                raise MuseganError(f"{problem}; run with workers=1 to find it, then remove it",
                                   cli=f"{problem}; run with --workers 1 to find it, then "
                                       "remove it") from None


# ---------------------------------------------------------------------- prepare

def prepare_corpus(
    sources: Sequence[str],
    out: str | Path,
    *,
    tokenizer: Tokenizer | None = None,
    val_fraction: float = VAL_FRACTION,
    workers: int | None = None,
    force: bool = False,
    limit: int | None = None,
    max_file_mb: float = MAX_FILE_MB,
    progress: bool = True,
    learn_parts: bool = True,
    meter: tuple[int, int] | None = None,
) -> PrepareReport:
    """Tokenize MIDI sources into a corpus folder that training reads by memory map.

    Args:
        sources: folders (searched recursively for .mid/.midi/.kar and .abc), files, glob
            patterns, the word ``"bach"`` for music21's bundled chorales, or the names of
            its ABC tune books: ``"oneills"``, ``"ryans"``, ``"aird"``.
        out: the corpus folder. An existing corpus made from the same sources and settings
            is updated, reusing every unchanged piece; a different one is replaced only with
            ``force`` (still reusing the pieces of unchanged files when the tokenizer is the
            same); a folder that is not a corpus is never touched.
        tokenizer: the vocabulary (default ``Tokenizer()``). With ``learn_parts``, unless it
            has parts already, the corpus's parts are learned and added to it
            (``musegan.tokenizer.learn_parts``): tracks that share a program keep their
            names.
        val_fraction: share of pieces in the validation split, chosen by a hash of each
            piece's tokens, so adding files never moves a piece between splits.
        workers: processes (default: all cores).
        limit: use only the first ``limit`` source files (quick trials).
        max_file_mb: larger files are skipped, with the reason.
        progress: show a progress bar.
        learn_parts: False uses ``tokenizer`` as given: without parts, the tracks of one
            program merge into one voice (the CLI's ``--merge-tracks``).
        meter: (numerator, denominator), e.g. (4, 4): bar in this meter the pieces whose
            file states no time signature or an implausible one such as 1/4
            (``tokenizer.plausible_meter``); each is reported among the warnings.

    Returns:
        The report, also written to ``out/report.json``.

    Raises:
        MuseganError: ``out`` cannot be written as asked.
        NoUsableMidiError: no source file could be used (nothing is written).
    """
    started = time.perf_counter()
    tokenizer = tokenizer or Tokenizer()
    out = Path(os.path.abspath(out))  # "." or "x/.." must name a real folder to swap
    if not 0 <= val_fraction < 1:
        raise MuseganError(f"val_fraction must be in [0, 1), got {val_fraction}")
    settings: dict[str, Any] = {"sources": list(sources), "val_fraction": val_fraction,
                                "max_file_mb": max_file_mb, "limit": limit}
    if not learn_parts:  # only when set, so corpora made before these options stay current
        settings["learn_parts"] = False
    if meter is not None:
        meter = (int(meter[0]), int(meter[1]))
        if meter not in tokenizer.time_signatures:
            raise MuseganError(f"meter {meter[0]}/{meter[1]} is not in the tokenizer's "
                               "time signatures")
        settings["meter"] = f"{meter[0]}/{meter[1]}"
    _check_output_folder(out)
    report = PrepareReport(output=str(out), sources=list(sources))
    files = find_sources(sources, report.skipped)
    if limit is not None:
        files = files[:limit]
    report.files_found = len(files)
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count() or 1)
    chunks = [files[i:i + CHUNK_FILES] for i in range(0, len(files), CHUNK_FILES)]
    rendered: list[list[bytes | None]] = [[None] * len(chunk) for chunk in chunks]
    if learn_parts and not tokenizer.parts:
        tracks = []
        survey: list[tuple[list[SourceFile], float, list]] = [
            (chunk, max_file_mb * 1e6, []) for chunk in chunks]
        for c, results in enumerate(_run_chunks(_survey_chunk, survey, tokenizer, frozenset(),
                                                meter, workers)):
            for j, result in enumerate(results):
                tracks.append(result.get("tracks", []))
                rendered[c][j] = result.get("data")
        parts = vocabulary.learn_parts(tracks)
        if parts:
            tokenizer = Tokenizer(dataclasses.replace(tokenizer.config, parts=parts))
    previous = _existing_output(out, tokenizer, settings, force)

    cached: dict[str, int] = {}
    if previous is not None:
        cached = {p["sha256"]: i for i, p in enumerate(previous.pieces)}
    tasks = [(chunk, max_file_mb * 1e6, data)
             for chunk, data in zip(chunks, rendered, strict=True)]

    partial = out.parent / f".{out.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted run: ours, and incomplete
    writer = fmt.CorpusWriter(partial, tokenizer)
    report.parts = [tokenizer.part_name(voice) for voice in tokenizer.part_voices]
    try:
        _write_pieces(writer, report, _run_chunks(_process_chunk, tasks, tokenizer,
                                                  frozenset(cached), meter, workers),
                      previous, cached, val_fraction, progress, len(files))
        if report.files_used == 0:
            first = report.skipped[0] if report.skipped else None
            example = f", e.g. {first['source']}: {first['reason']}" if first else ""
            raise NoUsableMidiError(f"no usable MIDI file in {', '.join(sources)} "
                                    f"({len(report.skipped)} skipped{example})", report)
        writer.close({"settings": settings, "pieces": report.pieces, "notes": report.notes,
                      "hours": report.hours})
        report.up_to_date = previous is not None and _same_pieces(previous, partial)
        report.seconds_elapsed = round(time.perf_counter() - started, 2)
    except BaseException:
        writer.close({})
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _write_json(partial / fmt.REPORT, report.to_dict())
    if report.up_to_date:
        _write_json(out / fmt.REPORT, report.to_dict())
        shutil.rmtree(partial)
    else:
        _swap_into_place(partial, out)
    return report


def _write_pieces(writer, report, chunks, previous, cached, val_fraction, progress, total):
    from tqdm import tqdm

    seen_music: dict[str, str] = {}
    with tqdm(total=total, unit="file", desc="prepare", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for chunk in chunks:
            bar.update(len(chunk))
            for result in chunk:
                if "reason" in result:
                    report.skipped.append({"source": result["source"], "reason": result["reason"]})
                    continue
                if result.get("cached"):
                    index = cached[result["sha256"]]
                    old = previous.pieces[index]
                    ids, bars = previous.tokens(index), previous.bars(index)
                    record = {k: old[k] for k in RECORD_FIELDS}
                    report.reused += 1
                else:
                    ids, bars = result["ids"], result["bars"]
                    record = {k: result[k] for k in RECORD_FIELDS}
                if record["warnings"]:
                    report.warnings.append({"source": result["source"],
                                            "warnings": record["warnings"]})
                    report.rebarred += any(w.startswith("re-barred") for w in record["warnings"])
                music = record["music_sha256"]
                if music in seen_music:
                    report.duplicates.append({"source": result["source"],
                                              "duplicate_of": seen_music[music]})
                    continue
                seen_music[music] = result["source"]
                split = "val" if int(music[:16], 16) / 2**64 < val_fraction else "train"
                writer.add({"source": result["source"], "split": split, **record}, ids, bars)
                report.files_used += 1
                report.pieces[split] += 1
                report.notes += record["notes"]
                report.tokens += len(ids)
                report.hours += record["seconds"] / 3600
    report.hours = round(report.hours, 3)


def _check_output_folder(out: Path) -> None:
    """Refuse, before any work, an ``out`` that is a file or a folder of other files."""
    if out.is_file():
        raise MuseganError(f"{out} is a file; the corpus must go in a folder",
                           cli=f"{out} is a file; give --out a folder")
    if out.exists() and any(out.iterdir()) and not fmt.is_corpus(out):
        raise MuseganError(f"{out} already holds files that are not a musegan corpus; "
                           "choose a new or empty folder",
                           cli=f"{out} already holds files that are not a musegan corpus; "
                               "choose a new or empty folder for --out")


def _existing_output(out: Path, tokenizer: Tokenizer, settings: dict, force: bool):
    """The corpus already at ``out`` to reuse, or None; refuses to clobber anything else."""
    _check_output_folder(out)
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        previous = fmt.Corpus(out)
    except MuseganError:
        if force:
            return None
        raise
    same = (previous.tokenizer == tokenizer
            and previous.manifest.get("settings") == settings)
    if force:  # rebuilt from these sources; pieces of unchanged files need no re-reading
        return previous if previous.tokenizer == tokenizer else None
    if not same:
        problem = f"{out} holds a corpus prepared {_what_differs(previous, tokenizer, settings)}"
        raise MuseganError(f"{problem}; pass force=True to rebuild it, or choose another folder",
                           cli=f"{problem}; pass --force to rebuild it, or choose another --out")
    return previous


def _what_differs(previous: fmt.Corpus, tokenizer: Tokenizer, settings: dict) -> str:
    """Why a corpus cannot be reused, in words: "from other sources or settings (meter)",
    "with other parts (it has ..., now ...)" or "with another tokenizer"."""
    before = previous.manifest.get("settings") or {}
    changed = sorted(k for k in before.keys() | settings.keys() if before.get(k) != settings.get(k))
    if changed:
        return f"from other sources or settings ({', '.join(changed)})"
    if previous.tokenizer.parts != tokenizer.parts:
        def named(parts) -> str:
            return ", ".join(name for name, _ in parts) or "none"
        return (f"with other parts (it has {named(previous.tokenizer.parts)}; now "
                f"{named(tokenizer.parts)}, in that order, which changes the token ids)")
    return "with another tokenizer"


def _same_pieces(previous: fmt.Corpus, partial: Path) -> bool:
    with open(partial / fmt.INDEX) as index:
        new = [line for line in index]
    with open(previous.directory / fmt.INDEX) as index:
        old = [line for line in index]
    return new == old


def _swap_into_place(partial: Path, out: Path) -> None:
    """Replace ``out`` by ``partial`` with renames, so a crash leaves one or the other."""
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
        os.rename(partial, out)
        shutil.rmtree(old)
    else:
        os.rename(partial, out)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def format_summary(report: PrepareReport) -> str:
    """A one-screen summary of a prepare run."""
    lines = []
    if report.up_to_date:
        lines.append(f"{report.output} is up to date ({report.files_used} pieces reused).")
    else:
        lines.append(f"Prepared {report.output} in {report.seconds_elapsed:.1f} s")
    lines += [
        f"  files found   {report.files_found}"
        + (f"  (reused {report.reused} unchanged)"
           if report.reused and not report.up_to_date else ""),
        f"  pieces        {report.pieces['train']} train, {report.pieces['val']} validation"
        + ("  (none fell in the validation split, which training needs: prepare again "
           "with a larger --val-fraction, or more files)"
           if not report.pieces["val"] and report.pieces["train"] else ""),
        f"  music         {report.notes:,} notes, {report.tokens:,} tokens, "
        f"{report.hours:.2f} hours",
        f"  duplicates    {len(report.duplicates)} dropped",
        "  parts         " + (", ".join(report.parts) + " (tracks sharing a program keep "
                              "their names)" if report.parts else "none (one voice per program)"),
        f"  skipped       {len(report.skipped)}",
    ]
    reasons = Counter(_reason_kind(s["reason"]) for s in report.skipped)
    for reason, count in reasons.most_common(5):
        lines.append(f"    {count:5d}  {reason}")
    if report.rebarred:
        lines.append(f"  re-barred     {report.rebarred} pieces with no or an implausible time "
                     "signature (--meter)")
    if report.warnings:
        lines.append(f"  warnings      {len(report.warnings)} files altered to fit the vocabulary")
        files: Counter = Counter()  # per kind of warning: files, and the total it counts
        totals: Counter = Counter()
        for entry in report.warnings:
            for warning in entry["warnings"]:
                count, kind = _count_and_kind(warning)
                files[kind] += 1
                totals[kind] += count
        for kind, count in files.most_common(3):
            lines.append(f"    {count:5d}  files: {totals[kind]:,} {kind}" if totals[kind]
                         else f"    {count:5d}  files: {kind}")
    lines.append(f"Details: {Path(report.output) / fmt.REPORT}")
    return "\n".join(lines)


def _count_and_kind(warning: str) -> tuple[int, str]:
    """'5 tempos outside 30-300 bpm clamped' -> (5, 'tempos outside 30-300 bpm clamped');
    a warning that does not start with a count -> (0, itself)."""
    match = re.match(r"(\d+) (.*)", warning)
    return (int(match.group(1)), match.group(2)) if match else (0, warning)


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: drop the per-file details in parentheses."""
    return reason.split(" (")[0].split(";")[0]

