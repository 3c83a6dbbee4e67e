"""Network distances: arrays in, arrays out.

Points live on edges (``edge``, ``offset_m`` from the edge's ``u`` end, ``access_m`` off-network
leg; ``edge = -1`` means unreachable). Searches run on the *junction graph*
(:class:`lifecircle.network.Junctions`): every chain of degree-2 vertices is one routing edge, so
a curved street drawn with many vertices costs one arc, not one per piece. A point on a raw edge
is moved onto its chain exactly (offset along the whole chain). Sources (facilities, candidates)
become *virtual nodes* appended to the junction graph: a source on chain ``(A, B)`` at offset
``o`` with access leg ``a`` gets the arcs ``S→A`` of weight ``a + o`` and ``S→B`` of weight
``a + len − o``. One multi-source ``scipy.sparse.csgraph.dijkstra`` call (``min_only=True``)
then gives every junction its distance to the nearest source and which source that is.
Destinations (residents) are read off the junction distances without any further search::

    d(resident) = access + min(offset + d[A], (len − offset) + d[B], same-chain sources)

Distances of the raw vertices (needed by service areas) are read off the same way, on demand.

Direction. All searches run on the *towards* graph: it holds the arc ``a→b`` when a traveller may
go from ``b`` to ``a``. A search from the sources over it therefore yields each node's distance
**to** the nearest source, which is what coverage means (a resident walks or drives to the
facility). For ``walk`` and ``bike`` the graph is symmetric; for ``drive`` one-way edges count in
their legal direction only (one-way chains are never merged with two-way ones).

Cut-off. With ``limit_m`` the search stops there; results ``<= limit_m`` are exact, larger ones
are reported as ``inf``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import dijkstra

from lifecircle._threads import thread_budget

if TYPE_CHECKING:  # pragma: no cover
    from lifecircle.network import Junctions, RoadNetwork

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
    # the edge ends etc. of the points on one edge table, kept for repeated read-offs
    _memo: dict[str, object] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        n = len(self.edge)
        if len(self.offset_m) != n or len(self.access_m) != n:
            raise ValueError("edge, offset_m and access_m must have the same length")

    def __len__(self) -> int:
        return len(self.edge)

    def subset(self, index: NDArray[np.integer] | NDArray[np.bool_]) -> Positions:
        """The positions at ``index`` (integer or boolean), of the same kind."""
        return type(self)(self.edge[index], self.offset_m[index], self.access_m[index])


@dataclass(frozen=True)
class ChainPositions(Positions):
    """Positions moved onto the chains of a junction graph (:meth:`RoutingGraph.to_core`):
    ``edge`` is a chain index and ``offset_m`` runs along the whole chain."""


class _Table(NamedTuple):
    """An edge table: end nodes, length and two-way flag per edge."""

    u: NDArray[np.integer]
    v: NDArray[np.integer]
    length_m: FloatArray
    twoway: NDArray[np.bool_]


@dataclass(frozen=True)
class RoutingGraph:
    """The *towards* junction graph of a network as CSR arrays, plus both edge tables.

    ``indptr``/``indices``/``weights`` hold, for each junction ``a``, the arcs ``a→b`` meaning a
    traveller may go from ``b`` to ``a`` at that cost (see the module docstring); node indices
    are junction indices (``junctions.junction_node`` maps them to raw vertices). Parallel arcs
    are reduced to the shortest. ``edge_*`` describe the raw (straight) edges that positions
    refer to; ``n_nodes`` counts raw vertices.
    """

    n_nodes: int
    indptr: IntArray
    indices: NDArray[np.int32]
    weights: FloatArray
    edge_u: NDArray[np.int32]
    edge_v: NDArray[np.int32]
    edge_length_m: FloatArray
    edge_twoway: NDArray[np.bool_]
    junctions: Junctions

    @classmethod
    def from_network(cls, network: RoadNetwork) -> RoutingGraph:
        """Build (or fetch from the network's cache) the towards graph."""
        cached = network._cache.get("routing_graph")
        if cached is not None:
            return cached
        jn = network.junctions()  # carries the towards CSR (built once, kept in the cache)
        indptr, indices, weights = jn.csr_indptr, jn.csr_indices, jn.csr_weights
        raw_twoway = (
            ~network.edge_oneway if network.directed else np.ones(network.n_edges, dtype=bool)
        )
        graph = cls(
            network.n_nodes,
            indptr,
            indices,
            weights,
            network.edge_u,
            network.edge_v,
            network.edge_length_m,
            raw_twoway,
            jn,
        )
        network._cache["routing_graph"] = graph
        return graph

    @property
    def n_junctions(self) -> int:
        """Nodes of the junction graph the searches run on."""
        return self.junctions.n_junctions

    @property
    def raw(self) -> _Table:
        """The raw edge table (what positions refer to)."""
        return _Table(self.edge_u, self.edge_v, self.edge_length_m, self.edge_twoway)

    @cached_property
    def core(self) -> _Table:
        """The chain table of the junction graph."""
        jn = self.junctions
        return _Table(jn.chain_u, jn.chain_v, jn.chain_length_m, ~jn.chain_oneway)

    def to_core(self, pos: Positions) -> ChainPositions:
        """Positions on raw edges → the same points on chains (edge = chain index).

        :class:`ChainPositions` are returned as they are, so callers that route many times
        from or to the same points convert them once.
        """
        if isinstance(pos, ChainPositions):
            return pos
        jn = self.junctions
        e = pos.edge
        ok = e >= 0
        ee = np.where(ok, e, 0)
        o = pos.offset_m
        length = self.edge_length_m[ee]
        c = jn.edge_chain[ee].astype(np.int64)
        off = np.where(jn.edge_flip[ee], length - o, o)
        off += jn.edge_start_m[ee]
        total = jn.chain_length_m[c]
        np.clip(off, 0.0, total, out=off)
        # a point on a vertex takes the vertex's own chain offset (a junction: exactly the
        # chain's start or end), so points on one vertex never drift apart by rounding
        i = np.flatnonzero((o <= 0) | (o >= length))
        if len(i):
            at = np.where(o[i] <= 0, self.edge_u[ee[i]], self.edge_v[ee[i]])
            j = jn.node_junction[at]
            off[i] = np.where(
                j >= 0, np.where(2.0 * off[i] < total[i], 0.0, total[i]), jn.node_offset_m[at]
            )
        if not ok.all():
            c[~ok] = -1
        return ChainPositions(c, off, pos.access_m)

    @cached_property
    def interior(self) -> tuple[IntArray, Positions]:
        """Raw vertices inside chains and their positions on the chains."""
        jn = self.junctions
        nodes = np.flatnonzero(jn.node_chain >= 0)
        return nodes, ChainPositions(
            jn.node_chain[nodes].astype(np.int64), jn.node_offset_m[nodes], np.zeros(len(nodes))
        )

    def source_arcs(self, src: Positions) -> tuple[IntArray, IntArray, FloatArray]:
        """Arcs from virtual source nodes into the junction graph: (source index, junction,
        weight); ``src`` is on chains (:meth:`to_core`)."""
        core = self.core
        ok = src.edge >= 0
        i = np.flatnonzero(ok)
        e = src.edge[ok]
        a = src.access_m[ok]
        o = src.offset_m[ok]
        length = core.length_m[e]
        # reach the source from u along u->v (always legal); from v only on two-way chains,
        # or when the source sits exactly on v
        tw = core.twoway[e] | (o >= length)
        s_idx = np.concatenate([i, i[tw]])
        nodes = np.concatenate([core.u[e], core.v[e][tw]]).astype(np.int64)
        wts = np.concatenate([a + o, (a + length - o)[tw]])
        return s_idx, nodes, wts

    def augmented(self, src: Positions) -> sp.csr_matrix:
        """The junction graph with one virtual node per source appended (node
        ``n_junctions + i``)."""
        src = self.to_core(src)
        k = len(src)
        s_idx, nodes, wts = self.source_arcs(src)
        order = np.lexsort((nodes, s_idx))
        s_idx, nodes, wts = s_idx[order], nodes[order], wts[order]
        counts = np.bincount(s_idx, minlength=k)
        indptr = np.concatenate([self.indptr, self.indptr[-1] + np.cumsum(counts)])
        indices = np.concatenate([self.indices, nodes.astype(np.int32)])
        data = np.concatenate([self.weights, wts])
        n = self.n_junctions + k
        return sp.csr_matrix((data, indices, indptr), shape=(n, n))

    def expand(
        self,
        junction_d: FloatArray,
        src: Positions | None = None,
        junction_src: IntArray | None = None,
        *,
        per_row: bool = False,
        limit_m: float = np.inf,
    ) -> tuple[FloatArray, IntArray | None]:
        """Raw-vertex distances from junction distances (exact, no search).

        Parameters
        ----------
        junction_d : ndarray, shape (r, J)
        src : Positions, optional
            The sources on chains; their same-chain distances to interior vertices count.
        junction_src : ndarray, shape (r, J), optional
            Nearest source per junction (multi-source searches), expanded alongside.
        per_row : bool
            Row ``i`` is the search of ``src[i]`` alone (one-to-many chunks); else every row
            saw all of ``src`` (nearest-source searches).

        Returns
        -------
        node_d : ndarray, shape (r, N)
        node_src : ndarray, shape (r, N), or None without ``junction_src``
        """
        jn = self.junctions
        r = junction_d.shape[0]
        nodes, ipos = self.interior
        out = np.empty((r, self.n_nodes))
        out[:, jn.junction_node] = junction_d
        d, s = _read_off(self.core, junction_d, junction_src, ipos)
        if src is not None and len(src):
            si, di, cost = _same_edge_pairs(self.core, src, ipos)
            if per_row:
                np.minimum.at(d, (si, di), cost)
            elif len(si):
                order = np.lexsort((cost, di))
                di_s, first = np.unique(di[order], return_index=True)
                best = cost[order][first]
                better = best < d[0, di_s]
                d[:, di_s[better]] = best[better]
                s[:, di_s[better]] = si[order][first][better]
        out[:, nodes] = d
        out[out > limit_m] = np.inf
        if junction_src is None:
            return out, None
        node_s = np.empty((r, self.n_nodes), dtype=np.int64)
        node_s[:, jn.junction_node] = junction_src
        node_s[:, nodes] = s
        node_s[~np.isfinite(out)] = -1
        return out, node_s


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
        Per raw network vertex: metres to the nearest source (``inf`` beyond the limit);
        read off the junction distances on first access.
    node_source : ndarray of int64
        Per raw network vertex: index of the nearest source, -1 if none.
    """

    def __init__(
        self,
        distance_m: FloatArray,
        source: IntArray,
        node_distance_m: FloatArray | None = None,
        node_source: IntArray | None = None,
        *,
        expand: Callable[[], tuple[FloatArray, IntArray]] | None = None,
    ) -> None:
        self.distance_m = distance_m
        self.source = source
        self._node = None if node_distance_m is None else (node_distance_m, node_source)
        self._expand = expand

    def _nodes(self) -> tuple[FloatArray, IntArray]:
        if self._node is None:
            assert self._expand is not None
            self._node = self._expand()
        return self._node  # type: ignore[return-value]

    @property
    def node_distance_m(self) -> FloatArray:
        """Per raw vertex: metres to the nearest source."""
        return self._nodes()[0]

    @property
    def node_source(self) -> IntArray:
        """Per raw vertex: index of the nearest source, -1 if none."""
        return self._nodes()[1]


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
    src = graph.to_core(sources.subset(usable))
    nj = graph.n_junctions
    g = graph.augmented(src)
    dist, _pred, origin = dijkstra(
        g,
        directed=True,
        indices=np.arange(nj, nj + len(src)),
        limit=limit_m,
        min_only=True,
        return_predecessors=True,
    )
    jd = np.asarray(dist[:nj], dtype=float)
    js = np.where(origin[:nj] >= nj, origin[:nj] - nj, -1).astype(np.int64)
    d, s = _nearest_from_nodes(graph.core, src, jd, js, graph.to_core(destinations))
    if np.isfinite(limit_m):
        over = d > limit_m
        d[over] = np.inf
        s[over] = -1
    # map back to the caller's source numbering
    if len(usable) < len(sources):
        s = np.where(s >= 0, usable[np.maximum(s, 0)], -1)

    def expand() -> tuple[FloatArray, IntArray]:
        nd, ns = graph.expand(jd[None, :], src, js[None, :], limit_m=limit_m)
        assert ns is not None
        return nd[0], np.where(ns[0] >= 0, usable[np.maximum(ns[0], 0)], -1)

    return NearestResult(d, s, expand=expand)


def nearest_from_nodes(
    graph: RoutingGraph,
    sources: Positions,
    node_distance_m: FloatArray,
    node_source: IntArray,
    destinations: Positions,
) -> tuple[FloatArray, IntArray]:
    """Nearest-source distance of destinations from per-raw-vertex results, without a search.

    The read-off through each destination's edge ends (:func:`read_off`), then the sources on
    the destination's own edge (:func:`same_edge_pairs`), which can be nearer than going round
    through a node. ``node_source`` indexes ``sources``; positions are on raw edges.

    Returns
    -------
    distance_m, source : ndarray
        Per destination (``inf`` / -1 when nothing is reachable).
    """
    return _nearest_from_nodes(graph.raw, sources, node_distance_m, node_source, destinations)


def _nearest_from_nodes(
    tab: _Table,
    sources: Positions,
    node_d: FloatArray,
    node_src: IntArray,
    destinations: Positions,
) -> tuple[FloatArray, IntArray]:
    from lifecircle._readoff import destination_ends, read_off_one  # Numba: only when routing

    memo = destinations._memo
    cached = memo.get("compiled_ends")  # per table, kept for the next tiers of the run
    if cached is None or cached[0] is not tab:  # type: ignore[index]
        ends = destination_ends(
            destinations.edge, destinations.offset_m, tab.u, tab.v, tab.length_m, tab.twoway
        )
        memo["compiled_ends"] = (tab, ends)
    else:
        ends = cached[1]  # type: ignore[index]
    n = len(destinations)
    d = np.empty(n)
    s = np.empty(n, dtype=np.int64)
    read_off_one(
        *ends,
        destinations.access_m,
        np.ascontiguousarray(node_d, dtype=float),
        np.ascontiguousarray(node_src, dtype=np.int64),
        d,
        s,
    )
    si, di, cost = _same_edge_pairs(tab, sources, destinations)
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
    """Destination distances from raw-vertex distances (rows: searches), without same-edge
    sources.

    Parameters
    ----------
    node_d : ndarray, shape (r, N)
        Distances from each raw vertex to the sources of search r.
    node_src : ndarray, shape (r, N), optional
        Source index per vertex, to report which source is nearest.

    Returns
    -------
    distance_m : ndarray, shape (r, n_dst)
    source : ndarray, shape (r, n_dst) (all -1 when ``node_src`` is None)
    """
    return _read_off(graph.raw, node_d, node_src, destinations)


def _ends(
    tab: _Table, destinations: Positions
) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatArray, NDArray[np.intp], NDArray[np.intp]]:
    """Per destination on ``tab``: edge ends ``u`` and ``v``, metres to ``v``, and the
    destinations that may not leave towards ``u`` and those off the network (both as indices).

    Kept on the positions (per table), so the tiers of one run gather them once."""
    memo = destinations._memo
    cached = memo.get("ends")  # (table, ends): one read, safe when threads share positions
    if cached is not None and cached[0] is tab:  # type: ignore[index]
        return cached[1]  # type: ignore[index]
    e = destinations.edge
    ok = e >= 0
    ee = np.where(ok, e, 0)
    o = destinations.offset_m
    u = tab.u[ee].astype(np.intp, copy=False)
    v = tab.v[ee].astype(np.intp, copy=False)
    to_v = tab.length_m[ee] - o
    # leaving towards u is legal on two-way edges, or when the point sits exactly on u
    no_u = np.flatnonzero(~(tab.twoway[ee] | (o <= 0)))
    ends = (u, v, to_v, no_u, np.flatnonzero(~ok))
    memo["ends"] = (tab, ends)
    return ends


def _read_off(
    tab: _Table,
    node_d: FloatArray,
    node_src: IntArray | None,
    destinations: Positions,
) -> tuple[FloatArray, IntArray]:
    u, v, to_v, no_u, off = _ends(tab, destinations)
    via_v = node_d[:, v]
    via_v += to_v
    via_u = node_d[:, u]
    via_u += destinations.offset_m
    via_u[:, no_u] = np.inf
    use_u = via_u < via_v
    d = np.minimum(via_u, via_v, out=via_v)
    d += destinations.access_m
    d[:, off] = np.inf
    if node_src is None:
        s = np.full(d.shape, -1, dtype=np.int64)
    else:
        s = (
            node_src[:, np.where(use_u[0], u, v)]
            if len(d) == 1
            else np.where(use_u, node_src[:, u], node_src[:, v])
        )
        s[~np.isfinite(d)] = -1
    return d, s


def same_edge_pairs(
    graph: RoutingGraph, sources: Positions, destinations: Positions
) -> tuple[IntArray, IntArray, FloatArray]:
    """Source/destination pairs on one raw edge and the along-edge metres between them.

    Travel from the destination to the source along the edge is legal towards ``v`` always and
    towards ``u`` only on two-way edges. Access legs are not included (the source's is).
    """
    return _same_edge_pairs(graph.raw, sources, destinations)


def _same_edge_pairs(
    tab: _Table, sources: Positions, destinations: Positions
) -> tuple[IntArray, IntArray, FloatArray]:
    se = sources.edge
    de = destinations.edge
    s_ok = np.flatnonzero(se >= 0)
    if len(s_ok) == 0 or len(de) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, float)
    s_sorted = s_ok[np.argsort(se[s_ok], kind="stable")]
    s_edges = se[s_sorted]
    # only destinations on an edge that holds a source (a cheap mask before the searches)
    holds = np.zeros(max(int(s_edges[-1]), int(de.max(initial=-1))) + 2, dtype=bool)
    holds[s_edges] = True
    cand = np.flatnonzero(holds[de])  # de = -1 reads the last (always False) slot
    if len(cand) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, float)
    lo = np.searchsorted(s_edges, de[cand], side="left")
    hi = np.searchsorted(s_edges, de[cand], side="right")
    cnt = hi - lo
    di = np.repeat(cand, cnt)
    starts = np.repeat(lo, cnt)
    within = np.arange(len(di)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    si = s_sorted[starts + within]
    delta = sources.offset_m[si] - destinations.offset_m[di]
    legal = (delta >= 0) | tab.twoway[de[di]]
    si, di, delta = si[legal], di[legal], delta[legal]
    return si.astype(np.int64), di.astype(np.int64), np.abs(delta) + sources.access_m[si]


def chunk_size(n_nodes: int, n_sources: int, *, cells: int = CHUNK_CELLS) -> int:
    """How many sources one chunk of a one-to-many search may hold."""
    return int(max(1, min(n_sources, cells // max(1, n_nodes))))


def _junction_chunks(
    graph: RoutingGraph,
    sources: Positions,
    *,
    limit_m: float,
    chunk: int | None,
    n_cols: int,
) -> Iterator[tuple[IntArray, Positions, FloatArray]]:
    """One-to-many searches on the junction graph: ``(source_indices, their chain positions,
    D[i, junction])``."""
    usable = np.flatnonzero(sources.edge >= 0)
    if len(usable) == 0:
        return
    c = chunk or chunk_size(n_cols, len(usable))
    nj = graph.n_junctions
    core_all = graph.to_core(sources.subset(usable))
    for start in range(0, len(usable), c):
        idx = usable[start : start + c]
        src = core_all.subset(np.arange(start, start + len(idx)))
        g = graph.augmented(src)
        d = dijkstra(g, directed=True, indices=np.arange(nj, nj + len(idx)), limit=limit_m)
        yield idx, src, np.asarray(d[:, :nj])


def node_distance_chunks(
    graph: RoutingGraph,
    sources: Positions,
    *,
    limit_m: float,
    chunk: int | None = None,
) -> Iterator[tuple[IntArray, FloatArray]]:
    """One-to-many searches in chunks: yields ``(source_indices, D)`` with ``D[i, node]``.

    ``D`` has shape ``(len(source_indices), n_nodes)`` over the raw vertices (read off the
    junction distances); memory per chunk is bounded by :data:`CHUNK_CELLS` cells unless
    ``chunk`` says otherwise. Sources with ``edge = -1`` are skipped (they are not in any chunk).
    """
    for idx, src, dj in _junction_chunks(
        graph, sources, limit_m=limit_m, chunk=chunk, n_cols=graph.n_nodes
    ):
        d, _ = graph.expand(dj, src, per_row=True, limit_m=limit_m)
        yield idx, d


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
    exactly from chunked one-to-many searches on the junction graph. Memory stays bounded by the
    chunk size and the number of pairs.

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
    core = graph.core
    dpos = graph.to_core(destinations)
    # edge lengths may exceed straight lines by a hair (ellipsoidal metres): pad
    radius = limit_m * 1.001 + 1.0
    for idx, src_pos, dmat in _junction_chunks(
        graph, sources, limit_m=limit_m, chunk=chunk, n_cols=graph.n_junctions
    ):
        near = tree.query_ball_point(source_xy[idx], r=radius, workers=thread_budget())
        lens = np.fromiter((len(x) for x in near), dtype=np.int64, count=len(near))
        if lens.sum() == 0:
            continue
        row = np.repeat(np.arange(len(idx)), lens)
        dst = dst_ok[
            np.fromiter((j for x in near for j in x), dtype=np.int64, count=int(lens.sum()))
        ]
        e = dpos.edge[dst]
        o = dpos.offset_m[dst]
        rem = core.length_m[e] - o
        via_v = dmat[row, core.v[e]] + rem
        via_u = np.where(core.twoway[e] | (o <= 0), dmat[row, core.u[e]] + o, np.inf)
        dist = np.minimum(via_u, via_v) + dpos.access_m[dst]
        # same chain: the destination and this chunk's source share a chain
        se = src_pos.edge[row]
        same = se == e
        if same.any():
            delta = src_pos.offset_m[row[same]] - o[same]
            legal = (delta >= 0) | core.twoway[e[same]]
            direct = np.where(legal, np.abs(delta) + src_pos.access_m[row[same]], np.inf)
            direct += dpos.access_m[dst[same]]
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
