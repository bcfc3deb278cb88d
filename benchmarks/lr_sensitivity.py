"""LR sensitivity: set any lr0, get a good run? Every method at lr0 x0.01 .. x100.

Runs every env of a split (``--split test`` reports, ``--split dev`` is for choices; the
split's reference envs, :attr:`lr_gym.splits.Split.reference_ids`) at each lr0 scale in
:data:`SCALES` (the task's ``lr0`` times the scale), on ``--seeds`` paired seeds, for
every method of :data:`METHODS` untuned (AlgoPerf's self-tuning track: each method
derives its LR from the ``lr0`` it is given, as a user would run it) and for the learned
controllers (``--agent``, pooled; ``--agent-guard`` adds them with the guard;
``--agent-zero`` adds each one's own action 0, its LR rule with the policy left out:
static for ``lr_gym/task-base``, Prodigy at a constant lr of 1 for ``lr_gym/default``).

With an agent, its open-loop controls (:mod:`agents.baselines.open_loop`) run beside it on its own
LR rule: ``replay`` (its mean LR per interval on each env and scale, from its own runs
there), ``learned_schedule`` (its mean LR against progress on the dev families, frozen)
and ``fixed_decay`` (the fixed decay chosen on dev by the rule stated in
docs/protocol.md); ``--no-controls`` leaves them out. What dev fixed comes from
:func:`agents.evaluation.controls.controls_for` (cached in ``--controls-cache``).

A method whose episodes do not depend on lr0 (Prodigy, D-Adaptation, and every method on
a learned controller's LR rule over ``base="prodigy"``) runs once per env and seed and
serves every scale; it enters the area and its CI once per env and seed, not once per
scale (5 copies of one run are not 5 samples).

With ``--events``, the envs also run at x1 with an event in every episode (a batch-size
change, label noise or a data-subset switch at a random time: :mod:`lr_gym.events`),
where the learned controllers face static, their action 0 and their open-loop controls:
an open-loop schedule cannot anticipate an event, a controller that reacts can.

Scores: per env, every run's final test metric (a diverged run scores 0) is divided by
the best mean any method reached on that env at any scale, so 1.0 is the best result on
the task. A method's **area** is the mean of that normalised score over envs, scales and
seeds (the area under its sensitivity curve), with rliable's stratified-bootstrap 95% CI
(tasks: env x scale, or env alone for an lr0-invariant method). Per scale, P(learned >
method): rliable's probability of improvement, the chance that a learned run scores
above a run of the method over all pairs of runs on an env, averaged over envs, with
its CI.

Writes ``<output>/<split>/``: ``table.md`` (the summary README quotes),
``results.json``, ``sensitivity.png`` (test metric against the scale, a panel per env),
``decisions.jsonl.gz`` (every episode's decisions: committed), ``runs.jsonl`` (every
episode; a rerun resumes from it, not committed) and ``controllers/`` (each agent's
file, named by its content, so that a controller saved again at the same path gets runs
of its own).

Usage:
    python benchmarks/lr_sensitivity.py --split dev --agent RUN [RUN ...] [--seeds 0 1 2 3 4]
    python benchmarks/lr_sensitivity.py --split test --agent pretrained --events
    python benchmarks/lr_sensitivity.py --split dev --agent pretrained --agent-zero \
        --methods static prodigy -o benchmarks/results/zero_action
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
LEARNED, LEARNED_GUARD, REPLAY = "learned", "learned+guard", "replay"
ZERO = "zero_action"
"""The learned controllers' own LR rule with every action 0 (``--agent-zero``)."""
FROZEN = ("learned_schedule", "fixed_decay")
"""The open-loop controls that dev fixed (:class:`agents.baselines.open_loop.OpenLoopControls`)."""
AGENT_METHODS = (LEARNED, LEARNED_GUARD, ZERO, REPLAY, *FROZEN)
"""Methods that run on a learned controller's LR rule."""
EVENTS = "events"
EVENT_METHODS = ("static", ZERO, REPLAY, *FROZEN)
"""What the learned controllers face with an event in every episode."""
BANDS = (LEARNED, "static")
"""The methods the plot draws with CI bands (all of them would hide the lines)."""


def lr0_invariant(method: str, base: str = "task") -> bool:
    """Whether the method's episodes ignore lr0: LR-free, or on a rule over Prodigy."""
    return method in LR_FREE or (method in AGENT_METHODS and base == "prodigy")


@dataclasses.dataclass(frozen=True)
class Job:
    """One episode: a method on an env at an lr0 scale, from a seed.

    Attributes:
        env_id: The env id.
        method: A baseline name, :data:`LEARNED`, :data:`LEARNED_GUARD`, :data:`ZERO` or
            :data:`REPLAY`.
        scale: The lr0 scale.
        seed: The episode seed.
        agent: The learned agent's controller file (the methods of
            :data:`AGENT_METHODS`).
        condition: ``"lr0"`` (the sensitivity sweep) or :data:`EVENTS`.
        replay: The learned agent's runs the replay follows (the replay only).
        control: The agent's :class:`~agents.baselines.open_loop.OpenLoopControls` as a dict
            (:data:`FROZEN` only).
        invariant: The episode ignores lr0 (:func:`lr0_invariant`): it runs at x1 and
            serves every scale.
    """

    env_id: str
    method: str
    scale: float
    seed: int
    agent: str | None = None
    condition: str = "lr0"
    replay: tuple[dict, ...] = ()
    control: dict = dataclasses.field(default_factory=dict)
    invariant: bool = False

    def key(self) -> str:
        """The run's key in ``runs.jsonl``."""
        return json.dumps([self.env_id, self.method, self.scale, self.seed, self.agent or "",
                           self.condition])


def run_job(job: Job) -> dict[str, Any]:
    """Runs one episode; returns its record."""
    import torch

    import lr_gym
    from agents.baselines import make_baseline
    from agents.baselines.open_loop import OpenLoopControls
    from agents.controller import PolicyController
    from agents.evaluation.rollout import EpisodeResult, run_episode

    torch.set_num_threads(1)
    task = lr_gym.task_for(job.env_id)
    if not job.invariant:
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
    elif job.method in FROZEN:
        controller = OpenLoopControls.from_dict(job.control).controller(
            job.method, PolicyController.load(job.agent).env_kwargs())
    else:
        controller = make_baseline(job.method)
    res = run_episode(job.env_id, controller, job.seed, env_kwargs=env_kwargs, task=task)
    score = 0.0 if res.diverged else float(res.test.get(res.metric, math.nan))
    return {**res.to_dict(), "key": job.key(), "method": job.method, "scale": job.scale,
            "agent": job.agent, "condition": job.condition, "score": score,
            "invariant": job.invariant}


def plan(envs: Sequence[str], seeds: Sequence[int], agents: Sequence[str], guard: bool,
         events: bool, methods: Sequence[str] = METHODS, zero: bool = False,
         controls: dict[str, dict] | None = None, bases: dict[str, str] | None = None,
         ) -> list[Job]:
    """Every episode of the sweep but the replays (which follow the learned runs).

    Args:
        envs: The env ids.
        seeds: The paired seeds.
        agents: The learned controllers' files.
        guard: Also run them with the guard.
        events: Also run x1 with an event in every episode.
        methods: The baselines.
        zero: Also run each agent's action 0.
        controls: Each agent's open-loop controls (as dicts): runs its frozen ones.
        bases: Each agent's base (``"task"`` unless given); over ``"prodigy"`` its
            methods ignore lr0 and run at x1 only.
    """
    controls, bases = controls or {}, bases or {}
    per_agent = [LEARNED, *([LEARNED_GUARD] if guard else []), *([ZERO] if zero else [])]

    def agent_jobs(env: str, seed: int, a: str, names: Sequence[str], scales: Sequence[float],
                   condition: str = "lr0") -> list[Job]:
        out = []
        for m in names:
            if m in FROZEN and a not in controls:
                continue
            inv = lr0_invariant(m, bases.get(a, "task"))
            out += [Job(env, m, s, seed, a, condition, control=controls.get(a, {}) if m in FROZEN
                        else {}, invariant=inv) for s in scales if not inv or s == 1.0]
        return out

    jobs = []
    for env in envs:
        for seed in seeds:
            for scale in SCALES:
                for m in methods:
                    if not lr0_invariant(m) or scale == 1.0:
                        jobs.append(Job(env, m, scale, seed, invariant=lr0_invariant(m)))
            for a in agents:
                jobs += agent_jobs(env, seed, a, [*per_agent, *FROZEN], SCALES)
            if events:
                jobs.append(Job(env, "static", 1.0, seed, condition=EVENTS))
                for a in agents:
                    jobs += agent_jobs(env, seed, a, [LEARNED, *([ZERO] if zero else []),
                                                      *FROZEN], (1.0,), EVENTS)
    return jobs


def replay_jobs(runs: dict[str, dict], envs: Sequence[str], seeds: Sequence[int],
                agents: Sequence[str], bases: dict[str, str] | None = None,
                events: bool = False) -> list[Job]:
    """Each agent's replays, once its learned runs are in: per env and scale, and with events.

    The replay of an agent over Prodigy ignores lr0, like the agent: x1 only.
    """
    bases = bases or {}
    jobs = []
    for a in agents:
        inv = lr0_invariant(REPLAY, bases.get(a, "task"))
        cells = [(s, "lr0") for s in SCALES if not inv or s == 1.0]
        cells += [(1.0, EVENTS)] if events else []
        for env in envs:
            for scale, cond in cells:
                own = tuple(r for r in runs.values() if r["method"] == LEARNED
                            and r["agent"] == a and r["env_id"] == env
                            and r["scale"] == scale and r["condition"] == cond)
                if own:
                    jobs += [Job(env, REPLAY, scale, s, a, cond, own, invariant=inv)
                             for s in seeds]
    return jobs


def _cell(runs: Sequence[dict], method: str, env: str, scale: float,
          condition: str = "lr0") -> list[dict]:
    """The method's runs on one env and scale (an lr0-invariant method's x1 runs)."""
    return [r for r in runs if r["method"] == method and r["env_id"] == env
            and r["condition"] == condition
            and (r["scale"] == scale or (r.get("invariant") and r["scale"] == 1.0))]


def _scores(runs: Sequence[dict], method: str, env: str, scale: float,
            condition: str = "lr0") -> list[float]:
    """The method's scores on one env and scale."""
    return [r["score"] for r in _cell(runs, method, env, scale, condition)]


def _invariant(runs: Sequence[dict], method: str) -> bool:
    return any(r.get("invariant") for r in runs if r["method"] == method)


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
    from agents.evaluation.stats import collapse_runs, mean_ci, probability_of_improvement_ci

    methods = [m for m in (*AGENT_METHODS, *METHODS)
               if any(r["method"] == m and r["condition"] == "lr0" for r in runs)]
    means = {(m, e, s): float(np.mean(_scores(runs, m, e, s))) for m in methods for e in envs
             for s in SCALES if _scores(runs, m, e, s)}
    best = {e: max(v for (_, e2, _), v in means.items() if e2 == e) for e in envs}
    norm = {m: {f"{e}|x{s:g}": [x / best[e] for x in _scores(runs, m, e, s)]
                for e in envs for s in SCALES} for m in methods}
    out: dict[str, Any] = {"best": best, "methods": {}, "improvement": {}}
    for m in methods:
        invariant = _invariant(runs, m)
        # One run that serves five scales (or two envs that Prodigy makes one task) is
        # one sample in the CI, not five: the point, a mean over all cells, is unchanged.
        cells = {f"{e}|x{s:g}": [{**r, "score": r["score"] / best[e]}
                                 for r in _cell(runs, m, e, s)] for e in envs for s in SCALES}
        tasks, _, weights = collapse_runs(cells)
        point, low, high = mean_ci(tasks, n_boot=n_boot, weights=weights)
        per_scale = {f"x{s:g}": float(np.mean([x for e in envs for x in norm[m][f"{e}|x{s:g}"]]))
                     for s in SCALES}
        per_env = {e: {f"x{s:g}": means.get((m, e, s), math.nan) for s in SCALES} for e in envs}
        # The plot's bands: each point's t-interval over its seeds (a bootstrap per
        # point would cost seconds each, and the bands only guide the eye).
        per_env_ci = {e: {f"x{s:g}": t_interval(_scores(runs, m, e, s))
                          for s in SCALES if _scores(runs, m, e, s)} for e in envs}
        out["methods"][m] = {"area": point, "low": low, "high": high, "per_scale": per_scale,
                             "per_env": per_env, "per_env_ci": per_env_ci,
                             "invariant": invariant,
                             "diverged": sum(r["diverged"] for r in runs if r["method"] == m
                                             and r["condition"] == "lr0")}

    def poi(x: str, y: str, scale: float, condition: str = "lr0") -> list[float]:
        xs, ys, w = collapse_runs({e: _cell(runs, x, e, scale, condition) for e in envs},
                              {e: _cell(runs, y, e, scale, condition) for e in envs})
        return list(probability_of_improvement_ci(xs, ys, n_boot=n_boot, weights=w))

    def improvement(learned: str, others: Sequence[str]) -> dict[str, dict[str, list]]:
        return {o: {f"x{s:g}": poi(learned, o, s) for s in SCALES} for o in others}

    if LEARNED in methods:
        out["improvement"] = improvement(LEARNED, [m for m in methods if m != LEARNED])
    if LEARNED_GUARD in methods:
        # The guarded controller (the deployment default) against the fixed rules, alone
        # and with the same guard.
        out["improvement_guard"] = improvement(
            LEARNED_GUARD, [m for m in ("static", "static_guard") if m in methods])
    if any(r["condition"] == EVENTS for r in runs):
        # With an event in every episode (x1): each method's normalised score (by the
        # best mean under events) and P(learned > it).
        have = [m for m in (LEARNED, *EVENT_METHODS)
                if all(_cell(runs, m, e, 1.0, EVENTS) for e in envs)]
        ev_best = {e: max(float(np.mean(_scores(runs, m, e, 1.0, EVENTS))) for m in have)
                   for e in envs}
        ev: dict[str, Any] = {"scores": {}, "p": {}}
        for m in have:
            tasks, _, w = collapse_runs({e: [{**r, "score": r["score"] / ev_best[e]}
                                         for r in _cell(runs, m, e, 1.0, EVENTS)]
                                     for e in envs})
            ev["scores"][m] = list(mean_ci(tasks, n_boot=n_boot, weights=w))
            if m != LEARNED:
                ev["p"][m] = poi(LEARNED, m, 1.0, EVENTS)
        out["events"] = ev
    return out


def _ci(v: Sequence[float], digits: int = 3) -> str:
    return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"


CONTROL_LEGEND = (
    "Open-loop controls, on the learned controller's own LR rule: `replay` is its own mean "
    "LR per interval on each env and scale (from its runs there: a diagnostic, not a "
    "schedule known in advance), `learned_schedule` its mean LR against progress on the "
    "dev families, frozen, `fixed_decay` the fixed decay chosen on dev "
    "(docs/protocol.md), `zero_action` its rule with every action 0.")


def table(summary: dict[str, Any], split: str, seeds: int) -> str:
    """The markdown summary."""
    from agents.evaluation.stats import markdown_table

    ms = summary["methods"]
    order = sorted(ms, key=lambda m: -ms[m]["area"])
    bold = (LEARNED, LEARNED_GUARD)
    rows = [[(f"**{m}**" if m in bold else m) + (" †" if ms[m]["invariant"] else ""),
             _ci((ms[m]["area"], ms[m]["low"], ms[m]["high"])),
             *[f"{ms[m]['per_scale'][f'x{s:g}']:.3f}" for s in SCALES], ms[m]["diverged"]]
            for m in order]
    lines = [f"LR sensitivity on the {split} envs ({', '.join(summary['best'])}), {seeds} "
             "paired seeds, every method untuned at lr0 times the scale. Score: final test "
             "metric over the best mean any method reached on the env (diverged: 0); area: "
             "its mean over envs, scales and seeds [95% CI]. † ignores lr0: one run per env "
             "and seed serves every scale and counts once in the CI.", "",
             markdown_table(["method", "area [95% CI]", *[f"x{s:g}" for s in SCALES],
                             "diverged runs"], rows), ""]
    if any(m in ms for m in (REPLAY, *FROZEN, ZERO)):
        lines += [CONTROL_LEGEND, ""]
    for key, learned in (("improvement", LEARNED), ("improvement_guard", LEARNED_GUARD)):
        if imp := summary.get(key):
            rows = [[m, *[_ci(imp[m][f"x{s:g}"], 2) for s in SCALES]] for m in imp]
            lines += [f"P({learned} > method) per lr0 scale [95% CI], rliable's probability of "
                      "improvement over all pairs of runs, averaged over envs:", "",
                      markdown_table(["method", *[f"x{s:g}" for s in SCALES]], rows), ""]
    if ev := summary.get("events"):
        rows = [[f"**{m}**" if m == LEARNED else m, _ci(v),
                 _ci(ev["p"][m], 2) if m in ev["p"] else "—"] for m, v in ev["scores"].items()]
        lines += ["With an event in every episode (x1), score as above (normalised by the "
                  "best mean under events):", "",
                  markdown_table(["method", "score [95% CI]", "P(learned > method) [95% CI]"],
                                 rows), ""]
    return "\n".join(lines)


def controls_table(summary: dict[str, Any], split: str, seeds: int) -> str:
    """What the policy adds, in short: the learned controller against its controls.

    Its action 0 and its open-loop controls (and static): each one's area beside its own,
    and P(learned > it) at x1 and with events.
    """
    from agents.evaluation.stats import markdown_table

    ms, imp, ev = summary["methods"], summary.get("improvement", {}), summary.get("events", {})
    names = [m for m in (ZERO, "fixed_decay", "learned_schedule", REPLAY, "static") if m in imp]
    if LEARNED not in ms or not names:
        return ""
    rows = [[f"**{LEARNED}**", _ci((ms[LEARNED]["area"], ms[LEARNED]["low"],
                                    ms[LEARNED]["high"])), "—", "—"]]
    for m in names:
        at1 = imp[m]["x1"]
        rows.append([m, _ci((ms[m]["area"], ms[m]["low"], ms[m]["high"])), _ci(at1, 2),
                     _ci(ev["p"][m], 2) if m in ev.get("p", {}) else "—"])
    return "\n".join([
        f"What the learned controller adds on the {split} envs, {seeds} paired seeds: its "
        "area beside its action 0's and its open-loop controls' (each on its own LR rule), "
        "and P(learned > it) [95% CI] at the task's lr0 (x1) and with an event in every "
        "episode. The whole table: `table.md` beside this file.", "",
        markdown_table(["method", "area [95% CI]", "P(learned > it), x1",
                        "P(learned > it), events"], rows), ""])


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


def _run_all(jobs: Sequence[Job], runs: dict[str, dict], store: Path, workers: int,
             packages: Sequence[str] = ()) -> None:
    todo = [j for j in jobs if j.key() not in runs]
    if not todo:
        return
    print(f"{len(todo)} episodes to run ({len(runs)} done).", file=sys.stderr)
    # One worker runs in this process: no pool to start, and tasks registered here count.
    from agents.common.packages import import_gym_packages

    pools = ProcessPoolExecutor(workers, initializer=import_gym_packages,
                                initargs=(list(packages),)) if workers > 1 else nullcontext()
    with pools as pool, \
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
    from agents.evaluation.controls import add_control_arguments, check_control_envs
    from agents.evaluation.results import add_benchmark_arguments, parse_benchmark_args
    from lr_gym.splits import SPLITS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("dev", "test"), default="dev")
    p.add_argument("--env", nargs="+", default=None,
                   help="Env ids instead of the split's (results under <output>/custom).")
    p.add_argument("--agent", nargs="*", default=[],
                   help="Learned controllers (controller files, run folders, 'pretrained'); "
                        "pooled into one 'learned' method.")
    p.add_argument("--agent-guard", action="store_true",
                   help="Also run the learned controllers with the guard.")
    p.add_argument("--agent-zero", action="store_true",
                   help="Also run the learned controllers' own action 0 (their LR rule without "
                        "the policy: static, or Prodigy at lr 1 for an agent over Prodigy).")
    add_control_arguments(p)
    p.add_argument("--events", action="store_true",
                   help="Also run x1 with an event in every episode (learned vs static, its "
                        "action 0 with --agent-zero, and its open-loop controls).")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="Baselines to run (default: all of them).")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=2,
                   help="Episode processes (1: run in this process).")
    p.add_argument("--n-boot", type=int, default=2000,
                   help="Bootstrap samples of the CIs (the point estimates do not depend on "
                        "it; rliable's probability of improvement takes seconds per 1,000).")
    add_benchmark_arguments(p, "benchmarks/results/lr_sensitivity", aliases=("--results",),
                            output_help="Results folder (<output>/<split>/: runs.jsonl, "
                                        "results.json, table.md, ...).")
    args = parse_benchmark_args(p, argv)
    from agents.controller import ControllerFileError, load_controller_file

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
    try:
        check_control_envs(args.control_envs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    envs = tuple(args.env) if args.env else SPLITS[args.split].reference_ids
    split = "custom" if args.env else args.split
    out = args.output / split
    from agents.common.folder_lock import FolderBusyError, hold_folder

    try:
        # One writer appends to its runs.jsonl and rewrites its reports.
        with hold_folder(out, "wait for it to finish, or pass another --output"):
            return _run(args, policies, envs, split, out)
    except FolderBusyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, policies: dict[str, Any], envs: tuple[str, ...],
         split: str, out: Path) -> int:
    """Runs and reports the benchmark into ``out``, which this process holds."""
    from agents.controller import agent_label, pin_controller
    from agents.evaluation.results import load_jsonl, meta, write_decisions, write_results

    store = out / "runs.jsonl"
    runs = load_jsonl(store, "key", repair=True)
    # Runs are keyed by the agent's path: a copy named by content gives a controller
    # re-shipped or retrained at the same path runs of its own.
    pinned = {a: pin_controller(a, out / "controllers") for a in policies}
    agents = list(pinned.values())
    labels = {pinned[a]: agent_label(a) for a in policies}
    bases = {pinned[a]: pol.env_config.base for a, pol in policies.items()}
    t0 = time.perf_counter()
    controls = {}
    if args.controls and agents:
        from agents.evaluation.controls import controls_for
        from agents.evaluation.runner import make_pool

        with make_pool(args.workers, args.gym_packages) as pool:
            controls = {a: controls_for(a, args.controls_cache, pool,
                                        {"device": "cpu", "torch_threads": 1},
                                        envs=args.control_envs,
                                        seeds=args.control_seeds).to_dict() for a in agents}
    jobs = plan(envs, args.seeds, agents, args.agent_guard, args.events, args.methods,
                args.agent_zero, controls, bases)
    _run_all(jobs, runs, store, args.workers, args.gym_packages)
    if controls:  # the replays follow the learned runs
        jobs += replay_jobs(runs, envs, args.seeds, agents, bases, args.events)
        _run_all(jobs, runs, store, args.workers, args.gym_packages)
    wanted = {j.key() for j in jobs}
    mine = [r for r in runs.values() if r["key"] in wanted]
    summary = summarize(mine, envs, args.n_boot)
    from lr_gym.reproducibility import settings

    summary["meta"] = {"split": split, "envs": list(envs), "seeds": args.seeds,
                       "scales": list(SCALES), "agents": [agent_label(a) for a in policies],
                       "agent_sha256": [p.sha256 for p in policies.values()],
                       "open_loop": {labels[a]: c for a, c in controls.items()},
                       "episodes": len(mine), "seconds_this_invocation":
                           time.perf_counter() - t0, **meta(), "reproducibility": settings(1)}
    text = table(summary, split, len(args.seeds))
    short = controls_table(summary, split, len(args.seeds))
    write_results(out / "results.json", summary, text, table_path=out / "table.md",
                  also={"controls.md": short} if short else None)
    write_decisions(out, [{**r, "agent": labels.get(r["agent"], r["agent"])} for r in mine])
    plot(summary, out / "sensitivity.png", split)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
