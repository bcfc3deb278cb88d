"""Agents by name: labels for result files, pinned copies, and a controller file acting in the env.

Finding the file itself (pretrained names, paths, run folders) is the runtime's:
:mod:`lr_gym.control.resolve`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines.base import ConstantAction, Controller
from lr_gym.config import EnvConfig
from lr_gym.control.file import POLICY_FIELDS
from lr_gym.control.policy import ControllerPolicy
from lr_gym.control.resolve import (  # noqa: F401 - re-exported
    PRETRAINED,
    PRETRAINED_DIR,
    agent_label,
    controller_file_for,
    is_pretrained_name,
    load_controller_file,
    pretrained_file,
)


def agent_labels(agents: Sequence[str], sha256s: Sequence[str]) -> dict[str, str]:
    """Each agent's :func:`agent_label`, made unique by its content hash where two clash."""
    labels = {a: agent_label(a) for a in agents}
    if len(set(labels.values())) < len(labels):
        labels = {a: f"{labels[a]}@{sha[:12]}" for a, sha in zip(agents, sha256s, strict=True)}
    return labels


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

    The pickle-free twin of :class:`~agents.training.ppo.PPOController`: the same normalisation,
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
