"""The evaluation CLI in-process on a tiny registered task (subprocess runs: tests/test_cli.py)."""

from __future__ import annotations

import json

import pytest

import lr_gym
from agents.evaluation.cli import main
from tests.helpers import blob_task

ENV = lr_gym.register_task(blob_task("EvalBlobs", total_steps=24, steps_per_action=8))


def _eval(tmp_path, *extra: str) -> int:
    return main(["--agent", "none", "--env", ENV, "--workers", "1", "--n-boot", "50",
                 "--no-plot", "--no-progress", "-f", str(tmp_path / "logs"), *extra])


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "1", "1"], "repeats a seed"),
    (["--seeds", "0", "1", "--target-seeds", "1", "2"], "both evaluation and target-setting"),
    (["--seeds", "10000"], "reserved for tuning"),
    (["--tuning-budget", "-3"], "--tuning-budget must be >= 0"),
    (["--tuning-budget", "0"], "use --track self"),
    (["--baselines", "magic"], "unknown baseline 'magic'"),
    (["--env", "lr_gym/Nope-v0"], "unknown env id 'lr_gym/Nope-v0'"),
])
def test_bad_input_is_refused_before_any_run(tmp_path, capsys, args, message):
    assert _eval(tmp_path, *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "logs" / "eval").exists()  # nothing half-made


def test_invocations_never_overwrite_each_other(tmp_path, capsys):
    common = ["--baselines", "static", "cosine", "--track", "self", "--target-seeds", "7"]
    assert _eval(tmp_path, *common, "--seeds", "0", "1") == 0
    assert _eval(tmp_path, *common, "--seeds", "2") == 0
    folders = sorted((tmp_path / "logs" / "eval").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("custom-") for f in folders)
    seeds = [json.loads((f / "invocation.json").read_text())["seeds"] for f in folders]
    assert sorted(seeds) == [[0, 1], [2]]
    # The same invocation again resumes: nothing is rerun.
    capsys.readouterr()
    assert _eval(tmp_path, *common, "--seeds", "2") == 0
    assert "Resuming: 3 finished runs" in capsys.readouterr().err
    # An explicit -o holding another invocation is refused, not mixed.
    assert _eval(tmp_path, *common, "--seeds", "3", "-o", str(folders[0])) == 2
    assert "differs in: seeds" in capsys.readouterr().err


def test_both_tracks_in_one_report(tmp_path, capsys):
    out = tmp_path / "ev"
    assert _eval(tmp_path, "--baselines", "static", "warmup_cosine", "--tuning-budget", "2",
                 "--seeds", "0", "1", "--target-seeds", "7", "-o", str(out)) == 0
    report = (out / "report.md").read_text()
    assert "## Self-tuning track" in report and "## External-tuning track" in report
    results = json.loads((out / "results.json").read_text())
    assert set(results["tracks"]) == {"self", "external"}
    assert results["meta"]["reference_tuned"] is True
    runs = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines()]
    targets = [r for r in runs if r["role"] == "target"]
    assert [(r["controller"], r["seed"]) for r in targets] == [("warmup_cosine", 7)]
    assert not targets[0]["test"]  # target-setting runs never touch the test split
    tuned = results["meta"]["tuned_lr0"]
    for track, summary in results["tracks"].items():
        for row in summary["rows"]:
            key = f"{ENV}|{row['controller']}"
            assert row["lr0"] == (tuned.get(key) if track == "external" else None)
    # Paired seeds: every controller starts from the same initial model on a seed.
    starts = {(r["seed"], r["val_loss"][0]) for r in runs if r["role"] == "eval"}
    assert len(starts) == 2
