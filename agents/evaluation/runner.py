"""Running an evaluation's jobs: tuning trials and episodes, in worker processes.

Jobs are plain picklable values; controllers are built inside the worker that runs
them (a learned agent is loaded once per worker). ``workers=1`` runs everything in
this process. A pool is anything with ``submit(fn, *args) -> Future``: the process
pool of :func:`make_pool`, or Ray's (:mod:`agents.evaluation.ray_backend`). Results
come back to this process, which alone writes the run store and the tuning cache.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from agents.baselines import make_baseline
from agents.baselines.base import Controller
from agents.baselines.open_loop import OpenLoopControls, fixed_decay
from agents.common.packages import import_gym_packages
from agents.controller import PolicyController
from agents.evaluation.rollout import EpisodeResult, run_episode
from agents.evaluation.tuning import plan_controller_tuning


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run and store.

    Attributes:
        env_id: The env id.
        controller: Controller name (``"ppo"`` for a learned agent, or a baseline).
        seed: Episode seed.
        role: ``"eval"`` (scored) or ``"target"`` (target-setting, never scored).
        lr: The ``lr0`` it runs at; ``None`` keeps the controller's default.
        agent: A learned agent's run folder: the agent itself, or the one an open-loop
            control (:mod:`agents.baselines.open_loop`) runs for, on that agent's LR rule.
        replay: The learned agent's runs on this env (for ``replay`` only).
        env_kwargs: EnvConfig overrides of the evaluation (e.g. the device).
        control: The agent's :class:`~agents.baselines.open_loop.OpenLoopControls` as a dict (for
            ``learned_schedule`` and ``fixed_decay``).
    """

    env_id: str
    controller: str
    seed: int
    role: str = "eval"
    lr: float | None = None
    agent: str | None = None
    replay: tuple[Mapping[str, Any], ...] = ()
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    control: Mapping[str, Any] = field(default_factory=dict)


AGENT_FILES: dict[str, str] = {}
"""Agent name -> a local copy of its controller file, for workers that cannot see the
agent's own path (a Ray worker on another machine gets the file's bytes)."""


@functools.cache
def load_agent(agent: str) -> Controller:
    """A learned agent, loaded once per process, from its pickle-free controller file.

    ``agent`` is a run folder (its ``controller.safetensors``), a checkpoint ``.zip``
    (its ``controller_N_steps.safetensors``) or a ``.safetensors`` file; a copy in
    :data:`AGENT_FILES` is read instead when there is one. Nothing is unpickled, so a
    run folder from someone else cannot run code here.

    Raises:
        FileNotFoundError: No controller file; the message says how to write one.
        agents.controller.ControllerFileError: The file is not a valid controller file.
    """
    return PolicyController.load(AGENT_FILES.get(agent, agent), name="ppo")


def build_controller(job: EpisodeJob) -> Controller:
    """The controller a job runs (built where the job runs)."""
    if job.controller == "ppo":
        return load_agent(job.agent)
    # The open-loop controls run on the agent's own LR rule (base, schedule, bounds).
    if job.controller == "replay":
        return make_baseline(job.controller,
                             results=[EpisodeResult.from_dict(r) for r in job.replay],
                             controller_kwargs=load_agent(job.agent).env_kwargs())
    if job.controller in ("learned_schedule", "fixed_decay"):
        return OpenLoopControls.from_dict(job.control).controller(
            job.controller, load_agent(job.agent).env_kwargs())
    if job.controller == "zero_action":  # the agent's LR rule with every action 0
        return load_agent(job.agent).zero_action()
    if job.controller.startswith("decay:"):  # a member of the family, on dev
        return fixed_decay(job.controller.split(":", 1)[1], load_agent(job.agent).env_kwargs())
    ctrl = make_baseline(job.controller)
    return ctrl if job.lr is None else ctrl.with_lr(job.lr)


def run_job(job: EpisodeJob) -> dict[str, Any]:
    """Runs one episode; returns its record for the run store."""
    res = run_episode(job.env_id, build_controller(job), job.seed,
                      env_kwargs={**job.env_kwargs, "eval_test": job.role == "eval"})
    return {**res.to_dict(), "lr0": job.lr, "agent": job.agent, "role": job.role}


@dataclass(frozen=True)
class TrialJob:
    """One tuning trial: a baseline at one ``lr0`` for one episode on the tuning seed.

    Attributes:
        env_id: The env id.
        controller: Baseline name.
        lr: The trial's ``lr0``.
        seed: The tuning seed.
        env_kwargs: EnvConfig overrides of the trial (``eval_test`` off).
    """

    env_id: str
    controller: str
    lr: float
    seed: int
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)


def run_trial(job: TrialJob) -> Any:
    """Runs one tuning trial; returns its :class:`~agents.evaluation.rollout.EpisodeResult`."""
    return run_episode(job.env_id, make_baseline(job.controller).with_lr(job.lr), job.seed,
                       env_kwargs=dict(job.env_kwargs))


class JobTimeoutError(TimeoutError):
    """No job of an evaluation finished within the allowed wait."""


def completed(futures: Iterable[Future], timeout_s: float | None = None) -> Iterator[Future]:
    """The futures as they finish, like ``as_completed`` but bounding each wait.

    Args:
        futures: The jobs' futures.
        timeout_s: The longest wait for the next job to finish; ``None`` waits for ever.

    Raises:
        JobTimeoutError: No job finished within ``timeout_s``.
    """
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=timeout_s, return_when=FIRST_COMPLETED)
        if not done:
            raise JobTimeoutError(
                f"no evaluation job finished within {timeout_s:g} s ({len(pending)} still "
                "running or waiting for resources)")
        yield from done


def run_jobs(pool: Any, fn: Callable[[Any], Any], jobs: Sequence[Any],
             timeout_s: float | None = None) -> Iterator[tuple[Any, Any]]:
    """``(job, result)`` as each job finishes, so a caller can store it at once.

    In this process (``workers=1``) the jobs run one at a time, in order, when the
    iteration asks for them: a kill or Ctrl-C loses at most the episode running. In a
    pool they all start, and come back as they finish (see :func:`completed`).
    """
    if isinstance(pool, _InProcess):
        for job in jobs:
            yield job, fn(job)
        return
    futures = {pool.submit(fn, j): j for j in jobs}
    try:
        for fut in completed(futures, timeout_s):
            yield futures[fut], fut.result()
    finally:  # stopped (Ctrl-C, an error): the jobs not yet started never start
        for fut in futures:
            fut.cancel()


def tune_all(pool: Any, pairs: Sequence[tuple[str, str]], budget: int,
             eval_seeds: Sequence[int], env_kwargs: Mapping[str, Any], cache: str,
             timeout_s: float | None = None,
             progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
             ) -> dict[tuple[str, str], float]:
    """Tunes every ``(env_id, baseline)`` pair, one pool job per trial.

    Cached tunings run nothing; the others' trials all run in parallel, and each
    pair's result is cached here as soon as its last trial is in.

    Args:
        pool: Where the trials run (``submit(fn, *args) -> Future``).
        pairs: The ``(env_id, baseline name)`` pairs to tune.
        budget: Trials per pair.
        eval_seeds: Every evaluation and target-setting seed (the tuning seed must differ).
        env_kwargs: EnvConfig overrides of the evaluation.
        cache: The tuning cache file.
        timeout_s: See :func:`completed`.
        progress: Wraps the finishing ``(job, result)`` pairs (e.g. a progress bar),
            given their count.

    Returns:
        The tuned ``lr0`` of each pair whose best trial is not its default ``lr0``.
    """
    tuned: dict[tuple[str, str], float] = {}
    plans, results, jobs, where = {}, {}, [], {}
    for pair in pairs:
        plan = plan_controller_tuning(pair[0], make_baseline(pair[1]), budget=budget,
                                      eval_seeds=eval_seeds, env_kwargs=env_kwargs, cache=cache)
        if (hit := plan.cached()) is not None:
            if hit.best_lr != hit.base_lr:
                tuned[pair] = hit.best_lr
            continue
        plans[pair], results[pair] = plan, [None] * plan.budget
        for i, lr in enumerate(plan.lrs):
            jobs.append(TrialJob(pair[0], pair[1], lr, plan.seed, plan.trial_env_kwargs()))
            where[id(jobs[-1])] = (pair, i)  # jobs hold dicts: not hashable themselves
    finished = run_jobs(pool, run_trial, jobs, timeout_s)
    for job, result in progress(finished, len(jobs)) if progress else finished:
        pair, i = where[id(job)]
        results[pair][i] = result
        if all(r is not None for r in results[pair]):
            res = plans[pair].finish(results[pair])
            if res.best_lr != res.base_lr:
                tuned[pair] = res.best_lr
    return tuned


def _init_worker(packages: Sequence[str], parent: int) -> None:
    import torch

    import lr_gym  # noqa: F401 - registers the ids

    torch.set_num_threads(1)  # one core per worker: small models scale by processes
    import_gym_packages(packages)

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
        except Exception as err:  # surfaced by fut.result(), as an executor would
            fut.set_exception(err)  # (Ctrl-C is not a job's error: it stops the caller)
        return fut


def make_pool(workers: int, packages: Sequence[str]) -> Any:
    """A process pool of ``workers`` single-threaded workers (in-process for 1)."""
    if workers <= 1:
        return _InProcess()
    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(list(packages), os.getpid()))
