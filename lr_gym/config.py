"""Typed configuration of an :class:`~lr_gym.envs.LRControlEnv`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from lr_gym.schedules import SCHEDULES

Mode = Literal["anchored", "recursive"]
Reward = Literal["val_loss", "train_loss", "metric", "terminal_metric"]
Schedule = Literal["constant", "cosine", "linear", "step", "warmup_cosine", "onecycle"]


REWARDS = ("val_loss", "train_loss", "metric", "terminal_metric")


@dataclass(frozen=True)
class EnvConfig:
    """How the learning rate is controlled, observed and rewarded.

    Every field can be passed as a keyword to ``gym.make``, e.g.
    ``gym.make("lr_gym/Digits-MLP-v0", mode="recursive", max_factor=2.0)``.

    Attributes:
        mode: ``"anchored"``: ``lr_t = lr0 * schedule(t) * m(a)``, a bounded residual
            around the base schedule, re-decided every interval. ``"recursive"``:
            ``M <- M * m(a)`` and ``lr_t = lr0 * schedule(t) * M``, the plain LR
            multiplier, which can drift arbitrarily far (within ``lr_min``/``lr_max``).
        schedule: Base schedule over the budget: ``"constant"``, ``"cosine"`` (to
            ``final_lr_frac``), ``"linear"`` (to ``final_lr_frac``), or one built by
            torch's own schedulers: ``"step"`` (x0.1 at 50% and 75%), ``"warmup_cosine"``
            (AlgoPerf: linear warmup then cosine), ``"onecycle"`` (see
            :func:`lr_gym.schedules.make_torch_scheduler`).
        warmup_frac: Fraction of the budget with linear warmup from 0 (AlgoPerf: 0.02).
        final_lr_frac: Final base LR as a fraction of ``lr0`` for decaying schedules.
        max_factor: Largest multiplier per action, ``m(a) = max_factor ** a`` for
            ``a`` in [-1, 1].
        lr_min: Lowest LR; ``None`` means ``lr0 * 1e-3``.
        lr_max: Highest LR; ``None`` means ``lr0 * 30``.
        reward: ``"val_loss"`` (log decrease of validation loss, telescopes to
            ``log(L0 / L_T)``), ``"train_loss"`` (same on the train-loss EMA),
            ``"metric"`` (gain of the validation metric) or ``"terminal_metric"``
            (validation metric at the end of the budget, 0 before).
        reward_scale: Multiplies every non-penalty reward.
        divergence_factor: The run diverged if a training loss is not finite or
            exceeds ``divergence_factor`` times the initial validation loss.
        divergence_penalty: Reward on divergence (subtracted).
        total_steps: Optimizer steps per episode; ``None`` takes the task's.
        steps_per_action: Optimizer steps per env step; ``None`` takes the task's.
        eval_test: Evaluate the task's test split once when the budget runs out.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.
        optimizer_sets_lr: The inner optimizer adapts its own LR (e.g. hypergradient
            descent): the env never writes group LRs, ignores actions, and reports the
            first param group's LR in observations and ``info["lr"]``.
    """

    # Defaults chosen by measurement (README, "Why recursive by default").
    mode: Mode = "recursive"
    schedule: Schedule = "constant"
    warmup_frac: float = 0.0
    final_lr_frac: float = 0.0
    max_factor: float = 2.0
    lr_min: float | None = None
    lr_max: float | None = None
    reward: Reward = "val_loss"
    reward_scale: float = 1.0
    divergence_factor: float = 10.0
    divergence_penalty: float = 5.0
    total_steps: int | None = None
    steps_per_action: int | None = None
    eval_test: bool = True
    device: str = "cpu"
    optimizer_sets_lr: bool = False

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, ("anchored", "recursive"))
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("reward", self.reward, REWARDS)
        if not self.max_factor > 1.0:
            raise ValueError(f"max_factor must be > 1, got {self.max_factor}.")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}.")
        if self.divergence_factor <= 1.0:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor}.")

    def replace(self, **overrides: Any) -> EnvConfig:
        """Returns a copy with ``overrides``; unknown names raise a clear error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"Unknown EnvConfig option(s) {unknown}. Valid options: {sorted(known)}."
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly)."""
        return dataclasses.asdict(self)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(choices)}.")
