"""A tiny bundled example for docstrings and first experiments (SYNTHETIC, not real data).

:func:`tiny_town` builds, in memory, a 5 x 5 street grid of 100 m blocks placed at Tancheng's county
seat (WGS84), two facilities and nine resident points — small enough to check by hand, and the
same kind of objects a user passes to :func:`lifecircle.load_inputs`.

Examples
--------
>>> from lifecircle.datasets import tiny_town
>>> town = tiny_town()
>>> sorted(town)
['facilities', 'network', 'residents']
>>> n_people = int(town["residents"]["population"].sum())
>>> town["network"].number_of_nodes(), len(town["facilities"]), n_people
(25, 2, 450)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pyproj import Transformer

if TYPE_CHECKING:
    import networkx as nx

#: South-west corner of the tiny town in UTM zone 50N (EPSG:32650), near Tancheng's county seat.
ORIGIN_UTM50 = (398_000.0, 3_831_000.0)
#: Block size of the grid, metres.
BLOCK_M = 100.0


def tiny_town() -> dict[str, Any]:
    """A SYNTHETIC 5 x 5 street grid with two facilities and nine residents, in WGS84.

    Returns
    -------
    dict
        ``network``: a networkx graph (node ``x``/``y`` WGS84 degrees, graph ``crs`` EPSG:4326);
        ``facilities``: a GeoDataFrame with ``id``, ``name``, ``tier`` (one ``station``, one
        ``point``); ``residents``: a GeoDataFrame with ``id``, ``population``, ``elderly``. Both
        frames are points in EPSG:4326.
    """
    import geopandas as gpd
    import networkx as nx

    to_wgs84 = Transformer.from_crs(32650, 4326, always_xy=True)
    n = 5
    ix, iy = np.meshgrid(np.arange(n), np.arange(n))
    x = ORIGIN_UTM50[0] + ix.ravel() * BLOCK_M
    y = ORIGIN_UTM50[1] + iy.ravel() * BLOCK_M
    lon, lat = to_wgs84.transform(x, y)
    graph: nx.Graph = nx.Graph(crs="EPSG:4326")
    for i in range(n * n):
        graph.add_node(i, x=float(lon[i]), y=float(lat[i]))
    ids = np.arange(n * n).reshape(n, n)
    for u, v in zip(
        np.r_[ids[:, :-1].ravel(), ids[:-1, :].ravel()],
        np.r_[ids[:, 1:].ravel(), ids[1:, :].ravel()],
        strict=True,
    ):
        graph.add_edge(int(u), int(v))

    def points(xy: np.ndarray) -> Any:
        plon, plat = to_wgs84.transform(ORIGIN_UTM50[0] + xy[:, 0], ORIGIN_UTM50[1] + xy[:, 1])
        return gpd.points_from_xy(plon, plat, crs="EPSG:4326")

    fac_xy = np.array([[100.0, 100.0], [300.0, 350.0]])  # on streets
    facilities = gpd.GeoDataFrame(
        {"id": ["S1", "P1"], "name": ["示例服务站", "示例便民点"], "tier": ["station", "point"]},
        geometry=points(fac_xy),
    )
    res_xy = np.array(
        [
            [20.0, 5.0],
            [150.0, 110.0],
            [250.0, 190.0],
            [400.0, 40.0],
            [10.0, 390.0],
            [200.0, 300.0],
            [330.0, 290.0],
            [390.0, 400.0],
            [50.0, 250.0],
        ]
    )
    residents = gpd.GeoDataFrame(
        {
            "id": [f"R{i + 1}" for i in range(9)],
            "population": [30, 40, 50, 60, 70, 20, 80, 60, 40],
            "elderly": [5, 8, 10, 12, 20, 4, 9, 10, 6],
        },
        geometry=points(res_xy),
    )
    return {"network": graph, "facilities": facilities, "residents": residents}
