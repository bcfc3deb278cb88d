"""Env overhead: N env steps vs the same work in a plain PyTorch loop, in one run.

Both sides train the same task's model from the same initialisation on the same
batches for the same number of optimizer steps, set the LR every step (the plain
loop with a torch ``LambdaLR``), and run the same validation pass after every
``steps_per_action`` steps. The env side additionally measures the gradient norm,
computes features and rewards, checks for divergence, and runs under its pinned torch
settings (one thread, deterministic CPU kernels: :mod:`lr_gym.reproducibility`); a
second env side observes the v2 features, whose step-size signals probe gradients.
Repeats alternate the sides; ratios of medians are reported. The last column is the
cost of the deterministic kernels alone: the plain loop with them on over off.

Usage:
    python benchmarks/env_overhead.py [--env lr_gym/Digits-CNN-v1 ...] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import lr_gym
from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)
from lr_gym.features import V2_FEATURES
from lr_gym.reproducibility import pinned
from lr_gym.schedules import schedule_factor
from lr_gym.tasks.base import iterate_batches


def time_env(env_id: str, seed: int, **env_kwargs) -> float:
    env = gym.make(env_id, disable_env_checker=True, eval_test=False, **env_kwargs)
    env.reset(seed=seed)
    action = np.zeros(1, np.float32)
    t0 = time.perf_counter()
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(action)
        done = term or trunc
    elapsed = time.perf_counter() - t0
    env.close()
    return elapsed


def time_env_v2_features(env_id: str, seed: int) -> float:
    """The env observing the v2 features: the gradient probes of the step-size signals."""
    return time_env(env_id, seed, features=V2_FEATURES)


def time_deterministic_loop(env_id: str, seed: int) -> float:
    """The plain loop with torch's deterministic algorithms on."""
    with pinned(None, deterministic=True):
        return time_plain_loop(env_id, seed)


def time_plain_loop(env_id: str, seed: int) -> float:
    """What a user would write by hand for the same run."""
    task = lr_gym.get_task(env_id)
    data = task.data_fn()
    torch.manual_seed(seed)
    model = task.model_fn()
    opt = task.build_optimizer(model)
    total, k = task.total_steps, task.steps_per_action
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: schedule_factor("cosine", s, total)
    )
    gen = torch.Generator().manual_seed(seed)
    device = torch.device("cpu")
    batches = iterate_batches(data.train, task.batch_size, generator=gen, drop_last=True)
    t0 = time.perf_counter()
    for step in range(total):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iterate_batches(data.train, task.batch_size, generator=gen, drop_last=True)
            batch = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = task.loss_fn(model, batch)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % k == 0:
            model.eval()
            with torch.no_grad():
                task.eval_fn(model, data.val, task, device)
            model.train()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=["lr_gym/Digits-CNN-v1", "lr_gym/Digits-MLP-v1",
                                                 "lr_gym/Waves-Conv1D-v1", "lr_gym/Seq-GRU-v1"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: least noise)")
    add_benchmark_arguments(p, "benchmarks/results/env_overhead.json")
    args = parse_benchmark_args(p)
    torch.set_num_threads(args.threads)

    rows = []
    for env_id in args.env:
        task = lr_gym.get_task(env_id)
        sides = [time_env, time_env_v2_features, time_plain_loop, time_deterministic_loop]
        for fn in sides:  # warm-up: data loading, allocator, the deterministic flag's import
            fn(env_id, 0)
        times: dict[str, list[float]] = {fn.__name__: [] for fn in sides}
        for r in range(args.repeats):
            for fn in sides if r % 2 == 0 else sides[::-1]:
                times[fn.__name__].append(fn(env_id, r))
        env_med, v2_med, plain_med, det_med = (statistics.median(times[fn.__name__])
                                               for fn in sides)
        rows.append({
            "env_id": env_id,
            "optimizer_steps": task.total_steps,
            "env_steps": -(-task.total_steps // task.steps_per_action),
            "env_s": env_med,
            "env_v2_s": v2_med,
            "plain_s": plain_med,
            "ratio": env_med / plain_med,
            "v2_ratio": v2_med / plain_med,
            "deterministic_ratio": det_med / plain_med,
        })

    table = ["| env | optimizer steps | env steps | env (s, median) | plain loop (s, median) "
             "| env / plain | env with v2 features / plain | deterministic kernels / plain |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['env_id']} | {r['optimizer_steps']} | {r['env_steps']} | {r['env_s']:.3f} "
              f"| {r['plain_s']:.3f} | {r['ratio']:.3f} | {r['v2_ratio']:.3f} "
              f"| {r['deterministic_ratio']:.3f} |" for r in rows]
    print("\n".join(table))
    out, _ = write_results(args.output, {"meta": meta(repeats=args.repeats), "rows": rows},
                           "\n".join(table))
    print(f"\nWrote {out}")


if __name__ == "__main__":
    main()
