"""Sequence-model families on generated algorithmic tasks.

* ``seq-transformer`` (train split): a 1-2 layer pre-LayerNorm transformer encoder
  (``nn.TransformerEncoder``, d_model 16-64, 1-4 heads, feed-forward width 2 d_model,
  learned positions, mean pooling) on parity, majority or the adding problem, with
  sequences of 8 or 12 steps and batches of 16 or 32.
* ``seq-lstm`` (dev split): a 1-2 layer LSTM (hidden 16-64) classifying from its last
  output, on the adding problem or counting, with sequences of 8, 12 or 16 steps.

Both sample the sequence length, the training fraction and label noise
(:mod:`lr_gym.tasks.data_variants`), and runs from
:data:`lr_gym.tasks.families.base.HEAVY_MODEL_RUNS` (budgets of 100-1,000 steps, batches of at
most 64). Data: :mod:`lr_gym.tasks.families.sequence_data`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lr_gym.tasks.base import TaskData
from lr_gym.tasks.data_variants import train_size, vary
from lr_gym.tasks.families.base import HEAVY_MODEL_RUNS, Choice, Range, TaskFamily, reference_lrs
from lr_gym.tasks.families.sequence_data import N_CLASSES, N_EXAMPLES, N_FEATURES, sequence_data
from lr_gym.tasks.families.tabular import LABEL_NOISE, TRAIN_FRACTION

LENGTHS = Choice((8, 12, 16))
"""Sequence lengths (the transformer's stop at 12: attention costs more per step)."""


@functools.cache
def sequence_variant(kind: str, length: int, train_fraction: float,
                     label_noise: float) -> TaskData:
    """A data variant of a sequence task, cached per process by its configuration."""
    return vary(sequence_data(kind, length), train_fraction, label_noise, N_CLASSES[kind])


class SeqTransformer(nn.Module):
    """Transformer-encoder classifier of ``(batch, length, n_in)`` sequences."""

    def __init__(self, n_in: int, n_out: int, length: int, d_model: int = 32,
                 layers: int = 1, heads: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(length, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout,
                                           batch_first=True, norm_first=True)
        # Nested tensors only help padded batches, which these are not.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_out)``."""
        h = self.encoder(self.embed(x) + self.pos)
        return self.head(self.norm(h.mean(1)))


class SeqLSTM(nn.Module):
    """LSTM classifier of ``(batch, length, n_in)`` sequences from its last output."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 32, layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_out)``."""
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


@dataclass(frozen=True)
class SequenceFamily(TaskFamily):
    """A sequence model on generated tasks (see the module docstring)."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return train_size(N_EXAMPLES, params["train_fraction"])

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The family's model on the sampled sequence task."""
        kind, length = params["task"], params["length"]
        n_in, n_out = N_FEATURES[kind], N_CLASSES[kind]
        if self.architecture == "lstm":
            model_fn = functools.partial(SeqLSTM, n_in, n_out, params["hidden"],
                                         params["layers"])
            what = f"{params['layers']}-layer LSTM ({params['hidden']})"
        else:
            model_fn = functools.partial(SeqTransformer, n_in, n_out, length,
                                         params["d_model"], params["layers"],
                                         params["heads"], params["dropout"])
            what = f"{params['layers']}-layer transformer (d={params['d_model']})"
        return {
            "model_fn": model_fn,
            "data_fn": functools.partial(sequence_variant, kind, length,
                                         params["train_fraction"], params["label_noise"]),
            "description": f"{what} on {kind} (length {length})",
        }


SEQ_TRANSFORMER = SequenceFamily(
    name="seq-transformer",
    dataset="generated-sequences-parity-majority-adding",
    architecture="transformer-encoder",
    reference_lrs=reference_lrs(momentum=0.03, adam=1e-3),
    space={
        "task": Choice(("parity", "majority", "adding")),
        "length": Choice((8, 12)),
        "d_model": Choice((16, 32, 64)),
        "layers": Choice((1, 2)),
        "heads": Choice((1, 2, 4)),
        "dropout": Choice((0.0, 0.1)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    # Batches of 64 doubled the step (12 ms vs 6 ms on one core): attention's cost grows
    # fastest with the batch.
    run_space=dataclasses.replace(HEAVY_MODEL_RUNS, batch_sizes=(16, 32)),
    description="Transformer encoders on generated algorithmic sequences",
)
"""``seq-transformer``: train split."""

SEQ_LSTM = SequenceFamily(
    name="seq-lstm",
    dataset="generated-sequences-adding-counting",
    architecture="lstm",
    reference_lrs=reference_lrs(momentum=0.1, adam=5e-3),
    space={
        "task": Choice(("adding", "counting")),
        "length": LENGTHS,
        "hidden": Range(16, 64, log=True, integer=True),
        "layers": Choice((1, 2)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    run_space=HEAVY_MODEL_RUNS,
    description="LSTMs on generated algorithmic sequences",
)
"""``seq-lstm``: dev split."""
