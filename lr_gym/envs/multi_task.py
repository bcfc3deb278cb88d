"""`MultiTaskEnv`: one task sampled per episode, to train one controller across tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from lr_gym.config import EnvConfig
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.registration import resolve_tasks
from lr_gym.tasks.base import Task

__all__ = ["MultiTaskEnv", "resolve_tasks"]


class MultiTaskEnv(gym.Env[np.ndarray, np.ndarray]):
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

    metadata = LRControlEnv.metadata

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
        self.current: LRControlEnv = first

    def _env(self, i: int) -> LRControlEnv:
        if i not in self._envs:
            self._envs[i] = LRControlEnv(self.tasks[i], self.config, render_mode=self.render_mode)
        return self._envs[i]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Samples a task and starts its run; ``options={"task": i}`` forces task ``i``."""
        super().reset(seed=seed)
        i = int(self.np_random.integers(len(self.tasks)))
        if options and "task" in options:
            i = int(options["task"])
        inner_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.current = self._env(i)
        return self.current.reset(seed=inner_seed)

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Delegates to the current task's env."""
        return self.current.step(action)

    def render(self) -> str | None:
        """The current task's one-line status."""
        return self.current.render()

    def close(self) -> None:
        """Closes every task env."""
        for env in self._envs.values():
            env.close()
