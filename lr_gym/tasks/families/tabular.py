"""Families on scikit-learn data: MLPs on tables (``tabular-mlp``) and CNNs on digits.

``tabular-mlp`` (train split) samples the dataset (digits flattened, wine, breast
cancer, iris), an MLP of 1-3 hidden layers of width 16-256 with or without LayerNorm
and dropout, and an overfitting-prone data variant (training fraction 0.1-1.0, label
noise 0-30%). ``digits-cnn`` (dev split) samples CNNs of 1-3 conv layers with 4-16
channels on 8x8 digits, with the same data variants and
:data:`lr_gym.tasks.families.base.HEAVY_MODEL_RUNS` (budgets of 100-1,000 steps, batches of at
most 64). Data come from
:func:`lr_gym.tasks.grids.embedded.load_sklearn_data`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from lr_gym.tasks.base import TaskData
from lr_gym.tasks.data_variants import train_size, vary
from lr_gym.tasks.families.base import HEAVY_MODEL_RUNS, Choice, Range, TaskFamily, reference_lrs
from lr_gym.tasks.grids.embedded import load_sklearn_data

N_EXAMPLES = {"digits": 1797, "wine": 178, "cancer": 569, "iris": 150}
"""Examples per scikit-learn dataset (before the 65/15/20 split)."""
SHAPES = {"digits": (64, 10), "wine": (13, 3), "cancer": (30, 2), "iris": (4, 3)}
"""Input features and classes per dataset."""

TRAIN_FRACTION = Range(0.1, 1.0, log=True, decimals=2)
"""Leading fraction of the training split kept (shared by the data-variant families)."""
LABEL_NOISE = Choice((0.0, 0.1, 0.2, 0.3))
"""Fraction of training labels replaced by another class."""


@functools.cache
def sklearn_variant(
    dataset: str, train_fraction: float, label_noise: float, image: bool = False
) -> TaskData:
    """A data variant of a scikit-learn dataset, cached per process by its configuration."""
    n_classes = SHAPES[dataset][1]
    return vary(load_sklearn_data(dataset, 1.0, image), train_fraction, label_noise, n_classes)


def tabular_mlp(
    n_in: int, n_out: int, width: int, depth: int, layer_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """MLP of ``depth`` hidden layers of ``width``: Linear, [LayerNorm], ReLU, [Dropout]."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers.append(nn.Linear(n_in, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def digits_cnn(channels: int, depth: int) -> nn.Sequential:
    """CNN for 1x8x8 digits: ``depth`` 3x3 convs (``channels``, then twice that), pool, head.

    ``depth=2`` is :func:`lr_gym.tasks.grids.embedded.digits_cnn`.
    """
    layers: list[nn.Module] = []
    c_in = 1
    for i in range(depth):
        c_out = channels if i == 0 else 2 * channels
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
        c_in = c_out
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c_in * 16, 10)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class TabularMLPFamily(TaskFamily):
    """MLPs on scikit-learn tables (see the module docstring)."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples of the sampled dataset and fraction."""
        return train_size(N_EXAMPLES[params["data"]], params["train_fraction"])

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """An MLP on the sampled data variant."""
        data = params["data"]
        n_in, n_out = SHAPES[data]
        return {
            "model_fn": functools.partial(
                tabular_mlp, n_in, n_out, params["width"], params["depth"],
                params["layer_norm"], params["dropout"]),
            "data_fn": functools.partial(
                sklearn_variant, data, params["train_fraction"], params["label_noise"]),
            "description": f"{params['depth']}x{params['width']} MLP on sklearn {data}",
        }


@dataclass(frozen=True)
class DigitsCNNFamily(TaskFamily):
    """CNNs on 8x8 digits (see the module docstring)."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples of digits at the sampled fraction."""
        return train_size(N_EXAMPLES["digits"], params["train_fraction"])

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A CNN on the sampled digits variant."""
        return {
            "model_fn": functools.partial(digits_cnn, params["channels"], params["depth"]),
            "data_fn": functools.partial(
                sklearn_variant, "digits", params["train_fraction"], params["label_noise"],
                True),
            "description": f"{params['depth']}-conv CNN ({params['channels']} ch) on digits",
        }


TABULAR_MLP = TabularMLPFamily(
    name="tabular-mlp",
    dataset="sklearn-tabular",
    architecture="mlp",
    reference_lrs=reference_lrs(momentum=0.05, adam=1e-3),
    space={
        "data": Choice(tuple(N_EXAMPLES)),
        "depth": Choice((1, 2, 3)),
        "width": Range(16, 256, log=True, integer=True),
        "layer_norm": Choice((False, True)),
        "dropout": Choice((0.0, 0.1, 0.2, 0.3)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    description="MLPs on scikit-learn tables (digits, wine, breast cancer, iris)",
)
"""``tabular-mlp``: train split."""

DIGITS_CNN = DigitsCNNFamily(
    name="digits-cnn",
    dataset="sklearn-digits",
    architecture="cnn2d",
    reference_lrs=reference_lrs(momentum=0.05, adam=1e-3),
    space={
        "channels": Range(4, 16, log=True, integer=True),
        "depth": Choice((1, 2, 3)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    run_space=HEAVY_MODEL_RUNS,
    description="CNNs on 8x8 scikit-learn digits",
)
"""``digits-cnn``: dev split (the family of the fixed ``lr_gym/Digits-CNN*`` ids)."""
