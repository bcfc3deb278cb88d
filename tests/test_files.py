"""lr_gym.files: one atomic write, whole or not at all, that leaves no temporary behind."""

from __future__ import annotations

import errno

import pytest

from lr_gym.files import atomic_write, write_text_atomic


def _full_disk(tmp):
    tmp.write_text("half")  # a partial file, then the disk fills up
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "cache.json"
    write_text_atomic(target, "old")
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, _full_disk)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.json"]


def test_a_folder_published_first_by_another_process_is_kept(tmp_path):
    target = tmp_path / "tokenizer"

    def write(tmp):
        tmp.mkdir()
        (tmp / "vocab.txt").write_text("mine")

    (target).mkdir()
    (target / "vocab.txt").write_text("theirs")  # the winner of the race
    assert atomic_write(target, write) == target
    assert (target / "vocab.txt").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]


def test_the_tuning_cache_leaves_nothing_half_written(tmp_path, monkeypatch):
    import pathlib

    from agents.evaluation.tuning import _Cache

    def full_disk(self, text):
        with open(self, "w") as f:
            f.write(text[:5])  # a partial file, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = _Cache(tmp_path / "tuning_cache.json", "key")
    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        cache.put(type("R", (), {"to_dict": lambda self: {"best_lr": 0.1}})())
    assert list(tmp_path.iterdir()) == []
