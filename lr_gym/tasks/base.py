"""The `Task` API: a primary training problem that an `LRControlEnv` wraps.

A task says *what* is trained (model factory, data, loss, metrics, inner optimizer
and its initial learning rate, step budget); the environment says *how* the learning
rate is controlled. Tasks are plain frozen dataclasses holding callables, in the
spirit of learned_optimization's ``Task``: cheap to build, nothing is loaded until an
environment calls :meth:`Task.load_data` or :meth:`Task.build_model`.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from lr_gym.tasks import Task, TaskData
    >>> def data():
    ...     x, y = torch.randn(256, 8), torch.randint(0, 2, (256,))
    ...     return TaskData(train=TensorDataset(x[:192], y[:192]),
    ...                     val=TensorDataset(x[192:], y[192:]))
    >>> task = Task(name="toy", model_fn=lambda: torch.nn.Linear(8, 2), data_fn=data, lr=0.1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lr_gym.config import MAX_TOTAL_STEPS, check_int, check_real

Batch = Any
"""Whatever the task's batches are: a tuple of tensors, a dict of tensors, ..."""

LossFn = Callable[[nn.Module, Batch], torch.Tensor]
"""``loss_fn(model, batch) -> scalar tensor``; the batch is already on the model's device."""

EvalFn = Callable[[nn.Module, "Dataset", "Task", torch.device], dict[str, float]]
"""``eval_fn(model, dataset, task, device) -> {"loss": ..., <metric>: ...}``.

Called under ``torch.no_grad()`` with the model in eval mode. Must return the key
``"loss"`` and the task's main ``metric``; any other entries are reported too.
"""


@dataclass(frozen=True)
class TaskData:
    """The splits of a task.

    Attributes:
        train: Training examples; the inner optimizer samples minibatches from it.
        val: Fixed validation subset, evaluated after every control interval. It
            feeds observations and rewards, so it must be carved from training data,
            never from the test split.
        test: Optional held-out split, evaluated once at the end of an episode and
            reported in ``info["test"]``; never used in rewards.
    """

    train: Dataset
    val: Dataset
    test: Dataset | None = None


def move_to(batch: Batch, device: torch.device) -> Batch:
    """Moves every tensor in a (nested) tuple, list or dict batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def iterate_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    collate_fn: Callable | None = None,
) -> Iterator[Batch]:
    """Yields one epoch of minibatches.

    ``TensorDataset`` is indexed directly (no per-example collation), which is what
    makes small tasks cheap: on 8x8 digits a ``DataLoader`` costs more than the step.
    Other datasets go through a single-process ``DataLoader``.

    Args:
        dataset: The examples.
        batch_size: Examples per batch.
        generator: Seeded generator that fixes the shuffling order.
        shuffle: Shuffle the examples.
        drop_last: Drop a final incomplete batch.
        collate_fn: Collation for non-tensor datasets.
    """
    if isinstance(dataset, TensorDataset) and collate_fn is None:
        n = len(dataset)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size]
            yield tuple(t[idx] for t in dataset.tensors)
        return
    yield from DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
        collate_fn=collate_fn,
        num_workers=0,
    )


def classification_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy of ``model(x)`` against ``y`` for ``(x, y)`` batches."""
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def classification_eval(
    model: nn.Module, dataset: Dataset, task: Task, device: torch.device
) -> dict[str, float]:
    """Mean cross-entropy and accuracy over ``dataset`` for ``(x, y)`` batches."""
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for batch in iterate_batches(
        dataset, task.eval_batch_size, shuffle=False, collate_fn=task.collate_fn
    ):
        x, y = move_to(batch, device)
        logits = model(x)
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(-1) == y).sum()
        n += len(y)
    # One host sync for the whole pass.
    return {"loss": total_loss.item() / n, "accuracy": correct.item() / n}


@dataclass(frozen=True)
class Task:
    """A primary model, its data and its inner optimizer.

    Attributes:
        name: Unique task name (also the default env name).
        model_fn: Builds a freshly initialised model. The environment calls it under a
            seeded torch RNG, so all randomness must come from torch's global RNG.
        data_fn: Returns the :class:`TaskData`. Called once per environment instance;
            cache expensive loading inside it (e.g. ``functools.cache``).
        lr: Initial learning rate ``lr0`` of the inner optimizer (finite, > 0); every LR
            schedule and multiplier in the environment is relative to it.
        optimizer: Inner optimizer class, built as ``optimizer(params, lr=lr, **optimizer_kwargs)``.
        optimizer_kwargs: Extra optimizer arguments (momentum, weight decay, ...).
        param_groups_fn: Optional ``model -> list of param-group dicts`` (e.g. no weight
            decay on biases). Each group's own ``lr`` is scaled with the controlled LR.
        batch_size: Training minibatch size.
        eval_batch_size: Minibatch size of validation and test passes.
        total_steps: Optimizer steps in one episode (the budget T).
        steps_per_action: Optimizer steps per control interval (one env step).
        loss_fn: Training loss of one batch.
        eval_fn: Validation/test pass returning ``"loss"`` and the metrics.
        metric: Name of the main validation metric (higher is better) in the
            observation and in convergence times.
        collate_fn: Collation for non-tensor datasets.
        grad_clip: Optional max gradient norm (clipping happens after measuring it).
        family: Task family: the key of the train/dev/test split declared in
            :mod:`lr_gym.splits` (families outside it, e.g. ``"custom"``, are in none).
        description: One line for docs and ``--help``.
        chance_loss: The validation loss of a model that knows nothing (``log C`` for
            a C-class cross-entropy, 1 for a standardised regression's MSE); None: the
            env estimates it from the training targets (:func:`data_chance_loss`) where
            it can. The ``loss_vs_chance`` feature tells a fine-tuning run (which starts
            far from it) from one trained from scratch.
    """

    name: str
    model_fn: Callable[[], nn.Module]
    data_fn: Callable[[], TaskData]
    lr: float = 0.1
    optimizer: type[torch.optim.Optimizer] = torch.optim.SGD
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    param_groups_fn: Callable[[nn.Module], list[dict[str, Any]]] | None = None
    batch_size: int = 64
    eval_batch_size: int = 512
    total_steps: int = 400
    steps_per_action: int = 20
    loss_fn: LossFn = classification_loss
    eval_fn: EvalFn = classification_eval
    metric: str = "accuracy"
    collate_fn: Callable | None = None
    grad_clip: float | None = None
    family: str = "custom"
    description: str = ""
    chance_loss: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task.name must be a non-empty string, got {self.name!r}.")
        try:
            check_real("lr", self.lr, lo=0.0, lo_open=True)
            for name in ("total_steps", "steps_per_action", "batch_size", "eval_batch_size"):
                check_int(name, getattr(self, name), lo=1,
                          hi=MAX_TOTAL_STEPS if "steps" in name else None)
            if self.chance_loss is not None:
                check_real("chance_loss", self.chance_loss, lo=0.0, lo_open=True)
            if self.grad_clip is not None:
                check_real("grad_clip", self.grad_clip, lo=0.0, lo_open=True)
        except (TypeError, ValueError) as err:
            raise type(err)(f"Task {self.name!r}: {err}") from None
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"Task {self.name!r}: metric must be a metric name, got "
                             f"{self.metric!r}.")
        if self.steps_per_action > self.total_steps:
            raise ValueError(
                f"Task {self.name!r}: steps_per_action ({self.steps_per_action}) exceeds "
                f"total_steps ({self.total_steps}); lower steps_per_action."
            )

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Builds the inner optimizer at ``lr0`` for ``model``."""
        params = (
            self.param_groups_fn(model) if self.param_groups_fn else model.parameters()
        )
        return self.optimizer(params, lr=self.lr, **dict(self.optimizer_kwargs))


def _describe(value: Any) -> Any:
    """A JSON-friendly description of a task field (callables by name and bytecode)."""
    import functools
    import hashlib

    if isinstance(value, functools.partial):
        return {"partial": _describe(value.func), "args": [_describe(a) for a in value.args],
                "keywords": {k: _describe(v) for k, v in sorted(value.keywords.items())}}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if callable(value):
        name = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
        code = getattr(value, "__code__", None)
        return name if code is None else f"{name}#{hashlib.sha256(code.co_code).hexdigest()[:12]}"
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def data_chance_loss(train: Dataset) -> float | None:
    """The loss of a model that knows only the training targets' distribution.

    For integer class labels (the last tensor of a ``TensorDataset``) the entropy of
    their frequencies, the cross-entropy of always predicting them; for real-valued
    targets their variance, the squared error of always predicting their mean. None
    for anything else (a dataset of dicts, token sequences, ...).
    """
    if not isinstance(train, TensorDataset) or len(train.tensors) < 2 or not len(train):
        return None
    y = train.tensors[-1]
    if y.is_floating_point():
        var = float(y.double().var(unbiased=False)) if y.numel() > 1 else 0.0
        return var if var > 0 else None
    if y.dim() != 1 or y.min() < 0:
        return None
    p = torch.bincount(y).double() / len(y)
    p = p[p > 0]
    entropy = float(-(p * p.log()).sum())
    return entropy if entropy > 0 else None


_LATER_FIELDS = ("chance_loss",)


def task_fingerprint(task: Task) -> str:
    """SHA-256 of a task's definition: every field, callables by name and bytecode.

    Two tasks with one fingerprint train the same model on the same data the same way
    (keys of cached reference runs). It fingerprints the definition, not the data's
    bytes: a factory that closes over other data under the same task name and code
    would collide, so give such tasks different names.
    """
    import dataclasses
    import hashlib
    import json

    fields = {f.name: _describe(getattr(task, f.name)) for f in dataclasses.fields(task)
              # Unset fields added later leave the fingerprints of older tasks as they were.
              if not (f.name in _LATER_FIELDS and getattr(task, f.name) is None)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
