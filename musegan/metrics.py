"""Features of a piece, computed from its MIDI, and comparisons between sets of pieces."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pretty_midi

ONSET_GRID = 12  # onset positions per quarter note for the rhythm histogram (16ths, triplets)


def pitch_class_histogram(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """(12,) share of sounding time per pitch class (C = 0), drums left out."""
    histogram = np.zeros(12)
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        for note in instrument.notes:
            histogram[note.pitch % 12] += note.end - note.start
    total = histogram.sum()
    return histogram / total if total else histogram


def onset_histogram(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Share of note onsets at each position of the bar, on a 12-per-quarter grid,
    folded onto a 4-quarter span (a rhythm fingerprint that ignores pitch)."""
    span = 4 * ONSET_GRID
    histogram = np.zeros(span)
    downbeats = midi.get_downbeats()
    for instrument in midi.instruments:
        for note in instrument.notes:
            bar = max(0, int(np.searchsorted(downbeats, note.start, side="right")) - 1)
            start = downbeats[bar] if len(downbeats) else 0.0
            quarters = (midi.time_to_tick(note.start) - midi.time_to_tick(start)) / midi.resolution
            histogram[int(round(quarters * ONSET_GRID)) % span] += 1
    total = histogram.sum()
    return histogram / total if total else histogram


def theme_consistency(groups: list[list[pretty_midi.PrettyMIDI]]) -> dict:
    """How alike pieces from one theme are, against pieces from different themes.

    ``groups`` holds, per theme, the pieces written from it. For each feature (pitch-class
    histogram, onset histogram), the mean L1 distance between pieces of the same theme
    ("within") and between pieces of different themes ("across"). A ratio within/across
    below 1 means that one theme gives variations on one idea.
    """
    features = {"pitch_classes": pitch_class_histogram, "rhythm": onset_histogram}
    result = {}
    for name, feature in features.items():
        values = [[feature(m) for m in group] for group in groups]
        within = [np.abs(a - b).sum() for group in values for a, b in combinations(group, 2)]
        across = [np.abs(a - b).sum() for g, h in combinations(range(len(values)), 2)
                  for a in values[g] for b in values[h]]
        result[name] = {"within": float(np.mean(within)), "across": float(np.mean(across)),
                        "ratio": float(np.mean(within) / max(np.mean(across), 1e-9))}
    return result
