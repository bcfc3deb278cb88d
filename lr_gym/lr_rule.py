"""The learning-rate rule, written once for the env, deployed controllers and baselines.

An action ``a`` in [-1, 1] maps to a factor ``m = max_factor ** a``
(:func:`action_to_multiplier`, inverse :func:`multiplier_to_action`); the LR
multiplier ``M`` follows it (:func:`next_multiplier`: ``"anchored"`` replaces it,
``"recursive"`` accumulates it) and the LR at optimizer step ``t`` is
``clamp(lr0 * schedule(t) * M, lr_min, lr_max)`` (:func:`clamped_lr`, bounds from
:func:`lr_bounds`). :func:`set_lr` scales every param group from its initial LR by the
same factor, and :func:`grad_norm` is the gradient norm the features see.

:class:`~lr_gym.envs.LRControlEnv` and :class:`lr_gym.control.LRController` both use
these functions through one :class:`LRState`, which is why a deployed controller
reproduces the env's LRs exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from lr_gym.schedules import CLOSED_FORM_SCHEDULES, schedule_factor, schedule_factors

LR_MIN_FACTOR = 1e-3
"""``lr_min=None`` means ``lr0 * LR_MIN_FACTOR``."""
LR_MAX_FACTOR = 30.0
"""``lr_max=None`` means ``lr0 * LR_MAX_FACTOR``."""


def action_to_multiplier(action: Any, max_factor: float) -> tuple[float, float]:
    """Maps a raw action to ``(a, max_factor ** a)``.

    The action is clipped to [-1, 1]; NaN (or a non-numeric entry) counts as 0, i.e.
    "no change", so a broken policy output cannot crash or derail a run.

    Args:
        action: The raw action (a number or anything holding one first).
        max_factor: Largest factor of one action.

    Returns:
        The clipped action and its factor.
    """
    try:
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        a = 0.0
    if math.isnan(a):
        a = 0.0
    a = min(max(a, -1.0), 1.0)
    return a, math.exp(a * math.log(max_factor))


def multiplier_to_action(factor: float, max_factor: float) -> float:
    """The action whose factor is ``factor``: ``log(factor) / log(max_factor)`` (unclipped).

    Args:
        factor: The wanted factor (> 0).
        max_factor: Largest factor of one action.

    Returns:
        The action (outside [-1, 1] when ``factor`` is beyond one action's reach).
    """
    return math.log(factor) / math.log(max_factor)


def lr_bounds(lr0: float, lr_min: float | None, lr_max: float | None,
              min_factor: float = LR_MIN_FACTOR, max_factor: float = LR_MAX_FACTOR,
              ) -> tuple[float, float]:
    """The LR clamp ``(lr_min, lr_max)``; ``None`` takes a factor of ``lr0``.

    Args:
        lr0: The reference LR.
        lr_min: Lowest LR, or None for ``lr0 * min_factor``.
        lr_max: Highest LR, or None for ``lr0 * max_factor``.
        min_factor: The lowest LR as a factor of ``lr0`` when ``lr_min`` is None.
        max_factor: The highest LR as a factor of ``lr0`` when ``lr_max`` is None.

    Returns:
        ``(lr_min, lr_max)``.
    """
    return (
        lr_min if lr_min is not None else lr0 * min_factor,
        lr_max if lr_max is not None else lr0 * max_factor,
    )


def next_multiplier(
    mode: str, multiplier: float, m: float, base_lr: float, lr_min: float, lr_max: float
) -> float:
    """The LR multiplier after an action's factor ``m``.

    ``"anchored"`` replaces the multiplier with ``m``; ``"recursive"`` accumulates it and
    keeps it inside the LR bounds at ``base_lr`` so it cannot wind up.

    Args:
        mode: ``"anchored"`` or ``"recursive"``.
        multiplier: The current multiplier ``M``.
        m: The action's factor.
        base_lr: ``lr0 * schedule(t)`` at the decision.
        lr_min: Lowest LR.
        lr_max: Highest LR.

    Returns:
        The new multiplier.
    """
    if mode != "recursive":
        return m
    base = max(base_lr, 1e-30)
    return min(max(multiplier * m, lr_min / base), lr_max / base)


def clamped_lr(base_lr: float, multiplier: float, lr_min: float, lr_max: float) -> float:
    """The LR ``base_lr * multiplier`` clamped to ``[lr_min, lr_max]``.

    Args:
        base_lr: ``lr0 * schedule(t)``.
        multiplier: The LR multiplier ``M``.
        lr_min: Lowest LR.
        lr_max: Highest LR.

    Returns:
        The LR of the step.
    """
    return min(max(base_lr * multiplier, lr_min), lr_max)


def set_lr(
    optimizer: torch.optim.Optimizer, group_lr0: Sequence[float], lr: float, lr0: float
) -> None:
    """Sets every param group's LR to its initial LR scaled by ``lr / lr0``.

    Args:
        optimizer: The optimizer.
        group_lr0: Each param group's initial LR.
        lr: The LR of the reference (first) group.
        lr0: The reference LR.
    """
    scale = lr / lr0
    for group, base in zip(optimizer.param_groups, group_lr0, strict=True):
        group["lr"] = base * scale


def grad_norm(params: Iterable[torch.nn.Parameter | torch.Tensor]) -> torch.Tensor | None:
    """The global L2 norm of the parameters' gradients (None if none has one).

    The same number as ``torch.nn.utils.clip_grad_norm_`` reports, without clipping,
    as a tensor (no host sync).

    Args:
        params: Parameters (those without a gradient are skipped).

    Returns:
        A 0-d tensor, or None when no parameter has a gradient.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


BACK_OFF_FACTOR = 0.5
"""What a guard's rollback multiplies the LR by."""
BACK_OFF_BLOCK = 2
"""Decisions after a rollback whose LR increases are blocked."""


class LRState:
    """The LR rule of one run, held by the env and by the deployed controller alike.

    It owns the base schedule, the multiplier ``M`` the actions move, the clamp, and what
    a guard's rollback changes (:meth:`back_off`: a persistent factor and a few decisions
    without increases), so any new rule is written here once. The LR at optimizer step
    ``t`` is ``clamp(lr0 * schedule(t) * M * scale, lr_min, lr_max)``.

    Args:
        lr0: The reference LR (the first param group's).
        total_steps: The budget ``T`` the schedule spans.
        group_lr0: Every param group's initial LR (each is scaled by ``lr / lr0``).
        mode: ``"anchored"`` or ``"recursive"`` (see :func:`next_multiplier`).
        max_factor: Largest factor of one action.
        schedule: Base schedule name (:data:`lr_gym.schedules.SCHEDULES`).
        warmup_frac: Warmup fraction of the base schedule.
        final_lr_frac: Final factor of decaying base schedules.
        lr_min: Lowest LR.
        lr_max: Highest LR.
    """

    def __init__(self, *, lr0: float, total_steps: int, group_lr0: Sequence[float],
                 mode: str, max_factor: float, schedule: str, warmup_frac: float = 0.0,
                 final_lr_frac: float = 0.0, lr_min: float, lr_max: float) -> None:
        self.lr0, self.total_steps, self.group_lr0 = lr0, total_steps, list(group_lr0)
        self.mode, self.max_factor = mode, max_factor
        self.schedule, self.warmup_frac, self.final_lr_frac = schedule, warmup_frac, final_lr_frac
        self.lr_min, self.lr_max = lr_min, lr_max
        # Torch-built schedules have no closed form: their factors are computed once.
        self._factors = (None if schedule in CLOSED_FORM_SCHEDULES else schedule_factors(
            schedule, total_steps, warmup_frac=warmup_frac, final_lr_frac=final_lr_frac))
        self.multiplier = 1.0
        self.action = 0.0
        self.scale = 1.0
        self.blocked = 0
        self.raised = False

    @classmethod
    def from_config(cls, config: Any, *, lr0: float, total_steps: int,
                    group_lr0: Sequence[float], lr_min: float, lr_max: float) -> LRState:
        """The rule of an :class:`~lr_gym.config.EnvConfig` (bounds already resolved)."""
        return cls(lr0=lr0, total_steps=total_steps, group_lr0=group_lr0, mode=config.mode,
                   max_factor=config.max_factor, schedule=config.schedule,
                   warmup_frac=config.warmup_frac, final_lr_frac=config.final_lr_frac,
                   lr_min=lr_min, lr_max=lr_max)

    def base_lr(self, step: int) -> float:
        """``lr0 * schedule(step)``."""
        step = min(step, self.total_steps)
        if self._factors is not None:
            return self.lr0 * float(self._factors[step])
        return self.lr0 * schedule_factor(self.schedule, step, self.total_steps,
                                          warmup_frac=self.warmup_frac,
                                          final_lr_frac=self.final_lr_frac)

    def lr_at(self, step: int) -> float:
        """The LR of optimizer step ``step``."""
        return clamped_lr(self.base_lr(step), self.multiplier * self.scale, self.lr_min,
                          self.lr_max)

    def decide(self, action: Any, step: int) -> float:
        """Applies one decision at optimizer step ``step``; returns the action taken.

        The action is sanitised (:func:`action_to_multiplier`) and, while increases are
        blocked after a rollback, capped at 0. :attr:`raised` says whether the LR rose.
        """
        a, _ = action_to_multiplier(action, self.max_factor)
        if self.blocked > 0:
            a = min(a, 0.0)
            self.blocked -= 1
        m = math.exp(a * math.log(self.max_factor))
        before = self.lr_at(step)
        self.multiplier = next_multiplier(self.mode, self.multiplier, m,
                                          self.base_lr(step) * self.scale, self.lr_min,
                                          self.lr_max)
        self.action = a
        self.raised = self.lr_at(step) > before
        return a

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Sets every param group's LR for optimizer step ``step``; returns the LR."""
        lr = self.lr_at(step)
        set_lr(optimizer, self.group_lr0, lr, self.lr0)
        return lr

    def back_off(self) -> None:
        """A guard's rollback: the LR falls for good, and increases are blocked a while.

        The persistent factor shrinks by :data:`BACK_OFF_FACTOR` and the next
        :data:`BACK_OFF_BLOCK` decisions cannot raise the LR.
        """
        self.scale *= BACK_OFF_FACTOR
        self.blocked = BACK_OFF_BLOCK

    def state_dict(self) -> dict[str, float]:
        """What moves during a run (the rule's settings are rebuilt from the config)."""
        return {"multiplier": self.multiplier, "action": self.action, "scale": self.scale,
                "blocked": self.blocked, "raised": self.raised}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` (older states without guard fields are fine)."""
        self.multiplier = float(state["multiplier"])
        self.action = float(state.get("action", 0.0))
        self.scale = float(state.get("scale", 1.0))
        self.blocked = int(state.get("blocked", 0))
        self.raised = bool(state.get("raised", False))
