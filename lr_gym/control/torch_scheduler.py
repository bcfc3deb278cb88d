"""``LRControllerScheduler``: a trained controller as a torch ``LRScheduler``.

The idioms of a plain loop work: ``scheduler.step()`` after ``optimizer.step()``,
``get_last_lr()``, ``state_dict()`` in a training checkpoint, and ``SequentialLR`` for a
warmup before the controller takes over. The controller needs what a schedule does not:
each step's loss (``step(loss)``, or ``record(loss)`` before a ``SequentialLR.step()``)
and the validation result when :attr:`eval_due` (``observe(val_loss=..., val_metric=...)``,
once on the untrained model before the first step)::

    sched = LRControllerScheduler(opt, "lr_gym/default", total_steps=T, steps_per_action=K,
                                  model=model)
    sched.observe(**evaluate(model))
    for step in range(T):
        loss = loss_fn(model, next(batches)); opt.zero_grad(); loss.backward(); opt.step()
        sched.step(loss)
        if sched.eval_due:
            sched.observe(**evaluate(model))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from lr_gym.control.policy import ControllerPolicy
from lr_gym.control.scheduler import LRController
from lr_gym.control.state import check_scheduler_state


class LRControllerScheduler(LRScheduler):
    """An :class:`LRController` behind torch's ``LRScheduler`` interface.

    Args:
        optimizer: The optimizer to drive.
        policy: A controller file, run folder, pretrained name or loaded policy.
        total_steps: The budget the controller plans over (steps after any warmup that
            ``SequentialLR`` puts before it).
        steps_per_action: Optimizer steps per decision.
        last_epoch: torch's resume argument (restore with :meth:`load_state_dict`).
        **controller_kwargs: Other :class:`LRController` arguments: ``model=`` for the
            guard (on by default), its ``guard_memory=`` budget or ``guard_dir=``,
            ``lr_min``...
    """

    def __init__(self, optimizer: torch.optim.Optimizer, policy: str | Path | ControllerPolicy,
                 *, total_steps: int, steps_per_action: int, last_epoch: int = -1,
                 **controller_kwargs: Any) -> None:
        self.controller = LRController(optimizer, policy, total_steps=total_steps,
                                       steps_per_action=steps_per_action, **controller_kwargs)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The LR of every param group: the controller's rule, not a closed form."""
        return self.controller.get_last_lr()

    @property
    def eval_due(self) -> bool:
        """True when the interval is complete and :meth:`observe` should be called."""
        return self.controller.eval_due

    def observe(self, val_loss: float, val_metric: float, **metrics: Any) -> float:
        """Feeds a validation result (see :meth:`LRController.observe`); returns the action."""
        action = self.controller.observe(val_loss, val_metric, **metrics)
        self._last_lr = self.controller.get_last_lr()
        return action

    def record(self, loss: Any) -> None:
        """The loss of the step about to be counted, for a ``SequentialLR.step()``."""
        self.controller.record(loss)

    def step(self, loss: Any = None) -> None:  # type: ignore[override]
        """Counts one optimizer step (with its loss) and sets the next step's LR."""
        if self._step_count == 0:  # torch's initial step at construction: no step yet
            super().step()
            return
        self.controller.step(loss)
        self.last_epoch += 1
        self._step_count += 1
        self._last_lr = self.controller.get_last_lr()

    def _own_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "controller")}

    def state_dict(self) -> dict[str, Any]:
        """Torch's scheduler state with the controller's (its policy is not included)."""
        return {**self._own_state(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` and sets the optimizer's LR accordingly.

        Checked whole before anything changes: torch's own fields are this scheduler's
        keys only (never ``__dict__.update`` with anything else), with their types, and
        the controller's state fits this controller
        (:func:`~lr_gym.control.state.check_state`).

        Raises:
            ControllerStateError: The state does not fit; one line with the fix.
        """
        where = "LRControllerScheduler.load_state_dict(state_dict)"
        state = check_scheduler_state(state_dict, self._own_state(), where)
        self.controller.load_state_dict(state.pop("controller"),
                                        source=f"{where}['controller']")
        self.__dict__.update(state)
        self._last_lr = self.controller.get_last_lr()
