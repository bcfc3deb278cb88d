"""Finding a controller file: pretrained names, paths and run folders."""

from __future__ import annotations

from pathlib import Path

from lr_gym.control.policy import ControllerPolicy
from lr_gym.files import portable_path
from lr_gym.run_layout import CONTROLLER, run_files

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
"""Controllers shipped with the package, each with a model card (``<name>.md``)."""

PRETRAINED: dict[str, str] = {"lr_gym/default": "default", "lr_gym/task-base": "task_base"}
"""Pretrained controller names -> file stems under :data:`PRETRAINED_DIR`;
``"pretrained"`` is short for ``"lr_gym/default"``. The default scales Prodigy's ``lr``
(``base="prodigy"``: the optimizer must be ``prodigyopt.Prodigy``); ``lr_gym/task-base``
scales any optimizer's own LR (``base="task"``)."""


def pretrained_file(name: str = "lr_gym/default") -> Path:
    """The shipped controller file of a pretrained name (see :data:`PRETRAINED`).

    Raises:
        KeyError: Not a pretrained name; the message lists them.
    """
    name = "lr_gym/default" if name == "pretrained" else name
    if name not in PRETRAINED:
        raise KeyError(f"No pretrained controller {name!r}; shipped: {sorted(PRETRAINED)} "
                       "(or 'pretrained').")
    return PRETRAINED_DIR / f"{PRETRAINED[name]}.safetensors"


def is_pretrained_name(agent: str | Path) -> bool:
    """Whether ``agent`` names a shipped controller rather than a path."""
    return isinstance(agent, str) and (agent == "pretrained" or agent in PRETRAINED)


def agent_label(agent: str | Path) -> str:
    """How result files name an agent: no machine's absolute path.

    A shipped controller is its pretrained name (``lr_gym/default``), anything inside
    the working directory its relative path, anything else its file or folder name
    (result files also hold each agent's content hash).
    """
    if is_pretrained_name(agent):
        return "lr_gym/default" if agent == "pretrained" else str(agent)
    path = Path(agent).resolve()
    for name in PRETRAINED:
        if path == pretrained_file(name).resolve():
            return name
    label = portable_path(path)
    return path.name if Path(label).is_absolute() else label


def controller_file_for(agent: str | Path) -> Path:
    """The pickle-free controller file of an agent path (which need not exist yet).

    A pretrained name (``"pretrained"``, ``"lr_gym/default"``) is the shipped file;
    ``*.safetensors`` is the file itself; a run folder has ``controller.safetensors``;
    a checkpoint ``model_N_steps.zip`` has ``controller_N_steps.safetensors`` beside it,
    and any other ``.zip`` (``model.zip``, ``best_model.zip``) ``controller.safetensors``.
    """
    if is_pretrained_name(agent):
        return pretrained_file(str(agent))
    path = Path(agent)
    return path if path.suffix == ".safetensors" else run_files(path).controller


def load_controller_file(agent: str | Path) -> ControllerPolicy:
    """Loads the controller file of ``agent`` (see :func:`controller_file_for`).

    Raises:
        FileNotFoundError: No controller file; the message says how to write one.
        ControllerFileError: The file is not a valid controller file.
    """
    path = controller_file_for(agent)
    if not path.is_file():
        if not Path(agent).exists() or path == Path(agent):
            raise FileNotFoundError(
                f"No agent at {agent}: expected a run folder (from train_agent.py) with "
                f"{CONTROLLER}, a checkpoint .zip, or a .safetensors controller file."
            )
        raise FileNotFoundError(
            f"No controller file {path} for {agent}: evaluation and deployment load only "
            f"this pickle-free file (training writes it). For a run you trained yourself "
            f"with an older lr_gym, write it with `python -m agents.deploy export --agent "
            f"{agent}` (that unpickles the run: never do it for a run you did not make)."
        )
    return ControllerPolicy.load(path)
