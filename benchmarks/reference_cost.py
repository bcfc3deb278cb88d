"""What the paired reward's reference runs cost during training (target: at most ~30%).

Runs episodes of ``lr_gym/TrainFamilies-v2`` with the paired reward (each task and seed
served ``repeat`` = 4 times, so a reference run, computed on the first of them, serves
4 episodes; one env, one torch thread; references in memory). Actions are drawn from
N(0, 0.2), the untrained v2 policy's spread. The cost is the process CPU time spent in
reference runs (:attr:`lr_gym.reference.ReferenceCache.compute_cpu_s`) over the rest of
the loop: both measured in the same loop, interleaved, so a machine whose load drifts
blurs them alike (two loops timed one after the other, paired against absolute reward,
differed by +-30% between rounds on the loaded 2-core machine). The table also gives
the decisions (control intervals) the episodes and the references trained, and the CPU
time of one decision in each.

Usage: python benchmarks/reference_cost.py [--episodes 32] [--repeats 2]
Writes benchmarks/results/reference_cost.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)

ENV = "lr_gym/TrainFamilies-v2"


def cpu_seconds(reward: str, episodes: int, seed: int = 0) -> dict[str, Any]:
    """CPU seconds of ``episodes`` episodes of :data:`ENV` under ``reward``.

    Also the CPU seconds, runs and decisions of the reference runs among them.
    """
    import gymnasium as gym
    import torch

    import lr_gym  # noqa: F401 - registers the ids
    from lr_gym import reference

    torch.set_num_threads(1)
    os.environ.pop(reference.CACHE_ENV, None)  # no folder: every reference is computed here
    reference.CACHE.clear()
    env = gym.make(ENV, reward=reward, torch_threads=1)
    rng = np.random.default_rng(seed)
    steps, t0 = 0, time.process_time()
    for n in range(episodes):
        env.reset(seed=seed if n == 0 else None)
        done = False
        while not done:
            a = np.clip(rng.normal(0.0, 0.2, size=1), -1, 1).astype(np.float32)
            _, _, terminated, truncated, _ = env.step(a)
            done, steps = terminated or truncated, steps + 1
    env.close()
    return {"cpu_s": time.process_time() - t0, "decisions": steps,
            "reference_cpu_s": reference.CACHE.compute_cpu_s,
            "reference_runs": reference.CACHE.misses,
            "reference_decisions": sum(r.decisions for r in reference.CACHE.runs())}


def main() -> int:
    """Runs the benchmark, prints a table and writes the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=32,
                   help="Episodes per loop (a multiple of the env's repeat, 4).")
    p.add_argument("--repeats", type=int, default=2,
                   help="Timed rounds (the median cost is reported).")
    add_benchmark_arguments(p, "benchmarks/results/reference_cost.json")
    args = parse_benchmark_args(p)
    rounds = []
    for _ in range(args.repeats):
        r = cpu_seconds("paired", args.episodes)
        rest = r["cpu_s"] - r["reference_cpu_s"]
        rounds.append({**r, "cost": r["reference_cpu_s"] / rest,
                       "episode_ms_per_decision": 1e3 * rest / r["decisions"],
                       "reference_ms_per_decision": 1e3 * r["reference_cpu_s"]
                       / max(r["reference_decisions"], 1)})
    cost = statistics.median(r["cost"] for r in rounds)
    table = ["| round | loop CPU s | in references | episode decisions | reference runs | "
             "reference decisions | ms per decision: episode / reference | cost |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {i} | {r['cpu_s']:.1f} | {r['reference_cpu_s']:.1f} | {r['decisions']} | "
              f"{r['reference_runs']} | {r['reference_decisions']} | "
              f"{r['episode_ms_per_decision']:.1f} / {r['reference_ms_per_decision']:.1f} | "
              f"{100 * r['cost']:.0f}% |" for i, r in enumerate(rounds)]
    table.append(f"\nThe paired reward's reference runs add {100 * cost:.0f}% to the CPU time "
                 f"of {args.episodes} episodes of {ENV} (median of {args.repeats} rounds, "
                 "measured in one run; each task and seed serves 4 episodes, so one reference "
                 "run serves 4 episodes).")
    print("\n".join(table))
    out, _ = write_results(args.output, {"meta": meta(), "env": ENV,
                                         "episodes": args.episodes, "rounds": rounds,
                                         "median_cost": cost}, "\n".join(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
