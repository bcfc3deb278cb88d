"""lr_gym: learning-rate control as Gymnasium environments.

Importing the package registers the built-in ``lr_gym/`` env ids
(:mod:`lr_gym.builtin_envs`) when gymnasium is installed (the ``[train]`` extra); it
builds no model and loads no data (entry points and tasks are resolved on ``gym.make``).
The core install (``pip install lr-gym``: torch, numpy, safetensors, prodigyopt) has no
envs and is enough to deploy a trained controller (:mod:`lr_gym.control`).
:mod:`lr_gym.splits` declares which built-in task families (and ids) are for
training (:data:`TRAIN`), development choices (:data:`DEV`) and final evaluation
only (:data:`TEST`). Each split has a mix of fixed variants (``lr_gym/EmbeddedMix-v1``,
...) and a sampler that draws a fresh task of its families every episode
(``lr_gym/TrainFamilies-v1``, ``lr_gym/DevFamilies-v1``, ``lr_gym/TestFamilies-v1``;
see :mod:`lr_gym.tasks.families.base`).
"""

from __future__ import annotations

from typing import Any

from lr_gym import splits
from lr_gym.config import EnvConfig
from lr_gym.splits import DEV, SPLITS, TEST, TRAIN, refuse_split, split_of_env
from lr_gym.tasks.base import Task, TaskData

_ENV_NAMES = (
    "BUILTIN_TASKS", "BUILTIN_VERSIONS", "DEV_FAMILIES_ID", "DEV_FAMILIES_V2_ID",
    "DEV_FAMILIES_V3_ID", "DEV_MIX_ID", "ENV_VERSION", "TEST_FAMILIES_ID", "TEST_MIX_ID",
    "TRAIN_FAMILIES_ID", "TRAIN_FAMILIES_V2_ID", "TRAIN_FAMILIES_V3_ID", "TRAIN_MIX_ID",
    "add_task", "get_task", "is_multi_task", "lr_gym_env_ids", "register_mix",
    "register_sampler", "register_task", "task_for", "task_names", "tasks_for",
)
"""What needs gymnasium: the registry and the built-in ids."""

try:
    import gymnasium  # noqa: F401
except ModuleNotFoundError as err:  # the core install: a deployed controller needs no envs
    if err.name != "gymnasium":
        raise
    HAS_ENVS = False
else:
    HAS_ENVS = True
    from lr_gym.builtin_envs import (
        BUILTIN_TASKS,
        BUILTIN_VERSIONS,
        DEV_FAMILIES_ID,
        DEV_FAMILIES_V2_ID,
        DEV_FAMILIES_V3_ID,
        DEV_MIX_ID,
        TEST_FAMILIES_ID,
        TEST_MIX_ID,
        TRAIN_FAMILIES_ID,
        TRAIN_FAMILIES_V2_ID,
        TRAIN_FAMILIES_V3_ID,
        TRAIN_MIX_ID,
    )
    from lr_gym.registration import (
        ENV_VERSION,
        add_task,
        get_task,
        is_multi_task,
        lr_gym_env_ids,
        register_mix,
        register_sampler,
        register_task,
        task_for,
        task_names,
        tasks_for,
    )
# HAS_ENVS: whether gymnasium is installed, so the built-in ``lr_gym/`` ids are registered.

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _ENV_NAMES:  # only missing without gymnasium
        raise AttributeError(f"lr_gym.{name} needs gymnasium, the [train] extra: "
                             "pip install -e \".[train]\"")
    # Env classes import lazily so `import lr_gym` stays cheap.
    if name in ("LRControlEnv", "MultiTaskEnv", "SampledTaskEnv"):
        from lr_gym import envs

        return getattr(envs, name)
    raise AttributeError(f"module 'lr_gym' has no attribute {name!r}")


__all__ = [
    "BUILTIN_TASKS",
    "BUILTIN_VERSIONS",
    "DEV",
    "DEV_FAMILIES_ID",
    "DEV_FAMILIES_V2_ID",
    "DEV_FAMILIES_V3_ID",
    "DEV_MIX_ID",
    "ENV_VERSION",
    "HAS_ENVS",
    "SPLITS",
    "TEST",
    "TEST_FAMILIES_ID",
    "TEST_MIX_ID",
    "TRAIN",
    "TRAIN_FAMILIES_ID",
    "TRAIN_FAMILIES_V2_ID",
    "TRAIN_FAMILIES_V3_ID",
    "TRAIN_MIX_ID",
    "EnvConfig",
    "LRControlEnv",
    "MultiTaskEnv",
    "SampledTaskEnv",
    "Task",
    "TaskData",
    "add_task",
    "get_task",
    "is_multi_task",
    "lr_gym_env_ids",
    "refuse_split",
    "register_mix",
    "register_sampler",
    "register_task",
    "split_of_env",
    "splits",
    "task_for",
    "task_names",
    "tasks_for",
]
