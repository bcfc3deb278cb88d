"""The run store: every finished episode as one line of ``runs.jsonl``.

A run is appended (and flushed to disk) the moment it ends, so a killed evaluation
loses at most the episodes that were running. On restart the store is read back, a
line cut off by the kill is dropped, and every run already present is skipped. Runs
are identified by :func:`run_key`; a key seen twice keeps its first run, so nothing is
counted twice either.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agents.common.runs import jsonl_lines

RunKey = tuple[str, str, str, int, str, str]
"""``(env_id, controller, agent, seed, lr tag, role)``: what makes a run unique."""


def lr_tag(lr: float | None) -> str:
    """How a run's ``lr0`` enters its key: ``"default"`` when untuned, else ``repr``."""
    return "default" if lr is None else repr(float(lr))


def run_key(run: Mapping[str, Any]) -> RunKey:
    """The key of a run record (see :data:`RunKey`)."""
    return (
        run["env_id"],
        run["controller"],
        run.get("agent") or "",
        int(run["seed"]),
        lr_tag(run.get("lr0")),
        run.get("role", "eval"),
    )


def _json_default(value: Any) -> Any:
    # numpy scalars; inf/nan go through json's own float handling.
    return float(value)


class RunStore:
    """Append-only, resumable store of finished runs in one JSON-lines file.

    Args:
        path: The ``runs.jsonl`` file (created on the first append).
        repair: Cut off a last line left incomplete by a kill. False for a reader
            beside a running writer, whose last line may be one being written.
    """

    def __init__(self, path: str | os.PathLike[str], repair: bool = True) -> None:
        self.path = Path(path)
        self._repair = repair
        self._runs: dict[RunKey, dict[str, Any]] = {}
        for run in self._read():
            self._runs.setdefault(run_key(run), run)

    def _read(self) -> Iterator[dict[str, Any]]:
        for i, line in enumerate(jsonl_lines(self.path, self._repair)):
            if not line.strip():
                continue
            try:
                run = json.loads(line)
                run_key(run)  # the fields every run has
            except (ValueError, RecursionError, TypeError, KeyError, AttributeError):
                warnings.warn(f"{self.path}:{i + 1} is not a run record; that run is done "
                              "again.", stacklevel=3)
                continue
            yield run

    def __contains__(self, key: object) -> bool:
        return key in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def runs(self) -> list[dict[str, Any]]:
        """All stored runs, in the order they finished."""
        return list(self._runs.values())

    def add(self, run: Mapping[str, Any]) -> bool:
        """Appends one finished run; returns False (and writes nothing) if its key is stored."""
        key = run_key(run)
        if key in self._runs:
            return False
        line = json.dumps(dict(run), default=_json_default)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._runs[key] = dict(run)
        return True

