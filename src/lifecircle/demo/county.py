"""County scale of the SYNTHETIC demo: township seats, rural villages and roads."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, MultiPoint, Polygon

from lifecircle.demo.blocks import _street_side, _village
from lifecircle.demo.scene import (
    _TOWNSHIPS,
    _jittered_line,
    _parts,
    _polyline,
    _Scene,
    _unique_names,
    _village_pool,
    _Way,
)
from lifecircle.demo.town import _lattice_lines


def _poisson_points(
    rng: np.random.Generator,
    region: Any,
    n_max: int,
    min_dist: float,
    tries: int,
    fixed: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    minx, miny, maxx, maxy = region.bounds
    cand = np.column_stack([rng.uniform(minx, maxx, tries), rng.uniform(miny, maxy, tries)])
    cand = cand[shapely.contains_xy(region, cand[:, 0], cand[:, 1])]
    chosen = np.empty((0, 2)) if fixed is None else np.asarray(fixed, float).reshape(-1, 2)
    n_fixed = len(chosen)
    out: list[NDArray[np.float64]] = []
    for p in cand:
        if len(chosen) and float(np.min(np.hypot(*(chosen - p).T))) < min_dist:
            continue
        chosen = np.vstack([chosen, p])
        out.append(p)
        if len(chosen) - n_fixed >= n_max:
            break
    return np.asarray(out, float).reshape(-1, 2)


def _build_county(scene: _Scene, subdistrict: Polygon, town: dict[str, Any]) -> None:
    rng = scene.rng(2)
    county = scene.county
    # township seats
    region = county.buffer(-2500.0).difference(subdistrict.buffer(3500.0))
    seats = _poisson_points(rng, region, len(_TOWNSHIPS), 6500.0, 4000)
    if len(seats) < len(_TOWNSHIPS):
        seats = np.vstack(
            [seats, _poisson_points(rng, region, len(_TOWNSHIPS) - len(seats), 4000.0, 4000, seats)]
        )
    street_tree_empty = shapely.STRtree([])
    township_areas = []
    for k, (tx, ty) in enumerate(seats):
        name = _TOWNSHIPS[k]
        scene.townships.append((float(tx), float(ty), name))
        half = (float(rng.uniform(550, 850)), float(rng.uniform(450, 750)))
        runs, grid = _lattice_lines(scene, rng, (float(tx), float(ty)), half, 320.0, 20.0, None)
        nxg, nyg = grid.shape[0] - 1, grid.shape[1] - 1
        # the township seat is the lattice node nearest the centre (rural roads end there)
        ci_, cj_ = nxg // 2, nyg // 2
        centre_node = grid[ci_, cj_]
        scene.townships[-1] = (float(centre_node[0]), float(centre_node[1]), name)
        geoms = []
        for axis, i, coords in runs:
            main = (axis == "v" and i == ci_) or (axis == "h" and i == cj_)
            tags = {"highway": "tertiary" if main else "residential"}
            if main:
                tags["name"] = f"{name[:-1]}{'大街' if axis == 'h' else '中路'}"
            line = _polyline(coords)
            geoms.append(line)
            scene.ways.append(_Way(line, tags, "street", frozenset({"river", "rail"})))
        blocks = _parts(shapely.polygonize(shapely.get_parts(shapely.union_all(geoms))), "Polygon")
        township_areas.append(shapely.union_all(blocks).buffer(300.0))
        tree = shapely.STRtree(geoms)
        for blk in blocks:
            sub = blk
            if rng.random() < 0.5 and blk.area > 40000:
                c = blk.centroid
                _minx, miny, _maxx, maxy = blk.bounds
                lane = [
                    g
                    for g in _parts(
                        LineString([(c.x, miny - 20), (c.x, maxy + 20)]).intersection(
                            blk.buffer(2.0)
                        ),
                        "LineString",
                    )
                ]
                if lane:
                    scene.ways.append(
                        _Way(
                            lane[0],
                            {"highway": "residential"},
                            "street",
                            frozenset({"river", "rail"}),
                        )
                    )
                    for s in _parts(blk.difference(lane[0].buffer(0.25)), "Polygon"):
                        _street_side(scene, rng, s, "township", "township", tree)
                    continue
            _street_side(scene, rng, sub, "township", "township", street_tree_empty)
    # rural villages
    avoid = shapely.union_all([subdistrict.buffer(700.0), *township_areas])
    vregion = county.buffer(-350.0).difference(avoid)
    vpts = _poisson_points(rng, vregion, 800, 880.0, 16000)
    vnames = _unique_names(rng, _village_pool(), scene.names_used, len(vpts))
    first_rural = len(scene.villages)
    for (vx, vy), name in zip(vpts, vnames, strict=True):
        _village(scene, rng, (float(vx), float(vy)), name, "rural")
    rural = scene.villages[first_rural:]
    # rural road network: Delaunay edges between villages, township seats and town gateways
    nodes = np.array([(x, y) for x, y, _ in rural] + [(x, y) for x, y, _ in scene.townships]
                     + [tuple(g) for g in scene.gateways]
                     + [(x, y) for x, y, _ in scene.villages[:first_rural]])  # fmt: skip
    n_r, n_t, n_g = len(rural), len(scene.townships), len(scene.gateways)
    edges = shapely.get_parts(shapely.delaunay_triangles(MultiPoint(nodes), only_edges=True))
    ring = town["ring"].buffer(-5.0)
    key = {(round(float(x), 3), round(float(y), 3)): i for i, (x, y) in enumerate(nodes)}
    seen = set()
    for e in edges:
        (x1, y1), (x2, y2) = e.coords[0], e.coords[-1]
        ia = key.get((round(x1, 3), round(y1, 3)))
        ib = key.get((round(x2, 3), round(y2, 3)))
        if ia is None or ib is None:
            continue
        a, b = min(ia, ib), max(ia, ib)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        length = math.dist(nodes[a], nodes[b])
        if length > 4200.0 or e.intersects(ring) or not county.contains(e.centroid):
            continue
        major = (a >= n_r and a < n_r + n_t + n_g) or (b >= n_r and b < n_r + n_t + n_g)
        hw = (
            "tertiary"
            if major and length > 1500
            else ("unclassified" if length > 1300 or major else "track")
        )
        coords = _jittered_line(rng, nodes[a], nodes[b], 0.05 * length, 2)
        scene.ways.append(
            _Way(LineString(coords), {"highway": hw}, "rural", frozenset({"river", "rail"}), 40.0)
        )
