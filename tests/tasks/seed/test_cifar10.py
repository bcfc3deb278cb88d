from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lr_gym
from lr_gym.tasks.seed import cifar10
from lr_gym.tasks.seed.data import DATA_DIR_ENV, DataNotFoundError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_split(root, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}
    )
    ds = datasets.Dataset.from_dict(
        {"img": [Image.fromarray(a) for a in images], "label": labels.tolist()},
        features=features,
    )
    (root / "cifar10").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(root / "cifar10" / f"{split}.parquet"))
    return images, labels


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    train = write_split(root, "train", 64, seed=0)
    test = write_split(root, "test", 16, seed=1)
    return root, train, test


def test_load_decodes_and_carves_validation_from_train(data_root):
    root, (images, labels), (test_images, test_labels) = data_root
    data = cifar10.load_cifar10(str(root), val_size=16)
    xtr, ytr = data.train.tensors
    xv, yv = data.val.tensors
    xte, yte = data.test.tensors
    assert xtr.shape == (48, 3, 32, 32) and xv.shape == (16, 3, 32, 32)
    assert xtr.dtype == torch.uint8
    # Lossless round trip, and the validation images come from the train split.
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    expected = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert torch.equal(xv, expected[order[:16]])
    assert torch.equal(ytr, torch.from_numpy(labels)[order[16:]])
    assert torch.equal(xte, torch.from_numpy(test_images).permute(0, 3, 1, 2))
    assert torch.equal(yte, torch.from_numpy(test_labels))
    # Cached per arguments; caps apply after the split.
    assert cifar10.load_cifar10(str(root), val_size=16) is data
    small = cifar10.load_cifar10(str(root), val_size=16, max_train_examples=8, max_test_examples=4)
    assert len(small.train) == 8 and len(small.test) == 4 and len(small.val) == 16


def test_bad_val_size_is_a_clear_error(data_root):
    with pytest.raises(ValueError, match="val_size=64 must be between 1 and 63"):
        cifar10.load_cifar10(str(data_root[0]), val_size=64)


def test_augment_is_pad_crop_and_flip():
    x = torch.arange(3 * 2 * 6 * 6, dtype=torch.float32).reshape(3, 2, 6, 6)
    torch.manual_seed(0)
    out = cifar10.augment(x, pad=2)
    torch.manual_seed(0)  # replay the same draws
    dy, dx = torch.randint(0, 5, (3, 1)), torch.randint(0, 5, (3, 1))
    flip = torch.rand(3, 1) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(3):
        ref = padded[i, :, dy[i, 0] : dy[i, 0] + 6, dx[i, 0] : dx[i, 0] + 6]
        assert torch.equal(out[i], ref.flip(-1) if flip[i, 0] else ref)
    # Without padding only flips remain: every output is the image or its mirror.
    out = cifar10.augment(x, pad=0)
    for i in range(3):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))


def test_model_normalises_and_trains_one_step():
    torch.manual_seed(0)
    model = cifar10.resnet18(cifar_stem=False)
    mean = torch.tensor(cifar10.CIFAR10_MEAN).view(1, 3, 1, 1) * 255
    assert torch.allclose(model[0](mean.expand(1, 3, 2, 2)), torch.zeros(1, 3, 2, 2), atol=1e-5)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model[1].fc.weight.detach().clone()
    loss = cifar10.augmented_loss(model, (x, y))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model[1].fc.weight)
    stem = cifar10.resnet18(cifar_stem=True)[1]
    assert stem.conv1.kernel_size == (3, 3) and stem.conv1.stride == (1, 1)
    assert isinstance(stem.maxpool, torch.nn.Identity)


def test_cpu_preset_sizes_episode_from_the_local_subset():
    task = lr_gym.get_task("CIFAR10-ResNet18-CPU")
    assert (task.batch_size, task.total_steps, task.steps_per_action) == (64, 300, 20)
    assert task.data_fn.keywords["val_size"] == 500
    assert task.model_fn.args == (10, False)


def test_full_preset_carries_the_plan():
    task = lr_gym.get_task("lr_gym/CIFAR10-ResNet18-v1")
    assert task.lr == 0.1 and task.optimizer is torch.optim.SGD
    assert dict(task.optimizer_kwargs) == {"momentum": 0.9, "weight_decay": 5e-4}
    assert task.batch_size == 128
    steps_per_epoch = (50_000 - 5_000) // 128
    assert task.total_steps == 50 * steps_per_epoch == 17_550
    assert task.steps_per_action == steps_per_epoch
    assert task.data_fn.keywords["hub_name"] == "cifar10"
    assert task.data_fn.keywords["val_size"] == 5_000
    assert task.model_fn.args == (10, True)
    # Budget knobs override the plan.
    assert cifar10.cifar10_resnet18_full(epochs=2).total_steps == 2 * steps_per_epoch


def test_full_preset_offline_names_the_data_dir_variable(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "ds")
    cifar10.load_cifar10.cache_clear()
    task = cifar10.cifar10_resnet18_full()  # building the task loads nothing
    with pytest.raises(DataNotFoundError, match=DATA_DIR_ENV):
        task.data_fn()


def tiny_kwargs(root) -> dict:
    return {
        "data_dir": str(root),
        "val_size": 16,
        "batch_size": 8,
        "eval_batch_size": 16,
        "total_steps": 4,
        "steps_per_action": 2,
    }


@pytest.mark.slow  # a dozen resets, each building a ResNet-18
@pytest.mark.parametrize("env_id", ["lr_gym/CIFAR10-ResNet18-CPU-v1"])
def test_env_checkers_pass(env_id, data_root):
    make = functools.partial(gym.make, env_id, task_kwargs=tiny_kwargs(data_root[0]))
    gym_check_env(make().unwrapped, skip_render_check=True)
    sb3_check_env(make().unwrapped, warn=True)


@pytest.mark.slow
def test_episode_reports_test_metrics_and_reads_data_dir_from_env(data_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_root[0]))
    kwargs = tiny_kwargs(data_root[0])
    del kwargs["data_dir"]
    env = gym.make("lr_gym/CIFAR10-ResNet18-CPU-v1", task_kwargs=kwargs, schedule="constant")
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        done = terminated or truncated
    assert terminated and not truncated and info["step"] == 4
    assert set(info["test"]) == {"loss", "accuracy"}
    assert 0.0 <= info["test"]["accuracy"] <= 1.0
