"""Writing a file or folder whole or not at all: the one atomic write of the project.

Every file lr_gym and its tools write where another process (or a later run) may read
it goes through :func:`atomic_write`: the content is written under a process-private
temporary name beside the target, flushed to disk, and renamed into place (``os.replace``
is atomic on POSIX and Windows). A full disk, a kill or an error never leaves a
truncated file under the real name, and the temporary is removed when writing fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Calls ``write(tmp)`` on a temporary name beside ``path``, then renames it to ``path``.

    ``write`` may write a file or a folder. A file's data is flushed to disk before the
    rename, so ``path`` holds its old content or the whole new one. A folder cannot
    replace a non-empty one: if another process published the folder first, its copy
    (the same content, by the callers' keys) is kept. If ``write`` or the rename fails
    (e.g. ``ENOSPC``), the temporary is removed and the error propagates.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        if tmp.is_file():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            os.replace(tmp, path)
        except OSError:
            if not (tmp.is_dir() and path.is_dir()):
                raise
            _remove(tmp)  # another process published the folder: the winner stays
    except BaseException:
        _remove(tmp)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of a text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def portable_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` relative to ``root`` (default: the working directory) when inside it.

    For result files that are committed: they should hold no machine's absolute paths.
    """
    p, base = Path(path).resolve(), Path(root or Path.cwd()).resolve()
    return str(p.relative_to(base)) if p.is_relative_to(base) else str(path)
