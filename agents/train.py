"""Train a PPO learning-rate controller (``train_agent.py`` / ``lr-gym-train``).

Flags follow RL Zoo's spelling. With no flags it trains on the default task mix
(``lr_gym/EmbeddedMix-v1``) and writes a run folder ``logs/ppo/<Env>_<N>/`` (layout:
:mod:`agents.runs`) with ``model.zip``, ``vecnormalize.pkl``, ``config.yml``, the
pickle-free ``controller.safetensors`` that evaluation and deployment load,
``checkpoints/`` (each with its own normalisation and controller file),
``evaluations.npz`` and ``best/``, and last ``complete.json``. Every file is written
atomically. Ctrl-C saves the agent before exiting (exit code 130).
``-i/--trained-agent`` continues a run or checkpoint of your own.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.help_format import DefaultsHelpFormatter
from agents.ray_cluster import (
    DEFAULT_TIMEOUT_S,
    RayResources,
    add_ray_arguments,
    ray_settings,
)

DEFAULT_ENV = "lr_gym/EmbeddedMix-v1"
VEC_ENVS = ("dummy", "subproc", "ray")


def _key_value(text: str) -> tuple[str, Any]:
    """``key:value`` with the value read as YAML (``3e-4`` too, which YAML 1.1 keeps as text)."""
    import yaml

    key, sep, raw = text.partition(":")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key:value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML ({err})") from None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip(), value


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
        default=None,
        help=f"Env id(s); several ids train one controller across all their tasks. "
        f"Test-split ids (lr_gym.TEST) are refused (default: {DEFAULT_ENV}, or the "
        "trained agent's with -i).",
    )
    p.add_argument("-n", "--n-timesteps", type=int, default=None,
                   help="Env steps of training, counted on from the trained agent's with -i "
                        "(default: from the hyperparameter file).")
    p.add_argument("--seed", type=int, default=0, help="Seed of PPO and of the envs.")
    p.add_argument("-f", "--log-folder", default="logs", help="Where run folders go.")
    p.add_argument("--n-envs", type=int, default=None,
                   help="Parallel envs (default: from the file).")
    p.add_argument("--vec-env", choices=VEC_ENVS, default=None,
                   help="Where the envs run: in this process (dummy), one subprocess each "
                        "(subproc) or one Ray actor each (ray; needs pip install -e "
                        "\".[ray]\"). Default: subproc for --n-envs > 1, else dummy.")
    add_ray_arguments(p, "--vec-env ray", "env actor", "an env actor's step or reset")
    p.add_argument("--device", default="auto", help="Device of the PPO networks.")
    p.add_argument("--env-device", default=None,
                   help="Device of the primary models inside the envs (cpu, cuda, auto); "
                        "default cpu, or cuda in Ray actors with --env-gpus.")
    p.add_argument("-conf", "--conf-file", default=None,
                   help="PPO hyperparameter YAML keyed by env id (default: the packaged one, "
                        "or the trained agent's config.yml with -i).")
    p.add_argument("--hyperparams", nargs="+", type=_key_value, default=[], action="extend",
                   metavar="KEY:VALUE",
                   help="Hyperparameter overrides, values in YAML, e.g. n_steps:128 "
                        "learning_rate:3e-4.")
    p.add_argument("--env-kwargs", nargs="+", type=_key_value, default=[], action="extend",
                   metavar="KEY:VALUE",
                   help="EnvConfig overrides, values in YAML, e.g. mode:anchored "
                        "max_factor:4; saved with the agent.")
    p.add_argument("-i", "--trained-agent", default=None, metavar="PATH",
                   help="Continue training a run folder or checkpoint .zip of your own (it "
                        "unpickles them): its normalisation statistics, timesteps counted on.")
    p.add_argument("-tb", "--tensorboard-log", default=None, metavar="DIR",
                   help="TensorBoard log folder (needs the extra: pip install "
                        "'lr-gym[tensorboard]').")
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


def env_factory(
    env_ids: Sequence[str],
    env_kwargs: dict[str, Any],
    packages: Sequence[str] = (),
    worker: bool = False,
) -> Callable[[], gym.Env]:
    """A picklable thunk building the training env in any process.

    One id is built with ``gym.make``; several become one
    :class:`~lr_gym.envs.MultiTaskEnv` over all their tasks. ``worker``: the env runs
    in a ``SubprocVecEnv`` worker or a Ray actor, with one torch thread (an actor then
    sets its own) and Ctrl-C ignored.
    """
    env_ids, env_kwargs, packages = list(env_ids), dict(env_kwargs), list(packages)

    def make() -> gym.Env:
        import lr_gym  # noqa: F401 - registers the ids in subprocesses
        from agents.packages import import_gym_packages

        import_gym_packages(packages)
        if worker:
            import signal
            import threading

            import torch

            torch.set_num_threads(1)  # one core per env subprocess
            # A terminal's Ctrl-C reaches the whole process group: a worker that died
            # of it would break the main process's save-then-close (EOFError).
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        if len(env_ids) == 1:
            return gym.make(env_ids[0], **env_kwargs)
        from lr_gym.envs.multi_task import MultiTaskEnv

        return MultiTaskEnv(env_ids, **env_kwargs)

    return make


def id_env_kwargs(env_ids: Sequence[str]) -> dict[str, Any]:
    """The :class:`~lr_gym.config.EnvConfig` defaults that the ids' registrations set.

    Raises:
        ValueError: Two ids set one field differently (the agent would have no one config).
    """
    import dataclasses

    from lr_gym.config import EnvConfig

    fields = {f.name for f in dataclasses.fields(EnvConfig)}
    out: dict[str, Any] = {}
    for eid in env_ids:
        for key, value in gym.spec(eid).kwargs.items():
            if key not in fields:
                continue
            value = list(value) if isinstance(value, tuple) else value
            if key in out and out[key] != value:
                raise ValueError(f"the env ids set {key} differently ({out[key]!r} and "
                                 f"{value!r}); train on ids of one configuration.")
            out[key] = value
    return out


def run_name(env_ids: Sequence[str]) -> str:
    """Folder-friendly name of the env list, e.g. ``EmbeddedMix-v1``."""
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


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _close(venv: Any) -> None:
    # A worker already gone (killed, out of memory) leaves nothing to close.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        venv.close()


def save_agent(model: Any, venv: Any, folder: Path, names: Sequence[str],
               env_kwargs: Mapping[str, Any], source: Mapping[str, Any]) -> None:
    """Writes an agent's normalisation, controller file and model, each atomically.

    The model goes last, so a ``.zip`` that exists has its companions.

    Args:
        model: The PPO model.
        venv: Its ``VecNormalize``.
        folder: Where the files go.
        names: ``(model, vecnormalize, controller)`` file names.
        env_kwargs: The EnvConfig overrides the agent trains under.
        source: Provenance recorded in the controller file.
    """
    from agents.controller.export import export_controller
    from agents.ppo import PPOController
    from agents.runs import atomic_write

    model_name, norm_name, ctl_name = names
    atomic_write(folder / norm_name, lambda tmp: venv.save(str(tmp)))
    export_controller(PPOController.from_training(model, venv, env_kwargs), folder / ctl_name,
                      source={**source, "num_timesteps": int(model.num_timesteps)})
    atomic_write(folder / model_name, lambda tmp: model.save(tmp))


def _callbacks(run_dir: Path, hp: Any, source: Mapping[str, Any], eval_env: Any,
               verbose: int) -> list:
    """Checkpoints and periodic evaluation, each saving a complete agent."""
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

    from agents.runs import BEST_MODEL, CONTROLLER, VECNORMALIZE, checkpoint_names

    def save(cb: BaseCallback, folder: Path, names: Sequence[str]) -> None:
        save_agent(cb.model, cb.model.get_vec_normalize_env(), folder, names, hp.env_kwargs,
                   source)

    class Checkpoint(BaseCallback):
        def __init__(self, every: int) -> None:
            super().__init__()
            self.every = every

        def _on_step(self) -> bool:
            if self.n_calls % self.every == 0:
                save(self, run_dir / "checkpoints", checkpoint_names(self.num_timesteps))
            return True

    class SaveBest(BaseCallback):
        def _on_step(self) -> bool:
            save(self, run_dir / "best", (BEST_MODEL, VECNORMALIZE, CONTROLLER))
            return True

    callbacks: list = []
    every = max(hp.n_envs, 1)
    if hp.checkpoint_freq > 0:
        callbacks.append(Checkpoint(max(hp.checkpoint_freq // every, 1)))
    if eval_env is not None:
        callbacks.append(EvalCallback(
            eval_env,
            n_eval_episodes=hp.n_eval_episodes,
            eval_freq=max(hp.eval_freq // every, 1),
            log_path=str(run_dir),
            callback_on_new_best=SaveBest(),
            deterministic=True,
            verbose=verbose,
        ))
    return callbacks


@dataclass(frozen=True)
class VecEnvChoice:
    """Where the training envs run, resolved from the flags.

    Attributes:
        kind: ``"dummy"``, ``"subproc"`` or ``"ray"``.
        env_device: Device of the training envs' primary models.
        local_device: Device of the env built in this process to check the options up
            front: with Ray, this machine may have no GPU.
        resources: What each Ray actor reserves (``None`` unless ``kind == "ray"``).
        timeout_s: The longest wait for a Ray actor's answer.
    """

    kind: str
    env_device: str
    local_device: str
    resources: RayResources | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


def resolve_vec_env(args: argparse.Namespace, n_envs: int) -> VecEnvChoice:
    """The :class:`VecEnvChoice` of the flags.

    Raises:
        ValueError: A Ray flag without ``--vec-env ray``, or a bad value; the message
            names the flag.
    """
    kind = args.vec_env or ("subproc" if n_envs > 1 else "dummy")
    ray = ray_settings(args, "--vec-env ray", kind == "ray", args.env_device,
                       "--env-device", "env actor")
    if ray is None:
        device = args.env_device or "cpu"
        return VecEnvChoice(kind, device, device)
    resources, timeout = ray
    return VecEnvChoice("ray", args.env_device or resources.device, args.env_device or "cpu",
                        resources, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    # Holds what must end with the run whatever happens (a Ray connection).
    with contextlib.ExitStack() as cleanup:
        return _main(args, cleanup)


def _main(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> int:
    import numpy as np
    import stable_baselines3
    import torch
    import yaml
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    import lr_gym
    from agents.packages import GymPackageError, import_gym_packages
    from agents.ppo import PPOHyperparams, check_model_zip, load_hyperparams
    from agents.ray_cluster import RaySetupError, ray_session
    from agents.ray_vec_env import EnvActorError
    from agents.runs import (
        CONTROLLER,
        DISK_FULL,
        MODEL,
        VECNORMALIZE,
        mark_complete,
        remove_stale_temporaries,
        run_files,
        write_text_atomic,
    )
    from lr_gym.envs.lr_control import resolve_device
    from lr_gym.reproducibility import DEFAULT_TORCH_THREADS, settings

    try:
        import_gym_packages(args.gym_packages)
    except GymPackageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The meta-network is a 64-32 MLP: extra intra-op threads only spin and steal the
    # cores the env subprocesses train on.
    torch.set_num_threads(1)

    # Everything a run needs is checked before its folder exists: a bad flag or file
    # leaves nothing behind.
    resume, source_cfg = None, {}
    try:
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}.")
        folder = Path(args.log_folder)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"-f/--log-folder {folder} is a file, not a folder; pass a folder.")
        if args.tensorboard_log and not _tensorboard_available():
            raise ValueError("-tb/--tensorboard-log needs TensorBoard, which is not installed: "
                             "pip install 'lr-gym[tensorboard]' (or pip install tensorboard).")
        if args.trained_agent:
            resume = run_files(args.trained_agent)
            check_model_zip(resume.model)
            if not resume.vecnormalize.is_file():
                raise FileNotFoundError(
                    f"No normalisation statistics for {resume.model}: expected "
                    f"{resume.vecnormalize}; resuming without them would change every action."
                )
            if resume.config.is_file():
                source_cfg = yaml.safe_load(resume.config.read_text()) or {}
        env_ids = list(args.env or source_cfg.get("env") or [DEFAULT_ENV])
        for eid in env_ids:
            if eid not in gym.registry:
                known = ", ".join(lr_gym.lr_gym_env_ids())
                raise ValueError(f"unknown env id {eid!r}. Registered lr_gym ids: {known}. "
                                 "Register your own with lr_gym.register_task and "
                                 "--gym-packages.")
        lr_gym.refuse_split(env_ids, "test", what="training")
        flags = {
            "n_timesteps": args.n_timesteps,
            "n_envs": args.n_envs,
            "eval_freq": args.eval_freq,
            "n_eval_episodes": args.eval_episodes,
            "checkpoint_freq": args.save_freq,
        }
        overrides = {**dict(args.hyperparams), **{k: v for k, v in flags.items() if v is not None}}
        key = env_ids[0] if len(env_ids) == 1 else "default"
        if args.conf_file or not source_cfg.get("hyperparams"):
            hp = load_hyperparams(key, args.conf_file, **overrides)
        else:  # resuming: the trained agent's own hyperparameters
            hp = PPOHyperparams.from_dict({**source_cfg["hyperparams"], **overrides})
        if args.env_kwargs:
            hp = PPOHyperparams.from_dict(
                {**hp.to_dict(), "env_kwargs": {**hp.env_kwargs, **dict(args.env_kwargs)}})
        # The ids' own defaults (e.g. a v2 id's features) belong to what the agent trains
        # under: the controller file and config.yml must hold them, not only overrides.
        hp = PPOHyperparams.from_dict(
            {**hp.to_dict(), "env_kwargs": {**id_env_kwargs(env_ids), **hp.env_kwargs}})
        resolve_device(args.device)
        vec = resolve_vec_env(args, hp.n_envs)
        # Built once here (cheap: data loads at reset) so that e.g. a budget the task
        # cannot hold fails now, not as a dead subprocess worker.
        env_factory(env_ids, {**hp.env_kwargs, "device": vec.local_device},
                    args.gym_packages)().close()
        if vec.kind == "ray":
            ray = cleanup.enter_context(ray_session(args.ray_address, "--vec-env ray",
                                                    vec.timeout_s))
            actors = hp.n_envs + (hp.eval_freq > 0)  # periodic evaluation has one too
            vec.resources.check_fits(ray, actors, f"{actors} env actors (--n-envs {hp.n_envs}"
                                     f"{' and one for evaluation' if hp.eval_freq else ''})")
    except (ValueError, TypeError, OSError, yaml.YAMLError, RaySetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    env_kwargs = {**hp.env_kwargs, "device": vec.env_device}
    if vec.resources is not None:  # an actor's reserved CPUs are its episodes' threads
        env_kwargs.setdefault("torch_threads", vec.resources.threads)

    versions = {
        "lr_gym": lr_gym.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": str(torch.__version__),
        "gymnasium": gym.__version__,
        "python": platform.python_version(),
    }
    remove_stale_temporaries(args.log_folder)  # what killed runs left half-written
    run_dir = next_run_dir(Path(args.log_folder), run_name(env_ids))
    source = {"run": str(run_dir), "env": env_ids, "versions": versions}
    venv = eval_env = None
    try:
        config = {
            "env": env_ids,
            "seed": args.seed,
            "device": args.device,
            "hyperparams": hp.to_dict(),
            "gym_packages": list(args.gym_packages),
            "trained_agent": str(Path(args.trained_agent).resolve()) if resume else None,
            "tensorboard_log": args.tensorboard_log,
            "vec_env": vec.kind,
            "env_device": vec.env_device,
            "versions": versions,
            "reproducibility": settings(env_kwargs.get("torch_threads", DEFAULT_TORCH_THREADS),
                                        deterministic=vec.env_device == "cpu"),
        }
        if vec.resources is not None:
            config["ray"] = {"address": args.ray_address, **vec.resources.options()}
        write_text_atomic(run_dir / "config.yml", yaml.safe_dump(config, sort_keys=False))

        vec_env_cls, vec_env_kwargs = (DummyVecEnv if vec.kind == "dummy" else SubprocVecEnv), None
        if vec.kind == "ray":
            from agents.ray_vec_env import RayVecEnv

            vec_env_cls = RayVecEnv
            vec_env_kwargs = {"resources": vec.resources, "timeout_s": vec.timeout_s}
        venv = make_vec_env(
            env_factory(env_ids, env_kwargs, args.gym_packages, worker=vec.kind != "dummy"),
            n_envs=hp.n_envs,
            seed=args.seed,
            monitor_dir=str(run_dir / "monitor"),
            vec_env_cls=vec_env_cls,
            vec_env_kwargs=vec_env_kwargs,
        )
        if resume:
            model, venv = load_for_resume(resume, venv, hp, args.device, args.tensorboard_log)
            model.set_random_seed(args.seed)
        else:
            venv = VecNormalize(venv, norm_obs=hp.normalize_obs,
                                norm_reward=hp.normalize_reward, gamma=hp.gamma)
            from agents.ppo import make_ppo

            model = make_ppo(venv, hp, seed=args.seed, device=args.device, verbose=0,
                             tensorboard_log=args.tensorboard_log)
        if hp.eval_freq > 0:
            # With Ray, periodic evaluation gets an actor of its own, like the training
            # envs: this machine may have no GPU, and its cores run PPO.
            ray_eval = vec.kind == "ray"
            eval_env = VecNormalize(
                make_vec_env(env_factory(env_ids, env_kwargs, args.gym_packages,
                                         worker=ray_eval), n_envs=1, seed=args.seed + 10_000,
                             vec_env_cls=vec_env_cls if ray_eval else None,
                             vec_env_kwargs=vec_env_kwargs if ray_eval else None),
                training=False,
                norm_reward=False,
            )
        callbacks = _callbacks(run_dir, hp, source, eval_env, args.verbose)
        if hp.critic_warmup:
            from agents.callbacks import CriticWarmup

            callbacks.append(CriticWarmup(hp.critic_warmup))
    except BaseException as err:
        for env in (venv, eval_env):
            if env is not None:
                _close(env)
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)  # ours, made above: no orphan folder
        if isinstance(err, EnvActorError):  # the actors could not start
            print(f"error: {err}", file=sys.stderr)
            return 1
        if isinstance(err, ValueError):  # e.g. a damaged or mismatched trained agent
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise

    start = int(model.num_timesteps)
    # PPO collects whole rollouts: round the budget up so the progress bar ends at 100%.
    rollout = hp.n_steps * max(hp.n_envs, 1)
    total = -(-hp.n_timesteps // rollout) * rollout
    if args.verbose:
        rounded = (f" ({hp.n_timesteps} rounded up to whole rollouts of {rollout})"
                   if total != hp.n_timesteps else "")
        resumed = f", continuing {args.trained_agent} at {start}" if resume else ""
        print(f"Training PPO on {', '.join(env_ids)} for {total} env steps{rounded} "
              f"({hp.n_envs} env(s){resumed}); run folder: {run_dir}")
    t0 = time.perf_counter()
    interrupted, failure = False, None
    try:
        model.learn(total_timesteps=total, callback=callbacks, progress_bar=args.progress,
                    reset_num_timesteps=resume is None, tb_log_name=run_dir.name)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: saving the agent before exiting.", file=sys.stderr)
    except Exception as err:  # saved below (no completion marker), then re-raised
        failure = err
    files = (MODEL, VECNORMALIZE, CONTROLLER)
    try:
        save_agent(model, venv, run_dir, files, hp.env_kwargs, source)
        if failure is None:
            mark_complete(run_dir, num_timesteps=int(model.num_timesteps), start=start,
                          interrupted=interrupted, seconds=round(time.perf_counter() - t0, 1),
                          files=list(files))
    except OSError as err:
        print(f"error: could not save the agent to {run_dir}: {err}. The run is incomplete "
              f"(no complete.json); its last checkpoint is in {run_dir / 'checkpoints'}.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: interrupted while saving; {run_dir} is incomplete (no complete.json).",
              file=sys.stderr)
        return 130
    finally:
        _close(venv)
        if eval_env is not None:
            _close(eval_env)  # with Ray, an actor holding its resources
    if failure is not None:
        if isinstance(failure, OSError) and failure.errno in DISK_FULL:
            print(f"error: training stopped: {failure}. Saved what fits in {run_dir} "
                  "(incomplete: no complete.json).", file=sys.stderr)
            return 1
        if isinstance(failure, EnvActorError):
            print(f"error: training stopped: {failure}\nSaved the agent in {run_dir} "
                  f"(incomplete: no complete.json); continue it with -i {run_dir}.",
                  file=sys.stderr)
            return 1
        raise failure
    elapsed = time.perf_counter() - t0
    if args.verbose or interrupted:
        rewards = [ep["r"] for ep in model.ep_info_buffer]
        mean_r = f"{np.mean(rewards):.3f}" if len(rewards) else "n/a"
        print(f"Saved {run_dir / MODEL} and {CONTROLLER} after {model.num_timesteps} env "
              f"steps in {elapsed:.0f} s (mean episode reward of the last episodes: {mean_r}).",
              file=sys.stderr if interrupted else sys.stdout)
    if args.verbose:
        packages = (f" --gym-packages {' '.join(args.gym_packages)}"
                    if args.gym_packages else "")
        print(f"Evaluate it: python evaluate_agent.py --agent {run_dir}{packages}")
    return 130 if interrupted else 0


def load_for_resume(files: Any, venv: Any, hp: Any, device: str,
                    tensorboard_log: str | None = None) -> tuple[Any, Any]:
    """The trained agent of ``files`` (:class:`~agents.runs.RunFiles`) on ``venv``.

    Unpickles ``model.zip`` and its normalisation: only for your own runs. The
    normalisation statistics are restored exactly (and keep updating); the PPO
    settings of ``hp`` apply, the network is the agent's.

    Returns:
        ``(model, VecNormalize-wrapped venv)``.

    Raises:
        ValueError: A damaged file, or ``hp`` asks for another network.
    """
    from agents.ppo import ACTIVATIONS, load_model, load_vecnormalize

    vn = load_vecnormalize(files.vecnormalize)
    vn.set_venv(venv)
    vn.training = True
    model = load_model(files.model, env=vn, device=device, tensorboard_log=tensorboard_log,
                       **hp.ppo_kwargs())
    saved = model.policy_kwargs
    want = hp.policy_kwargs()
    if saved.get("net_arch") != want["net_arch"] or (
            saved.get("activation_fn") is not ACTIVATIONS[hp.activation_fn]):
        raise ValueError(
            f"{files.model} has the network {saved.get('net_arch')} "
            f"{getattr(saved.get('activation_fn'), '__name__', '?')}, but the hyperparameters "
            f"ask for {want['net_arch']} {hp.activation_fn}: a resumed agent keeps its "
            "network; drop the override."
        )
    return model, vn


def trained_run(folder: Path, seed: int, n_timesteps: int) -> Path | None:
    """A finished run of ``seed`` and budget under ``folder``.

    Finished: ``complete.json`` exists (it is written after every other file) and
    training was not interrupted (a Ctrl-C'd run has fewer steps than its budget).
    """
    import yaml

    from agents.runs import completion

    for cfg in sorted((folder / "ppo").glob("*/config.yml")):
        meta = yaml.safe_load(cfg.read_text()) or {}
        done = completion(cfg.parent)
        if meta.get("seed") != seed or done is None or done.get("interrupted"):
            continue
        # A resumed run (-i) trains the remainder: its own budget is smaller, its total
        # steps count on from the checkpoint.
        if meta.get("hyperparams", {}).get("n_timesteps") == n_timesteps or (
                meta.get("trained_agent") and done.get("num_timesteps", 0) >= n_timesteps):
            return cfg.parent
    return None


def last_checkpoint(folder: Path, seed: int) -> tuple[Path, int] | None:
    """The checkpoint of ``seed`` with the most env steps under ``folder`` (and its steps).

    Looks at every run of the seed, finished or not: a run stopped by a kill or the end
    of a session leaves its periodic checkpoints, and a resumed run counts steps on.
    """
    import re

    import yaml

    best: tuple[Path, int] | None = None
    for cfg in (folder / "ppo").glob("*/config.yml"):
        if (yaml.safe_load(cfg.read_text()) or {}).get("seed") != seed:
            continue
        for zip_path in (cfg.parent / "checkpoints").glob("model_*_steps.zip"):
            m = re.fullmatch(r"model_(\d+)_steps\.zip", zip_path.name)
            if m and (best is None or int(m.group(1)) > best[1]):
                best = (zip_path, int(m.group(1)))
    return best


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

    from agents.ppo import HYPERPARAMS_FILE

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
