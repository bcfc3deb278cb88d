"""Evaluate a trained LR controller against baselines: ``python evaluate_agent.py --help``."""

from agents.common.extras import require

require("eval", "evaluate_agent.py")  # one clear line, not a traceback, without the extra

from agents.evaluation.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
