"""LR sensitivity: set any lr0, get a good run? Every method at lr0 x0.01 .. x100.

Runs every env of a split (``--split test`` reports, ``--split dev`` is for choices) at
each lr0 scale in :data:`SCALES` (the task's ``lr0`` times the scale), on ``--seeds``
paired seeds, for every method of :data:`METHODS` untuned (AlgoPerf's self-tuning
track: each method derives its LR from the ``lr0`` it is given, as a user would run it)
and for the learned controllers (``--agent``, pooled; ``--agent-guard`` adds them with
the guard; ``--agent-zero`` adds each one's own action 0, its LR rule with the policy
left out: static for ``lr_gym/task-base``, Prodigy at a constant lr of 1 for
``lr_gym/default``, so the gap to it is what the policy adds). Prodigy and
D-Adaptation ignore ``lr0`` (their ``lr`` is 1.0), so one run per seed serves every
scale.

With ``--events``, the envs also run at x1 with an event in every episode (a batch-size
change, label noise or a data-subset switch at a random time: :mod:`lr_gym.events`),
where the learned controllers face static and their own average-LR replay: an
open-loop schedule cannot anticipate an event, a controller that reacts can.

Scores: per env, every run's final test metric (a diverged run scores 0) is divided by
the best mean any method reached on that env at any scale, so 1.0 is the best result on
the task. A method's **area** is the mean of that normalised score over envs, scales and
seeds (the area under its sensitivity curve), with rliable's stratified-bootstrap 95% CI
(tasks: env x scale). Per scale, the probability that the learned controller beats each
method (rliable's probability of improvement, pooled over envs), with its CI.

Writes ``<results>/<split>/``: ``table.md`` (the summary README quotes),
``results.json``, ``sensitivity.png`` (test metric against the scale, a panel per env)
``runs.jsonl`` (every episode; a rerun resumes from it, not committed) and
``controllers/`` (each agent's file, named by its content, so that a controller saved
again at the same path gets runs of its own).

Usage:
    python benchmarks/lr_sensitivity.py --split dev --agent RUN [RUN ...] [--seeds 0 1 2 3 4]
    python benchmarks/lr_sensitivity.py --split test --agent pretrained --events
    python benchmarks/lr_sensitivity.py --split dev --agent pretrained --agent-zero \
        --methods static prodigy --results benchmarks/results/zero_action
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

SCALES = (0.01, 0.1, 1.0, 10.0, 100.0)
"""lr0 scales: the task's lr0 times these."""
METHODS = ("static", "warmup_cosine", "plateau", "hypergradient", "gala", "prodigy",
           "dadaptation", "schedulefree", "static_guard")
"""The baselines, by :data:`agents.baselines.BASELINES` name."""
LR_FREE = ("prodigy", "dadaptation")
"""Methods that ignore lr0: one run per seed serves every scale."""
LEARNED, LEARNED_GUARD, REPLAY = "learned", "learned+guard", "avg_lr_replay"
ZERO = "zero_action"
"""The learned controllers' own LR rule with every action 0 (``--agent-zero``)."""
SPLIT_ENVS = {
    "test": ("lr_gym/Waves-Conv1D-v1", "lr_gym/Waves-Conv1D-Adam-v1", "lr_gym/Seq-GRU-v1"),
    "dev": ("lr_gym/Digits-CNN-v1", "lr_gym/Digits-CNN-Adam-v1", "lr_gym/Spirals-ResMLP-v1",
            "lr_gym/Spirals-ResMLP-Adam-v1"),
}
"""Each split's envs at their reference lr0 (its LowLR/HighLR variants are the same tasks
at another lr0, which the scales cover)."""
EVENTS = "events"
BANDS = (LEARNED, "static")
"""The methods the plot draws with CI bands (all of them would hide the lines)."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One episode: a method on an env at an lr0 scale, from a seed.

    Attributes:
        env_id: The env id.
        method: A baseline name, :data:`LEARNED`, :data:`LEARNED_GUARD`, :data:`ZERO` or
            :data:`REPLAY`.
        scale: The lr0 scale.
        seed: The episode seed.
        agent: The learned agent's controller file (learned methods, its zero action and
            the replay).
        condition: ``"lr0"`` (the sensitivity sweep) or :data:`EVENTS`.
        replay: The learned agent's runs the replay follows (the replay only).
    """

    env_id: str
    method: str
    scale: float
    seed: int
    agent: str | None = None
    condition: str = "lr0"
    replay: tuple[dict, ...] = ()

    def key(self) -> str:
        """The run's key in ``runs.jsonl``."""
        return json.dumps([self.env_id, self.method, self.scale, self.seed, self.agent or "",
                           self.condition])


def run_job(job: Job) -> dict[str, Any]:
    """Runs one episode; returns its record."""
    import torch

    import lr_gym
    from agents.baselines import make_baseline
    from agents.controller import PolicyController
    from agents.rollout import EpisodeResult, run_episode

    torch.set_num_threads(1)
    task = lr_gym.task_for(job.env_id)
    if job.method not in LR_FREE:
        task = dataclasses.replace(task, lr=task.lr * job.scale)
    env_kwargs: dict[str, Any] = {"device": "cpu", "torch_threads": 1}
    if job.condition == EVENTS:
        env_kwargs["event_prob"] = 1.0
    if job.method in (LEARNED, LEARNED_GUARD):
        controller = PolicyController.load(job.agent, name=job.method)
        env_kwargs["guard"] = job.method == LEARNED_GUARD
    elif job.method == ZERO:
        controller = PolicyController.load(job.agent).zero_action(ZERO)
    elif job.method == REPLAY:
        controller = make_baseline(REPLAY, results=[EpisodeResult.from_dict(r)
                                                    for r in job.replay],
                                   controller_kwargs=PolicyController.load(job.agent).env_kwargs())
    else:
        controller = make_baseline(job.method)
    res = run_episode(job.env_id, controller, job.seed, env_kwargs=env_kwargs, task=task)
    score = 0.0 if res.diverged else float(res.test.get(res.metric, math.nan))
    return {**res.to_dict(), "key": job.key(), "method": job.method, "scale": job.scale,
            "agent": job.agent, "condition": job.condition, "score": score}


def plan(envs: Sequence[str], seeds: Sequence[int], agents: Sequence[str], guard: bool,
         events: bool, methods: Sequence[str] = METHODS, zero: bool = False) -> list[Job]:
    """Every episode of the sweep but the replays (which follow the learned runs)."""
    jobs = []
    for env in envs:
        for seed in seeds:
            for scale in SCALES:
                for m in methods:
                    if m not in LR_FREE or scale == 1.0:
                        jobs.append(Job(env, m, scale, seed))
                for a in agents:
                    jobs.append(Job(env, LEARNED, scale, seed, a))
                    if guard:
                        jobs.append(Job(env, LEARNED_GUARD, scale, seed, a))
                    if zero:
                        jobs.append(Job(env, ZERO, scale, seed, a))
            if events:
                jobs += [Job(env, "static", 1.0, seed, condition=EVENTS)]
                jobs += [Job(env, LEARNED, 1.0, seed, a, condition=EVENTS) for a in agents]
    return jobs


def replay_jobs(runs: dict[str, dict], envs: Sequence[str], seeds: Sequence[int],
                agents: Sequence[str]) -> list[Job]:
    """The average-LR replays of each agent under events, once its runs are in."""
    jobs = []
    for env in envs:
        for a in agents:
            own = tuple(r for r in runs.values() if r["method"] == LEARNED and r["agent"] == a
                        and r["env_id"] == env and r["condition"] == EVENTS)
            jobs += [Job(env, REPLAY, 1.0, s, a, EVENTS, own) for s in seeds]
    return jobs


def _scores(runs: Sequence[dict], method: str, env: str, scale: float,
            condition: str = "lr0") -> list[float]:
    if method in LR_FREE:
        scale = 1.0
    return [r["score"] for r in runs if r["method"] == method and r["env_id"] == env
            and r["scale"] == scale and r["condition"] == condition]


def t_interval(x: Sequence[float], level: float = 0.95) -> list[float]:
    """The ``level`` t-interval of the mean of ``x`` (one run: the point itself)."""
    from scipy import stats

    mean = float(np.mean(x))
    if len(x) < 2:
        return [mean, mean]
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * stats.sem(x))
    return [mean - half, mean + half]


def summarize(runs: Sequence[dict], envs: Sequence[str], n_boot: int = 2000) -> dict[str, Any]:
    """Normalised scores, areas, per-scale means and probabilities of improvement."""
    from agents.stats import mean_ci, probability_of_improvement_ci

    methods = [m for m in (LEARNED, LEARNED_GUARD, ZERO, *METHODS)
               if any(r["method"] == m and r["condition"] == "lr0" for r in runs)]
    means = {(m, e, s): float(np.mean(_scores(runs, m, e, s))) for m in methods for e in envs
             for s in SCALES if _scores(runs, m, e, s)}
    best = {e: max(v for (_, e2, _), v in means.items() if e2 == e) for e in envs}
    norm = {m: {f"{e}|x{s:g}": [x / best[e] for x in _scores(runs, m, e, s)]
                for e in envs for s in SCALES} for m in methods}
    out: dict[str, Any] = {"best": best, "methods": {}, "improvement": {}}
    for m in methods:
        point, low, high = mean_ci(norm[m], n_boot=n_boot)
        per_scale = {f"x{s:g}": float(np.mean([x for e in envs for x in norm[m][f"{e}|x{s:g}"]]))
                     for s in SCALES}
        per_env = {e: {f"x{s:g}": means.get((m, e, s), math.nan) for s in SCALES} for e in envs}
        # The plot's bands: each point's t-interval over its seeds (a bootstrap per
        # point would cost seconds each, and the bands only guide the eye).
        per_env_ci = {e: {f"x{s:g}": t_interval(_scores(runs, m, e, s))
                          for s in SCALES if _scores(runs, m, e, s)} for e in envs}
        out["methods"][m] = {"area": point, "low": low, "high": high, "per_scale": per_scale,
                             "per_env": per_env, "per_env_ci": per_env_ci,
                             "diverged": sum(r["diverged"] for r in runs if r["method"] == m
                                             and r["condition"] == "lr0")}

    def improvement(learned: str, others: Sequence[str]) -> dict[str, dict[str, list]]:
        return {o: {f"x{s:g}": probability_of_improvement_ci(
            {e: _scores(runs, learned, e, s) for e in envs},
            {e: _scores(runs, o, e, s) for e in envs}, n_boot=n_boot) for s in SCALES}
            for o in others}

    if LEARNED in methods:
        out["improvement"] = improvement(LEARNED, [m for m in methods if m != LEARNED])
    if LEARNED_GUARD in methods:
        # The guarded controller (the deployment default) against the fixed rules, alone
        # and with the same guard.
        out["improvement_guard"] = improvement(
            LEARNED_GUARD, [m for m in ("static", "static_guard") if m in methods])
    event_runs = [r for r in runs if r["condition"] == EVENTS]
    if event_runs:
        out["events"] = {}
        for other in ("static", REPLAY):
            x = {e: _scores(runs, LEARNED, e, 1.0, EVENTS) for e in envs}
            y = {e: _scores(runs, other, e, 1.0, EVENTS) for e in envs}
            if all(x.values()) and all(y.values()):
                out["events"][other] = probability_of_improvement_ci(x, y, n_boot=n_boot)
    return out


def table(summary: dict[str, Any], split: str, seeds: int) -> str:
    """The markdown summary."""
    from agents.stats import markdown_table

    ms = summary["methods"]
    order = sorted(ms, key=lambda m: -ms[m]["area"])
    rows = [[f"**{m}**" if m.startswith(LEARNED) else m,
             f"{ms[m]['area']:.3f} [{ms[m]['low']:.3f}, {ms[m]['high']:.3f}]",
             *[f"{ms[m]['per_scale'][f'x{s:g}']:.3f}" for s in SCALES], ms[m]["diverged"]]
            for m in order]
    lines = [f"LR sensitivity on the {split} envs ({', '.join(summary['best'])}), {seeds} "
             "paired seeds, every method untuned at lr0 times the scale. Score: final test "
             "metric over the best mean any method reached on the env (diverged: 0); area: "
             "its mean over envs, scales and seeds [95% CI].", "",
             markdown_table(["method", "area [95% CI]", *[f"x{s:g}" for s in SCALES],
                             "diverged runs"], rows), ""]
    for key, learned in (("improvement", LEARNED), ("improvement_guard", LEARNED_GUARD)):
        if imp := summary.get(key):
            rows = [[m, *[f"{imp[m][f'x{s:g}'][0]:.2f} [{imp[m][f'x{s:g}'][1]:.2f}, "
                          f"{imp[m][f'x{s:g}'][2]:.2f}]" for s in SCALES]] for m in imp]
            lines += [f"P({learned} > method) per lr0 scale [95% CI], pooled over envs:", "",
                      markdown_table(["method", *[f"x{s:g}" for s in SCALES]], rows), ""]
    if summary.get("events"):
        ev = summary["events"]
        lines += ["With an event in every episode (x1): " + "; ".join(
            f"P(learned > {m}) = {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for m, v in ev.items())
            + ".", ""]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path, split: str) -> None:
    """Mean test metric against the lr0 scale, one panel per env, with 95% CI bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(summary["best"])
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.6), sharey=False)
    for ax, env in zip(np.atleast_1d(axes), envs, strict=True):
        for m, info in summary["methods"].items():
            y = [info["per_env"][env][f"x{s:g}"] for s in SCALES]
            style = {"lw": 2.6, "color": "k"} if m == LEARNED else {"lw": 1.2}
            (line,) = ax.plot(SCALES, y, marker="o", ms=3, label=m, **style)
            ci = info.get("per_env_ci", {}).get(env, {})
            if ci and m in BANDS:
                lo, hi = zip(*(ci.get(f"x{s:g}", (math.nan, math.nan)) for s in SCALES),
                             strict=True)
                ax.fill_between(SCALES, lo, hi, color=line.get_color(),
                                alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.set_title(env.split("/")[-1], fontsize=9)
        ax.set_xlabel("lr0 scale")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("mean final test metric")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"LR sensitivity ({split} envs); bands: 95% t-intervals over seeds "
                 f"({', '.join(BANDS)})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_all(jobs: Sequence[Job], runs: dict[str, dict], store: Path, workers: int) -> None:
    todo = [j for j in jobs if j.key() not in runs]
    if not todo:
        return
    print(f"{len(todo)} episodes to run ({len(runs)} done).", file=sys.stderr)
    # One worker runs in this process: no pool to start, and tasks registered here count.
    with (ProcessPoolExecutor(workers) if workers > 1 else nullcontext()) as pool, \
            store.open("a") as f:
        rows = (as_completed([pool.submit(run_job, j) for j in todo]) if pool
                else map(run_job, todo))
        for n, row in enumerate(rows, 1):
            row = row.result() if pool else row
            runs[row["key"]] = row
            f.write(json.dumps(row) + "\n")
            f.flush()
            if n % 25 == 0 or n == len(todo):
                print(f"[{n}/{len(todo)}]", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=tuple(SPLIT_ENVS), default="dev")
    p.add_argument("--env", nargs="+", default=None,
                   help="Env ids instead of the split's (results under <results>/custom).")
    p.add_argument("--agent", nargs="*", default=[],
                   help="Learned controllers (controller files, run folders, 'pretrained'); "
                        "pooled into one 'learned' method.")
    p.add_argument("--agent-guard", action="store_true",
                   help="Also run the learned controllers with the guard.")
    p.add_argument("--agent-zero", action="store_true",
                   help="Also run the learned controllers' own action 0 (their LR rule without "
                        "the policy: static, or Prodigy at lr 1 for an agent over Prodigy).")
    p.add_argument("--events", action="store_true",
                   help="Also run x1 with an event in every episode (learned vs static and "
                        "its own average-LR replay).")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="Baselines to run (default: all of them).")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=2,
                   help="Episode processes (1: run in this process).")
    p.add_argument("--n-boot", type=int, default=2000,
                   help="Bootstrap samples of the CIs (the point estimates do not depend on "
                        "it; rliable's probability of improvement takes seconds per 1,000).")
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/lr_sensitivity"))
    args = p.parse_args(argv)
    from agents.controller import ControllerFileError, load_controller_file, pin_controller
    from agents.results import load_jsonl, meta
    from agents.runs import write_text_atomic

    policies = {}
    for a in args.agent:
        try:
            policies[a] = load_controller_file(a)
        except (FileNotFoundError, ControllerFileError) as err:
            print(f"error: --agent {a}: {err}", file=sys.stderr)
            return 2
    if args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}.", file=sys.stderr)
        return 2
    if (args.agent_guard or args.agent_zero or args.events) and not policies:
        print("error: --agent-guard, --agent-zero and --events need --agent.", file=sys.stderr)
        return 2
    envs = tuple(args.env) if args.env else SPLIT_ENVS[args.split]
    split = "custom" if args.env else args.split
    out = args.results / split
    out.mkdir(parents=True, exist_ok=True)
    store = out / "runs.jsonl"
    runs = load_jsonl(store, "key", repair=True)
    # Runs are keyed by the agent's path: a copy named by content gives a controller
    # re-shipped or retrained at the same path runs of its own.
    agents = [pin_controller(a, out / "controllers") for a in policies]
    t0 = time.perf_counter()
    jobs = plan(envs, args.seeds, agents, args.agent_guard, args.events, args.methods,
                args.agent_zero)
    _run_all(jobs, runs, store, args.workers)
    if args.events:
        _run_all(replay_jobs(runs, envs, args.seeds, agents), runs, store, args.workers)
    wanted = {j.key() for j in jobs}
    wanted |= {j.key() for j in replay_jobs(runs, envs, args.seeds, agents)} if args.events \
        else set()
    mine = [r for r in runs.values() if r["key"] in wanted]
    summary = summarize(mine, envs, args.n_boot)
    from agents.controller import agent_label
    from lr_gym.reproducibility import settings

    summary["meta"] = {"split": split, "envs": list(envs), "seeds": args.seeds,
                       "scales": list(SCALES), "agents": [agent_label(a) for a in policies],
                       "agent_sha256": [p.sha256 for p in policies.values()],
                       "episodes": len(mine), "seconds_this_invocation":
                           time.perf_counter() - t0, **meta(), "reproducibility": settings(1)}
    write_text_atomic(out / "results.json", json.dumps(summary, indent=1, default=float))
    text = table(summary, split, len(args.seeds))
    write_text_atomic(out / "table.md", text)
    plot(summary, out / "sensitivity.png", split)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
