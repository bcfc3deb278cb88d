"""Optimizer-level baselines: the optimizer sets its own LR.

Hypergradient, Schedule-Free, Prodigy and D-Adaptation; :mod:`agents.baselines` lists
their defaults and search spaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from agents.baselines.base import Controller, action_array
from agents.baselines.hypergradient import ADAM_HD_BETA, SGD_HD_BETA, SGDHD, AdamHD
from lr_gym.bases import optimizer_family, prodigy_task
from lr_gym.schedules import ALGOPERF_WARMUP_FRAC
from lr_gym.tasks.base import Task

# ---------------------------------------------------------- optimizer-level baselines


class HypergradientBaseline(Controller):
    """Hypergradient descent: the optimizer adapts its own LR (SGD-HD / Adam-HD).

    ``wrap_task`` swaps ``SGD`` (momentum, dampening, Nesterov and weight decay kept:
    SGDN-HD when momentum > 0) for :class:`~agents.baselines.hypergradient.SGDHD`, and
    ``Adam``/``AdamW`` for :class:`~agents.baselines.hypergradient.AdamHD` (AdamW's decay stays
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
        family, kwargs = optimizer_family(task)
        if family == "sgd":
            return replace(
                task, optimizer=SGDHD, optimizer_kwargs={**kwargs, "hypergrad_lr": self.beta_sgd}
            )
        kwargs.update(decoupled_weight_decay=family == "adamw", hypergrad_lr=self.beta_adam)
        return replace(task, optimizer=AdamHD, optimizer_kwargs=kwargs)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Always 0 (ignored: the optimizer sets the LR)."""
        return action_array(0.0)


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
        family, _ = optimizer_family(task)
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

        family, kwargs = optimizer_family(task)
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
        return action_array(0.0)


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
        return action_array(0.0)


class ProdigyBaseline(_LRFreeBaseline):
    """Prodigy (Mishchenko and Defazio 2024, ``prodigyopt`` package), LR-free Adam.

    ``wrap_task`` swaps the task's optimizer for ``prodigyopt.Prodigy`` at ``lr=1.0``
    (:func:`lr_gym.bases.prodigy_task`, also the env's ``base="prodigy"``):
    README, "We recommend using ``lr=1.`` (default) for all networks". Adam/AdamW keep
    betas, eps and weight decay (coupled L2 for Adam, ``decouple=False``; decoupled for
    AdamW, Prodigy's default). Prodigy has only an Adam-style update: an SGD task runs
    it with Prodigy's default betas, its weight decay kept as an L2 penalty; SGD's
    momentum, dampening and Nesterov have no counterpart (beta1 = 0.9 plays momentum's
    part) and are not used; an RMSprop task runs the same way.

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
                :func:`lr_gym.bases.optimizer_family`).
        """
        return prodigy_task(
            task, d_coef=self.lr if self.lr is not None else self.default_lr(task),
            safeguard_warmup=self.safeguard_warmup, use_bias_correction=self.use_bias_correction)


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

        family, kwargs = optimizer_family(task)
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


