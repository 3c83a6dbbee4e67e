"""Service-area polygons (road-network isochrones) by trimmed network buffers.

Method
------
A facility's service area for a budget ``B`` metres is the street frontage from which the
facility can be reached within ``B``, widened by a buffer:

1. **Distances.** The same snapping and routing as :mod:`lifecircle.coverage`: the facility sits
   on its snapped edge, its access leg counts, and one-to-many searches on the *towards* graph
   give every node's network distance **to** the facility (one-way streets in their legal
   direction only). Searches run in chunks of facilities (:func:`lifecircle.routing.
   node_distance_chunks`), so memory stays bounded; the dense facilities x nodes matrix is never
   built.
2. **Trimmed edges.** Every edge is one straight segment. On an edge of length ``L`` whose ends
   are ``du`` and ``dv`` metres from the facility, the point at offset ``t`` is
   ``min(du + t, dv + L - t)`` metres away (the first term only where the edge may be walked
   towards ``u``). The reachable part for budget ``B`` is therefore a prefix ``[0, B - du]`` and a
   suffix ``[L - (B - dv), L]`` -- possibly the whole edge -- cut exactly at the remaining budget
   (partly reached edges are kept, not dropped). The facility's own edge is split at the
   facility's position, which is ``access`` metres from it, and its access leg (the straight line
   from the facility to the street) is part of the area when within budget, so there is never a
   hole at the origin.
3. **Buffer.** Every reached piece of one facility and budget is buffered by ``buffer_m``
   (default :data:`DEFAULT_BUFFER_M` = 50 m, round caps, :data:`QUAD_SEGS` segments per quarter
   circle) and the buffers are unioned (in spatial tiles on threads). Blocks enclosed by reached
   streets that are wider than twice the buffer stay holes; no convex or concave hull is ever
   taken, so every point of a polygon lies within ``buffer_m`` of a reachable street. Tier unions
   of many pieces take a shortcut with the same result: blocks that the buffers of their own
   reached ring fill completely are added whole, and streets deep inside such blocks need no
   buffer (:func:`_face_fill`).
4. **Simplification** (optional, ``simplify_m``): Douglas-Peucker with topology preserved, which
   moves no boundary by more than the tolerance, so it cannot add land farther than
   ``buffer_m + simplify_m`` from a reachable street.

Dissolve modes
--------------
``none``
    One polygon per facility and budget; polygons of neighbouring facilities overlap.
``tier``
    One polygon per tier and budget: the land within the budget of at least one facility serving
    the tier. It equals the union of the facilities' polygons but is built from one multi-source
    search (:func:`lifecircle.routing.nearest_sources`): the node distances to the *nearest*
    facility are trimmed the same way, with every edge that holds facilities split at them.
``catchment``
    The tier polygon split among the facilities: every reached street piece is assigned to its
    nearest facility by network distance (an edge whose ends have different nearest facilities
    is split where the two distances meet, ``du + t = dv + L - t``), and the land of the tier
    polygon is given to the facility whose street pieces are nearest (a Voronoi partition of
    points sampled every ``buffer_m / 4`` along the pieces). Catchments never overlap and their
    union is the tier polygon.

``rings=True`` turns nested polygons into bands (0-5, 5-10, 10-15 minutes): each band is the
budget's polygon minus the previous budget's polygon (for catchments: minus the previous tier
polygon).

Population
----------
When residents are given, ``population`` counts the people whose network distance (their own
access leg included, exactly as in coverage) is within the budget: to the facility (``none``),
to the nearest facility of the tier (``tier``), or to the facility when it is their nearest one
(``catchment``: the population served). It is computed from distances, not by point-in-polygon:
the polygon shows reachable street frontage plus the buffer and does not include the residents'
own access legs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import shapely
import shapely.errors
from numpy.typing import NDArray

from lifecircle._threads import thread_budget
from lifecircle.config import ServiceStandard, Tier
from lifecircle.coverage import Located, common_crs, locate
from lifecircle.errors import InputError
from lifecircle.routing import (
    Positions,
    RoutingGraph,
    nearest_sources,
    node_distance_chunks,
    pair_distances_within,
    read_off,
    same_edge_pairs,
)
from lifecircle.snapping import DEFAULT_MAX_SNAP_M

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd

    from lifecircle.network import RoadNetwork

logger = logging.getLogger(__name__)

#: Default buffer width around reachable streets, in metres (half a typical urban block depth).
DEFAULT_BUFFER_M: Final = 50.0
#: Segments per quarter circle in round caps and joins. The vertices lie on the true circle, so a
#: buffer never reaches beyond ``buffer_m`` and falls short of it by at most
#: ``buffer_m * (1 - cos(pi / (4 * QUAD_SEGS)))`` (3.8 m at 50 m).
QUAD_SEGS: Final = 2
DISSOLVE_MODES: Final = ("none", "tier", "catchment")
#: Most threads for buffering and unioning (GEOS releases the GIL; more did not pay off).
MAX_WORKERS: Final = 4
#: Pieces per spatial tile when one polygon is built from very many pieces.
TILE_PIECES: Final = 4000
#: Tier unions from at least this many pieces fill enclosed blocks instead of buffering the
#: streets inside them (see :func:`_face_fill`).
FACE_FILL_PIECES: Final = 2000
#: Faces with longer rings are never filled (they are rarely narrow enough to fill).
MAX_FACE_RING: Final = 64

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# trimmed segments
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Segments:
    """Straight sub-segments with distances at both ends (all arrays of one length).

    A point at offset ``t`` (metres from the left end) is ``dl + t`` metres from the source via
    the left end (only where ``twoway``) and ``dr + length - t`` via the right end.
    """

    x0: FloatArray
    y0: FloatArray
    x1: FloatArray
    y1: FloatArray
    length_m: FloatArray
    dl: FloatArray
    dr: FloatArray
    twoway: NDArray[np.bool_]
    lab_l: IntArray
    lab_r: IntArray
    group: IntArray
    edge: IntArray

    @staticmethod
    def concat(parts: Sequence[_Segments]) -> _Segments:
        return _Segments(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in _Segments.__dataclass_fields__
            )
        )


@dataclass(frozen=True)
class _Pieces:
    """Reached straight pieces: coordinates (P, 2, 2), label (facility), group and, where known,
    the network edge each piece lies on (-1: an access leg)."""

    coords: FloatArray
    label: IntArray
    group: IntArray
    edge: IntArray | None = None

    def __len__(self) -> int:
        return len(self.label)


def _cut(seg: _Segments, budget_m: FloatArray | float, *, split_nearest: bool) -> _Pieces:
    """The parts of ``seg`` within ``budget_m``, as straight pieces.

    With ``split_nearest`` an edge is cut where the distances via both ends meet, the prefix going
    to ``lab_l`` and the suffix to ``lab_r``; otherwise overlapping prefix and suffix merge.
    """
    length = seg.length_m
    with np.errstate(invalid="ignore"):
        rem_l = budget_m - seg.dl
        rem_r = budget_m - seg.dr
        pre_end = np.where(seg.twoway, np.minimum(rem_l, length), -np.inf)
        suf_start = np.maximum(length - rem_r, 0.0)
        if split_nearest:
            meet = np.where(seg.twoway, np.clip((seg.dr + length - seg.dl) / 2.0, 0.0, length), 0.0)
            pre_end = np.minimum(pre_end, meet)
            suf_start = np.maximum(suf_start, meet)
        pre_ok = (rem_l >= 0) & (pre_end > 0)
        suf_ok = (rem_r >= 0) & (suf_start < length)
        if not split_nearest:
            whole = pre_ok & suf_ok & (pre_end >= suf_start)
            pre_end = np.where(whole, length, pre_end)
            suf_ok &= ~whole
    safe_len = np.where(length > 0, length, 1.0)
    dx = seg.x1 - seg.x0
    dy = seg.y1 - seg.y0

    def piece(sel: NDArray[np.bool_], t0: FloatArray, t1: FloatArray) -> FloatArray:
        f0 = (t0 / safe_len)[sel]
        f1 = (t1 / safe_len)[sel]
        x0, y0, ddx, ddy = seg.x0[sel], seg.y0[sel], dx[sel], dy[sel]
        a = np.column_stack([x0 + f0 * ddx, y0 + f0 * ddy])
        b = np.column_stack([x0 + f1 * ddx, y0 + f1 * ddy])
        return np.stack([a, b], axis=1)

    zeros = np.zeros_like(length)
    coords = np.concatenate([piece(pre_ok, zeros, pre_end), piece(suf_ok, suf_start, length)])
    label = np.concatenate([seg.lab_l[pre_ok], seg.lab_r[suf_ok]])
    group = np.concatenate([seg.group[pre_ok], seg.group[suf_ok]])
    edge = np.concatenate([seg.edge[pre_ok], seg.edge[suf_ok]])
    return _Pieces(coords, label, group, edge)


def _incidence(network: RoadNetwork) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Edges grouped by their ``u`` node and by their ``v`` node (CSR), cached on the network."""
    cached = network._cache.get("service_area_incidence")
    if cached is not None:
        return cached
    n = network.n_nodes
    out = []
    for ends in (network.edge_u, network.edge_v):
        order = np.argsort(ends, kind="stable").astype(np.int64)
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(ends, minlength=n), out=ptr[1:])
        out += [ptr, order]
    res = (out[0], out[1], out[2], out[3])
    network._cache["service_area_incidence"] = res
    return res


def _expand(ptr: IntArray, order: IntArray, nodes: IntArray) -> tuple[IntArray, IntArray]:
    """For each of ``nodes``, its incident edges: (index into ``nodes``, edge)."""
    cnt = ptr[nodes + 1] - ptr[nodes]
    which = np.repeat(np.arange(len(nodes)), cnt)
    start = np.repeat(ptr[nodes] - (np.cumsum(cnt) - cnt), cnt)
    return which, order[start + np.arange(len(which))]


def _edge_segments(
    network: RoadNetwork,
    graph: RoutingGraph,
    edges: IntArray,
    dl: FloatArray,
    dr: FloatArray,
    lab_l: IntArray,
    lab_r: IntArray,
    group: IntArray,
) -> _Segments:
    u = network.edge_u[edges]
    v = network.edge_v[edges]
    return _Segments(
        network.node_x[u],
        network.node_y[u],
        network.node_x[v],
        network.node_y[v],
        graph.edge_length_m[edges],
        dl,
        dr,
        graph.edge_twoway[edges],
        lab_l,
        lab_r,
        group,
        edges,
    )


def _point_on_edge(
    network: RoadNetwork, graph: RoutingGraph, edge: IntArray, offset_m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Coordinates of positions on their (straight) edges."""
    u = network.edge_u[edge]
    v = network.edge_v[edge]
    length = graph.edge_length_m[edge]
    f = np.clip(np.where(length > 0, offset_m / np.where(length > 0, length, 1.0), 0.0), 0.0, 1.0)
    return (
        network.node_x[u] + f * (network.node_x[v] - network.node_x[u]),
        network.node_y[u] + f * (network.node_y[v] - network.node_y[u]),
    )


def _facility_chunk_segments(
    network: RoadNetwork,
    graph: RoutingGraph,
    src: Positions,
    dist: FloatArray,
    limit_m: float,
    labels: IntArray,
) -> _Segments:
    """Sub-segments reached from each facility of a chunk (group = row of ``dist``).

    ``dist[i, node]`` is the node's distance to facility ``i`` (at ``src[i]``). Every edge with a
    reached end is listed once per facility; the facility's own edge is split at its position.
    """
    ptr_u, ord_u, ptr_v, ord_v = _incidence(network)
    rows, nodes = np.nonzero(dist <= limit_m)
    w1, e1 = _expand(ptr_u, ord_u, nodes)
    r1 = rows[w1]
    w2, e2 = _expand(ptr_v, ord_v, nodes)
    r2 = rows[w2]
    fresh = ~(dist[r2, network.edge_u[e2]] <= limit_m)  # not already listed from its u end
    r = np.concatenate([r1, r2[fresh]])
    e = np.concatenate([e1, e2[fresh]])
    own_edge = src.edge[r] == e
    r, e = r[~own_edge], e[~own_edge]
    generic = _edge_segments(
        network,
        graph,
        e,
        dist[r, network.edge_u[e]],
        dist[r, network.edge_v[e]],
        labels[r],
        labels[r],
        r.astype(np.int64),
    )
    # the facility's own edge, split at the facility (which is ``access`` metres away)
    k = len(src)
    rr = np.arange(k)
    oe = src.edge
    ou, ov = network.edge_u[oe], network.edge_v[oe]
    length = graph.edge_length_m[oe]
    off = np.clip(src.offset_m, 0.0, length)
    px, py = _point_on_edge(network, graph, oe, off)
    tw = graph.edge_twoway[oe]
    first = _Segments(
        network.node_x[ou],
        network.node_y[ou],
        px,
        py,
        off,
        dist[rr, ou],
        src.access_m.copy(),
        tw,
        labels,
        labels,
        rr.astype(np.int64),
        oe,
    )
    second = _Segments(
        px,
        py,
        network.node_x[ov],
        network.node_y[ov],
        length - off,
        src.access_m.copy(),
        dist[rr, ov],
        tw,
        labels,
        labels,
        rr.astype(np.int64),
        oe,
    )
    return _Segments.concat([generic, first, second])


def _nearest_segments(
    network: RoadNetwork,
    graph: RoutingGraph,
    src: Positions,
    node_d: FloatArray,
    node_src: IntArray,
    limit_m: float,
) -> _Segments:
    """Sub-segments reached from the nearest of many sources (one group, labels = source).

    Edges holding sources are split at every source; the distance at a split point is the
    distance of that point to its nearest source (itself: its access leg; or via the ends or
    other sources on the edge), so inside every sub-segment the nearest source is reached
    through one of its two ends.
    """
    ok = np.flatnonzero(src.edge >= 0)
    reached_node = node_d <= limit_m
    near = reached_node[network.edge_u] | reached_node[network.edge_v]
    src_edges = np.unique(src.edge[ok])
    near[src_edges] = False
    e = np.flatnonzero(near).astype(np.int64)
    zero = np.zeros(len(e), dtype=np.int64)
    parts = [
        _edge_segments(
            network,
            graph,
            e,
            node_d[network.edge_u[e]],
            node_d[network.edge_v[e]],
            node_src[network.edge_u[e]],
            node_src[network.edge_v[e]],
            zero,
        )
    ]
    if len(ok):
        s_edge = src.edge[ok]
        s_off = np.clip(src.offset_m[ok], 0.0, graph.edge_length_m[s_edge])
        split = Positions(s_edge, s_off, np.zeros(len(ok)))
        d_split, lab_split = read_off(graph, node_d[None, :], node_src[None, :], split)
        d_split, lab_split = d_split[0], lab_split[0]
        si, di, cost = same_edge_pairs(graph, src, split)  # includes each source itself
        if len(si):
            order = np.lexsort((cost, di))
            first_di, first = np.unique(di[order], return_index=True)
            best = cost[order][first]
            better = best < d_split[first_di]
            d_split[first_di[better]] = best[better]
            lab_split[first_di[better]] = si[order][first][better]
        # breakpoints per source edge: u end, the sources by offset, v end
        n_e = len(src_edges)
        bp_edge = np.concatenate([src_edges, s_edge, src_edges])
        bp_off = np.concatenate([np.full(n_e, -np.inf), s_off, np.full(n_e, np.inf)])
        bp_u = network.edge_u[src_edges]
        bp_v = network.edge_v[src_edges]
        sx, sy = _point_on_edge(network, graph, s_edge, s_off)
        bp_x = np.concatenate([network.node_x[bp_u], sx, network.node_x[bp_v]])
        bp_y = np.concatenate([network.node_y[bp_u], sy, network.node_y[bp_v]])
        bp_d = np.concatenate([node_d[bp_u], d_split, node_d[bp_v]])
        bp_lab = np.concatenate([node_src[bp_u], lab_split, node_src[bp_v]])
        bp_t = np.concatenate([np.zeros(n_e), s_off, graph.edge_length_m[src_edges]])
        order = np.lexsort((bp_off, bp_edge))
        bp_edge, bp_x, bp_y, bp_d, bp_lab, bp_t = (
            a[order] for a in (bp_edge, bp_x, bp_y, bp_d, bp_lab, bp_t)
        )
        a = np.flatnonzero(bp_edge[:-1] == bp_edge[1:])
        b = a + 1
        parts.append(
            _Segments(
                bp_x[a],
                bp_y[a],
                bp_x[b],
                bp_y[b],
                bp_t[b] - bp_t[a],
                bp_d[a],
                bp_d[b],
                graph.edge_twoway[bp_edge[a]],
                bp_lab[a],
                bp_lab[b],
                np.zeros(len(a), dtype=np.int64),
                bp_edge[a],
            )
        )
    return _Segments.concat(parts)


def _access_pieces(
    src: Positions,
    xy: FloatArray,
    snapped_xy: FloatArray,
    budget_m: FloatArray,
    labels: IntArray,
    groups: IntArray,
) -> _Pieces:
    """The facilities' access legs (facility point to its street) where within budget."""
    ok = (src.edge >= 0) & (src.access_m <= budget_m) & (src.access_m > 0)
    coords = np.stack([xy[ok], snapped_xy[ok]], axis=1)
    return _Pieces(coords, labels[ok], groups[ok], np.full(int(ok.sum()), -1, dtype=np.int64))


def _merge_pieces(parts: Sequence[_Pieces]) -> _Pieces:
    return _Pieces(
        np.concatenate([p.coords for p in parts]).reshape(-1, 2, 2),
        np.concatenate([p.label for p in parts]),
        np.concatenate([p.group for p in parts]),
        np.concatenate(
            [p.edge if p.edge is not None else np.full(len(p), -1, np.int64) for p in parts]
        ),
    )


def _padded(geoms: NDArray[np.object_], group: IntArray, n_groups: int) -> NDArray[np.object_]:
    """Geometries as a (n_groups, max per group) array padded with None (for axis reductions)."""
    cnt = np.bincount(group, minlength=n_groups)
    arr = np.full((n_groups, max(1, int(cnt.max()) if len(cnt) else 1)), None, dtype=object)
    order = np.argsort(group, kind="stable")
    g = group[order]
    start = np.cumsum(cnt) - cnt
    arr[g, np.arange(len(g)) - start[g]] = geoms[order]
    return arr


def _stadiums(coords: FloatArray, buffer_m: float) -> NDArray[np.object_]:
    """Round-capped buffers of straight pieces (P, 2, 2), drawn directly.

    The same polygons as ``shapely.buffer(line, buffer_m, quad_segs=QUAD_SEGS)`` (the vertices of
    GEOS's round caps: ``2 QUAD_SEGS + 1`` points per cap, from one side of the piece to the
    other, on the circle), without the general buffer machinery. Pieces shorter than 2 % of
    ``buffer_m`` are left to GEOS.
    """
    out = np.empty(len(coords), dtype=object)
    p0, p1 = coords[:, 0], coords[:, 1]
    d = p1 - p0
    # GEOS simplifies its input within 1 % of the distance: very short pieces are left to it
    ok = np.hypot(d[:, 0], d[:, 1]) > 0.02 * buffer_m
    dd = d[ok] / np.hypot(d[ok, 0], d[ok, 1])[:, None]  # along the piece
    nn = np.column_stack([-dd[:, 1], dd[:, 0]])  # its left side
    # cap directions: from the left side, clockwise, in steps of pi / (2 QUAD_SEGS)
    steps = np.arange(2 * QUAD_SEGS + 1) * (np.pi / (2 * QUAD_SEGS))
    u = (
        np.cos(steps)[None, :, None] * nn[:, None, :]
        + np.sin(steps)[None, :, None] * dd[:, None, :]
    ) * buffer_m
    c1 = p1[ok][:, None, :] + u  # around p1, from its left side to its right side
    c0 = p0[ok][:, None, :] - u  # around p0, from its right side to its left side
    out[ok] = shapely.polygons(np.concatenate([c1, c0, c1[:, :1]], axis=1))
    if not ok.all():
        out[~ok] = shapely.buffer(shapely.linestrings(coords[~ok]), buffer_m, quad_segs=QUAD_SEGS)
    return out


def _union_by_row(parts: NDArray[np.object_]) -> NDArray[np.object_]:
    """Per row, the union of polygons that form a coverage (edge-matched, no overlaps).

    GEOS's coverage union is fast but refuses inputs that are not noded exactly ("CoverageUnion
    cannot process incorrectly noded inputs": borders a rounding error apart, seen when snapped
    offsets moved by 1e-10 m); such inputs take the general union.
    """
    try:
        return np.asarray(shapely.coverage_union_all(parts, axis=1), dtype=object)
    except shapely.errors.GEOSException:
        logger.debug("coverage union refused the pieces; using the general union")
        return np.asarray(shapely.union_all(parts, axis=1), dtype=object)


def _union_buffers(
    coords: FloatArray,
    group: IntArray,
    n_groups: int,
    buffer_m: float,
    fill: NDArray[np.object_] | None = None,
    fill_group: IntArray | None = None,
) -> NDArray[np.object_]:
    """Buffer every piece and union the buffers per group (vectorised over groups), together with
    the group's ``fill`` polygons (faces of a planar subdivision: edge-matched, no overlaps)."""
    geoms = _stadiums(coords, buffer_m)
    if fill is not None and fill_group is not None and len(fill):
        cov = _union_by_row(_padded(fill, fill_group, n_groups)).reshape(n_groups)
        # a coverage union assumes no overlaps; check by area (cheap) and fall back if needed
        want = np.bincount(fill_group, weights=shapely.area(fill), minlength=n_groups)
        got = shapely.area(cov)
        bad = np.flatnonzero(~(np.abs(got - want) <= 1e-9 * np.maximum(want, 1.0)))
        if len(bad):  # pragma: no cover - only on networks that are not planar
            redo = np.asarray(
                shapely.union_all(_padded(fill, fill_group, n_groups)[bad], axis=1), dtype=object
            )
            cov[bad] = redo.reshape(len(bad))
        has = np.flatnonzero(np.bincount(fill_group, minlength=n_groups) > 0)
        geoms = np.concatenate([geoms, cov[has]])
        group = np.concatenate([group, has])
    out = shapely.union_all(_padded(geoms, group, n_groups), axis=1)
    return np.asarray(out, dtype=object).reshape(n_groups)


def _union_pairs(polys: NDArray[np.object_], idx: IntArray) -> NDArray[np.object_]:
    return np.asarray(shapely.union(polys[idx], polys[idx + 1]), dtype=object)


#: Work of a filled face relative to a buffer, when tiles are balanced between threads.
FILL_WEIGHT: Final = 0.25


def _buffer_groups(
    pieces: _Pieces,
    n_groups: int,
    *,
    buffer_m: float,
    simplify_m: float = 0.0,
    workers: int | None = None,
    fill: tuple[NDArray[np.object_], IntArray] | None = None,
) -> NDArray[np.object_]:
    """One buffered polygon per group (empty where a group has no piece).

    Every piece is buffered on its own and the buffers are unioned per group (GEOS buffers a
    large MultiLineString far more slowly). Large groups are first cut into spatial tiles that
    are unioned separately. The work runs on ``workers`` threads (GEOS releases the GIL; by
    default the thread budget of :mod:`lifecircle._threads`, at most :data:`MAX_WORKERS`).
    ``fill`` adds polygons (and their groups) to the unions: faces of a planar subdivision,
    which are dissolved by a coverage union first.
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    out = np.array([shapely.Polygon()] * n_groups, dtype=object)
    fill_geoms = fill[0] if fill is not None else np.array([], dtype=object)
    fill_group = fill[1] if fill is not None else np.zeros(0, dtype=np.int64)
    n_p, n_fill = len(pieces), len(fill_geoms)
    if n_p + n_fill == 0:
        return out
    coords = pieces.coords
    mid = coords.mean(axis=1)
    weight = np.ones(n_p)
    if n_fill:
        fb = shapely.bounds(fill_geoms)
        mid = np.concatenate([mid, (fb[:, :2] + fb[:, 2:]) / 2.0])
        weight = np.concatenate([weight, np.full(n_fill, FILL_WEIGHT)])
    present, gi = np.unique(np.concatenate([pieces.group, fill_group]), return_inverse=True)
    n_present = len(present)
    # split large groups into tiles of about TILE_PIECES pieces (by piece midpoint)
    cnt = np.bincount(gi, weights=weight, minlength=n_present)
    tiles_per = np.maximum(1, np.ceil(cnt / TILE_PIECES)).astype(np.int64)
    sub = np.zeros(len(gi), dtype=np.int64)
    big = np.flatnonzero(tiles_per > 1)
    for g in big:  # a handful of groups at most: loop over groups, not pieces
        sel = np.flatnonzero(gi == g)
        side = int(np.ceil(np.sqrt(tiles_per[g])))
        m = mid[sel]
        lo, hi = m.min(axis=0), m.max(axis=0)
        cell = np.maximum((hi - lo) / side, 1e-9)
        ij = np.minimum(((m - lo) / cell).astype(np.int64), side - 1)
        sub[sel] = ij[:, 0] * side + ij[:, 1]
    unit_key = gi.astype(np.int64) * (int(sub.max()) + 1) + sub
    units, ui = np.unique(unit_key, return_inverse=True)
    unit_group = units // (int(sub.max()) + 1)
    n_units = len(units)
    n_workers = max(1, min(workers or min(MAX_WORKERS, thread_budget()), n_units))
    # balance the threads by work: contiguous unit ranges of similar size
    order = np.argsort(ui, kind="stable")
    cum = np.cumsum(np.bincount(ui, weights=weight, minlength=n_units))
    n_batches = min(n_units, n_workers * 16)
    cuts = np.unique(
        np.searchsorted(cum, np.linspace(0, cum[-1], n_batches + 1)[1:-1], side="left") + 1
    )
    unit_bounds = np.concatenate([[0], cuts[cuts < n_units], [n_units]])
    item_bounds = np.concatenate([[0], np.cumsum(np.bincount(ui, minlength=n_units))])[unit_bounds]
    sorted_ui = ui[order]

    def work(k: int) -> NDArray[np.object_]:
        a, b = item_bounds[k], item_bounds[k + 1]
        u0, u1 = unit_bounds[k], unit_bounds[k + 1]
        items = order[a:b]
        is_piece = items < n_p
        pi, fi = items[is_piece], items[~is_piece] - n_p
        local = sorted_ui[a:b] - u0
        return _union_buffers(
            coords[pi], local[is_piece], u1 - u0, buffer_m, fill_geoms[fi], local[~is_piece]
        )

    # largest batches first, so that the threads finish together
    batch_work = np.diff(np.concatenate([[0.0], cum])[unit_bounds])
    batches = np.argsort(-batch_work, kind="stable")
    with ThreadPoolExecutor(n_workers) as ex:
        run = ex.map if n_workers > 1 else map
        done = list(run(work, batches))
        unit_polys = np.concatenate([done[i] for i in np.argsort(batches)])
        # merge the tiles of each group pairwise (neighbouring tiles first), level by level, so
        # that all but the last merges run in parallel
        polys = np.asarray(unit_polys, dtype=object)
        owner = unit_group.astype(np.int64)
        while len(polys) > n_present:
            first = np.ones(len(owner), dtype=bool)
            first[1:] = owner[1:] != owner[:-1]
            rank = np.arange(len(owner)) - np.maximum.accumulate(
                np.where(first, np.arange(len(owner)), 0)
            )
            left = np.flatnonzero((rank % 2 == 0) & np.append(owner[1:] == owner[:-1], False))
            pairs = np.array_split(left, min(len(left), n_workers * 2))
            merged = list(run(partial(_union_pairs, polys), pairs))
            polys = polys.copy()
            polys[np.concatenate(pairs)] = np.concatenate(merged)
            gone = np.zeros(len(polys), dtype=bool)
            gone[left + 1] = True
            polys, owner = polys[~gone], owner[~gone]
    if simplify_m > 0:
        polys = shapely.simplify(polys, simplify_m, preserve_topology=True)
    out[present] = polys
    return out


# --------------------------------------------------------------------------------------------
# faces: blocks enclosed by reached streets
# --------------------------------------------------------------------------------------------
@dataclass
class _Faces:
    """The faces of the street network as a planar graph (cached per network).

    Half-edge ``h < E`` runs ``u -> v`` along edge ``h``, ``h + E`` runs back; ``left[h]`` is the
    face on its left. Faces are traced by the usual rotation rule (at each node the next half-edge
    is the one clockwise from the way back), which needs no noding: on a non-planar network a
    traced cycle may not be a face, but it is only used when its ring is a valid polygon, and the
    tests below only rely on the ring.
    """

    left: IntArray
    nxt: IntArray  # the next half-edge along the same face
    ok: NDArray[np.bool_]  # bounded, short ring, no dead end or zero-length edge
    first: IntArray  # a half-edge of each face
    size: IntArray  # half-edges per face
    polys: NDArray[np.object_]  # the faces' polygons, built on demand
    built: NDArray[np.bool_]
    coverable: dict[float, NDArray[np.int8]] = field(default_factory=dict)  # -1 unknown, 0, 1


def _faces(network: RoadNetwork) -> _Faces:
    cached = network._cache.get("service_area_faces")
    if cached is not None:
        return cached
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n_e = network.n_edges
    u = network.edge_u.astype(np.int64)
    v = network.edge_v.astype(np.int64)
    org = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    x, y = network.node_x, network.node_y
    h_all = np.arange(2 * n_e, dtype=np.int64)
    # outgoing half-edges sorted counter-clockwise around each node
    by_angle = np.argsort(np.arctan2(y[dst] - y[org], x[dst] - x[org]))
    order = by_angle[np.argsort(org[by_angle], kind="stable")]
    cnt = np.bincount(org, minlength=network.n_nodes)
    start = np.cumsum(cnt) - cnt
    rank = np.empty(2 * n_e, dtype=np.int64)
    rank[order] = np.arange(2 * n_e) - start[org[order]]
    cw = order[start[org] + (rank - 1) % cnt[org]]  # next clockwise around the origin
    twin = np.concatenate([h_all[n_e:], h_all[:n_e]])
    nxt = cw[twin]
    n_f, left = connected_components(
        csr_matrix((np.ones(2 * n_e, np.int8), (h_all, nxt)), shape=(2 * n_e, 2 * n_e)),
        directed=True,
        connection="weak",
    )
    left = left.astype(np.int64)
    area2 = np.bincount(left, weights=x[org] * y[dst] - x[dst] * y[org], minlength=n_f)
    ok = area2 > 0
    ok[left[left == left[twin]]] = False  # dead ends, bridges
    ok[left[(org == dst) | (network.edge_length_m[np.concatenate([h_all[:n_e]] * 2)] <= 0)]] = False
    size = np.bincount(left, minlength=n_f)
    ok &= size <= MAX_FACE_RING
    first = np.full(n_f, 2 * n_e, dtype=np.int64)
    np.minimum.at(first, left, h_all)
    res = _Faces(
        left, nxt, ok, first, size, np.full(n_f, None, dtype=object), np.zeros(n_f, dtype=bool)
    )
    network._cache["service_area_faces"] = res
    return res


def _coverable_faces(
    network: RoadNetwork, faces: _Faces, cand: IntArray, radius_m: float
) -> NDArray[np.bool_]:
    """Which faces ``cand`` (with ``ok``) are valid polygons lying within ``radius_m`` of their
    own ring (no inscribed disc wider than ``radius_m``); memoised per radius."""
    memo = faces.coverable.setdefault(radius_m, np.full(len(faces.ok), -1, dtype=np.int8))
    todo = cand[memo[cand] < 0]
    if len(todo):
        # the rings of the faces, walked along ``nxt`` (rows: faces, in order)
        size = faces.size[todo]
        walk = np.empty((len(todo), int(size.max())), dtype=np.int64)
        cur = faces.first[todo]
        for i in range(walk.shape[1]):
            walk[:, i] = cur
            cur = faces.nxt[cur]
        n_e = network.n_edges
        he = walk[np.arange(walk.shape[1]) < size[:, None]]
        nodes = np.where(he < n_e, network.edge_u[he % n_e], network.edge_v[he % n_e])
        which = np.repeat(np.arange(len(todo)), size)
        px, py = network.node_x[nodes], network.node_y[nodes]
        missing = ~faces.built[todo]
        if missing.any():
            sel = missing[which]
            rings = shapely.linearrings(
                px[sel], py[sel], indices=np.searchsorted(np.flatnonzero(missing), which[sel])
            )
            faces.polys[todo[missing]] = shapely.polygons(rings)
            faces.built[todo[missing]] = True
        polys = faces.polys[todo]
        good = shapely.is_valid(polys)
        # convex rings: the widest inscribed disc has radius <= 2 area / perimeter
        area = shapely.area(polys)
        perim = shapely.length(polys)
        easy = good & (2.0 * area <= radius_m * perim)
        nxt_i = np.arange(len(he)) + 1
        ends = np.cumsum(size) - 1
        nxt_i[ends] = ends - size + 1
        dx, dy = px[nxt_i] - px, py[nxt_i] - py
        turn = dx * dy[nxt_i] - dy * dx[nxt_i]
        convex = np.bincount(which, weights=(turn < 0), minlength=len(todo)) == 0
        easy &= convex
        hard = np.flatnonzero(good & ~easy)
        res = easy.copy()
        if len(hard):
            res[hard] = shapely.is_empty(shapely.buffer(polys[hard], -radius_m, quad_segs=8))
        memo[todo] = res.astype(np.int8)
    return memo[cand] > 0


def _full_edges(seg: _Segments, budget_m: float, n_edges: int) -> NDArray[np.bool_]:
    """Edges reached end to end within ``budget_m`` (every sub-segment of them whole)."""
    length = seg.length_m
    with np.errstate(invalid="ignore"):
        rem_l = budget_m - seg.dl
        rem_r = budget_m - seg.dr
        pre = np.where(seg.twoway, np.minimum(rem_l, length), -np.inf)
        suf = np.maximum(length - rem_r, 0.0)
        pre_ok = (rem_l >= 0) & (pre > 0)
        suf_ok = (rem_r >= 0) & (suf < length)
        whole = (pre_ok & ((pre >= length) | (suf_ok & (pre >= suf)))) | (suf_ok & (suf <= 0))
    whole &= length > 0
    n_seg = np.bincount(seg.edge, minlength=n_edges)
    n_whole = np.bincount(seg.edge[whole], minlength=n_edges)
    return (n_seg > 0) & (n_whole == n_seg)


def _face_fill(
    network: RoadNetwork, seg: _Segments, budget_m: float, buffer_m: float
) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
    """Blocks that the buffers fill anyway, and the edges whose buffers they make redundant.

    Let ``r = 0.999 buffer_m cos(pi / (4 QUAD_SEGS))``: a drawn buffer still contains the true
    disc of radius ``r`` around its street (the vertices of the round caps lie on the circle).

    * A face whose ring is reached end to end and that has no point farther than ``r`` from its
      ring (no inscribed disc wider than ``r``) lies inside the union of the buffers: it is
      *filled*. ``R`` is the union of the filled faces.
    * An edge with filled faces on both sides (*inner*) lies inside ``R``, and ``R``'s boundary
      lies on the *rim* edges (filled on one side only), which stay. If the inner edge is at least
      ``buffer_m - r`` from every rim edge, its buffer is redundant: a point ``p`` of the buffer
      outside ``R`` leaves ``R`` on the way to the edge through a rim point ``q`` with
      ``|pq| <= buffer_m - (buffer_m - r) = r``, so ``p`` is in the rim edge's buffer.

    So the union of ``R`` and the remaining buffers equals the union of all buffers. Returns the
    filled faces' polygons and the mask of redundant edges.
    """
    n_e = network.n_edges
    full = _full_edges(seg, budget_m, n_e)
    faces = _faces(network)
    n_f = len(faces.ok)
    broken = np.bincount(faces.left, weights=~np.concatenate([full, full]), minlength=n_f)
    cand = np.flatnonzero(faces.ok & (broken == 0))
    radius = buffer_m * float(np.cos(np.pi / (4 * QUAD_SEGS))) * 0.999
    filled = np.zeros(n_f, dtype=bool)
    filled[cand[_coverable_faces(network, faces, cand, radius)]] = True
    drop = np.zeros(n_e, dtype=bool)
    fill_ids = np.flatnonzero(filled)
    if len(fill_ids) == 0:
        return np.array([], dtype=object), drop
    side_l = filled[faces.left[:n_e]]
    side_r = filled[faces.left[n_e:]]
    inner = np.flatnonzero(side_l & side_r)
    rim = np.flatnonzero(side_l ^ side_r)
    if len(inner):
        # inner edges sharing a node with a rim edge stay; the others are measured
        on_rim = np.zeros(network.n_nodes, dtype=bool)
        on_rim[network.edge_u[rim]] = True
        on_rim[network.edge_v[rim]] = True
        inner = inner[~(on_rim[network.edge_u[inner]] | on_rim[network.edge_v[inner]])]
        keep = np.zeros(len(inner), dtype=bool)
        if len(rim) and len(inner):
            hit, _ = shapely.STRtree(_edge_lines(network, rim)).query(
                _edge_lines(network, inner),
                predicate="dwithin",
                distance=(buffer_m - radius) * 1.01 + 1e-6,
            )
            keep[hit] = True
        drop[inner[~keep]] = True
    return faces.polys[fill_ids], drop


def _edge_lines(network: RoadNetwork, edges: IntArray) -> NDArray[np.object_]:
    u, v = network.edge_u[edges], network.edge_v[edges]
    coords = np.stack(
        [
            np.column_stack([network.node_x[u], network.node_y[u]]),
            np.column_stack([network.node_x[v], network.node_y[v]]),
        ],
        axis=1,
    )
    return np.asarray(shapely.linestrings(coords), dtype=object)


# --------------------------------------------------------------------------------------------
# the three products on one network
# --------------------------------------------------------------------------------------------
def facility_areas(
    network: RoadNetwork,
    sources: Positions,
    budgets_m: Sequence[float] | FloatArray,
    *,
    xy: FloatArray | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    simplify_m: float = 0.0,
    chunk: int | None = None,
) -> NDArray[np.object_]:
    """One service-area polygon per facility and budget (``dissolve="none"``).

    Parameters
    ----------
    network : RoadNetwork
        The network the facilities are snapped on (metric CRS).
    sources : Positions
        The facilities' snapped positions; ``edge = -1`` gives empty polygons.
    budgets_m : sequence of float
        Network metres (the facility's access leg included).
    xy : ndarray, shape (k, 2), optional
        The facilities' own coordinates (network CRS); their access legs become part of the
        area. Without it the area starts at the snapped position.
    buffer_m, simplify_m : float
        Buffer width and Douglas-Peucker tolerance, metres.
    chunk : int, optional
        Facilities per one-to-many search (default: bounded by ``routing.CHUNK_CELLS``).

    Returns
    -------
    ndarray of shapely geometries, shape (k, len(budgets_m)), in the network's CRS.
    """
    budgets = np.asarray(budgets_m, dtype=float)
    k, nb = len(sources), len(budgets)
    out = np.array([shapely.Polygon()] * (k * nb), dtype=object).reshape(k, nb)
    if k == 0 or nb == 0:
        return out
    graph = RoutingGraph.from_network(network)
    limit = float(budgets.max())
    for idx, dist in node_distance_chunks(graph, sources, limit_m=limit, chunk=chunk):
        src = sources.subset(idx)
        seg = _facility_chunk_segments(network, graph, src, dist, limit, idx.astype(np.int64))
        parts = []
        for b, budget in enumerate(budgets):
            p = _cut(seg, budget, split_nearest=False)
            parts.append(_Pieces(p.coords, p.label, p.group * nb + b, p.edge))
            if xy is not None:
                sxy = np.column_stack(_point_on_edge(network, graph, src.edge, src.offset_m))
                rows = np.arange(len(idx), dtype=np.int64)
                parts.append(
                    _access_pieces(
                        src,
                        xy[idx],
                        sxy,
                        np.full(len(idx), budget),
                        idx.astype(np.int64),
                        rows * nb + b,
                    )
                )
        polys = _buffer_groups(
            _merge_pieces(parts), len(idx) * nb, buffer_m=buffer_m, simplify_m=simplify_m
        )
        out[idx] = polys.reshape(len(idx), nb)
    return out


def _nearest_pieces(
    network: RoadNetwork,
    sources: Positions,
    budgets: FloatArray,
    xy: FloatArray | None,
    *,
    split_nearest: bool,
) -> tuple[_Pieces, Any, _Segments]:
    graph = RoutingGraph.from_network(network)
    empty = Positions(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    near = nearest_sources(graph, sources, empty, limit_m=float(budgets.max()))
    seg = _nearest_segments(
        network, graph, sources, near.node_distance_m, near.node_source, float(budgets.max())
    )
    parts = []
    ok = np.flatnonzero(sources.edge >= 0)
    for b, budget in enumerate(budgets):
        p = _cut(seg, budget, split_nearest=split_nearest)
        parts.append(_Pieces(p.coords, p.label, np.full(len(p), b, dtype=np.int64), p.edge))
        if xy is not None and len(ok):
            src = sources.subset(ok)
            sxy = np.column_stack(_point_on_edge(network, graph, src.edge, src.offset_m))
            parts.append(
                _access_pieces(
                    src,
                    xy[ok],
                    sxy,
                    np.full(len(ok), budget),
                    ok.astype(np.int64),
                    np.full(len(ok), b, dtype=np.int64),
                )
            )
    return _merge_pieces(parts), near, seg


def tier_areas(
    network: RoadNetwork,
    sources: Positions,
    budgets_m: Sequence[float] | FloatArray,
    *,
    xy: FloatArray | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    simplify_m: float = 0.0,
) -> NDArray[np.object_]:
    """The union of all facilities' service areas, per budget (``dissolve="tier"``).

    Built from one multi-source search: a street point is in the union when its distance to the
    *nearest* facility is within the budget. Parameters as in :func:`facility_areas`.

    Returns
    -------
    ndarray of shapely geometries, shape (len(budgets_m),), in the network's CRS.
    """
    budgets = np.asarray(budgets_m, dtype=float)
    if len(budgets) == 0:
        return np.array([], dtype=object)
    pieces, _, seg = _nearest_pieces(network, sources, budgets, xy, split_nearest=False)
    if len(pieces) < FACE_FILL_PIECES or pieces.edge is None:
        return _buffer_groups(pieces, len(budgets), buffer_m=buffer_m, simplify_m=simplify_m)
    # blocks filled by the buffers anyway replace the buffers of the streets inside them
    keep = np.ones(len(pieces), dtype=bool)
    fills, fill_group = [], []
    on_edge = pieces.edge >= 0
    for b, budget in enumerate(budgets):
        faces, drop = _face_fill(network, seg, float(budget), buffer_m)
        fills.append(faces)
        fill_group.append(np.full(len(faces), b, dtype=np.int64))
        sel = on_edge & (pieces.group == b)
        keep[np.flatnonzero(sel)[drop[pieces.edge[sel]]]] = False
    kept = _Pieces(pieces.coords[keep], pieces.label[keep], pieces.group[keep], pieces.edge[keep])
    polys = _buffer_groups(
        kept,
        len(budgets),
        buffer_m=buffer_m,
        simplify_m=simplify_m,
        fill=(np.concatenate(fills), np.concatenate(fill_group)),
    )
    return polys


def catchment_areas(
    network: RoadNetwork,
    sources: Positions,
    budgets_m: Sequence[float] | FloatArray,
    *,
    xy: FloatArray | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    simplify_m: float = 0.0,
) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    """The tier area split among its facilities, nearest facility first (``dissolve="catchment"``).

    Returns
    -------
    catchments : ndarray, shape (k, len(budgets_m))
        Disjoint polygons per facility and budget (empty where a facility serves nothing).
    tier : ndarray, shape (len(budgets_m),)
        The tier polygons they partition.
    """
    budgets = np.asarray(budgets_m, dtype=float)
    k, nb = len(sources), len(budgets)
    out = np.array([shapely.Polygon()] * (k * nb), dtype=object).reshape(k, nb)
    if nb == 0:
        return out, np.array([], dtype=object)
    pieces, _, _ = _nearest_pieces(network, sources, budgets, xy, split_nearest=True)
    tier = _buffer_groups(pieces, nb, buffer_m=buffer_m)
    for b in range(nb):
        sel = pieces.group == b
        p = _Pieces(pieces.coords[sel], pieces.label[sel], pieces.group[sel])
        labels, parts = _partition(p, tier[b], buffer_m=buffer_m, simplify_m=simplify_m)
        out[labels, b] = parts
    if simplify_m > 0:
        tier = shapely.simplify(tier, simplify_m, preserve_topology=True)
    return out, tier


def _partition(
    pieces: _Pieces, area: Any, *, buffer_m: float, simplify_m: float = 0.0
) -> tuple[IntArray, NDArray[np.object_]]:
    """Split ``area`` (the buffer of all pieces) among the pieces' labels, nearest piece first.

    Points are sampled every ``buffer_m / 4`` along the pieces; the Voronoi cells of the points,
    dissolved per label, partition the plane, and each label gets ``area`` inside its region.
    A point of ``area`` is within ``buffer_m`` of some piece, hence within ``buffer_m + step/2``
    of its nearest sample, so only the label's own widened buffer and its neighbours' buffers
    need to be intersected (no overlay with the whole ``area``).
    """
    if len(pieces) == 0 or shapely.is_empty(area):
        return np.zeros(0, np.int64), np.array([], dtype=object)
    step = buffer_m / 4.0
    a, b = pieces.coords[:, 0], pieces.coords[:, 1]
    seg_len = np.hypot(*(b - a).T)
    n = np.maximum(1, np.ceil(seg_len / step)).astype(np.int64)
    which = np.repeat(np.arange(len(n)), n)
    k = np.arange(len(which)) - np.repeat(np.cumsum(n) - n, n)
    f = (k + 0.5) / n[which]
    pts = a[which] + f[:, None] * (b - a)[which]
    pts_r = np.round(pts, 3)
    _, first = np.unique(pts_r, axis=0, return_index=True)
    first = np.sort(first)
    pts, lab = pts[first], pieces.label[which[first]]
    labels = np.unique(lab)
    if len(labels) == 1:
        return labels, np.array([area], dtype=object)
    minx, miny, maxx, maxy = shapely.bounds(area)
    frame = shapely.box(minx - buffer_m, miny - buffer_m, maxx + buffer_m, maxy + buffer_m)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame, ordered=True)
    )
    if len(cells) != len(pts):  # pragma: no cover - GEOS merged near-duplicate points
        raise RuntimeError("Voronoi partition lost points; catchments cannot be split")
    lab_index = np.searchsorted(labels, lab).astype(np.int64)
    regions = _union_by_row(
        _padded(np.asarray(cells, dtype=object), lab_index, len(labels))
    ).reshape(len(labels))
    by_label = _Pieces(pieces.coords, pieces.label, np.searchsorted(labels, pieces.label))
    own_buf = _buffer_groups(by_label, len(labels), buffer_m=buffer_m)
    wide = _buffer_groups(by_label, len(labels), buffer_m=buffer_m + step)
    candidate = shapely.intersection(regions, wide)
    tree = shapely.STRtree(own_buf)
    ci, nj = tree.query(candidate, predicate="intersects")
    parts = shapely.intersection(candidate[ci], own_buf[nj])
    result = np.asarray(
        shapely.union_all(_padded(parts, ci.astype(np.int64), len(labels)), axis=1), dtype=object
    ).reshape(len(labels))
    if simplify_m > 0:
        # simplified per label, then clipped back to the label's own region: still disjoint
        result = shapely.intersection(
            shapely.simplify(result, simplify_m, preserve_topology=True), regions
        )
    result = _polygonal(result)
    return labels, result


def _polygonal(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Keep only the polygonal part of overlay results (drop stray lines and points), valid."""
    geoms = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad])
    mixed = shapely.get_type_id(geoms) == 7  # GeometryCollection
    for i in np.flatnonzero(mixed):
        parts = shapely.get_parts(geoms[i])
        polys = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        geoms[i] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    return geoms


# --------------------------------------------------------------------------------------------
# the analysis: budgets, tiers, attributes
# --------------------------------------------------------------------------------------------
def tier_budgets(
    tier: Tier, *, minutes: Sequence[float] | None = None, metres: Sequence[float] | None = None
) -> tuple[FloatArray, FloatArray]:
    """Budgets of a tier in metres and minutes, ascending.

    ``minutes`` are converted at the tier's speed; ``metres`` are used as given; with neither the
    tier's own standard (``threshold_m``, ``minutes``) is the only budget.
    """
    if minutes is not None and metres is not None:
        raise InputError("give budgets either in minutes or in metres, not both")
    if minutes is not None:
        b_min = np.asarray(sorted(set(map(float, minutes))), dtype=float)
        b_m = b_min * tier.speed_m_per_min
    elif metres is not None:
        b_m = np.asarray(sorted(set(map(float, metres))), dtype=float)
        b_min = b_m / tier.speed_m_per_min
    else:
        b_m = np.array([tier.threshold_m])
        b_min = np.array([tier.minutes])
    if len(b_m) == 0 or not np.all(np.isfinite(b_m)) or np.any(b_m <= 0):
        raise InputError(f"budgets must be positive numbers, got {list(b_m)}")
    return b_m, b_min


@dataclass(frozen=True)
class ServiceAreas:
    """Service-area polygons and their attributes.

    Attributes
    ----------
    frame : geopandas.GeoDataFrame
        One row per polygon, geometry in :attr:`crs` (metres). Columns: ``facility_id``, ``name``
        (not when dissolved by tier), ``tier``, ``mode``, ``budget_min``, ``budget_m`` (and
        ``ring_from_min``, ``ring_from_m`` for rings), ``area_m2``, ``population`` (NaN without
        residents), ``residents`` (resident points counted).
    crs : str
        The metric CRS of the geometries.
    dissolve : {"none", "tier", "catchment"}
    rings : bool
    buffer_m, simplify_m : float
    facilities_skipped : list of str
        Ids of facilities farther than ``max_snap_m`` from the network (no polygon).
    """

    frame: gpd.GeoDataFrame
    crs: str
    dissolve: str
    rings: bool
    buffer_m: float
    simplify_m: float
    facilities_skipped: list[str] = field(default_factory=list)

    def to_wgs84(self) -> gpd.GeoDataFrame:
        """The frame in EPSG:4326 (valid geometries; ``area_m2`` stays the metric area)."""
        out = self.frame.to_crs("EPSG:4326")
        geoms = out.geometry.to_numpy()
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms = geoms.copy()
            geoms[bad] = _polygonal(shapely.make_valid(geoms[bad]))
            out = out.set_geometry(geoms, crs="EPSG:4326")
        return out

    def summary(self) -> dict[str, Any]:
        """Plain-data summary: polygons, area and population per tier and budget."""
        f = self.frame
        rows = []
        for (tier, b_m), g in f.groupby(["tier", "budget_m"], sort=False):
            rows.append(
                {
                    "tier": tier,
                    "budget_m": float(b_m),
                    "budget_min": float(g["budget_min"].iloc[0]),
                    "polygons": len(g),
                    "area_m2": float(g["area_m2"].sum()),
                    "population": float(g["population"].sum())
                    if g["population"].notna().any()
                    else None,
                }
            )
        return {
            "dissolve": self.dissolve,
            "rings": self.rings,
            "buffer_m": self.buffer_m,
            "simplify_m": self.simplify_m,
            "crs": self.crs,
            "polygons": len(f),
            "facilities_skipped": list(self.facilities_skipped),
            "groups": rows,
        }


def _check_area_options(
    facilities: pd.DataFrame, dissolve: str, buffer_m: float, simplify_m: float
) -> None:
    """Raise an InputError for a bad dissolve mode, buffer, tolerance or facilities table."""
    if dissolve not in DISSOLVE_MODES:
        raise InputError(f"dissolve must be one of {', '.join(DISSOLVE_MODES)}, got {dissolve!r}")
    if not (np.isfinite(buffer_m) and buffer_m > 0):
        raise InputError(f"buffer_m must be a positive number of metres, got {buffer_m!r}")
    if not (np.isfinite(simplify_m) and simplify_m >= 0):
        raise InputError(f"simplify_m must be >= 0 metres, got {simplify_m!r}")
    for col in ("id", "tier", "lon", "lat"):
        if col not in facilities.columns:
            raise InputError(f"facilities need a {col!r} column")


def _selected_tiers(
    standard: ServiceStandard, facilities: pd.DataFrame, tiers: Sequence[str] | None
) -> list[Tier]:
    """The tiers to draw: those named (in the standard's order) or all that have facilities."""
    if tiers:
        keys = []
        for t in tiers:
            key = standard.resolve_tier(t)
            if key is None:
                raise InputError(f"unknown tier {t!r}; known tiers: {', '.join(standard.keys)}")
            keys.append(key)
        sel_tiers = [standard.tier(k) for k in standard.keys if k in keys]
    else:
        present = set(facilities["tier"])
        sel_tiers = [t for t in standard.tiers if t.key in present]
    return sel_tiers


def _locate_residents(
    nets: Mapping[str, RoadNetwork],
    residents: pd.DataFrame | None,
    resident_located: Located | None,
    max_snap_m: float,
) -> tuple[Located | None, FloatArray]:
    """The residents located on the networks and their population (None and empty without)."""
    res_loc = None
    pop = np.zeros(0)
    if residents is not None:
        for col in ("id", "population", "lon", "lat"):
            if col not in residents.columns:
                raise InputError(f"residents need a {col!r} column")
        res_loc = resident_located or locate(
            nets,
            residents["lon"].to_numpy(float),
            residents["lat"].to_numpy(float),
            max_snap_m=max_snap_m,
        )
        pop = residents["population"].to_numpy(float)
    return res_loc, pop


def _add_facility_records(
    records: list[dict[str, Any]],
    geoms: list[Any],
    src: Positions,
    idx: IntArray,
    fac_ids: NDArray[Any],
    fac_names: NDArray[Any],
    base: dict[str, Any],
    b_m: FloatArray,
    b_min: FloatArray,
    rings: bool,
    popm: FloatArray,
    cnt: IntArray,
    polys: NDArray[np.object_],
) -> None:
    """Append a record and a polygon per facility on the network and budget."""
    nb = len(b_m)
    for j in np.flatnonzero(src.edge >= 0):
        for b in range(nb):
            records.append(
                {
                    "facility_id": fac_ids[idx[j]],
                    "name": fac_names[idx[j]],
                    **base,
                    **_budget_cols(b_m, b_min, b, rings),
                    "population": popm[j, b],
                    "residents": cnt[j, b],
                }
            )
            geoms.append(polys[j, b])


def _areas_frame(
    records: list[dict[str, Any]], geoms: list[Any], rings: bool, dissolve: str, crs: str
) -> gpd.GeoDataFrame:
    """The GeoDataFrame of the records and polygons (rings cut, areas added, columns ordered)."""
    import geopandas as gpd

    frame = pd.DataFrame.from_records(records)
    geo = np.array(geoms, dtype=object)
    if rings and len(frame):
        geo = _ringify(frame, geo, dissolve)
    geo = _polygonal(geo)
    if len(frame) == 0:
        frame = pd.DataFrame(
            {
                "tier": pd.Series(dtype=str),
                "budget_min": pd.Series(dtype=float),
                "budget_m": pd.Series(dtype=float),
            }
        )
    frame["area_m2"] = shapely.area(geo) if len(geo) else np.zeros(0)
    cols = [
        c
        for c in (
            "facility_id",
            "name",
            "tier",
            "mode",
            "budget_min",
            "budget_m",
            "ring_from_min",
            "ring_from_m",
            "area_m2",
            "population",
            "residents",
            "facilities",
        )
        if c in frame.columns
    ]
    return gpd.GeoDataFrame(frame[cols], geometry=list(geo) if len(geo) else [], crs=crs)


def compute_service_areas(
    networks: Mapping[str, RoadNetwork],
    facilities: pd.DataFrame,
    standard: ServiceStandard,
    *,
    residents: pd.DataFrame | None = None,
    tiers: Sequence[str] | None = None,
    minutes: Sequence[float] | None = None,
    metres: Sequence[float] | None = None,
    dissolve: str = "none",
    rings: bool = False,
    buffer_m: float = DEFAULT_BUFFER_M,
    simplify_m: float = 0.0,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    facility_located: Located | None = None,
    resident_located: Located | None = None,
) -> ServiceAreas:
    """Service-area polygons per facility, per tier or per catchment (see the module docstring).

    Parameters
    ----------
    networks : mapping
        ``{mode: RoadNetwork}`` for the modes of the selected tiers, all in one metric CRS.
    facilities : DataFrame
        ``id``, ``tier``, ``lon``, ``lat`` (WGS84); ``name`` optional.
    standard : ServiceStandard
    residents : DataFrame, optional
        ``id``, ``population``, ``lon``, ``lat``; fills the ``population`` attribute.
    tiers : sequence of str, optional
        Tier keys or labels to draw (default all tiers that have facilities).
    minutes, metres : sequence of float, optional
        Budgets (at most one of them); default each tier's own standard.
    dissolve : {"none", "tier", "catchment"}
    rings : bool
        Bands between consecutive budgets instead of nested polygons.
    buffer_m : float, default 50
        Buffer width around reachable streets, metres.
    simplify_m : float, default 0
        Douglas-Peucker tolerance, metres (0: none).
    max_snap_m : float
        Longest access leg; farther facilities get no polygon, farther residents count nowhere.

    Returns
    -------
    ServiceAreas
    """
    _check_area_options(facilities, dissolve, buffer_m, simplify_m)
    sel_tiers = _selected_tiers(standard, facilities, tiers)
    missing = {t.mode for t in sel_tiers} - set(networks)
    if missing:
        raise InputError(
            f"the selected tiers need network(s) for mode(s) {', '.join(sorted(missing))}"
        )
    nets: dict[str, RoadNetwork] = {m: networks[m] for m in sorted({t.mode for t in sel_tiers})}
    if not nets:
        raise InputError("no tier selected has facilities")
    crs = common_crs(nets)

    fac_loc = facility_located or locate(
        nets,
        facilities["lon"].to_numpy(float),
        facilities["lat"].to_numpy(float),
        max_snap_m=max_snap_m,
    )
    fac_xy = np.column_stack([fac_loc.x, fac_loc.y])
    fac_ids = facilities["id"].astype(str).to_numpy()
    fac_names = (
        facilities["name"].astype(str).to_numpy()
        if "name" in facilities.columns
        else np.full(len(facilities), "", dtype=object)
    )
    fac_tier = facilities["tier"].to_numpy()
    res_loc, pop = _locate_residents(nets, residents, resident_located, max_snap_m)

    records: list[dict[str, Any]] = []
    geoms: list[Any] = []
    skipped: list[str] = []
    for tier in sel_tiers:
        net = nets[tier.mode]
        graph = RoutingGraph.from_network(net)
        b_m, b_min = tier_budgets(tier, minutes=minutes, metres=metres)
        nb = len(b_m)
        serving = (tier.key,) if dissolve == "none" else standard.serving_tiers(tier.key)
        idx = np.flatnonzero(np.isin(fac_tier, serving))
        src = fac_loc.positions(tier.mode).subset(idx)
        off = src.edge < 0
        if off.any():
            skipped += [str(i) for i in fac_ids[idx[off]] if str(i) not in skipped]
            logger.warning(
                "%s: %d facilit(y/ies) farther than %.0f m from the network get no polygon",
                tier.key,
                int(off.sum()),
                max_snap_m,
            )
        xy = fac_xy[idx]
        base = {"tier": tier.key, "mode": tier.mode}
        res_pos = res_loc.positions(tier.mode) if res_loc is not None else None
        if dissolve == "none":
            polys = facility_areas(net, src, b_m, xy=xy, buffer_m=buffer_m, simplify_m=simplify_m)
            popm = np.full((len(idx), nb), np.nan)
            cnt = np.zeros((len(idx), nb), dtype=np.int64)
            if res_pos is not None and res_loc is not None:
                si, di, dm = pair_distances_within(
                    graph,
                    src,
                    res_pos,
                    xy,
                    np.column_stack([res_loc.x, res_loc.y]),
                    limit_m=float(b_m.max()),
                )
                popm, cnt = _band_sums(si, dm, pop[di], len(idx), b_m, rings)
            _add_facility_records(
                records,
                geoms,
                src,
                idx,
                fac_ids,
                fac_names,
                base,
                b_m,
                b_min,
                rings,
                popm,
                cnt,
                polys,
            )
        elif dissolve == "tier":
            polys = tier_areas(net, src, b_m, xy=xy, buffer_m=buffer_m, simplify_m=simplify_m)
            popv = np.full((1, nb), np.nan)
            cntv = np.zeros((1, nb), dtype=np.int64)
            if res_pos is not None:
                near = nearest_sources(graph, src, res_pos, limit_m=float(b_m.max()))
                got = np.isfinite(near.distance_m)
                popv, cntv = _band_sums(
                    np.zeros(int(got.sum()), np.int64),
                    near.distance_m[got],
                    pop[got],
                    1,
                    b_m,
                    rings,
                )
            for b in range(nb):
                records.append(
                    {
                        **base,
                        **_budget_cols(b_m, b_min, b, rings),
                        "facilities": int((src.edge >= 0).sum()),
                        "population": popv[0, b],
                        "residents": cntv[0, b],
                    }
                )
                geoms.append(polys[b])
        else:
            polys, tier_polys = catchment_areas(
                net, src, b_m, xy=xy, buffer_m=buffer_m, simplify_m=simplify_m
            )
            popm = np.full((len(idx), nb), np.nan)
            cnt = np.zeros((len(idx), nb), dtype=np.int64)
            if res_pos is not None:
                near = nearest_sources(graph, src, res_pos, limit_m=float(b_m.max()))
                got = near.source >= 0
                popm, cnt = _band_sums(
                    near.source[got], near.distance_m[got], pop[got], len(idx), b_m, rings
                )
            if rings:
                polys = polys.copy()
                for b in range(nb - 1, 0, -1):
                    polys[:, b] = _polygonal(shapely.difference(polys[:, b], tier_polys[b - 1]))
            _add_facility_records(
                records,
                geoms,
                src,
                idx,
                fac_ids,
                fac_names,
                base,
                b_m,
                b_min,
                rings,
                popm,
                cnt,
                polys,
            )
    gdf = _areas_frame(records, geoms, rings, dissolve, crs)
    logger.info(
        "service areas: %d polygon(s), dissolve=%s, rings=%s, buffer %.0f m",
        len(gdf),
        dissolve,
        rings,
        buffer_m,
    )
    return ServiceAreas(
        frame=gdf,
        crs=crs,
        dissolve=dissolve,
        rings=rings,
        buffer_m=float(buffer_m),
        simplify_m=float(simplify_m),
        facilities_skipped=skipped,
    )


def _budget_cols(b_m: FloatArray, b_min: FloatArray, b: int, rings: bool) -> dict[str, float]:
    cols = {"budget_min": float(b_min[b]), "budget_m": float(b_m[b])}
    if rings:
        cols["ring_from_min"] = float(b_min[b - 1]) if b else 0.0
        cols["ring_from_m"] = float(b_m[b - 1]) if b else 0.0
    return cols


def _band_sums(
    group: IntArray,
    dist_m: FloatArray,
    weight: FloatArray,
    n_groups: int,
    budgets_m: FloatArray,
    rings: bool,
) -> tuple[FloatArray, NDArray[np.int64]]:
    """People and resident points per group within each budget (or band with ``rings``)."""
    nb = len(budgets_m)
    popm = np.zeros((n_groups, nb))
    cnt = np.zeros((n_groups, nb), dtype=np.int64)
    for b in range(nb):
        sel = dist_m <= budgets_m[b]
        if rings and b:
            sel &= dist_m > budgets_m[b - 1]
        popm[:, b] = np.bincount(group[sel], weights=weight[sel], minlength=n_groups)
        cnt[:, b] = np.bincount(group[sel], minlength=n_groups)
    return popm, cnt


def _ringify(frame: pd.DataFrame, geo: NDArray[np.object_], dissolve: str) -> NDArray[np.object_]:
    """Replace nested polygons by bands: each row minus the same group's previous budget."""
    if dissolve == "catchment":
        return geo  # already banded against the previous tier polygon
    key = frame["tier"].astype(str)
    if "facility_id" in frame.columns:
        key = key + "\x00" + frame["facility_id"].astype(str)
    prev = np.full(len(frame), -1)
    same = np.zeros(len(frame), dtype=bool)
    same[1:] = key.to_numpy()[1:] == key.to_numpy()[:-1]
    prev[same] = np.flatnonzero(same) - 1
    out = geo.copy()
    has = prev >= 0
    out[has] = shapely.difference(geo[has], geo[prev[has]])
    return out
