"""The files of a training run folder, how they are written, and when a run is complete.

Which file holds what is :mod:`lr_gym.run_layout` (re-exported here). Every file is
written to a temporary name and renamed into place (:func:`atomic_write`), so a full disk
or a kill never leaves a truncated file under a real name; ``complete.json`` is written
last (:func:`mark_complete`).

Finding runs under a log folder (``<log_folder>/ppo/<name>_<N>``, RL Zoo's layout) is here
too: :func:`next_run_dir` for a new run, :func:`latest_run`, :func:`trained_run` and
:func:`last_checkpoint` for existing ones. A PPO agent's own files (saving, resuming) are
:mod:`agents.training.run_folder`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lr_gym.files import (  # noqa: F401 - re-exported
    atomic_write,
    portable_path,
    write_text_atomic,
)
from lr_gym.run_layout import (  # noqa: F401 - re-exported
    BEST_MODEL,
    COMPLETE,
    CONFIG,
    CONTROLLER,
    MODEL,
    VECNORMALIZE,
    RunFiles,
    checkpoint_names,
    run_files,
)

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
"""``OSError.errno`` values of a full disk or an exhausted quota."""


_TEMPORARY = re.compile(r"^\..+\.tmp(\d+)$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files of :func:`atomic_write` that a killed process left.

    A temporary file names its writer's PID; it is stale when that process is gone.
    Called when a command starts on a folder it writes to (never on files in use).

    Returns:
        The files removed.
    """
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for tmp in root.rglob(".*.tmp*"):
        m = _TEMPORARY.match(tmp.name)
        if not m or not tmp.is_file():
            continue
        try:
            os.kill(int(m.group(1)), 0)  # signal 0: does the writer still exist?
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except (PermissionError, OverflowError):
            continue  # alive under another user, or not a PID: leave it
    return removed


def jsonl_lines(path: str | os.PathLike, repair: bool) -> list[str]:
    """The complete lines of a JSON-lines file (none if it does not exist).

    A last line without its newline is a write cut by a kill, or one in progress beside
    a running writer: it is left out, and with ``repair`` (the writer's own load) cut off
    the file, so the next append starts a line of its own. In place: truncating needs no
    free space, never loses the finished lines, and never replaces the file under another
    process's open handle. A line that is not UTF-8 (a disk error, a stray write) comes
    back empty, with a warning naming it, so its run is done again and the others are read.
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        if repair:
            os.truncate(path, len(data))
            warnings.warn(f"{path}: dropped an incomplete last line (interrupted write); "
                          "that run is done again.", stacklevel=3)
    lines = []
    for i, raw in enumerate(data.split(b"\n")[:-1]):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            warnings.warn(f"{path}:{i + 1} is not UTF-8 text; skipped, that run is done "
                          "again.", stacklevel=3)
            lines.append("")
    return lines


def mark_complete(run_dir: str | os.PathLike, **info: Any) -> Path:
    """Writes ``complete.json`` (with ``info``): call it after every other file is saved."""
    return write_text_atomic(Path(run_dir) / COMPLETE, json.dumps(info, indent=1, sort_keys=True))


def completion(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The content of ``complete.json``, or None when the run is not complete."""
    try:
        info = json.loads((Path(run_dir) / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def latest_run(log_folder: str | Path) -> Path:
    """The most recently completed run folder under ``<log_folder>/ppo``.

    A run is complete when its ``complete.json`` exists (written after every other
    file). Incomplete ones (killed, still training, disk full, or from an lr_gym older
    than the marker) are skipped with a note on stderr.
    """
    root = Path(log_folder) / "ppo"
    folders = sorted(p for p in root.glob("*") if p.is_dir())
    runs = [p for p in folders if completion(p) is not None]
    skipped = [p.name for p in folders if p not in runs]
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        print(f"note: skipping {len(skipped)} incomplete run folder(s) under {root} (no "
              f"{COMPLETE}: killed, still training, or from an older lr_gym): {shown}",
              file=sys.stderr)
    if not runs:
        raise FileNotFoundError(
            f"No trained agent under {root} (no complete run, i.e. none with {COMPLETE}): "
            "train one with `python train_agent.py` or pass --agent PATH."
        )
    return max(runs, key=lambda p: (p / COMPLETE).stat().st_mtime)


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


def trained_run(folder: Path, seed: int, n_timesteps: int) -> Path | None:
    """A finished run of ``seed`` and budget under ``folder``.

    Finished: ``complete.json`` exists (it is written after every other file) and
    training was not interrupted (a Ctrl-C'd run has fewer steps than its budget).
    """
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
    best: tuple[Path, int] | None = None
    for cfg in (folder / "ppo").glob("*/config.yml"):
        if (yaml.safe_load(cfg.read_text()) or {}).get("seed") != seed:
            continue
        for zip_path in (cfg.parent / "checkpoints").glob("model_*_steps.zip"):
            m = re.fullmatch(r"model_(\d+)_steps\.zip", zip_path.name)
            if m and (best is None or int(m.group(1)) > best[1]):
                best = (zip_path, int(m.group(1)))
    return best
