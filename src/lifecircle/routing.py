"""Network distances: arrays in, arrays out.

Points live on edges (``edge``, ``offset_m`` from the edge's ``u`` end, ``access_m`` off-network
leg; ``edge = -1`` means unreachable). Sources (facilities, candidates) become *virtual nodes*
appended to the graph: a source on edge ``(u, v)`` at offset ``o`` with access leg ``a`` gets the
arcs ``S→u`` of weight ``a + o`` and ``S→v`` of weight ``a + len − o``. One multi-source
``scipy.sparse.csgraph.dijkstra`` call (``min_only=True``) then gives every node its distance to
the nearest source and which source that is. Destinations (residents) are read off the node
distances without any further search::

    d(resident) = access + min(offset + d[u], (len − offset) + d[v], same-edge sources)

Direction. All searches run on the *towards* graph: it holds the arc ``a→b`` when a traveller may
go from ``b`` to ``a``. A search from the sources over it therefore yields each node's distance
**to** the nearest source, which is what coverage means (a resident walks or drives to the
facility). For ``walk`` and ``bike`` the graph is symmetric; for ``drive`` one-way edges count in
their legal direction only.

Cut-off. With ``limit_m`` the search stops there; results ``<= limit_m`` are exact, larger ones
are reported as ``inf``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import dijkstra

if TYPE_CHECKING:  # pragma: no cover
    from lifecircle.network import RoadNetwork

logger = logging.getLogger(__name__)

#: Target size of one chunk of a one-to-many search, in matrix cells (8 bytes each).
CHUNK_CELLS: Final = 16_000_000

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Positions:
    """Points on the network: edge index (-1: unreachable), offset from ``u`` and access leg."""

    edge: IntArray
    offset_m: FloatArray
    access_m: FloatArray

    def __post_init__(self) -> None:
        n = len(self.edge)
        if len(self.offset_m) != n or len(self.access_m) != n:
            raise ValueError("edge, offset_m and access_m must have the same length")

    def __len__(self) -> int:
        return len(self.edge)

    def subset(self, index: NDArray[np.integer] | NDArray[np.bool_]) -> Positions:
        """The positions at ``index`` (integer or boolean)."""
        return Positions(self.edge[index], self.offset_m[index], self.access_m[index])


@dataclass(frozen=True)
class RoutingGraph:
    """The *towards* graph of a network as CSR arrays, plus the edge table.

    ``indptr``/``indices``/``weights`` hold, for each node ``a``, the arcs ``a→b`` meaning a
    traveller may go from ``b`` to ``a`` at that cost (see the module docstring). Parallel arcs
    are reduced to the shortest.
    """

    n_nodes: int
    indptr: IntArray
    indices: NDArray[np.int32]
    weights: FloatArray
    edge_u: NDArray[np.int32]
    edge_v: NDArray[np.int32]
    edge_length_m: FloatArray
    edge_twoway: NDArray[np.bool_]

    @classmethod
    def from_network(cls, network: RoadNetwork) -> RoutingGraph:
        """Build (or fetch from the network's cache) the towards graph."""
        cached = network._cache.get("routing_graph")
        if cached is not None:
            return cached
        u = network.edge_u.astype(np.int64)
        v = network.edge_v.astype(np.int64)
        w = network.edge_length_m
        twoway = ~network.edge_oneway if network.directed else np.ones(len(u), dtype=bool)
        # forward u->v always allowed -> towards arc v->u; forward v->u when two-way -> arc u->v
        rows = np.concatenate([v, u[twoway]])
        cols = np.concatenate([u, v[twoway]])
        data = np.concatenate([w, w[twoway]])
        indptr, indices, weights = _csr_min(network.n_nodes, rows, cols, data)
        graph = cls(
            network.n_nodes,
            indptr,
            indices,
            weights,
            network.edge_u,
            network.edge_v,
            network.edge_length_m,
            twoway,
        )
        network._cache["routing_graph"] = graph
        return graph

    def source_arcs(self, src: Positions) -> tuple[IntArray, IntArray, FloatArray]:
        """Arcs from virtual source nodes into the graph: (source index, node, weight)."""
        ok = src.edge >= 0
        i = np.flatnonzero(ok)
        e = src.edge[ok]
        a = src.access_m[ok]
        o = src.offset_m[ok]
        length = self.edge_length_m[e]
        # reach the source from u along u->v (always legal); from v only on two-way edges,
        # or when the source sits exactly on v
        tw = self.edge_twoway[e] | (o >= length)
        s_idx = np.concatenate([i, i[tw]])
        nodes = np.concatenate([self.edge_u[e], self.edge_v[e][tw]]).astype(np.int64)
        wts = np.concatenate([a + o, (a + length - o)[tw]])
        return s_idx, nodes, wts

    def augmented(self, src: Positions) -> sp.csr_matrix:
        """The graph with one virtual node per source appended (node ``n_nodes + i``)."""
        k = len(src)
        s_idx, nodes, wts = self.source_arcs(src)
        order = np.lexsort((nodes, s_idx))
        s_idx, nodes, wts = s_idx[order], nodes[order], wts[order]
        counts = np.bincount(s_idx, minlength=k)
        indptr = np.concatenate([self.indptr, self.indptr[-1] + np.cumsum(counts)])
        indices = np.concatenate([self.indices, nodes.astype(np.int32)])
        data = np.concatenate([self.weights, wts])
        n = self.n_nodes + k
        return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def _csr_min(
    n: int, rows: IntArray, cols: IntArray, data: FloatArray
) -> tuple[IntArray, NDArray[np.int32], FloatArray]:
    """CSR arrays from COO, dropping self-loops and keeping the shortest of parallel arcs."""
    keep = rows != cols
    rows, cols, data = rows[keep], cols[keep], data[keep]
    order = np.lexsort((data, cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, data = rows[first], cols[first], data[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols.astype(np.int32), data.astype(np.float64)


@dataclass(frozen=True)
class NearestResult:
    """Result of :func:`nearest_sources`.

    Attributes
    ----------
    distance_m : ndarray of float64
        Per destination: metres to the nearest source, access legs included; ``inf`` if none
        within the limit (or the destination is off the network).
    source : ndarray of int64
        Per destination: index of that source, -1 if none.
    node_distance_m : ndarray of float64
        Per network node: metres to the nearest source (``inf`` beyond the limit).
    node_source : ndarray of int64
        Per network node: index of the nearest source, -1 if none.
    """

    distance_m: FloatArray
    source: IntArray
    node_distance_m: FloatArray
    node_source: IntArray


def nearest_sources(
    graph: RoutingGraph,
    sources: Positions,
    destinations: Positions,
    *,
    limit_m: float = np.inf,
) -> NearestResult:
    """Distance from every destination to its nearest source, in one multi-source Dijkstra.

    Parameters
    ----------
    graph : RoutingGraph
    sources : Positions
        Facilities; ``edge = -1`` ones are ignored.
    destinations : Positions
        Residents; ``edge = -1`` ones get ``inf``.
    limit_m : float, default inf
        Search cut-off in metres (results beyond it are ``inf``).

    Returns
    -------
    NearestResult
    """
    n = graph.n_nodes
    n_dst = len(destinations)
    usable = np.flatnonzero(sources.edge >= 0)
    if len(usable) == 0:
        inf = np.full(n_dst, np.inf)
        return NearestResult(
            inf, np.full(n_dst, -1, np.int64), np.full(n, np.inf), np.full(n, -1, np.int64)
        )
    src = sources.subset(usable)
    g = graph.augmented(src)
    dist, _pred, origin = dijkstra(
        g,
        directed=True,
        indices=np.arange(n, n + len(src)),
        limit=limit_m,
        min_only=True,
        return_predecessors=True,
    )
    node_d = np.asarray(dist[:n], dtype=float)
    node_src = np.where(origin[:n] >= n, origin[:n] - n, -1).astype(np.int64)
    d, s = nearest_from_nodes(graph, src, node_d, node_src, destinations)
    over = d > limit_m
    d[over] = np.inf
    s[over] = -1
    # map back to the caller's source numbering
    s = np.where(s >= 0, usable[np.maximum(s, 0)], -1)
    node_src = np.where(node_src >= 0, usable[np.maximum(node_src, 0)], -1)
    return NearestResult(d, s, node_d, node_src)


def nearest_from_nodes(
    graph: RoutingGraph,
    sources: Positions,
    node_distance_m: FloatArray,
    node_source: IntArray,
    destinations: Positions,
) -> tuple[FloatArray, IntArray]:
    """Nearest-source distance of destinations from per-node results, without a search.

    The read-off through each destination's edge ends (:func:`read_off`), then the sources on
    the destination's own edge (:func:`same_edge_pairs`), which can be nearer than going round
    through a node. ``node_source`` indexes ``sources``.

    Returns
    -------
    distance_m, source : ndarray
        Per destination (``inf`` / -1 when nothing is reachable).
    """
    d2, s2 = read_off(graph, node_distance_m[None, :], node_source[None, :], destinations)
    d, s = d2[0].copy(), s2[0].copy()
    si, di, cost = same_edge_pairs(graph, sources, destinations)
    if len(si):
        total = cost + destinations.access_m[di]
        order = np.lexsort((total, di))
        di_s, first = np.unique(di[order], return_index=True)
        best = total[order][first]
        better = best < d[di_s]
        d[di_s[better]] = best[better]
        s[di_s[better]] = si[order][first][better]
    return d, s


def read_off(
    graph: RoutingGraph,
    node_d: FloatArray,
    node_src: IntArray | None,
    destinations: Positions,
) -> tuple[FloatArray, IntArray]:
    """Destination distances from node distances (rows: searches), without same-edge sources.

    Parameters
    ----------
    node_d : ndarray, shape (r, N)
        Distances from each node to the sources of search r.
    node_src : ndarray, shape (r, N), optional
        Source index per node, to report which source is nearest.

    Returns
    -------
    distance_m : ndarray, shape (r, n_dst)
    source : ndarray, shape (r, n_dst) (all -1 when ``node_src`` is None)
    """
    e = destinations.edge
    ok = e >= 0
    ee = np.where(ok, e, 0)
    u = graph.edge_u[ee]
    v = graph.edge_v[ee]
    o = destinations.offset_m
    rem = graph.edge_length_m[ee] - o
    via_v = node_d[:, v] + rem
    # leaving towards u is legal on two-way edges, or when the point sits exactly on u
    via_u = np.where(graph.edge_twoway[ee] | (o <= 0), node_d[:, u] + o, np.inf)
    use_u = via_u < via_v
    d = np.where(use_u, via_u, via_v) + destinations.access_m
    d[:, ~ok] = np.inf
    if node_src is None:
        s = np.full(d.shape, -1, dtype=np.int64)
    else:
        s = np.where(use_u, node_src[:, u], node_src[:, v])
        s = np.where(np.isfinite(d), s, -1)
    return d, s


def same_edge_pairs(
    graph: RoutingGraph, sources: Positions, destinations: Positions
) -> tuple[IntArray, IntArray, FloatArray]:
    """Source/destination pairs on one edge and the along-edge metres between them.

    Travel from the destination to the source along the edge is legal towards ``v`` always and
    towards ``u`` only on two-way edges. Access legs are not included (the source's is).
    """
    se = sources.edge
    de = destinations.edge
    s_ok = np.flatnonzero(se >= 0)
    if len(s_ok) == 0 or len(de) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, float)
    s_sorted = s_ok[np.argsort(se[s_ok], kind="stable")]
    s_edges = se[s_sorted]
    lo = np.searchsorted(s_edges, de, side="left")
    hi = np.searchsorted(s_edges, de, side="right")
    cnt = np.where(de >= 0, hi - lo, 0)
    di = np.repeat(np.arange(len(de)), cnt)
    if len(di) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, float)
    starts = np.repeat(lo, cnt)
    within = np.arange(len(di)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    si = s_sorted[starts + within]
    delta = sources.offset_m[si] - destinations.offset_m[di]
    legal = (delta >= 0) | graph.edge_twoway[de[di]]
    si, di, delta = si[legal], di[legal], delta[legal]
    return si.astype(np.int64), di.astype(np.int64), np.abs(delta) + sources.access_m[si]


def chunk_size(n_nodes: int, n_sources: int, *, cells: int = CHUNK_CELLS) -> int:
    """How many sources one chunk of a one-to-many search may hold."""
    return int(max(1, min(n_sources, cells // max(1, n_nodes))))


def node_distance_chunks(
    graph: RoutingGraph,
    sources: Positions,
    *,
    limit_m: float,
    chunk: int | None = None,
) -> Iterator[tuple[IntArray, FloatArray]]:
    """One-to-many searches in chunks: yields ``(source_indices, D)`` with ``D[i, node]``.

    ``D`` has shape ``(len(source_indices), n_nodes)``; memory per chunk is bounded by
    :data:`CHUNK_CELLS` cells unless ``chunk`` says otherwise. Sources with ``edge = -1`` are
    skipped (they are not in any chunk).
    """
    usable = np.flatnonzero(sources.edge >= 0)
    if len(usable) == 0:
        return
    c = chunk or chunk_size(graph.n_nodes, len(usable))
    n = graph.n_nodes
    for start in range(0, len(usable), c):
        idx = usable[start : start + c]
        g = graph.augmented(sources.subset(idx))
        d = dijkstra(g, directed=True, indices=np.arange(n, n + len(idx)), limit=limit_m)
        yield idx, np.asarray(d[:, :n])


def pair_distances_within(
    graph: RoutingGraph,
    sources: Positions,
    destinations: Positions,
    source_xy: FloatArray,
    destination_xy: FloatArray,
    *,
    limit_m: float,
    chunk: int | None = None,
) -> tuple[IntArray, IntArray, FloatArray]:
    """All (source, destination) pairs within ``limit_m`` network metres, with their distance.

    Candidate pairs are first found by straight-line distance (a network distance, access legs
    included, is never shorter than the straight line between the two points), then measured
    exactly from chunked one-to-many searches. Memory stays bounded by the chunk size and the
    number of pairs.

    Parameters
    ----------
    source_xy, destination_xy : ndarray, shape (k, 2) / (n, 2)
        Original point coordinates (metres), used only for the straight-line pre-filter.

    Returns
    -------
    source_index, destination_index, distance_m : ndarray
    """
    from scipy.spatial import cKDTree

    out_s: list[IntArray] = []
    out_d: list[IntArray] = []
    out_m: list[FloatArray] = []
    if len(destinations) == 0 or len(sources) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0)
    dst_ok = np.flatnonzero(destinations.edge >= 0)
    tree = cKDTree(destination_xy[dst_ok])
    # edge lengths are great-circle metres and may exceed projected ones by a hair: pad
    radius = limit_m * 1.001 + 1.0
    for idx, dmat in node_distance_chunks(graph, sources, limit_m=limit_m, chunk=chunk):
        near = tree.query_ball_point(source_xy[idx], r=radius, workers=-1)
        lens = np.fromiter((len(x) for x in near), dtype=np.int64, count=len(near))
        if lens.sum() == 0:
            continue
        row = np.repeat(np.arange(len(idx)), lens)
        dst = dst_ok[
            np.fromiter((j for x in near for j in x), dtype=np.int64, count=int(lens.sum()))
        ]
        e = destinations.edge[dst]
        o = destinations.offset_m[dst]
        rem = graph.edge_length_m[e] - o
        via_v = dmat[row, graph.edge_v[e]] + rem
        via_u = np.where(graph.edge_twoway[e] | (o <= 0), dmat[row, graph.edge_u[e]] + o, np.inf)
        dist = np.minimum(via_u, via_v) + destinations.access_m[dst]
        # same-edge: the destination and this chunk's source share an edge
        src_pos = sources.subset(idx)
        se = src_pos.edge[row]
        same = se == e
        if same.any():
            delta = src_pos.offset_m[row[same]] - o[same]
            legal = (delta >= 0) | graph.edge_twoway[e[same]]
            direct = np.where(legal, np.abs(delta) + src_pos.access_m[row[same]], np.inf)
            direct += destinations.access_m[dst[same]]
            dist[same] = np.minimum(dist[same], direct)
        keep = dist <= limit_m
        out_s.append(idx[row[keep]])
        out_d.append(dst[keep])
        out_m.append(dist[keep])
    if not out_s:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0)
    return np.concatenate(out_s), np.concatenate(out_d), np.concatenate(out_m)


def assigned_source_distances(
    graph: RoutingGraph,
    sources: Positions,
    destinations: Positions,
    source_of: IntArray,
    *,
    chunk: int | None = None,
) -> FloatArray:
    """Distance from every destination to one given source (not the nearest one), exactly.

    Each source reaches its own destinations in one one-to-many search (in chunks of sources,
    :func:`node_distance_chunks`); the destinations are read off the node distances through
    their edge ends, and a source on the destination's own edge is also tried directly. No
    cut-off: the results are exact however far a destination lies.

    Parameters
    ----------
    sources, destinations : Positions
    source_of : ndarray of int64
        Per destination, the index of its source (``-1``: none, gives ``inf``).

    Returns
    -------
    ndarray of float64
        Metres, access legs included; ``inf`` when unreachable, off the network or unassigned.
    """
    out = np.full(len(destinations), np.inf)
    wanted = np.zeros(len(sources), dtype=bool)
    wanted[source_of[source_of >= 0]] = True
    use = Positions(
        np.where(wanted, sources.edge, -1), sources.offset_m, sources.access_m
    )  # only the sources that have destinations are searched
    row_of = np.full(len(sources), -1, dtype=np.int64)
    for idx, dmat in node_distance_chunks(graph, use, limit_m=np.inf, chunk=chunk):
        row_of[:] = -1
        row_of[idx] = np.arange(len(idx))
        dst = np.flatnonzero((source_of >= 0) & (destinations.edge >= 0))
        dst = dst[row_of[source_of[dst]] >= 0]
        if len(dst) == 0:
            continue
        row = row_of[source_of[dst]]
        e = destinations.edge[dst]
        o = destinations.offset_m[dst]
        rem = graph.edge_length_m[e] - o
        via_v = dmat[row, graph.edge_v[e]] + rem
        via_u = np.where(graph.edge_twoway[e] | (o <= 0), dmat[row, graph.edge_u[e]] + o, np.inf)
        dist = np.minimum(via_u, via_v) + destinations.access_m[dst]
        s = source_of[dst]
        same = sources.edge[s] == e
        if same.any():
            delta = sources.offset_m[s[same]] - o[same]
            legal = (delta >= 0) | graph.edge_twoway[e[same]]
            direct = np.where(legal, np.abs(delta) + sources.access_m[s[same]], np.inf)
            dist[same] = np.minimum(dist[same], direct + destinations.access_m[dst[same]])
        out[dst] = dist
    return out
