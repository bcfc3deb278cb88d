"""A trained controller as a torch ``LRScheduler``: a linear warmup, then the controller.

Usage:
    python examples/deploy_torch_scheduler.py [CONTROLLER] [--logdir DIR]

CONTROLLER is a controller file, a run folder or a pretrained name (default
``lr_gym/default``). Every decision (LR, action, reward proxy, features) goes to
TensorBoard in DIR: ``tensorboard --logdir DIR``. Offline, CPU, seconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _digits import LR0, K, T, data, evaluate, mlp, parse_args, report
from torch.optim.lr_scheduler import LinearLR, SequentialLR
from torch.utils.tensorboard import SummaryWriter

from lr_gym.control import LRController, LRControllerScheduler, tensorboard_logger

WARMUP = 30


def main() -> int:
    """Trains the digits MLP: 30 warmup steps, then the controller decides every K steps."""
    controller, logdir = parse_args(__doc__, "lr_gym_torch_")
    x_train, y_train, x_val, y_val = data()
    model = mlp()
    # SGD, or Prodigy (lr=1) for a controller trained on that base (the default).
    optimizer = LRController.optimizer_for(controller, model.parameters(), torch.optim.SGD,
                                           lr=LR0, momentum=0.9)
    writer = SummaryWriter(logdir)

    # --- begin example ---
    warmup = LinearLR(optimizer, start_factor=0.1, total_iters=WARMUP)
    controller = LRControllerScheduler(optimizer, controller, total_steps=T - WARMUP,
                                       steps_per_action=K, model=model)
    controller.controller.add_logger(tensorboard_logger(writer))  # every decision
    scheduler = SequentialLR(optimizer, [warmup, controller], milestones=[WARMUP])
    g = torch.Generator().manual_seed(0)
    for step in range(T):
        if step == WARMUP:  # the controller's first decision, on the warmed-up model
            controller.observe(**evaluate(model, x_val, y_val))
        idx = torch.randint(len(x_train), (64,), generator=g)
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= WARMUP:
            controller.record(loss)  # SequentialLR.step() passes no loss
        scheduler.step()
        writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step + 1)
        if controller.eval_due:
            controller.observe(**evaluate(model, x_val, y_val))
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict()}  # resumes the controller too
    # --- end example ---
    writer.close()
    torch.save(checkpoint, f"{logdir}/checkpoint.pt")
    report(controller.controller.history, scheduler.get_last_lr()[0],
           evaluate(model, x_val, y_val)["val_metric"], logdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
