"""Noding of the SYNTHETIC ways into an OSM network, and the OSM XML writer."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString

from lifecircle.demo.files import _fmt, _write_text
from lifecircle.demo.scene import _GENERATOR, _Frame, _parts, _Scene, _Way
from lifecircle.demo.town import _cut_for_barriers

logger = logging.getLogger(__name__)


@dataclass
class _Network:
    xy: NDArray[np.float64]  # node coordinates (local metres), node id = index + 1
    ways: list[tuple[NDArray[np.int64], dict[str, str], str]]  # node indices, tags, role


def _node_ways(scene: _Scene) -> _Network:
    """Cut barriers, insert a shared node at every crossing, trim overshoot stubs, split bridges."""
    items: list[tuple[LineString, _Way]] = []
    island_zone = shapely.union_all([w.geom.buffer(5.0) for w in scene.ways if w.role == "island"])
    for w in scene.ways:
        g = w.geom if w.role == "island" else _cut_for_barriers(scene, w.geom, w.may_cross)
        if w.role != "island" and not island_zone.is_empty and g.intersects(island_zone):
            g = g.difference(island_zone)  # nothing may touch the deliberate islands
        for part in _parts(g, "LineString"):
            if part.length >= 1.0:
                items.append((part, w))
    geoms = np.array([g for g, _ in items], dtype=object)
    maxseg = np.array([w.max_seg for _, w in items])
    # split points where a way enters a zone it may cross (bridges, underpasses)
    extra_line: list[int] = []
    extra_xy: list[NDArray[np.float64]] = []
    for k, (g, w) in enumerate(items):
        for b in scene.barriers:
            if b.key in w.may_cross and g.intersects(b.cut_zone):
                pts = shapely.get_coordinates(g.intersection(b.cut_zone.exterior))
                extra_line.extend([k] * len(pts))
                extra_xy.append(pts)
    geoms = shapely.set_precision(shapely.segmentize(geoms, maxseg), 0.01, mode="pointwise")
    tree = shapely.STRtree(geoms)
    qa, qb = tree.query(geoms, predicate="intersects")
    m = qa < qb
    qa, qb = qa[m], qb[m]
    inter = shapely.intersection(geoms[qa], geoms[qb])
    ic, ii = shapely.get_coordinates(inter, return_index=True)
    ins_line = np.concatenate([qa[ii], qb[ii], np.asarray(extra_line, np.int64)])
    ins_xy = np.vstack([ic, ic, *extra_xy]) if extra_xy else np.vstack([ic, ic])
    ins_d = shapely.line_locate_point(geoms[ins_line], shapely.points(ins_xy))
    vc, vi = shapely.get_coordinates(geoms, return_index=True)
    seg = np.hypot(*np.diff(vc, axis=0).T)
    seg = np.concatenate([[0.0], seg])
    starts = np.r_[True, vi[1:] != vi[:-1]]
    seg[starts] = 0.0
    cum = np.cumsum(seg)
    vd = cum - cum[np.flatnonzero(starts)][np.cumsum(starts) - 1]
    all_line = np.concatenate([vi, ins_line])
    all_d = np.concatenate([vd, ins_d])
    all_xy = np.vstack([vc, ins_xy])
    all_kind = np.concatenate([np.zeros(len(vi), np.int8), np.ones(len(ins_line), np.int8)])
    order = np.lexsort((all_kind, all_d, all_line))
    all_line, all_xy = all_line[order], all_xy[order]
    q = np.round(all_xy * 100.0).astype(np.int64)
    keys = (q[:, 0] + (1 << 26)) * (1 << 28) + (q[:, 1] + (1 << 26))
    keep = np.ones(len(keys), bool)
    keep[1:] = ~((all_line[1:] == all_line[:-1]) & (keys[1:] == keys[:-1]))
    all_line, keys = all_line[keep], keys[keep]
    ukeys, inv = np.unique(keys, return_inverse=True)
    node_xy = (
        np.column_stack([(ukeys // (1 << 28)) - (1 << 26), (ukeys % (1 << 28)) - (1 << 26)]) / 100.0
    )
    bounds = np.flatnonzero(np.r_[True, all_line[1:] != all_line[:-1]])
    lines_idx = all_line[bounds]
    chunks = np.split(inv, bounds[1:])
    counts = np.bincount(inv, minlength=len(ukeys))
    raw: list[tuple[NDArray[np.int64], _Way]] = []
    for li, nodes in zip(lines_idx, chunks, strict=True):
        w = items[int(li)][1]
        nodes = np.asarray(nodes, np.int64)
        if len(nodes) > 2 and nodes[0] != nodes[-1]:
            if counts[nodes[0]] == 1 and math.dist(node_xy[nodes[0]], node_xy[nodes[1]]) < 3.0:
                nodes = nodes[1:]
            if counts[nodes[-1]] == 1 and math.dist(node_xy[nodes[-1]], node_xy[nodes[-2]]) < 3.0:
                nodes = nodes[:-1]
        if len(nodes) >= 2:
            raw.append((nodes, w))
    # split bridges / underpasses into their own ways
    out: list[tuple[NDArray[np.int64], dict[str, str], str]] = []
    for nodes, w in raw:
        zones = [b for b in scene.barriers if b.key in w.may_cross]
        label = np.full(len(nodes) - 1, -1)
        if zones:
            mid = (node_xy[nodes[1:]] + node_xy[nodes[:-1]]) / 2
            for zi, b in enumerate(zones):
                inside = shapely.contains_xy(b.cut_zone, mid[:, 0], mid[:, 1])
                label[(label < 0) & inside] = zi
        cuts = np.flatnonzero(label[1:] != label[:-1]) + 1
        start = 0
        for end in [*cuts.tolist(), len(label)]:
            tags = dict(w.tags)
            if label[start] >= 0:
                tags.update(zones[int(label[start])].cross_tags)
            out.append((nodes[start : end + 1], tags, w.role))
            start = end
    out = _drop_stray_components(out, len(ukeys))
    # renumber the nodes actually used
    used = np.unique(np.concatenate([n for n, _, _ in out]))
    remap = np.full(len(ukeys), -1, np.int64)
    remap[used] = np.arange(len(used))
    return _Network(node_xy[used], [(remap[n], t, r) for n, t, r in out])


def _drop_stray_components(
    ways: list[tuple[NDArray[np.int64], dict[str, str], str]], n_nodes: int
) -> list[tuple[NDArray[np.int64], dict[str, str], str]]:
    """Keep the largest connected component and the deliberate islands; drop accidental strays."""
    parent = list(range(n_nodes))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for nodes, _, _ in ways:
        r0 = find(int(nodes[0]))
        for n in nodes[1:].tolist():
            r = find(n)
            if r != r0:
                parent[r] = r0
    roots = [find(int(nodes[0])) for nodes, _, _ in ways]
    sizes: dict[int, int] = {}
    for (nodes, _, _), r in zip(ways, roots, strict=True):
        sizes[r] = sizes.get(r, 0) + len(nodes)
    main = max(sizes, key=lambda r: sizes[r])
    keep_roots = {main} | {
        r for (_, _, role), r in zip(ways, roots, strict=True) if role == "island"
    }
    kept = [w for w, r in zip(ways, roots, strict=True) if r in keep_roots]
    if len(kept) < len(ways):
        logger.debug("dropped %d ways of %d accidental stray components", len(ways) - len(kept),
                     len({r for r in roots if r not in keep_roots}))  # fmt: skip
    return kept


def _write_osm(path: Path, frame: _Frame, scene: _Scene, net: _Network) -> dict[str, int]:
    lon, lat = frame.to_lonlat(net.xy[:, 0], net.xy[:, 1])
    parts = ["<?xml version='1.0' encoding='UTF-8'?>\n",
             f'<osm version="0.6" generator="{_GENERATOR}">\n']  # fmt: skip
    # barriers (river, railway) with their own nodes, clipped to the county and the mapped area
    area = (
        shapely.box(*shapely.bounds(shapely.multipoints(net.xy)))
        .buffer(1500.0)
        .intersection(scene.county)
    )
    b_ways: list[tuple[NDArray[np.float64], dict[str, str]]] = []
    for b in scene.barriers:
        for seg in _parts(b.line.intersection(area), "LineString"):
            b_ways.append(
                (np.asarray(shapely.get_coordinates(shapely.segmentize(seg, 100.0))), b.tags)
            )
    all_lon, all_lat = [lon], [lat]
    for coords, _ in b_ways:
        bl, bt = frame.to_lonlat(coords[:, 0], coords[:, 1])
        all_lon.append(bl)
        all_lat.append(bt)
    lon_a, lat_a = np.concatenate(all_lon), np.concatenate(all_lat)
    parts.append(f'  <bounds minlat="{_fmt(lat_a.min())}" minlon="{_fmt(lon_a.min())}" '
                 f'maxlat="{_fmt(lat_a.max())}" maxlon="{_fmt(lon_a.max())}"/>\n')  # fmt: skip
    ids = np.arange(1, len(lon_a) + 1)
    lat_s = np.char.mod("%.7f", lat_a)
    lon_s = np.char.mod("%.7f", lon_a)
    parts.extend(
        f'  <node id="{i}" lat="{la}" lon="{lo}" version="1"/>\n'
        for i, la, lo in zip(ids.tolist(), lat_s.tolist(), lon_s.tolist(), strict=True)
    )
    way_id = 0

    def way(node_ids: Sequence[int], tags: dict[str, str]) -> None:
        nonlocal way_id
        way_id += 1
        parts.append(f'  <way id="{way_id}" version="1">\n')
        parts.extend(f'    <nd ref="{n}"/>\n' for n in node_ids)
        parts.extend(f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>\n" for k, v in tags.items())
        parts.append("  </way>\n")

    for nodes, tags, _ in net.ways:
        way((nodes + 1).tolist(), tags)
    offset = len(lon) + 1
    for coords, tags in b_ways:
        way(list(range(offset, offset + len(coords))), tags)
        offset += len(coords)
    parts.append("</osm>\n")
    _write_text(path, "".join(parts))
    return {"nodes": len(lon), "ways": len(net.ways), "barrier_ways": len(b_ways)}
