"""The learning-rate rule, written once for the env, deployed controllers and baselines.

An action ``a`` in [-1, 1] maps to a factor ``m = max_factor ** a``
(:func:`action_to_multiplier`, inverse :func:`multiplier_to_action`); the LR
multiplier ``M`` follows it (:func:`next_multiplier`: ``"anchored"`` replaces it,
``"recursive"`` accumulates it) and the LR at optimizer step ``t`` is
``clamp(lr0 * schedule(t) * M, lr_min, lr_max)`` (:func:`clamped_lr`, bounds from
:func:`lr_bounds`). :func:`set_lr` scales every param group from its initial LR by the
same factor, and :func:`grad_norm` is the gradient norm the features see.

:class:`~lr_gym.envs.LRControlEnv` and :class:`agents.controller.LRController` both use
these functions, which is why a deployed controller reproduces the env's LRs exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

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


def lr_bounds(lr0: float, lr_min: float | None, lr_max: float | None) -> tuple[float, float]:
    """The LR clamp ``(lr_min, lr_max)``; ``None`` takes the default factor of ``lr0``.

    Args:
        lr0: The reference LR.
        lr_min: Lowest LR, or None for ``lr0 * LR_MIN_FACTOR``.
        lr_max: Highest LR, or None for ``lr0 * LR_MAX_FACTOR``.

    Returns:
        ``(lr_min, lr_max)``.
    """
    return (
        lr_min if lr_min is not None else lr0 * LR_MIN_FACTOR,
        lr_max if lr_max is not None else lr0 * LR_MAX_FACTOR,
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
