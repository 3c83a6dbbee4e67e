"""Population placed on the streets: polygons, a population table joined to them, rasters.

The grid network of ``conftest`` (100 m blocks) makes the street length inside each polygon
checkable by hand; conservation is checked exactly (whole people), placement geometrically.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GRID_CRS, GRID_ORIGIN, grid_lonlat, make_grid
from lifecircle.errors import InputError
from lifecircle.io import read_population_areas
from lifecircle.pipeline import load_residents
from lifecircle.population import distribute_areas, distribute_raster, largest_remainder

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo" / "tancheng"
X0, Y0 = GRID_ORIGIN


def _streets(net):
    return net.edge_geometries()


def test_street_length_shares_by_hand(grid_network):
    # a box over the 200 m x 100 m of streets: x 0..200 at y 0 and 100, x 0, 100, 200 between
    poly = shapely.box(X0 - 1, Y0 - 1, X0 + 200, Y0 + 100)
    pl = distribute_areas(grid_network, np.array([poly]), np.array([700.0]))
    # 4 horizontal + 3 vertical 100 m streets inside (the x = 200 and y = 100 lines on the
    # border count: closed polygon)
    assert len(pl.area) == 7
    assert pl.population.tolist() == [100.0] * 7
    assert pl.on_street.all() and pl.areas_at_point == 0


@settings(max_examples=25, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(st.floats(-50, 500), st.floats(-50, 500), st.floats(5, 300), st.floats(5, 300)),
        min_size=1,
        max_size=6,
    ),
    pops=st.lists(st.integers(0, 5000), min_size=6, max_size=6),
    elderly_share=st.floats(0, 1),
)
def test_polygons_conserved_exactly_and_on_their_streets(boxes, pops, elderly_share):
    net = make_grid()
    polys = np.array(
        [shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h) for x, y, w, h in boxes], dtype=object
    )
    pop = np.array(pops[: len(polys)], dtype=float)
    eld = np.floor(pop * elderly_share)
    pl = distribute_areas(net, polys, pop, extras={"elderly": eld})
    n = len(polys)
    # every polygon's total exactly, whole people
    assert np.array_equal(np.bincount(pl.area, pl.population, minlength=n), pop)
    assert np.array_equal(np.bincount(pl.area, pl.extras["elderly"], minlength=n), eld)
    assert np.array_equal(pl.population, np.floor(pl.population))
    pts = shapely.points(pl.x_m, pl.y_m)
    # nobody outside their polygon; street points lie on a street
    assert shapely.dwithin(pts, polys[pl.area], 1e-6).all()
    streets = shapely.multilinestrings(list(_streets(net)))
    on = pl.on_street
    assert (shapely.distance(pts[on], streets) < 1e-6).all()
    # a polygon with people and no street inside is placed at its representative point
    has_street = shapely.intersects(polys, streets) & (
        shapely.length(shapely.intersection(polys, streets)) > 1e-6
    )
    assert set(pl.area[~on]) == set(np.flatnonzero(~has_street & (pop > 0)))


def test_fractional_totals_and_largest_remainder():
    w = np.array([1.0, 2.0, 3.0, 5.0, 5.0])
    g = np.array([0, 0, 0, 1, 1])
    out = largest_remainder(w, g, np.array([10.0, 3.25]))
    assert out[:3].sum() == 10.0 and np.all(out[:3] == np.floor(out[:3]))
    assert out[3:].sum() == pytest.approx(3.25, abs=1e-12)
    assert out.tolist() == [2.0, 3.0, 5.0, 1.25, 2.0] or out.tolist() == [2.0, 3.0, 5.0, 2.25, 1.0]


def _write_polygons(tmp_path: Path, net, pop_col: bool = True) -> Path:
    def ll(poly):
        return shapely.transform(poly, lambda xy: np.column_stack(grid_lonlat(net, *xy.T)))

    geoms = [
        ll(shapely.box(X0 - 10, Y0 - 10, X0 + 210, Y0 + 150)),  # 东关
        ll(shapely.box(X0 + 300, Y0 + 300, X0 + 500, Y0 + 500)),  # 西关
        ll(shapely.box(X0 + 20, Y0 + 420, X0 + 80, Y0 + 480)),  # 北园: inside a block, no street
        ll(shapely.box(X0 + 250, Y0 + 20, X0 + 280, Y0 + 80)),  # 南苑: no street, not in table
    ]
    data = {
        "community_id": ["C01", "C02", "C03", "C04"],
        "name": ["东关社区", "西关社区", "北园社区", "南苑社区"],
    }
    if pop_col:
        data["population"] = [1234, 567, 89, 10]
    p = tmp_path / "communities.geojson"
    gpd.GeoDataFrame(data, geometry=geoms, crs=4326).to_file(p)
    return p


def test_polygons_file_to_residents_on_streets(tmp_path, grid_network):
    p = _write_polygons(tmp_path, grid_network)
    table, info = load_residents(p, grid_network)
    f = table.frame
    assert f.groupby("source_id")["population"].sum().to_dict() == {
        "C01": 1234.0,
        "C02": 567.0,
        "C03": 89.0,
        "C04": 10.0,
    }
    assert info["areas_at_point"] == 2 and info["areas_on_streets"] == 2
    assert set(f.loc[f["placement"] == "representative_point", "source_id"]) == {"C03", "C04"}
    assert info["population"] == info["population_in"] == 1900.0
    assert f["id"].str.match(r"^C0\d#\d+$").all() and f["id"].is_unique
    # placed street points snap with a zero access leg
    from lifecircle.snapping import snap_to_network

    x, y = grid_network.from_lonlat(f["lon"].to_numpy(float), f["lat"].to_numpy(float))
    snapped = snap_to_network(grid_network, x, y)
    street = (f["placement"] == "street").to_numpy()
    assert np.all(snapped.access_m[street] < 1e-3)


def test_population_table_join(tmp_path, grid_network):
    p = _write_polygons(tmp_path, grid_network, pop_col=False)
    rows = [
        ["C01", "东关社区居委会", 1234, 200, 100],
        ["C02", "西关社区", 567, 50, 60],
        ["C03", "北园社区", 89, 9, 8],
        ["C09", "东关社区", 40, 1, 1],  # no such polygon
        ["C02", "西关社区", 5, 0, 0],  # second row for C02
    ]
    table = tmp_path / "人口.csv"
    text = "郯城街道各社区常住人口统计表,,,,\n社区代码,社区名称,常住人口,60岁以上,0-14岁\n"
    text += "".join(",".join(map(str, r)) + "\n" for r in rows)
    table.write_bytes(text.encode("gb18030"))
    res, info = load_residents(
        p,
        grid_network,
        population_table=table,
        population_join="社区代码=community_id",
        population_field="常住人口",
    )
    f = res.frame
    by = f.groupby("source_id")[["population", "elderly", "children"]].sum()
    # every matched table row's total exactly, elderly and children carried
    assert by.loc["C01"].tolist() == [1234.0, 200.0, 100.0]
    assert by.loc["C02"].tolist() == [567.0, 50.0, 60.0]
    assert by.loc["C03"].tolist() == [89.0, 9.0, 8.0]
    rej = res.rejects.set_index("id")
    assert rej.loc["C09", "reason"] == "unmatched_population_row"
    assert rej.loc["C09", "file"] == str(table) and rej.loc["C09", "row"] == 6
    assert "closest: 'C0" in rej.loc["C09", "detail"]
    assert rej.loc["C02", "reason"] == "duplicate_id"
    assert rej.loc["C04", "reason"] == "no_population_row"
    assert rej.loc["C04", "file"] == str(p) and "closest" in rej.loc["C04", "detail"]
    assert info["table_rows"] == {"input": 5, "used": 3, "rejected": 2}
    assert info["polygons"] == {"input": 4, "used": 3, "rejected": 1}
    # by name: the committee suffix does not stop a match
    res2, _ = load_residents(
        p, grid_network, population_table=table, population_join="社区名称=name"
    )
    assert res2.frame.groupby("source_id")["population"].sum()["C01"] == 1234.0
    assert "西关社区" in set(res2.rejects["id"])  # the duplicate name row


def test_population_table_errors(tmp_path, grid_network):
    p = _write_polygons(tmp_path, grid_network, pop_col=False)
    t = tmp_path / "t.csv"
    t.write_text("code,persons\nC01,5\n", encoding="utf-8")
    with pytest.raises(InputError, match="TABLEFIELD=POLYGONFIELD"):
        load_residents(p, grid_network, population_table=t, population_join="code")
    with pytest.raises(InputError, match="no column 'nope' to join"):
        load_residents(p, grid_network, population_table=t, population_join="nope=community_id")
    with pytest.raises(InputError, match="--population-field"):
        load_residents(p, grid_network, population_table=t, population_join="code=community_id")
    with pytest.raises(InputError, match=r"no population column.*--population-table"):
        read_population_areas(p)


def test_not_a_polygon_and_bad_population_rejected(tmp_path, grid_network):
    lon, lat = grid_lonlat(grid_network, np.array([X0 + 150.0]), np.array([Y0 + 150.0]))
    poly = shapely.box(lon[0] - 0.001, lat[0] - 0.001, lon[0] + 0.001, lat[0] + 0.001)
    gdf = gpd.GeoDataFrame(
        {"id": ["A", "B", "C"], "population": [10, 5, -3]},
        geometry=[poly, shapely.Point(lon[0], lat[0]), poly],
        crs=4326,
    )
    p = tmp_path / "mixed.geojson"
    gdf.to_file(p)
    res, info = load_residents(p, grid_network)
    assert res.frame["population"].sum() == 10.0
    rej = res.rejects.set_index("id")["reason"].to_dict()
    assert rej == {"B": "not_a_polygon", "C": "negative_population"}
    assert info["polygons"] == {"input": 3, "used": 1, "rejected": 2}


def _write_raster(path: Path, net, *, crs: str = "EPSG:4326") -> tuple[np.ndarray, object]:
    import rasterio
    from rasterio.transform import from_origin

    # 0.001 degree cells (about 100 m) over the grid and beyond it
    lon0, lat0 = grid_lonlat(net, np.array([X0 - 600.0]), np.array([Y0 + 1100.0]))
    rng = np.random.default_rng(7)
    data = rng.uniform(0, 40, size=(20, 22)).astype("float32")
    data[3, 4] = -9999.0  # nodata
    data[5, 5] = 0.0
    transform = from_origin(float(lon0[0]), float(lat0[0]), 0.001, 0.001)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=-9999.0,
    ) as ds:
        ds.write(data, 1)
    return data, transform


def test_raster_totals_conserved(tmp_path, grid_network):
    p = tmp_path / "worldpop.tif"
    data, transform = _write_raster(p, grid_network)
    rp = distribute_raster(grid_network, p, margin_m=0.0)
    valid = np.where(data == -9999.0, 0.0, data).astype(float)
    assert rp.sum_raster == pytest.approx(valid.sum(), rel=1e-9)
    # the cells kept are exactly those whose centre is in the network's hull
    import rasterio.transform as rt

    rows, cols = np.nonzero(valid > 0)
    cx, cy = rt.xy(transform, rows, cols)
    x, y = grid_network.from_lonlat(np.asarray(cx), np.asarray(cy))
    hull = shapely.box(*grid_network.bounds)
    inside = shapely.contains_xy(hull, x, y)
    assert rp.sum_in_area == pytest.approx(valid[rows[inside], cols[inside]].sum(), rel=1e-9)
    assert 0 < rp.sum_in_area < rp.sum_raster
    # each cell's people are conserved (to float precision: fractional cells)
    per_cell = np.bincount(rp.placement.area, rp.placement.population)
    assert np.allclose(per_cell, valid[rp.cell_row, rp.cell_col], rtol=0, atol=1e-9)
    assert rp.placement.population.sum() == pytest.approx(rp.sum_in_area, rel=1e-12)
    s = rp.summary()
    assert s["population_placed"] == pytest.approx(s["raster_sum_in_area"], rel=1e-12)
    # an explicit area (a clip polygon) keeps only the cells inside it
    small = shapely.box(X0, Y0, X0 + 250, Y0 + 250)
    rp2 = distribute_raster(grid_network, p, area_m=small)
    assert rp2.sum_in_area < rp.sum_in_area
    assert shapely.contains_xy(
        shapely.buffer(small, 80), rp2.placement.x_m, rp2.placement.y_m
    ).all()


def test_raster_in_a_projected_crs_via_load_residents(tmp_path, grid_network):
    p = tmp_path / "pop_utm.tif"
    import rasterio
    from rasterio.transform import from_origin

    data = np.full((6, 6), 10.0, dtype="float32")
    with rasterio.open(
        p, "w", driver="GTiff", height=6, width=6, count=1, dtype="float32", crs=GRID_CRS,
        transform=from_origin(X0 - 50, Y0 + 550, 100, 100),
    ) as ds:  # fmt: skip
        ds.write(data, 1)
    res, info = load_residents(p, grid_network)
    assert info["kind"] == "raster" and info["raster_sum_in_area"] == 360.0
    # a WGS84 area (a clip boundary) keeps the cells whose centre is inside: 2 x 3 cells
    lon, lat = grid_lonlat(
        grid_network, np.array([X0 - 10, X0 + 190]), np.array([Y0 + 290, Y0 + 560])
    )
    clipped, info2 = load_residents(
        p, grid_network, area=shapely.box(lon[0], lat[0], lon[1], lat[1])
    )
    assert info2["raster_sum_in_area"] == 60.0 and clipped.frame["population"].sum() == 60.0
    assert res.frame["population"].sum() == 360.0
    assert info["cells_without_street"] == 0


def test_raster_errors(tmp_path, grid_network):
    with pytest.raises(InputError, match="does not exist"):
        distribute_raster(grid_network, tmp_path / "none.tif")
    bad = tmp_path / "bad.tif"
    bad.write_text("not a tiff")
    with pytest.raises(InputError, match="cannot read population raster"):
        distribute_raster(grid_network, bad)
    far = tmp_path / "far.tif"
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        far, "w", driver="GTiff", height=2, width=2, count=1, dtype="float32", crs="EPSG:4326",
        transform=from_origin(10.0, 50.0, 0.01, 0.01),
    ) as ds:  # fmt: skip
        ds.write(np.ones((2, 2), dtype="float32"), 1)
    with pytest.raises(InputError, match="no cell with people lies in the network's area"):
        distribute_raster(grid_network, far)


def test_demo_population_table_variant_end_to_end(tmp_path):
    import lifecircle as lc

    inputs = lc.load_inputs(scenario=DEMO / "scenario_population_table.toml", cache_dir=None)
    table = pd.read_csv(DEMO / "community_population.csv", encoding="gb18030", skiprows=1)
    info = inputs.population
    assert info["kind"] == "polygons_with_table"
    assert info["table_rows"]["rejected"] == 0
    assert info["population"] == float(table["常住人口"].sum())
    run = lc.run_coverage(inputs)
    s = run.summary()
    assert s["population_inputs"]["points"] == len(inputs.residents.frame)
    assert s["tiers"]["community_centre"]["population_total"] == table["常住人口"].sum()
    res = run.residents_gdf()
    street = res["placement"] == "street"
    assert (res.loc[street, "snap_m"] < 0.01).all()


def test_raster_grid_clip_matches_shapely_oracle(tmp_path, grid_network):
    """In the network's own CRS, the grid-space clip equals shapely's exact intersection."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(3)
    data = rng.integers(0, 30, size=(7, 8)).astype("float32")
    cell_m = 73.0  # not a divisor of the 100 m blocks: streets cross cells anywhere
    west, north = X0 - 40.0, Y0 + 530.0
    p = tmp_path / "pop.tif"
    with rasterio.open(
        p, "w", driver="GTiff", height=7, width=8, count=1, dtype="float32", crs=GRID_CRS,
        transform=from_origin(west, north, cell_m, cell_m),
    ) as ds:  # fmt: skip
        ds.write(data, 1)
    rp = distribute_raster(
        grid_network, p, area_m=shapely.box(X0 - 500, Y0 - 500, X0 + 900, Y0 + 900)
    )
    boxes = np.array(
        [
            shapely.box(
                west + c * cell_m,
                north - (r + 1) * cell_m,
                west + (c + 1) * cell_m,
                north - r * cell_m,
            )
            for r, c in zip(rp.cell_row, rp.cell_col, strict=True)
        ],
        dtype=object,
    )
    oracle = distribute_areas(grid_network, boxes, data[rp.cell_row, rp.cell_col].astype(float))
    pl = rp.placement
    assert np.array_equal(
        np.bincount(pl.area, pl.population, minlength=len(boxes)),
        data[rp.cell_row, rp.cell_col].astype(float),
    )
    assert pl.on_street.sum() == oracle.on_street.sum()

    def pieces(x):
        return sorted(
            zip(
                x.area[x.on_street],
                np.round(x.x_m[x.on_street], 5),
                np.round(x.y_m[x.on_street], 5),
                strict=True,
            )
        )

    assert pieces(pl) == pieces(oracle)
    pts = shapely.points(pl.x_m, pl.y_m)
    assert shapely.dwithin(pts, boxes[pl.area], 1e-6).all()


def test_buildings_split_by_floor_area(tmp_path, grid_network):
    p = _write_polygons(tmp_path, grid_network)

    def ll(poly):
        return shapely.transform(poly, lambda xy: np.column_stack(grid_lonlat(grid_network, *xy.T)))

    # in 东关 (C01, 1,234 people): footprints 20 x 20 m with 6 and 3 floors, and one with a
    # given floor area of 1,200 m2 -> weights 2,400 : 1,200 : 1,200
    blds = [
        ll(shapely.box(X0 + 20, Y0 + 20, X0 + 40, Y0 + 40)),
        ll(shapely.box(X0 + 120, Y0 + 20, X0 + 140, Y0 + 40)),
        ll(shapely.box(X0 + 20, Y0 + 110, X0 + 40, Y0 + 130)),
        ll(shapely.box(X0 + 150, Y0 + 110, X0 + 170, Y0 + 130)),  # bad floors
        shapely.Point(*ll(shapely.Point(X0 + 60, Y0 + 60)).coords[0]),  # not a polygon
        ll(shapely.box(X0 + 60, Y0 + 60, X0 + 70, Y0 + 70)),  # floor area 0
    ]
    gdf = gpd.GeoDataFrame(
        {
            "id": ["B1", "B2", "B3", "B4", "B5", "B6"],
            "层数": [6, 3, None, -2, 1, 2],
            "建筑面积": [None, None, 1200, None, None, 0],
        },
        geometry=blds,
        crs=4326,
    )
    b = tmp_path / "buildings.geojson"
    gdf.to_file(b)
    res, info = load_residents(p, grid_network, buildings=b)
    f = res.frame
    c01 = f[f["source_id"] == "C01"]
    assert set(c01["placement"]) == {"building"} and c01["population"].sum() == 1234.0
    assert sorted(c01["population"].tolist()) == [308.0, 309.0, 617.0]
    # an area without buildings is still spread along its streets; totals conserved
    assert set(f.loc[f["source_id"] == "C02", "placement"]) == {"street"}
    assert f["population"].sum() == 1900.0
    assert info["areas_by_buildings"] == 1 and info["buildings_with_people"] == 3
    rej = res.rejects.set_index("id")["reason"].to_dict()
    assert rej == {"B4": "bad_floors", "B5": "not_a_polygon", "B6": "bad_floor_area"}
    assert info["buildings"] == {"input": 6, "used": 3, "rejected": 3}


def test_real_division_codes_join_by_code_and_by_name(tmp_path):
    """The 23 real committees of 郯城街道 (official codes, tests/data) as polygons on a grid; a
    household-register workbook (title row, second sheet, codes as numbers, full committee
    names, one typo) joined by code and by name."""
    from openpyxl import Workbook

    div = pd.read_csv(Path(__file__).parent / "data" / "tancheng_divisions.csv", dtype=str)
    com = div[div["level"] == "village_committee"].reset_index(drop=True)
    assert len(com) == 23 and com["code"].str.startswith("371322001").all()
    net = make_grid(6, 6)
    short = com["name"].str.replace(r"(居民委员会|村民委员会)$", "", regex=True)
    blocks = [(i % 5, i // 5) for i in range(23)]  # 23 of the 25 blocks, streets on their borders
    polys = [
        shapely.transform(
            shapely.box(X0 + 100 * c, Y0 + 100 * r, X0 + 100 * (c + 1), Y0 + 100 * (r + 1)),
            lambda xy: np.column_stack(grid_lonlat(net, *xy.T)),
        )
        for c, r in blocks
    ]
    p = tmp_path / "committees.gpkg"
    gpd.GeoDataFrame({"code": com["code"], "name": short}, geometry=polys, crs=4326).to_file(p)
    rng = np.random.default_rng(5)
    people = rng.integers(800, 6000, len(com))
    wb = Workbook()
    wb.active.title = "说明"
    ws = wb.create_sheet("户籍人口")
    ws.append(["郯城街道各村（居）户籍人口（2024年末）"])
    ws.append(["区划代码", "村居名称", "户籍人口"])
    names = com["name"].tolist()
    names[0] = "富明社区居民委员会"  # a typo in the register
    for code, name, n in zip(com["code"], names, people, strict=True):
        ws.append([int(code), name, int(n)])
    x = tmp_path / "register.xlsx"
    wb.save(x)
    by_code, info = load_residents(
        p, net, population_table=x, population_join="区划代码=code", sheet="2"
    )
    got = by_code.frame.groupby("source_id")["population"].sum()
    assert got.to_dict() == dict(zip(com["code"], people.astype(float), strict=True))
    assert info["table_rows"]["rejected"] == 0 and len(by_code.rejects) == 0
    # every committee's people on its own streets (the block's border)
    f = by_code.frame
    bx, by = net.from_lonlat(f["lon"].to_numpy(float), f["lat"].to_numpy(float))
    k = com.set_index("code").index.get_indexer(f["source_id"])
    col = np.array([b[0] for b in blocks])[k]
    row = np.array([b[1] for b in blocks])[k]
    assert np.all((bx >= X0 + 100 * col - 1e-6) & (bx <= X0 + 100 * (col + 1) + 1e-6))
    assert np.all((by >= Y0 + 100 * row - 1e-6) & (by <= Y0 + 100 * (row + 1) + 1e-6))
    by_name, _ = load_residents(
        p, net, population_table=x, population_join="村居名称=name", sheet="户籍人口"
    )
    rej = by_name.rejects.set_index("reason")
    assert rej.loc["unmatched_population_row", "id"] == "富明社区"
    assert "closest: '富民社区'" in rej.loc["unmatched_population_row", "detail"]
    assert rej.loc["unmatched_population_row", "row"] == 3
    assert rej.loc["no_population_row", "id"] == "371322001030"
    assert "closest: '富明社区'" in rej.loc["no_population_row", "detail"]
    assert by_name.frame["population"].sum() == people[1:].sum()


def test_population_polygons_in_gcj02_and_projected_crs(tmp_path):
    """Amap-derived (GCJ-02) and projected polygon files come back to the same WGS84 outline."""
    from lifecircle.coords import convert
    from lifecircle.demo import packaged_outline

    outline = gpd.read_file(str(packaged_outline())).geometry.iloc[0]
    gcj = shapely.transform(
        outline, lambda xy: np.column_stack(convert(xy[:, 0], xy[:, 1], "wgs84", "gcj02"))
    )
    data = {"adcode": ["371322"], "name": ["郯城县"], "常住人口": [885156]}
    gpd.GeoDataFrame(data, geometry=[gcj], crs=4326).to_file(tmp_path / "gcj.geojson")
    a = read_population_areas(tmp_path / "gcj.geojson", crs="gcj02")
    back = a.frame.geometry.iloc[0]
    assert shapely.hausdorff_distance(back, outline) < 1e-6  # degrees: well under a metre
    assert a.frame["id"].tolist() == ["371322"] and a.frame["population"].tolist() == [885156.0]
    gpd.GeoDataFrame(data, geometry=[outline], crs=4326).to_crs(32650).to_file(
        tmp_path / "utm.gpkg"
    )
    b = read_population_areas(tmp_path / "utm.gpkg")
    assert shapely.hausdorff_distance(b.frame.geometry.iloc[0], outline) < 1e-6


def test_geodataframe_polygons_any_crs(grid_network):
    """From Python: a GeoDataFrame of polygons (here in UTM) is placed like a file."""
    poly = shapely.box(X0 - 10, Y0 - 10, X0 + 210, Y0 + 150)
    g = gpd.GeoDataFrame({"id": ["A"], "population": [101]}, geometry=[poly], crs=GRID_CRS)
    table, info = load_residents(g, grid_network)
    assert table.frame["population"].sum() == 101.0
    assert info["areas_on_streets"] == 1 and set(table.frame["placement"]) == {"street"}
    # lon/lat rows of a plain DataFrame stay points
    pts = pd.DataFrame({"id": ["P"], "population": [3], "lon": [118.0], "lat": [34.6]})
    points, info2 = load_residents(pts, grid_network, crs="wgs84")
    assert info2 == {} and points.frame["population"].tolist() == [3.0]


def test_raster_cut_to_the_clip_boundary_through_load_inputs(tmp_path):
    """With --clip, a population raster keeps the cells inside the boundary itself."""
    import rasterio
    from rasterio.transform import from_origin

    import lifecircle as lc

    sub = gpd.read_file(DEMO / "subdistrict.geojson")
    west, south, east, north = sub.total_bounds
    cell = 0.005  # ~500 m cells over the sub-district's bounding box and beyond
    w = int(np.ceil((east - west) / cell)) + 4
    h = int(np.ceil((north - south) / cell)) + 4
    p = tmp_path / "pop.tif"
    with rasterio.open(
        p, "w", driver="GTiff", height=h, width=w, count=1, dtype="float32", crs="EPSG:4326",
        transform=from_origin(west - 2 * cell, north + 2 * cell, cell, cell),
    ) as ds:  # fmt: skip
        ds.write(np.full((h, w), 10.0, dtype="float32"), 1)
    inputs = lc.load_inputs(
        scenario=DEMO / "scenario.toml",
        residents=p,
        clip=DEMO / "subdistrict.geojson",
        cache_dir=tmp_path / "cache",
    )
    info = inputs.population
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    cx = west - 2 * cell + (cols.ravel() + 0.5) * cell
    cy = north + 2 * cell - (rows.ravel() + 0.5) * cell
    inside = shapely.contains_xy(shapely.union_all(sub.geometry.values), cx, cy)
    assert info["kind"] == "raster"
    assert info["raster_sum_in_area"] == 10.0 * inside.sum() < info["raster_sum"]
    # cells inside the boundary but beyond every street (the synthetic town does not fill its
    # sub-district) fall back to their centre, which is rejected like any point out there
    rej = inputs.residents.rejects
    assert set(rej["reason"]) <= {"outside_network_area"}
    placed = inputs.residents.frame["population"].sum()
    assert placed + 10.0 * len(rej) == pytest.approx(10.0 * inside.sum())
