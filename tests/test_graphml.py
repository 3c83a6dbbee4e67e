"""The streaming GraphML reader against the osmnx/networkx loading, edge by edge."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from lifecircle.errors import NetworkError
from lifecircle.network import RoadNetwork, from_graphml, from_networkx, load_network
from test_network import OSM_XML


def _table(net: RoadNetwork) -> np.ndarray:
    """Edges as sortable rows: end coordinates (mm), length, one-way, highway and name text."""
    hw = np.array([net.highway_values[i] if i >= 0 else "" for i in net.edge_highway], dtype=object)
    nm = np.array([net.name_values[i] if i >= 0 else "" for i in net.edge_name], dtype=object)
    rows = sorted(
        zip(
            np.round(net.node_x[net.edge_u], 3).tolist(),
            np.round(net.node_y[net.edge_u], 3).tolist(),
            np.round(net.node_x[net.edge_v], 3).tolist(),
            np.round(net.node_y[net.edge_v], 3).tolist(),
            np.round(net.edge_length_m, 6).tolist(),
            net.edge_oneway.tolist(),
            hw.tolist(),
            nm.tolist(),
            strict=True,
        )
    )
    return np.array(rows, dtype=object)


def _same(a: RoadNetwork, b: RoadNetwork) -> None:
    assert (a.n_nodes, a.n_edges, a.crs) == (b.n_nodes, b.n_edges, b.crs)
    np.testing.assert_array_equal(np.sort(a.node_id), np.sort(b.node_id))
    ta, tb = _table(a), _table(b)
    assert (ta == tb).all()


@pytest.fixture(scope="module")
def helsinki_graphml(tmp_path_factory, helsinki_pbf) -> Path:
    """osmnx's simplified drive+walk graph of the Helsinki extract (curved geometries, merged
    lists), saved as GraphML."""
    import osmium
    import osmnx as ox

    folder = tmp_path_factory.mktemp("gml")
    xml = folder / "helsinki.osm"
    have = {n.id for n in osmium.FileProcessor(str(helsinki_pbf), osmium.osm.NODE)}
    with osmium.SimpleWriter(str(xml)) as w:
        for obj in osmium.FileProcessor(str(helsinki_pbf), osmium.osm.NODE | osmium.osm.WAY):
            if isinstance(obj, osmium.osm.Node):
                w.add_node(obj)
            elif all(nd.ref in have for nd in obj.nodes):  # ways clipped by the extract: drop
                w.add_way(obj)
    g = ox.graph_from_xml(xml, simplify=True, retain_all=True)
    path = folder / "helsinki.graphml"
    ox.save_graphml(g, path)
    return path


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_real_osmnx_graphml_equals_the_networkx_path(helsinki_graphml, mode):
    import osmnx as ox

    ours = from_graphml(helsinki_graphml, mode=mode)
    ref = from_networkx(ox.load_graphml(helsinki_graphml), mode=mode, source=str(helsinki_graphml))
    assert (ours.node_id < 0).sum() > 100  # curved geometries were split
    assert len(ours.highway_values) > 3
    _same(ours, ref)
    # and load_network goes through the streaming reader
    _same(load_network(helsinki_graphml, mode), ref)


@pytest.mark.parametrize("simplify", [True, False])
def test_small_osmnx_graphml(tmp_path: Path, simplify: bool):
    import osmnx as ox

    osm = tmp_path / "small.osm"
    osm.write_text(OSM_XML, encoding="utf-8")
    g = ox.graph_from_xml(osm, simplify=simplify, bidirectional=False, retain_all=True)
    path = tmp_path / "g.graphml"
    ox.save_graphml(g, path)
    for mode in ("walk", "drive"):
        _same(from_graphml(path, mode=mode), from_networkx(ox.load_graphml(path), mode=mode))


def test_plain_networkx_graphml_with_typed_attributes(tmp_path: Path):
    from shapely.geometry import LineString

    g = nx.MultiDiGraph(crs="EPSG:4326")
    g.add_node("a", x=118.33, y=34.61)
    g.add_node("b", x=118.332, y=34.61)
    g.add_node("c", x=118.332, y=34.612)
    geom = LineString([(118.33, 34.61), (118.331, 34.6105), (118.332, 34.61)])
    g.add_edge("a", "b", length=250.0, geometry=geom.wkt, highway="residential", lanes=2)
    g.add_edge(
        "b", "a", length=250.0, geometry=LineString(geom.coords[::-1]).wkt, highway="residential"
    )
    g.add_edge("b", "c", length=222.5, oneway=True)
    path = tmp_path / "plain.graphml"
    nx.write_graphml(g, path)
    walk = from_graphml(path, mode="walk")
    assert walk.n_nodes == 4 and walk.n_edges == 3
    assert walk.edge_length_m.sum() == pytest.approx(472.5)
    drive = from_graphml(path, mode="drive")
    assert drive.n_edges == 5 and drive.edge_oneway.sum() == 1
    # the networkx path, with the WKT turned into shapely geometries, agrees
    from shapely import wkt

    h = nx.read_graphml(path, force_multigraph=True)
    for _, _, d in h.edges(data=True):
        if "geometry" in d:
            d["geometry"] = wkt.loads(d["geometry"])
    for mode, ours in (("walk", walk), ("drive", drive)):
        ref = from_networkx(h, mode=mode)
        assert (ours.n_nodes, ours.n_edges) == (ref.n_nodes, ref.n_edges)
        assert (_table(ours) == _table(ref)).all()


def test_graphml_errors(tmp_path: Path):
    bad = tmp_path / "bad.graphml"
    bad.write_text("<graphml><graph><node id='1'>", encoding="utf-8")
    with pytest.raises(NetworkError, match="cannot read GraphML"):
        from_graphml(bad)
    g = nx.MultiDiGraph()
    g.add_edge(1, 2)
    nx.write_graphml(g, tmp_path / "noxy.graphml")
    with pytest.raises(NetworkError, match="'x' and 'y'"):
        from_graphml(tmp_path / "noxy.graphml")


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_fast_scanner_equals_iterparse(helsinki_graphml, tmp_path: Path, mode):
    from lifecircle.network import _read_graphml_fast, _read_graphml_iter

    fast = _read_graphml_fast(helsinki_graphml, chunk_bytes=1 << 16)  # many chunk boundaries
    assert fast is not None  # osmnx's layout takes the fast path
    a = from_graphml(helsinki_graphml, mode=mode, data=fast)
    b = from_graphml(helsinki_graphml, mode=mode, data=_read_graphml_iter(helsinki_graphml))
    _same(a, b)
    np.testing.assert_array_equal(a.edge_u, b.edge_u)
    np.testing.assert_array_equal(a.edge_length_m, b.edge_length_m)
    # a layout the scanner does not handle (single-quoted attributes) falls back to iterparse
    text = helsinki_graphml.read_text(encoding="utf-8").replace('<node id="', "<node id='", 1)
    text = text.replace("<node id='", '<node id="', 0)
    odd = tmp_path / "odd.graphml"
    first = text.index("<node id='")
    end = text.index('"', first + 10)
    odd.write_text(text[:end] + "'" + text[end + 1 :], encoding="utf-8")
    assert _read_graphml_fast(odd) is None
    _same(from_graphml(odd, mode=mode), a)
