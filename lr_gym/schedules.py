"""Base learning-rate schedules, as factors of ``lr0`` over a step budget."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: `import lr_gym` stays cheap
    import torch

CLOSED_FORM_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear", "exponential",
                                          "wsd")
"""Schedules computed in closed form by :func:`schedule_factor` (optional warmup)."""

TORCH_SCHEDULES: tuple[str, ...] = ("step", "warmup_cosine", "onecycle")
"""Schedules produced by running torch's own LR schedulers (:func:`torch_schedule_factors`)."""

SCHEDULES: tuple[str, ...] = CLOSED_FORM_SCHEDULES + TORCH_SCHEDULES
"""Every valid ``EnvConfig.schedule``."""

STEP_MILESTONES: tuple[float, ...] = (0.5, 0.75)
"""``"step"``: fractions of the budget where the LR is multiplied by :data:`STEP_GAMMA`."""
STEP_GAMMA = 0.1
ALGOPERF_WARMUP_FRAC = 0.02
"""``"warmup_cosine"`` warmup when ``warmup_frac`` is 0 (AlgoPerf's baseline: 2% of the budget)."""
ONECYCLE_PCT_START = 0.3
"""``"onecycle"``: fraction of the budget rising to the peak (torch's default)."""
WSD_COOLDOWN_FRAC = 0.2
"""``"wsd"``: fraction of the budget (after any warmup) spent cooling down. Hägele et al.
2024 (arXiv 2405.18392) find a 20% (1 - sqrt) cooldown matches cosine."""


def schedule_factor(
    name: str,
    step: int,
    total_steps: int,
    *,
    warmup_frac: float = 0.0,
    final_lr_frac: float = 0.0,
) -> float:
    """Factor of ``lr0`` applied at optimizer step ``step`` (0-based), in closed form.

    Matches torch's schedulers: ``"cosine"`` is ``CosineAnnealingLR(T_max=T - warmup,
    eta_min=final_lr_frac * lr0)`` after a ``LinearLR`` warmup that starts at
    ``1 / warmup_steps``; ``"linear"`` decays linearly to ``final_lr_frac``;
    ``"exponential"`` decays geometrically to it, ``final_lr_frac ** progress`` (so it
    needs ``final_lr_frac > 0``); ``"wsd"`` (warmup-stable-decay, Hägele et al. 2024)
    stays at 1 and spends the last :data:`WSD_COOLDOWN_FRAC` of the budget in a
    ``1 - sqrt`` cooldown to ``final_lr_frac``. The torch-built schedules
    (:data:`TORCH_SCHEDULES`) have no closed form here: use :func:`schedule_factors`.

    Args:
        name: One of :data:`CLOSED_FORM_SCHEDULES`.
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
    if name == "exponential":
        if not final_lr_frac > 0:
            raise ValueError("schedule 'exponential' decays to final_lr_frac, which must be > 0 "
                             f"(got {final_lr_frac}); use 'linear' or 'cosine' to decay to 0.")
        return final_lr_frac ** progress
    if name == "wsd":
        cool = (progress - 1.0 + WSD_COOLDOWN_FRAC) / WSD_COOLDOWN_FRAC  # exactly 1 at the end
        return 1.0 if cool <= 0 else final_lr_frac + (1.0 - final_lr_frac) * (1.0 - math.sqrt(cool))
    hint = " (torch-built: use schedule_factors)" if name in TORCH_SCHEDULES else ""
    raise ValueError(
        f"Unknown closed-form schedule {name!r}{hint}; choose one of {list(CLOSED_FORM_SCHEDULES)}."
    )


def make_torch_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    *,
    warmup_frac: float = 0.0,
    final_lr_frac: float = 0.0,
) -> torch.optim.lr_scheduler.LRScheduler:
    """The torch scheduler for a :data:`TORCH_SCHEDULES` name (stepped once per optimizer step).

    * ``"step"``: ``MultiStepLR`` multiplying by 0.1 at 50% and 75% of the budget.
    * ``"warmup_cosine"``: AlgoPerf's shape, ``LinearLR`` from ``1/W`` to 1 over the
      first ``W`` steps (``W = warmup_frac * T``, 2% if ``warmup_frac`` is 0), then
      ``CosineAnnealingLR`` to ``final_lr_frac`` over the rest, chained by ``SequentialLR``.
    * ``"onecycle"``: ``OneCycleLR`` with ``max_lr`` = the optimizer's LR (``lr0`` is
      the peak, so tuning ``lr0`` tunes the peak as for every other schedule), torch's
      defaults otherwise (``pct_start=0.3``, start at ``lr0/25``, cosine annealing to
      ``lr0/25/1e4``) and ``cycle_momentum=False``: the env controls only the LR.

    Args:
        name: One of :data:`TORCH_SCHEDULES`.
        optimizer: The optimizer whose LR is scheduled.
        total_steps: Step budget ``T``.
        warmup_frac: Warmup fraction (``"warmup_cosine"`` only).
        final_lr_frac: Final factor (``"warmup_cosine"`` only).
    """
    from torch.optim import lr_scheduler as sched

    if name != "warmup_cosine" and warmup_frac > 0:
        raise ValueError(
            f"schedule {name!r} does not take warmup_frac={warmup_frac}; "
            "set warmup_frac=0 (onecycle has its own warmup) or use 'warmup_cosine'."
        )
    if name == "step":
        milestones = sorted({max(int(round(f * total_steps)), 1) for f in STEP_MILESTONES})
        return sched.MultiStepLR(optimizer, milestones=milestones, gamma=STEP_GAMMA)
    if name == "warmup_cosine":
        frac = warmup_frac or ALGOPERF_WARMUP_FRAC
        warmup = min(max(int(round(frac * total_steps)), 1), total_steps - 1)
        lr = optimizer.param_groups[0]["lr"]
        return sched.SequentialLR(
            optimizer,
            [
                sched.LinearLR(optimizer, 1.0 / warmup, 1.0, total_iters=warmup - 1),
                sched.CosineAnnealingLR(
                    optimizer, T_max=total_steps - warmup, eta_min=final_lr_frac * lr
                ),
            ],
            milestones=[warmup],
        )
    if name == "onecycle":
        return sched.OneCycleLR(
            optimizer,
            max_lr=optimizer.param_groups[0]["lr"],
            total_steps=total_steps,
            pct_start=ONECYCLE_PCT_START,
            cycle_momentum=False,
        )
    raise ValueError(f"Unknown torch schedule {name!r}; choose one of {list(TORCH_SCHEDULES)}.")


def schedule_factors(
    name: str,
    total_steps: int,
    *,
    warmup_frac: float = 0.0,
    final_lr_frac: float = 0.0,
) -> np.ndarray:
    """The factor of ``lr0`` at every optimizer step ``0..T`` (``T + 1`` entries).

    Closed-form schedules use :func:`schedule_factor`; torch-built ones run torch's
    scheduler on a dummy optimizer with ``lr=1.0`` for ``T`` steps, so the env's LR
    sequence is exactly torch's. The last entry (step ``T``, after the budget) repeats
    the final step's factor for torch schedules.
    """
    if name in CLOSED_FORM_SCHEDULES:
        kw = {"warmup_frac": warmup_frac, "final_lr_frac": final_lr_frac}
        return np.array(
            [schedule_factor(name, t, total_steps, **kw) for t in range(total_steps + 1)]
        )
    if name not in TORCH_SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; choose one of {list(SCHEDULES)}.")
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make_torch_scheduler(
        name, opt, total_steps, warmup_frac=warmup_frac, final_lr_frac=final_lr_frac
    )
    out = np.empty(total_steps + 1)
    with warnings.catch_warnings():
        # SequentialLR steps its children with an epoch argument, which torch warns about.
        warnings.simplefilter("ignore", UserWarning)
        for t in range(total_steps):
            out[t] = opt.param_groups[0]["lr"]
            opt.step()
            if t < total_steps - 1:  # OneCycleLR refuses to step past its budget
                scheduler.step()
    out[total_steps] = out[total_steps - 1]
    return out
