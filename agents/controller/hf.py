"""``LRControllerCallback``: an :class:`LRController` inside a Hugging Face ``Trainer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.controller.policy import ControllerPolicy
from agents.controller.resolve import load_controller_file
from agents.controller.scheduler import LRController


def _trainer_callback_base() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError:  # pragma: no cover - transformers is a dependency
        return object
    return TrainerCallback


class LRControllerCallback(_trainer_callback_base()):  # type: ignore[misc]
    """Runs an :class:`LRController` inside a Hugging Face ``Trainer``.

    It builds the controller on ``on_train_begin`` (budget ``state.max_steps``), takes
    the initial validation result from an evaluation before training (set
    ``TrainingArguments(eval_on_start=True)`` or call ``trainer.evaluate()`` first),
    logs every step (the features need each step's loss), asks the Trainer to evaluate
    every ``steps_per_action`` steps and sets the LR after each step, overriding the
    Trainer's own scheduler (use ``lr_scheduler_type="constant"``). Needs an
    ``eval_dataset`` and ``compute_metrics`` that returns ``metric``.

    Args:
        policy: A controller file, run folder, pretrained name (``"lr_gym/default"``)
            or a loaded :class:`ControllerPolicy`.
        steps_per_action: Optimizer steps per decision.
        metric: The main validation metric's name in ``compute_metrics`` (without
            ``eval_``), higher is better.
        **controller_kwargs: Other :class:`LRController` arguments (``lr_min``...).
    """

    def __init__(self, policy: str | Path | ControllerPolicy, *, steps_per_action: int,
                 metric: str = "accuracy", **controller_kwargs: Any) -> None:
        self.policy = (policy if isinstance(policy, ControllerPolicy)
                       else load_controller_file(policy))
        self.steps_per_action = steps_per_action
        self.metric = metric
        self.controller_kwargs = controller_kwargs
        self.controller: LRController | None = None
        self._initial: tuple[float, float] | None = None

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
                       **kwargs: Any) -> None:
        """Builds the controller on the Trainer's optimizer."""
        if optimizer is None:
            raise RuntimeError("LRControllerCallback: the Trainer passed no optimizer.")
        if self._initial is None and not getattr(args, "eval_on_start", False):
            raise RuntimeError(
                "LRControllerCallback needs the untrained model's validation result: set "
                "TrainingArguments(eval_on_start=True) or call trainer.evaluate() before "
                "trainer.train()."
            )
        self.controller = LRController(
            optimizer, self.policy, total_steps=state.max_steps,
            steps_per_action=self.steps_per_action, **self.controller_kwargs,
        )
        if self._initial is not None:
            self.controller.observe(*self._initial)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Counts the step, sets the next LR, asks for the step's log and due evaluations."""
        ctl = self.controller
        if ctl is None or not ctl._started:
            raise RuntimeError("LRControllerCallback: training started without an initial "
                               "evaluation (set TrainingArguments(eval_on_start=True)).")
        ctl.step(None)
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
