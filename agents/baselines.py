"""The baselines a practitioner would try, behind the :class:`~agents.base.Controller` interface.

Every baseline is a factory in :data:`BASELINES`, built by name with :func:`make_baseline`:

* ``static``: the task's ``lr0``, constant (the seed experiment's baseline).
* ``step``: step decay, x0.1 at 50% and 75% of the budget (torch ``MultiStepLR``).
* ``cosine``: cosine decay from ``lr0`` to 0 (torch ``CosineAnnealingLR``).
* ``warmup_cosine``: AlgoPerf's shape, linear warmup over 2% of the budget then cosine
  to 0 (torch ``LinearLR`` + ``CosineAnnealingLR`` in ``SequentialLR``).
* ``onecycle``: torch ``OneCycleLR`` with ``max_lr = lr0``, ``pct_start=0.3``.
* ``plateau``: halves the LR when the validation metric stalls (torch ``ReduceLROnPlateau``).
* ``hypergradient``: SGD-HD / Adam-HD (Baydin et al. 2018), the optimizer adapts its LR.
* ``schedulefree``: Schedule-Free SGD / AdamW (``schedulefree`` package), constant LR.
* ``avg_lr_replay``: replays a learned controller's mean LR per interval, blind to state.

The schedule baselines run torch's own schedulers (through the env's base schedule, see
:mod:`lr_gym.schedules`), so their LR sequences are torch's exactly. Every baseline with
an LR is tunable: ``baseline.with_lr(lr)`` runs every task at ``lr0 = lr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import Controller, ScheduleBaseline
from agents.hypergradient import ADAM_HD_BETA, SGD_HD_BETA, SGDHD, AdamHD
from lr_gym.schedules import ALGOPERF_WARMUP_FRAC
from lr_gym.tasks.base import Task

if TYPE_CHECKING:
    from agents.rollout import EpisodeResult


def _action(value: float) -> np.ndarray:
    # float64: the env maps actions in float64, so a computed factor arrives unrounded.
    return np.array([value], dtype=np.float64)


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


def onecycle() -> ScheduleBaseline:
    """``OneCycleLR`` with ``max_lr = lr0``: tuning ``lr0`` tunes the peak LR.

    torch's defaults otherwise: rises from ``lr0/25`` over the first 30% of the budget,
    then cosine-anneals to ``lr0/25/1e4``; momentum is not cycled (the env controls the
    LR only).
    """
    return ScheduleBaseline("onecycle", name="onecycle")


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
            return _action(0.0)
        before = self.scheduler_lr
        self._scheduler.step(float(info[self.monitor]))
        ratio = self.scheduler_lr / before
        return _action(math.log(ratio) / math.log(self.max_factor) if ratio != 1.0 else 0.0)


# ---------------------------------------------------------- optimizer-level baselines
_SGD_KEYS = {"momentum", "dampening", "weight_decay", "nesterov"}
_ADAM_KEYS = {"betas", "eps", "weight_decay"}
_IGNORED_KEYS = {"foreach", "fused", "capturable", "differentiable"}  # speed flags only


def _optimizer_family(task: Task) -> tuple[str, dict[str, Any]]:
    """``("sgd" | "adam" | "adamw", kwargs)`` of the task's optimizer, with torch's defaults.

    Raises:
        ValueError: An optimizer (or option, e.g. ``amsgrad``) with no counterpart.
    """
    opt, kwargs = task.optimizer, dict(task.optimizer_kwargs)
    for key in _IGNORED_KEYS:
        kwargs.pop(key, None)
    if issubclass(opt, torch.optim.SGD):
        family, allowed = "sgd", _SGD_KEYS
    elif issubclass(opt, torch.optim.AdamW):  # before Adam: AdamW subclasses it
        family, allowed = "adamw", _ADAM_KEYS
        kwargs.setdefault("weight_decay", 1e-2)  # torch AdamW's default
    elif issubclass(opt, torch.optim.Adam):
        family, allowed = "adam", _ADAM_KEYS
    else:
        raise ValueError(
            f"Task {task.name!r} uses {opt.__name__}; optimizer-level baselines support "
            "torch.optim.SGD, Adam and AdamW."
        )
    extra = sorted(k for k, v in kwargs.items() if k not in allowed and v)
    if extra:
        raise ValueError(
            f"Task {task.name!r}: {opt.__name__} options {extra} have no counterpart in "
            f"the optimizer-level baselines; supported: {sorted(allowed)}."
        )
    return family, {k: v for k, v in kwargs.items() if k in allowed}


class HypergradientBaseline(Controller):
    """Hypergradient descent: the optimizer adapts its own LR (SGD-HD / Adam-HD).

    ``wrap_task`` swaps ``SGD`` (momentum, dampening, Nesterov and weight decay kept:
    SGDN-HD when momentum > 0) for :class:`~agents.hypergradient.SGDHD`, and
    ``Adam``/``AdamW`` for :class:`~agents.hypergradient.AdamHD` (AdamW's decay stays
    decoupled). The env runs with ``optimizer_sets_lr=True`` (it never writes the LR and
    reports the optimizer's) on a constant schedule; the action is ignored (always 0).
    ``lr0`` is the initial LR, so it stays tunable.

    Args:
        beta_sgd: Hypergradient LR for SGD-HD (paper: 1e-3).
        beta_adam: Hypergradient LR for Adam-HD (paper: 1e-7).
        name: Table name.
    """

    tunable = True

    def __init__(
        self,
        beta_sgd: float = SGD_HD_BETA,
        beta_adam: float = ADAM_HD_BETA,
        name: str = "hypergradient",
    ) -> None:
        self.beta_sgd, self.beta_adam, self.name = beta_sgd, beta_adam, name

    def env_kwargs(self) -> Mapping[str, Any]:
        """The optimizer owns the LR."""
        return {"mode": "anchored", "schedule": "constant", "optimizer_sets_lr": True}

    def wrap_task(self, task: Task) -> Task:
        """The task with its optimizer swapped for the HD version."""
        task = super().wrap_task(task)
        family, kwargs = _optimizer_family(task)
        if family == "sgd":
            return replace(
                task, optimizer=SGDHD, optimizer_kwargs={**kwargs, "hypergrad_lr": self.beta_sgd}
            )
        kwargs.update(decoupled_weight_decay=family == "adamw", hypergrad_lr=self.beta_adam)
        return replace(task, optimizer=AdamHD, optimizer_kwargs=kwargs)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Always 0 (ignored: the optimizer sets the LR)."""
        return _action(0.0)


class ScheduleFreeBaseline(Controller):
    """Schedule-Free SGD / AdamW (Defazio et al. 2024, ``schedulefree`` package).

    ``wrap_task`` swaps ``SGD`` for ``SGDScheduleFree`` (SGD's momentum becomes the
    Schedule-Free interpolation ``momentum``, 0.9 if the task has none; weight decay
    kept; dampening/Nesterov have no counterpart and are dropped) and ``Adam``/``AdamW``
    for ``AdamWScheduleFree`` (betas, eps, weight decay kept; its decay is decoupled, as
    AdamW's). The env holds the LR constant at ``lr0`` after a linear warmup over
    ``warmup_frac`` of the env's budget: the package's own ``warmup_steps`` would
    multiply the LR by ``(k + 1) / warmup_steps`` in the same way, but only the env knows
    the budget when ``total_steps`` is overridden. The env calls ``optimizer.eval()``
    around every evaluation, so validation and test see the averaged weights.

    Untuned it runs at the task's ``lr0``, which suits Schedule-Free AdamW but is small
    for Schedule-Free SGD: SGD with momentum ``m`` steps ``lr / (1 - m)`` per unit
    gradient, Schedule-Free SGD only ``lr`` (on Digits-MLP, 300 steps, seed 0: val
    accuracy 0.71 at lr0 0.05, 0.93 at 0.5, 0.95 at 2.0; static SGD 0.96). Compare it
    tuned, with an LR grid reaching ``10 x lr0`` and beyond.

    Args:
        warmup_frac: Warmup fraction of the budget (AlgoPerf's 2%).
        name: Table name.
    """

    tunable = True

    def __init__(self, warmup_frac: float = ALGOPERF_WARMUP_FRAC, name: str = "schedulefree"):
        self.warmup_frac, self.name = warmup_frac, name

    def env_kwargs(self) -> Mapping[str, Any]:
        """Constant LR after the warmup, no floor (the warmup starts below ``lr0/1000``)."""
        return {
            "mode": "anchored", "schedule": "constant", "warmup_frac": self.warmup_frac,
            "lr_min": 0.0,
        }

    def wrap_task(self, task: Task) -> Task:
        """The task with its optimizer swapped for the Schedule-Free version."""
        import schedulefree

        task = super().wrap_task(task)
        family, kwargs = _optimizer_family(task)
        if family == "sgd":
            sgd_kwargs = {
                "momentum": kwargs.get("momentum") or 0.9,
                "weight_decay": kwargs.get("weight_decay", 0.0),
            }
            return replace(
                task, optimizer=schedulefree.SGDScheduleFree, optimizer_kwargs=sgd_kwargs
            )
        return replace(task, optimizer=schedulefree.AdamWScheduleFree, optimizer_kwargs=kwargs)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Always 0: the env's constant base schedule."""
        return _action(0.0)


# --------------------------------------------------------------- average-LR replay
def mean_interval_lrs(results: Sequence[EpisodeResult]) -> np.ndarray:
    """Mean LR of each control interval over ``results`` (arithmetic, over seeds).

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
    return np.array(
        [np.mean([r.lrs[k + 1] for r in results if len(r.lrs) > k + 1]) for k in range(n)]
    )


class AvgLRReplay(Controller):
    """Replays a fixed LR per interval (a learned controller's mean), blind to the state.

    Compared with the learned controller on the same task and seeds, it tells whether
    the controller helps by reacting to the run or only by finding a better fixed
    schedule. It runs the env anchored on a constant schedule without warmup, with
    ``max_factor`` large enough that ``a = log(lr_target / lr0) / log(max_factor)``
    reaches every target in one action, and bounds wide enough not to clip them. The LR
    is constant within an interval: exact for controllers on a constant base schedule;
    for one anchored on a decaying schedule each interval replays its last step's LR.
    Past the last recorded interval (all runs diverged) the last target is held. Not
    tunable: the replayed LRs are the controller's, not derived from ``lr0``.

    Args:
        results: The learned controller's episodes on one env (any number of seeds), or
            use ``targets`` instead.
        targets: The LR of each interval, if not computed from ``results``.
        max_factor: The env's ``max_factor``.
        name: Table name.
    """

    tunable = False

    def __init__(
        self,
        results: Sequence[EpisodeResult] | None = None,
        *,
        targets: Sequence[float] | None = None,
        max_factor: float = 1e3,
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
        self.max_factor, self.name = max_factor, name
        self._k, self._lr0 = 0, float("nan")

    def env_kwargs(self) -> Mapping[str, Any]:
        """Anchored on a constant schedule; bounds and range cover the targets."""
        return {
            "mode": "anchored", "schedule": "constant", "warmup_frac": 0.0,
            "max_factor": self.max_factor, "lr_min": 0.0, "lr_max": math.inf,
        }

    def reset(self, env: gym.Env, obs: np.ndarray, info: dict[str, Any]) -> None:
        """Starts at the first interval; ``lr0`` is the reset LR (constant schedule)."""
        self._k, self._lr0 = 0, float(info["lr"])
        ratios = self.targets / self._lr0
        if ratios.min() < 1.0 / self.max_factor or ratios.max() > self.max_factor:
            raise ValueError(
                f"avg_lr_replay: targets span {ratios.min():.3g}..{ratios.max():.3g} x lr0, "
                f"beyond max_factor={self.max_factor:g}; pass a larger max_factor."
            )

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action that sets this interval's target LR."""
        target = self.targets[min(self._k, len(self.targets) - 1)]
        self._k += 1
        return _action(math.log(target / self._lr0) / math.log(self.max_factor))


# ------------------------------------------------------------------------ registry
BASELINES: dict[str, Callable[..., Controller]] = {
    "static": static_lr,
    "step": step_decay,
    "cosine": cosine_decay,
    "warmup_cosine": warmup_cosine,
    "onecycle": onecycle,
    "plateau": PlateauBaseline,
    "hypergradient": HypergradientBaseline,
    "schedulefree": ScheduleFreeBaseline,
    "avg_lr_replay": AvgLRReplay,
}
"""Baseline factories by name (``evaluate_agent.py --baselines``)."""


def make_baseline(name: str, **kwargs: Any) -> Controller:
    """Builds a baseline by name (``kwargs`` go to its factory).

    ``avg_lr_replay`` needs ``results=`` (the learned controller's EpisodeResults).

    Raises:
        KeyError: Unknown name; the message lists the known ones.
    """
    if name not in BASELINES:
        raise KeyError(f"Unknown baseline {name!r}; choose from {sorted(BASELINES)}.")
    return BASELINES[name](**kwargs)
