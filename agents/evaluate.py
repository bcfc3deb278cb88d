"""Evaluate a trained controller against tuned baselines (``evaluate_agent.py``).

The protocol, AlgoPerf-style:

1. **Fair tuning.** Every baseline with an LR gets the same declared budget of
   quasi-random ``lr0`` trials per task (:mod:`agents.tuning`), scored on the
   validation metric of a tuning seed that is not an evaluation seed; results are cached
   and reused. The learned controller gets no per-task tuning.
2. **Paired runs.** Every controller runs on every task for every seed; the same seed
   gives every controller the same model initialisation and data order.
3. **Targets.** Per task, the median over seeds of the best validation metric of the
   tuned reference (``warmup_cosine``, AlgoPerf's baseline shape). Time to target is
   the first step (and wall second) at which the validation metric reaches it; a miss
   counts as infinite.
4. **Scores.** Final validation and test metrics; convergence time (steps and epochs to
   95% of the final metric); time to target and its ratio to the fastest method; the
   performance-profile score (integral up to r_max = 4, in [0, 1]); interquartile mean
   of the test metric with stratified-bootstrap 95% intervals; probability of
   improvement of the learned controller over each baseline.

Every finished run is appended to ``runs.jsonl`` at once: a killed evaluation resumes
and skips what is done. Outputs: ``report.md``, ``results.json``, ``curves.png`` and
``profiles.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = "warmup_cosine"
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from agents.tuning import DEFAULT_BUDGET

    p = argparse.ArgumentParser(
        prog="evaluate_agent.py",
        description="Compare a trained LR controller with tuned baselines on lr_gym envs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--agent", default=None,
                   help="Run folder (or model.zip) of a trained agent; default: the latest run "
                        "under --log-folder; 'none' evaluates baselines only.")
    p.add_argument("--env", nargs="+", default=None,
                   help="Env ids (default: the held-out embedded tasks).")
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS),
                   help="Episode seeds, shared by every controller (paired).")
    p.add_argument("--baselines", nargs="*", default=None,
                   help="Baselines to compare with (default: all; avg_lr_replay needs an agent).")
    p.add_argument("--tuning-budget", type=int, default=DEFAULT_BUDGET,
                   help="lr0 trials per tunable baseline and task; 0 runs them untuned.")
    p.add_argument("--tuning-cache", default=None,
                   help="JSON cache of tuning results (default: <log-folder>/tuning_cache.json).")
    p.add_argument("-f", "--log-folder", default="logs", help="Where to look for the latest run.")
    p.add_argument("-o", "--output", default=None,
                   help="Output folder (default: <agent run>/eval, or eval/ without an agent).")
    p.add_argument("--device", default="cpu",
                   help="Device of the primary models (cpu, cuda, auto).")
    p.add_argument("--gym-packages", nargs="*", default=[],
                   help="Modules to import first (they register your own tasks).")
    p.add_argument("--n-boot", type=int, default=2000, help="Bootstrap resamples.")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="Episodes run in parallel processes (one torch thread each); 1 runs "
                        "everything in this process.")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True,
                   help="Write curves.png and profiles.png.")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="Show progress bars.")
    return p


# ----------------------------------------------------------------------- results log
def load_runs(path: Path) -> list[dict[str, Any]]:
    """Finished runs from ``runs.jsonl``; a line cut off by a kill is dropped with a warning."""
    if not path.is_file():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        # A kill mid-write left a partial last line: cut it off, or the next append
        # would be glued to it.
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
        warnings.warn(f"{path}: dropped an incomplete last line (interrupted write).",
                      stacklevel=2)
    runs = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{i + 1} is incomplete (interrupted write); rerunning it.",
                          stacklevel=2)
    return runs


def append_run(path: Path, run: dict[str, Any]) -> None:
    """Appends one finished run as a JSON line and flushes it to disk."""
    with open(path, "a") as f:
        f.write(json.dumps(run, default=float) + "\n")
        f.flush()


# --------------------------------------------------------------------------- scoring
def _first_reaching(xs: Sequence[float], values: Sequence[float], target: float) -> float:
    from lr_gym.metrics import steps_to_target

    return steps_to_target(xs, values, target)


def summarize(runs: list[dict[str, Any]], controllers: Sequence[str], *, n_boot: int = 2000,
              learned: str | None = None) -> dict[str, Any]:
    """Per-task rows and aggregate scores (see the module docstring)."""
    from agents import stats

    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by[(r["env_id"], r["controller"])].append(r)
    envs = sorted({r["env_id"] for r in runs})
    present = [c for c in controllers if any((e, c) in by for e in envs)]
    reference = REFERENCE if REFERENCE in present else (present[-1] if present else None)

    targets: dict[str, float] = {}
    for env_id in envs:
        ref_runs = by.get((env_id, reference), [])
        if ref_runs:
            best = [max(r["val_metric"]) if not r["diverged"] else float("nan") for r in ref_runs]
            targets[env_id] = stats.algoperf_target(best)

    rows = []
    times: dict[str, dict[str, float]] = {c: {} for c in present}
    for env_id in envs:
        target = targets.get(env_id, float("nan"))
        for ctrl in present:
            rs = sorted(by.get((env_id, ctrl), []), key=lambda r: r["seed"])
            if not rs:
                continue
            metric = rs[0]["metric"]
            to_target = [_first_reaching(r["steps"], r["val_metric"], target) for r in rs]
            wall_to_target = [_first_reaching(r["wall"], r["val_metric"], target) for r in rs]
            # A method's time on a task: median over seeds (inf when most seeds miss).
            times[ctrl][env_id] = float(np.median(to_target))
            rows.append({
                "env_id": env_id,
                "controller": ctrl,
                "metric": metric,
                "lr0": rs[0].get("lr0"),
                "seeds": [r["seed"] for r in rs],
                "final_val": [r["final_val_metric"] for r in rs],
                "test": [r["test"].get(metric, float("nan")) for r in rs],
                "convergence_step": [r["convergence_step"] for r in rs],
                "convergence_epoch": [r["convergence_epoch"] for r in rs],
                "target": target,
                "steps_to_target": to_target,
                "wall_to_target": wall_to_target,
                "diverged": sum(bool(r["diverged"]) for r in rs),
            })
    complete = {c: t for c, t in times.items() if len(t) == len(envs)}
    ratios = stats.performance_ratios(complete) if complete and envs else {}
    for row in rows:
        row["ratio_to_fastest"] = ratios.get(row["controller"], {}).get(row["env_id"])
    scores = stats.profile_score(ratios) if ratios else {}

    aggregate = []
    test_scores = {
        c: {row["env_id"]: np.nan_to_num(np.asarray(row["test"], float), nan=0.0)
            for row in rows if row["controller"] == c}
        for c in present
    }
    for c in present:
        point, low, high = stats.stratified_bootstrap_ci(test_scores[c], n_boot=n_boot)
        entry = {"controller": c, "iqm_test": point, "iqm_low": low, "iqm_high": high,
                 "profile_score": scores.get(c)}
        if learned and learned in test_scores and c != learned:
            x, y = test_scores[learned], test_scores[c]
            common = {k: x[k] for k in x if k in y}
            if common and all(len(x[k]) == len(y[k]) for k in common):
                entry["p_improvement"] = stats.probability_of_improvement(
                    common, {k: y[k] for k in common}, paired=True)
        aggregate.append(entry)
    return {"reference": reference, "targets": targets, "rows": rows,
            "aggregate": aggregate, "ratios": ratios}


def _ms(xs: Sequence[float], fmt: str = ".4f") -> str:
    arr = np.asarray([x for x in xs if x is not None and math.isfinite(x)], float)
    if not arr.size:
        return "n/a"
    if arr.size == 1:
        return format(arr[0], fmt)
    return f"{format(arr.mean(), fmt)} ± {format(arr.std(ddof=1), fmt)}"


def _med(xs: Sequence[float], fmt: str = ".0f") -> str:
    m = float(np.median(xs))
    return "miss" if math.isinf(m) else ("n/a" if math.isnan(m) else format(m, fmt))


def report_markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The markdown report: per-task table, aggregate table, protocol notes."""
    lines = [
        "# lr_gym evaluation report",
        "",
        f"Agent: `{meta['agent']}`. Seeds: {meta['seeds']} (paired). "
        f"Tuning: {meta['tuning_budget']} quasi-random lr0 trials per tunable baseline and "
        f"task on seed {meta['tuning_seed']}, validation metric only. Reference for targets: "
        f"`{summary['reference']}` (median over seeds of its best validation metric).",
        "",
        "## Per task",
        "",
        "| env | controller | lr0 | final val | test | steps to 95% of final | epochs to 95% "
        "| steps to target | s to target | ratio to fastest | diverged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        ratio = r.get("ratio_to_fastest")
        lines.append(
            f"| {r['env_id']} | {r['controller']} | "
            f"{'—' if r['lr0'] is None else format(r['lr0'], '.3g')} | {_ms(r['final_val'])} | "
            f"{_ms(r['test'])} | {_ms(r['convergence_step'], '.0f')} | "
            f"{_ms(r['convergence_epoch'], '.2f')} | "
            f"{_med(r['steps_to_target'])} | {_med(r['wall_to_target'], '.1f')} | "
            f"{'—' if ratio is None else ('inf' if math.isinf(ratio) else f'{ratio:.2f}')} | "
            f"{r['diverged']}/{len(r['seeds'])} |"
        )
    lines += [
        "",
        "Targets: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["targets"].items()),
        "",
        "## Aggregate",
        "",
        "| controller | IQM test metric [95% CI] | profile score (r_max 4) "
        "| P(learned > this) |",
        "|---|---|---|---|",
    ]
    for a in summary["aggregate"]:
        ps = a.get("profile_score")
        poi = a.get("p_improvement")
        lines.append(
            f"| {a['controller']} | {a['iqm_test']:.4f} [{a['iqm_low']:.4f}, {a['iqm_high']:.4f}] "
            f"| {'—' if ps is None else f'{ps:.3f}'} | {'—' if poi is None else f'{poi:.2f}'} |"
        )
    lines += [
        "",
        "Steps/seconds to target: median over seeds (a miss is infinite). Ratio: time to "
        "target over the fastest method's on that task. IQM: interquartile mean over tasks x "
        "seeds, stratified bootstrap over seeds within tasks. P(learned > this): probability "
        "that the learned controller's test metric beats this controller's on the same seed.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- plots
def plot_curves(runs: list[dict[str, Any]], path: Path) -> None:
    """Validation metric (mean and min-max band over seeds) and LR against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env_id"] for r in runs})
    fig, axes = plt.subplots(len(envs), 2, figsize=(12, 3.8 * len(envs)), squeeze=False)
    for row, env_id in enumerate(envs):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in runs:
            if r["env_id"] == env_id:
                groups[r["controller"]].append(r)
        for ctrl, rs in groups.items():
            n = min(len(r["steps"]) for r in rs)
            steps = rs[0]["steps"][:n]
            metric = np.array([r["val_metric"][:n] for r in rs])
            lrs = np.array([r["lrs"][:n] for r in rs])
            (line,) = axes[row, 0].plot(steps, metric.mean(0), label=ctrl, lw=1.4)
            axes[row, 0].fill_between(steps, metric.min(0), metric.max(0), alpha=0.12,
                                      color=line.get_color())
            axes[row, 1].plot(steps, np.maximum(lrs.mean(0), 1e-12), label=ctrl,
                              color=line.get_color(), lw=1.2)
        metric_name = next(iter(groups.values()))[0]["metric"]
        axes[row, 0].set(title=f"{env_id}: validation {metric_name}", xlabel="optimizer step")
        axes[row, 1].set(title=f"{env_id}: learning rate", xlabel="optimizer step", yscale="log")
        axes[row, 0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_profiles(ratios: dict[str, dict[str, float]], path: Path, r_max: float = 4.0) -> None:
    """AlgoPerf performance profiles: fraction of tasks within ratio tau of the fastest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.stats import performance_profile

    taus = np.linspace(1.0, r_max, 301)
    profiles = performance_profile(ratios, taus)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method, rho in profiles.items():
        ax.step(taus, rho, where="post", label=method)
    ax.set(xlabel="tau (time to target / fastest)", ylabel="fraction of tasks",
           title="Performance profiles", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -------------------------------------------------------------------------- workers
@functools.cache
def _load_agent(run_dir: str):  # noqa: ANN202 - PPOController, loaded once per process
    from agents.ppo import PPOController

    return PPOController.load(run_dir, device="cpu")


def _episode_job(spec: dict[str, Any]) -> dict[str, Any]:
    """One paired run, built from a picklable spec (controllers are built in the worker)."""
    from agents.baselines import make_baseline
    from agents.rollout import EpisodeResult, run_episode

    name = spec["name"]
    if name == "ppo":
        ctrl = _load_agent(spec["agent"])
    elif name == "avg_lr_replay":
        ctrl = make_baseline(name, results=[EpisodeResult.from_dict(r) for r in spec["replay"]])
    else:
        ctrl = make_baseline(name)
        if spec["lr"] is not None:
            ctrl = ctrl.with_lr(spec["lr"])
    res = run_episode(spec["env_id"], ctrl, spec["seed"], env_kwargs=spec["env_kwargs"])
    out = res.to_dict()
    out["lr0"] = spec["lr"]  # None: untuned
    return out


def _tune_job(env_id: str, name: str, budget: int, seeds: list[int],
              env_kwargs: dict[str, Any], cache: str) -> float:
    from agents.baselines import make_baseline
    from agents.tuning import tune_lr

    return tune_lr(env_id, make_baseline(name).with_lr, name=name, budget=budget,
                   eval_seeds=seeds, env_kwargs=env_kwargs, cache=cache).best_lr


def _init_worker(packages: Sequence[str], parent: int) -> None:
    import importlib
    import threading

    import torch

    import lr_gym  # noqa: F401 - registers the ids

    torch.set_num_threads(1)  # one core per worker: small models scale by processes
    for name in packages:
        importlib.import_module(name)

    def exit_with_parent() -> None:
        # A killed evaluation must not leave workers training on: nothing else ends them.
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except OSError:
                os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


class _InProcess:
    """``Executor``-like stand-in for ``--workers 1``: runs each job at submit time."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn, *args, **kwargs) -> Future:  # noqa: ANN001
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # surfaced by fut.result(), as an executor would
            fut.set_exception(err)
        return fut


def _pool(workers: int, packages: Sequence[str]):  # noqa: ANN202
    if workers <= 1:
        return _InProcess()
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(list(packages), os.getpid()))


# ------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    import importlib

    import gymnasium as gym
    from tqdm import tqdm

    import lr_gym
    from agents.baselines import BASELINES, make_baseline
    from agents.ppo import PPOController, latest_run
    from agents.tuning import TUNING_SEED

    for name in args.gym_packages:
        importlib.import_module(name)
    env_ids = args.env or list(lr_gym.DEFAULT_EVAL_IDS)
    for eid in env_ids:
        if eid not in gym.registry:
            print(f"error: unknown env id {eid!r}. Registered lr_gym ids: "
                  f"{', '.join(lr_gym.lr_gym_env_ids())}.", file=sys.stderr)
            return 2
    names = list(BASELINES) if args.baselines is None else list(args.baselines)
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        print(f"error: Unknown baseline {unknown[0]!r}; choose from {sorted(BASELINES)}.",
              file=sys.stderr)
        return 2
    if TUNING_SEED in args.seeds:
        print(f"error: seed {TUNING_SEED} is reserved for tuning; pick other --seeds.",
              file=sys.stderr)
        return 2

    agent = run_dir = None
    if (args.agent or "").lower() != "none":
        try:
            run_dir = Path(args.agent) if args.agent else latest_run(args.log_folder)
            agent = PPOController.load(run_dir, device="cpu")
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if run_dir.suffix == ".zip":
            run_dir = run_dir.parent
    if agent is None and "avg_lr_replay" in names:
        names.remove("avg_lr_replay")  # it replays the learned controller's LRs
        if args.baselines is not None:
            print("note: avg_lr_replay needs an agent; skipped.", file=sys.stderr)
    if agent is None and not names:
        print("error: nothing to evaluate: give --agent or --baselines.", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else (run_dir / "eval" if run_dir else Path("eval"))
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.tuning_cache or Path(args.log_folder) / "tuning_cache.json")
    cache.parent.mkdir(parents=True, exist_ok=True)
    env_kwargs = {"device": args.device}
    log = out / "runs.jsonl"
    runs = load_runs(log)
    done = {(r["env_id"], r["controller"], r["seed"]) for r in runs}
    if done:
        print(f"Resuming: {len(done)} finished runs found in {log}.", file=sys.stderr)
    t0 = time.perf_counter()

    # 1. Fair tuning (cached), one (env, baseline) pair per job.
    tuned: dict[tuple[str, str], float | None] = {}
    tunable = [b for b in names if b != "avg_lr_replay" and make_baseline(b).tunable]
    with _pool(args.workers, args.gym_packages) as pool:
        if args.tuning_budget > 0 and tunable:
            jobs = {
                pool.submit(_tune_job, env_id, b, args.tuning_budget, list(args.seeds),
                            env_kwargs, str(cache)): (env_id, b)
                for env_id in env_ids for b in tunable
            }
            for fut in tqdm(as_completed(jobs), total=len(jobs), desc="tuning",
                            disable=not args.progress, file=sys.stderr):
                tuned[jobs[fut]] = fut.result()

        # 2. Paired runs, one episode per job, each appended to runs.jsonl as it ends.
        # The replay control follows the learned controller, so it runs second.
        order = (["ppo"] if agent else []) + names
        bar = tqdm(total=len(env_ids) * len(order) * len(args.seeds), initial=len(done),
                   desc="episodes", disable=not args.progress, file=sys.stderr)
        for phase in ([n for n in order if n != "avg_lr_replay"], ["avg_lr_replay"]):
            jobs = {}
            for env_id in env_ids:
                for name in phase:
                    if name not in order:
                        continue
                    replay = ([r for r in runs if r["env_id"] == env_id
                               and r["controller"] == "ppo"] if name == "avg_lr_replay" else None)
                    for seed in args.seeds:
                        if (env_id, name, seed) in done:
                            continue
                        spec = {"env_id": env_id, "name": name, "seed": seed,
                                "lr": tuned.get((env_id, name)), "agent": str(run_dir),
                                "replay": replay, "env_kwargs": env_kwargs}
                        jobs[pool.submit(_episode_job, spec)] = spec
            for fut in as_completed(jobs):
                res = fut.result()
                append_run(log, res)
                runs.append(res)
                done.add((res["env_id"], res["controller"], res["seed"]))
                bar.update()
        bar.close()

    # 3. Scores, report, plots.
    runs = [r for r in runs if r["env_id"] in env_ids and r["seed"] in args.seeds]
    summary = summarize(runs, order, n_boot=args.n_boot,
                        learned=agent.name if agent else None)
    meta = {"agent": str(run_dir) if run_dir else None, "envs": env_ids, "seeds": args.seeds,
            "tuning_budget": args.tuning_budget, "tuning_seed": TUNING_SEED,
            "tuned_lr0": {f"{e}|{b}": v for (e, b), v in tuned.items()},
            "seconds": time.perf_counter() - t0}
    report = report_markdown(summary, meta)
    (out / "report.md").write_text(report)
    (out / "results.json").write_text(json.dumps({"meta": meta, **summary}, indent=1,
                                                 default=float))
    if args.plot:
        plot_curves(runs, out / "curves.png")
        if summary["ratios"]:
            plot_profiles(summary["ratios"], out / "profiles.png")
    print(report)
    print(f"Wrote {out}/report.md, results.json, runs.jsonl"
          + (", curves.png, profiles.png" if args.plot else "")
          + f" in {meta['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
