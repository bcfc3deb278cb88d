"""Train a PPO learning-rate controller: ``python train_agent.py --help``."""

from agents.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
