"""``LRControllerCallback``: an :class:`LRController` inside a Hugging Face ``Trainer``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lr_gym.control.policy import ControllerPolicy
from lr_gym.control.resolve import load_controller_file
from lr_gym.control.scheduler import LRController
from lr_gym.control.state import ControllerStateError


def _trainer_callback_base() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError:  # pragma: no cover - transformers is a dependency
        return object
    return TrainerCallback


class LRControllerCallback(_trainer_callback_base()):  # type: ignore[misc]
    """Runs an :class:`LRController` inside a Hugging Face ``Trainer``.

    The Trainer's optimizer must be the one the controller's base expects: give a
    Prodigy-base controller such as ``"lr_gym/default"`` the optimizer of
    :meth:`LRController.optimizer_for` (``Trainer(..., optimizers=(optimizer, None))``).
    It builds the controller on ``on_train_begin`` (budget ``state.max_steps``), takes
    the initial validation result from an evaluation before training (set
    ``TrainingArguments(eval_on_start=True)`` or call ``trainer.evaluate()`` first),
    logs every step (the features need each step's loss), asks the Trainer to evaluate
    every ``steps_per_action`` steps and sets the LR after each step, overriding the
    Trainer's own scheduler (use ``lr_scheduler_type="constant"``). Needs an
    ``eval_dataset`` and ``compute_metrics`` that returns ``metric``.

    What the Trainer logs is the LR actually applied: the callback keeps the Trainer's
    scheduler reporting the controller's LR, so ``learning_rate`` in
    ``state.log_history``, TensorBoard or W&B is the real one. The controller's state
    goes into every checkpoint (``lr_controller.json`` beside ``trainer_state.json``) and
    comes back with ``trainer.train(resume_from_checkpoint=...)``. With
    ``tensorboard=True`` every decision (LR, action, reward proxy, features) is written
    to TensorBoard where the Trainer's own TensorBoard logs go (``$TENSORBOARD_LOGGING_DIR``,
    else ``<output_dir>/runs``), or to the folder ``tensorboard`` names.

    Args:
        policy: A controller file, run folder, pretrained name (``"lr_gym/default"``)
            or a loaded :class:`ControllerPolicy`.
        steps_per_action: Optimizer steps per decision.
        metric: The main validation metric's name in ``compute_metrics`` (without
            ``eval_``), higher is better.
        tensorboard: Log every decision to TensorBoard: True (beside the Trainer's own
            logs) or a folder.
        **controller_kwargs: Other :class:`LRController` arguments (``lr_min``,
            ``guard=False``, ``guard_memory=``, ``guard_dir=``...); the guard gets the
            Trainer's model.
    """

    STATE_FILE = "lr_controller.json"
    """The controller's state in a Trainer checkpoint folder."""

    def __init__(self, policy: str | Path | ControllerPolicy, *, steps_per_action: int,
                 metric: str = "accuracy", tensorboard: bool | str = False,
                 **controller_kwargs: Any) -> None:
        self.policy = (policy if isinstance(policy, ControllerPolicy)
                       else load_controller_file(policy))
        self.steps_per_action = steps_per_action
        self.metric = metric
        self.tensorboard = tensorboard
        self.controller_kwargs = controller_kwargs
        self.controller: LRController | None = None
        self._initial: tuple[float, float] | None = None
        self._scheduler: Any = None
        self._writer: Any = None

    def _val(self, metrics: dict[str, float]) -> tuple[float, float]:
        key = f"eval_{self.metric}"
        if "eval_loss" not in metrics or key not in metrics:
            raise KeyError(
                f"LRControllerCallback needs 'eval_loss' and {key!r} in the evaluation "
                f"metrics, got {sorted(metrics)}; pass compute_metrics returning "
                f"{self.metric!r} or set metric=."
            )
        return float(metrics["eval_loss"]), float(metrics[key])

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                       lr_scheduler: Any = None, **kwargs: Any) -> None:
        """Builds the controller on the Trainer's optimizer (resumed from a checkpoint)."""
        if optimizer is None:
            raise RuntimeError("LRControllerCallback: the Trainer passed no optimizer.")
        saved = self._saved_state(args, state)
        if saved is None and self._initial is None and not getattr(args, "eval_on_start",
                                                                   False):
            raise RuntimeError(
                "LRControllerCallback needs the untrained model's validation result: set "
                "TrainingArguments(eval_on_start=True) or call trainer.evaluate() before "
                "trainer.train()."
            )
        self._scheduler = lr_scheduler
        self.controller = LRController(
            optimizer, self.policy, total_steps=state.max_steps,
            steps_per_action=self.steps_per_action,
            **{"model": kwargs.get("model"), **self.controller_kwargs},
        )
        if self.tensorboard and getattr(state, "is_world_process_zero", True):  # not per rank
            from torch.utils.tensorboard import SummaryWriter

            from lr_gym.control.scheduler import tensorboard_logger

            folder = (self.tensorboard if isinstance(self.tensorboard, str)
                      else os.getenv("TENSORBOARD_LOGGING_DIR")
                      or getattr(args, "logging_dir", None)  # transformers < 5
                      or os.path.join(args.output_dir, "runs"))
            self._writer = SummaryWriter(folder)
            self.controller.add_logger(tensorboard_logger(self._writer))
        if saved is not None:
            self.controller.load_state_dict(saved[1], source=str(saved[0]))
        elif self._initial is not None:
            self.controller.observe(*self._initial)
        self._report_lr()

    def _saved_state(self, args: Any, state: Any) -> tuple[Path, Any] | None:
        """The file and controller state of the checkpoint the Trainer resumes from, if any.

        Raises:
            RuntimeError: The checkpoint has no state file.
            ControllerStateError: The file is not readable JSON (empty, cut, binary).
        """
        if not state.global_step:
            return None
        path = _checkpoint(args, state) / self.STATE_FILE
        if not path.is_file():
            raise RuntimeError(
                f"LRControllerCallback: resuming at step {state.global_step} but "
                f"{path} is missing, so the controller's features and multiplier are lost; "
                "resume from a checkpoint saved with this callback.")
        try:
            return path, json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # UnicodeDecodeError too
            detail = " ".join(str(err).split())[:200]
            raise ControllerStateError(
                f"{path}: not a readable controller state ({type(err).__name__}: {detail}); "
                "the checkpoint is damaged: resume from another checkpoint, or train "
                "without resume_from_checkpoint.") from None

    def _report_lr(self) -> None:
        # The Trainer logs its scheduler's last LR: make that the LR actually applied.
        if self._scheduler is not None and self.controller is not None:
            self._scheduler._last_lr = self.controller.get_last_lr()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Writes the controller's state into the checkpoint just saved."""
        if self.controller is None:
            return
        from lr_gym.files import write_text_atomic

        folder = _checkpoint(args, state)
        # Where the Trainer writes its own state (rank 0; each node's with save_on_each_node):
        # the controller's state is the same on every rank.
        if getattr(args, "should_save", True) and folder.is_dir():
            write_text_atomic(folder / self.STATE_FILE,
                              json.dumps(self.controller.state_dict()))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Flushes the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Counts the step, sets the next LR, asks for the step's log and due evaluations."""
        ctl = self.controller
        if ctl is None or not ctl._started:
            raise RuntimeError("LRControllerCallback: training started without an initial "
                               "evaluation (set TrainingArguments(eval_on_start=True)).")
        ctl.step(None)
        self._report_lr()
        control.should_log = True
        if ctl.eval_due:
            control.should_evaluate = True
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        """Feeds the step's training loss and gradient norm."""
        if self.controller is not None and logs and "loss" in logs:
            self.controller.record(logs["loss"], grad_norm=logs.get("grad_norm"))

    def on_evaluate(self, args: Any, state: Any, control: Any,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        """Initial evaluation, or the end of an interval: the controller decides."""
        val = self._val(metrics or {})
        ctl = self.controller
        if ctl is None:
            self._initial = val  # trainer.evaluate() before train()
        elif not ctl._started or ctl.eval_due:
            ctl.observe(*val)
            self._report_lr()


def _checkpoint(args: Any, state: Any) -> Path:
    """The Trainer's checkpoint folder of the current step."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
