"""One decision per interval under ``torch.distributed``, identical on every rank.

Under data parallelism (DDP, torchrun, accelerate, Lightning's ``ddp``) every rank
validates its own shard and sees its own training losses. Left alone, each rank's
:class:`~lr_gym.control.LRController` would decide on its own numbers: the ranks would
train with different LRs and a guard rollback would happen on some ranks only. So, when
a process group with more than one rank is initialised:

* :func:`mean_interval` all-reduces (mean) the validation loss and metric, the
  interval's per-step training losses, its gradient norm and step-size statistics, in
  one collective: every rank's feature tracker folds in the same numbers, so the
  controller's resume state is the same on every rank;
* :class:`AgreedGuard` runs the guard's check on rank 0 and broadcasts its verdict; the
  other ranks follow it, so a rollback happens on every rank or on none;
* :func:`rank0_action` broadcasts rank 0's action, so float nondeterminism can never
  split the ranks' LRs.

Without a process group, or with one rank, every function here returns its inputs and
runs no collective. Each collective uses the default group on the device its backend
needs: the current CUDA device under NCCL, the CPU otherwise (gloo).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from lr_gym.guard import Guard

STAT_KEYS = ("grad_alignment", "noise_ratio", "update_alignment", "update_ratio")
"""The step-size statistics of an interval (:meth:`lr_gym.grad_stats.IntervalMeter.stats`)."""


def active() -> bool:
    """Whether a process group with more than one rank is initialised."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """Whether this process logs and saves: rank 0, or the only process."""
    return not active() or torch.distributed.get_rank() == 0


def _device() -> torch.device:
    """Where the default group's collectives need their tensors."""
    if "nccl" in str(torch.distributed.get_backend()).split(","):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _mean(values: Sequence[float]) -> list[float]:
    """The mean over ranks of each value (one all-reduce of a float64 tensor)."""
    dist = torch.distributed
    packed = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return (packed / dist.get_world_size()).tolist()


def _from_rank0(values: Sequence[float]) -> list[float]:
    """Rank 0's values on every rank (one broadcast of a float64 tensor)."""
    packed = torch.tensor(values, dtype=torch.float64, device=_device())
    torch.distributed.broadcast(packed, src=0)
    return packed.tolist()


def floats(values: Sequence[Any]) -> list[float]:
    """Floats and 0-d tensors as floats, accelerator tensors in one host sync (not one each).

    The same numbers as ``float(x)`` for each (a stack only widens, which is exact).
    """
    out = list(values)
    # On the CPU a float() is cheaper than a stack; on an accelerator each is a sync.
    idx = [i for i, x in enumerate(out) if isinstance(x, torch.Tensor) and x.device.type != "cpu"]
    if len(idx) > 1:
        try:
            got = torch.stack([out[i].detach().reshape(()) for i in idx]).tolist()
        except (RuntimeError, ValueError):  # tensors on several devices: one at a time
            got = [float(out[i]) for i in idx]
        for i, v in zip(idx, got, strict=True):
            out[i] = v
    return [float(x) for x in out]


def mean_validation(val_loss: float, val_metric: float) -> tuple[float, float]:
    """The validation loss and metric averaged over ranks (the first decision's inputs)."""
    if not active():
        return val_loss, val_metric
    loss, metric = _mean([val_loss, val_metric])
    return loss, metric


def mean_interval(val_loss: float, val_metric: float, grad_norm: float,
                  stats: dict[str, float], losses: Sequence[Any], steps: int
                  ) -> tuple[float, float, float, dict[str, float], list[float]]:
    """An interval's inputs averaged over ranks, in one all-reduce.

    Each step's training loss is averaged over the ranks that recorded one (ranks count
    the same ``steps``; a missing loss is left out, a non-finite one makes the step's
    mean non-finite, so every rank skips it). A statistic NaN on any rank (unmeasured)
    is NaN on all.

    Args:
        val_loss: This rank's validation loss.
        val_metric: This rank's validation metric.
        grad_norm: This rank's gradient norm at the interval's last step (NaN: unknown).
        stats: This rank's step-size statistics, keyed by :data:`STAT_KEYS` (NaN where
            not measured; missing keys count as NaN).
        losses: This rank's training losses of the interval, one per step (floats or
            0-d tensors); only the last ``steps`` are used.
        steps: Optimizer steps in the interval, the same on every rank.

    Returns:
        ``(val_loss, val_metric, grad_norm, stats, losses)``: the means, identical on
        every rank; single-process, the inputs with ``losses`` as floats.
    """
    values = floats(losses)
    if not active():
        return val_loss, val_metric, grad_norm, stats, values
    values = values[-steps:] if steps > 0 else []
    pad = steps - len(values)
    head = [val_loss, val_metric, grad_norm, *(stats.get(k, math.nan) for k in STAT_KEYS)]
    sums = [0.0] * pad + values
    counts = [0.0] * pad + [1.0] * len(values)
    mean = _mean(head + sums + counts)
    n = len(head)
    step_sums, step_counts = mean[n:n + steps], mean[n + steps:]
    # The all-reduce divides by the world size; a step's own mean divides by its count.
    step_means = [s / c for s, c in zip(step_sums, step_counts, strict=True) if c > 0]
    head = mean[:n]
    return (head[0], head[1], head[2], dict(zip(STAT_KEYS, head[3:], strict=True)),
            step_means)


class AgreedGuard(Guard):
    """A :class:`~lr_gym.guard.Guard` whose rollback verdict is rank 0's on every rank.

    Rank 0 judges; the others follow its verdict (a rollback to their own snapshot, or
    none), so a rollback happens on every rank or on none, while each rank still records
    a new best validation loss as rank 0 does. Single-process, a plain ``Guard``.
    """

    def check(self, val_loss: float, *, diverged: bool, raised: bool, info: Any = None
              ) -> bool:
        """As :meth:`Guard.check <lr_gym.guard.Guard.check>`, with rank 0's verdict."""
        judge = super().check
        if not active():
            return judge(val_loss, diverged=diverged, raised=raised, info=info)
        main = torch.distributed.get_rank() == 0
        verdict = judge(val_loss, diverged=diverged, raised=raised, info=info) if main else 0
        verdict = bool(_from_rank0([float(verdict)])[0])
        if not main:
            # diverged=verdict forces rank 0's rollback; without one, raised=False keeps
            # this rank from rolling back on its own (a non-finite val_loss, the only other
            # cause, is averaged over ranks: rank 0 saw it too and rolled back).
            judge(val_loss, diverged=verdict, raised=raised and verdict, info=info)
        return verdict


def rank0_action(action: float) -> float:
    """Rank 0's action on every rank (the decision)."""
    if not active():
        return action
    return _from_rank0([float(action)])[0]
