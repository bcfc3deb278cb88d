"""The controller file format: its checks, its digest and what a file may ask for.

A controller file (``.safetensors``, written by
:func:`agents.controller.export.export_controller`) holds the policy weights needed for
the deterministic action, the observation normalisation and, in its metadata, the
feature and LR configuration the agent was trained under. Its SHA-256 is an integrity
check (truncation, bit rot, careless edits), not authenticity: anyone can write a file
with a matching checksum, so everything a file asks for is validated here
(:func:`validate_controller`) and a broken rule is a :class:`ControllerFileError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

from lr_gym import features as feats
from lr_gym.config import EnvConfig, check_real
from lr_gym.features import OBS_BOUND

FORMAT = "lr_gym.controller"
FORMAT_VERSION = "1"
_ACT_FNS = {"relu": torch.relu, "tanh": torch.tanh}


MAX_FACTOR_LIMIT = 10.0
"""The largest ``max_factor`` a controller file may ask for (one action: at most x10)."""

LR_FACTOR_RANGE = (1e-6, 1e4)
"""The range of a file's ``lr_min_factor`` (at least ``1e-6``, at most 1) and
``lr_max_factor`` (at least 1, at most ``1e4``): LR bounds between a millionth and ten
thousand times ``lr0``. The shipped controllers use 0.01 and 100, v1's envs 1e-3 and 30."""

LR_RANGE = (1e-12, 1e3)
"""The range of a file's absolute ``lr_min`` and ``lr_max`` when it sets them: no
optimizer here trains at an LR above 1000 (Prodigy's ``lr`` is a multiplier near 1)."""


POLICY_FIELDS = ("mode", "schedule", "warmup_frac", "final_lr_frac", "max_factor", "lr_min",
                 "lr_max", "lr_min_factor", "lr_max_factor", "features", "base")
"""The :class:`EnvConfig` fields a controller file sets when it is evaluated or deployed:
how its policy reads observations and writes actions. The rest of its ``env_config``
(budget, divergence rule, reward, events, guard, device) records how it was trained and
never changes an evaluation."""


class ControllerFileError(ValueError):
    """A controller file that is not valid, not supported, or was tampered with."""


def check_deployable(env_config: EnvConfig | Mapping[str, Any]) -> None:
    """The LR rule limits of a controller file, beyond :class:`EnvConfig`'s own checks.

    A file may ask for ``1 < max_factor <= 10``, ``1e-6 <= lr_min_factor <= 1``,
    ``1 <= lr_max_factor <= 1e4`` (:data:`LR_FACTOR_RANGE`) and, when set, finite bounds
    with ``1e-12 <= lr_min < lr_max <= 1e3`` (:data:`LR_RANGE`), so no file sets an LR
    a thousand times past any here (a re-signed ``lr_max_factor=1e12`` would);
    ``lr_min=0`` only in anchored mode, whose multiplier is re-decided every interval (a
    recursive one could never leave an LR of 0), so that a residual over a schedule
    decaying to 0 is that schedule at action 0. Training checks its ``env_kwargs`` with
    this too, so no agent is trained that could not be exported.

    Raises:
        ValueError: A rule is broken; the message names the field and the valid range.
    """
    c = dict(env_config) if isinstance(env_config, Mapping) else env_config.to_dict()
    check_real("max_factor", c.get("max_factor", EnvConfig.max_factor), lo=1.0, lo_open=True,
               hi=MAX_FACTOR_LIMIT)
    low, high = LR_FACTOR_RANGE
    check_real("lr_min_factor", c.get("lr_min_factor", EnvConfig.lr_min_factor), lo=low, hi=1.0)
    check_real("lr_max_factor", c.get("lr_max_factor", EnvConfig.lr_max_factor), lo=1.0,
               hi=high)
    if c.get("lr_min") is not None:
        lr_min = c["lr_min"]
        anchored = c.get("mode", EnvConfig.mode) == "anchored"
        if not (anchored and lr_min == 0 and not isinstance(lr_min, bool)):
            check_real("lr_min", lr_min, lo=LR_RANGE[0], hi=LR_RANGE[1])
    if c.get("lr_max") is not None:
        check_real("lr_max", c["lr_max"], lo=LR_RANGE[0], hi=LR_RANGE[1])
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


def _digest(config_json: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the config and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(config_json.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


PROVENANCE = "source"
"""The config key that records where a file came from (run folder, env ids, versions)."""


def content_digest(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    """The SHA-256 of what a controller does: its weights and rule, not its provenance.

    Two files that differ only in :data:`PROVENANCE` (a re-export from a moved run, an
    edited ``source``) act identically, so they have one content digest: evaluation pools
    by it, and a resumed state names the controller by it.
    """
    rule = {k: v for k, v in config.items() if k != PROVENANCE}
    return _digest(json.dumps(rule, sort_keys=True), tensors)
