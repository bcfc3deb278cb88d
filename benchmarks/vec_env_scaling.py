"""Env steps per second of DummyVecEnv, SubprocVecEnv and RayVecEnv, in one run.

For each number of envs, the three vectorized envs are built side by side and warmed
up (one episode, which also loads the data); then each steps ``--episodes`` whole
episodes per env with seeded random actions, ``--repeats`` times, taking turns so
that a change in the machine's load hits all three alike. The throughput is env steps
(all envs together) per wall second, the median of the windows. RayVecEnv runs
on a local Ray started here, whose logical CPU count is the largest ``--n-envs``, so
its actors (one CPU each) share the cores exactly as the subprocesses do. The default
task is Digits-MLP stretched to ~1 s episodes (900 optimizer steps, 20 decisions):
the cost per decision is then that of a real episode, not of the step's messaging.

Usage:
    python benchmarks/vec_env_scaling.py [--n-envs 1 2 4] [--episodes 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)


class Stepper:
    """One vectorized env kept open, warmed up, and timed in windows of whole episodes."""

    def __init__(self, kind: str, env_id: str, env_kwargs: dict, n_envs: int,
                 packages: Sequence[str] = ()) -> None:
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        from agents.training.envs import env_factory
        from agents.training.ray_vec_env import RayVecEnv

        cls = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv, "ray": RayVecEnv}[kind]
        self.n_envs = n_envs
        self.venv = make_vec_env(env_factory([env_id], env_kwargs, packages,
                                             worker=kind != "dummy"),
                                 n_envs=n_envs, seed=0, vec_env_cls=cls)
        self.decisions = -(-env_kwargs["total_steps"] // env_kwargs["steps_per_action"])
        self.rng = np.random.default_rng(0)
        self.venv.reset()
        self._run(self.decisions)  # warm-up: the first episode loads the data

    def _run(self, steps: int) -> None:
        for _ in range(steps):
            self.venv.step(self.rng.uniform(-1, 1, (self.n_envs, 1)).astype(np.float32))

    def round_trip_ms(self, calls: int = 300) -> float:
        """Median milliseconds of one call to every env that does no work (``get_attr``)."""
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            self.venv.get_attr("render_mode")
            times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times)

    def throughput(self, episodes: int) -> float:
        """Env steps (all envs together) per wall second over ``episodes`` per env."""
        t0 = time.perf_counter()
        self._run(self.decisions * episodes)
        return self.n_envs * self.decisions * episodes / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="lr_gym/Digits-MLP-v1")
    p.add_argument("--total-steps", type=int, default=900,
                   help="Optimizer steps per episode (Digits-MLP: ~1 s on an idle core).")
    p.add_argument("--steps-per-action", type=int, default=45)
    p.add_argument("--n-envs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--episodes", type=int, default=2,
                   help="Episodes per env in each timed window.")
    p.add_argument("--repeats", type=int, default=3,
                   help="Timed windows per kind, interleaved across kinds; the median counts.")
    p.add_argument("--note", default="", help="A line about the machine, kept with the table.")
    add_benchmark_arguments(p, "benchmarks/results/vec_env_scaling.json")
    args = parse_benchmark_args(p)

    import ray
    import torch

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from agents.common.ray_cluster import LOCAL_SYSTEM_CONFIG

    # The workers' priority as train_agent.py's local Ray sets it: the subprocesses'.
    ray.init(num_cpus=max(args.n_envs), include_dashboard=False, log_to_driver=False,
             _system_config=LOCAL_SYSTEM_CONFIG)
    torch.set_num_threads(1)
    env_kwargs = {"total_steps": args.total_steps, "steps_per_action": args.steps_per_action,
                  "eval_test": False}
    kinds = ["dummy", "subproc", "ray"]
    rows = []
    try:
        for n in args.n_envs:
            steppers = {k: Stepper(k, args.env, env_kwargs, n, args.gym_packages)
                        for k in kinds}
            times: dict[str, list[float]] = {k: [] for k in kinds}
            try:
                for r in range(args.repeats):
                    # Rotate the order so that drifting load favours no kind.
                    for kind in kinds[r % 3:] + kinds[:r % 3]:
                        times[kind].append(steppers[kind].throughput(args.episodes))
                round_trip = {k: steppers[k].round_trip_ms() for k in kinds}
            finally:
                for stepper in steppers.values():
                    stepper.venv.close()
            row = {"n_envs": n, **{k: statistics.median(v) for k, v in times.items()},
                   "runs": times, "round_trip_ms": round_trip}
            row["ray_vs_subproc"] = row["ray"] / row["subproc"]
            rows.append(row)
            print(f"{n} env(s): " + ", ".join(f"{k} {row[k]:.1f}" for k in kinds), flush=True)
    finally:
        ray.shutdown()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = ["| envs | DummyVecEnv steps/s | SubprocVecEnv steps/s | RayVecEnv steps/s "
             "| Ray / Subproc | call round trip, Subproc / Ray (ms) |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['n_envs']} | {r['dummy']:.1f} | {r['subproc']:.1f} | {r['ray']:.1f} "
              f"| {r['ray_vs_subproc']:.2f} | {r['round_trip_ms']['subproc']:.2f} / "
              f"{r['round_trip_ms']['ray']:.2f} |" for r in rows]
    text = "\n".join(table) + (
        f"\n\n{args.env} with {args.total_steps} optimizer steps in "
        f"{args.total_steps // args.steps_per_action} decisions per episode, random actions, "
        f"median of {args.repeats} windows of {args.episodes} episodes per env, interleaved "
        f"across the three kinds, after a warm-up episode; one torch thread per env. The "
        f"round trip is the median of 300 calls to every env that do no work (get_attr). "
        f"{os.cpu_count()} CPUs, load average {load_start:.1f} at the start and {load:.1f} "
        "at the end."
        + (f" {args.note}" if args.note else "") + "\n")
    print("\n" + text)
    info = meta(ray=ray.__version__, load_average_start=load_start,
                **{k: v for k, v in vars(args).items() if k != "output"})
    out, _ = write_results(args.output, {"meta": info, "rows": rows}, text)
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
