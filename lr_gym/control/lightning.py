"""``LRControllerLightning``: a trained controller as a PyTorch Lightning callback.

Needs the ``[lightning]`` extra (``pip install -e ".[lightning]"``). The callback drives
the first optimizer's LR with one :class:`~lr_gym.control.scheduler.LRController`;
Lightning supplies each step's loss and the validation results::

    cb = LRControllerLightning("lr_gym/default", val_metric="val_acc")
    trainer = L.Trainer(max_steps=T, val_check_interval=K, check_val_every_n_epoch=None,
                        num_sanity_val_steps=-1, callbacks=[cb])
    trainer.fit(model, train_loader, val_loader)

``configure_optimizers`` must return the optimizer the controller's base expects
(:meth:`LRController.optimizer_for`: Prodigy for ``"lr_gym/default"``). Validation
every ``K`` optimizer steps gives the decisions (``steps_per_action`` is
taken from ``val_check_interval``), and the full sanity check on the untrained model
(``num_sanity_val_steps=-1``, or a ``trainer.validate(...)`` before ``fit``) gives the
first one. The controller's state goes into Lightning's checkpoints with the callback's
own, so ``trainer.fit(..., ckpt_path=...)`` resumes it. Every decision (LR, action,
reward proxy, features) goes to the trainer's loggers; ``LearningRateMonitor`` reads
the optimizer, so it logs the LR actually applied.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError(
        "lr_gym.control.lightning needs PyTorch Lightning: pip install -e \".[lightning]\" "
        "(or pip install 'lightning>=2.2')") from err

from lr_gym.control.policy import ControllerPolicy
from lr_gym.control.resolve import load_controller_file
from lr_gym.control.scheduler import LRController
from lr_gym.control.state import FIX, ControllerStateError


class LRControllerLightning(pl.Callback):
    """Sets the LR of a Lightning run with a trained controller.

    Args:
        policy: A controller file, run folder, pretrained name (``"lr_gym/default"``)
            or a loaded :class:`ControllerPolicy`.
        val_loss: The validation loss's key in ``trainer.callback_metrics``
            (``self.log("val_loss", ...)`` in ``validation_step``).
        val_metric: The main validation metric's key, higher is better.
        steps_per_action: Optimizer steps per decision; default: the trainer's
            ``val_check_interval`` (an int, with ``check_val_every_n_epoch=None``).
        total_steps: The budget; default: ``trainer.max_steps`` (else Lightning's
            ``estimated_stepping_batches``).
        log: Send every decision's scalars to the trainer's loggers.
        **controller_kwargs: Other :class:`LRController` arguments (``lr_min``,
            ``guard=False``, ``guard_memory=``, ``guard_dir=``...); the guard gets the
            LightningModule.
    """

    def __init__(self, policy: str | Path | ControllerPolicy, *, val_loss: str = "val_loss",
                 val_metric: str = "val_acc", steps_per_action: int | None = None,
                 total_steps: int | None = None, log: bool = True,
                 **controller_kwargs: Any) -> None:
        self.policy = (policy if isinstance(policy, ControllerPolicy)
                       else load_controller_file(policy))
        self.val_loss, self.val_metric = val_loss, val_metric
        self.steps_per_action, self.total_steps = steps_per_action, total_steps
        self.log = log
        self.controller_kwargs = controller_kwargs
        self.controller: LRController | None = None
        self._initial: tuple[float, float] | None = None
        self._saved: dict[str, Any] | None = None

    # ----------------------------------------------------------------- set-up
    def _plan(self, trainer: pl.Trainer) -> tuple[int, int]:
        """``(total_steps, steps_per_action)``, checked against the trainer's settings."""
        if trainer.accumulate_grad_batches != 1:
            raise ValueError("LRControllerLightning counts optimizer steps as batches: "
                             "use accumulate_grad_batches=1.")
        k = self.steps_per_action
        interval = trainer.val_check_interval
        if k is None:
            if not isinstance(interval, int) or trainer.check_val_every_n_epoch is not None:
                raise ValueError(
                    "LRControllerLightning decides after each validation: set "
                    "L.Trainer(val_check_interval=K, check_val_every_n_epoch=None) with an "
                    "int K, or pass steps_per_action=K and validate every K steps.")
            k = interval
        t = self.total_steps or (trainer.max_steps if trainer.max_steps > 0
                                 else int(trainer.estimated_stepping_batches))
        return t, k

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Takes a validation result: the untrained model's, or the interval's decision."""
        metrics = trainer.callback_metrics
        if self.val_loss not in metrics or self.val_metric not in metrics:
            raise KeyError(
                f"LRControllerLightning needs {self.val_loss!r} and {self.val_metric!r} in "
                f"trainer.callback_metrics (got {sorted(metrics)}): self.log them in "
                "validation_step, or pass val_loss=/val_metric= with your names.")
        val = float(metrics[self.val_loss]), float(metrics[self.val_metric])
        ctl = self.controller
        if ctl is None:
            # The sanity check (num_sanity_val_steps=-1) or a trainer.validate() before fit.
            self._initial = val
        elif ctl.eval_due:
            ctl.observe(*val)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Builds the controller on the first optimizer (resumed from the checkpoint)."""
        total, k = self._plan(trainer)
        optimizer = trainer.optimizers[0]
        if self._saved is None and self._initial is None:
            raise RuntimeError(
                "LRControllerLightning needs the untrained model's validation result: set "
                "L.Trainer(num_sanity_val_steps=-1) or call trainer.validate(model, "
                "val_loader) before trainer.fit().")
        self.controller = LRController(optimizer, self.policy, total_steps=total,
                                       steps_per_action=k,
                                       **{"model": pl_module, **self.controller_kwargs})
        if self.log:
            self.controller.add_logger(
                lambda scalars, step: [lg.log_metrics(scalars, step=trainer.global_step)
                                       for lg in trainer.loggers])
        if self._saved is not None:
            self.controller.load_state_dict(
                self._saved, source=f"the LRControllerLightning state of checkpoint "
                                    f"{trainer.ckpt_path or '(unnamed)'}")
            self._saved = None
            if self.controller.eval_due:
                warnings.warn(
                    "LRControllerLightning resumed from a checkpoint saved after a decision's "
                    "training step but before its validation (ModelCheckpoint("
                    "every_n_train_steps=...) on a multiple of val_check_interval); Lightning "
                    "skips that validation, so the controller decides at the next one. "
                    "Checkpoint on validation (ModelCheckpoint's default) to resume exactly.",
                    RuntimeWarning, stacklevel=2)
        else:
            self.controller.observe(*self._initial)

    # -------------------------------------------------------------- training
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        """Counts the optimizer step with its loss and sets the next step's LR."""
        if self.controller is None:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.controller.step(loss)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The controller's state, saved in Lightning's checkpoints."""
        return {} if self.controller is None else {"controller": self.controller.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keeps the saved state until the optimizer exists (:meth:`on_train_start`).

        It is checked there, against the controller it is loaded into
        (:func:`~lr_gym.control.state.check_state`).

        Raises:
            ControllerStateError: Not this callback's state (no dict).
        """
        if not isinstance(state_dict, dict) or state_dict.get("controller", {}) is None:
            # {} is a state saved before the controller existed; a null one is no state.
            what = "null" if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ControllerStateError(
                f"the LRControllerLightning state of this checkpoint is {what}, not the "
                f"controller's state; {FIX}.")
        self._saved = state_dict.get("controller")
