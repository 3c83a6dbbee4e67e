"""Snapping onto edges: hand-checked cases and brute force (shapely) on real OSM data."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from conftest import GRID_ORIGIN
from lifecircle.snapping import outside_network_area, snap_to_network

X0, Y0 = GRID_ORIGIN


def test_point_projects_onto_the_nearest_edge_not_node(grid_network):
    # 30 m north of the midpoint of the bottom-left edge (node 0 -> node 1)
    s = snap_to_network(grid_network, [X0 + 50.0], [Y0 + 30.0])
    e = s.edge[0]
    assert {int(grid_network.edge_u[e]), int(grid_network.edge_v[e])} in (
        {0, 1},
        {0, 6},
        {6, 7},
        {1, 7},
    )
    assert s.access_m[0] == pytest.approx(30.0)
    assert s.x[0] == pytest.approx(X0 + 50.0) and s.y[0] == pytest.approx(Y0)
    assert s.offset_m[0] == pytest.approx(50.0)
    assert s.on_network[0]


def test_max_snap_flags_but_keeps(grid_network):
    s = snap_to_network(grid_network, [X0 - 400.0, X0 + 10], [Y0, Y0 + 1], max_snap_m=300.0)
    assert len(s) == 2
    assert s.access_m[0] == pytest.approx(400.0)
    assert list(s.on_network) == [False, True]
    assert list(s.routable_edge() >= 0) == [False, True]


def test_empty_and_bad_input(grid_network):
    assert len(snap_to_network(grid_network, [], [])) == 0
    with pytest.raises(ValueError, match="NaN"):
        snap_to_network(grid_network, [np.nan], [Y0])
    with pytest.raises(ValueError, match="max_snap_m"):
        snap_to_network(grid_network, [X0], [Y0], max_snap_m=-1)


@pytest.mark.parametrize(("k", "n"), [(1, 6000), (8, 6000), (6, 25_000), (6, 50_000)])
def test_exact_against_brute_force_on_real_osm(helsinki_walk, k, n):
    # 25,000 points take the batch path (Z-order traversal), 50,000 the threaded blocks
    net = helsinki_walk
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = net.bounds
    x = rng.uniform(minx - 500, maxx + 500, n)
    y = rng.uniform(miny - 500, maxy + 500, n)
    s = snap_to_network(net, x, y, max_snap_m=1e9, k=k)
    tree = shapely.STRtree(net.edge_geometries())
    _, dist = tree.query_nearest(shapely.points(x, y), return_distance=True, all_matches=False)
    np.testing.assert_allclose(s.access_m, dist, atol=1e-6)
    # the snapped point lies on its edge, at the reported offset
    geoms = net.edge_geometries()[s.edge]
    assert shapely.distance(shapely.points(s.x, s.y), geoms).max() < 1e-6
    frac = shapely.line_locate_point(geoms, shapely.points(s.x, s.y), normalized=True)
    np.testing.assert_allclose(s.offset_m, frac * net.edge_length_m[s.edge], atol=1e-6)


def test_outside_network_area(grid_network):
    out = outside_network_area(
        grid_network, [X0 + 250, X0 - 200, X0 - 400], [Y0 + 250, Y0, Y0], margin_m=300.0
    )
    assert list(out) == [False, False, True]


@pytest.mark.parametrize("cell_m", [5.0, 40.0, 400.0])
def test_grid_search_equals_the_tree_search(helsinki_walk, cell_m):
    """The compiled grid search proves every point within the limit, with the KD-tree's
    distances (a different piece only where two are equally near)."""
    from lifecircle._piece_grid import PieceGrid
    from lifecircle.snapping import SnapIndex

    net = helsinki_walk
    idx = SnapIndex.build(net)
    grid = PieceGrid.build(idx.ax, idx.ay, idx.dx, idx.dy, cell_m=cell_m)
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = net.bounds
    x = rng.uniform(minx - 800, maxx + 800, 20_000)
    y = rng.uniform(miny - 800, maxy + 800, 20_000)
    # and points exactly on junctions (ties between the edges that meet there)
    x = np.r_[x, net.node_x[:500]]
    y = np.r_[y, net.node_y[:500]]
    piece, d, frac = grid.nearest(x, y, 300.0)
    tp, td, tfrac = idx._nearest_by_tree(np.column_stack([x, y]), 6, 1, 300.0)
    proven = piece >= 0
    assert proven[td <= 300.0].all()
    assert not proven.all()  # some points are beyond the limit: left to the tree
    # the tree proves points within the limit only; beyond it the grid can only be nearer
    near = td <= 300.0
    np.testing.assert_allclose(d[near], td[near], atol=1e-9)
    assert (d[proven] <= td[proven] + 1e-9).all()
    same = near & (piece == tp)
    np.testing.assert_allclose(frac[same], tfrac[same], atol=1e-12)
    # different pieces only at (near-)ties: equally near
    other = near & (piece != tp)
    np.testing.assert_allclose(d[other], td[other], atol=1e-9)
    on_node = proven[-500:]
    assert on_node.all() and d[-500:].max() < 1e-9


def test_far_points_still_get_an_edge(grid_network):
    """A point far beyond the grid search (30 km away) is snapped by the tree fallback."""
    s = snap_to_network(grid_network, [X0 + 30_000.0, X0 + 10.0], [Y0, Y0 + 3.0])
    assert s.on_network.tolist() == [False, True]
    assert s.access_m[0] > 29_000 and 0 <= s.edge[0] < grid_network.n_edges
    np.testing.assert_allclose(s.access_m[1], 3.0)
