"""A learned controller's open-loop controls, fixed on the dev families once and cached.

:class:`~agents.baselines.open_loop.OpenLoopControls` needs two things that only runs can give:
the controller's mean LR factor against progress on the dev families (its
``learned_schedule``), and the dev scores of every fixed decay on its base (for the
``fixed_decay`` rule of :func:`~agents.baselines.open_loop.choose_fixed_decay`). Both come from
the dev families' reference envs (:attr:`lr_gym.splits.Split.reference_ids`) on
:data:`DEV_SEEDS`, never from the split being evaluated, and are cached per controller
(its content digest) in ``<folder>/<sha12>/``: ``runs.jsonl`` (resumable, like an
evaluation's store) and ``controls.json``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.baselines.open_loop import (
    FIXED_DECAYS,
    OpenLoopControls,
    choose_fixed_decay,
    learned_schedule_from,
    normalized_scores,
)
from agents.common.folder_lock import hold_folder
from agents.controller import load_controller_file
from agents.evaluation.rollout import EpisodeResult
from agents.evaluation.runner import EpisodeJob, run_job, run_jobs
from agents.evaluation.store import RunStore, run_key

DEV_SEEDS = (0, 1, 2, 3, 4)
"""The dev episodes' seeds."""


def add_control_arguments(p: argparse.ArgumentParser, *, toggle: bool = True,
                          cache: bool = True) -> None:
    """The flags that choose and fix the open-loop controls, the same in every tool.

    Args:
        p: The parser.
        toggle: Add ``--controls/--no-controls`` (tools that run them by default).
        cache: Add ``--controls-cache`` (tools without a log folder of their own).
    """
    if toggle:
        p.add_argument("--controls", action=argparse.BooleanOptionalAction, default=True,
                       help="Run each learned controller's open-loop controls (replay, "
                            "learned_schedule, fixed_decay) beside it, on its own LR rule.")
    p.add_argument("--control-envs", nargs="+", default=None,
                   help="Envs that fix learned_schedule and fixed_decay (never test ids; "
                        "default: the dev split's reference envs).")
    p.add_argument("--control-seeds", nargs="+", type=int, default=list(DEV_SEEDS),
                   help="Seeds of those runs.")
    if cache:
        p.add_argument("--controls-cache", type=Path, default=Path("logs/open_loop"),
                       help="Where those dev runs are kept (as evaluate_agent.py's).")


def check_control_envs(envs: Sequence[str] | None) -> None:
    """Refuses test envs for fixing the controls (they are fixed on dev, then frozen).

    Raises:
        ValueError: One line naming the ids and the fix (``--control-envs: ...``).
    """
    if not envs:
        return
    from lr_gym.splits import refuse_split

    try:
        refuse_split(envs, "test", "fixing the open-loop controls")
    except ValueError as err:
        raise ValueError(f"--control-envs: {err}") from err


def score(run: Mapping[str, Any]) -> float:
    """A run's final test metric; a diverged run scores 0 (as in every results table)."""
    return 0.0 if run["diverged"] else float(run["test"].get(run["metric"], math.nan))


def controls_jobs(agent: str, envs: Sequence[str], seeds: Sequence[int],
                  env_kwargs: Mapping[str, Any]) -> list[Any]:
    """The dev episodes: the agent itself and every fixed decay on its base."""
    names = ["ppo", *(f"decay:{m}" for m in FIXED_DECAYS)]
    return [EpisodeJob(e, n, s, agent=agent, env_kwargs=dict(env_kwargs))
            for n in names for e in envs for s in seeds]


def controls_from_runs(sha256: str, runs: Sequence[Mapping[str, Any]], envs: Sequence[str],
                       seeds: Sequence[int]) -> Any:
    """The :class:`~agents.baselines.open_loop.OpenLoopControls` of one controller's dev runs."""
    def of(name: str, env: str) -> list[Mapping[str, Any]]:
        return sorted((r for r in runs if r["controller"] == name and r["env_id"] == env
                       and r["seed"] in seeds), key=lambda r: r["seed"])

    learned = [EpisodeResult.from_dict(r) for e in envs for r in of("ppo", e)]
    progress, factors = learned_schedule_from(learned)
    scores = {m: {e: [score(r) for r in of(f"decay:{m}", e)] for e in envs}
              for m in FIXED_DECAYS}
    return OpenLoopControls(sha256, tuple(progress), tuple(factors), choose_fixed_decay(scores),
                            normalized_scores(scores), tuple(envs), tuple(seeds))


def controls_for(agent: str, folder: str | Path, pool: Any, env_kwargs: Mapping[str, Any],
                 *, envs: Sequence[str] | None = None, seeds: Sequence[int] = DEV_SEEDS,
                 timeout_s: float | None = None,
                 progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None) -> Any:
    """The controller's open-loop controls: cached, or computed on dev now.

    Args:
        agent: A controller file, run folder or pretrained name.
        folder: The cache folder (one subfolder per controller digest).
        pool: Where the dev episodes run (:func:`agents.evaluation.runner.make_pool`).
        env_kwargs: EnvConfig overrides of the episodes (device, threads).
        envs: The dev envs; default the dev split's reference ids.
        seeds: The dev seeds.
        timeout_s: See :func:`agents.evaluation.runner.completed`.
        progress: Wraps the finishing jobs (e.g. a progress bar), given their count.

    Returns:
        An :class:`~agents.baselines.open_loop.OpenLoopControls`.
    """
    from lr_gym.splits import SPLITS

    envs = tuple(envs or SPLITS["dev"].reference_ids)
    sha = load_controller_file(agent).sha256
    here = Path(folder) / sha[:12]
    path = here / "controls.json"

    def cached() -> OpenLoopControls | None:
        if path.is_file():
            found = OpenLoopControls.load(path)
            if (found.agent_sha256, found.envs, found.seeds) == (sha, envs, tuple(seeds)):
                return found
        return None

    if (hit := cached()) is not None:
        return hit
    # Evaluations and benchmarks share this cache: one appends to its store at a time,
    # and one that waited reuses what the other fixed.
    with hold_folder(here, wait=True):
        if (hit := cached()) is not None:
            return hit
        store = RunStore(here / "runs.jsonl")
        # Keyed without the agent's path: the folder already names the controller's content.
        todo = [j for j in controls_jobs(agent, envs, seeds, env_kwargs)
                if run_key({"env_id": j.env_id, "controller": j.controller, "seed": j.seed})
                not in store]
        finished = run_jobs(pool, run_job, todo, timeout_s)
        for _, run in progress(finished, len(todo)) if progress else finished:
            store.add({**run, "agent": ""})
        controls = controls_from_runs(sha, store.runs, envs, seeds)
        controls.save(path)
    return controls
