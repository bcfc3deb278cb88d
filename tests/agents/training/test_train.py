from __future__ import annotations

import errno
import pickle
import re

import numpy as np
import pytest
import yaml

from agents.common.runs import mark_complete, trained_run
from agents.training.cli import main
from agents.training.seeds import train_seeds
from lr_gym.config import EnvConfig
from lr_gym.features import OBS_DIM


def _fake_run(root, name, seed, n, model=True, interrupted=False):
    run = root / "ppo" / name
    run.mkdir(parents=True)
    (run / "config.yml").write_text(yaml.safe_dump({"seed": seed,
                                                    "hyperparams": {"n_timesteps": n}}))
    if model:
        (run / "model.zip").write_bytes(b"zip")
        mark_complete(run, interrupted=interrupted)
    return run


def test_trained_run_matches_seed_budget_and_a_finished_model(tmp_path):
    done = _fake_run(tmp_path, "EmbeddedMix-v1_1", 0, 64)
    _fake_run(tmp_path, "EmbeddedMix-v1_2", 1, 64, model=False)  # killed before saving
    assert trained_run(tmp_path, 0, 64) == done
    assert trained_run(tmp_path, 0, 128) is None
    assert trained_run(tmp_path, 1, 64) is None


def test_trained_run_needs_the_completion_marker_and_a_whole_budget(tmp_path):
    cut = _fake_run(tmp_path, "EmbeddedMix-v1_1", 0, 64, model=False)
    (cut / "model.zip").write_bytes(b"PK\x03\x04 truncated by a full disk")
    _fake_run(tmp_path, "EmbeddedMix-v1_2", 0, 64, interrupted=True)  # Ctrl-C: fewer steps
    assert trained_run(tmp_path, 0, 64) is None


def test_train_seeds_reuses_finished_runs(tmp_path, monkeypatch):
    import agents.training.seeds

    done = _fake_run(tmp_path, "EmbeddedMix-v1_3", 3, 64)
    monkeypatch.setattr(agents.training.seeds, "main",
                        lambda argv: (_ for _ in ()).throw(AssertionError))
    assert train_seeds(tmp_path, [3], 64) == [done]  # nothing trained again


def test_train_seeds_resumes_a_stopped_run_from_its_last_checkpoint(tmp_path, monkeypatch):
    import agents.training.seeds

    cut = _fake_run(tmp_path, "TrainFamilies-v1_1", 2, 100, model=False)  # killed
    (cut / "checkpoints").mkdir()
    for steps in (16, 48):
        (cut / "checkpoints" / f"model_{steps}_steps.zip").write_bytes(b"zip")
    _fake_run(tmp_path, "TrainFamilies-v1_2", 5, 100, model=False)  # another seed
    calls = []

    def fake_main(argv):
        calls.append(argv)
        run = tmp_path / "ppo" / "TrainFamilies-v1_3"  # what -i writes: a new run
        run.mkdir()
        (run / "config.yml").write_text(yaml.safe_dump({
            "seed": 2, "hyperparams": {"n_timesteps": 52},
            "trained_agent": argv[argv.index("-i") + 1]}))
        mark_complete(run, num_timesteps=112)  # counts on from the checkpoint
        return 0

    monkeypatch.setattr(agents.training.seeds, "main", fake_main)
    runs = train_seeds(tmp_path, [2], 100, env_id="lr_gym/TrainFamilies-v1")
    argv = calls[0]
    assert argv[argv.index("-i") + 1] == str(cut / "checkpoints" / "model_48_steps.zip")
    assert argv[argv.index("-n") + 1] == "52"  # the rest of the budget
    assert runs == [tmp_path / "ppo" / "TrainFamilies-v1_3"]
    assert trained_run(tmp_path, 2, 100) == runs[0]  # found again next time


# ------------------------------------------------- validated flags (issue #8)
TINY = ["--env", "lr_gym/Digits-MLP-v1", "--n-envs", "1", "--no-progress", "-v", "0",
        "--hyperparams", "n_steps:16", "batch_size:16", "n_epochs:1",
        "--env-kwargs", "total_steps:20", "steps_per_action:10"]


@pytest.mark.parametrize(("args", "message"), [
    (["-n", "0"], "n_timesteps must be >= 1"),
    (["-n", "-5"], "n_timesteps must be >= 1"),
    (["--n-envs", "0"], "n_envs must be >= 1"),
    (["--hyperparams", "n_steps:abc"], "n_steps must be a number, got 'abc'"),
    (["--hyperparams", "batch_size:0"], "batch_size must be >= 2"),
    (["--hyperparams", "learning_rte:1"], "Unknown PPO hyperparameter"),
    (["--env-kwargs", "total_steps:0"], "env_kwargs: total_steps must be >= 1"),
    (["--env-kwargs", "lr_max:-1"], "env_kwargs: lr_max must be"),
    (["--env-kwargs", "mode:sideways"], "env_kwargs: mode='sideways' is not valid"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["-i", "nowhere/model.zip"], "No model file nowhere/model.zip"),
    (["--env", "lr_gym/Nope-v1"], "unknown env id 'lr_gym/Nope-v1'"),
    (["--env-device", "toaster"], "device='toaster' is not a torch device"),
    (["--device", "toaster"], "device='toaster' is not a torch device"),
    (["--env-kwargs", "steps_per_action:50"], "steps_per_action (50) exceeds total_steps (20)"),
    # A list inside the feature list was "unhashable type: 'list'" (issue 36).
    (["--env-kwargs", "features:[[progress]]"],
     "env_kwargs: features must be a list of names, got ['progress'] in it; choose from"),
    (["--env-kwargs", "features:3"], "env_kwargs: features must be a list of names, got 3."),
])
def test_bad_flags_exit_2_before_any_run_folder(tmp_path, capsys, args, message):
    assert main([*TINY, "-f", str(tmp_path / "logs"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "logs").exists()


def test_bad_conf_file_exits_2_before_any_run_folder(tmp_path, capsys):
    conf = tmp_path / "hp.yml"
    for body, message in [({"default": {"n_steps": "abc"}}, "n_steps must be a number"),
                          ({"default": {"batch_size": 0}}, "batch_size must be >= 2")]:
        conf.write_text(yaml.safe_dump(body))
        assert main(["-conf", str(conf), "-f", str(tmp_path / "logs"), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


DEEP = "[" * 500 + "]" * 500


@pytest.mark.parametrize("flag", ["--env-kwargs", "--hyperparams"])
def test_a_value_nested_500_deep_is_one_error_line(tmp_path, capsys, flag):
    # A RecursionError traceback before (issue 36): _key_value caught only YAML errors.
    with pytest.raises(SystemExit) as exit_:
        main([*TINY, "-f", str(tmp_path / "logs"), flag, f"features:{DEEP}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert line.endswith("the value is nested too deeply to be an option; pass a flat value "
                         "or list") and len(line) < 300
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(("body", "message"), [
    (f"default: {DEEP}\n".encode(), r"hp\.yml is not a hyperparameter YAML file \(nested too "
                                    r"deeply\); pass a YAML mapping"),
    (b"default: {n_steps: [1,\n", r"hp\.yml is not a hyperparameter YAML file \(while parsing"),
    (b"\xff\xfe\x00\x01", r"hp\.yml is not a hyperparameter YAML file \("),
    (b"- 1\n- 2\n", r"hp\.yml holds a YAML list, not a mapping of env ids"),
])
def test_a_conf_file_that_is_no_yaml_mapping_is_one_error_line(tmp_path, capsys, body, message):
    conf = tmp_path / "hp.yml"
    conf.write_bytes(body)
    assert main(["-conf", str(conf), "-f", str(tmp_path / "logs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.search(r"^error: .*" + message, err), err
    assert not (tmp_path / "logs").exists()


def test_key_value_flags_are_parsed_as_yaml():
    from agents.training.cli import build_parser

    args = build_parser().parse_args(["--hyperparams", "n_steps:128", "learning_rate:3e-4",
                                      "net_arch:[8, 8]", "--env-kwargs", "mode:anchored",
                                      "lr_max:inf", "eval_test:false"])
    assert dict(args.hyperparams) == {"n_steps": 128, "learning_rate": 3e-4, "net_arch": [8, 8]}
    assert dict(args.env_kwargs) == {"mode": "anchored", "lr_max": float("inf"),
                                     "eval_test": False}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--hyperparams", "n_steps"])  # no colon: argparse error
    twice = build_parser().parse_args(["--env-kwargs", "mode:anchored", "--env-kwargs",
                                       "max_factor:4"])
    assert dict(twice.env_kwargs) == {"mode": "anchored", "max_factor": 4}  # both kept


def test_tensorboard_flag_names_the_extra_when_missing(tmp_path, capsys, monkeypatch):
    import agents.training.cli

    monkeypatch.setattr(agents.training.cli, "_tensorboard_available", lambda: False)
    assert main([*TINY, "-f", str(tmp_path / "logs"), "-tb", str(tmp_path / "tb")]) == 2
    assert "pip install 'lr-gym[tensorboard]'" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_tensorboard_flag_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    assert main([*TINY, "-n", "16", "--eval-freq", "0", "--save-freq", "0",
                 "-f", str(tmp_path / "logs"), "-tb", str(tmp_path / "tb")]) == 0
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


# ------------------------------------------- checkpoints, resume, disk full
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run with a checkpoint every rollout and periodic evaluation (a few seconds)."""
    logs = tmp_path_factory.mktemp("train") / "logs"
    assert main([*TINY, "-n", "48", "--save-freq", "16", "--eval-freq", "16",
                 "--eval-episodes", "1", "--env-kwargs", "total_steps:20",
                 "steps_per_action:10", "mode:recursive", "-f", str(logs)]) == 0
    return logs / "ppo" / "Digits-MLP-v1_1"


@pytest.mark.slow
def test_a_run_folder_has_every_file_and_the_marker_last(trained):
    from agents.common.runs import completion

    for name in ("model.zip", "vecnormalize.pkl", "controller.safetensors", "config.yml"):
        assert (trained / name).is_file(), name
        assert (trained / "complete.json").stat().st_mtime >= (trained / name).stat().st_mtime
    assert completion(trained) == {"num_timesteps": 48, "start": 0, "interrupted": False,
                                   "seconds": completion(trained)["seconds"],
                                   "files": ["model.zip", "vecnormalize.pkl",
                                             "controller.safetensors"]}
    assert not list(trained.rglob(".*.tmp*"))  # no temporary file left behind


@pytest.mark.slow
@pytest.mark.parametrize("which", ["checkpoints/model_16_steps.zip", "best/best_model.zip"])
def test_checkpoints_keep_their_normalisation_and_config(trained, which):
    from agents.deploy import PolicyController, controller_file_for
    from agents.training.ppo import PPOController

    path = trained / which
    ckpt = PPOController.load(path, device="cpu")
    norm_file = (path.parent / "vecnormalize_16_steps.pkl" if "checkpoints" in which
                 else path.parent / "vecnormalize.pkl")
    with open(norm_file, "rb") as f:
        own = pickle.load(f)
    np.testing.assert_array_equal(ckpt.obs_mean, own.obs_rms.mean)  # its own statistics
    # The flags' env options over the packaged ones (anchored mode on a cosine base).
    assert ckpt.env_kwargs() == {"total_steps": 20, "steps_per_action": 10, "mode": "recursive",
                                 "schedule": "cosine", "max_factor": 4.0}
    final = PPOController.load(trained, device="cpu")
    if "checkpoints" in which:  # the run's final statistics differ: they would change actions
        assert not np.array_equal(final.obs_mean, ckpt.obs_mean)
    safe = PolicyController.load(path)
    assert controller_file_for(path).is_file()
    # The same action rule and features (the file leaves out values equal to the env's
    # defaults, and the budget: the evaluation owns its protocol).
    from agents.controller import POLICY_FIELDS

    ours, theirs = EnvConfig(**safe.env_kwargs()), EnvConfig(**ckpt.env_kwargs())
    assert all(getattr(ours, f) == getattr(theirs, f) for f in POLICY_FIELDS)
    assert "total_steps" not in safe.env_kwargs()
    obs = np.random.default_rng(0).normal(0, 1, (100, OBS_DIM)).astype(np.float32)
    for o in obs:
        np.testing.assert_array_equal(safe.act(o, {}), ckpt.act(o, {}))


@pytest.mark.slow
def test_resume_from_a_checkpoint_restores_normalisation_and_counts_on(trained):
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from agents.common.runs import completion, run_files
    from agents.training.envs import env_factory
    from agents.training.ppo import PPOHyperparams, load_model
    from agents.training.run_folder import load_for_resume

    ckpt = trained / "checkpoints" / "model_16_steps.zip"
    files = run_files(ckpt)
    hp = PPOHyperparams.from_dict(yaml.safe_load(files.config.read_text())["hyperparams"])
    venv = make_vec_env(env_factory(["lr_gym/Digits-MLP-v1"], hp.env_kwargs), n_envs=1)
    model, vn = load_for_resume(files, venv, hp, "cpu")
    with open(files.vecnormalize, "rb") as f:
        saved = pickle.load(f)
    np.testing.assert_array_equal(vn.obs_rms.mean, saved.obs_rms.mean)
    np.testing.assert_array_equal(vn.obs_rms.var, saved.obs_rms.var)
    assert vn.obs_rms.count == saved.obs_rms.count and vn.training
    reference = load_model(ckpt, device="cpu").policy.state_dict()
    for k, v in model.policy.state_dict().items():
        torch.testing.assert_close(v, reference[k], rtol=0, atol=0)
    assert model.num_timesteps == 16
    vn.close()

    logs = trained.parent.parent
    assert main([*TINY, "-i", str(ckpt), "-n", "16", "--save-freq", "0", "--eval-freq", "0",
                 "-f", str(logs)]) == 0
    resumed = logs / "ppo" / "Digits-MLP-v1_2"
    done = completion(resumed)
    assert (done["start"], done["num_timesteps"]) == (16, 32)  # counted on, not reset
    config = yaml.safe_load((resumed / "config.yml").read_text())
    assert config["trained_agent"] == str(ckpt.resolve())
    assert config["hyperparams"]["env_kwargs"]["mode"] == "recursive"  # the agent's own


@pytest.mark.slow
def test_disk_full_at_save_leaves_no_truncated_model_and_no_marker(tmp_path, capsys,
                                                                   monkeypatch):
    from stable_baselines3 import PPO

    from agents.common.runs import latest_run

    def full_disk(self, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PPO, "save", full_disk)
    logs = tmp_path / "logs"
    assert main([*TINY, "-n", "16", "--save-freq", "0", "--eval-freq", "0", "-f",
                 str(logs)]) == 1
    err = capsys.readouterr().err
    assert "error: could not save the agent" in err and "No space left on device" in err
    run = logs / "ppo" / "Digits-MLP-v1_1"
    assert not (run / "model.zip").exists() and not (run / "complete.json").exists()
    assert not list(run.glob(".*.tmp*"))
    with pytest.raises(FileNotFoundError, match="No trained agent"):
        latest_run(logs)


def test_ctrl_c_during_setup_exits_130_and_leaves_no_run_folder(tmp_path, capsys,
                                                                 monkeypatch):
    import agents.training.ppo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(agents.training.ppo, "make_ppo", interrupted)  # Ctrl-C while building PPO
    logs = tmp_path / "logs"
    assert main([*TINY, "-n", "16", "--save-freq", "0", "--eval-freq", "0", "-f",
                 str(logs)]) == 130
    assert "Interrupted before training started" in capsys.readouterr().err
    assert list((logs / "ppo").iterdir()) == []


def test_a_second_ctrl_c_while_closing_the_envs_keeps_the_finished_run(tmp_path, capsys,
                                                                       monkeypatch):
    import agents.training.cli
    from agents.common.runs import completion

    def interrupted(venv):
        raise KeyboardInterrupt  # Ctrl-C while the workers finish their step

    monkeypatch.setattr(agents.training.cli, "_close", interrupted)
    logs = tmp_path / "logs"
    assert main([*TINY, "-n", "16", "--save-freq", "0", "--eval-freq", "0", "-f",
                 str(logs)]) == 0
    assert "before training started" not in capsys.readouterr().err
    assert completion(logs / "ppo" / "Digits-MLP-v1_1")["num_timesteps"] == 16
