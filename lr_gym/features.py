"""Scale-free observation features, shared by the env and the deployed controller.

Every feature is a log-ratio, a fraction or a bounded statistic, so one controller
can read runs of different models, losses and initial learning rates (the lesson of
DAC4SGD's diverging critic: unnormalized inputs break PPO). An env observes a subset
(:attr:`~lr_gym.config.EnvConfig.features`, default :data:`DEFAULT_FEATURES`), in the
order given; a controller file records the subset it was trained on.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

STEP_FEATURE_SPEEDS = {"fast": "EMA over decisions, half-life 1",
                       "slow": "EMA over decisions, half-life 4"}
"""The two timescales of every step-size feature."""
STEP_FEATURE_HALFLIVES = {"fast": 1.0, "slow": 4.0}
_sum = np.add.reduce
_STEP_ALPHAS = {speed: 1.0 - 0.5 ** (1.0 / h) for speed, h in STEP_FEATURE_HALFLIVES.items()}
STEP_SIGNALS: dict[str, tuple[float, float]] = {
    "grad_alignment": (0.0, 0.5), "update_alignment": (0.0, 0.5),
    "log_noise_scale": (0.0, 3.0), "loss_ratio": (0.0, 0.1), "log_update_ratio": (-6.0, 3.0),
}
"""Step-size signals (:mod:`lr_gym.grad_stats`) and the centre ``c`` and scale ``s`` of
their squash ``tanh((x - c) / s)``: each is observed at both speeds as
``<signal>_<speed>``."""
_STEP_MEANINGS = {
    "grad_alignment": "tanh(2 c), c = mean cosine of consecutive minibatch gradients",
    "update_alignment": "tanh(2 c), c = cosine of -gradient with the optimizer's update",
    "log_noise_scale": "tanh(log(B_noise / B) / 3): gradient noise over signal",
    "loss_ratio": "tanh(10 x), x = log(mean train loss / the previous interval's)",
    "log_update_ratio": "tanh((x + 6) / 3), x = log(||dw|| / ||w||) of the last step",
}

ALL_FEATURES: dict[str, str] = {
    "progress": "optimizer steps done / T",
    "log_lr_ratio": "log(lr / lr0)",
    "log_train_loss": "log(train-loss EMA / L0), L0 = initial validation loss",
    "loss_trend": "log(short EMA / long EMA) of the training loss (< 0: improving)",
    "loss_cv": "std / mean of the interval's step losses",
    "log_val_loss": "log(validation loss / L0)",
    "val_metric": "main validation metric (e.g. accuracy in [0, 1])",
    "log_grad_norm": "log(gradient norm / first measured gradient norm)",
    "grad_norm_change": "log(gradient norm / previous interval's)",
    "prev_action": "the last action, in [-1, 1]",
    "log_multiplier": "log(lr / (lr0 * schedule(t))); equals log_lr_ratio in recursive "
                      "constant mode and a multiple of prev_action in anchored mode",
    "gen_gap": "log(validation loss / train-loss EMA) (> 0: generalization gap)",
    "val_trend": "log(validation loss / previous interval's)",
    "val_vs_best": "log(validation loss / lowest validation loss so far) (> 0: overfitting "
                   "or instability)",
    "update_ratio": "log(||w_t - w_t-1|| / ||w_t-1||) of the interval's last optimizer step",
    **{f"{signal}_{speed}": f"{meaning}; {STEP_FEATURE_SPEEDS[speed]}"
       for signal, meaning in _STEP_MEANINGS.items() for speed in STEP_FEATURE_SPEEDS},
    "loss_vs_chance": "log(L0 / the task's chance loss), L0 = initial validation loss "
                      "(< 0: the model starts better than chance, e.g. pretrained; 0 if the "
                      "task does not know its chance loss)",
    "gen_gap_trend": "gen_gap minus its value at the previous decision (> 0: the gap grows)",
    "log_d_growth": "log(d / the previous decision's d), d the base optimizer's own step-size "
                    "estimate (Prodigy's and D-Adaptation's d; 0 for other optimizers)",
    "log_d_since_start": "log(d / d after the first interval) (0 for other optimizers)",
    "log_remaining": "log(1 + decisions left in the budget) / 4",
}
"""Every feature lr_gym computes, with its meaning."""

V0_FEATURES: tuple[str, ...] = (
    "progress", "log_lr_ratio", "log_train_loss", "loss_trend", "loss_cv", "log_val_loss",
    "val_metric", "log_grad_norm", "grad_norm_change", "prev_action", "log_multiplier",
)
"""The observation of the v0 envs (11 features)."""

DEFAULT_FEATURES: tuple[str, ...] = (
    "progress", "log_lr_ratio", "log_train_loss", "loss_trend", "loss_cv", "log_val_loss",
    "val_metric", "log_grad_norm", "grad_norm_change", "prev_action",
    "gen_gap", "val_trend", "val_vs_best", "update_ratio",
)
"""The v1 observation: v0 without the duplicate ``log_multiplier``, plus the features
that expose generalization and step size (docs/experiments.md, "Features, reward and mode")."""

STEP_FEATURES: tuple[str, ...] = tuple(
    f"{signal}_{speed}" for signal in STEP_SIGNALS for speed in STEP_FEATURE_SPEEDS)
"""Every step-size feature: the signals of :data:`STEP_SIGNALS` at both speeds."""

V2_FEATURES: tuple[str, ...] = (
    "progress", "log_lr_ratio", "loss_trend", "loss_cv", "grad_norm_change", "prev_action",
    "gen_gap", "val_trend", "val_vs_best", "update_ratio", *STEP_FEATURES,
)
"""The v2 observation: v1 without the level features that name a task (the loss, metric
and gradient-norm levels), plus the step-size features."""

V3_FEATURES: tuple[str, ...] = (
    *V2_FEATURES, "loss_vs_chance", "gen_gap_trend", "log_d_growth", "log_d_since_start",
    "log_remaining",
)
"""The v3 observation: v2's, plus what tells the regimes apart where the right schedule
differs (issue 34): the starting loss against chance (fine-tuning or not), the trend of
the generalization gap (overfitting), the base's own step-size estimate and its growth
(Prodigy's d overshooting on pretrained weights) and the budget left."""

FEATURE_NAMES = DEFAULT_FEATURES
"""Order of the default observation vector; documented in ``LRControlEnv``'s docstring."""

OBS_DIM = len(FEATURE_NAMES)
OBS_BOUND = 10.0
"""Every feature is clipped to [-OBS_BOUND, OBS_BOUND]."""

_EPS = 1e-12

if TYPE_CHECKING:
    import torch


def check_features(features: Iterable[str]) -> tuple[str, ...]:
    """Validates a feature subset; returns it as a tuple.

    Raises:
        ValueError: Empty, repeated or unknown names (the message lists the valid ones).
    """
    if isinstance(features, str):
        raise ValueError(f"features must be a list of names, got the string {features!r}.")
    if not isinstance(features, Iterable):
        raise ValueError(f"features must be a list of names, got {reprlib.repr(features)}.")
    names = tuple(features)
    odd = [f for f in names if not isinstance(f, str)]
    if odd:  # a list inside the list (YAML's [[...]]) is no name, nor hashable
        raise ValueError(f"features must be a list of names, got {reprlib.repr(odd[0])} in "
                         f"it; choose from {list(ALL_FEATURES)}.")
    unknown = [f for f in names if f not in ALL_FEATURES]
    if not names or unknown or len(set(names)) != len(names):
        why = f"unknown {unknown}" if unknown else ("empty" if not names else "repeated names")
        raise ValueError(f"features={list(names)} is not valid ({why}); choose distinct "
                         f"names from {list(ALL_FEATURES)}.")
    return names


def _log_ratio(a: float, b: float) -> float:
    return math.log(max(a, _EPS) / max(b, _EPS))


def snapshot(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of the parameters, for :func:`update_ratio` after the next optimizer step."""
    return [p.detach().clone() for p in params]


def update_ratio(before: Sequence[torch.Tensor], params: Iterable[torch.Tensor]) -> float:
    """``||w - w_before|| / ||w_before||`` over all parameters (one host sync)."""
    import torch  # not at module level: `import lr_gym` stays torch-free

    after = [p.detach() for p in params]
    if not before or len(before) != len(after):
        return math.nan
    norms = torch.linalg.vector_norm
    # foreach ops: one call per list, the same per-tensor norms as a loop of vector_norm.
    floats = [b.float() for b in before]
    delta = norms(torch.stack(torch._foreach_norm(
        [d.float() for d in torch._foreach_sub(after, list(before))])))
    norm = norms(torch.stack(torch._foreach_norm(floats)))
    ratio, norm = torch.stack((delta / norm, norm)).tolist()  # one host sync
    return ratio if norm > 0 else math.nan


@dataclass
class FeatureTracker:
    """Turns per-interval training statistics into the observation vector.

    Args:
        lr0: The task's initial learning rate.
        short_halflife: Half-life, in optimizer steps, of the short loss EMA.
        long_halflife: Half-life, in optimizer steps, of the long loss EMA.
        features: The observed subset, in order (default :data:`DEFAULT_FEATURES`).
        chance_loss: The task's loss at chance (:attr:`lr_gym.tasks.Task.chance_loss`),
            or None when unknown.
    """

    lr0: float
    short_halflife: float = 10.0
    long_halflife: float = 50.0
    features: tuple[str, ...] = field(default=DEFAULT_FEATURES)
    chance_loss: float | None = None

    def __post_init__(self) -> None:
        self.features = check_features(self.features)

    @property
    def _step_features(self) -> bool:
        """Whether any step-size feature is observed (else their EMAs are not kept)."""
        return not set(self.features).isdisjoint(STEP_FEATURES)

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
        self._prev_val = self._best_val = self.initial_loss
        self._a_short = 1.0 - 0.5 ** (1.0 / self.short_halflife)
        self._a_long = 1.0 - 0.5 ** (1.0 / self.long_halflife)
        self._prev_mean_loss: float | None = None
        # EMA of each step-size signal at each speed; None until first measured.
        self._step_emas: dict[str, float | None] = dict.fromkeys(STEP_FEATURES)
        self._prev_gap: float | None = None
        self._d_first: float | None = None
        self._d_prev: float | None = None
        chance = self.chance_loss
        self._vs_chance = (_log_ratio(self.initial_loss, chance)
                           if chance is not None and chance > 0 else 0.0)
        return self._select({"val_metric": initial_metric, "loss_vs_chance": self._vs_chance})

    def state_dict(self) -> dict:
        """The tracker's running statistics (JSON-friendly), for resuming a run."""
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict`; states saved before the newer features work."""
        self._prev_mean_loss = None
        self._step_emas = dict.fromkeys(STEP_FEATURES)
        self._prev_gap = self._d_first = self._d_prev = None
        self._vs_chance = 0.0
        vars(self).update(state)

    @property
    def train_loss(self) -> float:
        """Short EMA of the training loss."""
        return self._short

    @property
    def prev_val_loss(self) -> float:
        """The latest finite validation loss folded in (``L0`` after :meth:`reset`)."""
        return self._prev_val

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
        update_ratio: float = math.nan,
        grad_alignment: float = math.nan,
        update_alignment: float = math.nan,
        noise_ratio: float = math.nan,
        d: float = math.nan,
        remaining: float = math.nan,
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
            update_ratio: ``||dw|| / ||w||`` of the interval's last step (NaN: unknown).
            grad_alignment: Mean cosine of consecutive minibatch gradients (NaN: unknown).
            update_alignment: Cosine of the negative gradient with the last step's update.
            noise_ratio: Gradient noise scale over the batch size, ``B_noise / B``.
            d: The base optimizer's own step-size estimate (Prodigy's ``d``; NaN: none).
            remaining: Decisions left in the budget (NaN: unknown).
        """
        losses = np.asarray(step_losses, dtype=np.float64)
        if not np.isfinite(losses).all():
            losses = losses[np.isfinite(losses)]
        mean, cv = self._fold_losses(losses)
        g_rel, g_chg = self._fold_grad_norm(grad_norm)
        values = {
            "progress": progress,
            "log_lr_ratio": _log_ratio(lr, self.lr0),
            "log_train_loss": _log_ratio(self._short, self.initial_loss),
            "loss_trend": _log_ratio(self._short, self._long),
            "loss_cv": cv,
            "log_val_loss": _log_ratio(val_loss, self.initial_loss),
            "val_metric": val_metric,
            "log_grad_norm": g_rel,
            "grad_norm_change": g_chg,
            "prev_action": action,
            "log_multiplier": _log_ratio(lr, base_lr),
            "gen_gap": _log_ratio(val_loss, self._short),
            "val_trend": _log_ratio(val_loss, self._prev_val),
            "val_vs_best": _log_ratio(val_loss, self._best_val),
            # 0 for an unknown ratio (NaN); a zero update gives the clipped floor.
            "update_ratio": math.log(max(update_ratio, _EPS)) if update_ratio >= 0 else 0.0,
        }
        values["gen_gap_trend"] = self._fold_val(val_loss, values["gen_gap"])
        values["loss_vs_chance"] = self._vs_chance
        values.update(self._fold_d(d))
        values["log_remaining"] = (math.log1p(max(remaining, 0.0)) / 4.0
                                   if math.isfinite(remaining) else 0.0)
        loss_ratio = (_log_ratio(mean, self._prev_mean_loss)
                      if losses.size and self._prev_mean_loss is not None else math.nan)
        if losses.size:
            self._prev_mean_loss = mean
        noise = (math.log(max(noise_ratio, _EPS)) if noise_ratio >= 0 else math.nan)
        update = math.log(update_ratio) if update_ratio > 0 else math.nan
        if self._step_features:
            values.update(self._fold_step_signals({
                "grad_alignment": grad_alignment, "update_alignment": update_alignment,
                "log_noise_scale": min(noise, 30.0), "loss_ratio": loss_ratio,
                "log_update_ratio": update}))
        return self._select(values)

    def _fold_losses(self, losses: np.ndarray) -> tuple[float, float]:
        """Folds the interval's finite training losses into the EMAs; ``(mean, cv)``."""
        # Python floats: the same IEEE doubles as numpy's scalars, at a fraction of the cost.
        short, long_, a_short, a_long = self._short, self._long, self._a_short, self._a_long
        for x in losses.tolist():
            short += a_short * (x - short)
            long_ += a_long * (x - long_)
        self._short, self._long = float(short), float(long_)
        n = losses.size
        # numpy's mean and std, computed as numpy computes them (the same pairwise sums,
        # so the same bits) without their wrappers' overhead.
        mean = float(_sum(losses) / n) if n else self._short
        if n < 2:
            return mean, 0.0
        dev = losses - mean
        return mean, math.sqrt(float(_sum(dev * dev) / n)) / max(abs(mean), _EPS)

    def _fold_grad_norm(self, grad_norm: float) -> tuple[float, float]:
        """``(log of the norm over the first, log change since the last)``; 0 if unknown."""
        if self._grad0 is None and grad_norm > 0 and math.isfinite(grad_norm):
            self._grad0 = grad_norm
        g_rel = _log_ratio(grad_norm, self._grad0) if self._grad0 else 0.0
        g_chg = _log_ratio(grad_norm, self._prev_grad) if self._prev_grad else 0.0
        if grad_norm > 0 and math.isfinite(grad_norm):
            self._prev_grad = grad_norm
        return g_rel, g_chg

    def _fold_val(self, val_loss: float, gap: float) -> float:
        """Records a finite validation loss and its generalisation gap; the gap's change."""
        trend = gap - self._prev_gap if self._prev_gap is not None else 0.0
        if math.isfinite(val_loss):
            self._prev_gap = gap
            self._prev_val = val_loss
            self._best_val = min(self._best_val, val_loss)
        return trend

    def _fold_d(self, d: float) -> dict[str, float]:
        """The base optimizer's step-size features (none while ``d`` is unknown)."""
        if not (d > 0 and math.isfinite(d)):
            return {}
        self._d_first = self._d_first or d
        out = {"log_d_growth": _log_ratio(d, self._d_prev) if self._d_prev else 0.0,
               "log_d_since_start": _log_ratio(d, self._d_first)}
        self._d_prev = d
        return out

    def _fold_step_signals(self, raw: dict[str, float]) -> dict[str, float]:
        """Updates each signal's EMAs (an unmeasured NaN leaves them) and squashes them."""
        out = {}
        for signal, (centre, scale) in STEP_SIGNALS.items():
            x = raw[signal]
            for speed, alpha in _STEP_ALPHAS.items():
                name = f"{signal}_{speed}"
                ema = self._step_emas[name]
                if math.isfinite(x):
                    ema = x if ema is None else ema + alpha * (x - ema)
                    self._step_emas[name] = ema
                out[name] = 0.0 if ema is None else math.tanh((ema - centre) / scale)
        return out

    def _select(self, values: dict[str, float]) -> np.ndarray:
        # _finite's rule on Python floats (no numpy call per value): NaN -> 0, then clipped
        # to the bounds (inf included), rounded to float32 once, as _finite does.
        out = []
        for f in self.features:
            x = values.get(f, 0.0)
            out.append(0.0 if x != x else -OBS_BOUND if x < -OBS_BOUND
                       else OBS_BOUND if x > OBS_BOUND else x)
        return np.array(out, dtype=np.float32)


def _finite(x):  # noqa: ANN001, ANN202 - scalar or array
    """Replaces NaN/inf and clips to the declared bounds, as float32."""
    arr = np.nan_to_num(
        np.asarray(x, dtype=np.float64), nan=0.0, posinf=OBS_BOUND, neginf=-OBS_BOUND
    )
    return np.clip(arr, -OBS_BOUND, OBS_BOUND).astype(np.float32)
