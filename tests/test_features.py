"""The v1 features on hand-computed values (the step-size ones: tests/test_grad_stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lr_gym.features import FeatureTracker

NAMES = ("progress", "log_lr_ratio", "log_train_loss", "loss_trend", "loss_cv", "log_val_loss",
         "val_metric", "log_grad_norm", "grad_norm_change", "prev_action", "log_multiplier",
         "gen_gap", "val_trend", "val_vs_best", "update_ratio")


def _update(tracker, **kw):
    args = dict(progress=0.5, lr=0.2, base_lr=0.05, step_losses=np.array([1.0, 3.0]),
                val_loss=1.5, val_metric=0.6, grad_norm=4.0, action=0.25, update_ratio=0.01)
    return dict(zip(NAMES, tracker.update(**{**args, **kw}).tolist(), strict=True))


def test_every_v1_feature_by_hand():
    t = FeatureTracker(0.1, short_halflife=1.0, long_halflife=2.0, features=NAMES)
    first = t.reset(2.0, 0.1)
    assert first.shape == (len(NAMES),) and first.dtype == np.float32
    a_s, a_l = 0.5, 1.0 - 0.5 ** 0.5  # EMA weights for half-lives 1 and 2
    short = long = 2.0
    for x in (1.0, 3.0):
        short += a_s * (x - short)
        long += a_l * (x - long)
    f = _update(t)
    want = {
        "progress": 0.5, "log_lr_ratio": math.log(2.0), "log_train_loss": math.log(short / 2.0),
        "loss_trend": math.log(short / long), "loss_cv": 1.0 / 2.0,  # std 1, mean 2
        "log_val_loss": math.log(1.5 / 2.0), "val_metric": 0.6,
        "log_grad_norm": 0.0, "grad_norm_change": 0.0,  # the first grad norm is the reference
        "prev_action": 0.25, "log_multiplier": math.log(4.0),
        "gen_gap": math.log(1.5 / short), "val_trend": math.log(1.5 / 2.0),
        "val_vs_best": math.log(1.5 / 2.0), "update_ratio": math.log(0.01)}
    assert f == pytest.approx(want, rel=1e-5, abs=1e-6)
    g = _update(t, step_losses=np.array([]), val_loss=3.0, grad_norm=8.0, update_ratio=math.nan)
    assert g["log_grad_norm"] == pytest.approx(math.log(2.0))  # against the first norm
    assert g["grad_norm_change"] == pytest.approx(math.log(2.0))  # against the previous one
    assert g["log_train_loss"] == pytest.approx(want["log_train_loss"])  # no loss: EMA stays
    assert g["loss_cv"] == 0.0 and g["update_ratio"] == 0.0
    assert g["val_trend"] == pytest.approx(math.log(3.0 / 1.5), rel=1e-6)
    assert g["val_vs_best"] == pytest.approx(math.log(3.0 / 1.5), rel=1e-6)  # best was 1.5


def test_state_round_trip_continues_identically():
    a = FeatureTracker(0.1, features=NAMES)
    a.reset(2.0, 0.1)
    _update(a)
    b = FeatureTracker(0.1, features=NAMES)
    b.load_state_dict(a.state_dict())
    assert _update(b, val_loss=1.2) == _update(a, val_loss=1.2)


def test_update_ratio_by_hand_and_its_unknown_cases():
    import torch

    from lr_gym.features import update_ratio

    before = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]  # ||w|| = 5
    after = [torch.tensor([3.0, 1.0]), torch.tensor([4.0])]  # ||dw|| = 1
    assert update_ratio(before, after) == pytest.approx(0.2)
    assert math.isnan(update_ratio([], after))  # no snapshot
    assert math.isnan(update_ratio(before[:1], after))  # another parameter list
    assert math.isnan(update_ratio([torch.zeros(2)], [torch.ones(2)]))  # ||w|| = 0
    assert update_ratio([torch.full((4,), 0.25)], [torch.full((4,), 0.75)]) == pytest.approx(2.0)


def test_odd_inputs_stay_bounded_and_mean_what_the_docstring_says():
    t = FeatureTracker(0.1, features=NAMES)
    first = dict(zip(NAMES, t.reset(float("nan"), 0.3).tolist(), strict=True))
    assert t.initial_loss == 1.0  # a non-finite L0 counts as 1
    assert first == {**dict.fromkeys(NAMES, 0.0), "val_metric": pytest.approx(0.3)}
    f = _update(t, step_losses=np.array([2.0]), val_loss=float("inf"), grad_norm=0.0,
                update_ratio=0.0, lr=1e30)
    assert f["loss_cv"] == 0.0  # one loss: no spread
    assert f["log_val_loss"] == 10.0 and f["gen_gap"] == 10.0  # +inf clips at OBS_BOUND
    assert f["log_lr_ratio"] == 10.0
    assert f["update_ratio"] == -10.0  # a zero update: the floor, clipped
    assert f["log_grad_norm"] == 0.0 and f["grad_norm_change"] == 0.0  # a zero norm is no ref
    g = _update(t, grad_norm=2.0, lr=1e-30)
    assert g["log_grad_norm"] == 0.0  # 2.0 became the reference
    assert g["log_lr_ratio"] == -10.0  # clipped below too
    # The previous result was not finite, so the trend is against L0 = 1 still.
    assert g["val_trend"] == pytest.approx(math.log(1.5))
    t2 = FeatureTracker(0.1, short_halflife=10.0, long_halflife=50.0, features=NAMES)
    t2.reset(1.0, 0.0)
    h = _update(t2, step_losses=np.array([2.0]))
    a_short, a_long = 1 - 0.5 ** 0.1, 1 - 0.5 ** 0.02
    assert h["log_train_loss"] == pytest.approx(math.log(1 + a_short), rel=1e-6)
    assert h["loss_trend"] == pytest.approx(math.log((1 + a_short) / (1 + a_long)), rel=1e-6)


def test_step_size_features_are_squashed_emas_and_unknown_until_measured():
    from lr_gym.features import STEP_FEATURES

    t = FeatureTracker(0.1, features=STEP_FEATURES)
    t.reset(1.0, 0.0)
    args = dict(progress=0.1, lr=0.1, base_lr=0.1, val_loss=1.0, val_metric=0.0,
                grad_norm=1.0, action=0.0)
    first = dict(zip(STEP_FEATURES, t.update(step_losses=np.array([1.0]), **args).tolist(),
                     strict=True))
    assert all(v == 0.0 for v in first.values())  # nothing measured yet
    f = dict(zip(STEP_FEATURES, t.update(
        step_losses=np.array([0.5]), grad_alignment=0.25, update_alignment=-0.5,
        noise_ratio=math.e, update_ratio=math.exp(-3.0), **args).tolist(), strict=True))
    assert f["grad_alignment_fast"] == pytest.approx(math.tanh(0.5))
    assert f["update_alignment_slow"] == pytest.approx(math.tanh(-1.0))
    assert f["log_noise_scale_fast"] == pytest.approx(math.tanh(1 / 3))
    assert f["log_update_ratio_fast"] == pytest.approx(math.tanh((-3.0 + 6.0) / 3.0))
    assert f["loss_ratio_fast"] == pytest.approx(math.tanh(math.log(0.5) / 0.1))
    g = dict(zip(STEP_FEATURES, t.update(
        step_losses=np.array([0.5]), grad_alignment=0.75, noise_ratio=0.0, update_ratio=0.0,
        **args).tolist(), strict=True))
    a_slow = 1 - 0.5 ** 0.25
    assert g["grad_alignment_fast"] == pytest.approx(math.tanh((0.25 + 0.5 * 0.5) / 0.5))
    assert g["grad_alignment_slow"] == pytest.approx(math.tanh((0.25 + a_slow * 0.5) / 0.5))
    assert g["log_update_ratio_fast"] == f["log_update_ratio_fast"]  # 0 is unmeasured: kept
    assert g["log_noise_scale_fast"] < -0.99  # a zero noise ratio: the floor, squashed


def test_the_v3_features_by_hand():
    names = ("loss_vs_chance", "gen_gap", "gen_gap_trend", "log_d_growth",
             "log_d_since_start", "log_remaining")
    t = FeatureTracker(0.1, short_halflife=1.0, long_halflife=2.0, features=names,
                       chance_loss=4.0)
    first = dict(zip(names, t.reset(2.0, 0.1).tolist(), strict=True))
    assert first["loss_vs_chance"] == pytest.approx(math.log(0.5))  # starts below chance
    args = dict(progress=0.5, lr=0.2, base_lr=0.2, val_metric=0.6, grad_norm=1.0, action=0.0)
    a = dict(zip(names, t.update(**args, step_losses=np.array([1.0]), val_loss=1.5, d=0.001,
                                 remaining=3).tolist(), strict=True))
    assert a["gen_gap_trend"] == 0.0 and a["log_d_growth"] == 0.0  # nothing before
    assert a["log_d_since_start"] == 0.0
    assert a["log_remaining"] == pytest.approx(math.log(4) / 4)
    assert a["loss_vs_chance"] == first["loss_vs_chance"]  # one value per run
    b = dict(zip(names, t.update(**args, step_losses=np.array([1.0]), val_loss=3.0, d=0.004,
                                 remaining=0).tolist(), strict=True))
    assert b["gen_gap_trend"] == pytest.approx(b["gen_gap"] - a["gen_gap"], abs=1e-6)
    assert b["gen_gap_trend"] > 0  # the gap grows: validation got worse, training did not
    assert b["log_d_growth"] == pytest.approx(math.log(4.0))
    assert b["log_d_since_start"] == pytest.approx(math.log(4.0))
    assert b["log_remaining"] == 0.0
    # No d (the task's own optimizer) and no chance loss: the features stay 0.
    u = FeatureTracker(0.1, features=names)
    assert u.reset(2.0, 0.1)[0] == 0.0
    assert u.update(**args, step_losses=np.array([1.0]), val_loss=1.5)[3:5].tolist() == [0, 0]
