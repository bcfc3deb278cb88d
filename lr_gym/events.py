"""Events within a run: what an open-loop schedule cannot anticipate.

With probability ``EnvConfig.event_prob`` an episode has one event at a random optimizer
step in 20-80% of its budget, drawn from the episode's seed (so a reference run of the
same seed meets the same event):

* ``"batch_size"``: the minibatch grows or shrinks 4x (kept within 1 and the training
  set), which changes the gradient noise and the best LR;
* ``"label_noise"``: 20% of the training labels are replaced (a random class, or
  Gaussian noise of half the targets' spread for real-valued targets), which makes
  further training overfit;
* ``"subset"``: training continues on a fixed random quarter of the training set.

Label noise needs a ``TensorDataset`` whose last tensor holds the targets; on other
data it leaves the run unchanged and ``info["event"]`` says it did not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch.utils.data import Dataset

KINDS = ("batch_size", "label_noise", "subset")
WINDOW = (0.2, 0.8)
"""The share of the budget within which an event happens."""
BATCH_FACTOR = 4
NOISE_SHARE = 0.2
SUBSET_SHARE = 0.25


@dataclass(frozen=True)
class Event:
    """One event of an episode.

    Attributes:
        kind: One of :data:`KINDS`.
        step: The optimizer step before which it happens.
        grow: ``"batch_size"`` only: the batch grows (else it shrinks).
        seed: Seeds the event's own random choices (labels, subset).
    """

    kind: str
    step: int
    grow: bool
    seed: int


def draw_event(rng: np.random.Generator, prob: float, total_steps: int) -> Event | None:
    """The episode's event (or None), from ``rng``; always draws the same count."""
    u, kind, frac, grow, seed = (rng.random(), int(rng.integers(len(KINDS))),
                                 rng.uniform(*WINDOW), bool(rng.integers(2)),
                                 int(rng.integers(2**31 - 1)))
    if u >= prob or total_steps < 2:
        return None
    step = min(max(int(round(frac * total_steps)), 1), total_steps - 1)
    return Event(KINDS[kind], step, grow, seed)


def apply_event(event: Event, train: Dataset, batch_size: int) -> tuple[Dataset, int, bool]:
    """The training set and batch size after ``event``, and whether it applied.

    Raises nothing: an event that does not fit the data leaves both unchanged.
    """
    import torch
    from torch.utils.data import Subset, TensorDataset

    n = len(train)
    gen = torch.Generator().manual_seed(event.seed)
    if event.kind == "batch_size":
        new = batch_size * BATCH_FACTOR if event.grow else batch_size // BATCH_FACTOR
        new = min(max(new, 1), n)
        return train, new, new != batch_size
    if event.kind == "subset":
        keep = torch.randperm(n, generator=gen)[: max(int(n * SUBSET_SHARE), batch_size, 1)]
        keep = keep.sort().values
        if isinstance(train, TensorDataset):
            return TensorDataset(*(t[keep] for t in train.tensors)), batch_size, True
        return Subset(train, keep.tolist()), batch_size, True
    if not isinstance(train, TensorDataset) or len(train.tensors) < 2:
        return train, batch_size, False
    *inputs, y = train.tensors
    hit = torch.rand(n, generator=gen) < NOISE_SHARE
    if y.is_floating_point():
        noise = torch.randn(y.shape, generator=gen, dtype=y.dtype) * 0.5 * y.std()
        noisy = torch.where(hit.view(-1, *[1] * (y.dim() - 1)), y + noise, y)
    else:
        classes = int(y.max()) + 1
        noisy = torch.where(hit.view(-1, *[1] * (y.dim() - 1)),
                            torch.randint(0, classes, y.shape, generator=gen, dtype=y.dtype), y)
    return TensorDataset(*inputs, noisy), batch_size, True
