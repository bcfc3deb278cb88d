"""A real two-node Ray cluster: ``ray start`` a head and a worker node, token auth on.

Both nodes run on this machine with one CPU each, so two env actors of one CPU must land
on different nodes. The test trains and evaluates through ``--ray-address``, kills the
worker node in the middle of a training run (the clear error, then ``-i``), and stops
only the processes its own ``ray start`` calls began. Its log:
``pytest -s tests/agents/common/test_ray_two_nodes.py`` (committed in
``benchmarks/results/ray_two_nodes/pytest.log``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[3]
RAY = Path(sys.executable).parent / "ray"
ENV = "lr_gym/Digits-MLP-v1"
TRAIN = [sys.executable, str(ROOT / "train_agent.py"), "--env", ENV, "--no-progress",
         "--hyperparams", "n_steps:16", "batch_size:16", "n_epochs:1", "--env-kwargs",
         "total_steps:20", "steps_per_action:10", "--eval-freq", "0", "--vec-env", "ray",
         "--n-envs", "2", "--env-cpus", "1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Ray nodes started with ``ray start``; remembers each node's processes."""

    def __init__(self, temp: str) -> None:
        self.temp, self.port = temp, _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        self.nodes: list[set[int]] = []

    def _ours(self) -> set[int]:
        """Processes whose command line names this cluster's temp folder."""
        pids = set()
        for p in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error, TypeError):
                if any(self.temp in arg for arg in p.info["cmdline"]):
                    pids.add(p.info["pid"])
        return pids

    def start(self, *args: str) -> set[int]:
        before = set().union(*self.nodes) if self.nodes else set()
        subprocess.run([str(RAY), "start", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                        "--disable-usage-stats", *args], env=self.env, check=True,
                       capture_output=True, timeout=120)
        pids = self._ours() - before
        self.nodes.append(pids)
        return pids

    def head(self) -> None:
        self.start("--head", "--port", str(self.port), "--temp-dir", self.temp,
                   "--include-dashboard=false", "--dashboard-port", str(_free_port()),
                   "--ray-client-server-port", str(_free_port()))

    def worker(self) -> set[int]:
        return self.start("--address", self.address)

    @staticmethod
    def kill(pids: set[int]) -> None:
        """SIGKILLs these processes and everything they started."""
        procs = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                procs += [p, *p.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=30)

    def stop(self) -> None:
        """Our ``ray stop``: only the processes this cluster's ``ray start`` calls began."""
        self.kill(set().union(*self.nodes, self._ours()))


def _run(cmd: list[str], cluster: Cluster, timeout: float = 600):
    return subprocess.run(cmd, env=cluster.env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow  # two Ray nodes, three training runs and one evaluation: about a minute
def test_two_nodes_train_evaluate_lose_a_node_and_resume(tmp_path):
    temp = tempfile.mkdtemp(prefix="r2n", dir="/tmp")  # Ray's socket paths must stay short
    cluster = Cluster(temp)
    try:
        cluster.head()
        worker = cluster.worker()
        logs = tmp_path / "logs"

        # Training: two 1-CPU env actors on two 1-CPU nodes, one on each.
        done = _run([*TRAIN, "-n", "32", "--ray-address", cluster.address, "-f", str(logs)],
                    cluster)
        assert done.returncode == 0, done.stderr
        assert "2 env actor(s) on 2 node(s)" in done.stdout
        print(f"head {cluster.address} (token auth), worker node joined; train: "
              + next(ln for ln in done.stdout.splitlines() if "node(s)" in ln))
        run = logs / "ppo" / "Digits-MLP-v1_1"
        assert (run / "complete.json").is_file()

        # Evaluation: 1-CPU tasks on both nodes.
        out = tmp_path / "eval"
        done = _run([sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", str(run),
                     "--env", ENV, "--baselines", "static", "--track", "self", "--seeds", "0",
                     "1", "2", "3", "--target-seeds", "7", "--n-boot", "20", "--no-plot",
                     "--no-progress", "--backend", "ray", "--ray-address", cluster.address,
                     "--env-cpus", "1", "-o", str(out)], cluster)
        assert done.returncode == 0, done.stderr
        assert "ran on 2 node(s)" in done.stderr
        print("evaluate: " + next(ln for ln in done.stderr.splitlines() if "node(s)" in ln))
        assert (out / "results.json").is_file()

        # The worker node dies in the middle of a run: one clear error, the agent saved.
        proc = subprocess.Popen(
            [*TRAIN, "-n", "100000", "--save-freq", "64", "--ray-address", cluster.address,
             "-f", str(logs)], env=cluster.env, cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        run2 = logs / "ppo" / "Digits-MLP-v1_2"
        deadline = time.monotonic() + 300
        while not list((run2 / "checkpoints").glob("*.zip")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        cluster.kill(worker)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "training stopped" in lines[0], err
        assert f"continue it with -i {run2}" in err
        assert not (run2 / "complete.json").exists()
        print(f"worker node killed (pids {sorted(worker)}): {err.strip()}")

        # A new worker joins; -i continues the run where it stopped.
        cluster.worker()
        done = _run([*TRAIN, "-n", "32", "-i", str(run2), "--ray-address", cluster.address,
                     "-f", str(logs)], cluster)
        assert done.returncode == 0, done.stderr
        assert f"continuing {run2}" in done.stdout
        assert "2 env actor(s) on 2 node(s)" in done.stdout
        print("new worker joined; -i resume: "
              + next(ln for ln in done.stdout.splitlines() if "continuing" in ln))
    finally:
        cluster.stop()
    assert not cluster._ours()  # nothing of ours outlives the test
