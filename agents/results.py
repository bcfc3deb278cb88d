"""What every benchmark's results file shares: its run's facts, one way to write, one flag.

Each measurement script under ``benchmarks/`` prints a table and writes ``<name>.json``
(``{"meta", ...}``) and ``<name>.md`` (the table) through :func:`write_results`, with
:func:`meta` recording where and how it ran (a ratio means little without the load
beside it), and takes its output path by :func:`add_output` (``-o``). It lives in the
package, not beside the scripts, so that a script run as ``python benchmarks/X.py``
and a test that imports it find the same module.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def meta(**extra: Any) -> dict[str, Any]:
    """The run's facts: date, commit, CPUs, torch threads, load, versions, and ``extra``."""
    import torch

    from lr_gym.reproducibility import settings

    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every platform
        load = None
    return {"date": datetime.date.today().isoformat(), "commit": _commit(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_avg_1min": load,
            "python": platform.python_version(), "torch": str(torch.__version__),
            "reproducibility": settings(torch.get_num_threads()), **extra}


def write_results(json_path: str | os.PathLike, data: Mapping[str, Any],
                  table: str) -> tuple[Path, Path]:
    """Writes ``json_path`` and its ``.md`` table beside it, each atomically.

    Returns:
        The two paths.
    """
    from agents.runs import write_text_atomic

    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(dict(data), indent=1, default=float))
    md = path.with_suffix(".md")
    write_text_atomic(md, table.rstrip("\n") + "\n")
    return path, md


def add_output(parser: argparse.ArgumentParser, default: str) -> None:
    """The ``-o/--output`` flag: the results JSON (its table goes beside it as ``.md``)."""
    parser.add_argument("-o", "--output", default=default,
                        help="Results JSON; the table goes beside it as .md.")


def load_jsonl(path: str | os.PathLike, key: str,
               repair: bool = False) -> dict[Any, dict[str, Any]]:
    """The rows of a resumable JSON-lines file, by ``row[key]`` (later rows win).

    A line cut by a kill (or any line that is not a row with ``key``) is skipped, so that
    row is done again. The file is only read, unless ``repair`` (for the process about to
    append to it: :func:`agents.runs.jsonl_lines` cuts a partial last line off in place).
    """
    from agents.runs import jsonl_lines

    rows: dict[Any, dict[str, Any]] = {}
    for line in jsonl_lines(path, repair):
        try:
            row = json.loads(line)
            rows[row[key]] = row
        except (ValueError, KeyError, TypeError):
            continue  # that row is done again
    return rows
