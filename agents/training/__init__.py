"""Training a PPO learning-rate controller (``train_agent.py`` / ``lr-gym-train``).

One idea per module: :mod:`~agents.training.ppo` (building, loading and acting with
PPO; its hyperparameters from ``agents/hyperparams/ppo.yml``), :mod:`~.cli` (the command
line), :mod:`~.envs` (the training envs and where they run), :mod:`~.ray_vec_env` (an SB3
``VecEnv`` of Ray actors), :mod:`~.run_folder` (saving an agent's files, resuming from
them), :mod:`~.callbacks` (SB3 callbacks) and :mod:`~.seeds` (one run per seed, what
benchmarks call). Exporting a run to a controller file is :mod:`agents.controller.export`.
"""
