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
