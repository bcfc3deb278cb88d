"""The GALA-style LR: it grows a too-small step and shrinks a too-long one."""

from __future__ import annotations

import pytest
import torch

from agents.baselines.gala import RANGE, GALAStyle


def _quadratic_run(lr: float, base=torch.optim.SGD, steps: int = 200, **kw) -> float:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(10))
    scales = torch.linspace(0.5, 2.0, 10)  # curvatures: GD is stable below lr = 1
    opt = GALAStyle([w], lr=lr, base=base, **kw)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (scales * w**2).sum()).backward()
        opt.step()
    return opt.param_groups[0]["lr"]


def test_a_too_small_lr_grows_and_a_too_large_one_shrinks():
    assert _quadratic_run(0.001) > 0.01
    assert _quadratic_run(1.9) < 1.0  # near the edge of stability: cut back
    assert _quadratic_run(0.001, steps=2000) <= 0.001 * RANGE  # within its range


def test_wraps_the_inner_optimizer_and_its_groups():
    w = torch.nn.Parameter(torch.ones(3))
    opt = GALAStyle([w], lr=0.1, base=torch.optim.Adam, betas=(0.8, 0.9))
    assert isinstance(opt.inner, torch.optim.Adam)
    assert opt.param_groups is opt.inner.param_groups
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)
    w.sum().backward()
    opt.step()  # the first step only records: the LR is unchanged
    assert opt.param_groups[0]["lr"] == 0.1
    assert torch.allclose(w, torch.full((3,), 0.9))  # Adam's first step is lr * sign


@pytest.mark.parametrize("scale, grows", [(0.01, True), (10.0, False)])
def test_baseline_moves_the_lr_towards_a_good_one(scale, grows):
    import lr_gym
    from agents.baselines import make_baseline
    from agents.evaluation.rollout import run_episode

    lr0 = lr_gym.task_for("lr_gym/Digits-MLP-v1").lr * scale
    res = run_episode("lr_gym/Digits-MLP-v1", make_baseline("gala").with_lr(lr0), 0,
                      env_kwargs={"eval_test": False})
    assert (res.lrs[-1] > 3 * lr0) if grows else (res.lrs[-1] < lr0 / 3)
    assert res.final_val_metric > 0.9
