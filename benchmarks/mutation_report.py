"""Summarises a finished ``mutmut run``: the score per module and every survivor, with why.

Usage (after ``OMP_NUM_THREADS=1 mutmut run``, see docs/mutation.md):
    python benchmarks/mutation_report.py [-o benchmarks/results/mutation]

Reads ``mutmut results`` and ``mutmut show`` for each survivor and writes
``survivors.md`` (each survivor's diff and the reason it survives) and
``results.json`` (killed / total per module). A survivor's reason comes from the rules
in :data:`REASONS`, the first whose pattern matches its diff; one that matches none is
a test gap ("untested").
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from agents.evaluation.results import meta, write_results

REASONS: list[tuple[str, str]] = [
    (r"XX|[A-Z_]{4,}[\"')]|\((None|)\)$|none_hint|: the task'|own setting|\(or none|\(OR NONE",
     "wording: an error message or field name changes; the check still fires and the tests "
     "match the message's start, not every word"),
    (r"dtype=None|dtype=float\)\.ravel\(\)\[:3\]|np\.asarray\(\w+, \)|asarray\(list\(per_task"
     r"\.values\(\)\), \)|type\(None\)",
     "equivalent: the inputs are already floats, so numpy infers the same dtype"),
    (r"strict=(None|False)|, \)\]\)\)$|group_lr0, \):",
     "equivalent for valid inputs: the lengths are equal by construction or checked before"),
    (r"posinf=None|neginf=None|neginf=\+OBS_BOUND|nan=0\.0, neginf|OBS_BOUND, \)$|"
     r"float64\), posinf",
     "equivalent: _finite clips to +-OBS_BOUND right after, and numpy's nan_to_num "
     "default for NaN is 0.0 too"),
    (r"tracker\.reset\(",
     "equivalent: a tracker's constants (features, half-lives, EMA rates) do not depend on "
     "the loss and metric it is reset with"),
    (r'c\.get\("mode", (None|)\)',
     "equivalent: EnvConfig's default mode is not 'anchored', and neither is None"),
    (r"\(n_features,\), None\)",
     "equivalent: None is as falsy as False (normalisation statistics may be float64)"),
    (r"simplefilter|RandomState\(None\)|random_state=None|^\+\s*\)$",
     "equivalent: rliable's intervals draw from numpy's global RNG, which _interval seeds; "
     "the arch RandomState and the warning filter do not change the numbers"),
]
UNTESTED = "untested: a real gap (an edge no test reaches yet)"


def _mutmut(*args: str) -> str:
    return subprocess.run(["mutmut", *args], capture_output=True, text=True, check=True).stdout


def survivors() -> list[tuple[str, str]]:
    """``(mutant name, its diff lines)`` of every surviving mutant."""
    out = []
    for line in _mutmut("results").splitlines():
        name, _, status = line.strip().partition(": ")
        if status == "survived":
            diff = [d for d in _mutmut("show", name).splitlines()
                    if d.startswith(("+ ", "- ")) or d in ("+", "-")]
            out.append((name, "\n".join(diff)))
    return out


def reason(diff: str) -> str:
    """The first rule whose pattern matches the added lines of ``diff``."""
    added = [d for d in diff.splitlines() if d.startswith("+")]
    for pattern, why in REASONS:
        if any(re.search(pattern, d) for d in added):
            return why
    return UNTESTED


def module_of(name: str) -> str:
    """``lr_gym.config.xǁEnvConfigǁ__post_init____mutmut_3`` -> ``lr_gym/config.py``."""
    return "/".join(name.split(".x")[0].split(".")) + ".py"


def totals() -> Counter:
    """Mutants per module (from mutmut's own metadata)."""
    import json

    counts: Counter = Counter()
    for meta_file in Path("mutants").rglob("*.py.meta"):
        data = json.loads(meta_file.read_text())
        path = str(meta_file.relative_to("mutants"))[: -len(".meta")]
        counts[path] += len(data.get("exit_code_by_key", {}))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path,
                        default=Path("benchmarks/results/mutation"))
    args = parser.parse_args(argv)
    if not Path("mutants").is_dir():
        parser.error("no mutants/ here: run `OMP_NUM_THREADS=1 mutmut run` first")
    found, total = survivors(), totals()
    survived = Counter(module_of(n) for n, _ in found)
    per_module = {m: {"mutants": t, "survived": survived[m],
                      "score": round((t - survived[m]) / t, 4)} for m, t in sorted(total.items())}
    n, s = sum(total.values()), len(found)
    why = Counter(reason(d) for _, d in found)
    lines = [f"# Surviving mutants: {s} of {n} (score {(n - s) / n:.1%})", "",
             "| module | mutants | survived | score |", "|---|---|---|---|",
             *[f"| {m} | {v['mutants']} | {v['survived']} | {v['score']:.1%} |"
               for m, v in per_module.items()], "",
             "| reason | survivors |", "|---|---|", *[f"| {r} | {c} |" for r, c in
                                                    why.most_common()], ""]
    for name, diff in found:
        lines += [f"## {name}", "", f"Reason: {reason(diff)}", "", "```diff", diff, "```", ""]
    table = "\n".join(lines[2:5 + len(per_module)])
    write_results(args.output / "results.json", {"meta": meta(), "mutants": n, "survived": s,
                                "score": round((n - s) / n, 4), "modules": per_module,
                                "reasons": dict(why)}, table,
                  also={"survivors.md": "\n".join(lines)})
    print(f"{n - s} of {n} mutants killed ({(n - s) / n:.1%}); {s} survivors in "
          f"{args.output / 'survivors.md'}")
    for r, c in why.most_common():
        print(f"  {c:3d}  {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
