"""Service hardening (#15): heavy answers computed once, timed-out work really stopped, stalled
clients timed out, gzip, the port bound before the scenario loads, and a burst of heavy requests
while ``/distances`` stays quick (measured by ``scripts/load_service.py``)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from lifecircle.cli import main
from lifecircle.service import Limits, create_app, load_state, routes
from test_service import write_scenario

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("svc"))


@pytest.fixture(scope="module")
def state(scenario: Path):
    return load_state(scenario, cache_dir=None)


def _load_script():
    spec = importlib.util.spec_from_file_location("load_service", REPO / "scripts/load_service.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_heavy_layer_computed_once_for_concurrent_requests(
    state, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    real = routes.export_layer

    def counted(*a, **k):  # runs in the child process: count through a file
        with calls.open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(*a, **k)

    monkeypatch.setattr(routes, "export_layer", counted)
    answers: list = []
    with TestClient(create_app(state)) as c:
        threads = [
            threading.Thread(target=lambda: answers.append(c.get("/layers/catchments")))
            for _ in range(8)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        again = c.get("/layers/catchments")
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.content for r in [*answers, again]}) == 1
    assert len(calls.read_text().splitlines()) == 1  # computed once, then served from memory
    assert json.loads(again.content)["features"]


def test_timed_out_work_is_really_stopped(
    state, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "pid"

    def forever(*a, **k):
        pidfile.write_text(str(os.getpid()))
        time.sleep(60)

    monkeypatch.setattr(routes, "export_layer", forever)
    app = create_app(load_state_like(state, Limits(timeout_s=1.0, max_concurrent=1)))
    with TestClient(app, raise_server_exceptions=False) as c:
        t0 = time.perf_counter()
        r = c.get("/layers/service_areas")
        elapsed = time.perf_counter() - t0
        assert r.status_code == 503 and r.json()["code"] == "timeout"
        assert elapsed < 5
        pid = int(pidfile.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the computation's process is gone, not running on
        # its slot (the only one) is free again: a quick request gets it at once
        monkeypatch.setattr(routes, "export_layer", lambda *a, **k: (b"x", "text/csv", "x.csv"))
        assert c.get("/layers/network").status_code == 200


def load_state_like(state, limits: Limits):
    import dataclasses

    return dataclasses.replace(state, limits=limits)


def test_gzip_for_large_answers(state) -> None:
    with TestClient(create_app(state)) as c:
        r = c.get("/layers/residents", headers={"Accept-Encoding": "gzip"})
        small = c.get("/health", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert json.loads(r.content)["features"]  # httpx decompresses it
    assert "content-encoding" not in small.headers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_in_use_is_reported_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # the scenario does not even exist: the port is checked first
        code = main(["serve", "--scenario", str(tmp_path / "missing.toml"), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1 and f"port {port} on 127.0.0.1 is already in use" in err


@pytest.fixture(scope="module")
def server(scenario: Path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("LIFECIRCLE_TOKEN", None)
    cmd = [sys.executable, "-m", "lifecircle", "-q", "serve", "--scenario", str(scenario)]
    cmd += ["--port", str(port), "--no-cache", "--header-timeout-s", "1", "--body-timeout-s", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:  # pragma: no cover - diagnostic
        proc.kill()
        raise AssertionError(proc.communicate()[1])
    yield url, port, proc
    proc.terminate()
    proc.communicate(timeout=30)


def test_stalled_headers_are_timed_out(server) -> None:
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
        t0 = time.perf_counter()
        assert s.recv(1024) == b""  # closed by the server
        assert 0.5 < time.perf_counter() - t0 < 5


def test_stalled_body_gets_408(server) -> None:
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /distances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 500\r\n\r\n{"type": '
        )
        t0 = time.perf_counter()
        answer = b""
        while b"body_timeout" not in answer and (chunk := s.recv(4096)):
            answer += chunk
        assert b" 408 " in answer.split(b"\r\n")[0] and b"body_timeout" in answer
        assert time.perf_counter() - t0 < 5


@pytest.mark.slow
def test_burst_of_heavy_requests(server, scenario: Path) -> None:
    url, _, proc = server
    script = _load_script()
    body = script.request_bodies(scenario, 1, 20, seed=1)[0]
    result = script.heavy_burst(url, proc.pid, body, concurrent=8)
    assert {p: sorted(set(v)) for p, v in result["heavy_status"].items()} == {
        p: [200] for p in script.HEAVY_PATHS
    }
    assert all(len(v) == 1 for v in result["heavy_bytes"].values())  # one answer per layer
    d = sorted(result["distances_ms"])
    assert d and not result["distances_errors"]
    p95 = d[min(len(d) - 1, int(0.95 * len(d)))]
    assert p95 < 500, result
    assert result["rss_end_mb"] <= 1.2 * result["rss_start_mb"], result


def _raise_value_error() -> None:
    raise ValueError("bad value in the child")


def test_isolated_errors_come_back() -> None:
    import threading as _threading

    from lifecircle.service.isolate import IsolatedError, run_isolated

    assert run_isolated(lambda: sum(range(10)), timeout_s=30) == 45
    with pytest.raises(ValueError, match="bad value in the child"):
        run_isolated(_raise_value_error, timeout_s=30)
    with pytest.raises(IsolatedError, match="cannot"):
        run_isolated(_threading.Lock, timeout_s=30)  # a lock does not pickle
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError):
        run_isolated(lambda: time.sleep(30), timeout_s=0.5)
    assert time.perf_counter() - t0 < 5


def test_served_connections_send_without_nagle_delay():
    """The port ``lifecircle serve`` binds gives accepted connections TCP_NODELAY (asyncio sets
    it only on sockets created as IPPROTO_TCP); without it every keep-alive answer after the
    first waited ~40 ms for the client's delayed ACK."""
    import asyncio

    from lifecircle.service.app import bind_port

    async def check() -> int:
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                got.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listener = bind_port("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        port = listener.getsockname()[1]
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(got, 5)
            writer.close()
            await writer.wait_closed()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(check()) != 0
