"""Task registry and Gymnasium registration of ``lr_gym/`` ids.

Tasks are registered by name with a factory or an import string
(``"package.module:function"``), so registering builds no model and loads no data.
Each task ``name`` gets the env id ``lr_gym/<Name>-v<version>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from lr_gym.tasks.base import Task

NAMESPACE = "lr_gym"
ENV_ENTRY_POINT = "lr_gym.envs.lr_control:LRControlEnv"
MULTI_ENTRY_POINT = "lr_gym.envs.multi_task:MultiTaskEnv"
SAMPLED_ENTRY_POINT = "lr_gym.envs.sampled:SampledTaskEnv"

TaskFactory = Callable[[], Task]
_TASKS: dict[str, Task | TaskFactory | str] = {}


def load_reference(ref: str) -> Any:
    """The object an import string ``"package.module:attr"`` names (imported now)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def add_task(name: str, task: Task | TaskFactory | str) -> None:
    """Adds a task to the registry under ``name`` without registering an env id."""
    _TASKS[name] = task


def task_names() -> list[str]:
    """Names of all registered tasks."""
    return sorted(_TASKS)


def get_task(name_or_id: str, **task_kwargs: Any) -> Task:
    """Resolves a task name, or an ``lr_gym/`` env id, to a :class:`Task`.

    ``task_kwargs`` are passed to the task's factory (e.g. ``data_dir=...``).

    Raises:
        KeyError: With the list of known names when ``name_or_id`` is unknown.
    """
    name = name_or_id
    if name_or_id.startswith(f"{NAMESPACE}/"):
        spec = gym.spec(name_or_id)  # raises gymnasium's own clear error if unknown
        name = spec.kwargs.get("task", name_or_id)
        if isinstance(name, Task):
            return name
    if name not in _TASKS:
        raise KeyError(
            f"Unknown task {name_or_id!r}. Registered tasks: {task_names()}. "
            "Register your own with lr_gym.register_task(...)."
        )
    entry = _TASKS[name]
    if isinstance(entry, str):
        entry = load_reference(entry)
    if isinstance(entry, Task):
        if task_kwargs:
            raise TypeError(f"Task {name!r} is a fixed Task; it takes no task_kwargs.")
        task = entry
    else:
        task = entry(**task_kwargs)
    if not isinstance(task, Task):
        raise TypeError(f"Task factory for {name!r} returned {type(task).__name__}, not Task.")
    return task


ENV_VERSION = 1
"""Version of the built-in ids: bumped with every change of observations, rewards,
episode end or budget (v1: budget exhaustion terminates; new features)."""


def env_id(name: str, version: int = ENV_VERSION) -> str:
    """The env id of a task name: ``lr_gym/<name>-v<version>``."""
    return f"{NAMESPACE}/{name}-v{version}"


def register_task(
    task: Task | TaskFactory | str,
    *,
    name: str | None = None,
    version: int = ENV_VERSION,
    max_episode_steps: int | None = None,
    **env_kwargs: Any,
) -> str:
    """Registers a task as the env id ``lr_gym/<name>-v<version>``.

    Args:
        task: A :class:`Task`, a zero-argument factory returning one, or an import
            string ``"module:factory"`` (needed when the env must be built in a
            subprocess that has not run your registration code).
        name: Env name; defaults to ``task.name`` (required for factories and strings).
        version: Version suffix; bump it when observations, rewards or budget change.
        max_episode_steps: Optional TimeLimit (the env truncates at its budget anyway).
        **env_kwargs: Default :class:`~lr_gym.config.EnvConfig` overrides for this id.

    Returns:
        The registered env id, ready for ``gym.make``.

    Example:
        >>> env_id = lr_gym.register_task(my_task)          # doctest: +SKIP
        >>> env = gym.make(env_id, schedule="constant")      # doctest: +SKIP
    """
    if name is None:
        if not isinstance(task, Task):
            raise ValueError("register_task needs name=... when given a factory or string.")
        name = task.name
    if "/" in name or " " in name:
        raise ValueError(f"Task name {name!r} must not contain '/' or spaces.")
    add_task(name, task)
    eid = env_id(name, version)
    gym.register(
        id=eid,
        entry_point=ENV_ENTRY_POINT,
        kwargs={"task": name, **env_kwargs},
        max_episode_steps=max_episode_steps,
        disable_env_checker=False,
    )
    return eid


def register_mix(
    name: str, tasks: list[str], *, version: int = ENV_VERSION, **env_kwargs: Any
) -> str:
    """Registers a multi-task env that samples one of ``tasks`` per episode."""
    eid = env_id(name, version)
    gym.register(id=eid, entry_point=MULTI_ENTRY_POINT, kwargs={"tasks": tasks, **env_kwargs})
    return eid


def register_sampler(
    name: str, families: Sequence[str], *, version: int = ENV_VERSION, **env_kwargs: Any
) -> str:
    """Registers an env that samples a fresh task of ``families`` every episode.

    Args:
        name: Env name (the id is ``lr_gym/<name>-v<version>``).
        families: Names of families that sample tasks (see
            :func:`lr_gym.tasks.families.base.get_family`); nothing is imported now.
        version: Version suffix.
        **env_kwargs: Default :class:`~lr_gym.config.EnvConfig` overrides for this id.

    Returns:
        The registered env id.
    """
    eid = env_id(name, version)
    gym.register(id=eid, entry_point=SAMPLED_ENTRY_POINT,
                 kwargs={"families": tuple(families), **env_kwargs})
    return eid


def is_sampler(env_id: str) -> bool:
    """Whether ``env_id`` samples a fresh task of its families every episode.

    Raises:
        gymnasium.error.Error: ``env_id`` is not registered.
    """
    return "families" in gym.spec(env_id).kwargs


def is_multi_task(env_id: str) -> bool:
    """Whether ``env_id`` runs several tasks (a mix or a sampler) rather than one.

    Raises:
        gymnasium.error.Error: ``env_id`` is not registered.
    """
    kwargs = gym.spec(env_id).kwargs
    return "tasks" in kwargs or "families" in kwargs


def task_for(env_id: str, **task_kwargs: Any) -> Task:
    """The :class:`Task` a single-task env id runs (builds no model, loads no data).

    Args:
        env_id: A single-task env id, e.g. ``"lr_gym/Digits-MLP-v1"``.
        **task_kwargs: Passed to the task's factory (e.g. ``data_dir=...``).

    Raises:
        ValueError: ``env_id`` is a multi-task env (use :func:`tasks_for`), a sampler,
            or not an env built from a task.
        gymnasium.error.Error: ``env_id`` is not registered.
    """
    kwargs = gym.spec(env_id).kwargs
    if "families" in kwargs:
        raise ValueError(
            f"{env_id!r} samples a fresh task every episode; pass a single-task env id "
            "such as 'lr_gym/Digits-MLP-v1', or draw tasks with "
            "lr_gym.tasks.families.base.get_family(name).sample(rng)."
        )
    if "tasks" in kwargs:
        raise ValueError(
            f"{env_id!r} is a multi-task env; pass one of its task ids (a single-task "
            "env id such as 'lr_gym/Digits-MLP-v1'), or use lr_gym.tasks_for for all "
            "of its tasks."
        )
    if "task" not in kwargs:
        raise ValueError(f"{env_id!r} is not an lr_gym task env (its spec names no task).")
    task = kwargs["task"]
    if isinstance(task, Task):
        if task_kwargs:
            raise TypeError(f"{env_id!r} holds a fixed Task; it takes no task_kwargs.")
        return task
    return get_task(task, **task_kwargs)


def tasks_for(env_id: str) -> list[Task]:
    """Every task an env id may run: its one task, or all tasks of a multi-task env.

    Raises:
        ValueError: ``env_id`` samples its tasks (there is no finite list).
    """
    if is_sampler(env_id):
        raise ValueError(
            f"{env_id!r} samples a fresh task of its families "
            f"{list(gym.spec(env_id).kwargs['families'])} every episode; draw tasks with "
            "lr_gym.tasks.families.base.get_family(name).sample(rng)."
        )
    if is_multi_task(env_id):
        return resolve_tasks(gym.spec(env_id).kwargs["tasks"])
    return [task_for(env_id)]


def resolve_tasks(tasks: str | Sequence[str | Task]) -> list[Task]:
    """Turns task specs into tasks.

    Args:
        tasks: Either an import string ``"module:function"`` returning a list of tasks,
            or a sequence of tasks, registered task names and ``lr_gym/`` env ids
            (a multi-task id expands to all of its tasks).

    Raises:
        ValueError: No task at all.
    """
    if isinstance(tasks, str):
        if ":" in tasks:
            tasks = load_reference(tasks)()
        elif tasks.startswith(f"{NAMESPACE}/"):
            tasks = tasks_for(tasks)
        else:
            tasks = [get_task(tasks)]
    resolved: list[Task] = []
    for t in tasks:
        resolved.extend([t] if isinstance(t, Task) else resolve_tasks(t))
    if not resolved:
        raise ValueError("MultiTaskEnv needs at least one task.")
    return resolved


def lr_gym_env_ids() -> list[str]:
    """All registered ``lr_gym/`` env ids."""
    return sorted(k for k in gym.registry if k.startswith(f"{NAMESPACE}/"))
