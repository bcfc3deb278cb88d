"""agents/runs.py helpers that need no training run."""

from __future__ import annotations

from agents.runs import portable_path


def test_portable_path_is_relative_inside_the_root_and_unchanged_outside(tmp_path):
    assert portable_path(tmp_path / "a" / "b.safetensors", tmp_path) == "a/b.safetensors"
    assert portable_path("/elsewhere/c.safetensors", tmp_path) == "/elsewhere/c.safetensors"
