"""README and the docs: their Python blocks run as written, their results are current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    from benchmarks.readme_results import documents

    return [b for doc in documents(ROOT)
            for b in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)]


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", text, re.S)[:2]
    assert "evaluate_agent.py --agent pretrained" in commands[0]
    assert "train_agent.py && .venv/bin/python evaluate_agent.py" in text  # one flag away
    assert "pytest" in commands[1] and "ruff check ." in commands[1]  # lint is part of it
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci  # CI runs exactly README's test command


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs_alone(tmp_path, index):
    # Each block on its own, as a reader copies it: no block may lean on another's names.
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(python_blocks()[index])
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]


def test_readme_python_blocks_cover_the_three_jobs():
    blocks = python_blocks()
    assert any("model.learn(" in b for b in blocks)
    assert any("run_episode(" in b and "print(" in b for b in blocks)
    assert any("register_task(" in b and "env.render()" in b for b in blocks)


def test_readme_deployment_example_is_the_tested_script():
    import textwrap

    src = (ROOT / "examples" / "deploy_plain_loop.py").read_text()
    block = re.search(r"# --- begin example ---\n(.*?)\n\s*# --- end example ---", src, re.S)
    code = textwrap.dedent(block.group(1))
    assert code in (ROOT / "docs" / "deploy.md").read_text()
    assert len(code.strip().splitlines()) < 15


def test_readme_results_come_from_committed_files():
    from benchmarks.readme_results import documents, missing_decisions, render, sources

    text = (ROOT / "README.md").read_text()
    # The first results a reader meets: what the controller adds, at any lr0; the rest
    # (the headline's two tracks first) one link away.
    assert sources(text)[0] == "benchmarks/results/lr_sensitivity/test/controls.md"
    rest = (ROOT / "docs" / "results.md").read_text()
    assert sources(rest)[0] == "benchmarks/results/headline/table.md"
    for doc in documents(ROOT):
        assert render(doc.read_text()) == doc.read_text(), (
            f"{doc.name} is stale: run python benchmarks/readme_results.py")
    # Every quoted folder holds its episodes' decisions.
    assert missing_decisions(text) == []


def test_a_quoted_folder_without_decisions_is_named(tmp_path):
    from agents.evaluation.results import write_decisions
    from benchmarks.readme_results import missing_decisions

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "t.md").write_text("x")
    text = "<!-- results: a/t.md -->\nx\n<!-- /results -->\n"
    assert missing_decisions(text, tmp_path) == ["a"]
    write_decisions(tmp_path / "a", [])
    assert missing_decisions(text, tmp_path) == []


def test_readme_is_a_front_door_with_every_moved_section_one_link_away():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200  # a front door; the rest is one link away
    for doc in ("docs/protocol.md", "docs/deploy.md", "docs/tasks.md", "docs/experiments.md",
                "docs/results.md", "docs/ray.md", "benchmarks/README.md"):
        assert f"]({doc})" in text, doc
        assert (ROOT / doc).is_file(), doc
    assert text.index("## Layout") < text.index("## Documentation")


def test_readme_results_blocks_are_filled_from_files(tmp_path):
    from benchmarks.readme_results import render

    (tmp_path / "r.md").write_text("| a | 1 |\n")
    text = "x\n<!-- results: r.md -->\nold\n<!-- /results -->\ny\n"
    assert render(text, tmp_path) == "x\n<!-- results: r.md -->\n| a | 1 |\n<!-- /results -->\ny\n"
    with pytest.raises(FileNotFoundError, match="nope.md"):
        render("<!-- results: nope.md -->\n<!-- /results -->", tmp_path)
