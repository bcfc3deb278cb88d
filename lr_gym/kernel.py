"""The decision kernel: the interval protocol, written once for the env and the runtime.

An LR controller works in control intervals of ``steps_per_action`` optimizer steps. At
the end of each, :class:`DecisionKernel`

1. **judges** the interval: its training losses and validation result, by the divergence
   rule (:meth:`close`);
2. **guards** it: a blown-up interval rolls the run back to its best state and the LR
   rule **backs off** (:class:`~lr_gym.guard.Guard`, :meth:`~lr_gym.lr_rule.LRState.back_off`);
3. **observes** it: the feature tracker folds the interval into the observation
   (:meth:`observe`);
4. and the action chosen from that observation **decides** the next interval's LR
   (:meth:`decide`).

:class:`~lr_gym.envs.LRControlEnv` (training, where the agent's action arrives with the
next ``step``) and :class:`~lr_gym.control.LRController` (deployment, where the policy
acts at once) both run it, so a deployed controller decides exactly as it was trained.
They differ in one rule only, by design: what a non-finite training loss means
(:attr:`DecisionKernel.skip_nonfinite`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lr_gym.features import FeatureTracker
    from lr_gym.grad_stats import IntervalMeter
    from lr_gym.guard import Guard
    from lr_gym.lr_rule import LRState


@dataclass(frozen=True)
class Validation:
    """A validation result: the loss and metric the kernel reads, and the caller's own.

    Attributes:
        loss: Validation loss.
        metric: Main validation metric (higher is better).
        info: Anything the caller wants back if the guard restores this state (the env's
            whole metrics dict).
    """

    loss: float
    metric: float
    info: Any = None


@dataclass(frozen=True)
class Interval:
    """The verdict on a finished interval (:meth:`DecisionKernel.close`).

    Attributes:
        losses: The interval's training losses that count (float64; after a rollback,
            those below the divergence limit).
        val: The validation result to observe: the interval's, or the best state's
            after a rollback; None where the interval diverged before it was evaluated.
        diverged: The interval diverged and the guard did not roll it back.
        restored: The guard rolled the run back (and the LR rule backed off).
        skipped: Non-finite training losses skipped (``skip_nonfinite`` only).
    """

    losses: np.ndarray
    val: Validation | None
    diverged: bool
    restored: bool
    skipped: int = 0

    @property
    def observable(self) -> bool:
        """Whether the interval gives features worth deciding on.

        One with no finite training loss, or without a finite validation result, would
        give meaningless features. A deployed run whose finite loss exploded without a
        guard to roll it back is still observed (the env ends such an episode instead).
        """
        return (self.losses.size > 0 and self.val is not None
                and math.isfinite(self.val.loss) and math.isfinite(self.val.metric))


class DecisionKernel:
    """One run's interval protocol: judge, guard, back off, observe, decide.

    Args:
        tracker: The run's feature tracker.
        rule: The run's LR rule (multiplier, bounds, back-off).
        meter: The run's per-step statistics (probed inside the interval by the caller).
        guard: The rollback guard, or None.
        divergence_factor: A training loss above ``divergence_factor * L0`` diverges.
        skip_nonfinite: What a non-finite training loss means. False (the env): a
            divergence at that step, and the interval's later losses are dropped. True
            (deployment): a step that may never have reached the weights (mixed precision
            skips it), so it is skipped and the validation result judges the weights.
    """

    def __init__(self, tracker: FeatureTracker, rule: LRState, meter: IntervalMeter,
                 guard: Guard | None, *, divergence_factor: float,
                 skip_nonfinite: bool) -> None:
        self.tracker, self.rule, self.meter, self.guard = tracker, rule, meter, guard
        self.divergence_factor = float(divergence_factor)
        self.skip_nonfinite = bool(skip_nonfinite)

    def start(self, val: Validation) -> np.ndarray:
        """Begins a run from its untrained model's validation; returns the first observation."""
        obs = self.tracker.reset(val.loss, val.metric)
        if self.guard is not None:
            self.guard.start(val.loss, info=val)
        return obs

    @property
    def limit(self) -> float:
        """The training loss above which an interval diverged."""
        return self.divergence_factor * self.tracker.initial_loss

    def close(self, step_losses: np.ndarray,
              evaluate: Callable[[], Validation]) -> Interval:
        """Judges a finished interval and rolls it back if it blew up.

        Args:
            step_losses: The training loss of every optimizer step of the interval.
            evaluate: Validates the model; not called when (in the env's rule) the
                interval already diverged, so a blown-up model costs no evaluation.
        """
        losses = np.asarray(step_losses)
        limit, skipped = self.limit, 0
        if self.skip_nonfinite:
            losses = losses.astype(np.float64, copy=False)
            finite = np.isfinite(losses)
            skipped = int(losses.size - np.count_nonzero(finite))
            if skipped:
                losses = losses[finite]
            val: Validation | None = evaluate()
            # ufunc.reduce: a decision is on the deployed training's critical path.
            diverged = ((losses.size > 0 and bool(np.maximum.reduce(losses) > limit))
                        or not (math.isfinite(val.loss) and math.isfinite(val.metric)))
        else:
            bad = ~np.isfinite(losses) | (losses > limit)
            diverged = bool(bad.any())
            if diverged:  # the run ends at its first bad step
                losses = losses[: int(np.argmax(bad)) + 1]
            val = None if diverged else evaluate()
            diverged = diverged or not math.isfinite(val.loss)
        restored = self.guard is not None and self.guard.check(
            math.nan if val is None else val.loss, diverged=diverged,
            raised=self.rule.raised, info=val)
        if restored:
            # Rolled back to the best state: the run goes on from there, more carefully.
            self.rule.back_off()
            val, diverged = self.guard.best_info, False
            losses = losses[np.isfinite(losses) & (losses <= limit)]
        return Interval(losses, val, diverged, restored, skipped)

    def observe(self, interval: Interval, *, progress: float, lr: float, base_lr: float,
                grad_norm: float, last: Validation | None = None,
                **signals: float) -> np.ndarray:
        """Folds a closed interval into the features; returns the observation.

        Args:
            interval: From :meth:`close`.
            progress: Optimizer steps done over the budget.
            lr: The LR of the interval's last step.
            base_lr: ``lr0 * schedule(t)`` at the interval's end.
            grad_norm: Gradient norm at the interval's last step (NaN: unknown).
            last: The latest validation result observed, for an interval with none of
                its own (one that diverged before it was evaluated).
            **signals: The other signals :meth:`~lr_gym.features.FeatureTracker.update`
                takes (``d``, ``remaining``, the meter's statistics).
        """
        val = interval.val if interval.val is not None else last
        if val is None:
            raise ValueError("This interval has no validation result: pass last=.")
        return self.tracker.update(
            progress=progress, lr=lr, base_lr=base_lr, step_losses=interval.losses,
            val_loss=val.loss, val_metric=val.metric, grad_norm=grad_norm,
            action=self.rule.action, **signals)

    def decide(self, action: Any, step: int) -> float:
        """Sets the next interval's LR rule from ``action``; returns the clipped action."""
        return self.rule.decide(action, step)
