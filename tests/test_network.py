"""Network loading: OSM XML/PBF with osmnx's rules, GraphML, networkx, cache, errors."""

from __future__ import annotations

import bz2
import logging
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from lifecircle.errors import NetworkError
from lifecircle.network import (
    RoadNetwork,
    from_networkx,
    load_network,
    load_networks,
    way_allowed,
)

# A hand-written OSM file: a 3 x 2 street grid at Tancheng plus a motorway, a cycleway, a
# private road and a footway, with one one-way street and one roundabout-free reverse one-way.
OSM_XML = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="lifecircle tests">
  <node id="1" lat="34.6100" lon="118.3300" version="1"/>
  <node id="2" lat="34.6100" lon="118.3310" version="1"/>
  <node id="3" lat="34.6100" lon="118.3320" version="1"/>
  <node id="4" lat="34.6110" lon="118.3300" version="1"/>
  <node id="5" lat="34.6110" lon="118.3310" version="1"/>
  <node id="6" lat="34.6110" lon="118.3320" version="1"/>
  <node id="7" lat="34.6120" lon="118.3320" version="1"/>
  <node id="8" lat="34.6120" lon="118.3300" version="1"/>
  <way id="10" version="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="residential"/><tag k="name" v="人民路"/><tag k="oneway" v="yes"/></way>
  <way id="11" version="1"><nd ref="4"/><nd ref="5"/><nd ref="6"/>
    <tag k="highway" v="tertiary"/><tag k="name" v="建设路"/><tag k="oneway" v="-1"/></way>
  <way id="12" version="1"><nd ref="1"/><nd ref="4"/><tag k="highway" v="residential"/></way>
  <way id="13" version="1"><nd ref="2"/><nd ref="5"/><tag k="highway" v="footway"/></way>
  <way id="14" version="1"><nd ref="3"/><nd ref="6"/><tag k="highway" v="residential"/></way>
  <way id="15" version="1"><nd ref="6"/><nd ref="7"/><tag k="highway" v="motorway"/></way>
  <way id="16" version="1"><nd ref="4"/><nd ref="8"/><tag k="highway" v="cycleway"/></way>
  <way id="17" version="1"><nd ref="7"/><nd ref="8"/><tag k="highway" v="service"/>\
<tag k="access" v="private"/></way>
  <way id="18" version="1"><nd ref="5"/><nd ref="8"/><tag k="waterway" v="river"/></way>
</osm>
"""


@pytest.fixture
def osm_file(tmp_path: Path) -> Path:
    p = tmp_path / "small.osm"
    p.write_text(OSM_XML, encoding="utf-8")
    return p


def test_way_filters_follow_osmnx():
    assert way_allowed({"highway": "residential"}, "walk")
    assert not way_allowed({"highway": "motorway"}, "walk")
    assert not way_allowed({"highway": "motorway_link"}, "walk")
    assert not way_allowed({"highway": "cycleway"}, "walk")
    assert not way_allowed({"highway": "service", "access": "private"}, "walk")
    assert not way_allowed({"highway": "footway", "area": "yes"}, "walk")
    assert not way_allowed({"highway": "path", "foot": "no"}, "walk")
    assert not way_allowed({"waterway": "river"}, "walk")
    assert way_allowed({"highway": "cycleway"}, "bike")
    assert not way_allowed({"highway": "footway"}, "bike")
    assert not way_allowed({"highway": "steps"}, "bike")
    assert way_allowed({"highway": "motorway"}, "drive")
    assert not way_allowed({"highway": "footway"}, "drive")
    assert not way_allowed({"highway": "service", "service": "parking_aisle"}, "drive")


def test_osm_xml_modes(osm_file: Path):
    nets = load_networks(osm_file, ["walk", "bike", "drive"])
    walk, bike, drive = nets["walk"], nets["bike"], nets["drive"]
    assert walk.crs == "EPSG:32650"
    # walk: ways 10, 11 (2 segments each), 12, 13, 14 -> 7 edges over nodes 1-6
    assert walk.n_edges == 7 and sorted(walk.node_id.tolist()) == [1, 2, 3, 4, 5, 6]
    assert not walk.edge_oneway.any()
    # bike: no footway, plus the cycleway
    assert bike.n_edges == 7 and 8 in bike.node_id
    # drive: no footway, plus the motorway; one-way edges respected
    assert drive.n_edges == 7 and 7 in drive.node_id
    assert drive.edge_oneway.sum() == 4
    # way 11 is oneway=-1: its edges run 6->5->4 against the node order
    ids = drive.node_id
    rev = {
        (int(ids[u]), int(ids[v]))
        for u, v, o in zip(drive.edge_u, drive.edge_v, drive.edge_oneway, strict=True)
        if o
    }
    assert rev == {(1, 2), (2, 3), (6, 5), (5, 4)}
    # names survive
    assert "人民路" in walk.name_values


def test_lengths_match_osmnx_graph_from_xml(osm_file: Path, tmp_path: Path):
    import osmnx as ox

    walk_only = tmp_path / "walk_only.osm"
    text = OSM_XML
    for way in ('<way id="15"', '<way id="16"', '<way id="17"', '<way id="18"'):
        start = text.index(way)
        text = text[:start] + text[text.index("</way>", start) + 6 :]
    walk_only.write_text(text, encoding="utf-8")
    g = ox.graph_from_xml(walk_only, simplify=False, bidirectional=True, retain_all=True)
    ours = load_network(walk_only, "walk")
    theirs = sum(d["length"] for _, _, d in g.edges(data=True)) / 2  # both directions stored
    # osmnx measures on a sphere; ours are WGS84 geodesics: close, but not equal
    assert ours.edge_length_m.sum() == pytest.approx(theirs, rel=5e-3)
    assert ours.edge_length_m.sum() != pytest.approx(theirs, rel=1e-6)
    assert ours.n_nodes == sum(1 for n in g if g.degree(n) > 0)
    # every edge equals the WGS84 geodesic between its nodes, computed per edge
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    lonlat = {n: (d["x"], d["y"]) for n, d in g.nodes(data=True)}
    for u, v, length in zip(ours.edge_u, ours.edge_v, ours.edge_length_m, strict=True):
        (x1, y1), (x2, y2) = lonlat[int(ours.node_id[u])], lonlat[int(ours.node_id[v])]
        assert length == pytest.approx(geod.inv(x1, y1, x2, y2)[2], abs=1e-6)


def test_bz2_equals_plain(osm_file: Path, tmp_path: Path):
    p = tmp_path / "small.osm.bz2"
    p.write_bytes(bz2.compress(osm_file.read_bytes()))
    a = load_network(osm_file, "walk")
    b = load_network(p, "walk")
    np.testing.assert_array_equal(a.edge_length_m, b.edge_length_m)


def test_pbf_real_data(helsinki_pbf: Path):
    nets = load_networks(helsinki_pbf, ["walk", "drive"])
    walk, drive = nets["walk"], nets["drive"]
    assert walk.crs == "EPSG:32635"  # Helsinki is in UTM zone 35
    assert walk.n_nodes > 5000 and walk.n_edges > 6000
    assert drive.edge_oneway.any() and not walk.edge_oneway.any()
    comp = walk.components()
    assert comp.n_components > 1 and comp.largest_nodes + comp.other_nodes == walk.n_nodes
    assert (comp.node_component == 0).sum() == comp.largest_nodes


def test_graphml_used_as_is(osm_file: Path, tmp_path: Path):
    import osmnx as ox

    g = ox.graph_from_xml(osm_file, simplify=True, bidirectional=False, retain_all=True)
    path = tmp_path / "g.graphml"
    ox.save_graphml(g, path)
    net = load_network(path, "walk")
    # distances between original nodes equal networkx over the GraphML 'length' attribute
    from lifecircle.routing import Positions, RoutingGraph, nearest_sources

    und = nx.Graph()
    for u, v, d in ox.load_graphml(path).edges(data=True):
        if not und.has_edge(u, v) or und[u][v]["length"] > d["length"]:
            und.add_edge(u, v, length=d["length"])
    src_node = 1
    expected = nx.single_source_dijkstra_path_length(und, src_node, weight="length")
    # a source exactly on node 1: an edge starting at it, offset 0
    idx = {int(n): i for i, n in enumerate(net.node_id)}
    e = (
        int(np.flatnonzero(net.edge_u == idx[src_node])[0])
        if (net.edge_u == idx[src_node]).any()
        else None
    )
    if e is None:
        e = int(np.flatnonzero(net.edge_v == idx[src_node])[0])
        off = float(net.edge_length_m[e])
    else:
        off = 0.0
    res = nearest_sources(
        RoutingGraph.from_network(net),
        Positions(np.array([e]), np.array([off]), np.zeros(1)),
        Positions(np.zeros(0, np.int64), np.zeros(0), np.zeros(0)),
    )
    for node, dist in expected.items():
        assert res.node_distance_m[idx[int(node)]] == pytest.approx(dist, abs=1e-6)


def test_curved_edges_are_split_and_keep_their_length():
    from shapely.geometry import LineString

    g = nx.MultiDiGraph(crs="EPSG:4326")
    g.add_node(1, x=118.33, y=34.61)
    g.add_node(2, x=118.332, y=34.61)
    geom = LineString([(118.33, 34.61), (118.331, 34.6105), (118.332, 34.61)])
    g.add_edge(1, 2, key=0, length=250.0, geometry=geom, highway="residential")
    g.add_edge(
        2, 1, key=0, length=250.0, geometry=LineString(geom.coords[::-1]), highway="residential"
    )
    net = from_networkx(g, mode="walk")
    assert net.n_edges == 2 and net.n_nodes == 3  # one vertex became a node, reverse deduplicated
    assert net.edge_length_m.sum() == pytest.approx(250.0)
    assert (net.node_id < 0).sum() == 1
    drive = from_networkx(g, mode="drive")
    assert drive.n_edges == 4 and not drive.edge_oneway.any()


def test_cache_round_trip_and_reuse(osm_file: Path, tmp_path: Path, caplog):
    cache = tmp_path / "cache"
    a = load_network(osm_file, "drive", cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    with caplog.at_level(logging.INFO, logger="lifecircle.network"):
        b = load_network(osm_file, "drive", cache_dir=cache)
    assert "from cache" in caplog.text
    for name in (
        "node_id",
        "node_x",
        "node_y",
        "edge_u",
        "edge_v",
        "edge_length_m",
        "edge_oneway",
        "edge_highway",
        "edge_name",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.crs, a.mode, a.name_values, a.highway_values) == (
        b.crs,
        b.mode,
        b.name_values,
        b.highway_values,
    )
    c = RoadNetwork.load(a.save(tmp_path / "x.npz"))
    np.testing.assert_array_equal(c.edge_u, a.edge_u)


def test_errors(tmp_path: Path):
    with pytest.raises(NetworkError, match="does not exist"):
        load_network(tmp_path / "missing.osm")
    bad = tmp_path / "roads.shp"
    bad.write_text("x")
    with pytest.raises(NetworkError, match="unknown type"):
        load_network(bad)
    empty = tmp_path / "empty.osm"
    empty.write_text(
        "<?xml version='1.0' encoding='UTF-8'?><osm version='0.6'>"
        "<node id='1' lat='1' lon='1'/></osm>"
    )
    with pytest.raises(NetworkError, match="no highway"):
        load_network(empty)
    with pytest.raises(NetworkError, match="mode"):
        load_networks(empty, ["fly"])
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"not a pbf at all")
    with pytest.raises(NetworkError):
        load_network(garbage)
