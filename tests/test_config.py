"""EnvConfig bounds that keep a typo from hanging a run."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

import lr_gym  # noqa: F401 - registers the ids
from lr_gym.config import MAX_TOTAL_STEPS, EnvConfig
from tests.helpers import blob_task


@pytest.mark.parametrize("field", ["total_steps", "steps_per_action"])
def test_budgets_beyond_the_bound_are_refused_at_once(field):
    # Refused by the config, before any schedule is built or data loaded (materialising
    # 10**12 factors would not return).
    with pytest.raises(ValueError, match=f"{field} must be <= 10,000,000"):
        gym.make("lr_gym/Digits-MLP-v1", **{field: 10**12})
    EnvConfig(**{field: MAX_TOTAL_STEPS})  # the bound itself is fine


def test_task_and_deployed_controller_budgets_are_bounded():
    from agents.controller import LRController

    with pytest.raises(ValueError, match="total_steps must be <= 10,000,000"):
        blob_task(total_steps=MAX_TOTAL_STEPS + 1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="total_steps must be <= 10,000,000"):
        LRController(opt, "pretrained", total_steps=10**12, steps_per_action=10)


def test_a_long_closed_form_budget_builds_no_list():
    env = gym.make("lr_gym/Digits-MLP-v1", total_steps=MAX_TOTAL_STEPS, schedule="cosine",
                   steps_per_action=100)
    rule = env.unwrapped._lr_state
    assert rule._factors is None  # computed per step, not precomputed
    assert rule.base_lr(MAX_TOTAL_STEPS // 2) == pytest.approx(rule.lr0 * 0.5)


def test_range_messages_say_open_and_closed_ends():
    from lr_gym.config import check_real

    cases = [({"lo": 0.0, "lo_open": True, "hi": 1.0, "hi_open": True}, "> 0 and < 1"),
             ({"lo": 0.0, "hi": 1.0}, ">= 0 and <= 1"), ({"hi": 2.0, "hi_open": True}, "< 2")]
    for bounds, words in cases:
        with pytest.raises(ValueError, match=rf"^x must be {words}, finite, got 5\.0\.$"):
            check_real("x", 5.0 if "hi" in bounds else -5.0, **bounds)


def test_a_range_free_check_says_what_it_asks_for():
    from lr_gym.config import check_real

    with pytest.raises(ValueError, match=r"^x must be finite, got nan\.$"):
        check_real("x", math.nan)
    with pytest.raises(ValueError, match=r"^x must be finite, got inf\.$"):
        check_real("x", math.inf)
    with pytest.raises(ValueError, match=r"^x must be not NaN, got nan\.$"):
        check_real("x", math.nan, allow_inf=True)
    with pytest.raises(ValueError, match=r"^x must be >= 0, got -inf\.$"):
        check_real("x", -math.inf, lo=0.0, allow_inf=True)
    assert check_real("x", math.inf, allow_inf=True) == math.inf
