"""benchmarks/train_at_scale.py bookkeeping on fake run folders (training runs for hours)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks.train_at_scale import candidates, lineage, reward_curve, select, training_stats


def _run(root: Path, name: str, *, seed: int = 0, parent: str | None = None,
         done: dict | None = None, episodes: list[tuple[float, int]] = (),
         checkpoints: tuple[int, ...] = ()) -> Path:
    run = root / name
    (run / "monitor").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "config.yml").write_text(yaml.safe_dump({"seed": seed, "trained_agent": parent}))
    # Two envs' monitor files; episodes alternate between them, time-ordered by "t".
    for env in (0, 1):
        rows = [f"{r},{ln},{t}" for t, (r, ln) in enumerate(episodes) if t % 2 == env]
        (run / "monitor" / f"{env}.monitor.csv").write_text(
            '#{"t_start": 0}\nr,l,t\n' + "".join(row + "\n" for row in rows))
    for steps in checkpoints:
        (run / "checkpoints" / f"controller_{steps}_steps.safetensors").write_bytes(b"")
        (run / "checkpoints" / f"model_{steps}_steps.zip").write_bytes(b"")
    if done is not None:
        (run / "complete.json").write_text(json.dumps(done))
    return run


def test_a_resumed_run_is_one_lineage_with_its_timed_steps_and_reward_curve(tmp_path):
    # Piece 1 was killed after its 40-step checkpoint (no complete.json); its episodes past
    # step 40 were discarded by the resume. Piece 2 resumed there and finished at 100.
    first = _run(tmp_path, "R_1", episodes=[(-1.0, 10)] * 5, checkpoints=(20, 40))
    second = _run(tmp_path, "R_2", parent=str(first / "checkpoints" / "model_40_steps.zip"),
                  done={"num_timesteps": 100, "start": 40, "seconds": 30.0},
                  episodes=[(1.0, 20)] * 3, checkpoints=(60, 80))
    assert lineage(second) == [first, second] and lineage(first) == [first]
    stats = training_stats(second)
    assert stats["pieces"] == 2 and stats["num_timesteps"] == 100
    assert stats["timed_steps"] == 60 and stats["seconds"] == 30.0 and stats["steps_per_s"] == 2.0
    # Steps 1-40: piece 1's first four episodes (the fifth ends at 50, after the resume
    # point); 41-100: piece 2's three.
    assert reward_curve(second, 50) == [
        {"steps": 50, "episodes": 4, "mean_reward": -1.0},
        {"steps": 100, "episodes": 3, "mean_reward": 1.0},
    ]
    # Candidates: the checkpoint nearest each 50 steps, then the final agent.
    assert candidates(second, 50) == [first / "checkpoints" / "controller_40_steps.safetensors",
                                      second]


def test_selection_takes_the_best_dev_iqm_and_keeps_the_shipped_one_on_ties():
    rows = [{"seed": 0, "steps": 10, "iqm_test": 0.8}, {"seed": 1, "steps": 20, "iqm_test": 0.9},
            {"seed": 2, "steps": 30, "iqm_test": 0.9}]
    assert select(rows) is rows[2]  # equal IQM: the later checkpoint
    shipped = {"seed": None, "steps": None, "iqm_test": 0.9}
    assert select([*rows, shipped]) is shipped
    better = {"seed": 0, "steps": 40, "iqm_test": 0.91}
    assert select([*rows, shipped, better]) is better
