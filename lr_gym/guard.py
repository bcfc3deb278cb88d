"""A guard that rolls a run back to its best validation loss when it blows up.

SOLAR's lesson (a rollback on loss spikes) as a rule anyone can run: the guard keeps a
copy of the model and optimizer at each new best validation loss. After a control
interval it rolls back when

* the interval diverged, whatever the last decision was: in the env a non-finite or
  exploding training loss, or a non-finite validation loss; in a deployed
  :class:`~lr_gym.control.LRController` a finite exploding training loss or a
  non-finite validation result (a non-finite training loss is skipped there: the step
  may never have reached the weights, as with mixed precision's skipped steps), or
* the validation loss rose above ``best * e^tolerance`` right after a decision that
  raised the LR;

and the LR rule then backs off (:meth:`lr_gym.lr_rule.LRState.back_off`: the LR halves
for good and the next two decisions cannot raise it). One implementation serves the
env (``EnvConfig.guard``) and :class:`lr_gym.control.LRController`.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

TOLERANCE = 0.1
"""How far (in log) validation loss may rise above its best after an LR increase."""


class Guard:
    """Snapshots at each new best validation loss; restores when a run blows up.

    Args:
        optimizer: The run's optimizer (its state is restored too).
        model: The model; without it the optimizer's parameters are restored, which
            misses buffers such as batch-norm statistics.
        tolerance: See :data:`TOLERANCE`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module | None = None,
                 tolerance: float = TOLERANCE) -> None:
        self.optimizer, self.model, self.tolerance = optimizer, model, tolerance
        self.best = math.inf
        self.best_info: Any = None
        self.restores = 0
        self._snapshot: tuple[Any, Any] | None = None

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _take(self) -> None:
        weights = (copy.deepcopy(self.model.state_dict()) if self.model is not None
                   else [p.detach().clone() for p in self._params()])
        self._snapshot = (weights, copy.deepcopy(self.optimizer.state_dict()))

    def start(self, val_loss: float, info: Any = None) -> None:
        """Begins a run whose untrained model has validation loss ``val_loss``.

        ``info`` is anything the caller wants back with the best state (e.g. its
        validation metrics), as :attr:`best_info`.
        """
        self.best, self.best_info, self.restores = float(val_loss), info, 0
        self._take()

    def check(self, val_loss: float, *, diverged: bool, raised: bool, info: Any = None) -> bool:
        """Judges a finished interval; returns True if it rolled the run back.

        Args:
            val_loss: The validation loss after the interval.
            diverged: The interval's training diverged.
            raised: The decision that began the interval raised the LR.
            info: Kept as :attr:`best_info` if this is a new best.
        """
        bad = diverged or not math.isfinite(val_loss)
        bad = bad or (raised and val_loss > self.best * math.exp(self.tolerance))
        if bad and self._snapshot is not None:
            self._restore()
            self.restores += 1
            return True
        if math.isfinite(val_loss) and val_loss < self.best:
            self.best, self.best_info = float(val_loss), info
            self._take()
        return False

    def _restore(self) -> None:
        import torch

        weights, opt_state = self._snapshot
        if self.model is not None:
            self.model.load_state_dict(weights)
        else:
            with torch.no_grad():
                for p, w in zip(self._params(), weights, strict=True):
                    p.copy_(w)
        # A copy: the snapshot must survive the optimizer mutating its loaded state.
        self.optimizer.load_state_dict(copy.deepcopy(opt_state))
        self.optimizer.zero_grad(set_to_none=True)
