from __future__ import annotations

import math

import pytest

from agents.evaluation.scoring import (
    LEARNED,
    summarize_track,
    targets_from,
    track_runs,
    verdict,
)

ENVS = ("lr_gym/A-v1", "lr_gym/B-v1")


def _run(env, ctrl, seed, acc, *, vals=(0.1, 0.5, 0.9), agent=None, lr0=None, role="eval"):
    return {"env_id": env, "controller": ctrl, "seed": seed, "agent": agent, "lr0": lr0,
            "role": role, "metric": "accuracy", "steps": [0, 10, 20], "epochs": [0, 1, 2],
            "wall": [0.0, 0.5, 1.0], "val_metric": list(vals), "final_val_metric": vals[-1],
            "test": {"accuracy": acc}, "diverged": False, "convergence_step": 20.0,
            "convergence_epoch": 2.0}


def test_track_runs_picks_default_or_tuned_lr_and_never_target_runs():
    runs = [_run(ENVS[0], "static", 0, 0.5), _run(ENVS[0], "static", 0, 0.6, lr0=0.3),
            _run(ENVS[0], LEARNED, 0, 0.7, agent="a"),
            _run(ENVS[0], "warmup_cosine", 9, 0.9, role="target")]
    tuned = {(ENVS[0], "static"): 0.3}
    self_track = track_runs(runs, "self", tuned)
    assert [(r["controller"], r["lr0"]) for r in self_track] == [("static", None), (LEARNED, None)]
    external = track_runs(runs, "external", tuned)
    assert [(r["controller"], r["lr0"]) for r in external] == [("static", 0.3), (LEARNED, None)]
    with pytest.raises(ValueError, match="track"):
        track_runs(runs, "both", tuned)


def test_targets_come_from_target_runs_only():
    runs = [_run(ENVS[0], "warmup_cosine", s, 0.5, vals=(0.1, v, 0.2), role="target")
            for s, v in ((7, 0.6), (8, 0.8), (9, 0.7))]
    runs.append(_run(ENVS[0], "warmup_cosine", 0, 0.5, vals=(0.1, 0.99, 0.99)))
    assert targets_from(runs) == {ENVS[0]: 0.7}


def test_summary_pools_agents_and_scores_improvement():
    runs = []
    for env in ENVS:
        for seed in range(4):
            runs.append(_run(env, "static", seed, 0.60 + 0.01 * seed, vals=(0.1, 0.3, 0.9)))
            for agent, bonus in (("a", 0.2), ("b", 0.25)):
                runs.append(_run(env, LEARNED, seed, 0.60 + bonus + 0.01 * seed, agent=agent))
    summary = summarize_track(runs, [LEARNED, "static"], {e: 0.5 for e in ENVS}, n_boot=200)
    agg = {a["controller"]: a for a in summary["aggregate"]}
    assert agg[LEARNED]["runs"] == 2 * 2 * 4 and agg["static"]["runs"] == 2 * 4
    p, low, high = agg["static"]["p_improvement"]
    assert p == 1.0 and low == high == 1.0
    assert "p_improvement" not in agg[LEARNED]
    # The learned runs reach 0.5 at step 10, static at step 20.
    assert agg[LEARNED]["profile_score"] == 1.0
    assert agg["static"]["profile_score"] == pytest.approx((4 - 2) / 3)
    assert [a["agent"] for a in summary["agents"]] == ["a", "b"]
    assert all(a["profile_score"] == 1.0 for a in summary["agents"])
    v = verdict(summary)
    assert len(v["wins"]) == 1 and v["wins"][0].startswith("static") and not v["losses"]


def test_diverged_runs_score_zero_and_misses_are_infinite():
    runs = [_run(ENVS[0], "static", 0, float("nan"), vals=(0.1, 0.2, 0.3)),
            _run(ENVS[0], "cosine", 0, 0.8)]
    runs[0]["diverged"] = True
    summary = summarize_track(runs, ["static", "cosine"], {ENVS[0]: 0.5}, n_boot=50)
    rows = {r["controller"]: r for r in summary["rows"]}
    assert rows["static"]["test"] == [0.0] and rows["static"]["diverged"] == 1
    assert math.isinf(rows["static"]["steps_to_target"][0])
    assert math.isinf(summary["ratios"]["static"][ENVS[0]])


def test_an_env_whose_reference_diverged_has_no_target_and_is_still_reported():
    from agents.evaluation.report import report_markdown

    runs = [_run(ENVS[0], "warmup_cosine", s, 0.0, role="target") for s in (7, 8, 9)]
    for r in runs:
        r["diverged"] = True
    runs += [_run(ENVS[1], "warmup_cosine", 7, 0.5, role="target")]
    targets = targets_from(runs)
    assert targets == {ENVS[0]: None, ENVS[1]: 0.9}
    scored = [_run(e, c, s, 0.6) for e in ENVS for c in ("static", LEARNED) for s in (0, 1)]
    summary = summarize_track(scored, [LEARNED, "static"], targets, n_boot=50)
    rows = [r for r in summary["rows"] if r["env_id"] == ENVS[0]]
    assert rows and all(math.isinf(x) for r in rows for x in r["steps_to_target"])
    meta = {"envs": list(ENVS), "split": None, "agents": ["a"], "seeds": [0, 1],
            "target_seeds": [7, 8, 9], "reference_tuned": False, "tuning_budget": 0,
            "tuning_seed": 10000, "targets": targets}
    assert "none (most target-setting runs diverged" in report_markdown({"self": summary}, meta)
