"""The inner optimizer an env's LR rule drives: the task's own, or Prodigy.

``EnvConfig.base="prodigy"`` swaps the task's optimizer for Prodigy (Mishchenko and
Defazio 2024, ``prodigyopt``) at ``lr=1.0``, its README's setting ("We recommend using
``lr=1.`` (default) for all networks"). The LR rule then scales Prodigy's ``lr``, so
every action 0 is Prodigy on the rule's base schedule, and a controller learns where to
deviate from the most lr0-robust baseline measured here instead of from the task's lr0,
which Prodigy ignores. :func:`optimizer_family` maps a task's optimizer to the
counterparts that this base and the optimizer-level baselines
(:mod:`agents.baselines.optimizers`) support; :func:`base_optimizer` builds a deployed
controller's optimizer the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

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
    return _family(task.optimizer, task.optimizer_kwargs, f"Task {task.name!r}")


def _family(opt: type, options: Mapping[str, Any], who: str) -> tuple[str, dict[str, Any]]:
    """:func:`optimizer_family` of an optimizer class and its options (``who``: in errors)."""
    import torch

    kwargs = dict(options)
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
            f"{who} uses {opt.__name__}; optimizer-level baselines and "
            "base='prodigy' support torch.optim.SGD, Adam and AdamW."
        )
    extra = sorted(k for k, v in kwargs.items() if k not in allowed and v)
    if extra:
        raise ValueError(
            f"{who}: {opt.__name__} options {extra} have no counterpart in "
            f"the optimizer-level baselines or base='prodigy'; supported: {sorted(allowed)}."
        )
    return family, {k: v for k, v in kwargs.items() if k in allowed}


def prodigy_kwargs(opt: type, options: Mapping[str, Any], who: str = "The optimizer", *,
                   d_coef: float = 1.0, safeguard_warmup: bool = False,
                   use_bias_correction: bool = False) -> dict[str, Any]:
    """Prodigy's options (all but ``lr``) standing in for ``opt(params, **options)``.

    Adam/AdamW keep betas, eps and weight decay (coupled L2 for Adam, ``decouple=False``;
    decoupled for AdamW, Prodigy's default). Prodigy has only an Adam-style update: SGD
    runs it with Prodigy's default betas, its weight decay kept as an L2 penalty; SGD's
    momentum, dampening and Nesterov have no counterpart. RMSprop (some training
    families use it) is run the same way as SGD: its weight decay kept, its ``alpha``,
    momentum and ``centered`` without counterpart.

    Raises:
        ValueError: ``opt`` (or an option) has no counterpart (:func:`optimizer_family`).
    """
    import torch

    if issubclass(opt, torch.optim.RMSprop):
        family, kwargs = "rmsprop", dict(options)
    else:
        family, kwargs = _family(opt, options, who)
    if family in ("sgd", "rmsprop"):
        kwargs = {"weight_decay": kwargs.get("weight_decay", 0.0)}
    kwargs.update(decouple=family == "adamw", d_coef=d_coef,
                  safeguard_warmup=safeguard_warmup, use_bias_correction=use_bias_correction)
    return kwargs


def dropped_options(opt: type, options: Mapping[str, Any]) -> list[str]:
    """The options of ``opt(params, **options)`` that Prodigy in its place leaves out.

    SGD's (and RMSprop's) update rule has no counterpart in Prodigy's Adam-style one: its
    ``momentum``, ``dampening``, ``nesterov`` (RMSprop's ``alpha``, ``centered``, ``eps``,
    ...) are dropped; only weight decay carries over. Adam's and AdamW's all carry over.
    Options left at a value that changes nothing (0, False, None) are not listed.
    """
    import torch

    if not issubclass(opt, (torch.optim.SGD, torch.optim.RMSprop)):
        return []
    kept = {"weight_decay", *_IGNORED_KEYS}
    return sorted(k for k, v in options.items() if k not in kept and v not in (0, False, None))


def prodigy_task(task: Task, d_coef: float = 1.0, safeguard_warmup: bool = False,
                 use_bias_correction: bool = False) -> Task:
    """The task with ``Prodigy(lr=1.0, d_coef=d_coef)`` as its optimizer.

    Its options are :func:`prodigy_kwargs` of the task's. A task already on Prodigy is
    returned as is.

    Raises:
        ValueError: The task's optimizer has no counterpart (:func:`optimizer_family`).
    """
    from prodigyopt import Prodigy

    if issubclass(task.optimizer, Prodigy):
        return task
    kwargs = prodigy_kwargs(task.optimizer, task.optimizer_kwargs, f"Task {task.name!r}",
                            d_coef=d_coef, safeguard_warmup=safeguard_warmup,
                            use_bias_correction=use_bias_correction)
    return replace(task, lr=PRODIGY_LR, optimizer=Prodigy, optimizer_kwargs=kwargs)


def base_optimizer(base: str, params: Iterable[Any], optimizer: type, *, lr: float,
                   warmup: bool = False, **options: Any) -> torch.optim.Optimizer:
    """The optimizer a controller of ``base`` drives, for deployment.

    ``"task"``: ``optimizer(params, lr=lr, **options)``, as given. ``"prodigy"``:
    ``Prodigy(params, lr=1.0)`` with :func:`prodigy_kwargs` of the options, as the env
    builds it (``lr`` is then unused: Prodigy estimates the step size itself), with one
    warning naming every option it drops (:func:`dropped_options`: SGD's momentum,
    dampening and Nesterov).

    Args:
        base: The controller's base (``policy.env_config.base``, see :data:`lr_gym.config.BASES`).
        params: The parameters (or groups) to optimize.
        optimizer: The optimizer class you would use without a controller.
        lr: Its LR (lr0).
        warmup: Prodigy's ``safeguard_warmup`` (:func:`safeguards_warmup` of the
            controller's config).
        **options: Its other options (momentum, betas, weight decay, ...).

    Raises:
        ValueError: An unknown base, or an optimizer with no Prodigy counterpart.
    """
    from lr_gym.config import BASES

    if base not in BASES:
        raise ValueError(f"Unknown base {base!r}; choose from {BASES}.")
    if base == "task":
        return optimizer(params, lr=lr, **options)
    from prodigyopt import Prodigy

    kwargs = prodigy_kwargs(optimizer, options, safeguard_warmup=warmup)
    if dropped := dropped_options(optimizer, options):
        import warnings

        # Python shows a warning once per place and message: once per set of options.
        warnings.warn(
            f"Prodigy stands in for {optimizer.__name__} (the controller's base is 'prodigy') "
            f"and drops {optimizer.__name__}'s {', '.join(f'{k}={options[k]!r}' for k in dropped)}"
            ": Prodigy's update is Adam-style, with betas (0.9, 0.999); only weight decay "
            "carries over. Use a controller of base='task' (\"lr_gym/task-base\") to keep them.",
            UserWarning, stacklevel=3)
    return Prodigy(params, lr=PRODIGY_LR, **kwargs)


def step_size_estimate(optimizer: torch.optim.Optimizer) -> float:
    """The optimizer's own step-size estimate ``d`` (Prodigy, D-Adaptation), else NaN.

    Read from the first param group, where both keep it; the ``log_d_*`` features
    observe it (``inner.optimizer`` is looked through, as accelerate wraps it).
    """
    inner = getattr(optimizer, "optimizer", optimizer)
    d = inner.param_groups[0].get("d") if inner.param_groups else None
    return float(d) if isinstance(d, (int, float)) else float("nan")


def effective_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """The step size of each param group: ``d * lr`` under Prodigy or D-Adaptation, else ``lr``.

    It is what the next ``optimizer.step()`` applies (both estimate ``d`` in a step and
    keep it in every group for the next). Under a Prodigy base the controller scales
    ``lr`` (1.0 times its multiplier), so the LR alone hides the step; ``d * lr`` is
    Prodigy's and D-Adaptation's ``dlr`` without their optional bias correction.
    ``inner.optimizer`` is looked through, as in :func:`step_size_estimate`.
    """
    inner = getattr(optimizer, "optimizer", optimizer)
    out = []
    for group in inner.param_groups:
        d = group.get("d")
        out.append(float(group["lr"]) * (float(d) if isinstance(d, (int, float)) else 1.0))
    return out


def safeguards_warmup(config: EnvConfig) -> bool:
    """Whether Prodigy runs with ``safeguard_warmup=True`` under ``config``'s rule.

    With a warmup it does, as its README asks ("To avoid issues with warm-up, use option
    ``safeguard_warmup=True``"); the env and a deployed controller both ask here.
    """
    return config.warmup_frac > 0


def base_task(task: Task, config: EnvConfig) -> Task:
    """The task whose optimizer the env's LR rule drives under ``config.base``."""
    if config.base == "prodigy":
        return prodigy_task(task, safeguard_warmup=safeguards_warmup(config))
    return task
