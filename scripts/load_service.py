"""Load check of the HTTP planning service (``lifecircle serve``), loopback only.

Starts ``lifecircle serve`` on the demo scenario (``lifecircle.demo.ensure_demo()`` unless
``--scenario`` is given) on 127.0.0.1 and a free port, then:

1. **baseline**: one client sends ``--baseline`` requests of ``--points`` points to
   ``POST /distances``, one after another;
2. **load**: ``--clients`` concurrent clients (threads, keep-alive connections) send
   ``--requests`` such requests in total (bounded by ``--max-seconds``).

Each request carries a different random sample of resident locations, jittered by up to 50 m.
Prints throughput, latency percentiles (and their ratio to the baseline), errors, and the
server's resident memory (RSS) after warm-up, half-way and at the end, then stops the server.
Targets (issue 8): p95 <= 200 ms with 4 clients and 100-point requests, no errors, RSS stable.

Usage::

    .venv/bin/python scripts/load_service.py [--scenario FILE] [--clients 4] [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lifecircle.demo import ensure_demo
from lifecircle.io import load_scenario, read_points

if TYPE_CHECKING:
    import httpx


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_bodies(scenario: Path, n_bodies: int, points: int, seed: int) -> list[bytes]:
    """``n_bodies`` FeatureCollections of ``points`` jittered resident locations (WGS84)."""
    sc = load_scenario(scenario)
    if sc.residents is None:
        raise SystemExit(f"{scenario} has no residents")
    res = read_points(sc.residents, "residents", crs=sc.residents_crs).frame
    lon = res["lon"].to_numpy(float)
    lat = res["lat"].to_numpy(float)
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_bodies):
        i = rng.integers(0, len(lon), points)
        jlon = lon[i] + rng.uniform(-5e-4, 5e-4, points)  # ~ +-50 m
        jlat = lat[i] + rng.uniform(-4e-4, 4e-4, points)
        feats = [
            {
                "type": "Feature",
                "id": f"q{b}-{k}",
                "geometry": {"type": "Point", "coordinates": [x, y]},
                "properties": {},
            }
            for k, (x, y) in enumerate(zip(jlon.tolist(), jlat.tolist(), strict=True))
        ]
        out.append(json.dumps({"type": "FeatureCollection", "features": feats}).encode())
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command-line options, checked to stay bounded."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario", type=Path, help="scenario.toml (default: the demo, generated if missing)"
    )
    p.add_argument("--clients", type=int, default=4)
    p.add_argument(
        "--requests", type=int, default=2000, help="requests in the load phase (max 20,000)"
    )
    p.add_argument("--baseline", type=int, default=100, help="sequential requests before the load")
    p.add_argument("--points", type=int, default=100, help="points per request (max 1,000)")
    p.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop the load phase after this"
    )
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--seed", type=int, default=8)
    args = p.parse_args(argv)
    if not (1 <= args.clients <= 16 and 1 <= args.requests <= 20_000 and 1 <= args.points <= 1000):
        p.error("keep it bounded: 1-16 clients, 1-20,000 requests, 1-1,000 points")
    return args


def server_command(scenario: Path, port: int, workers: int, points: int) -> list[str]:
    """The command line of ``lifecircle serve`` on ``scenario`` at 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "lifecircle",
        "-q",
        "serve",
        "--scenario",
        str(scenario),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--max-features",
        str(max(1000, points)),
    ]


def wait_ready(server: subprocess.Popen[str], url: str, t0: float) -> httpx.Response:
    """Poll ``GET /health`` until it answers 200; exit if the server dies or takes over 300 s."""
    import httpx

    with httpx.Client(timeout=5.0) as c:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"server exited: {server.stderr.read() if server.stderr else ''}")
            if time.perf_counter() - t0 > 300:
                raise SystemExit("server did not become ready within 300 s")
            try:
                h = c.get(f"{url}/health")
                if h.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
    return h


def run_baseline(url: str, bodies: list[bytes], n_requests: int, points: int) -> list[float]:
    """Latencies (s) of ``n_requests`` sequential requests from one client (also the warm-up)."""
    import httpx

    base: list[float] = []
    with httpx.Client(timeout=30.0) as c:
        for i in range(n_requests):
            t = time.perf_counter()
            r = c.post(
                f"{url}/distances",
                content=bodies[i % len(bodies)],
                headers={"Content-Type": "application/json"},
            )
            base.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"baseline request failed: {r.status_code} {r.text[:300]}")
        check = r.json()
        assert len(check["features"]) == points
    return base


def run_load(
    url: str, bodies: list[bytes], args: argparse.Namespace, total_rss: Callable[[], float]
) -> tuple[list[float], list[str], list[float], float]:
    """The load phase: latencies (s), errors, RSS half-way (if reached) and wall time (s)."""
    import httpx

    lat_s: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(args.requests))
    rss_mid: list[float] = []
    deadline = time.perf_counter() + args.max_seconds

    def client(k: int) -> None:
        with httpx.Client(timeout=30.0) as c:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                if i == args.requests // 2:
                    rss_mid.append(total_rss())
                body = bodies[(i * 7 + k) % len(bodies)]
                t = time.perf_counter()
                try:
                    r = c.post(
                        f"{url}/distances",
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                    ok = r.status_code == 200
                    if ok and i % 100 == 0:
                        ok = len(r.json()["features"]) == args.points
                    msg = "" if ok else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    msg = f"{type(exc).__name__}: {exc}"
                dt = time.perf_counter() - t
                with lock:
                    lat_s.append(dt)
                    if msg:
                        errors.append(msg)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    t_load = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t_load
    return lat_s, errors, rss_mid, wall


def stop_server(server: subprocess.Popen[str], workdir: str) -> None:
    """Terminate the server (kill it after 20 s) and remove its working directory."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Start the service, measure latency alone and under load, print a JSON report."""
    args = parse_args(argv)

    import httpx  # noqa: F401  (fail early, before starting the server, if it is missing)

    scenario = args.scenario
    if scenario is None:
        scenario = ensure_demo()
    scenario = Path(scenario).resolve()
    bodies = request_bodies(scenario, 200, args.points, args.seed)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "LIFECIRCLE_TOKEN"}
    workdir = tempfile.mkdtemp(prefix="lifecircle-load-")
    cmd = server_command(scenario, port, args.workers, args.points)
    t0 = time.perf_counter()
    server = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        h = wait_ready(server, url, t0)
        ready_s = time.perf_counter() - t0
        health = h.json()
        print(
            f"scenario   {health['scenario']}  ({health['counts']['residents']:,} resident points, "
            f"{health['counts']['facilities']:,} facilities; server ready in {ready_s:.1f} s)"
        )
        print(
            f"request    POST /distances with {args.points} points; "
            f"{args.workers} server worker(s), 2-core machine: {os.cpu_count()} CPUs"
        )
        pids = [server.pid]
        if args.workers > 1:
            import psutil

            pids = [ch.pid for ch in psutil.Process(server.pid).children(recursive=True)] or pids

        def total_rss() -> float:
            return sum(rss_mb(pid) for pid in pids)

        # baseline: one client, sequential (also the warm-up)
        base = run_baseline(url, bodies, args.baseline, args.points)
        rss_before = total_rss()

        lat_s, errors, rss_mid, wall = run_load(url, bodies, args, total_rss)
        rss_after = total_rss()
    finally:
        stop_server(server, workdir)

    b = np.array(base) * 1000
    a = np.array(lat_s) * 1000
    n = len(a)
    p50, p95, p99 = np.percentile(a, [50, 95, 99]) if n else (np.nan,) * 3
    b50, b95 = np.percentile(b, [50, 95])
    print(f"baseline   1 client, {len(b)} requests: p50 {b50:.1f} ms, p95 {b95:.1f} ms")
    print(
        f"load       {args.clients} clients, {n} requests in {wall:.1f} s: "
        f"{n / wall:.1f} requests/s "
        f"= {n * args.points / wall:,.0f} points/s"
    )
    print(
        f"latency    p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {a.max():.1f} ms "
        f"(p50 {p50 / b50:.2f}x, p95 {p95 / b95:.2f}x the single-client baseline)"
    )
    print(f"errors     {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    mid = f", half-way {rss_mid[0]:.1f} MB" if rss_mid else ""
    print(
        f"server RSS after warm-up {rss_before:.1f} MB{mid}, after {n} requests {rss_after:.1f} MB "
        f"({rss_after - rss_before:+.1f} MB)"
    )
    ok = p95 <= 200 and not errors and n == args.requests
    print(f"target     p95 <= 200 ms and no errors: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
