"""Writing a trained PPO controller (stable-baselines3) to one pickle-free file.

``export_controller`` writes a ``.safetensors`` file with the policy weights needed for
the deterministic action, the observation normalisation and, in its metadata, the
feature and LR configuration the agent was trained under; :mod:`agents.controller`
loads and runs it without stable-baselines3. ``model.zip`` and ``vecnormalize.pkl``
are pickles: only ``export`` (from your own runs) and resuming training read them.

CLI: ``python -m agents.deploy export --agent RUN_DIR`` (or ``python -m
agents.controller.export export ...``) (re)writes ``RUN_DIR/controller.safetensors``; it
unpickles the run's files, so run it only on runs you trained yourself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.common.help_format import DefaultsHelpFormatter
from agents.common.runs import atomic_write, run_files
from agents.controller.resolve import controller_file_for
from lr_gym.config import EnvConfig
from lr_gym.control.file import FORMAT, FORMAT_VERSION, _digest, validate_controller
from lr_gym.control.policy import ControllerPolicy
from lr_gym.features import OBS_BOUND, FeatureTracker

_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh"}


def export_controller(agent: Any, path: str | Path,
                      source: Mapping[str, Any] | None = None) -> Path:
    """Writes a trained PPO controller to one ``.safetensors`` file (atomically).

    Exporting a run folder unpickles its ``model.zip`` and ``vecnormalize.pkl``: do it
    only for runs you trained yourself (training already writes the file).

    Args:
        agent: A run folder (``model.zip`` + ``vecnormalize.pkl`` + ``config.yml``), a
            checkpoint ``.zip``, or a loaded :class:`~agents.training.ppo.PPOController`.
        path: Output file.
        source: Provenance recorded in the file (default: the run folder's env ids
            and versions).

    Returns:
        The path written.

    Raises:
        ValueError: The agent breaks a rule of :func:`validate_controller` (nothing is
            written).
    """
    from agents.training.ppo import PPOController

    source = dict(source or {})
    if not isinstance(agent, PPOController):
        agent = _load_run(Path(agent), source)
    tensors, policy_config = _policy_tensors(agent)
    config = _controller_config(agent, policy_config, source)
    try:
        validate_controller(config, tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"cannot export this agent: {e}.") from e
    return _write_controller(path, config, tensors)


def _load_run(run: Path, source: dict[str, Any]) -> Any:
    """Loads a run folder or checkpoint; records its provenance in ``source``.

    Args:
        run: A run folder or checkpoint ``.zip`` of our own (unpickling is fine here).
        source: Provenance, updated in place with the run and its env ids and versions.

    Returns:
        The loaded :class:`~agents.training.ppo.PPOController`, on the CPU.
    """
    from agents.training.ppo import PPOController

    source["run"] = str(run)
    agent = PPOController.load(run, device="cpu")
    cfg = run_files(run).config
    if cfg.is_file():
        import yaml

        meta = yaml.safe_load(cfg.read_text()) or {}
        source.update(env=meta.get("env"), versions=meta.get("versions"))
    return agent


def _policy_tensors(agent: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The actor's weights (float32) and normalisation statistics (float64), on the CPU.

    Args:
        agent: A loaded :class:`~agents.training.ppo.PPOController`.

    Returns:
        The tensors to write, and the ``policy`` section of the file's config.

    Raises:
        ValueError: The actor uses an activation the controller file cannot hold, or
            more than one.
    """
    policy = agent.model.policy
    tensors: dict[str, torch.Tensor] = {}
    arch, activation = [], None
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    for m in policy.mlp_extractor.policy_net:
        if not isinstance(m, torch.nn.Linear):
            name = _ACTIVATIONS.get(type(m).__name__)
            if name is None or activation not in (None, name):
                raise ValueError(f"Cannot export activation {type(m).__name__}; "
                                 f"supported: {sorted(_ACTIVATIONS)}.")
            activation = name
    for i, lin in enumerate(linears):
        tensors[f"policy.{i}.weight"] = lin.weight.detach().cpu().float().clone()
        tensors[f"policy.{i}.bias"] = lin.bias.detach().cpu().float().clone()
        arch.append(lin.out_features)
    tensors["action.weight"] = policy.action_net.weight.detach().cpu().float().clone()
    tensors["action.bias"] = policy.action_net.bias.detach().cpu().float().clone()
    if agent.obs_mean is not None:
        tensors["obs_mean"] = torch.from_numpy(np.asarray(agent.obs_mean, dtype=np.float64))
        tensors["obs_var"] = torch.from_numpy(np.asarray(agent.obs_var, dtype=np.float64))
    policy_config = {"net_arch": arch, "activation": activation or "relu",
                     "obs_dim": linears[0].in_features if linears else
                     policy.action_net.in_features, "action_low": -1.0, "action_high": 1.0}
    return tensors, policy_config


def _controller_config(agent: Any, policy_config: dict[str, Any],
                       source: dict[str, Any]) -> dict[str, Any]:
    """The file's config: features, tracker, LR rule, policy shape, normalisation, source.

    Args:
        agent: A loaded :class:`~agents.training.ppo.PPOController`.
        policy_config: The ``policy`` section, from :func:`_policy_tensors`.
        source: Provenance recorded in the file.

    Returns:
        The config that :func:`validate_controller` checks and the file's metadata holds.
    """
    fields = {f.name for f in dataclasses.fields(EnvConfig)}
    env_config = EnvConfig().replace(
        **{k: v for k, v in agent.env_kwargs().items() if k in fields}
    ).to_dict()
    tracker = FeatureTracker(1.0)
    return {
        "feature_names": list(env_config["features"]),
        "obs_bound": OBS_BOUND,
        "tracker": {"short_halflife": tracker.short_halflife,
                    "long_halflife": tracker.long_halflife},
        "env_config": env_config,
        "policy": policy_config,
        "normalization": {"enabled": agent.obs_mean is not None,
                          "clip_obs": float(agent.clip_obs),
                          "epsilon": float(agent.epsilon)},
        "source": source,
    }


def _write_controller(path: str | Path, config: dict[str, Any],
                      tensors: dict[str, torch.Tensor]) -> Path:
    """Writes the checked config and tensors to ``path`` atomically, readable by all.

    Args:
        path: Output file.
        config: The validated config.
        tensors: The validated tensors.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    config_json = json.dumps(config, sort_keys=True)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config_json,
        "sha256": _digest(config_json, tensors),
    }
    # safetensors creates files 0600; a controller file is meant to be shared.
    umask = os.umask(0)
    os.umask(umask)

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.chmod(0o666 & ~umask)

    return atomic_write(path, write)

# -------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m agents.deploy",
        description="Export a trained PPO learning-rate controller to one safetensors file.",
        formatter_class=DefaultsHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser(
        "export", formatter_class=DefaultsHelpFormatter,
        help="Write a run folder's controller to a .safetensors file.",
        description="Write a run folder's (or checkpoint's) controller to a pickle-free "
                    ".safetensors file. This reads model.zip and vecnormalize.pkl, which are "
                    "pickles that can run code: only export runs you trained yourself. "
                    "Training already writes controller.safetensors; this is for runs of "
                    "older lr_gym versions.",
    )
    e.add_argument("--agent", default=None,
                   help="Run folder or checkpoint .zip (default: the latest complete run "
                        "under --log-folder).")
    e.add_argument("-f", "--log-folder", default="logs", help="Where run folders are.")
    e.add_argument("-o", "--output", default=None,
                   help="Output file (default: the agent's own controller file, e.g. "
                        "RUN/controller.safetensors, which evaluate_agent.py reads).")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    from agents.training.ppo import latest_run

    print("note: export unpickles model.zip and vecnormalize.pkl, which can run code: only "
          "export runs you trained yourself.", file=sys.stderr)
    try:
        run = Path(args.agent) if args.agent else latest_run(args.log_folder)
        out = export_controller(run, args.output or controller_file_for(run))
        policy = ControllerPolicy.load(out)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: could not write the controller file: {e}", file=sys.stderr)
        return 1
    c, p = policy.env_config, policy.config["policy"]
    print(f"Wrote {out} ({out.stat().st_size} bytes) from {run}")
    print(f"  policy: {len(c.features)} features -> {p['net_arch']} {p['activation']} -> 1; "
          f"normalisation: {'yes' if policy.obs_mean is not None else 'no'}")
    print(f"  LR rule: mode={c.mode} schedule={c.schedule} warmup_frac={c.warmup_frac} "
          f"final_lr_frac={c.final_lr_frac} max_factor={c.max_factor} "
          f"lr_min={c.lr_min} lr_max={c.lr_max} (None: lr0*1e-3 / lr0*30)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
