"""Step-size signals measured on a control interval's gradients, for the env and deployment.

Three classic signals of an LR that is too high or too low (hypergradient descent, GALA,
LHOPT, McCandlish et al. 2018):

* the cosine of consecutive minibatch gradients: near 1 when steps are too small to
  change the gradient, near 0 or negative when they overshoot;
* the cosine of the negative gradient with the optimizer's actual update (momentum and
  Adam's preconditioning included): how well the update still follows the gradient;
* a gradient noise ratio ``B_noise / B``: the simple noise scale of McCandlish et al.
  (``tr(Sigma) / |G|^2``) over the batch size, from the spread of the interval's
  minibatch gradients around their mean. Above 1, noise dominates the step.

They cost a few passes over the gradients, so only the last :data:`PROBES` optimizer
steps of an interval are probed (seven consecutive pairs): the env-overhead benchmark
measures what remains. :class:`GradientProbe` is used by
:class:`~lr_gym.envs.LRControlEnv` and :class:`lr_gym.control.LRController` alike,
which is why both compute the same features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lr_gym.features import snapshot, update_ratio

if TYPE_CHECKING:
    import torch

PROBES = 8
"""Optimizer steps probed at the end of each interval (at most: all of a shorter one)."""


class GradientProbe:
    """Collects the gradient statistics of one control interval.

    Call :meth:`start` at the interval's start with its length, :meth:`wants` before each
    optimizer step, :meth:`observe` with the step's gradients (before any clipping) when
    it wants them, and read :meth:`interval_stats` at the end.

    Args:
        probes: How many of the interval's last optimizer steps are probed.
    """

    def __init__(self, probes: int = PROBES) -> None:
        self.probes = probes
        self.start(0)

    def start(self, steps: int) -> None:
        """Begins an interval of ``steps`` optimizer steps."""
        self._first = max(steps - self.probes, 0)
        self._prev: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._cosines: list[float] = []
        self._sq_norms: list[float] = []

    def wants(self, i: int) -> bool:
        """Whether step ``i`` (0-based, within the interval) is probed."""
        return i >= self._first

    def observe(self, grads: Sequence[torch.Tensor]) -> None:
        """Folds in one probed step's gradients (one flat copy is kept)."""
        import torch

        if not grads:
            return
        # One flat copy: a handful of ops per probe, whatever the number of tensors.
        g = torch.cat(flat(grads))
        if self._prev is not None and self._prev.numel() == g.numel():
            # Both dot products in one host sync.
            sq, dot = torch.stack((torch.dot(g, g), torch.dot(g, self._prev))).tolist()
        else:
            sq, dot = float(torch.dot(g, g)), math.nan
        if not math.isfinite(sq) or (self._sum is not None and self._sum.numel() != g.numel()):
            self._prev = None  # a non-finite gradient breaks the chain of pairs
            return
        if self._prev is not None:
            denom = math.sqrt(sq * self._prev_sq)
            if denom > 0:
                self._cosines.append(dot / denom)
        self._sq_norms.append(sq)
        if self._sum is None:
            self._sum = g.clone()
        else:
            self._sum.add_(g)
        self._prev, self._prev_sq = g, sq

    def interval_stats(self) -> tuple[float, float]:
        """``(mean consecutive-gradient cosine, B_noise / B)``; NaN where unmeasured.

        With ``n`` probed gradients ``g_i`` of one batch size, ``S = sum |g_i - mean|^2
        / (n - 1)`` estimates ``tr(Sigma) / B`` and ``|mean|^2 - S / n`` estimates
        ``|G|^2``; their ratio is ``B_noise / B`` (``inf`` when the signal estimate is
        not positive: noise dominates).
        """
        cos = sum(self._cosines) / len(self._cosines) if self._cosines else math.nan
        n = len(self._sq_norms)
        if n < 2 or self._sum is None:
            return cos, math.nan
        mean_sq = float(self._sum.dot(self._sum)) / n**2
        spread = (sum(self._sq_norms) - n * mean_sq) / (n - 1)
        signal = mean_sq - spread / n
        noise = math.inf if signal <= 0 else max(spread, 0.0) / signal
        return cos, noise


def update_alignment(grads: Sequence[torch.Tensor], before: Sequence[torch.Tensor],
                     after: Sequence[torch.Tensor]) -> float:
    """``cos(-g, w_after - w_before)``: 1 when the update is a plain gradient step.

    Args:
        grads: The step's gradients.
        before: The parameters before the optimizer step.
        after: The parameters after it.

    Returns:
        The cosine, or NaN when either vector is zero or not finite.
    """
    import torch

    if not grads or len(grads) != len(before):
        return math.nan
    g = torch.cat(flat(grads))
    delta = torch.cat(flat(torch._foreach_sub([a.detach() for a in after], list(before))))
    g_sq, d_sq = float(g.dot(g)), float(delta.dot(delta))
    if not (g_sq > 0 and d_sq > 0 and math.isfinite(g_sq * d_sq)):
        return math.nan
    return -float(g.dot(delta)) / math.sqrt(g_sq * d_sq)


UPDATE_FEATURES = ("update_ratio", "update_alignment_fast", "update_alignment_slow",
                   "log_update_ratio_fast", "log_update_ratio_slow")
"""Features that need the weights before the interval's last optimizer step."""
PROBE_FEATURES = ("grad_alignment_fast", "grad_alignment_slow", "log_noise_scale_fast",
                  "log_noise_scale_slow")
"""Features that need the probed gradients of :class:`GradientProbe`."""


class IntervalMeter:
    """The per-step measurements one interval's features need, and nothing more.

    The env calls :meth:`after_backward`, :meth:`before_step` and :meth:`after_step`
    around each optimizer step; :class:`lr_gym.control.LRController`, which only sees
    steps after they happen, calls :meth:`after_backward` then :meth:`after_step` after
    each and :meth:`before_step` ahead of the interval's last. :meth:`stats` gives the
    keyword arguments of :meth:`lr_gym.features.FeatureTracker.update`.

    Args:
        features: The observed feature names.
    """

    def __init__(self, features: Sequence[str]) -> None:
        self.probe = GradientProbe() if set(PROBE_FEATURES) & set(features) else None
        self.measure_update = bool(set(UPDATE_FEATURES) & set(features))
        self.measure_alignment = bool(set(UPDATE_FEATURES[1:3]) & set(features))
        self.start(0)

    def start(self, steps: int) -> None:
        """Begins an interval of ``steps`` optimizer steps."""
        self.steps = steps
        self._before: list[torch.Tensor] | None = None
        self._ratio = self._alignment = math.nan
        if self.probe is not None:
            self.probe.start(steps)

    def is_last(self, i: int) -> bool:
        """Whether step ``i`` (0-based) is the interval's last."""
        return i == self.steps - 1

    def after_backward(self, i: int, params: Sequence[torch.Tensor]) -> None:
        """Probes step ``i``'s gradients if wanted (call before any clipping)."""
        if self.probe is not None and self.probe.wants(i):
            self.probe.observe(grads_of(params))

    def before_step(self, i: int, params: Sequence[torch.Tensor]) -> None:
        """Copies the weights before the interval's last optimizer step."""
        if self.measure_update and self.is_last(i):
            self._before = snapshot(params)

    def after_step(self, params: Sequence[torch.Tensor]) -> None:
        """Measures the update of a step whose weights were copied before it."""
        if self._before is None:
            return
        self._ratio = update_ratio(self._before, params)
        if not self.measure_alignment:
            self._before = None
            return
        with_grad = [(p, b) for p, b in zip(params, self._before, strict=True)
                     if p.grad is not None]
        self._alignment = update_alignment([p.grad for p, _ in with_grad],
                                           [b for _, b in with_grad], [p for p, _ in with_grad])
        self._before = None

    def stats(self) -> dict[str, float]:
        """The interval's measurements, NaN where not measured."""
        cos, noise = self.probe.interval_stats() if self.probe else (math.nan, math.nan)
        return {"update_ratio": self._ratio, "update_alignment": self._alignment,
                "grad_alignment": cos, "noise_ratio": noise}


def flat(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor as a flat float32 view where it is one already, else a float32 copy."""
    import torch

    return [x.detach().reshape(-1) if x.dtype == torch.float32
            else x.detach().reshape(-1).float() for x in tensors]


def grads_of(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of the parameters that have one."""
    return [p.grad for p in params if p.grad is not None]
