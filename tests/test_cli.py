"""CLI smoke tests: the real scripts in subprocesses, with tiny budgets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agents.evaluation.results import read_decisions

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _sigint_default() -> None:
    # A suite started in the background (`pytest &`) passes SIGINT on ignored, and Python
    # then installs no KeyboardInterrupt handler: restore it so the CLI sees the Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_or_kill(proc: subprocess.Popen, group: bool = False) -> tuple[str, str]:
    """``proc.communicate`` that kills the CLI (and its env workers) if it hangs."""
    try:
        return proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        proc.communicate()
        raise


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600
    )


@pytest.mark.parametrize("script", ["train_agent.py", "evaluate_agent.py"])
def test_help(script, tmp_path):
    out = run(str(ROOT / script), "--help", cwd=tmp_path)
    assert out.returncode == 0
    for flag in ("--env", "--seed" if script == "train_agent.py" else "--seeds", "--device",
                 "--log-folder"):
        assert flag in out.stdout
    help_text = " ".join(out.stdout.split())
    assert "(default: None)" not in help_text
    assert not re.search(r"\(default: [^)]*\)\. \(default:", help_text)  # said twice


@pytest.mark.slow
def test_train_then_evaluate(tmp_path):
    out = run(
        str(ROOT / "train_agent.py"), "--env", "lr_gym/Digits-MLP-v1", "-n", "64", "--seed", "1",
        "--n-envs", "1", "--eval-freq", "32", "--eval-episodes", "1", "--save-freq", "32",
        "--no-progress", "-f", "logs", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "logs" / "ppo" / "Digits-MLP-v1_1"
    for name in ("model.zip", "vecnormalize.pkl", "config.yml", "evaluations.npz",
                 "controller.safetensors", "complete.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("model_*_steps.zip"))
    for ckpt in (run_dir / "checkpoints").glob("model_*_steps.zip"):  # each one whole
        steps = ckpt.stem.split("_")[1]
        for name in (f"vecnormalize_{steps}_steps.pkl", f"controller_{steps}_steps.safetensors"):
            assert (run_dir / "checkpoints" / name).is_file(), name
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert config["env"] == ["lr_gym/Digits-MLP-v1"] and config["seed"] == 1
    assert config["hyperparams"]["n_timesteps"] == 64

    out = run(
        str(ROOT / "evaluate_agent.py"), "--env", "lr_gym/Wine-MLP-v1", "--seeds", "0", "1",
        "--target-seeds", "7", "--baselines", "static", "warmup_cosine", "replay",
        "learned_schedule", "fixed_decay", "--control-envs", "lr_gym/Wine-MLP-v1",
        "--control-seeds", "3", "--tuning-budget", "2", "-f", "logs", "-o", "ev", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    controls = ("replay", "learned_schedule", "fixed_decay")
    for ctrl in ("ppo", "static", "warmup_cosine", *controls):
        assert f"| lr_gym/Wine-MLP-v1 | {ctrl} |" in out.stdout
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["meta"]["agents"][0].endswith("Digits-MLP-v1_1")
    assert set(results["tracks"]) == {"self", "external"}
    runs = [json.loads(x) for x in (tmp_path / "ev" / "runs.jsonl").read_text().splitlines()]
    assert {r["controller"] for r in runs} == {"ppo", "static", "warmup_cosine", *controls}
    # The controls were fixed on the control env's own runs (cached by the agent's digest).
    open_loop = results["meta"]["open_loop"]
    (fixed,) = open_loop.values()
    assert fixed["envs"] == ["lr_gym/Wine-MLP-v1"] and fixed["seeds"] == [3]
    assert fixed["fixed_decay"] in fixed["dev_scores"]
    assert list((tmp_path / "logs" / "open_loop").glob("*/controls.json"))
    assert "Open-loop controls" in (tmp_path / "ev" / "table.md").read_text()
    decisions = read_decisions(tmp_path / "ev" / "decisions.jsonl.gz")
    assert len(decisions) == len(runs)
    ppo = [d for d in decisions if d["controller"] == "ppo"]
    assert ppo and all(len(d["features"]["values"]) == len(d["decisions"]["lr"]) for d in ppo)
    assert not any((d["agent"] or "").startswith("/") for d in decisions)  # no machine paths
    for track in ("self", "external"):
        for name in (f"curves_{track}.png", f"profiles_{track}.png"):
            assert (tmp_path / "ev" / name).stat().st_size > 1000, name
    assert (tmp_path / "logs" / "tuning_cache.json").is_file()


def test_bad_input_gives_clear_errors(tmp_path):
    out = run(str(ROOT / "train_agent.py"), "--env", "lr_gym/Nope-v1", "-f", "logs", cwd=tmp_path)
    assert out.returncode == 2 and "unknown env id 'lr_gym/Nope-v1'" in out.stderr
    assert not (tmp_path / "logs").exists()  # nothing half-made
    out = run(str(ROOT / "evaluate_agent.py"), "-f", "logs", cwd=tmp_path)
    assert out.returncode == 2 and "No trained agent" in out.stderr
    out = run(str(ROOT / "evaluate_agent.py"), "--agent", "none", "--baselines", "magic",
              cwd=tmp_path)
    assert out.returncode == 2 and "unknown baseline 'magic'" in out.stderr
    out = run(str(ROOT / "evaluate_agent.py"), "--agent", "none", "--seeds", "10000",
              cwd=tmp_path)
    assert out.returncode == 2 and "reserved for tuning" in out.stderr


@pytest.mark.slow
def test_ctrl_c_keeps_the_agent(tmp_path):
    import time

    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train_agent.py"), "--env", "lr_gym/Digits-MLP-v1",
         "-n", "100000", "--n-envs", "1", "--eval-freq", "0", "--no-progress", "-f", "logs",
         "--env-kwargs", "total_steps:20", "steps_per_action:10"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        preexec_fn=_sigint_default,
    )
    run_dir = tmp_path / "logs" / "ppo" / "Digits-MLP-v1_1"
    monitor = run_dir / "monitor" / "0.monitor.csv"
    deadline = time.time() + 180
    while time.time() < deadline and (
            not monitor.exists() or len(monitor.read_text().splitlines()) < 4):
        time.sleep(0.3)  # until it has trained a little, not a fixed sleep: setup may be slow
    proc.send_signal(signal.SIGINT)
    _, err = _wait_or_kill(proc)
    assert proc.returncode == 130, err
    assert "Interrupted: saving" in err
    assert (run_dir / "model.zip").is_file() and (run_dir / "vecnormalize.pkl").is_file()


@pytest.mark.slow
def test_ctrl_c_with_subprocess_envs_saves_and_exits_130(tmp_path):
    import time

    # A terminal's Ctrl-C goes to the whole process group, env workers included.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train_agent.py"), "--env", "lr_gym/Digits-MLP-v1",
         "-n", "100000", "--n-envs", "2", "--eval-freq", "0", "--no-progress", "-f", "logs",
         "--env-kwargs", "total_steps:20", "steps_per_action:10"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        start_new_session=True, preexec_fn=_sigint_default,
    )
    run_dir = tmp_path / "logs" / "ppo" / "Digits-MLP-v1_1"
    monitor = run_dir / "monitor" / "0.monitor.csv"
    deadline = time.time() + 180
    while time.time() < deadline and (
            not monitor.exists() or len(monitor.read_text().splitlines()) < 4):
        time.sleep(0.3)  # until the workers have finished episodes: mid-rollout
    os.killpg(proc.pid, signal.SIGINT)
    out, err = _wait_or_kill(proc, group=True)
    assert proc.returncode == 130, err
    assert "EOFError" not in err and "Traceback" not in err, err
    assert f"Saved {Path('logs') / 'ppo' / 'Digits-MLP-v1_1' / 'model.zip'}" in err
    for name in ("model.zip", "vecnormalize.pkl", "controller.safetensors"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "complete.json").read_text())["interrupted"] is True


@pytest.mark.slow
def test_bad_training_flags_exit_2_without_a_run_folder(tmp_path):
    (tmp_path / "bad.yml").write_text("default:\n  n_steps: abc\n")
    for args, message in [(["-n", "0"], "n_timesteps must be >= 1"),
                          (["-conf", "bad.yml"], "n_steps must be a number, got 'abc'"),
                          (["--n-envs", "0"], "n_envs must be >= 1")]:
        out = run(str(ROOT / "train_agent.py"), *args, "-f", "logs", cwd=tmp_path)
        assert out.returncode == 2 and f"error: {message}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_resume_and_export_from_the_command_line(tmp_path):
    tiny = ["--env", "lr_gym/Digits-MLP-v1", "--n-envs", "1", "--eval-freq", "0",
            "--no-progress", "-f", "logs", "--hyperparams", "n_steps:16", "batch_size:16",
            "--env-kwargs", "total_steps:20", "steps_per_action:10"]
    out = run(str(ROOT / "train_agent.py"), *tiny, "-n", "32", "--save-freq", "16",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ckpt = Path("logs") / "ppo" / "Digits-MLP-v1_1" / "checkpoints" / "model_16_steps.zip"
    out = run(str(ROOT / "train_agent.py"), *tiny, "-i", str(ckpt), "-n", "16",
              "--save-freq", "0", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "continuing" in out.stdout
    done = json.loads((tmp_path / "logs" / "ppo" / "Digits-MLP-v1_2" / "complete.json")
                      .read_text())
    assert (done["start"], done["num_timesteps"]) == (16, 32)
    # A damaged zip: an error line naming the file, for export and resume alike.
    bad = tmp_path / "logs" / "ppo" / "Digits-MLP-v1_1" / "model.zip"
    bad.write_bytes(bad.read_bytes()[:-100])
    out = run("-m", "agents.deploy", "export", "--agent", str(bad.parent), cwd=tmp_path)
    assert out.returncode == 2 and f"error: {bad} is not a readable SB3 model" in out.stderr
    out = run(str(ROOT / "train_agent.py"), "-i", str(bad.parent), "-f", "logs", cwd=tmp_path)
    assert out.returncode == 2 and f"error: {bad} is not a readable SB3 model" in out.stderr
    assert not (tmp_path / "logs" / "ppo" / "Digits-MLP-v1_3").exists()


@pytest.mark.slow
def test_evaluation_resumes_after_kill(tmp_path):
    import time

    args = [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", "none", "--env",
            "lr_gym/Wine-MLP-v1", "--seeds", "0", "1", "2", "--baselines", "static", "cosine",
            "step", "--track", "self", "--target-seeds", "7", "--no-plot", "--no-progress",
            "-o", "ev"]
    import psutil

    # Output to files, not pipes: the worker processes would hold pipes open.
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = tmp_path / "ev" / "runs.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.2)
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)  # the main process only, the hardest case
    proc.wait(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, "worker processes outlived the killed evaluation"
    before = log.read_text().splitlines()
    assert 2 <= len(before) < 10
    with open(log, "a") as f:
        f.write('{"env_id": "lr_gym/Wine')  # a line cut off by the kill
    out = subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"Resuming: {len(before)} finished runs" in out.stderr
    after = [x for x in log.read_text().splitlines() if x.endswith("}")]
    assert after[: len(before)] == before  # finished runs were kept, not redone
    keys = {(r["controller"], r["seed"], r["role"]) for r in map(json.loads, after)}
    assert len(keys) == len(after) == 9 + 1  # 3 controllers x 3 seeds + 1 target run


def test_train_refuses_test_split_ids(tmp_path):
    out = run(str(ROOT / "train_agent.py"), "--env", "lr_gym/Seq-GRU-v1", "-f", "logs",
              cwd=tmp_path)
    assert out.returncode == 2
    assert "'lr_gym/Seq-GRU-v1' belong(s) to the test split" in out.stderr
    assert "must not be used for training" in out.stderr and "lr_gym/EmbeddedMix-v1" in out.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_an_evaluation_keeps_its_runs_and_resumes(tmp_path, workers):
    import time

    args = [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", "none", "--env",
            "lr_gym/Wine-MLP-v1", "--seeds", "0", "1", "2", "3", "--baselines", "static",
            "cosine", "step", "--track", "self", "--target-seeds", "7", "--no-plot",
            "--no-progress", "--workers", workers, "-o", "ev"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)
    log = tmp_path / "ev" / "runs.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole process group
    _, err = _wait_or_kill(proc, group=True)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rerun the same command to resume" in err
    kept = log.read_text().splitlines()
    assert 2 <= len(kept) < 13
    out = subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"Resuming: {len(kept)} finished runs" in out.stderr


@pytest.mark.slow
def test_bad_evaluation_and_training_input_is_one_error_line_leaving_nothing(tmp_path):
    (tmp_path / "afile").write_text("x")
    base = ["--agent", "none", "--env", "lr_gym/Wine-MLP-v1", "--baselines", "static",
            "--track", "self", "--seeds", "0", "--no-progress"]
    cases = [
        (["evaluate_agent.py", *base, "-f", "afile"], "is a file, not a folder"),
        (["evaluate_agent.py", *base, "-o", "afile"], "is a file, not a folder"),
        (["evaluate_agent.py", *base, "--gym-packages", "missing_module"],
         "no module named 'missing_module'"),
        (["evaluate_agent.py", "--agent", "none", "--seeds", "-1"], "seeds must be >= 0"),
        (["evaluate_agent.py", *base, "--device", "bogus"], "is not a torch device"),
        (["train_agent.py", "-f", "afile"], "is a file, not a folder"),
        (["train_agent.py", "--gym-packages", "missing_module"],
         "no module named 'missing_module'"),
    ]
    for argv, message in cases:
        out = run(str(ROOT / argv[0]), *argv[1:], cwd=tmp_path)
        assert out.returncode == 2, (argv, out.stderr)
        assert "Traceback" not in out.stderr and "error: " in out.stderr, (argv, out.stderr)
        assert message in out.stderr, (argv, out.stderr)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"], argv  # nothing made
