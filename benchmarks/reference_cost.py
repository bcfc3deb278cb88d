"""What the paired reward's reference runs cost during training (target: at most ~30%).

Runs the same episodes of ``lr_gym/TrainFamilies-v2`` (the same task draws and seeds,
each task and seed served ``repeat`` = 4 times, one env, one torch thread) twice: with
the paired reward (a reference run per task and seed, computed on the first of its
episodes, in memory) and with the absolute reward (no reference). Actions are drawn
from N(0, 0.2), the untrained v2 policy's spread. The cost is the ratio of the two
loops' CPU time: process CPU time, not wall time, so a loaded machine blurs it less.

Why it costs what it does: the table also gives the decisions (control intervals) the
episodes and the reference runs trained, and the CPU time of one decision in each. A
reference is a whole static run, while the policy's episodes end early when its
multiplier drifts into a divergence.

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
            "reference_runs": reference.CACHE.misses,
            "reference_decisions": sum(r.decisions for r in reference.CACHE.runs())}


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
        ref_ms = (1e3 * (paired["cpu_s"] - absolute["cpu_s"])
                  / max(paired["reference_decisions"], 1))
        rounds.append({"paired": paired, "absolute": absolute,
                       "ratio": paired["cpu_s"] / absolute["cpu_s"],
                       "episode_ms_per_decision": 1e3 * absolute["cpu_s"] / absolute["decisions"],
                       "reference_ms_per_decision": ref_ms})
    ratio = statistics.median(r["ratio"] for r in rounds)
    table = ["| round | paired reward CPU s | absolute reward CPU s | episode decisions | "
             "reference runs | reference decisions | ms per decision: episode / reference "
             "| ratio |", "|---|---|---|---|---|---|---|---|"]
    table += [f"| {i} | {r['paired']['cpu_s']:.1f} | {r['absolute']['cpu_s']:.1f} | "
              f"{r['paired']['decisions']} | {r['paired']['reference_runs']} | "
              f"{r['paired']['reference_decisions']} | "
              f"{r['episode_ms_per_decision']:.1f} / {r['reference_ms_per_decision']:.1f} | "
              f"{r['ratio']:.3f} |" for i, r in enumerate(rounds)]
    table.append(f"\nThe paired reward's reference runs add {100 * (ratio - 1):.0f}% to the "
                 f"CPU time of {args.episodes} episodes of {ENV} (median of "
                 f"{args.repeats} rounds, measured in one run; each task and seed serves 4 "
                 "episodes, so one reference run serves 4 episodes).")
    last = rounds[-1]
    per_episode = last["paired"]["decisions"] / args.episodes
    per_reference = last["paired"]["reference_decisions"] / max(last["paired"]["reference_runs"], 1)
    table.append(f"A reference run trained {per_reference:.1f} decisions, an episode "
                 f"{per_episode:.1f} (last round).")
    print("\n".join(table))
    out, _ = write_results(args.output, {"meta": meta(), "env": ENV,
                                         "episodes": args.episodes, "rounds": rounds,
                                         "median_ratio": ratio}, "\n".join(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
