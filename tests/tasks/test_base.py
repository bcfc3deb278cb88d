"""lr_gym.tasks.base: the chance loss a task's training targets imply."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from torch.utils.data import TensorDataset

import lr_gym  # noqa: F401 - registers the ids
from lr_gym.features import V3_FEATURES
from lr_gym.tasks.base import data_chance_loss


def test_the_chance_loss_of_labels_is_their_entropy_and_of_targets_their_variance():
    x = torch.zeros(8, 2)
    assert data_chance_loss(TensorDataset(x, torch.tensor([0, 1] * 4))) == pytest.approx(
        math.log(2))
    skewed = torch.tensor([0] * 6 + [2] * 2)  # class 1 never appears
    assert data_chance_loss(TensorDataset(x, skewed)) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    y = torch.tensor([[1.0], [3.0], [1.0], [3.0], [1.0], [3.0], [1.0], [3.0]])
    assert data_chance_loss(TensorDataset(x, y)) == pytest.approx(1.0)
    # Nothing to estimate from: one class, a constant target, no targets, no tensors.
    assert data_chance_loss(TensorDataset(x, torch.zeros(8, dtype=torch.long))) is None
    assert data_chance_loss(TensorDataset(x, torch.ones(8, 1))) is None
    assert data_chance_loss(TensorDataset(x)) is None
    assert data_chance_loss([{"text": "a", "label": 0}]) is None


def test_the_env_starts_a_fine_tuning_run_far_from_chance_and_a_fresh_one_near_it():
    def start(env_id: str) -> float:
        env = gym.make(env_id, features=V3_FEATURES, base="prodigy")
        obs, _ = env.reset(seed=0)
        return float(obs[V3_FEATURES.index("loss_vs_chance")])

    assert abs(start("lr_gym/Digits-MLP-v1")) < 0.1  # a fresh model: about chance
    assert start("lr_gym/Digits-CNN-Finetune-v1") > 1.0  # pretrained on other labels
