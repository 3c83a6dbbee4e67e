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

from collections.abc import Sequence
from pathlib import Path
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


def write_grid_pbf(
    path: str | Path,
    grids: Sequence[tuple[float, float, int, int, float]],
    *,
    way_nodes: int = 20,
) -> dict[str, int]:
    """Write SYNTHETIC street grids to an ``.osm.pbf`` (tests and benchmarks of large extracts).

    Parameters
    ----------
    path : str or Path
        The ``.osm.pbf`` to write (replaced if it exists).
    grids : sequence of (lon0, lat0, nx, ny, spacing_m)
        Each grid's south-west corner (WGS84 degrees), its size in nodes and its block size in
        metres. Streets run east-west and north-south, split into ways of ``way_nodes`` nodes
        tagged ``highway=residential``.
    way_nodes : int
        Nodes per way (consecutive ways share their end node).

    Returns
    -------
    dict
        ``{"nodes": n, "ways": m}`` written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from lifecircle.network import load_network
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grid.osm.pbf"
    >>> write_grid_pbf(p, [(118.3, 34.6, 4, 3, 100.0)])
    {'nodes': 12, 'ways': 7}
    >>> round(float(load_network(p).edge_length_m.sum()))
    1700
    """
    import osmium

    p = Path(path)
    if p.exists():
        p.unlink()
    writer = osmium.SimpleWriter(str(p))
    next_node = 1
    next_way = 1
    chains: list[list[int]] = []
    try:
        for lon0, lat0, nx_, ny_, spacing_m in grids:
            dlat = spacing_m / 111_195.0
            dlon = spacing_m / (111_195.0 * np.cos(np.deg2rad(lat0)))
            ids = np.arange(next_node, next_node + nx_ * ny_, dtype=np.int64).reshape(ny_, nx_)
            lon = lon0 + np.arange(nx_) * dlon
            lat = lat0 + np.arange(ny_) * dlat
            for row in range(ny_):
                for col, nid in enumerate(ids[row].tolist()):
                    writer.add_node(osmium.osm.mutable.Node(id=nid, location=(lon[col], lat[row])))
            next_node += nx_ * ny_
            for line in [*ids, *ids.T]:
                refs = line.tolist()
                for s in range(0, len(refs) - 1, way_nodes - 1):
                    chains.append(refs[s : s + way_nodes])
        for refs in chains:
            writer.add_way(
                osmium.osm.mutable.Way(id=next_way, nodes=refs, tags={"highway": "residential"})
            )
            next_way += 1
    finally:
        writer.close()
    return {"nodes": next_node - 1, "ways": next_way - 1}
