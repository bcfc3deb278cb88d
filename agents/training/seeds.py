"""Training one run per seed, resuming what a stop left: what benchmarks call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.common.runs import last_checkpoint, trained_run
from agents.training.cli import main
from agents.training.envs import DEFAULT_ENV
from agents.training.ppo import HYPERPARAMS_FILE


def train_seeds(folder: Path, seeds: Sequence[int], n_timesteps: int,
                env_kwargs: Mapping[str, Any] | None = None, *, env_id: str = DEFAULT_ENV,
                **overrides: Any) -> list[Path]:
    """One finished run per seed on ``env_id`` under ``folder``, training what is missing.

    Runs use the packaged hyperparameters of ``env_id`` (with ``env_kwargs`` instead of
    the packaged ones, if given, and other hyperparameters from ``overrides``) and no
    periodic evaluation; benchmarks call this so that a stopped benchmark resumes.

    Raises:
        RuntimeError: A training run failed.
    """
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "hyperparams.yml"
    packaged = yaml.safe_load(HYPERPARAMS_FILE.read_text())
    base = {**packaged.get(env_id, packaged["default"]), **overrides}
    if env_kwargs is not None:
        base = {**base, "env_kwargs": dict(env_kwargs)}
    conf.write_text(yaml.safe_dump({env_id: {**base, "eval_freq": 0}}))
    runs = []
    for seed in seeds:
        run = trained_run(folder, seed, n_timesteps)
        if run is None:
            cmd = ["--env", env_id, "-conf", str(conf), "--seed", str(seed), "-f", str(folder),
                   "--no-progress"]
            ckpt = last_checkpoint(folder, seed)
            if ckpt is not None and 0 < ckpt[1] < n_timesteps:
                cmd += ["-i", str(ckpt[0]), "-n", str(n_timesteps - ckpt[1])]
            else:
                cmd += ["-n", str(n_timesteps)]
            code = main(cmd)
            run = trained_run(folder, seed, n_timesteps)
            if code != 0 or run is None:
                raise RuntimeError(f"training seed {seed} under {folder} failed (exit {code}).")
        runs.append(run)
    return runs


if __name__ == "__main__":
    raise SystemExit(main())


