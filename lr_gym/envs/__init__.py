"""Environments."""

from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.envs.multi_task import MultiTaskEnv, PerEpisodeTaskEnv
from lr_gym.envs.sampled import SampledTaskEnv

__all__ = ["LRControlEnv", "MultiTaskEnv", "PerEpisodeTaskEnv", "SampledTaskEnv"]
