import io
import json

import numpy as np
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from midi_factory import CRE, SKIP_NO_CRE, make_score, melody
from symusic import Note, Score, Track

from musegan import MidiError, MuseganError, Tokenizer
from musegan.tokenizer import EncodedPiece, _track_notes, _untangle, untangle

TOK = Tokenizer()


def names(ids):
    return TOK.tokens(ids)


def test_encodes_a_small_piece_to_the_expected_tokens():
    score = make_score(
        [(0, False, [(0, 480, 60, 100), (960, 240, 64, 64)])],  # C4 quarter, E4 eighth on beat 3
        time_signatures=[(0, 3, 4)], tempos=[(0, 90.0)],
    )
    tempo = TOK.tokens([TOK.tempo_id(90.0)])[0]
    assert names(TOK.encode(score)) == [
        "BOS", "Bar", "TimeSig_3/4", tempo,
        "Position_0", "Program_0", "Pitch_60", "Velocity_103", "Duration_12",
        "Position_24", "Pitch_64", "Velocity_64", "Duration_6",
        "EOS",
    ]


def test_bars_follow_the_time_signature_and_empty_bars_are_kept():
    # 6/8 bars are 36 steps: a note at step 72 is in the third bar; bar two is empty.
    score = make_score([(0, False, [(0, 240, 60, 80), (72 * 40, 240, 62, 80)])],
                       time_signatures=[(0, 6, 8)])
    tokens = names(TOK.encode(score))
    assert tokens.count("Bar") == 3
    assert tokens[tokens.index("Pitch_62") - 1] == "Position_0"


def test_of_several_events_at_one_tick_the_last_in_the_file_wins():
    score = make_score([(0, False, [(0, 480, 60, 80), (1440, 480, 62, 80)])],
                       time_signatures=[(0, 4, 4), (0, 3, 4)], tempos=[(0, 120.0), (0, 140.0)])
    tokens = names(TOK.encode(score))
    assert tokens[2] == "TimeSig_3/4" and float(tokens[3][6:]) == pytest.approx(140, rel=0.02)
    assert tokens.count("Bar") == 2  # the note at beat 4 is in bar 2 of 3/4


def test_program_tokens_only_at_changes_and_notes_ordered_by_onset_program_pitch():
    score = make_score([
        (33, False, [(0, 480, 40, 90), (480, 480, 43, 90)]),  # bass
        (0, False, [(0, 480, 64, 90), (0, 480, 60, 90), (480, 480, 67, 90)]),  # piano chord
        (0, True, [(0, 120, 36, 100)]),  # kick
    ])
    tokens = [t for t in names(TOK.encode(score)) if t.split("_")[0] in ("Program", "Pitch")]
    assert tokens == [
        "Program_0", "Pitch_60", "Pitch_64", "Program_33", "Pitch_40", "Program_drums", "Pitch_36",
        "Program_0", "Pitch_67", "Program_33", "Pitch_43",
    ]


def test_a_melody_pays_for_one_program_token():
    tokens = names(TOK.encode(melody(64)))
    assert sum(t.startswith("Program_") for t in tokens) == 1


def test_decode_returns_pretty_midi_with_the_notes_tempo_and_meter():
    score = make_score([(25, False, [(0, 480, 60, 100), (480, 960, 67, 50)]),
                        (0, True, [(0, 60, 42, 70)])],
                       time_signatures=[(0, 6, 8)], tempos=[(0, 100.0)])
    midi = TOK.decode(TOK.encode(score))
    assert isinstance(midi, pretty_midi.PrettyMIDI)
    guitar = next(i for i in midi.instruments if not i.is_drum)
    drums = next(i for i in midi.instruments if i.is_drum)
    assert guitar.program == 25
    beats = [(n.pitch, midi.time_to_tick(n.start) / midi.resolution,
              midi.time_to_tick(n.end) / midi.resolution) for n in guitar.notes]
    assert beats == [(60, 0.0, 1.0), (67, 1.0, 3.0)]
    assert guitar.notes[1].velocity == 48  # 50 to the nearest of 16 bins
    assert [n.pitch for n in drums.notes] == [42]
    assert [(t.numerator, t.denominator) for t in midi.time_signature_changes] == [(6, 8)]
    assert midi.get_tempo_changes()[1][0] == pytest.approx(100.0, rel=0.019)  # nearest bin
    assert guitar.notes[1].end == pytest.approx(3 * 60 / midi.get_tempo_changes()[1][0])


# ---------------------------------------------------------------- round trip (hypothesis)

TPQS = [96, 120, 384, 480, 960]
note = st.tuples(st.integers(0, 30 * 480), st.integers(0, 10 * 480), st.integers(0, 127),
                 st.integers(1, 127))
track = st.tuples(st.integers(0, 127), st.booleans(), st.lists(note, min_size=1, max_size=25))


@st.composite
def pieces(draw):
    tpq = draw(st.sampled_from(TPQS))
    scale = tpq / 480
    tracks = [(p, d, [(int(t * scale), int(u * scale), x, v) for t, u, x, v in notes])
              for p, d, notes in draw(st.lists(track, min_size=1, max_size=4))]
    meters = draw(st.lists(st.tuples(st.integers(0, 20 * tpq),
                                     st.sampled_from([(2, 4), (3, 4), (4, 4), (6, 8), (9, 8),
                                                      (12, 8), (2, 2), (5, 4), (7, 8)])),
                           max_size=3))
    tempos = draw(st.lists(st.tuples(st.integers(0, 20 * tpq), st.floats(20, 400)), max_size=4))
    return make_score(tracks, tpq=tpq, time_signatures=[(t, n, d) for t, (n, d) in meters],
                      tempos=tempos)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces())
def test_round_trip_keeps_every_note_meter_and_tempo(score):
    ids = TOK.encode(score)
    midi = TOK.decode(ids)
    # Every note: onset, duration (grid), pitch, velocity (bin), program/drums.
    assert np.array_equal(TOK.quantize(midi), TOK.quantize(score))
    # Meter, tempo changes, bars and positions: the whole stream comes back the same.
    assert TOK.encode(midi) == ids


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 96), st.integers(21, 108),
                          st.integers(1, 127)), min_size=1, max_size=30))
def test_notes_on_the_grid_come_back_exactly(grid_notes):
    # Onsets and durations already on the 12-per-quarter grid survive to the tick.
    ticks = 480 // TOK.steps_per_quarter
    score = make_score([(0, False, [(s * ticks, d * ticks, p, v) for s, d, p, v in grid_notes])])
    midi = TOK.decode(TOK.encode(score))
    got = sorted((midi.time_to_tick(n.start), midi.time_to_tick(n.end), n.pitch)
                 for inst in midi.instruments for n in inst.notes)
    # As the tokenizer reads a track: a pitch struck again while it sounds ends the note
    # before (test_overlapping_notes_of_one_pitch_read_one_way_whatever_paired_them).
    read, _ = untangle({"time": np.array([s * ticks for s, _, _, _ in grid_notes]),
                        "duration": np.array([d * ticks for _, d, _, _ in grid_notes]),
                        "pitch": np.array([p for _, _, p, _ in grid_notes]),
                        "velocity": np.array([v for *_, v in grid_notes])})
    want = sorted((int(t), int(t + d), int(p)) for t, d, p in
                  zip(read["time"], read["duration"], read["pitch"], strict=True))
    assert got == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 24), st.integers(0, 24), st.integers(60, 63),
                          st.integers(1, 127)), min_size=2, max_size=20))
def test_a_melody_line_is_untangled_as_the_general_pairing_reads_it(notes):
    """A track in time order whose notes never overlap (a melody line) is read as it is,
    without the general pairing; the general pairing (the same notes in another order)
    reads it the same way."""
    time = np.cumsum([gap for gap, *_ in notes])
    ends = np.append(time[1:], time[-1] + 24)  # each note lasts until the next at most
    line = {"time": time,
            "duration": np.minimum([d for _, d, *_ in notes], ends - time),
            "pitch": np.array([p for *_, p, _ in notes]),
            "velocity": np.array([v for *_, v in notes])}

    def read(track):
        out, dropped = untangle(track)
        return sorted(zip(*(np.asarray(out[k]).tolist() for k in line), strict=True)), dropped

    assert untangle(line)[0] is line  # read as it is
    assert read(line) == read({k: v[::-1] for k, v in line.items()})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 8), st.integers(60, 62)),
                         min_size=1, max_size=12), min_size=1, max_size=4))
def test_a_pieces_tracks_read_together_are_each_read_on_its_own(tracks):
    """The tokenizer reads all of a piece's tracks as one set of arrays and untangles them
    in one pass: each track comes out as ``untangle`` reads it alone (a pitch in one track
    never pairs with another's)."""
    score = Score(480)
    for notes in tracks:
        track = Track(program=0)
        for t, d, p in notes:
            track.notes.append(Note(t * 120, d * 120, p, 80))
        score.tracks.append(track)
    arrays = [track.notes.numpy() for track in score.tracks]
    alone = [untangle(track) for track in arrays]
    together, sizes, dropped = _untangle(*_track_notes(list(score.tracks)))
    assert sizes == [len(track["time"]) for track, _ in alone]
    assert dropped == sum(n for _, n in alone)
    for key in arrays[0]:
        assert together[key].tolist() == np.concatenate([t[key] for t, _ in alone]).tolist()
    assert [t.note_num() for t in score.tracks] == [len(notes) for notes in tracks]  # unchanged


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(TOK) - 1), max_size=400))
def test_any_sequence_of_ids_decodes_to_a_valid_midi_file(ids):
    midi = TOK.decode(ids)
    buffer = io.BytesIO()
    midi.write(buffer)
    assert pretty_midi.PrettyMIDI(io.BytesIO(buffer.getvalue())) is not None


def test_decode_skips_tokens_out_of_place_and_stops_at_eos():
    ids = [TOK.token_id(t) for t in [
        "Velocity_103", "Duration_12",  # no pitch yet: skipped
        "Bar", "Position_95",  # past the end of a 4/4 bar: skipped
        "Pitch_60", "Velocity_103", "Duration_12",  # at position 0
        "Position_12", "TimeSig_3/4",  # meter change mid-bar: skipped
        "Pitch_62", "Duration_12",  # no velocity: skipped
        "Pitch_64", "Velocity_103", "Duration_6",
        "EOS", "Pitch_65", "Velocity_103", "Duration_6",  # after EOS: ignored
    ]]
    midi = TOK.decode(ids)
    notes = [(n.pitch, round(n.start, 3)) for i in midi.instruments for n in i.notes]
    assert notes == [(60, 0.0), (64, 0.5)]
    assert midi.time_signature_changes == []


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        TOK.decode([1, len(TOK)])


def test_overlapping_unisons_of_one_instrument_keep_their_durations():
    # Two tracks with the same program play the same pitch, overlapping (CRÉ has such files).
    score = make_score([(0, False, [(0, 960, 64, 80)]), (0, False, [(0, 480, 64, 80)])])
    assert np.array_equal(TOK.quantize(TOK.decode(TOK.encode(score))), TOK.quantize(score))


# ---------------------------------------------------------------- serialisation

def test_to_dict_is_json_safe_and_rebuilds_an_equal_tokenizer(tmp_path):
    tok = Tokenizer(steps_per_quarter=4, velocity_bins=8, time_signatures=[(4, 4), (3, 4)])
    data = json.loads(json.dumps(tok.to_dict()))
    assert Tokenizer.from_dict(data) == tok
    assert Tokenizer.from_dict(data).vocab == tok.vocab
    tok.save(tmp_path / "tokenizer.json")
    assert Tokenizer.load(tmp_path / "tokenizer.json") == tok
    assert Tokenizer.load(tmp_path / "tokenizer.json") != TOK
    with pytest.raises(MuseganError, match="exists; pass force=True"):  # never unasked
        TOK.save(tmp_path / "tokenizer.json")
    assert Tokenizer.load(tmp_path / "tokenizer.json") == tok
    TOK.save(tmp_path / "tokenizer.json", force=True)
    assert Tokenizer.load(tmp_path / "tokenizer.json") == TOK


def test_an_incompatible_version_is_a_clear_error(tmp_path):
    data = TOK.to_dict()
    data["version"] = 99
    with pytest.raises(MuseganError, match="version 99 is not supported"):
        Tokenizer.from_dict(data)
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(MuseganError, match="t.json"):
        Tokenizer.load(tmp_path / "t.json")


def test_a_meter_that_does_not_fit_the_grid_is_refused():
    with pytest.raises(MuseganError, match="7/16"):
        Tokenizer(steps_per_quarter=2, time_signatures=[(7, 16)])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"RIFF....not midi at all", "corrupt or truncated"),
    (b"hello, I am a text file", "not a MIDI file"),
])
def test_unreadable_bytes_are_a_midi_error(data, reason):
    with pytest.raises(MidiError, match=reason):
        TOK.encode(data)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(MidiError, match="nope.mid: no such file"):
        TOK.encode(tmp_path / "nope.mid")


@pytest.mark.parametrize("data, reason", [
    (b"", "file is empty"),
    (b"hello, I am a text file", "not a MIDI file"),
    (melody(8, pitch=60).dumps_midi()[:40], "corrupt or truncated"),
    (None, "is a folder"),
])
def test_a_bad_file_on_disk_names_itself_and_why(tmp_path, data, reason):
    path = tmp_path / "tune.mid"
    path.mkdir() if data is None else path.write_bytes(data)
    for source in (path, str(path)):
        with pytest.raises(MidiError, match=f"tune.mid: {reason}"):
            TOK.encode(source)


def test_a_path_reads_as_its_bytes_do(tmp_path):
    path = tmp_path / "tune.mid"
    path.write_bytes(melody(12, pitch=64).dumps_midi())
    assert TOK.encode(path) == TOK.encode(str(path)) == TOK.encode(path.read_bytes())
    with pytest.raises(TypeError, match="cannot read MIDI from a int"):
        TOK.encode(3)  # type: ignore[arg-type]


def test_no_notes_and_unsupported_meter_are_midi_errors():
    with pytest.raises(MidiError, match="no notes"):
        TOK.encode(make_score([(0, False, [])]))
    with pytest.raises(MidiError, match="11/4 is not in the tokenizer's vocabulary"):
        TOK.encode(make_score([(0, False, [(0, 480, 60, 80)])], time_signatures=[(0, 11, 4)]))


def test_encode_batch_reports_bad_pieces_in_place_and_matches_encode():
    good = [melody(8, pitch=60), melody(20, pitch=62)]
    results = TOK.encode_batch([good[0], make_score([(0, False, [])]), good[1]])
    assert isinstance(results[1], MidiError)
    assert results[0].ids.tolist() == TOK.encode(good[0])
    assert results[2].ids.tolist() == TOK.encode(good[1])


def _random_piece(seed: int) -> Score:
    """Several tracks (drums, repeated programs, overlaps, long and zero-length notes)
    under changing meters and tempos, at an unusual resolution."""
    rng = np.random.default_rng(seed)
    tpq = int(rng.choice([96, 220, 480]))
    length = tpq * 40
    tracks = []
    for _ in range(int(rng.integers(1, 5))):
        k = int(rng.integers(1, 60))
        times = np.sort(rng.integers(0, length // (tpq // 4), k) * (tpq // 4))
        lengths = rng.choice([0, tpq // 2, tpq, tpq * 20], k)
        tracks.append((int(rng.choice([0, 0, 33])), bool(rng.random() < 0.25),
                       [(int(t), int(d), int(p), int(v)) for t, d, p, v in
                        zip(times, lengths, rng.integers(55, 80, k), rng.integers(0, 128, k),
                            strict=True)]))
    meters = [(0, 4, 4)] + [(int(rng.integers(0, length)), n, d) for n, d in
                            [(3, 4), (6, 8)][:int(rng.integers(0, 3))]]
    tempos = [(0, 100.0)] + [(int(rng.integers(0, length)), float(q)) for q in
                             rng.choice([60.0, 150.0, 500.0], int(rng.integers(0, 3)))]
    return make_score(tracks, tpq=tpq, time_signatures=meters, tempos=tempos)


def test_a_batch_encodes_each_piece_as_encoding_it_alone_does():
    # encode_batch shares its arrays across pieces; encode takes shortcuts for one piece
    # with one track and one meter: both must give the same tokens, figures and warnings.
    pieces = [_random_piece(seed) for seed in range(40)] + [melody(12)]
    for tok in (TOK, Tokenizer(parts=[("Piano", 0), ("#2", 0)])):
        for alone, batched in zip([tok.encode_piece(p) for p in pieces], tok.encode_batch(pieces),
                                  strict=True):
            assert isinstance(batched, EncodedPiece)
            assert batched.ids.tolist() == alone.ids.tolist()
            assert (batched.n_notes, batched.time_signature, batched.has_drums,
                    batched.warnings) == (alone.n_notes, alone.time_signature, alone.has_drums,
                                          alone.warnings)
            assert batched.seconds == pytest.approx(alone.seconds)


def test_warnings_explain_what_was_changed():
    score = make_score([(0, False, [(0, 0, 60, 80), (480, 480 * 40, 62, 80)])],
                       tempos=[(0, 5000.0)])
    warnings = " | ".join(TOK.encode_piece(score).warnings)
    assert "shorter than a grid step" in warnings
    assert "longer than 16 quarters" in warnings
    assert "tempos outside 30-300 bpm clamped" in warnings


# ---------------------------------------------------------------- bar table

def test_bar_table_gives_a_self_describing_start_for_every_bar():
    score = make_score([(0, False, [(i * 480, 480, 60 + i % 5, 80) for i in range(24)])],
                       time_signatures=[(0, 3, 4), (9 * 480, 6, 8)],
                       tempos=[(0, 80.0), (12 * 480, 140.0)])
    ids = np.array(TOK.encode(score))
    table = TOK.bar_table(ids)
    assert len(table) == names(ids).count("Bar")
    for row in table[1:]:
        window = [TOK.BAR, row["time_signature"], row["tempo"], row["program"]]
        window += ids[row["offset"] + 1 + row["header"]:].tolist()
        # Decoding from this bar alone gives the same notes as the piece from this bar on.
        start_step = TOK.quantize(TOK.decode(window))
        whole = TOK.quantize(TOK.decode(ids))
        tail = whole[-len(start_step):]
        assert np.array_equal(start_step["pitch"], tail["pitch"])
        assert np.array_equal(np.diff(start_step["onset"]), np.diff(tail["onset"]))
    assert names([table[-1]["time_signature"]]) == ["TimeSig_6/8"]


# ---------------------------------------------------------------- real music

@pytest.mark.skipif(not CRE.is_dir(), reason=SKIP_NO_CRE)
def test_cre_tunes_round_trip():
    files = sorted(CRE.glob("*.mid"))[::12]  # 100 tunes spread over the corpus
    for path in files:
        ids = TOK.encode(path)
        midi = TOK.decode(ids)
        assert np.array_equal(TOK.quantize(midi), TOK.quantize(path)), path
        assert TOK.encode(midi) == ids, path


def test_bach_chorales_round_trip():
    from music21 import corpus

    from musegan.prepare import render_chorale

    for name in list(corpus.chorales.Iterator(returnType="filename"))[:3]:
        data = render_chorale(str(corpus.getWork(name)))
        ids = TOK.encode(data)
        assert np.array_equal(TOK.quantize(TOK.decode(ids)), TOK.quantize(data)), name


def test_a_very_long_piece_decodes_at_the_grids_own_resolution():
    """pretty_midi refuses a file whose last tick is past 10 million as corrupt: 6,000
    bars of 4/4 at 480 ticks a quarter would be; decoding never raises."""
    tok = Tokenizer()
    bar = [tok.BAR, tok.token_id("Position_0"), tok.token_id("Pitch_60"),
           tok.token_id("Velocity_79"), tok.token_id("Duration_12")]
    midi = tok.decode([tok.BOS, *bar * 6000, tok.EOS])
    assert len(midi.instruments[0].notes) == 6000 and midi.resolution == tok.steps_per_quarter
    assert tok.decode([tok.BOS, *bar * 8, tok.EOS]).resolution > tok.steps_per_quarter


def test_a_final_ritardando_after_the_last_onset_is_reported_not_silently_dropped():
    from midi_factory import score

    tok = Tokenizer()
    notes = [(0, 1, 60), (1, 1, 62), (2, 2, 64)]
    slowing = tok.encode_piece(score(notes, tempos=((0, 120.0), (2.5, 60.0), (3, 40.0))))
    assert any("2 tempo changes after the last note's onset dropped" in w
               for w in slowing.warnings)
    assert not tok.encode_piece(score(notes)).warnings


def test_a_long_piece_in_a_short_meter_is_music_and_an_event_hours_away_is_not():
    from midi_factory import score

    tok = Tokenizer()
    eighths = [(i * 0.5, 0.5, 60 + i % 12) for i in range(12_000)]  # 12,000 bars of 1/8
    piece = tok.encode_piece(score(eighths, time_signatures=((0, 1, 8),)))
    assert piece.n_notes == 12_000 and sum(t == tok.BAR for t in piece.ids) == 12_000
    stray = [(0, 1, 60), (20 * 3600 * 2, 1, 62)]  # a note 20 hours in, at 120 bpm
    with pytest.raises(MidiError, match="quarter notes .* an event lies far past the end"):
        tok.encode(score(stray))


def test_overlapping_notes_of_one_pitch_read_one_way_whatever_paired_them(tmp_path):
    """Two note-ons of C4 (ticks 0 and 240), then two note-offs (480 and 960). symusic pairs
    them first-in first-out; another reader could pair them last-in first-out. The
    tokenizer reads both one way: the second strike ends the first, and the last note
    ends with the last note-off. pretty_midi ends every open C4 at the first note-off, so
    a PrettyMIDI object holds less: the same rule reads what it holds."""
    from midi_factory import make_score, raw_midi

    events = (b"\x00\x90\x3c\x50" b"\x81\x70\x90\x3c\x60"  # on at 0, on at 240
              b"\x81\x70\x80\x3c\x00" b"\x83\x60\x80\x3c\x00")  # off at 480, off at 960
    path = tmp_path / "overlap.mid"
    path.write_bytes(raw_midi(events))
    tok = Tokenizer()
    notes = tok.quantize(str(path))
    assert notes["onset"].tolist() == [0, 6] and notes["duration"].tolist() == [6, 18]
    last_in_first_out = make_score([(0, False, [(0, 960, 60, 80), (240, 240, 60, 96)])])
    assert tok.encode(last_in_first_out) == tok.encode(str(path))
    held = tok.quantize(pretty_midi.PrettyMIDI(str(path)))
    assert held["onset"].tolist() == [0, 6] and held["duration"].tolist() == [6, 6]
    doubled = make_score([(0, False, [(0, 480, 60, 80), (0, 480, 60, 80)])])
    piece = tok.encode_piece(doubled)
    assert piece.n_notes == 1 and any("1 doubled notes" in w for w in piece.warnings)


def test_encode_many_is_encode_for_each_and_names_a_bad_file(tmp_path):
    from midi_factory import score

    tok = Tokenizer()
    pieces = [score([(0, 1, 60 + i), (1, 2, 64)]) for i in range(3)]
    assert tok.encode_many(pieces) == [tok.encode(p) for p in pieces]
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    with pytest.raises(MidiError, match="bad.mid"):
        tok.encode_many([pieces[0], str(bad)])
