"""benchmarks/lr_sensitivity.py: the plan, the scores, and the CLI on a tiny registered task."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import lr_gym
from agents.evaluation.results import read_decisions
from benchmarks.lr_sensitivity import (
    EVENTS,
    FROZEN,
    LEARNED,
    LEARNED_GUARD,
    REPLAY,
    SCALES,
    ZERO,
    main,
    plan,
    replay_jobs,
    summarize,
    t_interval,
)
from tests.helpers import USER_TASK, blob_task, reship_controller, untrained_controller_file

ENV = "lr_gym/SensBlobs-v1"
AGENTS = (LEARNED, REPLAY, *FROZEN)
"""What an agent brings: itself and its open-loop controls."""


@pytest.fixture(autouse=True, scope="module")
def _registered():
    assert lr_gym.register_task(blob_task("SensBlobs", total_steps=16,
                                          steps_per_action=8)) == ENV


def test_the_plan_runs_lr_free_methods_once_per_seed():
    jobs = plan([ENV], [0, 1], ["a.safetensors"], guard=True, events=True,
                methods=("static", "prodigy"), zero=True)
    assert Counter(j.method for j in jobs) == {"static": 2 * 5 + 2, "prodigy": 2,
                                               LEARNED: 2 * 5 + 2, LEARNED_GUARD: 2 * 5,
                                               ZERO: 2 * 5 + 2}
    assert {j.agent for j in jobs if j.method == ZERO} == {"a.safetensors"}
    assert {(j.scale, j.invariant) for j in jobs if j.method == "prodigy"} == {(1.0, True)}
    assert {(j.method, j.scale) for j in jobs if j.condition == EVENTS} == {
        ("static", 1.0), (LEARNED, 1.0), (ZERO, 1.0)}
    assert len({j.key() for j in jobs}) == len(jobs)


def test_an_agent_over_prodigy_runs_once_per_seed_with_its_frozen_controls():
    controls = {"a": {"fixed_decay": "linear"}, "b": {"fixed_decay": "wsd"}}
    jobs = plan([ENV], [0], ["a", "b"], guard=False, events=True, methods=("static",),
                zero=True, controls=controls, bases={"a": "prodigy"})
    a = Counter((j.method, j.condition) for j in jobs if j.agent == "a")
    b = Counter((j.method, j.condition) for j in jobs if j.agent == "b")
    assert a == {(m, c): 1 for m in (LEARNED, ZERO, *FROZEN) for c in ("lr0", EVENTS)}
    assert b == {**{(m, "lr0"): 5 for m in (LEARNED, ZERO, *FROZEN)},
                 **{(m, EVENTS): 1 for m in (LEARNED, ZERO, *FROZEN)}}
    assert all(j.invariant and j.scale == 1.0 for j in jobs if j.agent == "a")
    assert all(j.control == controls[j.agent] for j in jobs if j.method in FROZEN)
    # The replays follow each agent's learned runs, cell by cell.
    runs = {j.key(): {"method": j.method, "agent": j.agent, "env_id": j.env_id,
                      "scale": j.scale, "condition": j.condition} for j in jobs}
    replays = replay_jobs(runs, [ENV], [0, 1], ["a", "b"], {"a": "prodigy"}, events=True)
    assert Counter((j.agent, j.condition) for j in replays) == {
        ("a", "lr0"): 2, ("a", EVENTS): 2, ("b", "lr0"): 10, ("b", EVENTS): 2}
    assert all(len(j.replay) == 1 for j in replays)


def _runs(method, scores, scales=SCALES, env="e"):
    return [{"method": method, "env_id": env, "scale": s, "condition": "lr0", "score": x,
             "diverged": False, "invariant": scales == (1.0,)} for s in scales for x in scores(s)]


def test_scores_are_normalised_by_the_best_mean_and_lr_free_runs_count_at_every_scale():
    runs = (_runs("static", lambda s: [0.8, 0.8] if s == 1.0 else [0.4, 0.4])
            + _runs(LEARNED, lambda s: [0.6, 0.6])
            + _runs("prodigy", lambda s: [1.0, 0.6], scales=(1.0,)))
    out = summarize(runs, ["e"], n_boot=50)
    assert out["best"] == {"e": pytest.approx(0.8)}
    ms = out["methods"]
    assert ms["static"]["area"] == pytest.approx((4 * 0.5 + 1.0) / 5)
    assert ms[LEARNED]["area"] == pytest.approx(0.75)
    assert ms["prodigy"]["area"] == pytest.approx(1.0)
    assert ms["prodigy"]["per_scale"] == {f"x{s:g}": pytest.approx(1.0) for s in SCALES}
    assert ms["static"]["per_env"]["e"]["x1"] == pytest.approx(0.8)
    half = 12.7062 * 0.2  # t(0.975, 1 dof) times the standard error of [1.0, 0.6]
    assert ms["prodigy"]["per_env_ci"]["e"]["x0.01"] == pytest.approx([0.8 - half, 0.8 + half],
                                                                      rel=1e-4)
    assert ms["static"]["per_env_ci"]["e"]["x1"] == pytest.approx([0.8, 0.8])
    imp = out["improvement"]["static"]
    assert imp["x0.01"][0] == pytest.approx(1.0)
    assert imp["x1"][0] == pytest.approx(0.0)
    assert out["improvement"]["prodigy"]["x100"][0] == pytest.approx(0.25)
    assert ms["prodigy"]["invariant"] and not ms["static"]["invariant"]


def test_an_lr0_invariant_method_counts_once_per_env_and_seed_in_the_ci():
    from agents.evaluation.stats import mean_ci

    scores = {"e": [1.0, 0.6, 0.9], "f": [0.5, 0.7, 0.8]}
    runs = [r for e, v in scores.items()
            for r in _runs("prodigy", lambda s, v=v: v, scales=(1.0,), env=e)]
    ms = summarize(runs, ["e", "f"], n_boot=200)["methods"]["prodigy"]
    best = {e: max(np.mean(v) for v in [scores[e]]) for e in scores}
    once = mean_ci({e: [x / best[e] for x in v] for e, v in scores.items()}, n_boot=200)
    assert (ms["area"], ms["low"], ms["high"]) == pytest.approx(once)
    # Five copies per scale would have narrowed it by about sqrt(5).
    copies = mean_ci({f"{e}|{s}": [x / best[e] for x in v] for e, v in scores.items()
                      for s in SCALES}, n_boot=200)
    assert copies[2] - copies[1] < 0.6 * (once[2] - once[1])


def test_the_guarded_controller_is_compared_with_static_alone_and_guarded():
    from benchmarks.lr_sensitivity import table

    runs = (_runs("static", lambda s: [0.8, 0.8] if s == 1.0 else [0.4, 0.4])
            + _runs("static_guard", lambda s: [0.8, 0.8] if s <= 1.0 else [0.7, 0.7])
            + _runs(LEARNED, lambda s: [0.6, 0.6])
            + _runs(LEARNED_GUARD, lambda s: [0.6, 0.6] if s <= 10.0 else [0.9, 0.9]))
    out = summarize(runs, ["e"], n_boot=20)
    imp = out["improvement_guard"]
    assert set(imp) == {"static", "static_guard"}
    assert [imp["static"][f"x{s:g}"][0] for s in SCALES] == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert [imp["static_guard"][f"x{s:g}"][0] for s in SCALES] == [0.0, 0.0, 0.0, 0.0, 1.0]
    text = table(out, "dev", 2)
    assert "P(learned+guard > method) per lr0 scale" in text
    assert "| static_guard | 0.00 [0.00, 0.00] |" in text
    assert "improvement_guard" not in summarize(runs[:-10], ["e"], n_boot=20)


def test_one_run_has_a_zero_width_interval():
    assert t_interval([0.7]) == [0.7, 0.7]


def test_runs_reports_plots_and_resumes(tmp_path, capsys):
    agent = untrained_controller_file(ENV, tmp_path / "controller.safetensors")
    args = ["--env", ENV, "--agent", str(agent), "--events", "--methods", "static", "prodigy",
            "--seeds", "0", "--workers", "1", "--n-boot", "20", "--results", str(tmp_path),
            "--control-envs", ENV, "--control-seeds", "1", "--controls-cache",
            str(tmp_path / "open_loop")]
    assert main(args) == 0
    out = tmp_path / "custom"
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert Counter((r["method"], r["condition"]) for r in runs) == {
        ("static", "lr0"): 5, ("prodigy", "lr0"): 1, **{(m, "lr0"): 5 for m in AGENTS},
        **{(m, EVENTS): 1 for m in ("static", *AGENTS)}}
    table = (out / "table.md").read_text()
    assert "| **learned** |" in table and "P(learned > method)" in table
    assert "| prodigy † |" in table and "Open-loop controls" in table
    assert "With an event in every episode (x1)" in table
    short = (out / "controls.md").read_text()  # what README quotes: the controls in short
    assert "| **learned** |" in short and "| fixed_decay |" in short and "| static |" in short
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["episodes"] == 31
    assert set(results["events"]["p"]) == {"static", REPLAY, *FROZEN}
    (fixed,) = results["meta"]["open_loop"].values()
    assert fixed["envs"] == [ENV] and fixed["seeds"] == [1]
    assert (out / "sensitivity.png").stat().st_size > 0
    decisions = read_decisions(out / "decisions.jsonl.gz")
    assert len(decisions) == 31 and all(d["agent"] == "controller.safetensors"
                                        for d in decisions if d["method"] == LEARNED)
    assert all("features" in d for d in decisions if d["method"] == LEARNED)
    assert not any("features" in d for d in decisions if d["method"] != LEARNED)
    capsys.readouterr()
    assert main(args) == 0  # a rerun resumes: nothing runs twice
    assert "episodes to run" not in capsys.readouterr().err
    assert len((out / "runs.jsonl").read_text().splitlines()) == 31
    # Another controller saved at the agent's path: its runs (and replays) are redone.
    reship_controller(agent)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "18 episodes to run (31 done)" in err  # then the replays, which follow them
    assert "6 episodes to run (49 done)" in err
    assert len(list((out / "controllers").glob("*.safetensors"))) == 2
    assert len((out / "runs.jsonl").read_text().splitlines()) == 55


@pytest.mark.parametrize(("flags", "message"), [
    (["--agent", "nowhere.safetensors"], "error: --agent nowhere.safetensors"),
    (["--events"], "--agent-guard, --agent-zero and --events need --agent"),
    (["--agent-zero"], "--agent-guard, --agent-zero and --events need --agent"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, flags, message):
    assert main(["--env", ENV, "--results", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "custom").exists()


def test_the_zero_action_runs_the_agents_rule_and_is_compared(tmp_path):
    # An anchored agent's action 0 is its base schedule: static at every scale.
    agent = untrained_controller_file(ENV, tmp_path / "controller.safetensors")
    assert main(["--env", ENV, "--agent", str(agent), "--agent-zero", "--no-controls",
                 "--methods", "static", "--seeds", "0", "--workers", "1", "--n-boot", "20",
                 "--results", str(tmp_path)]) == 0
    out = tmp_path / "custom"
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    zero = {r["scale"]: r for r in runs if r["method"] == ZERO}
    static = {r["scale"]: r for r in runs if r["method"] == "static"}
    assert sorted(zero) == list(SCALES)
    assert all(zero[s]["lrs"] == static[s]["lrs"] and zero[s]["score"] == static[s]["score"]
               for s in SCALES)
    table = (out / "table.md").read_text()
    assert f"| {ZERO} |" in table
    assert json.loads((out / "results.json").read_text())["improvement"].keys() == {
        ZERO, "static"}


def test_a_second_writer_of_the_results_exits_at_once_naming_the_first(tmp_path, capsys):
    from tests.agents.common.test_folder_lock import Holder

    holder = Holder(tmp_path / "custom")  # another run writing this results folder
    try:
        assert main(["--env", ENV, "--methods", "static", "--seeds", "0", "--workers", "1",
                     "--results", str(tmp_path)]) == 2
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'custom'} is being written by another process (PID "
                   f"{holder.proc.pid}: -c {tmp_path / 'custom'} --a-flag); wait for it to "
                   "finish, or pass another --output.\n")
    assert not (tmp_path / "custom" / "runs.jsonl").exists()


def test_your_own_tasks_run_in_the_worker_processes(tmp_path):
    # As a user runs it: a module of theirs registers the task, named by --gym-packages,
    # and the sweep's worker processes import it too.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "my_sens_tasks.py").write_text(USER_TASK.format(name="MySensTask"))
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "lr_sensitivity.py"), "--env",
         "lr_gym/MySensTask-v1", "--gym-packages", "my_sens_tasks", "--methods", "static",
         "--seeds", "0", "--workers", "2", "--n-boot", "20", "--results", str(tmp_path / "r")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": f"{tmp_path}:{root}", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    runs = (tmp_path / "r" / "custom" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 5  # static at five lr0 scales
    bad = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "lr_sensitivity.py"), "--env",
         "lr_gym/MySensTask-v1", "--gym-packages", "no_such_module", "--results",
         str(tmp_path / "r2")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(root)})
    assert bad.returncode == 2 and "no_such_module" in bad.stderr
    assert "Traceback" not in bad.stderr
