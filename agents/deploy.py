"""A trained controller as one safe file, and as a drop-in LR scheduler.

The public deployment API in one place; it lives in the :mod:`agents.controller`
package:

* the torch-only runtime (never imports stable-baselines3): :class:`ControllerPolicy`
  (loading and validating a controller file), :class:`LRController` (a torch LR
  scheduler), :class:`PolicyController` (a file acting in the env) and
  :class:`LRControllerCallback` (Hugging Face ``Trainer``). Its docstring describes the
  trust model: loading a file never unpickles anything, and its SHA-256 is an integrity
  check, not authenticity.
* :mod:`agents.controller.export`: :func:`export_controller` (a PPO run -> controller
  file) and the CLI.

CLI: ``python -m agents.deploy export --agent RUN_DIR`` (re)writes
``RUN_DIR/controller.safetensors``; it unpickles the run's files, so run it only on
runs you trained yourself.
"""

from __future__ import annotations

from agents.controller import (
    FORMAT,
    FORMAT_VERSION,
    MAX_FACTOR_LIMIT,
    PRETRAINED,
    ControllerFileError,
    ControllerPolicy,
    LRController,
    LRControllerCallback,
    PolicyController,
    check_deployable,
    controller_file_for,
    load_controller_file,
    pretrained_file,
    validate_controller,
)
from agents.controller.export import build_parser, export_controller, main

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_FACTOR_LIMIT",
    "PRETRAINED",
    "ControllerFileError",
    "ControllerPolicy",
    "LRController",
    "LRControllerCallback",
    "PolicyController",
    "build_parser",
    "check_deployable",
    "controller_file_for",
    "export_controller",
    "load_controller_file",
    "main",
    "pretrained_file",
    "validate_controller",
]

if __name__ == "__main__":
    raise SystemExit(main())
