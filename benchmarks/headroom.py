"""Headroom on dev: how much could any controller gain over one fixed schedule?

On the dev families' reference envs (``lr_gym.splits.SPLITS["dev"].reference_ids``), on
paired seeds, without events and with an event in every episode (``event_prob=1``: a
batch-size change, label noise or a data-subset switch at a random time), runs every
fixed decay of :data:`agents.baselines.open_loop.FIXED_DECAYS` on the learned controller's base,
and the learned controller with its open-loop controls (:mod:`agents.baselines.open_loop`: its
replay, its learned schedule, the dev-chosen fixed decay) and its action 0.

Two gaps, per condition:

* **adaptive headroom**: the *hindsight-best member per env*, chosen on these very
  seeds, over the *best single member* for all envs. It bounds what choosing the
  schedule per task (what a controller that recognises the task can do) could add. It
  is a ceiling, chosen on the evaluation seeds: never a baseline.
* **what the controller adds**: the learned controller over the dev-chosen fixed decay
  (``fixed_decay``), with rliable's probability of improvement and its CI.

Scores as in every LR table: the final test metric (a diverged run scores 0) over the
best mean any method reached on that env in that condition, averaged over envs and
seeds, with a stratified-bootstrap 95% CI in which envs holding the same runs count
once (over Prodigy an env and its Adam variant are one task). Dev only: it makes no
claim about test.

Writes ``<output>/`` (``-o``): ``table.md``, ``results.json``, ``decisions.jsonl.gz`` (every
episode's decisions) and ``controls.json`` (what dev fixed for the controller). Episodes
are stored in ``--store`` (resumable, not committed).

Usage:
    python benchmarks/headroom.py --agent pretrained
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CONDITIONS = {"lr0": {}, "events": {"event_prob": 1.0}}
"""The two conditions: the plain dev episodes, and an event in every one."""
CONTROLS = ("fixed_decay", "learned_schedule", "replay", "zero_action")
"""The learned controller's controls, in table order."""


def jobs_for(agent: str, envs: Sequence[str], seeds: Sequence[int], condition: str,
             controls: Mapping[str, Any]) -> list[Any]:
    """Every episode of one condition but the replays (which follow the learned runs)."""
    from agents.baselines.open_loop import FIXED_DECAYS
    from agents.evaluation.runner import EpisodeJob

    kw = {"device": "cpu", "torch_threads": 1, **CONDITIONS[condition]}
    names = ["ppo", "zero_action", "learned_schedule", *(f"decay:{m}" for m in FIXED_DECAYS)]
    return [EpisodeJob(e, n, s, agent=agent, env_kwargs=kw, control=dict(controls))
            for n in names for e in envs for s in seeds]


def replay_jobs(agent: str, runs: Sequence[Mapping[str, Any]], envs: Sequence[str],
                seeds: Sequence[int], condition: str) -> list[Any]:
    """The replays of the learned runs of one condition, env by env."""
    from agents.evaluation.runner import EpisodeJob

    kw = {"device": "cpu", "torch_threads": 1, **CONDITIONS[condition]}
    out = []
    for e in envs:
        own = tuple(r for r in runs if r["controller"] == "ppo" and r["env_id"] == e)
        out += [EpisodeJob(e, "replay", s, agent=agent, replay=own, env_kwargs=kw)
                for s in seeds]
    return out


def summarize(runs: Sequence[Mapping[str, Any]], envs: Sequence[str], chosen: str,
              n_boot: int) -> dict[str, Any]:
    """One condition's scores, the two gaps and the probabilities of improvement.

    Envs whose runs are the same runs (on Prodigy an env and its Adam variant are one
    task) count once in every CI (:func:`agents.evaluation.stats.collapse_runs`).
    """
    import numpy as np

    from agents.baselines.open_loop import FIXED_DECAYS
    from agents.evaluation.controls import score
    from agents.evaluation.stats import collapse_runs, mean_ci, probability_of_improvement_ci

    def cells(name: str) -> dict[str, list[dict[str, Any]]]:
        return {e: sorted(({**r, "score": score(r)} for r in runs
                           if r["controller"] == name and r["env_id"] == e),
                          key=lambda r: r["seed"]) for e in envs}

    raw = {m: cells(f"decay:{m}") for m in FIXED_DECAYS}
    raw |= {"learned": cells("ppo"), **{c: cells(c) for c in CONTROLS if c != "fixed_decay"}}
    raw["fixed_decay"] = raw[chosen]
    best = {e: max(float(np.mean([r["score"] for r in c[e]])) for c in raw.values())
            for e in envs}
    mean_env = {m: {e: float(np.mean([r["score"] for r in c[e]])) / best[e] for e in envs}
                for m, c in raw.items()}
    area = {m: float(np.mean(list(v.values()))) for m, v in mean_env.items()}
    # Ties go to the earlier member, as in the dev rule.
    order = list(FIXED_DECAYS)
    single = max(order, key=lambda m: (round(area[m], 9), -order.index(m)))
    per_env = {e: max(order, key=lambda m: (round(mean_env[m][e], 9), -order.index(m)))
               for e in envs}
    raw["ceiling"] = {e: raw[per_env[e]][e] for e in envs}
    raw["best_single"] = raw[single]
    mean_env |= {"ceiling": {e: mean_env[per_env[e]][e] for e in envs},
                 "best_single": mean_env[single]}
    gap = {e: mean_env["ceiling"][e] - mean_env["best_single"][e] for e in envs}

    def normalised_ci(m: str) -> list[float]:
        tasks, _, w = collapse_runs({e: [{**r, "score": r["score"] / best[e]} for r in c]
                                     for e, c in raw[m].items()})
        return list(mean_ci(tasks, n_boot=n_boot, weights=w))

    def poi(m: str) -> list[float]:
        x, y, w = collapse_runs(raw["learned"], raw[m])
        return list(probability_of_improvement_ci(x, y, n_boot=n_boot, weights=w))

    return {"best": best, "scores": {m: normalised_ci(m) for m in raw},
            "per_env": mean_env, "best_single": single, "ceiling_members": per_env,
            "adaptive_gap": {"per_env": gap, "mean": float(np.mean(list(gap.values())))},
            "p_learned": {c: poi(c) for c in (*CONTROLS, "best_single")}}


def table(results: Mapping[str, Any], seeds: int) -> str:
    """The markdown summary."""
    from agents.evaluation.stats import markdown_table

    meta = results["meta"]
    lines = [f"Headroom on the dev envs ({', '.join(meta['envs'])}), {seeds} paired seeds, "
             f"on `{meta['agent']}`'s base (`{meta['base']}`). Score: final test metric over "
             "the best mean any method reached on the env in that condition (diverged: 0), "
             "mean over envs and seeds [95% CI]. `fixed_decay` is the dev-chosen member "
             f"(`{meta['fixed_decay']}`), `best_single` the best single member in that "
             "condition, `ceiling` the hindsight-best member per env chosen on these seeds "
             "(a bound, not a baseline).", ""]
    for cond, s in results["conditions"].items():
        title = "No events" if cond == "lr0" else "An event in every episode"
        order = ["ceiling", "best_single", "learned", *CONTROLS,
                 *[m for m in s["scores"] if m.startswith(("linear", "cosine", "exp", "wsd"))]]
        rows = [[m if m != "best_single" else f"best_single ({s['best_single']})",
                 f"{s['scores'][m][0]:.3f} [{s['scores'][m][1]:.3f}, {s['scores'][m][2]:.3f}]",
                 *[f"{s['per_env'][m][e]:.3f}" for e in meta["envs"]]]
                for m in order]
        lines += [f"#### {title}", "",
                  markdown_table(["method", "score [95% CI]",
                                  *[e.split("/")[-1] for e in meta["envs"]]], rows), ""]
        g = s["adaptive_gap"]
        members = ", ".join(f"{e.split('/')[-1]}: {m}" for e, m in s["ceiling_members"].items())
        lines += [f"Adaptive headroom (ceiling - best single member): {g['mean']:+.3f} "
                  f"(per env: {', '.join(f'{v:+.3f}' for v in g['per_env'].values())}; "
                  f"the per-env best: {members}).", "",
                  "P(learned > control) [95% CI]: " + "; ".join(
                      f"{c} {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]"
                      for c, v in s["p_learned"].items()) + ".", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.evaluation.results import add_benchmark_arguments, parse_benchmark_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="pretrained",
                   help="The learned controller (controller file, run folder, 'pretrained').")
    p.add_argument("--env", nargs="+", default=None,
                   help="Dev env ids (default: the dev split's reference envs; never test).")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--store", type=Path, default=Path("logs/headroom"),
                   help="Where the episodes are kept (resumable; not committed).")
    p.add_argument("--controls-cache", type=Path, default=Path("logs/open_loop"),
                   help="The open-loop controls' cache (as evaluate_agent.py's).")
    add_benchmark_arguments(p, "benchmarks/results/headroom", aliases=("--results",),
                            output_help="Results folder (table.md, results.json, ...).")
    args = parse_benchmark_args(p, argv)
    from agents.controller import ControllerFileError, load_controller_file

    try:
        policy = load_controller_file(args.agent)
    except (FileNotFoundError, ControllerFileError) as err:
        print(f"error: --agent {args.agent}: {err}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}.", file=sys.stderr)
        return 2
    import lr_gym  # noqa: F401 - registers the ids
    from lr_gym.splits import SPLITS, refuse_split

    envs = tuple(args.env or SPLITS["dev"].reference_ids)
    try:
        refuse_split(envs, "test", "the headroom's choices")
    except ValueError as err:
        print(f"error: --env: {err}", file=sys.stderr)
        return 2
    store_dir = args.store / policy.sha256[:12]
    from agents.common.folder_lock import FolderBusyError, hold_folder

    with contextlib.ExitStack() as held:
        try:  # one writer appends to the stores and rewrites the results
            for folder in (store_dir, args.output):
                held.enter_context(hold_folder(folder, "wait for it to finish, or pass "
                                                       "another --store and --output"))
        except FolderBusyError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _run(args, policy, envs, store_dir)


def _run(args: argparse.Namespace, policy: Any, envs: tuple[str, ...], store_dir: Path) -> int:
    """Runs and reports the headroom, holding its store and results folders."""
    from agents.controller import agent_label, pin_controller
    from agents.evaluation.controls import controls_for
    from agents.evaluation.results import meta, write_decisions, write_results
    from agents.evaluation.runner import make_pool, run_job, run_jobs
    from agents.evaluation.store import RunStore

    t0 = time.perf_counter()
    agent = pin_controller(args.agent, store_dir)
    results: dict[str, Any] = {"conditions": {}}
    every = []
    with make_pool(args.workers, args.gym_packages) as pool:
        controls = controls_for(agent, args.controls_cache, pool,
                                {"device": "cpu", "torch_threads": 1}, envs=envs)
        for cond in CONDITIONS:
            store = RunStore(store_dir / cond / "runs.jsonl")

            def run(jobs: list[Any], store: RunStore = store, cond: str = cond) -> None:
                todo = [j for j in jobs if (j.env_id, j.controller, j.agent, j.seed, "default",
                                            "eval") not in store]
                print(f"{cond}: {len(todo)} episodes to run ({len(store)} done).",
                      file=sys.stderr, flush=True)
                for _, r in run_jobs(pool, run_job, todo):
                    store.add(r)

            run(jobs_for(agent, envs, args.seeds, cond, controls.to_dict()))
            run(replay_jobs(agent, store.runs, envs, args.seeds, cond))
            runs = [r for r in store.runs if r["seed"] in args.seeds]
            results["conditions"][cond] = summarize(runs, envs, controls.fixed_decay,
                                                    args.n_boot)
            every += [{**r, "agent": agent_label(args.agent), "condition": cond} for r in runs]
    base = policy.env_config.base
    results["meta"] = meta(agent=agent_label(args.agent), agent_sha256=policy.sha256,
                           base=base, envs=list(envs), seeds=args.seeds,
                           fixed_decay=controls.fixed_decay, episodes=len(every),
                           seconds=time.perf_counter() - t0)
    text = table(results, len(args.seeds))
    write_results(args.output / "results.json", results, text,
                  table_path=args.output / "table.md")
    controls.save(args.output / "controls.json")
    write_decisions(args.output, every)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
