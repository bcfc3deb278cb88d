"""The controller interface shared by learned agents and hand-made baselines."""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from lr_gym.tasks.base import Task


def action_array(value: float) -> np.ndarray:
    """An action as the env takes it.

    float64: the env maps actions in float64, so a computed factor arrives unrounded.
    """
    return np.array([value], dtype=np.float64)


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
        lr: The ``lr0`` this controller runs the task with (set by :meth:`with_lr`);
            ``None`` runs it at :meth:`default_lr`.

    Evaluation has two tracks (AlgoPerf): self-tuning runs every controller untuned, at
    :meth:`default_lr`; external tuning gives every tunable controller the same number
    of trials over its own :meth:`search_space` around :meth:`default_lr`.
    """

    name: str = "controller"
    tunable: bool = False
    lr: float | None = None

    def env_kwargs(self) -> Mapping[str, Any]:
        """:class:`~lr_gym.config.EnvConfig` overrides this controller runs under."""
        return {}

    def default_lr(self, task: Task) -> float:
        """The ``lr0`` this controller runs ``task`` with untuned (self-tuning track).

        Default: the task's own ``lr0``. Baselines whose package documents its own
        default (e.g. ``lr=1.0`` for the learning-rate-free optimizers) override it.
        """
        return float(task.lr)

    def search_space(self, task: Task) -> tuple[float, float]:
        """The tuning range ``(lo, hi)`` as log10 exponents relative to :meth:`default_lr`.

        Trials run at ``default_lr(task) * 10 ** u`` for ``u`` in ``[lo, hi]``
        (external-tuning track). Default ``(-2.0, 2.0)``: two decades either side, the
        LR schedules' space. Baselines with a documented range override it.
        """
        return (-2.0, 2.0)

    def wrap_task(self, task: Task) -> Task:
        """The task as this controller runs it: ``lr0`` = ``lr`` if set, else :meth:`default_lr`.

        The task is only replaced when that ``lr0`` differs from its own. Subclasses that
        change the task further call ``super().wrap_task(task)`` first.
        """
        lr = self.lr if self.lr is not None else self.default_lr(task)
        return task if lr == task.lr else dataclasses.replace(task, lr=lr)

    def with_lr(self, lr: float) -> Controller:
        """A copy that runs every task at ``lr0 = lr`` (what a tuner calls).

        Raises:
            TypeError: The controller is not tunable (learned controllers).
            ValueError: ``lr`` is not positive.
        """
        if not self.tunable:
            raise TypeError(f"Controller {self.name!r} is not tunable; it runs at the task's lr0.")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}.")
        new = copy.copy(self)
        new.lr = float(lr)
        return new

    def reset(self, env: gym.Env, obs: np.ndarray, info: dict[str, Any]) -> None:  # noqa: B027
        """Called after every ``env.reset`` (default: no state)."""

    @abc.abstractmethod
    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action in [-1, 1] for the next interval."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ConstantAction(Controller):
    """Always the same action: with ``a = 0`` the env follows its base schedule.

    Args:
        action: The action in [-1, 1].
        name: Table name.
        env_kwargs: :class:`~lr_gym.config.EnvConfig` overrides it runs under (e.g. a
            learned controller's LR rule: :meth:`PolicyController.zero_action`).
    """

    def __init__(self, action: float = 0.0, name: str = "constant-action",
                 env_kwargs: Mapping[str, Any] | None = None) -> None:
        self.action = np.array([action], dtype=np.float32)
        self.name = name
        self._env = dict(env_kwargs or {})

    def env_kwargs(self) -> Mapping[str, Any]:
        """The overrides given (none by default)."""
        return self._env

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Returns the fixed action."""
        return self.action


class ScheduleBaseline(ConstantAction):
    """Follows a base schedule exactly (action 0 in anchored mode).

    The env's LR floor is off (``lr_min=0``) so the LR is exactly the schedule's, e.g.
    a cosine really reaches 0 as ``CosineAnnealingLR`` does.

    Args:
        schedule: ``EnvConfig.schedule`` value, e.g. ``"constant"`` or ``"cosine"``.
        name: Table name.
        **schedule_kwargs: Other EnvConfig fields (``warmup_frac``, ``final_lr_frac``...).
    """

    tunable = True

    def __init__(self, schedule: str, name: str | None = None, **schedule_kwargs: Any) -> None:
        # Anchored mode on the named schedule.
        super().__init__(0.0, name or schedule, {"mode": "anchored", "schedule": schedule,
                                                 "lr_min": 0.0, **schedule_kwargs})

