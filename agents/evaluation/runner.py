"""Running an evaluation's jobs: tuning and episodes, in worker processes.

Jobs are plain picklable values; controllers are built inside the worker that runs
them (a learned agent is loaded once per worker). ``workers=1`` runs everything in
this process.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agents.base import Controller


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run and store.

    Attributes:
        env_id: The env id.
        controller: Controller name (``"ppo"`` for a learned agent, or a baseline).
        seed: Episode seed.
        role: ``"eval"`` (scored) or ``"target"`` (target-setting, never scored).
        lr: The ``lr0`` it runs at; ``None`` keeps the controller's default.
        agent: A learned agent's run folder (the agent itself, or the one a replay follows).
        replay: The learned agent's runs on this env (for ``avg_lr_replay`` only).
        env_kwargs: EnvConfig overrides of the evaluation (e.g. the device).
    """

    env_id: str
    controller: str
    seed: int
    role: str = "eval"
    lr: float | None = None
    agent: str | None = None
    replay: tuple[Mapping[str, Any], ...] = ()
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)


@functools.cache
def load_agent(agent: str) -> Controller:
    """A learned agent, loaded once per process, from its pickle-free controller file.

    ``agent`` is a run folder (its ``controller.safetensors``), a checkpoint ``.zip``
    (its ``controller_N_steps.safetensors``) or a ``.safetensors`` file. Nothing is
    unpickled, so a run folder from someone else cannot run code here.

    Raises:
        FileNotFoundError: No controller file; the message says how to write one.
        agents.controller.ControllerFileError: The file is not a valid controller file.
    """
    from agents.controller import PolicyController

    return PolicyController.load(agent, name="ppo")


def build_controller(job: EpisodeJob) -> Controller:
    """The controller a job runs (built where the job runs)."""
    from agents.baselines import make_baseline
    from agents.rollout import EpisodeResult

    if job.controller == "ppo":
        return load_agent(job.agent)
    if job.controller == "avg_lr_replay":
        # Replayed on the agent's own base schedule and LR bounds.
        return make_baseline(job.controller,
                             results=[EpisodeResult.from_dict(r) for r in job.replay],
                             controller_kwargs=load_agent(job.agent).env_kwargs())
    ctrl = make_baseline(job.controller)
    return ctrl if job.lr is None else ctrl.with_lr(job.lr)


def run_job(job: EpisodeJob) -> dict[str, Any]:
    """Runs one episode; returns its record for the run store."""
    from agents.rollout import run_episode

    res = run_episode(job.env_id, build_controller(job), job.seed,
                      env_kwargs={**job.env_kwargs, "eval_test": job.role == "eval"})
    return {**res.to_dict(), "lr0": job.lr, "agent": job.agent, "role": job.role}


def tune_job(env_id: str, name: str, budget: int, eval_seeds: Sequence[int],
             env_kwargs: Mapping[str, Any], cache: str) -> float | None:
    """Tunes one baseline on one env; ``None`` when the best trial is its default lr0."""
    from agents.baselines import make_baseline
    from agents.tuning import tune_controller

    res = tune_controller(env_id, make_baseline(name), budget=budget, eval_seeds=eval_seeds,
                          env_kwargs=env_kwargs, cache=cache)
    return None if res.best_lr == res.base_lr else res.best_lr


def _init_worker(packages: Sequence[str], parent: int) -> None:
    import importlib

    import torch

    import lr_gym  # noqa: F401 - registers the ids

    torch.set_num_threads(1)  # one core per worker: small models scale by processes
    for name in packages:
        importlib.import_module(name)

    def exit_with_parent() -> None:
        # A killed evaluation must not leave workers training on: nothing else ends them.
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except OSError:
                os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


class _InProcess:
    """``Executor``-like stand-in for ``workers=1``: runs each job at submit time."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # surfaced by fut.result(), as an executor would
            fut.set_exception(err)
        return fut


def make_pool(workers: int, packages: Sequence[str]) -> Any:
    """A process pool of ``workers`` single-threaded workers (in-process for 1)."""
    if workers <= 1:
        return _InProcess()
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(list(packages), os.getpid()))
