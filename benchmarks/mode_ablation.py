"""Anchored vs recursive action mode: the measurement behind the env's default.

Trains one PPO controller per mode on the default training mix with the same seed
and budget (the packaged hyperparameters, ``-n`` env steps), then evaluates each on
the held-out tasks against the static and cosine baselines (no tuning), 5 paired
seeds. Prints both evaluation reports; the JSON results land in
``<log-folder>/eval_<mode>/results.json``.

Usage:
    python benchmarks/mode_ablation.py [-n 12000] [-f benchmarks/results/mode_ablation]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from agents import evaluate, train
from agents.ppo import HYPERPARAMS_FILE

MODES = {
    "anchored": {"mode": "anchored", "schedule": "cosine", "max_factor": 4.0},
    "recursive": {"mode": "recursive", "schedule": "constant", "max_factor": 2.0},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--n-timesteps", type=int, default=12000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--log-folder", default="benchmarks/results/mode_ablation")
    args = p.parse_args()
    root = Path(args.log_folder)
    root.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(HYPERPARAMS_FILE.read_text())["default"]
    for mode, env_kwargs in MODES.items():
        conf = root / f"{mode}.yml"
        conf.write_text(yaml.safe_dump({"lr_gym/EmbeddedMix-v0": {
            **base, "env_kwargs": env_kwargs, "eval_freq": 0}}))
        train.main(["-conf", str(conf), "-n", str(args.n_timesteps), "--seed", str(args.seed),
                    "-f", str(root / mode), "--no-progress"])
        run = next((root / mode / "ppo").glob("EmbeddedMix-v0_*"))
        evaluate.main(["--agent", str(run), "--baselines", "static", "cosine",
                       "--tuning-budget", "0", "-o", str(root / f"eval_{mode}"),
                       "--no-progress"])


if __name__ == "__main__":
    main()
