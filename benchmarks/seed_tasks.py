"""Seed tasks at CPU scale: one episode each under the static LR and under cosine decay.

For every ``*-CPU`` seed-task id, on local data (``--data-dir``, default
``$LR_GYM_DATA_DIR`` or ``../shared/data``): seconds per env step, final validation and
test metrics, and convergence time (steps and epochs to 95% of the final validation
metric). Prints a markdown table and writes JSON.

Usage:
    python benchmarks/seed_tasks.py [--env lr_gym/CoNLL2003-BiLSTMCRF-CPU-v1 ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

import lr_gym
from agents.baselines import make_baseline
from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)
from agents.evaluation.rollout import run_episode

CPU_IDS = [e for e in lr_gym.lr_gym_env_ids() if "-CPU-v" in e]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=CPU_IDS)
    p.add_argument("--baselines", nargs="+", default=["static", "cosine"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get(
        "LR_GYM_DATA_DIR", str(Path(__file__).resolve().parents[1].parent / "shared" / "data")))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    add_benchmark_arguments(p, "benchmarks/results/seed_tasks.json")
    args = parse_benchmark_args(p)
    torch.set_num_threads(args.threads)

    rows = []
    for env_id in args.env:
        for name in args.baselines:
            t0 = time.perf_counter()
            res = run_episode(env_id, make_baseline(name), args.seed, env_kwargs={
                "device": args.device, "task_kwargs": {"data_dir": args.data_dir}})
            wall = time.perf_counter() - t0
            n_steps = len(res.steps) - 1
            metric = res.metric
            rows.append({
                "env_id": env_id, "controller": name, "metric": metric,
                "env_steps": n_steps, "optimizer_steps": res.steps[-1],
                "s_per_env_step": (res.wall[-1] - res.wall[0]) / max(n_steps, 1),
                "episode_s": wall,
                "final_val": res.final_val_metric,
                "test": res.test.get(metric, float("nan")),
                "test_all": res.test,
                "convergence_step": res.convergence_step,
                "convergence_epoch": res.convergence_epoch,
                "diverged": res.diverged,
            })
            r = rows[-1]
            print(f"{env_id} {name}: {r['s_per_env_step']:.2f} s/env step, "
                  f"val {metric} {r['final_val']:.4f}, test {r['test']:.4f}", flush=True)

    table = ["| env | LR | s / env step | env steps | final val | test | steps (epochs) to 95% |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['env_id']} | {r['controller']} | {r['s_per_env_step']:.2f} | "
              f"{r['env_steps']} | {r['metric']} {r['final_val']:.4f} | {r['test']:.4f} | "
              f"{r['convergence_step']:.0f} ({r['convergence_epoch']:.2f}) |" for r in rows]
    print("\n" + "\n".join(table))
    out, _ = write_results(args.output, {"meta": meta(device=args.device), "rows": rows},
                           "\n".join(table))
    print(f"\nWrote {out}")

if __name__ == "__main__":
    main()
