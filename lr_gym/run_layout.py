"""The layout of a training run folder: which file holds what, and where a checkpoint's are.

A run folder ``logs/ppo/<Env>_<N>/`` holds::

    config.yml                  the exact hyperparameters, env options and versions
    model.zip                   SB3 model (pickled data: only for resuming your own runs)
    vecnormalize.pkl            observation normalisation (pickle: the same)
    controller.safetensors      the pickle-free controller evaluation and deployment load
    complete.json               written last: the run finished (or was stopped by Ctrl-C)
    checkpoints/model_<N>_steps.zip, vecnormalize_<N>_steps.pkl,
                controller_<N>_steps.safetensors
    best/best_model.zip, vecnormalize.pkl, controller.safetensors

Names only, no dependencies: the deployable runtime (:mod:`lr_gym.control`) finds a run's
controller file with them, and :mod:`agents.common.runs` writes the run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL = "model.zip"
VECNORMALIZE = "vecnormalize.pkl"
CONTROLLER = "controller.safetensors"
CONFIG = "config.yml"
COMPLETE = "complete.json"
BEST_MODEL = "best_model.zip"

_CHECKPOINT = re.compile(r"(?P<prefix>.*?)_(?P<steps>\d+)_steps")


def checkpoint_names(steps: int) -> tuple[str, str, str]:
    """``(model, vecnormalize, controller)`` file names of the checkpoint at ``steps``."""
    return (f"model_{steps}_steps.zip", f"vecnormalize_{steps}_steps.pkl",
            f"controller_{steps}_steps.safetensors")


@dataclass(frozen=True)
class RunFiles:
    """Where the pieces of one saved agent are (they need not exist).

    Attributes:
        model: The SB3 ``.zip``.
        vecnormalize: Its observation normalisation.
        controller: Its pickle-free controller file.
        config: The ``config.yml`` of the run it belongs to.
    """

    model: Path
    vecnormalize: Path
    controller: Path
    config: Path


def run_files(path: str | os.PathLike) -> RunFiles:
    """The files of a run folder, a checkpoint ``.zip`` or a ``best_model.zip``.

    A checkpoint ``checkpoints/model_N_steps.zip`` pairs with ``vecnormalize_N_steps.pkl``
    (or SB3's ``model_vecnormalize_N_steps.pkl``) and ``controller_N_steps.safetensors``
    beside it; any other ``.zip`` with ``vecnormalize.pkl`` and ``controller.safetensors``
    beside it. ``config.yml`` is looked up beside the zip, then one folder up.
    """
    path = Path(path)
    if path.suffix != ".zip":
        return RunFiles(path / MODEL, path / VECNORMALIZE, path / CONTROLLER, path / CONFIG)
    folder = path.parent
    config = folder / CONFIG if (folder / CONFIG).is_file() else folder.parent / CONFIG
    m = _CHECKPOINT.fullmatch(path.stem)
    if m is None:
        return RunFiles(path, folder / VECNORMALIZE, folder / CONTROLLER, config)
    _, norm, ctl = checkpoint_names(int(m["steps"]))
    sb3_norm = folder / f"{m['prefix']}_vecnormalize_{m['steps']}_steps.pkl"
    norm_path = folder / norm
    if not norm_path.is_file() and sb3_norm.is_file():
        norm_path = sb3_norm
    return RunFiles(path, norm_path, folder / ctl, config)
