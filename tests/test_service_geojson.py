"""Web maps: ``/distances`` flat GeoJSON (RFC 7946), ``/score`` as a FeatureCollection, OpenAPI
examples that answer 200 (real ids of the loaded scenario), ``ETag`` on layers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from geojson_pydantic import FeatureCollection

from lifecircle.service import Limits, create_app, load_state
from test_service import fc, write_scenario

GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}


def _position(p: Any, where: str) -> None:
    assert isinstance(p, list) and len(p) in (2, 3), where
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in p), where
    assert -180 <= p[0] <= 180 and -90 <= p[1] <= 90, f"{where}: not WGS84 lon/lat"


def check_rfc7946(doc: dict[str, Any]) -> None:
    """The rules of RFC 7946 a FeatureCollection of points must follow (section numbers), and
    an independent validator (geojson-pydantic's RFC 7946 models)."""
    FeatureCollection.model_validate(doc)
    assert doc["type"] == "FeatureCollection"  # 3.3
    assert isinstance(doc["features"], list)
    assert "crs" not in doc  # 4: no crs member
    for key in ("geometry", "properties", "coordinates"):  # 7.1: no core member as foreign
        assert key not in doc
    for i, f in enumerate(doc["features"]):
        where = f"features[{i}]"
        assert f["type"] == "Feature", where  # 3.2
        assert "geometry" in f and "properties" in f, where
        assert f["properties"] is None or isinstance(f["properties"], dict), where
        if "id" in f:
            assert isinstance(f["id"], str | int | float), where  # 3.2: string or number
        g = f["geometry"]
        if g is not None:
            assert g["type"] in GEOMETRY_TYPES, where  # 3.1
            if g["type"] == "Point":
                _position(g["coordinates"], where)  # 3.1.2, 4: lon, lat in WGS84
        for v in (f["properties"] or {}).values():  # flat: web maps style scalars
            assert v is None or isinstance(v, str | int | float | bool), (where, v)
            assert not isinstance(v, float) or math.isfinite(v), where


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    scenario: Path = write_scenario(tmp_path_factory.mktemp("service_geojson"))
    # two bad residents rows: one 10 km east of the streets (placed on the rejects layer), one
    # whose longitude does not parse
    res = scenario.with_name("residents.csv")
    first = res.read_text(encoding="utf-8").splitlines()[1].split(",")
    far = f"FAR,5,1,{float(first[3]) + 0.1:.9f},{first[4]}"
    res.write_text(res.read_text(encoding="utf-8") + far + "\nBAD,5,1,east,34.6\n", "utf-8")
    state = load_state(scenario, cache_dir=None, limits=Limits(max_features=50))
    return TestClient(create_app(state), raise_server_exceptions=False)


def test_flat_distances_are_rfc7946_and_match_the_residents_layer(client: TestClient) -> None:
    layer = client.get("/layers/residents").json()
    feats = layer["features"][:20]
    pts = [f["geometry"]["coordinates"] for f in feats]
    r = client.post("/distances", json=fc(pts, ids=[f["properties"]["id"] for f in feats]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    text = r.text
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    check_rfc7946(doc)
    for got, want in zip(doc["features"], feats, strict=True):
        p, w = got["properties"], want["properties"]
        assert got["id"] == w["id"]
        # the same property names and values as the residents layer (whose coordinates are
        # rounded to 6 decimals, ~0.1 m)
        shared = [k for k in w if k.endswith(("_distance_m", "_minutes", "_covered", "_id"))]
        assert len(shared) >= 16 and set(shared) - {"id"} <= set(p)
        for key in shared:
            if key.endswith(("_distance_m", "_minutes")):
                assert p[key] == pytest.approx(w[key], abs=0.3), key
            elif key != "id":
                assert p[key] == w[key], key
        assert p["snap_m"] == pytest.approx(w["snap_m"], abs=0.3)
        assert p["off_network"] == w["off_network"]
    # the nested form is still there on request
    nested = client.post("/distances?flat=false", json=fc(pts[:1])).json()
    tiers = [k.removesuffix("_covered") for k in feats[0]["properties"] if k.endswith("_covered")]
    assert set(nested["features"][0]["properties"]["tiers"]) == set(tiers) - {"all"}


def test_score_is_a_feature_collection(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    example = next(iter(body["examples"].values()))["value"]
    r = client.post("/score", json=example)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    check_rfc7946(doc)
    assert [f["properties"]["rank"] for f in doc["features"]] == list(
        range(1, len(doc["features"]) + 1)
    )
    ids = {f["id"] for f in doc["features"]}
    assert ids == {f["id"] for f in example["candidates"]["features"]}
    assert {p["candidate_id"] for p in doc["picks"]} <= ids
    assert 1 <= len(doc["picks"]) <= example["k"]  # greedy stops when nobody is left to gain
    assert doc["tier"] == example["tier"] and doc["crs_name"] == "wgs84"


def test_openapi_examples_come_from_the_scenario_and_answer_200(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    facility_ids = {
        f["properties"]["id"] for f in client.get("/layers/facilities").json()["features"]
    }
    tiers = [t["key"] for t in client.get("/standard").json()["tiers"]]
    sent = 0
    for path in ("/distances", "/service-areas", "/score"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        for name, ex in content["examples"].items():
            value = ex["value"]
            for fid in value.get("facility_ids", []):
                assert fid in facility_ids, (path, name, fid)
            if "tier" in value:
                assert value["tier"] in tiers
            r = client.post(path, json=value)
            assert r.status_code == 200, (path, name, r.text)
            sent += 1
    assert sent == 4
    assert "F0001" not in json.dumps(spec)  # the old example id that did not exist
    # the flat answer's properties are documented with the standard's tier keys
    schemas = spec["components"]["schemas"]
    props = schemas["FlatDistanceProps"]["properties"]
    for t in tiers:
        assert {f"{t}_distance_m", f"{t}_covered", f"{t}_nearest_id"} <= set(props)


def test_rejects_layer_is_served(client: TestClient) -> None:
    assert client.get("/health").json()["counts"]["rejected_rows"] == 2
    doc = client.get("/layers/rejects").json()
    check_rfc7946(doc)
    assert [f["properties"]["id"] for f in doc["features"]] == ["FAR"]  # BAD has no position
    assert doc["features"][0]["properties"]["reason"] == "outside_network_area"


def test_layers_carry_an_etag_and_answer_304(client: TestClient) -> None:
    r = client.get("/layers/facilities", params={"crs": "gcj02"})
    assert r.status_code == 200
    tag = r.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    again = client.get(
        "/layers/facilities", params={"crs": "gcj02"}, headers={"If-None-Match": tag}
    )
    assert again.status_code == 304 and again.headers["etag"] == tag and again.content == b""
    weak = client.get(
        "/layers/facilities", params={"crs": "gcj02"}, headers={"If-None-Match": f"W/{tag}"}
    )
    assert weak.status_code == 304
    other = client.get("/layers/facilities", headers={"If-None-Match": tag})
    assert other.status_code == 200 and other.headers["etag"] != tag  # another CRS, another tag
    csv = client.get("/layers/facilities", params={"format": "csv"})
    assert csv.headers["etag"] not in (tag, other.headers["etag"])
    stale = client.get("/layers/facilities", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.content == other.content
