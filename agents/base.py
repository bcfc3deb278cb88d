"""The controller interface shared by learned agents and hand-made baselines."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from lr_gym.tasks.base import Task


class Controller(abc.ABC):
    """Decides the LR action of an :class:`~lr_gym.envs.LRControlEnv` each interval.

    A controller may also change how the env is built (``env_kwargs``, e.g. the base
    schedule a schedule baseline follows) and the task (``wrap_task``, e.g. an
    optimizer-level baseline swaps the inner optimizer). Everything else (seeds, data
    order, budget) is the same for every controller, so runs are paired.

    Attributes:
        name: Short name used in tables and plots.
        tunable: Whether the controller's ``lr0`` may be tuned per task (baselines);
            learned controllers are evaluated untuned.
    """

    name: str = "controller"
    tunable: bool = False

    def env_kwargs(self) -> Mapping[str, Any]:
        """:class:`~lr_gym.config.EnvConfig` overrides this controller runs under."""
        return {}

    def wrap_task(self, task: Task) -> Task:
        """The task as this controller runs it (default: unchanged)."""
        return task

    def reset(self, env: gym.Env, obs: np.ndarray, info: dict[str, Any]) -> None:  # noqa: B027
        """Called after every ``env.reset`` (default: no state)."""

    @abc.abstractmethod
    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action in [-1, 1] for the next interval."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ConstantAction(Controller):
    """Always the same action: with ``a = 0`` the env follows its base schedule."""

    def __init__(self, action: float = 0.0, name: str = "constant-action") -> None:
        self.action = np.array([action], dtype=np.float32)
        self.name = name

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Returns the fixed action."""
        return self.action


class ScheduleBaseline(ConstantAction):
    """Follows a base schedule exactly (action 0 in anchored mode).

    Args:
        schedule: ``EnvConfig.schedule`` value, e.g. ``"constant"`` or ``"cosine"``.
        name: Table name.
        **schedule_kwargs: Other EnvConfig fields (``warmup_frac``, ``final_lr_frac``...).
    """

    tunable = True

    def __init__(self, schedule: str, name: str | None = None, **schedule_kwargs: Any) -> None:
        super().__init__(0.0, name or schedule)
        self._kwargs = {"mode": "anchored", "schedule": schedule, **schedule_kwargs}

    def env_kwargs(self) -> Mapping[str, Any]:
        """Anchored mode on the named schedule."""
        return self._kwargs


def static_lr() -> ScheduleBaseline:
    """The seed experiment's baseline: the task's lr0, unchanged for the whole run."""
    return ScheduleBaseline("constant", name="static")


def cosine_decay() -> ScheduleBaseline:
    """Cosine decay from lr0 to 0 over the budget."""
    return ScheduleBaseline("cosine", name="cosine")


BASELINES = {"static": static_lr, "cosine": cosine_decay}
"""Baseline factories by name (``evaluate_agent.py --baselines``)."""


def make_baseline(name: str) -> Controller:
    """Builds a baseline by name, with a clear error listing the known ones."""
    if name not in BASELINES:
        raise KeyError(f"Unknown baseline {name!r}; choose from {sorted(BASELINES)}.")
    return BASELINES[name]()
