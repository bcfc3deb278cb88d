"""benchmarks/headroom.py: the ceiling, the gaps, and the CLI on a tiny registered task."""

from __future__ import annotations

import json

import pytest

import lr_gym
from agents.baselines.open_loop import FIXED_DECAYS
from agents.evaluation.results import read_decisions
from benchmarks.headroom import main, summarize
from tests.helpers import blob_task, untrained_controller_file

ENV = "lr_gym/HeadroomBlobs-v1"


@pytest.fixture(autouse=True, scope="module")
def _registered():
    assert lr_gym.register_task(blob_task("HeadroomBlobs", total_steps=16,
                                          steps_per_action=8)) == ENV


def _run(controller: str, env: str, seed: int, score: float) -> dict:
    return {"controller": controller, "env_id": env, "seed": seed, "diverged": False,
            "metric": "accuracy", "test": {"accuracy": score}, "val_loss": [score, seed]}


def test_the_ceiling_takes_each_envs_best_member_and_the_gap_is_over_the_best_single():
    envs = ["a", "b"]
    # linear is best on a, cosine on b; over both, cosine is the best single member.
    member = {("linear", "a"): 1.0, ("linear", "b"): 0.5, ("cosine", "a"): 0.9,
              ("cosine", "b"): 1.0}
    runs = [_run(f"decay:{m}", e, s, member.get((m, e), 0.2)) for m in FIXED_DECAYS
            for e in envs for s in (0, 1)]
    runs += [_run(c, e, s, 0.8) for c in ("ppo", "zero_action", "learned_schedule", "replay")
             for e in envs for s in (0, 1)]
    out = summarize(runs, envs, "linear", n_boot=50)
    assert out["best_single"] == "cosine"
    assert out["ceiling_members"] == {"a": "linear", "b": "cosine"}
    assert out["adaptive_gap"]["per_env"] == pytest.approx({"a": 0.1, "b": 0.0})
    assert out["scores"]["ceiling"][0] == pytest.approx(1.0)
    assert out["scores"]["fixed_decay"][0] == pytest.approx(0.75)  # the dev-chosen: linear
    assert out["p_learned"]["fixed_decay"][0] == pytest.approx(0.5)  # 0.8 vs 1.0, 0.8 vs 0.5


def test_runs_both_conditions_and_commits_decisions(tmp_path, capsys):
    agent = untrained_controller_file(ENV, tmp_path / "controller.safetensors")
    args = ["--agent", str(agent), "--env", ENV, "--seeds", "0", "--workers", "1",
            "--n-boot", "20", "--store", str(tmp_path / "store"),
            "--controls-cache", str(tmp_path / "open_loop"), "--results", str(tmp_path / "r")]
    assert main(args) == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert set(results["conditions"]) == {"lr0", "events"}
    per = len(FIXED_DECAYS) + 4  # the members, the agent, its action 0, schedule, replay
    assert results["meta"]["episodes"] == 2 * per
    decisions = read_decisions(tmp_path / "r" / "decisions.jsonl.gz")
    assert {d["condition"] for d in decisions} == {"lr0", "events"}
    assert all(d["event"] for d in decisions if d["condition"] == "events")
    assert "Adaptive headroom" in (tmp_path / "r" / "table.md").read_text()
    assert (tmp_path / "r" / "controls.json").is_file()
    capsys.readouterr()
    assert main(args) == 0  # resumes: nothing runs again
    assert "0 episodes to run" in capsys.readouterr().err


def test_refuses_test_envs(tmp_path, capsys):
    assert main(["--env", "lr_gym/Seq-GRU-v1", "--results", str(tmp_path)]) == 2
    assert "test split" in capsys.readouterr().err


def test_a_second_writer_of_the_store_exits_at_once_naming_the_first(tmp_path, capsys):
    from agents.controller import load_controller_file
    from tests.agents.common.test_folder_lock import Holder

    agent = untrained_controller_file(ENV, tmp_path / "controller.safetensors")
    store = tmp_path / "store" / load_controller_file(agent).sha256[:12]
    holder = Holder(store)
    try:
        assert main(["--agent", str(agent), "--env", ENV, "--seeds", "0", "--workers", "1",
                     "--store", str(tmp_path / "store"), "--results", str(tmp_path / "r")]) == 2
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert err.startswith(f"error: {store} is being written by another process (PID "
                          f"{holder.proc.pid}: ") and len(err.splitlines()) == 1
    assert err.endswith("wait for it to finish, or pass another --store and --output.\n")
    assert not (tmp_path / "r").exists()
