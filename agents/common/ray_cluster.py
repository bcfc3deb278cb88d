"""Connecting to Ray, the optional scale-out backend (``pip install -e ".[ray]"``).

Training (``train_agent.py --vec-env ray``) and evaluation (``evaluate_agent.py
--backend ray``) share this: the check that Ray is installed, the connection (a local
Ray started for the run, or an existing cluster), and the resources each env actor or
evaluation task declares. Ray is imported only here and by the modules that need it,
so nothing else depends on it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

RAY_EXTRA = 'pip install -e ".[ray]"'
"""How to install Ray with lr_gym, for error messages."""

DEFAULT_TIMEOUT_S = 3600.0
"""The longest wait for one Ray result: an env step or reset, or the next finished
evaluation job. Long on purpose (a full-preset reset loads and tokenizes a dataset);
a dead actor or worker is reported by Ray at once, whatever the timeout."""


def add_ray_arguments(parser: Any, switch: str, unit: str, wait: str) -> None:
    """Adds the Ray flags that ``train_agent.py`` and ``evaluate_agent.py`` share.

    Args:
        parser: An ``argparse.ArgumentParser``.
        switch: The flag that turns Ray on (``"--vec-env ray"``, ``"--backend ray"``).
        unit: What one Ray actor or task runs (``"env actor"``, ``"task"``).
        wait: What ``--ray-timeout`` bounds.
    """
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help=f"With {switch}: the cluster, 'auto' (started with `ray start` "
                             "on this machine) or ray://HOST:10001. Default: $RAY_ADDRESS, "
                             "else a local Ray on this machine's cores.")
    parser.add_argument("--env-cpus", type=float, default=None,
                        help=f"With {switch}: CPUs each {unit} reserves, also its torch "
                             "threads (default: 1).")
    parser.add_argument("--env-gpus", type=float, default=None,
                        help=f"With {switch}: GPUs each {unit} reserves, fractions share one "
                             f"(0.25: four per GPU); its model then trains on cuda "
                             "(default: 0).")
    parser.add_argument("--ray-timeout", type=float, default=None, metavar="SECONDS",
                        help=f"With {switch}: the longest wait for {wait} "
                             f"(default: {DEFAULT_TIMEOUT_S:g}).")


def ray_settings(args: Any, switch: str, enabled: bool, device: str | None,
                 device_flag: str, unit: str) -> tuple[RayResources, float] | None:
    """Checks the flags of :func:`add_ray_arguments`: ``(resources, timeout)``, or None.

    Args:
        args: The parsed command line.
        switch: The flag that turns Ray on, for messages.
        enabled: Whether it is on.
        device: The device flag's value (None: not given).
        device_flag: Its name, for messages.
        unit: What one Ray actor or task runs, for messages.

    Raises:
        ValueError: A Ray flag without ``switch``, a bad value, or a GPU share that
            ``device`` would leave unused; the message names the flag.
    """
    given = [f"--{name.replace('_', '-')}" for name in
             ("ray_address", "env_cpus", "env_gpus", "ray_timeout")
             if getattr(args, name) is not None]
    if not enabled:
        if given:
            raise ValueError(f"{', '.join(given)} only apply to {switch}; add it or drop them.")
        return None
    resources = RayResources(1.0 if args.env_cpus is None else args.env_cpus,
                             0.0 if args.env_gpus is None else args.env_gpus)
    timeout = DEFAULT_TIMEOUT_S if args.ray_timeout is None else args.ray_timeout
    if not timeout > 0:
        raise ValueError(f"--ray-timeout must be > 0 seconds, got {timeout}.")
    if resources.num_gpus > 0 and device not in (None, "cuda", "auto"):
        raise ValueError(f"--env-gpus {resources.num_gpus:g} gives each {unit} its own GPU "
                         f"share, which {device_flag} {device} would leave unused; drop "
                         f"{device_flag} (the {unit}s use cuda).")
    return resources, timeout


LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}
"""Ray settings of a local Ray started here. Ray lowers its workers' priority by 15 by
default; here the workers run the envs, the actual work, so they run at this process's
priority, as ``SubprocVecEnv``'s subprocesses and the evaluation's process pool do."""


class RaySetupError(RuntimeError):
    """Ray cannot be used as asked; the message names the problem and the fix."""


def require_ray(what: str) -> ModuleType:
    """The ``ray`` module.

    Args:
        what: What needs Ray, for the message (e.g. ``"--vec-env ray"``).

    Raises:
        RaySetupError: Ray is not installed; the message names the extra to install.
    """
    try:
        import ray
    except ImportError as err:
        raise RaySetupError(
            f"{what} needs Ray, which is not installed: run {RAY_EXTRA} in your lr_gym "
            "checkout (or pip install 'ray[default]>=2.50')."
        ) from err
    return ray


@dataclass(frozen=True)
class RayResources:
    """What one env actor or evaluation task reserves on the Ray cluster.

    Attributes:
        num_cpus: Logical CPUs (fractions allowed); also its torch thread count,
            rounded down, at least 1.
        num_gpus: GPUs: a fraction below 1 shares a GPU (e.g. 0.25: four per GPU), a
            whole number above 1 takes that many GPUs. With any, Ray makes only the
            assigned GPU(s) visible, so ``device="cuda"`` is the actor's own share.

    Raises:
        ValueError: A negative or non-finite amount, or a fractional GPU count above 1.
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        for name, flag in (("num_cpus", "--env-cpus"), ("num_gpus", "--env-gpus")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{flag} ({name}) must be a number, got {value!r}.")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{flag} ({name}) must be a finite number >= 0, got {value}.")
        if self.num_gpus > 1 and not float(self.num_gpus).is_integer():
            raise ValueError(f"--env-gpus (num_gpus) = {self.num_gpus}: a fraction shares one "
                             "GPU, so it must be below 1; above 1, use a whole number.")
        if self.num_cpus == 0 and self.num_gpus == 0:
            raise ValueError("--env-cpus and --env-gpus are both 0: each actor or task must "
                             "reserve something, or Ray would start them all at once.")

    @property
    def threads(self) -> int:
        """The torch threads of one actor or task."""
        return max(1, int(self.num_cpus))

    @property
    def device(self) -> str:
        """Where the primary model trains: ``"cuda"`` with a GPU share, else ``"cpu"``."""
        return "cuda" if self.num_gpus > 0 else "cpu"

    def options(self) -> dict[str, float]:
        """The ``ray.remote(...).options(...)`` resources."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}

    def check_fits(self, ray: ModuleType, count: int, what: str) -> None:
        """Refuses a demand the connected cluster cannot meet (it would wait for ever).

        Args:
            ray: The connected ``ray`` module.
            count: How many of these must run at once (env actors live for the whole
                run: all of them; evaluation tasks: 1).
            what: What asks, for the message.

        Raises:
            RaySetupError: The cluster lacks the CPUs or GPUs; the message names them.
        """
        total = ray.cluster_resources()
        for key, amount, flag in (("CPU", self.num_cpus, "--env-cpus"),
                                  ("GPU", self.num_gpus, "--env-gpus")):
            need, have = amount * count, float(total.get(key, 0.0))
            if need > have + 1e-9:
                raise RaySetupError(
                    f"{what}: {count} x {flag} {amount:g} = {need:g} {key}(s) needed at once, "
                    f"but the Ray cluster has {have:g}: lower {flag} (or the number of envs), "
                    "or add nodes (`ray status` shows the cluster's resources).")


CONNECT_TIMEOUT_S = 10.0
"""The longest wait for a cluster's port to answer before ``ray.init`` is even tried."""

AUTH_HINT = (
    "If the cluster uses token authentication (Ray 2.59+ turns it on for clusters that "
    "`ray.init()` starts; `RAY_AUTH_MODE=token` for `ray start`), this process needs the "
    "same RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN or "
    "RAY_AUTH_TOKEN_PATH (`ray get-auth-token` on the head prints it).")


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""HTTP/2's client preface and an empty SETTINGS frame: what a gRPC client sends first."""

_SETTINGS = 0x4
"""The HTTP/2 frame type a server's preface must start with (RFC 9113, 3.4)."""


def _not_grpc(sock: socket.socket, deadline: float) -> str | None:
    """Why the peer is no gRPC server (Ray's GCS and Ray Client are), or None if it is one.

    A gRPC server answers HTTP/2's preface with a SETTINGS frame at once. An HTTP/1 server
    answers ``HTTP/1.1 ...``, another service something else, a silent one nothing: each
    is told apart before ``deadline``, not after Ray's own retries of several minutes.
    """
    got = b""
    try:
        sock.sendall(_HTTP2_PREFACE)
        while len(got) < 9:  # one frame header
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = sock.recv(9 - len(got))
            if not chunk:
                return "it closed the connection " + ("in the middle of an answer" if got
                                                      else "without an answer")
            got += chunk
    except TimeoutError:  # socket.timeout too
        return "it sent nothing back" if not got else "it stopped in the middle of an answer"
    except OSError as err:
        return f"the connection failed ({err})"
    if got.startswith((b"HTTP/", b"<")):  # a status line, or an HTTP/0.9-style page
        return f"it answered as an HTTP server ({got.decode('ascii', 'replace')!r}...)"
    if got[3] != _SETTINGS or int.from_bytes(got[5:9], "big") & 0x7FFFFFFF:
        return f"it answered {got!r}, which is not gRPC's HTTP/2"
    return None


def probe_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Checks that a Ray cluster (a gRPC server) answers at ``host:port`` or ``ray://host:port``.

    ``ray.init`` retries an address for minutes, and hangs on one that accepts connections
    but is not Ray (a web server, a silent port); this fails in ``timeout_s`` instead: the
    address must accept a connection and answer HTTP/2's handshake as Ray's GCS and Ray
    Client (gRPC servers) do. With ``RAY_USE_TLS`` on, the handshake is TLS's and Ray's own,
    so only the connection is checked. ``"auto"`` is left to Ray.

    Raises:
        RaySetupError: Nothing answers, or something that is not Ray; the message names
            the address and the fixes.
    """
    if address == "auto":
        return
    deadline = time.monotonic() + timeout_s
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise RaySetupError(f"--ray-address {address!r} is not HOST:PORT, ray://HOST:PORT or "
                            "auto.") from None
    where = ("Check the address (`ray status` on the head node shows it; the GCS port is "
             "6379 by default, Ray Client's 10001, and the dashboard's 8265 is neither).")
    try:
        sock = socket.create_connection((host or "127.0.0.1", number), timeout=timeout_s)
    except OSError as err:
        raise RaySetupError(
            f"no Ray cluster answers at {address} ({err}; waited up to {timeout_s:g} s). "
            f"{where} {AUTH_HINT}") from err
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return
        why = _not_grpc(sock, deadline)
    if why is not None:
        raise RaySetupError(f"{address} accepts connections but is not a Ray cluster: {why} "
                            f"(waited up to {timeout_s:g} s). {where}")


def init_ray(ray: ModuleType, address: str | None = None) -> None:
    """``ray.init(address)``, with :data:`LOCAL_SYSTEM_CONFIG` when it starts a local Ray."""
    local = address is None and not os.environ.get("RAY_ADDRESS")
    ray.init(address=address, logging_level=logging.WARNING,
             **({"include_dashboard": False, "_system_config": LOCAL_SYSTEM_CONFIG}
                if local else {}))


@contextlib.contextmanager
def ray_session(address: str | None, what: str,
                timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[ModuleType]:
    """Ray, connected for the duration of the block.

    An already initialised Ray (a test's, a notebook's) is used as it is and left
    running; otherwise ``address`` picks the cluster and the connection is closed at
    the end (a local Ray started here stops with it).

    Args:
        address: ``None``: ``$RAY_ADDRESS`` if set, else a new local Ray on this
            machine's cores; ``"auto"``: the cluster ``ray start`` runs on this machine;
            ``"ray://host:10001"``: a remote cluster through Ray Client; or a GCS
            address ``host:6379``.
        what: What needs Ray, for messages.
        timeout_s: The longest wait for an explicit address to answer
            (``--ray-timeout``, at most :data:`CONNECT_TIMEOUT_S`).

    Raises:
        RaySetupError: Ray is not installed, or no cluster answers at ``address``.
    """
    ray = require_ray(what)
    if ray.is_initialized():
        yield ray
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        probe_address(target, min(timeout_s, CONNECT_TIMEOUT_S))
    try:
        init_ray(ray, address)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"at {target!r}" if target else "locally"
        raise RaySetupError(
            f"could not start or reach Ray {where} for {what}: {err}. For a cluster that "
            "runs, pass its address (HOST:6379, or --ray-address auto on its head node); "
            f"to start one, `ray start --head`; or drop --ray-address for a local Ray. "
            f"{AUTH_HINT}"
        ) from err
    try:
        yield ray
    finally:
        ray.shutdown()
