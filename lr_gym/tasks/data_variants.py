"""Overfitting-prone variants of a dataset: a smaller training split and noisy labels.

Only the training split changes: validation and test labels stay clean, so a run
that memorises the noise shows it as a falling validation metric, the signal a
controller should react to (for example by lowering the LR). The training inputs of
a variant are a view of the full dataset's tensor, so caching many variants per
process costs only their (small) label tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lr_gym.tasks.base import TaskData

NOISE_SEED = 4321
"""Seed of the label noise (a variant's data never change between runs)."""


def split_sizes(n: int) -> tuple[int, int, int]:
    """Train, val and test sizes of ``n`` examples split 65/15/20.

    The same arithmetic as :func:`lr_gym.tasks.grids.generated.split_arrays` and
    :func:`lr_gym.tasks.grids.embedded.load_sklearn_data`, so sizes are known without
    loading any data.
    """
    n_test, n_val = int(0.2 * n), int(0.15 * n)
    return n - n_test - n_val, n_val, n_test


def train_size(n: int, train_fraction: float) -> int:
    """Training examples kept from ``n`` examples at ``train_fraction``."""
    return max(int(split_sizes(n)[0] * train_fraction), 1)


def noisy_labels(y: torch.Tensor, fraction: float, n_classes: int) -> torch.Tensor:
    """A copy of integer labels ``y`` with ``round(fraction * len(y))`` of them wrong.

    The corrupted examples are a fixed random subset; each gets a uniformly drawn
    *other* class, so exactly that fraction is mislabelled.
    """
    y = y.clone()
    n_bad = round(fraction * len(y))
    if n_bad == 0 or n_classes < 2:
        return y
    rng = np.random.default_rng(NOISE_SEED)
    idx = torch.from_numpy(rng.permutation(len(y))[:n_bad])
    shift = torch.from_numpy(rng.integers(1, n_classes, n_bad))
    y[idx] = (y[idx] + shift) % n_classes
    return y


def noisy_targets(y: torch.Tensor, std: float) -> torch.Tensor:
    """A copy of regression targets ``y`` plus Gaussian noise of standard deviation ``std``."""
    if std == 0:
        return y.clone()
    g = torch.Generator().manual_seed(NOISE_SEED)
    return y + std * torch.randn(y.shape, generator=g, dtype=y.dtype)


def vary(
    data: TaskData,
    train_fraction: float = 1.0,
    label_noise: float = 0.0,
    n_classes: int | None = None,
) -> TaskData:
    """A variant of ``data`` with a leading fraction of its training split and noise.

    Args:
        data: Splits whose training split is a ``TensorDataset`` ``(x, y)``.
        train_fraction: Keep this leading fraction of the training examples (at
            least one), as ``load_sklearn_data``'s ``train_fraction`` does.
        label_noise: Classification (``n_classes`` given): the fraction of training
            labels replaced by another class. Regression (``n_classes=None``): the
            standard deviation of Gaussian noise added to the training targets.
        n_classes: Number of classes; None for regression targets.
    """
    x, y = data.train.tensors
    n = max(int(len(y) * train_fraction), 1)
    y = y[:n]
    if n_classes is None:
        y = noisy_targets(y, label_noise)
    else:
        y = noisy_labels(y, label_noise, n_classes)
    return TaskData(train=TensorDataset(x[:n], y), val=data.val, test=data.test)
