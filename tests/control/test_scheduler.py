"""``LRController`` in a plain loop: non-finite losses, and the optimizer it expects."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from agents.controller import LRController

T, K = 210, 10


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.25 * x[:, 2] > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    return model, x, y


def _evaluate(model, x, y):
    with torch.no_grad():
        logits = model(x[384:])
    return {"val_loss": F.cross_entropy(logits, y[384:]).item(),
            "val_metric": (logits.argmax(1) == y[384:]).float().mean().item()}


def _train(nan_every: int | None, guard: bool = True):
    """A run whose every ``nan_every``-th step has a non-finite loss, as mixed precision has.

    Like ``torch.amp.GradScaler``, the loop skips the optimizer step of such a loss, so the
    weights never see it; the controller is told the loss all the same.
    """
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ctl = LRController(opt, "lr_gym/task-base", total_steps=T, steps_per_action=K,
                       model=model, guard=guard)
    ctl.observe(**_evaluate(model, x, y))
    for t in range(T):
        idx = torch.arange(t * 32, t * 32 + 32) % 384
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        if nan_every and t % nan_every == nan_every - 1:
            loss = loss * math.nan  # an overflowed step: skipped, as GradScaler does
        else:
            loss.backward()
            opt.step()
        ctl.step(loss)
        if ctl.eval_due:
            ctl.observe(**_evaluate(model, x, y))
    return ctl, _evaluate(model, x, y)["val_metric"]


def test_a_nan_loss_every_7th_step_is_skipped_not_rolled_back():
    clean, clean_acc = _train(None)
    with pytest.warns(RuntimeWarning, match="not finite; they are skipped") as record:
        dirty, dirty_acc = _train(7)
    assert len(record) == 1  # one warning per run
    assert dirty.skipped_losses == T // 7  # counted, every one
    assert dirty._guard.restores == 0  # issue 36: a rollback at every decision
    assert clean_acc > 0.9
    assert abs(dirty_acc - clean_acc) <= 0.02, (clean_acc, dirty_acc)
    # The LR was never pushed to the floor by back-offs.
    assert min(lr for _, _, lr in dirty.history) > dirty.lr_min
    assert dirty.state_dict()["skipped_losses"] == T // 7


def test_a_resumed_run_keeps_its_count_and_does_not_warn_again():
    def controller():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return LRController(opt, "lr_gym/task-base", total_steps=4 * K, steps_per_action=K,
                            guard=False)

    first = controller()
    first.observe(val_loss=1.0, val_metric=0.5)
    with pytest.warns(RuntimeWarning, match="not finite"):
        for i in range(K):
            first.step(math.nan if i % 2 else 0.9)
        first.observe(val_loss=0.9, val_metric=0.6)
    assert first.skipped_losses == K // 2
    resumed = controller()
    resumed.load_state_dict(first.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the run has warned already
        for _ in range(K):
            resumed.step(math.inf)
        resumed.observe(val_loss=0.8, val_metric=0.7)
    assert resumed.skipped_losses == K // 2 + K


def _decided(guard: bool, losses, val_loss: float):
    """A controller one decision in, after one interval of ``losses`` and ``val_loss``."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = LRController(opt, "lr_gym/task-base", total_steps=4 * K, steps_per_action=K,
                       model=model, guard=guard)
    ctl.observe(val_loss=1.0, val_metric=0.5)
    for loss in losses:
        ctl.step(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ctl.observe(val_loss=val_loss, val_metric=0.6)
    return ctl


@pytest.mark.parametrize(("losses", "val_loss", "rolled_back"), [
    ([math.nan] * K, 0.9, False),  # only non-finite training losses: skipped, held
    ([math.inf] + [0.9] * (K - 1), 0.9, False),
    ([0.9] * K, math.nan, True),  # a non-finite validation loss: the weights broke
    ([0.9] * K, math.inf, True),
    ([0.9] * (K - 1) + [10.5], 0.9, True),  # a finite loss above 10 x L0: diverged
    ([0.9] * (K - 1) + [10.0], 0.9, False),  # ...at 10 x L0 exactly, not yet
])
def test_only_validation_or_an_exploding_finite_loss_rolls_back(losses, val_loss, rolled_back):
    ctl = _decided(True, losses, val_loss)
    assert ctl._guard.restores == int(rolled_back)
    assert ctl.skipped_losses == sum(not math.isfinite(x) for x in losses)


def test_prodigy_at_another_lr_than_it_was_trained_at_warns_once():
    from prodigyopt import Prodigy

    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.warns(UserWarning, match=r"trained scaling Prodigy's lr from 1 \(base="
                      r"'prodigy'\), but this Prodigy's lr is 0\.05") as record:
        LRController(Prodigy(params, lr=0.05), "lr_gym/default", total_steps=20,
                     steps_per_action=5, guard=False)
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LRController(Prodigy(params, lr=1.0), "lr_gym/default", total_steps=20,
                     steps_per_action=5, guard=False)
        built = LRController.optimizer_for("lr_gym/default", params, torch.optim.Adam, lr=0.05)
        LRController(built, "lr_gym/default", total_steps=20, steps_per_action=5, guard=False)


def _logged_run(opt, model, x, y, name, steps=3 * K):
    """``steps`` steps under controller ``name``; every decision's logged scalars."""
    ctl = LRController(opt, name, total_steps=T, steps_per_action=K, model=model)
    logged = []
    ctl.add_logger(lambda scalars, step: logged.append(scalars))
    ctl.observe(**_evaluate(model, x, y))
    for t in range(steps):
        idx = torch.arange(t * 32, t * 32 + 32) % 384
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
        if ctl.eval_due:
            ctl.observe(**_evaluate(model, x, y))
    return logged


def test_the_effective_lr_under_prodigy_is_d_times_lr():
    from prodigyopt import Prodigy

    model, x, y = _problem()
    opt = Prodigy(model.parameters(), lr=1.0)
    d0 = opt.param_groups[0]["d"]
    logged = _logged_run(opt, model, x, y, "lr_gym/default")
    last, group = logged[-1], opt.param_groups[0]
    assert group["d"] > 10 * d0  # Prodigy's estimate has grown: the LR alone hides the step
    assert last["lr_controller/effective_lr"] == pytest.approx(group["d"] * group["lr"])
    assert last["lr_controller/effective_lr"] < 0.1 * last["lr_controller/lr"]  # not the lr
    assert not [k for k in last if k.startswith("lr_controller/effective_lr/")]  # one group


def test_the_effective_lr_of_the_tasks_optimizer_is_its_lr_per_group():
    model, x, y = _problem()
    first, second = model[0], model[2]
    opt = torch.optim.SGD([{"params": first.parameters()},
                           {"params": second.parameters(), "lr": 0.01}], lr=0.05)
    logged = _logged_run(opt, model, x, y, "lr_gym/task-base")
    assert len(logged) == 4  # the first decision and one per interval
    for scalars in logged:
        assert scalars["lr_controller/effective_lr"] == scalars["lr_controller/lr"]
    last = logged[-1]
    assert last["lr_controller/effective_lr/0"] == opt.param_groups[0]["lr"]
    assert last["lr_controller/effective_lr/1"] == opt.param_groups[1]["lr"]
    assert last["lr_controller/effective_lr/1"] == pytest.approx(
        last["lr_controller/lr"] * 0.01 / 0.05)  # the controller scales every group alike
    assert last["lr_controller/lr"] != 0.05  # decisions moved it
