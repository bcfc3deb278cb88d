"""Fair tuning of the baselines' initial learning rate ``lr0``.

Every tunable baseline gets the same declared budget per task, as in AlgoPerf's
external-tuning track (Dahl et al. 2023): ``budget`` trials (default 5) over its OWN
declared search space ``(lo, hi)`` of log10 exponents, with

    lr0 = base_lr * 10 ** e,   e = lo + (u + 1) / 2 * (hi - lo),
                               u = the first ``budget`` points of a deterministic
                                   low-discrepancy sequence over [-1, 1]

(:func:`quasi_random_exponents`: the base-2 van der Corput sequence, no scrambling), so
the first trial is the centre of the space. :func:`tune_controller` takes ``base_lr``
and the space from the controller (:meth:`~agents.baselines.base.Controller.default_lr`,
:meth:`~agents.baselines.base.Controller.search_space`). Each trial is one episode
(:func:`agents.evaluation.rollout.run_episode`) on a tuning seed that is not an evaluation seed,
scored on the VALIDATION metric (final or best); the test split is never evaluated
(trials run with ``eval_test=False``). The best trial's ``lr0`` wins. Results are
cached in a JSON file so repeated evaluations reuse them.

The tuner knows nothing about how a baseline applies ``lr0``: :func:`tune_lr` takes a
callable ``make(lr) -> Controller`` (e.g. a baseline's ``with_lr``), whose controller
typically returns ``dataclasses.replace(task, lr=lr)`` from ``wrap_task``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agents.baselines.base import Controller
from agents.evaluation.rollout import EpisodeResult, run_episode
from lr_gym.files import write_text_atomic
from lr_gym.registration import task_for
from lr_gym.reproducibility import torch_version
from lr_gym.tasks.base import Task

TUNING_SEED = 10_000
"""Default tuning seed, far from the evaluation seeds (which count up from 0)."""

DEFAULT_BUDGET = 5
"""Trials per (baseline, task): AlgoPerf's external-tuning budget."""

DEFAULT_SPACE = (-2.0, 2.0)
"""Default search space of :func:`tune_lr`: two decades either side of ``base_lr``."""

CACHE_VERSION = 2
Score = Literal["final", "best"]


def quasi_random_exponents(k: int) -> np.ndarray:
    """The first ``k`` exponents ``u`` in [-1, 1] of the tuning trials.

    ``u_i = 2 * vdc(i) - 1`` for ``i = 1..k``, where ``vdc`` is the base-2 van der
    Corput sequence (bit-reversed binary fractions): 0, -0.5, 0.5, -0.75, 0.25,
    -0.25, 0.75, -0.875, ... It is deterministic, a prefix of it is a sub-budget
    (growing ``k`` keeps the earlier trials), the first ``2**m - 1`` points are the
    regular grid with spacing ``2 / 2**m``, and the first trial (``u = 0``) is the
    centre of the search space: the untuned ``lr0`` for a space symmetric around it,
    so tuning then never loses to the untuned baseline on the tuning seed.
    """
    if k < 1:
        raise ValueError(f"The tuning budget must be >= 1 trial, got {k}.")
    out = np.empty(k)
    for i in range(1, k + 1):
        x, denom, n = 0.0, 1.0, i
        while n:
            denom *= 2.0
            x += (n & 1) / denom
            n >>= 1
        out[i - 1] = 2.0 * x - 1.0
    return out


def _check_space(space: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in space)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"The search space must be finite exponents lo < hi, got {space}.")
    return lo, hi


def trial_exponents(k: int, space: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """The first ``k`` log10 exponents of the tuning trials in ``space = (lo, hi)``.

    The points ``u`` of :func:`quasi_random_exponents` in [-1, 1] mapped linearly onto
    ``[lo, hi]``: ``lo + (u + 1) / 2 * (hi - lo)``; the first is the centre.

    Raises:
        ValueError: ``k < 1``, or ``space`` is not finite with ``lo < hi``.
    """
    lo, hi = _check_space(space)
    return lo + (quasi_random_exponents(k) + 1.0) / 2.0 * (hi - lo)


def trial_lrs(
    base_lr: float, k: int, space: tuple[float, float] = (-1.0, 1.0)
) -> list[float]:
    """The ``k`` trial learning rates ``base_lr * 10 ** e`` (see :func:`trial_exponents`).

    Raises:
        ValueError: ``base_lr`` is not positive, ``k < 1`` or ``space`` is invalid.
    """
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}.")
    return [float(base_lr * 10.0**e) for e in trial_exponents(k, space)]


@dataclass(frozen=True)
class Trial:
    """One tuning trial.

    Attributes:
        u: Exponent in the search space: ``lr = base_lr * 10 ** u``.
        lr: The trial's ``lr0``.
        score: Selection score: the final or best validation metric, ``-inf`` if the
            run diverged or the metric is not finite.
        final_val_metric: Validation metric at the end of the run.
        best_val_metric: Best validation metric during the run.
        diverged: Whether the run diverged.
    """

    u: float
    lr: float
    score: float
    final_val_metric: float
    best_val_metric: float
    diverged: bool


@dataclass(frozen=True)
class TuningResult:
    """The outcome of tuning one baseline's ``lr0`` on one env.

    Attributes:
        env_id: The env id.
        baseline: Baseline name.
        base_lr: The ``lr0`` the trials scale (the baseline's untuned ``lr0``).
        budget: Number of trials.
        seed: Tuning seed.
        score: ``"final"`` or ``"best"`` validation metric.
        trials: The trials, in sequence order.
        best: Index of the winning trial (the first one on ties).
        space: The search space ``(lo, hi)``, log10 exponents relative to ``base_lr``.
    """

    env_id: str
    baseline: str
    base_lr: float
    budget: int
    seed: int
    score: str
    trials: tuple[Trial, ...]
    best: int
    space: tuple[float, float] = DEFAULT_SPACE

    @property
    def best_lr(self) -> float:
        """The tuned ``lr0``."""
        return self.trials[self.best].lr

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TuningResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            **{
                **d,
                "trials": tuple(Trial(**t) for t in d["trials"]),
                "space": tuple(float(x) for x in d.get("space", DEFAULT_SPACE)),
            }
        )


def _trial(u: float, lr: float, res: EpisodeResult, score: Score) -> Trial:
    vals = np.asarray(res.val_metric, dtype=float)
    best = float(np.nanmax(vals)) if np.isfinite(vals).any() else float("nan")
    value = res.final_val_metric if score == "final" else best
    ok = not res.diverged and math.isfinite(value)
    return Trial(
        u=u,
        lr=lr,
        score=float(value) if ok else -math.inf,
        final_val_metric=float(res.final_val_metric),
        best_val_metric=best,
        diverged=bool(res.diverged),
    )


def _task_of(env_id: str, env_kwargs: Mapping[str, Any]) -> Task:
    """The task a single-task ``env_id`` runs, built with ``env_kwargs["task_kwargs"]``.

    Raises:
        ValueError: ``env_id`` is a multi-task env (``lr0`` is tuned per task).
    """
    return task_for(env_id, **(env_kwargs.get("task_kwargs") or {}))


@dataclass(frozen=True)
class TuningPlan:
    """One tuning before its trials run: where, which ``lr0`` values, and its cache entry.

    Built by :func:`plan_lr_tuning` or :func:`plan_controller_tuning`. The trials are
    independent episodes (:meth:`trial_env_kwargs`, ``lrs``, ``seed``), so an evaluation
    may run them anywhere, in parallel; :meth:`finish` turns their results into the
    :class:`TuningResult` and caches it.

    Attributes:
        env_id: The env id.
        name: Baseline name.
        base_lr: The ``lr0`` the trials scale.
        budget: Number of trials.
        seed: Episode seed of every trial.
        score: ``"final"`` or ``"best"`` validation metric.
        space: The search space ``(lo, hi)``.
        env_kwargs: EnvConfig overrides of the trials (``eval_test`` left out).
        exponents: Each trial's exponent ``u``.
        lrs: Each trial's ``lr0``.
        cache: The JSON cache file, or ``None``.
    """

    env_id: str
    name: str
    base_lr: float
    budget: int
    seed: int
    score: str
    space: tuple[float, float]
    env_kwargs: Mapping[str, Any]
    exponents: tuple[float, ...]
    lrs: tuple[float, ...]
    cache: str | None = None

    def _store(self) -> _Cache | None:
        if self.cache is None:
            return None
        return _Cache(Path(self.cache), {
            "version": CACHE_VERSION,
            "env_id": self.env_id,
            "baseline": self.name,
            "budget": self.budget,
            "seed": self.seed,
            "score": self.score,
            "base_lr": self.base_lr,
            "space": list(self.space),
            "env_kwargs": dict(self.env_kwargs),
            # Trials are bit-reproducible for one torch version (lr_gym.reproducibility).
            "torch": torch_version(),
        })

    def cached(self) -> TuningResult | None:
        """The cached result of this tuning, if any."""
        store = self._store()
        return None if store is None else store.get()

    def trial_env_kwargs(self) -> dict[str, Any]:
        """The env overrides every trial runs with: tuning never evaluates the test split."""
        return {**self.env_kwargs, "eval_test": False}

    def finish(self, results: Sequence[EpisodeResult]) -> TuningResult:
        """The result of the trials' episodes (in ``lrs`` order), cached if there is a cache.

        Raises:
            ValueError: Not one result per trial.
        """
        if len(results) != self.budget:
            raise ValueError(f"expected {self.budget} trial results, got {len(results)}.")
        trials = [_trial(u, lr, res, self.score)  # type: ignore[arg-type]
                  for u, lr, res in zip(self.exponents, self.lrs, results, strict=True)]
        scores = [t.score for t in trials]
        best = int(np.argmax(scores))  # first maximum: ties go to the earlier trial
        if not math.isfinite(scores[best]):
            warnings.warn(
                f"All {self.budget} tuning trials of {self.name!r} on {self.env_id} diverged; "
                f"keeping lr0 = {trials[best].lr:g}.",
                stacklevel=2,
            )
        result = TuningResult(self.env_id, self.name, self.base_lr, self.budget, self.seed,
                              self.score, tuple(trials), best, self.space)
        store = self._store()
        if store is not None:
            store.put(result)
        return result


def plan_lr_tuning(
    env_id: str,
    *,
    name: str,
    budget: int = DEFAULT_BUDGET,
    seed: int = TUNING_SEED,
    eval_seeds: Iterable[int] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    score: Score = "final",
    base_lr: float | None = None,
    space: tuple[float, float] = DEFAULT_SPACE,
    cache: str | os.PathLike[str] | None = None,
) -> TuningPlan:
    """Checks a tuning's arguments and plans its trials (see :func:`tune_lr` for them).

    Raises:
        ValueError: As :func:`tune_lr`.
    """
    space = _check_space(space)
    if score not in ("final", "best"):
        raise ValueError(f"score must be 'final' or 'best', got {score!r}.")
    if seed in set(eval_seeds):
        raise ValueError(
            f"Tuning seed {seed} is also an evaluation seed; tune on a held-out seed "
            f"(default {TUNING_SEED})."
        )
    # Tuning never looks at test data: trials do not even evaluate it.
    kwargs = {k: v for k, v in (env_kwargs or {}).items() if k != "eval_test"}
    if base_lr is None:
        base_lr = float(_task_of(env_id, kwargs).lr)
    plan = TuningPlan(
        env_id, name, base_lr, budget, seed, score, space, kwargs,
        tuple(float(u) for u in trial_exponents(budget, space)),
        tuple(trial_lrs(base_lr, budget, space)),
        None if cache is None else str(cache),
    )
    plan._store()  # env_kwargs that cannot key the cache fail here, before any trial
    return plan


def plan_controller_tuning(
    env_id: str,
    controller: Controller,
    *,
    budget: int = DEFAULT_BUDGET,
    seed: int = TUNING_SEED,
    eval_seeds: Iterable[int] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    score: Score = "final",
) -> TuningPlan:
    """Plans the tuning of a controller over its own search space (see :func:`tune_controller`).

    Raises:
        TypeError: The controller is not tunable.
        ValueError: As :func:`tune_lr`.
    """
    if not controller.tunable:
        raise TypeError(f"Controller {controller.name!r} is not tunable; it runs untuned.")
    kwargs = dict(env_kwargs or {})
    task = _task_of(env_id, kwargs)
    return plan_lr_tuning(
        env_id,
        name=controller.name,
        budget=budget,
        seed=seed,
        eval_seeds=eval_seeds,
        env_kwargs=kwargs,
        score=score,
        base_lr=controller.default_lr(task),
        space=controller.search_space(task),
        cache=cache,
    )


def _run_plan(plan: TuningPlan, make: Callable[[float], Controller]) -> TuningResult:
    if (hit := plan.cached()) is not None:
        return hit
    results = [run_episode(plan.env_id, make(lr), plan.seed, env_kwargs=plan.trial_env_kwargs())
               for lr in plan.lrs]
    return plan.finish(results)


def tune_lr(
    env_id: str,
    make: Callable[[float], Controller],
    *,
    name: str,
    budget: int = DEFAULT_BUDGET,
    seed: int = TUNING_SEED,
    eval_seeds: Iterable[int] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    score: Score = "final",
    base_lr: float | None = None,
    space: tuple[float, float] = DEFAULT_SPACE,
    cache: str | os.PathLike[str] | None = None,
) -> TuningResult:
    """Tunes a baseline's ``lr0`` on ``env_id`` with ``budget`` quasi-random trials.

    Prefer :func:`tune_controller`, which takes ``base_lr`` and ``space`` from the
    controller itself.

    Args:
        env_id: A single-task ``lr_gym/`` env id.
        make: ``make(lr)`` builds the baseline controller running with ``lr0 = lr``.
        name: Baseline name (part of the cache key: one name, one baseline).
        budget: Number of trials (AlgoPerf: 5).
        seed: Episode seed of every trial; must not be an evaluation seed.
        eval_seeds: The evaluation seeds, checked against ``seed``.
        env_kwargs: EnvConfig overrides (and ``task_kwargs``) of the evaluation;
            ``eval_test`` is forced off.
        score: Rank trials by the ``"final"`` or ``"best"`` validation metric.
        base_lr: The ``lr0`` the trials scale; default the task's ``lr``.
        space: Search space ``(lo, hi)``: trials at ``base_lr * 10 ** e``, ``e`` in
            ``[lo, hi]``, the first at the centre.
        cache: JSON cache file, or ``None`` for no caching. Keyed by env id, name,
            budget, seed, score, base lr, search space and env overrides.

    Returns:
        The :class:`TuningResult`; ``result.best_lr`` is the tuned ``lr0``.

    Example:
        >>> res = tune_lr("lr_gym/Digits-MLP-v1", baseline.with_lr, name=baseline.name,
        ...               eval_seeds=range(10), cache="runs/tuning.json")  # doctest: +SKIP
        >>> controller = baseline.with_lr(res.best_lr)                      # doctest: +SKIP

    Raises:
        ValueError: If ``seed`` is an evaluation seed, the env is not single-task,
            ``space`` is not ``lo < hi`` or ``env_kwargs`` cannot be written to the cache.
    """
    plan = plan_lr_tuning(env_id, name=name, budget=budget, seed=seed, eval_seeds=eval_seeds,
                          env_kwargs=env_kwargs, score=score, base_lr=base_lr, space=space,
                          cache=cache)
    return _run_plan(plan, make)


def tune_controller(
    env_id: str,
    controller: Controller,
    *,
    budget: int = DEFAULT_BUDGET,
    seed: int = TUNING_SEED,
    eval_seeds: Iterable[int] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    score: Score = "final",
) -> TuningResult:
    """Tunes a controller over its own search space (the external-tuning track).

    The trials scale ``controller.default_lr(task)`` over ``controller.search_space(task)``
    and run ``controller.with_lr(lr)``; see :func:`tune_lr` for the arguments.

    Returns:
        The :class:`TuningResult`; ``controller.with_lr(result.best_lr)`` is the tuned
        controller.

    Raises:
        TypeError: The controller is not tunable.
        ValueError: As :func:`tune_lr`.
    """
    plan = plan_controller_tuning(env_id, controller, budget=budget, seed=seed,
                                  eval_seeds=eval_seeds, env_kwargs=env_kwargs, cache=cache,
                                  score=score)
    return _run_plan(plan, controller.with_lr)


class _Cache:
    """One entry of the JSON tuning cache ``{"version": 1, "entries": {key: result}}``."""

    def __init__(self, path: Path, key: Mapping[str, Any]) -> None:
        self.path = path
        try:
            self.key = json.dumps(key, sort_keys=True)
        except TypeError as err:
            raise ValueError(
                f"env_kwargs {key['env_kwargs']!r} are not JSON-serializable, so they "
                f"cannot key the tuning cache ({err}); pass plain values or cache=None."
            ) from err

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != CACHE_VERSION or not isinstance(data["entries"], dict):
                raise ValueError(f"expected version {CACHE_VERSION} with an 'entries' dict")
            return data["entries"]
        except (ValueError, KeyError, AttributeError, TypeError, RecursionError) as err:
            # RecursionError: a deeply nested file, which json cannot read either.
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            warnings.warn(
                f"Tuning cache {self.path} is unreadable ({err}); moved it to {aside} "
                "and rebuilding it.",
                stacklevel=3,
            )
            return {}

    def get(self) -> TuningResult | None:
        entry = self._load().get(self.key)
        if entry is None:
            return None
        try:
            return TuningResult.from_dict(entry)
        except (TypeError, KeyError, ValueError, AttributeError, RecursionError) as err:
            warnings.warn(
                f"Bad tuning-cache entry in {self.path} ({err}); re-tuning.", stacklevel=3
            )
            return None

    def put(self, result: TuningResult) -> None:
        entries = self._load()  # re-read: another evaluation may have added entries
        entries[self.key] = result.to_dict()
        # Atomic: readers never see a half-written file, and a failed write leaves none.
        write_text_atomic(self.path, json.dumps({"version": CACHE_VERSION, "entries": entries},
                                                indent=1))
