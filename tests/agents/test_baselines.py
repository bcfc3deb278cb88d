from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import agents.base
from agents.base import ConstantAction
from agents.baselines import (
    BASELINES,
    AvgLRReplay,
    PlateauBaseline,
    ScheduleFreeBaseline,
    make_baseline,
    mean_interval_lrs,
)
from agents.hypergradient import SGDHD, AdamHD
from agents.rollout import EpisodeResult, run_episode
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.registration import get_task

ENV = "lr_gym/Digits-MLP-v0"
LR0 = 0.05  # Digits-MLP's lr0 (SGD, momentum 0.9)
T = 100


def torch_lrs(name: str, lr0: float, total: int) -> list[float]:
    """The LR torch's scheduler gives at each of ``total`` steps, built independently."""
    S = torch.optim.lr_scheduler
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    if name == "static":
        sched = S.ConstantLR(opt, factor=1.0)
    elif name == "step":
        sched = S.MultiStepLR(opt, milestones=[total // 2, 3 * total // 4], gamma=0.1)
    elif name == "cosine":
        sched = S.CosineAnnealingLR(opt, T_max=total)
    elif name == "warmup_cosine":
        w = round(0.02 * total)
        sched = S.SequentialLR(
            opt,
            [S.LinearLR(opt, 1 / w, 1.0, total_iters=w - 1), S.CosineAnnealingLR(opt, total - w)],
            milestones=[w],
        )
    elif name == "onecycle":
        sched = S.OneCycleLR(opt, max_lr=lr0, total_steps=total, cycle_momentum=False)
    out = []
    for t in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if t < total - 1:
            sched.step()
    return out


@pytest.mark.parametrize("name", ["static", "step", "cosine", "warmup_cosine", "onecycle"])
def test_schedule_baseline_lrs_are_torchs(name: str) -> None:
    res = run_episode(
        ENV, make_baseline(name), seed=0, env_kwargs={"total_steps": T, "steps_per_action": 1}
    )
    expected = torch_lrs(name, LR0, T)
    # lrs[0] is the starting LR, lrs[k] the LR of step k-1 (one step per interval).
    assert res.lrs[0] == pytest.approx(expected[0], rel=1e-12)
    np.testing.assert_allclose(res.lrs[1:], expected, rtol=1e-9, atol=1e-15)
    assert not res.diverged


def test_tuned_schedule_runs_at_the_given_lr() -> None:
    base = make_baseline("cosine")
    tuned = base.with_lr(0.01)
    assert base.lr is None and tuned.lr == 0.01
    res = run_episode(ENV, tuned, seed=0, env_kwargs={"total_steps": T, "steps_per_action": 1})
    np.testing.assert_allclose(res.lrs[1:], torch_lrs("cosine", 0.01, T), rtol=1e-9, atol=1e-15)


def test_every_baseline_with_an_lr_is_tunable() -> None:
    for name, factory in BASELINES.items():
        c = factory(targets=[0.1]) if name == "avg_lr_replay" else factory()
        if name == "avg_lr_replay":
            assert not c.tunable
            with pytest.raises(TypeError, match="not tunable"):
                c.with_lr(0.1)
            continue
        assert c.tunable, name
        task = get_task("Digits-MLP")
        assert c.with_lr(0.123).wrap_task(task).lr == 0.123
    with pytest.raises(TypeError, match="not tunable"):
        ConstantAction(0.3, name="learned").with_lr(0.1)
    with pytest.raises(ValueError, match="> 0"):
        make_baseline("static").with_lr(-1.0)


def test_plateau_cuts_after_patience_on_flat_metric() -> None:
    c = PlateauBaseline(factor=0.5, patience=2, max_factor=4.0)
    c.reset(None, np.zeros(11), {"step": 0, "val_metric": 0.1})
    assert c.act(np.zeros(11), {"step": 0, "val_metric": 0.1})[0] == 0.0  # untrained: ignored
    metrics = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7]
    actions = [c.act(np.zeros(11), {"step": 10 * (i + 1), "val_metric": m})[0]
               for i, m in enumerate(metrics)]
    # improve, improve, 3 bad intervals (> patience 2) -> cut; 3 more -> cut; improve.
    assert actions == [0, 0, 0, 0, -0.5, 0, 0, -0.5, 0]
    assert c.scheduler_lr == 0.25


def test_plateau_episode_follows_torch_and_validates() -> None:
    c = PlateauBaseline(monitor="val_loss", patience=0, threshold=0.05)
    res = run_episode(ENV, c, seed=0, env_kwargs={"total_steps": 60, "steps_per_action": 6})
    ratios = np.array(res.lrs[1:]) / np.array(res.lrs[:-1])
    assert set(np.round(ratios, 12)) <= {1.0, 0.5}
    assert res.lrs[-1] == pytest.approx(LR0 * c.scheduler_lr, rel=1e-12)
    assert c.scheduler_lr < 1.0  # patience 0 and a 5% threshold must cut at least once
    with pytest.raises(ValueError, match="not reachable"):
        PlateauBaseline(factor=0.1, max_factor=4.0)
    with pytest.raises(ValueError, match="monitor"):
        PlateauBaseline(monitor="accuracy")


def test_hypergradient_baseline_swaps_optimizer_and_owns_the_lr() -> None:
    c = make_baseline("hypergradient")
    task = c.wrap_task(get_task("Digits-MLP"))
    assert task.optimizer is SGDHD and task.optimizer_kwargs["momentum"] == 0.9
    assert task.optimizer_kwargs["hypergrad_lr"] == 1e-3
    adamw = get_task("Digits-MLP").__class__(
        name="t", model_fn=lambda: torch.nn.Linear(2, 2), data_fn=lambda: None,
        optimizer=torch.optim.AdamW, lr=1e-3,
    )
    wrapped = c.wrap_task(adamw)
    assert wrapped.optimizer is AdamHD
    assert wrapped.optimizer_kwargs["decoupled_weight_decay"] is True
    assert wrapped.optimizer_kwargs["weight_decay"] == 1e-2  # torch AdamW's default kept
    rms = adamw.__class__(name="r", model_fn=adamw.model_fn, data_fn=adamw.data_fn,
                          optimizer=torch.optim.RMSprop)
    with pytest.raises(ValueError, match="RMSprop"):
        c.wrap_task(rms)

    res = run_episode(ENV, c, seed=0, env_kwargs={"total_steps": 60, "steps_per_action": 6})
    assert res.lrs[0] == LR0
    assert len(set(res.lrs[1:])) > 1  # adapted by the optimizer, not reset by the env
    assert all(math.isfinite(x) for x in res.lrs) and not res.diverged


def test_schedulefree_evaluates_at_averaged_weights() -> None:
    import schedulefree

    c = ScheduleFreeBaseline()
    task = c.wrap_task(get_task("Digits-MLP"))
    assert task.optimizer is schedulefree.SGDScheduleFree
    env = LRControlEnv(task, total_steps=30, steps_per_action=10, **c.env_kwargs())
    obs, info = env.reset(seed=0)
    c.reset(env, obs, info)
    obs, _, _, _, info = env.step(c.act(obs, info))
    opt, data = env._optimizer, env.data
    with torch.no_grad():
        env.model.eval()
        train_mode = task.eval_fn(env.model, data.val, task, env.device)["loss"]
        opt.eval()  # swaps in the averaged weights x
        eval_mode = task.eval_fn(env.model, data.val, task, env.device)["loss"]
        opt.train()
    assert info["val_loss"] == pytest.approx(eval_mode, rel=1e-9)
    assert abs(train_mode - eval_mode) > 1e-6  # the two points differ: eval() mattered
    assert opt.param_groups[0]["train_mode"]  # the env restored train mode
    res = run_episode(ENV, c, seed=0, env_kwargs={"total_steps": 60, "steps_per_action": 6})
    assert not res.diverged and res.lrs[-1] == LR0


def test_avg_lr_replay_reproduces_mean_lrs() -> None:
    steps = [0, 15, 30, 45, 60]
    a = EpisodeResult(ENV, "ppo", 0, "t", "accuracy", steps=steps,
                      lrs=[LR0, 0.1, 0.02, 0.01, 0.005])
    b = EpisodeResult(ENV, "ppo", 1, "t", "accuracy", steps=steps,
                      lrs=[LR0, 0.05, 0.04, 0.03, 0.001])
    c = make_baseline("avg_lr_replay", results=[a, b])
    expected = [0.075, 0.03, 0.02, 0.003]
    np.testing.assert_allclose(c.targets, expected)
    res = run_episode(ENV, c, seed=0, env_kwargs={"total_steps": 60, "steps_per_action": 15})
    np.testing.assert_allclose(res.lrs[1:], expected, rtol=1e-12)
    again = run_episode(ENV, c, seed=1, env_kwargs={"total_steps": 60, "steps_per_action": 15})
    assert again.lrs == res.lrs  # blind to the state: same LRs on another seed

    diverged = EpisodeResult(ENV, "ppo", 2, "t", "accuracy", steps=steps[:3],
                             lrs=[LR0, 0.3, 0.06])
    np.testing.assert_allclose(mean_interval_lrs([a, b, diverged])[:2], [0.15, 0.04])
    np.testing.assert_allclose(mean_interval_lrs([a, b, diverged])[2:], expected[2:])
    other = EpisodeResult(ENV, "ppo", 0, "t", "accuracy", steps=[0, 10, 20], lrs=[1, 1, 1])
    with pytest.raises(ValueError, match="interval steps"):
        mean_interval_lrs([a, other])
    with pytest.raises(ValueError, match="max_factor"):
        AvgLRReplay(targets=[LR0 * 1e4]).reset(None, np.zeros(11), {"lr": LR0})


def test_unknown_or_incomplete_baseline_errors_are_clear() -> None:
    with pytest.raises(KeyError, match="choose from") as err:
        make_baseline("cosin")
    for name in BASELINES:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="results="):
        make_baseline("avg_lr_replay")
    assert not hasattr(agents.base, "make_baseline")  # no shim: baselines import base only
