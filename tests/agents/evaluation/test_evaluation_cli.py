"""The evaluation CLI in-process on a tiny registered task (subprocess runs: tests/test_cli.py)."""

from __future__ import annotations

import json

import pytest

import lr_gym
from agents.evaluation.cli import main
from tests.helpers import blob_task, edit_provenance, untrained_controller_file

ENV = "lr_gym/EvalBlobs-v1"


@pytest.fixture(autouse=True, scope="module")
def _registered():
    # Registered when the tests run, not at import: other modules list the built-in ids
    # while collecting.
    assert lr_gym.register_task(blob_task("EvalBlobs", total_steps=24,
                                          steps_per_action=8)) == ENV


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
    (["--env", "lr_gym/Nope-v1"], "unknown env id 'lr_gym/Nope-v1'"),
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


# ------------------------------------------------------ trust boundary (issue #8)
class _Payload:
    """Unpickling this runs code: it creates the file at ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _crafted_run(root, marker):
    """A run folder whose model.zip and vecnormalize.pkl run code when unpickled."""
    import base64
    import pickle
    import zipfile

    run = root / "ppo" / "Crafted_1"
    run.mkdir(parents=True)
    blob = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": blob}}
    with zipfile.ZipFile(run / "model.zip", "w") as z:
        z.writestr("data", json.dumps(data))
    (run / "vecnormalize.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    (run / "config.yml").write_text("env: [lr_gym/Digits-MLP-v1]\n")
    return run


@pytest.fixture(scope="module")
def controller_file(tmp_path_factory):
    return untrained_controller_file("lr_gym/Digits-MLP-v1",
                                     tmp_path_factory.mktemp("ctl") / "controller.safetensors")


def _eval_agent(tmp_path, agent, *extra):
    return main(["--agent", str(agent), "--env", ENV, "--workers", "1", "--n-boot", "50",
                 "--no-plot", "--no-progress", "--baselines", "static", "--track", "self",
                 "--seeds", "0", "--target-seeds", "7", "-f", str(tmp_path / "logs"),
                 "-o", str(tmp_path / "ev"), *extra])


def test_crafted_run_folder_never_runs_code(tmp_path, capsys, controller_file, monkeypatch):
    import pickle
    import warnings

    import rliable.library  # noqa: F401 - its import uses pickle: load it before refusing
    import torch

    marker = tmp_path / "pwned"
    run = _crafted_run(tmp_path, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pickle.loads((run / "vecnormalize.pkl").read_bytes())  # the payload is live...
    assert marker.exists()
    marker.unlink()
    from stable_baselines3.common.save_util import load_from_zip_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the payload's open file
        load_from_zip_file(run / "model.zip")  # ...in the SB3 zip too (what PPO.load does)
    assert marker.exists()
    marker.unlink()

    # Without a controller file: a clear error saying how to make one, and no code ran.
    assert _eval_agent(tmp_path, run) == 2
    err = capsys.readouterr().err
    assert "error: No controller file" in err and "python -m agents.deploy export --agent" in err
    assert "never do it for a run you did not make" in err
    assert not marker.exists()

    # With one, the evaluation runs from it alone: nothing is unpickled at all.
    (run / "controller.safetensors").write_bytes(controller_file.read_bytes())

    def refuse(*a, **k):
        raise AssertionError("evaluation unpickled something")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert _eval_agent(tmp_path, run) == 0
    assert not marker.exists()
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["meta"]["agents"] == [run.name]  # outside the working dir: no path
    assert any(r["controller"] == "ppo" for r in results["tracks"]["self"]["rows"])


def test_bad_controller_files_and_checkpoint_agents(tmp_path, capsys, controller_file):
    run = tmp_path / "logs" / "ppo" / "Env_1"
    (run / "checkpoints").mkdir(parents=True)
    raw = controller_file.read_bytes()
    (run / "controller.safetensors").write_bytes(raw[: len(raw) // 2])
    assert _eval_agent(tmp_path, run) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
    # A checkpoint is evaluated from its own controller file, named by it.
    (run / "checkpoints" / "model_64_steps.zip").write_bytes(b"never read")
    ckpt_ctl = run / "checkpoints" / "controller_64_steps.safetensors"
    ckpt_ctl.write_bytes(raw)
    assert _eval_agent(tmp_path, run / "checkpoints" / "model_64_steps.zip") == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["meta"]["agents"] == [ckpt_ctl.name]
    capsys.readouterr()
    assert _eval_agent(tmp_path, tmp_path / "nowhere") == 2
    assert "No agent at" in capsys.readouterr().err


def test_disk_full_at_report_time_is_a_clear_error_and_resumes(tmp_path, capsys, monkeypatch):
    import errno
    import pathlib

    real = pathlib.Path.write_text

    def full(self, *a, **k):
        if "report.md" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    out = tmp_path / "ev"
    args = ["--baselines", "static", "--track", "self", "--seeds", "0", "1", "--target-seeds",
            "7", "-o", str(out)]
    assert _eval(tmp_path, *args) == 1
    err = capsys.readouterr().err
    assert "error: the disk is full" in err and "No space left on device" in err
    assert "rerun the same command to resume" in err
    assert not (out / "report.md").exists() and not list(out.glob(".*.tmp*"))
    finished = len((out / "runs.jsonl").read_text().splitlines())
    assert finished == 3
    monkeypatch.setattr(pathlib.Path, "write_text", real)
    assert _eval(tmp_path, *args) == 0
    assert f"Resuming: {finished} finished runs" in capsys.readouterr().err
    assert (out / "report.md").is_file()


def test_the_invocation_names_each_agent_by_its_content(tmp_path):
    # A controller re-shipped at the same path is another agent: another folder.
    from agents.controller import load_controller_file

    out = tmp_path / "ev"
    assert _eval(tmp_path, "--agent", "pretrained", "--baselines", "static", "--track", "self",
                 "--seeds", "0", "--target-seeds", "7", "-o", str(out)) == 0
    invocation = json.loads((out / "invocation.json").read_text())
    assert invocation["agent_sha256"] == [load_controller_file("pretrained").sha256]


def test_one_agent_given_twice_is_refused_before_anything_runs(tmp_path, capsys,
                                                               controller_file):
    run = tmp_path / "logs" / "ppo" / "Env_1"
    run.mkdir(parents=True)
    (run / "controller.safetensors").write_bytes(controller_file.read_bytes())
    code = main(["--agent", str(run), str(run / "controller.safetensors"), "--env", ENV,
                 "--track", "self", "-f", str(tmp_path / "logs"), "-o", str(tmp_path / "ev")])
    assert code == 2
    assert "are the same controller" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_a_copy_with_only_its_provenance_edited_is_the_same_agent(tmp_path, capsys,
                                                                   controller_file):
    from agents.controller import load_controller_file

    copy = edit_provenance(controller_file, tmp_path / "copy.safetensors")
    assert load_controller_file(copy).sha256 != load_controller_file(controller_file).sha256
    code = main(["--agent", str(controller_file), str(copy), "--env", ENV, "--track", "self",
                 "-f", str(tmp_path / "logs"), "-o", str(tmp_path / "ev")])
    assert code == 2  # pooled twice before (issue 36)
    assert "are the same controller (weights and rule" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


# ------------------------------------------ one writer, damaged folders (issue 36)
SELF = ["--baselines", "static", "--track", "self", "--seeds", "0", "--target-seeds", "7"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_a_second_evaluation_into_a_held_folder_exits_at_once_naming_its_pid(tmp_path,
                                                                            capsys):
    from tests.agents.common.test_folder_lock import Holder

    out = tmp_path / "ev"
    holder = Holder(out)  # another process writing there
    try:
        assert _eval(tmp_path, *SELF, "-o", str(out)) == 2
        line = _one_error_line(capsys)
        assert f"{out} is being written by another process (PID {holder.proc.pid}" in line
        assert "wait for it to finish (or stop it), or pass another -o." in line
        assert sorted(p.name for p in out.iterdir()) == [".lr_gym.lock"]  # nothing written
    finally:
        holder.kill()  # SIGKILL: its lock is stale now
    assert _eval(tmp_path, *SELF, "-o", str(out)) == 0  # taken over
    assert (out / "report.md").is_file()


@pytest.mark.parametrize(("content", "detail"), [
    (b"", "JSONDecodeError"), (b'{"envs": ["lr_gym', "JSONDecodeError"),
    (b"\xff\xd8\xff\xe0 binary", "UnicodeDecodeError"), (b"[1, 2]", "ValueError: a JSON list"),
    (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
])
def test_an_unreadable_invocation_file_is_one_error_line_and_loses_nothing(tmp_path, capsys,
                                                                          content, detail):
    out = tmp_path / "ev"
    assert _eval(tmp_path, *SELF, "-o", str(out)) == 0
    runs = (out / "runs.jsonl").read_bytes()
    (out / "invocation.json").write_bytes(content)
    capsys.readouterr()
    assert _eval(tmp_path, *SELF, "-o", str(out)) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {out / 'invocation.json'} is unreadable ({detail}")
    assert line.endswith("move invocation.json aside and rerun (runs.jsonl is kept and "
                         "resumed), else pass another -o.")
    assert (out / "runs.jsonl").read_bytes() == runs
    assert (out / "invocation.json").read_bytes() == content


def test_a_run_store_line_that_is_not_utf8_is_redone(tmp_path, capsys):
    out = tmp_path / "ev"
    assert _eval(tmp_path, *SELF, "-o", str(out)) == 0
    lines = (out / "runs.jsonl").read_bytes().splitlines(keepends=True)
    (out / "runs.jsonl").write_bytes(lines[0] + b"\xff\xfe\x80 garbage\n" + b"".join(lines[1:]))
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"runs\.jsonl:2 is not UTF-8 text; skipped"):
        assert _eval(tmp_path, *SELF, "-o", str(out)) == 0  # a traceback before (issue 36)
    assert f"Resuming: {len(lines)} finished runs" in capsys.readouterr().err


def test_a_gym_packages_task_the_env_refuses_is_one_line_and_makes_nothing(
        tmp_path, capsys, monkeypatch):
    (tmp_path / "huge_task.py").write_text(
        "import dataclasses\n"
        "import lr_gym\n"
        "from tests.helpers import blob_task\n"
        "def make():\n"
        "    return dataclasses.replace(blob_task('HugeBlobs'), total_steps=10**12)\n"
        "lr_gym.register_task(make, name='HugeBlobs')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["--agent", "none", "--gym-packages", "huge_task", "--env",
                 "lr_gym/HugeBlobs-v1", *SELF, "--workers", "1", "-f", str(tmp_path / "logs"),
                 "-o", str(tmp_path / "ev")])
    assert code == 2
    line = _one_error_line(capsys)
    assert line == ("error: --env lr_gym/HugeBlobs-v1: Task 'HugeBlobs': total_steps must be "
                    "<= 10,000,000, got 1,000,000,000,000.")
    assert not (tmp_path / "ev").exists()  # invocation.json was left behind before
