from __future__ import annotations

import math

import pytest
import torch

from agents.baselines.hypergradient import SGDHD, AdamHD


def quadratic(theta: torch.Tensor) -> torch.Tensor:
    # f = 0.5 x^2 + y^2, gradient (x, 2y)
    return 0.5 * theta[0] ** 2 + theta[1] ** 2


def two_steps(opt_cls: type, **kwargs: float) -> tuple[torch.optim.Optimizer, torch.Tensor]:
    theta = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = opt_cls([theta], **kwargs)
    for _ in range(2):
        opt.zero_grad()
        quadratic(theta).backward()
        opt.step()
    return opt, theta.detach()


def test_sgd_hd_two_steps_by_hand() -> None:
    opt, theta = two_steps(SGDHD, lr=0.1, hypergrad_lr=0.01)
    # step 1: g1 = (1, 2), no previous direction: lr stays 0.1, theta1 = (0.9, 0.8)
    # step 2: g2 = (0.9, 1.6), h = g2 . g1 = 0.9 + 3.2 = 4.1, lr2 = 0.1 + 0.01 * 4.1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.141, abs=1e-15)
    assert theta.tolist() == pytest.approx([0.9 - 0.141 * 0.9, 0.8 - 0.141 * 1.6], abs=1e-15)


def test_sgdn_hd_two_steps_by_hand() -> None:
    opt, theta = two_steps(SGDHD, lr=0.1, momentum=0.5, hypergrad_lr=0.01)
    # step 1: buf = g1 = (1, 2); theta1 = (0.9, 0.8)
    # step 2: g2 = (0.9, 1.6); h = g2 . buf1 = 4.1 -> lr2 = 0.141;
    #         buf2 = 0.5 * (1, 2) + (0.9, 1.6) = (1.4, 2.6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.141, abs=1e-15)
    assert theta.tolist() == pytest.approx([0.9 - 0.141 * 1.4, 0.8 - 0.141 * 2.6], abs=1e-15)


def test_adam_hd_two_steps_by_hand() -> None:
    b1, b2 = 0.9, 0.999
    opt, theta = two_steps(AdamHD, lr=0.1, betas=(b1, b2), eps=0.0, hypergrad_lr=0.01)
    # step 1: g1 = (1, 2); m_hat = g1, v_hat = g1^2: direction d1 = (1, 1), theta1 = (0.9, 0.9)
    # step 2: g2 = (0.9, 1.8); h = g2 . d1 = 2.7; lr2 = 0.1 + 0.01 * 2.7 = 0.127
    assert opt.param_groups[0]["lr"] == pytest.approx(0.127, abs=1e-15)
    g1, g2 = (1.0, 2.0), (0.9, 1.8)
    expected = []
    for x1, a, c in zip((0.9, 0.9), g1, g2, strict=True):
        m = (b1 * (1 - b1) * a + (1 - b1) * c) / (1 - b1**2)
        v = (b2 * (1 - b2) * a * a + (1 - b2) * c * c) / (1 - b2**2)
        expected.append(x1 - 0.127 * m / math.sqrt(v))
    assert theta.tolist() == pytest.approx(expected, abs=1e-12)


def _run(opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int = 5) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        ((x @ params[0] + params[1]) ** 2).mean().backward()
        opt.step()


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (SGDHD, torch.optim.SGD, {"lr": 0.1}),
        (SGDHD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
        (SGDHD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        (AdamHD, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}),
        (AdamHD, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    ],
)
def test_zero_beta_is_torchs_optimizer(ours: type, theirs: type, kwargs: dict) -> None:
    init = [torch.randn(3, 2, generator=torch.Generator().manual_seed(1)), torch.zeros(2)]
    a = [t.clone().requires_grad_() for t in init]
    b = [t.clone().requires_grad_() for t in init]
    extra = {"decoupled_weight_decay": True} if theirs is torch.optim.AdamW else {}
    _run(ours(a, hypergrad_lr=0.0, **kwargs, **extra), a)
    _run(theirs(b, **kwargs), b)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_lr_rises_while_gradients_agree() -> None:
    opt, _ = two_steps(SGDHD, lr=0.01, hypergrad_lr=1e-3)
    assert opt.param_groups[0]["lr"] > 0.01  # consecutive gradients point the same way
    with pytest.raises(ValueError, match="Nesterov"):
        SGDHD([torch.zeros(1, requires_grad=True)], nesterov=True)
