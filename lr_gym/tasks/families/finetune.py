"""Fine-tuning families: a model pretrained on a source task is fine-tuned on a related target.

Every episode starts from weights pretrained procedurally on a *source* task
(:mod:`lr_gym.tasks.pretraining`: Adam, a few hundred steps, seconds on one core, once
per recipe and machine, cached on disk) and trains on a *target* task of one of three
kinds, sampled as the dimension ``kind``:

* ``shift``: the same head and labels on shifted data (a perturbed teacher, digits with
  pixel noise, waves at half the frequency). The pretrained model starts near a good
  solution: the regime where Prodigy's step-size estimate overshoots (prodigy issues #37,
  #39).
* ``new-labels``: the same architecture and head on new labels (digit classes the source
  never had, a new readout of the teacher's features, the least instead of the most
  frequent token, the frequency band instead of the shape of a wave).
* ``new-head``: the same target with the head (the model's last linear layer) freshly
  initialised from the episode's seed, on a pretrained body.

Families (splits in :mod:`lr_gym.splits`; each in its split's ``v3_families``, outside the
v1/v2 samplers):

* ``teacher-mlp-finetune`` (train): MLP students of random tanh teachers (regression,
  metric ``r2``); source: a teacher; target: the teacher with every weight perturbed
  (``shift``) or a new random readout of its hidden layer.
* ``digits-mlp-finetune`` (train): MLPs on flattened 8x8 digits with a 10-way head;
  source: five of the ten classes (``split``); target: the same five with Gaussian pixel
  noise, or the other five.
* ``seq-transformer-finetune`` (train): the transformer encoder of ``seq-transformer``;
  source: majority (the most frequent of 4 tokens); target: minority (the least
  frequent) on fresh sequences.
* ``digits-cnn-finetune`` (dev): the CNNs of ``digits-cnn``, on the digits splits above.
* ``waves-conv1d-finetune`` (test): the 1-D CNN of ``waves-conv1d``; source: the shape
  of a noisy wave (the ``waves-conv1d`` data); target: the shape of waves at half the
  frequency (``shift``), or the frequency band (4 bins).

Every family samples the pretraining seed, the architecture's sizes and the target's
training fraction and label noise (:mod:`lr_gym.tasks.data_variants`, validation and
test labels clean), with the shared run configuration. Sampling builds no model, loads
no data and pretrains nothing; the model factory of a task pretrains (or reads the
cache) at the first reset that needs it.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lr_gym.tasks.base import LossFn, Task, TaskData, classification_loss
from lr_gym.tasks.data_variants import noisy_labels, train_size, vary
from lr_gym.tasks.families.base import (
    HEAVY_MODEL_RUNS,
    Choice,
    RunConfig,
    TaskConfig,
    TaskFamily,
    reference_lrs,
)
from lr_gym.tasks.families.sequence_data import N_EXAMPLES as SEQ_EXAMPLES
from lr_gym.tasks.families.sequence_data import VOCAB, sequence_data, sequence_task_arrays
from lr_gym.tasks.families.sequences import SeqTransformer
from lr_gym.tasks.families.tabular import LABEL_NOISE, TRAIN_FRACTION, digits_cnn, tabular_mlp
from lr_gym.tasks.families.teacher import TEACHER_WIDTH, regression_eval, regression_loss
from lr_gym.tasks.grids.embedded import load_sklearn_data
from lr_gym.tasks.grids.generated import (
    DATA_SEED,
    WAVE_KINDS,
    WAVE_LENGTH,
    conv1d_net,
    load_generated_data,
    split_arrays,
)
from lr_gym.tasks.pretraining import Pretraining, pretrained_model

KINDS: tuple[str, ...] = ("shift", "new-labels", "new-head")
"""Target kinds (see the module docstring)."""
PRETRAIN_SEEDS = Choice((0, 1, 2))
"""Pretraining seeds: each gives other pretrained weights for one configuration."""
FINETUNE_STREAM = 7
"""Seed-stream tag of the fine-tuning data (no other family draws from it)."""


def _check_kind(kind: str, kinds: tuple[str, ...]) -> None:
    if kind not in kinds:
        raise ValueError(f"Unknown fine-tuning kind {kind!r}; choose from {list(kinds)}.")


def data_kind(kind: str) -> str:
    """The target data of a kind: a new head trains on the new labels' data (one cache)."""
    return "new-labels" if kind == "new-head" else kind


# ------------------------------------------------------------------------------ teachers
N_TEACHER = 2000
"""Examples per teacher dataset (before the 65/15/20 split)."""
TEACHER_SHIFT = 0.3
"""Standard deviation of the ``shift`` kind's perturbation, relative to each weight's own."""


@functools.cache
def teacher_weights(n_in: int, teacher_seed: int, kind: str | None = None
                    ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """A source teacher's weights (``kind=None``), or its target's.

    Two tanh layers of width :data:`~lr_gym.tasks.families.teacher.TEACHER_WIDTH` as in
    ``teacher-mlp`` (but from their own seed stream), and a readout. ``shift`` perturbs
    every weight by :data:`TEACHER_SHIFT` of its scale; ``new-labels`` and ``new-head``
    keep the hidden layers and draw a new readout.

    Returns:
        ``((w1, b1, w2, b2), readout)``.
    """
    rng = np.random.default_rng([DATA_SEED, FINETUNE_STREAM, n_in, teacher_seed])
    layers: list[np.ndarray] = []
    for fan_in in (n_in, TEACHER_WIDTH):
        layers += [rng.standard_normal((fan_in, TEACHER_WIDTH)) * (1.5 / np.sqrt(fan_in)),
                   0.5 * rng.standard_normal(TEACHER_WIDTH)]
    readout = rng.standard_normal((TEACHER_WIDTH, 1))
    if kind is None:
        return tuple(layers), readout
    _check_kind(kind, KINDS)
    rng = np.random.default_rng([DATA_SEED, FINETUNE_STREAM, n_in, teacher_seed, 1])
    if kind == "shift":
        layers = [w + TEACHER_SHIFT * rng.standard_normal(w.shape) * s for w, s in
                  zip(layers, (1.5 / np.sqrt(n_in), 0.5, 1.5 / np.sqrt(TEACHER_WIDTH), 0.5),
                      strict=True)]
        readout = readout + TEACHER_SHIFT * rng.standard_normal(readout.shape)
    else:
        readout = rng.standard_normal(readout.shape)
    return tuple(layers), readout


@functools.cache
def teacher_source(n_in: int, teacher_seed: int) -> TaskData:
    """The source teacher's data (Gaussian inputs, standardised targets), split 65/15/20."""
    return _teacher_split(n_in, teacher_seed, None)


def _teacher_split(n_in: int, teacher_seed: int, kind: str | None) -> TaskData:
    (w1, b1, w2, b2), readout = teacher_weights(n_in, teacher_seed, kind)
    rng = np.random.default_rng([DATA_SEED, FINETUNE_STREAM, n_in, teacher_seed,
                                 0 if kind is None else 2])  # fresh inputs for the target
    x = rng.standard_normal((N_TEACHER, n_in))
    y = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2) @ readout
    y = (y - y.mean()) / y.std()
    return split_arrays(x.astype(np.float32), y.astype(np.float32))


@functools.cache
def teacher_target(n_in: int, teacher_seed: int, kind: str, train_fraction: float,
                   target_noise: float) -> TaskData:
    """A target teacher's data variant (noise on the training targets only)."""
    return vary(_teacher_split(n_in, teacher_seed, kind), train_fraction, target_noise)


# -------------------------------------------------------------------------------- digits
DIGIT_SPLITS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)),
    ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9)),
    ((1, 4, 5, 7, 8), (0, 2, 3, 6, 9)),
)
"""Class splits ``(source classes, other classes)`` of the digits families (``split``)."""
N_DIGITS_TARGET = 500
"""Training examples of a digits target before the training fraction (every split's five
classes have more in the training split: the leading 500 are kept)."""


DIGIT_SHIFT_NOISE = 0.3
"""Standard deviation of the ``shift`` target's pixel noise (pixels are in [0, 1]).

Measured start: pretrained MLPs and CNNs keep 0.85-0.95 of their 0.98 source accuracy
under it, where a one-pixel translation left them 0.25-0.36 (far from a good solution)."""


def _noisy_images(x: torch.Tensor, part: int) -> torch.Tensor:
    """``x`` plus fixed Gaussian pixel noise (``part`` seeds it: 0 train, 1 val, 2 test)."""
    g = torch.Generator().manual_seed(DATA_SEED + FINETUNE_STREAM + part)
    return x + DIGIT_SHIFT_NOISE * torch.randn(x.shape, generator=g, dtype=x.dtype)


@functools.cache
def digits_classes(split: int, source: bool, image: bool, shifted: bool = False
                   ) -> TaskData:
    """The digits of one side of a class split, keeping their digit labels (0-9).

    Args:
        split: Index into :data:`DIGIT_SPLITS`.
        source: The split's source classes, else the other five.
        image: ``(n, 1, 8, 8)`` inputs for CNNs, else 64 flat features.
        shifted: Every image with fixed pixel noise (:data:`DIGIT_SHIFT_NOISE`).
    """
    classes = torch.tensor(DIGIT_SPLITS[split][0 if source else 1])
    full = load_sklearn_data("digits", 1.0, True)

    def part(ds: TensorDataset, index: int) -> TensorDataset:
        x, y = ds.tensors
        keep = torch.isin(y, classes)
        x, y = x[keep], y[keep]
        if shifted:
            x = _noisy_images(x, index)
        return TensorDataset(x.contiguous() if image else x.reshape(len(x), -1).contiguous(), y)

    return TaskData(train=part(full.train, 0), val=part(full.val, 1), test=part(full.test, 2))


@functools.cache
def digits_target(split: int, kind: str, image: bool, train_fraction: float,
                  label_noise: float) -> TaskData:
    """A digits target: the source classes with pixel noise (``shift``), or the other five.

    The leading :data:`N_DIGITS_TARGET` training examples, then the training fraction;
    a noisy label is another of the target's five classes.
    """
    _check_kind(kind, KINDS)
    shift = kind == "shift"
    data = digits_classes(split, shift, image, shift)
    x, y = data.train.tensors
    n = max(int(N_DIGITS_TARGET * train_fraction), 1)
    classes = torch.tensor(DIGIT_SPLITS[split][0 if shift else 1])
    index = torch.searchsorted(classes, y[:n])  # label -> its position among the classes
    y = classes[noisy_labels(index, label_noise, len(classes))]
    return TaskData(train=TensorDataset(x[:n], y), val=data.val, test=data.test)


# ----------------------------------------------------------------------------- sequences
@functools.cache
def minority_data(length: int) -> TaskData:
    """Fresh majority-task sequences labelled by their least frequent token (ties: lowest)."""
    x, _ = sequence_task_arrays("majority", length, seed=DATA_SEED + FINETUNE_STREAM)
    return split_arrays(x, x.sum(1).argmin(1).astype(np.int64))


@functools.cache
def minority_target(length: int, train_fraction: float, label_noise: float) -> TaskData:
    """A data variant of :func:`minority_data`."""
    return vary(minority_data(length), train_fraction, label_noise, VOCAB)


# --------------------------------------------------------------------------------- waves
N_WAVES = 2000
"""Examples per target wave dataset."""
BAND_EDGES = (2.625, 3.75, 4.875)
"""Cycles per window that bin the source's 1.5-6 cycles into four frequency bands."""
WAVE_SHIFT = {"cycles": (0.75, 3.0), "noise": 0.5}
"""The ``shift`` target: half the source's frequencies (0.75-3 cycles), its noise.

Measured start: pretrained CNNs are right on 0.61-0.63 of these, 0.68 on the source's
distribution (more noise, 0.7, left them 0.48-0.50 with a ceiling near it)."""


def wave_band_arrays(n: int, seed: int, cycles: tuple[float, float] = (1.5, 6.0),
                     noise: float = 0.5, length: int = WAVE_LENGTH
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy waves as in :func:`~lr_gym.tasks.grids.generated.wave_arrays`, with their cycles.

    Returns:
        Inputs ``(n, 1, length)`` float32, shape labels ``(n,)`` (index into
        :data:`~lr_gym.tasks.grids.generated.WAVE_KINDS`) and cycles per window ``(n,)``.
    """
    rng = np.random.default_rng([seed, FINETUNE_STREAM])
    y = rng.integers(0, len(WAVE_KINDS), n)
    t = np.arange(length) / length
    cyc = rng.uniform(*cycles, (n, 1))
    u = (cyc * t[None] + rng.uniform(0.0, 1.0, (n, 1))) % 1.0
    shapes = np.stack([np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0),
                       4 * np.abs(u - 0.5) - 1.0, 2 * u - 1.0])
    x = (rng.uniform(0.5, 1.5, (n, 1)) * shapes[y, np.arange(n)]
         + rng.uniform(-0.5, 0.5, (n, 1)) + noise * rng.standard_normal((n, length)))
    return x[:, None, :].astype(np.float32), y.astype(np.int64), cyc[:, 0]


@functools.cache
def waves_target_data(kind: str) -> TaskData:
    """The waves target of ``kind``: shifted shapes, or frequency bands."""
    _check_kind(kind, KINDS)
    if kind == "shift":
        x, y, _ = wave_band_arrays(N_WAVES, DATA_SEED + 1, **WAVE_SHIFT)
    else:
        x, _, cyc = wave_band_arrays(N_WAVES, DATA_SEED + 2)
        y = np.digitize(cyc, BAND_EDGES).astype(np.int64)
    return split_arrays(x, y)


@functools.cache
def waves_target(kind: str, train_fraction: float, label_noise: float) -> TaskData:
    """A data variant of :func:`waves_target_data`."""
    return vary(waves_target_data(kind), train_fraction, label_noise, len(WAVE_KINDS))


# ------------------------------------------------------------------------------ families
@dataclass(frozen=True)
class FinetuneFamily(TaskFamily):
    """A family whose episodes fine-tune pretrained weights (see the module docstring).

    Subclasses say what the architecture, the source and the target are; this class
    makes the :class:`~lr_gym.tasks.pretraining.Pretraining` recipe and the model factory.

    Attributes:
        kinds: The target kinds the family samples (its ``kind`` dimension).
        pretrain_steps: Adam steps of pretraining.
        pretrain_lr: Adam's LR in pretraining.
        pretrain_batch: Batch size of pretraining.
    """

    kinds: tuple[str, ...] = KINDS
    pretrain_steps: int = 400
    pretrain_lr: float = 3e-3
    pretrain_batch: int = 64

    @abstractmethod
    def architecture_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The model factory of the configuration (source and target share it)."""

    @abstractmethod
    def source_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The source data's factory."""

    @abstractmethod
    def target_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The target data's factory (the episode's ``data_fn``)."""

    def loss(self) -> LossFn:
        """The training loss of source and target."""
        return classification_loss

    def extras(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Further task fields (``eval_fn``, ``metric``, ``description``)."""
        return {}

    def pretraining(self, params: Mapping[str, Any]) -> Pretraining:
        """The recipe of the configuration's pretrained weights (nothing is run)."""
        return Pretraining(family=self.name, model_fn=self.architecture_fn(params),
                           data_fn=self.source_fn(params), loss_fn=self.loss(),
                           steps=self.pretrain_steps, lr=self.pretrain_lr,
                           batch_size=self.pretrain_batch, seed=params["pretrain_seed"])

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Pretrained model factory, target data and the family's loss and metric."""
        _check_kind(params["kind"], self.kinds)
        return {
            "model_fn": functools.partial(pretrained_model, self.pretraining(params),
                                          params["kind"] == "new-head"),
            "data_fn": self.target_fn(params),
            "loss_fn": self.loss(),
            **self.extras(params),
        }


@dataclass(frozen=True)
class TeacherFinetuneFamily(FinetuneFamily):
    """MLP students fine-tuned from one random teacher to a related one (regression)."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return train_size(N_TEACHER, params["train_fraction"])

    def architecture_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """A regression MLP of the sampled depth, width and LayerNorm."""
        return functools.partial(tabular_mlp, params["n_in"], 1, params["width"],
                                 params["depth"], params["layer_norm"])

    def source_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The source teacher's data."""
        return functools.partial(teacher_source, params["n_in"], params["teacher_seed"])

    def target_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The target teacher's data variant."""
        return functools.partial(teacher_target, params["n_in"], params["teacher_seed"],
                                 data_kind(params["kind"]), params["train_fraction"],
                                 params["target_noise"])

    def loss(self) -> LossFn:
        """Mean squared error."""
        return regression_loss

    def extras(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``r2`` as the metric."""
        return {"eval_fn": regression_eval, "metric": "r2",
                "description": f"{params['depth']}x{params['width']} MLP student fine-tuned "
                               f"to a {params['kind']} teacher ({params['n_in']} inputs)"}


@dataclass(frozen=True)
class DigitsFinetuneFamily(FinetuneFamily):
    """MLPs (``architecture="mlp"``) or CNNs on digits, from five classes to a target."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return max(int(N_DIGITS_TARGET * params["train_fraction"]), 1)

    def architecture_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """A 10-way MLP on 64 features, or a 10-way CNN on 8x8 images."""
        if self.architecture == "cnn2d":
            return functools.partial(digits_cnn, params["channels"], params["depth"])
        return functools.partial(tabular_mlp, 64, 10, params["width"], params["depth"],
                                 params["layer_norm"])

    def source_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The split's source classes."""
        return functools.partial(digits_classes, params["split"], True,
                                 self.architecture == "cnn2d")

    def target_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The shifted source classes, or the other five."""
        return functools.partial(digits_target, params["split"], data_kind(params["kind"]),
                                 self.architecture == "cnn2d", params["train_fraction"],
                                 params["label_noise"])

    def extras(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A description."""
        return {"description": f"{self.architecture} on digits {DIGIT_SPLITS[params['split']][0]}"
                               f" fine-tuned ({params['kind']})"}


@dataclass(frozen=True)
class SequenceFinetuneFamily(FinetuneFamily):
    """Transformer encoders fine-tuned from majority to minority sequences."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return train_size(SEQ_EXAMPLES, params["train_fraction"])

    def architecture_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """A 4-way transformer encoder over one-hot tokens."""
        return functools.partial(SeqTransformer, VOCAB, VOCAB, params["length"],
                                 params["d_model"], params["layers"], params["heads"])

    def source_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """Majority sequences (``seq-transformer``'s data)."""
        return functools.partial(sequence_data, "majority", params["length"])

    def target_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """Minority sequences."""
        return functools.partial(minority_target, params["length"],
                                 params["train_fraction"], params["label_noise"])

    def extras(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A description."""
        return {"description": f"{params['layers']}-layer transformer (d={params['d_model']})"
                               f" fine-tuned from majority to minority ({params['kind']})"}


@dataclass(frozen=True)
class WavesFinetuneFamily(FinetuneFamily):
    """1-D CNNs fine-tuned from wave shapes to shifted shapes or frequency bands."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return train_size(N_WAVES, params["train_fraction"])

    def architecture_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """The 4-way 1-D CNN of ``waves-conv1d``."""
        return functools.partial(conv1d_net, params["channels"])

    def source_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """``waves-conv1d``'s data (shapes of noisy waves)."""
        return functools.partial(load_generated_data, "waves")

    def target_fn(self, params: Mapping[str, Any]) -> functools.partial:
        """Shifted shapes, or frequency bands."""
        return functools.partial(waves_target, data_kind(params["kind"]), params["train_fraction"],
                                 params["label_noise"])

    def extras(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A description."""
        what = "shifted wave shapes" if params["kind"] == "shift" else "frequency bands"
        return {"description": f"1-D CNN ({params['channels']} ch) fine-tuned from wave "
                               f"shapes to {what} ({params['kind']})"}


TEACHER_MLP_FINETUNE = TeacherFinetuneFamily(
    name="teacher-mlp-finetune",
    dataset="generated-teacher-regression",
    architecture="mlp",
    reference_lrs=reference_lrs(momentum=0.04, adam=2e-3),
    space={
        "kind": Choice(KINDS),
        "pretrain_seed": PRETRAIN_SEEDS,
        "n_in": Choice((8, 16)),
        "teacher_seed": Choice((0, 1, 2, 3)),
        "depth": Choice((1, 2)),
        "width": Choice((32, 64, 128)),
        "layer_norm": Choice((False, True)),
        "train_fraction": TRAIN_FRACTION,
        "target_noise": Choice((0.0, 0.1, 0.2, 0.3)),
    },
    description="MLP students fine-tuned from a random teacher to a related one",
    pretrain_steps=600,
)
"""``teacher-mlp-finetune``: train split (task distribution v3)."""

DIGITS_MLP_FINETUNE = DigitsFinetuneFamily(
    name="digits-mlp-finetune",
    dataset="sklearn-digits",
    architecture="mlp",
    reference_lrs=reference_lrs(momentum=0.1, adam=3e-3),
    space={
        "kind": Choice(KINDS),
        "pretrain_seed": PRETRAIN_SEEDS,
        "split": Choice(tuple(range(len(DIGIT_SPLITS)))),
        "depth": Choice((1, 2)),
        "width": Choice((32, 64, 128)),
        "layer_norm": Choice((False, True)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    description="MLPs on digits fine-tuned from five classes to shifted or other digits",
)
"""``digits-mlp-finetune``: train split (task distribution v3)."""

SEQ_TRANSFORMER_FINETUNE = SequenceFinetuneFamily(
    name="seq-transformer-finetune",
    dataset="generated-sequences-majority-minority",
    architecture="transformer-encoder",
    reference_lrs=reference_lrs(momentum=0.05, adam=1.5e-3),
    space={
        "kind": Choice(("new-labels", "new-head")),
        "pretrain_seed": PRETRAIN_SEEDS,
        "length": Choice((8, 12)),
        "d_model": Choice((16, 32)),
        "layers": Choice((1, 2)),
        "heads": Choice((1, 2)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    run_space=dataclasses.replace(HEAVY_MODEL_RUNS, batch_sizes=(16, 32)),
    description="Transformer encoders fine-tuned from majority to minority sequences",
    kinds=("new-labels", "new-head"),
    pretrain_lr=1e-3,
)
"""``seq-transformer-finetune``: train split (task distribution v3)."""

DIGITS_CNN_FINETUNE = DigitsFinetuneFamily(
    name="digits-cnn-finetune",
    dataset="sklearn-digits",
    architecture="cnn2d",
    reference_lrs=reference_lrs(momentum=0.1, adam=3e-3),
    space={
        "kind": Choice(KINDS),
        "pretrain_seed": PRETRAIN_SEEDS,
        "split": Choice(tuple(range(len(DIGIT_SPLITS)))),
        "channels": Choice((4, 8, 16)),
        "depth": Choice((1, 2)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    run_space=HEAVY_MODEL_RUNS,
    description="CNNs on 8x8 digits fine-tuned from five classes to shifted or other digits",
    pretrain_steps=300,
)
"""``digits-cnn-finetune``: dev split (task distribution v3)."""

WAVES_CONV1D_FINETUNE = WavesFinetuneFamily(
    name="waves-conv1d-finetune",
    dataset="generated-waves",
    architecture="conv1d",
    reference_lrs=reference_lrs(momentum=0.05, adam=5e-3),
    space={
        "kind": Choice(KINDS),
        "pretrain_seed": PRETRAIN_SEEDS,
        "channels": Choice((8, 16)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    run_space=HEAVY_MODEL_RUNS,
    description="1-D CNNs fine-tuned from wave shapes to shifted shapes or frequency bands",
    pretrain_lr=5e-3,
)
"""``waves-conv1d-finetune``: test split (task distribution v3; evaluation only)."""


# ---------------------------------------------------------------------- fixed tasks
def _fixed_task(family: FinetuneFamily, params: dict[str, Any], optimizer: str) -> Task:
    """A family's task at one configuration: 300 steps, 20 decisions, batch 32, lr0 x1."""
    lr = family.reference_lrs[optimizer]
    run = RunConfig(optimizer=optimizer, lr_scale=1.0, lr=lr,
                    weight_decay=0.01 if optimizer == "adamw" else 0.0,
                    total_steps=300, steps_per_action=15, batch_size=32)
    config = TaskConfig(family.name, {k: params[k] for k in family.space}, run)
    return family.task(config)


def digits_cnn_finetune() -> Task:
    """Digits CNN (16 channels, 2 convs) fine-tuned to new labels; dev split.

    Pretrained on digits 0-4 (seed 0), fine-tuned with the same 10-way head on 5-9 (half
    the target's training data: 250 examples), AdamW at its reference lr0 (3e-3).
    Measured (3 seeds, ``benchmarks/finetune_prodigy.py``): static lr0 ends at 0.973
    validation accuracy, Prodigy at lr 1 at 0.925, its estimate reaching 5-8x lr0.
    """
    params = {"kind": "new-labels", "pretrain_seed": 0, "split": 0, "channels": 16,
              "depth": 2, "train_fraction": 0.5, "label_noise": 0.0}
    return _fixed_task(DIGITS_CNN_FINETUNE, params, "adamw")


def waves_conv1d_finetune() -> Task:
    """Waves 1-D CNN (16 channels) fine-tuned with a new head; test split.

    Pretrained on wave shapes (seed 0), fine-tuned to frequency bands with a fresh head
    on half the target's training data (650 examples), AdamW at its reference lr0 (5e-3).
    Measured (3 seeds, ``benchmarks/finetune_prodigy.py``): static lr0 ends at 0.844
    validation accuracy, Prodigy at lr 1 at 0.810, its estimate reaching 4-7x lr0.
    """
    params = {"kind": "new-head", "pretrain_seed": 0, "channels": 16, "train_fraction": 0.5,
              "label_noise": 0.0}
    return _fixed_task(WAVES_CONV1D_FINETUNE, params, "adamw")
