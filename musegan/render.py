"""Seeing and hearing MIDI: piano-roll pictures (matplotlib) and audio (FluidSynth)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pretty_midi

from musegan.errors import MuseganError

SOUNDFONTS = (  # where Debian's fluid-soundfont-gm and similar packages put a GM soundfont
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
INSTALL_AUDIO = ("rendering audio needs FluidSynth and a General MIDI soundfont: "
                 "sudo apt-get install fluidsynth fluid-soundfont-gm")


def piano_roll_png(midi: pretty_midi.PrettyMIDI, path: str | Path, title: str = "",
                   bar_scores: list[float] | None = None,
                   shade: list[int] | None = None) -> Path:
    """Draw the notes of every instrument as a piano roll (time across, pitch up); with
    ``bar_scores`` (0-1, one per bar), each bar is shaded from red (0) to green (1); the
    bars in ``shade`` (numbered from 1) are shaded blue (the bars an edit rewrote)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(12, 4), dpi=100)
    colours = plt.get_cmap("tab10")
    pitches = []
    for i, instrument in enumerate(midi.instruments):
        for note in instrument.notes:
            axes.add_patch(plt.Rectangle((note.start, note.pitch - 0.4), note.end - note.start,
                                         0.8, color=colours(i % 10),
                                         alpha=0.4 + note.velocity / 254))
            pitches.append(note.pitch)
    end = max(midi.get_end_time(), 1.0)
    downbeats = list(midi.get_downbeats())
    for time in downbeats:
        axes.axvline(time, color="0.85", linewidth=0.6, zorder=0)
    if bar_scores:
        shades = plt.get_cmap("RdYlGn")
        edges = downbeats[:len(bar_scores)] + [end]
        for (left, right), score in zip(zip(edges, edges[1:], strict=False), bar_scores,
                                        strict=False):
            axes.axvspan(left, right, color=shades(score), alpha=0.25, zorder=-1, linewidth=0)
    if shade:
        edges = downbeats + [end]
        for bar in shade:
            if 1 <= bar < len(edges):
                axes.axvspan(edges[bar - 1], edges[bar], color="tab:blue", alpha=0.15,
                             zorder=-1, linewidth=0)
    low, high = (min(pitches) - 2, max(pitches) + 2) if pitches else (55, 80)
    axes.set(xlim=(0, end), ylim=(low, high), xlabel="seconds", ylabel="MIDI pitch",
             title=title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def find_soundfont() -> Path | None:
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def audio_available() -> bool:
    return shutil.which("fluidsynth") is not None and find_soundfont() is not None


def render_wav(midi_path: str | Path, wav_path: str | Path, sample_rate: int = 44100) -> Path:
    """Render a MIDI file to WAV with the FluidSynth command line."""
    soundfont = find_soundfont()
    if shutil.which("fluidsynth") is None or soundfont is None:
        raise MuseganError(INSTALL_AUDIO)
    wav_path = Path(wav_path)
    result = subprocess.run(["fluidsynth", "-ni", "-g", "0.8", "-r", str(sample_rate),
                             "-F", str(wav_path), str(soundfont), str(midi_path)],
                            capture_output=True, text=True)
    if result.returncode or not wav_path.is_file():
        raise MuseganError(f"fluidsynth could not render {midi_path}: "
                           f"{(result.stderr or result.stdout).strip()[-200:]}")
    return wav_path
