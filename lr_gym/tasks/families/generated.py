"""Samplers of the generated-data families of :mod:`lr_gym.tasks.grids.generated`.

The fixed ids of these families (``lr_gym/Spirals-ResMLP-v1``, ``lr_gym/Waves-Conv1D-v1``,
``lr_gym/Seq-GRU-v1``, ...) keep their variant grids; these samplers draw the same
architectures at other sizes, on data variants (training fraction, label noise), with
the shared run configuration:

* ``spirals-resmlp`` (dev): residual MLP of width 16-96 with 1-3 blocks.
* ``waves-conv1d`` (test): 1-D CNN with 4-16 channels.
* ``seq-gru`` (test): GRU with hidden size 16-32 on Markov sequences of 8 or 12 tokens
  (the fixed ids use 24), batches of 16 or 32.

Sizes and lengths are capped, and the CNN and the GRU run with
:data:`lr_gym.tasks.families.base.HEAVY_MODEL_RUNS` (budgets of 100-1,000 steps, batches of at
most 64), so that a median episode stays cheap on one core
(``benchmarks/family_costs.py``).

The test samplers are for evaluation only (``lr_gym/TestFamilies-v1``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lr_gym.tasks.base import TaskData
from lr_gym.tasks.data_variants import train_size, vary
from lr_gym.tasks.families.base import HEAVY_MODEL_RUNS, Choice, Range, TaskFamily, reference_lrs
from lr_gym.tasks.families.tabular import LABEL_NOISE, TRAIN_FRACTION
from lr_gym.tasks.grids.generated import (
    N_CHAINS,
    SPIRAL_ARMS,
    WAVE_KINDS,
    GRUClassifier,
    conv1d_net,
    load_generated_data,
    res_mlp,
    sequence_arrays,
    split_arrays,
)

N_EXAMPLES = {"spirals": 1500, "waves": 2000, "seq": 2000}
"""Examples per generated dataset (the generators' defaults)."""
N_CLASSES = {"spirals": SPIRAL_ARMS, "waves": len(WAVE_KINDS), "seq": N_CHAINS}


@functools.cache
def markov_data(length: int) -> TaskData:
    """Markov-chain sequences of ``length`` tokens split 65/15/20, cached per process."""
    return split_arrays(*sequence_arrays(length=length))


@functools.cache
def generated_variant(dataset: str, train_fraction: float, label_noise: float,
                      length: int | None = None) -> TaskData:
    """A data variant of a generated dataset, cached per process by its configuration.

    ``length`` sets the Markov sequences' length (``dataset="seq"`` only; None keeps
    the generator's).
    """
    base = load_generated_data(dataset) if length is None else markov_data(length)
    return vary(base, train_fraction, label_noise, N_CLASSES[dataset])


@dataclass(frozen=True)
class GeneratedFamily(TaskFamily):
    """A generated-data family at sampled sizes (see the module docstring).

    Attributes:
        data: Key of :data:`N_EXAMPLES` (the generator).
    """

    data: str = "spirals"

    def n_train(self, params: Mapping[str, Any]) -> int:
        """Training examples at the sampled fraction."""
        return train_size(N_EXAMPLES[self.data], params["train_fraction"])

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The family's model at the sampled size on the sampled data variant."""
        if self.architecture == "conv1d":
            model_fn = functools.partial(conv1d_net, params["channels"])
        elif self.architecture == "gru":
            model_fn = functools.partial(GRUClassifier, params["hidden"])
        else:
            model_fn = functools.partial(res_mlp, params["width"], params["depth"])
        return {
            "model_fn": model_fn,
            "data_fn": functools.partial(generated_variant, self.data,
                                         params["train_fraction"], params["label_noise"],
                                         params.get("length")),
            "description": f"{self.architecture} on generated {self.data}",
        }


SPIRALS_RESMLP = GeneratedFamily(
    name="spirals-resmlp",
    dataset="generated-spirals",
    architecture="resmlp-layernorm",
    reference_lrs=reference_lrs(momentum=0.05, adam=3e-3),
    space={
        "width": Range(16, 96, log=True, integer=True),
        "depth": Choice((1, 2, 3)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    data="spirals",
)
"""``spirals-resmlp``: dev split."""

WAVES_CONV1D = GeneratedFamily(
    name="waves-conv1d",
    dataset="generated-waves",
    architecture="conv1d",
    reference_lrs=reference_lrs(momentum=0.05, adam=5e-3),
    space={
        "channels": Range(4, 16, log=True, integer=True),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    run_space=HEAVY_MODEL_RUNS,
    data="waves",
)
"""``waves-conv1d``: test split (evaluation only)."""

SEQ_GRU = GeneratedFamily(
    name="seq-gru",
    dataset="generated-markov-sequences",
    architecture="gru",
    reference_lrs=reference_lrs(momentum=0.1, adam=1e-2),
    space={
        "hidden": Range(16, 32, log=True, integer=True),
        "length": Choice((8, 12)),
        "train_fraction": TRAIN_FRACTION,
        "label_noise": LABEL_NOISE,
    },
    # The recurrence costs 5-7 ms a step on one core; batches of 64 the most.
    run_space=dataclasses.replace(HEAVY_MODEL_RUNS, batch_sizes=(16, 32)),
    data="seq",
)
"""``seq-gru``: test split (evaluation only)."""
