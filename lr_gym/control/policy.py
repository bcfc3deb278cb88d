"""A loaded, verified controller file: the policy MLP, its normalisation and config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lr_gym.config import EnvConfig
from lr_gym.control.file import (
    _ACT_FNS,
    FORMAT,
    FORMAT_VERSION,
    ControllerFileError,
    _digest,
    content_digest,
    file_env_config,
    validate_controller,
)


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
        content_sha256: The digest of its weights and rule without its provenance
            (:func:`~lr_gym.control.file.content_digest`): two files that act alike
            have the same one.
    """

    config: dict[str, Any]
    env_config: EnvConfig
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    action: tuple[torch.Tensor, torch.Tensor]
    obs_mean: np.ndarray | None
    obs_var: np.ndarray | None
    path: str = ""
    sha256: str = ""
    content_sha256: str = ""

    @classmethod
    def load(cls, path: str | Path) -> ControllerPolicy:
        """Loads, verifies and validates a file written by ``export_controller``.

        Never unpickles anything.

        The stored SHA-256 proves integrity, not authenticity (see the module
        docstring), so every value the file asks for is validated here too.

        Raises:
            FileNotFoundError: No such file.
            ControllerFileError: Not a controller file, unsupported version, missing
                tensors, content that does not match its checksum, or values outside
                what a controller may ask for (:func:`validate_controller`).
        """
        path = Path(path)
        meta, tensors = _read_controller_file(path)
        _check_format(path, meta)
        config, digest, arch, norm, env_config = _parse_metadata(path, meta)
        _check_tensors(path, meta, config, tensors, arch, norm, digest)
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
            content_sha256=content_digest(config, tensors),
        )

    @cached_property
    def _runtime(self) -> tuple[Any, np.ndarray | None, float, float, float]:
        """What every decision reads, computed once.

        ``(activation, sqrt(var + eps), clip_obs, action_low, action_high)``, the action
        bounds as float32 rounds them.
        """
        p, norm = self.config["policy"], self.config["normalization"]
        scale = (None if self.obs_var is None
                 else np.sqrt(self.obs_var + norm["epsilon"]))
        return (_ACT_FNS[p["activation"]], scale, float(norm["clip_obs"]),
                float(np.float32(p["action_low"])), float(np.float32(p["action_high"])))

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """The saved running normalisation, computed exactly as VecNormalize does."""
        if self.obs_mean is None:
            return np.asarray(obs, dtype=np.float32)
        _, scale, clip, _, _ = self._runtime
        out = np.subtract(obs, self.obs_mean)
        np.divide(out, scale, out=out)
        # np.clip's result without its wrapper's cost (NaN passes through both ways).
        np.minimum(np.maximum(out, -clip, out=out), clip, out=out)
        return out.astype(np.float32)

    def act(self, obs: np.ndarray) -> float:
        """The deterministic action in [-1, 1] for one observation."""
        act_fn, _, _, low, high = self._runtime
        with torch.no_grad():
            x = torch.from_numpy(self.normalize(obs)).unsqueeze(0)
            for w, b in self.layers:
                x = act_fn(F.linear(x, w, b))
            a = F.linear(x, *self.action).item()
        # Python's min/max clip as np.clip did on the float32 action (NaN passes through).
        return min(max(a, low), high)


def _read_controller_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Reads a safetensors file's metadata and fresh copies of its tensors.

    Args:
        path: The controller file.

    Returns:
        ``(metadata, tensors)``; the metadata is ``{}`` when the file has none.

    Raises:
        FileNotFoundError: No such file.
        ControllerFileError: The file is not readable safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
    return meta, tensors


def _check_format(path: Path, meta: dict[str, str]) -> None:
    """Rejects files that are not lr_gym controller files of the version read here.

    Args:
        path: The controller file (for messages).
        meta: Its safetensors metadata.

    Raises:
        ControllerFileError: Wrong ``format`` or ``format_version``.
    """
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


def _parse_metadata(
    path: Path, meta: dict[str, str]
) -> tuple[dict[str, Any], str, list[int], dict[str, Any], EnvConfig]:
    """Parses the config JSON and the fields ``load`` needs out of the metadata.

    Args:
        path: The controller file (for messages).
        meta: Its safetensors metadata.

    Returns:
        ``(config, stored sha256, hidden layer sizes, normalization, env config)``.

    Raises:
        ControllerFileError: Missing or malformed metadata.
    """
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
    return config, digest, arch, norm, env_config


def _check_tensors(
    path: Path,
    meta: dict[str, str],
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    arch: list[int],
    norm: dict[str, Any],
    digest: str,
) -> None:
    """Checks the tensors are complete, floating, match the checksum and are allowed.

    Args:
        path: The controller file (for messages).
        meta: Its safetensors metadata.
        config: The parsed config.
        tensors: The file's tensors.
        arch: Hidden layer sizes.
        norm: The ``normalization`` section of the config.
        digest: The SHA-256 stored at export.

    Raises:
        ControllerFileError: Missing or non-float tensors, a checksum mismatch, or values
            :func:`validate_controller` rejects.
    """
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
