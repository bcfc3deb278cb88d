"""The torch-only runtime of a trained controller: its file, policy and LR scheduler.

This module never imports stable-baselines3: deploying a controller needs torch,
safetensors and lr_gym only. Writing a controller file from a PPO run lives in
:mod:`agents.export`; :mod:`agents.deploy` re-exports both.

A controller file (``.safetensors``, written by :func:`agents.export.export_controller`)
holds the policy weights needed for the deterministic action, the observation
normalisation and, in its metadata, the feature and LR configuration the agent was
trained under. Training writes one into every run folder (``controller.safetensors``)
and every checkpoint.

Trust model. Loading a controller file never unpickles anything, so a file from
someone else cannot run code; evaluation (``evaluate_agent.py``) and deployment load
agents only this way. The SHA-256 stored in the file is an *integrity* check (it
catches truncation, bit rot and careless edits), not *authenticity*: anyone can write
a file with a matching checksum. So :meth:`ControllerPolicy.load` also validates
everything a file may ask for (``0 < lr_min < lr_max``, ``1 < max_factor <= 10``,
finite numbers, weight shapes that match the declared network) and refuses a file
that breaks a rule with :class:`ControllerFileError`, at load time, never at the
first decision. Check where a file comes from as you would for any input that sets
your learning rate.

``LRController`` drives any torch optimizer with that file, computing the same
features (``lr_gym.features.FeatureTracker``) and the same LR rule
(:mod:`lr_gym.lr_rule`) as ``LRControlEnv``, so its decisions equal the env's::

    ctl = LRController(opt, "controller.safetensors", total_steps=T, steps_per_action=K)
    ctl.observe(**evaluate(model))          # once on the untrained model
    for step in range(T):
        loss = loss_fn(model, next(batches))
        opt.zero_grad(); loss.backward(); opt.step()
        ctl.step(loss)                      # every optimizer step
        if ctl.eval_due:                    # every K steps
            ctl.observe(**evaluate(model))  # val_loss=..., val_metric=...

``LRControllerCallback`` does the same inside a Hugging Face ``Trainer``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.base import Controller
from agents.runs import CONTROLLER, portable_path, run_files
from lr_gym import features as feats
from lr_gym import lr_rule
from lr_gym.config import MAX_TOTAL_STEPS, EnvConfig, check_int, check_real
from lr_gym.features import OBS_BOUND, FeatureTracker
from lr_gym.grad_stats import IntervalMeter
from lr_gym.guard import Guard

FORMAT = "lr_gym.controller"
FORMAT_VERSION = "1"
_ACT_FNS = {"relu": torch.relu, "tanh": torch.tanh}


MAX_FACTOR_LIMIT = 10.0
"""The largest ``max_factor`` a controller file may ask for (one action: at most x10)."""


POLICY_FIELDS = ("mode", "schedule", "warmup_frac", "final_lr_frac", "max_factor", "lr_min",
                 "lr_max", "lr_min_factor", "lr_max_factor", "features")
"""The :class:`EnvConfig` fields a controller file sets when it is evaluated or deployed:
how its policy reads observations and writes actions. The rest of its ``env_config``
(budget, divergence rule, reward, events, guard, device) records how it was trained and
never changes an evaluation."""


class ControllerFileError(ValueError):
    """A controller file that is not valid, not supported, or was tampered with."""


def check_deployable(env_config: EnvConfig | Mapping[str, Any]) -> None:
    """The LR rule limits of a controller file, beyond :class:`EnvConfig`'s own checks.

    A file may ask for ``1 < max_factor <= 10`` and, when set, finite bounds with
    ``0 < lr_min < lr_max``. Training checks its ``env_kwargs`` with this too, so no
    agent is trained that could not be exported.

    Raises:
        ValueError: A rule is broken; the message names the field and the valid range.
    """
    c = dict(env_config) if isinstance(env_config, Mapping) else env_config.to_dict()
    check_real("max_factor", c.get("max_factor", EnvConfig.max_factor), lo=1.0, lo_open=True,
               hi=MAX_FACTOR_LIMIT)
    if c.get("lr_min") is not None:
        check_real("lr_min", c["lr_min"], lo=0.0, lo_open=True)
    if c.get("lr_max") is not None:
        check_real("lr_max", c["lr_max"], lo=0.0, lo_open=True)
    lo, hi = c.get("lr_min"), c.get("lr_max")
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"lr_min ({lo}) must be below lr_max ({hi}).")


def _check_tensor(name: str, t: torch.Tensor, shape: tuple[int, ...], float32: bool) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"tensor {name!r} has shape {tuple(t.shape)}; the declared network "
                         f"needs {shape}")
    if float32 and t.dtype != torch.float32:
        raise ValueError(f"tensor {name!r} is {t.dtype}; the policy runs in torch.float32")
    if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
        raise ValueError(f"tensor {name!r} holds non-finite or non-float values")


def file_env_config(config: Mapping[str, Any]) -> EnvConfig:
    """The :class:`EnvConfig` of a controller file's configuration.

    Files exported before features were configurable (v0 envs) name their features
    only in ``feature_names``; those become the config's ``features``.
    """
    env_config = dict(config["env_config"])
    env_config.setdefault("features", feats.check_features(config["feature_names"]))
    return EnvConfig().replace(**env_config)


def validate_controller(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """Checks everything a controller file asks for (see the module docstring).

    Raises:
        ValueError: The first broken rule, naming the field or tensor.
    """
    env_config = file_env_config(config)
    check_deployable(env_config)
    names = list(config["feature_names"])
    if names != list(env_config.features) or float(config["obs_bound"]) != OBS_BOUND:
        raise ValueError(
            f"features {names} clipped to {config['obs_bound']}, but the file's env_config "
            f"observes {list(env_config.features)} and this lr_gym clips to {OBS_BOUND}; use "
            "the lr_gym version it was exported with"
        )
    n_features = len(names)
    for key in ("short_halflife", "long_halflife"):
        check_real(f"tracker.{key}", config["tracker"][key], lo=0.0, lo_open=True)
    p, norm = config["policy"], config["normalization"]
    if p["activation"] not in _ACT_FNS:
        raise ValueError(f"unknown activation {p['activation']!r}; supported: {sorted(_ACT_FNS)}")
    arch = list(p["net_arch"])
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in arch):
        raise ValueError(f"policy.net_arch must be positive integers, got {arch}")
    if p["obs_dim"] != n_features:
        raise ValueError(f"policy.obs_dim is {p['obs_dim']}, expected {n_features}")
    low = check_real("policy.action_low", p["action_low"], lo=-1.0)
    check_real("policy.action_high", p["action_high"], lo=low, lo_open=True, hi=1.0)
    check_real("normalization.clip_obs", norm["clip_obs"], lo=0.0, lo_open=True)
    eps = check_real("normalization.epsilon", norm["epsilon"], lo=0.0)
    if not isinstance(norm["enabled"], bool):
        raise ValueError(f"normalization.enabled must be true or false, got {norm['enabled']!r}")
    fan_in = n_features
    for i, n in enumerate(arch):
        _check_tensor(f"policy.{i}.weight", tensors[f"policy.{i}.weight"], (n, fan_in), True)
        _check_tensor(f"policy.{i}.bias", tensors[f"policy.{i}.bias"], (n,), True)
        fan_in = n
    _check_tensor("action.weight", tensors["action.weight"], (1, fan_in), True)
    _check_tensor("action.bias", tensors["action.bias"], (1,), True)
    if norm["enabled"]:
        for key in ("obs_mean", "obs_var"):
            _check_tensor(key, tensors[key], (n_features,), False)
        if not bool((tensors["obs_var"] >= 0).all()) or not bool(
                (tensors["obs_var"] + eps > 0).all()):
            raise ValueError("obs_var must be >= 0 and obs_var + epsilon > 0")

# ------------------------------------------------------------------------- format
def _digest(config_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the config and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(config_json.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()

# ------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class ControllerPolicy:
    """A verified controller file: the policy MLP, normalisation and training config.

    Attributes:
        config: The exported configuration (feature names, ``env_config``, ``policy``,
            ``normalization``, ``tracker``, ``source``).
        env_config: The :class:`~lr_gym.config.EnvConfig` the agent was trained under.
        layers: ``(weight, bias)`` of each hidden layer.
        action: ``(weight, bias)`` of the action layer.
        obs_mean: Normalisation mean (None: no normalisation).
        obs_var: Normalisation variance.
        path: The file it came from.
        sha256: The content digest stored at export (and verified on load): it names
            the agent's weights and config, wherever the file lies.
    """

    config: dict[str, Any]
    env_config: EnvConfig
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    action: tuple[torch.Tensor, torch.Tensor]
    obs_mean: np.ndarray | None
    obs_var: np.ndarray | None
    path: str = ""
    sha256: str = ""

    @classmethod
    def load(cls, path: str | Path) -> ControllerPolicy:
        """Loads, verifies and validates a file from :func:`~agents.export.export_controller`.

        Never unpickles anything.

        The stored SHA-256 proves integrity, not authenticity (see the module
        docstring), so every value the file asks for is validated here too.

        Raises:
            FileNotFoundError: No such file.
            ControllerFileError: Not a controller file, unsupported version, missing
                tensors, content that does not match its checksum, or values outside
                what a controller may ask for (:func:`validate_controller`).
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No controller file at {path}; write one with "
                "`python -m agents.deploy export --agent RUN_DIR -o FILE`."
            )
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            # Fresh copies: memory-mapped tensors can be misaligned, which changes the
            # float rounding of the matmuls and so the actions' last bits.
            tensors = {k: v.clone() for k, v in load_file(str(path)).items()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ControllerFileError(
                f"{path} is not a readable safetensors file (truncated or corrupt): {e}"
            ) from e
        if meta.get("format") != FORMAT:
            raise ControllerFileError(
                f"{path} is not an lr_gym controller file (metadata 'format' is "
                f"{meta.get('format')!r}, expected {FORMAT!r})."
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise ControllerFileError(
                f"{path} has controller format version {meta.get('format_version')!r}; this "
                f"lr_gym reads version {FORMAT_VERSION!r}. Re-export it with this version "
                "(`python -m agents.deploy export`)."
            )
        try:
            config = json.loads(meta["config"])
            digest = meta["sha256"]
            arch = [int(n) for n in config["policy"]["net_arch"]]
            norm = config["normalization"]
            env_config = file_env_config(config)
            if config["policy"]["activation"] not in _ACT_FNS:
                raise ValueError(f"unknown activation {config['policy']['activation']!r}")
            float(norm["clip_obs"]), float(norm["epsilon"])
        except (KeyError, TypeError, ValueError, RecursionError) as e:
            raise ControllerFileError(
                f"{path}: metadata is missing or malformed ({type(e).__name__}: {e})."
            ) from e
        need = [f"policy.{i}.{p}" for i in range(len(arch)) for p in ("weight", "bias")]
        need += ["action.weight", "action.bias"]
        need += ["obs_mean", "obs_var"] if norm["enabled"] else []
        missing = [k for k in need if k not in tensors]
        if missing:
            raise ControllerFileError(f"{path} lacks tensor(s) {missing}.")
        odd = sorted(k for k, t in tensors.items() if t.dtype not in (torch.float32, torch.float64))
        if odd:
            raise ControllerFileError(f"{path}: tensor(s) {odd} are not float32/float64.")
        if _digest(meta["config"], tensors) != digest:
            raise ControllerFileError(
                f"{path} was tampered with or is corrupt: its content does not match the "
                "SHA-256 stored at export. Re-export it from the run folder."
            )
        try:
            validate_controller(config, tensors)
        except (KeyError, TypeError, ValueError, RecursionError) as e:
            raise ControllerFileError(
                f"{path} asks for what a controller file may not: {e}."
            ) from e
        layers = tuple(
            (tensors[f"policy.{i}.weight"], tensors[f"policy.{i}.bias"]) for i in range(len(arch))
        )
        return cls(
            config=config,
            env_config=env_config,
            layers=layers,
            action=(tensors["action.weight"], tensors["action.bias"]),
            obs_mean=tensors["obs_mean"].numpy() if norm["enabled"] else None,
            obs_var=tensors["obs_var"].numpy() if norm["enabled"] else None,
            path=str(path),
            sha256=digest,
        )

    @classmethod
    def from_run(cls, run_dir: str | Path) -> ControllerPolicy:
        """The controller file of a run folder (or checkpoint): never its pickles.

        Raises:
            FileNotFoundError: The run has no controller file; the message gives the
                explicit export command (which unpickles: only for your own runs).
            ControllerFileError: The file is not a valid controller file.
        """
        return load_controller_file(Path(run_dir))

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """The saved running normalisation, computed exactly as VecNormalize does."""
        if self.obs_mean is None:
            return np.asarray(obs, dtype=np.float32)
        norm = self.config["normalization"]
        out = (obs - self.obs_mean) / np.sqrt(self.obs_var + norm["epsilon"])
        return np.clip(out, -norm["clip_obs"], norm["clip_obs"]).astype(np.float32)

    def act(self, obs: np.ndarray) -> float:
        """The deterministic action in [-1, 1] for one observation."""
        act_fn = _ACT_FNS[self.config["policy"]["activation"]]
        with torch.no_grad():
            x = torch.from_numpy(self.normalize(obs)).unsqueeze(0)
            for w, b in self.layers:
                x = act_fn(F.linear(x, w, b))
            a = F.linear(x, *self.action)
        p = self.config["policy"]
        return float(np.clip(a.numpy().reshape(-1)[0], p["action_low"], p["action_high"]))


PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
"""Controllers shipped with the package, each with a model card (``<name>.md``)."""

PRETRAINED: dict[str, str] = {"lr_gym/default": "default"}
"""Pretrained controller names -> file stems under :data:`PRETRAINED_DIR`;
``"pretrained"`` is short for ``"lr_gym/default"``."""


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


# --------------------------------------------------------------------- controller
class LRController:
    """Sets an optimizer's learning rate with a trained controller, like a torch scheduler.

    Usage (see the module docstring): ``observe(val_loss=..., val_metric=...)`` once on
    the untrained model (the first decision), ``step(loss)`` after every optimizer
    step, and ``observe(...)`` again whenever ``eval_due`` is True (every
    ``steps_per_action`` steps). Every param group's LR is scaled from its initial LR
    by the same factor, as in the env. Called this way, the features, actions and LRs
    equal those of :class:`~lr_gym.envs.LRControlEnv` on the same statistics.

    Args:
        optimizer: The optimizer to drive (any ``torch.optim.Optimizer``).
        policy: A controller file, run folder or checkpoint, a pretrained name
            (``"lr_gym/default"``), or a :class:`ControllerPolicy` already loaded.
        total_steps: The optimizer-step budget ``T`` (progress is ``step / T``).
        steps_per_action: Optimizer steps per decision ``K``.
        lr0: Reference LR of the features; default: the first group's initial LR.
        lr_min: Lowest LR; default: the trained rule (``lr0 * 1e-3`` unless set).
        lr_max: Highest LR; default: the trained rule (``lr0 * 30`` unless set).
        guard: Roll the run back to its best validation loss when it blows up and back
            the LR off (:mod:`lr_gym.guard`, the env's ``guard=True``): needs ``model``
            for buffers such as batch-norm statistics (else only the parameters).
        model: The model the optimizer trains (for the guard).
    """

    load = staticmethod(ControllerPolicy.load)
    from_run = staticmethod(ControllerPolicy.from_run)

    @classmethod
    def from_pretrained(cls, optimizer: torch.optim.Optimizer, name: str = "lr_gym/default",
                        **kwargs: Any) -> LRController:
        """A controller driven by a shipped pretrained policy (see its model card).

        Args:
            optimizer: The optimizer to drive.
            name: A name of :data:`PRETRAINED` (``"lr_gym/default"``).
            **kwargs: As for :class:`LRController` (``total_steps``,
                ``steps_per_action``, ...).
        """
        return cls(optimizer, load_controller_file(name), **kwargs)

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        policy: str | Path | ControllerPolicy,
        *,
        total_steps: int,
        steps_per_action: int,
        lr0: float | None = None,
        lr_min: float | None = None,
        lr_max: float | None = None,
        guard: bool = False,
        model: torch.nn.Module | None = None,
    ) -> None:
        check_int("total_steps", total_steps, lo=1, hi=MAX_TOTAL_STEPS)
        check_int("steps_per_action", steps_per_action, lo=1)
        if not 1 <= steps_per_action <= total_steps:
            raise ValueError(
                f"Need 1 <= steps_per_action <= total_steps, got steps_per_action="
                f"{steps_per_action}, total_steps={total_steps}."
            )
        self.optimizer = optimizer
        self.policy = (policy if isinstance(policy, ControllerPolicy)
                       else load_controller_file(policy))
        self.config = self.policy.env_config
        self.total_steps, self.steps_per_action = int(total_steps), int(steps_per_action)
        # Torch schedulers record each group's starting LR as "initial_lr".
        self._group_lr0 = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.lr0 = float(lr0) if lr0 is not None else self._group_lr0[0]
        if not (self.lr0 > 0 and math.isfinite(self.lr0)):
            raise ValueError(f"lr0 must be > 0, finite, got {self.lr0}; give the optimizer "
                             "an lr.")
        c = self.config
        if lr_min is not None:
            check_real("lr_min", lr_min, lo=0.0)
        if lr_max is not None:
            check_real("lr_max", lr_max, lo=0.0, lo_open=True, allow_inf=True)
        self.lr_min, self.lr_max = lr_rule.lr_bounds(
            self.lr0,
            lr_min if lr_min is not None else c.lr_min,
            lr_max if lr_max is not None else c.lr_max,
            c.lr_min_factor, c.lr_max_factor,
        )
        if not self.lr_min < self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min:g}) must be below lr_max ({self.lr_max:g}) "
                             f"(lr0={self.lr0:g}).")
        self._warned_nonfinite = False
        halflives = self.policy.config.get("tracker", {})
        self._tracker = FeatureTracker(self.lr0, **halflives, features=self.config.features)
        self._rule = lr_rule.LRState.from_config(
            c, lr0=self.lr0, total_steps=self.total_steps, group_lr0=self._group_lr0,
            lr_min=self.lr_min, lr_max=self.lr_max)
        self._meter = IntervalMeter(self.config.features)
        self._guard = Guard(optimizer, model) if guard else None
        self._update_ratio: float | None = None  # given by the caller, else measured
        self._t = 0
        self._started = False
        self._interval_start = 0
        self._losses: list[Any] = []
        self._grad_norm = math.nan
        self._last_obs: np.ndarray | None = None
        self.history: list[tuple[int, float, float]] = []
        """``(step, action, lr)`` of every decision, for logging."""
        self._apply_lr()

    # ---------------------------------------------------------------- LR rule
    def base_lr(self, step: int) -> float:
        """``lr0 * schedule(step)`` of the trained base schedule."""
        return self._rule.base_lr(step)

    def _apply_lr(self) -> None:
        self._lr = self._rule.apply(self.optimizer, self._t)

    def _interval_len(self) -> int:
        return min(self.steps_per_action, self.total_steps - self._interval_start)

    # -------------------------------------------------------------------- API
    @property
    def eval_due(self) -> bool:
        """True when the current interval is complete and ``observe`` should be called."""
        return self._started and self._t - self._interval_start >= max(self._interval_len(), 1)

    @property
    def last_action(self) -> float:
        """The latest action in [-1, 1] (0 before the first decision)."""
        return self._rule.action

    @property
    def last_observation(self) -> np.ndarray | None:
        """The feature vector of the latest decision."""
        return self._last_obs

    def get_last_lr(self) -> list[float]:
        """The LR of every param group, as torch schedulers report it."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def step(self, loss: float | torch.Tensor | None = None, *, grad_norm: float | None = None
             ) -> None:
        """Records one optimizer step (call it right after ``optimizer.step()``).

        Args:
            loss: The step's training loss (a tensor is not synced until ``observe``);
                None if it arrives later via :meth:`record`.
            grad_norm: The step's gradient norm before clipping; by default it is
                measured from the optimizer's gradients on the interval's last step
                (pass it when you clip gradients or free them before this call).
        """
        if not self._started:
            raise RuntimeError(
                "LRController.step() before the first observe(): call "
                "observe(val_loss=..., val_metric=...) on the untrained model first; the "
                "first decision needs the initial validation loss."
            )
        params = self._params()
        # The step's gradients are still on the parameters: probe them as the env does.
        self._meter.after_backward(self._t - self._interval_start, params)
        self._meter.after_step(params)
        self._t += 1
        self.record(loss, grad_norm=grad_norm)
        if grad_norm is None and self.eval_due and not math.isfinite(self._grad_norm):
            norm = lr_rule.grad_norm(params)
            if norm is not None:
                self._grad_norm = float(norm)
        self._apply_lr()
        self._meter.before_step(self._t - self._interval_start, params)

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _start_interval(self) -> None:
        """Opens the next interval: fresh statistics, the LR of its first step."""
        self._interval_start = self._t
        self._losses = []
        self._grad_norm = math.nan
        self._update_ratio = None
        self._apply_lr()
        self._meter.start(self._interval_len())
        self._meter.before_step(0, self._params())  # a one-step interval's only step
        self.history.append((self._t, self._rule.action, self._lr))

    def record(self, loss: float | torch.Tensor | None, *, grad_norm: float | None = None
               ) -> None:
        """Adds a training loss (and gradient norm) without counting a step.

        For frameworks that report the loss after the step was counted (the HF callback).
        """
        if loss is not None:
            self._losses.append(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        if grad_norm is not None:
            self._grad_norm = float(grad_norm)

    def observe(self, val_loss: float, val_metric: float, *, grad_norm: float | None = None,
                update_ratio: float | None = None, **_ignored: Any) -> float:
        """Feeds a validation result and makes a decision; returns the action.

        The first call (before any ``step``) describes the untrained model. Later calls
        close the interval since the previous one: call them when ``eval_due`` is True
        for decisions identical to the env's (other times work, on shorter intervals).

        Non-finite training losses are skipped (one ``RuntimeWarning`` per controller).
        If none of the interval's losses is finite, or the validation result is not,
        the controller holds its LR rule for the next interval instead of deciding on
        meaningless features.

        Args:
            val_loss: Validation loss.
            val_metric: Main validation metric (higher is better, e.g. accuracy).
            grad_norm: Gradient norm at the interval's last step, if not given to ``step``.
            update_ratio: ``||w_t - w_t-1|| / ||w_t-1||`` of the interval's last step, if
                measured by the caller; by default the controller measures it itself
                (one copy of the weights before that step).
            **_ignored: Other metrics (so ``observe(**evaluate(model))`` works).
        """
        val_loss, val_metric = float(val_loss), float(val_metric)
        if not self._started:
            if not (math.isfinite(val_loss) and val_loss > 0 and math.isfinite(val_metric)):
                raise ValueError(
                    f"The first observe() needs a finite validation loss > 0 and a finite "
                    f"metric (every feature is relative to them), got val_loss={val_loss}, "
                    f"val_metric={val_metric}."
                )
            self._last_obs = self._tracker.reset(val_loss, val_metric)
            self._started = True
            if self._guard is not None:
                self._guard.start(val_loss, info=(val_loss, val_metric))
        else:
            if self._t == self._interval_start:
                raise RuntimeError(
                    "observe() again without a training step in between; call step(loss) "
                    "after every optimizer step and observe() when eval_due is True."
                )
            if grad_norm is not None:
                self._grad_norm = float(grad_norm)
            if update_ratio is not None:
                self._update_ratio = float(update_ratio)
            stats = self._meter.stats()
            if self._update_ratio is not None:
                stats["update_ratio"] = self._update_ratio
            losses = np.array([float(x) for x in self._losses], dtype=np.float64)
            finite = np.isfinite(losses)
            # The env's default rule: a file's own training settings do not apply here.
            limit = EnvConfig.divergence_factor * self._tracker.initial_loss
            diverged = (not finite.all() or bool((losses[finite] > limit).any())
                        or not (math.isfinite(val_loss) and math.isfinite(val_metric)))
            restored = self._guard is not None and self._guard.check(
                val_loss, diverged=diverged, raised=self._rule.raised, info=(val_loss, val_metric))
            if restored:
                # Rolled back to the best state, as the env does: decide from there.
                self._rule.back_off()
                val_loss, val_metric = self._guard.best_info
                finite &= losses <= limit
            elif not finite.all():
                self._warn_nonfinite(int((~finite).sum()), len(losses))
            if not restored and (not finite.any() or not (math.isfinite(val_loss)
                                                          and math.isfinite(val_metric))):
                self._hold()
                return self._rule.action
            self._last_obs = self._tracker.update(
                progress=self._t / self.total_steps,
                lr=self._prev_lr,
                base_lr=self.base_lr(self._t - 1),
                step_losses=losses[finite],
                val_loss=val_loss,
                val_metric=val_metric,
                grad_norm=self._grad_norm,
                action=self._rule.action,
                **stats,
            )
        self._decide(self._last_obs)
        return self._rule.action

    def _warn_nonfinite(self, bad: int, total: int) -> None:
        if not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(
                f"LRController: {bad} of {total} training losses in the interval ending at "
                f"step {self._t} are not finite; they are skipped (further ones silently), "
                "and an interval with no finite loss keeps the LR rule unchanged.",
                RuntimeWarning, stacklevel=3,
            )

    def _hold(self) -> None:
        """Keeps the multiplier and action for the next interval (no decision)."""
        self._start_interval()

    @property
    def _prev_lr(self) -> float:
        """The LR used by the interval's last step (the env's ``info["lr"]``)."""
        return self._rule.lr_at(self._t - 1)

    def _decide(self, obs: np.ndarray) -> None:
        self._rule.decide(self.policy.act(obs), self._t)
        self._start_interval()

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (the policy itself is not included)."""
        return {
            "t": self._t,
            **self._rule.state_dict(),
            "started": self._started,
            "interval_start": self._interval_start,
            "losses": [float(x) for x in self._losses],
            "grad_norm": self._grad_norm,
            "tracker": self._tracker.state_dict(),
            "lr0": self.lr0,
            "group_lr0": list(self._group_lr0),
            "last_obs": None if self._last_obs is None else self._last_obs.tolist(),
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` and sets the optimizer's LR accordingly."""
        self._t, self._started = int(state["t"]), bool(state["started"])
        self._rule.load_state_dict(state)
        self._interval_start = int(state["interval_start"])
        self._losses = list(state["losses"])
        self._grad_norm = float(state["grad_norm"])
        self.lr0, self._group_lr0 = float(state["lr0"]), list(state["group_lr0"])
        self._tracker = FeatureTracker(self.lr0, features=self.config.features)
        self._tracker.load_state_dict(state["tracker"])
        self._update_ratio = None
        obs = state["last_obs"]
        self._last_obs = None if obs is None else np.asarray(obs, dtype=np.float32)
        self.history = [(int(t), float(a), float(lr)) for t, a, lr in state.get("history", [])]
        self._rule.group_lr0, self._rule.lr0 = self._group_lr0, self.lr0
        self._apply_lr()
        self._meter.start(self._interval_len())
        self._meter.before_step(self._t - self._interval_start, self._params())


# -------------------------------------------------------------------------- HF
def _trainer_callback_base() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError:  # pragma: no cover - transformers is a dependency
        return object
    return TrainerCallback


class LRControllerCallback(_trainer_callback_base()):  # type: ignore[misc]
    """Runs an :class:`LRController` inside a Hugging Face ``Trainer``.

    It builds the controller on ``on_train_begin`` (budget ``state.max_steps``), takes
    the initial validation result from an evaluation before training (set
    ``TrainingArguments(eval_on_start=True)`` or call ``trainer.evaluate()`` first),
    logs every step (the features need each step's loss), asks the Trainer to evaluate
    every ``steps_per_action`` steps and sets the LR after each step, overriding the
    Trainer's own scheduler (use ``lr_scheduler_type="constant"``). Needs an
    ``eval_dataset`` and ``compute_metrics`` that returns ``metric``.

    Args:
        policy: A controller file, run folder, pretrained name (``"lr_gym/default"``)
            or a loaded :class:`ControllerPolicy`.
        steps_per_action: Optimizer steps per decision.
        metric: The main validation metric's name in ``compute_metrics`` (without
            ``eval_``), higher is better.
        **controller_kwargs: Other :class:`LRController` arguments (``lr_min``...).
    """

    def __init__(self, policy: str | Path | ControllerPolicy, *, steps_per_action: int,
                 metric: str = "accuracy", **controller_kwargs: Any) -> None:
        self.policy = (policy if isinstance(policy, ControllerPolicy)
                       else load_controller_file(policy))
        self.steps_per_action = steps_per_action
        self.metric = metric
        self.controller_kwargs = controller_kwargs
        self.controller: LRController | None = None
        self._initial: tuple[float, float] | None = None

    def _val(self, metrics: dict[str, float]) -> tuple[float, float]:
        key = f"eval_{self.metric}"
        if "eval_loss" not in metrics or key not in metrics:
            raise KeyError(
                f"LRControllerCallback needs 'eval_loss' and {key!r} in the evaluation "
                f"metrics, got {sorted(metrics)}; pass compute_metrics returning "
                f"{self.metric!r} or set metric=."
            )
        return float(metrics["eval_loss"]), float(metrics[key])

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                       **kwargs: Any) -> None:
        """Builds the controller on the Trainer's optimizer."""
        if optimizer is None:
            raise RuntimeError("LRControllerCallback: the Trainer passed no optimizer.")
        if self._initial is None and not getattr(args, "eval_on_start", False):
            raise RuntimeError(
                "LRControllerCallback needs the untrained model's validation result: set "
                "TrainingArguments(eval_on_start=True) or call trainer.evaluate() before "
                "trainer.train()."
            )
        self.controller = LRController(
            optimizer, self.policy, total_steps=state.max_steps,
            steps_per_action=self.steps_per_action, **self.controller_kwargs,
        )
        if self._initial is not None:
            self.controller.observe(*self._initial)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Counts the step, sets the next LR, asks for the step's log and due evaluations."""
        ctl = self.controller
        if ctl is None or not ctl._started:
            raise RuntimeError("LRControllerCallback: training started without an initial "
                               "evaluation (set TrainingArguments(eval_on_start=True)).")
        ctl.step(None)
        control.should_log = True
        if ctl.eval_due:
            control.should_evaluate = True
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        """Feeds the step's training loss and gradient norm."""
        if self.controller is not None and logs and "loss" in logs:
            self.controller.record(logs["loss"], grad_norm=logs.get("grad_norm"))

    def on_evaluate(self, args: Any, state: Any, control: Any,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        """Initial evaluation, or the end of an interval: the controller decides."""
        val = self._val(metrics or {})
        ctl = self.controller
        if ctl is None:
            self._initial = val  # trainer.evaluate() before train()
        elif not ctl._started or ctl.eval_due:
            ctl.observe(*val)
