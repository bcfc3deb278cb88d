"""The seed experiment: a learned LR controller against baselines on the four seed tasks.

For each seed task (CIFAR-10 / ResNet-18, IMDB, SQuAD v2, CoNLL-2003 / BiLSTM-CRF), runs
the controllers ``--agent`` and the baselines (default: ``static`` at the plan's LR,
``cosine``, ``warmup_linear`` = warmup + linear decay, ``schedulefree``, ``prodigy``;
see :mod:`agents.baselines`) on paired seeds (3 on CIFAR-10 and CoNLL-2003, 2 on the
text tasks), untuned (AlgoPerf's self-tuning track), and beside each learned controller
its open-loop controls on its own LR rule (``replay``, ``learned_schedule`` and
``fixed_decay``: :mod:`agents.baselines.open_loop`; ``--no-controls`` leaves them out). Episodes
go through the
evaluation's own runner and run store (:mod:`agents.evaluation`): each finished episode
is appended to ``<output>/runs.jsonl``, and rerunning the same command resumes from it.

Writes to ``--output`` (default ``benchmarks/results/seed_experiment/<preset>``):

* ``report.md`` and ``results.json``: per task and method, the final test metrics
  (CIFAR-10 accuracy; IMDB accuracy and F1; SQuAD v2 EM, F1, HasAns and NoAns, with
  the forced-span HasAns F1 and the loss, which show span learning while F1 is flat;
  CoNLL-2003 entity precision, recall and F1) as mean ± std over seeds, the final
  validation metric, the convergence time in epochs (to 95% of the final validation
  metric) and the episode's wall seconds (one-time data loading excluded);
* ``table.md``: the plan's question, one row per task: the learned controller against
  static on the main test metric and convergence, on paired seeds, with the best other
  baseline and the task's episode hours (README quotes it);
* ``<task>.png``: validation metric and LR against epochs, one line per method.

Presets: ``--preset cpu`` (default) runs the CPU ids, sized for 2 cores
(``CIFAR10-ResNet18-CPU``, ``IMDB-MiniLM-CPU`` and ``SQuADv2-MiniLM-CPU``, which need
``pip install -e ".[pretrained]"``, and ``CoNLL2003-BiLSTMCRF-CPU``) on local data
(``--data-dir``, default ``$LR_GYM_DATA_DIR``); on a GPU with hub access,
``--preset full --device cuda`` runs the plan's setups (``CIFAR10-ResNet18``,
``IMDB-BERT``, ``SQuADv2-RoBERTa``, ``CoNLL2003-BiLSTMCRF``).

Usage:
    LR_GYM_DATA_DIR=../shared/data python benchmarks/seed_experiment.py --agent RUN [RUN ...]
    python benchmarks/seed_experiment.py --agent pretrained --preset full --device cuda
    python benchmarks/seed_experiment.py --agent none          # the baselines alone
    python benchmarks/seed_experiment.py --agent pretrained --report-only  # reports so far
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BASELINES = ("static", "cosine", "warmup_linear", "schedulefree", "prodigy")
"""The plan's baselines: static at the plan LR, cosine, warmup + linear decay,
Schedule-Free, Prodigy."""
DEFAULT_OUTPUT = Path("benchmarks/results/seed_experiment")


@dataclass(frozen=True)
class SeedTask:
    """One seed task of the experiment.

    Attributes:
        key: Short name (figure file name, report heading).
        cpu: Env id of the CPU preset.
        full: Env id of the plan's (GPU) preset.
        metrics: Test metrics reported, main metric included.
        seeds: Paired evaluation seeds.
    """

    key: str
    cpu: str
    full: str
    metrics: tuple[str, ...]
    seeds: tuple[int, ...]


TASKS: tuple[SeedTask, ...] = (
    SeedTask("cifar10", "lr_gym/CIFAR10-ResNet18-CPU-v1", "lr_gym/CIFAR10-ResNet18-v1",
             ("accuracy",), (0, 1, 2)),
    SeedTask("imdb", "lr_gym/IMDB-MiniLM-CPU-v2", "lr_gym/IMDB-BERT-v1",
             ("accuracy", "f1"), (0, 1)),
    SeedTask("squad_v2", "lr_gym/SQuADv2-MiniLM-CPU-v4", "lr_gym/SQuADv2-RoBERTa-v1",
             ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
              "forced_span_HasAns_f1", "loss"), (0, 1)),
    SeedTask("conll2003", "lr_gym/CoNLL2003-BiLSTMCRF-CPU-v1", "lr_gym/CoNLL2003-BiLSTMCRF-v1",
             ("precision", "recall", "f1"), (0, 1, 2)),
)


@dataclass(frozen=True)
class EnvPlan:
    """One env of an invocation.

    Attributes:
        key: Short name (figure file name, report heading).
        env_id: The env id.
        metrics: Test metrics reported (empty: the env's main metric).
        seeds: Paired evaluation seeds.
    """

    key: str
    env_id: str
    metrics: tuple[str, ...]
    seeds: tuple[int, ...]


MINILM_IDS = frozenset(t.cpu for t in TASKS if "MiniLM" in t.cpu)
"""The CPU ids that fine-tune the packaged MiniLM (the ``pretrained`` extra)."""


class UsageError(ValueError):
    """Bad command-line input; the message names the problem and the fix."""


@dataclass(frozen=True)
class Plan:
    """What one invocation runs.

    Attributes:
        envs: The envs, with their metrics and seeds.
        agents: Controller files or run folders of learned agents (may be empty).
        baselines: Baseline names.
        env_kwargs: EnvConfig overrides shared by every run (device, budget).
        data_dir: Local data folder (``$LR_GYM_DATA_DIR`` of every run), or None.
        controls: Each agent's open-loop controls, fixed on dev
            (:class:`agents.baselines.open_loop.OpenLoopControls` as a dict); empty: none run.
    """

    envs: tuple[EnvPlan, ...]
    agents: tuple[str, ...]
    baselines: tuple[str, ...]
    env_kwargs: Mapping[str, Any]
    data_dir: str | None = None
    controls: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def controllers(self) -> list[str]:
        """Controller names in report order: the learned one and its controls first."""
        from agents.baselines.open_loop import CONTROLS

        return ((["ppo"] if self.agents else []) + (list(CONTROLS) if self.controls else [])
                + list(self.baselines))

    @property
    def settings(self) -> dict[str, Any]:
        """What changes a run's meaning without entering its key (see :func:`check_output`)."""
        return {**self.env_kwargs, "data_dir": self.data_dir}

    @property
    def published_settings(self) -> dict[str, Any]:
        """:attr:`settings` for committed reports: no absolute path, with the torch settings."""
        from lr_gym.reproducibility import settings

        data_dir = os.path.relpath(self.data_dir) if self.data_dir else None
        return {**self.env_kwargs, "data_dir": data_dir,
                "reproducibility": settings(self.env_kwargs.get("torch_threads"),
                                            deterministic=self.env_kwargs["device"] == "cpu")}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from agents.common.help_format import DefaultsHelpFormatter
    from agents.evaluation.controls import add_control_arguments
    from agents.evaluation.results import add_benchmark_arguments

    p = argparse.ArgumentParser(prog="seed_experiment.py", description=__doc__.splitlines()[0],
                                formatter_class=DefaultsHelpFormatter)
    p.add_argument("--agent", nargs="+", required=True,
                   help="Learned controllers: run folders, checkpoint .zip files, .safetensors "
                        "controller files or 'pretrained' (the shipped controller); several "
                        "are pooled. 'none' runs the baselines alone.")
    p.add_argument("--preset", choices=("cpu", "full"), default="cpu",
                   help="'cpu': the 2-core presets on local data; 'full': the plan's setups "
                        "(GPU, hub).")
    p.add_argument("--env", nargs="+", default=None,
                   help="Env ids instead of the seed tasks (e.g. a quick check on "
                        "lr_gym/Digits-MLP-v1); their main metric is reported.")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="Seeds for every task (default: 3 on CIFAR-10 and CoNLL-2003, 2 on "
                        "IMDB and SQuAD v2, 3 on --env ids).")
    p.add_argument("--baselines", nargs="+", default=list(BASELINES),
                   help="Baselines (names of agents.baselines.BASELINES).")
    add_control_arguments(p)
    p.add_argument("--device", default="cpu", help="Device of the primary models.")
    p.add_argument("--data-dir", default=os.environ.get("LR_GYM_DATA_DIR"),
                   help="Local data folder, <dir>/<dataset>/<split>.parquet (default: "
                        "$LR_GYM_DATA_DIR; unset, e.g. with --preset full: the HF hub).")
    p.add_argument("--total-steps", type=int, default=None,
                   help="Override every task's optimizer-step budget (quick checks only).")
    p.add_argument("--steps-per-action", type=int, default=None,
                   help="Override every task's optimizer steps per decision.")
    p.add_argument("--workers", type=int, default=1,
                   help="Parallel worker processes; 1 runs the episodes here, one after "
                        "another.")
    p.add_argument("--num-threads", type=int, default=2,
                   help="Torch threads of every episode, pinned (EnvConfig.torch_threads): "
                        "the CPU presets are sized for one episode on 2 cores, and a fixed "
                        "count makes the episodes bit-reproducible on CPU.")
    p.add_argument("--report-only", action="store_true",
                   help="Run nothing: rebuild the reports from the episodes finished so far.")
    add_benchmark_arguments(p, None, output_help=(
        f"Output folder (runs.jsonl, report.md, results.json, PNGs); default "
        f"{DEFAULT_OUTPUT}/<preset>, or .../custom with --env."))
    return p


def resolve_agents(names: Sequence[str]) -> tuple[str, ...]:
    """Checks each agent by loading its pickle-free controller file; returns their paths.

    Raises:
        UsageError: An agent has no valid controller file (the message says what to pass).
    """
    from agents.controller import (
        ControllerFileError,
        controller_file_for,
        is_pretrained_name,
        load_controller_file,
    )

    if [n.lower() for n in names] == ["none"]:
        return ()
    out = []
    for name in names:
        try:
            load_controller_file(name if is_pretrained_name(name) else Path(name))
        except (FileNotFoundError, ControllerFileError) as err:
            if is_pretrained_name(name):
                raise UsageError(
                    f"--agent {name}: no shipped controller file at {controller_file_for(name)} "
                    "in this install. Pass a run folder of train_agent.py instead, or "
                    "--agent none.") from err
            raise UsageError(f"--agent {name}: {err} Or pass --agent none.") from err
        path = controller_file_for(name) if is_pretrained_name(name) else Path(name)
        out.append(str(path.resolve()))
    if len(set(out)) != len(out):
        raise UsageError(f"--agent names the same controller twice: {out}.")
    return tuple(out)


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan of a parsed command line (every check before any episode runs).

    Raises:
        UsageError: Unknown env or baseline, a repeated seed, or a bad agent or budget.
    """
    import gymnasium as gym

    import lr_gym
    from agents.baselines import BASELINES as KNOWN
    from lr_gym.tasks.seed.pretrained import (
        PACKAGED_MINILM,
        PretrainedModelMissingError,
        resolve_model,
    )

    unknown = [b for b in args.baselines if b not in KNOWN]
    if unknown:
        raise UsageError(f"unknown baseline {unknown[0]!r}; choose from {sorted(KNOWN)}.")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds {args.seeds} repeats a seed; each seed counts once.")
    for flag, value in (("--total-steps", args.total_steps),
                        ("--steps-per-action", args.steps_per_action), ("--workers", args.workers),
                        ("--num-threads", args.num_threads)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}.")
    if args.env:
        envs = [EnvPlan(e.split("/")[-1], e, (), (0, 1, 2)) for e in args.env]
    else:
        envs = [EnvPlan(t.key, t.cpu if args.preset == "cpu" else t.full, t.metrics, t.seeds)
                for t in TASKS]
    if args.seeds is not None:
        envs = [EnvPlan(e.key, e.env_id, e.metrics, tuple(args.seeds)) for e in envs]
    for e in envs:
        if e.env_id not in gym.registry:
            raise UsageError(f"unknown env id {e.env_id!r}. Registered lr_gym ids: "
                             f"{', '.join(lr_gym.lr_gym_env_ids())}.")
    if any(e.env_id in MINILM_IDS for e in envs):
        try:  # fail now, not after hours of the other tasks
            resolve_model(PACKAGED_MINILM)
        except PretrainedModelMissingError as err:
            raise UsageError(str(err)) from err
    env_kwargs: dict[str, Any] = {"device": args.device, "torch_threads": args.num_threads}
    if args.total_steps is not None:
        env_kwargs["total_steps"] = args.total_steps
    if args.steps_per_action is not None:
        env_kwargs["steps_per_action"] = args.steps_per_action
    data_dir = str(Path(args.data_dir).expanduser().resolve()) if args.data_dir else None
    return Plan(tuple(envs), resolve_agents(args.agent), tuple(args.baselines), env_kwargs,
                data_dir)


def check_output(out: Path, plan: Plan) -> None:
    """Refuses an output folder whose runs were made under other env settings.

    A run's key (env, controller, agent, seed) does not hold the device, the budget or
    the data folder, so runs made under other ones must not be resumed from.
    """
    from agents.common.runs import write_text_atomic

    marker = out / "invocation.json"
    settings = json.loads(json.dumps(plan.settings))
    if marker.is_file():
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # UnicodeDecodeError too
            raise UsageError(f"{marker} is unreadable ({type(err).__name__}), so the runs in "
                             f"{out} cannot be matched to these settings; if they are this "
                             "experiment's, move invocation.json aside and rerun, else pass "
                             "another -o.") from None
        if before != settings:
            raise UsageError(f"{out} holds runs made with other env settings ({before}, now "
                             f"{settings}); pass another -o.")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, json.dumps(settings, sort_keys=True))


def pin_agents(plan: Plan, out: Path) -> Plan:
    """The plan with each agent pinned under ``<out>/controllers/``.

    Each agent becomes a copy of its controller file named by its content
    (:func:`agents.controller.pin_controller`).
    """
    from agents.controller import pin_controller

    return replace(plan, agents=tuple(pin_controller(a, out / "controllers")
                                      for a in plan.agents))


def plan_jobs(plan: Plan) -> list[Any]:
    """Every episode of the plan but the replays (``EpisodeJob``), in the order they run."""
    from agents.evaluation.runner import EpisodeJob

    jobs = []
    for e in plan.envs:
        for seed in e.seeds:
            jobs += [EpisodeJob(e.env_id, "ppo", seed, agent=a, env_kwargs=plan.env_kwargs)
                     for a in plan.agents]
            jobs += [EpisodeJob(e.env_id, c, seed, agent=a, env_kwargs=plan.env_kwargs,
                                control=plan.controls[a])
                     for a in plan.agents if a in plan.controls
                     for c in ("learned_schedule", "fixed_decay")]
            jobs += [EpisodeJob(e.env_id, b, seed, env_kwargs=plan.env_kwargs)
                     for b in plan.baselines]
    return jobs


def replay_jobs(plan: Plan, runs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Each agent's replay on each task, from its learned runs there (once they are in)."""
    from agents.evaluation.runner import EpisodeJob

    jobs = []
    for e in plan.envs:
        for a in plan.agents:
            own = tuple(r for r in runs if r["controller"] == "ppo" and r["agent"] == a
                        and r["env_id"] == e.env_id and r["seed"] in e.seeds)
            if a in plan.controls and len(own) == len(e.seeds):
                jobs += [EpisodeJob(e.env_id, "replay", s, agent=a, replay=own,
                                    env_kwargs=plan.env_kwargs) for s in e.seeds]
    return jobs


def run_plan(plan: Plan, out: Path, workers: int = 1, run: bool = True,
             packages: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Runs every missing episode of the plan (none if not ``run``).

    ``packages`` (``--gym-packages``) are imported by every worker process.

    Returns:
        The plan's runs in the store.
    """
    from concurrent.futures import Future, as_completed

    from agents.evaluation.runner import EpisodeJob, make_pool, run_job
    from agents.evaluation.store import RunStore, run_key

    if plan.data_dir is not None:
        # Through the variable, so every task (and worker process) reads the same folder.
        os.environ["LR_GYM_DATA_DIR"] = plan.data_dir
    # --report-only may read beside a running experiment: it must not cut its last line.
    store = RunStore(out / "runs.jsonl", repair=run)
    if len(store) and run:
        print(f"Resuming: {len(store)} finished runs in {store.path}.", file=sys.stderr)
    jobs = plan_jobs(plan)

    def key(j: EpisodeJob) -> tuple:
        return run_key({"env_id": j.env_id, "controller": j.controller, "agent": j.agent,
                        "seed": j.seed, "lr0": j.lr, "role": j.role})

    def finish(fut: Future) -> None:
        run = fut.result()
        store.add(run)
        print(f"[{len(store)}] {run['env_id']} {run['controller']} seed {run['seed']}: "
              f"val {run['metric']} {run['final_val_metric']:.4f}, {run['wall'][-1]:.0f} s",
              file=sys.stderr, flush=True)

    def run_all(jobs: list[EpisodeJob]) -> None:
        with make_pool(workers, packages) as pool:
            pending = []
            for j in [j for j in jobs if key(j) not in store] if run else []:
                fut = pool.submit(run_job, j)
                if fut.done():  # in-process (workers=1): stored the moment it ends
                    finish(fut)
                else:
                    pending.append(fut)
            for fut in as_completed(pending):
                finish(fut)

    run_all(jobs)
    replays = replay_jobs(plan, store.runs)  # they follow the learned runs
    run_all(replays)
    wanted = {key(j) for j in [*jobs, *replays]}
    return [r for r in store.runs if run_key(r) in wanted]


def _group(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Runs by ``(env_id, controller)``."""
    by: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in runs:
        by[(r["env_id"], r["controller"])].append(r)
    return by


def summarize(plan: Plan, runs: Sequence[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """Per task, one row per method: metrics as ``[mean, std]`` over seeds, and run counts.

    Diverged runs have no test metrics; they count in ``diverged`` and are left out of
    the test means (their final validation metric is kept).
    """
    from agents.evaluation.stats import mean_std

    by = _group(runs)
    out: dict[str, list[dict]] = {}
    for e in plan.envs:
        rows = []
        for ctrl in plan.controllers:
            rs = by.get((e.env_id, ctrl), [])
            if not rs:
                continue
            metrics = e.metrics or (rs[0]["metric"],)
            ok = [r for r in rs if not r["diverged"]]
            row: dict[str, Any] = {
                "controller": ctrl, "runs": len(rs), "diverged": len(rs) - len(ok),
                "metric": rs[0]["metric"],
                "test": {m: mean_std([r["test"].get(m, math.nan) for r in ok]) if ok else None
                         for m in metrics},
                "final_val": mean_std([r["final_val_metric"] for r in rs]),
                "convergence_epoch": mean_std([r["convergence_epoch"] for r in rs]),
                "wall_s": mean_std([r["wall"][-1] for r in rs]),
            }
            rows.append(row)
        out[e.key] = rows
    return out


def _cell(ms: Sequence[float] | None, fmt: str = ".4f") -> str:
    return "—" if ms is None else f"{ms[0]:{fmt}} ± {ms[1]:{fmt}}"


def report_markdown(plan: Plan, summary: Mapping[str, list[dict]], note: str = "") -> str:
    """The report: one table per task, after ``note`` (e.g. how many episodes are done)."""
    from agents.evaluation.stats import markdown_table

    lines = ["# Seed experiment", "", *([note, ""] if note else []),
             f"Controllers: {', '.join(plan.controllers)}; self-tuning track (no method "
             "tuned); paired seeds; mean ± std over seeds. Convergence: epochs to 95% of "
             "the final validation metric. Wall: seconds per episode without one-time data "
             f"loading. Settings: {plan.published_settings}.", ""]
    for e in plan.envs:
        rows = summary.get(e.key, [])
        if not rows:
            continue
        metrics = list(rows[0]["test"])
        headers = ["method", "runs", *[f"test {m}" for m in metrics],
                   f"final val {rows[0]['metric']}", "convergence (epochs)", "wall (s)",
                   "diverged"]
        body = [[r["controller"], r["runs"], *[_cell(r["test"][m]) for m in metrics],
                 _cell(r["final_val"]), _cell(r["convergence_epoch"], ".2f"),
                 _cell(r["wall_s"], ".0f"), r["diverged"]] for r in rows]
        lines += [f"## {e.key} (`{e.env_id}`)", "", markdown_table(headers, body), "",
                  f"![{e.key}]({e.key}.png)", ""]
    return "\n".join(lines)


def _paired(runs: Sequence[Mapping[str, Any]], value: str) -> dict[int, float]:
    """Seed -> the run's ``value`` (``"test"``: the main test metric; a diverged run -inf)."""
    if value == "test":
        return {r["seed"]: -math.inf if r["diverged"] else r["test"][r["metric"]]
                for r in runs}
    return {r["seed"]: float(r[value]) for r in runs}


def answer_table(plan: Plan, runs: Sequence[Mapping[str, Any]]) -> str:
    """The plan's question, one row per task: does the learned controller beat static?

    Main test metric (mean over seeds) of the learned controller, static and the best
    other baseline; on paired seeds, how often the controller's test metric is higher
    than static's and its convergence (epochs to 95% of the final validation metric)
    earlier; and the summed episode hours of the task (data loading excluded).
    """
    from agents.baselines.open_loop import CONTROLS
    from agents.evaluation.stats import markdown_table

    if not plan.agents:
        return "No learned controller in this run (--agent none).\n"
    by = _group(runs)
    summary = summarize(plan, runs)
    rows = []
    planned = {e.env_id for e in plan.envs}  # every episode counts, tabled or not yet
    hours = sum(r["wall"][-1] for r in runs if r["env_id"] in planned) / 3600
    for e in plan.envs:
        learned, static = by.get((e.env_id, "ppo"), []), by.get((e.env_id, "static"), [])
        if not learned or not static:
            continue
        metric = learned[0]["metric"]
        # Mean main test metric per method, from the report's rows (nan: all diverged).
        means = {r["controller"]: r["test"][metric][0] if r["test"] else math.nan
                 for r in summary[e.key]}
        others = {b: means[b] for b in plan.baselines if b != "static" and b in means}
        best = max(others, key=lambda b: others[b]) if others else None
        # The open-loop control closest to the controller: the highest mean.
        controls = {c: means[c] for c in CONTROLS if c in means and math.isfinite(means[c])}
        control = max(controls, key=lambda c: controls[c]) if controls else None
        ct = _paired(by[(e.env_id, control)], "test") if control else {}
        lt, st = _paired(learned, "test"), _paired(static, "test")
        lc, sc = _paired(learned, "convergence_epoch"), _paired(static, "convergence_epoch")
        seeds = sorted(set(lt) & set(st))
        task_h = sum(r["wall"][-1] for r in runs if r["env_id"] == e.env_id) / 3600
        rows.append([
            e.key, f"test {metric}", f"{means['ppo']:.4f}", f"{means['static']:.4f}",
            "—" if best is None else f"{best} {others[best]:.4f}",
            f"{sum(lt[k] > st[k] for k in seeds)}/{len(seeds)}",
            "—" if control is None else f"{control} {controls[control]:.4f}",
            "—" if control is None else
            f"{sum(lt[k] > ct[k] for k in seeds if k in ct)}/{len([k for k in seeds if k in ct])}",
            f"{sum(lc[k] < sc[k] for k in seeds)}/{len(seeds)}",
            f"{sum(lc[k] for k in seeds) / len(seeds):.2f} vs "
            f"{sum(sc[k] for k in seeds) / len(seeds):.2f}",
            f"{task_h:.2f}"])
    headers = ["task", "metric", "learned", "static", "best other baseline",
               "learned > static (paired seeds)", "best open-loop control",
               "learned > it (paired seeds)", "learned converges earlier",
               "convergence epochs (learned vs static)", "episode hours"]
    return (markdown_table(headers, rows) + f"\n\nLearned, static, best other, best open-loop "
            f"control (of {', '.join(CONTROLS)}, each on the learned controller's own LR rule: "
            f"docs/protocol.md): means over each method's seeds. The paired columns use the "
            f"seeds both ran; a diverged run counts as a loss. Episode hours: summed wall "
            f"time of the task's episodes, data loading excluded; {hours:.2f} h in all.\n")


def write_outputs(plan: Plan, runs: Sequence[Mapping[str, Any]], out: Path) -> list[str]:
    """Writes ``report.md``, ``table.md``, ``results.json`` and one figure per task.

    With episodes still missing, the reports say how many are done.

    Returns:
        The names of the files written.
    """
    from agents.common.runs import portable_path
    from agents.evaluation.plots import plot_curves
    from agents.evaluation.results import DECISIONS, meta, write_decisions, write_results

    summary = summarize(plan, runs)
    total = len(plan_jobs(plan)) + sum(len(e.seeds) for e in plan.envs) * len(
        [a for a in plan.agents if a in plan.controls])  # and the replays
    partial = (f"**Partial: {len(runs)} of {total} episodes done**; rerun the command to "
               "finish." if len(runs) < total else "")
    write_results(out / "results.json",
                  {"meta": meta(), "settings": plan.published_settings,
                   "agents": [portable_path(a) for a in plan.agents],
                   "open_loop": {portable_path(a): c for a, c in plan.controls.items()},
                   "episodes": len(runs), "episodes_planned": total, "tasks": summary},
                  (partial and partial + "\n\n") + answer_table(plan, runs),
                  table_path=out / "table.md",
                  also={"report.md": report_markdown(plan, summary, partial)})
    write_decisions(out, [{**r, "agent": portable_path(r["agent"]) if r.get("agent") else None}
                          for r in runs])
    written = ["report.md", "table.md", "results.json", "runs.jsonl", DECISIONS]
    for e in plan.envs:
        own = [r for r in runs if r["env_id"] == e.env_id]
        if own:
            plot_curves(own, out / f"{e.key}.png", f"Seed experiment: {e.key}", x="epochs")
            written.append(f"{e.key}.png")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.common.folder_lock import FolderBusyError, hold_folder
    from agents.evaluation.results import parse_benchmark_args

    args = parse_benchmark_args(build_parser(), argv)
    with contextlib.ExitStack() as held:
        try:
            import lr_gym  # noqa: F401 - registers the ids

            plan = make_plan(args)
            out = args.output or DEFAULT_OUTPUT / ("custom" if args.env else args.preset)
            if not args.report_only:  # which reads beside a running experiment
                # One writer appends to runs.jsonl and rewrites the reports.
                held.enter_context(hold_folder(out, "wait for it to finish (--report-only "
                                                    "reports beside it), or pass another -o"))
            check_output(out, plan)
            plan = pin_agents(plan, out)
            from agents.evaluation.controls import check_control_envs

            try:
                check_control_envs(args.control_envs)
            except ValueError as err:
                raise UsageError(str(err)) from err
        except (UsageError, FolderBusyError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.controls and plan.agents:
            from agents.evaluation.controls import controls_for
            from agents.evaluation.runner import make_pool

            # Fixed on dev once (cached): the dev episodes run one thread each, as everywhere.
            with make_pool(args.workers, args.gym_packages) as pool:
                plan = replace(plan, controls={a: controls_for(
                    a, args.controls_cache, pool, {"device": "cpu", "torch_threads": 1},
                    envs=args.control_envs, seeds=args.control_seeds).to_dict()
                    for a in plan.agents})
        runs = run_plan(plan, out, args.workers, run=not args.report_only,
                        packages=args.gym_packages)
        written = write_outputs(plan, runs, out)
    print((out / "report.md").read_text())
    print(f"Wrote {', '.join(written)} to {out}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
