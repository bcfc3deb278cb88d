"""Train a PPO learning-rate controller (``train_agent.py`` / ``lr-gym-train``).

Flags follow RL Zoo's spelling. With no flags it trains on the default task mix
(``lr_gym/EmbeddedMix-v1``) and writes a run folder ``logs/ppo/<Env>_<N>/`` (layout:
:mod:`agents.common.runs`) with ``model.zip``, ``vecnormalize.pkl``, ``config.yml``, the
pickle-free ``controller.safetensors`` that evaluation and deployment load,
``checkpoints/`` (each with its own normalisation and controller file),
``evaluations.npz`` and ``best/``, and last ``complete.json``. Every file is written
atomically. Ctrl-C saves the agent before exiting (exit code 130).
``-i/--trained-agent`` continues a run or checkpoint of your own.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import platform
import reprlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.common.help_format import DefaultsHelpFormatter
from agents.common.ray_cluster import (
    add_ray_arguments,
)
from agents.common.runs import next_run_dir, run_name
from agents.training.callbacks import training_callbacks
from agents.training.envs import (
    DEFAULT_ENV,
    VEC_ENVS,
    VecEnvChoice,
    _close,
    env_factory,
    id_env_kwargs,
    resolve_vec_env,
)
from agents.training.run_folder import load_for_resume, save_agent


def _key_value(text: str) -> tuple[str, Any]:
    """``key:value`` with the value read as YAML (``3e-4`` too, which YAML 1.1 keeps as text)."""
    import yaml

    key, sep, raw = text.partition(":")
    shown = reprlib.repr(text)  # a 10,000-character value is not echoed whole
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key:value, got {shown}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())  # YAML's multi-line message, on one line
        raise argparse.ArgumentTypeError(f"{shown}: the value is not YAML ({detail})") from None
    except RecursionError:
        raise argparse.ArgumentTypeError(f"{shown}: the value is nested too deeply to be "
                                         "an option; pass a flat value or list") from None
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


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    # Holds what must end with the run whatever happens (a Ray connection).
    try:
        with contextlib.ExitStack() as cleanup:
            return _main(args, cleanup)
    except KeyboardInterrupt:  # training saves and closes on Ctrl-C itself: the setup's
        print("\nInterrupted before training started: nothing to save (no run folder is "
              "left).", file=sys.stderr)
        return 130


@dataclasses.dataclass(frozen=True)
class _Setup:
    """A run's checked setup: everything it needs, known before its folder exists.

    Attributes:
        env_ids: The env ids it trains on.
        hp: Its :class:`~agents.training.ppo.PPOHyperparams`, overrides and the ids' defaults in.
        vec: Where its envs run.
        resume: The :class:`~agents.common.runs.RunFiles` it continues (``-i``), or ``None``.
    """

    env_ids: list[str]
    hp: Any
    vec: VecEnvChoice
    resume: Any = None


@dataclasses.dataclass(frozen=True)
class _Built:
    """A run's folder and built pieces, ready to learn.

    Attributes:
        run_dir: The new run folder.
        source: Provenance for the controller files.
        model: The PPO model, new or resumed.
        venv: Its normalised training envs.
        eval_env: The periodic evaluation's env (``None`` with ``eval_freq == 0``).
        callbacks: The callbacks the hyperparameters ask for.
    """

    run_dir: Path
    source: dict[str, Any]
    model: Any
    venv: Any
    eval_env: Any
    callbacks: Any


def _main(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> int:
    """Trains one run: validate, build (or resume), learn, save, report.

    Args:
        args: The parsed flags.
        cleanup: Holds what must end with the run (a Ray connection).

    Returns:
        The exit code.
    """
    import torch

    from agents.common.packages import GymPackageError, import_gym_packages

    try:
        import_gym_packages(args.gym_packages)
    except GymPackageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The meta-network is a 64-32 MLP: extra intra-op threads only spin and steal the
    # cores the env subprocesses train on.
    torch.set_num_threads(1)

    setup = _validate(args, cleanup)
    if isinstance(setup, int):
        return setup
    built = _build(args, setup)
    if isinstance(built, int):
        return built
    return _learn_and_save(args, setup, built)


def _validate(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> _Setup | int:
    """The run's setup, or exit code 2 after one error line.

    Everything a run needs is checked before its folder exists: a bad flag or file
    leaves nothing behind.

    Args:
        args: The parsed flags.
        cleanup: Takes the Ray connection of ``--vec-env ray``.

    Returns:
        The checked setup, or the exit code.
    """
    import yaml

    from agents.common.ray_cluster import RaySetupError

    try:
        return _check_setup(args, cleanup)
    except (ValueError, TypeError, OSError, yaml.YAMLError, RaySetupError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line
        return 2
    except RecursionError:  # a value nested too deeply for YAML, JSON or a repr
        print("error: a configuration value is nested too deeply (hundreds of levels); "
              "pass flat values.", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2


def _check_setup(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> _Setup:
    """Checks the flags, the trained agent, the env ids and options, and Ray's room.

    Args:
        args: The parsed flags.
        cleanup: Takes the Ray connection of ``--vec-env ray``.

    Returns:
        The checked setup.

    Raises:
        ValueError, TypeError, OSError, KeyError, yaml.YAMLError, RaySetupError: What
            :func:`_validate` reports as one error line.
    """
    from agents.common.ray_cluster import ray_session
    from lr_gym.envs.lr_control import resolve_device

    _check_flags(args)
    resume, source_cfg = _resume_source(args)
    env_ids = _check_env_ids(args, source_cfg)
    hp = _hyperparams(args, env_ids, source_cfg)
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
    return _Setup(env_ids, hp, vec, resume)


def _check_flags(args: argparse.Namespace) -> None:
    """Checks ``--seed``, ``-f/--log-folder`` and ``-tb/--tensorboard-log``.

    Raises:
        ValueError: A flag's value cannot work; the message names the flag.
    """
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}.")
    folder = Path(args.log_folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"-f/--log-folder {folder} is a file, not a folder; pass a folder.")
    if args.tensorboard_log and not _tensorboard_available():
        raise ValueError("-tb/--tensorboard-log needs TensorBoard, which is not installed: "
                         "pip install 'lr-gym[tensorboard]' (or pip install tensorboard).")


def _resume_source(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The trained agent's files (``-i``) and its ``config.yml``, checked.

    Returns:
        Its :class:`~agents.common.runs.RunFiles` (``None`` without ``-i``) and its config
        (empty without one).

    Raises:
        FileNotFoundError: Its model or normalisation statistics are missing.
        ValueError: Its ``model.zip`` is not a model file.
    """
    import yaml

    from agents.common.runs import run_files
    from agents.training.ppo import check_model_zip

    resume, source_cfg = None, {}
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
    return resume, source_cfg


def _check_env_ids(args: argparse.Namespace, source_cfg: dict[str, Any]) -> list[str]:
    """The env ids to train on: ``--env``, else the trained agent's, else the default.

    Raises:
        ValueError: An id is not registered, or is of the test split.
    """
    import lr_gym

    env_ids = list(args.env or source_cfg.get("env") or [DEFAULT_ENV])
    for eid in env_ids:
        if eid not in gym.registry:
            known = ", ".join(lr_gym.lr_gym_env_ids())
            raise ValueError(f"unknown env id {eid!r}. Registered lr_gym ids: {known}. "
                             "Register your own with lr_gym.register_task and "
                             "--gym-packages.")
    lr_gym.refuse_split(env_ids, "test", what="training")
    return env_ids


def _hyperparams(args: argparse.Namespace, env_ids: list[str],
                 source_cfg: dict[str, Any]) -> Any:
    """The run's :class:`~agents.training.ppo.PPOHyperparams`, the flags' overrides applied.

    Args:
        args: The parsed flags.
        env_ids: The env ids it trains on.
        source_cfg: The trained agent's config (empty without ``-i``).

    Returns:
        The hyperparameters, with the ids' own env defaults under the overrides.
    """
    from agents.training.ppo import PPOHyperparams, load_hyperparams

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
    return PPOHyperparams.from_dict(
        {**hp.to_dict(), "env_kwargs": {**id_env_kwargs(env_ids), **hp.env_kwargs}})


def _versions() -> dict[str, str]:
    """The versions a run records (config.yml, the controller file)."""
    import stable_baselines3
    import torch

    import lr_gym

    return {
        "lr_gym": lr_gym.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": str(torch.__version__),
        "gymnasium": gym.__version__,
        "python": platform.python_version(),
    }


def _build(args: argparse.Namespace, setup: _Setup) -> _Built | int:
    """Makes the run folder and its config.yml, then the envs, model (new or resumed), callbacks.

    Anything that fails once the folder exists (Ctrl-C too) closes what was built and
    removes the folder: no orphan folder is left.

    Args:
        args: The parsed flags.
        setup: The checked setup.

    Returns:
        The built pieces, or the exit code after one error line (1: the env actors
        could not start, 2: e.g. a damaged or mismatched trained agent).
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.training.ray_vec_env import EnvActorError  # imported before the folder exists

    hp, vec = setup.hp, setup.vec
    env_kwargs = {**hp.env_kwargs, "device": vec.env_device}
    if vec.resources is not None:  # an actor's reserved CPUs are its episodes' threads
        env_kwargs.setdefault("torch_threads", vec.resources.threads)
    versions = _versions()
    run_dir = _new_run_dir(args, setup.env_ids)
    source = {"run": str(run_dir), "env": setup.env_ids, "versions": versions}
    venv = eval_env = None
    try:
        _write_config(args, setup, env_kwargs, versions, run_dir)
        vec_env_cls, vec_env_kwargs = _vec_env_class(vec)
        venv = make_vec_env(
            env_factory(setup.env_ids, env_kwargs, args.gym_packages,
                        worker=vec.kind != "dummy"),
            n_envs=hp.n_envs,
            seed=args.seed,
            monitor_dir=str(run_dir / "monitor"),
            vec_env_cls=vec_env_cls,
            vec_env_kwargs=vec_env_kwargs,
        )
        if vec.kind == "ray" and args.verbose:
            nodes = venv.node_ids()
            print(f"RayVecEnv: {len(nodes)} env actor(s) on {len(set(nodes))} node(s).")
        if setup.resume:
            model, venv = load_for_resume(setup.resume, venv, hp, args.device,
                                          args.tensorboard_log)
            model.set_random_seed(args.seed)
        else:
            venv = VecNormalize(venv, norm_obs=hp.normalize_obs,
                                norm_reward=hp.normalize_reward, gamma=hp.gamma)
            from agents.training.ppo import make_ppo

            model = make_ppo(venv, hp, seed=args.seed, device=args.device, verbose=0,
                             tensorboard_log=args.tensorboard_log)
        if hp.eval_freq > 0:
            eval_env = _make_eval_env(args, setup, env_kwargs, vec_env_cls, vec_env_kwargs)
        callbacks = training_callbacks(run_dir, hp, source, eval_env, args.verbose)
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
    return _Built(run_dir, source, model, venv, eval_env, callbacks)


def _new_run_dir(args: argparse.Namespace, env_ids: list[str]) -> Path:
    """Makes the next free run folder under ``-f``, first removing stale temporaries."""
    from agents.common.runs import remove_stale_temporaries

    remove_stale_temporaries(args.log_folder)  # what killed runs left half-written
    return next_run_dir(Path(args.log_folder), run_name(env_ids))


def _write_config(args: argparse.Namespace, setup: _Setup, env_kwargs: dict[str, Any],
                  versions: dict[str, str], run_dir: Path) -> None:
    """Writes the run's ``config.yml`` (atomically): what it trains under, and where."""
    import yaml

    from agents.common.runs import write_text_atomic
    from lr_gym.reproducibility import DEFAULT_TORCH_THREADS, settings

    vec = setup.vec
    config = {
        "env": setup.env_ids,
        "seed": args.seed,
        "device": args.device,
        "hyperparams": setup.hp.to_dict(),
        "gym_packages": list(args.gym_packages),
        "trained_agent": str(Path(args.trained_agent).resolve()) if setup.resume else None,
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


def _vec_env_class(vec: VecEnvChoice) -> tuple[type, dict[str, Any] | None]:
    """The vectorised env class of ``vec.kind`` and its extra arguments (Ray's only)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    vec_env_cls, vec_env_kwargs = (DummyVecEnv if vec.kind == "dummy" else SubprocVecEnv), None
    if vec.kind == "ray":
        from agents.training.ray_vec_env import RayVecEnv

        vec_env_cls = RayVecEnv
        vec_env_kwargs = {"resources": vec.resources, "timeout_s": vec.timeout_s}
    return vec_env_cls, vec_env_kwargs


def _make_eval_env(args: argparse.Namespace, setup: _Setup, env_kwargs: dict[str, Any],
                   vec_env_cls: type, vec_env_kwargs: dict[str, Any] | None) -> Any:
    """The periodic evaluation's env: one, normalised with the training statistics."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    # With Ray, periodic evaluation gets an actor of its own, like the training
    # envs: this machine may have no GPU, and its cores run PPO.
    ray_eval = setup.vec.kind == "ray"
    return VecNormalize(
        make_vec_env(env_factory(setup.env_ids, env_kwargs, args.gym_packages,
                                 worker=ray_eval), n_envs=1, seed=args.seed + 10_000,
                     vec_env_cls=vec_env_cls if ray_eval else None,
                     vec_env_kwargs=vec_env_kwargs if ray_eval else None),
        training=False,
        norm_reward=False,
    )


def _learn_and_save(args: argparse.Namespace, setup: _Setup, built: _Built) -> int:
    """Learns, saves the agent (after Ctrl-C or a failure too), closes the envs, reports.

    Args:
        args: The parsed flags.
        setup: The checked setup.
        built: The run folder and built pieces.

    Returns:
        The exit code: 0, 130 after Ctrl-C, 1 if saving failed or training stopped on
        a full disk or a lost env actor.

    Raises:
        Exception: What else stopped training, once the agent is saved.
    """
    from agents.common.runs import CONTROLLER, MODEL, VECNORMALIZE, mark_complete

    hp, model, run_dir = setup.hp, built.model, built.run_dir
    start = int(model.num_timesteps)
    total = _announce(args, setup, run_dir, start)
    t0 = time.perf_counter()
    interrupted, failure = False, None
    try:
        model.learn(total_timesteps=total, callback=built.callbacks,
                    progress_bar=args.progress, reset_num_timesteps=setup.resume is None,
                    tb_log_name=run_dir.name)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: saving the agent before exiting.", file=sys.stderr)
    except Exception as err:  # saved below (no completion marker), then re-raised
        failure = err
    files = (MODEL, VECNORMALIZE, CONTROLLER)
    try:
        save_agent(model, built.venv, run_dir, files, hp.env_kwargs, built.source)
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
        # A second Ctrl-C while the workers finish their step: the agent is saved, so
        # stop waiting for them (they end with this process) and report the run as usual.
        with contextlib.suppress(KeyboardInterrupt):
            _close(built.venv)
            if built.eval_env is not None:
                _close(built.eval_env)  # with Ray, an actor holding its resources
    if failure is not None:
        return _training_failure(failure, run_dir)
    _report(args, model, run_dir, time.perf_counter() - t0, interrupted)
    return 130 if interrupted else 0


def _announce(args: argparse.Namespace, setup: _Setup, run_dir: Path, start: int) -> int:
    """The env steps to train for (whole rollouts), announced with ``-v``.

    Args:
        args: The parsed flags.
        setup: The checked setup.
        run_dir: The run folder.
        start: The model's env steps before this run (0 unless resuming).

    Returns:
        The total env steps ``learn`` runs to.
    """
    hp = setup.hp
    # PPO collects whole rollouts: round the budget up so the progress bar ends at 100%.
    rollout = hp.n_steps * max(hp.n_envs, 1)
    total = -(-hp.n_timesteps // rollout) * rollout
    if args.verbose:
        rounded = (f" ({hp.n_timesteps} rounded up to whole rollouts of {rollout})"
                   if total != hp.n_timesteps else "")
        resumed = f", continuing {args.trained_agent} at {start}" if setup.resume else ""
        print(f"Training PPO on {', '.join(setup.env_ids)} for {total} env steps{rounded} "
              f"({hp.n_envs} env(s){resumed}); run folder: {run_dir}")
    return total


def _training_failure(failure: Exception, run_dir: Path) -> int:
    """Reports what stopped training (the agent is saved); re-raises what is unexpected.

    Returns:
        Exit code 1, for a full disk or a lost env actor.

    Raises:
        Exception: ``failure``, for anything else.
    """
    from agents.common.runs import DISK_FULL
    from agents.training.ray_vec_env import EnvActorError

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


def _report(args: argparse.Namespace, model: Any, run_dir: Path, elapsed: float,
            interrupted: bool) -> None:
    """Prints what was saved (to stderr after Ctrl-C) and how to evaluate it."""
    import numpy as np

    from agents.common.runs import CONTROLLER, MODEL

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
