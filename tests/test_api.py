"""The Python API: ``import lifecircle as lc``, GeoDataFrames in and GeoDataFrames out.

The in-memory path must give the same answer as the file path, to the centimetre, whatever
coordinate system the frames carry (GCJ-02 declared, projected UTM), and a frame without a CRS
is refused rather than read as WGS84.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest

import lifecircle as lc
from lifecircle.errors import CRSError

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng"


def test_public_names_and_version() -> None:
    for name in (
        "load_inputs",
        "run_coverage",
        "run_service_areas",
        "run_report",
        "run_scoring",
        "load_network",
        "load_standard",
    ):
        assert callable(getattr(lc, name)), name
    from importlib.metadata import version

    assert lc.__version__ == version("lifecircle")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lc.nope  # type: ignore[attr-defined]


def test_import_stays_light() -> None:
    """``import lifecircle`` loads neither the pipeline nor geopandas, folium or FastAPI."""
    code = (
        "import sys, lifecircle; heavy = [m for m in ('lifecircle.pipeline', 'geopandas', "
        "'folium', 'fastapi', 'osmnx', 'matplotlib') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def demo_files_run() -> lc.runs.CoverageRun:  # type: ignore[name-defined]
    return lc.run_coverage(lc.load_inputs(scenario=DEMO / "scenario.toml", cache_dir=None))


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"id": str})


def test_geodataframes_give_the_same_distances_as_files(demo_files_run) -> None:  # type: ignore[no-untyped-def]
    fac = _frame(DEMO / "facilities.csv")  # GCJ-02 lon/lat, as exported from Amap
    res = _frame(DEMO / "residents.csv")  # WGS84
    fac_gdf = gpd.GeoDataFrame(
        fac.drop(columns=["lon", "lat"]),
        geometry=gpd.points_from_xy(fac["lon"], fac["lat"]),
        crs="EPSG:4326",
    )
    res_utm = gpd.GeoDataFrame(
        res.drop(columns=["lon", "lat"]),
        geometry=gpd.points_from_xy(res["lon"], res["lat"]),
        crs="EPSG:4326",
    ).to_crs(32650)  # a projected CRS
    units = [gpd.read_file(DEMO / "communities.geojson")]
    inputs = lc.load_inputs(
        network=DEMO / "roads.osm",
        facilities=fac_gdf,
        facilities_crs="gcj02",
        residents=res_utm,
        units=units,
        cache_dir=None,
    )
    run = lc.run_coverage(inputs)
    a = demo_files_run.residents_gdf()
    b = run.residents_gdf()
    assert len(a) == len(b) == len(res)
    assert b.crs.to_epsg() == 4326
    for tier in inputs.standard.keys:
        da = a[f"{tier}_distance_m"].to_numpy(float)
        db = b[f"{tier}_distance_m"].to_numpy(float)
        np.testing.assert_allclose(db, da, atol=0.01, rtol=0)
        assert (a[f"{tier}_nearest_id"] == b[f"{tier}_nearest_id"]).all()
    assert run.inputs.facilities.crs == "gcj02"
    assert run.inputs.residents is not None and run.inputs.residents.crs == "EPSG:32650"
    # the same facility points, converted from GCJ-02 exactly as the file was
    fa, fb = demo_files_run.facilities_gdf(), run.facilities_gdf()
    np.testing.assert_allclose(fb["lon"], fa["lon"], atol=1e-7)


def test_frame_without_crs_is_refused() -> None:
    fac = _frame(DEMO / "facilities.csv")
    gdf = gpd.GeoDataFrame(fac, geometry=gpd.points_from_xy(fac["lon"], fac["lat"]))  # no crs
    with pytest.raises(CRSError, match=r"no CRS and none was declared.*facilities_crs"):
        lc.load_inputs(
            network=DEMO / "roads.osm",
            facilities=gdf,
            residents=DEMO / "residents.csv",
            cache_dir=None,
        )
    with pytest.raises(CRSError, match="DataFrame carries no CRS"):
        lc.load_inputs(
            network=DEMO / "roads.osm",
            facilities=fac,
            residents=DEMO / "residents.csv",
            cache_dir=None,
        )


def test_declared_crs_must_agree_with_the_frame() -> None:
    fac = _frame(DEMO / "facilities.csv")
    gdf = gpd.GeoDataFrame(
        fac, geometry=gpd.points_from_xy(fac["lon"], fac["lat"]), crs=4326
    ).to_crs(32650)
    with pytest.raises(CRSError, match="declared gcj02 but the frame's CRS is EPSG:32650"):
        lc.load_inputs(
            network=DEMO / "roads.osm",
            facilities=gdf,
            facilities_crs="gcj02",
            residents=DEMO / "residents.csv",
            cache_dir=None,
        )


def test_frames_get_the_same_rejects_as_files() -> None:
    rows = pd.DataFrame(
        {
            "id": ["A", "A", "B", ""],
            "tier": ["station", "station", "nope", "station"],
            "lon": [118.35, 118.35, 118.35, 118.35],
            "lat": [34.6, 34.6, 34.6, 34.6],
        }
    )
    G = nx.Graph(crs="EPSG:4326")
    G.add_node(1, x=118.34, y=34.60)
    G.add_node(2, x=118.36, y=34.60)
    G.add_edge(1, 2)
    res = pd.DataFrame({"id": ["R1"], "population": [10], "lon": [118.351], "lat": [34.6001]})
    inputs = lc.load_inputs(
        network=G,
        facilities=rows,
        facilities_crs="wgs84",
        residents=res,
        residents_crs="wgs84",
        cache_dir=None,
    )
    rej = inputs.rejects()
    assert sorted(rej["reason"]) == ["duplicate_id", "missing_id", "unknown_tier"]
    assert sorted(rej["row"]) == [2, 3, 4]  # frame rows are numbered from 1
    assert inputs.input_counts()["facilities"] == {"input": 4, "used": 1, "rejected": 3}


def test_units_gdf_and_unit_table(demo_files_run) -> None:  # type: ignore[no-untyped-def]
    gdf = demo_files_run.units_gdf("community")
    assert gdf.crs.to_epsg() == 4326
    assert len(gdf) == 16
    table = demo_files_run.unit_table("community")
    assert table["population"].sum() == pytest.approx(
        demo_files_run.result.residents["population"].sum()
    )
    assert set(gdf["unit_id"]) == set(table.loc[~table["outside"], "unit_id"])
    with pytest.raises(lc.InputError, match="unknown unit level 'nope'"):
        demo_files_run.unit_table("nope")
