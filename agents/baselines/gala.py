"""A GALA-style optimizer wrapper: the LR follows gradient alignment and local curvature.

GALA (Jiang, Kavis, Mokhtari 2025, "Online Learning-guided Learning Rate Adaptation via
Gradient Alignment", arXiv 2506.08419) adapts the LR from the alignment of consecutive
gradients with a local curvature estimate, solved as a one-dimensional online-learning
problem; its schedule "tends to increase when consecutive gradients are aligned and
decrease otherwise". Its code is not available offline, so this is a rule built on the
same two quantities, not the paper's solver:

For the last update ``s = x_t - x_{t-1}``, the loss along ``s`` is locally a parabola with
slope ``-a = <g_{t-1}, s>`` at its start and curvature ``c = <g_t - g_{t-1}, s>`` over
it. The step that would have reached its minimum is ``a / c`` times the one taken: a
ratio above 1 means the step was too short (consecutive gradients still aligned), below
1 too long. The wrapper keeps exponential averages of ``a`` and ``c`` over steps (their
ratio is a follow-the-leader estimate, robust to minibatch noise, which inflates ``c``
and averages out of ``a``) and moves the LR a little towards that multiple each step:
``lr <- lr * clip(A / C, 1/2, 2) ** RATE``, kept within ``[lr0 / 100, 100 lr0]``.

It wraps any torch optimizer (the direction is the inner optimizer's: momentum and
Adam's preconditioning included), so an env running it needs
``EnvConfig(optimizer_sets_lr=True)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

RATE = 0.1
"""Fraction (in log) of the estimated correction applied per step."""
EMA = 0.9
"""Decay of the averages of slope and curvature."""
RANGE = 100.0
"""The LR stays within ``[lr0 / RANGE, lr0 * RANGE]``."""


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


class GALAStyle(torch.optim.Optimizer):
    """Wraps ``base(params, lr=lr, **base_kwargs)`` and adapts its LR every step.

    Args:
        params: Parameters or param-group dicts.
        lr: Initial learning rate ``lr0``.
        base: The inner optimizer class.
        **base_kwargs: The inner optimizer's other arguments.
    """

    def __init__(self, params: Any, lr: float, base: type[torch.optim.Optimizer] = torch.optim.SGD,
                 **base_kwargs: Any) -> None:
        self.inner = base(params, lr=lr, **base_kwargs)
        # Share the inner optimizer's groups and state: what the env and tests see.
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state
        self.defaults = self.inner.defaults
        self._optimizer_step_pre_hooks = self.inner._optimizer_step_pre_hooks
        self._optimizer_step_post_hooks = self.inner._optimizer_step_post_hooks
        self._lr0 = [g["lr"] for g in self.param_groups]
        self._prev_grad: torch.Tensor | None = None
        self._prev_step: torch.Tensor | None = None
        self._slope = self._curv = 0.0

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Adapts the LR from the last step's parabola, then takes the inner step."""
        params = self._params()
        grad = _flat([p.grad for p in params])
        if self._prev_grad is not None and self._prev_step is not None and \
                self._prev_grad.numel() == grad.numel():
            a = -float(self._prev_grad.dot(self._prev_step))
            c = float((grad - self._prev_grad).dot(self._prev_step))
            if math.isfinite(a) and math.isfinite(c):
                self._slope = EMA * self._slope + (1 - EMA) * a
                self._curv = EMA * self._curv + (1 - EMA) * c
                if self._curv > 0 and self._slope > 0:
                    ratio = min(max(self._slope / self._curv, 0.5), 2.0)
                elif self._slope > 0:  # no curvature seen along a descent: go further
                    ratio = 2.0
                else:  # ascending along the last step: too long
                    ratio = 0.5
                for g, lr0 in zip(self.param_groups, self._lr0, strict=True):
                    g["lr"] = min(max(g["lr"] * ratio**RATE, lr0 / RANGE), lr0 * RANGE)
        before = _flat(params)
        loss = self.inner.step(closure)
        self._prev_step = _flat(params) - before
        self._prev_grad = grad
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The inner optimizer's ``zero_grad``."""
        self.inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state (the averages restart after a load)."""
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads the inner optimizer's state."""
        self.inner.load_state_dict(state_dict)
        self.param_groups = self.inner.param_groups
