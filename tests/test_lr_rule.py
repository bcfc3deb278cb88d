"""The LR rule on its own: the action map, the clamp, ``LRState``'s decisions and state."""

from __future__ import annotations

import math

import pytest
import torch

from lr_gym import lr_rule
from lr_gym.lr_rule import (
    BACK_OFF_BLOCK,
    BACK_OFF_FACTOR,
    LRState,
    action_to_multiplier,
    clamped_lr,
    lr_bounds,
    multiplier_to_action,
    next_multiplier,
)


@pytest.mark.parametrize("a", [-1.0, -0.37, 0.0, 0.5, 1.0])
def test_multiplier_to_action_inverts_action_to_multiplier(a):
    _, m = action_to_multiplier(a, 4.0)
    assert multiplier_to_action(m, 4.0) == pytest.approx(a, abs=1e-12)
    assert multiplier_to_action(16.0, 4.0) == pytest.approx(2.0)  # unclipped
    assert multiplier_to_action(0.5, 2.0) == pytest.approx(-1.0)


@pytest.mark.parametrize(("raw", "a"), [(2.0, 1.0), (-3.0, -1.0), (float("nan"), 0.0),
                                        ("x", 0.0), ([], 0.0), ([0.25, 9.0], 0.25)])
def test_action_to_multiplier_clips_and_sanitises(raw, a):
    got, m = action_to_multiplier(raw, 10.0)
    assert got == a and m == pytest.approx(10.0 ** a)


def test_bounds_and_clamp():
    assert lr_bounds(0.1, None, None) == pytest.approx((0.1 * lr_rule.LR_MIN_FACTOR,
                                                        0.1 * lr_rule.LR_MAX_FACTOR))
    assert lr_bounds(0.1, 0.01, 2.0) == (0.01, 2.0)
    assert lr_bounds(2.0, None, None, 0.5, 4.0) == (1.0, 8.0)
    assert clamped_lr(0.1, 2.0, 0.01, 1.0) == pytest.approx(0.2)
    assert clamped_lr(0.1, 100.0, 0.01, 1.0) == 1.0
    assert clamped_lr(0.1, 1e-4, 0.01, 1.0) == 0.01


def test_next_multiplier_anchored_replaces_recursive_accumulates_within_bounds():
    assert next_multiplier("anchored", 3.0, 2.0, 0.1, 0.01, 1.0) == 2.0
    assert next_multiplier("recursive", 3.0, 2.0, 0.1, 0.001, 10.0) == pytest.approx(6.0)
    assert next_multiplier("recursive", 3.0, 2.0, 0.1, 0.001, 0.2) == pytest.approx(2.0)
    assert next_multiplier("recursive", 0.5, 0.1, 0.1, 0.02, 1.0) == pytest.approx(0.2)


def _state(**kw):
    args = dict(lr0=0.1, total_steps=100, group_lr0=[0.1, 0.02], mode="recursive",
                max_factor=2.0, schedule="constant", lr_min=0.001, lr_max=1.0)
    return LRState(**{**args, **kw})


def test_decide_apply_and_raised():
    rule = _state()
    assert rule.lr_at(0) == pytest.approx(0.1)
    assert rule.decide(1.0, 0) == 1.0 and rule.raised
    assert rule.lr_at(10) == pytest.approx(0.2)
    assert rule.decide(-0.5, 10) == -0.5 and not rule.raised
    assert rule.lr_at(10) == pytest.approx(0.2 / math.sqrt(2))
    opt = torch.optim.SGD([{"params": [torch.zeros(1)]},
                           {"params": [torch.zeros(1)], "lr": 0.02}], lr=0.1)
    lr = rule.apply(opt, 10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, 0.02 * lr / 0.1])


def test_back_off_lowers_the_lr_for_good_and_blocks_increases():
    rule = _state()
    rule.back_off()
    assert rule.scale == BACK_OFF_FACTOR and rule.blocked == BACK_OFF_BLOCK
    assert rule.lr_at(0) == pytest.approx(0.1 * BACK_OFF_FACTOR)
    for _ in range(BACK_OFF_BLOCK):
        assert rule.decide(1.0, 0) == 0.0 and not rule.raised  # increases blocked
    assert rule.blocked == 0
    assert rule.decide(1.0, 0) == 1.0 and rule.raised
    assert rule.lr_at(0) == pytest.approx(0.1 * BACK_OFF_FACTOR * 2.0)
    assert rule.decide(-1.0, 0) == -1.0  # decreases were never blocked
    rule.back_off()
    assert rule.scale == BACK_OFF_FACTOR**2  # rollbacks compound


def test_state_dict_round_trip_and_old_states():
    rule = _state()
    rule.decide(0.7, 0)
    rule.back_off()
    rule.decide(-0.3, 5)
    state = rule.state_dict()
    assert set(state) == {"multiplier", "action", "scale", "blocked", "raised"}
    fresh = _state()
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    assert [fresh.lr_at(t) for t in (0, 50, 100)] == [rule.lr_at(t) for t in (0, 50, 100)]
    raised = _state()
    raised.load_state_dict({**state, "raised": True})
    assert raised.raised is True
    old = _state()
    old.load_state_dict({"multiplier": 1.5})  # saved before the guard fields existed
    assert old.state_dict() == {"multiplier": 1.5, "action": 0.0, "scale": 1.0, "blocked": 0,
                                "raised": False}


def test_base_lr_follows_the_schedule_and_stops_at_the_budget():
    rule = _state(schedule="cosine", mode="anchored")
    assert rule.base_lr(0) == pytest.approx(0.1)
    assert rule.base_lr(50) == pytest.approx(0.05)
    assert rule.base_lr(100) == pytest.approx(0.0, abs=1e-12)
    assert rule.base_lr(150) == rule.base_lr(100)
    assert rule.lr_at(100) == 0.001  # clamped at lr_min
