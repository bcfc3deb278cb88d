"""Copies committed result files into README and the docs, so every quoted number has a source.

README (and each of :data:`DOCUMENTS`) marks each quoted result with the file it comes
from::

    <!-- results: benchmarks/results/headline/table.md -->
    ...the file's content, verbatim...
    <!-- /results -->

``python benchmarks/readme_results.py`` rewrites those blocks from the files;
``--check`` only reports blocks that differ (the test suite runs the check). Either
fails when a folder README quotes lacks its committed decisions
(:data:`agents.evaluation.results.DECISIONS`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
def documents(root: Path = ROOT) -> list[Path]:
    """README.md, the docs and the benchmarks' README: every file that quotes results."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")),
            root / "benchmarks" / "README.md"]


BLOCK = re.compile(r"(<!-- results: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def render(readme: str, root: Path = ROOT) -> str:
    """README with every results block replaced by its file's current content.

    Raises:
        FileNotFoundError: A block names a file that does not exist.
    """
    def fill(m: re.Match[str]) -> str:
        source = root / m.group("path")
        if not source.is_file():
            raise FileNotFoundError(f"README quotes {m.group('path')}, which does not exist; "
                                    "run the benchmark that writes it, or drop the block.")
        return f"{m.group(1)}{source.read_text().strip()}\n{m.group(4)}"

    return BLOCK.sub(fill, readme)


def sources(readme: str) -> list[str]:
    """The result files README quotes."""
    return [m.group("path") for m in BLOCK.finditer(readme)]


def missing_decisions(readme: str, root: Path = ROOT) -> list[str]:
    """The folders README quotes that lack their committed decisions (``decisions.jsonl.gz``).

    Every results folder README quotes holds its episodes' per-decision trajectories, so
    anyone can check what a controller did, not only how it scored.
    """
    from agents.evaluation.results import DECISIONS

    folders = dict.fromkeys(str(Path(p).parent) for p in sources(readme))
    return [f for f in folders if not (root / f / DECISIONS).is_file()]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (1 with ``--check`` when README is stale)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="Report stale blocks, change nothing.")
    args = p.parse_args(argv)
    from lr_gym.files import write_text_atomic

    missing = missing_decisions((ROOT / "README.md").read_text())
    if missing:
        print(f"README quotes {', '.join(missing)}, which lack(s) decisions.jsonl.gz; rerun "
              "the benchmark that writes the folder (its command is in README).",
              file=sys.stderr)
        return 1
    stale = []
    for path in documents():
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path)
            if not args.check:
                write_text_atomic(path, new)
    if args.check and stale:
        print(f"{', '.join(str(p.relative_to(ROOT)) for p in stale)} quote results that "
              "differ from their files; run `python benchmarks/readme_results.py`.",
              file=sys.stderr)
        return 1
    if not args.check:
        print(f"Updated {len(stale)} file(s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
