"""A trained controller in PyTorch Lightning (``LRControllerLightning``).

Usage:
    python examples/deploy_lightning.py [CONTROLLER] [--logdir DIR]

Needs the ``[lightning]`` extra. Validation every K steps gives the decisions; the
decisions' scalars and ``LearningRateMonitor``'s real LR go to the TensorBoard logger in
DIR, and Lightning's checkpoints resume the controller (``ckpt_path=``). Offline, CPU,
seconds.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from _digits import LR0, K, T, data, mlp, parse_args, report

from lr_gym.control import ControllerPolicy, LRController
from lr_gym.control.lightning import LRControllerLightning


class DigitsMLP(pl.LightningModule):
    """The digits MLP as a LightningModule that logs ``val_loss`` and ``val_acc``.

    Args:
        policy: The controller that will set the LR (its base decides the optimizer).
    """

    def __init__(self, policy: ControllerPolicy) -> None:
        super().__init__()
        self.net, self.policy = mlp(), policy

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on a training batch."""
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        """Logs what the controller reads."""
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD with momentum, or Prodigy (lr=1) for a controller of that base; it sets the LR."""
        return LRController.optimizer_for(self.policy, self.parameters(), torch.optim.SGD,
                                          lr=LR0, momentum=0.9)


def main() -> int:
    """Trains the digits MLP with Lightning; the controller sets the LR."""
    controller, logdir = parse_args(__doc__, "lr_gym_lightning_")
    x_train, y_train, x_val, y_val = data()
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train),
                                        batch_size=64, shuffle=True,
                                        generator=torch.Generator().manual_seed(0))
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_val, y_val),
                                      batch_size=512)

    # --- begin example ---
    controller = LRControllerLightning(controller, val_loss="val_loss", val_metric="val_acc")
    trainer = pl.Trainer(
        max_steps=T, val_check_interval=K, check_val_every_n_epoch=None,
        num_sanity_val_steps=-1,  # the untrained model's validation: the first decision
        callbacks=[controller, pl.callbacks.LearningRateMonitor(logging_interval="step")],
        logger=pl.loggers.TensorBoardLogger(logdir, name="lightning"), log_every_n_steps=5,
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(DigitsMLP(controller.policy), train, val)  # ckpt_path="last" resumes it too
    # --- end example ---
    report(controller.controller.history, controller.controller.get_last_lr()[0],
           float(trainer.callback_metrics["val_acc"]), logdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
