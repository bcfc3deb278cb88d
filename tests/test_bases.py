"""lr_gym.bases: the LR rule over the task's optimizer or over Prodigy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from prodigyopt import Prodigy
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lr_gym.bases import (
    base_optimizer,
    base_task,
    dropped_options,
    effective_lrs,
    optimizer_family,
    prodigy_task,
)
from lr_gym.config import EnvConfig
from lr_gym.envs.lr_control import LRControlEnv
from tests.helpers import blob_task


def test_prodigy_task_keeps_what_has_a_counterpart():
    sgd = prodigy_task(blob_task(optimizer_kwargs={"momentum": 0.9, "weight_decay": 1e-4}))
    assert sgd.optimizer is Prodigy and sgd.lr == 1.0
    assert sgd.optimizer_kwargs == {"weight_decay": 1e-4, "decouple": False, "d_coef": 1.0,
                                    "safeguard_warmup": False, "use_bias_correction": False}
    adamw = prodigy_task(blob_task(optimizer=torch.optim.AdamW,
                                   optimizer_kwargs={"betas": (0.9, 0.99)}), d_coef=2.0)
    assert adamw.optimizer_kwargs == {"betas": (0.9, 0.99), "weight_decay": 1e-2,
                                      "decouple": True, "d_coef": 2.0,
                                      "safeguard_warmup": False, "use_bias_correction": False}
    assert prodigy_task(adamw) is adamw  # already on Prodigy: as is
    rms = prodigy_task(blob_task(optimizer=torch.optim.RMSprop,
                                 optimizer_kwargs={"alpha": 0.9, "weight_decay": 1e-3}))
    assert rms.optimizer_kwargs["weight_decay"] == 1e-3 and "alpha" not in rms.optimizer_kwargs
    assert optimizer_family(blob_task(optimizer=torch.optim.Adam))[0] == "adam"


def test_an_optimizer_without_a_counterpart_is_a_clear_error():
    with pytest.raises(ValueError, match="uses Adagrad; .* support torch.optim.SGD"):
        prodigy_task(blob_task(optimizer=torch.optim.Adagrad))
    with pytest.raises(ValueError, match=r"options \['amsgrad'\] have no counterpart"):
        prodigy_task(blob_task(optimizer=torch.optim.Adam, optimizer_kwargs={"amsgrad": True}))
    with pytest.raises(ValueError, match=r"base='adam' is not valid; choose one of \['task'"):
        EnvConfig(base="adam")


def test_base_task_follows_the_config():
    task = blob_task()
    assert base_task(task, EnvConfig()) is task
    wrapped = base_task(task, EnvConfig(base="prodigy", warmup_frac=0.1))
    assert wrapped.optimizer is Prodigy and wrapped.optimizer_kwargs["safeguard_warmup"]


def test_base_optimizer_builds_what_the_env_builds():
    params = list(torch.nn.Linear(4, 2).parameters())
    own = base_optimizer("task", params, torch.optim.SGD, lr=0.05, momentum=0.9)
    assert type(own) is torch.optim.SGD and own.defaults["momentum"] == 0.9
    task = blob_task(optimizer=torch.optim.AdamW, optimizer_kwargs={"betas": (0.9, 0.99)})
    env_side = prodigy_task(task, safeguard_warmup=True)
    deployed = base_optimizer("prodigy", params, torch.optim.AdamW, lr=3e-4, warmup=True,
                              betas=(0.9, 0.99))
    assert type(deployed) is Prodigy and deployed.defaults["lr"] == env_side.lr == 1.0
    for key, value in env_side.optimizer_kwargs.items():
        assert deployed.defaults[key] == value, key
    with pytest.raises(ValueError, match=r"Unknown base 'adam'; choose from \('task'"):
        base_optimizer("adam", params, torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="The optimizer uses Adagrad"):
        base_optimizer("prodigy", params, torch.optim.Adagrad, lr=0.1)


def test_optimizer_for_gives_each_shipped_controller_its_base():
    from agents.controller import LRController

    model = torch.nn.Linear(4, 2)
    kw = {"lr": 0.05, "momentum": 0.9}
    with pytest.warns(UserWarning, match=r"drops SGD's momentum=0.9: Prodigy's update") as rec:
        default = LRController.optimizer_for("pretrained", model.parameters(),
                                             torch.optim.SGD, **kw)
    assert type(default) is Prodigy and len(rec) == 1
    own = LRController.optimizer_for("lr_gym/task-base", model.parameters(), torch.optim.SGD,
                                     **kw)
    assert type(own) is torch.optim.SGD and own.defaults["lr"] == 0.05
    for opt, name in ((default, "pretrained"), (own, "lr_gym/task-base")):
        LRController(opt, name, total_steps=8, steps_per_action=4, model=model)  # accepted


def _val_losses(env: LRControlEnv, seed: int = 0) -> list[float]:
    _, info = env.reset(seed=seed)
    losses, done = [info["val_loss"]], False
    while not done:
        _, _, done, _, info = env.step(np.zeros(1, np.float32))
        losses.append(info["val_loss"])
    return losses


def test_zero_actions_on_the_prodigy_base_are_prodigy_whatever_lr0():
    from agents.baselines.optimizers import ProdigyBaseline

    prodigy = ProdigyBaseline(schedule="constant")
    task = blob_task()
    ref = LRControlEnv(prodigy.wrap_task(task), eval_test=False, **prodigy.env_kwargs())
    want = _val_losses(ref)
    env = LRControlEnv(task, eval_test=False, base="prodigy")
    assert isinstance(env.reset(seed=0) and env._optimizer, Prodigy) and env.lr0 == 1.0
    assert _val_losses(env) == want
    # Prodigy ignores lr0, so does its base; the task's own optimizer does not.
    assert _val_losses(LRControlEnv(blob_task(lr=10.0), eval_test=False, base="prodigy")) == want
    assert _val_losses(LRControlEnv(task, eval_test=False)) != want


def test_prodigy_base_passes_both_env_checkers():
    env = LRControlEnv(blob_task(), base="prodigy", reward="paired")
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(LRControlEnv(blob_task(), base="prodigy"), warn=False)


def test_lr_controller_refuses_an_optimizer_its_base_did_not_train_on():
    from agents.controller import LRController, load_controller_file

    task_base = load_controller_file("lr_gym/task-base")
    on_prodigy = dataclasses.replace(task_base,
                                     env_config=task_base.env_config.replace(base="prodigy"))
    model = torch.nn.Linear(4, 2)
    kw = {"total_steps": 8, "steps_per_action": 4, "model": model}
    with pytest.raises(ValueError, match=r"scale Prodigy's lr \(base='prodigy'\), but the "
                                         r"optimizer is SGD; build it as prodigyopt.Prodigy"):
        LRController(torch.optim.SGD(model.parameters(), lr=0.1), on_prodigy, **kw)
    ctl = LRController(Prodigy(model.parameters(), lr=1.0), on_prodigy, **kw)
    assert ctl.lr0 == 1.0
    LRController(torch.optim.SGD(model.parameters(), lr=0.1), task_base, **kw)  # its own base
    with pytest.raises(ValueError, match="lr_gym/task-base"):  # the shipped default: Prodigy's
        LRController(torch.optim.SGD(model.parameters(), lr=0.1), "pretrained", **kw)


def test_prodigy_in_place_of_sgd_names_every_option_it_drops():
    params = list(torch.nn.Linear(4, 2).parameters())
    assert dropped_options(torch.optim.SGD, {"momentum": 0.9, "nesterov": True,
                                             "dampening": 0.0, "weight_decay": 1e-4,
                                             "foreach": True}) == ["momentum", "nesterov"]
    assert dropped_options(torch.optim.RMSprop, {"alpha": 0.9, "centered": True}) == [
        "alpha", "centered"]
    assert dropped_options(torch.optim.AdamW, {"betas": (0.8, 0.9), "eps": 1e-6}) == []
    with pytest.warns(UserWarning, match="momentum=0.9, nesterov=True"):
        base_optimizer("prodigy", params, torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped, nothing said
        base_optimizer("prodigy", params, torch.optim.SGD, lr=0.1, weight_decay=1e-4)
        base_optimizer("prodigy", params, torch.optim.AdamW, lr=0.1, betas=(0.8, 0.9))
        base_optimizer("task", params, torch.optim.SGD, lr=0.1, momentum=0.9)


def _stepped(opt, params, steps=20):
    for _ in range(steps):
        opt.zero_grad()
        (params[0] ** 2).sum().backward()
        opt.step()
    return opt


@pytest.mark.parametrize("make", [
    lambda ps: Prodigy(ps, lr=0.5),
    lambda ps: __import__("dadaptation").DAdaptAdam(ps, lr=0.5),
])
def test_the_effective_lr_of_an_lr_free_optimizer_is_d_times_lr(make):
    params = [torch.nn.Parameter(torch.ones(4))]
    opt = _stepped(make(params), params)
    d = opt.param_groups[0]["d"]
    assert d > 1e-5  # grown from its d0 (1e-6): the lr alone is not the step
    assert effective_lrs(opt) == [d * 0.5]


def test_the_effective_lr_of_another_optimizer_is_its_lr_per_group():
    a, b = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": torch.tensor(0.25)}], lr=0.1)
    assert effective_lrs(opt) == [0.1, 0.25]
    wrapped = type("Accelerated", (), {"optimizer": opt})()  # accelerate's wrapper
    assert effective_lrs(wrapped) == [0.1, 0.25]
