"""Finding a controller: pretrained names, paths, labels, and the evaluation adapter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import ConstantAction, Controller
from agents.controller.file import POLICY_FIELDS
from agents.controller.policy import ControllerPolicy
from agents.runs import CONTROLLER, portable_path, run_files
from lr_gym.config import EnvConfig

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


def agent_labels(agents: Sequence[str], sha256s: Sequence[str]) -> dict[str, str]:
    """Each agent's :func:`agent_label`, made unique by its content hash where two clash."""
    labels = {a: agent_label(a) for a in agents}
    if len(set(labels.values())) < len(labels):
        labels = {a: f"{labels[a]}@{sha[:12]}" for a, sha in zip(agents, sha256s, strict=True)}
    return labels


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


def pin_controller(agent: str | Path, folder: str | Path) -> str:
    """A copy of ``agent``'s controller file under ``folder``, named by its content.

    Benchmarks key their runs by the agent's path, so a controller re-shipped or
    retrained at the same path would otherwise resume from the old one's runs. Copied to
    ``<folder>/<sha256[:12]>.safetensors``, a new controller gets new runs while the
    baselines' runs are reused, and the folder shows which controller made which.

    Returns:
        The copy's absolute path.
    """
    import shutil

    digest = load_controller_file(agent).sha256
    copy = (Path(folder) / f"{digest[:12]}.safetensors").resolve()
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(controller_file_for(agent), copy)
    return str(copy)


class PolicyController(Controller):
    """A controller file acting in an :class:`~lr_gym.envs.LRControlEnv` (evaluation).

    The pickle-free twin of :class:`~agents.ppo.PPOController`: the same normalisation,
    network and clipping, so the same actions on the same observations, and the same
    training-time ``env_kwargs`` (read from the file's ``env_config``).

    Args:
        policy: A loaded :class:`ControllerPolicy`.
        name: Table name.
    """

    def __init__(self, policy: ControllerPolicy, name: str = "ppo") -> None:
        self.policy = policy
        self.name = name
        default = EnvConfig().to_dict()
        # Only how the policy reads and writes: the evaluation owns its protocol (budget,
        # divergence rule, reward, seeds), whatever the file says about its training.
        self._env_kwargs = {
            k: v for k, v in policy.env_config.to_dict().items()
            if k in POLICY_FIELDS and v != default[k]
        }

    @classmethod
    def load(cls, agent: str | Path, name: str = "ppo") -> PolicyController:
        """From a controller file, or the controller file of a run folder or checkpoint."""
        return cls(load_controller_file(agent), name=name)

    def env_kwargs(self) -> Mapping[str, Any]:
        """The EnvConfig overrides the agent was trained under."""
        return self._env_kwargs

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Deterministic policy action."""
        return np.array([self.policy.act(obs)], dtype=np.float32)

    def zero_action(self, name: str = "zero_action") -> ConstantAction:
        """The same LR rule with every action 0: what the policy adds is the gap to it.

        Over the task's optimizer (``lr_gym/task-base``) that is static at lr0; over
        ``base="prodigy"`` (``lr_gym/default``), Prodigy at a constant lr of 1.
        """
        return ConstantAction(0.0, name, self._env_kwargs)
