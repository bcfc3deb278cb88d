from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from torch.utils.data import TensorDataset

import lr_gym  # noqa: F401 - registers the ids
from agents.deploy import (
    ControllerFileError,
    ControllerPolicy,
    LRController,
    export_controller,
    load_controller_file,
    main,
)
from agents.training.ppo import PPOController, PPOHyperparams, make_ppo
from lr_gym import features
from lr_gym.envs.lr_control import LRControlEnv
from lr_gym.features import OBS_DIM
from lr_gym.tasks import Task, TaskData

ROOT = Path(__file__).resolve().parents[2]


def make_run(root: Path, env_kwargs: dict, seed: int = 0) -> Path:
    """A run folder as train_agent.py writes it, with an untrained but lively policy."""
    obs_kwargs = {k: v for k, v in env_kwargs.items() if k == "features"}
    venv = VecNormalize(make_vec_env(lambda: gym.make("lr_gym/Digits-MLP-v1", **obs_kwargs),
                                     n_envs=1))
    model = make_ppo(venv, PPOHyperparams(n_steps=32), seed=seed, device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # big actions, so LRs differ visibly from the base schedule
        model.policy.action_net.weight.normal_(0.0, 0.3, generator=g)
    rng = np.random.default_rng(seed)
    dim = venv.observation_space.shape[0]
    venv.obs_rms.mean = rng.normal(0.0, 0.3, dim)
    venv.obs_rms.var = rng.uniform(0.2, 2.0, dim)
    run = root / "ppo" / f"run_{seed}"
    run.mkdir(parents=True)
    model.save(run / "model.zip")
    venv.save(str(run / "vecnormalize.pkl"))
    cfg = {"env": ["lr_gym/Digits-MLP-v1"], "hyperparams": {"env_kwargs": env_kwargs}}
    (run / "config.yml").write_text(yaml.safe_dump(cfg))
    return run


def exported_run(run: Path) -> Path:
    """The run with its controller file written (as train_agent.py writes it)."""
    if not (run / "controller.safetensors").is_file():
        export_controller(run, run / "controller.safetensors")
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), {"mode": "anchored", "warmup_frac": 0.1})


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    return export_controller(run_dir, tmp_path_factory.mktemp("out") / "c.safetensors")


def blob_task(lr: float = 0.1) -> Task:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (192,), generator=g)
    x = torch.randn(192, 8, generator=g) + 1.5 * y[:, None].float()
    data = TaskData(TensorDataset(x[:96], y[:96]), TensorDataset(x[96:144], y[96:144]),
                    TensorDataset(x[144:], y[144:]))
    return Task(
        name="blobs",
        model_fn=lambda: torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                             torch.nn.Dropout(0.2), torch.nn.Linear(16, 2)),
        data_fn=lambda: data,
        lr=lr,
        batch_size=16,
        total_steps=40,
        steps_per_action=8,
    )


def test_round_trip_gives_the_ppo_controllers_actions(run_dir, exported):
    ppo = PPOController.load(run_dir, device="cpu")
    policy = ControllerPolicy.load(exported)
    assert policy.env_config.warmup_frac == 0.1 and policy.env_config.mode == "anchored"
    assert policy.config["policy"] == {"net_arch": [64, 32], "activation": "relu",
                                       "obs_dim": OBS_DIM, "action_low": -1.0,
                                       "action_high": 1.0}
    obs = np.random.default_rng(1).normal(0, 1, size=(200, OBS_DIM)).astype(np.float32)
    ours = np.array([policy.act(o) for o in obs], dtype=np.float32)
    theirs = np.array([ppo.act(o, {})[0] for o in obs], dtype=np.float32)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.std() > 0.1 and np.mean(np.abs(ours) < 1) > 0.5  # varied, mostly unclipped
    assert LRController.from_run(exported_run(run_dir)).act(obs[0]) == ours[0]


def _env_trace(run: Path, task: Task, seed: int) -> dict:
    """One env episode under the PPO policy, with everything the env saw per step."""
    ppo = PPOController.load(run, device="cpu")
    trace = {"step_lr": [], "step_loss": [], "grad_norm": [], "info": [], "obs": [],
             "actions": [], "update_ratio": []}
    holder = {}

    def params():
        return [p for g in holder["env"]._optimizer.param_groups for p in g["params"]]

    def loss_fn(model, batch):
        trace["step_lr"].append(holder["env"]._optimizer.param_groups[0]["lr"])
        holder["before"] = features.snapshot(params())  # weights before this step
        loss = task.loss_fn(model, batch)
        trace["step_loss"].append(float(loss.detach()))
        return loss

    env = LRControlEnv(dataclasses.replace(task, loss_fn=loss_fn), **ppo.env_kwargs())
    holder["env"] = env
    obs, info = env.reset(seed=seed)
    trace["info"].append(info)
    trace["obs"].append(obs)
    done = False
    while not done:
        action = ppo.act(obs, info)
        trace["actions"].append(float(action[0]))
        obs, _, terminated, truncated, info = env.step(action)
        grads = [p.grad for p in env.model.parameters() if p.grad is not None]
        trace["grad_norm"].append(
            float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
        )
        trace["update_ratio"].append(features.update_ratio(holder["before"], params()))
        trace["info"].append(info)
        trace["obs"].append(obs)
        done = terminated or truncated
    assert not info["diverged"]
    return trace


@pytest.mark.parametrize("mode", ["anchored", "recursive"])
def test_decisions_and_lrs_equal_the_envs(tmp_path, mode):
    run = make_run(tmp_path, {"mode": mode, "schedule": "cosine", "warmup_frac": 0.1})
    task = blob_task()
    trace = _env_trace(run, task, seed=3)
    # The deployed controller, fed the same statistics, on an optimizer of its own.
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=task.lr)
    ctl = LRController(opt, LRController.from_run(exported_run(run)), total_steps=task.total_steps,
                       steps_per_action=task.steps_per_action, guard=False)
    infos, k = trace["info"], task.steps_per_action
    actions = [ctl.observe(val_loss=infos[0]["val_loss"], val_metric=infos[0]["val_metric"])]
    np.testing.assert_array_equal(ctl.last_observation, trace["obs"][0])
    lrs = []
    for i, loss in enumerate(trace["step_loss"]):
        lrs.append(ctl.get_last_lr()[0])
        ctl.step(loss)
        if ctl.eval_due:
            j = (i + 1) // k
            assert ctl._prev_lr == infos[j]["lr"]
            a = ctl.observe(val_loss=infos[j]["val_loss"], val_metric=infos[j]["val_metric"],
                            grad_norm=trace["grad_norm"][j - 1],
                            update_ratio=trace["update_ratio"][j - 1])
            np.testing.assert_array_equal(ctl.last_observation, trace["obs"][j])
            if i + 1 < len(trace["step_loss"]):
                actions.append(a)
    assert lrs == trace["step_lr"]  # every optimizer step, exactly
    np.testing.assert_array_equal(np.float32(actions), np.float32(trace["actions"]))
    assert len(set(np.round(np.array(lrs) / task.lr, 6))) > 5  # not a constant LR


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_step_size_features_equal_the_envs_on_the_same_steps(tmp_path, optimizer):
    # The controller rides along the env's own optimizer (a hook after each of its steps),
    # so both see the same gradients, weights and losses: every observation must match,
    # the gradient-based step-size features included.
    from lr_gym.features import STEP_FEATURES, V2_FEATURES

    run = make_run(tmp_path, {"mode": "recursive", "features": list(V2_FEATURES)})
    ppo = PPOController.load(run, device="cpu")
    task = dataclasses.replace(blob_task(), optimizer=optimizer, total_steps=48,
                               lr=0.1 if optimizer is torch.optim.SGD else 0.01)
    observations = _ride_along(run, task, ppo)
    seen = [obs[[V2_FEATURES.index(f) for f in STEP_FEATURES]] for obs in observations[1:]]
    assert np.count_nonzero(np.array(seen)) > len(seen) * 6  # measured, not left at 0


def _ride_along(run: Path, task: Task, ppo: PPOController, **controller_kwargs) -> list:
    """An env episode with a deployed controller riding along the env's own optimizer.

    A hook after each of its steps feeds the controller, so both see the same gradients,
    weights and losses; every observation must match. Returns the env's observations.
    """
    env = LRControlEnv(task, **ppo.env_kwargs())
    obs, info = env.reset(seed=3)
    ctl = LRController(env._optimizer, LRController.from_run(exported_run(run)),
                       total_steps=task.total_steps, steps_per_action=task.steps_per_action,
                       guard=False, **controller_kwargs)
    last_loss = {}
    real_loss_fn = env.task.loss_fn

    def loss_fn(model, batch):
        last_loss["v"] = real_loss_fn(model, batch)
        return last_loss["v"]

    env.task = dataclasses.replace(env.task, loss_fn=loss_fn)
    env._optimizer.register_step_post_hook(lambda *_: ctl.step(last_loss["v"]))
    ctl.observe(val_loss=info["val_loss"], val_metric=info["val_metric"])
    np.testing.assert_array_equal(ctl.last_observation, obs)
    done, seen = False, [obs]
    while not done:
        obs, _, terminated, truncated, info = env.step(ppo.act(obs, info))
        done = terminated or truncated
        assert ctl.eval_due
        ctl.observe(val_loss=info["val_loss"], val_metric=info["val_metric"])
        np.testing.assert_array_equal(ctl.last_observation, obs)
        seen.append(obs)
    return seen


def test_v3_features_equal_the_envs_over_prodigy(tmp_path):
    # The v3 observation adds what tells regimes apart: the start against chance, the
    # gap's trend, Prodigy's d and its growth, the budget left. Riding along the env's
    # own Prodigy, the deployed controller must observe exactly what the env does.
    import math

    from lr_gym.features import V3_FEATURES

    run = make_run(tmp_path, {"mode": "recursive", "base": "prodigy",
                              "features": list(V3_FEATURES)})
    ppo = PPOController.load(run, device="cpu")
    task = dataclasses.replace(blob_task(), total_steps=48, chance_loss=math.log(3))
    new = [V3_FEATURES.index(f) for f in ("loss_vs_chance", "gen_gap_trend", "log_d_growth",
                                          "log_d_since_start", "log_remaining")]
    seen = np.array([obs[new] for obs in _ride_along(run, task, ppo,
                                                     chance_loss=math.log(3))[1:]])
    assert np.all(np.count_nonzero(seen, axis=0) > 0)  # every new feature is measured
    assert len(set(seen[:, 0])) == 1  # the start against chance: one value per run
    assert np.all(np.diff(seen[:, 4]) < 0) and seen[-1, 4] == 0.0  # the budget runs out


def test_plain_loop_measures_grad_norm_and_scales_every_group(exported):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr": 1e-3},
                            {"params": model[2].parameters(), "lr": 1e-2}])
    ctl = LRController(opt, exported, total_steps=12, steps_per_action=4, guard=False)
    with pytest.raises(RuntimeError, match="before the first observe"):
        ctl.step(1.0)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    ctl.observe(val_loss=0.7, val_metric=0.5)
    for _ in range(12):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss)
        lr0, lr1 = ctl.get_last_lr()
        assert lr1 == pytest.approx(10 * lr0)  # both groups scaled by one factor
        if ctl.eval_due:
            assert np.isfinite(ctl._grad_norm) and ctl._grad_norm > 0  # measured, not given
            # The weights were copied before the interval's last step: the update ratio
            # is measured here, as the env measures it.
            assert 0 < ctl._meter.stats()["update_ratio"] < 1
            ctl.observe(val_loss=float(loss.detach()), val_metric=0.6)
    assert ctl.last_observation[7] != 0.0 or ctl.last_observation[8] != 0.0
    names = ctl.config.features
    assert ctl.last_observation[names.index("update_ratio")] < 0  # log of a small ratio
    with pytest.raises(RuntimeError, match="without a training step"):
        ctl.observe(val_loss=0.5, val_metric=0.7)


def test_state_dict_resumes_identically(exported):
    def drive(ctl, losses, val):
        out = []
        for i, loss in enumerate(losses):
            ctl.step(loss)
            out.append(ctl.get_last_lr()[0])
            if ctl.eval_due:
                ctl.observe(val_loss=val[i], val_metric=1 - val[i], grad_norm=1.0 + i)
        return out

    rng = np.random.default_rng(0)
    losses, val = rng.uniform(0.2, 1.0, 30), rng.uniform(0.2, 1.0, 30)

    def fresh():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        ctl = LRController(opt, exported, total_steps=30, steps_per_action=5, guard=False)
        ctl.observe(val_loss=1.2, val_metric=0.1)
        return ctl

    full = drive(fresh(), losses, val)
    first = fresh()
    head = drive(first, losses[:12], val)
    state = json.loads(json.dumps(first.state_dict()))  # JSON-able, no pickle needed
    second = fresh()
    second.load_state_dict(state)
    assert second.get_last_lr() == first.get_last_lr()
    tail = []
    for i in range(12, 30):
        second.step(losses[i])
        tail.append(second.get_last_lr()[0])
        if second.eval_due:
            second.observe(val_loss=val[i], val_metric=1 - val[i], grad_norm=1.0 + i)
    assert head + tail == full


# --------------------------------------------------------------- tampering
def _rewrite(src: Path, dst: Path, *, drop=(), meta=None):
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        metadata = dict(f.metadata())
    tensors = {k: v for k, v in load_file(str(src)).items() if k not in drop}
    metadata.update(meta or {})
    save_file(tensors, str(dst), metadata=metadata)
    return dst


def test_tampered_files_fail_with_clear_errors(exported, tmp_path):
    raw = exported.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")

    flipped = bytearray(raw)
    flipped[8 + header_len + 100] ^= 0x01  # one bit of the weights
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ControllerFileError, match="tampered with or is corrupt"):
        ControllerPolicy.load(tmp_path / "flip.safetensors")

    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ControllerFileError, match="truncated or corrupt"):
        ControllerPolicy.load(tmp_path / "trunc.safetensors")

    header = bytearray(raw)
    header[8 + 1] = ord("!")  # break the JSON header
    (tmp_path / "header.safetensors").write_bytes(bytes(header))
    with pytest.raises(ControllerFileError, match="truncated or corrupt"):
        ControllerPolicy.load(tmp_path / "header.safetensors")

    with pytest.raises(ControllerFileError, match="format version '99'.*reads version '1'"):
        ControllerPolicy.load(_rewrite(exported, tmp_path / "v.safetensors",
                                       meta={"format_version": "99"}))
    with pytest.raises(ControllerFileError, match=r"lacks tensor\(s\) \['action.bias'\]"):
        ControllerPolicy.load(_rewrite(exported, tmp_path / "m.safetensors",
                                       drop=("action.bias",)))
    with pytest.raises(ControllerFileError, match="metadata is missing or malformed"):
        ControllerPolicy.load(_rewrite(exported, tmp_path / "c.safetensors",
                                       meta={"config": "{not json"}))
    cfg = json.loads(load_meta(exported)["config"])
    cfg["env_config"]["max_factor"] = 8.0  # a plausible edit of the LR rule
    with pytest.raises(ControllerFileError, match="tampered"):
        ControllerPolicy.load(_rewrite(exported, tmp_path / "e.safetensors",
                                       meta={"config": json.dumps(cfg, sort_keys=True)}))
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ControllerFileError, match="not an lr_gym controller file"):
        ControllerPolicy.load(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="agents.deploy export"):
        ControllerPolicy.load(tmp_path / "absent.safetensors")


def load_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_loading_never_unpickles(exported, monkeypatch):
    raw = exported.read_bytes()
    assert b"\x80\x04\x95" not in raw and b"\x80\x02" not in raw  # no pickle protocol header

    def refuse(*a, **k):
        raise AssertionError("pickle used while loading a controller file")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    policy = ControllerPolicy.load(exported)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ctl = LRController(opt, policy, total_steps=10, steps_per_action=5, guard=False)
    ctl.observe(val_loss=1.0, val_metric=0.1)
    assert ctl.get_last_lr()[0] > 0


def test_from_run_never_unpickles_a_run_without_its_controller_file(tmp_path, monkeypatch):
    run = make_run(tmp_path, {"mode": "anchored"})  # model.zip and vecnormalize.pkl only

    def refuse(*a, **k):
        raise AssertionError("from_run unpickled the run")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for load in (LRController.from_run, load_controller_file):
        with pytest.raises(FileNotFoundError, match="python -m agents.deploy export"):
            load(run)


def test_a_controller_file_cannot_set_the_evaluation_protocol(run_dir, tmp_path):
    # A file whose training config asks for 10x the budget, no divergence and its own
    # reward: evaluation keeps the env's protocol and takes only the action rule.
    from agents.controller import POLICY_FIELDS, PolicyController
    from agents.evaluation.rollout import run_episode

    ppo = PPOController.load(run_dir, device="cpu")
    greedy = {"mode": "anchored", "max_factor": 3.0, "total_steps": 3000,
              "steps_per_action": 1000, "divergence_factor": 1e9, "reward": "metric",
              "event_prob": 1.0, "guard": True, "eval_test": False}
    path = export_controller(PPOController(ppo.model, ppo.obs_mean, ppo.obs_var,
                                           env_kwargs=greedy), tmp_path / "c.safetensors")
    ctl = PolicyController.load(path)
    assert ctl.env_kwargs() == {"mode": "anchored", "max_factor": 3.0}
    assert set(ctl.env_kwargs()) <= set(POLICY_FIELDS)
    res = run_episode("lr_gym/Digits-MLP-v1", ctl, 0)
    assert res.steps[-1] == lr_gym.task_for("lr_gym/Digits-MLP-v1").total_steps
    assert res.test  # the evaluation's eval_test, not the file's


# ---------------------------------------------------------------- CLI, example
def test_cli_export(run_dir, tmp_path, capsys):
    out = tmp_path / "x" / "ctl.safetensors"
    assert main(["export", "--agent", str(run_dir), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"Wrote {out}" in text and "mode=anchored" in text and "[64, 32] relu" in text
    assert ControllerPolicy.load(out).config["source"]["run"] == str(run_dir)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable, not 0600
    assert main(["export", "--agent", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert "No agent at" in capsys.readouterr().err


def _run_example(arg: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "deploy_plain_loop.py"), arg],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_example_script_runs(run_dir):  # ~15-40 s: imports plus 300 steps in a subprocess
    proc = _run_example(str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert "final val accuracy" in proc.stdout


@pytest.mark.slow
def test_example_script_runs_on_a_trained_run(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "train_agent.py"), "-n", "256", "--n-envs", "1",
         "--eval-freq", "0", "--save-freq", "0", "--no-progress", "-f", str(tmp_path)],
        check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, timeout=900,
    )
    (run,) = (tmp_path / "ppo").glob("*_1")
    proc = _run_example(str(run))
    assert proc.returncode == 0, proc.stderr
    # It drove the trained run's own controller file, decided, and trained the model.
    assert f"controller: {run / 'controller.safetensors'}" in proc.stdout
    assert "decisions (step: action -> lr): " in proc.stdout
    acc = float(proc.stdout.split("final val accuracy ")[1].split()[0])
    assert 0.5 < acc <= 1.0


def test_runtime_never_imports_stable_baselines3(exported):
    # Deploying a controller needs torch and safetensors only: the runtime module loads
    # a file and drives an optimizer without stable-baselines3 (nor the export side).
    code = (
        "import sys, torch\n"
        "from agents.controller import LRController\n"
        "opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\n"
        f"ctl = LRController(opt, {str(exported)!r}, total_steps=4, steps_per_action=2,"
        " guard=False)\n"
        "ctl.observe(val_loss=1.0, val_metric=0.5)\n"
        "ctl.step(0.9); ctl.step(0.8)\n"
        "ctl.observe(val_loss=0.8, val_metric=0.6)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] == 'stable_baselines3'\n"
        "             or m in ('agents.controller.export', 'agents.training.ppo'))\n"
        "print(bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_deploy_reexports_the_runtime_and_the_export_side():
    import agents.controller
    import agents.controller.export
    import agents.deploy

    assert agents.deploy.LRController is agents.controller.LRController
    assert agents.deploy.LRControllerCallback is agents.controller.LRControllerCallback
    assert agents.deploy.ControllerPolicy is agents.controller.ControllerPolicy
    assert agents.deploy.export_controller is agents.controller.export.export_controller
    assert agents.deploy.main is agents.controller.export.main


# ------------------------------------------------------------------ HF Trainer
class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 30, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] > 15).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(8, dtype=torch.long),
                "labels": self.labels[i]}


@pytest.mark.slow
def test_trainer_callback_drives_the_lr(exported, tmp_path, monkeypatch):
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from agents.deploy import LRControllerCallback

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2))

    class RecordLR(TrainerCallback):
        lrs: list[float] = []

        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            self.lrs.append(optimizer.param_groups[0]["lr"])

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    cb = LRControllerCallback(exported, steps_per_action=4)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=12, per_device_train_batch_size=8,
        per_device_eval_batch_size=16, learning_rate=1e-3, lr_scheduler_type="constant",
        eval_on_start=True, eval_strategy="no", save_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, seed=0,
    )
    recorder = RecordLR()
    trainer = Trainer(model=model, args=args, train_dataset=_ListDataset(32, 0),
                      eval_dataset=_ListDataset(16, 1), compute_metrics=accuracy,
                      callbacks=[cb, recorder])
    ratios, update = [], features.FeatureTracker.update

    def recording_update(self, **kw):
        ratios.append(kw["update_ratio"])  # measured by the callback's controller
        return update(self, **kw)

    monkeypatch.setattr(features.FeatureTracker, "update", recording_update)
    trainer.train()
    assert len(ratios) == 3 and all(0 < r < 1 for r in ratios)
    ctl = cb.controller
    assert [t for t, _, _ in ctl.history] == [0, 4, 8, 12]  # initial + one per interval
    assert len(recorder.lrs) == 12 and len(set(recorder.lrs)) > 1  # not HF's constant LR

    # Replaying the Trainer's own log into a fresh controller gives the same LRs.
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    replay = LRController(opt, exported, total_steps=12, steps_per_action=4, guard=False)
    logs = trainer.state.log_history
    evals = [h for h in logs if "eval_loss" in h]
    steps = {h["step"]: h for h in logs if "loss" in h}
    assert len(evals) == 4 and sorted(steps) == list(range(1, 13))
    replay.observe(evals[0]["eval_loss"], evals[0]["eval_accuracy"])
    lrs = []
    for s in range(1, 13):
        lrs.append(replay.get_last_lr()[0])
        replay.step(steps[s]["loss"], grad_norm=steps[s]["grad_norm"])
        if replay.eval_due:
            e = evals[s // 4]
            replay.observe(e["eval_loss"], e["eval_accuracy"], update_ratio=ratios[s // 4 - 1])
    assert lrs == pytest.approx(recorder.lrs, rel=1e-12)


def test_trainer_callback_needs_an_initial_evaluation(exported):
    from transformers import TrainerControl, TrainerState

    from agents.deploy import LRControllerCallback

    cb = LRControllerCallback(exported, steps_per_action=4)
    # The callback reads only eval_on_start; TrainingArguments itself needs accelerate.
    args = types.SimpleNamespace(eval_on_start=False)
    state = TrainerState(max_steps=8)
    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="eval_on_start=True"):
        cb.on_train_begin(args, state, TrainerControl(), optimizer=opt, model=net)
    with pytest.raises(KeyError, match="eval_accuracy"):
        cb.on_evaluate(args, state, TrainerControl(), metrics={"eval_loss": 1.0})
    cb.on_evaluate(args, state, TrainerControl(), metrics={"eval_loss": 1.0,
                                                           "eval_accuracy": 0.5})
    # trainer.evaluate() first; the guard (on by default) gets the Trainer's model.
    cb.on_train_begin(args, state, TrainerControl(), optimizer=opt, model=net)
    assert cb.controller._guard.model is net
    control = TrainerControl()
    for _ in range(4):
        cb.on_step_end(args, state, control)
        cb.on_log(args, state, control, logs={"loss": 0.9, "grad_norm": 2.0})
    assert control.should_log and control.should_evaluate
    before = opt.param_groups[0]["lr"]
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 0.8, "eval_accuracy": 0.6})
    assert len(cb.controller.history) == 2 and opt.param_groups[0]["lr"] != before


# ------------------------------------------------------------------ issue #8
def test_policy_controller_acts_exactly_like_ppo_controller(run_dir, exported):
    from agents.deploy import PolicyController
    from agents.evaluation.rollout import run_episode
    from lr_gym.config import EnvConfig

    ppo = PPOController.load(run_dir, device="cpu")
    ours = PolicyController.load(exported)
    assert ours.name == "ppo" and not ours.tunable
    assert EnvConfig().replace(**ours.env_kwargs()) == EnvConfig().replace(**ppo.env_kwargs())
    obs = np.random.default_rng(2).normal(0, 2, size=(300, OBS_DIM)).astype(np.float32)
    for o in obs:
        a, b = ours.act(o, {}), ppo.act(o, {})
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (1,)
        np.testing.assert_array_equal(a, b)
    # Whole episodes: the same LRs, losses and rewards, step for step.
    env_id = lr_gym.register_task(dataclasses.replace(blob_task(), name="DeployTwin"))
    r1 = run_episode(env_id, ppo, seed=4).to_dict()
    r2 = run_episode(env_id, ours, seed=4).to_dict()
    for key in ("wall",):
        r1.pop(key), r2.pop(key)
    assert r1 == r2 and len(set(r1["lrs"])) > 2


def _forge(src: Path, dst: Path, edit_config=None, edit_tensors=None) -> Path:
    """A file whose checksum matches its (edited) content: what a malicious author writes."""
    from lr_gym.control.file import _digest

    meta = load_meta(src)
    config = json.loads(meta["config"])
    tensors = load_file(str(src))
    if edit_config:
        edit_config(config)
    if edit_tensors:
        edit_tensors(tensors)
    config_json = json.dumps(config, sort_keys=True)
    meta.update(config=config_json, sha256=_digest(config_json, tensors))
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _set(section, key, value):
    def edit(config):
        config[section][key] = value
    return edit


@pytest.mark.parametrize(("edit_config", "edit_tensors", "message"), [
    # lr_min 0: only an anchored rule (the fixture's) may reach it; a recursive one could
    # never leave it.
    (lambda c: c["env_config"].update(mode="recursive", lr_min=0.0), None,
     "lr_min must be >= 1e-12 and <= 1000, finite"),
    # A re-signed file asking for lr_max = lr0 * 1e12 (issue 36).
    (_set("env_config", "lr_max_factor", 1e12), None, "lr_max_factor must be >= 1 and <= 10000"),
    (_set("env_config", "lr_max", 5e10), None, "lr_max must be >= 1e-12 and <= 1000, finite"),
    (_set("env_config", "lr_min", -1.0), None, "lr_min must be >= 0, finite"),
    (lambda c: c["env_config"].update(lr_min=0.5, lr_max=0.1), None, "lr_min .* below lr_max"),
    (_set("env_config", "max_factor", 1e6), None, "max_factor must be .*<= 10"),
    (_set("env_config", "max_factor", 1.0), None, "max_factor must be > 1, finite"),
    (_set("env_config", "reward_scale", float("nan")), None, "reward_scale must be > 0, finite"),
    (_set("normalization", "clip_obs", float("inf")), None, "clip_obs must be > 0, finite"),
    (_set("normalization", "epsilon", -1.0), None, "epsilon must be >= 0, finite"),
    (_set("tracker", "short_halflife", 0.0), None, "short_halflife must be > 0, finite"),
    (_set("policy", "net_arch", [64, 16]), None, r"policy.1.weight.*shape \(32, 64\).*\(16, 64\)"),
    (_set("policy", "obs_dim", 12), None, "obs_dim is 12"),
    (_set("policy", "activation", "gelu"), None, "metadata is missing or malformed"),
    (None, lambda t: t.update({"action.weight": t["action.weight"][:, :16].clone()}),
     r"action.weight.*shape \(1, 16\)"),
    (None, lambda t: t["policy.0.weight"].__setitem__((0, 0), float("nan")),
     "policy.0.weight.*non-finite"),
    (None, lambda t: t.update({"action.bias": t["action.bias"].double()}),
     "action.bias.*torch.float32"),
    (None, lambda t: t.update({"obs_var": -t["obs_var"]}), "obs_var must be >= 0"),
    (None, lambda t: t.update({"action.bias": t["action.bias"].half()}), "not float32/float64"),
])
def test_files_asking_for_invalid_values_are_refused_at_load(exported, tmp_path, edit_config,
                                                             edit_tensors, message):
    forged = _forge(exported, tmp_path / "f.safetensors", edit_config, edit_tensors)
    with pytest.raises(ControllerFileError, match=message):
        ControllerPolicy.load(forged)


def test_forged_checksum_is_integrity_not_authenticity(exported, tmp_path):
    # A consistent edit with a recomputed checksum loads: the checksum only proves that
    # the file is whole. What it may ask for is bounded by validation instead.
    forged = _forge(exported, tmp_path / "ok.safetensors", _set("env_config", "max_factor", 3.0))
    assert ControllerPolicy.load(forged).env_config.max_factor == 3.0
    assert "not authenticity" in ControllerPolicy.load.__doc__ + (
        sys.modules["agents.deploy"].__doc__)


def test_export_refuses_an_agent_a_file_could_not_hold(run_dir, tmp_path):
    ppo = PPOController.load(run_dir, device="cpu")
    ppo._env_kwargs = {"max_factor": 50.0}
    with pytest.raises(ValueError, match="cannot export this agent: max_factor"):
        export_controller(ppo, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_nan_losses_are_skipped_once_warned_and_a_nan_interval_holds_the_lr(exported):
    import warnings

    def fresh():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        ctl = LRController(opt, exported, total_steps=20, steps_per_action=4, guard=False)
        ctl.observe(val_loss=1.0, val_metric=0.2)
        return ctl

    clean, dirty = fresh(), fresh()
    with pytest.warns(RuntimeWarning, match="not finite; they are skipped") as record:
        for i in range(4):
            clean.step(0.9 - 0.1 * i)
            dirty.step(0.9 - 0.1 * i)
            dirty.record(float("nan"))  # an extra NaN loss in the same interval
        clean.observe(val_loss=0.8, val_metric=0.3)
        dirty.observe(val_loss=0.8, val_metric=0.3)
        np.testing.assert_array_equal(dirty.last_observation, clean.last_observation)
        # A whole interval of NaN losses: no decision on zeroed features, the LR holds.
        before = (dirty.last_action, dirty._rule.multiplier, dirty.last_observation.copy())
        for _ in range(4):
            dirty.step(torch.tensor(float("nan")))
        assert dirty.observe(val_loss=0.7, val_metric=0.4) == before[0]
        assert dirty._rule.multiplier == before[1]
        np.testing.assert_array_equal(dirty.last_observation, before[2])
        assert dirty.history[-1][0] == 8 and not dirty.eval_due
        for _ in range(4):  # and NaN validation results hold it too
            dirty.step(0.5)
        assert dirty.observe(val_loss=float("nan"), val_metric=0.4) == before[0]
    assert len(record) == 1  # one warning, not one per loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            dirty.step(0.4)
        dirty.observe(val_loss=0.6, val_metric=0.5)  # finite again: decides normally
    assert dirty.history[-1][0] == 16


def test_controller_bounds_and_initial_result_are_validated(exported):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=r"lr_min \(0.5\) must be below lr_max \(0.2\)"):
        LRController(opt, exported, total_steps=8, steps_per_action=4, lr_min=0.5, lr_max=0.2)
    with pytest.raises(ValueError, match="lr_max must be > 0"):
        LRController(opt, exported, total_steps=8, steps_per_action=4, lr_max=-1.0)
    with pytest.raises(TypeError, match="total_steps must be an integer"):
        LRController(opt, exported, total_steps=8.5, steps_per_action=4)
    ctl = LRController(opt, exported, total_steps=8, steps_per_action=4, guard=False)
    with pytest.raises(ValueError, match="first observe.*finite validation loss"):
        ctl.observe(val_loss=float("nan"), val_metric=0.1)


def test_cli_export_defaults_to_the_runs_own_file_and_warns_about_pickles(tmp_path, capsys):
    run = make_run(tmp_path, {"mode": "anchored"})
    assert main(["export", "--agent", str(run)]) == 0
    captured = capsys.readouterr()
    assert "only export runs you trained yourself" in captured.err
    assert f"Wrote {run / 'controller.safetensors'}" in captured.out
    assert ControllerPolicy.load(run / "controller.safetensors").env_config.mode == "anchored"
    (run / "model.zip").write_bytes(b"PK\x03\x04 cut short")
    assert main(["export", "--agent", str(run)]) == 2
    assert f"error: {run / 'model.zip'} is not a readable SB3 model" in capsys.readouterr().err


JSON_VALUES = [None, True, -1, 0, 1, 10**9, 1e308, -1e-9, float("nan"), "", "x" * 50, [],
               [1, "a"], {"k": 1}, "relu", "anchored", [64, 32], 1e6, 11.0, 0.5, 100.0]


def _check_loads_or_refuses(path: Path) -> ControllerPolicy | None:
    """A ControllerFileError, or a controller that keeps every rule: nothing else."""
    from agents.controller import MAX_FACTOR_LIMIT
    from lr_gym.features import ALL_FEATURES

    try:
        policy = ControllerPolicy.load(path)
    except ControllerFileError:
        return None
    c = policy.env_config
    assert 1 < c.max_factor <= MAX_FACTOR_LIMIT, c.max_factor
    assert set(c.features) <= set(ALL_FEATURES)
    assert c.lr_min is None or (c.lr_min > 0 or (c.lr_min == 0 and c.mode == "anchored"))
    assert c.lr_min is None or c.lr_min < (c.lr_max or math.inf)
    assert -1 <= policy.config["policy"]["action_low"] < policy.config["policy"]["action_high"] <= 1
    assert math.isfinite(policy.act(np.zeros(len(c.features), np.float32)))  # it runs
    return policy


@pytest.mark.slow
def test_fuzzed_controller_file_bytes_load_or_fail_cleanly(exported, tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    raw = exported.read_bytes()
    original = ControllerPolicy.load(exported).sha256
    path = tmp_path / "fuzz.safetensors"

    @settings(max_examples=80, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(edits=st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)),
                          min_size=1, max_size=4),
           cut=st.one_of(st.none(), st.integers(0, len(raw) - 1)))
    def check(edits, cut):
        data = bytearray(raw)
        for pos, value in edits:
            data[pos] = value
        path.write_bytes(bytes(data[:cut] if cut is not None else data))
        policy = _check_loads_or_refuses(path)
        if policy is not None:  # only an edit that changes nothing that counts loads
            assert policy.sha256 == original

    check()


def _config_fields(path: Path) -> list[tuple[str | None, str]]:
    config = json.loads(load_meta(path)["config"])
    return ([(sec, key) for sec, val in config.items() if isinstance(val, dict) for key in val]
            + [(None, key) for key in config] + [("env_config", "x")])


@pytest.mark.slow
def test_every_resigned_field_corruption_loads_or_fails_cleanly(exported, tmp_path):
    # What a malicious author writes: any field set to any value, the checksum redone.
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    path = tmp_path / "forged.safetensors"
    values = st.one_of(st.sampled_from(JSON_VALUES), st.floats(-1e3, 1e3, allow_nan=False),
                       st.lists(st.sampled_from(["progress", "val_trend", "nope", 3]),
                                max_size=3))
    def check_field(section: str | None, key: str) -> None:
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(value=values)
        def check(value):
            def edit(config):
                if section is None:
                    config[key] = value
                else:
                    config[section][key] = value
            try:
                forged = _forge(exported, path, edit)
            except (TypeError, ValueError):  # not JSON: no file to load
                return
            _check_loads_or_refuses(forged)

        check()

    for section, key in _config_fields(exported):
        check_field(section, key)
