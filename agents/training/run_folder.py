"""A PPO agent's files in its run folder: saving them, and resuming training from them.

The folder itself (its name, the next free one, finding finished runs and checkpoints) is
:mod:`agents.common.runs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.common.runs import atomic_write
from agents.controller.export import export_controller
from agents.training.ppo import ACTIVATIONS, PPOController, load_model, load_vecnormalize


def save_agent(model: Any, venv: Any, folder: Path, names: Sequence[str],
               env_kwargs: Mapping[str, Any], source: Mapping[str, Any]) -> None:
    """Writes an agent's normalisation, controller file and model, each atomically.

    The model goes last, so a ``.zip`` that exists has its companions.

    Args:
        model: The PPO model.
        venv: Its ``VecNormalize``.
        folder: Where the files go.
        names: ``(model, vecnormalize, controller)`` file names.
        env_kwargs: The EnvConfig overrides the agent trains under.
        source: Provenance recorded in the controller file.
    """
    model_name, norm_name, ctl_name = names
    atomic_write(folder / norm_name, lambda tmp: venv.save(str(tmp)))
    export_controller(PPOController.from_training(model, venv, env_kwargs), folder / ctl_name,
                      source={**source, "num_timesteps": int(model.num_timesteps)})
    atomic_write(folder / model_name, lambda tmp: model.save(tmp))


def load_for_resume(files: Any, venv: Any, hp: Any, device: str,
                    tensorboard_log: str | None = None) -> tuple[Any, Any]:
    """The trained agent of ``files`` (:class:`~agents.common.runs.RunFiles`) on ``venv``.

    Unpickles ``model.zip`` and its normalisation: only for your own runs. The
    normalisation statistics are restored exactly (and keep updating); the PPO
    settings of ``hp`` apply, the network is the agent's.

    Returns:
        ``(model, VecNormalize-wrapped venv)``.

    Raises:
        ValueError: A damaged file, or ``hp`` asks for another network.
    """
    vn = load_vecnormalize(files.vecnormalize)
    vn.set_venv(venv)
    vn.training = True
    model = load_model(files.model, env=vn, device=device, tensorboard_log=tensorboard_log,
                       **hp.ppo_kwargs())
    saved = model.policy_kwargs
    want = hp.policy_kwargs()
    if saved.get("net_arch") != want["net_arch"] or (
            saved.get("activation_fn") is not ACTIVATIONS[hp.activation_fn]):
        raise ValueError(
            f"{files.model} has the network {saved.get('net_arch')} "
            f"{getattr(saved.get('activation_fn'), '__name__', '?')}, but the hyperparameters "
            f"ask for {want['net_arch']} {hp.activation_fn}: a resumed agent keeps its "
            "network; drop the override."
        )
    return model, vn


