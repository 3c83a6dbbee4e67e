"""Per-unit coverage (达标率), gap finding and report files (lifecircle.report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely

from conftest import GRID_ORIGIN, grid_lonlat, make_grid
from lifecircle.coverage import weighted_quantile
from lifecircle.errors import OutputExistsError
from lifecircle.io import read_points, read_units
from lifecircle.pipeline import Inputs, run_coverage, run_report
from lifecircle.report import (
    _cell_components,
    build_report,
    find_gaps,
    write_report,
)
from lifecircle.units import OUTSIDE_ID, assign_units, grouped_weighted_quantile, unit_coverage

X0, Y0 = GRID_ORIGIN

STANDARD_TOML = """
name = "test-two-tiers"
[[tiers]]
key = "station"
label_zh = "服务站"
label_en = "Station"
mode = "walk"
minutes = 5
threshold_m = 300
[[tiers]]
key = "point"
label_zh = "便民点"
label_en = "Point"
mode = "walk"
minutes = 3
threshold_m = 150
"""


def _write_points(path: Path, net, rows: list[dict], xy: np.ndarray) -> Path:
    lon, lat = grid_lonlat(net, xy[:, 0], xy[:, 1])
    df = pd.DataFrame(rows)
    df["lon"] = np.round(lon, 9)
    df["lat"] = np.round(lat, 9)
    df.to_csv(path, index=False)
    return path


def _box_lonlat(net, x0: float, y0: float, x1: float, y1: float):
    xs = np.array([x0, x1, x1, x0, x0])
    ys = np.array([y0, y0, y1, y1, y0])
    lon, lat = grid_lonlat(net, xs, ys)
    return shapely.Polygon(np.column_stack([lon, lat]))


def make_inputs(
    tmp_path: Path,
    *,
    res_xy: np.ndarray,
    pop: np.ndarray,
    fac_xy: np.ndarray,
    fac_tier: list[str],
    units: bool = True,
) -> Inputs:
    """Inputs on the 6 x 6 grid: two tiers, optional west/east communities (top row outside)."""
    import geopandas as gpd

    from lifecircle.config import load_standard

    net = make_grid()
    std_path = tmp_path / "std.toml"
    std_path.write_text(STANDARD_TOML, encoding="utf-8")
    std = load_standard(std_path)
    fcsv = _write_points(
        tmp_path / "fac.csv",
        net,
        [{"id": f"F{i}", "name": f"设施{i}", "tier": t} for i, t in enumerate(fac_tier)],
        fac_xy,
    )
    rcsv = _write_points(
        tmp_path / "res.csv",
        net,
        [
            {"id": f"R{i:02d}", "population": float(p), "elderly": float(i % 3)}
            for i, p in enumerate(pop)
        ],
        res_xy,
    )
    layers = ()
    if units:
        west = _box_lonlat(net, X0 - 50, Y0 - 50, X0 + 250, Y0 + 450)
        east = _box_lonlat(net, X0 + 250, Y0 - 50, X0 + 550, Y0 + 450)
        gdf = gpd.GeoDataFrame(
            {"community_id": ["W", "E"], "name": ["西社区", "东社区"]},
            geometry=[west, east],
            crs="EPSG:4326",
        )
        path = tmp_path / "communities.geojson"
        gdf.to_file(path, driver="GeoJSON")
        layers = (read_units(path, key="community", label_zh="社区", label_en="Community"),)
    return Inputs(
        standard=std,
        networks={"walk": net},
        facilities=read_points(fcsv, "facilities", standard=std),
        residents=read_points(rcsv, "residents"),
        units=layers,
    )


def node_xy() -> np.ndarray:
    i = np.arange(36)
    return np.column_stack([X0 + (i % 6) * 100.0, Y0 + (i // 6) * 100.0])


@pytest.fixture
def grid_run(tmp_path):
    """Residents on all 36 grid nodes (population i+1), a station at node 14, points at 0 and 35."""
    xy = node_xy()
    inputs = make_inputs(
        tmp_path,
        res_xy=xy,
        pop=np.arange(1, 37),
        fac_xy=xy[[14, 0, 35]],
        fac_tier=["station", "point", "point"],
    )
    return run_coverage(inputs)


# -- unit assignment -------------------------------------------------------------------------------


def test_assign_units_inside_outside_and_shared_border():
    a = shapely.box(0, 0, 1, 1)
    b = shapely.box(1, 0, 2, 1)
    idx = assign_units(np.array([0.5, 1.5, 1.0, 3.0]), np.array([0.5, 0.5, 0.5, 0.5]), [a, b])
    assert idx.tolist() == [0, 1, 0, -1]  # border point -> first unit; far point -> outside


def test_grouped_weighted_quantile_matches_per_group_rule():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 7, 500)
    v = rng.exponential(300, 500)
    v[rng.random(500) < 0.05] = np.inf
    w = rng.integers(0, 20, 500).astype(float)
    for q in (0.5, 0.9):
        got = grouped_weighted_quantile(g, v, w, q, 8)
        for k in range(7):
            assert got[k] == weighted_quantile(v[g == k], w[g == k], q)
        assert np.isnan(got[7])  # a group without members


# -- per-unit coverage -----------------------------------------------------------------------------


def test_unit_table_matches_coverage_result(grid_run):
    res = grid_run.result.residents
    lv = grid_run.inputs.unit_levels()[1]
    tab = unit_coverage(grid_run.result, lv)
    assert set(tab["unit_id"]) == {"W", "E", OUTSIDE_ID}
    # populations sum to the total, outside row = the top row of nodes (30..35)
    assert tab["population"].sum() == pytest.approx(res["population"].sum())
    out = tab[tab["unit_id"] == OUTSIDE_ID].iloc[0]
    assert out["population"] == pytest.approx(sum(range(31, 37)))
    assert bool(out["outside"]) and pd.isna(out["rank"])
    col = np.arange(36) % 6
    row = np.arange(36) // 6
    for uid, sel in (("W", (col <= 2) & (row <= 4)), ("E", (col >= 3) & (row <= 4))):
        r = tab[tab["unit_id"] == uid].iloc[0]
        sub = res[sel]
        assert r["population"] == pytest.approx(sub["population"].sum())
        assert r["residents"] == sel.sum()
        for key in ("station", "point"):
            cov = sub[f"{key}_covered"].to_numpy(bool)
            covered = sub["population"].to_numpy()[cov].sum()
            assert r[f"{key}_population_covered"] == pytest.approx(covered)
            assert r[f"{key}_share"] == pytest.approx(covered / sub["population"].sum())
            assert r[f"{key}_elderly_covered"] == pytest.approx(
                sub["elderly"].to_numpy()[cov].sum()
            )
            d = sub[f"{key}_distance_m"].to_numpy()
            w = sub["population"].to_numpy()
            assert r[f"{key}_median_distance_m"] == weighted_quantile(d, w, 0.5)
            assert r[f"{key}_p90_distance_m"] == weighted_quantile(d, w, 0.9)
        allc = sub["all_covered"].to_numpy(bool)
        assert r["all_share"] == pytest.approx(
            sub["population"].to_numpy()[allc].sum() / sub["population"].sum()
        )
    # worst first
    ranked = tab[tab["rank"].notna()]
    assert ranked["rank"].tolist() == [1, 2]
    assert ranked["all_share"].is_monotonic_increasing


def test_subdistrict_row_equals_study_totals(grid_run):
    rep = build_report(grid_run)
    sub = rep.units["subdistrict"]
    assert len(sub) == 1  # no subdistrict boundary: one row holding every resident
    r = sub.iloc[0]
    tiers = grid_run.result.tiers.set_index("tier")
    for key in ("station", "point"):
        assert r[f"{key}_population_covered"] == pytest.approx(tiers.loc[key, "population_covered"])
        assert r[f"{key}_share"] == pytest.approx(tiers.loc[key, "share"])
        assert r[f"{key}_elderly_share"] == pytest.approx(tiers.loc[key, "elderly_share"])
        assert r[f"{key}_median_distance_m"] == tiers.loc[key, "median_distance_m"]
        assert r[f"{key}_p90_distance_m"] == tiers.loc[key, "p90_distance_m"]
    assert r["all_share"] == pytest.approx(grid_run.result.all_covered_share)


def test_subdistrict_boundary_puts_others_outside(grid_run):
    from dataclasses import replace

    net = grid_run.inputs.networks["walk"]
    boundary = _box_lonlat(net, X0 - 50, Y0 - 50, X0 + 550, Y0 + 150)  # the two bottom rows
    inputs = replace(grid_run.inputs, boundaries={"subdistrict": boundary})
    rep = build_report(replace(grid_run, inputs=inputs))
    tab = rep.units["subdistrict"]
    assert tab["population"].sum() == pytest.approx(grid_run.result.population_total)
    assert tab.loc[tab["unit_id"] == "subdistrict", "population"].item() == pytest.approx(
        sum(range(1, 13))
    )


# -- gaps ------------------------------------------------------------------------------------------


def test_cell_components_diagonal_touch_merges():
    ix = np.array([0, 1, 5, 5, 10])
    iy = np.array([0, 1, 5, 6, 0])
    lab = _cell_components(ix, iy)
    assert lab[0] == lab[1]  # diagonal neighbours
    assert lab[2] == lab[3]  # vertical neighbours
    assert len({lab[0], lab[2], lab[4]}) == 3


def test_gaps_two_clusters_with_nearest_facility(tmp_path):
    # one point at the origin (threshold 150 m, station irrelevant: far away at node 35)
    res_xy = np.array(
        [
            [X0 + 500, Y0 + 500],
            [X0 + 400, Y0 + 500],  # cluster A: d 1000, 900
            [X0 + 500, Y0],  # cluster B: d 500
            [X0 + 100, Y0],  # covered (d 100)
            [X0 + 300, Y0 + 300],
        ]
    )  # population 0: ignored
    inputs = make_inputs(
        tmp_path,
        res_xy=res_xy,
        pop=np.array([10, 20, 5, 7, 0]),
        fac_xy=np.array([[X0, Y0], [X0 + 500, Y0 + 500]]),
        fac_tier=["point", "station"],
        units=False,
    )
    run = run_coverage(inputs)
    gaps = find_gaps(run.result, cell_m=200, tiers=["point"])
    t = gaps.table
    assert len(t) == 2
    a, b = t.iloc[0], t.iloc[1]
    assert (a["gap_id"], a["population"], a["residents"]) == ("point-001", 30, 2)
    assert (b["gap_id"], b["population"], b["residents"]) == ("point-002", 5, 1)
    # A's weighted centre is x0+433.3: the centre resident is the one at x0+400 (900 m away)
    assert a["x"] == pytest.approx(X0 + (10 * 500 + 20 * 400) / 30)
    assert a["nearest_facility_id"] == "F0"
    assert a["nearest_facility_distance_m"] == pytest.approx(900.0)
    assert a["shortfall_m"] == pytest.approx(750.0)
    assert b["nearest_facility_distance_m"] == pytest.approx(500.0)
    # A is next to the station (covered there), B is 500 m from it (> 300): B lacks both tiers
    assert a["tiers_missing"] == "point"
    assert b["tiers_missing"] == "station;point"
    lon, lat = grid_lonlat(run.inputs.networks["walk"], np.array([a["x"]]), np.array([a["y"]]))
    assert a["lon"] == pytest.approx(lon[0]) and a["lat"] == pytest.approx(lat[0])
    # every uncovered person with population is in exactly one gap
    unc = ~run.result.residents["point_covered"] & (run.result.residents["population"] > 0)
    assert t["population"].sum() == pytest.approx(run.result.residents.loc[unc, "population"].sum())
    geo = gaps.geometries()
    assert list(geo["gap_id"]) == ["point-001", "point-002"]
    assert geo.geometry.is_valid.all() and (shapely.area(np.asarray(geo.geometry.values)) > 0).all()


def test_gap_cell_size_changes_clustering(tmp_path):
    res_xy = np.array([[X0 + 500, Y0 + 500], [X0 + 500, Y0]])
    inputs = make_inputs(
        tmp_path,
        res_xy=res_xy,
        pop=np.array([3, 4]),
        fac_xy=np.array([[X0, Y0]]),
        fac_tier=["point"],
        units=False,
    )
    run = run_coverage(inputs)
    assert len(find_gaps(run.result, cell_m=100, tiers=["point"]).table) == 2
    assert len(find_gaps(run.result, cell_m=1000, tiers=["point"]).table) == 1


def test_gaps_carry_unit_of_majority(grid_run):
    rep = run_report(grid_run)
    t = rep.gaps.table
    assert "community_id" in t.columns
    assert set(t["community_id"]) <= {"W", "E", OUTSIDE_ID}
    assert t["population"].is_monotonic_decreasing
    assert t["rank"].tolist() == list(range(1, len(t) + 1))


# -- files -----------------------------------------------------------------------------------------


def test_write_report_files_and_numbers(grid_run, tmp_path):
    out = tmp_path / "rep"
    paths = write_report(grid_run, out)
    for key in (
        "units_subdistrict",
        "units_community",
        "units_json",
        "gaps",
        "gaps_json",
        "gaps_geojson",
        "report_md",
        "report_html",
    ):
        assert paths[key].exists(), key
    csv = pd.read_csv(paths["units_community"], keep_default_na=False, na_values=[""])
    assert csv["population"].sum() == pytest.approx(grid_run.result.population_total)
    data = json.loads(paths["units_json"].read_text(encoding="utf-8"))
    units = data["layers"]["community"]["units"]
    assert sum(u["population"] for u in units) == pytest.approx(grid_run.result.population_total)
    tab = unit_coverage(grid_run.result, grid_run.inputs.unit_levels()[1])
    for u in units:
        row = tab[tab["unit_id"] == u["unit_id"]].iloc[0]
        assert u["tiers"]["point"]["share"] == pytest.approx(row["point_share"])
    gj = json.loads(paths["gaps_geojson"].read_text(encoding="utf-8"))
    gcsv = pd.read_csv(paths["gaps"])
    assert len(gj["features"]) == len(gcsv) > 0
    page = paths["report_html"].read_text(encoding="utf-8")
    assert "达标率" in page and "社区" in page and "西社区" in page
    assert "<script" not in page and "http" not in page
    md = paths["report_md"].read_text(encoding="utf-8")
    assert "## 覆盖缺口" in md
    with pytest.raises(OutputExistsError):
        write_report(grid_run, out)
    paths = write_report(grid_run, out, lang="en", overwrite=True)
    page = paths["report_html"].read_text(encoding="utf-8")
    assert "Share covered" in page and "Coverage gaps" in page and "达标率" not in page


def test_report_cli(tmp_path, capsys):
    """``lifecircle report`` on the demo scenario (shared input options, --units, --lang)."""
    from lifecircle.cli import main

    scenario = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng" / "scenario.toml"
    if not scenario.exists():
        from lifecircle.demo import generate

        scenario = generate(tmp_path / "demo")["scenario"]
    out = tmp_path / "out"
    argv = ["report", "--scenario", str(scenario), "--out", str(out), "--no-cache"]
    rc = main([*argv, "--lang", "en", "--no-pdf"])  # test_document prints the PDF
    assert rc == 0
    assert (out / "report.html").exists() and (out / "units_community.csv").exists()
    assert openpyxl.load_workbook(out / "lifecircle.xlsx").sheetnames[:4] == [
        "Overall",
        "Sub-district",
        "Community",
        "Grid",
    ]
    comm = pd.read_csv(out / "units_community.csv")
    grid = pd.read_csv(out / "units_grid.csv")
    summary_pop = comm["population"].sum()
    assert grid["population"].sum() == pytest.approx(summary_pop)
    assert "report:" in capsys.readouterr().out
    assert not (out / "report.pdf").exists()
    assert main(["report", "--scenario", str(scenario), "--out", str(out), "--no-cache"]) == 1


@pytest.mark.parametrize("seed", range(6))
def test_weighted_quantile_by_bins_equals_the_full_sort(seed):
    """Large inputs select the quantile through value bins; the answer is the full sort's."""
    from lifecircle.coverage import _binned_quantiles

    rng = np.random.default_rng(seed)
    n = 20_000
    v = rng.gamma(2.0, 400.0, n)
    if seed % 2:
        v[rng.random(n) < 0.3] = np.inf  # unreachable residents
    if seed == 4:
        v = np.round(v / 100.0) * 100.0  # many ties
    if seed == 5:
        v[:] = 7.0  # all equal
    w = rng.integers(1, 9, n).astype(float)
    qs = [0.0, 0.001, 0.5, 0.9, 0.999, 1.0]
    order = np.argsort(v)
    cw = np.cumsum(w[order])
    want = [v[order[min(np.searchsorted(cw, q * cw[-1]), n - 1)]] for q in qs]
    assert _binned_quantiles(v, w, qs) == want
    assert weighted_quantile(v, w, qs) == want
