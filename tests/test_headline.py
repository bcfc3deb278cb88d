"""benchmarks/headline.py --check: README's first command against the committed table."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.headline import README_COMMAND, compare_tables, output_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_check_runs_readmes_first_command():
    first = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert first.strip().endswith(" ".join(README_COMMAND))


def test_output_folder_is_read_from_the_clis_last_line():
    out = "report...\nWrote report.md, table.md to logs/eval/test-1a2b in 12 s.\n"
    assert output_folder(out) == Path("logs/eval/test-1a2b")
    with pytest.raises(ValueError, match="Wrote"):
        output_folder("nothing here")


def test_compare_tables_is_empty_only_for_identical_text(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("| ppo | 0.6645 |\n")
    b.write_text("| ppo | 0.6645 |\n")
    assert compare_tables(a, b) == []
    b.write_text("| ppo | 0.6990 |\n")
    diff = compare_tables(a, b)
    assert "-| ppo | 0.6990 |" in diff and "+| ppo | 0.6645 |" in diff
