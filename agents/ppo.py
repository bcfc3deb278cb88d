"""The learned controller: PPO (stable-baselines3) with the design's meta-network.

Hyperparameters live in ``agents/hyperparams/ppo.yml`` keyed by env id (RL Zoo
style). A trained agent is a run folder holding ``model.zip`` (SB3), the observation
normalisation ``vecnormalize.pkl`` and the exact ``config.yml`` it was trained with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

from agents.base import Controller

HYPERPARAMS_FILE = Path(__file__).parent / "hyperparams" / "ppo.yml"
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class PPOHyperparams:
    """PPO settings for one env id (fields mirror ``ppo.yml``).

    Attributes:
        n_timesteps: Total env steps of training.
        n_envs: Parallel envs (subprocesses when > 1).
        policy: SB3 policy name.
        learning_rate: Adam learning rate of the meta-network.
        batch_size: PPO minibatch size.
        n_epochs: PPO epochs per rollout.
        n_steps: Rollout length per env.
        gamma: Discount.
        gae_lambda: GAE lambda.
        clip_range: PPO clipping.
        ent_coef: Entropy bonus.
        vf_coef: Value-loss weight.
        max_grad_norm: Gradient clipping of the meta-network.
        net_arch: Hidden layers of both policy and value networks.
        activation_fn: ``"relu"`` or ``"tanh"``.
        normalize_obs: Running observation normalisation (VecNormalize).
        normalize_reward: Running return normalisation (VecNormalize).
        eval_freq: Env steps between periodic evaluations (0: none).
        n_eval_episodes: Episodes per periodic evaluation.
        checkpoint_freq: Env steps between checkpoints (0: none).
        env_kwargs: EnvConfig overrides used in training and saved with the agent.
    """

    n_timesteps: int = 20000
    n_envs: int = 2
    policy: str = "MlpPolicy"
    learning_rate: float = 1e-3
    batch_size: int = 32
    n_epochs: int = 5
    n_steps: int = 256
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 32)
    activation_fn: str = "relu"
    normalize_obs: bool = True
    normalize_reward: bool = True
    eval_freq: int = 2048
    n_eval_episodes: int = 4
    checkpoint_freq: int = 4096
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PPOHyperparams:
        """Builds from a YAML mapping; unknown keys raise a clear error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown PPO hyperparameter(s) {unknown}; valid: {sorted(known)}.")
        values = dict(values)
        if "net_arch" in values:
            values["net_arch"] = tuple(int(x) for x in values["net_arch"])
        if values.get("activation_fn", "relu") not in ACTIVATIONS:
            raise ValueError(f"activation_fn must be one of {sorted(ACTIVATIONS)}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """YAML-friendly dict."""
        d = dataclasses.asdict(self)
        d["net_arch"] = list(self.net_arch)
        d["env_kwargs"] = dict(self.env_kwargs)
        return d

    def policy_kwargs(self) -> dict[str, Any]:
        """SB3 ``policy_kwargs``: separate pi/vf MLPs with ``net_arch`` hidden layers."""
        arch = list(self.net_arch)
        return {
            "net_arch": {"pi": arch, "vf": arch},
            "activation_fn": ACTIVATIONS[self.activation_fn],
        }


def load_hyperparams(
    env_id: str, path: str | Path | None = None, **overrides: Any
) -> PPOHyperparams:
    """Hyperparameters for ``env_id`` from a YAML file keyed by env id.

    Args:
        env_id: Key to look up; falls back to ``default`` when absent.
        path: YAML file (default: the packaged ``agents/hyperparams/ppo.yml``).
        **overrides: Values that replace the file's (e.g. ``n_timesteps``).
    """
    path = Path(path) if path else HYPERPARAMS_FILE
    with open(path) as f:
        table = yaml.safe_load(f) or {}
    if env_id in table:
        values = table[env_id]
    elif "default" in table:
        values = table["default"]
    else:
        raise KeyError(f"No hyperparameters for {env_id!r} (and no 'default') in {path}.")
    return PPOHyperparams.from_dict({**values, **overrides})


def make_ppo(venv: Any, hp: PPOHyperparams, *, seed: int | None, device: str = "auto", **kw: Any):
    """A fresh SB3 PPO on ``venv`` with the meta-network of ``hp``."""
    from stable_baselines3 import PPO

    return PPO(
        hp.policy,
        venv,
        learning_rate=hp.learning_rate,
        n_steps=hp.n_steps,
        batch_size=hp.batch_size,
        n_epochs=hp.n_epochs,
        gamma=hp.gamma,
        gae_lambda=hp.gae_lambda,
        clip_range=hp.clip_range,
        ent_coef=hp.ent_coef,
        vf_coef=hp.vf_coef,
        max_grad_norm=hp.max_grad_norm,
        policy_kwargs=hp.policy_kwargs(),
        seed=seed,
        device=device,
        **kw,
    )


def latest_run(log_folder: str | Path) -> Path:
    """The most recently written run folder under ``<log_folder>/ppo``."""
    root = Path(log_folder) / "ppo"
    runs = [p for p in root.glob("*") if (p / "model.zip").is_file()]
    if not runs:
        raise FileNotFoundError(
            f"No trained agent under {root}: train one with `python train_agent.py` "
            "or pass --agent PATH."
        )
    return max(runs, key=lambda p: (p / "model.zip").stat().st_mtime)


class PPOController(Controller):
    """A trained PPO policy acting deterministically, with its saved normalisation.

    Args:
        model: The SB3 PPO model.
        obs_mean: Observation running mean (None: no normalisation).
        obs_var: Observation running variance.
        clip_obs: Clip of normalised observations.
        env_kwargs: EnvConfig overrides the agent was trained under.
        name: Table name.
    """

    def __init__(
        self,
        model: Any,
        obs_mean: np.ndarray | None = None,
        obs_var: np.ndarray | None = None,
        *,
        clip_obs: float = 10.0,
        epsilon: float = 1e-8,
        env_kwargs: Mapping[str, Any] | None = None,
        name: str = "ppo",
    ) -> None:
        self.model = model
        self.obs_mean, self.obs_var = obs_mean, obs_var
        self.clip_obs, self.epsilon = clip_obs, epsilon
        self._env_kwargs = dict(env_kwargs or {})
        self.name = name

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", name: str = "ppo") -> PPOController:
        """Loads a run folder (or a ``model.zip`` inside one)."""
        from stable_baselines3 import PPO

        path = Path(path)
        run = path.parent if path.suffix == ".zip" else path
        model_file = path if path.suffix == ".zip" else run / "model.zip"
        if not model_file.is_file():
            raise FileNotFoundError(
                f"No agent at {path}: expected a run folder with model.zip (from train_agent.py)."
            )
        model = PPO.load(model_file, device=device)
        mean = var = None
        clip_obs, eps = 10.0, 1e-8
        norm_file = run / "vecnormalize.pkl"
        if norm_file.is_file():
            import pickle

            with open(norm_file, "rb") as f:
                vn = pickle.load(f)  # SB3's own format; issue #4 adds a pickle-free export
            if vn.norm_obs:
                mean, var = vn.obs_rms.mean.copy(), vn.obs_rms.var.copy()
            clip_obs, eps = vn.clip_obs, vn.epsilon
        env_kwargs = {}
        cfg = run / "config.yml"
        if cfg.is_file():
            env_kwargs = (yaml.safe_load(cfg.read_text()) or {}).get("hyperparams", {}).get(
                "env_kwargs", {}
            )
        return cls(
            model, mean, var, clip_obs=clip_obs, epsilon=eps, env_kwargs=env_kwargs, name=name
        )

    def env_kwargs(self) -> Mapping[str, Any]:
        """The EnvConfig overrides the agent was trained under."""
        return self._env_kwargs

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Applies the saved running normalisation, as VecNormalize does."""
        if self.obs_mean is None:
            return obs
        out = (obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon)
        return np.clip(out, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Deterministic policy action."""
        action, _ = self.model.predict(self.normalize(obs), deterministic=True)
        return np.asarray(action, dtype=np.float32).reshape(1)
