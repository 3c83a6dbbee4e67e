"""Local road centre lines: read, noded at crossings within a tolerance, merged with OSM."""

from __future__ import annotations

import json

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString

import lifecircle as lc
from conftest import GRID_CRS, GRID_ORIGIN, make_grid
from lifecircle.cli import main
from lifecircle.errors import InputError
from lifecircle.roads import merge_road_lines, read_road_lines


def _lines(coords_m: list[list[tuple[float, float]]], **cols: list) -> gpd.GeoDataFrame:
    x0, y0 = GRID_ORIGIN
    geoms = [LineString([(x0 + x, y0 + y) for x, y in c]) for c in coords_m]
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=GRID_CRS).to_crs(4326)


def _dist(net, a_xy: tuple[float, float], b_xy: tuple[float, float]) -> float:
    """networkx Dijkstra between the nodes at two grid positions (the oracle)."""
    x0, y0 = GRID_ORIGIN
    d_a = np.hypot(net.node_x - x0 - a_xy[0], net.node_y - y0 - a_xy[1])
    d_b = np.hypot(net.node_x - x0 - b_xy[0], net.node_y - y0 - b_xy[1])
    assert d_a.min() < 1e-6 and d_b.min() < 1e-6, "no node at that position"
    g = nx.Graph()
    for u, v, w in zip(net.edge_u, net.edge_v, net.edge_length_m, strict=True):
        if not g.has_edge(u, v) or g[u][v]["w"] > w:
            g.add_edge(int(u), int(v), w=float(w))
    return nx.shortest_path_length(g, int(d_a.argmin()), int(d_b.argmin()), weight="w")


def test_lines_are_noded_at_crossings_and_snapped_end_points(tmp_path):
    base = make_grid()  # 6 x 6 nodes, 100 m blocks
    gdf = _lines(
        [
            [(0, 0), (500, 500)],  # diagonal through the grid's nodes
            [(250, 100.4), (250, 299.6)],  # ends 0.4 m off two streets, crosses y = 200
            [(50, 50), (50, 150)],  # a motorway: not walkable
        ],
        highway=["footway", "", "motorway"],
    )
    gdf.to_file(tmp_path / "roads.gpkg")
    lines = read_road_lines(tmp_path / "roads.gpkg")
    net, rep = merge_road_lines(lines, mode="walk", base=base, tolerance_m=1.0)
    assert rep["lines"] == 3 and rep["lines_used"] == 2 and rep["lines_left_out_by_class"] == 1
    assert rep["crossings_noded"] >= 1 and rep["end_points_snapped"] >= 2
    assert net.extra_roads == rep and net.summary()["extra_roads"]["lines_used"] == 2
    # the diagonal shortens corner to corner from 1000 m to 500 * sqrt(2)
    assert _dist(base, (0, 0), (500, 500)) == pytest.approx(1000.0)
    assert _dist(net, (0, 0), (500, 500)) == pytest.approx(500 * np.sqrt(2), abs=1e-3)
    # the short cut: new nodes on the streets at x = 250, joined through its crossing at y = 200
    assert _dist(net, (250, 100), (250, 300)) == pytest.approx(200.0, abs=1e-3)
    assert _dist(net, (250, 200), (200, 200)) == pytest.approx(50.0, abs=1e-3)
    # a split OSM edge keeps its total length
    assert net.edge_length_m.sum() == pytest.approx(
        base.edge_length_m.sum() + 500 * np.sqrt(2) + 200.0, abs=0.5
    )
    # with a tolerance of 0.1 m the 0.4 m gaps stay open: only the crossing connects B
    net2, rep2 = merge_road_lines(lines, mode="walk", base=base, tolerance_m=0.1)
    assert rep2["end_points_snapped"] < rep["end_points_snapped"]
    x0, y0 = GRID_ORIGIN
    assert np.hypot(net2.node_x - x0 - 250, net2.node_y - y0 - 100).min() > 0.3  # not split
    assert _dist(net2, (250, 200), (200, 200)) == pytest.approx(50.0, abs=1e-3)


def test_oneway_lines_in_drive_mode_and_lines_alone(tmp_path):
    gdf = _lines(
        [[(0, 0), (100, 0)], [(100, 0), (100, 100)], [(0, 0), (0, 100), (100, 100)]],
        highway=["residential"] * 3,
        oneway=["yes", "-1", ""],
    )
    gdf.to_file(tmp_path / "roads.gpkg")
    lines = read_road_lines(tmp_path / "roads.gpkg")
    net, _ = merge_road_lines(lines, mode="drive")
    assert net.n_edges == 4 and net.crs == "EPSG:32650"
    fwd = net.edge_oneway
    assert fwd.sum() == 2
    # the -1 line runs against its drawing: from (100, 100) to (100, 0)
    x0 = GRID_ORIGIN[0]
    e = np.flatnonzero(fwd & (np.abs(net.node_x[net.edge_u] - x0 - 100) < 1e-6))
    assert len(e) == 1 and net.node_y[net.edge_u[e[0]]] > net.node_y[net.edge_v[e[0]]]


def test_line_network_through_the_pipeline_and_cli(tmp_path, helsinki_walk, helsinki_pbf):
    # Helsinki streets plus one new 400 m path across the middle
    minx, miny, maxx, maxy = helsinki_walk.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    lon, lat = helsinki_walk.to_lonlat(np.array([cx - 200, cx + 200]), np.array([cy, cy + 30]))
    gpd.GeoDataFrame(
        {"highway": ["footway"]}, geometry=[LineString(zip(lon, lat, strict=True))], crs=4326
    ).to_file(tmp_path / "paths.shp", encoding="utf-8")
    plon, plat = helsinki_walk.to_lonlat(np.array([cx - 150.0, cx + 150.0]), np.array([cy, cy]))
    pd.DataFrame(
        {"id": ["F1", "R1"], "tier": ["station", ""], "lon": plon, "lat": plat, "population": 5}
    ).iloc[:1].to_csv(tmp_path / "fac.csv", index=False)
    pd.DataFrame({"id": ["R1"], "lon": plon[1:], "lat": plat[1:], "population": [5]}).to_csv(
        tmp_path / "res.csv", index=False
    )
    common = dict(facilities=tmp_path / "fac.csv", residents=tmp_path / "res.csv", cache_dir=None)
    plain = lc.run_coverage(lc.load_inputs(network=helsinki_pbf, **common))
    merged = lc.run_coverage(
        lc.load_inputs(network=helsinki_pbf, extra_roads=tmp_path / "paths.shp", **common)
    )
    d0 = plain.residents_gdf()["station_distance_m"].iloc[0]
    d1 = merged.residents_gdf()["station_distance_m"].iloc[0]
    assert d1 < d0 and d1 >= 300.0 - 1e-6  # never shorter than the straight line
    rep = merged.summary()["networks"]["walk"]["extra_roads"]
    assert rep["lines_used"] == 1 and rep["crossings_noded"] >= 1
    # on the command line, with the report in summary.json
    out = tmp_path / "out"
    argv = [
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--extra-roads",
        str(tmp_path / "paths.shp"),
    ]
    argv += ["--facilities", str(tmp_path / "fac.csv"), "--residents", str(tmp_path / "res.csv")]
    argv += ["--no-cache", "--out", str(out)]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["networks"]["walk"]["extra_roads"]["lines_used"] == 1
    # the lines alone as the network
    alone = lc.load_inputs(network=tmp_path / "paths.shp", mode="walk", **common)
    assert alone.networks["walk"].n_edges == 1


def test_bad_line_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_road_lines(tmp_path / "none.shp")
    gpd.GeoDataFrame(geometry=[LineString([(0, 0), (1, 1)]).centroid], crs=4326).to_file(
        tmp_path / "pts.gpkg"
    )
    with pytest.raises(InputError, match="not lines"):
        read_road_lines(tmp_path / "pts.gpkg")
