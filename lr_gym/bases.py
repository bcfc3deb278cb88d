"""The inner optimizer an env's LR rule drives: the task's own, or Prodigy.

``EnvConfig.base="prodigy"`` swaps the task's optimizer for Prodigy (Mishchenko and
Defazio 2024, ``prodigyopt``) at ``lr=1.0``, its README's setting ("We recommend using
``lr=1.`` (default) for all networks"). The LR rule then scales Prodigy's ``lr``, so
every action 0 is Prodigy on the rule's base schedule, and a controller learns where to
deviate from the most lr0-robust baseline measured here instead of from the task's lr0,
which Prodigy ignores. :func:`optimizer_family` maps a task's optimizer to the
counterparts that this base and the optimizer-level baselines
(:mod:`agents.optimizer_baselines`) support.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lr_gym.config import EnvConfig
    from lr_gym.tasks.base import Task

PRODIGY_LR = 1.0
"""Prodigy's ``lr`` (both its README and D-Adaptation's say to set it to 1.0)."""

_SGD_KEYS = {"momentum", "dampening", "weight_decay", "nesterov"}
_ADAM_KEYS = {"betas", "eps", "weight_decay"}
_IGNORED_KEYS = {"foreach", "fused", "capturable", "differentiable"}  # speed flags only


def optimizer_family(task: Task) -> tuple[str, dict[str, Any]]:
    """``("sgd" | "adam" | "adamw", kwargs)`` of the task's optimizer, with torch's defaults.

    Raises:
        ValueError: An optimizer (or option, e.g. ``amsgrad``) with no counterpart.
    """
    import torch

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
            f"Task {task.name!r} uses {opt.__name__}; optimizer-level baselines and "
            "base='prodigy' support torch.optim.SGD, Adam and AdamW."
        )
    extra = sorted(k for k, v in kwargs.items() if k not in allowed and v)
    if extra:
        raise ValueError(
            f"Task {task.name!r}: {opt.__name__} options {extra} have no counterpart in "
            f"the optimizer-level baselines or base='prodigy'; supported: {sorted(allowed)}."
        )
    return family, {k: v for k, v in kwargs.items() if k in allowed}


def prodigy_task(task: Task, d_coef: float = 1.0, safeguard_warmup: bool = False,
                 use_bias_correction: bool = False) -> Task:
    """The task with ``Prodigy(lr=1.0, d_coef=d_coef)`` as its optimizer.

    Adam/AdamW keep betas, eps and weight decay (coupled L2 for Adam, ``decouple=False``;
    decoupled for AdamW, Prodigy's default). Prodigy has only an Adam-style update: an
    SGD task runs it with Prodigy's default betas, its weight decay kept as an L2
    penalty; SGD's momentum, dampening and Nesterov have no counterpart. RMSprop (some
    training families use it) is run the same way as SGD: its weight decay kept, its
    ``alpha``, momentum and ``centered`` without counterpart. A task already on Prodigy
    is returned as is.

    Raises:
        ValueError: The task's optimizer has no counterpart (:func:`optimizer_family`).
    """
    import torch
    from prodigyopt import Prodigy

    if issubclass(task.optimizer, Prodigy):
        return task
    if issubclass(task.optimizer, torch.optim.RMSprop):
        family, kwargs = "rmsprop", dict(task.optimizer_kwargs)
    else:
        family, kwargs = optimizer_family(task)
    if family in ("sgd", "rmsprop"):
        kwargs = {"weight_decay": kwargs.get("weight_decay", 0.0)}
    kwargs.update(decouple=family == "adamw", d_coef=d_coef,
                  safeguard_warmup=safeguard_warmup, use_bias_correction=use_bias_correction)
    return replace(task, lr=PRODIGY_LR, optimizer=Prodigy, optimizer_kwargs=kwargs)


def base_task(task: Task, config: EnvConfig) -> Task:
    """The task whose optimizer the env's LR rule drives under ``config.base``.

    With a warmup Prodigy runs with ``safeguard_warmup=True``, as its README asks ("To
    avoid issues with warm-up, use option ``safeguard_warmup=True``").
    """
    if config.base == "prodigy":
        return prodigy_task(task, safeguard_warmup=config.warmup_frac > 0)
    return task
