"""The files of a training run folder, how they are written, and when a run is complete.

Which file holds what is :mod:`lr_gym.run_layout` (re-exported here). Every file is
written to a temporary name and renamed into place (:func:`atomic_write`), so a full disk
or a kill never leaves a truncated file under a real name; ``complete.json`` is written
last (:func:`mark_complete`).
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

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
