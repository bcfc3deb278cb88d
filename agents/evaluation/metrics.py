"""Run-level metrics: convergence time and time to target."""

from __future__ import annotations

import math
from collections.abc import Sequence


def convergence_step(
    steps: Sequence[float], values: Sequence[float], frac: float = 0.95
) -> float:
    """First step at which ``values`` reaches ``frac`` of its final value.

    The experiment plan's convergence time: steps (or epochs, if ``steps`` are
    epochs) to reach 95% of the final metric (higher is better). NaN if the final
    value is not finite or not positive.
    """
    if not values or not math.isfinite(values[-1]) or values[-1] <= 0:
        return float("nan")
    threshold = frac * values[-1]
    for s, v in zip(steps, values, strict=True):
        if v >= threshold:
            return float(s)
    return float(steps[-1])


def steps_to_target(steps: Sequence[float], values: Sequence[float], target: float) -> float:
    """First step at which ``values`` reaches ``target``; ``inf`` if it never does."""
    for s, v in zip(steps, values, strict=True):
        if math.isfinite(v) and v >= target:
            return float(s)
    return float("inf")
