"""RayVecEnv on a local 2-CPU Ray (the session's ``ray_local``), and the flags that reach it."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import yaml

from agents.common.ray_cluster import RayResources, RaySetupError
from agents.training.cli import main
from agents.training.envs import env_factory

ENV = "lr_gym/Digits-MLP-v1"
SHORT = {"total_steps": 20, "steps_per_action": 10}  # two env steps per episode
TINY = ["--env", ENV, "--no-progress", "-v", "0", "--hyperparams", "n_steps:16",
        "batch_size:16", "n_epochs:1", "--env-kwargs", "total_steps:20", "steps_per_action:10",
        "--eval-freq", "0", "--save-freq", "0"]


def _venv(cls, seed: int = 3, **kwargs):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env_factory([ENV], SHORT, worker=True), n_envs=2, seed=seed,
                        vec_env_cls=cls, vec_env_kwargs=kwargs or None)


def _cpus_come_back(ray, want: float = 2.0, within: float = 30.0) -> bool:
    """Whether the cluster's CPUs are all free again soon (Ray frees them asynchronously)."""
    deadline = time.monotonic() + within
    while ray.available_resources().get("CPU", 0) < want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _same_infos(a: list[dict], b: list[dict]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if key == "episode":  # Monitor's record holds wall time
                assert x[key]["r"] == y[key]["r"] and x[key]["l"] == y[key]["l"]
            elif isinstance(x[key], (float, np.ndarray)):  # NaN (no train loss yet) == NaN
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
            else:
                assert x[key] == y[key], key


@pytest.mark.slow  # a local Ray and fresh worker processes
def test_api_contract_same_rollouts_as_subproc_and_a_dead_actor(ray_local):
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    from agents.training.ray_vec_env import EnvActorError, RayVecEnv

    ray_env = _venv(RayVecEnv, resources=RayResources(1.0, 0.0), timeout_s=120.0)
    sub_env = _venv(SubprocVecEnv)
    try:
        assert ray_env.num_envs == 2
        assert ray_env.observation_space == sub_env.observation_space
        assert ray_env.action_space == sub_env.action_space
        obs = ray_env.reset()
        assert obs.shape == (2, *ray_env.observation_space.shape)
        assert obs.dtype == ray_env.observation_space.dtype
        np.testing.assert_array_equal(obs, sub_env.reset())  # make_vec_env's seeds 3, 4
        _same_infos(ray_env.reset_infos, sub_env.reset_infos)

        # Five steps of two-step episodes: auto-resets with terminal_observation.
        actions = np.random.default_rng(0).uniform(-1, 1, (5, 2, 1)).astype(np.float32)
        terminal = 0
        for act in actions:
            o, r, d, i = ray_env.step(act)
            so, sr, sd, si = sub_env.step(act)
            assert o.shape == obs.shape and r.shape == (2,) and d.shape == (2,)
            assert d.dtype == np.bool_ and np.issubdtype(r.dtype, np.floating)
            np.testing.assert_array_equal(o, so)
            np.testing.assert_array_equal(r, sr)
            np.testing.assert_array_equal(d, sd)
            _same_infos(i, si)
            for done, info in zip(d, i, strict=True):
                assert ("terminal_observation" in info) == bool(done)
                assert "TimeLimit.truncated" in info
                terminal += int(done)
        assert terminal == 4

        # Seeding: the next reset uses seed + index, once.
        ray_env.seed(7)
        sub_env.seed(7)
        np.testing.assert_array_equal(ray_env.reset(), sub_env.reset())

        # env_method, get_attr, set_attr, env_is_wrapped, by index.
        ray_out = ray_env.env_method("reset", seed=11, indices=[1])
        sub_out = sub_env.env_method("reset", seed=11, indices=[1])
        np.testing.assert_array_equal(ray_out[0][0], sub_out[0][0])
        assert ray_env.get_attr("render_mode") == [None, None]
        ray_env.set_attr("marker", 5, indices=1)
        assert ray_env.get_attr("marker", indices=[1]) == [5]
        assert not ray_env.has_attr("marker") and ray_env.has_attr("render_mode")
        assert ray_env.env_is_wrapped(Monitor) == sub_env.env_is_wrapped(Monitor) == [True, True]

        # VecNormalize wraps it as any VecEnv.
        norm = VecNormalize(ray_env)
        assert norm.reset().shape == obs.shape
        assert norm.step(actions[0])[0].shape == obs.shape

        # A killed actor: a clear error naming the env, within seconds, never a hang.
        ray_local.kill(ray_env.actors[1])
        with pytest.raises(EnvActorError, match=r"actor of env 1 died while stepping"):
            ray_env.step(actions[1])
    finally:
        sub_env.close()
        ray_env.close()  # one actor already gone: no error, no wait for it
    assert ray_env.closed
    assert _cpus_come_back(ray_local)  # both actors ended: their CPUs are free again


@pytest.mark.slow  # a local Ray and fresh worker processes
def test_train_on_ray_saves_an_agent_that_loads(ray_local, tmp_path):
    from agents.common.runs import completion
    from agents.training.ppo import PPOController

    logs = tmp_path / "logs"
    # A training actor and one for periodic evaluation, half a CPU each (two actors
    # stepping in parallel are the first test's).
    assert main([*TINY, "--vec-env", "ray", "--n-envs", "1", "--env-cpus", "0.5", "-n", "32",
                 "--eval-freq", "16", "--eval-episodes", "1", "-f", str(logs)]) == 0
    run = logs / "ppo" / "Digits-MLP-v1_1"
    assert completion(run)["num_timesteps"] == 32
    assert (run / "best" / "best_model.zip").is_file()  # the evaluation actor's doing
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["vec_env"] == "ray" and config["ray"]["num_cpus"] == 0.5
    assert config["env_device"] == "cpu"
    assert [p.name for p in (run / "monitor").iterdir()] == ["0.monitor.csv"]
    agent = PPOController.load(run, device="cpu")
    obs = np.zeros(agent.model.observation_space.shape, np.float32)
    assert np.isfinite(agent.act(obs, {})).all()
    assert _cpus_come_back(ray_local)  # the actors ended with the run


@pytest.mark.slow  # a local Ray and fresh worker processes
def test_a_demand_the_cluster_cannot_hold_is_refused_up_front(ray_local, tmp_path, capsys):
    from agents.training.ray_vec_env import RayVecEnv

    with pytest.raises(RaySetupError, match=r"3 x --env-cpus 1 = 3 CPU\(s\) needed at once, but "
                                            r"the Ray cluster has 2"):
        RayVecEnv([env_factory([ENV], SHORT)] * 3)
    assert main([*TINY, "--vec-env", "ray", "--n-envs", "2", "--env-gpus", "0.5",
                 "-f", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err
    assert "2 x --env-gpus 0.5 = 1 GPU(s) needed at once, but the Ray cluster has 0" in err
    assert not (tmp_path / "logs").exists()


# ------------------------------------------------- without Ray (no cluster needed)
@pytest.mark.parametrize(("args", "message"), [
    (["--env-gpus", "0.25"], "--env-gpus only apply to --vec-env ray"),
    (["--vec-env", "subproc", "--ray-address", "auto"], "--ray-address only apply to"),
    (["--vec-env", "ray", "--env-cpus", "-1"], "--env-cpus (num_cpus) must be a finite number"),
    (["--vec-env", "ray", "--env-gpus", "1.5"], "a fraction shares one GPU"),
    (["--vec-env", "ray", "--env-cpus", "0"], "are both 0"),
    (["--vec-env", "ray", "--env-gpus", "0.5", "--env-device", "cpu"], "drop --env-device"),
    (["--vec-env", "ray", "--ray-timeout", "0"], "--ray-timeout must be > 0"),
    (["--vec-env", "thread"], None),  # argparse: invalid choice
])
def test_bad_ray_flags_exit_2_before_any_run_folder(tmp_path, capsys, args, message):
    pytest.importorskip("ray")  # a missing Ray is reported first otherwise
    if message is None:
        with pytest.raises(SystemExit):
            main([*TINY, *args])
        return
    assert main([*TINY, "-f", str(tmp_path / "logs"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_without_ray_both_commands_name_the_extra(tmp_path, capsys, monkeypatch):
    from agents.evaluation.cli import main as evaluate

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main([*TINY, "--vec-env", "ray", "-f", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err
    assert "--vec-env ray needs Ray, which is not installed" in err
    assert 'pip install -e ".[ray]"' in err
    assert not (tmp_path / "logs").exists()
    assert evaluate(["--agent", "none", "--env", ENV, "--baselines", "static", "--backend",
                     "ray", "-f", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err
    assert "--backend ray needs Ray" in err and 'pip install -e ".[ray]"' in err
    assert not (tmp_path / "logs").exists()
    from agents.training.ray_vec_env import RayVecEnv

    with pytest.raises(RaySetupError, match=r'pip install -e "\.\[ray\]"'):
        RayVecEnv([env_factory([ENV], SHORT)])


def test_ray_resources_are_checked():
    assert RayResources().options() == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert RayResources(2.5, 0.25).threads == 2 and RayResources(0.5).threads == 1
    assert RayResources(1, 0.25).device == "cuda" and RayResources().device == "cpu"
    assert RayResources(1, 2).num_gpus == 2
    for bad in ({"num_cpus": float("nan")}, {"num_gpus": -0.5}, {"num_cpus": True},
                {"num_gpus": 2.5}):
        with pytest.raises(ValueError):
            RayResources(**bad)
