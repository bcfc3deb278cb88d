"""Controller training at scale on the sampled families, checkpoints chosen on dev.

1. Trains one PPO run per ``--seeds`` entry on ``lr_gym/TrainFamilies-v1`` with its
   packaged hyperparameters (``agents/hyperparams/ppo.yml``: 8 parallel envs, the
   plan's meta-network and optimizer), ``-n`` env steps each. A run stopped by a kill
   or the end of a session resumes from its last checkpoint (``-i``) when the script is
   run again; finished runs are reused.
2. Evaluates the checkpoints at every ``--select-every`` env steps (and each run's
   final agent) on the **dev** envs (``lr_gym.DEV.env_ids``, self-tuning track against
   static and cosine, 5 paired seeds), all in one evaluation, and picks the candidate
   with the best dev IQM (ties: the later checkpoint). Test envs are never used.
   The controller shipped when the selection first ran (``<log folder>/incumbent.safetensors``,
   a copy, so that its weights stay fixed) is evaluated beside them: a new candidate
   replaces it only with a strictly higher dev IQM.
3. With ``--export``, writes the selected controller to
   ``lr_gym/pretrained/default.safetensors`` (the shipped ``"lr_gym/default"``).

Writes ``<output>/training.md|json`` (per seed: env steps, wall seconds summed over
resumed pieces, env steps/s) and ``<output>/selection.md|json`` (dev IQM and profile
score of every candidate, the learning curve on dev).

Usage:
    python benchmarks/train_at_scale.py [--seeds 0 1 2] [-n 100000]
        [--select-every 25000] [-f logs/at_scale] [-o benchmarks/results/at_scale]
        [--export]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agents.common.runs import completion, portable_path
from agents.training.seeds import train_seeds

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ENV = "lr_gym/TrainFamilies-v1"
PRETRAINED = ROOT / "agents" / "pretrained" / "default.safetensors"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from agents.evaluation.results import add_benchmark_arguments

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="PPO seeds.")
    p.add_argument("-n", "--n-timesteps", type=int, default=100000,
                   help="Env steps per PPO seed.")
    p.add_argument("--select-every", type=int, default=25000,
                   help="Evaluate the checkpoint nearest every this many env steps on dev.")
    p.add_argument("-f", "--log-folder", default="logs/at_scale")
    add_benchmark_arguments(p, "benchmarks/results/at_scale", aliases=("--results",),
                            output_help="Results folder (training.md|json, selection.md|json).")
    p.add_argument("--train-only", action="store_true", help="Stop after training.")
    p.add_argument("--export", action="store_true",
                   help=f"Copy the dev-selected controller to {PRETRAINED.relative_to(ROOT)}.")
    return p


def lineage(run: Path) -> list[Path]:
    """``run`` and the runs it resumed from (``-i``), oldest first."""
    chain = [run]
    while True:
        meta = yaml.safe_load((chain[0] / "config.yml").read_text()) or {}
        parent = meta.get("trained_agent")
        if not parent:
            return chain
        parent_run = Path(parent).parent.parent if Path(parent).parent.name == "checkpoints" \
            else Path(parent)
        if not (parent_run / "config.yml").is_file() or parent_run in chain:
            return chain
        chain.insert(0, parent_run)


def _start_step(run: Path) -> int:
    """Env steps a run resumed from (0 for a fresh run)."""
    parent = (yaml.safe_load((run / "config.yml").read_text()) or {}).get("trained_agent")
    if not parent:
        return 0
    if m := re.search(r"model_(\d+)_steps\.zip$", str(parent)):
        return int(m.group(1))
    return int((completion(Path(parent)) or {}).get("num_timesteps", 0))


def reward_curve(run: Path, every: int) -> list[dict[str, Any]]:
    """Mean training episode reward per ``every`` env steps, over the run's lineage.

    Each piece's finished episodes (its ``monitor/*.csv``, in time order) are placed
    from the step it resumed at; those past the step the next piece resumed from were
    discarded by that resume and are dropped here too.
    """
    import pandas as pd

    chain = lineage(run)
    starts = [_start_step(piece) for piece in chain]
    rewards: dict[int, list[float]] = {}
    last = 0
    for piece, start, end in zip(chain, starts, [*starts[1:], None], strict=True):
        files = sorted((piece / "monitor").glob("*.monitor.csv"))
        if not files:
            continue
        eps = pd.concat([pd.read_csv(f, skiprows=1) for f in files]).sort_values("t")
        steps = start + eps["l"].cumsum()
        for r, s in zip(eps["r"], steps, strict=True):
            if end is None or s <= end:
                rewards.setdefault(int((s - 1) // every), []).append(float(r))
                last = max(last, int(s))
    return [{"steps": min((b + 1) * every, last), "episodes": len(rs),
             "mean_reward": round(sum(rs) / len(rs), 4)} for b, rs in sorted(rewards.items())]


def training_stats(run: Path) -> dict[str, Any]:
    """Env steps, wall seconds (summed over resumed pieces) and env steps/s of a run."""
    chain = lineage(run)
    done = completion(run) or {}
    seconds, steps = 0.0, 0
    for piece in chain:
        c = completion(piece)
        if c is not None:
            seconds += float(c.get("seconds", 0.0))
            steps += int(c.get("num_timesteps", 0)) - int(c.get("start", 0))
    meta = yaml.safe_load((run / "config.yml").read_text()) or {}
    return {"run": str(run), "seed": meta.get("seed"), "pieces": len(chain),
            "num_timesteps": int(done.get("num_timesteps", 0)),
            "timed_steps": steps, "seconds": round(seconds, 1),
            "steps_per_s": round(steps / seconds, 2) if seconds else None}


def candidates(run: Path, every: int) -> list[Path]:
    """Checkpoints of a run's lineage nearest each multiple of ``every``, and the run."""
    ckpts: dict[int, Path] = {}
    for piece in lineage(run):
        for z in (piece / "checkpoints").glob("controller_*_steps.safetensors"):
            m = re.fullmatch(r"controller_(\d+)_steps\.safetensors", z.name)
            if m:
                ckpts[int(m.group(1))] = z
    picked = []
    final = int((completion(run) or {}).get("num_timesteps", 0))
    for target in range(every, final, every):
        if ckpts:
            steps = min(ckpts, key=lambda s: abs(s - target))
            if ckpts[steps] not in picked:
                picked.append(ckpts[steps])
    return [*picked, run]


def steps_of(agent: str) -> int | None:
    """Env steps of a candidate (``controller_N_steps``), None for a run's final agent."""
    m = re.search(r"controller_(\d+)_steps\.safetensors$", agent)
    return int(m.group(1)) if m else None


def select(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row with the best dev IQM; among equals the later checkpoint.

    The controller shipped before (``seed`` None) wins ties: replacing it takes
    a strictly better candidate.
    """
    new = [r for r in table if r["seed"] is not None]
    best = max(new, key=lambda r: (r["iqm_test"], r["steps"]))
    shipped = [r for r in table if r["seed"] is None]
    if shipped and shipped[0]["iqm_test"] >= best["iqm_test"]:
        return shipped[0]
    return best


def _training_rows(runs: Sequence[Path], stats: list[dict[str, Any]],
                   every: int) -> list[str]:
    """Markdown of the training runs and their reward curves.

    Adds each run's ``reward_curve`` to its entry of ``stats``.

    Args:
        runs: The seeds' run folders.
        stats: Their :func:`training_stats`, in the same order.
        every: Env steps per reward-curve window.

    Returns:
        The lines of a throughput table and a reward-per-window table.
    """
    rows = ["| PPO seed | env steps | resumed pieces | timed env steps | wall s | env steps/s |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {s['seed']} | {s['num_timesteps']} | {s['pieces']} | {s['timed_steps']} | "
             f"{s['seconds']} | {s['steps_per_s']} |" for s in stats]
    curves = {s["seed"]: reward_curve(r, every) for r, s in zip(runs, stats, strict=True)}
    for s in stats:
        s["reward_curve"] = curves[s["seed"]]
    buckets = sorted({c["steps"] for cs in curves.values() for c in cs})
    by_seed = {seed: {c["steps"]: f"{c['mean_reward']} ({c['episodes']})" for c in cs}
               for seed, cs in curves.items()}
    rows += ["", f"Mean training episode reward (episodes) per {every} env steps "
             "(the row's step count ends the window):",
             "", "| env steps | " + " | ".join(f"seed {k}" for k in by_seed) + " |",
             "|---|" + "---|" * len(by_seed)]
    rows += [f"| {b} | " + " | ".join(str(by_seed[k].get(b, "—")) for k in by_seed) + " |"
             for b in buckets]
    return rows


def _candidate_agents(folder: Path, runs: Sequence[Path], stats: list[dict[str, Any]],
                      every: int) -> dict[str, tuple[int | None, int | None]]:
    """Every candidate checkpoint, and the shipped controller as the incumbent.

    Copies the shipped controller into ``folder`` once, so that later exports do not
    change what it is compared with.

    Args:
        folder: The runs' log folder.
        runs: The seeds' run folders.
        stats: Their :func:`training_stats`, in the same order.
        every: Env steps between candidates.

    Returns:
        Resolved agent path -> ``(seed, env steps)``; ``(None, None)`` for the incumbent.
    """
    from agents.evaluation.results import copy_result

    # Candidate -> (seed, env steps); the evaluation names agents by resolved path.
    cands: dict[str, tuple[int | None, int | None]] = {}
    for run, st in zip(runs, stats, strict=True):
        for c in candidates(run, every):
            cands[str(c.resolve())] = (st["seed"], steps_of(str(c)) or st["num_timesteps"])
    incumbent = folder / "incumbent.safetensors"
    if PRETRAINED.is_file() and not incumbent.is_file():
        copy_result(PRETRAINED, incumbent)
    if incumbent.is_file():
        cands[str(incumbent.resolve())] = (None, None)
    return cands


def _selection_rows(table: Sequence[dict[str, Any]], best: dict[str, Any]) -> list[str]:
    """Markdown table of the candidates' dev scores, the selected one marked."""
    lines = ["| PPO seed | env steps | dev IQM [95% CI] | dev profile score |",
             "|---|---|---|---|"]
    for r in sorted(table, key=lambda r: (r["seed"] is None, r["seed"] or 0, r["steps"] or 0)):
        mark = " **selected**" if r is best else ""
        score = "—" if r["profile_score"] is None else f"{r['profile_score']:.3f}"
        seed = "shipped before" if r["seed"] is None else r["seed"]
        lines.append(f"| {seed}{mark} | {r['steps'] or '—'} | {r['iqm_test']:.4f} "
                     f"[{r['iqm_low']:.4f}, {r['iqm_high']:.4f}] | {score} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import lr_gym
    from agents.evaluation.results import copy_result, meta, parse_benchmark_args, write_results

    args = parse_benchmark_args(build_parser(), argv)
    folder, results = Path(args.log_folder), args.output
    try:
        runs = train_seeds(folder, args.seeds, args.n_timesteps, env_id=TRAIN_ENV)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stats = [training_stats(r) for r in runs]
    rows = _training_rows(runs, stats, args.select_every)
    write_results(results / "training.json", stats,
                  f"PPO on {TRAIN_ENV} (packaged hyperparameters), {args.n_timesteps} env steps "
                  f"per seed; wall time summed over the resumed pieces that finished (a piece "
                  f"stopped by a kill records no time, so its env steps are not timed), on the "
                  f"2-core machine (shared with other jobs: a lower bound on throughput).\n\n"
                  + "\n".join(rows) + "\n")
    print("\n".join(rows))
    if args.train_only:
        return 0

    cands = _candidate_agents(folder, runs, stats, args.select_every)
    # One folder per seed set: a selection over more seeds is another evaluation.
    out = folder / f"eval_dev_seeds{'-'.join(map(str, args.seeds))}"
    cmd = [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", *cands,
           "--env", *lr_gym.DEV.env_ids, "--baselines", "static", "cosine", "--track", "self",
           "-o", str(out), "--no-progress", "--no-plot",
           *(["--gym-packages", *args.gym_packages] if args.gym_packages else [])]
    if (code := subprocess.run(cmd, cwd=ROOT).returncode) != 0:
        return code
    summary = json.loads((out / "results.json").read_text())["tracks"]["self"]
    table = [{**a, "seed": cands[a["agent"]][0], "steps": cands[a["agent"]][1]}
             for a in summary["agents"] if a["agent"] in cands]
    best = select(table)
    lines = _selection_rows(table, best)
    agg = {a["controller"]: a for a in summary["aggregate"]}
    base = ", ".join(f"{c} {agg[c]['iqm_test']:.4f}" for c in ("static", "cosine") if c in agg)
    selection = (
        f"Checkpoint selection over PPO seeds {', '.join(map(str, args.seeds))} on the dev "
        f"envs {', '.join(lr_gym.DEV.env_ids)} (self-tuning "
        f"track, 5 paired seeds; baselines at lr0: {base}). Selected: the best dev IQM "
        f"(the controller shipped before stays unless a candidate is strictly better).\n\n"
        + "\n".join(lines) + "\n")

    def portable(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "agent": portable_path(row["agent"], ROOT)}

    write_results(results / "selection.json",
                  {"meta": meta(), "candidates": [portable(r) for r in table],
                   "selected": portable(best)},
                  selection)
    print("\n".join(lines))
    if args.export and best["seed"] is None:
        print(f"No candidate beats the shipped controller on dev: {PRETRAINED} is unchanged.")
    elif args.export:
        from agents.controller import controller_file_for

        # Atomically: a kill mid-copy must not leave a truncated shipped controller.
        copy_result(controller_file_for(best["agent"]), PRETRAINED)
        print(f"Exported {best['agent']} to {PRETRAINED}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
