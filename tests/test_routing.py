"""Routing: hand-checked grid answers and networkx as an independent oracle on real OSM data."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import GRID_ORIGIN, make_grid
from lifecircle.routing import (
    Positions,
    RoutingGraph,
    nearest_sources,
    node_distance_chunks,
    pair_distances_within,
)
from lifecircle.snapping import snap_to_network
from oracle import nearest_distances


def _edge(net, a: int, b: int) -> int:
    hit = np.flatnonzero(
        ((net.edge_u == a) & (net.edge_v == b)) | ((net.edge_u == b) & (net.edge_v == a))
    )
    assert len(hit) == 1
    return int(hit[0])


def _pos(net, pairs, access=None):
    """Positions from (node_a, node_b, metres from node_a) triples on the grid."""
    edges, offs = [], []
    for a, b, m in pairs:
        e = _edge(net, a, b)
        edges.append(e)
        offs.append(m if net.edge_u[e] == a else net.edge_length_m[e] - m)
    acc = np.zeros(len(pairs)) if access is None else np.asarray(access, float)
    return Positions(np.array(edges, np.int64), np.array(offs, float), acc)


def test_grid_corner_to_corner_is_manhattan(grid_network):
    g = RoutingGraph.from_network(grid_network)
    src = _pos(grid_network, [(0, 1, 0.0)])
    dst = _pos(grid_network, [(34, 35, 100.0), (7, 8, 50.0)])
    out = nearest_sources(g, src, dst)
    # node 35 is 5 blocks east and 5 north: 1,000 m; the midpoint of 7-8 is 100 + 150 = 250 m
    np.testing.assert_allclose(out.distance_m, [1000.0, 250.0])
    assert list(out.source) == [0, 0]


def test_same_edge_is_direct_not_round_the_block(grid_network):
    g = RoutingGraph.from_network(grid_network)
    src = _pos(grid_network, [(14, 15, 20.0)], access=[5.0])
    dst = _pos(grid_network, [(14, 15, 90.0), (14, 15, 20.0)], access=[12.0, 0.0])
    out = nearest_sources(g, src, dst)
    np.testing.assert_allclose(out.distance_m, [70.0 + 5.0 + 12.0, 5.0])


def test_nearest_of_several_and_which_one(grid_network):
    g = RoutingGraph.from_network(grid_network)
    src = _pos(grid_network, [(0, 1, 0.0), (35, 34, 0.0)])
    dst = _pos(grid_network, [(1, 2, 50.0), (33, 34, 50.0)])
    out = nearest_sources(g, src, dst)
    np.testing.assert_allclose(out.distance_m, [150.0, 150.0])
    assert list(out.source) == [0, 1]


def test_one_way_street_forces_a_detour():
    # 3 x 1 grid (nodes 0-1-2 in a row, then 3-4-5 above); edge 0->1 one way eastwards
    net = make_grid(3, 2, 100.0, mode="drive", oneway=None)
    oneway = np.zeros(net.n_edges, bool)
    e01 = _edge(net, 0, 1)
    assert net.edge_u[e01] == 0
    oneway[e01] = True
    from lifecircle.network import from_arrays

    net = from_arrays(
        net.node_x,
        net.node_y,
        net.edge_u,
        net.edge_v,
        crs=net.crs,
        mode="drive",
        edge_oneway=oneway,
    )
    g = RoutingGraph.from_network(net)
    fac_at_0 = _pos(net, [(0, 1, 0.0)])
    res_at_1 = _pos(net, [(1, 2, 0.0)])
    # 1 -> 0 against the one-way street is illegal: go 1-4-3-0 = 300 m
    np.testing.assert_allclose(nearest_sources(g, fac_at_0, res_at_1).distance_m, [300.0])
    # the other way round (facility at 1, resident at 0) may use the one-way edge: 100 m
    np.testing.assert_allclose(nearest_sources(g, res_at_1, fac_at_0).distance_m, [100.0])
    # same edge, against the direction: resident at 60 m, facility at 20 m along 0->1
    src = _pos(net, [(0, 1, 20.0)])
    dst = _pos(net, [(0, 1, 60.0)])
    # must leave towards 1, go round 1-4-3-0 (300) and then 20 m: 40 + 300 + 20
    np.testing.assert_allclose(nearest_sources(g, src, dst).distance_m, [360.0])


def test_island_and_off_network_are_unreachable():
    from lifecircle.network import from_arrays

    x = np.array([0, 100, 200, 1000, 1100], float) + GRID_ORIGIN[0]
    y = np.zeros(5) + GRID_ORIGIN[1]
    net = from_arrays(x, y, np.array([0, 1, 3]), np.array([1, 2, 4]), crs="EPSG:32650")
    assert net.components().n_components == 2
    g = RoutingGraph.from_network(net)
    src = Positions(np.array([0]), np.array([0.0]), np.array([0.0]))
    dst = Positions(np.array([1, 2, -1]), np.array([50.0, 50.0, 0.0]), np.zeros(3))
    out = nearest_sources(g, src, dst)
    assert out.distance_m[0] == pytest.approx(150.0)
    assert np.isinf(out.distance_m[1:]).all()
    assert list(out.source[1:]) == [-1, -1]


def test_no_usable_sources_gives_inf(grid_network):
    g = RoutingGraph.from_network(grid_network)
    src = Positions(np.array([-1]), np.array([0.0]), np.array([0.0]))
    dst = _pos(grid_network, [(0, 1, 10.0)])
    out = nearest_sources(g, src, dst)
    assert np.isinf(out.distance_m).all() and (out.source == -1).all()


def _random_positions(net, n, seed, max_snap_m=1e9):
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = net.bounds
    s = snap_to_network(
        net, rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n), max_snap_m=max_snap_m
    )
    return s, Positions(s.routable_edge(), s.offset_m, s.access_m)


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_matches_networkx_on_real_osm(mode, helsinki_walk, helsinki_drive):
    net = helsinki_walk if mode == "walk" else helsinki_drive
    _, src = _random_positions(net, 30, seed=1)
    _, dst = _random_positions(net, 1500, seed=2)
    out = nearest_sources(RoutingGraph.from_network(net), src, dst)
    oracle = nearest_distances(
        net, src.edge, src.offset_m, src.access_m, dst.edge, dst.offset_m, dst.access_m
    )
    assert np.array_equal(np.isfinite(out.distance_m), np.isfinite(oracle))
    fin = np.isfinite(oracle)
    assert fin.sum() > 1000
    np.testing.assert_allclose(out.distance_m[fin], oracle[fin], atol=0.01, rtol=0)
    # the reported nearest source is at the reported distance
    for j in np.flatnonzero(fin)[:50]:
        s = out.source[j]
        one = nearest_distances(
            net,
            src.edge[[s]],
            src.offset_m[[s]],
            src.access_m[[s]],
            dst.edge[[j]],
            dst.offset_m[[j]],
            dst.access_m[[j]],
        )
        assert one[0] == pytest.approx(out.distance_m[j], abs=0.01)


def test_limit_keeps_exact_results_within_it(helsinki_walk):
    g = RoutingGraph.from_network(helsinki_walk)
    _, src = _random_positions(helsinki_walk, 20, seed=3)
    _, dst = _random_positions(helsinki_walk, 2000, seed=4)
    full = nearest_sources(g, src, dst).distance_m
    cut = nearest_sources(g, src, dst, limit_m=300.0).distance_m
    within = full <= 300.0
    np.testing.assert_allclose(cut[within], full[within])
    assert np.isinf(cut[~within]).all()


def test_pairs_within_equal_per_source_searches(helsinki_walk):
    g = RoutingGraph.from_network(helsinki_walk)
    ss, src = _random_positions(helsinki_walk, 25, seed=5)
    ds, dst = _random_positions(helsinki_walk, 1500, seed=6)
    si, di, dm = pair_distances_within(
        g,
        src,
        dst,
        np.column_stack([ss.x, ss.y]),
        np.column_stack([ds.x, ds.y]),
        limit_m=400.0,
        chunk=7,
    )
    # compare each source alone against its own single-source search
    for s in range(len(src)):
        one = nearest_sources(g, src.subset(np.array([s])), dst, limit_m=400.0).distance_m
        expect = np.flatnonzero(np.isfinite(one))
        got = di[si == s]
        assert sorted(got.tolist()) == expect.tolist()
        np.testing.assert_allclose(np.sort(dm[si == s]), np.sort(one[expect]), atol=1e-6)


def test_node_distance_chunks_are_bounded_and_complete(grid_network):
    g = RoutingGraph.from_network(grid_network)
    src = _pos(grid_network, [(0, 1, 0.0), (35, 34, 0.0), (14, 15, 50.0)])
    seen = []
    for idx, d in node_distance_chunks(g, src, limit_m=np.inf, chunk=2):
        assert d.shape == (len(idx), grid_network.n_nodes)
        seen += idx.tolist()
        if 0 in idx:
            assert d[list(idx).index(0), 35] == pytest.approx(1000.0)
    assert seen == [0, 1, 2]


def test_compiled_read_off_equals_the_numpy_read_off():
    """The fused read-off of one search gives the NumPy read-off's distances and sources, bit
    for bit: one-way edges, points exactly on u, off-network points, unreached nodes."""
    from lifecircle._readoff import destination_ends, read_off_one
    from lifecircle.routing import Positions, _read_off, _Table

    rng = np.random.default_rng(8)
    n_nodes, n_edges, n = 400, 900, 20_000
    u = rng.integers(0, n_nodes, n_edges)
    v = rng.integers(0, n_nodes, n_edges)
    length = rng.uniform(1.0, 200.0, n_edges)
    twoway = rng.random(n_edges) < 0.7
    tab = _Table(u, v, length, twoway)
    node_d = rng.uniform(0.0, 3000.0, n_nodes)
    node_d[rng.random(n_nodes) < 0.1] = np.inf
    node_src = rng.integers(0, 50, n_nodes).astype(np.int64)
    edge = rng.integers(-1, n_edges, n).astype(np.int64)
    offset = rng.uniform(0.0, 1.0, n) * length[np.maximum(edge, 0)]
    offset[:500] = 0.0  # exactly on u
    offset[500:1000] = length[np.maximum(edge[500:1000], 0)]  # exactly on v
    access = rng.uniform(0.0, 50.0, n)
    pos = Positions(edge, offset, access)
    want_d, want_s = _read_off(tab, node_d[None, :], node_src[None, :], pos)
    d = np.empty(n)
    s = np.empty(n, dtype=np.int64)
    ends = destination_ends(edge, offset, u, v, length, twoway)
    read_off_one(*ends, access, node_d, node_src, d, s)
    np.testing.assert_array_equal(d, want_d[0])
    np.testing.assert_array_equal(s, want_s[0])
    assert np.isinf(d).any() and (s == -1).any()
