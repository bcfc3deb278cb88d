"""`SampledTaskEnv`: a fresh task sampled from task families every episode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lr_gym.config import EnvConfig, check_int
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.envs.multi_task import PerEpisodeTaskEnv
from lr_gym.tasks.base import Task
from lr_gym.tasks.families.base import LR_SCALES, Mixture, Range, TaskFamily, get_family


def resolve_families(families: str | Sequence[str | TaskFamily]) -> list[TaskFamily]:
    """Turns family names (or :class:`TaskFamily` objects) into families.

    Raises:
        KeyError: An unknown family name.
        ValueError: No family at all.
    """
    if isinstance(families, str):
        families = [families]
    resolved = [f if isinstance(f, TaskFamily) else get_family(f) for f in families]
    if not resolved:
        raise ValueError("SampledTaskEnv needs at least one task family.")
    return resolved


class SampledTaskEnv(PerEpisodeTaskEnv):
    """Samples a family, then a fresh task of it, every episode, and runs the task.

    The episode seed fixes everything: ``reset(seed=s)`` draws the family, the task
    configuration (:meth:`TaskFamily.sample`) and the inner run's seed from ``s``, so
    the same seed gives the same task and, with the same actions, the same
    trajectory. Spaces, rewards, ``terminated``/``truncated`` and ``info`` are those
    of :class:`LRControlEnv`, forwarded as is; ``info["task"]`` is the sampled task's
    name, which encodes its configuration. Each episode builds a fresh
    :class:`LRControlEnv`; the data are cached per process by the families.

    Args:
        families: Family names (see :func:`lr_gym.tasks.families.base.get_family`) or
            :class:`TaskFamily` objects; one is drawn uniformly per episode.
        config: Shared :class:`EnvConfig` (its ``total_steps``/``steps_per_action``,
            if set, override every sampled task's).
        render_mode: ``"ansi"`` or None.
        lr_scale: The ``lr0`` scale distribution of every family, or its name in
            :data:`~lr_gym.tasks.families.base.LR_SCALES` (default: each family's own,
            x0.01-x100 log-uniform; task distribution v2 uses ``"v2"``).
        repeat: Episodes per drawn task and seed: a ``reset()`` without a seed replays
            the last draw until it has run ``repeat`` times, so a reference run of the
            paired reward serves ``repeat`` episodes (an explicit seed always draws).
        **overrides: :class:`EnvConfig` fields.

    Raises:
        ValueError: ``total_steps`` is overridden without ``steps_per_action``
            (a sampled interval could exceed the budget).
    """

    def __init__(
        self,
        families: str | Sequence[str | TaskFamily],
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        lr_scale: Range | Mixture | str | None = None,
        repeat: int = 1,
        **overrides: Any,
    ) -> None:
        self.families = resolve_families(families)
        if isinstance(lr_scale, str):
            if lr_scale not in LR_SCALES:
                raise ValueError(f"lr_scale={lr_scale!r} is not a named distribution; choose "
                                 f"one of {sorted(LR_SCALES)} or pass a Range or Mixture.")
            lr_scale = LR_SCALES[lr_scale]
        if lr_scale is not None:
            self.families = [f.with_lr_scale(lr_scale) for f in self.families]
        self.repeat = check_int("repeat", repeat, lo=1)
        self.config = (config or EnvConfig()).replace(**overrides)
        if self.config.total_steps is not None and self.config.steps_per_action is None:
            raise ValueError("SampledTaskEnv: pass steps_per_action together with "
                             "total_steps (a sampled interval could exceed the budget).")
        self.render_mode = render_mode
        # Spaces do not depend on the task; a probe env builds no model and loads no data.
        probe = self._build(self.families[0].sample(np.random.default_rng(0)))
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        self.current = probe

    def _build(self, task: Task) -> LRControlEnv:
        return LRControlEnv(task, self.config, render_mode=self.render_mode)

    def _next_env(self, options: dict[str, Any] | None) -> LRControlEnv:
        """A uniformly drawn family's fresh task; ``options={"family": name}`` forces one."""
        i = int(self.np_random.integers(len(self.families)))
        if options and "family" in options:
            names = [f.name for f in self.families]
            if options["family"] not in names:
                raise KeyError(f"Family {options['family']!r} is not one of this env's "
                               f"families {names}.")
            i = names.index(options["family"])
        task_rng = np.random.default_rng(int(self.np_random.integers(0, 2**63 - 1)))
        task = self.families[i].sample(task_rng)
        self.current.close()
        return self._build(task)
