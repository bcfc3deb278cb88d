"""The headline evaluation README quotes: the controller against every baseline, on test.

With ``--agent`` (run folders, controller files or ``pretrained``, the shipped
controller) evaluates those; otherwise trains one controller per ``--seeds`` entry
with the packaged hyperparameters on the default training mix (periodic evaluation
off; a finished run of the same seed and budget is reused). Then runs the default
evaluation protocol (``evaluate_agent.py``: the test families, both tracks, every
baseline) with the agents pooled, and copies
``report.md``, ``table.md``, ``results.json``, ``decisions.jsonl.gz`` and the figures
to ``-o/--output``.

``--check`` runs README's first command as written (``evaluate_agent.py --agent
pretrained``; a finished run of it resumes with nothing to do) and compares its
``table.md`` with the committed one, byte for byte: episodes are bit-reproducible on CPU
for a given torch version and CPU instruction set (:mod:`lr_gym.reproducibility`), so
any difference is a bug or another torch. On another instruction set (AVX2 against
AVX-512) it says so and compares the verdicts instead: it fails only where the learned
controller's word against a baseline (beats, ties, loses) flips.

Usage:
    python benchmarks/headline.py [--agent pretrained | --seeds 0 1 2 -n 20000]
        [-f logs/headline] [-o benchmarks/results/headline]
    python benchmarks/headline.py --check
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.training.seeds import train_seeds

ROOT = Path(__file__).resolve().parents[1]


def agents_digest(agents: Sequence[str | Path]) -> str:
    """12 hex digits naming a set of agents by their weights, not their paths.

    A re-shipped ``pretrained`` or a retrained run gets an evaluation folder of its own
    (``evaluate_agent.py`` refuses to mix two evaluations in one ``-o``).
    """
    from agents.controller import load_controller_file

    shas = [load_controller_file(a).sha256 for a in agents]
    return hashlib.sha256("".join(shas).encode()).hexdigest()[:12]


README_COMMAND = ("evaluate_agent.py", "--agent", "pretrained")
"""README's first command (after the install), which reproduces the committed headline."""


def output_folder(stdout: str) -> Path:
    """The output folder ``evaluate_agent.py`` names in its last line."""
    found = re.findall(r"^Wrote .* to (.+) in \d+ s\.$", stdout, re.M)
    if not found:
        raise ValueError("evaluate_agent.py printed no 'Wrote ... to FOLDER' line.")
    return Path(found[-1])


def compare_tables(fresh: Path, committed: Path) -> list[str]:
    """The lines of ``committed`` that ``fresh`` does not reproduce, as a unified diff."""
    return list(difflib.unified_diff(committed.read_text().splitlines(),
                                     fresh.read_text().splitlines(),
                                     str(committed), str(fresh), lineterm=""))


def verdict_flips(fresh: dict, committed: dict) -> list[str]:
    """Where the learned controller's word against a baseline differs between two results.

    By the protocol's rule (:func:`agents.evaluation.scoring.word`), per track, for every
    baseline both results rate.
    """
    from agents.evaluation.scoring import verdicts

    flips = []
    for track, summary in committed["tracks"].items():
        mine = verdicts(fresh["tracks"].get(track, {"aggregate": []}))
        for controller, said in verdicts(summary).items():
            if controller in mine and mine[controller] != said:
                flips.append(f"{track} track: {controller}: committed '{said}', this machine "
                             f"'{mine[controller]}'")
    return flips


def check(results: Path) -> int:
    """Runs README's first command and compares its table with the committed one.

    On a CPU of the committed table's instruction set the tables must match byte for
    byte. On another one the episodes differ in their last bits, which training
    amplifies, so it compares the verdicts instead (beats, ties or loses, by the
    protocol's rule) and fails only where one flips.
    """
    import json

    import torch

    committed = json.loads((results / "results.json").read_text())
    made_on = committed["meta"].get("reproducibility", {}).get("cpu_capability")
    here = torch.backends.cpu.get_cpu_capability()
    cmd = [sys.executable, str(ROOT / README_COMMAND[0]), *README_COMMAND[1:], "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    fresh = ROOT / output_folder(done.stdout)
    if made_on is not None and made_on != here:
        print(f"CPU capability differs: {results / 'table.md'} was made on {made_on}, this "
              f"machine is {here}. Its episodes differ in their last bits, so the numbers do "
              "too; comparing the verdicts instead.")
        flips = verdict_flips(json.loads((fresh / "results.json").read_text()), committed)
        if flips:
            print("\n".join(flips))
            print(f"error: {len(flips)} verdict(s) flip between {made_on} and {here}: within "
                  "the noise of the instruction set, no claim.", file=sys.stderr)
            return 1
        print(f"Every verdict of {results / 'table.md'} holds on {here}.")
        return 0
    diff = compare_tables(fresh / "table.md", results / "table.md")
    if diff:
        print("\n".join(diff))
        print(f"error: {fresh / 'table.md'} differs from {results / 'table.md'} on the same "
              f"CPU capability ({here}).", file=sys.stderr)
        return 1
    print(f"{fresh / 'table.md'} reproduces {results / 'table.md'} exactly.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.evaluation.results import add_benchmark_arguments, parse_benchmark_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", nargs="+", default=None,
                   help="Agents to evaluate instead of training (e.g. 'pretrained').")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="PPO seeds.")
    p.add_argument("-n", "--n-timesteps", type=int, default=20000)
    p.add_argument("-f", "--log-folder", default="logs/headline")
    add_benchmark_arguments(p, "benchmarks/results/headline", aliases=("--results",),
                            output_help="Where the report, results and figures are copied.")
    p.add_argument("--check", action="store_true",
                   help="Run README's first command and compare its table with --output.")
    args = parse_benchmark_args(p, argv)
    if args.check:
        return check(ROOT / args.output)
    from agents.evaluation.results import DECISIONS, copy_result

    folder, results = Path(args.log_folder), args.output
    runs = args.agent or train_seeds(folder, args.seeds, args.n_timesteps)
    out = folder / "eval" / agents_digest(runs)
    cmd = [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", *map(str, runs),
           "-f", str(folder), "-o", str(out), "--no-progress",
           *(["--gym-packages", *args.gym_packages] if args.gym_packages else [])]
    done = subprocess.run(cmd, cwd=ROOT)
    if done.returncode != 0:
        return done.returncode
    # evaluate_agent.py wrote these (meta included); copied whole or not at all.
    for f in ("report.md", "table.md", "results.json", DECISIONS,
              *(p.name for p in out.glob("*.png"))):
        copy_result(out / f, results / f)
    print(f"Copied the report, results and figures to {results}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
