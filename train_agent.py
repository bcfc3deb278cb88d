"""Train a PPO learning-rate controller: ``python train_agent.py --help``."""

from agents.common.extras import require

require("train", "train_agent.py")  # one clear line, not a traceback, without the extra

from agents.training.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
