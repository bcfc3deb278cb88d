from __future__ import annotations

import threading

import gymnasium as gym

from agents.training.envs import _close


def test_close_after_ctrl_c_inside_step_wait_does_not_hang():
    # Ctrl-C can land in SubprocVecEnv.step_wait after one worker's result was read and
    # before the next: SB3's close() would then wait forever on the pipe already read.
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    venv = VecNormalize(SubprocVecEnv([lambda: gym.make("CartPole-v1")] * 2))
    inner = venv.unwrapped
    venv.reset()
    inner.step_async([0, 1])
    inner.remotes[0].recv()  # the interrupt came here: waiting is still True
    assert inner.waiting
    closer = threading.Thread(target=_close, args=(venv,), daemon=True)
    closer.start()
    closer.join(timeout=30)
    hung = closer.is_alive()
    for process in inner.processes:
        if process.is_alive():
            process.kill()
    assert not hung, "closing the interrupted SubprocVecEnv hung"
    assert inner.closed and not any(p.is_alive() for p in inner.processes)


def test_a_worker_ignores_ctrl_c_before_its_imports(tmp_path, monkeypatch):
    import signal

    import torch

    from agents.training.envs import env_factory

    # A --gym-packages module records the handler it is imported under.
    (tmp_path / "sigint_probe.py").write_text(
        "import signal\nHANDLER = signal.getsignal(signal.SIGINT)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    try:
        env_factory(["lr_gym/Wine-MLP-v1"], {}, ["sigint_probe"], worker=True)().close()
        import sigint_probe
    finally:
        signal.signal(signal.SIGINT, before)  # this test runs in pytest's own process
        torch.set_num_threads(threads)
    assert sigint_probe.HANDLER is signal.SIG_IGN
