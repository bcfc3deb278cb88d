"""A trained controller in the Hugging Face ``Trainer`` (``LRControllerCallback``).

Usage:
    python examples/deploy_hf_trainer.py [CONTROLLER] [--logdir DIR]

The Trainer's own logs (``state.log_history``, TensorBoard) show the LR actually applied,
each checkpoint holds the controller's state (``resume_from_checkpoint`` resumes it), and
``tensorboard=True`` adds every decision beside the Trainer's scalars in DIR. Offline,
CPU, seconds; any ``PreTrainedModel`` works the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _digits import LR0, K, T, data, mlp, parse_args, report
from transformers import Trainer, TrainingArguments

from lr_gym.control import LRController, LRControllerCallback


class Digits(torch.utils.data.Dataset):
    """Digits as the Trainer's dict batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Classifier(torch.nn.Module):
    """The digits MLP, returning its loss as Trainer models do."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits and cross-entropy loss."""
        logits = self.net(x)
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def accuracy(pred) -> dict[str, float]:
    """The metric the controller reads (``metric="accuracy"``)."""
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def main() -> int:
    """Trains the digits MLP in a Trainer whose LR the controller sets."""
    controller, out = parse_args(__doc__, "lr_gym_hf_")
    x_train, y_train, x_val, y_val = data()

    # --- begin example ---
    callback = LRControllerCallback(controller, steps_per_action=K, metric="accuracy",
                                    tensorboard=True)
    training_args = TrainingArguments(
        output_dir=out, max_steps=T, per_device_train_batch_size=64, learning_rate=LR0,
        lr_scheduler_type="constant", eval_on_start=True, eval_strategy="no",
        save_strategy="steps", save_steps=150, report_to=["tensorboard"],
        use_cpu=True, disable_tqdm=True, seed=0)
    model = Classifier()
    # SGD, or Prodigy (lr=1) for a controller trained on that base (the default).
    optimizer = LRController.optimizer_for(controller, model.parameters(), torch.optim.SGD,
                                           lr=LR0)
    trainer = Trainer(model=model, args=training_args, optimizers=(optimizer, None),
                      train_dataset=Digits(x_train, y_train), eval_dataset=Digits(x_val, y_val),
                      compute_metrics=accuracy, callbacks=[callback])
    trainer.train()  # or trainer.train(resume_from_checkpoint=True) after an interruption
    # --- end example ---
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    report(callback.controller.history, logged[-1], trainer.evaluate()["eval_accuracy"], out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
