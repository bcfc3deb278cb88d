"""Tasks: primary models, data and inner optimizers that environments wrap."""

from lr_gym.tasks.base import (
    Task,
    TaskData,
    classification_eval,
    classification_loss,
    iterate_batches,
    move_to,
)

__all__ = [
    "Task",
    "TaskData",
    "classification_eval",
    "classification_loss",
    "iterate_batches",
    "move_to",
]
