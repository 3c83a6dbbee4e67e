"""The grid system (网格): coverage check, per-grid balance and reach, re-gridding.

A 4 x 4 block town (5 x 5 streets, 100 m blocks, EPSG:32650 at Tancheng) with two communities,
West (x 0-200 m) and East (x 200-400 m). Areas, households and distances are checked by hand,
against the engine, and against the networkx oracle.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box

import lifecircle as lc
from lifecircle.cli import main
from lifecircle.coords import from_wgs84
from lifecircle.errors import InputError
from lifecircle.grids import GRID_COLUMNS, GridOptions, parse_band
from lifecircle.io import read_units
from lifecircle.maps import build_grids_map, map_layers, render_map_html
from lifecircle.pipeline import run_grids, write_grids_outputs
from lifecircle.routing import RoutingGraph, assigned_source_distances, nearest_sources
from oracle import nearest_distances
from test_browser import probe, run_chromium

ORIGIN = (398_000.0, 3_831_000.0)
CRS = "EPSG:32650"
_TO = Transformer.from_crs(32650, 4326, always_xy=True)


def _ll(geom: shapely.Geometry) -> shapely.Geometry:
    """Town metres (origin at the south-west corner) -> WGS84."""
    return shapely.transform(
        geom,
        lambda xy: np.column_stack(_TO.transform(ORIGIN[0] + xy[:, 0], ORIGIN[1] + xy[:, 1])),
    )


def _points(xy: np.ndarray) -> gpd.array.GeometryArray:
    lon, lat = _TO.transform(ORIGIN[0] + xy[:, 0], ORIGIN[1] + xy[:, 1])
    return gpd.points_from_xy(lon, lat, crs="EPSG:4326")


def _network() -> nx.Graph:
    n = 5
    ix, iy = np.meshgrid(np.arange(n), np.arange(n))
    lon, lat = _TO.transform(ORIGIN[0] + ix.ravel() * 100.0, ORIGIN[1] + iy.ravel() * 100.0)
    g = nx.Graph(crs="EPSG:4326")
    for i in range(n * n):
        g.add_node(i, x=float(lon[i]), y=float(lat[i]))
    ids = np.arange(n * n).reshape(n, n)
    for u, v in zip(
        np.r_[ids[:, :-1].ravel(), ids[:-1, :].ravel()],
        np.r_[ids[:, 1:].ravel(), ids[1:, :].ravel()],
        strict=True,
    ):
        g.add_edge(int(u), int(v))
    return g


def _write_osm(g: nx.Graph, path: Path) -> None:
    """The street grid as OSM XML (every edge a residential way)."""
    nodes = "".join(
        f'<node id="{i + 1}" lat="{d["y"]:.9f}" lon="{d["x"]:.9f}"/>' for i, d in g.nodes(data=True)
    )
    ways = "".join(
        f'<way id="{k + 1}"><nd ref="{u + 1}"/><nd ref="{v + 1}"/>'
        '<tag k="highway" v="residential"/></way>'
        for k, (u, v) in enumerate(g.edges())
    )
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><osm version="0.6">{nodes}{ways}</osm>',
        encoding="utf-8",
    )


def _units(rows: list[tuple[str, str, shapely.Geometry]], key: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            f"{key}_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            **({"community_id": [r[0].split("-")[0] for r in rows]} if key == "grid" else {}),
        },
        geometry=[_ll(r[2]) for r in rows],
        crs="EPSG:4326",
    )


COMMUNITIES = [("W", "西社区", box(0, 0, 200, 400)), ("E", "东社区", box(200, 0, 400, 400))]

# broken by hand: a gap in W (y 200-240), W-1 crossing into E (x 200-240, y 0-200),
# and E-1 overlapping E-2 (x 240-400, y 200-220)
BROKEN_GRIDS = [
    ("W-1", "西一", box(0, 0, 240, 200)),
    ("W-2", "西二", box(0, 240, 200, 400)),
    ("E-1", "东一", box(240, 0, 400, 220)),
    ("E-2", "东二", box(200, 200, 400, 400)),
]


def _inputs(res_xy: np.ndarray, pop: np.ndarray, fac_xy: np.ndarray) -> lc.runs.Inputs:
    residents = gpd.GeoDataFrame(
        {
            "id": [f"R{i + 1}" for i in range(len(pop))],
            "population": pop,
            "elderly": np.round(pop * 0.2),
        },
        geometry=_points(res_xy),
    )
    facilities = gpd.GeoDataFrame(
        {
            "id": [f"S{i + 1}" for i in range(len(fac_xy))],
            "name": [f"服务站{i + 1}" for i in range(len(fac_xy))],
            "tier": "station",
        },
        geometry=_points(fac_xy),
    )
    communities = read_units(_units(COMMUNITIES, "community"), key="community")
    return lc.load_inputs(
        network=_network(),
        facilities=facilities,
        residents=residents,
        units=[communities],
        network_crs=CRS,
        cache_dir=None,
    )


# residents: one in the gap, one in the overlap, one in the crossing part, and one per block
SPECIAL_XY = np.array([[100.0, 220.0], [300.0, 210.0], [220.0, 100.0]])
SPECIAL_POP = np.array([30.0, 60.0, 90.0])
BLOCK_XY = np.array([[50.0 + 100 * i, 50.0 + 100 * j] for i in range(4) for j in range(4)])


@pytest.fixture(scope="module")
def broken_run() -> lc.pipeline.GridRun:
    xy = np.vstack([SPECIAL_XY, BLOCK_XY])
    pop = np.r_[SPECIAL_POP, np.full(16, 300.0)]
    inputs = _inputs(xy, pop, np.array([[100.0, 100.0], [300.0, 300.0]]))
    grids = read_units(_units(BROKEN_GRIDS, "grid"), key="grid")
    return run_grids(inputs, grids_source=grids)


def test_broken_grids_are_diagnosed_exactly(broken_run: lc.pipeline.GridRun) -> None:
    r = broken_run.result
    assert len(r.gaps) == 1 and len(r.overlaps) == 1 and len(r.crossings) == 1
    gap, ovl, crs = r.gaps.iloc[0], r.overlaps.iloc[0], r.crossings.iloc[0]
    assert gap["community_id"] == "W"
    assert gap["area_m2"] == pytest.approx(200 * 40, rel=1e-6)
    assert (gap["residents"], gap["population"]) == (1, 30.0)
    assert gap["households"] == pytest.approx(10.0)
    assert {ovl["grid_id"], ovl["other_grid_id"]} == {"E-1", "E-2"}
    assert ovl["area_m2"] == pytest.approx(160 * 20, rel=1e-6)
    assert (ovl["residents"], ovl["population"]) == (1, 60.0)
    assert (crs["grid_id"], crs["community_id"], crs["into_community_id"]) == ("W-1", "W", "E")
    assert crs["area_m2"] == pytest.approx(40 * 200, rel=1e-6)
    assert (crs["residents"], crs["population"]) == (1, 90.0)
    s = broken_run.summary()
    assert s["residents_outside_grids"] == 1
    assert s["largest_gap_m2"] == pytest.approx(8_000, rel=1e-6)
    # the overlap's resident belongs to the grid listed first (the unit rule), once
    g = r.grids.set_index("grid_id")
    assert g["population"].sum() == pytest.approx(SPECIAL_POP.sum() + 16 * 300 - 30)
    assert g.loc["E-1", "population"] == pytest.approx(60 + 4 * 300)  # listed before E-2
    assert g.loc["W-1", "population"] == pytest.approx(90 + 4 * 300)


def test_grid_table_contract_and_households(broken_run: lc.pipeline.GridRun) -> None:
    g = broken_run.result.grids
    assert list(g.columns[: len(GRID_COLUMNS)]) == list(GRID_COLUMNS)
    np.testing.assert_allclose(g["households"], g["population"] / 3.0)
    band = (g["households"] >= 300) & (g["households"] <= 500)
    assert (g["within_band"] == band).all()
    # the base of W-1 is S1 (inside), E-2's is S2 (inside); W-2 has none inside
    bases = dict(zip(g["grid_id"], g["base_id"], strict=True))
    assert bases["W-1"] == "S1" and bases["E-2"] == "S2"


def test_base_distances_equal_the_engine_and_the_oracle(broken_run: lc.pipeline.GridRun) -> None:
    inputs = broken_run.inputs
    net = inputs.networks["walk"]
    graph = RoutingGraph.from_network(net)
    res = inputs.residents.frame
    fac = inputs.facilities.frame
    loc = lc.coverage.locate({"walk": net}, res["lon"].to_numpy(), res["lat"].to_numpy())
    floc = lc.coverage.locate({"walk": net}, fac["lon"].to_numpy(), fac["lat"].to_numpy())
    rp, fp = loc.positions("walk"), floc.positions("walk")
    g = broken_run.result.grids
    grid_of = lc.units.assign_units(
        res["lon"], res["lat"], broken_run.grids_gdf().geometry.to_numpy()
    )
    base_idx = {b: i for i, b in enumerate(fac["id"])}
    source_of = np.array(
        [base_idx[g["base_id"].iloc[k]] if k >= 0 else -1 for k in grid_of], dtype=np.int64
    )
    got = assigned_source_distances(graph, fp, rp, source_of)
    for b in range(len(fac)):  # each base alone, through the engine's nearest-source search
        mine = source_of == b
        single = nearest_sources(graph, fp.subset(np.array([b])), rp.subset(mine))
        np.testing.assert_allclose(got[mine], single.distance_m, rtol=1e-12)
        oracle = nearest_distances(
            net,
            fp.edge[[b]],
            fp.offset_m[[b]],
            fp.access_m[[b]],
            rp.edge[mine],
            rp.offset_m[mine],
            rp.access_m[mine],
        )
        np.testing.assert_allclose(got[mine], oracle, rtol=1e-9)
    # the table's max is the largest of its residents' distances
    for k, row in g.iterrows():
        d = got[grid_of == k]
        assert row["base_max_m"] == pytest.approx(d.max())


def _clean_town(east_heavy: bool) -> tuple[lc.runs.Inputs, gpd.GeoDataFrame]:
    """Blocks of 150 households (450 people) in W; in E one 600-household building or not."""
    xy = BLOCK_XY.copy()
    pop = np.full(16, 450.0)
    east = xy[:, 0] > 200
    if east_heavy:
        pop[east] = 30.0
        pop[np.flatnonzero(east)[0]] = 1800.0
    inputs = _inputs(xy, pop, np.array([[100.0, 100.0], [300.0, 300.0], [100.0, 300.0]]))
    grids = _units(
        [
            ("W-1", "西一", box(0, 0, 200, 400)),
            ("E-1", "东一", box(200, 0, 400, 200)),
            ("E-2", "东二", box(200, 200, 400, 400)),
        ],
        "grid",
    )
    return inputs, grids


@pytest.mark.parametrize("east_heavy", [False, True])
def test_proposal_conserves_is_contiguous_inside_and_in_band(east_heavy: bool) -> None:
    inputs, grids = _clean_town(east_heavy)
    run = run_grids(inputs, grids_source=grids, propose=True)
    p = run.result.proposed
    assert p is not None
    res = inputs.residents.frame
    # households and people conserved
    assert p["population"].sum() == pytest.approx(res["population"].sum())
    assert p["households"].sum() == pytest.approx(res["population"].sum() / 3.0)
    # ... and the polygons hold them by the unit rule too
    gdf = run.proposed_gdf()
    at = lc.units.assign_units(res["lon"], res["lat"], gdf.geometry.to_numpy())
    assert (at >= 0).all()
    np.testing.assert_allclose(
        np.bincount(at, weights=res["population"], minlength=len(gdf)), p["population"]
    )
    comm = dict(zip(*(lambda c: (c["unit_id"], c.geometry))(inputs.units[0].frame), strict=True))
    communities = run.result.communities.set_index("community_id")
    for geom, cid, inband, status in zip(
        p["geometry"], p["community_id"], p["within_band"], p["status"], strict=True
    ):
        assert geom.geom_type == "Polygon"  # contiguous
        cg = shapely.transform(
            comm[cid], lambda xy: np.column_stack(inputs.networks["walk"].from_lonlat(*xy.T))
        )
        assert shapely.area(shapely.difference(geom, cg)) < 1e-3  # inside its community
        if communities.loc[cid, "feasible"]:
            assert inband and status in ("new", "kept")
    # W: 1200 households -> 3 grids of 300-500; the current W-1 (1200) is not kept
    assert communities.loc["W", "feasible"]
    assert communities.loc["W", "grids_proposed"] == 3
    if east_heavy:
        assert not communities.loc["E", "feasible"]
        assert "600 households" in communities.loc["E", "reason"]
        assert "more than the band's maximum 500" in communities.loc["E", "reason"]
    else:  # E-1 and E-2 hold 600 each: out of band, re-gridded
        assert communities.loc["E", "feasible"]
        assert set(p.loc[p["community_id"] == "E", "status"]) == {"new"}


def test_grids_in_band_are_kept() -> None:
    inputs, _ = _clean_town(False)
    grids = _units(
        [
            ("W-1", "西一", box(0, 0, 200, 100)),  # 2 blocks: 300 households, in band
            ("W-2", "西二", box(0, 100, 200, 400)),  # 6 blocks: 900, out of band
            ("E-1", "东一", box(200, 0, 400, 400)),
        ],
        "grid",
    )
    run = run_grids(inputs, grids_source=grids, propose=True)
    p = run.result.proposed
    assert p is not None
    kept = p[p["status"] == "kept"]
    assert list(kept["grid_id"]) == ["W-1"]
    assert kept["households"].iloc[0] == pytest.approx(300)
    assert p["within_band"].all()


def test_community_below_the_band_is_reported_infeasible() -> None:
    inputs, grids = _clean_town(False)
    run = run_grids(inputs, grids_source=grids, propose=True, households_per_grid="2000-3000")
    c = run.result.communities.set_index("community_id")
    assert not c.loc["W", "feasible"]
    assert "1200 households cannot make grids of 2000-3000" in c.loc["W", "reason"]
    assert run.result.proposed is not None
    assert run.result.proposed["population"].sum() == pytest.approx(16 * 450)


def test_household_column_and_size() -> None:
    inputs, grids = _clean_town(False)
    run = run_grids(inputs, grids_source=grids, household_size=2.5)
    assert run.result.grids["households"].sum() == pytest.approx(16 * 450 / 2.5)


def test_bad_settings_are_one_clear_line() -> None:
    with pytest.raises(InputError, match=r"households band .* not valid"):
        parse_band("500-300")
    with pytest.raises(InputError, match="write it like 300-500"):
        parse_band("three hundred")
    with pytest.raises(InputError, match="household size must be a positive"):
        GridOptions(household_size=0)
    inputs, _ = _clean_town(False)
    with pytest.raises(InputError, match="no grid polygons"):
        run_grids(inputs)


def test_cli_writes_the_contract_files(tmp_path, capsys, monkeypatch) -> None:
    # the terminal speaks the locale's language (the map's labels stay Chinese)
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    inputs, grids = _clean_town(False)
    d = tmp_path / "in"
    d.mkdir()
    inputs.residents.frame[["id", "lon", "lat", "population", "elderly"]].to_csv(
        d / "residents.csv", index=False
    )
    fac = inputs.facilities.frame
    fac[["id", "name", "tier", "lon", "lat"]].to_csv(d / "facilities.csv", index=False)
    _write_osm(_network(), d / "roads.osm")
    grids.to_file(d / "grids.geojson", driver="GeoJSON")
    _units(COMMUNITIES, "community").to_file(d / "communities.geojson", driver="GeoJSON")
    out = tmp_path / "out"
    args = [
        "grids",
        "--network", str(d / "roads.osm"),
        "--facilities", str(d / "facilities.csv"),
        "--residents", str(d / "residents.csv"),
        "--units", str(d / "communities.geojson"),
        "--grids", str(d / "grids.geojson"),
        "--households-per-grid", "300-500",
        "--propose",
        "--no-cache",
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    line = capsys.readouterr().out
    assert "0/3 in band" in line and "proposal: 6 grids" in line
    for name in ("grids.csv", "proposed_grids.csv"):
        frame = pd.read_csv(out / name)
        assert list(frame.columns[: len(GRID_COLUMNS)]) == list(GRID_COLUMNS)
    layers = gpd.list_layers(out / "grids.gpkg")["name"].tolist()
    # plus QGIS's layer_styles table, which every GeoPackage export carries (#16)
    assert set(layers) == {"grids", "gaps", "overlaps", "crossings", "proposed", "layer_styles"}
    with closing(sqlite3.connect(out / "grids.gpkg")) as con:
        described = dict(con.execute("SELECT table_name, description FROM gpkg_contents"))
    assert "in no grid" in described["gaps"]  # the grid system's gaps, not coverage gaps
    page = (out / "grids.html").read_text(encoding="utf-8")
    assert "网格（按户数着色）" in page and "网格缺口" in page and "<script src=" not in page
    assert "网格体系" in (out / "grids_report.html").read_text(encoding="utf-8")
    assert json.loads((out / "grids.json").read_text(encoding="utf-8"))["grids"] == 3
    # a second run without --overwrite refuses and writes nothing
    assert main(args) == 1
    assert "exist" in capsys.readouterr().err
    # the same settings from a scenario's [grids] section
    (d / "scenario.toml").write_text(
        '[network]\npath = "roads.osm"\n[facilities]\npath = "facilities.csv"\n'
        '[residents]\npath = "residents.csv"\n'
        '[[units]]\nkey = "community"\npath = "communities.geojson"\n'
        '[grids]\npath = "grids.geojson"\nhouseholds_per_grid = "200-400"\n'
        "household_size = 2.5\npropose = true\n",
        encoding="utf-8",
    )
    run = lc.run_grids(lc.load_inputs(scenario=d / "scenario.toml", cache_dir=None))
    s = run.summary()
    assert (s["band"], s["household_size"], s["grids"]) == ("200-400", 2.5, 3)
    assert run.result.proposed is not None and run.result.proposed["within_band"].all()


def test_scenario_grids_section(tmp_path) -> None:
    (tmp_path / "scenario.toml").write_text(
        '[network]\npath = "r.osm"\n[facilities]\npath = "f.csv"\n'
        '[grids]\nhouseholds_per_grid = "200-400"\nbogus = 1\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"\[grids\], key 'bogus': unknown key"):
        lc.pipeline.load_scenario(tmp_path / "scenario.toml")


def test_written_outputs_round_trip(broken_run: lc.pipeline.GridRun, tmp_path) -> None:
    paths = write_grids_outputs(broken_run, tmp_path)
    gaps = gpd.read_file(paths["gpkg"], layer="gaps")
    assert len(gaps) == 1
    assert gaps.crs.to_epsg() == 4326
    g = pd.read_csv(paths["grids"])
    assert {"base_lon", "base_lat", "farthest_lon", "farthest_lat"} <= set(g.columns)


def test_grids_workbook_has_chinese_headers_and_the_csv_values(
    broken_run: lc.pipeline.GridRun, tmp_path
) -> None:
    from openpyxl import load_workbook

    paths = write_grids_outputs(broken_run, tmp_path)
    wb = load_workbook(paths["workbook"])
    assert wb.sheetnames[:3] == ["网格", "社区网格变化", "网格缺口"]
    assert wb.sheetnames[-1] == "说明"
    ws = wb["网格"]
    headers = [c.value for c in ws[1]]
    assert headers[:4] == ["网格编号", "社区编号", "户数", "人口"]
    assert not any(h and "_" in str(h) for h in headers), headers  # no machine key shown
    csv = pd.read_csv(paths["grids"], dtype={"grid_id": str})
    values = {r[0].value: r[2].value for r in ws.iter_rows(min_row=2)}
    for gid, hh in zip(csv["grid_id"], csv["households"], strict=True):
        assert values[gid] == pytest.approx(hh)


def test_map_layers_and_counts(broken_run: lc.pipeline.GridRun) -> None:
    layers = {
        "grids": broken_run.grids_gdf(),
        "gaps": broken_run.gaps_gdf(),
        "overlaps": broken_run.overlaps_gdf(),
        "crossings": broken_run.crossings_gdf(),
    }
    m = build_grids_map(broken_run.inputs, layers, broken_run.summary(), lang="en")
    got = {d["kind"]: d["count"] for d in map_layers(m)}
    assert got["grids:grids"] == 4
    assert (got["grids:gaps"], got["grids:overlaps"], got["grids:crossings"]) == (1, 1, 1)
    assert got["grids:bases"] == 4  # every grid has a base and a farthest household
    page = render_map_html(m, offline=True)
    assert "Grids (by households)" in page and "households below the band" in page


def test_bases_file_and_its_rejects(tmp_path) -> None:
    inputs, grids = _clean_town(False)
    bases = gpd.GeoDataFrame(
        {"id": ["B1", "B2"], "name": ["网格站", "远处"]},
        geometry=_points(np.array([[200.0, 200.0], [90_000.0, 90_000.0]])),
    )
    run = run_grids(inputs, grids_source=grids, bases=bases, walk_m=250.0)
    bases_ll = (bases.geometry.x.iloc[0], bases.geometry.y.iloc[0])
    assert set(run.result.grids["base_id"]) == {"B1"}  # B2 is far outside the network
    rej = run.rejects()
    assert list(rej["id"]) == ["B2"] and list(rej["reason"]) == ["outside_network_area"]
    paths = write_grids_outputs(run, tmp_path)
    assert list(pd.read_csv(paths["rejects"])["id"]) == ["B2"]
    # the share within 250 m, from the engine's distances to B1 (every resident: 150 households)
    net = inputs.networks["walk"]
    res = inputs.residents.frame
    rp = lc.coverage.locate({"walk": net}, res["lon"], res["lat"]).positions("walk")
    bp = lc.coverage.locate({"walk": net}, [bases_ll[0]], [bases_ll[1]]).positions("walk")
    d = nearest_sources(RoutingGraph.from_network(net), bp, rp).distance_m
    west = res["lon"].to_numpy() < bases_ll[0]
    w = run.result.grids.set_index("grid_id")
    assert w.loc["W-1", "base_share_within"] == pytest.approx(np.mean(d[west] <= 250.0))
    assert w.loc["W-1", "base_max_m"] == pytest.approx(d[west].max())


def test_households_column_wins_and_is_validated() -> None:
    inputs, grids = _clean_town(False)
    frame = inputs.residents.frame.copy()
    frame["households"] = np.where(np.arange(len(frame)) == 0, "", "100")
    good = lc.runs.Inputs(
        **{**inputs.__dict__, "residents": replace(inputs.residents, frame=frame)}
    )
    run = run_grids(good, grids_source=grids)
    assert run.result.grids["households"].sum() == pytest.approx(15 * 100 + 450 / 3.0)
    frame.loc[3, "households"] = "many"
    bad = lc.runs.Inputs(**{**inputs.__dict__, "residents": replace(inputs.residents, frame=frame)})
    with pytest.raises(InputError, match=r"households must be a non-negative number.*'many'"):
        run_grids(bad, grids_source=grids)


def test_grid_file_in_gcj02(tmp_path) -> None:
    xy = np.vstack([SPECIAL_XY, BLOCK_XY])
    pop = np.r_[SPECIAL_POP, np.full(16, 300.0)]
    inputs = _inputs(xy, pop, np.array([[100.0, 100.0], [300.0, 300.0]]))
    wgs = _units(BROKEN_GRIDS, "grid")
    gcj = wgs.copy()
    gcj.geometry = shapely.transform(
        wgs.geometry.to_numpy(), lambda c: np.column_stack(from_wgs84(c[:, 0], c[:, 1], "gcj02"))
    )
    gcj.to_file(tmp_path / "grids.geojson", driver="GeoJSON")
    run = run_grids(inputs, grids_source=tmp_path / "grids.geojson", grids_crs="gcj02")
    r = run.result
    assert (len(r.gaps), len(r.overlaps), len(r.crossings)) == (1, 1, 1)
    assert r.gaps["area_m2"].iloc[0] == pytest.approx(200 * 40, rel=1e-3)
    assert (r.gaps["residents"].iloc[0], r.crossings["residents"].iloc[0]) == (1, 1)


@pytest.mark.browser
@pytest.mark.slow
def test_grids_map_in_chromium(broken_run: lc.pipeline.GridRun, tmp_path) -> None:
    paths = write_grids_outputs(broken_run, tmp_path)
    dom, err, _ = run_chromium(
        ["--virtual-time-budget=10000", "--dump-dom", paths["map"].resolve().as_uri()]
    )
    p = probe(dom)
    assert p["errors"] == [] and "Failed to load resource" not in err
    layers = {ly["name"]: ly for ly in p["control_layers"]}
    assert layers["网格（按户数着色）"]["shown"] and layers["网格缺口"]["shown"]
    assert layers["网格站点及最远住户"]["children"] == 8  # a line and a marker per grid
