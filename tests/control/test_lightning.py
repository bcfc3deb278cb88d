"""The Lightning face: decisions, the real LR in Lightning's logs, and ``ckpt_path`` resume."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F

pl = pytest.importorskip(
    "lightning.pytorch",
    reason='the [lightning] extra is not installed: pip install -e ".[lightning]"')

from lr_gym.control.lightning import LRControllerLightning  # noqa: E402

T, K = 24, 4


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def _loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(288, 8, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    # One batch per epoch: a checkpoint at any step ends an epoch, so a resumed run sees the
    # batches of an uninterrupted one (a plain DataLoader cannot resume mid-epoch).
    train = torch.utils.data.TensorDataset(x[:64], y[:64])
    val = torch.utils.data.TensorDataset(x[256:], y[256:])
    return (torch.utils.data.DataLoader(train, batch_size=64),
            torch.utils.data.DataLoader(val, batch_size=32))


class Spy(pl.Callback):
    """The LR each optimizer step runs with."""

    def __init__(self):
        self.applied = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.applied[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


def _fit(tmp_path, name, *, stop_at=None, ckpt_path=None, every=None):
    spy, cb = Spy(), LRControllerLightning("lr_gym/task-base")
    callbacks = [cb, spy, pl.callbacks.LearningRateMonitor(logging_interval="step")]
    if stop_at:  # on a decision's step: after its validation, as Lightning does by default
        every = every or (None if stop_at % K == 0 else stop_at)
        callbacks.append(pl.callbacks.ModelCheckpoint(
            dirpath=tmp_path / name / "ckpt", every_n_train_steps=every, save_top_k=-1))
    trainer = pl.Trainer(
        max_steps=stop_at or T, val_check_interval=K, check_val_every_n_epoch=None,
        num_sanity_val_steps=-1, callbacks=callbacks, accelerator="cpu", devices=1,
        logger=pl.loggers.CSVLogger(tmp_path, name=name), log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False)
    if stop_at:  # the budget the controller plans over stays T
        cb.total_steps = T
    train, val = _loaders()
    trainer.fit(Tiny(), train, val, ckpt_path=ckpt_path)
    return trainer, cb, spy


def _logged(trainer, key):
    with open(trainer.logger.experiment.metrics_file_path) as f:
        return {int(r["step"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


@pytest.mark.slow
def test_the_controller_sets_the_lr_and_lightning_logs_the_real_one(tmp_path):
    trainer, cb, spy = _fit(tmp_path, "whole")
    ctl = cb.controller
    assert ctl._t == T
    assert ctl._guard.model is trainer.lightning_module  # the guard is on, with the model
    decided = [t for t, _, _ in ctl.history]
    assert decided == list(range(0, T + 1, K))  # the sanity check, then every K steps
    lrs = [spy.applied[t] for t in range(T)]
    assert len(set(lrs)) > 2 and lrs[0] != 0.1  # decisions moved the LR off lr0
    for t, _, lr in ctl.history[:-1]:  # each interval starts with its decision's LR
        assert lrs[t] == pytest.approx(lr)
    # LearningRateMonitor (the LR Lightning users log) reads the optimizer: the real LR.
    monitor = _logged(trainer, "lr-SGD")
    assert monitor == pytest.approx({t: spy.applied[t] for t in monitor})
    assert len(monitor) >= T - 1
    # Every decision's scalars go to the trainer's loggers.
    actions = _logged(trainer, "lr_controller/action")
    assert len(actions) == len(ctl.history)
    # SGD, the task's own optimizer: the step size applied is the LR.
    effective = _logged(trainer, "lr_controller/effective_lr")
    assert len(effective) == len(actions) and effective == _logged(trainer, "lr_controller/lr")
    with open(trainer.logger.experiment.metrics_file_path) as f:
        assert "lr_controller/features/log_val_loss" in f.readline()


@pytest.mark.slow
@pytest.mark.parametrize("cut_at", [6, 8])  # inside an interval, and at a decision
def test_ckpt_path_resume_restores_the_controller(tmp_path, cut_at):
    _, whole, whole_spy = _fit(tmp_path, "whole")
    _, cut, _ = _fit(tmp_path, "cut", stop_at=cut_at)
    (ckpt,) = (tmp_path / "cut" / "ckpt").glob(f"*step={cut_at}.ckpt")
    saved = torch.load(ckpt, weights_only=False)["callbacks"]
    (state,) = [v for k, v in saved.items() if "LRControllerLightning" in k]
    assert state["controller"]["t"] == cut_at
    _, resumed, spy = _fit(tmp_path, "cut", ckpt_path=ckpt)
    assert resumed.controller._t == T
    assert [x for h in resumed.controller.history for x in h] == pytest.approx(
        [x for h in whole.controller.history for x in h])
    assert {t: spy.applied[t] for t in range(cut_at, T)} == pytest.approx(
        {t: whole_spy.applied[t] for t in range(cut_at, T)})


@pytest.mark.slow
def test_a_checkpoint_before_a_decisions_validation_resumes_with_a_warning(tmp_path):
    _fit(tmp_path, "cut", stop_at=8, every=8)  # saved on the train step, before validation
    (ckpt,) = (tmp_path / "cut" / "ckpt").glob("*step=8.ckpt")
    with pytest.warns(RuntimeWarning, match="decides at the next one"):
        _, resumed, _ = _fit(tmp_path, "cut", ckpt_path=ckpt)
    assert resumed.controller._t == T
    assert [t for t, _, _ in resumed.controller.history] == [0, 4, 12, 16, 20, 24]


def test_missing_initial_validation_and_metrics_are_clear_errors(tmp_path):
    cb = LRControllerLightning("lr_gym/task-base")
    trainer = pl.Trainer(max_steps=T, val_check_interval=K, check_val_every_n_epoch=None,
                         num_sanity_val_steps=0, callbacks=[cb], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False)
    train, val = _loaders()
    with pytest.raises(RuntimeError, match="num_sanity_val_steps=-1"):
        trainer.fit(Tiny(), train, val)
    trainer = pl.Trainer(max_steps=T, callbacks=[LRControllerLightning("lr_gym/task-base")],
                         logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         num_sanity_val_steps=-1)
    with pytest.raises(ValueError, match="val_check_interval=K"):
        trainer.fit(Tiny(), train, val)
    trainer = pl.Trainer(max_steps=T, val_check_interval=K, check_val_every_n_epoch=None,
                         num_sanity_val_steps=-1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False,
                         callbacks=[LRControllerLightning("lr_gym/task-base", val_metric="f1")])
    with pytest.raises(KeyError, match="'f1'"):
        trainer.fit(Tiny(), train, val)


def test_a_callback_state_that_is_no_dict_is_refused():
    from agents.controller import ControllerStateError

    with pytest.raises(ControllerStateError, match=r"^the LRControllerLightning state of this "
                       r"checkpoint is list, not the controller's state; load the state"):
        LRControllerLightning("lr_gym/task-base").load_state_dict([1, 2])
    with pytest.raises(ControllerStateError, match=r"state of this checkpoint is null, not"):
        LRControllerLightning("lr_gym/task-base").load_state_dict({"controller": None})
    callback = LRControllerLightning("lr_gym/task-base")
    callback.load_state_dict({})  # saved before the controller existed: a fresh start
    assert callback._saved is None


@pytest.mark.slow
def test_a_hostile_checkpoint_is_refused_naming_it(tmp_path):
    import math

    from agents.controller import ControllerStateError

    _fit(tmp_path, "cut", stop_at=8)
    (ckpt,) = (tmp_path / "cut" / "ckpt").glob("*step=8.ckpt")
    saved = torch.load(ckpt, weights_only=False)
    (key,) = [k for k in saved["callbacks"] if "LRControllerLightning" in k]
    saved["callbacks"][key]["controller"].update(lr_max=1e9, multiplier=1e9, scale=math.nan)
    hostile = tmp_path / "hostile.ckpt"
    torch.save(saved, hostile)
    with pytest.raises(ControllerStateError, match=(
            rf"^the LRControllerLightning state of checkpoint {hostile}: lr_max must be > "
            r"0\.001 and <= 10, finite, got 1000000000\.0; load the state")):
        _fit(tmp_path, "cut", ckpt_path=hostile)
