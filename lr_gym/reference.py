"""Reference runs for the paired reward: the same task and seed under a fixed LR rule.

``reward="paired"`` rewards an episode against a reference run of the *same* task and
seed (the same initialisation, data order, dropout and events) under a fixed rule:
static at ``lr0`` by default (``EnvConfig.reference``). Episodes are bit-reproducible
on CPU (:mod:`lr_gym.reproducibility`), so the reference is exactly the run the agent
would have had with every action 0 on a static base: what the reward measures is the
actions, not the task (:func:`lr_gym.envs.lr_control.LRControlEnv` documents the
reward itself).

References are cached by :func:`reference_key`: the task's content hash, the episode's
torch seed, the budget, the rule and every setting that changes the run's arithmetic.
The cache lives in the process, and in ``$LR_GYM_REFERENCE_CACHE`` (a folder, one JSON
file per key, written atomically) when that is set, so parallel envs and later runs share
it safely: two processes that compute one key write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lr_gym.config import EnvConfig
    from lr_gym.tasks.base import Task

REFERENCE_VERSION = 1
"""Bumped when what a reference run computes changes (old cache files are then unused)."""
CACHE_ENV = "LR_GYM_REFERENCE_CACHE"
"""Environment variable naming the on-disk cache folder."""
MEMORY_ENTRIES = 256
"""References kept in each process (least recently used dropped first)."""

RULES = ("static", "base")
"""``"static"``: lr0 on a constant schedule; ``"base"``: the env's own rule, actions 0."""


@dataclass(frozen=True)
class ReferenceRun:
    """A reference run's validation losses.

    Attributes:
        val_losses: Validation loss before the first decision and after each interval
            (up to, not including, the interval where it diverged).
        diverged: Whether the run diverged before its budget ran out.
    """

    val_losses: tuple[float, ...]
    diverged: bool

    @property
    def decisions(self) -> int:
        """Intervals the run trained (the one it diverged in included)."""
        return len(self.val_losses) - 1 + self.diverged

    def loss_at(self, decision: int, initial_loss: float) -> float:
        """The reference's validation loss after ``decision`` intervals.

        After it diverged the reference counts as the untrained model (``initial_loss``):
        a diverged run is worth no more than where it started.
        """
        if decision < len(self.val_losses):
            return self.val_losses[decision]
        return initial_loss if self.diverged else self.val_losses[-1]


def reference_config(config: EnvConfig) -> EnvConfig:
    """The env settings of a reference run of an env with ``config``."""
    c = config.replace(reward="val_loss", guard=False, eval_test=False, action_cost=0.0,
                       features=("progress",))
    if config.reference == "static":
        c = c.replace(mode="recursive", schedule="constant", warmup_frac=0.0,
                      final_lr_frac=0.0)
    return c


def reference_key(task: Task, config: EnvConfig, torch_seed: int, total_steps: int,
                  steps_per_action: int, device_type: str) -> str:
    """The cache key of one reference run (hex SHA-256)."""
    from lr_gym.reproducibility import torch_version
    from lr_gym.tasks.base import task_fingerprint

    c = reference_config(config)
    key = {
        "version": REFERENCE_VERSION, "task": task_fingerprint(task), "seed": torch_seed,
        "total_steps": total_steps, "steps_per_action": steps_per_action,
        "rule": [c.mode, c.schedule, c.warmup_frac, c.final_lr_frac, c.lr_min, c.lr_max],
        "divergence_factor": c.divergence_factor, "event_prob": c.event_prob,
        "torch_threads": c.torch_threads, "device": device_type, "torch": torch_version(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def run_reference(make_env: Callable[[EnvConfig], Any], config: EnvConfig,
                  torch_seed: int) -> ReferenceRun:
    """Runs the reference of an episode with ``torch_seed`` (actions 0 under its rule).

    Args:
        make_env: Builds the episode's env (same task) from a config: the reference's.
        config: The episode's env settings (the reference's follow from them).
        torch_seed: The episode's seed (:meth:`LRControlEnv.start`).
    """
    import numpy as np

    env = make_env(reference_config(config))
    try:
        _, info = env.start(torch_seed)
        losses, diverged, done = [info["val_loss"]], False, False
        zero = np.zeros(1, np.float32)
        while not done:
            _, _, done, _, info = env.step(zero)
            diverged = bool(info["diverged"])
            if not diverged:
                losses.append(info["val_loss"])
        return ReferenceRun(tuple(float(x) for x in losses), diverged)
    finally:
        env.close()


class ReferenceCache:
    """Reference runs by key, in this process and optionally in a folder.

    Its counts, like ``functools.lru_cache``'s: ``hits``, ``misses`` (runs computed
    here) and ``compute_cpu_s``, the process CPU time spent computing them.

    Args:
        folder: The on-disk cache; default ``$LR_GYM_REFERENCE_CACHE`` (unset: memory only).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self._memory: OrderedDict[str, ReferenceRun] = OrderedDict()
        self.folder = folder
        self.hits = self.misses = 0
        self.compute_cpu_s = 0.0

    @property
    def path(self) -> Path | None:
        """The folder in use now (the variable is read at each call: tests set it)."""
        folder = self.folder if self.folder is not None else os.environ.get(CACHE_ENV)
        return Path(folder) if folder else None

    def runs(self) -> list[ReferenceRun]:
        """The runs held in memory, oldest first."""
        return list(self._memory.values())

    def clear(self) -> None:
        """Forgets the runs held in memory and the counts (the folder is kept)."""
        self._memory.clear()
        self.hits = self.misses = 0
        self.compute_cpu_s = 0.0

    def get(self, key: str, compute: Any) -> ReferenceRun:
        """The run of ``key``, computed by ``compute()`` and stored when missing."""
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        run = self._load(key)
        if run is None:
            self.misses += 1
            t0 = time.process_time()
            run = compute()
            self.compute_cpu_s += time.process_time() - t0
            self._store(key, run)
        else:
            self.hits += 1
        self._memory[key] = run
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)
        return run

    def _load(self, key: str) -> ReferenceRun | None:
        folder = self.path
        if folder is None:
            return None
        try:
            data = json.loads((folder / f"{key}.json").read_text())
            losses = tuple(float(x) for x in data["val_losses"])
            if not losses or not all(math.isfinite(x) for x in losses):
                raise ValueError("no finite losses")
            return ReferenceRun(losses, bool(data["diverged"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: recomputed and rewritten

    def _store(self, key: str, run: ReferenceRun) -> None:
        folder = self.path
        if folder is None:
            return
        from lr_gym.files import write_text_atomic

        write_text_atomic(folder / f"{key}.json", json.dumps(asdict(run)))


CACHE = ReferenceCache()
"""The process's cache, used by every env."""
