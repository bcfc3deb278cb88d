"""Statistics for comparing LR controllers across tasks and seeds.

Two families, both from the literature a reviewer will check against:

* rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"),
  through the ``rliable`` package itself: interquartile mean with stratified-bootstrap
  confidence intervals (:func:`iqm_ci`) and the probability of improvement with its
  interval (:func:`probability_of_improvement_ci`).
* AlgoPerf (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms"):
  validation targets (:func:`algoperf_target`), time-to-target performance ratios
  (:func:`performance_ratios`), performance profiles (:func:`performance_profile`)
  and the benchmark score (:func:`profile_score`). Time to target itself is
  :func:`agents.evaluation.metrics.steps_to_target` (a miss is ``inf``).

Scores are per task a 1-D array over runs (seeds, or agents x seeds); tasks are keyed
by name. Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Scores = Mapping[str, Sequence[float] | np.ndarray]
"""Per-task scores over seeds: ``{task: [score of seed 0, seed 1, ...]}``."""

Times = Mapping[str, Mapping[str, float]]
"""Per-method, per-task times to target: ``{method: {task: steps}}`` (``inf``: miss)."""


# --------------------------------------------------------------------------- rliable


def score_matrix(scores: Scores, what: str = "scores") -> np.ndarray:
    """Scores as rliable lays them out: a ``(runs, tasks)`` matrix, tasks sorted.

    Raises:
        ValueError: No tasks, a task without runs, or tasks with different numbers of
            runs (rliable's stratified bootstrap needs a full matrix).
    """
    if not scores:
        raise ValueError(f"{what} is empty; pass {{task: [score per run, ...]}}.")
    cols = {t: np.asarray(v, dtype=float).ravel() for t, v in scores.items()}
    sizes = {t: c.size for t, c in cols.items()}
    if min(sizes.values()) == 0 or len(set(sizes.values())) != 1:
        raise ValueError(
            f"{what} needs the same number (>= 1) of runs on every task, got {sizes}."
        )
    return np.stack([cols[t] for t in sorted(cols)], axis=1)


def _interval(
    data: np.ndarray | tuple[np.ndarray, np.ndarray],
    func: Callable[..., Any],
    n_boot: int,
    alpha: float,
    seed: int,
) -> tuple[float, float, float]:
    from rliable import library as rly

    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    # rliable's stratified resampling draws from numpy's global RNG (its random_state
    # only seeds arch's own draws): seed it for reproducible intervals, then restore it.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            # arch deprecates RandomState in favour of Generators; rliable passes one.
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = rly.get_interval_estimates(
                {"m": data}, func, reps=n_boot, confidence_interval_size=1.0 - alpha,
                random_state=np.random.RandomState(seed),
            )
    finally:
        np.random.set_state(state)
    low, high = np.asarray(interval["m"], dtype=float).ravel()[:2]
    return float(np.ravel(point["m"])[0]), float(low), float(high)


def iqm_ci(
    scores: Scores, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Interquartile mean over all runs and tasks, with rliable's stratified-bootstrap CI.

    rliable's ``aggregate_iqm`` (the 25% trimmed mean of the pooled scores) and
    ``get_interval_estimates``: each replicate resamples the runs within every task
    with replacement; the interval is the percentile range of ``n_boot`` replicates.
    Scores are pooled across tasks, so they must be comparable (e.g. accuracies).

    Args:
        scores: ``{task: scores over runs}``, the same number of runs per task.
        n_boot: Bootstrap replicates.
        alpha: 1 - confidence level (0.05: a 95% interval).
        seed: Seed of the resampling; the same seed gives the same interval.

    Returns:
        ``(point, low, high)``.
    """
    from rliable import metrics

    return _interval(score_matrix(scores), lambda x: np.array([metrics.aggregate_iqm(x)]),
                     n_boot, alpha, seed)


def _weights(scores: Scores, weights: Mapping[str, float] | None) -> np.ndarray | None:
    """The tasks' weights in :func:`score_matrix`'s column order (None: equal)."""
    if weights is None:
        return None
    missing = sorted(set(scores) - set(weights))
    if missing:
        raise ValueError(f"weights lack tasks {missing}.")
    return np.array([float(weights[t]) for t in sorted(scores)])


def collapse_duplicates(scores: Scores, fingerprints: Mapping[str, Any]
                        ) -> tuple[dict[str, Any], dict[str, int]]:
    """Tasks whose runs are the same runs, merged into one task weighted by their count.

    Two tasks with equal ``fingerprints`` (e.g. the same episodes of an lr0-invariant
    method at five lr0 scales, or of a controller over Prodigy on an env and on its Adam
    variant, which Prodigy makes the same task) are one sample, not two: a stratified
    bootstrap that resamples them independently gives a CI too narrow. The merged task
    keeps the first name (sorted) and a weight equal to the number merged, so the
    weighted mean is the plain mean over all tasks.

    Returns:
        ``(scores, weights)`` for :func:`mean_ci` and :func:`probability_of_improvement_ci`.
    """
    out: dict[str, Any] = {}
    weights: dict[str, int] = {}
    first: dict[Any, str] = {}
    for t in sorted(scores):
        name = first.setdefault(fingerprints[t], t)
        if name == t:
            out[t] = scores[t]
        weights[name] = weights.get(name, 0) + 1
    return out, weights


def collapse_runs(columns: Mapping[str, Sequence[Mapping[str, Any]]],
                  *others: Mapping[str, Sequence[Mapping[str, Any]]],
                  ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, int]]:
    """Tasks of run records as scores, the tasks that hold the same runs merged once.

    Runs are the same runs when their seeds, scores and validation-loss trajectories
    are (e.g. an lr0-invariant method at five lr0 scales, or a rule over Prodigy on an
    env and on its Adam variant); see :func:`collapse_duplicates`. With ``others`` (the
    other side of a comparison), tasks merge only where both sides are the same runs.

    Args:
        columns: ``{task: run records}``, each with ``score`` (and ``seed``, ``val_loss``).
        *others: The compared method's ``{task: run records}`` (at most one is returned).

    Returns:
        ``(scores, other scores or None, weights)``.
    """
    def key(runs: Sequence[Mapping[str, Any]]) -> tuple:
        return tuple(sorted((r.get("seed"), r["score"], tuple(r.get("val_loss", ())))
                            for r in runs))

    keys = {t: (key(v), *(key(o[t]) for o in others)) for t, v in columns.items()}
    scores, weights = collapse_duplicates({t: [r["score"] for r in v]
                                           for t, v in columns.items()}, keys)
    other = {t: [r["score"] for r in others[0][t]] for t in scores} if others else None
    return scores, other, weights


def mean_ci(
    scores: Scores, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> tuple[float, float, float]:
    """Mean over all runs and tasks, with the same stratified-bootstrap CI as :func:`iqm_ci`.

    For scores already normalised per task (e.g. to the best result on the task), where
    the mean is the area under a sensitivity curve. With ``weights`` (per task), the
    weighted mean of the task means (see :func:`collapse_duplicates`).

    Returns:
        ``(point, low, high)``.
    """
    w = _weights(scores, weights)
    if w is None:
        return _interval(score_matrix(scores), lambda x: np.array([float(np.mean(x))]),
                         n_boot, alpha, seed)
    return _interval(score_matrix(scores),
                     lambda x: np.array([float(np.average(np.mean(x, axis=0), weights=w))]),
                     n_boot, alpha, seed)


def _task_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per task (column), P(X > Y) over all pairs of runs, ties 1/2 (rliable's statistic)."""
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return gt + 0.5 * eq


def probability_of_improvement_ci(
    x_scores: Scores, y_scores: Scores, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> tuple[float, float, float]:
    """Probability that X beats Y on a random task (rliable), with its CI.

    Per task, ``P(X > Y)`` is the Mann-Whitney statistic over all (X run, Y run) pairs,
    ties counting 1/2; the result averages the tasks (weighted by ``weights``, see
    :func:`collapse_duplicates`). The interval resamples X's and Y's runs independently
    within each task (rliable's stratified independent bootstrap). X and Y may have
    different numbers of runs (e.g. X pools several agents), but must cover the same
    tasks.

    Returns:
        ``(point, low, high)``; 0.5 means no difference.
    """
    from rliable import metrics

    if set(x_scores) != set(y_scores):
        raise ValueError(
            f"x_scores and y_scores must cover the same tasks; only in x: "
            f"{sorted(set(x_scores) - set(y_scores))}, only in y: "
            f"{sorted(set(y_scores) - set(x_scores))}."
        )
    data = (score_matrix(x_scores, "x_scores"), score_matrix(y_scores, "y_scores"))
    w = _weights(x_scores, weights)
    if w is None:
        return _interval(data, metrics.probability_of_improvement, n_boot, alpha, seed)
    return _interval(data, lambda x, y: np.array([np.average(_task_improvement(x, y),
                                                             weights=w)]), n_boot, alpha, seed)


# --------------------------------------------------------------------------- AlgoPerf


def algoperf_target(best_val_per_seed: Sequence[float] | np.ndarray) -> float:
    """AlgoPerf validation target: the median over seeds of the best validation metric.

    ``best_val_per_seed`` holds, for each seed of the tuned reference method, the
    best validation metric its run reached (higher is better). A non-finite value
    (a diverged run) counts as the worst possible, ``-inf``.

    Raises:
        ValueError: If there are no seeds or the median itself is not finite.
    """
    a = np.asarray(best_val_per_seed, dtype=float).ravel()
    if a.size == 0:
        raise ValueError("algoperf_target needs the best validation metric of >= 1 seed.")
    a = np.where(np.isfinite(a), a, -np.inf)
    target = float(np.median(a))
    if not math.isfinite(target):
        raise ValueError(
            f"Most reference runs diverged ({a.tolist()}); no finite target. "
            "Tune the reference method first."
        )
    return target


def performance_ratios(times: Times) -> dict[str, dict[str, float]]:
    """Per task, each method's time to target over the fastest method's time.

    ``r[m][task] = times[m][task] / min over methods of times[.][task]``, so the
    fastest method has ratio 1. A miss (``inf``) stays ``inf``, also when every
    method missed a task.

    Args:
        times: ``{method: {task: time to target}}``, every method on the same tasks.
            Times are steps (or seconds) from :func:`agents.evaluation.metrics.steps_to_target`.

    Raises:
        ValueError: On missing tasks, negative or NaN times, or a fastest time of 0
            (the target was met before training: it is too easy).
    """
    if not times:
        raise ValueError("times is empty; pass {method: {task: time to target}}.")
    methods = sorted(times)
    tasks = sorted(times[methods[0]])
    for m in methods:
        if sorted(times[m]) != tasks:
            raise ValueError(
                f"Method {m!r} has tasks {sorted(times[m])}, but {methods[0]!r} has {tasks}; "
                "every method needs a time (inf for a miss) on every task."
            )
        for t, v in times[m].items():
            if math.isnan(v) or v < 0:
                raise ValueError(f"times[{m!r}][{t!r}] = {v}; times must be >= 0 or inf.")
    ratios: dict[str, dict[str, float]] = {m: {} for m in methods}
    for t in tasks:
        best = min(float(times[m][t]) for m in methods)
        if best == 0:
            raise ValueError(
                f"On task {t!r} a method reached the target at time 0 (before training); "
                "the target is too easy. Use a higher target."
            )
        for m in methods:
            ratios[m][t] = float(times[m][t]) / best if math.isfinite(best) else math.inf
    return ratios


def performance_profile(
    ratios: Mapping[str, Mapping[str, float]], taus: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Performance profile ``rho_m(tau)``: the fraction of tasks with ratio <= tau.

    Args:
        ratios: Output of :func:`performance_ratios`.
        taus: Points to evaluate the profile at (e.g. ``np.linspace(1, 4, 100)``).

    Returns:
        ``{method: array of rho(tau) for each tau}``.
    """
    tau = np.asarray(taus, dtype=float)
    out = {}
    for m, per_task in ratios.items():
        if not per_task:
            raise ValueError(f"ratios[{m!r}] has no tasks.")
        r = np.asarray(list(per_task.values()), dtype=float)
        out[m] = (r[:, None] <= tau[None, :]).mean(axis=0)
    return out


def profile_score(
    ratios: Mapping[str, Mapping[str, float]], r_max: float = 4.0
) -> dict[str, float]:
    """AlgoPerf benchmark score: the normalized area under the performance profile.

    ``score_m = 1 / (r_max - 1) * integral from 1 to r_max of rho_m(tau) d tau``, in
    [0, 1]. The profile is a step function, so the integral is exact: a task with
    ratio ``r`` adds ``(r_max - r) / n_tasks`` if ``r <= r_max`` and nothing
    otherwise, i.e. ``score = mean over tasks of max(0, r_max - r) / (r_max - 1)``.
    1 means fastest on every task; 0 means never within ``r_max`` of the fastest.
    """
    if not r_max > 1.0:
        raise ValueError(f"r_max must be > 1, got {r_max}.")
    out = {}
    for m, per_task in ratios.items():
        if not per_task:
            raise ValueError(f"ratios[{m!r}] has no tasks.")
        r = np.asarray(list(per_task.values()), dtype=float)
        if np.any(r < 1):
            raise ValueError(f"ratios[{m!r}] has values < 1; pass performance_ratios output.")
        out[m] = float(np.mean(np.clip(r_max - r, 0.0, None)) / (r_max - 1.0))
    return out


# --------------------------------------------------------------------------- report helpers


def mean_std(x: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise ValueError("mean_std of an empty array.")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".4g"
) -> str:
    """A GitHub-markdown table; floats are formatted with ``floatfmt``."""
    if any(len(r) != len(headers) for r in rows):
        raise ValueError(f"Every row needs {len(headers)} cells (one per header).")

    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
