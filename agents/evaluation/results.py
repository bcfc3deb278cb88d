"""What every benchmark's results file shares: its run's facts, one way to write, one idiom.

Each measurement script under ``benchmarks/`` prints a table and writes ``<name>.json``
(``{"meta", ...}``) and ``<name>.md`` (the table) through :func:`write_results`, with
:func:`meta` recording where and how it ran (a ratio means little without the load
beside it). Its command line takes the same two flags through
:func:`add_benchmark_arguments` and :func:`parse_benchmark_args`: ``-o/--output`` (where
the results go) and ``--gym-packages`` (the user's modules that register their own
tasks, imported before any env is made, and by every worker the script starts). It
lives in the package, not beside the scripts, so that a script run as
``python benchmarks/X.py`` and a test that imports it find the same module.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
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


def write_results(json_path: str | os.PathLike, data: Mapping[str, Any] | Sequence[Any],
                  table: str | None, *, table_path: str | os.PathLike | None = None,
                  also: Mapping[str, str] | None = None) -> tuple[Path, Path | None]:
    """Writes ``json_path``, its markdown table and any other texts beside it, each atomically.

    Every write is :func:`lr_gym.files.atomic_write`'s: a kill never leaves half a file.

    Args:
        json_path: The results JSON.
        data: Its content: ``{"meta": meta(...), ...}`` (a few older files are lists).
        table: The markdown table; None writes none. Each text file ends in one newline.
        table_path: Where the table goes (default: ``json_path`` with ``.md``).
        also: Other texts to write beside ``json_path``, by file name (e.g. a summary).

    Returns:
        The JSON's and the table's paths (None without a table).
    """
    from lr_gym.files import write_text_atomic

    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = dict(data) if isinstance(data, Mapping) else list(data)
    write_text_atomic(path, json.dumps(content, indent=1, default=float))
    md = None
    if table is not None:
        md = Path(table_path) if table_path is not None else path.with_suffix(".md")
        write_text_atomic(md, table.rstrip("\n") + "\n")
    for name, text in (also or {}).items():
        write_text_atomic(path.parent / name, text.rstrip("\n") + "\n")
    return path, md


def copy_result(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copies a file another tool wrote (e.g. an evaluation's report) to ``dst``, atomically.

    Returns:
        ``dst``.
    """
    import shutil

    from lr_gym.files import atomic_write

    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


GYM_PACKAGES_HELP = ("Modules to import first, here and in every worker process (they "
                     "register your own tasks with lr_gym.register_task), as in the CLIs.")


def add_benchmark_arguments(parser: argparse.ArgumentParser,
                            default_output: str | os.PathLike | None, *,
                            aliases: Sequence[str] = (), output_help: str | None = None) -> None:
    """The one argument idiom of a measuring script: ``-o/--output`` and ``--gym-packages``.

    Parse with :func:`parse_benchmark_args`, which imports the packages. ``args.output``
    is a :class:`~pathlib.Path` (or None where ``default_output`` is None and none is
    given); ``args.gym_packages`` is the list of module names, which the script hands to
    every worker process or subprocess it starts.

    Args:
        parser: The script's parser.
        default_output: The results JSON, or the results folder of a script that writes
            several files.
        aliases: Older spellings of ``--output`` still accepted (e.g. ``--results``).
        output_help: The help text of ``--output`` (default: a results JSON's).
    """
    parser.add_argument("-o", "--output", *aliases, dest="output", type=Path,
                        default=None if default_output is None else Path(default_output),
                        help=output_help or "Results JSON; the table goes beside it as .md.")
    parser.add_argument("--gym-packages", nargs="*", default=[], metavar="MODULE",
                        help=GYM_PACKAGES_HELP)


def parse_benchmark_args(parser: argparse.ArgumentParser,
                         argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then imports ``--gym-packages`` in this process.

    A module that cannot be imported is a usage error (exit 2, one line naming it).
    """
    from agents.common.packages import GymPackageError, import_gym_packages

    args = parser.parse_args(argv)
    try:
        import_gym_packages(args.gym_packages)
    except GymPackageError as err:
        parser.error(str(err))
    return args


def load_jsonl(path: str | os.PathLike, key: str,
               repair: bool = False) -> dict[Any, dict[str, Any]]:
    """The rows of a resumable JSON-lines file, by ``row[key]`` (later rows win).

    A line cut by a kill (or any line that is not a row with ``key``) is skipped, so that
    row is done again. The file is only read, unless ``repair`` (for the process about to
    append to it: :func:`agents.common.runs.jsonl_lines` cuts a partial last line off in place).
    """
    from agents.common.runs import jsonl_lines

    rows: dict[Any, dict[str, Any]] = {}
    for line in jsonl_lines(path, repair):
        try:
            row = json.loads(line)
            rows[row[key]] = row
        except (ValueError, KeyError, TypeError):
            continue  # that row is done again
    return rows


DECISIONS = "decisions.jsonl.gz"
"""The per-decision trajectories of a results folder's episodes (committed with it)."""

OBSERVING = ("ppo", "learned", "learned+guard")
"""Controller names whose decisions read the observation: their features are kept."""

_IDENTITY = ("env_id", "controller", "method", "agent", "seed", "scale", "condition", "role",
             "lr0", "task", "metric", "rule_lr0", "total_steps", "diverged", "event")


def _short(x: float) -> float:
    """Six significant digits: enough to read a decision, a fraction of the bytes."""
    return float(f"{x:.6g}")


def decision_record(run: Mapping[str, Any]) -> dict[str, Any]:
    """One episode's decisions, for the committed trajectories.

    What the episode was, then per decision its step, LR, action and multiplier, and
    the observed features for controllers that read them (:data:`OBSERVING`). Decision
    ``k`` is made at ``step[k]``, applies ``action[k]``, leaves ``multiplier[k]`` and runs
    its interval at ``lr[k]`` (see :class:`agents.evaluation.rollout.EpisodeResult`).
    """
    n = len(run.get("actions", []))
    out = {k: run[k] for k in _IDENTITY if k in run}
    out["decisions"] = {
        "step": run["steps"][:n],
        "lr": [_short(x) for x in run["lrs"][1:n + 1]],
        "action": [_short(x) for x in run["actions"]],
        "multiplier": [_short(x) for x in run["multipliers"]],
    }
    if {run.get("controller"), run.get("method")} & set(OBSERVING):
        out["features"] = {"names": run.get("features", []),
                           "values": [[_short(x) for x in o] for o in run.get("observations", [])]}
    return out


def write_decisions(folder: str | os.PathLike, runs: Sequence[Mapping[str, Any]]) -> Path:
    """Writes ``<folder>/decisions.jsonl.gz``, one line per episode (atomically).

    Episodes from before decisions were recorded (no ``actions``) are left out.

    Returns:
        The file's path.
    """
    import gzip

    from agents.common.runs import atomic_write

    lines = [json.dumps(decision_record(r), default=float) for r in runs if "actions" in r]
    # mtime=0: the same runs give the same bytes, so a rerun changes nothing in git.
    data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    return atomic_write(Path(folder) / DECISIONS, lambda tmp: tmp.write_bytes(data))


def read_decisions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The episodes of a :func:`write_decisions` file."""
    import gzip

    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]
