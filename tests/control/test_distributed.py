"""Under torch.distributed the controller makes one decision per interval, on every rank.

Each slow test runs 2 CPU processes (gloo) of ``dist_worker.py`` whose ranks see
deliberately different validation losses, and compares what the ranks did.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lr_gym.control import distributed
from lr_gym.control.scheduler import LRController

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("dist_worker.py")
TIMEOUT_S = 240  # a hung collective times out in the workers after 60 s; this is the backstop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(scenario: str, out: Path, *, torchrun: bool = True) -> tuple[dict, dict]:
    """Runs the scenario on 2 ranks; returns each rank's results."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
               [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(port)] if torchrun
              else [sys.executable])  # Lightning's ddp launches the second rank itself
    proc = subprocess.Popen([*launch, str(WORKER), scenario, str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
        log, _ = proc.communicate()
        pytest.fail(f"{scenario}: the 2-rank run hung past {TIMEOUT_S} s:\n{log[-3000:]}")
    assert proc.returncode == 0, f"{scenario} failed:\n{log[-3000:]}"
    a, b = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    return a, b


def test_single_process_runs_no_collective_and_changes_nothing():
    assert not distributed.active() and distributed.is_main()
    stats = {"update_ratio": 0.1}
    out = distributed.mean_interval(2.0, 0.5, 3.0, stats, [torch.tensor(1.5), 1.25], 2)
    assert out == (2.0, 0.5, 3.0, stats, [1.5, 1.25])
    assert distributed.mean_validation(2.0, 0.5) == (2.0, 0.5)
    assert distributed.rank0_action(0.25) == 0.25


def test_a_one_rank_process_group_decides_as_a_single_process(tmp_path):
    import torch.distributed as dist

    def run() -> list:
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(4))
        opt = torch.optim.SGD([w], lr=0.1)
        ctl = LRController(opt, "lr_gym/task-base", total_steps=8, steps_per_action=2,
                           guard=False)
        ctl.observe(2.0, 0.1)
        for t in range(8):
            opt.zero_grad()
            loss = (w ** 2).sum()
            loss.backward()
            opt.step()
            ctl.step(loss)
            if ctl.eval_due:
                ctl.observe(2.0 / (t + 2), 0.1 * t)
        return ctl.history

    alone = run()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert not distributed.active()
        assert run() == alone
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_with_different_validation_losses_run_the_same_lrs(tmp_path):
    a, b = _run("plain", tmp_path)
    assert len(a["lrs"]) == 16 and len(set(a["lrs"])) == 4  # one LR per decision
    assert a["lrs"] == b["lrs"]  # at every step
    assert a["state"] == b["state"]  # the same resume state: features, history, tracker
    assert a["weights"] == b["weights"]


@pytest.mark.slow
def test_a_nan_validation_loss_on_one_rank_rolls_back_every_rank(tmp_path):
    a, b = _run("rollback", tmp_path)
    assert a["restores"] == b["restores"] == 1
    assert a["weights_after"] == b["weights_after"]  # after the rollback and every decision
    assert a["lrs"] == b["lrs"]
    assert a["state"] == b["state"]


@pytest.mark.slow
def test_rank_0_decides_when_a_rank_would_judge_otherwise(tmp_path):
    a, b = _run("skew", tmp_path)  # rank 1's policy and guard disagree on equal inputs
    assert a["restores"] == b["restores"] == 0  # rank 0's guard never rolls back here
    assert len(set(a["lrs"])) == 4 and a["lrs"] == b["lrs"]  # rank 0's actions
    assert a["weights_after"] == b["weights_after"]
    assert a["state"] == b["state"]


@pytest.mark.slow
def test_the_hf_trainer_under_torchrun_decides_once_for_both_ranks(tmp_path):
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")
    a, b = _run("hf", tmp_path)
    assert a["world"] == 2
    # The Trainer's evaluate gathers the loss over ranks itself (the same on both)...
    assert a["gathered"] == b["gathered"] and len(a["gathered"]) == 5
    # ...and with a rank-local loss on top (3x on rank 1) the decisions still agree.
    assert len(a["lrs"]) == 16 and len(set(a["lrs"])) >= 3
    assert a["lrs"] == b["lrs"] and a["state"] == b["state"] and a["weights"] == b["weights"]
    # Rank 0 alone writes TensorBoard and the checkpoint's controller state.
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    saved = json.loads((tmp_path / "trainer" / "checkpoint-16" / "lr_controller.json")
                       .read_text())
    assert saved == a["state"]


@pytest.mark.slow
def test_lightning_ddp_on_two_cpu_devices_decides_once_for_both_ranks(tmp_path):
    pytest.importorskip("lightning.pytorch", reason="the [lightning] extra is not installed")
    a, b = _run("lightning", tmp_path, torchrun=False)
    assert len(a["lrs"]) == 16 and len(set(a["lrs"])) >= 3
    assert a["lrs"] == b["lrs"] and a["state"] == b["state"] and a["weights"] == b["weights"]


def test_floats_syncs_tensors_once_and_gives_the_same_numbers():
    from lr_gym.control.distributed import floats

    values = [0.5, torch.tensor(1.1), torch.tensor([2.2]), torch.tensor(3.3, dtype=torch.bfloat16),
              torch.tensor(float("nan")), 7, torch.tensor(4.4, dtype=torch.float64)]
    got, want = floats(values), [float(x) for x in values]
    assert [repr(x) for x in got] == [repr(x) for x in want]
    assert all(type(x) is float for x in got)
