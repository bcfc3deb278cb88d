"""The baselines a practitioner would try, by name (:data:`BASELINES`, :func:`make_baseline`).

Every baseline is a factory in :data:`BASELINES`, built by name with :func:`make_baseline`:

* ``static``: the task's ``lr0``, constant (the seed experiment's baseline).
* ``step``: step decay, x0.1 at 50% and 75% of the budget (torch ``MultiStepLR``).
* ``cosine``: cosine decay from ``lr0`` to 0 (torch ``CosineAnnealingLR``).
* ``warmup_cosine``: AlgoPerf's shape, linear warmup over 2% of the budget then cosine
  to 0 (torch ``LinearLR`` + ``CosineAnnealingLR`` in ``SequentialLR``).
* ``warmup_linear``: Hugging Face's fine-tuning recipe, linear warmup over 10% of the
  budget then linear decay to 0 (``get_linear_schedule_with_warmup``, BERT's 10%).
* ``onecycle``: torch ``OneCycleLR`` with ``max_lr = lr0``, ``pct_start=0.3``.
* ``plateau``: halves the LR when the validation metric stalls (torch ``ReduceLROnPlateau``).
* ``hypergradient``: SGD-HD / Adam-HD (Baydin et al. 2018), the optimizer adapts its LR.
* ``schedulefree``: Schedule-Free SGD / AdamW (``schedulefree`` package), constant LR.
* ``prodigy``: Prodigy (``prodigyopt`` package), ``lr=1.0`` with cosine annealing.
* ``dadaptation``: D-Adaptation SGD / Adam (``dadaptation`` package), ``lr=1.0`` with
  cosine annealing.
* ``replay``, ``learned_schedule``, ``fixed_decay``: a learned controller's open-loop
  controls on its own LR rule (:mod:`agents.baselines.open_loop`): its mean LR per interval on
  the env, its mean schedule over the dev families, the dev-chosen fixed decay.
* ``static_guard``: ``static`` with the guard (rollback and LR back-off on blow-ups).
* ``gala``: a GALA-style alignment rule: the LR rises when consecutive gradients align.

The schedule baselines run torch's own schedulers (through the env's base schedule, see
:mod:`lr_gym.schedules`), so their LR sequences are torch's exactly. Every baseline with
an LR is tunable: ``baseline.with_lr(lr)`` runs every task at ``lr0 = lr`` (Prodigy:
at ``d_coef = lr``, the knob its README tunes).

Untuned (self-tuning track) a baseline runs at ``default_lr(task)``; tuned (external
tuning track) it gets the same number of trials over its own ``search_space(task)``,
log10 exponents relative to ``default_lr(task)``:

* LR schedules (``static``, ``step``, ``cosine``, ``warmup_cosine``, ``warmup_linear``,
  ``onecycle``, ``plateau``, ``hypergradient``): the task's ``lr0``; space ``(-2, 2)``, i.e.
  ``lr0 x 0.01 .. x 100``.
* ``schedulefree``: the low end of its README's range, ``10 x lr0`` (SGD) or ``lr0``
  (Adam/AdamW); space the README's range, ``(0, log10 5)`` = ``10 .. 50 x lr0`` (SGD)
  or ``(0, 1)`` = ``1 .. 10 x lr0`` (Adam/AdamW).
* ``prodigy``: ``d_coef`` 1.0 (its ``lr`` is always 1.0); space ``(-1, 1)``, ``d_coef``
  0.1 .. 10.
* ``dadaptation``: ``lr`` 1.0; space ``(-1, 1)``, ``lr`` 0.1 .. 10.
* ``replay``, ``learned_schedule``, ``fixed_decay``: not tunable (controls of the
  untuned learned controller).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.baselines.base import Controller, ScheduleBaseline, action_array
from agents.baselines.gala import GALAStyle
from agents.baselines.open_loop import AvgLRReplay, LearnedSchedule, fixed_decay
from agents.baselines.optimizers import (
    DAdaptationBaseline,
    HypergradientBaseline,
    ProdigyBaseline,
    ScheduleFreeBaseline,
)
from lr_gym.lr_rule import multiplier_to_action
from lr_gym.schedules import ALGOPERF_WARMUP_FRAC
from lr_gym.tasks.base import Task


# --------------------------------------------------------------- schedule baselines
def static_lr() -> ScheduleBaseline:
    """The seed experiment's baseline: the task's lr0, unchanged for the whole run."""
    return ScheduleBaseline("constant", name="static")


def step_decay() -> ScheduleBaseline:
    """Step decay: x0.1 at 50% and 75% of the budget (``MultiStepLR``)."""
    return ScheduleBaseline("step", name="step")


def cosine_decay() -> ScheduleBaseline:
    """Cosine decay from lr0 to 0 over the budget (``CosineAnnealingLR``)."""
    return ScheduleBaseline("cosine", name="cosine")


def warmup_cosine() -> ScheduleBaseline:
    """AlgoPerf's baseline shape: linear warmup over 2% of the budget, then cosine to 0."""
    return ScheduleBaseline(
        "warmup_cosine", name="warmup_cosine", warmup_frac=ALGOPERF_WARMUP_FRAC
    )


HF_WARMUP_FRAC = 0.1
"""``warmup_linear``: warmup fraction of the budget (BERT's fine-tuning recipe)."""


def warmup_linear() -> ScheduleBaseline:
    """Hugging Face's fine-tuning recipe: linear warmup over 10% of the budget, then linear to 0.

    The shape of ``transformers.get_linear_schedule_with_warmup`` (the Trainer's
    ``lr_scheduler_type="linear"`` with ``warmup_ratio=0.1``), computed by the env's
    ``schedule="linear"`` with ``warmup_frac=0.1``; the env's warmup starts at
    ``lr0 / W`` where HF's starts at 0 (one step of the ``W`` warmup steps differs).
    """
    return ScheduleBaseline("linear", name="warmup_linear", warmup_frac=HF_WARMUP_FRAC)


def onecycle() -> ScheduleBaseline:
    """``OneCycleLR`` with ``max_lr = lr0``: tuning ``lr0`` tunes the peak LR.

    torch's defaults otherwise: rises from ``lr0/25`` over the first 30% of the budget,
    then cosine-anneals to ``lr0/25/1e4``; momentum is not cycled (the env controls the
    LR only).
    """
    return ScheduleBaseline("onecycle", name="onecycle")


def static_guard() -> ScheduleBaseline:
    """Static at lr0 with the guard (:mod:`lr_gym.guard`), halved at each rollback.

    What a rollback alone buys, without any learned control.
    """
    return ScheduleBaseline("constant", name="static_guard", guard=True)


class AlignmentRule(Controller):
    """A GALA-style LR from gradient alignment and local curvature (:mod:`agents.baselines.gala`).

    ``wrap_task`` wraps the task's optimizer in :class:`~agents.baselines.gala.GALAStyle`, which
    moves the LR every step towards the step length the last update's parabola asks for;
    the env runs with ``optimizer_sets_lr=True`` on a constant schedule (actions are
    ignored). ``lr0`` is the starting LR, so it stays tunable.

    Args:
        name: Table name.
    """

    tunable = True

    def __init__(self, name: str = "gala") -> None:
        self.name = name

    def env_kwargs(self) -> Mapping[str, Any]:
        """The optimizer owns the LR."""
        return {"mode": "anchored", "schedule": "constant", "optimizer_sets_lr": True}

    def wrap_task(self, task: Task) -> Task:
        """The task with its optimizer wrapped."""
        task = super().wrap_task(task)
        return replace(task, optimizer=GALAStyle,
                       optimizer_kwargs={"base": task.optimizer, **task.optimizer_kwargs})

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Always 0 (ignored: the optimizer sets the LR)."""
        return action_array(0.0)


# ------------------------------------------------------------------------ plateau
class PlateauBaseline(Controller):
    """``ReduceLROnPlateau`` on the validation metric, decided by torch's own scheduler.

    Each interval the validation value in ``info`` is fed to a ``ReduceLROnPlateau`` on a
    dummy optimizer (LR 1.0); when it cuts the dummy LR by ``factor`` the controller
    emits ``log(factor) / log(max_factor)`` in the env's recursive mode (``M <- M *
    factor``), else 0. With ``factor=0.5, max_factor=4`` that action is exactly -0.5.
    The untrained model's evaluation (step 0) is not fed: nothing was trained yet.

    Args:
        factor: LR multiplier on a plateau (torch's ``factor``), in ``[1/max_factor, 1)``.
        patience: Intervals without improvement before a cut. 2, since the embedded
            tasks have 20 intervals: torch's default of 10 epochs would rarely fire.
        threshold: Relative improvement that counts (torch's default 1e-4).
        cooldown: Intervals to wait after a cut.
        monitor: ``"val_metric"`` (higher is better) or ``"val_loss"`` (lower is better).
        max_factor: The env's ``max_factor``.
        name: Table name.
    """

    tunable = True

    def __init__(
        self,
        factor: float = 0.5,
        patience: int = 2,
        threshold: float = 1e-4,
        cooldown: int = 0,
        monitor: str = "val_metric",
        max_factor: float = 4.0,
        name: str = "plateau",
    ) -> None:
        if not 1.0 / max_factor <= factor < 1.0:
            raise ValueError(
                f"factor={factor} is not reachable in one action with max_factor={max_factor}; "
                f"use a factor in [{1.0 / max_factor:g}, 1) or a larger max_factor."
            )
        if monitor not in ("val_metric", "val_loss"):
            raise ValueError(f"monitor={monitor!r}; choose 'val_metric' or 'val_loss'.")
        self.name = name
        self.factor, self.patience, self.threshold, self.cooldown = (
            factor, patience, threshold, cooldown
        )
        self.monitor, self.max_factor = monitor, max_factor
        self.reset(None, np.zeros(0), {})

    def env_kwargs(self) -> Mapping[str, Any]:
        """Recursive mode on a constant schedule, no LR floor (torch's ``min_lr=0``)."""
        return {
            "mode": "recursive", "schedule": "constant", "max_factor": self.max_factor,
            "lr_min": 0.0,
        }

    def reset(self, env: gym.Env | None, obs: np.ndarray, info: dict[str, Any]) -> None:
        """A fresh scheduler per episode."""
        self._opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        self._scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self._opt,
            mode="max" if self.monitor == "val_metric" else "min",
            factor=self.factor,
            patience=self.patience,
            threshold=self.threshold,
            cooldown=self.cooldown,
        )

    @property
    def scheduler_lr(self) -> float:
        """The dummy optimizer's LR: the run's LR as a factor of ``lr0``."""
        return float(self._opt.param_groups[0]["lr"])

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Steps the plateau scheduler on this interval's value; emits its LR change."""
        if info.get("step", 0) == 0:
            return action_array(0.0)
        before = self.scheduler_lr
        self._scheduler.step(float(info[self.monitor]))
        ratio = self.scheduler_lr / before
        return action_array(
            multiplier_to_action(ratio, self.max_factor) if ratio != 1.0 else 0.0)



# ------------------------------------------------------------------------ registry
BASELINES: dict[str, Callable[..., Controller]] = {
    "static": static_lr,
    "step": step_decay,
    "cosine": cosine_decay,
    "warmup_cosine": warmup_cosine,
    "warmup_linear": warmup_linear,
    "onecycle": onecycle,
    "plateau": PlateauBaseline,
    "hypergradient": HypergradientBaseline,
    "schedulefree": ScheduleFreeBaseline,
    "prodigy": ProdigyBaseline,
    "dadaptation": DAdaptationBaseline,
    "replay": AvgLRReplay,
    "learned_schedule": LearnedSchedule,
    "fixed_decay": fixed_decay,
    "static_guard": static_guard,
    "gala": AlignmentRule,
}
"""Baseline factories by name (``evaluate_agent.py --baselines``)."""


def make_baseline(name: str, **kwargs: Any) -> Controller:
    """Builds a baseline by name (``kwargs`` go to its factory).

    The open-loop controls need what they replay: ``replay`` the learned controller's
    EpisodeResults (``results=``), ``learned_schedule`` its ``progress=`` and
    ``factors=``, ``fixed_decay`` its ``member=``; each takes the controller's
    ``controller_kwargs=``.

    Raises:
        KeyError: Unknown name; the message lists the known ones.
    """
    if name not in BASELINES:
        raise KeyError(f"Unknown baseline {name!r}; choose from {sorted(BASELINES)}.")
    return BASELINES[name](**kwargs)
