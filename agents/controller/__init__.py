"""The torch-only runtime of a trained controller: its file, policy and LR scheduler.

Deploying a controller needs torch, safetensors and lr_gym only: nothing here imports
stable-baselines3 or unpickles anything. One idea per module:

* :mod:`~agents.controller.file`: the file format, its checks and digest
  (:func:`validate_controller`, :func:`check_deployable`, :class:`ControllerFileError`);
* :mod:`~agents.controller.policy`: :class:`ControllerPolicy`, a loaded, verified file;
* :mod:`~agents.controller.resolve`: pretrained names and paths
  (:func:`load_controller_file`) and :class:`PolicyController`, a file acting in the env;
* :mod:`~agents.controller.scheduler`: :class:`LRController`, a file driving any torch
  optimizer (decisions equal the env's on the same statistics);
* :mod:`~agents.controller.state`: the schema of its resume state, checked before a
  resume (:func:`check_state`, :class:`ControllerStateError`);
* :mod:`~agents.controller.torch_scheduler`: :class:`LRControllerScheduler`, the same
  controller as a torch ``LRScheduler`` (``SequentialLR``, ``state_dict``);
* :mod:`~agents.controller.hf`: :class:`LRControllerCallback` for the Hugging Face
  ``Trainer``;
* :mod:`~agents.controller.lightning`: ``LRControllerLightning`` for PyTorch Lightning
  (the ``[lightning]`` extra; import it from there);
* :mod:`~agents.controller.export`: a PPO run to a file, and its CLI. The one module that
  reads pickles (your own runs only); it is not imported here.

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

from agents.controller.file import (
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
from agents.controller.hf import LRControllerCallback
from agents.controller.policy import ControllerPolicy
from agents.controller.resolve import (
    PRETRAINED,
    PRETRAINED_DIR,
    PolicyController,
    agent_label,
    agent_labels,
    controller_file_for,
    is_pretrained_name,
    load_controller_file,
    pin_controller,
    pretrained_file,
)
from agents.controller.scheduler import LRController, tensorboard_logger
from agents.controller.state import ControllerStateError, StateSpec, check_state
from agents.controller.torch_scheduler import LRControllerScheduler

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
    "PolicyController",
    "StateSpec",
    "agent_label",
    "agent_labels",
    "check_deployable",
    "check_state",
    "content_digest",
    "controller_file_for",
    "file_env_config",
    "is_pretrained_name",
    "load_controller_file",
    "pin_controller",
    "pretrained_file",
    "tensorboard_logger",
    "validate_controller",
]
