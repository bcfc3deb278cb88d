"""The benchmarks' one harness: every measuring script takes ``-o/--output`` and
``--gym-packages`` (agents.evaluation.results.add_benchmark_arguments) and writes atomically."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.evaluation.results import (
    add_benchmark_arguments,
    copy_result,
    parse_benchmark_args,
    write_results,
)
from tests.helpers import USER_TASK

ROOT = Path(__file__).resolve().parents[1]
REPORTS = {"readme_results", "trajectories", "mutation_report", "tensorboard_figure"}
"""Scripts that read files others wrote and run no env: no ``--gym-packages``."""
MEASURING = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py")
                   if p.stem not in REPORTS and p.stem != "__init__")

def test_the_reports_left_out_exist():
    # A renamed report must not drop out of the check silently.
    assert all((ROOT / "benchmarks" / f"{r}.py").is_file() for r in REPORTS)


@pytest.mark.parametrize("script", MEASURING)
def test_every_measuring_script_takes_output_and_gym_packages(script, monkeypatch, capsys):
    module = importlib.import_module(f"benchmarks.{script}")
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    assert "-o OUTPUT, --output OUTPUT" in help_text
    assert "--gym-packages [MODULE ...]" in help_text


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_no_script_writes_a_file_its_own_way(script):
    # Results go through write_results / copy_result (lr_gym.files.atomic_write): a kill
    # never leaves half a file. Appending to a resumable runs.jsonl is not a rewrite.
    source = (ROOT / "benchmarks" / script).read_text()
    assert not re.findall(r"\.write_text\(|json\.dump\(|shutil\.copy", source)


def test_a_users_module_is_imported_and_a_missing_one_is_one_usage_line(tmp_path,
                                                                       monkeypatch, capsys):
    import argparse

    (tmp_path / "my_bench_tasks.py").write_text("IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = argparse.ArgumentParser(prog="bench")
    add_benchmark_arguments(p, "out/bench.json", aliases=("--results",))
    args = parse_benchmark_args(p, ["--gym-packages", "my_bench_tasks", "--results", "x"])
    assert sys.modules["my_bench_tasks"].IMPORTED
    assert args.output == Path("x") and args.gym_packages == ["my_bench_tasks"]
    assert parse_benchmark_args(p, []).output == Path("out/bench.json")
    with pytest.raises(SystemExit) as done:
        parse_benchmark_args(p, ["--gym-packages", "no_such_bench_module"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "bench: error: --gym-packages no_such_bench_module" in err
    assert "Traceback" not in err


def test_write_results_writes_every_file_whole(tmp_path):
    out, md = write_results(tmp_path / "r" / "results.json", [{"a": 1}], "| t |\n\n",
                            table_path=tmp_path / "r" / "table.md",
                            also={"summary.md": "done"})
    assert json.loads(out.read_text()) == [{"a": 1}]
    assert md.read_text() == "| t |\n"
    assert (tmp_path / "r" / "summary.md").read_text() == "done\n"
    assert write_results(tmp_path / "plain.json", {"meta": {}}, None)[1] is None
    assert not (tmp_path / "plain.md").exists()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "results.json", "summary.md", "table.md"]  # no temporary left behind
    copy_result(md, tmp_path / "copy" / "table.md")
    assert (tmp_path / "copy" / "table.md").read_text() == "| t |\n"


def test_a_users_task_runs_in_the_seed_experiments_worker_processes(tmp_path):
    # As a user runs it: their module registers the task; --gym-packages has the
    # benchmark and every worker process (forkserver: nothing inherited) import it.
    (tmp_path / "my_harness_tasks.py").write_text(USER_TASK.format(name="MyHarnessTask"))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "seed_experiment.py"), "--env",
         "lr_gym/MyHarnessTask-v1", "--gym-packages", "my_harness_tasks", "--agent", "none",
         "--baselines", "static", "--seeds", "0", "1", "--workers", "2", "--num-threads", "1",
         "-o", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 2 and "meta" in results
    assert (out / "table.md").is_file() and (out / "report.md").is_file()
