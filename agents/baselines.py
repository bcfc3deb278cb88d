"""The baselines a practitioner would try, behind the :class:`~agents.base.Controller` interface.

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
* ``avg_lr_replay``: replays a learned controller's LRs per interval (geometric mean
  over seeds), blind to state.
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
* ``avg_lr_replay``: not tunable (its ``default_lr`` is the task's ``lr0``).
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
from agents.gala import GALAStyle
from agents.hypergradient import ADAM_HD_BETA, SGD_HD_BETA, SGDHD, AdamHD
from lr_gym.lr_rule import multiplier_to_action
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
    """A GALA-style LR from gradient alignment and local curvature (:mod:`agents.gala`).

    ``wrap_task`` wraps the task's optimizer in :class:`~agents.gala.GALAStyle`, which
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
        return _action(0.0)


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
        return _action(multiplier_to_action(ratio, self.max_factor) if ratio != 1.0 else 0.0)


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


SCHEDULEFREE_SGD_MULTIPLE = (10.0, 50.0)
"""Schedule-Free README: "For SGD, a learning rate 10x-50x larger than classical rates
seems to be a good starting point"."""
SCHEDULEFREE_ADAMW_MULTIPLE = (1.0, 10.0)
"""Schedule-Free README: "For AdamW, learning rates in the range 1x-10x larger than with
schedule-based approaches seem to work"."""


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

    LR: the package's own defaults (``lr=1.0`` for SGD, ``2.5e-3`` for AdamW) know
    nothing of the task, but its README gives the LR relative to the usual one: "For
    SGD, a learning rate 10x-50x larger than classical rates seems to be a good starting
    point" and "For AdamW, learning rates in the range 1x-10x larger than with
    schedule-based approaches seem to work". (SGD with momentum ``m`` steps
    ``lr / (1 - m)`` per unit gradient, Schedule-Free SGD only ``lr``: hence 10x.)
    Untuned (self-tuning track), :meth:`default_lr` is the low end of that range, the
    README's "starting point": ``10 x lr0`` for an SGD task, ``lr0`` for an Adam/AdamW
    task (on Digits-MLP, 300 steps, seed 0: val accuracy 0.71 at lr0 0.05, 0.93 at
    0.5, 0.95 at 2.0; static SGD 0.96). Tuned, :meth:`search_space` is the README's
    whole range, ``10 .. 50 x lr0`` (SGD) or ``1 .. 10 x lr0`` (Adam/AdamW): its first
    trial (the centre) is ``22 x`` resp. ``3.2 x lr0``, not the untuned LR.

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

    @staticmethod
    def _multiple(task: Task) -> tuple[float, float]:
        family, _ = _optimizer_family(task)
        return SCHEDULEFREE_SGD_MULTIPLE if family == "sgd" else SCHEDULEFREE_ADAMW_MULTIPLE

    def default_lr(self, task: Task) -> float:
        """The README's low end: ``10 x lr0`` for SGD tasks, ``lr0`` for Adam/AdamW tasks.

        Raises:
            ValueError: The task's optimizer has no Schedule-Free counterpart.
        """
        return float(task.lr) * self._multiple(task)[0]

    def search_space(self, task: Task) -> tuple[float, float]:
        """The README's range relative to :meth:`default_lr`.

        ``(0, log10 5)`` for SGD tasks (``10 .. 50 x lr0``), ``(0, 1)`` for Adam/AdamW
        tasks (``1 .. 10 x lr0``).

        Raises:
            ValueError: The task's optimizer has no Schedule-Free counterpart.
        """
        lo, hi = self._multiple(task)
        return (0.0, math.log10(hi / lo))

    def wrap_task(self, task: Task) -> Task:
        """The task with its optimizer swapped for the Schedule-Free version."""
        import schedulefree

        family, kwargs = _optimizer_family(task)
        task = super().wrap_task(task)
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


# ------------------------------------------------------ learning-rate-free baselines
LR_FREE_LR = 1.0
"""The ``lr`` Prodigy and D-Adaptation are run with: both READMEs say to set it to 1.0."""
LR_FREE_SPACE = (-1.0, 1.0)
"""Their tuning range around 1.0: Prodigy's README names ``d_coef`` values 0.1 .. 10."""


class _LRFreeBaseline(Controller):
    """Shared by Prodigy and D-Adaptation: ``lr = 1.0`` under an annealing schedule.

    The env runs anchored on ``schedule`` with no LR floor and action 0, so each step
    it sets the optimizer's ``lr`` to ``1.0 * schedule(t)`` (``group_lr0 * lr / lr0``
    with ``group_lr0 = lr0 = 1.0``): the schedule multiplies the adapted step size
    ``d * lr``, as a torch scheduler on the optimizer would. ``info["lr"]`` is that
    factor, not the adapted ``d * lr``. Both track the largest group LR and accept no
    other per-group LR than 0; every group starts at 1.0, so the env's writes keep them
    equal.

    Args:
        schedule: ``EnvConfig.schedule`` the ``lr`` follows.
        name: Table name.
    """

    tunable = True

    def __init__(self, schedule: str, name: str) -> None:
        self.schedule, self.name = schedule, name

    def env_kwargs(self) -> Mapping[str, Any]:
        """Anchored on the schedule, no warmup, no LR floor (cosine really reaches 0)."""
        return {"mode": "anchored", "schedule": self.schedule, "warmup_frac": 0.0,
                "lr_min": 0.0}

    def default_lr(self, task: Task) -> float:
        """1.0, the package's documented setting, whatever the task's ``lr0``."""
        return LR_FREE_LR

    def search_space(self, task: Task) -> tuple[float, float]:
        """``(-1, 1)``: a scale of 0.1 .. 10 around 1.0."""
        return LR_FREE_SPACE

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Always 0: the env's base schedule."""
        return _action(0.0)


class ProdigyBaseline(_LRFreeBaseline):
    """Prodigy (Mishchenko and Defazio 2024, ``prodigyopt`` package), LR-free Adam.

    ``wrap_task`` swaps the task's optimizer for ``prodigyopt.Prodigy`` at ``lr=1.0``:
    README, "We recommend using ``lr=1.`` (default) for all networks". Adam/AdamW keep
    betas, eps and weight decay (coupled L2 for Adam, ``decouple=False``; decoupled for
    AdamW, Prodigy's default). Prodigy has only an Adam-style update: an SGD task runs
    it with Prodigy's default betas, its weight decay kept as an L2 penalty; SGD's
    momentum, dampening and Nesterov have no counterpart (beta1 = 0.9 plays momentum's
    part) and are not used.

    Schedule: README, "As a rule of thumb, we recommend either using no scheduler or
    using cosine annealing with the method ... ``CosineAnnealingLR(opt,
    T_max=total_steps)``" without restarts: by default the env anneals ``lr`` from 1.0
    to 0 over the budget (torch's ``CosineAnnealingLR``).

    ``safeguard_warmup=False`` and ``use_bias_correction=False`` (Prodigy's defaults):
    the README asks for ``safeguard_warmup=True`` only with linear warm-up ("To avoid
    issues with warm-up, use option ``safeguard_warmup=True``") or cosine restarts,
    neither of which this schedule has, and recommends ``use_bias_correction=True``
    (with ``safeguard_warmup=True``) only "when training diffusion models"; it gives no
    other per-optimizer-family advice.

    Tuning: README, "If you want to force the method to estimate a smaller or larger
    learning rate, it is better to change the value of ``d_coef`` (1.0 by default).
    Values of ``d_coef`` above 1, such as 2 or 10, will force a larger estimate ...; set
    it to 0.5 or even 0.1 if you want a smaller learning rate." So the tuned value
    (``lr`` / :meth:`with_lr`, :meth:`default_lr` 1.0) is ``d_coef``, searched over
    ``10 ** [-1, 1]``; the optimizer's own ``lr`` stays 1.0.

    Args:
        schedule: ``EnvConfig.schedule`` the ``lr`` follows (README: ``"cosine"``).
        safeguard_warmup: Prodigy's ``safeguard_warmup``.
        use_bias_correction: Prodigy's ``use_bias_correction``.
        name: Table name.
    """

    def __init__(
        self,
        schedule: str = "cosine",
        safeguard_warmup: bool = False,
        use_bias_correction: bool = False,
        name: str = "prodigy",
    ) -> None:
        super().__init__(schedule, name)
        self.safeguard_warmup, self.use_bias_correction = safeguard_warmup, use_bias_correction

    def wrap_task(self, task: Task) -> Task:
        """The task with ``Prodigy(lr=1.0, d_coef=lr or 1.0)`` as its optimizer.

        Raises:
            ValueError: The task's optimizer has no counterpart (see
                :func:`_optimizer_family`).
        """
        from prodigyopt import Prodigy

        family, kwargs = _optimizer_family(task)
        if family == "sgd":
            kwargs = {"weight_decay": kwargs.get("weight_decay", 0.0)}
        kwargs.update(
            decouple=family == "adamw",
            d_coef=self.lr if self.lr is not None else self.default_lr(task),
            safeguard_warmup=self.safeguard_warmup,
            use_bias_correction=self.use_bias_correction,
        )
        return replace(task, lr=LR_FREE_LR, optimizer=Prodigy, optimizer_kwargs=kwargs)


class DAdaptationBaseline(_LRFreeBaseline):
    """D-Adaptation (Defazio and Mishchenko 2023, ``dadaptation`` package), LR-free.

    ``wrap_task`` swaps ``SGD`` for ``DAdaptSGD`` (momentum and weight decay kept; its
    weight decay is read from the first param group) and ``Adam``/``AdamW`` for
    ``DAdaptAdam`` (betas, eps and weight decay kept; README: "The Adam variant supports
    AdamW style weight decay, just set ``decouple=True``", so ``decouple`` is on for
    AdamW tasks only). ``use_bias_correction`` stays at its default (off): the README
    says nothing on it. SGD's dampening and Nesterov have no ``DAdaptSGD`` counterpart:
    a task using them raises ``ValueError``.

    LR: README, "**Set the LR parameter to 1.0**. This parameter is not ignored. Setting
    it larger to smaller will directly scale up or down the D-Adapted learning rate
    estimate": :meth:`default_lr` is 1.0 and the tuned value is ``lr`` itself, searched
    over ``10 ** [-1, 1]`` (the range Prodigy's README gives for its ``d_coef``).

    Schedule: README, "**Use the same learning rate scheduler you would normally use on
    the problem.**" The suite has no per-task schedule, so the default is the standard
    decaying one, cosine annealing to 0 (``CosineAnnealingLR``, as the ``cosine``
    baseline and Prodigy's README).

    Args:
        schedule: ``EnvConfig.schedule`` the ``lr`` follows.
        name: Table name.
    """

    def __init__(self, schedule: str = "cosine", name: str = "dadaptation") -> None:
        super().__init__(schedule, name)

    def wrap_task(self, task: Task) -> Task:
        """The task with ``DAdaptSGD`` or ``DAdaptAdam`` at ``lr = lr or 1.0``.

        Raises:
            ValueError: The task's optimizer (or an option, e.g. Nesterov) has no
                D-Adaptation counterpart.
        """
        import dadaptation

        family, kwargs = _optimizer_family(task)
        task = super().wrap_task(task)
        if family == "sgd":
            unsupported = sorted(k for k in ("dampening", "nesterov") if kwargs.get(k))
            if unsupported:
                raise ValueError(
                    f"Task {task.name!r}: SGD options {unsupported} have no counterpart "
                    "in dadaptation.DAdaptSGD (momentum and weight_decay only)."
                )
            sgd_kwargs = {
                "momentum": kwargs.get("momentum", 0.0),
                "weight_decay": kwargs.get("weight_decay", 0.0),
            }
            return replace(task, optimizer=dadaptation.DAdaptSGD, optimizer_kwargs=sgd_kwargs)
        kwargs["decouple"] = family == "adamw"
        return replace(task, optimizer=dadaptation.DAdaptAdam, optimizer_kwargs=kwargs)


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
        return _action(multiplier_to_action(m, self.max_factor))


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
    "avg_lr_replay": AvgLRReplay,
    "static_guard": static_guard,
    "gala": AlignmentRule,
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
