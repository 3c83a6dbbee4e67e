"""An independent networkx oracle for network distances between points on edges.

Every edge is split at the points that lie on it; a networkx Dijkstra over the split graph
then gives the exact distance from each destination to its nearest source (access legs added
at both ends). Only used by tests.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np

from lifecircle.network import RoadNetwork


def split_graph(net: RoadNetwork, points: dict[object, tuple[int, float]]) -> nx.DiGraph:
    """Directed graph of the network with each point inserted on its edge at its offset.

    ``points`` maps a label to ``(edge, offset_m)``. One-way edges (drive) get arcs u->v only;
    zero-length pieces get arcs both ways (points at the same place are the same place).
    """
    on_edge: dict[int, list[tuple[float, object]]] = {}
    for label, (e, o) in points.items():
        if e >= 0:
            on_edge.setdefault(int(e), []).append((float(o), label))
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))
    for e in range(net.n_edges):
        u, v, length = int(net.edge_u[e]), int(net.edge_v[e]), float(net.edge_length_m[e])
        one_way = net.directed and bool(net.edge_oneway[e])
        # offsets rescaled by a caller may pass the edge's end by a rounding error: clamp
        on = sorted((min(max(o, 0.0), length), lab) for o, lab in on_edge.get(e, []))
        chain = [(0.0, u), *on, (length, v)]
        for (o1, a), (o2, b) in itertools.pairwise(chain):
            w = o2 - o1
            arcs = [(a, b)] if (one_way and w > 0) else [(a, b), (b, a)]
            for x, y in arcs:
                if x == y:
                    continue
                if not g.has_edge(x, y) or g[x][y]["w"] > w:
                    g.add_edge(x, y, w=w)
    return g


def nearest_distances(
    net: RoadNetwork,
    src_edge: np.ndarray,
    src_offset: np.ndarray,
    src_access: np.ndarray,
    dst_edge: np.ndarray,
    dst_offset: np.ndarray,
    dst_access: np.ndarray,
) -> np.ndarray:
    """Distance from each destination to its nearest source (inf if unreachable)."""
    pts: dict[object, tuple[int, float]] = {}
    for i, (e, o) in enumerate(zip(src_edge, src_offset, strict=True)):
        pts[("s", i)] = (int(e), float(o))
    for j, (e, o) in enumerate(zip(dst_edge, dst_offset, strict=True)):
        pts[("d", j)] = (int(e), float(o))
    g = split_graph(net, pts).reverse(copy=True)
    for i in range(len(src_edge)):
        if src_edge[i] >= 0:
            g.add_edge("SRC", ("s", i), w=float(src_access[i]))
    if "SRC" not in g:
        return np.full(len(dst_edge), np.inf)
    dist = nx.single_source_dijkstra_path_length(g, "SRC", weight="w")
    return np.array(
        [
            dist.get(("d", j), np.inf) + dst_access[j] if dst_edge[j] >= 0 else np.inf
            for j in range(len(dst_edge))
        ]
    )
