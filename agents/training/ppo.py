"""The learned controller: PPO (stable-baselines3) with the design's meta-network.

Hyperparameters live in ``agents/hyperparams/ppo.yml`` keyed by env id (RL Zoo
style). A trained agent is a run folder (:mod:`agents.common.runs`) holding ``model.zip``
(SB3), the observation normalisation ``vecnormalize.pkl``, the exact ``config.yml`` it
was trained with, the pickle-free ``controller.safetensors`` and, written last,
``complete.json``.

Trust boundary: ``model.zip`` (SB3's cloudpickled data) and ``vecnormalize.pkl`` are
pickles, and unpickling a file runs whatever code its author put in it.
:meth:`PPOController.load` reads them, so it is only for your own runs: resuming
training (``train_agent.py -i``) and ``python -m agents.deploy export``. Evaluation
and deployment load ``controller.safetensors`` (:mod:`agents.controller`) instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

from agents.baselines.base import Controller
from agents.common.runs import (
    MODEL,
    latest_run,  # noqa: F401 - its old home; it moved to common.runs
    run_files,
)

HYPERPARAMS_FILE = Path(__file__).parents[1] / "hyperparams" / "ppo.yml"
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}

# (type, lowest, highest, lowest excluded) of each number; checked before any run starts.
_INTS = {"n_timesteps": 1, "n_envs": 1, "batch_size": 2, "n_epochs": 1, "n_steps": 1,
         "eval_freq": 0, "n_eval_episodes": 1, "checkpoint_freq": 0, "critic_warmup": 0}
_FLOATS: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (0.0, math.inf, True),
    "gamma": (0.0, 1.0, False),
    "gae_lambda": (0.0, 1.0, False),
    "clip_range": (0.0, math.inf, True),
    "ent_coef": (0.0, math.inf, False),
    "vf_coef": (0.0, math.inf, False),
    "max_grad_norm": (0.0, math.inf, True),
    "log_std_init": (-20.0, 2.0, False),
}


class AgentFileError(ValueError):
    """A saved SB3 model or normalisation file that cannot be read (truncated, corrupt)."""


def _as_number(name: str, value: Any, kind: type) -> Any:
    """``value`` as ``kind``; YAML strings such as ``3e-4`` or ``1e5`` are parsed."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise TypeError(f"{name} must be a number, got {value!r}.") from None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if not ok:
        what = "an integer" if kind is int else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r}.")
    return kind(value)


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
        log_std_init: Initial log standard deviation of the Gaussian policy (SB3's 0 is
            sigma 1 on a [-1, 1] action: mostly noise and clipping; -1.6 is sigma 0.2).
        zero_init_action: Zero the action head, so the untrained policy's mean action is
            0 for every observation (in v2's mode: static exactly); residual policy
            learning's identity start.
        target_kl: Stop an update's epochs once the policy moved this far (SB3's
            ``target_kl``); None: never.
        critic_warmup: Rollouts at the start whose updates train only the value
            function (the policy keeps its start while the critic learns what it is worth).
        env_kwargs: EnvConfig overrides used in training and saved with the agent.

    Raises:
        ValueError: A value of the wrong type or out of range (checked at construction,
            so a bad file or flag fails before a run folder exists).
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
    log_std_init: float = 0.0
    zero_init_action: bool = False
    target_kl: float | None = None
    critic_warmup: int = 0
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from lr_gym.config import EnvConfig, check_int, check_real
        from lr_gym.control.file import check_deployable

        for name, lo in _INTS.items():
            check_int(name, getattr(self, name), lo=lo)
        for name, (lo, hi, lo_open) in _FLOATS.items():
            check_real(name, getattr(self, name), lo=lo, hi=None if math.isinf(hi) else hi,
                       lo_open=lo_open)
        if self.n_steps * self.n_envs < 2:
            raise ValueError(f"n_steps * n_envs must be >= 2 (PPO's advantage normalisation), "
                             f"got {self.n_steps} * {self.n_envs}.")
        if self.policy != "MlpPolicy":
            raise ValueError(f"policy must be 'MlpPolicy' (what agents.deploy exports), got "
                             f"{self.policy!r}.")
        arch = self.net_arch
        if not isinstance(arch, tuple) or any(
                isinstance(n, bool) or not isinstance(n, int) for n in arch):
            raise TypeError(f"net_arch must be a list of positive integers, got {arch!r}.")
        if any(n < 1 for n in arch):
            raise ValueError(f"net_arch must be a list of positive integers, got {arch!r}.")
        if self.activation_fn not in ACTIVATIONS:
            raise ValueError(f"activation_fn must be one of {sorted(ACTIVATIONS)}, got "
                             f"{self.activation_fn!r}.")
        if self.target_kl is not None:
            check_real("target_kl", self.target_kl, lo=0.0, lo_open=True)
        for name in ("normalize_obs", "normalize_reward", "zero_init_action"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        if not isinstance(self.env_kwargs, Mapping):
            raise TypeError(f"env_kwargs must be a mapping of EnvConfig options, got "
                            f"{self.env_kwargs!r}.")
        try:
            check_deployable(EnvConfig().replace(**self.env_kwargs))
        except (TypeError, ValueError) as err:
            raise type(err)(f"env_kwargs: {err}") from None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PPOHyperparams:
        """Builds from a YAML mapping, validating every value.

        Numbers may be YAML strings such as ``3e-4`` (YAML 1.1 reads those as text).

        Raises:
            TypeError: Unknown keys (as an unknown keyword would be), or a value of the
                wrong type; the message names the key.
            ValueError: A value out of range; the message names the key and the range.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"Unknown PPO hyperparameter(s) {unknown}; valid: {sorted(known)}.")
        values = dict(values)
        for name in _INTS:
            if name in values:
                values[name] = _as_number(name, values[name], int)
        for name in _FLOATS:
            if name in values:
                values[name] = _as_number(name, values[name], float)
        if values.get("target_kl") is not None:
            values["target_kl"] = _as_number("target_kl", values["target_kl"], float)
        if "net_arch" in values:
            arch = values["net_arch"]
            if not isinstance(arch, (list, tuple)):
                raise TypeError(f"net_arch must be a list of positive integers, got {arch!r}.")
            values["net_arch"] = tuple(_as_number("net_arch", x, int) for x in arch)
        if values.get("env_kwargs") is None:
            values["env_kwargs"] = {}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """YAML-friendly dict."""
        d = dataclasses.asdict(self)
        d["net_arch"] = list(self.net_arch)
        d["env_kwargs"] = dict(self.env_kwargs)
        return d

    def ppo_kwargs(self) -> dict[str, Any]:
        """The SB3 ``PPO`` arguments these hyperparameters set (besides the network)."""
        return {
            "learning_rate": self.learning_rate,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "clip_range": self.clip_range,
            "ent_coef": self.ent_coef,
            "vf_coef": self.vf_coef,
            "max_grad_norm": self.max_grad_norm,
            "target_kl": self.target_kl,
        }

    def policy_kwargs(self) -> dict[str, Any]:
        """SB3 ``policy_kwargs``: separate pi/vf MLPs with ``net_arch`` hidden layers."""
        arch = list(self.net_arch)
        return {
            "net_arch": {"pi": arch, "vf": arch},
            "activation_fn": ACTIVATIONS[self.activation_fn],
            "log_std_init": self.log_std_init,
        }


def load_hyperparams(
    env_id: str, path: str | Path | None = None, **overrides: Any
) -> PPOHyperparams:
    """Hyperparameters for ``env_id`` from a YAML file keyed by env id.

    Args:
        env_id: Key to look up; falls back to ``default`` when absent.
        path: YAML file (default: the packaged ``agents/hyperparams/ppo.yml``).
        **overrides: Values that replace the file's (e.g. ``n_timesteps``).

    Raises:
        ValueError: The file is not a YAML mapping (malformed, not UTF-8, nested too
            deeply) or a value is invalid; the message names the file.
        KeyError: No entry for ``env_id`` and no ``default``.
    """
    path = Path(path) if path else HYPERPARAMS_FILE
    try:
        with open(path, encoding="utf-8") as f:
            table = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
        detail = ("nested too deeply" if isinstance(err, RecursionError)
                  else " ".join(str(err).split())[:300])  # YAML's message, on one line
        raise ValueError(f"{path} is not a hyperparameter YAML file ({detail}); pass a YAML "
                         "mapping of env ids to hyperparameters (see "
                         "agents/hyperparams/ppo.yml).") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path} holds a YAML {type(table).__name__}, not a mapping of env "
                         "ids to hyperparameters (see agents/hyperparams/ppo.yml).")
    if env_id in table:
        values = table[env_id]
    elif "default" in table:
        values = table["default"]
    else:
        raise KeyError(f"No hyperparameters for {env_id!r} (and no 'default') in {path}.")
    return PPOHyperparams.from_dict({**values, **overrides})


def make_ppo(venv: Any, hp: PPOHyperparams, *, seed: int | None, device: str = "auto", **kw: Any):
    """A fresh SB3 PPO on ``venv`` with the meta-network of ``hp``."""
    import torch
    from stable_baselines3 import PPO

    model = PPO(
        hp.policy,
        venv,
        **hp.ppo_kwargs(),
        policy_kwargs=hp.policy_kwargs(),
        seed=seed,
        device=device,
        **kw,
    )
    if hp.zero_init_action:
        with torch.no_grad():
            model.policy.action_net.weight.zero_()
            model.policy.action_net.bias.zero_()
    return model


def actor_parameters(model: Any) -> list[Any]:
    """The parameters of a PPO model's policy (actor) side: what a critic warm-up freezes."""
    policy = model.policy
    params = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
    if isinstance(getattr(policy, "log_std", None), nn.Parameter):
        params.append(policy.log_std)
    return params


class PPOController(Controller):
    """A trained PPO policy acting deterministically, with its saved normalisation.

    :meth:`load` unpickles SB3 files: use it only on runs you trained yourself (see the
    module docstring); evaluation uses :class:`agents.controller.PolicyController`.

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
        """Loads a run folder, its ``model.zip``, a checkpoint or a ``best_model.zip``.

        Unpickles the files: only for your own runs. A checkpoint
        ``model_N_steps.zip`` gets its own ``vecnormalize_N_steps.pkl`` and the run's
        ``config.yml`` (one folder up), so it acts exactly as it did in training.

        Raises:
            FileNotFoundError: No model, or no normalisation file beside it.
            AgentFileError: A file that cannot be read (truncated, corrupt).
        """
        files = run_files(path)
        if not files.model.is_file():
            raise FileNotFoundError(
                f"No agent at {path}: expected a run folder with {MODEL} (from train_agent.py)."
            )
        if not files.vecnormalize.is_file():
            raise FileNotFoundError(
                f"No observation normalisation for {files.model}: expected "
                f"{files.vecnormalize}; without it the policy would act on unnormalised "
                "observations."
            )
        model = load_model(files.model, device=device)
        vn = load_vecnormalize(files.vecnormalize)
        mean = var = None
        if vn.norm_obs:
            mean, var = vn.obs_rms.mean.copy(), vn.obs_rms.var.copy()
        env_kwargs = {}
        if files.config.is_file():
            env_kwargs = (yaml.safe_load(files.config.read_text()) or {}).get(
                "hyperparams", {}).get("env_kwargs", {}) or {}
        return cls(model, mean, var, clip_obs=vn.clip_obs, epsilon=vn.epsilon,
                   env_kwargs=env_kwargs, name=name)

    def env_kwargs(self) -> Mapping[str, Any]:
        """The EnvConfig overrides the agent was trained under."""
        return self._env_kwargs

    @classmethod
    def from_training(cls, model: Any, venv: Any, env_kwargs: Mapping[str, Any]
                      ) -> PPOController:
        """The controller of a model being trained, with its VecNormalize statistics."""
        norm = venv.norm_obs
        return cls(model, venv.obs_rms.mean.copy() if norm else None,
                   venv.obs_rms.var.copy() if norm else None, clip_obs=venv.clip_obs,
                   epsilon=venv.epsilon, env_kwargs=env_kwargs)

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


def check_model_zip(path: str | Path) -> None:
    """Checks that ``path`` is a whole SB3 zip (every member's CRC), without unpickling.

    Raises:
        FileNotFoundError: No such file.
        AgentFileError: Truncated, corrupt, or not an SB3 model.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        ckpts = sorted(path.parent.glob("checkpoints/model_*_steps.zip"),
                       key=lambda p: int(p.stem.split("_")[1]))
        hint = (f" The run stopped before its final save; resume from its last checkpoint: "
                f"-i {ckpts[-1]}" if ckpts else "")
        raise FileNotFoundError(f"No model file {path}.{hint}")
    try:
        with zipfile.ZipFile(path) as z:
            names, bad = set(z.namelist()), z.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise AgentFileError(
            f"{path} is not a readable SB3 model (truncated or corrupt: {type(err).__name__}: "
            f"{err}). Use a checkpoint from the run's checkpoints/ folder, or retrain."
        ) from err
    if bad is not None or not {"data", "policy.pth"} <= names:
        why = f"member {bad} fails its CRC" if bad else "no SB3 'data' and 'policy.pth' entries"
        raise AgentFileError(
            f"{path} is not a readable SB3 model (truncated or corrupt: {why}). Use a "
            "checkpoint from the run's checkpoints/ folder, or retrain."
        )


def load_model(path: str | Path, *, env: Any = None, device: str = "auto", **kwargs: Any) -> Any:
    """``PPO.load`` (unpickles: own runs only) after :func:`check_model_zip`.

    Raises:
        AgentFileError: The zip is truncated or corrupt.
    """
    from stable_baselines3 import PPO

    check_model_zip(path)
    return PPO.load(path, env=env, device=device, **kwargs)


def load_vecnormalize(path: str | Path) -> Any:
    """Unpickles a ``VecNormalize`` (own runs only) with a clear error for a damaged file.

    Raises:
        AgentFileError: The file is truncated, corrupt or not a VecNormalize.
    """
    import pickle

    from stable_baselines3.common.vec_env import VecNormalize

    try:
        with open(path, "rb") as f:
            vn = pickle.load(f)
    except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError,
            TypeError, ValueError) as err:
        raise AgentFileError(
            f"{path} is not a readable VecNormalize file (truncated or corrupt: "
            f"{type(err).__name__}: {err})."
        ) from err
    if not isinstance(vn, VecNormalize):
        raise AgentFileError(f"{path} holds a {type(vn).__name__}, not a VecNormalize.")
    return vn
