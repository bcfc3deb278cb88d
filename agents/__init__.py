"""Controllers: the learned PPO agent and hand-made baselines."""
