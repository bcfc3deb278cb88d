from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lr_gym
from lr_gym.splits import DEV, FAMILIES, TEST, split_of_family
from lr_gym.tasks.grids import generated
from lr_gym.tasks.grids.generated import load_generated_data, make_task, variants

GEN_FAMILIES = [f for f, fam in FAMILIES.items() if fam.module == generated.__name__]
NEW_IDS = [e for e in DEV.env_ids + TEST.env_ids
           if lr_gym.task_for(e).family in GEN_FAMILIES] + [DEV.mix_id, TEST.mix_id]
SHORT = {"total_steps": 30, "steps_per_action": 10}


def test_generated_families_are_the_modules_families():
    assert sorted(GEN_FAMILIES) == sorted(generated.FAMILIES)
    assert {split_of_family(f) for f in GEN_FAMILIES} == {"dev", "test"}
    # Every test family is a generated one (v3's fine-tuning family samples only: no grid).
    assert set(TEST.families) - set(TEST.v3_families) <= set(GEN_FAMILIES)
    assert all(FAMILIES[f].dataset == FAMILIES["waves-conv1d"].dataset
               for f in TEST.v3_families)


@pytest.mark.parametrize("env_id", NEW_IDS)
def test_check_env_gymnasium_and_sb3(env_id):
    env = gym.make(env_id, **SHORT)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("dataset", ["waves", "seq", "spirals"])
def test_data_deterministic_split_65_15_20(dataset):
    data = load_generated_data(dataset)
    assert load_generated_data(dataset) is data  # cached
    load_generated_data.cache_clear()
    again = load_generated_data(dataset)
    for a, b in zip((data.train, data.val, data.test), (again.train, again.val, again.test),
                    strict=True):
        for ta, tb in zip(a.tensors, b.tensors, strict=True):
            assert torch.equal(ta, tb)
    n = len(data.train) + len(data.val) + len(data.test)
    assert len(data.test) == int(0.2 * n) and len(data.val) == int(0.15 * n)
    half = load_generated_data(dataset, 0.5)
    assert len(half.train) == len(data.train) // 2
    assert torch.equal(half.train.tensors[0], data.train.tensors[0][: len(half.train)])
    y = torch.cat([data.train.tensors[1], data.val.tensors[1], data.test.tensors[1]])
    counts = torch.bincount(y)
    assert counts.min() > 0.15 * n / len(counts)  # every class present, none rare


def test_generators_depend_on_their_seed_only():
    for fn in (generated.wave_arrays, generated.sequence_arrays, generated.spiral_arrays):
        (x1, y1), (x2, y2), (x3, _) = fn(n=64), fn(n=64), fn(n=64, seed=7)
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
        assert not np.array_equal(x1, x3)
    x, y = generated.sequence_arrays(n=64)
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() < generated.SEQ_VOCAB
    assert y.max() < generated.N_CHAINS
    x, _ = generated.wave_arrays(n=8)
    assert x.shape == (8, 1, generated.WAVE_LENGTH) and x.dtype == np.float32


@pytest.mark.parametrize("family", sorted(generated.FAMILIES))
def test_variant_grid(family):
    tasks = variants(family)
    assert len(tasks) == 24 and len({t.name for t in tasks}) == 24
    assert {t.family for t in tasks} == {family}
    assert {t.optimizer for t in tasks} == {torch.optim.SGD, torch.optim.Adam}
    for opt in (torch.optim.SGD, torch.optim.Adam):
        lrs = sorted({t.lr for t in tasks if t.optimizer is opt})
        assert len(lrs) == 3 and lrs[2] / lrs[0] == pytest.approx(100.0)
    assert {t.total_steps for t in tasks} == {300} and {t.metric for t in tasks} == {"accuracy"}
    halves = [t for t in tasks if t.name.endswith("/d0.5")]
    assert len(halves) == 12
    for t in tasks[:: 6]:  # every width, both optimizers: models build and classify a batch
        data = t.data_fn()
        out = t.model_fn()(data.train.tensors[0][:5])
        assert out.shape == (5, len(torch.unique(data.train.tensors[1])))


def test_make_task_errors():
    with pytest.raises(KeyError, match="Unknown generated family 'waves-mlp'"):
        make_task("waves-mlp")
    with pytest.raises(KeyError, match="Unknown optimizer"):
        make_task("seq-gru", optimizer="lion")
    with pytest.raises(KeyError, match="Unknown generated dataset"):
        load_generated_data("digits")


def test_episode_deterministic_by_seed():
    def rollout(seed):
        env = gym.make("lr_gym/Seq-GRU-v1", **SHORT)
        obs, info = env.reset(seed=seed)
        traj = [obs]
        for a in (0.5, -1.0, 0.3):
            obs, r, term, trunc, info = env.step(np.array([a], np.float32))
            traj += [obs, np.array([r])]
        env.close()
        return np.concatenate(traj)

    a, b, c = rollout(4), rollout(4), rollout(5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["lr_gym/Waves-Conv1D-v1", "lr_gym/Seq-GRU-v1"])
def test_static_lr0_learns_but_not_perfectly(env_id):
    env = gym.make(env_id, schedule="constant")
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.zeros(1, np.float32))
        done = term or trunc
    chance = 1 / 4  # four wave kinds; four Markov chains
    assert len(generated.WAVE_KINDS) == generated.N_CHAINS == 4
    assert not info["diverged"]
    assert chance + 0.25 < info["val_accuracy"] < 0.98
