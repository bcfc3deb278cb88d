"""Step-size signals on gradients with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lr_gym.features import STEP_FEATURES, FeatureTracker
from lr_gym.grad_stats import PROBES, GradientProbe, IntervalMeter, update_alignment


def _probe(grads: list[list[float]]) -> tuple[float, float]:
    probe = GradientProbe(probes=len(grads))
    probe.start(len(grads))
    for i, g in enumerate(grads):
        assert probe.wants(i)
        probe.observe([torch.tensor(g[:1]), torch.tensor(g[1:])])  # two "parameters"
    return probe.interval_stats()


def test_aligned_gradients_have_cosine_one_and_no_noise():
    cos, noise = _probe([[1.0, 2.0, 3.0]] * 4)
    assert cos == pytest.approx(1.0) and noise == pytest.approx(0.0, abs=1e-12)


def test_alternating_gradients_have_cosine_minus_one_and_only_noise():
    cos, noise = _probe([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]] * 2)
    assert cos == pytest.approx(-1.0) and noise == math.inf


def test_noise_ratio_of_a_known_spread():
    # mean (1, 0); |g_i|^2 = 2 each: S = (8 - 4) / 3 = 4/3, |G|^2 = 1 - S/4 = 2/3: ratio 2.
    cos, noise = _probe([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    assert cos == pytest.approx(0.0) and noise == pytest.approx(2.0)


def test_only_the_last_steps_are_probed_and_a_nan_gradient_breaks_the_pair():
    probe = GradientProbe()
    probe.start(10)
    assert [probe.wants(i) for i in range(10)] == [False] * (10 - PROBES) + [True] * PROBES
    probe.observe([torch.tensor([1.0, 0.0])])
    probe.observe([torch.tensor([math.nan, 0.0])])
    probe.observe([torch.tensor([0.0, 1.0])])  # paired with nothing: no cosine of 0
    assert math.isnan(probe.interval_stats()[0])
    probe.start(1)
    probe.observe([torch.tensor([1.0])])
    assert all(math.isnan(x) for x in probe.interval_stats())  # one gradient: no estimate


def test_update_alignment_of_sgd_momentum_and_ascent():
    g = [torch.tensor([3.0, -4.0])]
    w = [torch.tensor([1.0, 1.0])]
    assert update_alignment(g, w, [w[0] - 0.1 * g[0]]) == pytest.approx(1.0)  # plain SGD
    assert update_alignment(g, w, [w[0] + 0.1 * g[0]]) == pytest.approx(-1.0)  # ascent
    assert update_alignment(g, w, [w[0] + torch.tensor([4.0, 3.0])]) == pytest.approx(0.0)
    assert math.isnan(update_alignment(g, w, w))  # no update


def test_meter_measures_a_real_sgd_step():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([p], lr=0.1)
    meter = IntervalMeter(STEP_FEATURES)
    meter.start(2)
    for i in range(2):
        opt.zero_grad()
        (p ** 2).sum().backward()
        meter.after_backward(i, [p])
        meter.before_step(i, [p])
        opt.step()
        meter.after_step([p])
    s = meter.stats()
    assert s["update_alignment"] == pytest.approx(1.0)
    assert s["grad_alignment"] == pytest.approx(1.0)  # the gradient only shrinks
    assert s["update_ratio"] == pytest.approx(0.2)  # |0.1 * 2w| / |w|


def test_tracker_folds_signals_into_two_squashed_emas():
    tracker = FeatureTracker(0.1, features=STEP_FEATURES)
    tracker.reset(1.0, 0.0)

    def update(cos, loss):
        return dict(zip(STEP_FEATURES, tracker.update(
            progress=0.5, lr=0.1, base_lr=0.1, step_losses=np.array([loss]), val_loss=1.0,
            val_metric=0.0, grad_norm=1.0, action=0.0, grad_alignment=cos,
            update_alignment=math.nan, noise_ratio=math.e ** 3), strict=True))

    first = update(0.5, 1.0)
    assert first["grad_alignment_fast"] == first["grad_alignment_slow"] == pytest.approx(
        math.tanh(1.0), rel=1e-6)  # the first value starts both EMAs
    assert first["update_alignment_fast"] == 0.0  # never measured
    assert first["log_noise_scale_fast"] == pytest.approx(math.tanh(1.0), rel=1e-6)
    assert first["loss_ratio_fast"] == 0.0  # no previous interval yet
    second = update(-0.5, 0.5)
    assert second["grad_alignment_fast"] == pytest.approx(math.tanh(0.0), abs=1e-6)  # half-way
    alpha = 1 - 0.5 ** 0.25
    assert second["grad_alignment_slow"] == pytest.approx(
        math.tanh(2 * (0.5 - alpha)), rel=1e-5)
    assert second["loss_ratio_fast"] == pytest.approx(math.tanh(math.log(0.5) / 0.1), rel=1e-5)
    third = update(math.nan, 0.5)  # unmeasured: the EMAs keep their values
    assert third["grad_alignment_fast"] == second["grad_alignment_fast"]
