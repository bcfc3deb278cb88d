"""benchmarks/trajectories.py: what a controller did, from committed decisions alone."""

from __future__ import annotations

import json

import pytest

from agents.evaluation.results import write_decisions
from benchmarks.trajectories import factor_at, main, summarize


def _episode(seed: int, lrs: list[float], actions: list[float], condition: str = "lr0",
             event_step: int | None = None, diverged: bool = False) -> dict:
    steps = [10 * k for k in range(len(actions))]
    return {"env_id": "e", "method": "learned", "seed": seed, "condition": condition,
            "total_steps": 10 * len(actions), "rule_lr0": 2.0, "diverged": diverged,
            "event": None if event_step is None else {"kind": "k", "step": event_step,
                                                      "applied": True},
            "decisions": {"step": steps, "lr": lrs, "action": actions,
                          "multiplier": [x / 2 for x in lrs]}}


def test_the_factor_in_force_at_a_progress():
    e = _episode(0, [2.0, 1.0, 0.5, 0.5], [0.0, -1.0, -1.0, 0.0])
    assert factor_at(e, 0.0) == 1.0 and factor_at(e, 0.3) == 0.5
    assert factor_at(e, 0.95) == 0.25
    short = _episode(0, [2.0, 1.0], [0.0, -1.0], diverged=True)
    short["total_steps"] = 40
    assert factor_at(short, 0.9) is None  # it never got there


def test_the_reaction_to_an_event_is_paired_with_the_same_seed_without_it():
    plain = [_episode(s, [2.0] * 4, [0.0, 0.0, 0.0, 0.0]) for s in (0, 1)]
    events = [_episode(0, [2.0] * 4, [0.0, -1.0, -0.5, 0.0], "events", event_step=5),
              _episode(1, [2.0] * 4, [0.0, 0.0, 0.0, 0.5], "events", event_step=25)]
    out = summarize(events, plain)
    ev = out["event_reaction"]
    # Seed 0: decisions 1-3 after its event at step 5; seed 1: decision 3 after step 25.
    assert ev["pairs"] == 4
    assert ev["after_event"] == pytest.approx((-1.0 - 0.5 + 0.0 + 0.5) / 4)
    assert ev["same_decisions_no_event"] == 0.0
    assert out["raised"] == pytest.approx(1 / 8) and out["lowered"] == pytest.approx(2 / 8)


def test_reads_a_results_folder_and_writes_its_summary(tmp_path, capsys):
    write_decisions(tmp_path, [
        {**_episode(0, [2.0, 1.0, 1.0, 1.0], [0.0, -1.0, 0.0, 0.0]),
         "steps": [0, 10, 20, 30, 40], "lrs": [2.0, 2.0, 1.0, 1.0, 1.0],
         "actions": [0.0, -1.0, 0.0, 0.0], "multipliers": [1.0, 0.5, 0.5, 0.5]}])
    assert main([str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "trajectories.json").read_text())
    assert summary["lr0"]["factor"]["0.5"] == [0.5, 0.5, 0.5]
    assert "lowered it" in (tmp_path / "trajectories.md").read_text()
    assert main([str(tmp_path), "--method", "ppo"]) == 2
    assert "no episode" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
