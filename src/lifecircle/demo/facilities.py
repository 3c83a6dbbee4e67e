"""SYNTHETIC facility inventory: centres, stations and convenience points on streets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from lifecircle.demo.network import _Network
from lifecircle.demo.residents import _Residents
from lifecircle.demo.scene import (
    _STATION_KINDS,
    _VILLAGE_WEIGHT,
    _ZONES,
    TIER_COUNTS,
    _Candidate,
    _Frame,
    _Scene,
)
from lifecircle.demo.units import _Units


@dataclass
class _Segments:
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    role: NDArray[Any]
    tree: shapely.STRtree

    def snap(self, xy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        idx = self.tree.query_nearest(shapely.points(xy), all_matches=False)[1]
        a, b = self.a[idx], self.b[idx]
        d = b - a
        t = np.clip(((xy - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0.0, 1.0)
        return a + d * t[:, None], idx


def _segments(net: _Network, roles: set[str]) -> _Segments:
    a_l, b_l, r_l = [], [], []
    for nodes, tags, role in net.ways:
        if role not in roles or tags.get("highway") == "track":
            continue
        a_l.append(net.xy[nodes[:-1]])
        b_l.append(net.xy[nodes[1:]])
        r_l.extend([role] * (len(nodes) - 1))
    a, b = np.vstack(a_l), np.vstack(b_l)
    tree = shapely.STRtree(np.asarray(shapely.linestrings(np.stack([a, b], axis=1)), dtype=object))
    return _Segments(a, b, np.array(r_l), tree)


def _facility_weights(scene: _Scene, res: _Residents) -> NDArray[np.float64]:
    f = np.array(
        [
            _VILLAGE_WEIGHT["county" if g == "rural" else "town"]
            if z == "village"
            else _ZONES[z].facility_weight
            for z, g in zip(res.zone, res.group, strict=True)
        ]
    )
    return res.pop * f


def _place_facilities(scene: _Scene, frame: _Frame, net: _Network, res: _Residents,
                      units: _Units) -> list[dict[str, Any]]:  # fmt: skip
    rng = scene.rng(5)
    segs = _segments(net, {"street", "compound", "park", "village", "promenade", "rural"})
    street_segs = _segments(net, {"street", "village", "rural"})
    rows: list[dict[str, Any]] = []

    def add(fid: str, name: str, tier: str, kind: str, x: float, y: float) -> None:
        rows.append({"id": fid, "name": name, "tier": tier, "kind": kind, "x": x, "y": y})

    # county and sub-district centres
    (p,), _ = segs.snap(np.array([[0.0, 0.0]]))
    add("CTY01", "郯城县党群服务中心", "county_centre", "党群服务中心", *p)
    (p,), _ = segs.snap(np.array([[420.0, -380.0]]))
    add("SUB01", "郯城街道党群服务中心", "subdistrict_centre", "党群服务中心", *p)
    # one centre inside each community
    res_ll = np.column_stack(frame.to_lonlat(res.xy[:, 0], res.xy[:, 1]))
    for k, (_cid, cname, g) in enumerate(units.communities):
        m = shapely.contains_xy(g, res_ll[:, 0], res_ll[:, 1])
        cxy = (
            (res.xy[m] * res.pop[m, None]).sum(0) / res.pop[m].sum()
            if m.any()
            else np.array(frame.to_local(g.representative_point().x, g.representative_point().y))
        )
        cands = np.vstack(
            [cxy[None, :], res.xy[m][np.argsort(((res.xy[m] - cxy) ** 2).sum(1))[:50]]]
        )
        snapped, _ = segs.snap(cands)
        sll = np.column_stack(frame.to_lonlat(snapped[:, 0], snapped[:, 1]))
        ok = np.flatnonzero(shapely.contains_xy(g, sll[:, 0], sll[:, 1]))
        pick = snapped[ok[0]] if len(ok) else cands[1 if len(cands) > 1 else 0]
        add(f"CC{k + 1:02d}", f"{cname}党群服务中心", "community_centre", "党群服务中心", *pick)
    # stations: sampled by kind, weighted by nearby population and the zone's siting weight
    weights = _facility_weights(scene, res)
    cell = 250.0
    res_cell = np.floor(res.xy / cell).astype(np.int64)
    cell_pop: dict[tuple[int, int], float] = {}
    for (cx, cy), wv in zip(map(tuple, res_cell), weights, strict=True):
        cell_pop[(cx, cy)] = cell_pop.get((cx, cy), 0.0) + float(wv)
    st_rows: list[_Candidate] = []
    kinds = dict(_STATION_KINDS)
    for kind in ("公园", "广场", "商业街", "小区"):
        pool = [c for c in scene.stations if c.kind == kind]
        need = kinds[kind]
        if len(pool) < need and kind != "小区":
            kinds["小区"] += need - len(pool)
            need = len(pool)
        if need == 0:
            continue
        wv = np.array(
            [
                cell_pop.get((math.floor(c.x / cell), math.floor(c.y / cell)), 0.0) + 1.0
                for c in pool
            ]
        )
        wv *= np.array([_ZONES[c.zone].facility_weight if c.zone in _ZONES else 1.0 for c in pool])
        picks = rng.choice(len(pool), size=min(need, len(pool)), replace=False, p=wv / wv.sum())
        st_rows.extend(pool[int(i)] for i in sorted(picks))
    st_rows.sort(key=lambda c: (-round(c.y / 400.0), c.x))
    st_xy, _ = segs.snap(np.array([[c.x, c.y] for c in st_rows]))
    for k, (c, p) in enumerate(zip(st_rows, st_xy, strict=True)):
        add(f"ST{k + 1:03d}", f"{c.name}服务站", "station", c.kind, *p)
    # convenience points: systematic sampling along a serpentine order of 200 m cells
    n_pt = TIER_COUNTS["point"]
    cells_xy = np.floor(res.xy / 200.0).astype(np.int64)
    serp = np.where(cells_xy[:, 1] % 2 == 0, cells_xy[:, 0], -cells_xy[:, 0])
    order = np.lexsort((rng.random(len(res.pop)), serp, cells_xy[:, 1]))
    cum = np.cumsum(weights[order])
    step = cum[-1] / n_pt
    targets = float(rng.uniform(0, step)) + step * np.arange(n_pt)
    picked = order[np.searchsorted(cum, targets, side="right").clip(0, len(order) - 1)]
    base = res.xy[picked] + rng.normal(0.0, 25.0, (n_pt, 2))
    inner = rng.random(n_pt) < 0.3  # some points inside compounds, most along public streets
    pt_xy, seg_idx = street_segs.snap(base)
    pt_role = street_segs.role[seg_idx]
    if inner.any():
        in_xy, in_idx = segs.snap(base[inner])
        pt_xy[inner] = in_xy
        pt_role[inner] = segs.role[in_idx]
    unit_names = _point_unit_names(frame, pt_xy, units)
    counters: dict[str, int] = {}
    role_kind = {"compound": "小区内", "village": "村内", "rural": "村内"}
    for k, (p, role, un) in enumerate(zip(pt_xy, pt_role, unit_names, strict=True)):
        counters[un] = counters.get(un, 0) + 1
        kind = role_kind.get(str(role), "街边")
        add(f"PT{k + 1:04d}", f"{un}便民点{counters[un]:02d}", "point", kind, *p)
    return rows


def _point_unit_names(frame: _Frame, xy: NDArray[np.float64], units: _Units) -> list[str]:
    ll = np.column_stack(frame.to_lonlat(xy[:, 0], xy[:, 1]))
    out = ["郯城县"] * len(xy)
    for _, name, g in [*units.communities, *units.townships]:
        for i in np.flatnonzero(shapely.contains_xy(g, ll[:, 0], ll[:, 1])):
            out[int(i)] = name
    return out
