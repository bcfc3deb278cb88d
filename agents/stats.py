"""Statistics for comparing LR controllers across tasks and seeds.

Two families, both from the literature a reviewer will check against:

* rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"):
  interquartile mean (:func:`iqm`), stratified-bootstrap confidence intervals
  (:func:`stratified_bootstrap_ci`) and the probability of improvement
  (:func:`probability_of_improvement`).
* AlgoPerf (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms"):
  validation targets (:func:`algoperf_target`), time-to-target performance ratios
  (:func:`performance_ratios`), performance profiles (:func:`performance_profile`)
  and the benchmark score (:func:`profile_score`). Time to target itself is
  :func:`lr_gym.metrics.steps_to_target` (a miss is ``inf``).

Scores are per task a 1-D array over seeds; tasks are keyed by name. Everything is
numpy only and deterministic given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Scores = Mapping[str, Sequence[float] | np.ndarray]
"""Per-task scores over seeds: ``{task: [score of seed 0, seed 1, ...]}``."""

Times = Mapping[str, Mapping[str, float]]
"""Per-method, per-task times to target: ``{method: {task: steps}}`` (``inf``: miss)."""


# --------------------------------------------------------------------------- rliable


def iqm(x: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values.

    The same as ``scipy.stats.trim_mean(x, 0.25, axis)`` (rliable's definition):
    sort, drop ``floor(0.25 * n)`` values from each end, average the rest. With
    ``axis=None`` the values are flattened (pooled over tasks and seeds).

    Raises:
        ValueError: On an empty input.
    """
    a = np.asarray(x, dtype=float)
    if axis is None:
        a, axis = a.ravel(), 0
    n = a.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array; pass at least one score.")
    cut = int(0.25 * n)
    a = np.sort(a, axis=axis)
    middle = np.take(a, np.arange(cut, n - cut), axis=axis)
    out = middle.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def _as_tasks(scores: Scores, what: str = "scores") -> dict[str, np.ndarray]:
    if not scores:
        raise ValueError(f"{what} is empty; pass {{task: [score per seed, ...]}}.")
    out = {}
    for task, v in scores.items():
        a = np.asarray(v, dtype=float).ravel()
        if a.size == 0:
            raise ValueError(f"{what}[{task!r}] has no seeds; every task needs at least one.")
        out[task] = a
    return out


def _pool(scores: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([scores[t] for t in sorted(scores)])


def _percentile_interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def stratified_bootstrap_ci(
    scores: Scores,
    statistic: Callable[[np.ndarray], float] = iqm,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and stratified-bootstrap percentile interval of an aggregate.

    rliable's stratified bootstrap: each bootstrap replicate resamples the seeds
    *within every task* with replacement (so each task keeps its number of seeds and
    its weight in the aggregate), pools the resampled scores of all tasks into one
    1-D array and applies ``statistic`` to it. The interval is the
    ``[alpha/2, 1 - alpha/2]`` percentile range of the ``n_boot`` replicates.

    Scores should be comparable across tasks (normalized, e.g. the validation
    metric in [0, 1] or a score relative to a reference), since they are pooled.

    Args:
        scores: ``{task: scores over seeds}``.
        statistic: Aggregate of a pooled 1-D array (:func:`iqm`, ``np.mean``,
            ``np.median``...).
        n_boot: Number of bootstrap replicates.
        alpha: 1 - confidence level (0.05: a 95% interval).
        seed: Seed of the resampling; the same seed gives the same interval.

    Returns:
        ``(point, low, high)``: the statistic on the observed scores and the interval.
    """
    tasks = _as_tasks(scores)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    rng = np.random.default_rng(seed)
    # (n_boot, seeds of task) resampled per task, concatenated along the seed axis.
    boot = np.concatenate(
        [
            tasks[t][rng.integers(0, tasks[t].size, size=(n_boot, tasks[t].size))]
            for t in sorted(tasks)
        ],
        axis=1,
    )
    samples = np.array([statistic(row) for row in boot], dtype=float)
    low, high = _percentile_interval(samples, alpha)
    return float(statistic(_pool(tasks))), low, high


def _prob_greater(x: np.ndarray, y: np.ndarray, paired: bool) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) over the last axis (all pairs, or paired seeds)."""
    if paired:
        return ((x > y) + 0.5 * (x == y)).mean(axis=-1)
    gt = x[..., :, None] > y[..., None, :]
    eq = x[..., :, None] == y[..., None, :]
    return (gt + 0.5 * eq).mean(axis=(-2, -1))


def _check_poi_inputs(
    x_scores: Scores, y_scores: Scores, paired: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, y = _as_tasks(x_scores, "x_scores"), _as_tasks(y_scores, "y_scores")
    if set(x) != set(y):
        raise ValueError(
            f"x_scores and y_scores must cover the same tasks; only in x: "
            f"{sorted(set(x) - set(y))}, only in y: {sorted(set(y) - set(x))}."
        )
    if paired:
        for t in x:
            if x[t].size != y[t].size:
                raise ValueError(
                    f"paired=True needs the same seeds for both; task {t!r} has "
                    f"{x[t].size} vs {y[t].size}. Use paired=False for all seed pairs."
                )
    return x, y


def probability_of_improvement(
    x_scores: Scores, y_scores: Scores, *, paired: bool = False
) -> float:
    """Probability that method X beats method Y on a random task (rliable).

    Per task, ``P(X > Y)`` is the Mann-Whitney statistic ``U / (n m)``: the fraction
    of (X seed, Y seed) pairs where X scores higher, ties counting 1/2. The result is
    the average over tasks. With ``paired=True`` only runs on the same seed are
    compared (seed ``i`` of X with seed ``i`` of Y).

    Args:
        x_scores: ``{task: scores of X over seeds}`` (higher is better).
        y_scores: ``{task: scores of Y over seeds}``, the same tasks.
        paired: Compare seed ``i`` with seed ``i`` only.

    Returns:
        A probability in [0, 1]; 0.5 means no difference.
    """
    x, y = _check_poi_inputs(x_scores, y_scores, paired)
    return float(np.mean([_prob_greater(x[t], y[t], paired) for t in sorted(x)]))


def probability_of_improvement_ci(
    x_scores: Scores,
    y_scores: Scores,
    *,
    paired: bool = False,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """:func:`probability_of_improvement` with a stratified-bootstrap interval.

    Seeds are resampled within each task, independently for X and Y (rliable's
    stratified independent bootstrap), or jointly with ``paired=True`` so pairs stay
    pairs.

    Returns:
        ``(point, low, high)``.
    """
    x, y = _check_poi_inputs(x_scores, y_scores, paired)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    rng = np.random.default_rng(seed)
    per_task = []
    for t in sorted(x):
        ix = rng.integers(0, x[t].size, size=(n_boot, x[t].size))
        iy = ix if paired else rng.integers(0, y[t].size, size=(n_boot, y[t].size))
        per_task.append(_prob_greater(x[t][ix], y[t][iy], paired))
    low, high = _percentile_interval(np.mean(per_task, axis=0), alpha)
    return probability_of_improvement(x, y, paired=paired), low, high


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
            Times are steps (or seconds) from :func:`lr_gym.metrics.steps_to_target`.

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
