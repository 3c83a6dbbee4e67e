"""Service-area polygons: nesting, faithfulness against networkx, catchments, population, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import GRID_CRS, GRID_ORIGIN, grid_lonlat, make_grid
from lifecircle.cli import main
from lifecircle.config import preset
from lifecircle.coverage import compute_coverage, locate
from lifecircle.network import RoadNetwork, from_arrays
from lifecircle.routing import Positions
from lifecircle.service_areas import (
    QUAD_SEGS,
    catchment_areas,
    compute_service_areas,
    facility_areas,
    tier_areas,
    tier_budgets,
)

W = 50.0
# a round cap drawn with QUAD_SEGS segments per quarter falls short of the true circle by at most:
ARC_GAP_M = W * (1 - np.cos(np.pi / (4 * QUAD_SEGS)))


def perturbed_grid(
    side: int = 14, spacing: float = 80.0, drop: float = 0.2, seed: int = 3, mode: str = "walk"
) -> RoadNetwork:
    """A jittered grid with missing links (blocks of different sizes, dead ends)."""
    rng = np.random.default_rng(seed)
    ix, iy = np.meshgrid(np.arange(side), np.arange(side))
    x = GRID_ORIGIN[0] + ix.ravel() * spacing + rng.uniform(-15, 15, side * side)
    y = GRID_ORIGIN[1] + iy.ravel() * spacing + rng.uniform(-15, 15, side * side)
    ids = np.arange(side * side).reshape(side, side)
    u = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    v = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    keep = rng.random(len(u)) >= drop
    oneway = rng.random(int(keep.sum())) < 0.3 if mode == "drive" else None
    return from_arrays(x, y, u[keep], v[keep], crs=GRID_CRS, mode=mode, edge_oneway=oneway)


def snapped(net: RoadNetwork, x: np.ndarray, y: np.ndarray) -> tuple[Positions, np.ndarray]:
    lon, lat = net.to_lonlat(np.asarray(x, float), np.asarray(y, float))
    loc = locate({net.mode: net}, lon, lat)
    return loc.positions(net.mode), np.column_stack([loc.x, loc.y])


def reachable_segments(
    net: RoadNetwork, pos: Positions, i: int, xy: np.ndarray, budget: float
) -> list[shapely.LineString]:
    """Ground truth with networkx (independent of lifecircle.routing): the street parts from which
    facility ``i`` is reached within ``budget`` (its access leg included), and the access leg."""
    g = nx.DiGraph()
    L = net.edge_length_m
    e_f = int(pos.edge[i])
    o, a = float(pos.offset_m[i]), float(pos.access_m[i])
    for e, (u, v) in enumerate(zip(net.edge_u, net.edge_v, strict=True)):
        if e == e_f:
            continue
        # arc b->a "towards": travelling u->v always legal, v->u only if two-way
        for s, t in ((u, v), (v, u)) if not net.edge_oneway[e] else ((u, v),):
            if not g.has_edge(s, t) or g[s][t]["w"] > L[e]:
                g.add_edge(int(s), int(t), w=float(L[e]))
    fu, fv = int(net.edge_u[e_f]), int(net.edge_v[e_f])
    g.add_edge(fu, "F", w=o)
    if not net.edge_oneway[e_f]:
        g.add_edge(fv, "F", w=L[e_f] - o)
    # distance from each node TO the facility = Dijkstra on the reversed graph
    d = nx.single_source_dijkstra_path_length(g.reverse(copy=False), "F", weight="w")
    d = {k: v + a for k, v in d.items()}
    segs = []
    px = net.node_x
    py = net.node_y

    def add(x0, y0, x1, y1, length, dl, dr, twoway):
        ends = []
        if twoway and dl <= budget:
            ends.append((0.0, min(length, budget - dl)))
        if dr <= budget:
            ends.append((max(0.0, length - (budget - dr)), length))
        for t0, t1 in ends:
            if t1 > t0:
                f0, f1 = t0 / length, t1 / length
                segs.append(
                    shapely.LineString(
                        [
                            (x0 + f0 * (x1 - x0), y0 + f0 * (y1 - y0)),
                            (x0 + f1 * (x1 - x0), y0 + f1 * (y1 - y0)),
                        ]
                    )
                )

    inf = np.inf
    for e, (u, v) in enumerate(zip(net.edge_u, net.edge_v, strict=True)):
        tw = not net.edge_oneway[e]
        if e == e_f:
            sx = px[u] + o / L[e] * (px[v] - px[u])
            sy = py[u] + o / L[e] * (py[v] - py[u])
            add(px[u], py[u], sx, sy, o, d.get(int(u), inf), a, tw)
            add(sx, sy, px[v], py[v], L[e] - o, a, d.get(int(v), inf), tw)
        else:
            add(px[u], py[u], px[v], py[v], L[e], d.get(int(u), inf), d.get(int(v), inf), tw)
    if a <= budget and a > 0:
        sx = px[fu] + o / L[e_f] * (px[fv] - px[fu])
        sy = py[fu] + o / L[e_f] * (py[fv] - py[fu])
        segs.append(shapely.LineString([tuple(xy[i]), (sx, sy)]))
    return segs


def sample_inside(poly, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    pts = shapely.points(rng.uniform([minx, miny], [maxx, maxy], size=(n * 4, 2)))
    return pts[shapely.contains(poly, pts)][:n]


def check_faithful(poly, segs: list, rng: np.random.Generator, *, tol: float = 0.01) -> None:
    """Every point of ``poly`` is within W of a reachable street, and every point within
    W - ARC_GAP of one is inside ``poly`` (no unreachable land, no holes where streets are)."""
    reach = shapely.union_all(segs)
    pts = sample_inside(poly, 400, rng)
    assert len(pts) > 50
    assert shapely.distance(pts, reach).max() <= W + tol
    near = shapely.union_all(shapely.buffer(np.asarray(segs), W - ARC_GAP_M - 0.05, quad_segs=16))
    inner = sample_inside(near, 400, rng)
    assert shapely.contains(poly, inner).all()


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def town() -> tuple[RoadNetwork, Positions, np.ndarray]:
    net = perturbed_grid()
    rng = np.random.default_rng(11)
    pts = rng.uniform(
        [GRID_ORIGIN[0] + 100, GRID_ORIGIN[1] + 100],
        [GRID_ORIGIN[0] + 950, GRID_ORIGIN[1] + 950],
        size=(7, 2),
    )
    pos, xy = snapped(net, pts[:, 0], pts[:, 1])
    return net, pos, xy


def test_nesting_every_facility(town) -> None:
    net, pos, xy = town
    budgets = [150.0, 300.0, 450.0]
    polys = facility_areas(net, pos, budgets, xy=xy, chunk=3)
    assert polys.shape == (len(pos), 3)
    for i in range(len(pos)):
        for b in range(2):
            small, big = polys[i, b], polys[i, b + 1]
            assert shapely.area(small) > 0
            assert shapely.area(shapely.difference(small, big)) < 1e-3 * shapely.area(small)
            assert shapely.area(big) > shapely.area(small)
    assert shapely.is_valid(polys).all()


def test_no_unreachable_land_against_networkx(town) -> None:
    net, pos, xy = town
    rng = np.random.default_rng(5)
    polys = facility_areas(net, pos, [250.0, 400.0], xy=xy)
    for i in range(len(pos)):
        for b, budget in enumerate((250.0, 400.0)):
            check_faithful(polys[i, b], reachable_segments(net, pos, i, xy, budget), rng)


def test_one_way_streets_drive(town) -> None:
    net = perturbed_grid(mode="drive", seed=4)
    assert net.edge_oneway.any()
    pos, xy = snapped(net, np.array([GRID_ORIGIN[0] + 520.0]), np.array([GRID_ORIGIN[1] + 530.0]))
    polys = facility_areas(net, pos, [300.0], xy=xy)
    check_faithful(
        polys[0, 0], reachable_segments(net, pos, 0, xy, 300.0), np.random.default_rng(2)
    )


def test_partly_reached_edges_are_cut_not_dropped(grid_network: RoadNetwork) -> None:
    # facility on node 14 (column 2, row 2); budget 150 m reaches 50 m into the next blocks
    x0, y0 = GRID_ORIGIN
    pos, xy = snapped(grid_network, np.array([x0 + 200.0]), np.array([y0 + 200.0]))
    poly = facility_areas(grid_network, pos, [150.0], xy=xy)[0, 0]
    # 150 m along the street east: inside; 150 m + W + 1 m: outside
    assert poly.contains(shapely.Point(x0 + 200 + 150 + W - 1, y0 + 200))
    assert not poly.contains(shapely.Point(x0 + 200 + 150 + W + 1, y0 + 200))
    # the block corner (100, 100) away is 200 m by network; the nearest reached street points
    # are 50 m short of it on both sides, so a point just beyond the corner is outside
    assert not poly.contains(shapely.Point(x0 + 310, y0 + 310))
    assert poly.contains(shapely.Point(x0 + 290, y0 + 290))
    # same as the networkx truth
    check_faithful(
        poly, reachable_segments(grid_network, pos, 0, xy, 150.0), np.random.default_rng(1)
    )


def test_river_with_one_bridge() -> None:
    """Two banks 300 m apart joined by one bridge at the north end: the far bank opposite the
    facility is close in a straight line but far by road, so it must not be in the polygon."""
    west = make_grid(3, 6, 100.0)
    xs = np.concatenate([west.node_x, west.node_x + 500.0])
    ys = np.concatenate([west.node_y, west.node_y])
    n = west.n_nodes
    u = np.concatenate([west.edge_u, west.edge_u + n, [17]])  # node 17: NE corner of west
    v = np.concatenate([west.edge_v, west.edge_v + n, [n + 15]])  # node 15: NW corner of east
    net = from_arrays(xs, ys, u, v, crs=GRID_CRS, mode="walk")
    x0, y0 = GRID_ORIGIN
    pos, xy = snapped(net, np.array([x0 + 200.0]), np.array([y0 + 0.0]))  # SE corner, west bank
    poly = facility_areas(net, pos, [900.0], xy=xy)[0, 0]
    # straight across the river (300 m) is unreachable: 200 up... the bridge is 500 m north
    assert not poly.contains(shapely.Point(x0 + 500.0, y0))
    # the bridge itself (500 m north + 150 m along it) is reachable
    assert poly.contains(shapely.Point(x0 + 350.0, y0 + 500.0))
    # on the east bank the polygon reaches south only as far as the budget left after the bridge:
    # 500 (north) + 300 (bridge) = 800 m at its end, 100 m to spare
    assert poly.contains(shapely.Point(x0 + 500.0, y0 + 500.0 - 100.0 + W - 1))
    assert not poly.contains(shapely.Point(x0 + 500.0, y0 + 500.0 - 100.0 - W - 1))
    check_faithful(poly, reachable_segments(net, pos, 0, xy, 900.0), np.random.default_rng(3))


def test_tier_union_equals_union_of_facilities(town) -> None:
    net, pos, xy = town
    union = tier_areas(net, pos, [300.0], xy=xy)[0]
    each = shapely.union_all(facility_areas(net, pos, [300.0], xy=xy)[:, 0])
    assert shapely.area(shapely.symmetric_difference(union, each)) < 1e-4 * shapely.area(each)


def test_catchments_partition_the_tier(town) -> None:
    net, pos, xy = town
    parts, tier = catchment_areas(net, pos, [250.0, 400.0], xy=xy)
    for b in range(2):
        geoms = parts[:, b]
        geoms = geoms[~shapely.is_empty(geoms)]
        assert len(geoms) >= 3
        assert shapely.is_valid(geoms).all()
        tree = shapely.STRtree(geoms)
        i, j = tree.query(geoms, predicate="intersects")
        off = i < j
        overlap = shapely.area(shapely.intersection(geoms[i[off]], geoms[j[off]])).sum()
        assert overlap < 1e-6 * shapely.area(tier[b])
        assert abs(shapely.area(geoms).sum() - shapely.area(tier[b])) <= 0.005 * shapely.area(
            tier[b]
        )
        assert shapely.area(
            shapely.symmetric_difference(shapely.union_all(geoms), tier[b])
        ) <= 0.005 * shapely.area(tier[b])
    # every catchment lies within its own facility's service area (plus the sampling step)
    own = facility_areas(net, pos, [400.0], xy=xy)[:, 0]
    for i in range(len(pos)):
        if not shapely.is_empty(parts[i, 1]):
            extra = shapely.difference(parts[i, 1], shapely.buffer(own[i], W / 4 + 0.1))
            assert shapely.area(extra) < 1e-6 * shapely.area(parts[i, 1])


def test_simplify_adds_no_land_beyond_tolerance(town) -> None:
    net, pos, xy = town
    raw = facility_areas(net, pos, [400.0], xy=xy)[:, 0]
    simple = facility_areas(net, pos, [400.0], xy=xy, simplify_m=10.0)[:, 0]
    assert shapely.is_valid(simple).all()
    assert (shapely.get_num_coordinates(simple) < shapely.get_num_coordinates(raw)).all()
    extra = shapely.difference(simple, shapely.buffer(raw, 10.0 + 1e-6))
    assert (shapely.area(extra) < 1e-6).all()


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def people(town) -> tuple[pd.DataFrame, pd.DataFrame]:
    net, _pos, xy = town
    rng = np.random.default_rng(9)
    pts = rng.uniform(
        [GRID_ORIGIN[0] - 50, GRID_ORIGIN[1] - 50],
        [GRID_ORIGIN[0] + 1100, GRID_ORIGIN[1] + 1100],
        size=(600, 2),
    )
    lon, lat = grid_lonlat(net, pts[:, 0], pts[:, 1])
    residents = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(len(pts))],
            "population": rng.integers(1, 30, len(pts)).astype(float),
            "lon": lon,
            "lat": lat,
        }
    )
    flon, flat = grid_lonlat(net, xy[:, 0], xy[:, 1])
    tiers = [
        "community_centre",
        "community_centre",
        "station",
        "station",
        "station",
        "point",
        "point",
    ]
    facilities = pd.DataFrame(
        {
            "id": [f"F{i}" for i in range(len(xy))],
            "name": "site",
            "tier": tiers,
            "lon": flon,
            "lat": flat,
        }
    )
    return facilities, residents


def test_population_agrees_with_coverage(town, people) -> None:
    net = town[0]
    facilities, residents = people
    std = preset("tancheng").with_mode("walk")
    cov = compute_coverage({"walk": net}, facilities, residents, std)
    tiers = ("community_centre", "station", "point")
    by_tier = compute_service_areas(
        {"walk": net}, facilities, std, residents=residents, tiers=tiers, dissolve="tier"
    ).frame
    assert list(by_tier["tier"]) == list(tiers)
    assert "facility_id" not in by_tier.columns
    for key in tiers:
        want = cov.tiers.set_index("tier").loc[key, "population_covered"]
        got = by_tier.set_index("tier").loc[key, "population"]
        assert got == pytest.approx(want)
    catch = compute_service_areas(
        {"walk": net}, facilities, std, residents=residents, tiers=tiers, dissolve="catchment"
    ).frame
    want = cov.facilities.set_index("id")["catchment_population"]
    assert catch.set_index("facility_id")["population"].to_dict() == pytest.approx(
        want.loc[catch["facility_id"]].to_dict()
    )
    # per facility: residents within the budget of that one facility (a one-facility coverage run)
    each = compute_service_areas(
        {"walk": net}, facilities, std, residents=residents, tiers=["station"]
    ).frame
    for row in each.itertuples():
        one = facilities[facilities["id"] == row.facility_id]
        c1 = compute_coverage({"walk": net}, one, residents, std)
        assert row.population == pytest.approx(
            c1.tiers.set_index("tier").loc["station", "population_covered"]
        )
    assert (each["population"] > 0).any()


def test_rings_are_bands(town, people) -> None:
    net = town[0]
    facilities, residents = people
    std = preset("tancheng").with_mode("walk")
    for dissolve in ("none", "tier", "catchment"):
        nested = compute_service_areas(
            {"walk": net},
            facilities,
            std,
            residents=residents,
            tiers=["station"],
            metres=[150, 300, 450],
            dissolve=dissolve,
        )
        rings = compute_service_areas(
            {"walk": net},
            facilities,
            std,
            residents=residents,
            tiers=["station"],
            metres=[150, 300, 450],
            dissolve=dissolve,
            rings=True,
        )
        f = rings.frame
        assert list(f["ring_from_m"].unique()) == [0.0, 150.0, 300.0]
        assert shapely.is_valid(f.geometry.to_numpy()).all()
        # bands add up to the outermost polygons, in area and people
        outer = nested.frame[nested.frame["budget_m"] == 450]
        assert f["area_m2"].sum() == pytest.approx(outer["area_m2"].sum(), rel=1e-3)
        assert f["population"].sum() == pytest.approx(outer["population"].sum())


def test_budgets_and_attributes(town) -> None:
    std = preset("tancheng")
    point = std.tier("point")
    b_m, b_min = tier_budgets(point)
    assert b_m.tolist() == [point.threshold_m]
    b_m, b_min = tier_budgets(point, minutes=[10, 5])
    assert b_min.tolist() == [5, 10]
    assert b_m == pytest.approx(b_min * point.speed_m_per_min)
    with pytest.raises(ValueError):
        tier_budgets(point, minutes=[5], metres=[300])
    with pytest.raises(ValueError):
        tier_budgets(point, metres=[-1])


# ---------------------------------------------------------------------------------------------
def test_helsinki_real_data(helsinki_walk: RoadNetwork) -> None:
    net = helsinki_walk
    comp = net.components()
    rng = np.random.default_rng(4)
    # facilities at nodes of the largest component
    nodes = rng.choice(
        np.flatnonzero(comp.node_component == 0) if True else np.arange(net.n_nodes),
        6,
        replace=False,
    )
    pos, xy = snapped(net, net.node_x[nodes] + 20.0, net.node_y[nodes] + 15.0)
    polys = facility_areas(net, pos, [300.0, 600.0], xy=xy)
    assert shapely.is_valid(polys).all()
    for i in range(len(pos)):
        assert shapely.area(shapely.difference(polys[i, 0], polys[i, 1])) < 1e-3 * shapely.area(
            polys[i, 0]
        )
    for i in range(3):
        check_faithful(polys[i, 1], reachable_segments(net, pos, i, xy, 600.0), rng)
    union = tier_areas(net, pos, [600.0], xy=xy)[0]
    assert shapely.area(
        shapely.symmetric_difference(union, shapely.union_all(polys[:, 1]))
    ) < 1e-4 * shapely.area(union)


def test_cli_geojson_and_rejects(
    helsinki_pbf: Path,
    helsinki_walk: RoadNetwork,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    monkeypatch.chdir(tmp_path)
    net = helsinki_walk
    rng = np.random.default_rng(8)
    nodes = rng.choice(net.n_nodes, 5, replace=False)
    lon, lat = net.to_lonlat(net.node_x[nodes], net.node_y[nodes])
    fac = pd.DataFrame(
        {
            "id": [f"S{i}" for i in range(5)] + ["FAR"],
            "name": "x",
            "tier": ["point", "point", "station", "station", "community_centre", "point"],
            "lon": [*lon, 10.0],
            "lat": [*lat, 50.0],
        }
    )
    fac.to_csv(tmp_path / "fac.csv", index=False)
    rx, ry = (
        net.node_x[nodes[0]] + rng.normal(0, 200, 300),
        net.node_y[nodes[0]] + rng.normal(0, 200, 300),
    )
    rlon, rlat = net.to_lonlat(rx, ry)
    pd.DataFrame({"id": range(300), "population": 3, "lon": rlon, "lat": rlat}).to_csv(
        tmp_path / "res.csv", index=False
    )
    out = tmp_path / "areas.geojson"
    args = [
        "isochrones",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        "fac.csv",
        "--residents",
        "res.csv",
        "--minutes",
        "3,5",
        "--out",
        str(out),
        "--no-cache",
    ]
    assert main(args) == 0
    gdf = gpd.read_file(out, engine="pyogrio")
    assert gdf.crs.to_epsg() == 4326
    assert len(gdf) == 5 * 2
    assert gdf.geometry.is_valid.all()
    assert {
        "facility_id",
        "name",
        "tier",
        "budget_min",
        "budget_m",
        "area_m2",
        "population",
    } <= set(gdf.columns)
    assert set(gdf["budget_min"]) == {3.0, 5.0}
    assert (gdf["population"] >= 0).all()
    rejects = pd.read_csv(tmp_path / "areas_rejects.csv")
    assert rejects["id"].tolist() == ["FAR"]
    assert "areas.geojson" in capsys.readouterr().out
    # existing output: refused without --overwrite
    assert main(args) == 1
    assert main([*args, "--overwrite"]) == 0
    # any output CRS of `export`, here Finland's TM35FIN, with a QGIS style beside it
    tm = tmp_path / "areas_tm.geojson"
    out_i = args.index("--out") + 1
    assert main([*args[:out_i], str(tm), *args[out_i + 1 :], "--crs", "EPSG:3067"]) == 0
    g_tm = gpd.read_file(tm, engine="pyogrio")
    assert g_tm.crs.to_epsg() == 3067 and len(g_tm) == len(gdf) and g_tm.geometry.is_valid.all()
    np.testing.assert_allclose(
        g_tm.area.to_numpy(), gdf.to_crs(3067).area.to_numpy(), rtol=1e-3, atol=1.0
    )
    assert tm.with_suffix(".qml").read_text(encoding="utf-8").startswith("<!DOCTYPE qgis")
    assert "EPSG:3067" in capsys.readouterr().out
    # tier dissolve to GeoPackage, no residents
    gpkg = tmp_path / "tiers.gpkg"
    assert (
        main(
            [
                "isochrones",
                "--network",
                str(helsinki_pbf),
                "--facilities",
                "fac.csv",
                "--dissolve",
                "catchment",
                "--tier",
                "point",
                "--out",
                str(gpkg),
                "--no-cache",
            ]
        )
        == 0
    )
    g2 = gpd.read_file(gpkg, layer="service_areas", engine="pyogrio")
    assert g2.geometry.is_valid.all() and len(g2) == 2 and g2["population"].isna().all()
    # bad output suffix
    assert (
        main(
            [
                "isochrones",
                "--network",
                str(helsinki_pbf),
                "--facilities",
                "fac.csv",
                "--out",
                "x.shp",
                "--no-cache",
            ]
        )
        == 1
    )


def test_geojson_written_is_valid_wgs84(town, people, tmp_path: Path) -> None:
    from lifecircle.export import write_service_areas

    net = town[0]
    facilities, residents = people
    std = preset("tancheng").with_mode("walk")
    areas = compute_service_areas(
        {"walk": net},
        facilities,
        std,
        residents=residents,
        dissolve="catchment",
        minutes=[3, 6],
        rings=True,
    )
    path = write_service_areas(areas, tmp_path / "c.geojson")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection"
    assert "crs" not in data  # RFC 7946: WGS84, no crs member
    for feat in data["features"]:
        polys = feat["geometry"]["coordinates"]
        for rings in polys if feat["geometry"]["type"] == "MultiPolygon" else [polys]:
            assert shapely.LinearRing(rings[0]).is_ccw
    back = gpd.read_file(path, engine="pyogrio")
    assert back.geometry.is_valid.all()
    assert len(back) == len(areas.frame)
    with pytest.raises(FileExistsError):
        write_service_areas(areas, path)


# ---------------------------------------------------------------------------------------------
# tier unions: filled blocks (faces) and directly drawn buffers change nothing
def _tier_both_ways(monkeypatch, net, pos, xy, budgets):
    import lifecircle.service_areas as sa

    monkeypatch.setattr(sa, "FACE_FILL_PIECES", 10**9)
    plain = tier_areas(net, pos, budgets, xy=xy)
    monkeypatch.setattr(sa, "FACE_FILL_PIECES", 0)
    net._cache.pop("service_area_faces", None)
    filled = tier_areas(net, pos, budgets, xy=xy)
    return plain, filled


def _assert_same(plain, filled) -> None:
    assert shapely.is_valid(filled).all()
    for a, b in zip(plain, filled, strict=True):
        assert abs(shapely.area(a) - shapely.area(b)) <= 1e-9 * shapely.area(a)
        assert shapely.area(shapely.symmetric_difference(a, b)) <= 1e-7 * shapely.area(a)


def test_face_fill_is_exact_on_a_grid(monkeypatch, town) -> None:
    import lifecircle.service_areas as sa

    net, pos, xy = town
    budgets = [250.0, 500.0, 900.0]
    plain, filled = _tier_both_ways(monkeypatch, net, pos, xy, budgets)
    _assert_same(plain, filled)
    # the path was taken: blocks were filled and street buffers left out
    graph = sa.RoutingGraph.from_network(net)
    near = sa.nearest_sources(
        graph, pos, Positions(np.zeros(0, np.int64), np.zeros(0), np.zeros(0)), limit_m=900.0
    )
    seg = sa._nearest_segments(net, graph, pos, near.node_distance_m, near.node_source, 900.0)
    faces, drop = sa._face_fill(net, seg, 900.0, W)
    assert len(faces) > 20 and drop.sum() > 10
    # filled faces lie inside the plain union
    assert shapely.area(shapely.difference(shapely.union_all(faces), plain[2])) < 1e-6


def test_face_fill_is_exact_on_a_non_planar_network(monkeypatch) -> None:
    """Long streets crossing blocks without a junction (bridges): traced rings are not faces."""
    base = perturbed_grid(side=14, spacing=60.0, drop=0.15, seed=8)
    rng = np.random.default_rng(2)
    a = rng.choice(base.n_nodes, 12, replace=False)
    b = rng.choice(base.n_nodes, 12, replace=False)
    keep = a != b
    net = from_arrays(
        base.node_x,
        base.node_y,
        np.concatenate([base.edge_u, a[keep]]),
        np.concatenate([base.edge_v, b[keep]]),
        crs=GRID_CRS,
    )
    pts = rng.uniform(
        [GRID_ORIGIN[0] + 100, GRID_ORIGIN[1] + 100],
        [GRID_ORIGIN[0] + 700, GRID_ORIGIN[1] + 700],
        size=(4, 2),
    )
    pos, xy = snapped(net, pts[:, 0], pts[:, 1])
    plain, filled = _tier_both_ways(monkeypatch, net, pos, xy, [200.0, 600.0])
    _assert_same(plain, filled)


def test_face_fill_is_exact_on_real_streets(monkeypatch, helsinki_walk: RoadNetwork) -> None:
    net = helsinki_walk
    comp = net.components()
    rng = np.random.default_rng(9)
    nodes = rng.choice(np.flatnonzero(comp.node_component == 0), 5, replace=False)
    pos, xy = snapped(net, net.node_x[nodes] + 10.0, net.node_y[nodes] - 12.0)
    plain, filled = _tier_both_ways(monkeypatch, net, pos, xy, [400.0, 800.0])
    _assert_same(plain, filled)


def test_drawn_buffers_match_geos() -> None:
    from lifecircle.service_areas import _stadiums

    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 500, size=(300, 2, 2))
    coords[:5, 1] = coords[:5, 0]  # zero length: left to GEOS
    coords[5:10, 1] = coords[5:10, 0] + 1e-3  # very short: left to GEOS
    coords[10:15, 1] = coords[10:15, 0] + 1.5  # short
    ours = _stadiums(coords, W)
    geos = shapely.buffer(shapely.linestrings(coords), W, quad_segs=QUAD_SEGS)
    assert shapely.is_valid(ours).all()
    assert np.abs(shapely.area(ours) - shapely.area(geos)).max() < 1e-6
    assert shapely.hausdorff_distance(ours, geos).max() < 1e-6


def test_union_of_pieces_not_noded_exactly() -> None:
    """GEOS's coverage union refuses pieces whose shared border is not noded identically (a
    vertex on one side only); the general union takes over and gives the same area."""
    from lifecircle.service_areas import _union_by_row

    a = shapely.box(0, 0, 1, 1)
    b = shapely.Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (1, 0.5)])
    c, d = shapely.box(5, 0, 6, 1), shapely.box(6, 0, 7, 1)
    parts = np.array([[a, b], [c, d]], dtype=object)
    with pytest.raises(shapely.errors.GEOSException):
        shapely.coverage_union_all(parts, axis=1)
    got = _union_by_row(parts)
    assert [g.area for g in got] == pytest.approx([2.0, 2.0])
    assert all(g.geom_type == "Polygon" for g in got)
