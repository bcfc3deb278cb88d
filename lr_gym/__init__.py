"""lr_gym: learning-rate control as Gymnasium environments.

Importing the package registers the built-in ``lr_gym/`` env ids; it builds no model
and loads no data (entry points and tasks are resolved on ``gym.make``).
"""

from __future__ import annotations

from typing import Any

from lr_gym.config import EnvConfig
from lr_gym.registration import (
    add_task,
    get_task,
    lr_gym_env_ids,
    register_mix,
    register_task,
    task_names,
)
from lr_gym.tasks.base import Task, TaskData

__version__ = "0.1.0"

_E = "lr_gym.tasks.embedded"
# name -> (task factory, description); ids are lr_gym/<name>-v0.
BUILTIN_TASKS: dict[str, str] = {
    "Digits-MLP": f"{_E}:digits_mlp",
    "Wine-MLP": f"{_E}:wine_mlp",
    "BreastCancer-MLP": f"{_E}:cancer_mlp",
    "Digits-CNN": f"{_E}:digits_cnn_task",
    "Digits-CNN-Adam": f"{_E}:digits_cnn_adam",
    "Digits-CNN-LowLR": f"{_E}:digits_cnn_low_lr",
    "SQuADv2-RoBERTa": "lr_gym.tasks.squad:squad_v2_roberta_full",
    "SQuADv2-RoBERTa-CPU": "lr_gym.tasks.squad:squad_v2_roberta_cpu",
    "CoNLL2003-BiLSTMCRF": "lr_gym.tasks.conll:conll2003_bilstm_crf_full",
    "CoNLL2003-BiLSTMCRF-CPU": "lr_gym.tasks.conll:conll2003_bilstm_crf_cpu",
    "CIFAR10-ResNet18": "lr_gym.tasks.cifar10:cifar10_resnet18_full",
    "CIFAR10-ResNet18-CPU": "lr_gym.tasks.cifar10:cifar10_resnet18_cpu",
    "IMDB-BERT": "lr_gym.tasks.imdb:imdb_bert_full",
    "IMDB-BERT-CPU": "lr_gym.tasks.imdb:imdb_bert_cpu",
}
for _name, _ref in BUILTIN_TASKS.items():
    register_task(_ref, name=_name)

TRAIN_MIX_ID = register_mix("EmbeddedMix", f"{_E}:train_variants")
"""Default training env: every variant of the training families."""
HELD_OUT_MIX_ID = register_mix("EmbeddedHeldOut", f"{_E}:held_out_variants")
"""Every variant of the held-out family (never used by default training)."""
DEFAULT_EVAL_IDS: tuple[str, ...] = (
    "lr_gym/Digits-CNN-v0",
    "lr_gym/Digits-CNN-Adam-v0",
    "lr_gym/Digits-CNN-LowLR-v0",
)
"""Held-out ids (the digits-cnn family) that ``evaluate_agent.py`` uses by default."""


def __getattr__(name: str) -> Any:
    # Env classes import lazily so `import lr_gym` stays cheap.
    if name in ("LRControlEnv", "MultiTaskEnv"):
        from lr_gym import envs

        return getattr(envs, name)
    raise AttributeError(f"module 'lr_gym' has no attribute {name!r}")


__all__ = [
    "DEFAULT_EVAL_IDS",
    "HELD_OUT_MIX_ID",
    "TRAIN_MIX_ID",
    "EnvConfig",
    "LRControlEnv",
    "MultiTaskEnv",
    "Task",
    "TaskData",
    "add_task",
    "get_task",
    "lr_gym_env_ids",
    "register_mix",
    "register_task",
    "task_names",
]
