"""Hypergradient descent optimizers: SGD-HD and Adam-HD.

Baydin, Cornish, Martinez Rubio, Schmidt, Wood (ICLR 2018), "Online Learning Rate
Adaptation with Hypergradient Descent". Before each update the learning rate takes one
gradient step on the loss with respect to itself. If the previous update was
``u_{t-1} = -lr * d_{t-1}`` (``d`` the optimizer's direction), then
``d f(theta_{t-1}) / d lr = -g_t . d_{t-1}`` and

    lr_t = lr_{t-1} + beta * g_t . d_{t-1},     theta_t = theta_{t-1} - lr_t * d_t.

For plain SGD ``d = g``; with momentum ``d`` is the momentum buffer (or the Nesterov
direction); for Adam ``d = m_hat / (sqrt(v_hat) + eps)``, the bias-corrected Adam
direction. The first step has no previous direction and keeps ``lr``. The optimizer owns
its LR (one scalar per param group, adapted from the dot product over that group's
parameters), so an env running it needs ``EnvConfig(optimizer_sets_lr=True)``. No
maintained package implements this; these follow the paper and its reference code
(github.com/gbaydin/hypergradient-descent), with the same momentum, dampening,
weight-decay and bias-correction semantics as ``torch.optim.SGD``/``Adam``/``AdamW``, so
``hypergrad_lr=0`` reproduces torch's optimizers exactly. The LR is not clipped (as in
the paper); a negative LR shows up as a diverging run.

Default ``hypergrad_lr`` (``beta``) are the paper's: 1e-3 for SGD-HD and SGDN-HD, 1e-7
for Adam-HD (its logistic-regression and MLP experiments; 1e-8 for VGG).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

SGD_HD_BETA = 1e-3
"""Paper's hypergradient LR for SGD-HD and SGDN-HD."""
ADAM_HD_BETA = 1e-7
"""Paper's hypergradient LR for Adam-HD."""


def _hypergradient(group: dict[str, Any], state: Any, grads: list[torch.Tensor]) -> float:
    """``sum_p g_t . d_{t-1}`` over a group (0 on the first step): one host sync."""
    dots = [
        torch.dot(g.reshape(-1), state[p]["prev_dir"].reshape(-1))
        for p, g in zip(group["params"], grads, strict=True)
        if g is not None and "prev_dir" in state[p]
    ]
    return float(torch.stack(dots).sum()) if dots else 0.0


class SGDHD(torch.optim.Optimizer):
    """SGD (optionally with momentum) whose LR adapts by hypergradient descent.

    Args:
        params: Parameters or param-group dicts.
        lr: Initial learning rate ``lr_0``.
        momentum: Momentum factor (torch semantics: ``buf = m * buf + (1 - dampening) * g``).
        dampening: Momentum dampening.
        weight_decay: L2 penalty added to the gradient (part of ``g`` in the hypergradient).
        nesterov: Nesterov momentum (direction ``g + m * buf``).
        hypergrad_lr: ``beta``, the hypergradient step size.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        hypergrad_lr: float = SGD_HD_BETA,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or hypergrad_lr < 0:
            raise ValueError("SGDHD: lr, momentum, weight_decay and hypergrad_lr must be >= 0.")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGDHD: Nesterov momentum needs momentum > 0 and dampening 0.")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            hypergrad_lr=hypergrad_lr,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update: adapt the LR from ``g_t . d_{t-1}``, then step with it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            wd, mom = group["weight_decay"], group["momentum"]
            grads = [
                None if p.grad is None else (p.grad.add(p, alpha=wd) if wd else p.grad)
                for p in group["params"]
            ]
            group["lr"] += group["hypergrad_lr"] * _hypergradient(group, self.state, grads)
            for p, g in zip(group["params"], grads, strict=True):
                if g is None:
                    continue
                state = self.state[p]
                if mom:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf.mul_(mom).add_(g, alpha=1 - group["dampening"])
                    d = g.add(buf, alpha=mom) if group["nesterov"] else buf
                else:
                    d = g.clone()
                # With plain momentum d is the buffer itself: it is read (as d_{t-1})
                # before the buffer is updated in place next step.
                state["prev_dir"] = d
                p.add_(d, alpha=-group["lr"])
        return loss


class AdamHD(torch.optim.Optimizer):
    """Adam (or AdamW) whose LR adapts by hypergradient descent.

    Args:
        params: Parameters or param-group dicts.
        lr: Initial learning rate ``lr_0``.
        betas: Moment decay rates.
        eps: Denominator term (torch's placement: ``sqrt(v_hat) + eps``).
        weight_decay: L2 penalty on the gradient (Adam) or decoupled decay (AdamW).
        decoupled_weight_decay: AdamW semantics, ``theta *= 1 - lr * weight_decay``; the
            decay is then part of the update direction the hypergradient sees.
        hypergrad_lr: ``beta``, the hypergradient step size.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        hypergrad_lr: float = ADAM_HD_BETA,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or hypergrad_lr < 0:
            raise ValueError("AdamHD: lr, eps, weight_decay and hypergrad_lr must be >= 0.")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"AdamHD: betas must be in [0, 1), got {betas}.")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            hypergrad_lr=hypergrad_lr,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update: adapt the LR from ``g_t . d_{t-1}``, then an Adam step with it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (b1, b2), wd = group["betas"], group["weight_decay"]
            decoupled = group["decoupled_weight_decay"]
            grads = [
                None
                if p.grad is None
                else (p.grad.add(p, alpha=wd) if wd and not decoupled else p.grad)
                for p in group["params"]
            ]
            group["lr"] += group["hypergrad_lr"] * _hypergradient(group, self.state, grads)
            lr = group["lr"]
            for p, g in zip(group["params"], grads, strict=True):
                if g is None:
                    continue
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, k = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2**k)).add_(group["eps"])
                d = (m / (1 - b1**k)).div_(denom)
                if decoupled and wd:
                    d.add_(p, alpha=wd)  # u = -lr * (adam_dir + wd * theta)
                state["prev_dir"] = d
                p.add_(d, alpha=-lr)
        return loss
