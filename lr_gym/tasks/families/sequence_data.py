"""Generated algorithmic sequence tasks: parity, majority, adding and counting.

Every task gives float inputs ``(n, length, features)`` (tokens one-hot encoded) and
integer class labels, so one sequence model fits them all:

* ``parity``: bits; the label is their sum modulo 2 (2 classes).
* ``majority``: tokens of a 4-letter vocabulary; the label is the most frequent one
  (ties go to the lowest token; 4 classes).
* ``adding``: (value in [0, 1], marker) pairs with one marker in each half; the label
  is the sum of the two marked values binned at 0.5, 1.0 and 1.5 (4 classes), the
  classification version of Hochreiter and Schmidhuber's adding problem.
* ``counting``: tokens of a 4-letter vocabulary; the label is the share of token 0
  binned at 1/8, 1/4 and 3/8 (4 classes).

Data are generated from fixed seeds, cached per process and split 65/15/20 by
:func:`lr_gym.tasks.grids.generated.split_arrays`.
"""

from __future__ import annotations

import functools

import numpy as np

from lr_gym.tasks.base import TaskData
from lr_gym.tasks.grids.generated import DATA_SEED, split_arrays

N_EXAMPLES = 2000
"""Examples per sequence dataset (before the 65/15/20 split)."""
VOCAB = 4
N_FEATURES = {"parity": 1, "majority": VOCAB, "adding": 2, "counting": VOCAB}
"""Input features per position."""
N_CLASSES = {"parity": 2, "majority": VOCAB, "adding": 4, "counting": 4}
"""Classes per task."""
SEQUENCE_TASKS: tuple[str, ...] = tuple(N_FEATURES)


def sequence_task_arrays(
    kind: str, length: int, n: int = N_EXAMPLES, seed: int = DATA_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, length, N_FEATURES[kind])`` float32 and labels ``(n,)`` int64.

    Raises:
        KeyError: Unknown task kind.
    """
    if kind not in N_FEATURES:
        raise KeyError(f"Unknown sequence task {kind!r}; choose from {list(SEQUENCE_TASKS)}.")
    rng = np.random.default_rng([seed, SEQUENCE_TASKS.index(kind), length])
    if kind == "parity":
        bits = rng.integers(0, 2, (n, length))
        x, y = bits[..., None] * 2.0 - 1.0, bits.sum(1) % 2
    elif kind == "adding":
        values = rng.uniform(0.0, 1.0, (n, length))
        half = length // 2
        first, second = rng.integers(0, half, n), rng.integers(half, length, n)
        marks = np.zeros((n, length))
        marks[np.arange(n), first] = marks[np.arange(n), second] = 1.0
        total = (values * marks).sum(1)
        x, y = np.stack([values, marks], -1), np.digitize(total, [0.5, 1.0, 1.5])
    else:
        tokens = rng.integers(0, VOCAB, (n, length))
        x = np.eye(VOCAB)[tokens]
        counts = x.sum(1)
        if kind == "majority":
            y = counts.argmax(1)  # argmax breaks ties towards the lowest token
        else:
            y = np.digitize(counts[:, 0] / length, [1 / 8, 1 / 4, 3 / 8])
    return x.astype(np.float32), y.astype(np.int64)


@functools.cache
def sequence_data(kind: str, length: int) -> TaskData:
    """A sequence task's dataset split 65/15/20, cached per process."""
    return split_arrays(*sequence_task_arrays(kind, length))
