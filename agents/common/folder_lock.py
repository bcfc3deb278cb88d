"""One writer per output folder: an exclusive lock that a killed process gives up by itself.

An evaluation or a benchmark appends its episodes to a store in its output folder and
rewrites its reports there; two of them at once would mix their runs and overwrite each
other's reports. :func:`hold_folder` takes an exclusive ``flock`` on ``<folder>/.lr_gym.lock``
for as long as the writer runs, and writes the holder's PID and command line into it. A
second writer fails at once with :class:`FolderBusyError`, one line naming that PID.

The lock belongs to the open file, not to the file on disk: the kernel drops it the moment
its process ends, however it ends (``kill -9`` included). A lock file left by a killed
writer is therefore no lock at all, and the next writer takes it over atomically; the file
itself is never deleted, since deleting it would let two writers lock two different files.
Platforms without ``fcntl`` (Windows) get a warning that nothing is enforced.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lr_gym.lock"
"""The lock file in a held folder (ignored by git)."""

_HOLDER_WAIT_S = 1.0
"""How long to wait for a holder that has just locked to write its PID."""


class FolderBusyError(RuntimeError):
    """Another live process writes to the folder; the message names its PID and the fix."""


def lock_holder(folder: str | os.PathLike) -> tuple[int | None, str]:
    """``(pid, command)`` recorded in a folder's lock file (``(None, "")`` if none)."""
    try:
        first, _, command = (Path(folder) / LOCK_FILE).read_text().partition("\n")
        return int(first), command.strip()
    except (OSError, ValueError):
        return None, ""


def _busy(folder: Path, fix: str) -> FolderBusyError:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    pid, command = lock_holder(folder)
    while pid is None and time.monotonic() < deadline:  # it has locked, not yet written
        time.sleep(0.05)
        pid, command = lock_holder(folder)
    who = f"PID {pid}" if pid is not None else "a process that has not written its PID yet"
    command = " ".join(command.split())[:160]  # one line, whatever its arguments hold
    what = f": {command}" if command else ""
    return FolderBusyError(f"{folder} is being written by another process ({who}{what}); "
                           f"{fix}.")


@contextlib.contextmanager
def hold_folder(folder: str | os.PathLike, fix: str = "wait for it to finish, or write to "
                "another folder", *, wait: bool = False) -> Iterator[Path]:
    """Holds ``folder`` (created if needed) exclusively for the duration of the block.

    Args:
        folder: The output folder.
        fix: What the refused writer should do, for the message.
        wait: Wait for the holder to finish instead of failing (for a cache that
            concurrent writers share, whose result the waiter then reuses).

    Yields:
        The folder.

    Raises:
        FolderBusyError: Another live process holds it (only without ``wait``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        warnings.warn(f"{folder}: this platform has no fcntl, so one writer per folder is not "
                      "enforced; run one evaluation per folder at a time.", stacklevel=3)
        yield folder
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise _busy(folder, fix) from None
            pid, _ = lock_holder(folder)
            print(f"note: waiting for PID {pid} to finish writing {folder}.", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)  # a killed holder's PID, if any, is replaced
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
        os.pwrite(fd, f"{os.getpid()}\n{command}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock
