"""Environments."""

from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.envs.multi_task import MultiTaskEnv

__all__ = ["LRControlEnv", "MultiTaskEnv"]
