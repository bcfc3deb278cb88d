"""Small builders shared by tests."""

from __future__ import annotations

import functools

import torch
from torch.utils.data import TensorDataset

from lr_gym.tasks import Task, TaskData
from lr_gym.tasks.grids.embedded import load_sklearn_data, mlp


@functools.cache
def blob_data(n: int = 192, dim: int = 8, seed: int = 0) -> TaskData:
    """Two Gaussian blobs: a tiny, fast, learnable classification problem."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, dim, generator=g) + 1.5 * y[:, None].float()
    a, b = n // 2, 3 * n // 4
    return TaskData(
        train=TensorDataset(x[:a], y[:a]),
        val=TensorDataset(x[a:b], y[a:b]),
        test=TensorDataset(x[b:], y[b:]),
    )


def blob_task(name: str = "blobs", lr: float = 0.1, **kw) -> Task:
    """A tiny custom task (model with dropout, so training RNG matters)."""
    defaults = dict(batch_size=16, total_steps=40, steps_per_action=8)
    defaults.update(kw)
    return Task(
        name=name,
        model_fn=lambda: torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2)
        ),
        data_fn=blob_data,
        lr=lr,
        **defaults,
    )


def digits_task(lr: float, **kw) -> Task:
    """Digits MLP with a chosen lr0 (e.g. absurdly high, to force divergence)."""
    defaults = dict(total_steps=60, steps_per_action=10)
    defaults.update(kw)
    return Task(
        name=f"digits-lr{lr:g}",
        model_fn=lambda: mlp(64, (32,), 10),
        data_fn=functools.partial(load_sklearn_data, "digits"),
        lr=lr,
        **defaults,
    )


def save_tiny_bert(path, words) -> str:  # noqa: ANN001 - a path
    """A tiny random BERT encoder and WordPiece tokenizer saved like the packaged MiniLM.

    Stands in for all-MiniLM-L6-v2 (a saved ``BertModel``, no task head) so the MiniLM
    presets run without the ``pretrained`` extra. ``words`` (lower-cased) and the digits
    make the vocabulary.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    digits = [str(i) for i in range(10)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *digits, *[f"##{d}" for d in digits]]
    vocab += sorted({w.lower() for w in words} - set(vocab))
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    return str(path)


def untrained_controller_file(env_id: str, path):  # noqa: ANN001, ANN201 - a path
    """An untrained PPO policy on ``env_id`` exported as a controller file (anchored rule)."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    from agents.deploy import export_controller
    from agents.training.ppo import PPOController, PPOHyperparams, make_ppo

    venv = make_vec_env(lambda: gym.make(env_id), n_envs=1)
    n = venv.observation_space.shape[0]
    model = make_ppo(venv, PPOHyperparams(n_steps=32), seed=0, device="cpu")
    ctl = PPOController(model, np.zeros(n), np.ones(n), env_kwargs={"mode": "anchored"})
    return export_controller(ctl, path)


def reship_controller(path) -> None:  # noqa: ANN001 - a path
    """Overwrites the controller file at ``path`` with another valid one (action bias +0.5)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from lr_gym.control.file import _digest

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["action.bias"] = tensors["action.bias"] + 0.5
    meta["sha256"] = _digest(meta["config"], tensors)
    save_file(tensors, str(path), metadata=meta)


def edit_provenance(src, dst):  # noqa: ANN001, ANN201 - paths
    """A copy of a controller file with only its ``source`` changed, checksum recomputed."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from lr_gym.control.file import _digest

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    config = json.loads(meta["config"])
    config["source"] = {"run": "/somewhere/else", "note": "re-exported"}
    tensors = load_file(str(src))
    meta["config"] = json.dumps(config, sort_keys=True)
    meta["sha256"] = _digest(meta["config"], tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


USER_TASK = (
    "import torch\n"
    "from torch.utils.data import TensorDataset\n"
    "from lr_gym import Task, TaskData, register_task\n\n"
    "def data():\n"
    "    g = torch.Generator().manual_seed(0)\n"
    "    x = torch.randn(120, 4, generator=g)\n"
    "    y = (x[:, 0] > 0).long()\n"
    "    return TaskData(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:100], y[80:100]),\n"
    "                    TensorDataset(x[100:], y[100:]))\n\n"
    "def model():\n"
    "    return torch.nn.Linear(4, 2)\n\n"
    "register_task(Task('{name}', model, data, lr=0.1, total_steps=8,\n"
    "                   steps_per_action=4, batch_size=16))\n")
"""A user's own module that registers one tiny task: ``format(name=...)``, write it, name
it with ``--gym-packages``."""
