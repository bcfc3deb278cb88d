"""Teacher-student regression (``teacher-mlp``, train split): its own loss and metric.

A random teacher MLP (two tanh layers of width 32, weights drawn from a seed) maps
Gaussian inputs to a scalar target, standardised to zero mean and unit variance. A
student MLP (:func:`lr_gym.tasks.families.tabular.tabular_mlp`) regresses it with the
mean squared error; the metric is ``r2 = 1 - SSE / SST`` on the split, clipped to
[-1, 1] (higher is better, like accuracy). Sampled: input size, teacher seed, the
student's depth, width, LayerNorm and dropout, the training fraction and the standard
deviation of Gaussian noise on the training targets (validation and test targets are
clean).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from lr_gym.tasks.base import Batch, Task, TaskData, iterate_batches, move_to
from lr_gym.tasks.data_variants import train_size, vary
from lr_gym.tasks.families.base import Choice, Range, TaskFamily, reference_lrs
from lr_gym.tasks.families.tabular import TRAIN_FRACTION, tabular_mlp
from lr_gym.tasks.grids.generated import DATA_SEED, split_arrays

N_EXAMPLES = 2000
"""Examples per teacher dataset (before the 65/15/20 split)."""
TEACHER_WIDTH = 32


def teacher_arrays(n_in: int, teacher_seed: int, n: int = N_EXAMPLES) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Inputs ``(n, n_in)`` ~ N(0, I) and standardised teacher targets ``(n, 1)``, float32."""
    rng = np.random.default_rng([DATA_SEED, n_in, teacher_seed])
    x = rng.standard_normal((n, n_in))
    h = x
    for fan_in in (n_in, TEACHER_WIDTH):
        w = rng.standard_normal((fan_in, TEACHER_WIDTH)) * (1.5 / np.sqrt(fan_in))
        h = np.tanh(h @ w + 0.5 * rng.standard_normal(TEACHER_WIDTH))
    y = h @ rng.standard_normal((TEACHER_WIDTH, 1))
    y = (y - y.mean()) / y.std()
    return x.astype(np.float32), y.astype(np.float32)


@functools.cache
def teacher_data(n_in: int, teacher_seed: int) -> TaskData:
    """A teacher's dataset split 65/15/20, cached per process."""
    return split_arrays(*teacher_arrays(n_in, teacher_seed))


@functools.cache
def teacher_variant(n_in: int, teacher_seed: int, train_fraction: float,
                    target_noise: float) -> TaskData:
    """A data variant of a teacher's dataset, cached per process by its configuration."""
    return vary(teacher_data(n_in, teacher_seed), train_fraction, target_noise)


def regression_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean squared error of ``model(x)`` against ``y`` for ``(x, y)`` batches."""
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def regression_eval(
    model: nn.Module, dataset: Dataset, task: Task, device: torch.device
) -> dict[str, float]:
    """Mean squared error and ``r2`` (clipped to [-1, 1]) over ``dataset``."""
    sse = torch.zeros((), device=device, dtype=torch.float64)
    y_sum = torch.zeros((), device=device, dtype=torch.float64)
    y_sq = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    for batch in iterate_batches(dataset, task.eval_batch_size, shuffle=False):
        x, y = move_to(batch, device)
        sse += (model(x) - y).double().pow(2).sum()
        y_sum += y.double().sum()
        y_sq += y.double().pow(2).sum()
        n += y.numel()
    sse_, y_sum_, y_sq_ = sse.item(), y_sum.item(), y_sq.item()  # one host sync
    sst = max(y_sq_ - y_sum_**2 / n, 1e-12)
    r2 = 1.0 - sse_ / sst if np.isfinite(sse_) else -1.0
    return {"loss": sse_ / n, "r2": float(min(max(r2, -1.0), 1.0))}


@dataclass(frozen=True)
class TeacherMLPFamily(TaskFamily):
    """Teacher-student regression (see the module docstring)."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return train_size(N_EXAMPLES, params["train_fraction"])

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A student MLP on the sampled teacher's data, with the regression loss."""
        return {
            "model_fn": functools.partial(
                tabular_mlp, params["n_in"], 1, params["width"], params["depth"],
                params["layer_norm"], params["dropout"]),
            "data_fn": functools.partial(
                teacher_variant, params["n_in"], params["teacher_seed"],
                params["train_fraction"], params["target_noise"]),
            "loss_fn": regression_loss,
            "eval_fn": regression_eval,
            "metric": "r2",
            "description": f"{params['depth']}x{params['width']} student MLP of a "
                           f"{params['n_in']}-input teacher",
        }


TEACHER_MLP = TeacherMLPFamily(
    name="teacher-mlp",
    dataset="generated-teacher-regression",
    architecture="mlp",
    reference_lrs=reference_lrs(momentum=0.02, adam=1e-3),
    space={
        "n_in": Choice((4, 8, 16, 32)),
        "teacher_seed": Choice(tuple(range(8))),
        "depth": Choice((1, 2, 3)),
        "width": Range(16, 256, log=True, integer=True),
        "layer_norm": Choice((False, True)),
        "dropout": Choice((0.0, 0.1)),
        "train_fraction": TRAIN_FRACTION,
        "target_noise": Choice((0.0, 0.1, 0.2, 0.3)),
    },
    description="Teacher-student regression with MLP students",
)
"""``teacher-mlp``: train split."""
