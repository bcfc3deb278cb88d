"""Envs that run one task per episode: `MultiTaskEnv` picks it from a fixed list.

:class:`PerEpisodeTaskEnv` is what every such env shares (delegation to the current
task's :class:`LRControlEnv`); :class:`MultiTaskEnv` picks from a fixed list of tasks
and :class:`lr_gym.envs.sampled.SampledTaskEnv` samples a fresh task from families.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from lr_gym.config import EnvConfig
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.registration import resolve_tasks
from lr_gym.tasks.base import Task

__all__ = ["MultiTaskEnv", "PerEpisodeTaskEnv", "resolve_tasks"]


class PerEpisodeTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """Runs one :class:`LRControlEnv` per episode, chosen at ``reset``.

    Subclasses set ``config``, ``render_mode``, the spaces and a first ``current``
    env in ``__init__``, and implement :meth:`_next_env`. Spaces, rewards,
    ``terminated``/``truncated`` and ``info`` are the inner env's, forwarded as is.
    """

    metadata = LRControlEnv.metadata
    config: EnvConfig
    current: LRControlEnv
    repeat: int = 1
    _replays_left: int = 0
    _inner_seed: int = 0

    @abstractmethod
    def _next_env(self, options: dict[str, Any] | None) -> LRControlEnv:
        """The env of the next episode, drawn from ``self.np_random``."""
        raise NotImplementedError

    @property
    def total_steps(self) -> int:
        """The current episode's budget in optimizer steps."""
        return self.current.total_steps

    @property
    def steps_per_action(self) -> int:
        """The current episode's optimizer steps per env step."""
        return self.current.steps_per_action

    def pinned(self) -> contextlib.AbstractContextManager[None]:
        """The episodes' torch settings: every task's env shares this env's config."""
        return self.current.pinned()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Picks the episode's task from the seed and starts its run."""
        super().reset(seed=seed)
        if seed is None and not options and self._replays_left > 0:
            self._replays_left -= 1  # the same task and seed again (``repeat``)
            return self.current.reset(seed=self._inner_seed)
        env = self._next_env(options)
        self._inner_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._replays_left = self.repeat - 1
        self.current = env
        return env.reset(seed=self._inner_seed)

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Delegates to the current task's env."""
        return self.current.step(action)

    def render(self) -> str | None:
        """The current task's one-line status."""
        return self.current.render()

    def close(self) -> None:
        """Closes the current task's env."""
        self.current.close()


class MultiTaskEnv(PerEpisodeTaskEnv):
    """Samples one task per episode (uniformly, from the episode seed) and runs it.

    Spaces, rewards and ``info`` are those of :class:`LRControlEnv` (which documents
    them); ``info["task"]`` names the sampled task. Each task's env is built on first
    use and reused, so data is loaded once per task.

    Args:
        tasks: See :func:`resolve_tasks`.
        config: Shared :class:`EnvConfig`.
        render_mode: ``"ansi"`` or None.
        **overrides: :class:`EnvConfig` fields.
    """

    def __init__(
        self,
        tasks: str | Sequence[str | Task],
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.tasks = resolve_tasks(tasks)
        self.config = (config or EnvConfig()).replace(**overrides)
        self.render_mode = render_mode
        self._envs: dict[int, LRControlEnv] = {}
        first = self._env(0)
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.current = first

    def _env(self, i: int) -> LRControlEnv:
        if i not in self._envs:
            self._envs[i] = LRControlEnv(self.tasks[i], self.config, render_mode=self.render_mode)
        return self._envs[i]

    def _next_env(self, options: dict[str, Any] | None) -> LRControlEnv:
        """A uniformly drawn task; ``options={"task": i}`` forces task ``i``."""
        i = int(self.np_random.integers(len(self.tasks)))
        if options and "task" in options:
            i = int(options["task"])
        return self._env(i)

    def close(self) -> None:
        """Closes every task env."""
        for env in self._envs.values():
            env.close()
