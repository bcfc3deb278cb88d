"""Seed task: CIFAR-10 image classification with torchvision's ResNet-18.

Two presets (:class:`~lr_gym.tasks.seed.common.Preset` values of :func:`cifar10_task`),
``cifar10-resnet18/full`` registered as ``lr_gym/CIFAR10-ResNet18-v1`` and
``cifar10-resnet18/cpu`` as ``lr_gym/CIFAR10-ResNet18-CPU-v1``. Data goes through
:func:`lr_gym.tasks.seed.data.load_split` (``$LR_GYM_DATA_DIR`` or ``data_dir=`` for local
``cifar10/{train,test}.parquet`` in the HF schema: ``img`` image, ``label`` ClassLabel;
the HF hub ``cifar10`` otherwise).

``full`` (GPU):
    ``resnet18(num_classes=10)`` with the usual CIFAR adaptation of the stem (3x3
    stride-1 ``conv1``, no max-pool: on 32x32 inputs the ImageNet stem shrinks the
    maps to 8x8 before the first block). Hub ``cifar10``: 45,000 train images, 5,000
    validation images held out from train (fixed permutation, seed 0), the 10,000
    test images evaluated once at the end of an episode. SGD lr0 0.1, momentum 0.9,
    weight decay 5e-4, batch 128, 50 epochs = 50 * 351 = 17,550 optimizer steps, one
    epoch (351 steps) per env step, so 50 env steps per episode.

``cpu`` (2 CPU cores, a few minutes per episode):
    The same torchvision ResNet-18 with its stock ImageNet stem (7x7 stride-2 conv and
    max-pool): the CIFAR stem costs about 9x more here (5.4 s vs 0.59 s per batch-64
    step on 2 cores). Local 4,000-image subset: 3,500 train, 500 validation held out
    from train, the 1,000 local test images at the end. SGD lr0 0.05 (0.1 scaled to
    the batch), momentum 0.9, weight decay 5e-4, batch 64, 300 steps (5.5 epochs),
    20 steps per env step, so 15 env steps per episode.

    Measured on the development machine (2 CPU cores, ``/work/shared/data``, static LR,
    seed 0): one isolated batch-64 training step takes 0.59 s, so an idle machine
    needs about 14 s per env step and 3.5 min per episode. The one full episode we
    ran shared the cores with other jobs (load average 5 to 9) and took 167 s per env
    step, 42 min in all; it reached 0.372 validation and 0.343 test accuracy.

Both presets use standard augmentation for training (random 32x32 crop of the image
zero-padded by 4, random horizontal flip) and per-channel normalisation (in the model,
so evaluation sees normalised, un-augmented images). Images are decoded once into a
uint8 ``(N, 3, 32, 32)`` tensor; augmentation runs on whole batches of tensors on the
env's device, drawing its random offsets from the CPU RNG that the env seeds.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lr_gym.tasks.base import Batch, Task, TaskData
from lr_gym.tasks.seed.common import (
    Preset,
    holdout_indices,
    load_with_data_dir,
    seed_task,
)
from lr_gym.tasks.seed.data import load_split

HF_COLUMNS = {"img|image": "PIL image, 32x32 RGB", "label": "int class id 0-9"}
"""The HF ``cifar10`` columns this task reads."""

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
HUB_TRAIN_SIZE = 50_000
"""Rows of the hub ``cifar10`` train split (total_steps is derived from it)."""
LOCAL_TRAIN_SIZE = 4_000
"""Rows of the local subset's train split."""


class Normalize(nn.Module):
    """uint8 (or [0, 255] float) NCHW images -> per-channel standardised floats."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (x.float() - self.mean) / self.std


def resnet18(num_classes: int = 10, cifar_stem: bool = True) -> nn.Sequential:
    """``Normalize`` followed by torchvision's ``resnet18``.

    Args:
        num_classes: Output classes.
        cifar_stem: Replace the 7x7 stride-2 stem and max-pool by a 3x3 stride-1 conv
            (the standard ResNet-18 for 32x32 images; ~9x the compute).
    """
    import torchvision

    net = torchvision.models.resnet18(num_classes=num_classes)
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return nn.Sequential(Normalize(CIFAR10_MEAN, CIFAR10_STD), net)


def augment(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Random crop (of the zero-padded image) and horizontal flip of a batch.

    Equivalent to torchvision's ``RandomCrop(H, padding=pad)`` +
    ``RandomHorizontalFlip()`` per image, but done for the whole batch at once. The
    random draws come from the CPU RNG (seeded by the env) and only the indices move
    to ``x.device``, so runs are reproducible on any device.

    Args:
        x: ``(B, C, H, W)`` images (any dtype).
        pad: Zero padding on each side before cropping.
    """
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b, 1))
    dx = torch.randint(0, 2 * pad + 1, (b, 1))
    flip = torch.rand(b, 1) < 0.5
    cols = torch.arange(w).expand(b, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx  # flip = read columns backwards
    rows = torch.arange(h) + dy
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    rows, cols = rows.to(x.device), cols.to(x.device)
    idx = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices split by a slice put the index dims first: (B, H, W, C).
    out = padded[idx, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def augmented_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy on an augmented ``(images, labels)`` batch."""
    x, y = batch
    return nn.functional.cross_entropy(model(augment(x)), y)


def decode_images(dataset) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001 - datasets.Dataset
    """Decodes an HF image dataset once into ``(uint8 (N, 3, H, W), int64 labels)``.

    The image column is ``img`` (HF ``cifar10``) or ``image``.
    """
    column = "img" if "img" in dataset.column_names else "image"
    if column not in dataset.column_names or "label" not in dataset.column_names:
        raise KeyError(
            f"CIFAR-10 data needs an 'img' (or 'image') and a 'label' column, got "
            f"{dataset.column_names}."
        )
    images = np.stack([np.asarray(im.convert("RGB")) for im in dataset[column]])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(np.asarray(dataset["label"]), dtype=torch.long)
    return x, y


@functools.cache
def load_cifar10(
    data_dir: str | None,
    hub_name: str = "cifar10",
    val_size: int = 5_000,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    split_seed: int = 0,
) -> TaskData:
    """Loads, decodes and splits CIFAR-10 (cached per process and arguments).

    Args:
        data_dir: Local data directory, or None for ``$LR_GYM_DATA_DIR``/the hub.
        hub_name: HF hub dataset name.
        val_size: Training images held out as the validation split.
        max_train_examples: Keep at most this many training images (after the split).
        max_test_examples: Keep at most this many test images.
        split_seed: Seed of the train/validation permutation.
    """
    x, y = decode_images(load_split("cifar10", "train", hub_name=hub_name, data_dir_=data_dir,
                                      columns=HF_COLUMNS))
    train_idx, val_idx = holdout_indices(len(y), val_size, split_seed, max_train_examples)
    xt, yt = decode_images(load_split("cifar10", "test", hub_name=hub_name, data_dir_=data_dir,
                                        columns=HF_COLUMNS))
    if max_test_examples is not None:
        xt, yt = xt[:max_test_examples], yt[:max_test_examples]
    return TaskData(
        train=TensorDataset(x[train_idx], y[train_idx]),
        val=TensorDataset(x[val_idx], y[val_idx]),
        test=TensorDataset(xt, yt),
    )


def cifar10_task(
    *,
    name: str,
    n_train_source: int,
    data_dir: str | os.PathLike | None = None,
    hub_name: str = "cifar10",
    cifar_stem: bool = True,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
    eval_batch_size: int = 500,
    epochs: float = 50,
    total_steps: int | None = None,
    steps_per_action: int | None = None,
    val_size: int = 5_000,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    description: str = "",
) -> Task:
    """A CIFAR-10 ResNet-18 task (nothing is loaded until ``data_fn``/``model_fn``).

    Args:
        name: Task name, ``cifar10-resnet18/<preset>`` (its family is the part before
            the slash).
        n_train_source: Rows of the source train split, so ``epochs`` converts to steps
            without loading anything.
        data_dir: Local data directory (else ``$LR_GYM_DATA_DIR``, else the hub).
        hub_name: HF hub dataset name.
        cifar_stem: 3x3 stride-1 stem without max-pool (see :func:`resnet18`).
        lr: Initial learning rate of SGD.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        batch_size: Training batch size.
        eval_batch_size: Validation/test batch size.
        epochs: Budget in epochs, used when ``total_steps`` is None.
        total_steps: Budget in optimizer steps (overrides ``epochs``).
        steps_per_action: Optimizer steps per env step; default one epoch.
        val_size: Training images held out for validation.
        max_train_examples: Cap on training images (tests, quick runs).
        max_test_examples: Cap on test images.
        description: One-line description.
    """
    return seed_task(
        name, description,
        dict(n_train_source=n_train_source, val_size=val_size, batch_size=batch_size,
             epochs=epochs, total_steps=total_steps, steps_per_action=steps_per_action,
             max_train_examples=max_train_examples),
        model_fn=functools.partial(resnet18, 10, cifar_stem),
        data_fn=functools.partial(
            load_with_data_dir,
            load_cifar10,
            data_dir,
            hub_name=hub_name,
            val_size=val_size,
            max_train_examples=max_train_examples,
            max_test_examples=max_test_examples,
        ),
        lr=lr,
        optimizer=torch.optim.SGD,
        optimizer_kwargs={"momentum": momentum, "weight_decay": weight_decay},
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        loss_fn=augmented_loss,
        metric="accuracy",
    )


cifar10_resnet18_full = Preset(
    "cifar10-resnet18/full",
    cifar10_task,
    dict(
        n_train_source=HUB_TRAIN_SIZE,
        cifar_stem=True,
        lr=0.1,
        batch_size=128,
        epochs=50,
        val_size=5_000,
        description="ResNet-18 (CIFAR stem) on CIFAR-10, SGD lr0 0.1, batch 128, 50 epochs",
    ),
)
"""``cifar10-resnet18/full``: hub CIFAR-10, CIFAR-stem ResNet-18, SGD 0.1, batch 128, 50 epochs."""

cifar10_resnet18_cpu = Preset(
    "cifar10-resnet18/cpu",
    cifar10_task,
    dict(
        n_train_source=LOCAL_TRAIN_SIZE,
        cifar_stem=False,
        lr=0.05,
        batch_size=64,
        total_steps=300,
        steps_per_action=20,
        val_size=500,
        description="ResNet-18 on a 4,000-image CIFAR-10 subset, SGD lr0 0.05, batch 64, "
                    "300 steps",
    ),
)
"""``cifar10-resnet18/cpu``: local 4,000-image subset, stock ResNet-18, 300 steps of batch 64."""
