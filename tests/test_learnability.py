"""benchmarks/learnability.py --target schedule: which fixed decay fits a task."""

from __future__ import annotations

import math

import pytest

from agents.baselines.open_loop import FIXED_DECAYS
from benchmarks.learnability import (
    MIN_CLASS,
    run_schedule_state,
    schedule_table,
    summarize_schedules,
)


def _row(i: int, best: str, x: float) -> dict:
    end = dict.fromkeys(FIXED_DECAYS, 0.5)
    end[best] = 0.6
    return {"state": i, "task": f"fam/{i}", "family": "fam", "features": ["a", "b"],
            "obs": [x, -x], "end": end}


def test_the_best_member_is_predicted_from_the_features_and_its_headroom_reported():
    from benchmarks.learnability import all_features
    from lr_gym.features import V3_FEATURES

    names = list(dict.fromkeys([*V3_FEATURES, *all_features()]))
    rows = [_row(i, "linear" if i % 2 else "exp0.1", float(i % 2)) for i in range(4 * MIN_CLASS)]
    for r in rows:  # every feature set reads the v3 names: give them the telling value
        r["features"] = names
        r["obs"] = [r["obs"][0]] * len(names)
    out = summarize_schedules(rows)
    assert out["labels"]["linear"] == out["labels"]["exp0.1"] == 2 * MIN_CLASS
    assert out["feature_sets"]["v3"]["auc"] == pytest.approx(1.0)
    assert out["headroom"]["mean_best_minus_linear"] == pytest.approx(0.05)
    assert out["headroom"]["share_linear_best"] == pytest.approx(0.5)
    assert "v3" in out["passing"] and "Headroom of picking" in schedule_table(out)


@pytest.mark.slow
def test_a_state_runs_every_member_on_the_same_task():
    row = run_schedule_state(3, families=["tabular-mlp"])
    assert set(row["end"]) == set(FIXED_DECAYS)
    assert all(math.isfinite(v) or v == -math.inf for v in row["end"].values())
    assert len(row["obs"]) == len(row["features"]) and row["family"] == "tabular-mlp"


def test_a_second_writer_of_the_results_exits_at_once_naming_the_first(tmp_path, capsys):
    from benchmarks.learnability import main
    from tests.agents.common.test_folder_lock import Holder

    holder = Holder(tmp_path)  # another run appending to states.jsonl here
    try:
        assert main(["--states", "10", "--workers", "1", "--results", str(tmp_path)]) == 2
    finally:
        holder.release()
    assert capsys.readouterr().err == (
        f"error: {tmp_path} is being written by another process (PID {holder.proc.pid}: -c "
        f"{tmp_path} --a-flag); wait for it to finish, or pass another --output.\n")
    assert not (tmp_path / "states.jsonl").exists()


def test_too_few_states_are_refused(tmp_path, capsys):
    from benchmarks.learnability import main

    assert main(["--states", "3", "--results", str(tmp_path)]) == 2
    assert "--states must be >= 10" in capsys.readouterr().err
