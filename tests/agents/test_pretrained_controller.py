"""The controller shipped in the package: found by name everywhere a path is accepted."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from agents.controller import (
    PRETRAINED_DIR,
    ControllerPolicy,
    LRController,
    LRControllerCallback,
    PolicyController,
    agent_label,
    agent_labels,
    controller_file_for,
    is_pretrained_name,
    pretrained_file,
)
from lr_gym.config import EnvConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "stem", "base"), [("lr_gym/default", "default", "prodigy"),
                                                     ("lr_gym/task-base", "task_base", "task")])
def test_each_shipped_file_loads_and_has_a_model_card(name, stem, base):
    path = pretrained_file(name)
    assert path == PRETRAINED_DIR / f"{stem}.safetensors"
    assert path.stat().st_size < 100_000  # tens of KB
    policy = ControllerPolicy.load(path)  # validated and checksummed
    assert isinstance(policy.env_config, EnvConfig) and policy.env_config.base == base
    card = (PRETRAINED_DIR / f"{stem}.md").read_text()
    for section in ("Training distribution", "PPO seeds", "Commit", "Reproduce",
                    "Dev results", "Test results", "Not expected to help"):
        assert section in card, section
    assert pretrained_file("pretrained") == pretrained_file("lr_gym/default")
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lr_gym"]
    assert "pretrained/*.safetensors" in globs and "pretrained/*.md" in globs


def test_names_resolve_to_the_shipped_file_and_unknown_names_are_clear():
    assert is_pretrained_name("pretrained") and is_pretrained_name("lr_gym/default")
    assert not is_pretrained_name("logs/ppo/run") and not is_pretrained_name(Path("pretrained"))
    assert controller_file_for("lr_gym/default") == pretrained_file()
    with pytest.raises(KeyError, match="shipped"):
        pretrained_file("lr_gym/nope")


def test_agent_labels_name_no_machine_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert agent_label("pretrained") == agent_label(str(pretrained_file())) == "lr_gym/default"
    (tmp_path / "logs" / "ppo" / "Run_1").mkdir(parents=True)
    assert agent_label(str(tmp_path / "logs" / "ppo" / "Run_1")) == "logs/ppo/Run_1"
    elsewhere = tmp_path.parent / "x" / "ppo" / "Run_1"
    assert agent_label(str(elsewhere)) == "Run_1"
    # Two agents of one name stay two: their content hashes tell them apart.
    a, b = str(elsewhere), str(tmp_path.parent / "y" / "ppo" / "Run_1")
    labels = agent_labels([a, b], ["a" * 64, "b" * 64])
    assert labels == {a: f"Run_1@{'a' * 12}", b: f"Run_1@{'b' * 12}"}


@pytest.mark.parametrize("name", ["lr_gym/default", "lr_gym/task-base"])
def test_from_pretrained_drives_a_plain_loop(name):
    from prodigyopt import Prodigy

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = (Prodigy(model.parameters(), lr=1.0) if name == "lr_gym/default"
           else torch.optim.SGD(model.parameters(), lr=0.1))  # each file's base
    ctl = LRController.from_pretrained(opt, name, total_steps=8, steps_per_action=4,
                                       model=model)
    same = LRController(opt, name, total_steps=8, steps_per_action=4, model=model)
    assert ctl.policy.config == same.policy.config
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    ctl.observe(val_loss=0.7, val_metric=0.5)
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
        if ctl.eval_due:
            ctl.observe(val_loss=float(loss.detach()), val_metric=0.6)
    assert len(ctl.history) == 3 and all(np.isfinite(lr) for _, _, lr in ctl.history)
    assert LRControllerCallback(name, steps_per_action=4).policy.config == ctl.policy.config


def test_evaluate_agent_accepts_pretrained(tmp_path):
    from agents.evaluation.cli import _resolve_agents

    args = argparse.Namespace(agent=["pretrained"], log_folder=str(tmp_path))
    assert _resolve_agents(args) == [str(pretrained_file())]


@pytest.mark.parametrize("name", ["pretrained", "lr_gym/task-base"])
def test_zero_action_is_the_shipped_rule_without_the_policy(name):
    from agents.baselines import make_baseline
    from agents.evaluation.rollout import run_episode

    ctl = PolicyController.load(name)
    zero = ctl.zero_action()
    assert dict(zero.env_kwargs()) == dict(ctl.env_kwargs())
    assert float(zero.act(np.zeros(3, np.float32), {})[0]) == 0.0
    res = run_episode("lr_gym/Digits-MLP-v1", zero, 0, env_kwargs={"total_steps": 40})
    if name == "pretrained":  # Prodigy at its lr of 1, whatever the task's lr0
        assert set(res.lrs) == {1.0}
    else:  # the task's optimizer at lr0: static's run, number for number
        static = run_episode("lr_gym/Digits-MLP-v1", make_baseline("static"), 0,
                             env_kwargs={"total_steps": 40})
        assert (res.lrs, res.val_loss, res.test) == (static.lrs, static.val_loss, static.test)
