"""The training envs: one thunk for every process, and where they run."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from agents.common.packages import import_gym_packages
from agents.common.ray_cluster import (
    DEFAULT_TIMEOUT_S,
    RayResources,
    ray_settings,
)

DEFAULT_ENV = "lr_gym/EmbeddedMix-v1"
VEC_ENVS = ("dummy", "subproc", "ray")


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
        if worker:
            import signal
            import threading

            # A terminal's Ctrl-C reaches the whole process group: a worker that died
            # of it would break the main process's save-then-close (EOFError). First,
            # before the seconds of imports below.
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        import lr_gym  # noqa: F401 - registers the ids in subprocesses

        import_gym_packages(packages)
        if worker:
            import torch

            torch.set_num_threads(1)  # one core per env subprocess
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


def _close(venv: Any) -> None:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    inner = getattr(venv, "unwrapped", venv)
    # A worker already gone (killed, out of memory) leaves nothing to close.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        if isinstance(inner, SubprocVecEnv) and inner.waiting:
            # Ctrl-C inside step_wait, between two workers' results: SB3's close would
            # wait on every pipe, forever on one already read. Take what has come; a
            # worker still stepping sends its result, then reads "close".
            for remote in inner.remotes:
                if remote.poll():  # at most one result per worker and step
                    remote.recv()
            inner.waiting = False
        venv.close()


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


