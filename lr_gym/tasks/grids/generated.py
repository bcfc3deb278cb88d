"""Generated-data task families: synthetic data no training family sees, offline.

Three families, none of which shares data or architecture with the training families
(MLPs on scikit-learn digits, wine and breast cancer):

* ``spirals-resmlp`` (dev split): interleaved 2-D spirals, classified by a residual MLP
  with LayerNorm.
* ``waves-conv1d`` (test split): noisy 1-D waveforms (sine, square, triangle, sawtooth
  with random frequency, phase, amplitude and offset), classified by a 1-D CNN.
* ``seq-gru`` (test split): which of several random Markov chains emitted a token
  sequence, classified by a GRU over token embeddings.

Data are generated once per process from fixed seeds (``functools.cache``) and split
65/15/20 (train/val/test) like :func:`lr_gym.tasks.grids.embedded.load_sklearn_data`. Each
family has a variant grid like :func:`lr_gym.tasks.grids.embedded.variants` (widths,
SGD+momentum or Adam, lr0 x0.1/x1/x10, full or half training data). Accuracy is the
metric of every family, so scores pool across tasks.

Measured cost and difficulty of the registered default ids (one 300-step episode,
seed 0, ``torch.set_num_threads(1)``, static LR at lr0) are in each factory's
docstring.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lr_gym.tasks.base import Task, TaskData

DATA_SEED = 1234
"""Seed of every generated dataset (the data never change between runs)."""

WAVE_KINDS: tuple[str, ...] = ("sine", "square", "triangle", "sawtooth")
WAVE_LENGTH = 64
N_CHAINS = 4
SEQ_VOCAB = 8
SEQ_LENGTH = 24
SPIRAL_ARMS = 3


# ------------------------------------------------------------------------------ data
def split_arrays(x: np.ndarray, y: np.ndarray, train_fraction: float = 1.0) -> TaskData:
    """Splits arrays 65/15/20 (train/val/test) with a fixed permutation.

    Args:
        x: Inputs, first axis the examples.
        y: Integer labels.
        train_fraction: Keep only this leading fraction of the training split.
    """
    order = np.random.default_rng(0).permutation(len(y))
    n_test, n_val = int(0.2 * len(y)), int(0.15 * len(y))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    train = train[: max(int(len(train) * train_fraction), 1)]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def subset(idx: np.ndarray) -> TensorDataset:
        i = torch.from_numpy(idx)
        return TensorDataset(xt[i].contiguous(), yt[i].contiguous())

    return TaskData(train=subset(train), val=subset(val), test=subset(test))


def wave_arrays(n: int = 2000, length: int = WAVE_LENGTH, seed: int = DATA_SEED,
                noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Noisy waveforms ``(n, 1, length)`` float32 and their kind ``(n,)`` int64.

    Kind ``k`` indexes :data:`WAVE_KINDS`. Each wave has a random frequency (1.5 to 6
    cycles per window), phase, amplitude (0.5 to 1.5) and offset (+-0.5), plus Gaussian
    noise of standard deviation ``noise``.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(WAVE_KINDS), n)
    t = np.arange(length) / length
    cycles = rng.uniform(1.5, 6.0, (n, 1))
    phase = rng.uniform(0.0, 1.0, (n, 1))
    u = (cycles * t[None] + phase) % 1.0  # position within the period, in [0, 1)
    shapes = np.stack([
        np.sin(2 * np.pi * u),                  # sine
        np.where(u < 0.5, 1.0, -1.0),           # square
        4 * np.abs(u - 0.5) - 1.0,              # triangle
        2 * u - 1.0,                            # sawtooth
    ])
    wave = shapes[y, np.arange(n)]
    amp = rng.uniform(0.5, 1.5, (n, 1))
    offset = rng.uniform(-0.5, 0.5, (n, 1))
    x = amp * wave + offset + noise * rng.standard_normal((n, length))
    return x[:, None, :].astype(np.float32), y.astype(np.int64)


def sequence_arrays(n: int = 2000, length: int = SEQ_LENGTH, seed: int = DATA_SEED,
                    n_chains: int = N_CHAINS, vocab: int = SEQ_VOCAB,
                    concentration: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences ``(n, length)`` int64 and the Markov chain that emitted each.

    ``n_chains`` random chains over ``vocab`` tokens share a uniform start distribution;
    their transition rows are Dirichlet(``concentration``) draws, so a chain is only
    identifiable from the statistics of several consecutive transitions.
    """
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(vocab, concentration), size=(n_chains, vocab))
    cum = trans.cumsum(-1)
    y = rng.integers(0, n_chains, n)
    x = np.empty((n, length), np.int64)
    x[:, 0] = rng.integers(0, vocab, n)
    draws = rng.uniform(size=(n, length))
    for i in range(1, length):
        rows = cum[y, x[:, i - 1]]  # (n, vocab)
        x[:, i] = np.minimum((draws[:, i : i + 1] > rows).sum(-1), vocab - 1)
    return x, y.astype(np.int64)


def spiral_arrays(n: int = 1500, arms: int = SPIRAL_ARMS, seed: int = DATA_SEED,
                  noise: float = 0.25, turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(n, 2)`` float32 on ``arms`` interleaved noisy spirals, and their arm."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, arms, n)
    r = rng.uniform(0.05, 1.0, n)
    angle = 2 * np.pi * (turns * r + y / arms)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) * 2.0
    x = x + noise * r[:, None] * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int64)


_ARRAYS = {"waves": wave_arrays, "seq": sequence_arrays, "spirals": spiral_arrays}


@functools.cache
def load_generated_data(dataset: str, train_fraction: float = 1.0) -> TaskData:
    """The generated dataset ``"waves"``, ``"seq"`` or ``"spirals"``, split 65/15/20.

    Args:
        dataset: Which generator.
        train_fraction: Keep only this leading fraction of the training split.
    """
    if dataset not in _ARRAYS:
        raise KeyError(f"Unknown generated dataset {dataset!r}; choose from {sorted(_ARRAYS)}.")
    x, y = _ARRAYS[dataset]()
    return split_arrays(x, y, train_fraction)


# ------------------------------------------------------------------------------ models
def conv1d_net(channels: int = 16, n_out: int = len(WAVE_KINDS)) -> nn.Sequential:
    """1-D CNN: two width-5 convs with a max-pool between, global average pool, linear head."""
    c = channels
    return nn.Sequential(
        nn.Conv1d(1, c, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(c, 2 * c, 5, padding=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(2 * c, n_out),
    )


class GRUClassifier(nn.Module):
    """Token embedding, a one-layer GRU and a linear head on its last hidden state."""

    def __init__(self, hidden: int = 32, vocab: int = SEQ_VOCAB, n_out: int = N_CHAINS,
                 embed: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_out)`` of token ids ``(batch, length)``."""
        _, h = self.gru(self.embed(x))
        return self.head(h[-1])


class ResidualBlock(nn.Module):
    """Pre-LayerNorm residual block ``x + W2 relu(W1 LN(x))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Adds the block's update to ``x``."""
        return x + self.net(x)


def res_mlp(width: int = 32, depth: int = 2, n_in: int = 2,
            n_out: int = SPIRAL_ARMS) -> nn.Sequential:
    """Residual MLP with LayerNorm: input projection, ``depth`` blocks, LN and a head."""
    return nn.Sequential(
        nn.Linear(n_in, width),
        *[ResidualBlock(width) for _ in range(depth)],
        nn.LayerNorm(width),
        nn.Linear(width, n_out),
    )


# ------------------------------------------------------------------------------ tasks
_SGD = (torch.optim.SGD, {"momentum": 0.9})
_ADAM = (torch.optim.Adam, {})

# family -> (dataset, architecture, lr0 with SGD, lr0 with Adam, batch, width grid)
FAMILIES: dict[str, tuple[str, str, float, float, int, tuple[tuple[int, ...], ...]]] = {
    "spirals-resmlp": ("spirals", "resmlp", 0.05, 3e-3, 32, ((32, 2), (64, 1))),
    "waves-conv1d": ("waves", "conv1d", 0.05, 5e-3, 32, ((8,), (16,))),
    "seq-gru": ("seq", "gru", 0.1, 1e-2, 32, ((32,), (48,))),
}
"""Per family: dataset, architecture, lr0 (SGD+momentum, Adam), batch size, widths grid."""


def _model_fn(arch: str, widths: tuple[int, ...]) -> functools.partial:
    if arch == "conv1d":
        return functools.partial(conv1d_net, widths[0])
    if arch == "gru":
        return functools.partial(GRUClassifier, widths[0])
    return functools.partial(res_mlp, widths[0], widths[1] if len(widths) > 1 else 2)


def make_task(
    family: str,
    *,
    widths: Sequence[int] | None = None,
    optimizer: str = "sgd",
    lr_scale: float = 1.0,
    train_fraction: float = 1.0,
) -> Task:
    """One generated-data task variant.

    Args:
        family: ``"spirals-resmlp"``, ``"waves-conv1d"`` or ``"seq-gru"``.
        widths: Conv channels (``waves-conv1d``), GRU hidden size (``seq-gru``) or
            ``(width, depth)`` of the residual MLP; defaults to the grid's first.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adam"``, at the family's lr0.
        lr_scale: Multiplies the family's lr0 (0.1 and 10 are badly tuned on purpose).
        train_fraction: Fraction of the training split to use.

    Raises:
        KeyError: Unknown family or optimizer.
    """
    if family not in FAMILIES:
        raise KeyError(f"Unknown generated family {family!r}; choose from {sorted(FAMILIES)}.")
    if optimizer not in ("sgd", "adam"):
        raise KeyError(f"Unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'.")
    dataset, arch, lr_sgd, lr_adam, batch, grid = FAMILIES[family]
    widths = tuple(widths) if widths is not None else grid[0]
    opt_cls, opt_kwargs = _SGD if optimizer == "sgd" else _ADAM
    lr0 = (lr_sgd if optimizer == "sgd" else lr_adam) * lr_scale
    tag = f"{family}/w{'-'.join(map(str, widths))}/{optimizer}-x{lr_scale:g}/d{train_fraction:g}"
    return Task(
        name=tag,
        model_fn=_model_fn(arch, widths),
        data_fn=functools.partial(load_generated_data, dataset, train_fraction),
        lr=lr0,
        optimizer=opt_cls,
        optimizer_kwargs=opt_kwargs,
        batch_size=batch,
        total_steps=300,
        steps_per_action=15,
        metric="accuracy",
        family=family,
        description=f"{arch} on generated {dataset} ({optimizer}, lr0={lr0:g})",
    )


def variants(family: str) -> list[Task]:
    """The variant grid of a family: widths x {sgd, adam} x lr0 {x0.1, x1, x10} x data {1, 0.5}."""
    grid = itertools.product(FAMILIES[family][5], ("sgd", "adam"), (0.1, 1.0, 10.0), (1.0, 0.5))
    return [
        make_task(family, widths=w, optimizer=o, lr_scale=s, train_fraction=f)
        for w, o, s, f in grid
    ]


# Registered per-family defaults (the variant a user gets from the plain id).
def spirals_resmlp() -> Task:
    """Spirals residual MLP (width 32, 2 blocks, SGD+momentum, lr0 0.05); dev family.

    Static lr0, seed 0, one thread: final val accuracy 0.756, about 0.4 s an episode.
    """
    return make_task("spirals-resmlp")


def spirals_resmlp_adam() -> Task:
    """Spirals residual MLP trained with Adam (lr0 3e-3); dev family.

    Static lr0, seed 0, one thread: final val accuracy 0.876, about 0.5 s an episode.
    """
    return make_task("spirals-resmlp", optimizer="adam")


def spirals_resmlp_high_lr() -> Task:
    """Spirals residual MLP, SGD+momentum at a 4x too high lr0 (0.2); dev family.

    The dev counterpart of ``Seq-GRU-HighLR``: a controller must lower the LR.
    """
    return make_task("spirals-resmlp", lr_scale=4.0)


def waves_conv1d() -> Task:
    """Waves 1-D CNN (8/16 channels, SGD+momentum, lr0 0.05); test family.

    Static lr0, seed 0, one thread: final val accuracy 0.680, about 0.6 s an episode.
    """
    return make_task("waves-conv1d")


def waves_conv1d_adam() -> Task:
    """Waves 1-D CNN, 16/32 channels, trained with Adam (lr0 5e-3); test family.

    Static lr0, seed 0, one thread: final val accuracy 0.700, about 0.9 s an episode.
    """
    return make_task("waves-conv1d", widths=(16,), optimizer="adam")


def seq_gru() -> Task:
    """Markov-sequence GRU (hidden 32, SGD+momentum, lr0 0.1); test family.

    Static lr0, seed 0, one thread: final val accuracy 0.893, about 2.2 s an episode.
    """
    return make_task("seq-gru")


def seq_gru_high_lr() -> Task:
    """Markov-sequence GRU, half the data, SGD+momentum at a 10x too high lr0 (1.0); test.

    Static lr0, seed 0, one thread: diverges at step 135 (val accuracy 0.393 there),
    about 1 s; a controller must lower the LR early.
    """
    return make_task("seq-gru", lr_scale=10.0, train_fraction=0.5)
