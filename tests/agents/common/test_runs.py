"""agents/common/runs.py helpers that need no training run."""

from __future__ import annotations

from agents.common.runs import portable_path


def test_portable_path_is_relative_inside_the_root_and_unchanged_outside(tmp_path):
    assert portable_path(tmp_path / "a" / "b.safetensors", tmp_path) == "a/b.safetensors"
    assert portable_path("/elsewhere/c.safetensors", tmp_path) == "/elsewhere/c.safetensors"


def test_stale_temporaries_of_killed_writers_are_removed_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from agents.common.runs import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "ppo" / "Run_1").mkdir(parents=True)
    stale = tmp_path / "ppo" / "Run_1" / f".model.zip.tmp{dead}"
    live = tmp_path / f".report.md.tmp{os.getpid()}"
    other = tmp_path / ".notes.tmp"
    for f in (stale, live, other):
        f.write_text("half")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []
