"""Anchored vs recursive action mode: the measurement behind the env's default.

Trains one PPO controller per mode on the default training mix with the same seed
and budget (the packaged hyperparameters, ``-n`` env steps), then evaluates each on
the **dev** split (``lr_gym.DEV.env_ids`` by default) against the static and cosine
baselines (self-tuning track: no per-task tuning), 5 paired seeds. The mode is a
design choice, so it is made on dev ids: test ids are refused (exit code 2). Prints
both evaluation reports; the JSON results land in ``<log-folder>/eval_<mode>/``.

Usage:
    python benchmarks/mode_ablation.py [-n 12000] [-f benchmarks/results/mode_ablation]
        [--env ID ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from agents import train
from agents.ppo import HYPERPARAMS_FILE

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ENV = "lr_gym/EmbeddedMix-v0"
MODES = {
    "anchored": {"mode": "anchored", "schedule": "cosine", "max_factor": 4.0},
    "recursive": {"mode": "recursive", "schedule": "constant", "max_factor": 2.0},
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    import lr_gym

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--n-timesteps", type=int, default=12000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--log-folder", default="benchmarks/results/mode_ablation")
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


def evaluate_command(run: Path, env_ids: Sequence[str], out: Path) -> list[str]:
    """The ``evaluate_agent.py`` command line that evaluates ``run`` on ``env_ids``."""
    return [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", str(run),
            "--env", *env_ids, "--baselines", "static", "cosine", "--track", "self",
            "-o", str(out), "--no-progress"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if (error := check_envs(args.env)) is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    root = Path(args.log_folder)
    root.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(HYPERPARAMS_FILE.read_text())["default"]
    for mode, env_kwargs in MODES.items():
        conf = root / f"{mode}.yml"
        conf.write_text(yaml.safe_dump({TRAIN_ENV: {
            **base, "env_kwargs": env_kwargs, "eval_freq": 0}}))
        code = train.main(["--env", TRAIN_ENV, "-conf", str(conf), "-n", str(args.n_timesteps),
                           "--seed", str(args.seed), "-f", str(root / mode), "--no-progress"])
        if code != 0:
            return code
        run = next((root / mode / "ppo").glob(f"{train.run_name([TRAIN_ENV])}_*"))
        done = subprocess.run(evaluate_command(run, args.env, root / f"eval_{mode}"), cwd=ROOT)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
