"""evaluate_agent.py --backend ray on a local 2-CPU Ray (the session's ``ray_local``)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Future

import numpy as np
import pytest

from agents.evaluation.cli import main
from agents.evaluation.runner import JobTimeoutError, completed
from tests.helpers import untrained_controller_file

ENV = "lr_gym/Wine-MLP-v1"
# Each metric a run records, wall-clock times left out.
METRICS = ("steps", "lrs", "val_metric", "val_loss", "train_loss", "final_val_metric", "test",
           "diverged", "total_reward", "convergence_step")


@pytest.fixture(scope="module")
def controller_file(tmp_path_factory):
    return untrained_controller_file("lr_gym/Digits-MLP-v1",
                                     tmp_path_factory.mktemp("ctl") / "controller.safetensors")


def _runs(folder):
    lines = (folder / "runs.jsonl").read_text().splitlines()
    runs = [json.loads(x) for x in lines]
    return {(r["controller"], r["seed"], r["role"], r["lr0"], r["agent"]): r for r in runs}, len(
        lines)


@pytest.mark.slow  # a local Ray and fresh worker processes
def test_ray_backend_resumes_and_writes_the_same_runs_as_processes(ray_local, tmp_path, capsys,
                                                                   controller_file):
    common = ["--agent", str(controller_file), "--env", ENV, "--baselines", "static",
              "warmup_cosine", "--tuning-budget", "2", "--seeds", "0", "1", "--target-seeds",
              "7", "--n-boot", "50", "--no-plot", "--no-progress", "-f", str(tmp_path / "logs")]
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main([*common, "--workers", "1", "-o", str(local),
                 "--tuning-cache", str(tmp_path / "local_cache.json")]) == 0
    # A driver that crashed after 3 finished runs: the same invocation, those runs kept.
    remote.mkdir()
    shutil.copy(local / "invocation.json", remote)
    kept = (local / "runs.jsonl").read_text().splitlines()[:3]
    (remote / "runs.jsonl").write_text("\n".join(kept) + "\n")
    capsys.readouterr()
    assert main([*common, "--backend", "ray", "-o", str(remote),
                 "--tuning-cache", str(tmp_path / "remote_cache.json")]) == 0
    assert "Resuming: 3 finished runs" in capsys.readouterr().err

    want, n_local = _runs(local)
    got, n_remote = _runs(remote)
    assert n_remote == n_local == len(got)  # nothing lost, nothing twice
    assert got.keys() == want.keys()
    assert {k[0] for k in got} == {"ppo", "static", "warmup_cosine"}
    for key, run in got.items():
        for field in METRICS:
            np.testing.assert_equal(run[field], want[key][field], err_msg=f"{key} {field}")
    # The trials ran as Ray tasks (no shared cache) and tuned the same lr0s.
    meta = [json.loads((f / "results.json").read_text())["meta"] for f in (local, remote)]
    assert meta[0]["tuned_lr0"] == meta[1]["tuned_lr0"]
    caches = [json.loads((tmp_path / f"{w}_cache.json").read_text())["entries"]
              for w in ("local", "remote")]
    assert caches[0] == caches[1] and len(caches[0]) == 2


@pytest.mark.slow  # a local Ray and fresh worker processes
def test_a_task_lost_with_its_worker_is_retried(ray_local, tmp_path):
    from agents.common.ray_cluster import RayResources
    from agents.evaluation.ray_backend import RayPool

    marker = tmp_path / "died-once"

    def die_once(path: str) -> int:  # a closure: pickled by value to the worker
        import os
        from pathlib import Path

        if not Path(path).exists():
            Path(path).touch()
            os._exit(1)  # the worker process dies mid-task
        return 42

    with RayPool(None, RayResources()) as pool:
        assert pool.submit(die_once, str(marker)).result(timeout=120) == 42
    assert marker.exists()


def test_waiting_for_jobs_has_a_timeout():
    stuck: Future = Future()
    done: Future = Future()
    done.set_result(1)
    finished = completed([done, stuck], timeout_s=0.2)
    assert next(finished) is done
    with pytest.raises(JobTimeoutError, match=r"no evaluation job finished within 0.2 s"):
        next(finished)  # the stuck job never finishes: only the timeout ends this


@pytest.mark.parametrize(("args", "message"), [
    (["--env-gpus", "0.5"], "--env-gpus only apply to --backend ray"),
    (["--backend", "ray", "--env-cpus", "-2"], "--env-cpus (num_cpus) must be a finite"),
    (["--backend", "ray", "--env-gpus", "0.5", "--device", "cpu"], "drop --device"),
    (["--backend", "ray", "--ray-timeout", "-1"], "--ray-timeout must be > 0"),
])
def test_bad_backend_flags_are_refused_before_any_run(tmp_path, capsys, args, message):
    pytest.importorskip("ray")
    assert main(["--agent", "none", "--env", ENV, "--baselines", "static",
                 "-f", str(tmp_path / "logs"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "logs" / "eval").exists()
