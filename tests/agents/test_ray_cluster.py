"""Reaching a Ray cluster: a wrong address fails in seconds with the fixes, tokens included."""

from __future__ import annotations

import socket
import time

import pytest

from agents.evaluation.cli import main as evaluate
from agents.ray_cluster import RaySetupError, probe_address


def test_an_address_nobody_listens_on_fails_at_once_naming_it_and_the_token_hint():
    t0 = time.perf_counter()
    with pytest.raises(RaySetupError, match=r"no Ray cluster answers at 127\.0\.0\.1:1") as err:
        probe_address("127.0.0.1:1", timeout_s=2.0)
    assert time.perf_counter() - t0 < 5
    assert "RAY_AUTH_TOKEN" in str(err.value) and "ray get-auth-token" in str(err.value)
    with pytest.raises(RaySetupError, match="is not HOST:PORT"):
        probe_address("localhost:port")


def test_a_listening_address_passes_and_auto_is_left_to_ray():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe_address(f"127.0.0.1:{port}")
        probe_address(f"ray://127.0.0.1:{port}")
    probe_address("auto")


def test_evaluation_with_a_wrong_address_is_one_error_line_and_makes_nothing(tmp_path, capsys):
    code = evaluate(["--agent", "none", "--env", "lr_gym/Wine-MLP-v1", "--baselines", "static",
                     "--track", "self", "--backend", "ray", "--ray-address", "127.0.0.1:1",
                     "-f", str(tmp_path / "logs"), "-o", str(tmp_path / "ev")])
    assert code == 2
    assert "error: no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
