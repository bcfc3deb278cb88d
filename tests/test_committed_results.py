"""Committed result files hold no machine's absolute paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# A path that starts at a filesystem root: "/work/main/...", "C:\\Users\\...", "~/..."; not a
# fraction ("0/5"), a ratio ("loss / L0") or a relative path ("logs/eval/...").
ABSOLUTE = re.compile(r"(?:^|[\s\"'`(\[=:,])(?:/[A-Za-z_.][\w.-]*/|~/|[A-Za-z]:\\)")


def committed_result_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "benchmarks/results"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        files = [ROOT / f for f in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        files = [p for p in RESULTS.rglob("*") if p.is_file()]
    return [f for f in files if f.suffix in {".md", ".json", ".csv", ".txt", ".yml"}]


def test_the_pattern_finds_absolute_paths_only():
    for bad in ('"agents": ["/work/main/x.safetensors"]', "Agents: `/home/u/run`.",
                "data_dir: '/tmp/data'", "C:\\Users\\me\\run", "see ~/runs/x"):
        assert ABSOLUTE.search(bad), bad
    for good in ("0/5 seeds", "log(loss / L0)", "logs/eval/test-1", "x0.1/x10",
                 "lr_gym/pretrained/default.safetensors", "1/3 of T", "../shared/data"):
        assert not ABSOLUTE.search(good), good


def test_there_are_committed_results_to_check():
    assert any(f.name == "results.json" for f in committed_result_files())


@pytest.mark.parametrize("path", committed_result_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_result_file_holds_no_absolute_path(path):
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        hit = ABSOLUTE.search(line)
        assert hit is None, f"{path.relative_to(ROOT)}:{n}: {line.strip()[:200]}"
