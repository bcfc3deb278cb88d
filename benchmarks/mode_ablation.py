"""Anchored vs recursive action mode, chosen on the dev families: the env's default.

Trains PPO controllers per mode on the default training mix (the packaged
hyperparameters, ``-n`` env steps, one run per ``--seeds`` entry, periodic evaluation
off), then evaluates each mode's agents pooled on the **dev** split
(``lr_gym.DEV.env_ids``) against the static and cosine baselines in the self-tuning
track, 5 paired seeds. The mode is a design choice, so it is made on dev ids: test ids
are refused (exit code 2). Finished training runs are reused, and the evaluation
resumes, so a stopped ablation picks up where it was.

Writes ``<results>/report_<mode>.md`` and ``results_<mode>.json`` (the evaluation
reports) and ``summary.md`` / ``summary.json`` (one row per mode); training runs and
episode logs stay under ``-f``.

Usage:
    python benchmarks/mode_ablation.py [-n 20000] [--seeds 0 1 2]
        [-f logs/mode_ablation] [--results benchmarks/results/mode_ablation] [--env ID ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.train import train_seeds

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "anchored": {"mode": "anchored", "schedule": "cosine", "max_factor": 4.0},
    "recursive": {"mode": "recursive", "schedule": "constant", "max_factor": 2.0},
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    import lr_gym

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--n-timesteps", type=int, default=20000)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="PPO seeds per mode (one agent each, pooled in the evaluation).")
    p.add_argument("-f", "--log-folder", default="logs/mode_ablation",
                   help="Training runs and evaluation logs.")
    p.add_argument("--results", default="benchmarks/results/mode_ablation",
                   help="Where the reports and the summary are written.")
    p.add_argument("--env", nargs="+", default=list(lr_gym.DEV.env_ids),
                   help="Evaluation env ids (dev split by default; test ids are refused).")
    return p


def check_envs(env_ids: Sequence[str]) -> str | None:
    """The error message if ``env_ids`` cannot be used to choose the mode, else None."""
    import gymnasium as gym

    import lr_gym

    unknown = [e for e in env_ids if e not in gym.registry]
    if unknown:
        return f"unknown env id(s) {', '.join(map(repr, unknown))}."
    try:
        lr_gym.refuse_split(env_ids, "test", what="choosing the action mode")
    except ValueError as err:
        return str(err)
    return None


def evaluate_command(runs: Path | Sequence[Path], env_ids: Sequence[str],
                     out: str | Path) -> list[str]:
    """The ``evaluate_agent.py`` command line that evaluates ``runs`` on ``env_ids``."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    return [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", *map(str, runs),
            "--env", *env_ids, "--baselines", "static", "cosine", "--track", "self",
            "-o", str(out), "--no-progress", "--no-plot"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if (error := check_envs(args.env)) is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    root, results = Path(args.log_folder), Path(args.results)
    root.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    summary = {}
    for mode, env_kwargs in MODES.items():
        try:
            runs = train_seeds(root / mode, args.seeds, args.n_timesteps, env_kwargs)
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        out = root / f"eval_{mode}"
        done = subprocess.run(evaluate_command(runs, args.env, out), cwd=ROOT)
        if done.returncode != 0:
            return done.returncode
        shutil.copy(out / "report.md", results / f"report_{mode}.md")
        shutil.copy(out / "results.json", results / f"results_{mode}.json")
        agg = {a["controller"]: a for a in
               json.loads((out / "results.json").read_text())["tracks"]["self"]["aggregate"]}
        summary[mode] = {**env_kwargs, "agents": len(runs), **{
            f"{c}_{k}": agg[c].get(k)
            for c in agg for k in ("iqm_test", "iqm_low", "iqm_high", "profile_score",
                                   "p_improvement")}}
    lines = ["| mode (base schedule, max_factor) | agents | IQM dev test acc [95% CI] | "
             "profile score | P(PPO > static) [95% CI] | P(PPO > cosine) [95% CI] |",
             "|---|---|---|---|---|---|"]
    for mode, s in summary.items():
        pois = [s.get(f"{b}_p_improvement") for b in ("static", "cosine")]
        lines.append(
            f"| {mode} ({s['schedule']}, {s['max_factor']:g}) | {s['agents']} | "
            f"{s['ppo_iqm_test']:.4f} [{s['ppo_iqm_low']:.4f}, {s['ppo_iqm_high']:.4f}] | "
            f"{s['ppo_profile_score']:.3f} | "
            + " | ".join("—" if p is None else f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"
                         for p in pois) + " |")
    table = "\n".join(lines)
    (results / "summary.md").write_text(
        f"Mode ablation on the dev envs {', '.join(args.env)}; PPO seeds {args.seeds}, "
        f"{args.n_timesteps} env steps each; self-tuning track.\n\n{table}\n")
    (results / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
