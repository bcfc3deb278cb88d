from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lr_gym
from lr_gym.envs import LRControlEnv, MultiTaskEnv
from lr_gym.features import FEATURE_NAMES, OBS_DIM
from tests.helpers import blob_task, digits_task

# Ids whose tasks need external data; their check_env runs in tests/tasks/ on tiny data.
SEED_TASK_PREFIXES = ("lr_gym/CIFAR10", "lr_gym/IMDB", "lr_gym/SQuAD", "lr_gym/CoNLL")
EMBEDDED_IDS = [e for e in lr_gym.lr_gym_env_ids() if not e.startswith(SEED_TASK_PREFIXES)]


def rollout(env, actions, seed):
    obs, info = env.reset(seed=seed)
    traj = [(obs, 0.0, info["lr"], info["val_loss"])]
    for a in actions:
        obs, r, term, trunc, info = env.step(np.array([a], dtype=np.float32))
        traj.append((obs, r, info["lr"], info["val_loss"]))
        if term or trunc:
            break
    return traj


def test_embedded_ids_registered():
    for name in ("Digits-MLP", "Digits-CNN", "Wine-MLP", "BreastCancer-MLP", "EmbeddedMix"):
        assert f"lr_gym/{name}-v0" in EMBEDDED_IDS


@pytest.mark.parametrize("env_id", EMBEDDED_IDS)
def test_check_env_gymnasium_and_sb3(env_id):
    env = gym.make(env_id, total_steps=30, steps_per_action=10)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", EMBEDDED_IDS)
def test_full_episode_observations_stay_in_space(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=1)
    steps = 0
    while True:
        assert env.observation_space.contains(obs), obs
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        steps += 1
        assert math.isfinite(r)
        if term or trunc:
            break
    u = env.unwrapped
    inner = u.current if isinstance(u, MultiTaskEnv) else u
    if trunc:
        assert steps == math.ceil(inner.total_steps / inner.steps_per_action)
        assert info["step"] == inner.total_steps
        assert set(info["test"]) >= {"loss", "accuracy"}


def test_info_keys_and_render():
    env = LRControlEnv(blob_task(), render_mode="ansi")
    assert env.render() == "blobs: not started"
    _, info = env.reset(seed=0)
    for key in ("lr", "train_loss", "val_loss", "val_metric", "val_accuracy", "step", "epoch",
                "task", "diverged"):
        assert key in info
    _, _, _, _, info = env.step(np.zeros(1, np.float32))
    assert info["step"] == 8 and info["epoch"] == pytest.approx(8 * 16 / 96)
    line = env.render()
    assert line.startswith("blobs step 8/40 lr=") and "accuracy=" in line


def test_determinism_same_seed_same_actions():
    actions = [0.5, -1.0, 0.3, 1.0, 0.0]
    a = rollout(LRControlEnv(blob_task()), actions, seed=3)
    # A second env, with the global torch RNG disturbed between steps, must agree exactly.
    env = LRControlEnv(blob_task())
    obs, info = env.reset(seed=3)
    b = [(obs, 0.0, info["lr"], info["val_loss"])]
    for act in actions:
        torch.rand(100)  # e.g. a PPO policy sampling in the same process
        obs, r, term, trunc, info = env.step(np.array([act], np.float32))
        b.append((obs, r, info["lr"], info["val_loss"]))
    for (o1, r1, lr1, v1), (o2, r2, lr2, v2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, lr1, v1) == (r2, lr2, v2)
    c = rollout(LRControlEnv(blob_task()), actions, seed=4)
    assert any(x[3] != y[3] for x, y in zip(a, c, strict=True))


def test_reset_without_seed_continues_rng():
    env = LRControlEnv(blob_task())
    _, i1 = env.reset(seed=0)
    _, i2 = env.reset()
    assert i1["val_loss"] != i2["val_loss"]  # a new initialisation


@pytest.mark.parametrize(
    "action, expected_a",
    [(1.0, 1.0), (-1.0, -1.0), (5.0, 1.0), (-7.0, -1.0), (np.inf, 1.0), (-np.inf, -1.0),
     (np.nan, 0.0)],
)
def test_action_edge_cases(action, expected_a):
    env = LRControlEnv(blob_task(), schedule="constant", max_factor=4.0)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(np.array([action], dtype=np.float32))
    assert env.observation_space.contains(obs)
    assert math.isfinite(r)
    assert info["lr"] == pytest.approx(0.1 * 4.0**expected_a)
    assert obs[FEATURE_NAMES.index("prev_action")] == pytest.approx(expected_a)


def test_anchored_vs_recursive_multiplier():
    anchored = LRControlEnv(blob_task(), mode="anchored", schedule="constant", max_factor=2.0)
    recursive = LRControlEnv(blob_task(), mode="recursive", schedule="constant", max_factor=2.0)
    for env in (anchored, recursive):
        env.reset(seed=0)
    lrs = {"a": [], "r": []}
    for _ in range(3):
        lrs["a"].append(anchored.step(np.ones(1, np.float32))[4]["lr"])
        lrs["r"].append(recursive.step(np.ones(1, np.float32))[4]["lr"])
    assert lrs["a"] == pytest.approx([0.2, 0.2, 0.2])
    assert lrs["r"] == pytest.approx([0.2, 0.4, 0.8])


def test_recursive_lr_is_clamped_to_bounds():
    env = LRControlEnv(blob_task(total_steps=80), mode="recursive", schedule="constant",
                       max_factor=4.0, lr_max=0.5, lr_min=0.01)
    env.reset(seed=0)
    for _ in range(3):
        _, _, term, _, info = env.step(np.ones(1, np.float32))
    assert info["lr"] == pytest.approx(0.5)
    for _ in range(5):  # the multiplier did not wind up: one step down leaves the cap
        _, _, term, trunc, info = env.step(-np.ones(1, np.float32))
        if term or trunc:
            break
    assert info["lr"] == pytest.approx(0.01)


def test_cosine_schedule_decays_within_episode():
    env = LRControlEnv(blob_task(), schedule="cosine")
    env.reset(seed=0)
    lrs = [env.step(np.zeros(1, np.float32))[4]["lr"] for _ in range(5)]
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False))


def test_divergence_terminates_with_penalty():
    env = LRControlEnv(digits_task(lr=50.0), schedule="constant", divergence_penalty=3.0)
    env.reset(seed=0)
    for _ in range(6):
        obs, r, term, trunc, info = env.step(np.ones(1, np.float32))
        assert env.observation_space.contains(obs)
        if term or trunc:
            break
    assert term and not trunc
    assert r == -3.0 and info["diverged"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=1)  # a diverged run ends cleanly: the env is reusable


def test_step_before_reset_is_a_clear_error():
    with pytest.raises(RuntimeError, match="reset"):
        LRControlEnv(blob_task()).step(np.zeros(1, np.float32))


@pytest.mark.parametrize("reward", ["val_loss", "train_loss", "metric", "terminal_metric"])
def test_reward_modes(reward):
    env = LRControlEnv(blob_task(), reward=reward, schedule="constant")
    _, info0 = env.reset(seed=0)
    total, infos = 0.0, []
    while True:
        _, r, term, trunc, info = env.step(np.zeros(1, np.float32))
        total += r
        infos.append((r, info))
        if term or trunc:
            break
    if reward == "val_loss":  # telescopes to log(L0 / L_T)
        assert total == pytest.approx(math.log(info0["val_loss"] / info["val_loss"]))
    elif reward == "metric":
        assert total == pytest.approx(info["val_metric"] - info0["val_metric"])
    elif reward == "terminal_metric":
        assert [r for r, _ in infos[:-1]] == [0.0] * (len(infos) - 1)
        assert total == pytest.approx(info["val_metric"])


def test_observation_features_documented():
    doc = LRControlEnv.__doc__
    assert len(FEATURE_NAMES) == OBS_DIM
    for name in FEATURE_NAMES:
        assert f"| {name} |" in doc


def test_bad_config_is_a_clear_error():
    with pytest.raises(TypeError, match="Unknown EnvConfig option.*Valid options"):
        LRControlEnv(blob_task(), learning_rate=3)
    with pytest.raises(ValueError, match="mode='sideways' is not valid"):
        LRControlEnv(blob_task(), mode="sideways")
    with pytest.raises(ValueError, match="steps_per_action"):
        LRControlEnv(blob_task(), steps_per_action=100)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available.*device='auto'"):
        LRControlEnv(blob_task(), device="cuda")


def test_multi_task_env_samples_tasks():
    env = gym.make("lr_gym/EmbeddedMix-v0", total_steps=15, steps_per_action=15)
    names = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        names.add(info["task"])
    assert len(names) >= 4
    _, info = env.unwrapped.reset(seed=0, options={"task": 2})
    assert info["task"] == env.unwrapped.tasks[2].name
