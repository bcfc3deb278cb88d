"""Reaching a Ray cluster: a wrong address fails in seconds with the fixes, tokens included."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket

import pytest

from agents.common.ray_cluster import RaySetupError, probe_address
from agents.evaluation.cli import main as evaluate


def test_an_address_nobody_listens_on_fails_at_once_naming_it_and_the_token_hint():
    with pytest.raises(RaySetupError, match=r"no Ray cluster answers at 127\.0\.0\.1:1") as err:
        probe_address("127.0.0.1:1", timeout_s=2.0)
    assert "RAY_AUTH_TOKEN" in str(err.value) and "ray get-auth-token" in str(err.value)
    with pytest.raises(RaySetupError, match="is not HOST:PORT"):
        probe_address("localhost:port")


@contextlib.contextmanager
def _grpc_server():
    """A gRPC server with no services on 127.0.0.1, as Ray's GCS and Ray Client are."""
    grpc = pytest.importorskip("grpc")
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def test_a_grpc_server_passes_and_auto_is_left_to_ray():
    with _grpc_server() as port:
        probe_address(f"127.0.0.1:{port}", timeout_s=5.0)
        probe_address(f"ray://127.0.0.1:{port}", timeout_s=5.0)
    probe_address("auto")


@contextlib.contextmanager
def _silent_socket():
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog) and says nothing."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@contextlib.contextmanager
def _http_server():
    """A plain HTTP server on 127.0.0.1 (a dashboard, a web page)."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the test reads stderr: the server writes none
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _not_ray(address: str, why: str, timeout_s: float = 1.0) -> str:
    with pytest.raises(RaySetupError) as err:
        probe_address(address, timeout_s=timeout_s)
    message = str(err.value)
    assert message.startswith(f"{address} accepts connections but is not a Ray cluster: {why}")
    assert f"(waited up to {timeout_s:g} s)" in message and "the GCS port is 6379" in message
    assert "\n" not in message
    return message


def test_a_silent_socket_fails_within_the_timeout():
    # It hung for more than 400 s before (issue 36): only the TCP connect was checked.
    with _silent_socket() as port:
        _not_ray(f"127.0.0.1:{port}", "it sent nothing back")
        _not_ray(f"ray://127.0.0.1:{port}", "it sent nothing back")


def test_an_http_server_fails_within_the_timeout():
    with _http_server() as port:
        _not_ray(f"127.0.0.1:{port}", "it answered as an HTTP server (", timeout_s=5.0)


def test_a_server_that_closes_or_answers_something_else_is_not_ray(monkeypatch):
    import threading

    done = threading.Event()

    def serve(reply: bytes | None, hold: bool = False) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer():
            conn, _ = server.accept()
            with conn, server:
                conn.recv(1024)
                if reply is not None:
                    conn.sendall(reply)
                if hold:  # keep the connection open, silent, until the test ends
                    done.wait(60)

        threading.Thread(target=answer, daemon=True).start()
        return f"127.0.0.1:{server.getsockname()[1]}"

    try:
        _not_ray(serve(None), "it closed the connection without an answer", timeout_s=5.0)
        _not_ray(serve(b"+OK redis ready\r\n"), "it answered b'+OK redis", timeout_s=5.0)
        # A SETTINGS frame on a stream other than 0 is no server preface either.
        _not_ray(serve(bytes([0, 0, 0, 4, 0, 0, 0, 0, 1])), "it answered", timeout_s=5.0)
        _not_ray(serve(bytes([0, 0, 0, 4])), "it closed the connection in the middle of an "
                                             "answer", timeout_s=5.0)
        _not_ray(serve(bytes([0, 0, 0, 4]), hold=True), "it stopped in the middle of an answer")
    finally:
        done.set()
    # With TLS on, the handshake is TLS's (Ray's own): only the connection is checked.
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with _silent_socket() as port:
        probe_address(f"127.0.0.1:{port}", timeout_s=1.0)


@pytest.mark.parametrize("server", [_silent_socket, _http_server])
def test_evaluation_at_an_address_that_is_not_ray_is_one_error_line(tmp_path, capsys, server):
    pytest.importorskip("ray")
    with server() as port:
        code = evaluate(["--agent", "none", "--env", "lr_gym/Wine-MLP-v1", "--baselines",
                         "static", "--track", "self", "--backend", "ray", "--ray-address",
                         f"127.0.0.1:{port}", "--ray-timeout", "2", "-f",
                         str(tmp_path / "logs"), "-o", str(tmp_path / "ev")])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: 127.0.0.1:{port} accepts connections but is not a Ray "
                          "cluster: ")
    assert list(tmp_path.iterdir()) == []


def test_evaluation_with_a_wrong_address_is_one_error_line_and_makes_nothing(tmp_path, capsys):
    code = evaluate(["--agent", "none", "--env", "lr_gym/Wine-MLP-v1", "--baselines", "static",
                     "--track", "self", "--backend", "ray", "--ray-address", "127.0.0.1:1",
                     "-f", str(tmp_path / "logs"), "-o", str(tmp_path / "ev")])
    assert code == 2
    assert "error: no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
