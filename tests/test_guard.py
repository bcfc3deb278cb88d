"""The guard: rollback to the best state and an LR back-off, in the env and LRController."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.guard import Guard
from lr_gym.lr_rule import BACK_OFF_BLOCK, BACK_OFF_FACTOR, LRState
from lr_gym.tasks.base import Task, TaskData
from tests.helpers import digits_task


def _model_and_opt():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(8, 3)).sum().backward()
    opt.step()
    return model, opt


def _state(model, opt):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {k: v["exp_avg"].clone() for k, v in opt.state_dict()["state"].items()})


def test_guard_keeps_the_best_state_and_restores_it_on_blow_ups():
    model, opt = _model_and_opt()
    guard = Guard(opt, model)
    guard.start(2.0, info="start")
    assert not guard.check(1.5, diverged=False, raised=False, info="best")
    best = _state(model, opt)
    model(torch.randn(8, 3)).sum().backward()
    opt.step()  # moves weights, batch-norm statistics and Adam's moments
    assert not torch.equal(_state(model, opt)[0]["0.weight"], best[0]["0.weight"])
    # A rise after an increase beyond e^0.1 rolls back; the same rise without one does not.
    assert not guard.check(1.5 * math.exp(0.2), diverged=False, raised=False)
    assert guard.check(1.5 * math.exp(0.2), diverged=False, raised=True)
    now = _state(model, opt)
    for k in best[0]:
        assert torch.equal(now[0][k], best[0][k]), k  # buffers too
    for k in best[1]:
        assert torch.equal(now[1][k], best[1][k])
    assert guard.best_info == "best" and guard.restores == 1
    # A divergence rolls back whatever the last decision did; a small rise does not.
    assert guard.check(math.nan, diverged=True, raised=False)
    assert not guard.check(1.5 * math.exp(0.05), diverged=False, raised=True)


def test_back_off_halves_for_good_and_blocks_two_increases():
    rule = LRState(lr0=0.1, total_steps=100, group_lr0=[0.1], mode="recursive",
                   max_factor=2.0, schedule="constant", lr_min=1e-5, lr_max=10.0)
    rule.decide(1.0, 0)
    assert rule.raised and rule.lr_at(0) == pytest.approx(0.2)
    rule.back_off()
    assert rule.lr_at(0) == pytest.approx(0.2 * BACK_OFF_FACTOR)
    for _ in range(BACK_OFF_BLOCK):
        assert rule.decide(1.0, 0) == 0.0 and not rule.raised  # blocked
    assert rule.decide(1.0, 0) == 1.0 and rule.raised
    assert rule.decide(-1.0, 0) == -1.0  # cuts are never blocked


def _run(env, policy):
    _, info = env.reset(seed=0)
    infos, actions, done = [info], [], False
    while not done:
        a = policy(len(actions))
        _, _, done, _, info = env.step(np.array([a], np.float32))
        actions.append(env._lr_state.action)
        infos.append(info)
    return infos, actions


def _regression(lr: float) -> Task:
    """Least squares on a linear model: SGD diverges above lr ~1 and converges below."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(384, 8, generator=g)
    y = x @ torch.randn(8, generator=g) + 0.1 * torch.randn(384, generator=g)
    data = TaskData(TensorDataset(x[:256], y[:256]), TensorDataset(x[256:], y[256:]))

    def loss_fn(model, batch):
        return ((model(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()

    def eval_fn(model, dataset, task, device):
        loss = float(loss_fn(model, dataset.tensors))
        return {"loss": loss, "neg_mse": -loss}

    return Task(name="lsq", model_fn=lambda: torch.nn.Linear(8, 1), data_fn=lambda: data,
                lr=lr, batch_size=64, total_steps=200, steps_per_action=10, loss_fn=loss_fn,
                eval_fn=eval_fn, metric="neg_mse")


def test_env_guard_saves_a_run_static_would_lose():
    # lr0 10x too high: unguarded static diverges; guarded, it backs off until it trains.
    infos, _ = _run(LRControlEnv(_regression(8.0), eval_test=False), lambda i: 0.0)
    assert infos[-1]["diverged"]
    infos, _ = _run(LRControlEnv(_regression(8.0), eval_test=False, guard=True),
                    lambda i: 0.0)
    assert not infos[-1]["diverged"] and infos[-1]["guard_restores"] >= 2
    assert infos[-1]["val_loss"] < 0.05 * infos[0]["val_loss"]  # it trained
    lrs = sorted({round(i["lr"], 9) for i in infos[1:]}, reverse=True)
    assert lrs[0] <= 20.0 and all(b == pytest.approx(a * BACK_OFF_FACTOR)
                                  for a, b in zip(lrs, lrs[1:], strict=False))


def test_env_guard_blocks_increases_after_a_restore():
    env = LRControlEnv(digits_task(2.0), eval_test=False, guard=True, mode="recursive",
                       max_factor=4.0, lr_max=1e6)
    infos, actions = _run(env, lambda i: 1.0)  # always up: blows up, then is held back
    restores = [i["guard_restores"] for i in infos]
    first = next(k for k, r in enumerate(restores) if r > 0)
    # The decisions after the restore (env step `first`) take 0 instead of +1.
    assert actions[first:first + BACK_OFF_BLOCK] == [0.0] * BACK_OFF_BLOCK
    assert actions[:first] == [1.0] * first
    assert not infos[-1]["diverged"]


def _regression_step(model, opt, x, y, ctl):
    """One optimizer step of least squares, counted by the controller."""
    loss = ((model(x).squeeze(-1) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    ctl.step(loss)


def test_lr_controller_guard_restores_and_blocks(tmp_path):
    from agents.controller import LRController
    from tests.agents.test_deploy import exported_run, make_run

    run = make_run(tmp_path, {"mode": "recursive", "max_factor": 4.0})
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ctl = LRController(opt, LRController.from_run(exported_run(run)), total_steps=40,
                       steps_per_action=4, guard=True, model=model, lr_max=100.0)
    ctl.policy = type("Up", (), {"act": staticmethod(lambda obs: 1.0)})()  # always up
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1

    def val():
        with torch.no_grad():
            return float(((model(x).squeeze(-1) - y) ** 2).mean())

    ctl.observe(val_loss=val(), val_metric=0.0)
    best, restored_at = None, None
    for _ in range(40):
        _regression_step(model, opt, x, y, ctl)
        if ctl.eval_due:
            before = ctl._guard.restores
            weights_best = [t.clone() for t in ctl._guard._snapshot[0].values()]
            ctl.observe(val_loss=val(), val_metric=0.0)
            if ctl._guard.restores > before and restored_at is None:
                restored_at, best = len(ctl.history), weights_best
                for a, b in zip(model.state_dict().values(), best, strict=True):
                    assert torch.equal(a, b)  # back at the best weights
    assert restored_at is not None, "the LR never blew the run up"
    actions = [a for _, a, _ in ctl.history]
    assert actions[restored_at - 1:restored_at - 1 + BACK_OFF_BLOCK] == [0.0] * BACK_OFF_BLOCK
    assert math.isfinite(val())


def test_lr_controller_guards_by_default_and_asks_for_the_model():
    import warnings

    from agents.controller import LRController

    model, opt = _model_and_opt()
    kw = {"total_steps": 8, "steps_per_action": 4}
    with pytest.warns(UserWarning, match="model=model, or guard=False"):
        ctl = LRController(opt, "lr_gym/task-base", **kw)
    assert ctl._guard is not None and ctl._guard.model is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LRController(opt, "lr_gym/task-base", model=model, **kw)._guard.model is model
        assert LRController(opt, "lr_gym/task-base", guard=False, **kw)._guard is None


def test_a_resumed_lr_controller_guards_from_the_resumed_state():
    import json

    from agents.controller import LRController

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(32, 4)
    y = x.sum(-1)

    def val():
        with torch.no_grad():
            return float(((model(x).squeeze(-1) - y) ** 2).mean())

    def train(ctl, steps):
        for _ in range(steps):
            _regression_step(model, opt, x, y, ctl)
            if ctl.eval_due:
                ctl.observe(val_loss=val(), val_metric=0.0)

    kw = {"total_steps": 40, "steps_per_action": 4, "model": model}
    ctl = LRController(opt, "lr_gym/task-base", **kw)
    ctl.observe(val_loss=val(), val_metric=0.0)
    train(ctl, 8)
    ctl._guard.restores = 3  # as if it had rolled back before the checkpoint
    state = json.loads(json.dumps(ctl.state_dict()))
    at_checkpoint = {k: v.clone() for k, v in model.state_dict().items()}

    resumed = LRController(opt, "lr_gym/task-base", **kw)
    resumed.load_state_dict(state)
    assert resumed._guard.best == pytest.approx(val())  # the last decision's result
    assert resumed._guard.restores == 3
    train(resumed, 3)
    with torch.no_grad():  # the interval blows up before its decision
        model.weight.fill_(math.nan)
    loss = ((model(x).squeeze(-1) - y) ** 2).mean()
    resumed.step(loss)
    with pytest.warns(RuntimeWarning, match="not finite; they are skipped"):
        resumed.observe(val_loss=val(), val_metric=0.0)  # NaN validation: rolled back
    assert resumed._guard.restores == 4
    for name, v in model.state_dict().items():
        assert torch.equal(v, at_checkpoint[name])  # back at the resumed model
