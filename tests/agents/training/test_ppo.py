from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

import lr_gym  # noqa: F401 - registers the ids
from agents.common.runs import latest_run, mark_complete
from agents.training.ppo import (
    AgentFileError,
    PPOController,
    PPOHyperparams,
    load_hyperparams,
    make_ppo,
)
from lr_gym.features import OBS_DIM


def test_hyperparams_from_yaml_and_fallback(tmp_path):
    hp = load_hyperparams("lr_gym/EmbeddedMix-v1")
    assert (hp.learning_rate, hp.batch_size, hp.n_epochs) == (0.001, 32, 5)  # the plan's
    assert hp.net_arch == (64, 32) and hp.activation_fn == "relu"
    # The action mode chosen on the dev families (docs/experiments.md, "Action mode").
    assert dict(hp.env_kwargs) == {"mode": "anchored", "schedule": "cosine", "max_factor": 4.0}
    other = load_hyperparams("lr_gym/Unlisted-v1", n_timesteps=7)
    assert other.n_timesteps == 7
    f = tmp_path / "hp.yml"
    f.write_text(yaml.safe_dump({"lr_gym/X-v1": {"learning_rte": 1.0}}))
    with pytest.raises(TypeError, match="Unknown PPO hyperparameter.*learning_rte"):
        load_hyperparams("lr_gym/X-v1", f)
    with pytest.raises(KeyError, match="no 'default'"):
        load_hyperparams("lr_gym/Y-v1", f)


def test_policy_is_the_design_meta_network():
    venv = make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1"), n_envs=1)
    model = make_ppo(venv, PPOHyperparams(n_steps=32), seed=0, device="cpu")
    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(OBS_DIM, 64), (64, 32)]
    assert any(isinstance(m, nn.ReLU) for m in model.policy.mlp_extractor.value_net)
    assert (model.learning_rate, model.batch_size, model.n_epochs) == (1e-3, 32, 5)


def test_train_save_load_predict_round_trip(tmp_path):
    hp = PPOHyperparams(n_steps=32, batch_size=16, n_epochs=1)
    venv = VecNormalize(
        make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1", total_steps=60,
                                      steps_per_action=10), n_envs=1, seed=0)
    )
    model = make_ppo(venv, hp, seed=0, device="cpu")
    model.learn(64)
    run = tmp_path / "ppo" / "Digits-MLP-v1_1"
    run.mkdir(parents=True)
    model.save(run / "model.zip")
    venv.save(str(run / "vecnormalize.pkl"))
    config = {"hyperparams": {"env_kwargs": {"mode": "recursive"}}}
    (run / "config.yml").write_text(yaml.safe_dump(config))
    mark_complete(run)

    assert latest_run(tmp_path) == run
    ctrl = PPOController.load(run, device="cpu")
    assert ctrl.env_kwargs() == {"mode": "recursive"}
    obs = np.random.default_rng(0).normal(size=(5, OBS_DIM)).astype(np.float32)
    for o in obs:
        expected, _ = model.predict(venv.normalize_obs(o), deterministic=True)
        np.testing.assert_allclose(ctrl.act(o, {}), expected.reshape(1), rtol=1e-6)


def test_latest_run_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_agent.py"):
        latest_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.zip"):
        PPOController.load(tmp_path)



# ------------------------------------------------------------------ issue #8
@pytest.mark.parametrize(("values", "error", "message"), [
    ({"n_steps": "abc"}, TypeError, "n_steps must be a number, got 'abc'"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 2"),
    ({"n_envs": 0}, ValueError, "n_envs must be >= 1"),
    ({"n_timesteps": 0}, ValueError, "n_timesteps must be >= 1"),
    ({"n_timesteps": -5}, ValueError, "n_timesteps must be >= 1"),
    ({"n_epochs": 2.5}, TypeError, "n_epochs must be an integer"),
    ({"learning_rate": "nan"}, ValueError, "learning_rate must be > 0, finite"),
    ({"gamma": 1.5}, ValueError, "gamma must be >= 0 and <= 1, finite"),
    ({"normalize_obs": "yes"}, TypeError, "normalize_obs must be true or false"),
    ({"net_arch": [64, 0]}, ValueError, "net_arch must be a list of positive integers"),
    ({"net_arch": "64"}, TypeError, "net_arch must be a list of positive integers"),
    ({"activation_fn": "gelu"}, ValueError, "activation_fn must be one of"),
    ({"policy": "CnnPolicy"}, ValueError, "policy must be 'MlpPolicy'"),
    ({"n_steps": 1, "n_envs": 1}, ValueError, "n_steps \\* n_envs must be >= 2"),
    ({"env_kwargs": {"total_steps": 0}}, ValueError, "env_kwargs: total_steps must be >= 1"),
    ({"env_kwargs": {"max_factor": 20.0}}, ValueError, "env_kwargs: max_factor must be .*<= 10"),
    ({"env_kwargs": {"learning_rte": 1}}, TypeError, "env_kwargs: Unknown EnvConfig option"),
    ({"env_kwargs": [1]}, TypeError, "env_kwargs must be a mapping"),
])
def test_bad_hyperparams_are_refused_with_the_key_and_range(values, error, message):
    # One error type per kind of mistake: TypeError for a wrong type, ValueError for a
    # wrong value (as EnvConfig and the resume-state checks).
    with pytest.raises(error, match=message):
        PPOHyperparams.from_dict(values)


def test_yaml_number_strings_are_parsed():
    hp = PPOHyperparams.from_dict({"learning_rate": "3e-4", "n_timesteps": "1e3",
                                   "env_kwargs": None})
    assert (hp.learning_rate, hp.n_timesteps, hp.env_kwargs) == (3e-4, 1000, {})


def _saved_run(root, name, complete=True, zip_bytes=None):
    run = root / "ppo" / name
    run.mkdir(parents=True)
    (run / "model.zip").write_bytes(zip_bytes or b"PK")
    if complete:
        mark_complete(run, num_timesteps=1)
    return run


def test_latest_run_skips_incomplete_runs_with_a_note(tmp_path, capsys):
    import os

    done = _saved_run(tmp_path, "Env_1")
    cut = _saved_run(tmp_path, "Env_2", complete=False, zip_bytes=b"PK\x03\x04trunc")
    os.utime(cut / "model.zip", (2e9, 2e9))  # the newest model.zip: used to be picked
    assert latest_run(tmp_path) == done
    assert "skipping 1 incomplete run folder(s)" in capsys.readouterr().err
    (done / "complete.json").unlink()
    with pytest.raises(FileNotFoundError, match="No trained agent .*no complete run"):
        latest_run(tmp_path)


@pytest.fixture(scope="module")
def saved_agent(tmp_path_factory):
    venv = VecNormalize(make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1"), n_envs=1))
    model = make_ppo(venv, PPOHyperparams(n_steps=32), seed=0, device="cpu")
    run = tmp_path_factory.mktemp("agent")
    model.save(run / "model.zip")
    venv.save(str(run / "vecnormalize.pkl"))
    return run


def test_corrupt_model_or_normalisation_is_an_error_naming_the_file(saved_agent, tmp_path):
    raw = (saved_agent / "model.zip").read_bytes()
    for name, data in {"half": raw[: len(raw) // 2], "tail": raw[:-10],
                       "flip": raw[:1000] + bytes([raw[1000] ^ 0xFF]) + raw[1001:]}.items():
        run = tmp_path / name
        run.mkdir()
        (run / "model.zip").write_bytes(data)
        (run / "vecnormalize.pkl").write_bytes((saved_agent / "vecnormalize.pkl").read_bytes())
        with pytest.raises(AgentFileError, match=f"{run / 'model.zip'} is not a readable SB3"):
            PPOController.load(run)
    run = tmp_path / "norm"
    run.mkdir()
    (run / "model.zip").write_bytes(raw)
    (run / "vecnormalize.pkl").write_bytes((saved_agent / "vecnormalize.pkl").read_bytes()[:50])
    with pytest.raises(AgentFileError, match="vecnormalize.pkl is not a readable VecNormalize"):
        PPOController.load(run)
    (run / "vecnormalize.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="No observation normalisation"):
        PPOController.load(run)  # never silently without normalisation


def test_v2_policy_starts_as_static_exactly(tmp_path):
    # A zero action head: the untrained policy's deterministic action is 0 for every
    # observation, which in v2's rule (a multiplier on a constant base) is static.
    from agents.baselines import make_baseline
    from agents.common.runs import CONTROLLER
    from agents.controller.export import export_controller
    from agents.evaluation.rollout import run_episode
    from agents.training.envs import id_env_kwargs

    hp = load_hyperparams("lr_gym/TrainFamilies-v2")
    assert hp.zero_init_action and hp.log_std_init == -1.6 and hp.target_kl == 0.02
    env_kwargs = id_env_kwargs(["lr_gym/TrainFamilies-v2"])
    assert env_kwargs["mode"] == "recursive" and env_kwargs["reward"] == "paired"
    venv = VecNormalize(make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1",
                                                      features=env_kwargs["features"]),
                                     n_envs=1))
    model = make_ppo(venv, hp, seed=0, device="cpu")
    assert float(model.policy.log_std.exp().mean()) == pytest.approx(np.exp(-1.6))
    obs = np.random.default_rng(0).normal(0, 3, (50, venv.observation_space.shape[0]))
    acts, _ = model.predict(obs.astype(np.float32), deterministic=True)
    assert np.all(acts == 0)
    ctl = PPOController(model, venv.obs_rms.mean, venv.obs_rms.var, env_kwargs=env_kwargs)
    path = export_controller(ctl, tmp_path / CONTROLLER)
    from agents.controller import PolicyController

    learned = run_episode("lr_gym/Waves-Conv1D-v1", PolicyController.load(path), 0)
    static = run_episode("lr_gym/Waves-Conv1D-v1", make_baseline("static"), 0)
    assert learned.lrs == static.lrs and learned.val_loss == static.val_loss
    assert learned.test == static.test


def test_critic_warmup_trains_the_value_function_alone():
    from agents.training.callbacks import CriticWarmup
    from agents.training.ppo import actor_parameters

    venv = make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1", total_steps=40,
                                         steps_per_action=10), n_envs=1)
    model = make_ppo(venv, PPOHyperparams(n_steps=8, batch_size=8, n_epochs=1,
                                          zero_init_action=True), seed=0, device="cpu")
    actor = [p.detach().clone() for p in actor_parameters(model)]
    critic = [p.detach().clone() for p in model.policy.value_net.parameters()]
    model.learn(16, callback=CriticWarmup(rollouts=2))  # two rollouts: both warm-up
    assert all(np.array_equal(a, b.detach()) for a, b in zip(actor, actor_parameters(model),
                                                             strict=True))
    assert not all(np.array_equal(a, b.detach())
                   for a, b in zip(critic, model.policy.value_net.parameters(), strict=True))
    assert all(p.requires_grad for p in actor_parameters(model))  # given back afterwards
    model.learn(8, callback=CriticWarmup(rollouts=2), reset_num_timesteps=False)  # third
    assert not all(np.array_equal(a, b.detach())
                   for a, b in zip(actor, actor_parameters(model), strict=True))


def test_a_killed_run_without_its_model_points_at_its_last_checkpoint(tmp_path):
    from agents.training.ppo import check_model_zip

    (tmp_path / "checkpoints").mkdir()
    for steps in (16, 128, 32):
        (tmp_path / "checkpoints" / f"model_{steps}_steps.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"-i .*model_128_steps\.zip"):
        check_model_zip(tmp_path / "model.zip")
    with pytest.raises(FileNotFoundError, match=r"No model file [^ ]*\.$"):
        check_model_zip(tmp_path / "elsewhere" / "model.zip")


def test_an_untrained_v3_policy_is_the_dev_chosen_fixed_decay_exactly(tmp_path):
    # Controller v3's rule is a residual over the fixed decay dev chose (linear to 0 of
    # Prodigy's lr): with a zero action head its untrained policy is that schedule, bit
    # for bit, so PPO starts from the best open-loop control and is paid for departures.
    from agents.baselines.open_loop import fixed_decay
    from agents.common.runs import CONTROLLER
    from agents.controller import PolicyController
    from agents.controller.export import export_controller
    from agents.evaluation.rollout import run_episode
    from lr_gym.config import V3_ENV_KWARGS

    hp = load_hyperparams("lr_gym/TrainFamilies-v2")
    assert hp.zero_init_action
    venv = VecNormalize(make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1",
                                                      features=V3_ENV_KWARGS["features"]),
                                     n_envs=1))
    model = make_ppo(venv, hp, seed=0, device="cpu")
    ctl = PPOController(model, venv.obs_rms.mean, venv.obs_rms.var, env_kwargs=V3_ENV_KWARGS)
    learned = PolicyController.load(export_controller(ctl, tmp_path / CONTROLLER))
    short = {"total_steps": 90}
    a = run_episode("lr_gym/Waves-Conv1D-v1", learned, 0, env_kwargs=short)
    b = run_episode("lr_gym/Waves-Conv1D-v1", fixed_decay("linear", learned.env_kwargs()), 0,
                    env_kwargs=short)
    assert a.actions == [0.0] * len(a.actions)
    assert a.lrs == b.lrs and a.val_loss == b.val_loss and a.test == b.test
    assert a.lrs[1] > a.lrs[-1] > 0  # it decays
