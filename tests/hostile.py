"""A tiny file-based scenario for the hardening tests: a real OSM XML street grid and CSV inputs.

``write_scenario(folder)`` writes ``roads.osm`` (a 6 x 6 grid of 100 m blocks at Tancheng,
written as OSM XML with ``highway=residential`` ways and parsed by lifecircle's own OSM reader),
``facilities.csv`` (two stations, two points, WGS84), ``residents.csv`` (twelve points) and a
``scenario.toml`` naming them. Everything is hand-checkable and takes milliseconds to load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

ORIGIN = (400_000.0, 3_830_000.0)  # EPSG:32650, near Tancheng
_TO_WGS84 = Transformer.from_crs(32650, 4326, always_xy=True)


def lonlat(x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid metres (from the grid's south-west corner) -> WGS84 lon/lat."""
    return _TO_WGS84.transform(ORIGIN[0] + np.asarray(x_m), ORIGIN[1] + np.asarray(y_m))


def osm_xml(n: int = 6, spacing_m: float = 100.0) -> str:
    ix, iy = np.meshgrid(np.arange(n), np.arange(n))
    lon, lat = lonlat(ix.ravel() * spacing_m, iy.ravel() * spacing_m)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for i, (lo, la) in enumerate(zip(lon, lat, strict=True)):
        lines.append(f'  <node id="{i + 1}" lat="{la:.8f}" lon="{lo:.8f}"/>')
    way = 1
    ids = np.arange(n * n).reshape(n, n) + 1
    for row in list(ids) + list(ids.T):
        refs = "".join(f'<nd ref="{r}"/>' for r in row)
        lines.append(f'  <way id="{way}">{refs}<tag k="highway" v="residential"/></way>')
        way += 1
    lines.append("</osm>")
    return "\n".join(lines) + "\n"


FACILITIES_XY = np.array([[100.0, 100.0], [400.0, 400.0], [200.0, 300.0], [500.0, 0.0]])
FACILITIES_TIER = ["station", "station", "point", "point"]
RESIDENTS_XY = np.array(
    [
        [20, 5],
        [150, 110],
        [250, 190],
        [400, 40],
        [10, 390],
        [200, 300],
        [330, 290],
        [390, 400],
        [50, 250],
        [480, 480],
        [120, 460],
        [300, 120],
    ],
    dtype=float,
)


def facilities_frame() -> pd.DataFrame:
    lon, lat = lonlat(FACILITIES_XY[:, 0], FACILITIES_XY[:, 1])
    return pd.DataFrame(
        {
            "id": [f"F{i + 1}" for i in range(len(lon))],
            "name": "site",
            "tier": FACILITIES_TIER,
            "lon": np.round(lon, 7),
            "lat": np.round(lat, 7),
        }
    )


def residents_frame() -> pd.DataFrame:
    lon, lat = lonlat(RESIDENTS_XY[:, 0], RESIDENTS_XY[:, 1])
    return pd.DataFrame(
        {
            "id": [f"R{i + 1}" for i in range(len(lon))],
            "lon": np.round(lon, 7),
            "lat": np.round(lat, 7),
            "population": [30, 40, 50, 60, 70, 20, 80, 60, 40, 10, 25, 35],
        }
    )


SCENARIO = """[scenario]
name = "hostile test"

[network]
path = "roads.osm"

[facilities]
path = "facilities.csv"

[residents]
path = "residents.csv"

[standard]
preset = "gb50180"
"""

GB_TIERS = {"station": "circle10", "point": "circle5"}


def write_scenario(
    folder: Path,
    *,
    facilities: pd.DataFrame | None = None,
    residents: pd.DataFrame | None = None,
    scenario: str | None = None,
    standard: str = "tancheng",
) -> Path:
    """Write the tiny scenario into ``folder``; return the path of ``scenario.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "roads.osm").write_text(osm_xml(), encoding="utf-8")
    fac = facilities_frame() if facilities is None else facilities
    fac.to_csv(folder / "facilities.csv", index=False)
    (residents_frame() if residents is None else residents).to_csv(
        folder / "residents.csv", index=False
    )
    text = scenario if scenario is not None else SCENARIO.replace("gb50180", standard)
    (folder / "scenario.toml").write_text(text, encoding="utf-8")
    return folder / "scenario.toml"
