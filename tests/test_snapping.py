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
