"""What a learned controller did, read from a results folder's committed decisions.

Reads ``<folder>/decisions.jsonl.gz`` (every episode's decisions:
:func:`agents.evaluation.results.write_decisions`) and summarises the learned controller's episodes
(``--method``): its LR as a factor of the rule's lr0 against training progress (median
and quartiles over episodes at each progress bin), how often a decision raised or
lowered the LR, and, for episodes with an event, its mean action in the decisions just
after the event against the same decisions of the same env and seed without it (the
same run until the event). No episode runs: anyone can check a claim about the
trajectories from git.

Writes ``<folder>/trajectories.md`` and ``trajectories.json``.

Usage:
    python benchmarks/trajectories.py benchmarks/results/lr_sensitivity/test
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BINS = (0.0, 0.25, 0.5, 0.75, 0.95)
"""Progress points at which the LR factor is read (the decision in force there)."""
AFTER = 3
"""Decisions after an event whose actions are compared."""


def factor_at(episode: Mapping[str, Any], progress: float) -> float | None:
    """The LR factor (LR / the rule's lr0) in force at ``progress`` (None: not reached)."""
    d = episode["decisions"]
    p = np.asarray(d["step"], float) / episode["total_steps"]
    if not len(p) or progress < p[0] or (episode["diverged"] and progress > p[-1]):
        return None
    k = int(np.searchsorted(p, progress, side="right")) - 1
    return d["lr"][k] / episode["rule_lr0"]


def summarize(episodes: Sequence[Mapping[str, Any]],
              reference: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Factor quantiles per progress bin, raise/lower counts and the reaction to events.

    Args:
        episodes: The learned controller's episodes of one condition.
        reference: Its episodes without events (on the same envs and seeds): an
            episode with an event is paired with the same env and seed's, which is the
            same run until the event, and their actions in the :data:`AFTER` decisions
            after it are compared.
    """
    actions = np.concatenate([e["decisions"]["action"] for e in episodes]) if episodes else []
    out: dict[str, Any] = {
        "episodes": len(episodes),
        "decisions": int(len(actions)),
        "raised": float(np.mean(np.asarray(actions) > 0)) if len(actions) else None,
        "lowered": float(np.mean(np.asarray(actions) < 0)) if len(actions) else None,
        "factor": {},
    }
    for b in BINS:
        f = [x for e in episodes if (x := factor_at(e, b)) is not None]
        out["factor"][f"{b:g}"] = ([float(q) for q in np.quantile(f, (0.25, 0.5, 0.75))]
                                   if f else None)
    twin = {(e["env_id"], e["seed"], e.get("agent")): e for e in reference}
    after, same = [], []
    for e in episodes:
        o = twin.get((e["env_id"], e["seed"], e.get("agent")))
        if o is None or not (e.get("event") or {}).get("applied"):
            continue
        steps = e["decisions"]["step"]
        first = int(np.searchsorted(steps, e["event"]["step"], side="right"))
        ks = range(first, min(first + AFTER, len(steps), len(o["decisions"]["action"])))
        after += [e["decisions"]["action"][k] for k in ks]
        same += [o["decisions"]["action"][k] for k in ks]
    if after:
        diff = np.asarray(after) - np.asarray(same)
        out["event_reaction"] = {"after_event": float(np.mean(after)),
                                 "same_decisions_no_event": float(np.mean(same)),
                                 "mean_abs_difference": float(np.mean(np.abs(diff))),
                                 "decisions_after": AFTER, "pairs": len(after)}
    return out


def table(summary: Mapping[str, Any], label: str) -> str:
    """The markdown summary."""
    from agents.evaluation.stats import markdown_table

    f = summary["factor"]
    rows = [[b, "—" if q is None else f"{q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}]"]
            for b, q in f.items()]
    lines = [f"{label}: {summary['episodes']} episodes, {summary['decisions']} decisions; "
             f"{summary['raised']:.1%} of the decisions raised the LR, "
             f"{summary['lowered']:.1%} lowered it.", "",
             markdown_table(["progress", "LR / lr0: median [quartiles]"], rows), ""]
    if ev := summary.get("event_reaction"):
        lines += [f"In the {ev['decisions_after']} decisions after an event the mean action "
                  f"is {ev['after_event']:+.3f}; in the same decisions of the same env and "
                  f"seed without the event, {ev['same_decisions_no_event']:+.3f} (mean "
                  f"absolute difference {ev['mean_abs_difference']:.3f}, "
                  f"{ev['pairs']} paired decisions).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="A results folder with decisions.jsonl.gz.")
    p.add_argument("--method", nargs="+", default=["ppo", "learned"],
                   help="The learned controller's name(s) in the file.")
    args = p.parse_args(argv)
    from agents.evaluation.results import DECISIONS, read_decisions, write_results

    path = args.folder / DECISIONS
    if not path.is_file():
        print(f"error: {path} does not exist; run the benchmark that writes the folder.",
              file=sys.stderr)
        return 2
    mine = [e for e in read_decisions(path)
            if e.get("method", e.get("controller")) in args.method
            and e.get("role", "eval") == "eval"]
    if not mine:
        print(f"error: no episode of {args.method} in {path}; pass --method.", file=sys.stderr)
        return 2
    # An lr0-invariant controller's episodes are the same at every scale: read them once.
    seen, episodes = set(), []
    for e in mine:
        key = (e["env_id"], e["seed"], e.get("condition"), e.get("agent"),
               tuple(e["decisions"]["lr"]))
        if key not in seen:
            seen.add(key)
            episodes.append(e)
    plain = [e for e in episodes if e.get("condition") in (None, "lr0")]
    summary = {c or "all": summarize([e for e in episodes if e.get("condition") == c], plain)
               for c in sorted({e.get("condition") for e in episodes}, key=str)}
    text = "\n".join(table(s, f"`{'/'.join(args.method)}` ({c})") for c, s in summary.items())
    write_results(args.folder / "trajectories.json", summary, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
