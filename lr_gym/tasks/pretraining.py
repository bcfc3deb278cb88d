"""Procedural pretraining: a model's starting weights, trained once on a source task, cached.

The fine-tuning families (:mod:`lr_gym.tasks.families.finetune`) start every episode
from weights pretrained on a *source* task. A :class:`Pretraining` says how those
weights are made: an architecture, the source data, a loss, Adam's LR, a step count,
a batch size and a seed. :func:`pretrained_state` returns them:

1. from this process's memory, if it made or read them before;
2. else from the disk cache, ``<cache>/pretrained/<family>-<key>.pt``, where ``<cache>``
   is ``$LR_GYM_CACHE_DIR`` (default ``~/.cache/lr_gym``; shared with the seed tasks'
   tokenizers) and ``<key>`` hashes the whole recipe (factories by name and bytecode)
   with the torch version and CPU capability, which change the last bits of training;
3. else by pretraining now (seconds on one core) and publishing the file atomically
   (a temporary name, then a rename), so parallel env processes never read half a file.
   A file that does not load, or holds another key or other tensors, is rebuilt.

Pretraining is deterministic: one torch thread, deterministic kernels, its own seeded
RNG (:func:`torch.random.fork_rng`), so it neither depends on nor disturbs the episode's
random state, and a cache hit gives the same bits as pretraining afresh. Nothing here
runs at import time or when a task is sampled: only a model factory
(:func:`pretrained_model`) called at an episode's reset does.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lr_gym.files import atomic_write
from lr_gym.reproducibility import pinned
from lr_gym.tasks.base import LossFn, TaskData, _describe, classification_loss, iterate_batches
from lr_gym.tasks.seed.common import cache_dir

PRETRAIN_VERSION = 1
"""Bumped when pretraining's arithmetic changes in a way the recipe's key cannot see."""
SUBDIR = "pretrained"
"""Folder of the weights under the cache folder."""

_MEMO: dict[str, dict[str, torch.Tensor]] = {}


@dataclass(frozen=True)
class Pretraining:
    """A recipe for pretrained weights (see the module docstring).

    Attributes:
        family: Name of the family whose episodes start from these weights (the cache
            file's prefix).
        model_fn: Builds the architecture, freshly initialised from torch's global RNG
            (a module-level factory or ``functools.partial``, so the key is stable).
        data_fn: Returns the source :class:`~lr_gym.tasks.base.TaskData`; only its
            training split is read.
        loss_fn: Training loss of a batch, ``loss_fn(model, batch)``.
        steps: Adam steps.
        lr: Adam's LR.
        batch_size: Minibatch size.
        seed: Pretraining seed: the initialisation, the batch order and dropout.
    """

    family: str
    model_fn: Callable[[], nn.Module]
    data_fn: Callable[[], TaskData]
    loss_fn: LossFn = classification_loss
    steps: int = 400
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"Pretraining.steps must be a positive int, got {self.steps!r}.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError("Pretraining.batch_size must be a positive int, got "
                             f"{self.batch_size!r}.")
        if not self.lr > 0:
            raise ValueError(f"Pretraining.lr must be > 0, got {self.lr!r}.")

    def recipe(self) -> dict:
        """The recipe as JSON-friendly data (factories by name and bytecode)."""
        return {
            "version": PRETRAIN_VERSION,
            "family": self.family,
            "model_fn": _describe(self.model_fn),
            "data_fn": _describe(self.data_fn),
            "loss_fn": _describe(self.loss_fn),
            "steps": self.steps, "lr": self.lr, "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        # Stable across processes (no object addresses): task fingerprints, which key the
        # cached reference runs, describe a task's model factory through this repr.
        return f"Pretraining({json.dumps(self.recipe(), sort_keys=True)})"

    @property
    def key(self) -> str:
        """16 hex digits of a SHA-256 of the recipe, the torch version and CPU capability.

        The last two change the last bits of training, so a cache folder shared by
        machines never hands one machine another's weights.
        """
        text = json.dumps({**self.recipe(), "torch": str(torch.__version__),
                           "cpu": torch.backends.cpu.get_cpu_capability()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, root: str | Path | None = None) -> Path:
        """The cache file under ``root`` (default: :func:`lr_gym.tasks.seed.common.cache_dir`)."""
        return cache_dir(root) / SUBDIR / f"{self.family}-{self.key}.pt"


def pretrain(spec: Pretraining) -> dict[str, torch.Tensor]:
    """Trains ``spec``'s model on its source data from ``spec.seed``; its state dict.

    Runs on one thread with deterministic kernels under its own RNG: the same recipe
    gives the same bits on one machine and torch version, whatever the caller's state.
    """
    data = spec.data_fn().train
    with pinned(1, deterministic=True), torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = spec.model_fn()
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        gen = torch.Generator().manual_seed(spec.seed)
        step = 0
        while step < spec.steps:
            for batch in iterate_batches(data, spec.batch_size, generator=gen,
                                         drop_last=len(data) > spec.batch_size):
                opt.zero_grad(set_to_none=True)
                spec.loss_fn(model, batch).backward()
                opt.step()
                step += 1
                if step == spec.steps:
                    break
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _read(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The cached state dict at ``path``, or None (with a warning) if it is unusable."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("key") != key:
            raise ValueError(f"it holds key {blob.get('key') if isinstance(blob, dict) else '?'}"
                             f", not {key}")
        state = blob["state"]
        if not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("it holds something other than tensors")
    except Exception as err:  # noqa: BLE001 - any unreadable file is rebuilt, never trusted
        warnings.warn(f"Pretrained weights {path} are unusable ({err}); pretraining again.",
                      stacklevel=3)
        return None
    return state


def pretrained_state(spec: Pretraining, root: str | Path | None = None
                     ) -> dict[str, torch.Tensor]:
    """The weights of ``spec``: from memory, the disk cache, or pretraining now.

    Args:
        spec: The recipe.
        root: Cache folder (default: ``$LR_GYM_CACHE_DIR``, else ``~/.cache/lr_gym``).

    Returns:
        The state dict (shared, read-only: load it into a model, do not modify it).
    """
    path, key = spec.path(root), spec.key
    memo_key = str(path)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    state = _read(path, key)
    if state is not None:
        # A stale or foreign file with the right key but other tensors is rebuilt below.
        with torch.random.fork_rng(devices=[]):
            expected = spec.model_fn().state_dict()
        if set(state) != set(expected) or any(
                state[k].shape != expected[k].shape for k in expected):
            warnings.warn(f"Pretrained weights {path} do not fit {spec.family}'s model; "
                          "pretraining again.", stacklevel=2)
            state = None
    if state is None:
        state = pretrain(spec)
        blob = {"key": key, "recipe": json.dumps(spec.recipe(), sort_keys=True),
                "state": state}
        atomic_write(path, lambda tmp: torch.save(blob, tmp))  # replaces a corrupt file
    _MEMO[memo_key] = state
    return state


def clear_memory() -> None:
    """Forgets the weights held in this process (the disk cache stays)."""
    _MEMO.clear()


def head_name(model: nn.Module) -> str:
    """The name of a model's head: its last :class:`torch.nn.Linear` submodule.

    Raises:
        ValueError: The model has no linear layer.
    """
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear to treat as its head.")
    return names[-1]


def pretrained_model(spec: Pretraining, new_head: bool = False) -> nn.Module:
    """A fine-tuning episode's model: ``spec.model_fn()`` with its pretrained weights.

    The model is built first, from torch's global RNG (the episode's seed), then every
    tensor is overwritten with its pretrained value, except, with ``new_head``, those of
    the head (:func:`head_name`), which keep their fresh initialisation. The same
    episode seed therefore gives the same model, pretrained or read from the cache.

    Args:
        spec: The pretraining recipe.
        new_head: Keep the head freshly initialised (a pretrained body, a new head).

    Raises:
        ValueError: The pretrained weights do not fit the model.
    """
    model = spec.model_fn()
    state = pretrained_state(spec)
    fresh = f"{head_name(model)}." if new_head else None
    load = {k: v for k, v in model.state_dict().items()
            if fresh is None or not k.startswith(fresh)}
    bad = [k for k in load if k not in state or state[k].shape != load[k].shape]
    if bad:
        raise ValueError(f"Pretrained weights of {spec.family!r} do not fit the model at "
                         f"{bad[:3]}; delete {spec.path()} to pretrain again.")
    model.load_state_dict({k: state[k] for k in load}, strict=False)
    return model
