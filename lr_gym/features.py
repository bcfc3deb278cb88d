"""Scale-free observation features, shared by the env and the deployed controller.

Every feature is a log-ratio, a fraction or a bounded statistic, so one controller
can read runs of different models, losses and initial learning rates (the lesson of
DAC4SGD's diverging critic: unnormalized inputs break PPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "progress",
    "log_lr_ratio",
    "log_train_loss",
    "loss_trend",
    "loss_cv",
    "log_val_loss",
    "val_metric",
    "log_grad_norm",
    "grad_norm_change",
    "prev_action",
    "log_multiplier",
)
"""Order of the observation vector; documented in ``LRControlEnv``'s docstring."""

OBS_DIM = len(FEATURE_NAMES)
OBS_BOUND = 10.0
"""Every feature is clipped to [-OBS_BOUND, OBS_BOUND]."""

_EPS = 1e-12


def _log_ratio(a: float, b: float) -> float:
    return math.log(max(a, _EPS) / max(b, _EPS))


@dataclass
class FeatureTracker:
    """Turns per-interval training statistics into the observation vector.

    Args:
        lr0: The task's initial learning rate.
        short_halflife: Half-life, in optimizer steps, of the short loss EMA.
        long_halflife: Half-life, in optimizer steps, of the long loss EMA.
    """

    lr0: float
    short_halflife: float = 10.0
    long_halflife: float = 50.0

    def reset(self, initial_loss: float, initial_metric: float) -> np.ndarray:
        """Starts a run; returns the first observation.

        Args:
            initial_loss: Validation loss of the freshly initialised model (``L0``).
            initial_metric: Validation metric of the freshly initialised model.
        """
        self.initial_loss = max(float(initial_loss), _EPS) if math.isfinite(initial_loss) else 1.0
        self._short = self._long = self.initial_loss
        self._grad0: float | None = None
        self._prev_grad: float | None = None
        self._a_short = 1.0 - 0.5 ** (1.0 / self.short_halflife)
        self._a_long = 1.0 - 0.5 ** (1.0 / self.long_halflife)
        obs = np.zeros(OBS_DIM, dtype=np.float32)
        obs[6] = _finite(initial_metric)
        return obs

    @property
    def train_loss(self) -> float:
        """Short EMA of the training loss."""
        return self._short

    def update(
        self,
        *,
        progress: float,
        lr: float,
        base_lr: float,
        step_losses: np.ndarray,
        val_loss: float,
        val_metric: float,
        grad_norm: float,
        action: float,
    ) -> np.ndarray:
        """Folds in one control interval and returns the observation after it.

        Args:
            progress: Optimizer steps done over the budget, in [0, 1].
            lr: Learning rate in use at the end of the interval.
            base_lr: ``lr0 * schedule(t)`` at the end of the interval.
            step_losses: Training loss of every optimizer step of the interval.
            val_loss: Validation loss after the interval.
            val_metric: Validation metric after the interval.
            grad_norm: Global gradient norm at the last step of the interval.
            action: The action that chose this interval's LR, in [-1, 1].
        """
        losses = np.asarray(step_losses, dtype=np.float64)
        losses = losses[np.isfinite(losses)]
        for x in losses:
            self._short += self._a_short * (x - self._short)
            self._long += self._a_long * (x - self._long)
        mean = float(losses.mean()) if losses.size else self._short
        cv = float(losses.std() / max(abs(mean), _EPS)) if losses.size > 1 else 0.0
        if self._grad0 is None and grad_norm > 0 and math.isfinite(grad_norm):
            self._grad0 = grad_norm
        g_rel = _log_ratio(grad_norm, self._grad0) if self._grad0 else 0.0
        g_chg = _log_ratio(grad_norm, self._prev_grad) if self._prev_grad else 0.0
        if grad_norm > 0 and math.isfinite(grad_norm):
            self._prev_grad = grad_norm
        obs = np.array(
            [
                progress,
                _log_ratio(lr, self.lr0),
                _log_ratio(self._short, self.initial_loss),
                _log_ratio(self._short, self._long),
                cv,
                _log_ratio(val_loss, self.initial_loss),
                val_metric,
                g_rel,
                g_chg,
                action,
                _log_ratio(lr, base_lr),
            ],
            dtype=np.float64,
        )
        return _finite(obs)


def _finite(x):  # noqa: ANN001, ANN202 - scalar or array
    """Replaces NaN/inf and clips to the declared bounds, as float32."""
    arr = np.nan_to_num(
        np.asarray(x, dtype=np.float64), nan=0.0, posinf=OBS_BOUND, neginf=-OBS_BOUND
    )
    return np.clip(arr, -OBS_BOUND, OBS_BOUND).astype(np.float32)
