"""Tests of the seeded SYNTHETIC Tancheng demonstration scenario generator (lifecircle.demo)."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path

import networkx as nx
import numpy as np
import osmnx as ox
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from shapely.geometry import shape

from lifecircle import demo
from lifecircle.coords import convert
from lifecircle.demo import run as demo_run
from lifecircle.errors import InputError

TO_UTM = Transformer.from_crs(4326, 32650, always_xy=True)
EXPECTED = {
    "county_centre": 1,
    "subdistrict_centre": 1,
    "community_centre": 16,
    "station": 146,
    "point": 1423,
}


def _csv(path: Path) -> pd.DataFrame:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# SYNTHETIC")
    return pd.read_csv(path, skiprows=1, dtype={"id": str})


def _geo(path: Path) -> tuple[dict, list]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc, [(f["properties"], shape(f["geometry"])) for f in doc["features"]]


def _utm_area(geom) -> float:
    return shapely.transform(
        geom, lambda c: np.column_stack(TO_UTM.transform(c[:, 0], c[:, 1]))
    ).area


@pytest.fixture(scope="module")
def town(tmp_path_factory) -> dict[str, Path]:
    return demo.generate(tmp_path_factory.mktemp("town"), seed=2020)


@pytest.fixture(scope="module")
def county_outline():
    _, feats = _geo(Path(str(demo.DEFAULT_BOUNDARY_PATH)))
    return feats[0][1]


@pytest.fixture(scope="module")
def facilities_wgs84(town) -> pd.DataFrame:
    f = _csv(town["facilities"])
    lon, lat = convert(f["lon"].to_numpy(), f["lat"].to_numpy(), "gcj02", "wgs84")
    return f.assign(wlon=lon, wlat=lat)


@pytest.fixture(scope="module")
def road_graph(town):
    return ox.graph_from_xml(town["roads"], retain_all=True, simplify=False)


def test_returned_paths(town):
    assert set(town) == {
        "roads",
        "residents",
        "facilities",
        "facilities_with_errors",
        "communities",
        "grids",
        "subdistrict",
        "scenario",
        "population_table",
        "scenario_population_table",
        "readme",
    }
    for p in town.values():
        assert p.is_file()
    total = sum(p.stat().st_size for p in town.values())
    assert total < 25e6
    assert "SYNTHETIC" in town["readme"].read_text(encoding="utf-8")


def test_tier_counts(town):
    f = _csv(town["facilities"])
    assert list(f.columns) == ["id", "name", "tier", "kind", "lon", "lat"]
    assert f["tier"].value_counts().to_dict() == EXPECTED
    assert f["id"].is_unique
    assert set(f.loc[f.tier == "station", "kind"]) <= {"小区", "公园", "广场", "商业街"}
    assert f.loc[f.tier == "county_centre", "name"].iloc[0] == "郯城县党群服务中心"


def test_residents_table(town):
    r = _csv(town["residents"])
    assert list(r.columns) == [
        "id",
        "name",
        "kind",
        "lon",
        "lat",
        "population",
        "elderly",
        "children",
    ]
    assert 5000 <= len(r) <= 15000
    assert r["id"].is_unique
    assert (r["population"] > 0).all()
    assert r["population"].sum() == demo.TOWN_POPULATION
    assert (r["elderly"] + r["children"] <= r["population"]).all()
    pop = r["population"].sum()
    assert r["children"].sum() / pop == pytest.approx(demo.CHILDREN_SHARE, abs=0.005)
    assert r["elderly"].sum() / pop == pytest.approx(demo.ELDERLY_SHARE, abs=0.005)


def test_population_table_matches_residents_in_communities(town):
    """The census-style table (GB18030, title row) holds each community's resident points."""
    import geopandas as gpd

    t = pd.read_csv(
        town["population_table"], encoding="gb18030", skiprows=1, dtype={"社区代码": str}
    )
    assert list(t.columns) == ["社区代码", "社区名称", "常住人口", "60岁以上", "0-14岁"]
    r = _csv(town["residents"])
    comm = gpd.read_file(town["communities"])
    pts = gpd.GeoDataFrame(r, geometry=gpd.points_from_xy(r["lon"], r["lat"]), crs=4326)
    joined = gpd.sjoin(pts, comm[["community_id", "geometry"]], predicate="intersects")
    joined = joined[~joined.index.duplicated(keep="first")]
    by = joined.groupby("community_id")["population"].sum()
    assert t.set_index("社区代码")["常住人口"].to_dict() == by.to_dict()
    assert t["社区名称"].str.endswith("居委会").all()
    assert "population_table" in town["scenario_population_table"].read_text(encoding="utf-8")


def test_everything_inside_county(town, county_outline, facilities_wgs84):
    r = _csv(town["residents"])
    assert shapely.contains_xy(county_outline, r["lon"], r["lat"]).all()
    f = facilities_wgs84
    assert shapely.contains_xy(county_outline, f["wlon"], f["wlat"]).all()


def test_units_tile(town, county_outline):
    cdoc, comms = _geo(town["communities"])
    gdoc, grids = _geo(town["grids"])
    sdoc, sds = _geo(town["subdistrict"])
    for doc in (cdoc, gdoc, sdoc):
        assert "SYNTHETIC" in doc["description"] and "name" in doc
        assert "crs" not in doc
    assert len(comms) == 16 and len(grids) == 108 and len(sds) == 1
    assert all(p["synthetic"] is True for p, _ in comms + grids + sds)
    sub = sds[0][1]
    comm_area = {p["community_id"]: _utm_area(g) for p, g in comms}
    for cid, area in comm_area.items():
        mine = [g for p, g in grids if p["community_id"] == cid]
        assert len(mine) >= 3
        union = shapely.union_all(mine)
        c_geom = next(g for p, g in comms if p["community_id"] == cid)
        assert sum(_utm_area(g) for g in mine) == pytest.approx(area, rel=1e-6)  # no overlaps
        assert _utm_area(union) == pytest.approx(area, rel=1e-6)
        assert _utm_area(shapely.symmetric_difference(union, c_geom)) < 1e-6 * area  # same shape
    total = _utm_area(sub)
    assert sum(comm_area.values()) == pytest.approx(total, rel=1e-6)
    assert _utm_area(shapely.union_all([g for _, g in comms])) == pytest.approx(total, rel=1e-6)
    assert _utm_area(shapely.difference(sub, county_outline)) < 1e-6 * total
    # every resident is in exactly one community
    r = _csv(town["residents"])
    hits = sum(shapely.contains_xy(g, r["lon"], r["lat"]).astype(int) for _, g in comms)
    assert (hits == 1).all()


def test_osm_parses_with_islands(town, road_graph):
    text = town["roads"].read_text(encoding="utf-8")
    assert text.startswith("<?xml version='1.0' encoding='UTF-8'?>")
    assert "SYNTHETIC" in text.splitlines()[1] and "<bounds " in text
    assert (
        15_000
        <= sum(1 for _ in filter(lambda s: s.startswith("  <node "), text.splitlines()))
        <= 40_000
    )
    g = road_graph
    highway_edges = [(u, v, k) for u, v, k, d in g.edges(keys=True, data=True) if "highway" in d]
    h = g.edge_subgraph(highway_edges)
    comps = sorted(nx.weakly_connected_components(h), key=len, reverse=True)
    assert len(comps[0]) > 0.97 * h.number_of_nodes()
    names = []
    for comp in comps[1:]:
        names += [d.get("name", "") for _, _, d in h.subgraph(comp).edges(data=True)]
    assert any("河心岛" in str(n) for n in names)
    assert any("体育公园" in str(n) for n in names)
    tags = [d for _, _, d in g.edges(data=True)]
    assert any(d.get("bridge") == "yes" for d in tags)
    assert any(d.get("waterway") == "river" for d in tags) or "waterway" in text
    assert "access" not in text  # gated compounds stay walkable


def test_gcj02_facilities_land_on_streets_only_after_conversion(town, road_graph, facilities_wgs84):
    g = road_graph
    xs = {n: TO_UTM.transform(d["x"], d["y"]) for n, d in g.nodes(data=True)}
    segs = [shapely.LineString([xs[u], xs[v]]) for u, v, d in g.edges(data=True) if "highway" in d]
    tree = shapely.STRtree(segs)
    f = facilities_wgs84

    converted = shapely.points(
        np.column_stack(TO_UTM.transform(f["wlon"].to_numpy(), f["wlat"].to_numpy()))
    )
    raw = shapely.points(
        np.column_stack(TO_UTM.transform(f["lon"].to_numpy(), f["lat"].to_numpy()))
    )
    (_, own), dist = tree.query_nearest(converted, return_distance=True, all_matches=False)
    assert float(np.median(dist)) < 10.0
    # the raw GCJ-02 position is far from the facility's own street (the network is dense, so
    # some other street is always near; what matters is which street a facility snaps to)
    raw_to_own = shapely.distance(raw, np.array(segs, dtype=object)[own])
    assert float(np.median(raw_to_own)) > 200.0
    (_, raw_nearest) = tree.query_nearest(raw, all_matches=False)
    assert float(np.mean(raw_nearest == own)) < 0.05


def test_deliberate_coverage_gap(town, facilities_wgs84):
    """One community has clearly worse 5-minute (300 m) coverage than most others."""
    import osmium

    nodes: dict[int, tuple[float, float]] = {}
    edges: list[tuple[int, int]] = []

    class Handler(osmium.SimpleHandler):
        def node(self, n):
            nodes[n.id] = (n.location.lon, n.location.lat)

        def way(self, w):
            if "highway" in w.tags:
                refs = [n.ref for n in w.nodes]
                edges.extend(itertools.pairwise(refs))

    Handler().apply_file(str(town["roads"]))
    ids = np.array(list(nodes))
    ll = np.array([nodes[i] for i in ids])
    xy = np.column_stack(TO_UTM.transform(ll[:, 0], ll[:, 1]))
    index = {int(i): k for k, i in enumerate(ids)}
    e = np.array([(index[a], index[b]) for a, b in edges])
    w = np.hypot(*(xy[e[:, 0]] - xy[e[:, 1]]).T)
    n = len(ids)
    graph = coo_matrix(
        (np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)
    ).tocsr()
    used = np.unique(e)
    tree = cKDTree(xy[used])
    f = facilities_wgs84[facilities_wgs84.tier == "point"]
    _, fi = tree.query(
        np.column_stack(TO_UTM.transform(f["wlon"].to_numpy(), f["wlat"].to_numpy()))
    )
    dist = dijkstra(graph, directed=False, indices=np.unique(used[fi]), min_only=True)
    r = _csv(town["residents"])
    dr, ri = tree.query(np.column_stack(TO_UTM.transform(r["lon"].to_numpy(), r["lat"].to_numpy())))
    covered = (dist[used[ri]] + dr) <= 300.0
    _, comms = _geo(town["communities"])
    shares = []
    for _, g in comms:
        m = shapely.contains_xy(g, r["lon"], r["lat"])
        shares.append(float((r["population"][m] * covered[m]).sum() / r["population"][m].sum()))
    shares_arr = np.array(shares)
    assert shares_arr.min() < 0.5
    assert (shares_arr > 0.75).sum() >= 12


def test_errors_file(town):
    e = _csv(town["facilities_with_errors"])
    assert 36 <= len(e) <= 40
    assert e["lon"].isna().sum() >= 1
    assert pd.to_numeric(e["lat"], errors="coerce").isna().sum() >= 1
    assert (pd.to_numeric(e["lat"], errors="coerce") > 90).sum() == 1
    assert e["id"].duplicated().sum() == 1
    assert "卫生站" in set(e["tier"]) and "便民点" in set(e["tier"])
    assert e["name"].isna().sum() == 1
    assert (pd.to_numeric(e["lat"], errors="coerce") > 39).sum() >= 1  # Beijing (or swapped)


def test_scenario_toml(town):
    doc = tomllib.loads(town["scenario"].read_text(encoding="utf-8"))
    assert town["scenario"].read_text(encoding="utf-8").startswith("# SYNTHETIC")
    assert doc["scenario"]["synthetic"] is True and doc["scenario"]["seed"] == 2020
    assert doc["facilities"]["crs"] == "gcj02" and doc["standard"]["preset"] == "tancheng"
    base = town["scenario"].parent
    for rel in (doc["network"]["path"], doc["facilities"]["path"], doc["residents"]["path"],
                doc["boundaries"]["subdistrict"], doc["boundaries"]["county"],
                *(u["path"] for u in doc["units"])):  # fmt: skip
        assert (base / rel).is_file(), rel
    assert [u["key"] for u in doc["units"]] == ["community", "grid"]


def test_deterministic(town, tmp_path):
    again = demo.generate(tmp_path / "again", seed=2020)
    for key, path in town.items():
        if key == "scenario":  # may differ only in the county path (different directory depth)
            continue
        assert again[key].read_bytes() == path.read_bytes(), key
    other = demo.generate(tmp_path / "other", seed=7)
    assert other["roads"].read_bytes() != town["roads"].read_bytes()
    assert other["facilities"].read_bytes() != town["facilities"].read_bytes()


def test_packaged_outline_is_the_repository_copy():
    """The outline shipped as package data is the one in data/boundaries (with provenance)."""
    packaged = demo.packaged_outline()
    repo = Path(__file__).parents[1] / "data" / "boundaries" / "tancheng_county_wgs84.geojson"
    assert packaged.read_bytes() == repo.read_bytes()
    assert (Path(str(packaged)).parent / "README.md").is_file()


def test_scenario_names_a_given_outline_relatively(tmp_path):
    outline = tmp_path / "b" / "county.geojson"
    outline.parent.mkdir()
    outline.write_bytes(demo.packaged_outline().read_bytes())
    paths = demo.generate(tmp_path / "d" / "s", seed=2020, boundary_path=outline)
    doc = tomllib.loads(paths["scenario"].read_text(encoding="utf-8"))
    assert doc["boundaries"]["county"] == "../../b/county.geojson"


def test_default_demo_dir_is_relative():
    """``lifecircle demo`` writes under the working directory, never inside the package."""
    assert not demo.DEFAULT_DEMO_DIR.is_absolute()


def test_missing_boundary(tmp_path):
    with pytest.raises(InputError, match="outline"):
        demo.generate(tmp_path / "x", boundary_path=tmp_path / "nope.geojson")
    with pytest.raises(InputError):
        demo.generate(tmp_path / "x", scale="city")  # type: ignore[arg-type]


def test_ensure_demo(tmp_path, monkeypatch):
    calls = []
    real = demo.generate

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(demo_run, "generate", spy)
    p = demo.ensure_demo(tmp_path / "d", seed=3)
    assert p.name == "scenario.toml" and p.is_file() and len(calls) == 1
    assert demo.ensure_demo(tmp_path / "d", seed=3) == p and len(calls) == 1


def test_county_scale(tmp_path, county_outline):
    paths = demo.generate(tmp_path / "county", seed=2020, scale="county")
    text = paths["roads"].read_text(encoding="utf-8")
    n_nodes = text.count("\n  <node ")
    assert n_nodes >= 100_000
    r = _csv(paths["residents"])
    assert r["population"].sum() == pytest.approx(885_000, rel=0.01)
    assert shapely.contains_xy(county_outline, r["lon"], r["lat"]).all()
    f = _csv(paths["facilities"])
    assert f["tier"].value_counts().to_dict() == EXPECTED
    _, comms = _geo(paths["communities"])
    assert sum(p["kind"] == "community" for p, _ in comms) == 16
    assert sum(p["kind"] == "township" for p, _ in comms) == 15
