"""Junction contraction: chains of degree-2 vertices routed as one edge, distances unchanged.

Oracles: networkx over the raw (uncontracted) pieces, on synthetic curved streets with one-way
chains, and on the raw Helsinki OSM extract against WGS84 geodesic lengths computed per piece.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import GRID_CRS, GRID_ORIGIN, make_grid
from lifecircle.network import RoadNetwork, contract_junctions, from_arrays
from lifecircle.routing import (
    Positions,
    RoutingGraph,
    nearest_sources,
    node_distance_chunks,
    pair_distances_within,
)
from lifecircle.snapping import snap_to_network
from oracle import nearest_distances


def bent_grid(
    n: int,
    m: int,
    spacing: float,
    pieces: int,
    *,
    mode: str = "walk",
    oneway_share: float = 0.0,
    seed: int = 0,
) -> RoadNetwork:
    """An n x m grid whose every street is bent into ``pieces`` straight pieces; in ``drive``
    mode a share of the streets is one-way (in either direction, whole street)."""
    rng = np.random.default_rng(seed)
    base = make_grid(n, m, spacing)
    u0, v0 = base.edge_u.astype(np.int64), base.edge_v.astype(np.int64)
    flip = rng.random(len(u0)) < 0.5
    u0, v0 = np.where(flip, v0, u0), np.where(flip, u0, v0)
    k = pieces
    t = np.arange(1, k) / k
    xu, yu, xv, yv = base.node_x[u0], base.node_y[u0], base.node_x[v0], base.node_y[v0]
    nx_, ny_ = -(yv - yu) / spacing, (xv - xu) / spacing
    bulge = 0.15 * spacing * np.sin(np.pi * t)[None, :] * rng.uniform(-1, 1, (len(u0), 1))
    ix = xu[:, None] + t[None, :] * (xv - xu)[:, None] + bulge * nx_[:, None]
    iy = yu[:, None] + t[None, :] * (yv - yu)[:, None] + bulge * ny_[:, None]
    n0 = base.n_nodes
    inner = n0 + np.arange(len(u0) * (k - 1)).reshape(len(u0), k - 1)
    chain = np.column_stack([u0, inner, v0])
    eu, ev = chain[:, :-1].ravel(), chain[:, 1:].ravel()
    x = np.concatenate([base.node_x, ix.ravel()])
    y = np.concatenate([base.node_y, iy.ravel()])
    oneway = np.repeat(rng.random(len(u0)) < oneway_share, k)
    return from_arrays(
        x, y, eu, ev, crs=GRID_CRS, mode=mode, edge_oneway=oneway, source="bent grid"
    )


def _check_consistent(net: RoadNetwork) -> None:
    j = contract_junctions(net)
    c, length = j.edge_chain, net.edge_length_m
    pu = np.where(j.edge_flip, j.edge_start_m + length, j.edge_start_m)
    pv = np.where(j.edge_flip, j.edge_start_m, j.edge_start_m + length)
    for node, pos in ((net.edge_u, pu), (net.edge_v, pv)):
        jn = j.node_junction[node]
        inner = jn < 0
        assert (j.node_chain[node[inner]] == c[inner]).all()
        np.testing.assert_allclose(j.node_offset_m[node[inner]], pos[inner], atol=1e-6)
        at0 = np.isclose(pos, 0) & (j.chain_u[c] == jn)
        at_end = np.isclose(pos, j.chain_length_m[c]) & (j.chain_v[c] == jn)
        assert (at0 | at_end)[~inner].all()
    np.testing.assert_allclose(
        np.bincount(c, weights=length, minlength=j.n_chains), j.chain_length_m
    )
    if net.directed:
        assert (j.chain_oneway[c] == net.edge_oneway).all()
        assert not j.edge_flip[net.edge_oneway].any()  # one-way chains run the legal way


def test_grid_corners_and_bent_streets_contract():
    grid = make_grid()
    j = contract_junctions(grid)
    assert j.n_junctions == 32 and j.n_chains == 56  # the 4 corners are degree 2
    _check_consistent(grid)
    bent = bent_grid(5, 4, 100.0, 5)
    jb = contract_junctions(bent)
    assert jb.n_junctions == 20 - 4 and bent.n_nodes > 4 * jb.n_junctions
    _check_consistent(bent)


def test_junctions_kept_where_direction_or_tags_change():
    # a straight road 0-1-2-3-4: edges 0-1 and 1-2 one-way east, 2-3 two-way, 3-4 one-way west
    x = GRID_ORIGIN[0] + np.arange(5) * 100.0
    y = np.full(5, GRID_ORIGIN[1])
    u, v = np.array([0, 1, 2, 4]), np.array([1, 2, 3, 3])
    net = from_arrays(
        x, y, u, v, crs=GRID_CRS, mode="drive", edge_oneway=np.array([True, True, False, True])
    )
    j = contract_junctions(net)
    assert j.node_junction[1] < 0 and (j.node_junction[[0, 2, 3, 4]] >= 0).all()
    _check_consistent(net)
    # one-way in opposite directions meeting head-on never merge
    net2 = from_arrays(
        x[:3],
        y[:3],
        np.array([0, 2]),
        np.array([1, 1]),
        crs=GRID_CRS,
        mode="drive",
        edge_oneway=np.array([True, True]),
    )
    assert contract_junctions(net2).node_junction[1] >= 0
    # walk mode ignores one-way flags: everything merges into one chain
    walk = from_arrays(x, y, u, v, crs=GRID_CRS, mode="walk")
    assert contract_junctions(walk).n_chains == 1
    # a closed ring keeps one junction
    ring = from_arrays(
        x[:4],
        np.array([0, 0, 100, 100]) + GRID_ORIGIN[1],
        np.array([0, 1, 3, 2]),
        np.array([1, 3, 2, 0]),
        crs=GRID_CRS,
    )
    jr = contract_junctions(ring)
    assert jr.n_junctions == 1 and jr.n_chains == 1
    _check_consistent(ring)


def _random_positions(net: RoadNetwork, n: int, seed: int) -> tuple[np.ndarray, Positions]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = net.bounds
    s = snap_to_network(net, rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n), max_snap_m=1e9)
    return np.column_stack([s.x, s.y]), Positions(s.routable_edge(), s.offset_m, s.access_m)


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_bent_grid_matches_networkx_on_raw_pieces(mode):
    net = bent_grid(7, 6, 120.0, 6, mode=mode, oneway_share=0.4, seed=3)
    assert contract_junctions(net).chain_oneway.sum() > 5 or mode == "walk"
    g = RoutingGraph.from_network(net)
    sxy, src = _random_positions(net, 12, seed=4)
    # sources and residents exactly on vertices (interior and junction) as well
    on_nodes = Positions(
        np.arange(0, net.n_edges, 7),
        np.zeros(len(range(0, net.n_edges, 7))),
        np.zeros(len(range(0, net.n_edges, 7))),
    )
    _, dst = _random_positions(net, 400, seed=5)
    dst = Positions(
        np.concatenate([dst.edge, on_nodes.edge]),
        np.concatenate([dst.offset_m, on_nodes.offset_m]),
        np.concatenate([dst.access_m, on_nodes.access_m]),
    )
    out = nearest_sources(g, src, dst)
    oracle = nearest_distances(
        net, src.edge, src.offset_m, src.access_m, dst.edge, dst.offset_m, dst.access_m
    )
    assert np.isfinite(oracle).sum() > 300
    np.testing.assert_array_equal(np.isfinite(out.distance_m), np.isfinite(oracle))
    fin = np.isfinite(oracle)
    np.testing.assert_allclose(out.distance_m[fin], oracle[fin], atol=0.01, rtol=0)
    # raw-vertex distances read off the junctions equal a search on the raw pieces
    node_pos = Positions(
        np.concatenate([np.arange(net.n_edges), np.arange(net.n_edges)]),
        np.concatenate([np.zeros(net.n_edges), net.edge_length_m]),
        np.zeros(2 * net.n_edges),
    )
    at = np.concatenate([net.edge_u, net.edge_v])
    ref = nearest_distances(
        net,
        src.edge,
        src.offset_m,
        src.access_m,
        node_pos.edge,
        node_pos.offset_m,
        node_pos.access_m,
    )
    np.testing.assert_allclose(out.node_distance_m[at], ref, atol=0.01)
    # one-to-many chunks: per source, raw vertices
    for idx, d in node_distance_chunks(g, src, limit_m=np.inf, chunk=5):
        for r, s in enumerate(idx):
            one = nearest_distances(
                net,
                src.edge[[s]],
                src.offset_m[[s]],
                src.access_m[[s]],
                node_pos.edge,
                node_pos.offset_m,
                node_pos.access_m,
            )
            np.testing.assert_allclose(d[r, at], one, atol=0.01)
    # pairs within a limit equal single-source searches
    dxy = np.zeros((len(dst), 2))
    dxy[:400] = _random_positions(net, 400, seed=5)[0]
    dxy[400:] = np.column_stack(
        [net.node_x[net.edge_u[on_nodes.edge]], net.node_y[net.edge_u[on_nodes.edge]]]
    )
    si, di, dm = pair_distances_within(g, src, dst, sxy, dxy, limit_m=350.0, chunk=4)
    for s in range(len(src)):
        one = nearest_distances(
            net,
            src.edge[[s]],
            src.offset_m[[s]],
            src.access_m[[s]],
            dst.edge,
            dst.offset_m,
            dst.access_m,
        )
        expect = np.flatnonzero(one <= 350.0 - 1e-6)
        got = np.sort(di[si == s])
        assert set(expect.tolist()) <= set(got.tolist())
        np.testing.assert_allclose(np.sort(dm[si == s]), np.sort(one[got]), atol=0.01)


def test_raw_osm_oracle_with_curved_streets_and_one_way_chains(helsinki_drive):
    """Raw Helsinki drive network (ways split at every vertex) against an independent reference:
    networkx over the raw pieces weighted by WGS84 geodesics computed per piece."""
    from pyproj import Geod

    net = helsinki_drive
    j = contract_junctions(net)
    multi = np.bincount(j.edge_chain, minlength=j.n_chains) > 1
    assert j.n_junctions < 0.5 * net.n_nodes  # curved streets were contracted
    assert (multi & j.chain_oneway).sum() > 20  # including one-way chains
    lon, lat = net.to_lonlat(net.node_x, net.node_y)
    geod = Geod(ellps="WGS84")
    ref_len = np.array(
        [
            geod.inv(lon[a], lat[a], lon[b], lat[b])[2]
            for a, b in zip(net.edge_u, net.edge_v, strict=True)
        ]
    )
    np.testing.assert_allclose(net.edge_length_m, ref_len, rtol=1e-9, atol=1e-6)
    _, src = _random_positions(net, 25, seed=11)
    _, dst = _random_positions(net, 1200, seed=12)
    out = nearest_sources(RoutingGraph.from_network(net), src, dst)
    ref_net = RoadNetwork(
        crs=net.crs,
        mode=net.mode,
        node_id=net.node_id,
        node_x=net.node_x,
        node_y=net.node_y,
        edge_u=net.edge_u,
        edge_v=net.edge_v,
        edge_length_m=ref_len,
        edge_oneway=net.edge_oneway,
        edge_highway=net.edge_highway,
        edge_name=net.edge_name,
    )
    # offsets scaled from our lengths to the reference's
    scale = ref_len / np.where(net.edge_length_m > 0, net.edge_length_m, 1.0)
    oracle = nearest_distances(
        ref_net,
        src.edge,
        src.offset_m * scale[src.edge],
        src.access_m,
        dst.edge,
        dst.offset_m * scale[dst.edge],
        dst.access_m,
    )
    fin = np.isfinite(oracle)
    assert fin.sum() > 800
    np.testing.assert_array_equal(np.isfinite(out.distance_m), fin)
    tol = np.maximum(1.0, 0.002 * oracle[fin])
    assert (np.abs(out.distance_m[fin] - oracle[fin]) <= tol).all()
    # the spherical (osmnx) convention differs measurably from the geodesic on these pieces
    from lifecircle.network import haversine_m

    sphere = haversine_m(lon[net.edge_u], lat[net.edge_u], lon[net.edge_v], lat[net.edge_v])
    rel = (sphere - ref_len)[ref_len > 10] / ref_len[ref_len > 10]
    assert np.abs(rel).min() > 1e-3  # at 60 N the sphere is 0.2-0.4 % short
