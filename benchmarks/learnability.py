"""Learnability check before any PPO: do the features predict which LR move pays?

From ``--states`` training states, each branched three ways, it measures whether an
observation tells a lower, the same or a higher LR apart, and how much of the reward is
the action rather than the task. No PPO budget can learn what the features cannot say.

States: state ``i`` is a task of the training families under task distribution v2
(``lr_gym/TrainFamilies-v2``'s lr0 mixture and events, the v2 LR rule), run from seed
``i`` with a random prefix of ``t`` decisions (uniform actions in [-1, 1]; ``t`` uniform
in 1 .. D-3 of the task's ``D`` decisions). The observation after the prefix holds every
feature of both sets. Branches: from the same seed and prefix (episodes are
bit-reproducible), ``a`` in {-1, 0, +1} for 3 decisions; the label is the branch with the
lowest validation loss after them (a diverged branch counts as ``divergence_factor * L0``).

Reported (written to ``-o/--output``):

* **AUC per feature set** (v1: :data:`~lr_gym.features.DEFAULT_FEATURES`; v2:
  :data:`~lr_gym.features.V2_FEATURES`; the step-size features alone; v1 plus them): a
  standardised multinomial logistic regression, 5-fold stratified cross-validation,
  macro one-vs-rest ROC AUC of the out-of-fold probabilities, with a bootstrap 95% CI
  over states.
* **The reward's signal-to-noise ratio**: the action's effect, the mean over states of
  ``|r(+1) - r(-1)|`` with ``r`` the 3-decision log loss decrease, over the spread
  across states of the reward of leaving the LR alone: ``std r(0)`` for the absolute
  reward, ``std (r(0) - r_ref)`` for the paired one, ``r_ref`` the static reference
  run's decrease over the same decisions.

The rule, stated before the first run: **PPO trains only on a feature set whose AUC is at
least 0.7** (:data:`AUC_RULE`); otherwise the features are fixed first.

Each state is one job (in ``--workers`` processes); finished states are kept in
``<output>/states.jsonl``, so a stopped run resumes.

Usage:
    python benchmarks/learnability.py [--states 200] [--workers 2]
        [-o benchmarks/results/learnability]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

AUC_RULE = 0.7
"""PPO trains only on a feature set whose cross-validated AUC reaches this."""
BRANCH_DECISIONS = 3
MIN_CLASS = 5
"""States a best-branch class needs to enter the AUC (5-fold cross-validation)."""
ACTIONS = (-1.0, 0.0, 1.0)


def feature_sets() -> dict[str, tuple[str, ...]]:
    """The feature sets compared, by name."""
    from lr_gym.features import DEFAULT_FEATURES, STEP_FEATURES, V2_FEATURES

    return {"v1": DEFAULT_FEATURES, "v2": V2_FEATURES, "step-size only": STEP_FEATURES,
            "v1 + step-size": DEFAULT_FEATURES + STEP_FEATURES}


def all_features() -> tuple[str, ...]:
    """Every feature of every set, once, in a fixed order."""
    seen: dict[str, None] = {}
    for names in feature_sets().values():
        seen.update(dict.fromkeys(names))
    return tuple(seen)


def _env() -> Any:
    from lr_gym.config import V2_ENV_KWARGS
    from lr_gym.envs.sampled import SampledTaskEnv
    from lr_gym.splits import TRAIN
    from lr_gym.tasks.families.base import LR_SCALE_V2

    kwargs = {**V2_ENV_KWARGS, "reward": "val_loss", "action_cost": 0.0,
              "features": all_features(), "eval_test": False}
    return SampledTaskEnv(TRAIN.sampled_families, lr_scale=LR_SCALE_V2, **kwargs)


def _play(env: Any, seed: int, actions: Sequence[float]) -> tuple[np.ndarray, list[dict]]:
    """Resets to ``seed``, plays ``actions``; the last observation and every info."""
    obs, info = env.reset(seed=seed)
    infos = [info]
    for a in actions:
        obs, _, done, _, info = env.step(np.array([a], np.float32))
        infos.append(info)
        if done:
            break
    return obs, infos


def run_state(i: int) -> dict[str, Any]:
    """State ``i``: its observation, the branches' losses and the reference's."""
    import torch

    torch.set_num_threads(1)
    env = _env()
    t0 = time.perf_counter()
    _, info = env.reset(seed=i)
    decisions = env.total_steps // env.steps_per_action
    rng = np.random.default_rng([i, 7])
    t = int(rng.integers(1, decisions - BRANCH_DECISIONS + 1))
    prefix = rng.uniform(-1.0, 1.0, t).tolist()
    initial = info["val_loss"]
    limit = env.config.divergence_factor * initial
    obs, infos = _play(env, i, prefix)
    if infos[-1]["diverged"]:
        return {"state": i, "task": info["task"], "skipped": "the prefix diverged"}
    at_t = infos[-1]["val_loss"]
    after = {}
    for a in ACTIONS:
        _, branch = _play(env, i, prefix + [a] * BRANCH_DECISIONS)
        end = branch[-1]
        after[str(a)] = limit if end["diverged"] else end["val_loss"]
    _, ref = _play(env, i, [0.0] * (t + BRANCH_DECISIONS))
    ref_losses = [limit if r["diverged"] else r["val_loss"] for r in ref]
    env.close()
    ref_t = ref_losses[t] if t < len(ref_losses) else limit
    ref_end = ref_losses[-1] if len(ref_losses) > t + BRANCH_DECISIONS else limit
    return {"state": i, "task": info["task"], "family": info["task"].split("/")[0],
            "t": t, "decisions": decisions, "obs": [float(x) for x in obs],
            "features": list(all_features()), "loss_t": at_t, "after": after,
            "ref_t": ref_t, "ref_end": ref_end, "initial": initial,
            "seconds": time.perf_counter() - t0}


# ------------------------------------------------------- which fixed schedule fits?
SCHEDULE_AT = 0.2
"""``--target schedule``: the share of the budget after which the features are read."""


def schedule_feature_sets() -> dict[str, tuple[str, ...]]:
    """The feature sets compared by ``--target schedule``."""
    from lr_gym.features import DEFAULT_FEATURES, V2_FEATURES, V3_FEATURES

    return {"v3": V3_FEATURES, "v2": V2_FEATURES, "v1": DEFAULT_FEATURES,
            "v3 new only": tuple(f for f in V3_FEATURES if f not in V2_FEATURES)}


def run_schedule_state(i: int, families: Sequence[str] | None = None) -> dict[str, Any]:
    """Task ``i`` of distribution v3 on Prodigy: each fixed decay's end, and the early view.

    The observation is the linear decay's (the v3 rule's action 0) after
    :data:`SCHEDULE_AT` of the budget. Every member runs from seed ``i`` (the same task,
    initialisation and data order), with no events: the label is the member with the
    highest final validation metric (a diverged run scores the worst), the question
    whether what the controller sees early on predicts it.
    """
    import torch

    from agents.baselines.open_loop import FIXED_DECAYS
    from lr_gym.config import V3_ENV_KWARGS
    from lr_gym.envs.sampled import SampledTaskEnv
    from lr_gym.features import V3_FEATURES
    from lr_gym.splits import TRAIN

    torch.set_num_threads(1)
    names = tuple(dict.fromkeys([*V3_FEATURES, *all_features()]))
    t0 = time.perf_counter()
    end, obs_at, task = {}, None, None
    for m, (schedule, final) in FIXED_DECAYS.items():
        env = SampledTaskEnv(list(families or TRAIN.v3_sampled_families), eval_test=False,
                             **{**V3_ENV_KWARGS, "reward": "val_loss", "event_prob": 0.0,
                                "action_cost": 0.0, "features": names, "mode": "anchored",
                                "schedule": schedule, "final_lr_frac": final})
        obs, info = env.reset(seed=i)
        task = info["task"]
        decisions = env.total_steps // env.steps_per_action
        read = max(1, round(SCHEDULE_AT * decisions))
        done, k = False, 0
        while not done:
            obs, _, done, _, info = env.step(np.zeros(1, np.float32))
            k += 1
            if m == "linear" and k == read:
                obs_at = [float(x) for x in obs]
        end[m] = -math.inf if info["diverged"] else float(info["val_metric"])
        env.close()
    return {"state": i, "task": task, "family": task.split("/")[0], "obs": obs_at,
            "features": list(names), "end": end, "seconds": time.perf_counter() - t0}


def summarize_schedules(rows: Sequence[dict]) -> dict[str, Any]:
    """AUC per feature set of the best member, and the headroom of picking it per task."""
    from agents.baselines.open_loop import FIXED_DECAYS

    rows = [r for r in rows if r.get("obs") is not None]
    members = list(FIXED_DECAYS)
    names = rows[0]["features"]
    obs = np.array([r["obs"] for r in rows])
    ends = np.array([[r["end"][m] for m in members] for r in rows])
    label = np.argmax(ends, axis=1)  # ties: the earlier member, as the dev rule
    fit = np.isin(label, [k for k in range(len(members)) if (label == k).sum() >= MIN_CLASS])
    if len(np.unique(label[fit])) < 2:
        nan = {"auc": math.nan, "low": math.nan, "high": math.nan, "folds": 0}
        sets = {name: dict(nan) for name in schedule_feature_sets()}
    else:
        sets = {name: auc_of(obs[fit][:, [names.index(f) for f in feats]], label[fit])
                for name, feats in schedule_feature_sets().items()}
    finite = np.where(np.isfinite(ends), ends, 0.0)
    linear = finite[:, members.index("linear")]
    return {"states": len(rows), "states_in_auc": int(fit.sum()),
            "labels": {m: int((label == k).sum()) for k, m in enumerate(members)},
            "families": sorted({r["family"] for r in rows}), "feature_sets": sets,
            "headroom": {"mean_best_minus_linear": float(np.mean(finite.max(axis=1) - linear)),
                         "share_linear_best": float(np.mean(label == members.index("linear")))},
            "rule": AUC_RULE, "passing": [n for n, s in sets.items() if s["auc"] >= AUC_RULE]}


def schedule_table(summary: dict[str, Any]) -> str:
    """The markdown report of ``--target schedule``."""
    from agents.evaluation.stats import markdown_table

    sets = summary["feature_sets"]
    sizes = {n: len(f) for n, f in schedule_feature_sets().items()}
    rows = [[n, sizes[n], f"{s['auc']:.3f} [{s['low']:.3f}, {s['high']:.3f}]",
             "yes" if s["auc"] >= AUC_RULE else "no"] for n, s in sets.items()]
    h = summary["headroom"]
    labels = ", ".join(f"{m} {n}" for m, n in summary["labels"].items())
    return "\n".join([
        f"{summary['states']} tasks of the training families "
        f"({', '.join(summary['families'])}) on Prodigy: which fixed decay ends best "
        f"(final validation metric), predicted from the observation after "
        f"{SCHEDULE_AT:.0%} of the budget under the linear decay. Best member: {labels} "
        f"({summary['states_in_auc']} tasks in the AUC: classes with at least {MIN_CLASS}).",
        "",
        markdown_table(["feature set", "features", "AUC [95% CI]",
                        f"passes the rule (AUC >= {AUC_RULE})"], rows),
        "",
        f"Headroom of picking the best member per task over the linear decay: "
        f"{h['mean_best_minus_linear']:+.4f} of the validation metric on average; the "
        f"linear decay is the best member on {h['share_linear_best']:.0%} of the tasks.",
        "",
    ])


def labels_and_rewards(rows: Sequence[dict]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The best branch per state (0: down, 1: keep, 2: up) and the 3-decision rewards."""
    after = np.array([[r["after"][str(a)] for a in ACTIONS] for r in rows])
    label = np.argmin(after, axis=1)
    loss_t = np.array([r["loss_t"] for r in rows])[:, None]
    r = np.log(loss_t / after)  # absolute reward of each branch
    ref = np.log(np.array([r_["ref_t"] for r_ in rows]) / np.array([r_["ref_end"]
                                                                 for r_ in rows]))
    return label, {"abs": r, "ref": ref}


def auc_of(x: np.ndarray, y: np.ndarray, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Cross-validated macro one-vs-rest AUC of a logistic regression, with its CI."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = np.unique(y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = min(5, int(min((y == c).sum() for c in classes)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")

    def score(idx: np.ndarray) -> float:
        yy, pp = y[idx], proba[idx]
        if len(np.unique(yy)) < len(classes):
            return math.nan
        if len(classes) == 2:
            return float(roc_auc_score(yy, pp[:, 1]))
        return float(roc_auc_score(yy, pp, multi_class="ovr", average="macro",
                                   labels=classes))

    rng = np.random.default_rng(seed)
    boots = [score(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]
    boots = [b for b in boots if math.isfinite(b)]
    return {"auc": score(np.arange(len(y))), "low": float(np.percentile(boots, 2.5)),
            "high": float(np.percentile(boots, 97.5)), "folds": folds}


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
    """AUC per feature set and the reward's signal-to-noise ratios."""
    rows = [r for r in rows if "obs" in r]
    names = rows[0]["features"]
    obs = np.array([r["obs"] for r in rows])
    label, rewards = labels_and_rewards(rows)
    # A class with too few states for 5 folds is left out of the AUC (counted below).
    fit = np.isin(label, [k for k in range(3) if (label == k).sum() >= MIN_CLASS])
    if len(np.unique(label[fit])) < 2:  # too few states to tell anything apart
        nan = {"auc": math.nan, "low": math.nan, "high": math.nan, "folds": 0}
        sets = {name: dict(nan) for name in feature_sets()}
    else:
        sets = {name: auc_of(obs[fit][:, [names.index(f) for f in feats]], label[fit])
                for name, feats in feature_sets().items()}
    effect = np.abs(rewards["abs"][:, 2] - rewards["abs"][:, 0])
    keep = rewards["abs"][:, 1]
    snr = {"effect": float(effect.mean()),
           "absolute": float(effect.mean() / keep.std()),
           "paired": float(effect.mean() / (keep - rewards["ref"]).std())}
    counts = {lab: int((label == k).sum()) for k, lab in enumerate(("down", "keep", "up"))}
    families = sorted({r["family"] for r in rows})
    return {"states": len(rows), "states_in_auc": int(fit.sum()), "labels": counts,
            "families": families,
            "feature_sets": sets, "snr": snr, "rule": AUC_RULE,
            "passing": [n for n, s in sets.items() if s["auc"] >= AUC_RULE]}


def table(summary: dict[str, Any]) -> str:
    """The markdown report."""
    from agents.evaluation.stats import markdown_table

    sets = summary["feature_sets"]
    rows = [[name, len(feature_sets()[name]), f"{s['auc']:.3f} [{s['low']:.3f}, {s['high']:.3f}]",
             "yes" if s["auc"] >= AUC_RULE else "no"] for name, s in sets.items()]
    snr = summary["snr"]
    lab = summary["labels"]
    return "\n".join([
        f"{summary['states']} states of the training families ({', '.join(summary['families'])}); "
        f"best branch: down {lab['down']}, keep {lab['keep']}, up {lab['up']} "
        f"({summary['states_in_auc']} states in the AUC: classes with at least {MIN_CLASS}).",
        "",
        markdown_table(["feature set", "features", "AUC [95% CI]",
                        f"passes the rule (AUC >= {AUC_RULE})"], rows),
        "",
        markdown_table(["reward", "action effect (mean abs log-loss difference, +1 vs -1)",
                        "spread across states (std)", "signal-to-noise"],
                       [["absolute", f"{snr['effect']:.4f}",
                         f"{snr['effect'] / snr['absolute']:.4f}", f"{snr['absolute']:.3f}"],
                        ["paired", f"{snr['effect']:.4f}",
                         f"{snr['effect'] / snr['paired']:.4f}", f"{snr['paired']:.3f}"]]),
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.evaluation.results import add_benchmark_arguments, parse_benchmark_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=("branch", "schedule"), default="branch",
                   help="'branch': which LR move pays from a state (three branches); "
                        "'schedule': which fixed decay of the family fits a task, from what "
                        "the v3 controller sees early on.")
    p.add_argument("--states", type=int, default=200, help="Training states (tasks).")
    p.add_argument("--workers", type=int, default=2, help="Worker processes.")
    add_benchmark_arguments(p, "benchmarks/results/learnability", aliases=("--results",),
                            output_help="Results folder (states.jsonl, results.json, table.md).")
    args = parse_benchmark_args(p, argv)
    if args.states < 10 or args.workers < 1:
        print("error: --states must be >= 10 and --workers >= 1.", file=sys.stderr)
        return 2
    from agents.common.folder_lock import FolderBusyError, hold_folder

    try:
        # One writer appends to states.jsonl and rewrites its reports.
        with hold_folder(args.output, "wait for it to finish, or pass another --output"):
            return _run(args)
    except FolderBusyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Runs and reports the benchmark into ``args.output``, which this process holds."""
    from agents.common.packages import import_gym_packages
    from agents.evaluation.results import load_jsonl, meta, write_results

    store = args.output / "states.jsonl"
    done = load_jsonl(store, "state", repair=True)
    todo = [i for i in range(args.states) if i not in done]
    run = run_schedule_state if args.target == "schedule" else run_state
    if todo:
        print(f"{len(done)} states done, {len(todo)} to run.", file=sys.stderr)
        with ProcessPoolExecutor(args.workers, initializer=import_gym_packages,
                                 initargs=(list(args.gym_packages),)) as pool, \
                store.open("a") as f:
            futures = {pool.submit(run, i): i for i in todo}
            for n, fut in enumerate(as_completed(futures), 1):
                row = fut.result()
                done[row["state"]] = row
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(f"[{n}/{len(todo)}] state {row['state']} {row['task'][:60]}",
                      file=sys.stderr)
    rows = [done[i] for i in range(args.states)]
    summary = summarize_schedules(rows) if args.target == "schedule" else summarize(rows)
    summary["meta"] = meta(workers=args.workers, target=args.target)
    text = schedule_table(summary) if args.target == "schedule" else table(summary)
    write_results(args.output / "results.json", summary, text,
                  table_path=args.output / "table.md")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
