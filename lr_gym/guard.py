"""A guard that rolls a run back to its best validation loss when it blows up.

SOLAR's lesson (a rollback on loss spikes) as a rule anyone can run: the guard keeps a
copy of the model and optimizer at each new best validation loss. After a control
interval it rolls back when

* the interval diverged, whatever the last decision was: in the env a non-finite or
  exploding training loss, or a non-finite validation loss; in a deployed
  :class:`~lr_gym.control.LRController` a finite exploding training loss or a
  non-finite validation result (a non-finite training loss is skipped there: the step
  may never have reached the weights, as with mixed precision's skipped steps), or
* the validation loss rose above ``best * e^tolerance`` right after a decision that
  raised the LR;

and the LR rule then backs off (:meth:`lr_gym.lr_rule.LRState.back_off`: the LR halves
for good and the next two decisions cannot raise it). One implementation serves the
env (``EnvConfig.guard``) and :class:`lr_gym.control.LRController`.

The copy never lives on the accelerator, where a model that fills it has no room for
another: it is kept in CPU memory (page-locked when the tensor is on CUDA, so that the
copies run asynchronously), in buffers refilled in place while the shapes stay the same,
or in a file (``directory``). Its size, the model's and the optimizer's state
(``nbytes``), is checked against a budget (``memory``, :data:`DEFAULT_MEMORY`) before
anything is copied; over it the guard switches itself off with one warning. A restore
writes every tensor back in place, on its device and in its dtype, bit for bit.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lr_gym.files import atomic_write

if TYPE_CHECKING:
    import torch

TOLERANCE = 0.1
"""How far (in log) validation loss may rise above its best after an LR increase."""

DEFAULT_MEMORY = 8 * 2**30
"""The guard's default budget, 8 GiB of CPU memory for its copy.

A fixed size, so that a safety net never takes a machine's memory by surprise: the copy
is page-locked beside a CUDA model (the OS cannot swap it out), and a deployed model may
be far larger than the ones a controller was trained on. 8 GiB holds a float32 model of
about 700M parameters with Adam (12 bytes per parameter with the weights) or 430M with
Prodigy (20 bytes), and is small beside the host memory of a machine that trains one;
larger runs choose: a bigger budget, a ``directory`` on disk, or no guard.
"""

SNAPSHOT_FILE = "guard_snapshot.pt"
"""The snapshot's file in the guard's ``directory`` (``guard_snapshot_rank<r>.pt`` in a
distributed run, one per process)."""


def check_memory(value: object) -> int | None:
    """``value`` as a budget in bytes (None: no limit).

    Raises:
        TypeError: Not an int or None; ValueError: negative.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"guard_memory must be a whole number of bytes or None (no limit), got "
                        f"{value!r} ({type(value).__name__}); e.g. guard_memory=16 * 2**30.")
    if value < 0:
        raise ValueError(f"guard_memory must be >= 0 bytes, or None for no limit; got {value}.")
    return int(value)


def check_directory(value: object) -> Path | None:
    """``value`` as the snapshot's folder (None: keep the snapshot in memory).

    Raises:
        TypeError: Not a path; ValueError: an existing file, not a folder.
    """
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or str(value) == "":
        raise TypeError(f"guard_dir must be a folder (str or Path) or None, got {value!r}.")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"guard_dir={str(path)!r} is a file; give a folder (it is created if "
                         "missing).")
    return path


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


class _Ref:
    """Where a tensor was in a packed structure: its index in the snapshot's list."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


def _pack(obj: Any, tensors: list[torch.Tensor], seen: dict[int, int]) -> Any:
    """``obj`` with every tensor replaced by a :class:`_Ref` into ``tensors`` (appended).

    A tensor met twice (tied weights) is listed once; other values are deep-copied.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        if id(obj) not in seen:
            seen[id(obj)] = len(tensors)
            tensors.append(obj)
        return _Ref(seen[id(obj)])
    if isinstance(obj, dict):
        return {k: _pack(v, tensors, seen) for k, v in obj.items()}
    if type(obj) in (list, tuple):  # not a namedtuple's fields: it is deep-copied whole
        return type(obj)(_pack(v, tensors, seen) for v in obj)
    return copy.deepcopy(obj)


def _unpack(skel: Any, live: Any, src: list[torch.Tensor], meta: list[tuple]) -> Any:
    """The structure ``skel`` describes, its tensors copied from ``src``.

    A tensor goes into ``live``'s tensor at the same place when that one has the saved
    shape, dtype and device (in place: nothing is allocated on the device and what held
    it keeps holding it); otherwise into a new tensor with the saved device and dtype.
    """
    import torch

    if isinstance(skel, _Ref):
        shape, dtype, device = meta[skel.i]
        ok = (isinstance(live, torch.Tensor) and live.shape == shape and live.dtype == dtype
              and live.device == device)
        out = live if ok else torch.empty(shape, dtype=dtype, device=device)
        return out.copy_(src[skel.i], non_blocking=True)
    if isinstance(skel, dict):
        live = live if isinstance(live, dict) else {}
        return {k: _unpack(v, live.get(k), src, meta) for k, v in skel.items()}
    if type(skel) in (list, tuple):
        live = live if type(live) is type(skel) and len(live) == len(skel) else [None] * len(skel)
        return type(skel)(_unpack(v, w, src, meta) for v, w in zip(skel, live, strict=True))
    return copy.deepcopy(skel)


def _sync(meta: list[tuple]) -> None:
    """Waits for the asynchronous copies to or from the CUDA devices in ``meta``."""
    import torch

    for device in {m[2] for m in meta if m[2].type == "cuda"}:
        torch.cuda.synchronize(device)


def wants_pinned(t: torch.Tensor) -> bool:
    """Whether ``t``'s CPU copy is page-locked: only for a CUDA tensor (CUDA available)."""
    import torch

    return t.is_cuda and torch.cuda.is_available()


def _empty(t: torch.Tensor, pinned: bool) -> torch.Tensor:
    import torch

    if pinned:
        try:
            return torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        except RuntimeError:  # page-locked memory refused: pageable still works, synchronously
            pass
    return torch.empty(t.shape, dtype=t.dtype)


class Guard:
    """Snapshots at each new best validation loss; restores when a run blows up.

    Args:
        optimizer: The run's optimizer (its state is restored too).
        model: The model; without it the optimizer's parameters are restored, which
            misses buffers such as batch-norm statistics.
        tolerance: See :data:`TOLERANCE`.
        memory: The most bytes of CPU memory the snapshot may hold (:data:`DEFAULT_MEMORY`;
            None: no limit). A snapshot over it (the model's and the optimizer's state,
            sized before copying) switches the guard off with one warning. Not checked
            with ``directory``, where the snapshot holds no memory.
        directory: A folder to keep the snapshot in (a file written atomically at each new
            best, read back on a restore) instead of CPU memory; None: in memory.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module | None = None,
                 tolerance: float = TOLERANCE, *, memory: int | None = DEFAULT_MEMORY,
                 directory: str | os.PathLike | None = None) -> None:
        self.optimizer, self.model, self.tolerance = optimizer, model, tolerance
        self.memory = check_memory(memory)
        self.directory = check_directory(directory)
        self.best = math.inf
        self.best_info: Any = None
        self.restores = 0
        self.nbytes = 0
        """The last snapshot's size in bytes (its tensors)."""
        self.off: str | None = None
        """Why the guard switched itself off (it then never snapshots nor restores)."""
        self._snapshot: tuple[dict[str, Any], list[tuple]] | None = None
        self._buffers: list[torch.Tensor] = []  # the in-memory snapshot's CPU tensors
        self._pinned: list[bool] = []

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    # ------------------------------------------------------------------ snapshot
    def _live(self) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """The state to keep, packed (see :func:`_pack`), and its tensors.

        The optimizer's own ``state`` and ``param_groups`` rather than its
        ``state_dict()``: ``load_state_dict`` casts state to the parameter's dtype and
        keeps (aliases) a tensor already on the parameter's device.
        """
        tensors: list[torch.Tensor] = []
        seen: dict[int, int] = {}
        params = self._params()
        weights = (self.model.state_dict(keep_vars=True) if self.model is not None
                   else params)
        skel = {"weights": _pack(weights, tensors, seen)}
        skel["groups"] = [_pack({k: v for k, v in g.items() if k != "params"}, tensors, seen)
                          for g in self.optimizer.param_groups]
        state = self.optimizer.state
        skel["state"] = {i: _pack(state[p], tensors, seen) for i, p in enumerate(params)
                         if p in state}
        return skel, tensors

    def _switch_off(self, why: str) -> None:
        self.off, self._snapshot, self._buffers, self._pinned = why, None, [], []
        warnings.warn(why, UserWarning, stacklevel=4)

    def _file(self) -> Path:
        import torch.distributed as dist

        assert self.directory is not None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return self.directory / SNAPSHOT_FILE.replace(".pt", f"_rank{dist.get_rank()}.pt")
        return self.directory / SNAPSHOT_FILE

    def _take(self) -> None:
        import torch

        if self.off is not None:
            return
        skel, tensors = self._live()
        size = sum(t.numel() * t.element_size() for t in tensors)
        if self.directory is None and self.memory is not None and size > self.memory:
            self._switch_off(
                f"lr_gym guard: its copy of the model and optimizer state would take "
                f"{_size(size)} of CPU memory, over its budget guard_memory={self.memory}; the "
                "guard is off for this run. Pass guard_memory=<bytes> (None: no limit) or "
                "guard_dir=<folder>, or guard=False to turn it off without this warning.")
            return
        meta = [(t.shape, t.dtype, t.device) for t in tensors]
        self._snapshot = None  # a copy that fails half-way must not be restored
        if self.directory is not None:
            path = self._file()
            try:  # torch.save brings one tensor at a time to the CPU
                atomic_write(path, lambda tmp: torch.save([t.detach() for t in tensors], tmp))
            except OSError as err:
                self._switch_off(f"lr_gym guard: could not write its snapshot to {path} ({err}); "
                                 "the guard is off for this run. Free space there, give another "
                                 "guard_dir=, or pass guard=False.")
                return
        else:
            buffers, pinned = [], []
            with torch.no_grad():
                for i, t in enumerate(tensors):
                    pin = wants_pinned(t)
                    b = self._buffers[i] if i < len(self._buffers) else None
                    if (b is None or b.shape != t.shape or b.dtype != t.dtype
                            or self._pinned[i] != pin):
                        b = _empty(t, pin)
                    b.copy_(t, non_blocking=pin)
                    buffers.append(b)
                    pinned.append(pin)
            _sync(meta)
            self._buffers, self._pinned = buffers, pinned
        self._snapshot, self.nbytes = (skel, meta), size

    def _source(self) -> list[torch.Tensor]:
        """The snapshot's tensors, on the CPU (memory-mapped from its file on disk)."""
        import torch

        if self.directory is None:
            return self._buffers
        return torch.load(self._file(), map_location="cpu", weights_only=True, mmap=True)

    def saved_weights(self) -> dict[str, torch.Tensor] | list[torch.Tensor] | None:
        """The snapshot's model state (or parameters, without a model), on the CPU.

        For inspection: the guard's own tensors, not copies. None before any snapshot.
        """
        if self._snapshot is None:
            return None
        skel, src = self._snapshot[0]["weights"], self._source()
        if isinstance(skel, dict):
            return {k: src[v.i] if isinstance(v, _Ref) else v for k, v in skel.items()}
        return [src[v.i] for v in skel]

    # ------------------------------------------------------------------ the rule
    def start(self, val_loss: float, info: Any = None) -> None:
        """Begins a run whose untrained model has validation loss ``val_loss``.

        ``info`` is anything the caller wants back with the best state (e.g. its
        validation metrics), as :attr:`best_info`.
        """
        self.best, self.best_info, self.restores = float(val_loss), info, 0
        self._take()

    def check(self, val_loss: float, *, diverged: bool, raised: bool, info: Any = None) -> bool:
        """Judges a finished interval; returns True if it rolled the run back.

        Args:
            val_loss: The validation loss after the interval.
            diverged: The interval's training diverged.
            raised: The decision that began the interval raised the LR.
            info: Kept as :attr:`best_info` if this is a new best.
        """
        bad = diverged or not math.isfinite(val_loss)
        bad = bad or (raised and val_loss > self.best * math.exp(self.tolerance))
        if bad and self._snapshot is not None:
            self._restore()
            self.restores += 1
            return True
        if math.isfinite(val_loss) and val_loss < self.best:
            self.best, self.best_info = float(val_loss), info
            self._take()
        return False

    # ------------------------------------------------------------------ restore
    def _restore(self) -> None:
        import torch

        (skel, meta), src = self._snapshot, self._source()
        opt, params = self.optimizer, self._params()
        if len(skel["groups"]) != len(opt.param_groups) or max(skel["state"], default=-1) >= len(
                params):
            raise ValueError("The guard cannot restore: the optimizer's param groups changed "
                             "since its snapshot; pass guard=False when adding groups mid-run.")
        with torch.no_grad():
            if self.model is not None:
                live = self.model.state_dict(keep_vars=True)
                weights = _unpack(skel["weights"], live, src, meta)
                if weights.keys() != live.keys() or any(weights[k] is not live[k]
                                                        for k in weights):
                    self.model.load_state_dict(weights)  # its structure changed: copies
            else:
                for p, w in zip(params, _unpack(skel["weights"], params, src, meta), strict=True):
                    if w is not p:
                        p.copy_(w)
            for g, saved in zip(opt.param_groups, skel["groups"], strict=True):
                values = _unpack(saved, g, src, meta)
                ps = g["params"]
                g.clear()
                g["params"] = ps
                g.update(values)
            state = {params[i]: _unpack(s, opt.state.get(params[i]), src, meta)
                     for i, s in skel["state"].items()}
            opt.state.clear()
            opt.state.update(state)
        _sync(meta)
        opt.zero_grad(set_to_none=True)
