"""What the paired reward's reference runs cost during training (target: at most ~30%).

Runs the same episodes of ``lr_gym/TrainFamilies-v2`` (the same task draws and seeds,
each task and seed served ``repeat`` = 4 times, one env, one torch thread) twice: with
the paired reward (a reference run per task and seed, computed on the first of its
episodes, in memory) and with the absolute reward (no reference). Actions are drawn
from N(0, 0.2), the untrained v2 policy's spread. The cost is the ratio of the two
loops' CPU time: process CPU time, not wall time, so a loaded machine blurs it less.

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

from agents.results import add_output, meta, write_results

ENV = "lr_gym/TrainFamilies-v2"


def cpu_seconds(reward: str, episodes: int, seed: int = 0) -> dict[str, Any]:
    """CPU seconds of ``episodes`` episodes of :data:`ENV` under ``reward``."""
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
            "reference_runs": reference.CACHE.misses}


def main() -> int:
    """Runs the benchmark, prints a table and writes the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=32,
                   help="Episodes per loop (a multiple of the env's repeat, 4).")
    p.add_argument("--repeats", type=int, default=2,
                   help="Timed rounds of both loops (the median ratio is reported).")
    add_output(p, "benchmarks/results/reference_cost.json")
    args = p.parse_args()
    rounds = []
    for _ in range(args.repeats):
        paired, absolute = cpu_seconds("paired", args.episodes), cpu_seconds(
            "val_loss", args.episodes)
        assert paired["decisions"] == absolute["decisions"], "the loops ran other episodes"
        rounds.append({"paired": paired, "absolute": absolute,
                       "ratio": paired["cpu_s"] / absolute["cpu_s"]})
    ratio = statistics.median(r["ratio"] for r in rounds)
    table = ["| round | paired reward CPU s | absolute reward CPU s | decisions | "
             "reference runs | ratio |", "|---|---|---|---|---|---|"]
    table += [f"| {i} | {r['paired']['cpu_s']:.1f} | {r['absolute']['cpu_s']:.1f} | "
              f"{r['paired']['decisions']} | {r['paired']['reference_runs']} | "
              f"{r['ratio']:.3f} |" for i, r in enumerate(rounds)]
    table.append(f"\nThe paired reward's reference runs add {100 * (ratio - 1):.0f}% to the "
                 f"CPU time of {args.episodes} episodes of {ENV} (median of "
                 f"{args.repeats} rounds, measured in one run; each task and seed serves 4 "
                 "episodes, so one reference run serves 4 episodes).")
    print("\n".join(table))
    out, _ = write_results(args.output, {"meta": meta(), "env": ENV,
                                         "episodes": args.episodes, "rounds": rounds,
                                         "median_ratio": ratio}, "\n".join(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
