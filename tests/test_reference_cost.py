"""benchmarks/reference_cost.py: what the loop spends in references, and only there."""

from __future__ import annotations

import pytest

from benchmarks.reference_cost import cpu_seconds


@pytest.mark.slow  # two episodes of a sampled v2 task, twice
def test_the_paired_loop_runs_one_reference_per_task_and_seed():
    paired, absolute = cpu_seconds("paired", 2), cpu_seconds("val_loss", 2)
    assert paired["decisions"] == absolute["decisions"] > 0
    assert paired["reference_runs"] == 1  # two episodes of one draw (repeat 4)
    assert absolute["reference_runs"] == 0
    # The reference is a whole static run of the task: at least the episode's decisions
    # unless it diverged sooner, never more than the budget's.
    assert 0 < paired["reference_decisions"] <= 50
    assert absolute["reference_decisions"] == 0
    assert 0 < paired["reference_cpu_s"] < paired["cpu_s"] and absolute["reference_cpu_s"] == 0
    assert paired["cpu_s"] > 0 and absolute["cpu_s"] > 0
