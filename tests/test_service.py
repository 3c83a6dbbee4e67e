"""The HTTP planning service: every endpoint through FastAPI's test client, the safety rules
(token, limits, problem details, loopback), the precomputed nearest-facility lookup against the
engine, and one real server process on a free loopback port."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import make_grid
from lifecircle.coords import from_wgs84
from lifecircle.errors import InputError
from lifecircle.routing import Positions, RoutingGraph, nearest_sources
from lifecircle.service import (
    Limits,
    build_state,
    check_bind,
    create_app,
    is_loopback,
    load_state,
    nearest_from_lookup,
    precompute_tier_lookup,
    routes,
)

TIERS = ["county_centre", "subdistrict_centre", "community_centre", "station", "point"]


# -- a small scenario on disk: an 8 x 8 grid of 100 m blocks written as OSM XML -------------


def write_scenario(d: Path, n: int = 8, seed: int = 0, n_residents: int = 80) -> Path:
    """Write roads.osm, residents.csv, facilities.csv, communities.geojson and scenario.toml."""
    net = make_grid(n, n, 100.0)
    lon, lat = net.to_lonlat(net.node_x, net.node_y)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    lines += [
        f'<node id="{i + 1}" lat="{la:.9f}" lon="{lo:.9f}" version="1"/>'
        for i, (lo, la) in enumerate(zip(lon, lat, strict=True))
    ]
    ids = np.arange(n * n).reshape(n, n)
    ways = [ids[r] for r in range(n)] + [ids[:, c] for c in range(n)]
    for w, nodes in enumerate(ways):
        refs = "".join(f'<nd ref="{k + 1}"/>' for k in nodes)
        lines.append(
            f'<way id="{w + 1}" version="1">{refs}<tag k="highway" v="residential"/></way>'
        )
    lines.append("</osm>")
    (d / "roads.osm").write_text("\n".join(lines), encoding="utf-8")
    rng = np.random.default_rng(seed)
    x0, y0 = float(net.node_x.min()), float(net.node_y.min())
    side = 100.0 * (n - 1)
    rx, ry = x0 + rng.uniform(0, side, n_residents), y0 + rng.uniform(0, side, n_residents)
    rlon, rlat = net.to_lonlat(rx, ry)
    pop = rng.integers(1, 30, n_residents)
    rows = ["id,population,elderly,lon,lat"] + [
        f"R{i},{p},{p // 5},{a:.9f},{b:.9f}"
        for i, (p, a, b) in enumerate(zip(pop, rlon, rlat, strict=True))
    ]
    (d / "residents.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    fx = x0 + np.array([350, 100, 600, 0, 300, 650, 100, 500, 220.0])
    fy = y0 + np.array([350, 100, 600, 50, 300, 650, 600, 120, 480.0])
    tiers = [
        "county_centre",
        "subdistrict_centre",
        "community_centre",
        "community_centre",
        "station",
        "station",
        "point",
        "point",
        "point",
    ]
    flon, flat = net.to_lonlat(fx, fy)
    rows = ["id,name,tier,lon,lat"] + [
        f"F{i},站点{i},{t},{a:.9f},{b:.9f}"
        for i, (t, a, b) in enumerate(zip(tiers, flon, flat, strict=True))
    ]
    (d / "facilities.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    def poly(xa: float, xb: float) -> dict:
        lo, la = net.to_lonlat(
            np.array([xa, xb, xb, xa, xa]),
            np.array([y0 - 60, y0 - 60, y0 + side + 60, y0 + side + 60, y0 - 60]),
        )
        return {
            "type": "Polygon",
            "coordinates": [[[a, b] for a, b in zip(lo.tolist(), la.tolist(), strict=True)]],
        }

    mid = x0 + 350.0
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"community_id": "C1", "name": "东社区"},
                "geometry": poly(x0 - 60, mid),
            },
            {
                "type": "Feature",
                "properties": {"community_id": "C2", "name": "西社区"},
                "geometry": poly(mid, x0 + side + 60),
            },
        ],
    }
    (d / "communities.geojson").write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    (d / "scenario.toml").write_text(
        '[scenario]\nname = "test grid"\nsynthetic = true\n\n[network]\npath = "roads.osm"\n\n'
        '[facilities]\npath = "facilities.csv"\n\n[residents]\npath = "residents.csv"\n\n'
        '[standard]\npreset = "tancheng"\n\n[[units]]\nkey = "community"\nlabel_zh = "社区"\n'
        'label_en = "Community"\npath = "communities.geojson"\nid_field = "community_id"\n',
        encoding="utf-8",
    )
    return d / "scenario.toml"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def state(scenario: Path):
    return load_state(
        scenario, cache_dir=None, limits=Limits(max_features=50, max_body_bytes=20_000)
    )


@pytest.fixture(scope="module")
def client(state) -> TestClient:
    return TestClient(create_app(state), raise_server_exceptions=False)


def fc(points, ids=None) -> dict:
    """A FeatureCollection of [lon, lat] points."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                **({"id": ids[i]} if ids is not None else {}),
                "geometry": {"type": "Point", "coordinates": [float(p[0]), float(p[1])]},
                "properties": {},
            }
            for i, p in enumerate(points)
        ],
    }


def is_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in r.text
    return body


# -- the precomputed lookup is exact -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_lookup_equals_nearest_sources(mode: str) -> None:
    rng = np.random.default_rng(3)
    oneway = None
    if mode == "drive":
        oneway = rng.random(2 * 9 * 10) < 0.4
    net = make_grid(10, 10, 100.0, mode=mode, oneway=oneway)
    graph = RoutingGraph.from_network(net)
    ne = net.n_edges
    src = Positions(rng.integers(0, ne, 12), rng.uniform(0, 100, 12), rng.uniform(0, 30, 12))
    src = Positions(np.where(np.arange(12) == 5, -1, src.edge), src.offset_m, src.access_m)
    # destinations: random, plus several on the sources' own edges (the same-edge case)
    de = np.concatenate([rng.integers(0, ne, 300), np.repeat(src.edge[src.edge >= 0], 3), [-1]])
    dst = Positions(de, rng.uniform(0, 100, len(de)), rng.uniform(0, 50, len(de)))
    node_d, node_s = precompute_tier_lookup(graph, src)
    d, s = nearest_from_lookup(graph, src, node_d, node_s, dst)
    ref = nearest_sources(graph, src, dst)
    np.testing.assert_allclose(d, ref.distance_m, rtol=0, atol=1e-9)
    both = np.isfinite(d)
    # ties may pick another source at the same distance; the distance through the pick must agree
    assert np.all((s[both] == ref.source[both]) | np.isclose(d[both], ref.distance_m[both]))
    assert d[-1] == np.inf and s[-1] == -1
    assert (s[both] != 5).all()


def test_distances_at_residents_equal_coverage(client: TestClient, state) -> None:
    res = state.result.residents
    r = client.post(
        "/distances", json=fc(res[["lon", "lat"]].to_numpy()[:50], ids=res["id"].tolist()[:50])
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    feats = r.json()["features"]
    assert [f["id"] for f in feats] == res["id"].tolist()[:50]
    for t in TIERS:  # flat properties, named as in the residents layer
        got = np.array([f["properties"][f"{t}_distance_m"] for f in feats], float)
        np.testing.assert_allclose(got, res[f"{t}_distance_m"].to_numpy()[:50], atol=0.006)
        assert [f["properties"][f"{t}_nearest_id"] for f in feats] == res[
            f"{t}_nearest_id"
        ].tolist()[:50]
        assert [f["properties"][f"{t}_covered"] for f in feats] == res[f"{t}_covered"].tolist()[:50]
    assert [f["properties"]["all_covered"] for f in feats] == res["all_covered"].tolist()[:50]


def test_distances_in_gcj02_and_bd09(client: TestClient, state) -> None:
    res = state.result.residents.iloc[:10]
    ref = client.post("/distances", json=fc(res[["lon", "lat"]].to_numpy())).json()
    for crs in ("gcj02", "bd09"):
        lon, lat = from_wgs84(res["lon"].to_numpy(), res["lat"].to_numpy(), crs)
        r = client.post(f"/distances?crs={crs}", json=fc(np.column_stack([lon, lat])))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["crs_name"] == crs
        for a, b in zip(ref["features"], body["features"], strict=True):
            for t in TIERS:
                assert a["properties"][f"{t}_distance_m"] == pytest.approx(
                    b["properties"][f"{t}_distance_m"], abs=0.05
                )
        # the answer echoes the points in the request's system
        assert body["features"][0]["geometry"]["coordinates"] == pytest.approx([lon[0], lat[0]])


def test_distances_tier_filter_and_off_network(client: TestClient, state) -> None:
    lon, lat = state.result.residents[["lon", "lat"]].to_numpy()[0]
    r = client.post(
        "/distances?tier=station&tier=便民点&flat=false", json=fc([[lon, lat], [lon + 0.2, lat]])
    )
    assert r.status_code == 200, r.text
    f0, f1 = r.json()["features"]
    assert set(f0["properties"]["tiers"]) == {"station", "point"}
    assert f1["properties"]["on_network"] is False
    assert f1["properties"]["snap_m"] > 10_000
    assert all(
        v["distance_m"] is None and v["covered"] is False and v["nearest_id"] is None
        for v in f1["properties"]["tiers"].values()
    )
    assert f1["id"] == 1 and f1["properties"]["index"] == 1
    flat = client.post("/distances?tier=station", json=fc([[lon, lat], [lon + 0.2, lat]])).json()
    assert set(flat["features"][1]["properties"]) == {
        "index",
        "snap_m",
        "off_network",
        *(f"station_{k}" for k in ("distance_m", "minutes", "threshold_m", "covered")),
        "station_nearest_id",
        "station_nearest_name",
        "all_covered",
    }
    assert flat["features"][1]["properties"]["off_network"] is True
    empty = client.post("/distances", json={"type": "FeatureCollection", "features": []})
    assert empty.status_code == 200 and empty.json()["features"] == []


# -- read-only endpoints ---------------------------------------------------------------------------


def test_health_standard_summary(client: TestClient, state) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["ready"] is True and h["scenario"] == "test grid"
    assert h["counts"]["residents"] == len(state.result.residents) == 80
    assert h["counts"]["facilities"] == 9
    assert h["networks"]["walk"]["nodes"] == 64 and "community" in h["units"]
    assert {"facilities", "residents", "units"} <= set(h["layers"])
    s = client.get("/standard").json()
    assert [t["key"] for t in s["tiers"]] == TIERS
    assert s["tiers"][3]["threshold_m"] == 500
    summary = client.get("/coverage/summary").json()
    assert summary["tiers"]["point"]["share"] == pytest.approx(
        float(state.result.tiers.set_index("tier").loc["point", "share"])
    )
    assert summary["all_tiers"]["population_total"] == pytest.approx(state.result.population_total)


def test_units_table_by_point_in_polygon(client: TestClient, state) -> None:
    import shapely

    body = client.get("/coverage/units", params={"unit": "community"}).json()
    rows = {r["unit_id"]: r for r in body["rows"]}
    assert set(rows) == {"C1", "C2"} and rows["C1"]["name"] == "东社区"
    res = state.result.residents
    poly = state.inputs.units[0].frame.set_index("unit_id").geometry
    for uid, row in rows.items():
        inside = shapely.contains_xy(poly[uid], res["lon"].to_numpy(), res["lat"].to_numpy())
        pop = res["population"].to_numpy()[inside]
        assert row["population"] == pytest.approx(pop.sum())
        cov = res["station_covered"].to_numpy()[inside]
        assert row["station_population_covered"] == pytest.approx(pop[cov].sum())
        assert row["station_share"] == pytest.approx(pop[cov].sum() / pop.sum())
    assert sum(r["population"] for r in rows.values()) == pytest.approx(res["population"].sum())
    is_problem(client.get("/coverage/units", params={"unit": "province"}), 404)
    is_problem(client.get("/coverage/units"), 422)


def test_layers(client: TestClient, state) -> None:
    r = client.get("/layers/residents", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese
    assert len(r.text.strip().splitlines()) == 1 + len(state.result.residents)
    w = client.get("/layers/facilities").json()
    g = client.get("/layers/facilities", params={"crs": "gcj02"}).json()
    assert len(w["features"]) == 9
    lon, lat = from_wgs84(
        np.array([w["features"][0]["geometry"]["coordinates"][0]]),
        np.array([w["features"][0]["geometry"]["coordinates"][1]]),
        "gcj02",
    )
    assert g["features"][0]["geometry"]["coordinates"] == pytest.approx([lon[0], lat[0]], abs=2e-6)
    assert g["features"][0]["geometry"]["coordinates"] != pytest.approx(
        w["features"][0]["geometry"]["coordinates"], abs=1e-4
    )  # GCJ-02 is offset by ~100s of m
    u = client.get("/layers/units").json()
    assert {f["properties"]["unit_id"] for f in u["features"]} == {"C1", "C2"}
    assert u["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    gk = client.get("/layers/facilities", params={"crs": "cgcs2000-gk", "format": "csv"})
    assert gk.status_code == 200 and "epsg" in gk.headers["content-disposition"]
    head = gk.text.splitlines()[0].split(",")
    assert head[-4:] == ["easting", "northing", "lon", "lat"]  # metres, plus WGS84 degrees
    is_problem(client.get("/layers/roads"), 404)
    is_problem(client.get("/layers/..%2F..%2Fetc%2Fpasswd"), 404)
    is_problem(client.get("/layers/residents", params={"format": "shp"}), 422)
    is_problem(client.get("/layers/residents", params={"crs": "EPSG:3857"}), 422)


def test_map(client: TestClient) -> None:
    r = client.get("/map")
    try:
        import lifecircle.maps  # noqa: F401
    except ModuleNotFoundError:
        is_problem(r, 501)
    else:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<html" in r.text.lower()


# -- bad requests are 4xx problem details naming what is wrong ----------------------------------


def test_malformed_json_and_media_type(client: TestClient) -> None:
    b = is_problem(
        client.post(
            "/distances", content=b'{"type": "Feature', headers={"Content-Type": "application/json"}
        ),
        400,
    )
    assert b["code"] == "malformed_json"
    is_problem(
        client.post(
            "/distances",
            content=b"a=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
    is_problem(
        client.post("/distances", content=b"[]", headers={"Content-Type": "application/json"}), 422
    )
    is_problem(client.post("/distances", json={"type": "Feature"}), 422)


def test_wrong_geometry_and_out_of_range(client: TestClient) -> None:
    body = fc([[118.3, 34.6], [118.3, 34.6], [118.3, 34.6]], ids=["a", "b", "c"])
    body["features"][1]["geometry"] = {
        "type": "LineString",
        "coordinates": [[118.3, 34.6], [118.4, 34.6]],
    }
    p = is_problem(client.post("/distances", json=body), 422)
    assert p["errors"][0]["feature"] == 1 and "'b'" in p["detail"] and "features[1]" in p["detail"]
    assert p["errors"][0]["pointer"].startswith("#/features/1/geometry")
    body = fc([[118.3, 34.6], [118.3, 95.0]], ids=["ok", "bad-lat"])
    p = is_problem(client.post("/distances", json=body), 422)
    assert (
        "bad-lat" in p["detail"]
        and p["errors"][0]["pointer"] == "#/features/1/geometry/coordinates/1"
    )
    p = is_problem(
        client.post(
            "/distances",
            content=b'{"type":"FeatureCollection","features":[{"type":'
            b'"Feature","geometry":{"type":"Point","coordinates":[NaN, 34]}}]}',
            headers={"Content-Type": "application/json"},
        ),
        422,
    )
    assert p["errors"][0]["feature"] == 0


def test_limits(client: TestClient, state) -> None:
    lon, lat = state.result.residents[["lon", "lat"]].to_numpy()[0]
    p = is_problem(client.post("/distances", json=fc([[lon, lat]] * 51)), 413)
    assert "51" in p["detail"] and "50" in p["detail"]
    big = b'{"type":"FeatureCollection","features":[],"pad":"' + b"x" * 30_000 + b'"}'
    p = is_problem(
        client.post("/distances", content=big, headers={"Content-Type": "application/json"}), 413
    )
    assert p["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit still holds
        yield b'{"type":"FeatureCollection","features":[],"pad":"'
        for _ in range(10):
            yield b"x" * 5_000
        yield b'"}'

    is_problem(
        client.post("/distances", content=chunks(), headers={"Content-Type": "application/json"}),
        413,
    )


def test_unknown_tier_crs(client: TestClient, state) -> None:
    lon, lat = state.result.residents[["lon", "lat"]].to_numpy()[0]
    p = is_problem(client.post("/distances?tier=hospital", json=fc([[lon, lat]])), 422)
    assert "hospital" in p["detail"] and "station" in p["detail"]
    p = is_problem(client.post("/distances?crs=mars", json=fc([[lon, lat]])), 422)
    assert p["errors"][0]["parameter"] == "crs"
    is_problem(client.get("/nowhere"), 404)
    is_problem(client.delete("/health"), 405)


def test_service_areas_requests(client: TestClient, state) -> None:
    is_problem(client.post("/service-areas", json={"budgets_min": [5]}), 422)
    is_problem(
        client.post("/service-areas", json={"facility_ids": ["F4"], "budgets_min": [500]}), 422
    )
    is_problem(
        client.post("/service-areas", json={"facility_ids": ["F4"], "budgets_min": [-1]}), 422
    )
    p = is_problem(
        client.post("/service-areas", json={"facility_ids": ["F4", "NOPE"], "budgets_min": [5]}),
        404,
    )
    assert "NOPE" in p["detail"]
    is_problem(
        client.post("/service-areas", json={"points": fc([[118.3, 34.6]]), "budgets_min": [5]}), 422
    )
    is_problem(
        client.post(
            "/service-areas", json={"facility_ids": ["F4"], "budgets_min": [5], "budgets_m": [300]}
        ),
        422,
    )
    is_problem(
        client.post("/service-areas", json={"facility_ids": ["F4"], "dissolve": "blob"}), 422
    )
    r = client.post("/service-areas", json={"facility_ids": ["F4", "F5"], "budgets_min": [5, 10]})
    try:
        import lifecircle.service_areas  # noqa: F401
    except ModuleNotFoundError:
        is_problem(r, 501)
        return
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    feats = r.json()["features"]
    assert sorted(
        (f["properties"]["facility_id"], f["properties"]["budget_min"]) for f in feats
    ) == [("F4", 5.0), ("F4", 10.0), ("F5", 5.0), ("F5", 10.0)]
    area = {
        (f["properties"]["facility_id"], f["properties"]["budget_min"]): f["properties"]["area_m2"]
        for f in feats
    }
    assert 0 < area[("F4", 5.0)] < area[("F4", 10.0)]
    # a new point where F4 stands, as a station, gets F4's polygon
    f4 = state.result.facilities.set_index("id").loc["F4"]
    glon, glat = from_wgs84(np.array([f4["lon"]]), np.array([f4["lat"]]), "gcj02")
    r2 = client.post(
        "/service-areas?crs=gcj02",
        json={
            "points": fc([[glon[0], glat[0]]], ids=["new"]),
            "tier": "station",
            "budgets_min": [5, 10],
        },
    )
    assert r2.status_code == 200, r2.text
    new = {f["properties"]["budget_min"]: f["properties"] for f in r2.json()["features"]}
    assert new[5.0]["facility_id"] == "new"
    assert new[5.0]["area_m2"] == pytest.approx(area[("F4", 5.0)], rel=1e-3)
    old = {
        f["properties"]["budget_min"]: f["properties"]
        for f in feats
        if f["properties"]["facility_id"] == "F4"
    }
    assert new[10.0]["population"] == pytest.approx(old[10.0]["population"])
    d = client.post("/service-areas", json={"facility_ids": ["F4", "F5"], "dissolve": "tier"})
    assert d.status_code == 200 and len(d.json()["features"]) == 1


def test_score_requests(client: TestClient, state) -> None:
    lon, lat = state.result.residents[["lon", "lat"]].to_numpy()[:3].T
    cands = fc(np.column_stack([lon, lat]), ids=["A", "B", "C"])
    is_problem(client.post("/score", json={"candidates": cands, "tier": "hospital"}), 422)
    is_problem(
        client.post("/score", json={"candidates": cands, "tier": "station", "k": 10_000}), 422
    )
    is_problem(client.post("/score", json={"candidates": cands}), 422)
    is_problem(client.post("/score", json={"candidates": fc([]), "tier": "station"}), 422)
    dup = fc(np.column_stack([lon, lat]), ids=["A", "A", "C"])
    p = is_problem(client.post("/score", json={"candidates": dup, "tier": "station"}), 422)
    assert p["errors"][0]["feature"] == 1
    try:
        import lifecircle.siting  # noqa: F401
    except ModuleNotFoundError:
        is_problem(client.post("/score", json={"candidates": cands, "tier": "point"}), 501)
        return
    res = state.result.residents
    fac = state.result.facilities
    gap = res[~res["point_covered"]].sort_values("population").iloc[-1]
    existing = fac[fac["tier"] == "point"].iloc[0]
    pts = [[gap["lon"], gap["lat"]], [existing["lon"], existing["lat"]]]
    r = client.post(
        "/score", json={"candidates": fc(pts, ids=["gap", "dup"]), "tier": "point", "k": 1}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "FeatureCollection"
    rows = {f["id"]: f["properties"] for f in body["features"]}
    assert body["features"][0]["geometry"]["coordinates"] == pytest.approx(pts[0], abs=1e-9)
    assert rows["gap"]["rank"] == 1 and rows["gap"]["marginal_gain"] >= gap["population"]
    assert rows["dup"]["marginal_gain"] == 0  # on top of an existing point it adds nobody
    assert [p["candidate_id"] for p in body["picks"]] == ["gap"]
    assert body["coverage_after"]["weight_covered"] == pytest.approx(
        body["coverage_before"]["weight_covered"] + rows["gap"]["marginal_gain"]
    )


def test_timeout_and_internal_error(state, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = TestClient(
        create_app(build_state(state.inputs, limits=Limits(timeout_s=0.2))),
        raise_server_exceptions=False,
    )
    lon, lat = state.result.residents[["lon", "lat"]].to_numpy()[0]
    monkeypatch.setattr(routes, "distances_geojson", lambda *a, **k: time.sleep(2))
    t0 = time.perf_counter()
    p = is_problem(slow.post("/distances", json=fc([[lon, lat]])), 503)
    assert p["code"] == "timeout" and time.perf_counter() - t0 < 1.5

    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(routes, "distances_geojson", boom)
    p = is_problem(slow.post("/distances", json=fc([[lon, lat]])), 500)
    assert "secret" not in json.dumps(p)


def test_heavy_request_does_not_block_the_event_loop(
    state, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = TestClient(create_app(build_state(state.inputs, limits=Limits(timeout_s=5))))
    lon, lat = state.result.residents[["lon", "lat"]].to_numpy()[0]
    started = threading.Event()

    def slow(*a, **k):
        started.set()
        time.sleep(1.5)
        return {"type": "FeatureCollection", "crs_name": "wgs84", "standard": "x", "features": []}

    monkeypatch.setattr(routes, "distances_geojson", slow)
    out: list = []
    th = threading.Thread(target=lambda: out.append(c.post("/distances", json=fc([[lon, lat]]))))
    th.start()
    assert started.wait(5)
    t0 = time.perf_counter()
    assert c.get("/health").status_code == 200
    assert time.perf_counter() - t0 < 0.5  # answered while the computation runs in its thread
    th.join()
    assert out[0].status_code == 200


# -- token, CORS, loopback, logs ------------------------------------------------------------------


def test_token(state) -> None:
    c = TestClient(
        create_app(build_state(state.inputs, token="s3cret")), raise_server_exceptions=False
    )
    p = is_problem(c.get("/health"), 401)
    assert c.get("/health").headers["www-authenticate"].startswith("Bearer")
    assert "Bearer" in p["detail"]
    is_problem(c.get("/health", headers={"Authorization": "Bearer wrong"}), 401)
    is_problem(c.get("/health", headers={"Authorization": "Basic s3cret"}), 401)
    is_problem(c.post("/distances", json=fc([])), 401)
    ok = c.get("/health", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["ready"]


def test_cors_off_unless_configured(state, client: TestClient) -> None:
    h = {"Origin": "http://dashboard.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.get("/health", headers=h).headers
    c = TestClient(create_app(build_state(state.inputs, cors_origins=["http://dashboard.example"])))
    r = c.options("/distances", headers=h)
    assert r.headers["access-control-allow-origin"] == "http://dashboard.example"
    assert (
        "access-control-allow-origin"
        not in c.get("/health", headers={"Origin": "http://evil.example"}).headers
    )
    # with a token: the preflight needs none, and a 401 still carries CORS headers for the page
    t = TestClient(
        create_app(build_state(state.inputs, token="tk", cors_origins=["http://dashboard.example"]))
    )
    assert t.options("/distances", headers=h).status_code == 200
    r = t.get("/health", headers={"Origin": "http://dashboard.example"})
    assert (
        r.status_code == 401
        and r.headers["access-control-allow-origin"] == "http://dashboard.example"
    )


def test_check_bind() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(InputError, match="LIFECIRCLE_TOKEN"):
            check_bind(host, None)
        check_bind(host, "t0ken")


def test_access_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lifecircle.service.access"):
        client.get("/standard")
        client.get("/layers/nothing")
    lines = [r.getMessage() for r in caplog.records if r.name == "lifecircle.service.access"]
    assert len(lines) == 2
    assert "GET /standard 200" in lines[0] and lines[0].endswith(" ms")
    assert "GET /layers/nothing 404" in lines[1]


def test_concurrent_requests_agree(client: TestClient, state) -> None:
    pts = state.result.residents[["lon", "lat"]].to_numpy()[:20]
    ref = client.post("/distances", json=fc(pts)).json()
    out: list = []

    def worker() -> None:
        for _ in range(5):
            out.append(client.post("/distances", json=fc(pts)).json())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 20 and all(o == ref for o in out)


# -- the command line and a real server process ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_refuses_public_host_without_token(scenario: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIFECIRCLE_TOKEN"}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecircle",
            "serve",
            "--scenario",
            str(scenario),
            "--host",
            "0.0.0.0",
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 1
    assert "refusing to listen on 0.0.0.0 without a token" in p.stderr
    assert "Traceback" not in p.stderr


def test_real_server_process(scenario: Path, tmp_path: Path) -> None:
    import httpx

    port = _free_port()
    env = {**os.environ, "LIFECIRCLE_TOKEN": "abc123"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lifecircle",
            "serve",
            "--scenario",
            str(scenario),
            "--port",
            str(port),
            "--no-cache",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                health = httpx.get(
                    f"{url}/health", headers={"Authorization": "Bearer abc123"}, timeout=2
                )
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200
        assert health.json()["ready"] is True
        assert httpx.get(f"{url}/health", timeout=2).status_code == 401
        r = httpx.post(
            f"{url}/distances",
            headers={"Authorization": "Bearer abc123"},
            timeout=5,
            json=fc([[0.0, 0.0]]),
        )
        assert r.status_code == 200 and r.json()["features"][0]["properties"]["off_network"] is True
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode is not None
    assert "GET /health 200" in err  # the access log line
