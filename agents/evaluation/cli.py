"""``evaluate_agent.py``: the evaluation protocol from the command line.

See :mod:`agents.evaluation` for the protocol. Outputs go to one folder per
invocation (``<log-folder>/eval/<envs>-<hash>`` unless ``-o``): ``report.md``,
``table.md`` (the aggregate tables and verdicts alone), ``results.json``,
``runs.jsonl`` (every finished episode; a rerun of the same invocation resumes from
it), ``invocation.json`` and, with ``--plot``, curves and performance profiles per
track.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.common.help_format import DefaultsHelpFormatter

DEFAULT_SEEDS = (0, 1, 2, 3, 4)
DEFAULT_TARGET_SEEDS = (100, 101, 102)


class UsageError(ValueError):
    """Bad command-line input; the message names the problem and the fix."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from agents.common.ray_cluster import add_ray_arguments
    from agents.evaluation.controls import add_control_arguments
    from agents.evaluation.tuning import DEFAULT_BUDGET, TUNING_SEED

    p = argparse.ArgumentParser(
        prog="evaluate_agent.py",
        description="Compare trained LR controllers with baselines on held-out lr_gym envs, "
                    "in AlgoPerf's self-tuning and external-tuning tracks.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--agent", nargs="+", default=None,
                   help="Trained agents: run folders, checkpoint .zip files, .safetensors "
                        "controller files or 'pretrained' (the shipped controller, also "
                        "'lr_gym/default'), always loaded from the pickle-free controller "
                        "file; several (e.g. PPO seeds) are pooled. Default: the latest "
                        "complete run under --log-folder; 'none' evaluates baselines only.")
    p.add_argument("--split", choices=("test", "dev"), default="test",
                   help="Which held-out families to evaluate on when --env is not given: "
                        "'test' reports, 'dev' is for choices.")
    p.add_argument("--env", nargs="+", default=None,
                   help="Env ids instead of a split's (e.g. your own registered tasks).")
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS),
                   help="Evaluation seeds, shared by every controller (paired).")
    p.add_argument("--target-seeds", nargs="+", type=int, default=list(DEFAULT_TARGET_SEEDS),
                   help="Seeds of the reference's target-setting runs (never scored).")
    p.add_argument("--baselines", nargs="*", default=None,
                   help="Baselines to compare with (default: all; the open-loop controls "
                        "replay, learned_schedule and fixed_decay need an agent).")
    add_control_arguments(p, toggle=False, cache=False)
    p.add_argument("--track", choices=("self", "external", "both"), default="both",
                   help="AlgoPerf tracks to run.")
    p.add_argument("--tuning-budget", type=int, default=DEFAULT_BUDGET,
                   help="Trials per tunable baseline and env in the external-tuning track.")
    p.add_argument("--tuning-cache", default=None,
                   help="JSON cache of tuning results (default: <log-folder>/tuning_cache.json).")
    p.add_argument("-f", "--log-folder", default="logs",
                   help="Where to look for the latest run, and where outputs go.")
    p.add_argument("-o", "--output", default=None,
                   help="Output folder (default: <log-folder>/eval/<envs>-<hash of the "
                        "invocation>, so different invocations never overwrite each other).")
    p.add_argument("--device", default=None,
                   help="Device of the primary models (cpu, cuda, auto); default cpu, or "
                        "cuda for Ray tasks with --env-gpus.")
    p.add_argument("--num-threads", type=int, default=None,
                   help="Torch threads of every episode (EnvConfig.torch_threads), pinned "
                        "whatever the process has, so results are bit-reproducible on CPU "
                        "for a given count and torch version. Default: 1 (parallelism comes "
                        "from --workers), or --env-cpus under Ray.")
    p.add_argument("--gym-packages", nargs="*", default=[],
                   help="Modules to import first (they register your own tasks).")
    p.add_argument("--n-boot", type=int, default=2000, help="Bootstrap resamples.")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="Parallel worker processes (one torch thread each); 1 runs everything "
                        "in this process. For --backend process; Ray runs as many tasks as "
                        "the cluster's resources hold.")
    p.add_argument("--backend", choices=("process", "ray"), default="process",
                   help="Where tuning trials and episodes run: worker processes on this "
                        "machine, or Ray tasks on a cluster (needs pip install -e \".[ray]\").")
    add_ray_arguments(p, "--backend ray", "task", "the next task to finish")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True,
                   help="Write curves_<track>.png and profiles_<track>.png.")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="Show progress bars.")
    p.set_defaults(tuning_seed=TUNING_SEED)
    return p


def _check_args(args: argparse.Namespace, env_ids: list[str], names: list[str]) -> None:
    import gymnasium as gym

    import lr_gym
    from agents.baselines import BASELINES
    from agents.evaluation.controls import check_control_envs
    from lr_gym.config import MAX_TORCH_THREADS

    for eid in env_ids:
        if eid not in gym.registry:
            raise UsageError(f"unknown env id {eid!r}. Registered lr_gym ids: "
                             f"{', '.join(lr_gym.lr_gym_env_ids())}. Register your own with "
                             "lr_gym.register_task and pass its module with --gym-packages.")
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise UsageError(f"unknown baseline {unknown[0]!r}; choose from {sorted(BASELINES)}.")
    unknown_ids = [e for e in args.control_envs or () if e not in gym.registry]
    if unknown_ids:
        raise UsageError(f"--control-envs: unknown env id {unknown_ids[0]!r}; register it "
                         "and pass its module with --gym-packages.")
    try:
        check_control_envs(args.control_envs)
    except ValueError as err:
        raise UsageError(str(err)) from err
    for flag, seeds in (("--seeds", args.seeds), ("--target-seeds", args.target_seeds),
                        ("--control-seeds", args.control_seeds)):
        if any(s < 0 for s in seeds):
            raise UsageError(f"{flag} {seeds}: seeds must be >= 0 (gymnasium's rule).")
        if len(set(seeds)) != len(seeds):
            raise UsageError(f"{flag} {seeds} repeats a seed; each seed counts once.")
    if set(args.seeds) & set(args.target_seeds):
        raise UsageError(f"seeds {sorted(set(args.seeds) & set(args.target_seeds))} are both "
                         "evaluation and target-setting seeds; targets must come from runs "
                         "that are not scored.")
    if args.tuning_seed in set(args.seeds) | set(args.target_seeds):
        raise UsageError(f"seed {args.tuning_seed} is reserved for tuning; pick other seeds.")
    if args.tuning_budget < 0:
        raise UsageError(f"--tuning-budget must be >= 0, got {args.tuning_budget}.")
    if args.track != "self" and args.tuning_budget == 0:
        raise UsageError("the external-tuning track needs --tuning-budget >= 1; "
                         "use --track self to run untuned only.")
    if args.device is not None:
        from lr_gym.envs.lr_control import resolve_device

        try:
            resolve_device(args.device)
        except ValueError as err:
            raise UsageError(f"--device: {err}") from err
    for flag, folder in (("-f/--log-folder", args.log_folder), ("-o/--output", args.output)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise UsageError(f"{flag} {folder} is a file, not a folder; pass a folder.")
    if args.workers < 1 or args.n_boot < 1:
        raise UsageError("--workers and --n-boot must be >= 1.")
    ray = _ray_resources(args)
    address = args.ray_address or os.environ.get("RAY_ADDRESS")
    if ray is not None and address:  # before any output exists: a wrong address makes none
        from agents.common.ray_cluster import CONNECT_TIMEOUT_S, RaySetupError, probe_address

        try:
            probe_address(address, min(ray[1], CONNECT_TIMEOUT_S))
        except RaySetupError as err:
            raise UsageError(str(err)) from err
    if args.num_threads is not None and not 1 <= args.num_threads <= MAX_TORCH_THREADS:
        raise UsageError(f"--num-threads must be between 1 and {MAX_TORCH_THREADS}, got "
                         f"{args.num_threads}.")


def _ray_resources(args: argparse.Namespace) -> Any:
    """``(RayResources of a task, timeout)`` (``None`` without Ray), checked.

    Raises:
        UsageError: A Ray flag without ``--backend ray``, a bad value, or Ray missing.
    """
    from agents.common.ray_cluster import RaySetupError, ray_settings, require_ray

    try:
        ray = ray_settings(args, "--backend ray", args.backend == "ray", args.device,
                           "--device", "task")
        if ray is not None:
            require_ray("--backend ray")
    except (RaySetupError, ValueError) as err:
        raise UsageError(str(err)) from err
    return ray


def _make_pool(args: argparse.Namespace, agents: list[str]) -> tuple[Any, float | None]:
    """The pool the jobs run in, and the longest wait for the next job to finish."""
    from agents.evaluation.runner import make_pool

    ray = _ray_resources(args)
    if ray is None:
        return make_pool(args.workers, args.gym_packages), None
    from agents.common.ray_cluster import CONNECT_TIMEOUT_S
    from agents.evaluation.ray_backend import RayPool

    resources, timeout = ray
    return RayPool(args.ray_address, resources, args.gym_packages, agents,
                   connect_timeout_s=min(timeout, CONNECT_TIMEOUT_S)), timeout


def _resolve_agents(args: argparse.Namespace) -> list[str]:
    """The agents to evaluate, each checked by loading its controller file here.

    A run folder (or its ``model.zip``) stays the agent's name; a checkpoint is named
    by its controller file. Only ``.safetensors`` files are read: never a pickle.
    """
    from agents.common.runs import MODEL
    from agents.controller import (
        ControllerFileError,
        controller_file_for,
        is_pretrained_name,
        load_controller_file,
    )
    from agents.training.ppo import latest_run

    if args.agent and [a.lower() for a in args.agent] == ["none"]:
        return []
    try:
        paths = ([a if is_pretrained_name(a) else Path(a) for a in args.agent] if args.agent
                 else [latest_run(args.log_folder)])
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    out, seen = [], {}
    for p in paths:
        try:
            # A bad file is an error line now, not a worker traceback.
            sha = load_controller_file(p).content_sha256
        except (FileNotFoundError, ControllerFileError) as err:
            raise UsageError(f"{err} Or pass --agent none.") from err
        # By content, not provenance: a run folder and its own file, or a copy whose
        # `source` was edited, act identically and would count twice.
        if sha in seen:
            raise UsageError(f"--agent {seen[sha]} and {p} are the same controller (weights "
                             f"and rule, content sha256 {sha[:12]}...); pass it once, or it "
                             "would count twice.")
        seen[sha] = p
        if isinstance(p, str):  # a pretrained name: its shipped file
            out.append(str(controller_file_for(p)))
            continue
        run = p.parent if p.name == MODEL else p
        agent = run if run.is_dir() else controller_file_for(p)
        out.append(str(agent.resolve()))
    return out


def _split_of(env_ids: list[str]) -> str | None:
    from lr_gym.splits import SPLITS

    for split in SPLITS.values():
        if set(env_ids) == set(split.env_ids):
            return split.name
    return None


def _check_envs(env_ids: list[str], env_kwargs: dict[str, Any]) -> None:
    """Builds each env once here, before any output exists (cheap: data loads at reset).

    A task or option the env refuses (e.g. a ``--gym-packages`` task whose budget is past
    ``MAX_TOTAL_STEPS``) is then one error line, not a worker's traceback after
    ``invocation.json`` was written. On CPU: Ray tasks may have GPUs this machine lacks.
    """
    import gymnasium as gym

    for eid in env_ids:
        try:
            gym.make(eid, **{**env_kwargs, "device": "cpu"}).close()
        except (ValueError, TypeError, KeyError, OSError, gym.error.Error) as err:
            raise UsageError(f"--env {eid}: {err}") from None


def _output_dir(args: argparse.Namespace, invocation: dict[str, Any],
                held: contextlib.ExitStack) -> Path:
    """The invocation's output folder, held for this process alone until it exits.

    Raises:
        FolderBusyError: Another evaluation writes to it (its PID in the message).
        UsageError: It holds another evaluation, or an unreadable ``invocation.json``.
    """
    from agents.common.folder_lock import hold_folder

    digest = hashlib.sha256(json.dumps(invocation, sort_keys=True).encode()).hexdigest()[:8]
    label = invocation["split"] or "custom"
    out = Path(args.output) if args.output else Path(args.log_folder) / "eval" / f"{label}-{digest}"
    # Before anything is read or written: two evaluations in one folder would mix their
    # runs in runs.jsonl and overwrite each other's reports.
    held.enter_context(hold_folder(out, "wait for it to finish (or stop it), or pass another "
                                        "-o"))
    marker = out / "invocation.json"
    if marker.is_file():
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
            if not isinstance(before, dict):
                raise ValueError(f"a JSON {type(before).__name__}, not an object")
        except (OSError, ValueError, RecursionError) as err:  # UnicodeDecodeError too
            detail = " ".join(str(err).split())[:120]
            raise UsageError(
                f"{marker} is unreadable ({type(err).__name__}: {detail}), so {out} cannot "
                "be matched to this evaluation; if it holds this same evaluation, move "
                "invocation.json aside and rerun (runs.jsonl is kept and resumed), else pass "
                "another -o.") from None
        if before != invocation:
            diff = sorted(k for k in set(before) | set(invocation)
                          if before.get(k) != invocation.get(k))
            raise UsageError(f"{out} holds the results of another evaluation (it differs in: "
                             f"{', '.join(diff)}); pass another -o, or drop -o to get a "
                             "folder of its own.")
    from agents.common.runs import remove_stale_temporaries, write_text_atomic

    remove_stale_temporaries(out)  # what a killed run of this evaluation left half-written
    write_text_atomic(marker, json.dumps(invocation, indent=1, sort_keys=True))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.common.folder_lock import FolderBusyError
    from agents.common.ray_cluster import RaySetupError
    from agents.common.runs import DISK_FULL
    from agents.evaluation.ray_backend import TaskLostError
    from agents.evaluation.runner import JobTimeoutError

    args = build_parser().parse_args(argv)
    try:
        with contextlib.ExitStack() as held:  # the output folder's lock, until we exit
            return _main(args, held)
    except KeyboardInterrupt:
        print("\ninterrupted: every finished episode is kept in runs.jsonl; rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    except (UsageError, RaySetupError, FolderBusyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (JobTimeoutError, TaskLostError) as err:
        hint = (" Raise --ray-timeout if a job is just slow." if isinstance(err, JobTimeoutError)
                else "")
        print(f"error: {err}. Finished runs are kept in runs.jsonl: rerun the same command to "
              f"resume.{hint}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        print(f"error: the disk is full ({err}). Finished runs are kept in runs.jsonl: free "
              "some space and rerun the same command to resume (nothing is rerun).",
              file=sys.stderr)
        return 1


@dataclasses.dataclass(frozen=True)
class _Plan:
    """An evaluation's checked plan: what runs, known before any output exists.

    Attributes:
        env_ids: The env ids evaluated.
        names: The baselines evaluated (those needing an agent dropped without one).
        agents: The agents' controller files or run folders, resolved.
        tracks: ``["self"]``, ``["external"]`` or both.
        tunable: The baselines the external track tunes.
        external: Whether external tuning runs (the track asked for, a baseline to tune).
        env_kwargs: The envs' device and threads.
        invocation: What names the output folder and must match a resumed one.
    """

    env_ids: list[str]
    names: list[str]
    agents: list[str]
    tracks: list[str]
    tunable: list[str]
    external: bool
    env_kwargs: dict[str, Any]
    invocation: dict[str, Any]


def _main(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    """Evaluates: plan and check, hold the output folder, run the episodes, report.

    Args:
        args: The parsed flags.
        held: Holds the output folder's lock until the process exits.

    Returns:
        The exit code (0; errors raise for :func:`main` to report).
    """
    from agents.evaluation.store import RunStore

    plan = _plan(args)
    out = _output_dir(args, plan.invocation, held)
    cache = str(Path(args.tuning_cache or Path(args.log_folder) / "tuning_cache.json"))
    if plan.external:  # only tuning writes the cache: a self-track run makes no log folder
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
    store = RunStore(out / "runs.jsonl")
    if len(store):
        print(f"Resuming: {len(store)} finished runs found in {store.path}.", file=sys.stderr)
    t0 = time.perf_counter()
    tuned, controls = _run_episodes(args, plan, store, cache)
    # 4. Scores, report, plots: only this invocation's runs.
    _write_outputs(args, plan, store.runs, out, tuned, controls, t0)
    return 0


def _plan(args: argparse.Namespace) -> _Plan:
    """Imports ``--gym-packages``, checks every flag, agent and env, and plans the runs.

    Raises:
        UsageError: A bad flag, agent or env, or nothing to evaluate.
    """
    from agents.baselines import BASELINES, make_baseline
    from agents.baselines.open_loop import CONTROLS
    from agents.common.packages import GymPackageError, import_gym_packages
    from agents.controller import load_controller_file
    from lr_gym.reproducibility import DEFAULT_TORCH_THREADS
    from lr_gym.splits import SPLITS

    try:
        import_gym_packages(args.gym_packages)
    except GymPackageError as err:
        raise UsageError(str(err)) from err
    env_ids = list(args.env or SPLITS[args.split].env_ids)
    names = list(BASELINES) if args.baselines is None else list(args.baselines)
    _check_args(args, env_ids, names)
    agents = _resolve_agents(args)
    skipped = [b for b in names if b in CONTROLS] if not agents else []
    if skipped:  # they control for a learned controller's feedback loop
        names = [b for b in names if b not in skipped]
        if args.baselines is not None:
            print(f"note: {', '.join(skipped)} need(s) an agent; skipped.", file=sys.stderr)
    if not agents and not names:
        raise UsageError("nothing to evaluate: give --agent or --baselines.")
    tracks = ["self", "external"] if args.track == "both" else [args.track]
    tunable = [b for b in names if b not in CONTROLS and make_baseline(b).tunable]
    external = "external" in tracks and bool(tunable)
    ray = _ray_resources(args)
    env_kwargs = {"device": args.device or (ray[0].device if ray else "cpu"),
                  "torch_threads": args.num_threads or (ray[0].threads if ray
                                                        else DEFAULT_TORCH_THREADS)}
    invocation = {
        "envs": env_ids, "split": _split_of(env_ids), "agents": agents,
        # The weights, not only the path: a re-shipped or retrained agent is another one.
        "agent_sha256": [load_controller_file(a).sha256 for a in agents],
        "seeds": args.seeds,
        "target_seeds": args.target_seeds, "baselines": names, "tracks": tracks,
        "tuning_budget": args.tuning_budget if external else 0,
        "tuning_seed": args.tuning_seed, "env_kwargs": env_kwargs,
        "control_envs": args.control_envs, "control_seeds": args.control_seeds,
    }
    _check_envs(env_ids, env_kwargs)
    return _Plan(env_ids, names, agents, tracks, tunable, external, env_kwargs, invocation)


def _run_episodes(args: argparse.Namespace, plan: _Plan, store: Any,
                  cache: str) -> tuple[dict[tuple[str, str], float], dict[str, Any]]:
    """Runs what ``store`` lacks: tuning, open-loop controls, episodes, then replays.

    Args:
        args: The parsed flags.
        plan: The checked plan.
        store: The invocation's :class:`~agents.evaluation.store.RunStore`.
        cache: The tuning cache file.

    Returns:
        The tuned initial LRs by ``(env id, baseline)``, and each agent's open-loop
        controls.
    """
    from tqdm import tqdm

    from agents.evaluation.controls import controls_for
    from agents.evaluation.runner import tune_all

    bars = not args.progress
    tuned: dict[tuple[str, str], float] = {}
    pool, timeout = _make_pool(args, plan.agents)
    with pool:
        # 1. External tuning (cached), one job per trial.
        if plan.external:
            tuned = tune_all(
                pool, [(e, b) for e in plan.env_ids for b in plan.tunable], args.tuning_budget,
                [*args.seeds, *args.target_seeds], plan.env_kwargs, cache, timeout,
                progress=lambda done, n: tqdm(done, total=n, desc="tuning",
                                              disable=bars or not n, file=sys.stderr))

        # 2. The open-loop controls' schedules, fixed on the dev families (cached).
        controls = {}
        if {"learned_schedule", "fixed_decay"} & set(plan.names):
            folder = Path(args.log_folder) / "open_loop"
            for a in plan.agents:
                controls[a] = controls_for(
                    a, folder, pool, plan.env_kwargs, envs=args.control_envs,
                    seeds=args.control_seeds, timeout_s=timeout,
                    progress=lambda done, n: tqdm(done, total=n, desc="dev controls",
                                                  disable=bars or not n, file=sys.stderr))

        # 3. Target-setting runs of the reference, then every scored episode. The
        # replay control follows the learned agents' LRs, so it runs last.
        _run_all(pool, store, _episode_jobs(args, plan, tuned, controls), "episodes",
                 timeout, bars)
        if "replay" in plan.names:
            _run_all(pool, store, _replay_jobs(args, plan, store.runs), "replays", timeout,
                     bars)
    if getattr(pool, "nodes", None):
        print(f"Ray: this invocation's jobs ran on {len(pool.nodes)} node(s).", file=sys.stderr)
    return tuned, controls


def _run_all(pool: Any, store: Any, specs: list[Any], desc: str, timeout: float | None,
             bars: bool) -> None:
    """Runs the jobs of ``specs`` that ``store`` lacks, storing each as it comes back.

    One job per key: a baseline whose best trial was its default lr0 runs once for
    both tracks.

    Args:
        pool: The pool the jobs run in.
        store: The invocation's :class:`~agents.evaluation.store.RunStore`.
        specs: The :class:`~agents.evaluation.runner.EpisodeJob` s wanted.
        desc: The progress bar's label.
        timeout: The longest wait for the next job to finish (``None``: no limit).
        bars: Whether progress bars are off (``--no-progress``).
    """
    from tqdm import tqdm

    from agents.evaluation.runner import run_job, run_jobs

    todo = list({_job_key(j): j for j in specs if _job_key(j) not in store}.values())
    for _, run in tqdm(run_jobs(pool, run_job, todo, timeout), total=len(todo),
                       desc=desc, disable=bars or not todo, file=sys.stderr):
        store.add(run)


def _job_key(j: Any) -> tuple:
    """The store's key of an :class:`~agents.evaluation.runner.EpisodeJob`."""
    from agents.evaluation.store import run_key

    return run_key({"env_id": j.env_id, "controller": j.controller, "agent": j.agent,
                    "seed": j.seed, "lr0": j.lr, "role": j.role})


def _episode_jobs(args: argparse.Namespace, plan: _Plan, tuned: dict[tuple[str, str], float],
                  controls: dict[str, Any]) -> list[Any]:
    """The target-setting runs of the reference, then every scored episode but replays.

    Returns:
        The :class:`~agents.evaluation.runner.EpisodeJob` s, in that order.
    """
    from agents.baselines.open_loop import CONTROLS
    from agents.evaluation import scoring
    from agents.evaluation.runner import EpisodeJob

    env_kwargs, agents = plan.env_kwargs, plan.agents
    ref = scoring.REFERENCE
    specs = [EpisodeJob(e, ref, s, "target", tuned.get((e, ref)), env_kwargs=env_kwargs)
             for e in plan.env_ids for s in args.target_seeds]
    for e in plan.env_ids:
        for s in args.seeds:
            specs += [EpisodeJob(e, "ppo", s, agent=a, env_kwargs=env_kwargs)
                      for a in agents]
            for b in plan.names:
                if b == "replay":
                    continue
                if b in CONTROLS:  # untuned: one run serves both tracks
                    specs += [EpisodeJob(e, b, s, agent=a, env_kwargs=env_kwargs,
                                         control=controls[a].to_dict()) for a in agents]
                    continue
                if "self" in plan.tracks:
                    specs.append(EpisodeJob(e, b, s, env_kwargs=env_kwargs))
                if "external" in plan.tracks:
                    specs.append(EpisodeJob(e, b, s, lr=tuned.get((e, b)),
                                            env_kwargs=env_kwargs))
    return specs


def _replay_jobs(args: argparse.Namespace, plan: _Plan, runs: Any) -> list[Any]:
    """The replay control's jobs: each agent's stored evaluation LRs, replayed open-loop.

    Args:
        args: The parsed flags.
        plan: The checked plan.
        runs: The stored runs (the agents' episodes among them).

    Returns:
        The :class:`~agents.evaluation.runner.EpisodeJob` s.
    """
    from agents.evaluation.runner import EpisodeJob

    replays = []
    for a in plan.agents:
        for e in plan.env_ids:
            own = tuple(r for r in runs if r["controller"] == "ppo"
                        and r["agent"] == a and r["env_id"] == e
                        and r["seed"] in args.seeds and r.get("role") == "eval")
            replays += [EpisodeJob(e, "replay", s, agent=a, replay=own,
                                   env_kwargs=plan.env_kwargs) for s in args.seeds]
    return replays


def _write_outputs(args: argparse.Namespace, plan: _Plan, stored: Any, out: Path,
                   tuned: dict[tuple[str, str], float], controls: dict[str, Any],
                   t0: float) -> None:
    """Scores this invocation's runs; writes and prints the report, tables and plots.

    Args:
        args: The parsed flags.
        plan: The checked plan.
        stored: Every run in the store (other invocations' too).
        out: The output folder.
        tuned: The tuned initial LRs by ``(env id, baseline)``.
        controls: Each agent's open-loop controls.
        t0: When the runs started (``time.perf_counter``).
    """
    from agents.baselines.open_loop import CONTROLS
    from agents.common.runs import write_text_atomic
    from agents.controller import agent_labels
    from agents.evaluation import scoring
    from agents.evaluation.report import report_markdown, tables_markdown
    from agents.evaluation.results import DECISIONS, write_decisions
    from lr_gym.reproducibility import settings

    agents, env_kwargs, invocation = plan.agents, plan.env_kwargs, plan.invocation
    ref = scoring.REFERENCE
    wanted = set(plan.env_ids), set(args.seeds) | set(args.target_seeds)
    labels = agent_labels(agents, invocation["agent_sha256"])  # no machine paths in reports
    runs = [{**r, "agent": labels.get(r["agent"], r["agent"])} for r in stored
            if r["env_id"] in wanted[0] and r["seed"] in wanted[1]
            and (r["controller"] not in ("ppo", *CONTROLS) or r["agent"] in agents)]
    targets = scoring.targets_from(runs)
    order = (["ppo"] if agents else []) + plan.names
    summaries = {t: scoring.summarize_track(scoring.track_runs(runs, t, tuned), order, targets,
                                            n_boot=args.n_boot) for t in plan.tracks}
    meta = {**invocation, "agents": list(labels.values()),
            "reproducibility": settings(env_kwargs["torch_threads"],
                                        deterministic=env_kwargs["device"] == "cpu"),
            "targets": targets, "reference_tuned": plan.external and ref in plan.tunable,
            "tuned_lr0": {f"{e}|{b}": v for (e, b), v in tuned.items()},
            "open_loop": {labels[a]: c.to_dict() for a, c in controls.items()},
            "seconds": time.perf_counter() - t0}
    report = report_markdown(summaries, meta)
    # Atomic: a full disk leaves the previous report (or none), never a truncated one.
    write_text_atomic(out / "report.md", report)
    write_text_atomic(out / "table.md", tables_markdown(summaries, meta))
    write_text_atomic(out / "results.json", json.dumps({"meta": meta, "tracks": summaries},
                                                       indent=1, default=float))
    write_decisions(out, runs)
    written = ["report.md", "table.md", "results.json", "runs.jsonl", DECISIONS]
    if args.plot:
        written += _write_plots(runs, summaries, tuned, out)
    print(report)
    print(f"Wrote {', '.join(written)} to {out} in {meta['seconds']:.0f} s.")


def _write_plots(runs: list[dict[str, Any]], summaries: dict[str, Any],
                 tuned: dict[tuple[str, str], float], out: Path) -> list[str]:
    """Writes each track's curves and, where it has ratios, its performance profiles.

    Returns:
        The names of the files written.
    """
    from agents.evaluation import plots, scoring

    written = []
    for t, summary in summaries.items():
        title = scoring.TRACKS[t].split(":")[0]
        plots.plot_curves(scoring.track_runs(runs, t, tuned), out / f"curves_{t}.png", title)
        written.append(f"curves_{t}.png")
        if summary["ratios"]:
            plots.plot_profiles(summary["ratios"],
                                {a["controller"]: a["profile_score"]
                                 for a in summary["aggregate"]},
                                out / f"profiles_{t}.png", f"{title}: performance profiles")
            written.append(f"profiles_{t}.png")
    return written


if __name__ == "__main__":
    raise SystemExit(main())
