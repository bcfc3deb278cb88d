"""``RayVecEnv``: an SB3 ``VecEnv`` whose envs each live in a Ray actor.

A drop-in for ``SubprocVecEnv`` that scales past one machine: every env runs in its
own Ray actor, which reserves the CPUs and (fractional) GPUs of
:class:`~agents.common.ray_cluster.RayResources`, wherever the cluster has them. Stepping is
asynchronous across actors (``step_async`` sends every action, ``step_wait`` gathers
the object refs), and reset, seeding, auto-reset with ``terminal_observation``,
``env_method``, ``get_attr``/``set_attr``, ``env_is_wrapped`` and ``close`` behave as
in ``SubprocVecEnv``, so the same seeds give the same observations and rewards.
``VecNormalize`` and the other SB3 wrappers go on top as usual.

Failure model: every wait on Ray has a timeout. An actor that dies (its process
killed, its node lost, its env failing to build) or does not answer in time raises
:class:`EnvActorError`, naming the env; the vectorized env cannot go on after that
(its episodes are cut), so the caller saves what it has and stops, and
``train_agent.py -i`` resumes the run. An exception raised by the env's own code
comes through unchanged, as with ``DummyVecEnv``.

The env thunks run on the cluster's machines: the code they need (lr_gym and
``--gym-packages``) must be installed there, and the paths they write (SB3's monitor
files) are the actor's machine's.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from agents.common.ray_cluster import DEFAULT_TIMEOUT_S, RayResources, init_ray, require_ray

CLOSE_TIMEOUT_S = 10.0
"""How long ``close`` lets the actors close their envs before it kills them."""


class EnvActorError(RuntimeError):
    """An env's Ray actor died or did not answer in time; the vectorized env cannot go on."""


class _EnvWorker:
    """One env inside a Ray actor; the methods are ``SubprocVecEnv``'s worker commands."""

    def __init__(self, env_fn: Callable[[], gym.Env], threads: int) -> None:
        from stable_baselines3.common.vec_env.patch_gym import _patch_env

        self.env = _patch_env(env_fn())
        # After the thunk, which may set its own: the actor's CPUs, not the machine's.
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads)
        # Like SubprocVecEnv's worker: the latest reset's info, sent with every step.
        self.reset_info: dict[str, Any] = {}

    def spaces(self) -> tuple[spaces.Space, spaces.Space]:
        return self.env.observation_space, self.env.action_space

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def step(self, action: Any) -> tuple[Any, float, bool, dict, dict]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        if done:
            info["terminal_observation"] = observation
            observation, self.reset_info = self.env.reset()
        return observation, reward, done, info, self.reset_info

    def reset(self, seed: int | None, options: dict | None) -> tuple[Any, dict]:
        observation, self.reset_info = self.env.reset(seed=seed,
                                                      **({"options": options} if options else {}))
        return observation, self.reset_info

    def render(self) -> Any:
        return self.env.render()

    def env_method(self, name: str, args: tuple, kwargs: dict) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper]) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def close(self) -> None:
        self.env.close()


def _stack_obs(obs: Sequence[Any], space: spaces.Space) -> VecEnvObs:
    """One env's observations per row, as ``SubprocVecEnv`` stacks them."""
    if isinstance(space, spaces.Dict):
        return {key: np.stack([o[key] for o in obs]) for key in space.spaces}
    if isinstance(space, spaces.Tuple):
        return tuple(np.stack([o[i] for o in obs]) for i in range(len(space.spaces)))
    return np.stack(obs)


class RayVecEnv(VecEnv):
    """Envs in Ray actors, one each, stepped asynchronously (see the module docstring).

    Connects to Ray as a plain ``ray.init()`` would if nothing is connected yet (a
    local Ray, or ``$RAY_ADDRESS``'s cluster); to pick the cluster, connect first
    (``ray.init(address=...)``, or :func:`agents.common.ray_cluster.ray_session`).

    Args:
        env_fns: Thunks building the envs; they are pickled to the actors (SB3's
            ``make_vec_env(..., vec_env_cls=RayVecEnv)`` builds them). With GPUs, build
            the env on ``device="cuda"``: Ray makes only the actor's share visible.
        resources: What each actor reserves (default one CPU, no GPU).
        timeout_s: The longest wait for any actor's answer (a step, a reset, building
            the env); a dead actor is reported at once regardless.

    Raises:
        agents.common.ray_cluster.RaySetupError: Ray is not installed, or the cluster cannot
            hold all the actors at once.
        EnvActorError: An env could not be built in its actor.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]],
                 resources: RayResources | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not env_fns:
            raise ValueError("RayVecEnv needs at least one env thunk.")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}.")
        self._ray = ray = require_ray("RayVecEnv")
        if not ray.is_initialized():
            init_ray(ray)
        self.resources = resources or RayResources()
        self.timeout_s = float(timeout_s)
        self.resources.check_fits(ray, len(env_fns), f"RayVecEnv with {len(env_fns)} env(s)")
        actor = ray.remote(_EnvWorker).options(max_restarts=0, **self.resources.options())
        self.actors = [actor.remote(fn, self.resources.threads) for fn in env_fns]
        self.num_envs = len(env_fns)
        self.waiting, self.closed = False, False
        self._pending: list[Any] = []
        try:
            observation_space, action_space = self._call(
                "spaces", indices=[0], what="building the envs")[0]
            # Asks every env for its render mode: all are built before the first step.
            super().__init__(len(env_fns), observation_space, action_space)
        except BaseException:
            self._kill()
            raise

    # ------------------------------------------------------------------ waiting
    def _get(self, refs: list[Any], indices: Sequence[int], what: str) -> list[Any]:
        """``ray.get`` with the timeout, failures turned into :class:`EnvActorError`."""
        ray = self._ray
        from ray.exceptions import GetTimeoutError, RayError, RayTaskError

        try:
            return ray.get(refs, timeout=self.timeout_s)
        except GetTimeoutError:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            late = [i for i, r in zip(indices, refs, strict=True) if r not in ready]
            raise EnvActorError(
                f"RayVecEnv: env(s) {late} did not answer within {self.timeout_s:g} s while "
                f"{what} (a hung env, or an actor still waiting for resources: `ray status` "
                "shows them). Close this vectorized env; raise timeout_s (--ray-timeout) "
                "if the env is just slow.") from None
        except RayTaskError:
            raise  # the env's own exception (an instance of its type too)
        except RayError as err:
            raise EnvActorError(
                f"RayVecEnv: the Ray actor of env {self._failed(refs, indices)} died while "
                f"{what} ({type(err).__name__}: {err}). The vectorized env cannot go on: "
                "close it and build a new one (train_agent.py saves the agent when this "
                "happens; resume with -i).") from err

    def _failed(self, refs: list[Any], indices: Sequence[int]) -> int | str:
        """The index of the env whose actor failed, if Ray has reported it yet."""
        ray = self._ray
        from ray.exceptions import RayError, RayTaskError

        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for i, ref in zip(indices, refs, strict=True):
            if ref in ready:
                try:
                    ray.get(ref, timeout=0)
                except RayTaskError:
                    continue
                except RayError:
                    return i
        return "?"

    def _call(self, method: str, *args: Any, indices: VecEnvIndices = None,
              what: str | None = None) -> list[Any]:
        """Calls ``method(*args)`` on the indexed actors; their answers in order."""
        idx = list(self._get_indices(indices))
        refs = [getattr(self.actors[i], method).remote(*args) for i in idx]
        return self._get(refs, idx, what or f"calling {method}")

    def node_ids(self) -> list[str]:
        """The Ray node id of each env's actor (where its env runs)."""
        return self._call("node", what="asking the actors' nodes")

    # ------------------------------------------------------------------ VecEnv API
    def step_async(self, actions: np.ndarray) -> None:
        """Sends every env its action; the actors step in parallel."""
        self._pending = [a.step.remote(act)
                         for a, act in zip(self.actors, actions, strict=True)]
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        """Gathers the steps (auto-reset envs carry ``terminal_observation``)."""
        refs, self._pending = self._pending, []
        try:
            results = self._get(refs, range(self.num_envs), "stepping")
        finally:
            self.waiting = False
        obs, rews, dones, infos, self.reset_infos = zip(*results, strict=True)
        return (_stack_obs(obs, self.observation_space), np.stack(rews), np.stack(dones),
                list(infos))

    def reset(self) -> VecEnvObs:
        """Resets every env with its pending seed and options (each used once)."""
        refs = [a.reset.remote(self._seeds[i], self._options[i])
                for i, a in enumerate(self.actors)]
        results = self._get(refs, range(self.num_envs), "resetting")
        obs, self.reset_infos = zip(*results, strict=True)
        self._reset_seeds()
        self._reset_options()
        return _stack_obs(obs, self.observation_space)

    def close(self) -> None:
        """Closes the envs, then ends the actors, freeing their resources.

        Never raises for an actor that is already gone.
        """
        if self.closed:
            return
        self.closed = True
        ray = self._ray
        with contextlib.suppress(Exception):
            refs = [a.close.remote() for a in self.actors]
            # An actor still busy with a step closes after it; a dead one never does.
            ray.wait(refs, num_returns=len(refs), timeout=CLOSE_TIMEOUT_S)
        self._kill()

    def _kill(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Every env's ``render()``, for ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            warnings.warn(f"The render mode is {self.render_mode}, but this method assumes it "
                          "is `rgb_array` to obtain images.", stacklevel=2)
            return [None for _ in self.actors]
        return self._call("render")

    def has_attr(self, attr_name: str) -> bool:
        """Whether every env has the attribute."""
        return all(self._call("has_attr", attr_name))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the indexed envs (through their wrappers)."""
        return self._call("get_attr", attr_name, indices=indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets the attribute on the indexed envs (their outermost wrapper)."""
        self._call("set_attr", attr_name, value, indices=indices)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Calls a method of the indexed envs; their results in order."""
        return self._call("env_method", method_name, method_args, method_kwargs,
                          indices=indices)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        """Whether each indexed env is wrapped with ``wrapper_class``."""
        return self._call("is_wrapped", wrapper_class, indices=indices)
