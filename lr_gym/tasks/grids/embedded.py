"""Embedded default tasks: small real datasets shipped with scikit-learn, offline.

Three families train controllers (digits/MLP, wine/MLP, breast-cancer/MLP); the
fourth (digits/CNN: an architecture no training task has) is in the dev split (see
:mod:`lr_gym.splits`, which declares which family is in which split). Each
family comes in variants (widths and depths, SGD+momentum or Adam, initial LRs over
two decades, full or half training data) so a controller cannot memorise one schedule.
An episode takes about one to three seconds on one CPU core.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lr_gym.splits import FAMILIES, TRAIN
from lr_gym.tasks.base import Task, TaskData

EMBEDDED_FAMILIES: tuple[str, ...] = tuple(
    name for name, fam in FAMILIES.items() if fam.module == __name__
)
"""The families this module builds (their splits are declared in :mod:`lr_gym.splits`)."""

# Iris is only sampled by the tabular-mlp family (lr_gym.tasks.families.tabular).
_LOADERS = {"digits": "load_digits", "wine": "load_wine", "cancer": "load_breast_cancer",
            "iris": "load_iris"}


@functools.cache
def _arrays(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, _LOADERS[dataset])()
    x = bunch.data.astype(np.float32)
    # Digits are pixel intensities 0..16; tabular features are standardised.
    x = x / 16.0 if dataset == "digits" else (x - x.mean(0)) / (x.std(0) + 1e-8)
    return x, bunch.target.astype(np.int64)


@functools.cache
def load_sklearn_data(dataset: str, train_fraction: float = 1.0, image: bool = False) -> TaskData:
    """Splits a scikit-learn dataset 65/15/20 (train/val/test) with a fixed permutation.

    Args:
        dataset: ``"digits"``, ``"wine"``, ``"cancer"`` or ``"iris"``.
        train_fraction: Keep only this leading fraction of the training split.
        image: Reshape digits to ``(N, 1, 8, 8)`` for CNNs.
    """
    x, y = _arrays(dataset)
    order = np.random.default_rng(0).permutation(len(y))
    n_test, n_val = int(0.2 * len(y)), int(0.15 * len(y))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    train = train[: max(int(len(train) * train_fraction), 1)]
    xt = torch.from_numpy(x)
    if image:
        xt = xt.reshape(-1, 1, 8, 8)
    yt = torch.from_numpy(y)

    def subset(idx: np.ndarray) -> TensorDataset:
        i = torch.from_numpy(idx)
        return TensorDataset(xt[i].contiguous(), yt[i].contiguous())

    return TaskData(train=subset(train), val=subset(val), test=subset(test))


def mlp(n_in: int, widths: Sequence[int], n_out: int) -> nn.Sequential:
    """ReLU MLP ``n_in -> widths... -> n_out``."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Linear(n_in, w), nn.ReLU()]
        n_in = w
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def digits_cnn(channels: int = 16) -> nn.Sequential:
    """Small CNN for 1x8x8 digits: two 3x3 convs, a max-pool and a linear head."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * c * 16, 10),
    )


_SHAPES = {"digits": (64, 10), "wine": (13, 3), "cancer": (30, 2)}
_BATCH = {"digits": 64, "wine": 16, "cancer": 32}
_SGD = (torch.optim.SGD, {"momentum": 0.9}, 0.05)
_ADAM = (torch.optim.Adam, {}, 1e-3)


def make_task(
    family: str,
    *,
    widths: Sequence[int] = (64,),
    optimizer: str = "sgd",
    lr_scale: float = 1.0,
    train_fraction: float = 1.0,
) -> Task:
    """One embedded task variant.

    Args:
        family: ``"digits-mlp"``, ``"wine-mlp"``, ``"cancer-mlp"`` or ``"digits-cnn"``.
        widths: Hidden widths of MLPs (CNNs use ``widths[0]`` channels).
        optimizer: ``"sgd"`` (momentum 0.9, lr0 0.05) or ``"adam"`` (lr0 1e-3).
        lr_scale: Multiplies the optimizer's default lr0 (0.1 and 10 are badly tuned
            on purpose: a controller must fix them).
        train_fraction: Fraction of the training split to use.
    """
    dataset, arch = family.split("-")
    if dataset not in _SHAPES or arch not in ("mlp", "cnn") or family == "wine-cnn":
        raise KeyError(f"Unknown embedded family {family!r}; choose from "
                       f"{list(EMBEDDED_FAMILIES)} (generated-data families are built by "
                       "lr_gym.tasks.grids.generated.make_task).")
    n_in, n_out = _SHAPES[dataset]
    opt_cls, opt_kwargs, lr0 = {"sgd": _SGD, "adam": _ADAM}[optimizer]
    image = arch == "cnn"
    widths = tuple(widths)
    model_fn = (
        functools.partial(digits_cnn, widths[0] if widths[0] <= 32 else 16)
        if image
        else functools.partial(mlp, n_in, widths, n_out)
    )
    tag = f"{family}/w{'-'.join(map(str, widths))}/{optimizer}-x{lr_scale:g}/d{train_fraction:g}"
    return Task(
        name=tag,
        model_fn=model_fn,
        data_fn=functools.partial(load_sklearn_data, dataset, train_fraction, image),
        lr=lr0 * lr_scale,
        optimizer=opt_cls,
        optimizer_kwargs=opt_kwargs,
        batch_size=_BATCH[dataset],
        total_steps=300,
        steps_per_action=15,
        metric="accuracy",
        family=family,
        description=f"{arch.upper()} on sklearn {dataset} ({optimizer}, lr0={lr0 * lr_scale:g})",
    )


def variants(family: str) -> list[Task]:
    """The variant grid of a family (shared by the mix envs and the evaluation)."""
    widths = [(16,), (32,)] if family == "digits-cnn" else [(64,), (128, 64)]
    grid = itertools.product(widths, ("sgd", "adam"), (0.1, 1.0, 10.0), (1.0, 0.5))
    return [
        make_task(family, widths=w, optimizer=o, lr_scale=s, train_fraction=f)
        for w, o, s, f in grid
    ]


# Registered per-family defaults (the variant a user gets from the plain id).
def digits_mlp() -> Task:
    """Digits MLP (64 hidden, SGD+momentum, lr0 0.05)."""
    return make_task("digits-mlp")


def digits_cnn_task() -> Task:
    """Digits CNN (16/32 channels, SGD+momentum, lr0 0.05); dev family."""
    return make_task("digits-cnn", widths=(16,))


def digits_cnn_adam() -> Task:
    """Digits CNN trained with Adam (lr0 1e-3); dev family."""
    return make_task("digits-cnn", widths=(16,), optimizer="adam")


def digits_cnn_low_lr() -> Task:
    """Digits CNN, wider, SGD+momentum at a 10x too small lr0 (0.005), half the data."""
    return make_task("digits-cnn", widths=(32,), lr_scale=0.1, train_fraction=0.5)


def wine_mlp() -> Task:
    """Wine MLP (64 hidden, SGD+momentum, lr0 0.05)."""
    return make_task("wine-mlp")


def cancer_mlp() -> Task:
    """Breast-cancer MLP (64 hidden, SGD+momentum, lr0 0.05)."""
    return make_task("cancer-mlp")


def train_variants() -> list[Task]:
    """Every variant of the training families (the default training mix)."""
    return [t for fam in TRAIN.families if fam in EMBEDDED_FAMILIES for t in variants(fam)]
