"""Training a PPO learning-rate controller (``train_agent.py`` / ``lr-gym-train``).

One idea per module: :mod:`~agents.training.cli` (the command line), :mod:`~.envs`
(the training envs and where they run), :mod:`~.run_folder` (a run's files, finding
and resuming runs), :mod:`~.callbacks` (SB3 callbacks) and :mod:`~.seeds` (one run per
seed, what benchmarks call).
"""
