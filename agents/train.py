"""Train a PPO learning-rate controller (``train_agent.py`` / ``lr-gym-train``).

Flags follow RL Zoo's spelling. With no flags it trains on the default task mix
(``lr_gym/EmbeddedMix-v0``) and writes a run folder ``logs/ppo/<Env>_<N>/`` with
``model.zip``, ``vecnormalize.pkl``, ``config.yml``, ``checkpoints/`` and
``evaluations.npz``. Ctrl-C saves the agent before exiting.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.help_format import DefaultsHelpFormatter

DEFAULT_ENV = "lr_gym/EmbeddedMix-v0"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="train_agent.py",
        description="Train a PPO learning-rate controller on lr_gym envs.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument(
        "--env",
        nargs="+",
        default=[DEFAULT_ENV],
        help="Env id(s); several ids train one controller across all their tasks. "
        "Test-split ids (lr_gym.TEST) are refused.",
    )
    p.add_argument("-n", "--n-timesteps", type=int, default=None,
                   help="Env steps of training (default: from the hyperparameter file).")
    p.add_argument("--seed", type=int, default=0, help="Seed of PPO and of the envs.")
    p.add_argument("-f", "--log-folder", default="logs", help="Where run folders go.")
    p.add_argument("--n-envs", type=int, default=None,
                   help="Parallel envs, in subprocesses when > 1 (default: from the file).")
    p.add_argument("--device", default="auto", help="Device of the PPO networks.")
    p.add_argument("--env-device", default="cpu",
                   help="Device of the primary models inside the envs (cpu, cuda, auto).")
    p.add_argument("-conf", "--conf-file", default=None,
                   help="PPO hyperparameter YAML keyed by env id (default: the packaged one).")
    p.add_argument("--eval-freq", type=int, default=None,
                   help="Env steps between periodic evaluations; 0 disables (default: from "
                        "the file).")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="Episodes per evaluation (default: from the file).")
    p.add_argument("--save-freq", type=int, default=None,
                   help="Env steps between checkpoints; 0 disables (default: from the file).")
    p.add_argument("--gym-packages", nargs="*", default=[],
                   help="Modules to import first (they register your own tasks).")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="Show a progress bar.")
    p.add_argument("-v", "--verbose", type=int, default=1, help="0: quiet, 1: info.")
    return p


def _import_packages(packages: Sequence[str]) -> None:
    for name in packages:
        importlib.import_module(name)


def env_factory(
    env_ids: Sequence[str],
    env_kwargs: dict[str, Any],
    packages: Sequence[str] = (),
    single_thread: bool = False,
) -> Callable[[], gym.Env]:
    """A picklable thunk building the training env in any process.

    One id is built with ``gym.make``; several become one
    :class:`~lr_gym.envs.MultiTaskEnv` over all their tasks.
    """
    env_ids, env_kwargs, packages = list(env_ids), dict(env_kwargs), list(packages)

    def make() -> gym.Env:
        import lr_gym  # noqa: F401 - registers the ids in subprocesses

        _import_packages(packages)
        if single_thread:
            import torch

            torch.set_num_threads(1)  # one core per env subprocess
        if len(env_ids) == 1:
            return gym.make(env_ids[0], **env_kwargs)
        from lr_gym.envs.multi_task import MultiTaskEnv

        return MultiTaskEnv(env_ids, **env_kwargs)

    return make


def run_name(env_ids: Sequence[str]) -> str:
    """Folder-friendly name of the env list, e.g. ``EmbeddedMix-v0``."""
    return "+".join(e.split("/")[-1] for e in env_ids)


def next_run_dir(log_folder: Path, name: str) -> Path:
    """``<log_folder>/ppo/<name>_<N>`` with the next free N (RL Zoo's layout)."""
    root = log_folder / "ppo"
    root.mkdir(parents=True, exist_ok=True)
    taken = [
        int(p.name.rsplit("_", 1)[1])
        for p in root.glob(f"{name}_*")
        if p.name.rsplit("_", 1)[1].isdigit()
    ]
    path = root / f"{name}_{max(taken, default=0) + 1}"
    path.mkdir()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    import numpy as np
    import stable_baselines3
    import torch
    import yaml
    from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    import lr_gym
    from agents.ppo import load_hyperparams, make_ppo

    _import_packages(args.gym_packages)
    # The meta-network is a 64-32 MLP: extra intra-op threads only spin and steal the
    # cores the env subprocesses train on.
    torch.set_num_threads(1)
    for eid in args.env:
        if eid not in gym.registry:
            known = ", ".join(lr_gym.lr_gym_env_ids())
            print(f"error: unknown env id {eid!r}. Registered lr_gym ids: {known}. "
                  "Register your own with lr_gym.register_task and --gym-packages.",
                  file=sys.stderr)
            return 2
    try:
        lr_gym.refuse_split(args.env, "test", what="training")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    overrides = {
        k: v
        for k, v in {
            "n_timesteps": args.n_timesteps,
            "n_envs": args.n_envs,
            "eval_freq": args.eval_freq,
            "n_eval_episodes": args.eval_episodes,
            "checkpoint_freq": args.save_freq,
        }.items()
        if v is not None
    }
    key = args.env[0] if len(args.env) == 1 else "default"
    hp = load_hyperparams(key, args.conf_file, **overrides)
    env_kwargs = {**hp.env_kwargs, "device": args.env_device}

    run_dir = next_run_dir(Path(args.log_folder), run_name(args.env))
    config = {
        "env": list(args.env),
        "seed": args.seed,
        "device": args.device,
        "hyperparams": hp.to_dict(),
        "gym_packages": list(args.gym_packages),
        "versions": {
            "lr_gym": lr_gym.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "torch": str(torch.__version__),
            "gymnasium": gym.__version__,
            "python": platform.python_version(),
        },
    }
    (run_dir / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    parallel = hp.n_envs > 1
    venv = make_vec_env(
        env_factory(args.env, env_kwargs, args.gym_packages, single_thread=parallel),
        n_envs=hp.n_envs,
        seed=args.seed,
        monitor_dir=str(run_dir / "monitor"),
        vec_env_cls=SubprocVecEnv if parallel else DummyVecEnv,
    )
    venv = VecNormalize(
        venv, norm_obs=hp.normalize_obs, norm_reward=hp.normalize_reward, gamma=hp.gamma
    )
    model = make_ppo(venv, hp, seed=args.seed, device=args.device, verbose=0)

    callbacks = []
    every = max(hp.n_envs, 1)
    if hp.checkpoint_freq > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(hp.checkpoint_freq // every, 1),
                save_path=str(run_dir / "checkpoints"),
                name_prefix="model",
                save_vecnormalize=True,
            )
        )
    if hp.eval_freq > 0:
        eval_env = VecNormalize(
            make_vec_env(env_factory(args.env, env_kwargs, args.gym_packages), n_envs=1,
                         seed=args.seed + 10_000),
            training=False,
            norm_reward=False,
        )
        callbacks.append(
            EvalCallback(
                eval_env,
                n_eval_episodes=hp.n_eval_episodes,
                eval_freq=max(hp.eval_freq // every, 1),
                log_path=str(run_dir),
                best_model_save_path=str(run_dir / "best"),
                deterministic=True,
                verbose=args.verbose,
            )
        )

    # PPO collects whole rollouts: round the budget up so the progress bar ends at 100%.
    rollout = hp.n_steps * max(hp.n_envs, 1)
    total = -(-hp.n_timesteps // rollout) * rollout
    if args.verbose:
        rounded = (f" ({hp.n_timesteps} rounded up to whole rollouts of {rollout})"
                   if total != hp.n_timesteps else "")
        print(f"Training PPO on {', '.join(args.env)} for {total} env steps{rounded} "
              f"({hp.n_envs} env(s)); run folder: {run_dir}")
    t0 = time.perf_counter()
    interrupted = False
    try:
        model.learn(total_timesteps=total, callback=callbacks, progress_bar=args.progress)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: saving the agent before exiting.", file=sys.stderr)
    finally:
        model.save(run_dir / "model.zip")
        venv.save(str(run_dir / "vecnormalize.pkl"))
        venv.close()
    elapsed = time.perf_counter() - t0
    if args.verbose:
        rewards = [ep["r"] for ep in model.ep_info_buffer]
        mean_r = f"{np.mean(rewards):.3f}" if len(rewards) else "n/a"
        print(f"Saved {run_dir / 'model.zip'} after {model.num_timesteps} env steps "
              f"in {elapsed:.0f} s (mean episode reward of the last episodes: {mean_r}).")
        packages = (f" --gym-packages {' '.join(args.gym_packages)}"
                    if args.gym_packages else "")
        print(f"Evaluate it: python evaluate_agent.py --agent {run_dir}{packages}")
    return 130 if interrupted else 0


def trained_run(folder: Path, seed: int, n_timesteps: int) -> Path | None:
    """A finished run of ``seed`` and budget under ``folder`` (model.zip is written last)."""
    import yaml

    for cfg in sorted((folder / "ppo").glob("*/config.yml")):
        meta = yaml.safe_load(cfg.read_text()) or {}
        if (meta.get("seed") == seed and (cfg.parent / "model.zip").is_file()
                and meta.get("hyperparams", {}).get("n_timesteps") == n_timesteps):
            return cfg.parent
    return None


def train_seeds(folder: Path, seeds: Sequence[int], n_timesteps: int,
                env_kwargs: Mapping[str, Any] | None = None) -> list[Path]:
    """One finished run per seed on the default mix under ``folder``, training what is missing.

    Runs use the packaged hyperparameters with ``env_kwargs`` and no periodic
    evaluation; benchmarks call this so that a stopped benchmark resumes.

    Raises:
        RuntimeError: A training run failed.
    """
    import yaml

    from agents.ppo import HYPERPARAMS_FILE

    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "hyperparams.yml"
    base = yaml.safe_load(HYPERPARAMS_FILE.read_text())["default"]
    conf.write_text(yaml.safe_dump({DEFAULT_ENV: {
        **base, "env_kwargs": dict(env_kwargs or {}), "eval_freq": 0}}))
    runs = []
    for seed in seeds:
        run = trained_run(folder, seed, n_timesteps)
        if run is None:
            code = main(["--env", DEFAULT_ENV, "-conf", str(conf), "-n", str(n_timesteps),
                         "--seed", str(seed), "-f", str(folder), "--no-progress"])
            run = trained_run(folder, seed, n_timesteps)
            if code != 0 or run is None:
                raise RuntimeError(f"training seed {seed} under {folder} failed (exit {code}).")
        runs.append(run)
    return runs


if __name__ == "__main__":
    raise SystemExit(main())
