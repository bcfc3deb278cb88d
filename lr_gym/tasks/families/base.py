"""The `TaskFamily` API: a distribution over tasks that draws a fresh `Task` per sample.

In the spirit of learned_optimization's ``TaskFamily``: a controller trained on a fixed
list of tasks with one budget, one interval and three initial LRs learns a per-task
fixed LR; one trained on a broad distribution of architectures, data, optimizers,
initial LRs and horizons must react to the run instead (LHOPT, Xu et al. 2019).

A family declares its own sampling space (:attr:`TaskFamily.space`: architecture and
data dimensions) and shares the run configuration (:class:`RunSpace`) with every
other family:

* inner optimizer: SGD, SGD+momentum 0.9, SGD+Nesterov, Adam, AdamW (weight decay
  log-uniform in 0.01-0.1) or RMSprop, each with the family's reference LR;
* ``lr0`` log-uniform over x0.01 to x100 of that reference LR;
* budget ``T`` log-uniform over 100-3,000 optimizer steps, and a decision count
  log-uniform over 10-50, from which ``K = steps_per_action = round(T / decisions)``
  and ``T`` is rounded to a multiple of ``K`` (so an episode has 10-50 decisions);
* batch size from {16, 32, 64, 128}, capped by the training-set size.

Families whose optimizer step costs several milliseconds on one CPU core (convolutions,
recurrences, attention) use :data:`HEAVY_MODEL_RUNS` instead: budgets of 100-1,000
steps and batches of at most 64, which keeps their median episode within about 2 s on
one core (measured by ``benchmarks/family_costs.py``).

Every range is an explicit attribute, so tests can check that samples lie in them.
Sampling is cheap (no model, no data); sampled tasks are plain, picklable
:class:`~lr_gym.tasks.Task` objects (module-level factories bound with
``functools.partial``) whose name encodes the whole configuration, and whose data
are cached per process by data configuration.

Example:
    >>> import numpy as np
    >>> from lr_gym.tasks.families.base import get_family
    >>> family = get_family("tabular-mlp")                 # doctest: +SKIP
    >>> task = family.sample(np.random.default_rng(0))      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lr_gym.tasks.base import Task

# foreach=True: torch defaults to per-tensor Python loops on CPU, which cost more than
# the small models' own compute (measured 15-30% of an Adam or RMSprop step).
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {"foreach": True}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9, "foreach": True}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "foreach": True}),
    "adam": (torch.optim.Adam, {"foreach": True}),
    "adamw": (torch.optim.AdamW, {"foreach": True}),  # weight decay is sampled
    "rmsprop": (torch.optim.RMSprop, {"foreach": True}),
}
"""Inner optimizers by name: class and fixed keyword arguments."""


def reference_lrs(momentum: float, adam: float) -> dict[str, float]:
    """Reference LRs of every optimizer from a family's SGD+momentum and Adam LRs.

    Plain SGD gets ten times the momentum LR (momentum 0.9 multiplies the effective
    step by ten); Nesterov shares the momentum LR; AdamW and RMSprop share Adam's.
    """
    return {"sgd": 10 * momentum, "momentum": momentum, "nesterov": momentum,
            "adam": adam, "adamw": adam, "rmsprop": adam}


# ----------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class Choice:
    """A uniform choice among ``values``."""

    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        """One value."""
        return self.values[int(rng.integers(len(self.values)))]

    def __contains__(self, value: object) -> bool:
        return value in self.values


@dataclass(frozen=True)
class Range:
    """A uniform or log-uniform draw in ``[low, high]``.

    Attributes:
        low: Lowest value.
        high: Highest value.
        log: Draw log-uniformly.
        integer: Round to the nearest integer (kept inside the range).
        decimals: Round floats to this many decimals: a bounded set of values keeps
            the per-process data caches bounded.
    """

    low: float
    high: float
    log: bool = False
    integer: bool = False
    decimals: int | None = None

    def sample(self, rng: np.random.Generator) -> float | int:
        """One value."""
        if self.log:
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            v = float(rng.uniform(self.low, self.high))
        if self.integer:
            return int(min(max(round(v), math.ceil(self.low)), math.floor(self.high)))
        if self.decimals is not None:
            v = round(v, self.decimals)
        return float(min(max(v, self.low), self.high))

    def __contains__(self, value: object) -> bool:
        if self.integer and not isinstance(value, int):
            return False
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Mixture:
    """A draw from one of several domains, chosen with the given weights.

    Attributes:
        parts: ``(weight, domain)`` pairs; weights need not sum to 1.
    """

    parts: tuple[tuple[float, Range], ...]

    def sample(self, rng: np.random.Generator) -> float | int:
        """One value: a part by weight, then a value of it (two draws, always)."""
        weights = np.array([w for w, _ in self.parts], dtype=float)
        u = rng.random()
        i = min(int(np.searchsorted(np.cumsum(weights / weights.sum()), u, side="right")),
                len(self.parts) - 1)
        return self.parts[i][1].sample(rng)

    def __contains__(self, value: object) -> bool:
        return any(value in domain for _, domain in self.parts)


Domain = Choice | Range | Mixture

LR_SCALE_V2 = Mixture(((0.4, Range(0.5, 2.0, log=True)), (0.6, Range(0.01, 100.0, log=True))))
"""Task distribution v2's ``lr0`` scale: 40% near the reference LR (x0.5-x2), where
leaving the LR alone should win, and 60% anywhere in x0.01-x100, to be undone."""


# ------------------------------------------------------------------------ run config
@dataclass(frozen=True)
class RunConfig:
    """The sampled inner run: optimizer, ``lr0``, budget, interval and batch size.

    Attributes:
        optimizer: Key of :data:`OPTIMIZERS`.
        lr_scale: ``lr0`` divided by the family's reference LR for ``optimizer``.
        lr: ``lr0``.
        weight_decay: AdamW's decoupled weight decay (0 for the other optimizers).
        total_steps: Budget ``T`` in optimizer steps (a multiple of ``steps_per_action``).
        steps_per_action: Optimizer steps per decision ``K``.
        batch_size: Training minibatch size.
    """

    optimizer: str
    lr_scale: float
    lr: float
    weight_decay: float
    total_steps: int
    steps_per_action: int
    batch_size: int

    @property
    def decisions(self) -> int:
        """Decisions (env steps) per episode."""
        return self.total_steps // self.steps_per_action

    @property
    def tag(self) -> str:
        """Name fragment that encodes the run, e.g. ``adamw-x0.3-lr0.0003-wd0.02/T600-K20-B32``."""
        wd = f"-wd{self.weight_decay:g}" if self.optimizer == "adamw" else ""
        return (f"{self.optimizer}-x{self.lr_scale:g}-lr{self.lr:.4g}{wd}/"
                f"T{self.total_steps}-K{self.steps_per_action}-B{self.batch_size}")

    def task_kwargs(self) -> dict[str, Any]:
        """The :class:`~lr_gym.tasks.Task` fields this run sets."""
        cls, kwargs = OPTIMIZERS[self.optimizer]
        if self.optimizer == "adamw":
            kwargs = {**kwargs, "weight_decay": self.weight_decay}
        return {"lr": self.lr, "optimizer": cls, "optimizer_kwargs": dict(kwargs),
                "batch_size": self.batch_size, "total_steps": self.total_steps,
                "steps_per_action": self.steps_per_action}


def _sig3(x: float) -> float:
    return float(f"{x:.3g}")  # three significant digits keep names short and exact


@dataclass(frozen=True)
class RunSpace:
    """The run configuration every family shares (see the module docstring).

    Attributes:
        optimizers: Keys of :data:`OPTIMIZERS` to choose from.
        lr_scale: ``lr0`` / reference LR (log-uniform; three significant digits).
        budget: Budget ``T`` before rounding (log-uniform, optimizer steps).
        decisions: Decisions per episode before rounding (log-uniform).
        batch_sizes: Batch sizes to choose from; each is capped by the training set.
        weight_decay: AdamW's weight decay (log-uniform; three significant digits).
    """

    optimizers: tuple[str, ...] = tuple(OPTIMIZERS)
    lr_scale: Range | Mixture = Range(0.01, 100.0, log=True)
    budget: Range = Range(100, 3000, log=True)
    decisions: Range = Range(10, 50, log=True)
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128)
    weight_decay: Range = Range(0.01, 0.1, log=True)

    def sample(
        self, rng: np.random.Generator, reference: Mapping[str, float], n_train: int
    ) -> RunConfig:
        """Draws a run for a family with ``reference`` LRs and ``n_train`` examples."""
        optimizer = self.optimizers[int(rng.integers(len(self.optimizers)))]
        scale = _sig3(self.lr_scale.sample(rng))
        # Drawn for every optimizer so the stream of draws does not depend on the choice.
        wd = _sig3(self.weight_decay.sample(rng))
        t_raw, d_raw = self.budget.sample(rng), self.decisions.sample(rng)
        k = max(1, round(t_raw / d_raw))
        t_lo, t_hi = int(self.budget.low), int(self.budget.high)
        d_lo, d_hi = int(self.decisions.low), int(self.decisions.high)
        # The decision count nearest T/K that keeps both T and the count in range.
        lo, hi = max(d_lo, -(-t_lo // k)), min(d_hi, t_hi // k)
        n = min(max(round(t_raw / k), lo), hi)
        batch = min(self.batch_sizes[int(rng.integers(len(self.batch_sizes)))], n_train)
        return RunConfig(
            optimizer=optimizer,
            lr_scale=scale,
            lr=reference[optimizer] * scale,
            weight_decay=wd if optimizer == "adamw" else 0.0,
            total_steps=n * k,
            steps_per_action=k,
            batch_size=batch,
        )


LR_SCALES: dict[str, Range | Mixture] = {"v1": RunSpace.lr_scale, "v2": LR_SCALE_V2}
"""Named ``lr0`` scale distributions (what registrations name without importing this)."""


HEAVY_MODEL_RUNS = RunSpace(budget=Range(100, 1000, log=True), batch_sizes=(16, 32, 64))
"""The shared run space with budgets of 100-1,000 steps and batches of at most 64, for
families whose step costs 3-10 ms on one CPU core (their median episode stays cheap)."""


# --------------------------------------------------------------------------- families
@dataclass(frozen=True)
class TaskConfig:
    """One sampled configuration of a family: what :meth:`TaskFamily.task` builds.

    Attributes:
        family: Family name.
        params: The family's own dimensions (architecture and data), in the order
            of :attr:`TaskFamily.space`.
        run: The shared run configuration.
    """

    family: str
    params: Mapping[str, Any]
    run: RunConfig

    @property
    def name(self) -> str:
        """Task name encoding the configuration, e.g. ``tabular-mlp/data=wine,.../adam-...``."""
        params = ",".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.family}/{params}/{self.run.tag}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class TaskFamily(ABC):
    """A distribution over tasks: :meth:`sample` draws a configuration and builds it.

    Subclasses implement :meth:`n_train` and :meth:`build`; the sampling spaces are
    data, declared in :attr:`space` and :attr:`run_space`.

    Attributes:
        name: Family name (``Task.family`` of every sample; the split key of
            :mod:`lr_gym.splits`).
        dataset: Data source, as declared in :data:`lr_gym.splits.FAMILIES`.
        architecture: Model kind, as declared in :data:`lr_gym.splits.FAMILIES`.
        reference_lrs: Reference LR per optimizer (key of :data:`OPTIMIZERS`): the
            centre (on a log scale) of the sampled ``lr0`` range.
        space: The family's own dimensions, sampled in this order.
        run_space: The shared run configuration.
        description: One line for docs.
    """

    name: str
    dataset: str
    architecture: str
    reference_lrs: Mapping[str, float]
    space: Mapping[str, Domain]
    run_space: RunSpace = field(default_factory=RunSpace)
    description: str = ""

    def sample_config(self, rng: np.random.Generator) -> TaskConfig:
        """Draws a configuration: the family's own dimensions, then the run."""
        params = {key: domain.sample(rng) for key, domain in self.space.items()}
        run = self.run_space.sample(rng, self.reference_lrs, self.n_train(params))
        return TaskConfig(self.name, params, run)

    def sample(self, rng: np.random.Generator) -> Task:
        """Draws a fresh task (builds no model and loads no data)."""
        return self.task(self.sample_config(rng))

    def with_lr_scale(self, lr_scale: Range | Mixture) -> TaskFamily:
        """The family with another ``lr0`` scale distribution (e.g. :data:`LR_SCALE_V2`)."""
        return dataclasses.replace(
            self, run_space=dataclasses.replace(self.run_space, lr_scale=lr_scale))

    def task(self, config: TaskConfig) -> Task:
        """The task of a configuration."""
        parts = self.build(config.params)
        description = parts.pop("description", self.description)
        return Task(name=config.name, family=self.name, description=description,
                    **parts, **config.run.task_kwargs())

    @abstractmethod
    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples of a configuration (caps the batch size; loads no data)."""

    @abstractmethod
    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Task fields of the family's dimensions: ``model_fn`` and ``data_fn`` at least.

        May also set ``loss_fn``, ``eval_fn``, ``metric`` and ``description``. Every
        callable must be picklable (module-level functions, ``functools.partial``).
        """


def get_family(name: str) -> TaskFamily:
    """The built-in family ``name`` (its sampler is declared in :mod:`lr_gym.splits`).

    Raises:
        KeyError: Unknown family, or one without a sampler.
    """
    from lr_gym.splits import FAMILIES

    if name not in FAMILIES or FAMILIES[name].sampler is None:
        raise KeyError(f"Unknown task family {name!r}; families that sample tasks: "
                       f"{sampled_family_names()}.")
    from lr_gym.registration import load_reference

    return load_reference(FAMILIES[name].sampler)


def sampled_family_names() -> list[str]:
    """Names of the built-in families that sample tasks."""
    from lr_gym.splits import FAMILIES

    return [name for name, fam in FAMILIES.items() if fam.sampler is not None]
