"""Bit-reproducible episodes: the pinned torch settings, and a slice of the headline rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import lr_gym  # noqa: F401 - registers the ids
from agents.baselines import make_baseline
from agents.evaluation.rollout import run_episode
from lr_gym.config import EnvConfig
from lr_gym.reproducibility import DEFAULT_TORCH_THREADS, pinned, settings

ROOT = Path(__file__).resolve().parents[1]
# A conv net with Adam: at 3 torch threads its reductions sum in another order than at 1,
# and the episode's validation loss differs from the 4th digit on (measured on 2 cores).
SENSITIVE_ENV = "lr_gym/Waves-Conv1D-Adam-v1"


def test_pinned_sets_then_restores_threads_and_flags():
    before = torch.get_num_threads()
    assert not torch.are_deterministic_algorithms_enabled()
    with pinned(3):
        assert torch.get_num_threads() == 3
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        with pinned(2, deterministic=False):  # nested: its own values, then the outer's
            assert torch.get_num_threads() == 2
            assert torch.are_deterministic_algorithms_enabled()  # False leaves it alone
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    assert not torch.are_deterministic_algorithms_enabled()


def test_pinned_restores_after_an_error_and_none_keeps_the_process_setting():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), pinned(3):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    assert not torch.are_deterministic_algorithms_enabled()
    with pinned(None, deterministic=False):
        assert torch.get_num_threads() == before


def test_settings_record_what_decides_the_arithmetic():
    s = settings(4)
    assert s["torch"] == str(torch.__version__)
    assert s["torch_threads"] == 4 and s["deterministic_algorithms"] is True
    assert isinstance(s["cpu_capability"], str)
    json.dumps(s)  # results files hold it
    assert EnvConfig().torch_threads == DEFAULT_TORCH_THREADS == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 10**6])
def test_torch_threads_is_checked(bad):
    with pytest.raises((TypeError, ValueError), match="torch_threads"):
        EnvConfig(torch_threads=bad)


def _episode(process_threads: int, **env_kwargs) -> dict:
    torch.set_num_threads(process_threads)
    res = run_episode(SENSITIVE_ENV, make_baseline("static"), seed=0,
                      env_kwargs={"eval_test": False, **env_kwargs})
    assert torch.get_num_threads() == process_threads  # the caller's setting comes back
    return res.to_dict()


def _same(a: dict, b: dict) -> bool:
    keys = ("lrs", "val_loss", "train_loss", "val_metric", "final_val_metric")
    return all(np.array_equal(a[k], b[k], equal_nan=True) for k in keys)


def test_episode_does_not_depend_on_the_process_thread_count():
    assert _same(_episode(1), _episode(3))


def test_the_thread_count_is_what_the_pin_fixes():
    # Without this the test above could pass for want of any effect: the pinned count
    # itself changes the arithmetic of this episode.
    assert not _same(_episode(1, torch_threads=1), _episode(1, torch_threads=3))


def test_env_pins_its_data_reset_and_step(monkeypatch):
    seen = []
    real = torch.nn.Module.train

    def spy(self, mode=True):
        seen.append(torch.get_num_threads())
        return real(self, mode)

    monkeypatch.setattr(torch.nn.Module, "train", spy)
    torch.set_num_threads(3)
    env = gym.make("lr_gym/Digits-MLP-v1", torch_threads=2, eval_test=False)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    env.close()
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == 3


# A slice of README's headline: 2 test envs x 2 seeds x static, Prodigy and the shipped
# controller (plus the reference's target runs), through the real CLI.
SLICE = ["--agent", "pretrained", "--env", SENSITIVE_ENV, "lr_gym/Seq-GRU-v1",
         "--seeds", "0", "1", "--target-seeds", "100", "--baselines", "static", "prodigy",
         "--track", "self", "--no-plot", "--no-progress"]


def _evaluate(tmp: Path, name: str, workers: int, process_threads: int) -> dict[tuple, dict]:
    out = tmp / name
    # The CLI itself, in a process whose torch thread count is set first (OMP_NUM_THREADS
    # cannot raise it past the machine's cores).
    cli = (f"import runpy, sys, torch; torch.set_num_threads({process_threads}); "
           f"sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    args = [*SLICE, "--workers", str(workers), "-f", str(tmp / "logs"), "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", cli, str(ROOT / "evaluate_agent.py"), *args],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    return {(r["env_id"], r["controller"], r["seed"], r["role"]): r for r in runs}


@pytest.mark.slow
def test_headline_slice_reruns_bit_for_bit_in_one_process_and_in_a_pool(tmp_path):
    # In one process whose torch default is 3 threads, then in two single-thread
    # workers: the pinned episodes must not notice.
    alone = _evaluate(tmp_path, "alone", workers=1, process_threads=3)
    pool = _evaluate(tmp_path, "pool", workers=2, process_threads=1)
    assert sorted(alone) == sorted(pool) and len(alone) == 2 * (2 * 3 + 1)
    for key, a in alone.items():
        b = pool[key]
        for field in ("steps", "lrs", "val_metric", "val_loss", "train_loss", "test",
                      "final_val_metric", "diverged", "total_reward", "convergence_step"):
            assert a[field] == b[field], (key, field)
    results = json.loads((tmp_path / "pool" / "results.json").read_text())["meta"]
    assert results["reproducibility"]["torch_threads"] == 1
    assert results["agents"] == ["lr_gym/default"]  # a name, not this machine's path
