from __future__ import annotations

import math

import numpy as np
import pytest

from agents.stats import (
    algoperf_target,
    iqm,
    markdown_table,
    mean_std,
    performance_profile,
    performance_ratios,
    probability_of_improvement,
    probability_of_improvement_ci,
    profile_score,
    stratified_bootstrap_ci,
)

INF = math.inf


# ----------------------------------------------------------------------------- IQM


def test_iqm_known_arrays():
    # n=8: drop 2 from each end -> mean(3, 4, 5, 6)
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5
    # outliers in the tails do not matter
    assert iqm([-1000, 2, 3, 4, 5, 6, 7, 1000]) == 4.5
    # n=4: drop 1 each end; n=3: int(0.75) = 0, plain mean
    assert iqm([10, 1, 3, 2]) == 2.5
    assert iqm([1, 2, 9]) == 4.0
    assert iqm([7.0]) == 7.0
    # 2-D input is pooled
    assert iqm([[1, 2, 3, 4], [5, 6, 7, 8]]) == 4.5


def test_iqm_matches_scipy_trim_mean():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in range(1, 23):
        x = rng.normal(size=n) ** 3
        assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))
    m = rng.normal(size=(5, 11))
    np.testing.assert_allclose(iqm(m, axis=1), stats.trim_mean(m, 0.25, axis=1))
    np.testing.assert_allclose(iqm(m, axis=0), stats.trim_mean(m, 0.25, axis=0))


def test_iqm_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        iqm([])


# ----------------------------------------------------------------------------- bootstrap


def _table(n_seeds: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": 0.8 + 0.05 * rng.normal(size=n_seeds), "b": 0.6 + 0.05 * rng.normal(size=n_seeds)}


def test_bootstrap_ci_contains_point_and_is_deterministic():
    scores = _table(10)
    point, low, high = stratified_bootstrap_ci(scores, n_boot=500, seed=1)
    assert point == pytest.approx(iqm(np.concatenate([scores["a"], scores["b"]])))
    assert low < point < high
    assert stratified_bootstrap_ci(scores, n_boot=500, seed=1) == (point, low, high)
    assert stratified_bootstrap_ci(scores, n_boot=500, seed=2) != (point, low, high)


def test_bootstrap_ci_shrinks_with_more_seeds():
    widths = []
    for n in (5, 20, 80):
        _, low, high = stratified_bootstrap_ci(_table(n), n_boot=1000, seed=0)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0


def test_bootstrap_is_stratified():
    # Task "a" is always 1, task "b" always 0: resampling within tasks keeps the
    # pooled mean exactly 0.5; an unstratified bootstrap would not.
    scores = {"a": [1.0, 1.0, 1.0], "b": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}
    point, low, high = stratified_bootstrap_ci(scores, statistic=np.mean, n_boot=300)
    assert point == low == high == pytest.approx(0.3)


def test_bootstrap_constant_scores_and_bad_input():
    assert stratified_bootstrap_ci({"t": [0.5] * 4}) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="no seeds"):
        stratified_bootstrap_ci({"t": []})
    with pytest.raises(ValueError, match="alpha"):
        stratified_bootstrap_ci({"t": [1.0, 2.0]}, alpha=1.5)


# ----------------------------------------------------------------------------- P(improvement)


def test_probability_of_improvement_hand_cases():
    # all greater -> 1; all smaller -> 0
    assert probability_of_improvement({"t": [3, 4]}, {"t": [1, 2]}) == 1.0
    assert probability_of_improvement({"t": [1, 2]}, {"t": [3, 4]}) == 0.0
    # all ties -> 0.5
    assert probability_of_improvement({"t": [1, 1]}, {"t": [1, 1, 1]}) == 0.5
    # x=[1,3], y=[2]: pairs (1>2 no, 3>2 yes) -> 0.5; with a tie x=[2,3], y=[2] -> 0.75
    assert probability_of_improvement({"t": [1, 3]}, {"t": [2]}) == 0.5
    assert probability_of_improvement({"t": [2, 3]}, {"t": [2]}) == 0.75
    # averaged over tasks: task u disjoint above (1), task v disjoint below (0)
    x = {"u": [5, 6], "v": [0, 1]}
    y = {"u": [1, 2], "v": [5, 6]}
    assert probability_of_improvement(x, y) == 0.5


def test_probability_of_improvement_paired_and_scipy():
    x, y = {"t": [1.0, 5.0, 3.0]}, {"t": [2.0, 4.0, 3.0]}
    # paired: (1<2) 0, (5>4) 1, tie 0.5 -> 0.5; all pairs: 9 pairs
    assert probability_of_improvement(x, y, paired=True) == 0.5
    # pairs: 1 vs (2,4,3): 0; 5 vs all: 3; 3 vs (2,4,3): 1 + 0.5 -> 4.5 / 9
    assert probability_of_improvement(x, y) == 0.5
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 7).astype(float), rng.integers(0, 5, 9).astype(float)
    u = stats.mannwhitneyu(a, b).statistic
    assert probability_of_improvement({"t": a}, {"t": b}) == pytest.approx(u / (7 * 9))
    with pytest.raises(ValueError, match="paired"):
        probability_of_improvement({"t": a}, {"t": b}, paired=True)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement({"t": a}, {"s": b})


def test_probability_of_improvement_ci():
    rng = np.random.default_rng(0)
    x = {"a": 0.82 + 0.02 * rng.normal(size=8), "b": 0.61 + 0.02 * rng.normal(size=8)}
    y = {"a": 0.80 + 0.02 * rng.normal(size=8), "b": 0.60 + 0.02 * rng.normal(size=8)}
    for paired in (False, True):
        point, low, high = probability_of_improvement_ci(x, y, paired=paired, n_boot=500)
        assert point == probability_of_improvement(x, y, paired=paired)
        assert 0.0 <= low <= point <= high <= 1.0 and low < high
    assert probability_of_improvement_ci({"t": [3, 4]}, {"t": [1, 2]}) == (1.0, 1.0, 1.0)


# ----------------------------------------------------------------------------- AlgoPerf

# 3 methods x 2 tasks, B misses task t2.
TIMES = {
    "A": {"t1": 100.0, "t2": 200.0},
    "B": {"t1": 200.0, "t2": INF},
    "C": {"t1": 150.0, "t2": 100.0},
}


def test_performance_ratios_hand_table():
    assert performance_ratios(TIMES) == {
        "A": {"t1": 1.0, "t2": 2.0},
        "B": {"t1": 2.0, "t2": INF},
        "C": {"t1": 1.5, "t2": 1.0},
    }
    # everybody missed: inf for all
    r = performance_ratios({"A": {"t": INF}, "B": {"t": INF}})
    assert r == {"A": {"t": INF}, "B": {"t": INF}}


def test_performance_ratios_bad_input():
    with pytest.raises(ValueError, match="every task"):
        performance_ratios({"A": {"t1": 1.0}, "B": {"t2": 1.0}})
    with pytest.raises(ValueError, match="too easy"):
        performance_ratios({"A": {"t": 0.0}, "B": {"t": 3.0}})
    with pytest.raises(ValueError, match=">= 0 or inf"):
        performance_ratios({"A": {"t": float("nan")}})


def test_performance_profile_hand_table():
    prof = performance_profile(performance_ratios(TIMES), [1.0, 1.5, 1.99, 2.0, 4.0, 1e9])
    np.testing.assert_array_equal(prof["A"], [0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(prof["B"], [0.0, 0.0, 0.0, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(prof["C"], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_profile_score_exact_hand_values():
    score = profile_score(performance_ratios(TIMES), r_max=4.0)
    # A: ratios 1, 2 -> ((4-1) + (4-2)) / 2 / 3 = 5/6
    # B: ratios 2, inf -> ((4-2) + 0) / 2 / 3 = 1/3
    # C: ratios 1.5, 1 -> ((4-1.5) + (4-1)) / 2 / 3 = 11/12
    assert score["A"] == pytest.approx(5 / 6, abs=1e-12)
    assert score["B"] == pytest.approx(1 / 3, abs=1e-12)
    assert score["C"] == pytest.approx(11 / 12, abs=1e-12)
    # the same as a fine numerical integral of the profile
    taus = np.linspace(1.0, 4.0, 300_001)
    prof = performance_profile(performance_ratios(TIMES), taus)
    for m in TIMES:
        assert score[m] == pytest.approx(np.trapezoid(prof[m], taus) / 3.0, abs=1e-4)
    # ratios beyond r_max count nothing; r_max = 2 -> A: (1 + 0)/2 = 0.5
    assert profile_score(performance_ratios(TIMES), r_max=2.0)["A"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="r_max"):
        profile_score(performance_ratios(TIMES), r_max=1.0)


def test_steps_to_target_feeds_ratios():
    from lr_gym.metrics import steps_to_target

    steps = [0, 10, 20, 30]
    target = algoperf_target([0.9, 0.8, 0.85])
    assert target == 0.85
    times = {
        "fast": {"t": steps_to_target(steps, [0.1, 0.86, 0.9, 0.9], target)},
        "slow": {"t": steps_to_target(steps, [0.1, 0.5, 0.7, 0.85], target)},
        "miss": {"t": steps_to_target(steps, [0.1, 0.5, 0.7, 0.8], target)},
    }
    assert profile_score(performance_ratios(times)) == pytest.approx(
        {"fast": 1.0, "slow": 1 / 3, "miss": 0.0}
    )


def test_algoperf_target_median():
    assert algoperf_target([0.9, 0.7, 0.8]) == 0.8
    assert algoperf_target([0.9, 0.7, 0.8, 1.0]) == pytest.approx(0.85)
    # a diverged seed (NaN) counts as the worst
    assert algoperf_target([0.9, float("nan"), 0.8]) == 0.8
    with pytest.raises(ValueError, match="no finite target"):
        algoperf_target([float("nan"), float("nan"), 0.8])
    with pytest.raises(ValueError, match=">= 1 seed"):
        algoperf_target([])


# ----------------------------------------------------------------------------- helpers


def test_mean_std_and_markdown_table():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    table = markdown_table(["method", "IQM"], [["ppo", 0.91234], ["cosine", np.float32(0.5)]])
    assert table.splitlines() == [
        "| method | IQM |",
        "|---|---|",
        "| ppo | 0.9123 |",
        "| cosine | 0.5 |",
    ]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [[1]])
