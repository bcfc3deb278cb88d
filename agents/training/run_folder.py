"""A training run's folder: its name, its agent files, finding and resuming runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def run_name(env_ids: Sequence[str]) -> str:
    """Folder-friendly name of the env list, e.g. ``EmbeddedMix-v1``."""
    return "+".join(e.split("/")[-1] for e in env_ids)


def next_run_dir(log_folder: Path, name: str) -> Path:
    """``<log_folder>/ppo/<name>_<N>`` with the next free N (RL Zoo's layout)."""
    root = log_folder / "ppo"
    root.mkdir(parents=True, exist_ok=True)
    taken = [
        int(p.name.rsplit("_", 1)[1])
        for p in root.glob(f"{name}_*")
        if p.name.rsplit("_", 1)[1].isdigit()
    ]
    path = root / f"{name}_{max(taken, default=0) + 1}"
    path.mkdir()
    return path


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
    from agents.controller.export import export_controller
    from agents.ppo import PPOController
    from agents.runs import atomic_write

    model_name, norm_name, ctl_name = names
    atomic_write(folder / norm_name, lambda tmp: venv.save(str(tmp)))
    export_controller(PPOController.from_training(model, venv, env_kwargs), folder / ctl_name,
                      source={**source, "num_timesteps": int(model.num_timesteps)})
    atomic_write(folder / model_name, lambda tmp: model.save(tmp))


def load_for_resume(files: Any, venv: Any, hp: Any, device: str,
                    tensorboard_log: str | None = None) -> tuple[Any, Any]:
    """The trained agent of ``files`` (:class:`~agents.runs.RunFiles`) on ``venv``.

    Unpickles ``model.zip`` and its normalisation: only for your own runs. The
    normalisation statistics are restored exactly (and keep updating); the PPO
    settings of ``hp`` apply, the network is the agent's.

    Returns:
        ``(model, VecNormalize-wrapped venv)``.

    Raises:
        ValueError: A damaged file, or ``hp`` asks for another network.
    """
    from agents.ppo import ACTIVATIONS, load_model, load_vecnormalize

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


def trained_run(folder: Path, seed: int, n_timesteps: int) -> Path | None:
    """A finished run of ``seed`` and budget under ``folder``.

    Finished: ``complete.json`` exists (it is written after every other file) and
    training was not interrupted (a Ctrl-C'd run has fewer steps than its budget).
    """
    import yaml

    from agents.runs import completion

    for cfg in sorted((folder / "ppo").glob("*/config.yml")):
        meta = yaml.safe_load(cfg.read_text()) or {}
        done = completion(cfg.parent)
        if meta.get("seed") != seed or done is None or done.get("interrupted"):
            continue
        # A resumed run (-i) trains the remainder: its own budget is smaller, its total
        # steps count on from the checkpoint.
        if meta.get("hyperparams", {}).get("n_timesteps") == n_timesteps or (
                meta.get("trained_agent") and done.get("num_timesteps", 0) >= n_timesteps):
            return cfg.parent
    return None


def last_checkpoint(folder: Path, seed: int) -> tuple[Path, int] | None:
    """The checkpoint of ``seed`` with the most env steps under ``folder`` (and its steps).

    Looks at every run of the seed, finished or not: a run stopped by a kill or the end
    of a session leaves its periodic checkpoints, and a resumed run counts steps on.
    """
    import re

    import yaml

    best: tuple[Path, int] | None = None
    for cfg in (folder / "ppo").glob("*/config.yml"):
        if (yaml.safe_load(cfg.read_text()) or {}).get("seed") != seed:
            continue
        for zip_path in (cfg.parent / "checkpoints").glob("model_*_steps.zip"):
            m = re.fullmatch(r"model_(\d+)_steps\.zip", zip_path.name)
            if m and (best is None or int(m.group(1)) > best[1]):
                best = (zip_path, int(m.group(1)))
    return best


