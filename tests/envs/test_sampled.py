from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import lr_gym
from lr_gym.envs import LRControlEnv, PerEpisodeTaskEnv, SampledTaskEnv
from lr_gym.splits import DEV, SPLITS, TEST, TRAIN, refuse_split, split_of_env
from lr_gym.tasks.families.base import (
    Choice,
    Range,
    RunSpace,
    TaskFamily,
    get_family,
    sampled_family_names,
)
from lr_gym.tasks.grids.embedded import mlp
from tests.helpers import blob_data

SHORT = {"total_steps": 30, "steps_per_action": 10}
SAMPLER_IDS = [s.sampler_id for s in SPLITS.values()]


@dataclass(frozen=True)
class BlobFamily(TaskFamily):
    """A custom family on tiny blobs (a user-defined TaskFamily)."""

    def n_train(self, params: Mapping[str, Any]) -> int:
        return 96

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"model_fn": functools.partial(mlp, 8, (params["width"],), 2),
                "data_fn": blob_data}


def blob_family(scale: float = 1.0) -> BlobFamily:
    lrs = {k: 0.1 * scale for k in ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")}
    return BlobFamily(name="blobs", dataset="blobs", architecture="mlp", reference_lrs=lrs,
                      space={"width": Choice((8, 16))},
                      run_space=RunSpace(budget=Range(100, 200, log=True)))


def rollout(env, seed, actions=(0.5, -1.0, 0.3)):
    obs, info = env.reset(seed=seed)
    traj, task = [obs], info["task"]
    for a in actions:
        obs, r, term, trunc, info = env.step(np.array([a], np.float32))
        traj += [obs, np.array([r], np.float32)]
        if term or trunc:
            break
    return task, np.concatenate(traj)


def test_sampler_ids_are_registered_with_their_splits_families():
    ids = (lr_gym.TRAIN_FAMILIES_ID, lr_gym.DEV_FAMILIES_ID, lr_gym.TEST_FAMILIES_ID)
    assert ids == tuple(SAMPLER_IDS)
    for s in SPLITS.values():
        assert gym.spec(s.sampler_id).kwargs["families"] == s.sampled_families
        assert lr_gym.is_multi_task(s.sampler_id) and split_of_env(s.sampler_id) == s.name
    assert TRAIN.sampled_families == ("tabular-mlp", "teacher-mlp", "seq-transformer")
    assert DEV.sampled_families == ("digits-cnn", "spirals-resmlp", "seq-lstm")
    assert TEST.sampled_families == ("waves-conv1d", "seq-gru")
    env = gym.make(lr_gym.TRAIN_FAMILIES_ID, **SHORT)
    assert isinstance(env.unwrapped, SampledTaskEnv) and isinstance(
        env.unwrapped, PerEpisodeTaskEnv)
    assert [f.name for f in env.unwrapped.families] == list(TRAIN.sampled_families)
    env.close()


# What the v1/v2 samplers drew for seeds 0-29 before task distribution v3 was declared
# (commit 749bd6d): SHA-256 (16 hex digits) of each draw's task name, lr0 and inner seed.
V1_V2_DRAWS = {
    "lr_gym/TrainFamilies-v1": "29c68bdd3343e5d2",
    "lr_gym/TrainFamilies-v2": "e07f91e372cc41dc",
    "lr_gym/DevFamilies-v1": "0e4733215d0aae68",
    "lr_gym/DevFamilies-v2": "558f64865cb3ac56",
    "lr_gym/TestFamilies-v1": "0b82613dda559856",
}


@pytest.mark.parametrize("env_id", sorted(V1_V2_DRAWS))
def test_v1_v2_samplers_draw_what_they_drew_before_v3(env_id):
    import hashlib

    env = gym.make(env_id).unwrapped
    draws = []
    for seed in range(30):  # reset's draws, without running the episode
        gym.Env.reset(env, seed=seed)
        task = env._next_env(None).task
        draws.append(f"{task.name}|{task.lr!r}|{int(env.np_random.integers(0, 2**31 - 1))}")
    assert not any("finetune" in d for d in draws)
    assert hashlib.sha256("\n".join(draws).encode()).hexdigest()[:16] == V1_V2_DRAWS[env_id]


def test_test_sampler_is_refused_for_training_and_has_no_task_list():
    with pytest.raises(ValueError, match="test split"):
        refuse_split([lr_gym.TEST_FAMILIES_ID], "test", what="training")
    refuse_split([lr_gym.TRAIN_FAMILIES_ID, lr_gym.DEV_FAMILIES_ID], "test")
    with pytest.raises(ValueError, match="samples a fresh task"):
        lr_gym.tasks_for(lr_gym.TRAIN_FAMILIES_ID)
    with pytest.raises(ValueError, match="samples a fresh task"):
        lr_gym.task_for(lr_gym.TRAIN_FAMILIES_ID)
    custom = lr_gym.register_sampler("SampledCustomMix", ["tabular-mlp", "seq-gru"])
    assert split_of_env(custom) == "test"
    custom = lr_gym.register_sampler("SampledCustomTrain", ["teacher-mlp"])
    assert split_of_env(custom) == "train"


@pytest.mark.parametrize("family", sampled_family_names())
def test_check_env_gymnasium_and_sb3_for_every_family(family):
    env = SampledTaskEnv([family], **SHORT)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", SAMPLER_IDS)
def test_same_seed_same_task_and_trajectory(env_id):
    env = gym.make(env_id, **SHORT)
    task_a, traj_a = rollout(env, 7)
    task_b, traj_b = rollout(env, 7)
    assert task_a == task_b and np.array_equal(traj_a, traj_b)
    tasks = {rollout(env, s, actions=())[0] for s in range(6)}
    assert len(tasks) == 6
    env.close()


def test_families_and_tasks_are_drawn_from_the_seed():
    env = SampledTaskEnv(TRAIN.sampled_families, **SHORT)
    seen = {}
    for seed in range(12):
        _, info = env.reset(seed=seed)
        seen[info["task"].split("/")[0]] = seed
    assert set(seen) == set(TRAIN.sampled_families)
    _, info = env.reset(seed=5, options={"family": "teacher-mlp"})
    assert info["task"].startswith("teacher-mlp/") and info["metric"] == "r2"
    with pytest.raises(KeyError, match="not one of this env's families"):
        env.reset(seed=0, options={"family": "seq-gru"})
    # Without a seed the env's own RNG continues: a new task, still reproducible.
    env.reset(seed=3)
    _, first = env.reset()
    env.reset(seed=3)
    _, again = env.reset()
    assert first["task"] == again["task"]
    env.close()


def test_full_episode_at_the_sampled_budget():
    env = SampledTaskEnv(["tabular-mlp"])
    obs, info = env.reset(seed=2)
    task = env.current.task
    assert isinstance(env.current, LRControlEnv) and info["task"] == task.name
    steps, done = 0, False
    while not done:
        assert env.observation_space.contains(obs)
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        steps += 1
        done = term or trunc
    if not info["diverged"]:
        assert steps == task.total_steps // task.steps_per_action
        assert 10 <= steps <= 50 and info["step"] == task.total_steps == env.total_steps
    env.close()


def test_terminated_and_truncated_are_the_inner_envs():
    # A custom TaskFamily object: an absurd lr0 diverges, which the inner env terminates.
    env = SampledTaskEnv([blob_family(scale=1e6)], total_steps=40, steps_per_action=10)
    env.reset(seed=0)
    _, r, term, trunc, info = env.step(np.ones(1, np.float32))
    assert term and not trunc and info["diverged"]
    env = SampledTaskEnv([blob_family()], total_steps=20, steps_per_action=10)
    env.reset(seed=0)
    inner = LRControlEnv(env.current.task, env.config)
    inner.reset(seed=0)
    outs = [(env.step(np.zeros(1, np.float32)), inner.step(np.zeros(1, np.float32)))
            for _ in range(2)]
    for (_, _, t1, u1, _), (_, _, t2, u2, _) in outs:
        assert (t1, u1) == (t2, u2)
    assert outs[-1][0][2] or outs[-1][0][3]  # the budget ended the episode


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="steps_per_action together with total_steps"):
        SampledTaskEnv(["tabular-mlp"], total_steps=30)
    with pytest.raises(ValueError, match="at least one task family"):
        SampledTaskEnv([])
    with pytest.raises(KeyError, match="Unknown task family"):
        SampledTaskEnv(["nope"])
    assert [f.name for f in SampledTaskEnv("seq-lstm", **SHORT).families] == ["seq-lstm"]
    assert get_family("seq-lstm") is SampledTaskEnv("seq-lstm", **SHORT).families[0]


@pytest.mark.slow  # two worker processes import torch: tens of seconds on a busy machine
def test_subproc_vec_env():
    # "module:id" makes gymnasium import lr_gym (which registers the id) in each worker.
    venv = make_vec_env(f"lr_gym:{lr_gym.TRAIN_FAMILIES_ID}", n_envs=2, seed=0,
                        vec_env_cls=SubprocVecEnv, env_kwargs=SHORT)
    try:
        obs = venv.reset()
        assert obs.shape == (2, *venv.observation_space.shape)
        tasks = set()
        for _ in range(4):
            obs, rewards, dones, infos = venv.step(np.zeros((2, 1), np.float32))
            assert np.isfinite(obs).all() and np.isfinite(rewards).all()
            tasks |= {i["task"] for i in infos}
        assert len(tasks) >= 3  # each env drew a fresh task after its 3-step episode
    finally:
        venv.close()
