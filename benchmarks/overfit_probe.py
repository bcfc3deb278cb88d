"""Does a family's validation metric fall late in the run? Peaks and drops at a constant LR.

For each sampled family (``lr_gym.splits``), runs the tasks drawn from seeds
``0..samples-1`` for one episode each at a constant LR (action 0; ``lr0`` at the
family's reference LR, or from task distribution v2's scale with ``--lr-scale v2``; the
rest of the run as sampled), records the validation metric and
loss and the training loss after every decision, and reports how often the run
overfits late:

* the metric falls: its moving average (3 decisions) peaks at or before ``--late`` of
  the run, and the mean of the last 3 decisions is at least ``--drop`` below that peak;
* the validation loss rises while the training loss falls: the mean of its last 3
  decisions is at least 10% above its smoothed minimum (reached at or before
  ``--late``), and the training loss ends below its value at that minimum.

Diverged runs never count. Rows split the samples by data variant: small data
(training fraction <= 0.3) or noisy labels (label noise >= 0.2), against the rest.

Usage:
    python benchmarks/overfit_probe.py [--samples 20] [--families tabular-mlp ...]
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
from lr_gym.tasks.families.base import (
    LR_SCALE_V2,
    Range,
    TaskConfig,
    get_family,
    sampled_family_names,
)

SMALL_DATA = 0.3
"""Training fractions at or below this count as small data."""
NOISY = 0.2
"""Label noise (or target-noise std) at or above this counts as noisy."""


def variant(config: TaskConfig) -> str:
    """``"small/noisy"`` or ``"other"``: the data variant a configuration trains on."""
    p = config.params
    noise = p.get("label_noise", p.get("target_noise", 0.0))
    small = p.get("train_fraction", 1.0) <= SMALL_DATA
    return "small/noisy" if small or noise >= NOISY else "other"


def run_sample(family: str, seed: int, lr_scale: str) -> dict:
    """One constant-LR episode of the task sampled from ``seed``: its validation curves."""
    fam = get_family(family)
    fam = fam.with_lr_scale(LR_SCALE_V2 if lr_scale == "v2" else Range(1.0, 1.0))
    config = fam.sample_config(np.random.default_rng(seed))
    task = fam.task(config)
    env = LRControlEnv(task, schedule="constant", eval_test=False)
    t0 = time.process_time()
    _, info = env.reset(seed=seed)
    metric, loss, train = [info["val_metric"]], [info["val_loss"]], [info["train_loss"]]
    action = np.zeros(1, np.float32)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(action)
        done = term or trunc
        metric.append(info["val_metric"])
        loss.append(info["val_loss"])
        train.append(info["train_loss"])
    env.close()
    return {"task": task.name, "variant": variant(config), "diverged": bool(info["diverged"]),
            "seconds": time.process_time() - t0, "val_metric": metric, "val_loss": loss,
            "train_loss": train}


WINDOW = 3
"""Decisions averaged to smooth a curve (and to read its end)."""


def overfits(run: dict, drop: float, late: float) -> dict:
    """Peak, drop and whether the metric (or the loss) turned late, for one run."""
    m = np.array(run["val_metric"], float)
    lo = np.array(run["val_loss"], float)
    tr = np.array(run["train_loss"], float)
    if run["diverged"] or len(m) < 2 * WINDOW or not np.isfinite(lo).all():
        return {"peak_at": None, "drop": None, "metric_falls": False, "loss_rises": False}
    n = len(m) - 1
    kernel = np.ones(WINDOW) / WINDOW
    sm, sl = np.convolve(m, kernel, "valid"), np.convolve(lo, kernel, "valid")
    i, j = int(sm.argmax()), int(sl.argmin())
    peak_at, low_at = (i + WINDOW - 1) / n, (j + WINDOW - 1) / n
    fall = float(sm[i] - m[-WINDOW:].mean())
    # The training loss is NaN before the first step; the minimum's own decision has one.
    tr_then = tr[j + WINDOW - 1] if np.isfinite(tr[j + WINDOW - 1]) else np.nanmax(tr)
    loss_up = lo[-WINDOW:].mean() >= 1.1 * sl[j] and low_at <= late and tr[-1] < tr_then
    return {"peak_at": peak_at, "drop": fall,
            "metric_falls": bool(fall >= drop and peak_at <= late),
            "loss_rises": bool(loss_up)}


def per_run(run: dict, drop: float, late: float) -> dict:
    """What the results file keeps of a run: its verdicts and last values, not its curves."""
    return {**{k: run[k] for k in ("task", "variant", "diverged", "seconds")},
            **overfits(run, drop, late), "decisions": len(run["val_metric"]) - 1,
            "final_val_metric": run["val_metric"][-1], "best_val_metric": max(run["val_metric"]),
            "final_val_loss": run["val_loss"][-1], "min_val_loss": min(run["val_loss"])}


def summarize(family: str, runs: list[dict], drop: float, late: float) -> list[dict]:
    """One row per data variant (and one for all)."""
    rows = []
    for name in ("small/noisy", "other", "all"):
        sel = [r for r in runs if name == "all" or r["variant"] == name]
        if not sel:
            continue
        res = [overfits(r, drop, late) for r in sel]
        falls = [x for x in res if x["metric_falls"]]
        rows.append({
            "family": family, "split": split_of_family(family), "variant": name,
            "samples": len(sel),
            "diverged_frac": float(np.mean([r["diverged"] for r in sel])),
            "metric_falls_frac": float(np.mean([x["metric_falls"] for x in res])),
            "loss_rises_frac": float(np.mean([x["loss_rises"] for x in res])),
            "median_drop_when_falls": float(np.median([x["drop"] for x in falls]))
            if falls else None,
            "median_peak_at_when_falls": float(np.median([x["peak_at"] for x in falls]))
            if falls else None,
        })
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    lines = ["| family | split | data | n | diverged | metric falls late | val loss rises, "
             "train loss falls | median drop | median peak at t/T |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['split']} | {r['variant']} | {r['samples']} "
              f"| {r['diverged_frac']:.0%} | {r['metric_falls_frac']:.0%} "
              f"| {r['loss_rises_frac']:.0%} | {f(r['median_drop_when_falls'])} "
              f"| {f(r['median_peak_at_when_falls'])} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Runs the probe and writes its table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=20, help="tasks per family (seeds 0..n-1)")
    p.add_argument("--families", nargs="+", default=sampled_family_names())
    p.add_argument("--lr-scale", choices=("v2", "ref"), default="ref",
                   help="lr0 from task distribution v2's scale, or at the reference LR")
    p.add_argument("--drop", type=float, default=0.03,
                   help="a fall of the metric from its peak to the end that counts")
    p.add_argument("--late", type=float, default=0.8,
                   help="the peak must come at or before this fraction of the run")
    add_benchmark_arguments(p, "benchmarks/results/overfit_probe.json")
    args = parse_benchmark_args(p, argv)
    torch.set_num_threads(1)

    rows, runs = [], {}
    for family in args.families:
        curves = [run_sample(family, s, args.lr_scale) for s in range(args.samples)]
        rows += summarize(family, curves, args.drop, args.late)
        runs[family] = [per_run(r, args.drop, args.late) for r in curves]
        print(table(rows[-3:]).split("\n", 2)[-1], flush=True)
    md = table(rows)
    print("\n" + md)
    info = meta(drop=args.drop, late=args.late, lr_scale=args.lr_scale)
    note = (f"\nOne constant-LR episode per sample (seeds 0-{args.samples - 1}; lr0 "
            f"{'from the v2 scale' if args.lr_scale == 'v2' else 'at the reference LR'}), "
            f"one torch thread. Metric falls late: the mean of the last {WINDOW} validation "
            f"metrics is at least {args.drop:g} below the peak of its {WINDOW}-decision "
            f"moving average, which came at or before {args.late:g} of the run. Val loss "
            f"rises: the last {WINDOW} end at least 10% above its smoothed minimum (at or "
            f"before {args.late:g}) while the training loss ends below its value there. "
            "Diverged runs never count; drop and peak are medians over the runs whose "
            f"metric falls. small/noisy: training fraction <= {SMALL_DATA:g} or label "
            f"(target) noise >= {NOISY:g}.\n")
    out, _ = write_results(args.output, {"meta": info, "rows": rows, "runs": runs},
                           md + "\n" + note)
    print(f"\nWrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
