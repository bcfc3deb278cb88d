"""The open-loop controls run on the learned controller's own LR rule, and replay it exactly."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from prodigyopt import Prodigy

import lr_gym  # noqa: F401 - registers the ids
from agents.baselines import make_baseline
from agents.baselines.open_loop import (
    FIXED_DECAYS,
    LearnedSchedule,
    OpenLoopControls,
    choose_fixed_decay,
    fixed_decay,
    learned_schedule_from,
    normalized_scores,
)
from agents.controller import PolicyController
from agents.evaluation.rollout import EpisodeResult, run_episode

ENV = "lr_gym/Waves-Conv1D-v1"
SHORT = {"total_steps": 60}  # 4 decisions of 15 steps


@pytest.fixture(scope="module")
def default() -> PolicyController:
    return PolicyController.load("pretrained")


@pytest.fixture(scope="module")
def learned(default: PolicyController) -> EpisodeResult:
    return run_episode(ENV, default, 0, env_kwargs=SHORT)


def test_replay_of_a_prodigy_controller_reproduces_its_episode(default, learned) -> None:
    # Replayed from its own LRs on its own base (Prodigy), the episode is the same run.
    replay = make_baseline("replay", results=[learned], controller_kwargs=default.env_kwargs())
    res = run_episode(ENV, replay, 0, env_kwargs=SHORT)
    np.testing.assert_allclose(res.lrs, learned.lrs, rtol=1e-12)
    assert res.val_loss == learned.val_loss and res.test == learned.test


def test_the_replay_of_the_default_builds_prodigy(default) -> None:
    replay = make_baseline("replay", targets=[0.5], controller_kwargs=default.env_kwargs())
    env = gym.make(ENV, **replay.env_kwargs())
    task = env.unwrapped.task
    assert task.optimizer is Prodigy and task.lr == 1.0
    # ... with the controller's LR bounds, not the env's defaults.
    assert env.unwrapped.lr_min == pytest.approx(0.01) and env.unwrapped.lr_max == 100.0
    # Without its rule a replay runs the task's own optimizer (what the old control did).
    assert gym.make(ENV, **make_baseline("replay", targets=[0.5]).env_kwargs()
                    ).unwrapped.task.optimizer is not Prodigy


def test_learned_schedule_of_one_run_replays_it_on_the_same_env(default, learned) -> None:
    progress, factors = learned_schedule_from([learned])
    assert progress == [0.0, 0.25, 0.5, 0.75]
    assert factors == pytest.approx(learned.lrs[1:])  # lr0 is 1.0 over Prodigy
    res = run_episode(ENV, LearnedSchedule(progress, factors,
                                           controller_kwargs=default.env_kwargs()), 0,
                      env_kwargs=SHORT)
    np.testing.assert_allclose(res.lrs, learned.lrs, rtol=1e-12)
    assert res.val_loss == learned.val_loss


def _result(steps: list[int], lrs: list[float], total: int, lr0: float = 0.1) -> EpisodeResult:
    return EpisodeResult("e", "c", 0, "t", "accuracy", steps=steps, lrs=lrs, total_steps=total,
                         rule_lr0=lr0)


def test_learned_schedule_is_the_geometric_mean_against_progress() -> None:
    # Two budgets: decisions at 0, .5 (T=20, K=10) and 0, .25, .5, .75 (T=40, K=10).
    a = _result([0, 10, 20], [0.1, 0.1, 0.4], 20)          # factors 1, 4
    b = _result([0, 10, 20, 30, 40], [0.1, 0.4, 0.1, 0.1, 0.1], 40)  # 4, 1, 1, 1
    progress, factors = learned_schedule_from([a, b])
    assert progress == [0.0, 0.25, 0.5, 0.75]
    # At .25, run a still holds its first decision (1) and b has 1: mean 1.
    assert factors == pytest.approx([2.0, 1.0, 2.0, 2.0])
    # A diverged run counts up to its last decision only.
    c = _result([0, 10], [0.1, 0.9], 40)  # diverged in its first interval, factor 9
    assert learned_schedule_from([b, c])[1] == pytest.approx([6.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="total_steps"):
        learned_schedule_from([_result([0, 10], [0.1, 0.1], 0)])


def test_learned_schedule_interpolates_in_log_on_another_budget() -> None:
    class Env:
        steps_per_action, total_steps, lr0 = 10, 40, 2.0

    sched = LearnedSchedule([0.0, 0.5], [1.0, 0.25])
    got = sched.interval_targets(Env())
    assert got == pytest.approx([2.0, 2.0 * 0.5, 0.5, 0.5])  # p = 0, .25, .5, .75


def test_fixed_decay_cosine_on_prodigy_is_the_prodigy_baseline(default) -> None:
    # The Prodigy baseline anneals its lr with a cosine to 0: the family's cosine member
    # on the default's base is the same run, number for number.
    a = run_episode(ENV, make_baseline("prodigy"), 0, env_kwargs=SHORT)
    b = run_episode(ENV, fixed_decay("cosine", default.env_kwargs()), 0, env_kwargs=SHORT)
    assert a.lrs == b.lrs and a.val_loss == b.val_loss and a.test == b.test


def test_every_fixed_decay_runs_its_schedule_on_the_task_base() -> None:
    for member, (schedule, final) in FIXED_DECAYS.items():
        decay = fixed_decay(member)
        assert not decay.tunable and decay.name == f"decay:{member}"
        assert decay.env_kwargs()["schedule"] == schedule
        assert decay.env_kwargs()["final_lr_frac"] == final
    with pytest.raises(KeyError, match="exp0.1"):
        fixed_decay("exp0.5")


def test_the_dev_rule_takes_the_highest_normalised_score_earliest_on_ties() -> None:
    scores = {"linear": {"a": [0.5, 0.5], "b": [0.9, 0.9]},
              "cosine": {"a": [1.0, 1.0], "b": [0.45, 0.45]},
              "wsd": {"a": [0.8, 0.8], "b": [0.9, 0.9]}}
    norm = normalized_scores(scores)
    assert norm == pytest.approx({"linear": 0.75, "cosine": 0.75, "wsd": 0.9})
    assert choose_fixed_decay(scores) == "wsd"
    del scores["wsd"]
    assert choose_fixed_decay(scores) == "linear"  # a tie: the earlier member


def test_controls_round_trip_and_build_on_the_rule(tmp_path, default) -> None:
    c = OpenLoopControls("ab" * 32, (0.0, 0.5), (1.0, 0.3), "exp0.1", {"exp0.1": 1.0},
                         ("lr_gym/Digits-CNN-v1",), (0, 1))
    c.save(tmp_path / "c.json")
    assert OpenLoopControls.load(tmp_path / "c.json") == c
    decay = c.controller("fixed_decay", default.env_kwargs())
    assert decay.name == "fixed_decay" and decay.env_kwargs()["base"] == "prodigy"
    sched = c.controller("learned_schedule", default.env_kwargs())
    assert sched.env_kwargs()["base"] == "prodigy" and math.isclose(sched.targets[1], 0.3)
    with pytest.raises(KeyError, match="learned_schedule"):
        c.controller("replay", {})
