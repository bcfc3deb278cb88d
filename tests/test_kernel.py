"""The decision kernel: the interval protocol that the env and LRController share.

That the env and a deployed controller decide alike on the same statistics is tested end
to end in tests/agents/test_deploy.py (``test_decisions_and_lrs_equal_the_envs`` and the
feature twins): both run this kernel. Here, each rule of the protocol on its own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lr_gym.config import EnvConfig
from lr_gym.features import FeatureTracker
from lr_gym.grad_stats import IntervalMeter
from lr_gym.guard import Guard
from lr_gym.kernel import DecisionKernel, Interval, Validation
from lr_gym.lr_rule import BACK_OFF_BLOCK, LRState

L0 = 2.0


def _kernel(skip_nonfinite: bool, guard: bool = False) -> tuple[DecisionKernel, torch.nn.Module]:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    config = EnvConfig()
    rule = LRState.from_config(config, lr0=0.1, total_steps=100, group_lr0=[0.1],
                               lr_min=1e-4, lr_max=1.0)
    kernel = DecisionKernel(FeatureTracker(0.1, features=config.features), rule,
                            IntervalMeter(config.features),
                            Guard(opt, model) if guard else None,
                            divergence_factor=10.0, skip_nonfinite=skip_nonfinite)
    kernel.start(Validation(L0, 0.1, "initial"))
    return kernel, model


def _never() -> Validation:
    raise AssertionError("a diverged interval must not be evaluated (env rule)")


def test_env_rule_ends_at_the_first_bad_step_without_evaluating():
    kernel, _ = _kernel(skip_nonfinite=False)
    interval = kernel.close(np.array([1.0, np.nan, 0.5], np.float32), _never)
    assert interval.diverged and not interval.restored and interval.val is None
    assert interval.losses.tolist()[:1] == [1.0] and len(interval.losses) == 2
    interval = kernel.close(np.array([1.0, 10 * L0 + 1, 0.5]), _never)
    assert interval.diverged and len(interval.losses) == 2


def test_deploy_rule_skips_nonfinite_losses_and_lets_validation_judge():
    kernel, _ = _kernel(skip_nonfinite=True)
    interval = kernel.close(np.array([1.0, np.nan, 0.5, np.inf]),
                            lambda: Validation(1.5, 0.3))
    assert not interval.diverged and interval.skipped == 2 and interval.observable
    assert interval.losses.tolist() == [1.0, 0.5]
    exploding = kernel.close(np.array([1.0, 10 * L0 + 1]), lambda: Validation(1.5, 0.3))
    assert exploding.diverged and exploding.skipped == 0
    # Without a guard, a finite explosion is still decided on (as before the kernel).
    assert exploding.observable
    bad_val = kernel.close(np.array([1.0]), lambda: Validation(1.5, math.nan))
    assert bad_val.diverged and not bad_val.observable


@pytest.mark.parametrize("skip_nonfinite", [False, True])
def test_a_blow_up_rolls_back_to_the_best_state_and_backs_off(skip_nonfinite):
    kernel, model = _kernel(skip_nonfinite, guard=True)
    best = [p.detach().clone() for p in model.parameters()]
    good = kernel.close(np.array([1.0, 0.9]), lambda: Validation(1.0, 0.5, "best"))
    assert not good.restored and kernel.guard.best_info.info == "best"
    best = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    scale = kernel.rule.scale
    interval = kernel.close(np.array([0.8, 10 * L0 + 1]), lambda: Validation(math.nan, 0.0))
    assert interval.restored and not interval.diverged
    assert interval.val.info == "best" and interval.losses.tolist() == [0.8]
    assert kernel.rule.scale < scale and kernel.rule.blocked == BACK_OFF_BLOCK
    for p, b in zip(model.parameters(), best, strict=True):
        assert torch.equal(p, b)


def test_observe_folds_the_interval_and_a_diverged_one_uses_the_last_result():
    kernel, _ = _kernel(skip_nonfinite=False)
    interval = kernel.close(np.array([1.0, 0.9]), lambda: Validation(1.0, 0.5))
    obs = kernel.observe(interval, progress=0.1, lr=0.1, base_lr=0.1, grad_norm=1.0)
    assert obs.dtype == np.float32 and kernel.tracker.prev_val_loss == 1.0
    diverged = kernel.close(np.array([np.nan]), _never)
    with pytest.raises(ValueError, match="last="):
        kernel.observe(diverged, progress=0.2, lr=0.1, base_lr=0.1, grad_norm=math.nan)
    kernel.observe(diverged, last=Validation(0.7, 0.6), progress=0.2, lr=0.1, base_lr=0.1,
                   grad_norm=math.nan)
    assert kernel.tracker.prev_val_loss == 0.7


def test_decide_sets_the_rule_and_reports_a_raise():
    kernel, _ = _kernel(skip_nonfinite=True)
    assert kernel.decide(np.array([2.0]), 0) == 1.0 and kernel.rule.raised
    assert kernel.decide(np.array([-0.5]), 10) == -0.5 and not kernel.rule.raised


def test_an_interval_without_a_finite_loss_is_not_observable():
    assert not Interval(np.array([]), Validation(1.0, 0.5), False, False).observable
    assert Interval(np.array([1.0]), Validation(1.0, 0.5), False, False).observable
