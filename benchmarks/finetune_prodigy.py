"""Does Prodigy overshoot on the fine-tuning families? Prodigy at lr 1 against static LRs.

For each fine-tuning family (``lr_gym.splits``' ``v3_families``) and each of its target
kinds, draws ``--configs`` configurations (seeds ``0..configs-1``, the kind forced, the
training fraction and label noise as sampled), each run as AdamW for 300 steps in 20
decisions with batches of 32, and trains every configuration on ``--seeds`` episode seeds
with

* a static LR at ``--scales`` times the family's reference AdamW LR, and
* Prodigy at ``lr=1.0`` (:func:`lr_gym.bases.prodigy_task`: AdamW's betas and weight
  decay carried over), also static,

all at a constant LR (action 0). The single-task fine-tuning ids (``--ids``, default
``lr_gym.splits.FINETUNE_ENV_IDS``) are run the same way at their own configuration
(``--id-seeds`` seeds; lr0 their AdamW reference). It reports the final validation
metric of each, the
best static scale, and Prodigy's paired difference from the best static LR and from the
reference LR, with the share of configurations where Prodigy is worse than the best
static LR by more than ``--margin``. Pretraining (cached on disk) is off the clock.

Usage:
    python benchmarks/finetune_prodigy.py [--configs 3] [--seeds 2] [--families ...]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

import lr_gym
from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)
from lr_gym.bases import prodigy_task
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.splits import FINETUNE_ENV_IDS, SPLITS, split_of_family
from lr_gym.tasks.base import Task
from lr_gym.tasks.families.base import RunConfig, TaskConfig, get_family

SCALES = (0.1, 0.3, 1.0, 3.0, 10.0)


def v3_family_names() -> list[str]:
    """The fine-tuning families of every split."""
    return [f for s in SPLITS.values() for f in s.v3_families]


def configs(family: str, kind: str, n: int) -> list[TaskConfig]:
    """``n`` configurations of ``family`` with ``kind`` forced and a fixed AdamW run."""
    fam = get_family(family)
    out = []
    for seed in range(n):
        base = fam.sample_config(np.random.default_rng(seed))
        params = {**base.params, "kind": kind}
        run = RunConfig("adamw", 1.0, fam.reference_lrs["adamw"], 0.01, 300, 15,
                        min(32, fam.n_train(params)))
        out.append(TaskConfig(family, params, run))
    return out


def final_metric(task: Task, seed: int) -> tuple[float, bool, float | None]:
    """One constant-LR episode: final validation metric, divergence, Prodigy's largest d.

    ``d`` times ``lr`` is Prodigy's effective Adam LR; None for other optimizers.
    """
    env = LRControlEnv(task, schedule="constant", eval_test=False)
    env.reset(seed=seed)
    action = np.zeros(1, np.float32)
    done, info, d_max = False, {}, None
    while not done:
        _, _, term, trunc, info = env.step(action)
        done = term or trunc
        group = env._optimizer.param_groups[0]  # noqa: SLF001 - Prodigy's d lives there
        if "d" in group:
            d_max = max(d_max or 0.0, float(group["d"]) * float(group["lr"]))
    env.close()
    return float(info["val_metric"]), bool(info["diverged"]), d_max


def run_config(config: TaskConfig, seeds: int, scales: tuple[float, ...]) -> dict:
    """Every static scale and Prodigy on one configuration, ``seeds`` seeds each."""
    return run_task(get_family(config.family).task(config), config.params["kind"], seeds,
                    scales)


def run_task(task: Task, kind: str, seeds: int, scales: tuple[float, ...]) -> dict:
    """Every static scale (times the task's lr0) and Prodigy on one task."""
    task.model_fn()  # pretrains (or reads the cache) before the episodes
    res: dict[str, list[float]] = {}
    diverged: dict[str, int] = {}
    for scale in scales:
        t = dataclasses.replace(task, lr=task.lr * scale)
        runs = [final_metric(t, s) for s in range(seeds)]
        res[f"x{scale:g}"] = [m for m, _, _ in runs]
        diverged[f"x{scale:g}"] = sum(d for _, d, _ in runs)
    runs = [final_metric(prodigy_task(task), s) for s in range(seeds)]
    res["prodigy"] = [m for m, _, _ in runs]
    diverged["prodigy"] = sum(d for _, d, _ in runs)
    return {"task": task.name, "kind": kind, "metric": task.metric,
            "reference_lr": task.lr, "final_val_metric": res, "diverged": diverged,
            "prodigy_max_d_lr": [d for _, _, d in runs]}


def summarize(family: str, kind: str, rows: list[dict], margin: float) -> dict:
    """Per (family, kind): mean metrics, the best static scale, Prodigy's paired gaps."""
    statics = [k for k in rows[0]["final_val_metric"] if k != "prodigy"]
    mean = {k: float(np.mean([np.mean(r["final_val_metric"][k]) for r in rows]))
            for k in [*statics, "prodigy"]}
    gaps_best, gaps_ref, worse, d_ratio = [], [], [], []
    for r in rows:
        per = {k: float(np.mean(v)) for k, v in r["final_val_metric"].items()}
        best_key = max(statics, key=lambda k: per[k])
        gaps_best.append(per["prodigy"] - per[best_key])
        gaps_ref.append(per["prodigy"] - per["x1"])
        worse.append(per["prodigy"] < per[best_key] - margin)
        best_lr = r["reference_lr"] * float(best_key[1:])
        d_ratio += [d / best_lr for d in r["prodigy_max_d_lr"] if d is not None]
    return {"family": family, "split": split_of_family(family), "kind": kind,
            "configs": len(rows), "metric": rows[0]["metric"], "mean": mean,
            "best_static": max(statics, key=lambda k: mean[k]),
            "prodigy_minus_best": float(np.mean(gaps_best)),
            "prodigy_minus_ref": float(np.mean(gaps_ref)),
            "prodigy_worse_frac": float(np.mean(worse)),
            "prodigy_d_over_best_lr": float(np.median(d_ratio)) if d_ratio else None}


def table(rows: list[dict], scales: tuple[float, ...]) -> str:
    """Markdown table of the summaries."""
    cols = [f"x{s:g}" for s in scales]
    lines = ["| family | split | kind | n | metric | " + " | ".join(f"static {c}" for c in cols)
             + " | Prodigy lr 1 | best static | Prodigy - best | Prodigy - x1 | Prodigy worse "
             "| Prodigy max d / best LR |",
             "|---|---|---|---|---|" + "---|" * len(cols) + "---|---|---|---|---|---|"]
    for r in rows:
        vals = " | ".join(f"{r['mean'][c]:.3f}" for c in cols)
        name = f"`{r['id']}`" if "id" in r else r["family"]
        lines.append(f"| {name} | {r['split']} | {r['kind']} | {r['configs']} "
                     f"| {r['metric']} | {vals} | {r['mean']['prodigy']:.3f} "
                     f"| {r['best_static']} | {r['prodigy_minus_best']:+.3f} "
                     f"| {r['prodigy_minus_ref']:+.3f} | {r['prodigy_worse_frac']:.0%} "
                     f"| {r['prodigy_d_over_best_lr'] or float('nan'):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Runs the sweep and writes its table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=None,
                   help="fine-tuning families (default: every split's v3 families)")
    p.add_argument("--configs", type=int, default=3, help="configurations per family and kind")
    p.add_argument("--seeds", type=int, default=2, help="episode seeds per configuration")
    p.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                   help="static LRs as multiples of the family's reference AdamW LR "
                        "(must include 1)")
    p.add_argument("--ids", nargs="*", default=[i for ids in FINETUNE_ENV_IDS.values()
                                                 for i in ids],
                   help="single-task fine-tuning ids, each run at its own configuration")
    p.add_argument("--id-seeds", type=int, default=5, help="episode seeds per id")
    p.add_argument("--margin", type=float, default=0.02,
                   help="Prodigy counts as worse below the best static LR by more than this")
    add_benchmark_arguments(p, "benchmarks/results/finetune_prodigy.json")
    args = parse_benchmark_args(p, argv)
    scales = tuple(args.scales)
    if 1.0 not in scales:
        p.error("--scales must include 1 (the reference LR)")
    torch.set_num_threads(1)

    summaries, runs = [], {}
    for family in args.families or v3_family_names():
        for kind in get_family(family).kinds:
            rows = [run_config(c, args.seeds, scales)
                    for c in configs(family, kind, args.configs)]
            runs[f"{family}/{kind}"] = rows
            summaries.append(summarize(family, kind, rows, args.margin))
            print(table(summaries[-1:], scales).splitlines()[-1], flush=True)
    for eid in args.ids:
        task = lr_gym.task_for(eid)
        kind = next(p.split("=")[1] for p in task.name.split("/")[1].split(",")
                    if p.startswith("kind="))
        rows = [run_task(task, kind, args.id_seeds, scales)]
        runs[eid] = rows
        summaries.append({**summarize(task.family, kind, rows, args.margin), "id": eid})
        print(table(summaries[-1:], scales).splitlines()[-1], flush=True)
    md = table(summaries, scales)
    print("\n" + md)
    info = meta(configs=args.configs, seeds=args.seeds, scales=list(scales),
                margin=args.margin)
    note = (f"\nAdamW, 300 steps, 20 decisions, batch 32 (or the training set), constant LR; "
            f"{args.configs} configurations per family and kind (seeds 0-{args.configs - 1}, "
            f"kind forced), {args.seeds} episode seeds each; rows naming an id: that task, "
            f"{args.id_seeds} seeds (n counts configurations); mean final validation metric. "
            "Static xS: S times the family's reference AdamW LR. Prodigy: lr 1.0, d_coef 1, "
            "AdamW's betas and weight decay. Prodigy - best: paired mean difference from the "
            "best static scale of each configuration (chosen in hindsight); Prodigy worse: "
            f"the share of configurations where it is more than {args.margin:g} below it. "
            "Prodigy max d / best LR: the median over runs of Prodigy's largest effective "
            "LR (d times lr) over the best static LR of the configuration: above 1, its "
            "estimate went past the step size that worked best.\n")
    out, _ = write_results(args.output, {"meta": info, "rows": summaries, "runs": runs},
                           md + "\n" + note)
    print(f"\nWrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
