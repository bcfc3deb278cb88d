"""``avg_lr_replay``: a learned controller's LRs per interval, replayed blind to state.

The control that separates finding the LR level from reacting to state (see
:mod:`agents.baselines`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from agents.base import Controller, action_array
from lr_gym.lr_rule import multiplier_to_action

if TYPE_CHECKING:
    from agents.rollout import EpisodeResult


# --------------------------------------------------------------- average-LR replay
def mean_interval_lrs(results: Sequence[EpisodeResult]) -> np.ndarray:
    """Geometric mean over ``results`` (seeds) of the LR of each control interval.

    Geometric, not arithmetic: LRs act multiplicatively and spread over decades, so a
    single seed's large LR must not dominate the replayed one (the geometric mean is
    the arithmetic mean of ``log lr``, the scale the controllers act on). An interval
    where any run's LR is 0 has mean 0.

    ``EpisodeResult.lrs[k]`` (``k >= 1``) is the LR of interval ``k - 1`` (its last step).
    A diverged run is shorter: an interval averages the runs that reached it.

    Raises:
        ValueError: No results, or results whose intervals end at different steps.
    """
    if not results:
        raise ValueError("mean_interval_lrs needs at least one EpisodeResult.")
    longest = max(results, key=lambda r: len(r.steps))
    for r in results:
        if r.steps != longest.steps[: len(r.steps)]:
            raise ValueError(
                f"Results differ in their interval steps ({r.steps[:4]}... vs "
                f"{longest.steps[:4]}...): replay results of one env and budget only."
            )
    n = len(longest.lrs) - 1
    with np.errstate(divide="ignore"):  # log(0) = -inf: a zero LR gives a zero mean
        return np.array([
            np.exp(np.mean(np.log([r.lrs[k + 1] for r in results if len(r.lrs) > k + 1])))
            for k in range(n)
        ])


class AvgLRReplay(Controller):
    """Replays a fixed LR per interval (a learned controller's), blind to the state.

    Each interval's LR is the learned controller's geometric mean over seeds
    (:func:`mean_interval_lrs`). Compared with the learned controller on the same task
    and seeds, it tells whether the controller helps by reacting to the run or only by
    finding a better fixed schedule.

    It runs the env anchored on the replayed controller's own base schedule and LR
    bounds (``controller_kwargs``), with a ``max_factor`` large enough to reach any
    target in one action: interval ``k`` gets the constant multiplier ``m_k = target_k /
    base_lr(last step of k)``, so every step of the interval runs at ``lr0 * schedule(t)
    * m_k``. For an anchored controller (its multiplier is constant within an interval)
    that is its geometric-mean LR at every step, except where the LR bounds clipped the
    interval's last step; for a controller on a constant base it is the interval's LR.
    Past the last recorded interval (all runs diverged) the last target is held. Not
    tunable: the replayed LRs are the controller's, not derived from ``lr0``.

    Args:
        results: The learned controller's episodes on one env (any number of seeds),
            replayed at their per-interval geometric mean LR; or use ``targets``.
        targets: The LR of each interval, if not computed from ``results``.
        controller_kwargs: The replayed controller's EnvConfig overrides (its base
            ``schedule``, ``warmup_frac``, ``final_lr_frac``, ``lr_min``, ``lr_max``);
            empty: the env's defaults (a constant base).
        max_factor: The replay env's ``max_factor``.
        name: Table name.
    """

    tunable = False
    _FROM_CONTROLLER = ("schedule", "warmup_frac", "final_lr_frac", "lr_min", "lr_max")

    def __init__(
        self,
        results: Sequence[EpisodeResult] | None = None,
        *,
        targets: Sequence[float] | None = None,
        controller_kwargs: Mapping[str, Any] | None = None,
        max_factor: float = 1e6,
        name: str = "avg_lr_replay",
    ) -> None:
        if (results is None) == (targets is None):
            raise ValueError(
                "avg_lr_replay needs the learned controller's EpisodeResults "
                "(results=...) or the per-interval LRs (targets=...), exactly one."
            )
        self.targets = (
            mean_interval_lrs(results) if results is not None else np.asarray(targets, float)
        )
        if self.targets.size == 0 or not np.all(self.targets > 0):
            raise ValueError("avg_lr_replay: the target LRs must be a non-empty positive list.")
        self._base_kwargs = {k: v for k, v in (controller_kwargs or {}).items()
                             if k in self._FROM_CONTROLLER}
        self.max_factor, self.name = max_factor, name
        self._k, self._multipliers = 0, np.ones_like(self.targets)

    def env_kwargs(self) -> Mapping[str, Any]:
        """Anchored on the controller's base schedule and bounds; the range covers the targets."""
        return {"mode": "anchored", "schedule": "constant", "warmup_frac": 0.0,
                **self._base_kwargs, "max_factor": self.max_factor}

    def reset(self, env: gym.Env, obs: np.ndarray, info: dict[str, Any]) -> None:
        """Turns the target LRs into per-interval multipliers of the env's base schedule."""
        inner = env.unwrapped
        k, total = inner.steps_per_action, inner.total_steps
        last = [min((i + 1) * k, total) - 1 for i in range(len(self.targets))]
        base = np.array([inner.base_lr(t) for t in last], dtype=float)
        # A base of 0 (a warmup's first step) cannot be scaled: keep the schedule there.
        self._multipliers = np.where(base > 0, self.targets / np.where(base > 0, base, 1), 1.0)
        self._k = 0
        m = self._multipliers
        if m.min() < 1.0 / self.max_factor or m.max() > self.max_factor:
            raise ValueError(
                f"avg_lr_replay: targets span {m.min():.3g}..{m.max():.3g} x the base "
                f"schedule, beyond max_factor={self.max_factor:g}; pass a larger max_factor."
            )

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action that sets this interval's multiplier."""
        m = self._multipliers[min(self._k, len(self._multipliers) - 1)]
        self._k += 1
        return action_array(multiplier_to_action(m, self.max_factor))
