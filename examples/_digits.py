"""The examples' shared task: an MLP on scikit-learn's digits (offline, CPU, seconds)."""

from __future__ import annotations

import argparse
import tempfile

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

T, K = 300, 15  # optimizer-step budget, steps per decision
LR0 = 0.05


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_val, y_val)``: 1400 training and 397 validation digits."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def mlp() -> torch.nn.Sequential:
    """A 64-64-10 MLP, seeded."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x_val: torch.Tensor, y_val: torch.Tensor
             ) -> dict[str, float]:
    """Validation loss and accuracy, in the controller's ``observe`` names."""
    logits = model(x_val)
    return {"val_loss": F.cross_entropy(logits, y_val).item(),
            "val_metric": (logits.argmax(1) == y_val).float().mean().item()}


def parse_args(doc: str, prefix: str) -> tuple[str, str]:
    """``(controller, logdir)`` from the command line of an example (``doc``: its usage)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("controller", nargs="?", default="lr_gym/default",
                        help="a controller file, run folder or pretrained name")
    parser.add_argument("--logdir", default=None, help="where logs go (default: a temp folder)")
    args = parser.parse_args()
    return args.controller, args.logdir or tempfile.mkdtemp(prefix=prefix)


def report(history: list, lr: float, val_accuracy: float, logdir: str) -> None:
    """Prints what the run did and where its TensorBoard logs are."""
    print(f"decisions: {len(history)}, final LR {lr:.3g}, val accuracy {val_accuracy:.4f}")
    print(f"TensorBoard: tensorboard --logdir {logdir}")
