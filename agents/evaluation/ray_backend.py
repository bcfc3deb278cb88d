"""Running an evaluation's jobs as Ray tasks (``evaluate_agent.py --backend ray``).

:class:`RayPool` is a drop-in for the process pool of
:func:`~agents.evaluation.runner.make_pool`: ``submit(fn, *args)`` runs one job (a
tuning trial or an episode) as a Ray task that reserves
:class:`~agents.common.ray_cluster.RayResources`, and returns a ``Future``. Results come
back to this process, which alone writes ``runs.jsonl`` and the tuning cache, so
workers need no shared filesystem: the learned agents' controller files travel with
the tasks (through Ray's object store), and only lr_gym and ``--gym-packages`` must be
installed on every node.

Failures: a task whose worker process or node dies is rerun by Ray, up to
:data:`MAX_RETRIES` times, and its result counted once; after that its future fails
with :class:`TaskLostError`. An exception in a job's own code fails its future as it
would in the process pool. Leaving the pool cancels what has not finished; a rerun
of the same command resumes from ``runs.jsonl``.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.common.packages import import_gym_packages
from agents.common.ray_cluster import CONNECT_TIMEOUT_S, RayResources, ray_session
from agents.controller import controller_file_for
from agents.evaluation.runner import AGENT_FILES
from lr_gym.files import atomic_write

MAX_RETRIES = 3
"""Reruns of a task lost to a dead worker or node (Ray's ``max_retries``)."""


class TaskLostError(RuntimeError):
    """A job's Ray task was lost more often than :data:`MAX_RETRIES` allows."""


@dataclass(frozen=True)
class WorkerSetup:
    """What a Ray worker needs before it runs a job; applied once per worker process.

    Attributes:
        packages: Modules to import first (``--gym-packages``: they register tasks).
        threads: Torch threads of a job (its CPU reservation).
        agent_files: ``(agent name, controller file bytes)`` of every learned agent.
    """

    packages: tuple[str, ...] = ()
    threads: int = 1
    agent_files: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def for_agents(cls, agents: Sequence[str], packages: Sequence[str],
                   threads: int) -> WorkerSetup:
        """Reads the agents' controller files here, where their paths are."""
        files = tuple((a, controller_file_for(a).read_bytes()) for a in agents)
        return cls(tuple(packages), threads, files)

    def apply(self) -> None:
        """Imports the packages, sets the threads, and puts each agent file on disk."""
        import torch

        import lr_gym  # noqa: F401 - registers the ids

        torch.set_num_threads(self.threads)
        import_gym_packages(self.packages)
        root = Path(tempfile.gettempdir()) / "lr_gym_agents"
        for agent, data in self.agent_files:
            path = root / f"{hashlib.sha256(data).hexdigest()}.safetensors"
            if not path.is_file():  # whole or not at all: jobs on one machine may race
                atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
            AGENT_FILES[agent] = str(path)


def _run(setup: WorkerSetup, fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """The body of every Ray task: the worker's setup, then the job; with its node's id."""
    import ray

    setup.apply()
    return ray.get_runtime_context().get_node_id(), fn(*args)


class RayPool:
    """Jobs as Ray tasks with declared resources (see the module docstring).

    Args:
        address: The cluster (see :func:`~agents.common.ray_cluster.ray_session`).
        resources: What each task reserves.
        packages: ``--gym-packages``, imported by every worker.
        agents: The learned agents (their controller files are shipped to the tasks).
        connect_timeout_s: The longest wait for an explicit address to answer.
    """

    def __init__(self, address: str | None, resources: RayResources,
                 packages: Sequence[str] = (), agents: Sequence[str] = (),
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.address, self.resources = address, resources
        self.connect_timeout_s = connect_timeout_s
        self.setup = WorkerSetup.for_agents(agents, packages, resources.threads)
        self._stack = contextlib.ExitStack()
        # Unfinished tasks, to cancel on the way out; finished ones are let go so that
        # their results leave Ray's object store.
        self._pending: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._ray: Any = None
        self._task: Any = None
        self._setup_ref: Any = None
        self.nodes: set[str] = set()
        """The ids of the nodes whose workers finished a task."""

    def __enter__(self) -> RayPool:
        ray = self._stack.enter_context(ray_session(self.address, "--backend ray",
                                                    self.connect_timeout_s))
        try:
            self.resources.check_fits(ray, 1, "each evaluation task")
            self._task = ray.remote(_run).options(max_retries=MAX_RETRIES,
                                                  retry_exceptions=False,
                                                  **self.resources.options())
            self._setup_ref = ray.put(self.setup)  # once, not with every task
        except BaseException:
            self._stack.close()
            raise
        self._ray = ray
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            with self._lock:
                left, self._pending = list(self._pending.values()), {}
            for ref in left:  # what is left after an error, a timeout or Ctrl-C
                with contextlib.suppress(Exception):
                    self._ray.cancel(ref, force=True)
        finally:
            self._stack.close()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Runs ``fn(*args)`` as a Ray task; its future holds the result or the error."""
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        ref = self._task.remote(self._setup_ref, fn, *args)
        key = id(ref)
        with self._lock:
            self._pending[key] = ref
        out: Future = Future()

        def settle(fut: Future) -> None:
            with self._lock:
                self._pending.pop(key, None)
            if fut.cancelled():
                out.cancel()
                return
            err = fut.exception()
            if err is None:
                node, result = fut.result()
                with self._lock:
                    self.nodes.add(node)
                out.set_result(result)
            elif isinstance(err, (RayTaskError, TaskCancelledError)) or not isinstance(
                    err, RayError):
                out.set_exception(err)  # the job's own error (an instance of its type too)
            else:
                out.set_exception(TaskLostError(
                    f"a {getattr(fn, '__name__', 'job')} task was lost {MAX_RETRIES + 1} "
                    f"times ({type(err).__name__}: {err}); rerun the same command to resume "
                    "(finished runs are kept)."))

        ref.future().add_done_callback(settle)
        return out
