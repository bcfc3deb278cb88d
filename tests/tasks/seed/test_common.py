"""Tests for the shared seed-task plumbing in ``lr_gym.tasks.seed.common``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lr_gym.tasks.seed.common import fixed_subset


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 300), k=st.one_of(st.none(), st.integers(0, 400)),
       seed=st.integers(0, 2**31 - 1))
def test_fixed_subset_is_k_distinct_indices_and_repeats_per_seed(n, k, seed):
    idx = fixed_subset(n, k, seed)
    assert len(idx) == (n if k is None else min(k, n))
    assert len(set(idx)) == len(idx) and all(0 <= i < n for i in idx)
    assert idx == fixed_subset(n, k, seed)
    if k is None or k >= n:
        assert idx == list(range(n))


def test_fixed_subset_is_not_the_first_rows():
    idx = fixed_subset(1000, 100)
    assert max(idx) > 500 and sorted(idx) != list(range(100))
