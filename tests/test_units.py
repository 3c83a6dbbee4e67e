"""One unit rule everywhere: a point on a border shared by two units belongs to exactly one of
them (the one listed first), and the same one in the report, the GIS export, site scoring and
the HTTP service's tables."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import GRID_ORIGIN, make_grid
from lifecircle.config import preset
from lifecircle.export import ExportSources, build_layers
from lifecircle.io import read_points, read_units
from lifecircle.pipeline import run_coverage
from lifecircle.report import build_report
from lifecircle.runs import Inputs
from lifecircle.service.state import build_state
from lifecircle.siting import score_sites
from lifecircle.units import assign_units, unit_columns


def test_border_and_overlap_rule() -> None:
    west, east = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    idx = assign_units(
        np.array([0.5, 1.0, 1.5, 1.0, 5.0]), np.array([0.5, 0.5, 0.5, 1.0, 5.0]), [west, east]
    )
    assert idx.tolist() == [0, 0, 1, 0, -1]
    # the order of the layer decides, not the geometry: list east first and the border is east's
    assert assign_units([1.0], [0.5], [east, west]).tolist() == [0]
    # overlap: the point lies inside both
    assert assign_units(
        [0.9], [0.5], [shapely.box(0, 0, 1, 1), shapely.box(0.8, 0, 2, 1)]
    ).tolist() == [0]


def test_assign_units_equals_the_pairwise_rule_on_random_polygons() -> None:
    """Against the definition, pair by pair: overlapping polygons, holes, multipolygons, points
    on vertices and edges, None and empty entries, NaN coordinates."""
    rng = np.random.default_rng(3)
    polys: list[object] = []
    for _ in range(25):
        cx, cy = rng.uniform(0, 10, 2)
        p = shapely.Point(cx, cy).buffer(rng.uniform(0.3, 2.5), quad_segs=3)
        if rng.random() < 0.3:
            p = p.difference(shapely.Point(cx, cy).buffer(0.2))
        if rng.random() < 0.2:
            p = shapely.MultiPolygon([p, shapely.box(cx + 3, cy, cx + 4, cy + 1)])
        polys.append(p)
    polys[4], polys[9] = None, shapely.Polygon()
    x, y = rng.uniform(-1, 14, 4000), rng.uniform(-1, 14, 4000)
    verts = shapely.get_coordinates(polys[0])[:50]  # on the border of polygon 0
    x = np.r_[x, verts[:, 0], np.nan, 5.0]
    y = np.r_[y, verts[:, 1], 5.0, np.nan]
    got = assign_units(x, y, polys)
    want = np.full(len(x), -1)
    for k in range(len(polys) - 1, -1, -1):  # the first listed wins
        g = polys[k]
        if g is not None and not g.is_empty:
            want[shapely.intersects_xy(g, x, y)] = k
    assert (got == want).all()
    assert (got[len(x) - 2 - len(verts) : len(x) - 2] == 0).all() and len(verts) > 5
    assert (got >= 0).sum() > 1000


@pytest.fixture(scope="module")
def border_inputs() -> tuple[Inputs, float, float]:
    """The 6 x 6 grid split into west/east communities along a meridian through its middle
    street, with residents placed exactly on that border."""
    net = make_grid()
    x0, y0 = GRID_ORIGIN
    lon_mid, _ = net.to_lonlat(np.array([x0 + 250.0]), np.array([y0 + 250.0]))
    border = float(lon_mid[0])
    lo, la = net.to_lonlat(np.array([x0 - 100, x0 + 600]), np.array([y0 - 100, y0 + 600]))
    south, north = float(la.min()), float(la.max())
    west = shapely.box(float(lo.min()), south, border, north)
    east = shapely.box(border, south, float(lo.max()), north)
    units = gpd.GeoDataFrame(
        {"community_id": ["W", "E"], "name": ["西社区", "东社区"]},
        geometry=[west, east],
        crs="EPSG:4326",
    )
    layer = read_units(units, key="community")
    # residents: 3 west, 2 exactly on the border, 4 east
    res_x = np.array(
        [x0 + 20, x0 + 120, x0 + 210, x0 + 250, x0 + 250, x0 + 300, x0 + 380, x0 + 440, x0 + 500]
    )
    res_y = np.array(
        [y0 + 10, y0 + 100, y0 + 300, y0 + 150, y0 + 420, y0 + 10, y0 + 200, y0 + 300, y0 + 500]
    )
    lon, lat = net.to_lonlat(res_x.astype(float), res_y.astype(float))
    lon[3:5] = border  # exactly on the shared border
    residents = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(9)],
            "population": np.arange(1, 10) * 10.0,
            "lon": lon,
            "lat": lat,
        }
    )
    flon, flat = net.to_lonlat(
        np.array([x0 + 100.0, x0 + 400.0]), np.array([y0 + 100.0, y0 + 400.0])
    )
    facilities = pd.DataFrame(
        {"id": ["S1", "S2"], "tier": ["station", "station"], "lon": flon, "lat": flat}
    )
    std = preset("tancheng")
    inputs = Inputs(
        standard=std,
        networks={"walk": net, "bike": net},
        facilities=read_points(facilities, "facilities", crs="wgs84", standard=std),
        residents=read_points(residents, "residents", crs="wgs84"),
        units=(layer,),
    )
    return inputs, border, float(lat[3])


def test_border_residents_belong_to_the_same_unit_everywhere(border_inputs) -> None:  # type: ignore[no-untyped-def]
    inputs, border, border_lat = border_inputs
    res = inputs.residents.frame
    on_border = res["lon"].to_numpy() == border
    assert on_border.sum() == 2
    # border -> W (listed first)
    expected_w = float(res.loc[res["lon"] <= border, "population"].sum())
    expected_e = float(res["population"].sum()) - expected_w

    run = run_coverage(inputs)
    # the report's community table
    rep = build_report(run)
    t = rep.units["community"].set_index("unit_id")
    assert t.loc["W", "population"] == expected_w
    assert t.loc["E", "population"] == expected_e
    assert "(outside all units)" not in t.index
    # the run's own accessors
    assert run.unit_table("community").set_index("unit_id").loc["W", "population"] == expected_w
    gdf = run.units_gdf("community").set_index("unit_id")
    assert gdf.loc["W", "population"] == expected_w
    # the GIS export's units layer
    layer = build_layers(ExportSources(run=run), ["units"])["units"].set_index("unit_id")
    assert layer.loc["W", "population"] == expected_w
    assert layer.loc["E", "population"] == expected_e
    # the service's tables
    state = build_state(inputs)
    st = state.unit_tables["community"].set_index("unit_id")
    assert st.loc["W", "population"] == expected_w
    # site scoring: a candidate exactly on the border lies in W
    cand = pd.DataFrame({"id": ["C1"], "name": [""], "lon": [border], "lat": [border_lat]})
    scored = score_sites(run.result, inputs.networks["walk"], cand, "station", units=inputs.units)
    assert scored.candidates["community_id"].tolist() == ["W"]
    # and the raw rule agrees
    cols = unit_columns([border], [border_lat], inputs.units)
    assert cols["community_id"].tolist() == ["W"]
