"""A trained LR controller in a plain PyTorch loop (scikit-learn digits, CPU, seconds).

Usage:
    python examples/deploy_plain_loop.py [RUN_DIR | controller.safetensors]

With a run folder (from ``train_agent.py``) it uses the run's ``controller.safetensors``
(exporting one only for runs of older versions, which unpickles: your own runs only);
with no argument it trains a tiny agent on the fly (``train_agent.py -n 256``, minutes).
The block between the markers is all a training loop needs.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits


def controller_file(arg: str | None, workdir: Path) -> Path:
    """A controller file: the argument itself, a run folder's, or one trained here."""
    from agents.deploy import controller_file_for, export_controller

    if arg and arg.endswith(".safetensors"):
        return Path(arg)
    if arg is None:
        from agents.training.cli import main as train

        print("No run folder given: training a tiny agent (256 env steps)...")
        train(["-n", "256", "--n-envs", "1", "--eval-freq", "0", "--save-freq", "0",
               "--no-progress", "-v", "0", "-f", str(workdir)])
        arg = str(next((workdir / "ppo").glob("*")))
    own = controller_file_for(arg)
    if own.is_file():
        return own
    return export_controller(arg, workdir / "controller.safetensors")


def main() -> int:
    """Trains an MLP on digits with the controller setting its learning rate."""
    workdir = Path(tempfile.mkdtemp(prefix="lr_gym_deploy_"))
    path = controller_file(sys.argv[1] if len(sys.argv) > 1 else None, workdir)

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    T, K = 300, 15  # optimizer-step budget, steps per decision

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            for idx in torch.randperm(len(x_train)).split(64):
                yield x_train[idx], y_train[idx]

    @torch.no_grad()
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        logits = model(x_val)
        return {"val_loss": F.cross_entropy(logits, y_val).item(),
                "val_metric": (logits.argmax(1) == y_val).float().mean().item()}

    data = batches()
    # --- begin example ---
    from lr_gym.control import LRController
    optimizer = LRController.optimizer_for(path, model.parameters(), torch.optim.SGD, lr=0.05,
                                           momentum=0.9)  # Prodigy for the default
    controller = LRController(optimizer, path, total_steps=T, steps_per_action=K, model=model)
    controller.observe(**evaluate(model))  # the untrained model: first decision
    for _ in range(T):
        inputs, targets = next(data)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss)  # after every optimizer step
        if controller.eval_due:  # every K steps: validation result -> next LR
            controller.observe(**evaluate(model))
    # --- end example ---
    print(f"controller: {path}")
    print("decisions (step: action -> lr): "
          + ", ".join(f"{t}: {a:+.2f} -> {lr:.3g}" for t, a, lr in controller.history))
    print(f"final val accuracy {evaluate(model)['val_metric']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
