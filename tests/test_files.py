"""Atomic writes: a failure mid-write leaves the old file, or none, never half of one."""

from __future__ import annotations

import pytest

from musegan import files


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "tune.json"
    files.write_text(target, "old")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError):
        files.write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["tune.json"]


def test_checking_a_folder_makes_nothing_and_removes_nothing_that_was_there(tmp_path,
                                                                           monkeypatch):
    from musegan import MuseganError
    from musegan.errors import writable_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    writable_folder("new/../out", keep=False)  # the folder out itself, which exists
    assert (tmp_path / "out").is_dir() and not (tmp_path / "new").exists()
    writable_folder("a/b/c", keep=False)
    assert not (tmp_path / "a").exists()  # checked, then the folders it made removed
    assert writable_folder("a/b/c").is_dir()  # keep=True: made for the work
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "afile").write_text("mine")
    with pytest.raises(MuseganError, match="cannot write to x/afile/sub/deeper"):
        writable_folder("x/afile/sub/deeper")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["afile"]
