"""SB3 callbacks of lr_gym's PPO training, each importable and testable on its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from agents.common.runs import BEST_MODEL, CONTROLLER, VECNORMALIZE, checkpoint_names
from agents.training.ppo import actor_parameters
from agents.training.run_folder import save_agent


class SaveAgent(BaseCallback):
    """Saves a complete agent (model, normalisation, controller file) into a folder.

    Called by SB3 every env step; saves every ``every`` calls (0: at every call, which
    is what :class:`~stable_baselines3.common.callbacks.EvalCallback`'s
    ``callback_on_new_best`` does). Checkpoints get step-numbered names.

    Args:
        folder: Where the files go.
        env_kwargs: The EnvConfig overrides the agent trains under (for its controller).
        source: Provenance recorded in the controller file.
        every: Calls between saves (0: every call).
        names: Fixed ``(model, vecnormalize, controller)`` names; None: a checkpoint's.
    """

    def __init__(self, folder: Path, env_kwargs: Mapping[str, Any], source: Mapping[str, Any],
                 every: int = 0, names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.folder, self.env_kwargs, self.source = Path(folder), env_kwargs, source
        self.every, self.names = every, names

    def _on_step(self) -> bool:
        if self.every <= 0 or self.n_calls % self.every == 0:
            names = self.names or checkpoint_names(self.num_timesteps)
            save_agent(self.model, self.model.get_vec_normalize_env(), self.folder, names,
                       self.env_kwargs, self.source)
        return True


class CriticWarmup(BaseCallback):
    """Trains only the value function during the first ``rollouts`` PPO updates.

    The policy keeps its start (a zero-initialised action head: the base rule exactly)
    while the critic learns what that start is worth, so the first policy gradients use
    advantages from a critic that already fits (residual policy learning's warm-up).

    Args:
        rollouts: How many rollouts' updates leave the policy alone.
        verbose: SB3 verbosity.
    """

    def __init__(self, rollouts: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.rollouts = rollouts

    def _set_actor(self, trainable: bool) -> None:
        for p in actor_parameters(self.model):
            p.requires_grad_(trainable)

    def _on_rollout_end(self) -> None:
        # Called before the update of this rollout; counted from the timesteps, so a
        # resumed run (train_agent.py -i) keeps its place.
        done = self.model.num_timesteps // (self.model.n_steps * self.model.n_envs)
        self._set_actor(done > self.rollouts)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._set_actor(True)


def training_callbacks(run_dir: Path, hp: Any, source: Mapping[str, Any], eval_env: Any,
                       verbose: int) -> list[BaseCallback]:
    """The callbacks a run's hyperparameters ask for.

    Checkpoints, periodic evaluation that keeps the best agent, and the critic warm-up.
    """
    callbacks: list[BaseCallback] = []
    every = max(hp.n_envs, 1)  # SB3 calls a callback once per vectorised step
    if hp.checkpoint_freq > 0:
        callbacks.append(SaveAgent(run_dir / "checkpoints", hp.env_kwargs, source,
                                   every=max(hp.checkpoint_freq // every, 1)))
    if eval_env is not None:
        callbacks.append(EvalCallback(
            eval_env,
            n_eval_episodes=hp.n_eval_episodes,
            eval_freq=max(hp.eval_freq // every, 1),
            log_path=str(run_dir),
            callback_on_new_best=SaveAgent(run_dir / "best", hp.env_kwargs, source,
                                           names=(BEST_MODEL, VECNORMALIZE, CONTROLLER)),
            deterministic=True,
            verbose=verbose,
        ))
    if hp.critic_warmup:
        callbacks.append(CriticWarmup(hp.critic_warmup))
    return callbacks
