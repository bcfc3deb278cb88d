from __future__ import annotations

import math
import re

import numpy as np
import pytest

from agents.evaluation.stats import (
    algoperf_target,
    collapse_duplicates,
    iqm_ci,
    markdown_table,
    mean_ci,
    mean_std,
    performance_profile,
    performance_ratios,
    probability_of_improvement_ci,
    profile_score,
    score_matrix,
)

INF = math.inf


# ----------------------------------------------------------------------------- rliable
# The home-made IQM / bootstrap / P(improvement) were replaced by rliable itself; these
# tests pin rliable's numbers on fixed arrays against hand values and scipy.


def test_score_matrix_layout_and_errors():
    m = score_matrix({"b": [3, 4], "a": [1, 2]})
    np.testing.assert_array_equal(m, [[1, 3], [2, 4]])  # (runs, tasks), tasks sorted
    with pytest.raises(ValueError, match="empty"):
        score_matrix({})
    with pytest.raises(ValueError, match="same number"):
        score_matrix({"a": [1, 2], "b": [1]})


def test_iqm_ci_point_is_trim_mean_and_interval_deterministic():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    table = {"a": rng.normal(size=8) ** 3, "b": rng.normal(size=8) + 2.0}
    point, low, high = iqm_ci(table, n_boot=400)
    pooled = np.concatenate([table["a"], table["b"]])
    assert point == pytest.approx(stats.trim_mean(pooled, 0.25))
    assert low <= point <= high and low < high
    assert iqm_ci(table, n_boot=400) == (point, low, high)  # seeded
    # hand value: n=8 pooled, drop 2 each end -> mean(3, 4, 5, 6)
    assert iqm_ci({"t": [1, 2, 3, 4, 5, 6, 7, 8]}, n_boot=50)[0] == 4.5
    assert iqm_ci({"t": [-1000, 2, 3, 4, 5, 6, 7, 1000]}, n_boot=50)[0] == 4.5


def test_iqm_ci_is_stratified():
    # Each task keeps its runs in every replicate: with constant tasks the interval
    # collapses to the point.
    assert iqm_ci({"a": [1.0] * 4, "b": [3.0] * 4}, n_boot=200) == (2.0, 2.0, 2.0)


def test_mean_ci_point_is_the_mean_and_interval_stratified():
    table = {"a": [0.1, 0.4, 0.2, 0.9], "b": [1.0, 0.8, 0.6, 0.7]}
    point, low, high = mean_ci(table, n_boot=300)
    assert point == pytest.approx(np.mean([0.1, 0.4, 0.2, 0.9, 1.0, 0.8, 0.6, 0.7]))
    assert low < point < high
    assert mean_ci(table, n_boot=300, seed=1) != (point, low, high)  # the seed drives it
    assert mean_ci(table, n_boot=300, alpha=0.5)[1] > low  # a narrower interval
    assert mean_ci({"a": [1.0] * 3, "b": [0.0] * 3}, n_boot=50) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("fn", [iqm_ci, mean_ci])
def test_documented_defaults_are_2000_replicates_95_percent_seed_0(fn):
    rng = np.random.default_rng(0)
    table = {"a": rng.normal(size=40), "b": rng.normal(size=40) + 1.0}  # continuous scores
    assert fn(table) == fn(table, n_boot=2000, alpha=0.05, seed=0)
    assert fn(table) != fn(table, n_boot=1999, alpha=0.05, seed=0)


def test_probability_of_improvement_hand_cases():
    def poi(x, y):
        return probability_of_improvement_ci(x, y, n_boot=50)[0]

    assert poi({"t": [3, 4]}, {"t": [1, 2]}) == 1.0
    assert poi({"t": [1, 2]}, {"t": [3, 4]}) == 0.0
    assert poi({"t": [1, 1]}, {"t": [1, 1, 1]}) == 0.5  # ties count 1/2
    assert poi({"t": [2, 3]}, {"t": [2]}) == 0.75
    # averaged over tasks: u disjoint above (1), v disjoint below (0)
    assert poi({"u": [5, 6], "v": [0, 1]}, {"u": [1, 2], "v": [5, 6]}) == 0.5
    with pytest.raises(ValueError, match="same tasks"):
        poi({"t": [1]}, {"s": [1]})


def test_probability_of_improvement_matches_mann_whitney_and_has_ci():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 7).astype(float), rng.integers(0, 5, 9).astype(float)
    u = stats.mannwhitneyu(a, b).statistic
    point, low, high = probability_of_improvement_ci({"t": a}, {"t": b}, n_boot=500)
    assert point == pytest.approx(u / (7 * 9))
    assert 0.0 <= low <= point <= high <= 1.0 and low < high


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
    from agents.evaluation.metrics import steps_to_target

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


# ------------------------------------------------------------------ errors, by their words
# Each message names the problem and the fix; these pin them (and the edge values).
def _raises(fn, message, *args, **kwargs):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fn(*args, **kwargs)


def test_interval_arguments_are_checked_at_their_edges():
    table = {"a": [0.1, 0.2, 0.3]}
    assert iqm_ci(table, n_boot=1)[0] == pytest.approx(0.2)  # one replicate is allowed
    _raises(iqm_ci, "n_boot must be >= 1, got 0.", table, n_boot=0)
    for alpha in (0.0, 1.0, 1.5):
        _raises(iqm_ci, f"alpha must be in (0, 1), got {alpha}.", table, alpha=alpha)


def test_probability_of_improvement_defaults_seed_and_argument_names():
    rng = np.random.default_rng(1)
    x = {"a": rng.normal(size=30), "b": rng.normal(size=30)}
    y = {"a": rng.normal(size=30) + 0.2, "b": rng.normal(size=30)}
    assert probability_of_improvement_ci(x, y) == probability_of_improvement_ci(
        x, y, n_boot=2000, alpha=0.05, seed=0)
    assert probability_of_improvement_ci(x, y, n_boot=300, seed=1) != (
        probability_of_improvement_ci(x, y, n_boot=300, seed=0))
    ragged = {"a": [1.0, 2.0], "b": [1.0]}
    with pytest.raises(ValueError, match="^x_scores"):
        probability_of_improvement_ci(ragged, {"a": [1.0], "b": [1.0]})
    with pytest.raises(ValueError, match="^y_scores"):
        probability_of_improvement_ci({"a": [1.0], "b": [1.0]}, ragged)


def test_algoperf_target_messages():
    _raises(algoperf_target, "algoperf_target needs the best validation metric of >= 1 seed.",
            [])
    _raises(algoperf_target, "Most reference runs diverged ([0.5, -inf, -inf]); no finite "
            "target. Tune the reference method first.", [0.5, float("nan"), float("inf") * -1])


def test_performance_ratio_and_profile_messages():
    _raises(performance_ratios, "times is empty; pass {method: {task: time to target}}.", {})
    _raises(performance_ratios, "Method 'c' has tasks ['t1'], but 'a' has ['t1', 't2']; every "
            "method needs a time (inf for a miss) on every task.",
            {"b": {"t1": 1.0, "t2": 2.0}, "a": {"t1": 1.0, "t2": 2.0}, "c": {"t1": 1.0}})
    _raises(performance_ratios, "On task 't' a method reached the target at time 0 (before "
            "training); the target is too easy. Use a higher target.",
            {"a": {"t": 0.0}, "b": {"t": 3.0}})
    _raises(performance_profile, "ratios['a'] has no tasks.", {"a": {}}, [1.0])
    _raises(profile_score, "ratios['a'] has no tasks.", {"a": {}})
    _raises(profile_score, "ratios['a'] has values < 1; pass performance_ratios output.",
            {"a": {"t": 0.5}})


def test_mean_std_and_table_formatting_edges():
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2.0)))  # two values: ddof=1
    _raises(mean_std, "mean_std of an empty array.", [])
    assert "| 1.234e-05 |" in markdown_table(["x"], [[1.2344e-5]])  # ".4g": lower-case e


def test_duplicate_tasks_merge_into_one_weighted_task():
    scores = {"a|x1": [0.1, 0.2], "a|x10": [0.1, 0.2], "b|x1": [0.5, 0.9]}
    merged, weights = collapse_duplicates(scores, {"a|x1": "A", "a|x10": "A", "b|x1": "B"})
    assert merged == {"a|x1": [0.1, 0.2], "b|x1": [0.5, 0.9]}
    assert weights == {"a|x1": 2, "b|x1": 1}
    # The weighted point is the plain mean over every task; the CI no longer counts the
    # copy as a sample of its own, so it is wider.
    point, low, high = mean_ci(merged, n_boot=400, weights=weights)
    copies = mean_ci(scores, n_boot=400)
    assert point == pytest.approx(copies[0])
    assert high - low > copies[2] - copies[1]
    with pytest.raises(ValueError, match="weights lack"):
        mean_ci(merged, weights={"a|x1": 1})


def test_weighted_probability_of_improvement_matches_rliable_with_unit_weights():
    rng = np.random.default_rng(3)
    x = {t: rng.normal(size=5) for t in "abc"}
    y = {t: rng.normal(size=4) for t in "abc"}
    plain = probability_of_improvement_ci(x, y, n_boot=300)
    ones = probability_of_improvement_ci(x, y, n_boot=300, weights=dict.fromkeys("abc", 1))
    assert ones == pytest.approx(plain)
    heavy = probability_of_improvement_ci(x, y, n_boot=300, weights={"a": 3, "b": 1, "c": 1})
    per_task = [probability_of_improvement_ci({t: x[t]}, {t: y[t]}, n_boot=10)[0] for t in "abc"]
    assert heavy[0] == pytest.approx(np.average(per_task, weights=[3, 1, 1]))
