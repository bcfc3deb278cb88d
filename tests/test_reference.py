"""The paired reward and its cached reference runs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.reference import CACHE, CACHE_ENV, ReferenceCache, ReferenceRun, reference_key
from tests.helpers import blob_task, digits_task

ROOT = Path(__file__).resolve().parents[1]


def _episode(env: LRControlEnv, seed: int, actions) -> tuple[list[float], list[dict]]:
    _, info = env.reset(seed=seed)
    rewards, infos, done, i = [], [info], False, 0
    while not done:
        _, r, done, _, info = env.step(np.array([actions[i % len(actions)]], np.float32))
        rewards.append(r)
        infos.append(info)
        i += 1
    return rewards, infos


def test_reference_is_the_static_run_of_the_same_seed():
    task = blob_task(lr=0.05)
    _, static = _episode(LRControlEnv(task, eval_test=False), 4, [0.0])
    env = LRControlEnv(task, reward="paired", mode="recursive", max_factor=3.0)
    env.reset(seed=4)
    assert list(env._reference.val_losses) == [i["val_loss"] for i in static]
    assert not env._reference.diverged


@pytest.mark.parametrize("actions", [[1.0, -0.5], [-1.0], [0.3, 0.9, -1.0]])
def test_paired_rewards_sum_to_the_log_ratio_of_final_losses(actions):
    task = blob_task(lr=0.05)
    env = LRControlEnv(task, reward="paired", mode="recursive", max_factor=3.0)
    rewards, infos = _episode(env, 2, actions)
    ref_final = env._reference.val_losses[-1]
    want = math.log(ref_final / infos[-1]["val_loss"])
    assert not infos[-1]["diverged"] and abs(want) < 3
    assert sum(rewards) == pytest.approx(want, abs=1e-9)
    assert want != 0  # the actions changed the run


def test_zero_actions_earn_exactly_nothing():
    env = LRControlEnv(blob_task(lr=0.05), reward="paired", mode="recursive")
    rewards, _ = _episode(env, 1, [0.0])
    assert rewards == [0.0] * len(rewards)


def test_the_episode_sum_is_clipped_and_the_action_costs():
    env = LRControlEnv(blob_task(lr=0.05), reward="paired", mode="recursive", max_factor=3.0,
                       paired_clip=0.01, action_cost=0.1)
    rewards, infos = _episode(env, 2, [1.0, -0.5])
    cost = 0.1 * (len(rewards) // 2 * (1.0 + 0.25) + (len(rewards) % 2) * 1.0)
    raw = math.log(env._reference.val_losses[-1] / infos[-1]["val_loss"])
    assert sum(rewards) + cost == pytest.approx(max(min(raw, 0.01), -0.01), abs=1e-9)


def test_divergence_is_penalised_only_where_the_reference_survived():
    # The reference (static at lr0) survives; pushing the LR up 30x diverges.
    env = LRControlEnv(digits_task(0.5), reward="paired", mode="recursive", max_factor=10.0,
                       lr_max=1e6, divergence_penalty=5.0)
    rewards, infos = _episode(env, 0, [1.0])
    assert infos[-1]["diverged"] and not env._reference.diverged
    initial = infos[0]["val_loss"]
    before_end = math.log(env._reference.loss_at(len(rewards), initial) / initial)
    assert sum(rewards) == pytest.approx(before_end - 5.0, abs=1e-9)
    # lr0 far too high: the reference diverges; the same divergence costs no penalty...
    hot = LRControlEnv(digits_task(20.0), reward="paired", mode="recursive", max_factor=10.0,
                       divergence_penalty=5.0, lr_min=1e-6)
    rewards, infos = _episode(hot, 0, [0.0])
    assert hot._reference.diverged and infos[-1]["diverged"]
    assert sum(rewards) == pytest.approx(0.0, abs=1e-9)
    # ...and surviving it pays: the loss it reached, against the untrained model's, plus
    # the penalty's worth.
    rewards, infos = _episode(hot, 0, [-1.0])
    assert not infos[-1]["diverged"]
    want = min(math.log(infos[0]["val_loss"] / infos[-1]["val_loss"]), 3.0) + 5.0
    assert sum(rewards) == pytest.approx(want, abs=1e-9)


def test_the_key_names_task_seed_budget_and_rule():
    from lr_gym.config import EnvConfig

    task, c = blob_task(), EnvConfig(reward="paired")
    k = reference_key(task, c, 7, 40, 8, "cpu")
    assert k == reference_key(blob_task(), c, 7, 40, 8, "cpu")
    others = [reference_key(task, c, 8, 40, 8, "cpu"),
              reference_key(task, c, 7, 48, 8, "cpu"),
              reference_key(dataclasses.replace(task, lr=0.2), c, 7, 40, 8, "cpu"),
              reference_key(task, c.replace(reference="base", schedule="cosine"), 7, 40, 8,
                            "cpu"),
              reference_key(task, c.replace(event_prob=0.5), 7, 40, 8, "cpu"),
              reference_key(task, c.replace(torch_threads=2), 7, 40, 8, "cpu")]
    assert k not in others and len(set(others)) == len(others)
    # What the agent does, sees or is paid does not name the reference.
    assert k == reference_key(task, c.replace(mode="anchored", max_factor=4.0, action_cost=1.0,
                                              features=("progress",)), 7, 40, 8, "cpu")


def test_cache_reuses_in_memory_and_on_disk(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return ReferenceRun((1.0, 0.5), False)

    cache = ReferenceCache(tmp_path)
    assert cache.get("k", compute) == cache.get("k", compute) == ReferenceRun((1.0, 0.5), False)
    fresh = ReferenceCache(tmp_path)  # another process, same folder
    assert fresh.get("k", compute).val_losses == (1.0, 0.5)
    assert len(calls) == 1 and fresh.hits == 1
    (tmp_path / "k.json").write_text("{broken")  # unreadable: recomputed, rewritten
    assert ReferenceCache(tmp_path).get("k", compute).val_losses == (1.0, 0.5)
    assert len(calls) == 2 and json.loads((tmp_path / "k.json").read_text())["diverged"] is False
    assert not list(tmp_path.glob(".*.tmp"))
    fresh.clear()  # forgets memory and counts, keeps the folder
    assert (fresh.hits, fresh.misses) == (0, 0)
    assert fresh.get("k", compute).val_losses == (1.0, 0.5) and len(calls) == 2
    assert fresh.hits == 1
    assert fresh.runs() == [ReferenceRun((1.0, 0.5), False)]
    assert fresh.compute_cpu_s == 0.0  # it computed none
    busy = ReferenceCache()
    busy.get("b", lambda: (sum(range(300_000)), ReferenceRun((1.0,), False))[1])
    assert busy.compute_cpu_s > 0.0


def test_a_reference_counts_the_interval_it_diverged_in():
    assert ReferenceRun((1.0, 0.5, 0.4), False).decisions == 2
    assert ReferenceRun((1.0, 0.5), True).decisions == 2  # trained 2, diverged in the 2nd


WORKER = """
import json, sys
import numpy as np
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.reference import CACHE
from tests.helpers import blob_task
env = LRControlEnv(blob_task(lr=0.05), reward="paired", mode="recursive")
losses = []
for seed in (0, 1, 0):
    env.reset(seed=seed)
    losses.append(list(env._reference.val_losses))
print(json.dumps({"losses": losses, "hits": CACHE.hits, "misses": CACHE.misses}))
"""


def test_reference_cache_shared_by_two_processes(tmp_path):
    env = {**os.environ, CACHE_ENV: str(tmp_path / "refs"), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert outs[0]["losses"] == outs[1]["losses"]
    assert outs[0]["losses"][0] == outs[0]["losses"][2] != outs[0]["losses"][1]
    assert len(list((tmp_path / "refs").glob("*.json"))) == 2  # one file per (task, seed)
    assert not list((tmp_path / "refs").glob(".*"))  # no leftovers of concurrent writes
    for out in outs:
        assert out["hits"] >= 1  # the repeated seed came from the cache
    # A third process computes nothing.
    third = json.loads(subprocess.run([sys.executable, "-c", WORKER], env=env, cwd=ROOT,
                                      capture_output=True, text=True, timeout=300).stdout)
    assert third["misses"] == 0 and third["losses"] == outs[0]["losses"]


def test_process_cache_is_used_by_envs():
    before = CACHE.misses
    env = LRControlEnv(blob_task(lr=0.05), reward="paired")
    env.reset(seed=123)
    env.reset(seed=123)
    assert CACHE.misses == before + 1
