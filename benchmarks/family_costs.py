"""Cost and difficulty of sampled task families: one episode per sample at a constant LR.

For every family that samples tasks (``lr_gym.splits``), runs the tasks drawn from
seeds ``0..samples-1`` for one full episode each at their sampled ``lr0`` (constant
schedule, action 0: the LR never moves) on one torch thread, and reports the seconds
per episode (median, 90th percentile, max; one-time data loading and pretraining
excluded; the longest first model build, which pretrains the fine-tuning families'
weights when their cache is cold, is reported apart), the
sampled budgets and decision counts, the share of runs that diverged and the final
validation metric (10th/50th/90th percentile; diverged runs count at their last
value). The acceptance bar is a median episode of at most 2 s on one core.

Seconds are the process's CPU time (one thread, so one core's work): on a shared
machine wall time also counts the time other processes held the core. The median wall
time is reported beside it.

Usage:
    python benchmarks/family_costs.py [--samples 30] [--families tabular-mlp ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.splits import split_of_family
from lr_gym.tasks.families.base import get_family, sampled_family_names

MEDIAN_BAR_S = 2.0


def run_sample(family: str, seed: int) -> dict:
    """One episode of the task sampled from ``seed`` at a constant LR."""
    task = get_family(family).sample(np.random.default_rng(seed))
    env = LRControlEnv(task, schedule="constant", eval_test=False)
    env.data  # noqa: B018 - one-time loading stays off the clock
    # So does pretraining (the fine-tuning families pretrain on a model's first build,
    # then read their disk cache): timed apart, it is 0 for the other families.
    c0 = time.process_time()
    with torch.random.fork_rng(devices=[]):
        task.model_fn()
    setup = time.process_time() - c0
    action = np.zeros(1, np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    _, info = env.reset(seed=seed)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(action)
        done = term or trunc
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    env.close()
    return {"task": task.name, "seconds": cpu, "wall_seconds": wall,
            "first_model_seconds": setup,
            "total_steps": task.total_steps,
            "decisions": task.total_steps // task.steps_per_action,
            "diverged": bool(info["diverged"]), "metric": task.metric,
            "final_val_metric": float(info["val_metric"])}


def summarize(family: str, runs: list[dict]) -> dict:
    secs = np.array([r["seconds"] for r in runs])
    metric = np.array([r["final_val_metric"] for r in runs])
    return {
        "family": family,
        "split": split_of_family(family),
        "samples": len(runs),
        "median_s": float(np.median(secs)),
        "p90_s": float(np.percentile(secs, 90)),
        "max_s": float(secs.max()),
        "median_wall_s": float(np.median([r["wall_seconds"] for r in runs])),
        "max_first_model_s": float(max(r.get("first_model_seconds", 0.0) for r in runs)),
        "median_total_steps": float(np.median([r["total_steps"] for r in runs])),
        "decisions_range": [min(r["decisions"] for r in runs),
                            max(r["decisions"] for r in runs)],
        "diverged_frac": float(np.mean([r["diverged"] for r in runs])),
        "metric": runs[0]["metric"],
        "metric_p10": float(np.percentile(metric, 10)),
        "metric_median": float(np.median(metric)),
        "metric_p90": float(np.percentile(metric, 90)),
    }


def table(rows: list[dict]) -> str:
    lines = ["| family | split | n | median CPU s | p90 CPU s | max CPU s | median wall s "
             "| max first model s | median T | decisions | diverged | metric | p10 | median "
             "| p90 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['split']} | {r['samples']} | {r['median_s']:.2f} "
              f"| {r['p90_s']:.2f} | {r['max_s']:.2f} | {r['median_wall_s']:.2f} "
              f"| {r.get('max_first_model_s', 0.0):.2f} "
              f"| {r['median_total_steps']:.0f} "
              f"| {r['decisions_range'][0]}-{r['decisions_range'][1]} "
              f"| {r['diverged_frac']:.0%} | {r['metric']} | {r['metric_p10']:.3f} "
              f"| {r['metric_median']:.3f} | {r['metric_p90']:.3f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=30, help="tasks per family (seeds 0..n-1)")
    p.add_argument("--families", nargs="+", default=sampled_family_names())
    add_benchmark_arguments(p, "benchmarks/results/family_costs.json")
    args = parse_benchmark_args(p)
    torch.set_num_threads(1)

    rows, runs = [], {}
    for family in args.families:
        runs[family] = [run_sample(family, seed) for seed in range(args.samples)]
        rows.append(summarize(family, runs[family]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)

    md = table(rows)
    print("\n" + md)
    info = meta(median_bar_s=MEDIAN_BAR_S)
    note = (f"\nOne episode per sample (seeds 0-{args.samples - 1}), constant LR at the "
            "sampled lr0, one torch thread; CPU seconds per episode (bar: median <= "
            f"{MEDIAN_BAR_S:g} s), data loading and the first model build (pretraining, "
            "for the fine-tuning families with a cold cache: its longest is 'max first "
            "model s') excluded; final validation metric percentiles over the samples. "
            f"Load average at the end {info['load_avg_1min']:.1f} on {info['cpus']} CPUs.\n")
    out, _ = write_results(args.output, {"meta": info, "rows": rows, "runs": runs},
                           md + "\n" + note)
    print(f"\nWrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
