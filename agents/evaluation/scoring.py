"""Scores of one track: targets, times to target, profiles, IQM and improvement.

Input is a list of run records (``EpisodeResult.to_dict()`` plus ``lr0``, ``agent``
and ``role``, see :mod:`agents.evaluation.store`). Everything here is a pure function
of those records, so a report can be rebuilt from a ``runs.jsonl`` at any time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.evaluation import stats
from agents.evaluation.metrics import steps_to_target
from agents.evaluation.store import lr_tag

REFERENCE = "warmup_cosine"
"""AlgoPerf's reference shape: its target-setting runs set the validation targets."""

LEARNED = "ppo"
"""Controller name of learned agents (one row pooling every ``--agent``)."""

TRACKS = {
    "self": "Self-tuning track: no per-task tuning; every method at the task's lr0 or its "
            "package's default",
    "external": "External-tuning track: every tunable baseline tuned per task within its own "
                "search space; the learned controller untuned",
}


def track_runs(
    runs: Sequence[Mapping[str, Any]],
    track: str,
    tuned: Mapping[tuple[str, str], float],
) -> list[Mapping[str, Any]]:
    """The scored runs of one track.

    Self-tuning: every controller at its default ``lr0`` (``lr0 is None``). External
    tuning: the baselines tuned on an env at their tuned ``lr0``, every other
    controller (the learned one, the replay) at its default. Target-setting runs are
    never scored.
    """
    if track not in TRACKS:
        raise ValueError(f"track must be one of {sorted(TRACKS)}, got {track!r}.")
    out = []
    for r in runs:
        if r.get("role", "eval") != "eval":
            continue
        lr = tuned.get((r["env_id"], r["controller"])) if track == "external" else None
        if lr_tag(r.get("lr0")) == lr_tag(lr):
            out.append(r)
    return out


def targets_from(runs: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Per env, the AlgoPerf target from the reference's target-setting runs.

    The median over target-setting seeds of the best validation metric
    (:func:`agents.evaluation.stats.algoperf_target`); a diverged run counts as a miss. None where
    most target-setting runs diverged: that env has no target, so no method reaches
    it and it adds nothing to the profile scores (the report says so).
    """
    best: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        if r.get("role") == "target":
            best[r["env_id"]].append(float("nan") if r["diverged"] else max(r["val_metric"]))
    out: dict[str, float | None] = {}
    for env, v in sorted(best.items()):
        try:
            out[env] = stats.algoperf_target(v)
        except ValueError:
            out[env] = None
    return out


def _target(targets: Mapping[str, float | None], env_id: str) -> float:
    target = targets.get(env_id)
    return float("nan") if target is None else target


def _scores(rs: Sequence[Mapping[str, Any]]) -> list[float]:
    # A diverged run has no test metric: it scores 0, the worst an accuracy can be.
    out = []
    for r in rs:
        v = r["test"].get(r["metric"], float("nan"))
        out.append(0.0 if v is None or not np.isfinite(v) else float(v))
    return out


def _ordered(rs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rs, key=lambda r: (r.get("agent") or "", r["seed"]))


def summarize_track(
    runs: Sequence[Mapping[str, Any]],
    controllers: Sequence[str],
    targets: Mapping[str, float | None],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-task rows and aggregate scores of one track's runs.

    Args:
        runs: The track's runs (:func:`track_runs`).
        controllers: Controller names in report order.
        targets: Validation target per env (:func:`targets_from`).
        n_boot: Bootstrap replicates of every interval.
        seed: Seed of the bootstrap.

    Returns:
        ``{"rows", "aggregate", "ratios", "agents"}``: ``rows`` per (env, controller);
        ``aggregate`` per controller (IQM of the test metric with its CI, profile score,
        and for baselines the probability that the learned controller beats them, with
        its CI); ``agents`` the learned controller's spread, one entry per agent.
    """
    by: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in runs:
        by[(r["env_id"], r["controller"])].append(r)
    envs = sorted({r["env_id"] for r in runs})
    present = [c for c in controllers if any((e, c) in by for e in envs)]

    rows, times = [], {c: {} for c in present}
    for env_id in envs:
        target = _target(targets, env_id)
        for ctrl in present:
            rs = _ordered(by.get((env_id, ctrl), []))
            if not rs:
                continue
            to_target = [steps_to_target(r["steps"], r["val_metric"], target) for r in rs]
            # A method's time on a task: the median over its runs (inf if most miss).
            times[ctrl][env_id] = float(np.median(to_target))
            rows.append({
                "env_id": env_id,
                "controller": ctrl,
                "metric": rs[0]["metric"],
                "lr0": rs[0].get("lr0"),
                "runs": len(rs),
                "final_val": [r["final_val_metric"] for r in rs],
                "test": _scores(rs),
                "convergence_step": [r["convergence_step"] for r in rs],
                "convergence_epoch": [r["convergence_epoch"] for r in rs],
                "target": target,
                "steps_to_target": to_target,
                "wall_to_target": [steps_to_target(r["wall"], r["val_metric"], target)
                                   for r in rs],
                "diverged": sum(bool(r["diverged"]) for r in rs),
            })
    ratios = _ratios(times, envs)
    for row in rows:
        row["ratio_to_fastest"] = ratios.get(row["controller"], {}).get(row["env_id"])
    profile = stats.profile_score(ratios) if ratios else {}

    test = {c: {row["env_id"]: row["test"] for row in rows if row["controller"] == c}
            for c in present}
    aggregate = []
    for c in present:
        point, low, high = stats.iqm_ci(test[c], n_boot=n_boot, seed=seed)
        entry: dict[str, Any] = {"controller": c, "iqm_test": point, "iqm_low": low,
                                 "iqm_high": high, "profile_score": profile.get(c),
                                 "runs": sum(len(v) for v in test[c].values())}
        if LEARNED in test and c != LEARNED and set(test[c]) == set(test[LEARNED]):
            entry["p_improvement"] = stats.probability_of_improvement_ci(
                test[LEARNED], test[c], n_boot=n_boot, seed=seed)
        aggregate.append(entry)
    return {"rows": rows, "aggregate": aggregate, "ratios": ratios,
            "agents": _agent_spread(by, envs, present, times, targets, n_boot, seed)}


def _ratios(times: Mapping[str, Mapping[str, float]], envs: list[str]) -> dict:
    complete = {c: t for c, t in times.items() if len(t) == len(envs) and t}
    return stats.performance_ratios(complete) if complete else {}


def _agent_spread(
    by: Mapping[tuple[str, str], list[Mapping[str, Any]]],
    envs: list[str],
    present: list[str],
    times: Mapping[str, Mapping[str, float]],
    targets: Mapping[str, float | None],
    n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Each learned agent alone: its IQM and the profile score it would get by itself.

    The profile compares the agent with the baselines only (not with the other agents),
    so a reader sees how much the pooled row depends on which PPO seed was drawn.
    """
    if LEARNED not in present:
        return []
    agents = sorted({r.get("agent") or "" for e in envs for r in by.get((e, LEARNED), [])})
    out = []
    for agent in agents:
        own = {e: [r for r in by.get((e, LEARNED), []) if (r.get("agent") or "") == agent]
               for e in envs}
        if not all(own.values()):
            continue
        point, low, high = stats.iqm_ci({e: _scores(_ordered(rs)) for e, rs in own.items()},
                                        n_boot=n_boot, seed=seed)
        agent_times = {e: float(np.median([steps_to_target(r["steps"], r["val_metric"],
                                                           _target(targets, e))
                                           for r in rs])) for e, rs in own.items()}
        others = {c: t for c, t in times.items() if c != LEARNED}
        ratios = _ratios({**others, "agent": agent_times}, envs)
        score = stats.profile_score(ratios).get("agent") if ratios else None
        out.append({"agent": agent, "iqm_test": point, "iqm_low": low, "iqm_high": high,
                    "profile_score": score})
    return out


def word(p_ci: Sequence[float]) -> str:
    """The protocol's word for ``(P, low, high)``: beats (low > 0.5), loses (high < 0.5), ties."""
    return "beats" if p_ci[1] > 0.5 else "loses" if p_ci[2] < 0.5 else "ties"


def verdicts(summary: Mapping[str, Any]) -> dict[str, str]:
    """The learned controller's word (:func:`word`) against each baseline of one track."""
    return {a["controller"]: word(a["p_improvement"]) for a in summary["aggregate"]
            if a["controller"] != LEARNED and a.get("p_improvement") is not None}


def verdict(summary: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the learned controller wins, ties and loses against each baseline.

    On the final test metric: a win when the whole 95% CI of P(learned > baseline) is
    above 0.5, a loss when it is below, a tie otherwise. On speed: the profile scores.
    """
    out: dict[str, list[str]] = {"wins": [], "ties": [], "losses": []}
    agg = {a["controller"]: a for a in summary["aggregate"]}
    if LEARNED not in agg:
        return out
    mine = agg[LEARNED].get("profile_score")
    for c, a in agg.items():
        if c == LEARNED or "p_improvement" not in a:
            continue
        p, low, high = a["p_improvement"]
        theirs = a.get("profile_score")
        faster = ("" if mine is None or theirs is None else
                  f"; profile score {mine:.3f} vs {theirs:.3f}")
        line = f"{c} (P = {p:.2f} [{low:.2f}, {high:.2f}]{faster})"
        out[{"beats": "wins", "loses": "losses", "ties": "ties"}[word((p, low, high))]].append(
            line)
    return out
