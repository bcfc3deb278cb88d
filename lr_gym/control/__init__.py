"""The deployable runtime of a trained controller: its file, policy, LR controller and faces.

Deploying a controller needs torch, numpy, safetensors and the LR-free base optimizers
only (``pip install lr-gym``, the core install): nothing here imports stable-baselines3,
gymnasium or unpickles anything. One idea per module:

* :mod:`~lr_gym.control.file`: the file format, its checks and digest
  (:func:`validate_controller`, :func:`check_deployable`, :class:`ControllerFileError`);
* :mod:`~lr_gym.control.policy`: :class:`ControllerPolicy`, a loaded, verified file;
* :mod:`~lr_gym.control.resolve`: pretrained names, paths and run folders
  (:func:`load_controller_file`);
* :mod:`~lr_gym.control.scheduler`: :class:`LRController`, a file driving any torch
  optimizer (decisions equal the env's on the same statistics);
* :mod:`~lr_gym.control.distributed`: one decision per interval on every rank under
  ``torch.distributed`` (inputs averaged, rank 0's guard verdict and action broadcast);
* :mod:`~lr_gym.control.state`: the schema of its resume state, checked before a
  resume (:func:`check_state`, :class:`ControllerStateError`);
* :mod:`~lr_gym.control.torch_scheduler`: :class:`LRControllerScheduler`, the same
  controller as a torch ``LRScheduler`` (``SequentialLR``, ``state_dict``);
* :mod:`~lr_gym.control.hf`: :class:`LRControllerCallback` for the Hugging Face
  ``Trainer``;
* :mod:`~lr_gym.control.lightning`: ``LRControllerLightning`` for PyTorch Lightning
  (the ``[lightning]`` extra; import it from there);
Training-side code lives in :mod:`agents.controller` (``[train]`` extra): the export of a
PPO run to a file (the one module that reads pickles, your own runs only) and
:class:`~agents.controller.PolicyController`, a file acting in the env.

Trust model. Loading a controller file never unpickles anything, so a file from someone
else cannot run code; evaluation and deployment load agents only this way. Its SHA-256
is an integrity check, not authenticity, so every value a file asks for is validated at
load (a :class:`ControllerFileError`, never a surprise at the first decision). A resume
state is checked the same way, and bound to the controller that saved it by content
(a :class:`ControllerStateError`).

Usage in a plain loop::

    ctl = LRController(opt, "controller.safetensors", total_steps=T, steps_per_action=K,
                       model=model)             # the guard rolls the model back
    ctl.observe(**evaluate(model))          # once on the untrained model
    for step in range(T):
        loss = loss_fn(model, next(batches))
        opt.zero_grad(); loss.backward(); opt.step()
        ctl.step(loss)                      # every optimizer step
        if ctl.eval_due:                    # every K steps
            ctl.observe(**evaluate(model))  # val_loss=..., val_metric=...
"""

from typing import Any

from lr_gym.control.file import (
    FORMAT,
    FORMAT_VERSION,
    LR_FACTOR_RANGE,
    LR_RANGE,
    MAX_FACTOR_LIMIT,
    POLICY_FIELDS,
    ControllerFileError,
    check_deployable,
    content_digest,
    file_env_config,
    validate_controller,
)
from lr_gym.control.policy import ControllerPolicy
from lr_gym.control.resolve import (
    PRETRAINED,
    PRETRAINED_DIR,
    agent_label,
    controller_file_for,
    is_pretrained_name,
    load_controller_file,
    pretrained_file,
)
from lr_gym.control.scheduler import LRController, tensorboard_logger
from lr_gym.control.state import ControllerStateError, StateSpec, check_state
from lr_gym.control.torch_scheduler import LRControllerScheduler


def __getattr__(name: str) -> Any:
    # The Trainer face subclasses transformers' TrainerCallback: imported on first use, so
    # importing the runtime never imports transformers (tests/control/test_light_install.py).
    if name == "LRControllerCallback":
        from lr_gym.control.hf import LRControllerCallback

        return LRControllerCallback
    raise AttributeError(f"module 'lr_gym.control' has no attribute {name!r}")


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LR_FACTOR_RANGE",
    "LR_RANGE",
    "MAX_FACTOR_LIMIT",
    "POLICY_FIELDS",
    "PRETRAINED",
    "PRETRAINED_DIR",
    "ControllerFileError",
    "ControllerPolicy",
    "ControllerStateError",
    "LRController",
    "LRControllerCallback",
    "LRControllerScheduler",
    "StateSpec",
    "agent_label",
    "check_deployable",
    "check_state",
    "content_digest",
    "controller_file_for",
    "file_env_config",
    "is_pretrained_name",
    "load_controller_file",
    "pretrained_file",
    "tensorboard_logger",
    "validate_controller",
]
