"""benchmarks/seed_experiment.py on a tiny registered task (the real one runs for hours)."""

from __future__ import annotations

import json
import shutil

import pytest

import lr_gym
from benchmarks.seed_experiment import build_parser, main, make_plan
from tests.helpers import blob_task, reship_controller, untrained_controller_file

ENV = "lr_gym/SeedBlobs-v1"


@pytest.fixture(autouse=True, scope="module")
def _registered():
    assert lr_gym.register_task(blob_task("SeedBlobs", total_steps=16,
                                          steps_per_action=8)) == ENV


@pytest.fixture(scope="module")
def controller_file(tmp_path_factory):
    return untrained_controller_file(ENV,
                                     tmp_path_factory.mktemp("ctl") / "controller.safetensors")


def test_runs_reports_plots_and_resumes(tmp_path, capsys, controller_file):
    out = tmp_path / "seed"
    args = ["--env", ENV, "--agent", str(controller_file), "--seeds", "0", "1",
            "--baselines", "static", "warmup_linear", "-o", str(out), "--no-controls"]
    assert main(args) == 0
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["controller"], r["seed"]) for r in runs) == [
        ("ppo", 0), ("ppo", 1), ("static", 0), ("static", 1), ("warmup_linear", 0),
        ("warmup_linear", 1)]
    assert (out / "SeedBlobs-v1.png").stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    rows = results["tasks"]["SeedBlobs-v1"]
    assert [r["controller"] for r in rows] == ["ppo", "static", "warmup_linear"]
    assert all(set(r) >= {"test", "final_val", "convergence_epoch", "wall_s"} for r in rows)
    assert "| ppo | 2 |" in (out / "report.md").read_text()
    row = next(line for line in (out / "table.md").read_text().splitlines()
               if line.startswith("| SeedBlobs-v1 |"))
    assert row.count("/2 |") == 2  # paired wins and earlier convergence, over 2 seeds
    assert "Partial" not in (out / "table.md").read_text()
    capsys.readouterr()
    # A third seed planned: --report-only runs nothing and says what is missing.
    assert main([*args[:5], "0", "1", "2", *args[7:], "--report-only"]) == 0
    assert len((out / "runs.jsonl").read_text().splitlines()) == 6
    assert "**Partial: 6 of 9 episodes done**" in (out / "table.md").read_text()
    assert json.loads((out / "results.json").read_text())["episodes_planned"] == 9
    capsys.readouterr()
    assert main(args) == 0  # a rerun resumes: nothing runs twice
    assert "Resuming: 6 finished runs" in capsys.readouterr().err
    assert len((out / "runs.jsonl").read_text().splitlines()) == 6
    # Runs made under other env settings are never resumed from.
    assert main([*args, "--total-steps", "8"]) == 2
    assert "other env settings" in capsys.readouterr().err


def test_another_controller_at_the_same_path_reruns_only_the_controller(tmp_path, capsys,
                                                                       controller_file):
    agent, out = tmp_path / "controller.safetensors", tmp_path / "seed"
    shutil.copyfile(controller_file, agent)
    args = ["--env", ENV, "--agent", str(agent), "--seeds", "0", "--baselines", "static",
            "-o", str(out), "--no-controls"]
    assert main(args) == 0
    reship_controller(agent)  # a different controller at the same path
    capsys.readouterr()
    assert main(args) == 0
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["controller"] for r in runs) == ["ppo", "ppo", "static"]
    assert len(list((out / "controllers").glob("*.safetensors"))) == 2
    rows = json.loads((out / "results.json").read_text())["tasks"]["SeedBlobs-v1"]
    assert [r["runs"] for r in rows if r["controller"] == "ppo"] == [1]  # only the new one


def test_default_plan_is_the_seed_tasks_cpu_presets(monkeypatch, tmp_path):
    from lr_gym.tasks.seed.pretrained import MINILM_PATH_ENV

    # Without the `pretrained` extra (as in CI) a local model folder stands in for it.
    monkeypatch.setenv(MINILM_PATH_ENV, str(tmp_path))
    plan = make_plan(build_parser().parse_args(["--agent", "none"]))
    assert [(e.env_id, e.seeds) for e in plan.envs] == [
        ("lr_gym/CIFAR10-ResNet18-CPU-v1", (0, 1, 2)),
        ("lr_gym/IMDB-MiniLM-CPU-v2", (0, 1)),
        ("lr_gym/SQuADv2-MiniLM-CPU-v4", (0, 1)),
        ("lr_gym/CoNLL2003-BiLSTMCRF-CPU-v1", (0, 1, 2)),
    ]
    assert plan.baselines == ("static", "cosine", "warmup_linear", "schedulefree", "prodigy")
    assert plan.envs[2].metrics == ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact",
                                    "NoAns_f1", "forced_span_HasAns_f1", "loss")
    full = make_plan(build_parser().parse_args(["--agent", "none", "--preset", "full",
                                                "--device", "cuda"]))
    assert [e.env_id for e in full.envs] == [
        "lr_gym/CIFAR10-ResNet18-v1", "lr_gym/IMDB-BERT-v1", "lr_gym/SQuADv2-RoBERTa-v1",
        "lr_gym/CoNLL2003-BiLSTMCRF-v1"]
    assert full.env_kwargs == {"device": "cuda", "torch_threads": 2}  # pinned: reproducible
    published = plan.published_settings
    assert published["reproducibility"]["torch_threads"] == 2
    assert published["reproducibility"]["deterministic_algorithms"] is True


def test_the_minilm_tasks_without_the_extra_fail_before_any_run(tmp_path, capsys,
                                                               monkeypatch):
    import sys

    from lr_gym.tasks.seed.pretrained import MINILM_PACKAGE, MINILM_PATH_ENV

    monkeypatch.setitem(sys.modules, MINILM_PACKAGE, None)  # as if not installed
    monkeypatch.delenv(MINILM_PATH_ENV, raising=False)
    assert main(["--agent", "none", "-o", str(tmp_path / "out")]) == 2
    assert 'pip install -e ".[pretrained]"' in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--agent", "none", "--baselines", "magic"], "unknown baseline 'magic'"),
    (["--agent", "none", "--seeds", "1", "1"], "repeats a seed"),
    (["--agent", "none", "--total-steps", "0"], "--total-steps must be >= 1"),
    (["--agent", "none", "--env", "lr_gym/Nope-v1"], "unknown env id 'lr_gym/Nope-v1'"),
    (["--agent", "no/such/run", "--env", "lr_gym/Digits-MLP-v1"], "No agent at no/such/run"),
])
def test_bad_input_is_refused_before_any_run(tmp_path, capsys, monkeypatch, args, message):
    import agents.controller

    monkeypatch.setattr(agents.controller, "PRETRAINED_DIR", tmp_path / "none-shipped")
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs.jsonl").exists()


def test_the_answer_table_pairs_seeds_and_counts_a_diverged_run_as_a_loss():
    from dataclasses import replace

    from benchmarks.seed_experiment import EnvPlan, Plan, answer_table

    plan = Plan(envs=(EnvPlan("t", "lr_gym/T-v1", (), (0, 1)),), agents=("a.safetensors",),
                baselines=("static", "cosine"), env_kwargs={}, data_dir=None)

    def run(ctrl, seed, test, conv, diverged=False):
        return {"env_id": "lr_gym/T-v1", "controller": ctrl, "seed": seed, "metric": "f1",
                "test": {} if diverged else {"f1": test}, "diverged": diverged,
                "convergence_epoch": conv, "wall": [0.0, 1800.0], "final_val_metric": test}

    runs = [run("ppo", 0, 0.9, 1.0), run("ppo", 1, 0.0, 2.0, diverged=True),
            run("static", 0, 0.8, 3.0), run("static", 1, 0.7, 1.0),
            run("cosine", 0, 0.95, 1.0), run("cosine", 1, 0.85, 1.0)]
    row = next(line for line in answer_table(plan, runs).splitlines() if line.startswith("| t |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["t", "test f1", "0.9000", "0.7500", "cosine 0.9000", "1/2", "—", "—",
                     "1/2", "1.50 vs 2.00", "3.00"]
    # With controls, the best one (the highest mean) and the paired wins against it.
    runs += [run("replay", 0, 0.95, 1.0), run("replay", 1, 0.5, 1.0),
             run("learned_schedule", 0, 0.6, 1.0), run("learned_schedule", 1, 0.6, 1.0)]
    row = next(line for line in answer_table(replace(plan, controls={"a.safetensors": {}}),
                                             runs).splitlines() if line.startswith("| t |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[6:8] == ["replay 0.7250", "0/2"]  # the diverged learned run loses
    assert "No learned controller" in answer_table(Plan(plan.envs, (), ("static",), {}, None), [])


def test_the_controls_run_beside_the_controller_and_the_table_rates_them(tmp_path,
                                                                        controller_file):
    from agents.evaluation.results import read_decisions

    out = tmp_path / "seed"
    assert main(["--env", ENV, "--agent", str(controller_file), "--seeds", "0", "1",
                 "--baselines", "static", "-o", str(out), "--control-envs", ENV,
                 "--control-seeds", "5", "--controls-cache", str(tmp_path / "open_loop")]) == 0
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted({r["controller"] for r in runs}) == [
        "fixed_decay", "learned_schedule", "ppo", "replay", "static"]
    assert len(runs) == 10
    results = json.loads((out / "results.json").read_text())
    assert [r["controller"] for r in results["tasks"]["SeedBlobs-v1"]] == [
        "ppo", "replay", "learned_schedule", "fixed_decay", "static"]
    assert results["episodes"] == results["episodes_planned"] == 10
    (fixed,) = results["open_loop"].values()
    assert fixed["envs"] == [ENV] and fixed["seeds"] == [5]
    table = (out / "table.md").read_text()
    assert "best open-loop control" in table and "learned > it" in table
    assert len(read_decisions(out / "decisions.jsonl.gz")) == 10


def test_a_second_writer_exits_at_once_and_report_only_reads_beside_it(tmp_path, capsys,
                                                                        controller_file):
    from tests.agents.common.test_folder_lock import Holder

    out = tmp_path / "seed"
    args = ["--env", ENV, "--agent", str(controller_file), "--seeds", "0", "--baselines",
            "static", "-o", str(out), "--no-controls"]
    holder = Holder(out)
    try:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out} is being written by another process (PID "
                              f"{holder.proc.pid}: ") and len(err.splitlines()) == 1
        assert not (out / "runs.jsonl").exists()
        assert main([*args, "--report-only"]) == 0  # reads the runs so far: no lock needed
    finally:
        holder.release()


def test_an_unreadable_settings_file_is_one_error_line(tmp_path, capsys, controller_file):
    out = tmp_path / "seed"
    out.mkdir()
    (out / "invocation.json").write_bytes(b"\xff\xfe{")
    assert main(["--env", ENV, "--agent", str(controller_file), "--seeds", "0",
                 "--baselines", "static", "-o", str(out), "--no-controls"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'invocation.json'} is unreadable "
                          "(UnicodeDecodeError)") and len(err.splitlines()) == 1
