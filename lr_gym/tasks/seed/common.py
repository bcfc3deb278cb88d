"""Plumbing shared by the seed tasks: presets, budgets, data and cache folders.

Every seed-task module (:mod:`~lr_gym.tasks.seed.cifar10`, :mod:`~lr_gym.tasks.seed.imdb`,
:mod:`~lr_gym.tasks.seed.squad`, :mod:`~lr_gym.tasks.seed.conll`) has one idiom:

* one builder, ``<dataset>_task(*, name, ...)``, whose keyword arguments are every knob;
* presets as :class:`Preset` values named ``<dataset>-<model>/<preset>`` (e.g.
  ``"cifar10-resnet18/cpu"``); the task family is the part before the slash;
* loaders cached with ``functools.cache`` and called through :func:`load_with_data_dir`,
  so the cache key is the data folder actually read;
* budgets from :func:`step_budget`, computed without loading anything;
* trained tokenizers cached on disk under :func:`cache_dir`, keyed by
  :func:`content_key` and written with :func:`lr_gym.files.atomic_write`.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from lr_gym.tasks.base import Task
from lr_gym.tasks.seed.data import data_dir as resolve_data_dir
from lr_gym.tasks.seed.pretrained import resolve_model

CACHE_DIR_ENV = "LR_GYM_CACHE_DIR"
"""Environment variable naming the folder of trained tokenizers."""
DEFAULT_CACHE_DIR = "~/.cache/lr_gym"


# ---------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A named set of defaults for a seed-task builder; calling it builds the task.

    Registered by import string like any task factory
    (``"lr_gym.tasks.seed.cifar10:cifar10_resnet18_cpu"``), so ``gym.make(id,
    task_kwargs={...})`` passes its overrides here.

    Attributes:
        name: Task name, ``<dataset>-<model>/<preset>``.
        builder: The module's task builder; takes ``name`` and keyword arguments.
        defaults: The preset's values for the builder's arguments.
    """

    name: str
    builder: Callable[..., Task]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name.count("/") != 1:
            raise ValueError(f"Preset name {self.name!r} must read <dataset>-<model>/<preset>.")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        self._check(self.defaults, "defaults")

    @property
    def options(self) -> list[str]:
        """The keyword arguments a preset accepts (the builder's, except ``name``)."""
        params = inspect.signature(self.builder).parameters
        return sorted(p for p in params if p != "name")

    def _check(self, kwargs: Mapping[str, Any], what: str) -> None:
        unknown = sorted(set(kwargs) - set(self.options))
        if unknown:
            raise TypeError(
                f"Task {self.name!r} has no option {unknown[0]!r} (in its {what}); "
                f"valid options: {', '.join(self.options)}."
            )

    def __call__(self, **overrides: Any) -> Task:
        """Builds the task with the preset's defaults, ``overrides`` winning.

        Raises:
            TypeError: An override is not one of :attr:`options`.
        """
        self._check(overrides, "task_kwargs")
        return self.builder(name=self.name, **{**self.defaults, **overrides})


def family_of(name: str) -> str:
    """The task family of a seed-task name: ``"imdb-bert/cpu"`` -> ``"imdb-bert"``."""
    return name.partition("/")[0]


# ----------------------------------------------------------------------- budgets
def holdout_indices(
    n: int, val_size: int, seed: int = 0, max_train: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Splits ``range(n)`` into ``(train, val)`` index tensors by a fixed permutation.

    Args:
        n: Rows of the source training split.
        val_size: Rows held out for validation.
        seed: Seed of the permutation.
        max_train: Keep at most this many training rows (after the hold-out).

    Raises:
        ValueError: If ``val_size`` leaves no training or no validation rows.
    """
    if not 0 < val_size < n:
        raise ValueError(
            f"val_size={val_size} must be between 1 and {n - 1} (the training split has "
            f"{n} rows); lower val_size."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train = order[val_size:]
    return (train if max_train is None else train[:max_train]), order[:val_size]


def fixed_subset(n: int, k: int | None, seed: int = 0) -> list[int]:
    """``k`` indices of ``range(n)`` drawn by a fixed permutation (all of them if ``k`` is None).

    An evaluation cap that takes the *first* ``k`` rows keeps whichever articles or
    reviews the split happens to start with; a seeded random subset keeps the split's mix.
    """
    if k is None or k >= n:
        return list(range(n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist()


def step_budget(
    *,
    n_train_source: int,
    val_size: int,
    batch_size: int,
    epochs: float,
    total_steps: int | None,
    steps_per_action: int | None,
    max_train_examples: int | None = None,
    actions_per_epoch: int = 1,
    rows_per_example: float = 1.0,
) -> tuple[int, int]:
    """``(total_steps, steps_per_action)`` of a task, computed without loading data.

    An epoch is ``n_rows // batch_size`` steps (the env drops the last partial batch),
    where ``n_rows`` is the training examples left after the validation hold-out and
    the cap, times ``rows_per_example`` (e.g. QA features per question). Explicit
    ``total_steps``/``steps_per_action`` win over ``epochs``/``actions_per_epoch``;
    ``steps_per_action`` never exceeds ``total_steps``.

    Args:
        n_train_source: Rows of the source training split.
        val_size: Rows of it held out for validation (0 when validation comes from
            another split).
        batch_size: Training batch size.
        epochs: Budget in epochs, used when ``total_steps`` is None.
        total_steps: Budget in optimizer steps.
        steps_per_action: Optimizer steps per env step.
        max_train_examples: Cap on training examples.
        actions_per_epoch: Env steps per epoch when ``steps_per_action`` is None.
        rows_per_example: Training rows per example (tokenized features per question).
    """
    n_train = n_train_source - val_size
    if max_train_examples is not None:
        n_train = min(n_train, max_train_examples)
    steps_per_epoch = max(int(n_train * rows_per_example) // batch_size, 1)
    if total_steps is None:
        total_steps = max(math.ceil(epochs * steps_per_epoch), 1)
    if steps_per_action is None:
        steps_per_action = max(steps_per_epoch // actions_per_epoch, 1)
    return total_steps, min(steps_per_action, total_steps)


def seed_task(name: str, description: str, budget: Mapping[str, Any], **fields: Any) -> Task:
    """A seed task: its step budget from ``budget``, its family from ``name``.

    Args:
        name: ``<family>/<preset>`` (see :func:`family_of`).
        description: One-line description.
        budget: :func:`step_budget`'s keywords (epochs or explicit steps, and the data
            sizes that turn epochs into steps without loading anything).
        **fields: The rest of :class:`~lr_gym.tasks.base.Task` (model, data, optimizer,
            loss, metric...).
    """
    total_steps, steps_per_action = step_budget(**budget)
    return Task(name=name, description=description, family=family_of(name),
                total_steps=total_steps, steps_per_action=steps_per_action, **fields)


# ------------------------------------------------------------------ data folder
def load_with_data_dir(
    loader: Callable[..., Any], data_dir: str | os.PathLike | None, **kwargs: Any
) -> Any:
    """Calls a cached ``loader(data_dir_str_or_None, **kwargs)``.

    What environment variables decide is resolved here, at load time, so the cache key
    is what is actually read and a changed variable is not masked by the cache:
    ``$LR_GYM_DATA_DIR`` (the data folder) and, for a ``model_name_or_path`` keyword,
    the packaged-model placeholder (:func:`~lr_gym.tasks.seed.pretrained.resolve_model`).
    Paths among ``kwargs`` become strings, so the cache key does not depend on their type.
    """
    kwargs = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in kwargs.items()}
    if kwargs.get("model_name_or_path") is not None:
        kwargs["model_name_or_path"] = resolve_model(kwargs["model_name_or_path"])
    root = resolve_data_dir(data_dir)
    return loader(str(root) if root else None, **kwargs)


# ---------------------------------------------------------------- disk caches
def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Cache folder: ``explicit``, else ``$LR_GYM_CACHE_DIR``, else ``~/.cache/lr_gym``."""
    value = explicit or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
    return Path(value).expanduser()


def content_key(texts: Iterable[str], *params: object) -> str:
    """16 hex digits of a SHA-256 over ``params`` and ``texts`` (in order).

    The key of a tokenizer trained on ``texts`` with ``params`` (vocabulary size,
    library version, ...): the same inputs always find the same cached file.
    """
    digest = hashlib.sha256("|".join(map(str, params)).encode())
    for t in texts:
        digest.update(b"\0")
        digest.update(t.encode("utf-8"))
    return digest.hexdigest()[:16]


