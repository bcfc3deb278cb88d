"""Evaluate a trained LR controller against baselines: ``python evaluate_agent.py --help``."""

from agents.evaluation.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
