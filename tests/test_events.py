"""Events within a run: drawn from the seed, applied to the training data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.events import KINDS, WINDOW, Event, apply_event, draw_event
from tests.helpers import blob_task


def test_draws_follow_the_seed_the_probability_and_the_window():
    draws = [draw_event(np.random.default_rng(s), 0.5, 1000) for s in range(400)]
    assert draws == [draw_event(np.random.default_rng(s), 0.5, 1000) for s in range(400)]
    events = [e for e in draws if e is not None]
    assert 0.4 < len(events) / len(draws) < 0.6
    assert {e.kind for e in events} == set(KINDS)
    assert all(WINDOW[0] * 1000 <= e.step <= WINDOW[1] * 1000 for e in events)
    assert all(draw_event(np.random.default_rng(s), 0.0, 1000) is None for s in range(50))


def _data(n=100, floating=False):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(n, generator=g) if floating else torch.randint(0, 5, (n,), generator=g)
    return TensorDataset(torch.randn(n, 3, generator=g), y)


def test_batch_size_event_grows_or_shrinks_within_the_data():
    data = _data()
    assert apply_event(Event("batch_size", 5, True, 0), data, 16) == (data, 64, True)
    assert apply_event(Event("batch_size", 5, False, 0), data, 16) == (data, 4, True)
    assert apply_event(Event("batch_size", 5, True, 0), data, 64)[1] == 100
    assert apply_event(Event("batch_size", 5, False, 0), data, 1) == (data, 1, False)


def test_label_noise_replaces_a_fifth_of_class_labels_or_perturbs_targets():
    data = _data(1000)
    noisy, bs, applied = apply_event(Event("label_noise", 5, False, 3), data, 16)
    assert applied and bs == 16 and torch.equal(noisy.tensors[0], data.tensors[0])
    changed = (noisy.tensors[1] != data.tensors[1]).float().mean()
    assert 0.1 < changed < 0.2  # 20% redrawn, a fifth of those to the same class
    assert int(noisy.tensors[1].max()) <= 4
    reg = _data(1000, floating=True)
    noisy, _, _ = apply_event(Event("label_noise", 5, False, 3), reg, 16)
    assert 0.15 < (noisy.tensors[1] != reg.tensors[1]).float().mean() < 0.25
    # Data it does not fit are left alone, and say so.
    other = Subset(data, range(10))
    assert apply_event(Event("label_noise", 5, False, 3), other, 16) == (other, 16, False)


def test_subset_keeps_a_fixed_quarter():
    data = _data(200)
    sub, _, applied = apply_event(Event("subset", 5, False, 1), data, 16)
    again, _, _ = apply_event(Event("subset", 5, False, 1), data, 16)
    assert applied and len(sub) == 50 and torch.equal(sub.tensors[0], again.tensors[0])
    wrapped, _, _ = apply_event(Event("subset", 5, False, 1), Subset(data, range(200)), 16)
    assert len(wrapped) == 50


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_env_events_come_from_the_seed_and_reach_the_reference(seed):
    task = blob_task(lr=0.05)
    plain = LRControlEnv(task, eval_test=False)
    _, info = plain.reset(seed=seed)
    assert "event" not in info  # v1 episodes have none (and keep their numbers)
    env = LRControlEnv(task, eval_test=False, event_prob=1.0, reward="paired")
    _, info = env.reset(seed=seed)
    event = info["event"]
    assert event["kind"] in KINDS and not event["applied"]
    done, losses = False, []
    while not done:
        _, r, done, _, info = env.step(np.zeros(1, np.float32))
        assert r == 0.0  # the reference met the same event: a zero action earns nothing
        losses.append(info["val_loss"])
    assert info["event"]["applied"] or event["kind"] == "batch_size"
    ref_plain = LRControlEnv(task, eval_test=False)
    ref_plain.reset(seed=seed)
    base = [ref_plain.step(np.zeros(1, np.float32))[4]["val_loss"]
            for _ in range(task.total_steps // task.steps_per_action)]
    if info["event"]["applied"]:
        assert losses != base  # the event changed the run
