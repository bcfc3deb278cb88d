"""The training callbacks on their own: each with a tiny PPO run."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import lr_gym  # noqa: F401 - registers the ids
from agents.controller import load_controller_file
from agents.training.callbacks import SaveAgent, training_callbacks
from agents.training.ppo import PPOHyperparams, make_ppo


def _model():
    venv = VecNormalize(make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1", total_steps=20,
                                                      steps_per_action=10), n_envs=1))
    return make_ppo(venv, PPOHyperparams(n_steps=8, batch_size=8, n_epochs=1), seed=0,
                    device="cpu")


def test_save_agent_writes_complete_checkpoints_every_n_calls(tmp_path):
    model = _model()
    model.learn(16, callback=SaveAgent(tmp_path / "ckpt", {"mode": "anchored"},
                                       {"run": "test"}, every=8))
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["controller_16_steps.safetensors", "controller_8_steps.safetensors",
                     "model_16_steps.zip", "model_8_steps.zip", "vecnormalize_16_steps.pkl",
                     "vecnormalize_8_steps.pkl"]
    policy = load_controller_file(tmp_path / "ckpt" / "controller_16_steps.safetensors")
    assert policy.env_config.mode == "anchored"
    assert policy.config["source"]["num_timesteps"] == 16


def test_training_callbacks_follow_the_hyperparameters(tmp_path):
    hp = PPOHyperparams(n_envs=2, checkpoint_freq=64, eval_freq=0, critic_warmup=3)
    kinds = [type(c).__name__ for c in training_callbacks(tmp_path, hp, {}, None, 0)]
    assert kinds == ["SaveAgent", "CriticWarmup"]
    assert training_callbacks(tmp_path, PPOHyperparams(checkpoint_freq=0), {}, None, 0) == []
