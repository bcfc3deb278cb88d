"""Running one controller for one episode, and what that run records."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baselines.base import Controller
from agents.evaluation.metrics import convergence_step, steps_to_target
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.tasks.base import Task


@dataclass
class EpisodeResult:
    """The record of one controller on one env and seed (JSON friendly).

    Attributes:
        env_id: The env id.
        controller: Controller name.
        seed: Episode seed (paired across controllers).
        task: Name of the task that ran.
        metric: Name of the main validation metric.
        steps: Optimizer step after each interval (0 first: the untrained model).
        epochs: Epoch after each interval.
        lrs: LR in use during each interval (first entry: the starting LR).
        val_metric: Validation metric after each interval.
        val_loss: Validation loss after each interval.
        train_loss: Training-loss EMA after each interval.
        wall: Seconds since the episode started (its reset, after one-time data loading)
            after each interval.
        final_val_metric: Validation metric at the end.
        test: Test metrics at the end (empty if none or diverged).
        diverged: Whether the run diverged.
        total_reward: Sum of rewards.
        convergence_step: First step reaching 95% of the final validation metric.
        convergence_epoch: The same in epochs.
        total_steps: The budget ``T`` in optimizer steps.
        rule_lr0: The LR rule's reference LR (the task's lr0; 1.0 over
            ``base="prodigy"``), so ``lrs[k] / rule_lr0`` is the LR as a factor of it.
        features: The observation's feature names.
        observations: The observation each decision saw (one per decision).
        actions: The action each decision applied (clipped; NaN as 0).
        multipliers: The LR rule's multiplier ``M`` after each decision.
        event: The episode's event (``kind``, ``step``, ``applied``), if it had one.

    Decision ``k`` is made at ``steps[k]`` from ``observations[k]``; it applies
    ``actions[k]``, leaves ``multipliers[k]``, and its interval runs at ``lrs[k + 1]``.
    """

    env_id: str
    controller: str
    seed: int
    task: str
    metric: str
    steps: list[int] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    final_val_metric: float = float("nan")
    test: dict[str, float] = field(default_factory=dict)
    diverged: bool = False
    total_reward: float = 0.0
    convergence_step: float = float("nan")
    convergence_epoch: float = float("nan")
    total_steps: int = 0
    rule_lr0: float = float("nan")
    features: list[str] = field(default_factory=list)
    observations: list[list[float]] = field(default_factory=list)
    actions: list[float] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    event: dict[str, Any] | None = None

    def steps_to(self, target: float) -> float:
        """Optimizer steps until the validation metric first reaches ``target`` (inf if never)."""
        return steps_to_target(self.steps, self.val_metric, target)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeResult:
        """Inverse of :meth:`to_dict`; extra keys (e.g. an evaluation's ``lr0``) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def run_episode(
    env_id: str,
    controller: Controller,
    seed: int,
    *,
    env_kwargs: dict[str, Any] | None = None,
    task: Task | None = None,
) -> EpisodeResult:
    """Runs ``controller`` for one episode of ``env_id`` from ``seed``.

    The env is built with ``env_kwargs`` and then the controller's own
    ``env_kwargs()`` (the controller wins), and the task goes through
    ``controller.wrap_task``. The same seed gives every controller the same model
    initialisation and data order. ``task`` replaces the id's own task (e.g. the same
    task at another ``lr0``) for a single-task id.
    """
    from lr_gym.registration import is_multi_task, task_for

    kwargs = {**(env_kwargs or {}), **controller.env_kwargs()}
    if not is_multi_task(env_id):
        task_kwargs = kwargs.pop("task_kwargs", None) or {}
        kwargs["task"] = controller.wrap_task(task or task_for(env_id, **task_kwargs))
    env = gym.make(env_id, disable_env_checker=True, **kwargs)
    try:
        # One-time costs stay off the clock: loading the data (cached per process after
        # the first episode) would otherwise count against whichever run came first.
        if isinstance(env.unwrapped, LRControlEnv):
            env.unwrapped.data  # noqa: B018 - loads the splits
        t0 = time.perf_counter()
        # The controller's own torch work (a policy network) runs pinned like the env's.
        pin = getattr(env.unwrapped, "pinned", contextlib.nullcontext)
        with pin():
            obs, info = env.reset(seed=seed)
            controller.reset(env, obs, info)
            res = EpisodeResult(env_id, controller.name, seed, info["task"], info["metric"])
            inner = getattr(env.unwrapped, "current", env.unwrapped)  # a multi-task env's task
            res.total_steps, res.rule_lr0 = int(inner.total_steps), float(inner.lr0)
            res.features = list(inner.feature_names)
            _record(res, info, time.perf_counter() - t0)
            done = False
            while not done:
                action = controller.act(obs, info)
                res.observations.append([float(x) for x in obs])
                obs, reward, terminated, truncated, info = env.step(action)
                res.total_reward += float(reward)
                res.actions.append(float(info["action"]))
                res.multipliers.append(float(info["multiplier"]))
                _record(res, info, time.perf_counter() - t0)
                done = terminated or truncated
        res.diverged = bool(info["diverged"])
        res.event = info.get("event")
        res.test = dict(info.get("test", {}))
        res.final_val_metric = res.val_metric[-1]
        steps = convergence_step(res.steps, res.val_metric)
        res.convergence_step = steps
        res.convergence_epoch = (
            float(np.interp(steps, res.steps, res.epochs)) if np.isfinite(steps) else steps
        )
        return res
    finally:
        env.close()


def _record(res: EpisodeResult, info: dict[str, Any], wall: float) -> None:
    res.steps.append(int(info["step"]))
    res.epochs.append(float(info["epoch"]))
    res.lrs.append(float(info["lr"]))
    res.val_metric.append(float(info["val_metric"]))
    res.val_loss.append(float(info["val_loss"]))
    res.train_loss.append(float(info["train_loss"]))
    res.wall.append(wall)
