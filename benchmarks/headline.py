"""The headline evaluation README quotes: the controller against every baseline, on test.

With ``--agent`` (run folders, controller files or ``pretrained``, the shipped
controller) evaluates those; otherwise trains one controller per ``--seeds`` entry
with the packaged hyperparameters on the default training mix (periodic evaluation
off; a finished run of the same seed and budget is reused). Then runs the default
evaluation protocol (``evaluate_agent.py``: the test families, both tracks, every
baseline) with the agents pooled, and copies
``report.md``, ``table.md``, ``results.json`` and the figures to ``--results``.

Usage:
    python benchmarks/headline.py [--agent pretrained | --seeds 0 1 2 -n 20000]
        [-f logs/headline] [--results benchmarks/results/headline]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.train import train_seeds

ROOT = Path(__file__).resolve().parents[1]


def agents_digest(agents: Sequence[str | Path]) -> str:
    """12 hex digits naming a set of agents by their weights, not their paths.

    A re-shipped ``pretrained`` or a retrained run gets an evaluation folder of its own
    (``evaluate_agent.py`` refuses to mix two evaluations in one ``-o``).
    """
    from agents.controller import load_controller_file

    shas = [load_controller_file(a).sha256 for a in agents]
    return hashlib.sha256("".join(shas).encode()).hexdigest()[:12]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", nargs="+", default=None,
                   help="Agents to evaluate instead of training (e.g. 'pretrained').")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="PPO seeds.")
    p.add_argument("-n", "--n-timesteps", type=int, default=20000)
    p.add_argument("-f", "--log-folder", default="logs/headline")
    p.add_argument("--results", default="benchmarks/results/headline")
    args = p.parse_args(argv)
    folder, results = Path(args.log_folder), Path(args.results)
    runs = args.agent or train_seeds(folder, args.seeds, args.n_timesteps)
    out = folder / "eval" / agents_digest(runs)
    cmd = [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", *map(str, runs),
           "-f", str(folder), "-o", str(out), "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT)
    if done.returncode != 0:
        return done.returncode
    results.mkdir(parents=True, exist_ok=True)
    for f in ("report.md", "table.md", "results.json", *(p.name for p in out.glob("*.png"))):
        shutil.copy(out / f, results / f)
    print(f"Copied the report, results and figures to {results}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
