from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lr_gym
from lr_gym.config import EnvConfig
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
        assert f"lr_gym/{name}-v1" in EMBEDDED_IDS


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
    assert not trunc  # v1: the env never truncates by itself
    if not info["diverged"]:
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


@pytest.mark.parametrize("reward", ["val_loss", "val_loss_area", "train_loss", "metric",
                                    "terminal_metric"])
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
    elif reward == "val_loss_area":  # area under log(L0 / L_t), weighted by K / T
        u = env.unwrapped
        area = sum(
            (min(i["step"], u.total_steps) - prev) / u.total_steps
            * math.log(info0["val_loss"] / i["val_loss"])
            for prev, (_, i) in zip([0] + [i["step"] for _, i in infos], infos, strict=False)
        )
        assert total == pytest.approx(area)
    assert term and not trunc and not info["diverged"]  # v1: the budget's end terminates


def test_feature_subset_sets_the_observation():
    names = ("progress", "update_ratio", "log_multiplier")
    env = LRControlEnv(blob_task(), features=list(names))  # YAML gives lists
    assert env.config.features == names and env.feature_names == names
    assert env.observation_space.shape == (3,)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert env.observation_space.contains(obs)
    assert obs[0] > 0 and obs[1] < 0  # progress made; a small step: ||dw|| << ||w||
    with pytest.raises(ValueError, match="unknown"):
        LRControlEnv(blob_task(), features=["progress", "lr"])
    with pytest.raises(ValueError, match="repeated"):
        LRControlEnv(blob_task(), features=["progress", "progress"])


def test_update_ratio_grows_with_the_learning_rate():
    ratios = []
    for lr in (1e-3, 1e-1):
        env = LRControlEnv(blob_task(lr=lr), features=["update_ratio"], schedule="constant")
        env.reset(seed=0)
        obs, *_ = env.step(np.zeros(1, np.float32))
        ratios.append(float(obs[0]))
    # Plain SGD: the step is lr * grad, so the log ratio rises by about log(100).
    assert ratios[1] - ratios[0] == pytest.approx(math.log(100.0), abs=0.5)


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
    env = gym.make("lr_gym/EmbeddedMix-v1", total_steps=15, steps_per_action=15)
    names = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        names.add(info["task"])
    assert len(names) >= 4
    _, info = env.unwrapped.reset(seed=0, options={"task": 2})
    assert info["task"] == env.unwrapped.tasks[2].name


# ------------------------------------------------------- validated configs (issue #8)
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total_steps": 0}, "total_steps must be >= 1"),
    ({"steps_per_action": 0}, "steps_per_action must be >= 1"),
    ({"steps_per_action": -1}, "steps_per_action must be >= 1"),
    ({"total_steps": 2.5}, "total_steps must be an integer"),
    ({"lr_max": -0.1}, "lr_max must be > 0"),
    ({"lr_min": -1e-4}, "lr_min must be >= 0, finite"),
    ({"lr_min": 0.5, "lr_max": 0.1}, r"lr_min \(0.5\) must be below lr_max \(0.1\)"),
    ({"lr_min": 5.0}, r"lr_min \(5\) must be below lr_max \(3\)"),  # lr0 * 30 by default
    ({"reward_scale": math.nan}, "reward_scale must be > 0, finite"),
    ({"divergence_penalty": math.nan}, "divergence_penalty must be >= 0, finite"),
    ({"divergence_factor": math.nan}, "divergence_factor must be > 1"),
    ({"final_lr_frac": math.inf}, "final_lr_frac must be >= 0 and <= 1, finite"),
    ({"max_factor": math.inf}, "max_factor must be > 1, finite"),
    ({"max_factor": "2"}, "max_factor must be a number"),
    ({"eval_test": "yes"}, "eval_test must be True or False"),
    ({"device": "toaster"}, "not a torch device"),
])
def test_bad_env_config_values_are_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        LRControlEnv(blob_task(), **kwargs)


def test_explicit_budget_is_never_replaced_by_the_tasks():
    env = LRControlEnv(blob_task(), total_steps=16, steps_per_action=8)
    assert (env.total_steps, env.steps_per_action) == (16, 8)
    with pytest.raises(ValueError, match="total_steps must be >= 1"):
        LRControlEnv(blob_task(), total_steps=0)  # used to mean "the task's 40" silently


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lr": math.inf}, "lr must be > 0, finite"),
    ({"lr": math.nan}, "lr must be > 0, finite"),
    ({"lr": -0.1}, "lr must be > 0, finite"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"total_steps": "40"}, "total_steps must be an integer"),
    ({"grad_clip": math.nan}, "grad_clip must be > 0, finite"),
])
def test_bad_task_values_are_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=f"Task 'blobs': {message}"):
        blob_task(**kwargs)


@pytest.mark.parametrize("loss", [math.nan, 0.0, -1.0, math.inf])
def test_bad_initial_validation_loss_is_an_error_at_reset(loss):
    import dataclasses

    task = dataclasses.replace(blob_task(), eval_fn=lambda *a: {"loss": loss, "accuracy": 0.5})
    env = LRControlEnv(task)
    with pytest.raises(ValueError, match="initial validation loss must be finite and > 0"):
        env.reset(seed=0)


def test_nan_metric_is_an_error_not_a_nan_reward():
    import dataclasses

    task = dataclasses.replace(blob_task(),
                               eval_fn=lambda *a: {"loss": 0.7, "accuracy": math.nan})
    with pytest.raises(ValueError, match="accuracy=nan.*must be a finite number"):
        LRControlEnv(task, reward="metric").reset(seed=0)


@pytest.mark.parametrize("action", [np.zeros(3, np.float32), np.zeros(0, np.float32),
                                    [0.1, 0.2], None, object(), "0.5", [True],
                                    np.array(["1"])])
def test_wrongly_shaped_action_is_refused(action):
    env = LRControlEnv(blob_task())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="exactly one number|must be a number"):
        env.step(action)
    # The refused action changed nothing: the episode goes on.
    _, r, *_ = env.step(np.array([np.nan], np.float32))  # NaN still counts as 0
    assert math.isfinite(r) and env._lr_state.action == 0.0


# ------------------------------------------------------------ property-based test
BAD_VALUES = [None, math.nan, math.inf, -math.inf, -1, 0, 1e308, "1", True, [1]]


@pytest.mark.slow
def test_random_configs_actions_and_tasks_give_clear_errors_or_finite_steps():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    def real(lo, hi, **kw):
        return st.floats(lo, hi, allow_nan=False, **kw)

    # Mostly valid values (so most examples reach reset and step), then at most one field
    # of the config and one of the task replaced by a bad value.
    config = st.fixed_dictionaries({}, optional={
        "mode": st.sampled_from(["anchored", "recursive"]),
        "schedule": st.sampled_from(["constant", "cosine", "linear", "step", "warmup_cosine",
                                     "onecycle"]),
        "warmup_frac": st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.5]),
        "final_lr_frac": real(0.0, 1.0),
        "max_factor": real(1.0, 1e3, exclude_min=True),
        "lr_min": real(0.0, 1.0),
        "lr_max": st.one_of(real(1e-6, 1e3), st.just(math.inf)),
        "reward": st.sampled_from(["val_loss", "val_loss_area", "train_loss", "metric",
                                   "terminal_metric"]),
        "features": st.sampled_from([("progress",), ("update_ratio", "val_vs_best"),
                                     ("gen_gap", "log_multiplier", "val_trend")]),
        "reward_scale": real(1e-3, 1e6),
        "divergence_factor": st.one_of(real(1.0, 100.0, exclude_min=True), st.just(math.inf)),
        "divergence_penalty": real(0.0, 100.0),
        "total_steps": st.integers(8, 24),
        "steps_per_action": st.integers(1, 12),
        "eval_test": st.booleans(),
        "device": st.sampled_from(["cpu", "auto", "nope"]),
    })
    config_fields = ["mode", "schedule", "warmup_frac", "final_lr_frac", "max_factor", "lr_min",
                     "lr_max", "reward", "reward_scale", "divergence_factor",
                     "divergence_penalty", "total_steps", "steps_per_action", "eval_test",
                     "device", "features"]
    task = st.fixed_dictionaries({
        "lr": st.one_of(real(1e-4, 100.0), st.sampled_from([1e-3, 0.1, 50.0])),
        "total_steps": st.integers(8, 24),
        "steps_per_action": st.integers(1, 10),
        "batch_size": st.integers(1, 40),
    })
    task_fields = ["lr", "total_steps", "steps_per_action", "batch_size"]
    bad = st.sampled_from(BAD_VALUES)
    # About one example in four corrupts the config, one in four the task.
    corrupt = st.tuples(st.integers(0, 3), st.sampled_from(config_fields), bad)
    corrupt_task = st.tuples(st.integers(0, 3), st.sampled_from(task_fields), bad)
    action = st.one_of(
        st.floats(width=32).map(lambda x: np.array([x], np.float32)),
        st.lists(st.floats(width=32), min_size=0, max_size=3).map(
            lambda xs: np.array(xs, np.float32)),
    )
    seen = {"stepped": 0}

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(config=config, corrupt=corrupt, task_kw=task, corrupt_task=corrupt_task,
           actions=st.lists(action, min_size=1, max_size=6), seed=st.integers(0, 3))
    def check(config, corrupt, task_kw, corrupt_task, actions, seed):
        if corrupt[0] == 3:
            config = {**config, corrupt[1]: corrupt[2]}
        if corrupt_task[0] == 3:
            task_kw = {**task_kw, corrupt_task[1]: corrupt_task[2]}
        try:
            env = LRControlEnv(blob_task(**task_kw), **config)
            obs, _ = env.reset(seed=seed)
        except (ValueError, TypeError):
            return
        assert env.observation_space.contains(obs)
        for a in actions:
            try:
                obs, r, term, trunc, _ = env.step(a)
            except ValueError as err:
                assert np.asarray(a).size != 1, err  # only a misshaped action may be refused
                continue
            seen["stepped"] += 1
            assert env.observation_space.contains(obs), obs
            assert math.isfinite(r), (config, task_kw, a)
            if term or trunc:
                break

    check()
    assert seen["stepped"] >= 10  # the examples exercised the env, not only the checks


INVALID = {
    "warmup_frac": [1.0, -0.1, 2.0], "final_lr_frac": [-0.1, 1.5], "max_factor": [1.0, 0.5, -2],
    "lr_min": [-1e-3, math.inf], "lr_max": [0.0, -1.0], "lr_min_factor": [0.0, 1.5, -1],
    "lr_max_factor": [0.5, -3.0], "reward_scale": [0.0, -1.0], "divergence_factor": [1.0, 0.5],
    "divergence_penalty": [-1.0, math.inf], "total_steps": [0, -5, 10**8],
    "steps_per_action": [0, 10**8], "paired_clip": [0.0, -1.0], "action_cost": [-0.1],
    "event_prob": [-0.1, 1.01], "torch_threads": [0, 10**5],
    "mode": ["both"], "schedule": ["wavy"], "reward": ["accuracy"], "reference": ["cosine"],
}


@pytest.mark.parametrize("field, bad", [(f, v) for f, vs in INVALID.items() for v in vs])
def test_every_out_of_range_config_value_is_refused_naming_the_field(field, bad):
    with pytest.raises((ValueError, TypeError), match=field):
        EnvConfig(**{field: bad})


@pytest.mark.slow
def test_random_valid_runs_follow_the_lr_rule_and_the_feature_definitions():
    # The LR of every interval is the rule's (schedule x multiplier, clamped), and the
    # observed features are their definitions, sign included: a property-based check
    # that fails when the clamp, the rule or a feature's direction changes.
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from lr_gym.features import DEFAULT_FEATURES, OBS_BOUND

    @settings(max_examples=30, deadline=None, derandomize=True)
    @given(mode=st.sampled_from(["anchored", "recursive"]),
           schedule=st.sampled_from(["constant", "cosine", "linear"]),
           max_factor=st.floats(1.1, 8.0), lr_scale=st.floats(0.01, 100.0),
           bounds=st.sampled_from([(None, None), (0.01, 0.2), (None, 0.05)]),
           actions=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=6),
           seed=st.integers(0, 3))
    def check(mode, schedule, max_factor, lr_scale, bounds, actions, seed):
        task = blob_task(lr=0.05 * lr_scale, total_steps=24, steps_per_action=4)
        env = LRControlEnv(task, mode=mode, schedule=schedule, max_factor=max_factor,
                           lr_min=bounds[0], lr_max=bounds[1], eval_test=False,
                           features=DEFAULT_FEATURES, divergence_factor=math.inf)
        obs, info = env.reset(seed=seed)
        lo, hi, lr0, l0 = env.lr_min, env.lr_max, env.lr0, info["val_loss"]
        names = list(DEFAULT_FEATURES)
        m, prev_val, best = 1.0, l0, l0
        for a in actions:
            t = info["step"]
            obs, _, done, _, info = env.step(np.array([a], np.float32))
            clipped = min(max(float(np.float32(a)), -1.0), 1.0)
            factor = max_factor ** clipped
            base = env.base_lr(t)
            m = (factor if mode == "anchored"
                 else min(max(m * factor, lo / max(base, 1e-30)), hi / max(base, 1e-30)))
            want = min(max(env.base_lr(info["step"] - 1) * m, lo), hi)
            assert info["lr"] == pytest.approx(want, rel=1e-9)  # the rule, clamped
            assert lo * (1 - 1e-12) <= info["lr"] <= hi * (1 + 1e-12)
            if not math.isfinite(info["val_loss"]):
                break

            def feat(name, obs=obs):
                return float(obs[names.index(name)])

            def clip(x):
                return float(np.float32(min(max(x, -OBS_BOUND), OBS_BOUND)))

            assert feat("progress") == pytest.approx(info["step"] / env.total_steps)
            assert feat("prev_action") == pytest.approx(clipped, abs=1e-6)
            assert feat("log_lr_ratio") == pytest.approx(clip(math.log(info["lr"] / lr0)),
                                                         abs=1e-5)
            assert feat("log_val_loss") == pytest.approx(clip(math.log(info["val_loss"] / l0)),
                                                         abs=1e-5)
            assert feat("val_trend") == pytest.approx(clip(math.log(info["val_loss"] / prev_val)),
                                                      abs=1e-5)
            # Against the lowest loss before this interval (negative at a new best).
            assert feat("val_vs_best") == pytest.approx(clip(math.log(info["val_loss"] / best)),
                                                        abs=1e-5)
            best = min(best, info["val_loss"])
            assert feat("val_metric") == pytest.approx(info["val_metric"], abs=1e-6)
            prev_val = info["val_loss"]
            if done:
                break

    check()
