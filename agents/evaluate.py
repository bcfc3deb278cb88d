"""Evaluate a trained controller against baselines (``evaluate_agent.py`` / ``lr-gym-evaluate``).

Every controller runs on every env for every seed, with paired seeds: the same seed
gives every controller the same model initialisation and data order. Prints a
markdown table and writes ``results.json`` and ``curves.png`` to the output folder.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="evaluate_agent.py",
        description="Compare a trained LR controller with baselines on lr_gym envs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--agent", default=None,
                   help="Run folder (or model.zip) of a trained agent; default: the latest run "
                        "under --log-folder; 'none' evaluates baselines only.")
    p.add_argument("--env", nargs="+", default=None,
                   help="Env ids (default: the held-out embedded task, lr_gym/Digits-CNN-v0).")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="Episode seeds, shared by every controller (paired).")
    p.add_argument("--baselines", nargs="*", default=["static", "cosine"],
                   help="Baseline controllers to compare with.")
    p.add_argument("-f", "--log-folder", default="logs", help="Where to look for the latest run.")
    p.add_argument("-o", "--output", default=None,
                   help="Output folder (default: <agent run>/eval, or eval/ without an agent).")
    p.add_argument("--device", default="cpu",
                   help="Device of the primary models (cpu, cuda, auto).")
    p.add_argument("--gym-packages", nargs="*", default=[],
                   help="Modules to import first (they register your own tasks).")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True,
                   help="Write curves.png.")
    return p


def _mean_std(xs: Sequence[float]) -> str:
    arr = np.asarray([x for x in xs if math.isfinite(x)], dtype=float)
    if not arr.size:
        return "n/a"
    return f"{arr.mean():.4f} ± {arr.std():.4f}" if arr.size > 1 else f"{arr[0]:.4f}"


def summarize(results: list[dict[str, Any]], reference: str | None) -> list[dict[str, Any]]:
    """One row per (env, controller) with means over seeds.

    The target of an env is the median over seeds of the best validation metric of
    the ``reference`` controller (AlgoPerf-style); steps to target count a miss as inf.
    """
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_key[(r["env_id"], r["controller"])].append(r)
    targets = {}
    for (env_id, ctrl), runs in by_key.items():
        if ctrl == reference:
            targets[env_id] = float(np.median([max(r["val_metric"]) for r in runs]))
    from lr_gym.metrics import steps_to_target

    rows = []
    for (env_id, ctrl), runs in by_key.items():
        target = targets.get(env_id, float("nan"))
        to_target = [
            steps_to_target(r["steps"], r["val_metric"], target) if math.isfinite(target)
            else float("nan")
            for r in runs
        ]
        metric = runs[0]["metric"]
        rows.append({
            "env_id": env_id,
            "controller": ctrl,
            "metric": metric,
            "n_seeds": len(runs),
            "final_val": [r["final_val_metric"] for r in runs],
            "test": [r["test"].get(metric, float("nan")) for r in runs],
            "convergence_step": [r["convergence_step"] for r in runs],
            "target": target,
            "steps_to_target": to_target,
            "diverged": sum(bool(r["diverged"]) for r in runs),
        })
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The comparison table."""
    lines = [
        "| env | controller | final val metric | test metric | steps to 95% of final "
        "| steps to target (median) | diverged |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        med = float(np.median(row["steps_to_target"]))
        lines.append(
            f"| {row['env_id']} | {row['controller']} | {_mean_std(row['final_val'])} | "
            f"{_mean_std(row['test'])} | {_mean_std(row['convergence_step'])} | "
            f"{'miss' if math.isinf(med) else f'{med:.0f}'} (target {row['target']:.4f}) | "
            f"{row['diverged']}/{row['n_seeds']} |"
        )
    return "\n".join(lines)


def plot_curves(results: list[dict[str, Any]], path: Path) -> None:
    """Validation metric and LR against optimizer steps, mean over seeds per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_ids = sorted({r["env_id"] for r in results})
    fig, axes = plt.subplots(len(env_ids), 2, figsize=(11, 3.6 * len(env_ids)), squeeze=False)
    for row, env_id in enumerate(env_ids):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in results:
            if r["env_id"] == env_id:
                groups[r["controller"]].append(r)
        for ctrl, runs in groups.items():
            n = min(len(r["steps"]) for r in runs)
            steps = runs[0]["steps"][:n]
            metric = np.array([r["val_metric"][:n] for r in runs])
            lrs = np.array([r["lrs"][:n] for r in runs])
            (line,) = axes[row, 0].plot(steps, metric.mean(0), label=ctrl)
            axes[row, 0].fill_between(steps, metric.min(0), metric.max(0), alpha=0.15,
                                      color=line.get_color())
            axes[row, 1].plot(steps, lrs.mean(0), label=ctrl, color=line.get_color())
        axes[row, 0].set(title=f"{env_id}: validation {runs[0]['metric']}", xlabel="optimizer step")
        axes[row, 1].set(title=f"{env_id}: learning rate", xlabel="optimizer step", yscale="log")
        axes[row, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    import importlib

    import lr_gym
    from agents.base import make_baseline
    from agents.ppo import PPOController, latest_run
    from agents.rollout import run_episode

    for name in args.gym_packages:
        importlib.import_module(name)
    env_ids = args.env or list(lr_gym.DEFAULT_EVAL_IDS)
    import gymnasium as gym

    for eid in env_ids:
        if eid not in gym.registry:
            print(f"error: unknown env id {eid!r}. Registered lr_gym ids: "
                  f"{', '.join(lr_gym.lr_gym_env_ids())}.", file=sys.stderr)
            return 2
    try:
        controllers = [make_baseline(b) for b in args.baselines]
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    run_dir = None
    if (args.agent or "").lower() != "none":
        try:
            run_dir = Path(args.agent) if args.agent else latest_run(args.log_folder)
            controllers.insert(0, PPOController.load(run_dir, device="cpu"))
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if not controllers:
        print("error: nothing to evaluate: give --agent or --baselines.", file=sys.stderr)
        return 2
    if run_dir is not None and run_dir.suffix == ".zip":
        run_dir = run_dir.parent
    out = Path(args.output) if args.output else (run_dir / "eval" if run_dir else Path("eval"))
    out.mkdir(parents=True, exist_ok=True)

    results = []
    t0 = time.perf_counter()
    total = len(env_ids) * len(controllers) * len(args.seeds)
    from tqdm import tqdm

    with tqdm(total=total, desc="episodes", file=sys.stderr) as bar:
        for env_id in env_ids:
            for ctrl in controllers:
                for seed in args.seeds:
                    res = run_episode(env_id, ctrl, seed, env_kwargs={"device": args.device})
                    results.append(res.to_dict())
                    bar.update()
    reference = "static" if "static" in args.baselines else (
        args.baselines[0] if args.baselines else None)
    rows = summarize(results, reference)
    table = markdown_table(rows)
    print(table)
    payload = {
        "agent": str(run_dir) if run_dir else None,
        "envs": env_ids,
        "seeds": list(args.seeds),
        "controllers": [c.name for c in controllers],
        "reference": reference,
        "seconds": time.perf_counter() - t0,
        "summary": rows,
        "runs": results,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=float))
    (out / "table.md").write_text(table + "\n")
    if args.plot:
        plot_curves(results, out / "curves.png")
    print(f"\nWrote {out / 'results.json'}, {out / 'table.md'}"
          + (f" and {out / 'curves.png'}" if args.plot else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
