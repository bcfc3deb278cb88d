"""Base learning-rate schedules, as factors of ``lr0`` over a step budget."""

from __future__ import annotations

import math


def schedule_factor(
    name: str,
    step: int,
    total_steps: int,
    *,
    warmup_frac: float = 0.0,
    final_lr_frac: float = 0.0,
) -> float:
    """Factor of ``lr0`` applied at optimizer step ``step`` (0-based).

    Matches torch's schedulers: ``"cosine"`` is ``CosineAnnealingLR(T_max=T - warmup,
    eta_min=final_lr_frac * lr0)`` after a ``LinearLR`` warmup that starts at
    ``1 / warmup_steps``; ``"linear"`` decays linearly to ``final_lr_frac``.

    Args:
        name: ``"constant"``, ``"cosine"`` or ``"linear"``.
        step: Current optimizer step.
        total_steps: Step budget ``T``.
        warmup_frac: Fraction of ``T`` spent warming up linearly.
        final_lr_frac: Final factor of decaying schedules.
    """
    warmup = int(round(warmup_frac * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    if name == "constant":
        return 1.0
    span = max(total_steps - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    if name == "cosine":
        return final_lr_frac + (1.0 - final_lr_frac) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "linear":
        return 1.0 - (1.0 - final_lr_frac) * progress
    raise ValueError(f"Unknown schedule {name!r}; choose 'constant', 'cosine' or 'linear'.")
