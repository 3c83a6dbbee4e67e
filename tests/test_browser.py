"""The offline demo map in a real browser: headless Chromium, file://, networking disabled.

The page carries a small probe (see ``lifecircle.maps``) that, on load, writes the Leaflet version,
the layer control's layers, the map bounds, the load time and every JavaScript error / failed
resource load into a hidden ``<pre id="lifecircle-probe">``; ``--dump-dom`` reads it back.

Skipped only when Chromium is missing and the ``CI`` environment variable is not set; in CI a
missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags: headless, no GPU, and no network at all (dead proxy, every host unresolvable).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run the browser test")
    pytest.skip(msg)


def run_chromium(
    args: list[str], *, timeout_s: float = 120, flags: list[str] | None = None
) -> tuple[str, str, float]:
    """Run Chromium with a fresh profile; return stdout, stderr and wall seconds."""
    exe = chromium()
    flags = FLAGS if flags is None else flags
    with tempfile.TemporaryDirectory(prefix="lifecircle-chromium-") as profile:
        t0 = time.perf_counter()
        p = subprocess.run(
            [exe, *flags, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - t0
    return p.stdout, p.stderr, wall


def probe(dom: str) -> dict:
    m = re.search(r'<pre id="lifecircle-probe"[^>]*>(.*?)</pre>', dom, re.S)
    assert m, "the page did not finish loading (no probe in the DOM)"
    import html

    return json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope="module")
def demo_map(tmp_path_factory):
    """The offline demo map (Tancheng scenario), as ``make demo`` writes it."""
    from lifecircle.maps import write_coverage_map
    from lifecircle.pipeline import load_inputs, run_coverage

    chromium()  # skip/fail before the expensive part
    scenario = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng" / "scenario.toml"
    d = tmp_path_factory.mktemp("browser")
    if not scenario.exists():
        from lifecircle.demo import generate

        scenario = generate(d / "demo")["scenario"]
    run = run_coverage(load_inputs(scenario=scenario, cache_dir=None))
    path = write_coverage_map(run, d / "tancheng_demo.html", offline=True)
    return path, run


def test_offline_demo_map_in_chromium(demo_map):
    path, run = demo_map
    assert path.stat().st_size <= 15e6
    dom, err, _ = run_chromium(
        ["--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri()]
    )
    p = probe(dom)
    assert p["errors"] == []
    assert "ERR_FILE_NOT_FOUND" not in err and "Failed to load resource" not in err
    assert p["leaflet"] == "1.9.4" and p["map"] is True
    layers = {ly["name"]: ly for ly in p["control_layers"]}
    fac = run.result.facilities
    for t in run.result.standard.tiers:
        n = int((fac["tier"] == t.key).sum())
        if n:
            ly = layers[f"设施：{t.label_zh} ({n})"]
            assert ly["shown"] and ly["children"] == n
    assert layers["道路网络"]["shown"]
    assert layers["居民覆盖：全部层级"]["shown"] and layers["居民覆盖：全部层级"]["children"] > 0
    assert not layers["居民覆盖：便民点"]["shown"]
    assert any(n.startswith("社区：达标率") for n in layers)
    assert any(n.startswith("覆盖缺口") for n in layers)
    # the view covers the residents
    (s, w), (n_, e) = p["bounds"]
    res = run.result.residents
    assert s <= np.percentile(res["lat"], 5) and n_ >= np.percentile(res["lat"], 95)
    assert w <= np.percentile(res["lon"], 5) and e >= np.percentile(res["lon"], 95)
    assert p["map_layers"] > 100
    # layers grouped in the control; the legend shows only what is on the map
    assert p["groups"] == ["底图", "边界", "覆盖", "服务范围", "缺口", "设施"] or p["groups"] == [
        "底图",
        "边界",
        "覆盖",
        "缺口",
        "设施",
    ]
    legend = set(p["legend"])
    assert {"facilities", "residents resident_cells", "units", "gaps", "boundary"} <= legend
    shown_tiers = {k for k in legend if k.startswith("facilities:")}
    assert shown_tiers == {f"facilities:{t}" for t in set(run.result.facilities["tier"])}
    assert not any(k.startswith("service_areas") for k in legend)  # none shown, none explained


def test_offline_demo_map_loads_fast(demo_map):
    """Real time (no virtual time budget): the load event fires within 5 s."""
    path, _ = demo_map
    dom, _, wall = run_chromium(["--dump-dom", path.resolve().as_uri()])
    p = probe(dom)
    assert p["errors"] == []
    assert p["load_ms"] is not None and p["load_ms"] < 5000, (
        f"load took {p['load_ms']} ms (wall {wall:.1f} s)"
    )


def test_offline_demo_map_screenshot_not_blank(demo_map, tmp_path):
    from PIL import Image

    path, _ = demo_map
    shot = tmp_path / "shot.png"
    run_chromium(
        [
            "--window-size=1200,800",
            "--virtual-time-budget=10000",
            f"--screenshot={shot}",
            path.resolve().as_uri(),
        ]
    )
    assert shot.exists(), "Chromium wrote no screenshot"
    with Image.open(shot) as im:
        assert im.size == (1200, 800)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert rgb.std() > 20
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    assert colours > 50
    # share colours of the resident cells are drawn (red-ish uncovered / green covered)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 120) & (rgb[..., 2] < 120)
    assert red.mean() > 0.01


def _console_errors(stderr: str) -> list[str]:
    """Console errors and failed loads Chromium logged (``--enable-logging=stderr``)."""
    bad = ("Uncaught", "Failed to load resource", "ERR_", "Refused to")
    return [
        line for line in stderr.splitlines() if "CONSOLE" in line and any(b in line for b in bad)
    ]


def test_every_written_page_opens_offline(demo_map, tmp_path):
    """report.html and candidates.html (written by report/score) load with networking disabled:
    no external src/href, no console error; the candidates map's probe reports no error."""
    from lifecircle.document import write_report_document
    from lifecircle.maps import external_references, write_candidates_map
    from lifecircle.pipeline import run_report, run_scoring

    _, run = demo_map
    rep = run_report(run)
    pages = write_report_document(run, rep, tmp_path, pdf=False)
    scoring = run_scoring(run.inputs, tier="station", candidates="auto:20", select_k=2)
    cand = write_candidates_map(scoring.result, scoring.coverage, tmp_path / "candidates.html")
    for page in (pages["report_html"], cand):
        text = page.read_text(encoding="utf-8")
        assert external_references(text) == [], page.name
        dom, err, _ = run_chromium(
            [
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=8000",
                "--dump-dom",
                page.resolve().as_uri(),
            ]
        )
        assert _console_errors(err) == [], page.name
        assert "<body" in dom
    assert (
        probe(run_chromium(["--virtual-time-budget=8000", "--dump-dom", cand.as_uri()])[0])[
            "errors"
        ]
        == []
    )


def test_service_docs_offline(tmp_path):
    """The HTTP service's /docs: Swagger UI from the vendored assets renders the operations with
    every network request outside the server refused."""
    import socket
    import threading

    import uvicorn

    from lifecircle.maps import external_references
    from lifecircle.service.app import create_app_from_scenario

    chromium()
    scenario = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng" / "scenario.toml"
    app = create_app_from_scenario(scenario, cache_dir=None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/docs"
        import urllib.request

        page = urllib.request.urlopen(url, timeout=10).read().decode("utf-8")
        assert external_references(page) == []
        assert "/docs-assets/swagger-ui-bundle.js" in page
        # no proxy (the server is on the loopback), but every host name is unresolvable
        no_proxy = [
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
            if f.startswith("--host")
            else f
            for f in FLAGS
            if not f.startswith("--proxy-server")
        ]
        dom, err, _ = run_chromium(
            [
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            flags=no_proxy,
        )
        assert _console_errors(err) == []
        assert 'class="opblock' in dom  # the operations were rendered from /openapi.json
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _web_mercator_px(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Leaflet's EPSG:3857 pixel coordinates (256-pixel tiles) of a lon/lat at ``zoom``."""
    import math

    r = 6378137.0
    x = r * math.radians(lon)
    y = r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    scale = 256 * 2**zoom
    half = math.pi * r
    return scale * (x / (2 * half) + 0.5), scale * (0.5 - y / (2 * half))


def test_gcj02_basemap_shifts_overlays_by_the_amap_offset(demo_map, tmp_path):
    """With --basemap amap the map's CRS draws a WGS84 point where GCJ-02 puts it (checked at the
    map centre, zoom 18: 1 px ≈ 0.5 m); with OSM it stays in WGS84. Tiles never load here."""
    from lifecircle.coords import wgs84_to_gcj02
    from lifecircle.maps import write_coverage_map

    _, run = demo_map
    probes = {}
    for name in ("amap", "osm"):
        path = write_coverage_map(run, tmp_path / f"{name}.html", basemap=name)
        page = path.read_text(encoding="utf-8")
        assert ("各图层已由 WGS84 偏移至 GCJ-02" in page) == (name == "amap")
        dom, _, _ = run_chromium(["--virtual-time-budget=8000", "--dump-dom", path.as_uri()])
        probes[name] = probe(dom)
    amap, osm = probes["amap"], probes["osm"]
    assert amap["crs"] == "GCJ02" and osm["crs"] == "EPSG:3857"
    lat, lon = amap["center"]
    glon, glat = wgs84_to_gcj02(lon, lat)
    want = _web_mercator_px(float(glon), float(glat), 18)
    assert np.allclose(amap["center_px18"], want, atol=0.5)
    # the shift is the Amap offset (hundreds of metres here), not nothing
    plain = _web_mercator_px(lon, lat, 18)
    shift_px = np.hypot(want[0] - plain[0], want[1] - plain[1])
    assert shift_px > 500  # > ~250 m at zoom 18
    lat, lon = osm["center"]
    assert np.allclose(osm["center_px18"], _web_mercator_px(lon, lat, 18), atol=0.5)
