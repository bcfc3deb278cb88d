"""The torch face: ``LRControllerScheduler`` is an ``LRScheduler`` over ``LRController``."""

from __future__ import annotations

import copy
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LinearLR, SequentialLR

from agents.controller import LRController, LRControllerScheduler

T, K, WARMUP = 40, 5, 6


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, x, y


def _evaluate(model, x, y):
    with torch.no_grad():
        logits = model(x[200:])
    return {"val_loss": F.cross_entropy(logits, y[200:]).item(),
            "val_metric": (logits.argmax(1) == y[200:]).float().mean().item()}


def _train_step(model, opt, x, y, t):
    idx = torch.arange(t * 16, t * 16 + 16) % 200
    loss = F.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def _run_controller(steps: range, model, opt, x, y, sched, lrs):
    for t in steps:
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(_train_step(model, opt, x, y, t))
        if sched.eval_due:
            sched.observe(**_evaluate(model, x, y))


def _started(seed: int = 0):
    """A fresh problem and a scheduler that has made its first decision."""
    model, opt, x, y = _problem(seed)
    sched = LRControllerScheduler(opt, "lr_gym/task-base", total_steps=T, steps_per_action=K,
                                  model=model)
    sched.observe(**_evaluate(model, x, y))
    return model, opt, x, y, sched


def test_the_scheduler_sets_the_lrs_of_the_plain_controller():
    model, opt, x, y = _problem()
    ctl = LRController(opt, "lr_gym/task-base", total_steps=T, steps_per_action=K,
                       model=model)
    ctl.observe(**_evaluate(model, x, y))
    want: list[float] = []
    _run_controller(range(T), model, opt, x, y, ctl, want)

    model, opt, x, y, sched = _started()
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    got: list[float] = []
    _run_controller(range(T), model, opt, x, y, sched, got)
    assert got == want
    assert len(set(got)) > 2  # the controller moved the LR
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]
    assert sched.last_epoch == T


def test_a_warmup_then_the_controller_in_sequential_lr():
    model, opt, x, y = _problem()
    warmup = LinearLR(opt, start_factor=0.1, total_iters=WARMUP)
    ctl = LRControllerScheduler(opt, "lr_gym/task-base", total_steps=T - WARMUP, steps_per_action=K,
                                model=model)
    sched = SequentialLR(opt, [warmup, ctl], milestones=[WARMUP])
    lrs = []
    for t in range(T):
        if t == WARMUP:  # the controller takes over: its first decision, on this model
            ctl.observe(**_evaluate(model, x, y))
        lrs.append(opt.param_groups[0]["lr"])
        loss = _train_step(model, opt, x, y, t)
        if t >= WARMUP:
            ctl.record(loss)  # SequentialLR.step() takes no loss
        sched.step()
        if ctl.eval_due:
            ctl.observe(**_evaluate(model, x, y))
    assert lrs[:WARMUP] == pytest.approx([0.1 * (0.1 + 0.9 * t / WARMUP) for t in range(WARMUP)])
    # From the milestone on, each step runs with the controller's LR for it.
    decided = {t + WARMUP: lr for t, _, lr in ctl.controller.history if t + WARMUP < T}
    assert set(decided) == set(range(WARMUP, T, K))
    for t, lr in decided.items():
        assert lrs[t] == pytest.approx(lr)
    assert ctl.controller._t == T - WARMUP


def test_each_decision_is_logged_with_its_reward_proxy():
    model, opt, x, y = _problem()
    sched = LRControllerScheduler(opt, "lr_gym/task-base", total_steps=T, steps_per_action=K,
                                  model=model)
    logged = []
    sched.controller.add_logger(lambda scalars, step: logged.append((step, scalars)))
    first = _evaluate(model, x, y)
    sched.observe(**first)
    _run_controller(range(K), model, opt, x, y, sched, [])
    (t0, a), (t1, b) = logged
    assert (t0, t1) == (0, K) and a["lr_controller/reward_proxy"] == 0.0
    assert b["lr_controller/reward_proxy"] == pytest.approx(
        math.log(first["val_loss"] / b["lr_controller/val_loss"]))
    assert b["lr_controller/lr"] == opt.param_groups[0]["lr"]
    assert b["lr_controller/effective_lr"] == b["lr_controller/lr"]  # SGD: the LR is the step
    assert len([k for k in b if k.startswith("lr_controller/features/")]) == len(
        sched.controller.config.features)


def test_a_checkpoint_round_trip_resumes_identically(tmp_path):
    model, opt, x, y, sched = _started()
    whole: list[float] = []
    _run_controller(range(T), model, opt, x, y, sched, whole)

    model, opt, x, y, sched = _started()
    first: list[float] = []
    _run_controller(range(17), model, opt, x, y, sched, first)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict()}, path)

    model, opt, x, y = _problem(seed=1)  # different weights, replaced by the checkpoint
    ckpt = torch.load(path, weights_only=True)  # plain data: no pickle of objects
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    resumed = LRControllerScheduler(opt, "lr_gym/task-base", total_steps=T, steps_per_action=K,
                                    model=model)
    resumed.load_state_dict(copy.deepcopy(ckpt["sched"]))
    assert resumed.last_epoch == 17
    rest: list[float] = []
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    _run_controller(range(17, T), model, opt, x, y, resumed, rest)
    assert first + rest == whole


@pytest.mark.parametrize(("edit", "message"), [
    # An extra key went through __dict__.update and replaced the method (issue 36).
    (lambda s: s.update(step=1), r"the state_dict has unknown key\(s\) \['step'\]"),
    (lambda s: s.update(last_epoch="17"), r"last_epoch must be an integer, got '17'"),
    (lambda s: s.pop("controller"), r"the state_dict lacks \['controller'\]"),
    (lambda s: s["controller"].update(lr0=math.nan),
     r"\['controller'\]: lr0 is nan in the state but 0\.1 in this controller"),
    (lambda s: s["controller"].update(group_lr0=[math.nan]), r"group_lr0 is \[nan\]"),
    (lambda s: s["controller"].update(scale=math.nan), r"scale must be > 0 and <= 1, finite"),
    (lambda s: s["controller"].update(lr_max=1e9, multiplier=1e9),
     r"lr_max must be > 0\.001 and <= 10, finite, got 1000000000\.0"),
    (lambda s: s["controller"].update(t=-5), r"t must be >= 0, got -5"),
    (lambda s: s["controller"].update(tracker={"update": 1}), r"tracker lacks"),
    (lambda s: s["controller"].update(losses=[0.5] * 10_000_000), r"losses has 10,000,000"),
])
def test_a_hostile_checkpoint_is_refused_in_one_line_and_changes_nothing(edit, message):
    from agents.controller import ControllerStateError

    model, opt, x, y, sched = _started()
    _run_controller(range(7), model, opt, x, y, sched, [])
    state = copy.deepcopy(sched.state_dict())
    edit(state)
    target = LRControllerScheduler(opt, "lr_gym/task-base", total_steps=T, steps_per_action=K,
                                   model=model)
    before = json.dumps(target.state_dict())
    with pytest.raises(ControllerStateError) as err:
        target.load_state_dict(state)
    text = str(err.value)
    assert text.startswith("LRControllerScheduler.load_state_dict(state_dict)")
    assert "\n" not in text and len(text) < 600 and re.search(message, text), text
    assert json.dumps(target.state_dict()) == before  # a refusal changes nothing
    assert callable(target.step)


def test_a_checkpoint_of_another_controller_or_budget_is_refused_naming_both():
    from prodigyopt import Prodigy

    from agents.controller import ControllerStateError

    model, opt, x, y, sched = _started()
    _run_controller(range(7), model, opt, x, y, sched, [])
    state = sched.state_dict()
    prodigy = Prodigy(model.parameters(), lr=1.0)
    other = LRControllerScheduler(prodigy, "lr_gym/default", total_steps=T, steps_per_action=K,
                                  model=model)
    with pytest.raises(ControllerStateError, match=r"saved by controller 'lr_gym/task-base' "
                       r"\(content [0-9a-f]{12}\) but this is 'lr_gym/default'"):
        other.load_state_dict(copy.deepcopy(state))
    longer = LRControllerScheduler(opt, "lr_gym/task-base", total_steps=2 * T,
                                   steps_per_action=K, model=model)
    with pytest.raises(ControllerStateError, match=rf"total_steps is {T} in the state but "
                       rf"{2 * T} in this controller; resume with the total_steps"):
        longer.load_state_dict(copy.deepcopy(state))
