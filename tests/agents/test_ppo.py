from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

import lr_gym  # noqa: F401 - registers the ids
from agents.ppo import PPOController, PPOHyperparams, latest_run, load_hyperparams, make_ppo


def test_hyperparams_from_yaml_and_fallback(tmp_path):
    hp = load_hyperparams("lr_gym/EmbeddedMix-v0")
    assert (hp.learning_rate, hp.batch_size, hp.n_epochs) == (0.001, 32, 5)  # the plan's
    assert hp.net_arch == (64, 32) and hp.activation_fn == "relu"
    other = load_hyperparams("lr_gym/Unlisted-v0", n_timesteps=7)
    assert other.n_timesteps == 7
    f = tmp_path / "hp.yml"
    f.write_text(yaml.safe_dump({"lr_gym/X-v0": {"learning_rte": 1.0}}))
    with pytest.raises(ValueError, match="Unknown PPO hyperparameter.*learning_rte"):
        load_hyperparams("lr_gym/X-v0", f)
    with pytest.raises(KeyError, match="no 'default'"):
        load_hyperparams("lr_gym/Y-v0", f)


def test_policy_is_the_design_meta_network():
    venv = make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v0"), n_envs=1)
    model = make_ppo(venv, PPOHyperparams(n_steps=32), seed=0, device="cpu")
    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(11, 64), (64, 32)]
    assert any(isinstance(m, nn.ReLU) for m in model.policy.mlp_extractor.value_net)
    assert (model.learning_rate, model.batch_size, model.n_epochs) == (1e-3, 32, 5)


def test_train_save_load_predict_round_trip(tmp_path):
    hp = PPOHyperparams(n_steps=32, batch_size=16, n_epochs=1)
    venv = VecNormalize(
        make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v0", total_steps=60,
                                      steps_per_action=10), n_envs=1, seed=0)
    )
    model = make_ppo(venv, hp, seed=0, device="cpu")
    model.learn(64)
    run = tmp_path / "ppo" / "Digits-MLP-v0_1"
    run.mkdir(parents=True)
    model.save(run / "model.zip")
    venv.save(str(run / "vecnormalize.pkl"))
    config = {"hyperparams": {"env_kwargs": {"mode": "recursive"}}}
    (run / "config.yml").write_text(yaml.safe_dump(config))

    assert latest_run(tmp_path) == run
    ctrl = PPOController.load(run, device="cpu")
    assert ctrl.env_kwargs() == {"mode": "recursive"}
    obs = np.random.default_rng(0).normal(size=(5, 11)).astype(np.float32)
    for o in obs:
        expected, _ = model.predict(venv.normalize_obs(o), deterministic=True)
        np.testing.assert_allclose(ctrl.act(o, {}), expected.reshape(1), rtol=1e-6)


def test_latest_run_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_agent.py"):
        latest_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.zip"):
        PPOController.load(tmp_path)

