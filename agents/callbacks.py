"""SB3 callbacks of lr_gym's PPO training that stand alone (importable and tested alone)."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from agents.ppo import actor_parameters


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
