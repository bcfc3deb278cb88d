"""Pieces shared by the seed tasks: validation hold-out, step budgets, data-dir resolution."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch

from lr_gym.tasks.base import TaskData
from lr_gym.tasks.data import data_dir as resolve_data_dir


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
) -> tuple[int, int]:
    """``(total_steps, steps_per_action)`` of a task, computed without loading data.

    An epoch is ``n_train // batch_size`` steps (the env drops the last partial batch).
    Explicit ``total_steps``/``steps_per_action`` win over ``epochs``/``actions_per_epoch``.
    """
    n_train = n_train_source - val_size
    if max_train_examples is not None:
        n_train = min(n_train, max_train_examples)
    steps_per_epoch = max(n_train // batch_size, 1)
    if total_steps is None:
        total_steps = max(math.ceil(epochs * steps_per_epoch), 1)
    if steps_per_action is None:
        steps_per_action = min(max(steps_per_epoch // actions_per_epoch, 1), total_steps)
    return total_steps, steps_per_action


def load_with_data_dir(
    loader: Callable[..., TaskData], data_dir: str | os.PathLike | None, **kwargs: Any
) -> TaskData:
    """Calls a cached ``loader(data_dir_str_or_None, **kwargs)``.

    ``$LR_GYM_DATA_DIR`` is resolved here, at load time, so the cache key is the
    directory actually read (changing the variable is not masked by the cache).
    """
    root = resolve_data_dir(data_dir)
    return loader(str(root) if root else None, **kwargs)
