"""The Hugging Face face: the Trainer logs the real LR and resumes the controller."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from tests.agents.test_deploy import _ListDataset

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")

TASK_BASE = "lr_gym/task-base"  # the shipped controller that drives the Trainer's own optimizer


def _trainer(tmp_path, name, callbacks, max_steps=12, save_steps=None, optimizer=None):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    args = TrainingArguments(
        output_dir=str(tmp_path / name), max_steps=max_steps, per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=1e-3, lr_scheduler_type="constant", eval_on_start=True,
        eval_strategy="no", save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500, report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
    return Trainer(model=model, args=args, train_dataset=_ListDataset(32, 0),
                   eval_dataset=_ListDataset(16, 1), compute_metrics=accuracy,
                   callbacks=callbacks,
                   optimizers=(optimizer(model) if optimizer else None, None))


def _spy():
    from transformers import TrainerCallback

    class Spy(TrainerCallback):
        """The LR each step runs with, and what the Trainer logs for it."""

        def __init__(self):
            self.applied, self.logged = {}, {}

        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            self.applied[state.global_step + 1] = optimizer.param_groups[0]["lr"]

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "learning_rate" in logs:
                self.logged[state.global_step] = logs["learning_rate"]
    return Spy()


@pytest.mark.slow
def test_the_trainer_logs_the_lr_actually_applied(tmp_path):
    from agents.controller import LRControllerCallback

    spy = _spy()
    cb = LRControllerCallback(TASK_BASE, steps_per_action=4,
                              tensorboard=str(tmp_path / "run" / "tb"))
    trainer = _trainer(tmp_path, "run", [cb, spy])
    trainer.train()
    assert cb.controller._guard.model is trainer.model  # the guard is on, with the model
    assert sorted(spy.logged) == list(range(1, 13))
    assert spy.logged == spy.applied  # each step's log says the LR that step ran with
    # The controller's LRs (one per interval under the shipped rule), not the constant 1e-3.
    assert len(set(spy.logged.values())) >= 3 and 1e-3 not in spy.logged.values()
    history = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert history == [spy.logged[s] for s in range(1, 13)]
    # Every decision is in TensorBoard, under the Trainer's logging_dir.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert "lr_controller/lr" in tags and "lr_controller/features/log_val_loss" in tags
    assert len(events.Scalars("lr_controller/action")) == 4  # the first and one per interval
    # AdamW, the task's own optimizer: the step size applied is the LR.
    assert ([e.value for e in events.Scalars("lr_controller/effective_lr")]
            == [e.value for e in events.Scalars("lr_controller/lr")])


@pytest.mark.slow
def test_the_default_controller_scales_prodigys_lr_in_the_trainer(tmp_path):
    from prodigyopt import Prodigy

    from agents.controller import LRControllerCallback

    spy = _spy()
    cb = LRControllerCallback("pretrained", steps_per_action=4, tensorboard=str(tmp_path / "tb"))
    trainer = _trainer(tmp_path, "prodigy", [cb, spy],
                       optimizer=lambda model: Prodigy(model.parameters(), lr=1.0))
    trainer.train()
    assert cb.controller.lr0 == 1.0 and len(cb.controller.history) == 4
    assert spy.logged == spy.applied  # the LR each step ran with: 1.0 times the rule's factor
    assert all(0.01 <= lr <= 100 for lr in spy.applied.values())
    # The step size Prodigy applies, d * lr, is logged beside the LR.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    group = trainer.optimizer.param_groups[0]
    (last_lr, last) = (events.Scalars(f"lr_controller/{k}")[-1].value
                       for k in ("lr", "effective_lr"))
    assert last == pytest.approx(group["d"] * group["lr"], rel=1e-6)  # TensorBoard: float32
    assert last_lr == pytest.approx(group["lr"], rel=1e-6) and last != pytest.approx(last_lr)


def test_the_default_controller_refuses_another_optimizer_with_the_fix(tmp_path):
    from types import SimpleNamespace

    from agents.controller import LRControllerCallback

    cb = LRControllerCallback("pretrained", steps_per_action=4)
    args = SimpleNamespace(output_dir=str(tmp_path), eval_on_start=True)
    state = SimpleNamespace(global_step=0, max_steps=12)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(ValueError, match=r"Prodigy\(params, lr=1.0\).*lr_gym/task-base"):
        cb.on_train_begin(args, state, None, optimizer=opt)


@pytest.mark.slow
def test_a_resumed_run_gives_the_lrs_and_losses_of_an_uninterrupted_one(tmp_path):
    from transformers import TrainerCallback

    from agents.controller import LRControllerCallback

    def steps(trainer):
        return {h["step"]: (h["learning_rate"], h["loss"]) for h in trainer.state.log_history
                if "loss" in h}

    whole = _trainer(tmp_path, "whole", [LRControllerCallback(TASK_BASE, steps_per_action=4)],
                     save_steps=6)
    whole.train()

    class StopAt6(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                control.should_training_stop = True

    cut = _trainer(tmp_path, "cut", [LRControllerCallback(TASK_BASE, steps_per_action=4),
                                     StopAt6()], save_steps=6)
    cut.train()
    ckpt = tmp_path / "cut" / "checkpoint-6"
    saved = json.loads((ckpt / LRControllerCallback.STATE_FILE).read_text())
    assert saved["t"] == 6 and len(saved["history"]) == 2
    resumed = _trainer(tmp_path, "cut", [LRControllerCallback(TASK_BASE, steps_per_action=4)],
                       save_steps=6)
    resumed.train(resume_from_checkpoint=str(ckpt))
    # The resumed Trainer restores log_history up to step 6, so steps 1-6 are cut's own.
    want, got = steps(whole), steps(resumed)
    assert sorted(got) == list(range(1, 13))
    for s in got:
        assert got[s] == pytest.approx(want[s], rel=1e-6), s


def test_resuming_without_the_controllers_state_is_a_clear_error(tmp_path):
    from types import SimpleNamespace

    from agents.controller import LRControllerCallback

    cb = LRControllerCallback(TASK_BASE, steps_per_action=4)
    args = SimpleNamespace(output_dir=str(tmp_path), eval_on_start=True)
    state = SimpleNamespace(global_step=6, max_steps=12)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(RuntimeError, match="checkpoint-6.*lr_controller.json is missing"):
        cb.on_train_begin(args, state, None, optimizer=opt)


def _resume(tmp_path, text: bytes | str):
    """``on_train_begin`` resuming from a checkpoint whose ``lr_controller.json`` is ``text``."""
    from types import SimpleNamespace

    from agents.controller import LRControllerCallback

    cb = LRControllerCallback(TASK_BASE, steps_per_action=4, guard=False)
    ckpt = tmp_path / "checkpoint-6"
    ckpt.mkdir(exist_ok=True)
    path = ckpt / LRControllerCallback.STATE_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    args = SimpleNamespace(output_dir=str(tmp_path), eval_on_start=True)
    state = SimpleNamespace(global_step=6, max_steps=12)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cb.on_train_begin(args, state, None, optimizer=opt)
    return cb


def _saved_state(tmp_path):
    """A real ``lr_controller.json`` of 6 steps (what ``on_save`` writes)."""
    from agents.controller import LRController

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ctl = LRController(opt, TASK_BASE, total_steps=12, steps_per_action=4, guard=False)
    ctl.observe(val_loss=1.0, val_metric=0.5)
    for i in range(6):
        ctl.step(1.0 - 0.05 * i, grad_norm=1.0)
        if ctl.eval_due:
            ctl.observe(val_loss=0.9, val_metric=0.6)
    return ctl.state_dict()


def test_a_valid_state_file_resumes(tmp_path):
    saved = _saved_state(tmp_path)
    cb = _resume(tmp_path, json.dumps(saved))
    restored = json.dumps(cb.controller.state_dict(), sort_keys=True)
    assert restored == json.dumps(saved, sort_keys=True)  # as text: NaN equals NaN


@pytest.mark.parametrize(("text", "detail"), [
    (b"", r"not a readable controller state \(JSONDecodeError: Expecting value"),
    (b'{"t": 6, "multi', r"not a readable controller state \(JSONDecodeError: Unterminated"),
    (b"\xff\xfe\x00binary", r"not a readable controller state \(UnicodeDecodeError"),
    (b"[" * 100_000 + b"]" * 100_000, r"not a readable controller state \(RecursionError"),
])
def test_a_damaged_state_file_is_one_line_naming_it(tmp_path, text, detail):
    from agents.controller import ControllerStateError

    with pytest.raises(ControllerStateError) as err:
        _resume(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message and len(message) < 500
    assert message.startswith(str(tmp_path / "checkpoint-6" / "lr_controller.json") + ": ")
    assert re.search(detail, message) and "resume from another checkpoint" in message


@pytest.mark.parametrize(("edit", "detail"), [
    (lambda s: None, r"the state must be a dict, got NoneType None"),  # `null`: no fresh start
    (lambda s: {**s, "lr0": math.nan}, r"lr0 is nan in the state but 0\.1"),
    (lambda s: {**s, "t": -5}, r"t must be >= 0, got -5"),
    (lambda s: {**s, "lr_max": 1e9, "multiplier": 1e9}, r"lr_max must be > 0\.001 and <= 10"),
    (lambda s: {**s, "tracker": {"update": 1}}, r"tracker lacks"),
    (lambda s: {**s, "losses": [0.5] * 1_000_000}, r"losses has 1,000,000 items"),
    (lambda s: {**s, "controller_sha256": "0" * 64}, r"the state was saved by controller "
                                                     r"'lr_gym/task-base' \(content 0{12}\) but"),
])
def test_a_hostile_state_file_is_refused_naming_it(tmp_path, edit, detail):
    from agents.controller import ControllerStateError

    text = json.dumps(edit(_saved_state(tmp_path)))
    path = tmp_path / "checkpoint-6" / "lr_controller.json"
    with pytest.raises(ControllerStateError, match=rf"^{re.escape(str(path))}: {detail}"):
        _resume(tmp_path, text)
