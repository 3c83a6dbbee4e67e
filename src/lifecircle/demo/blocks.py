"""Blocks of the SYNTHETIC town: gated compounds, street-side buildings, parks, villages."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
import shapely.ops
from numpy.typing import NDArray
from shapely.geometry import LineString, Point, Polygon

from lifecircle.demo.scene import _ZONES, _Candidate, _jittered_line, _parts, _Scene, _Way


def _village_track(
    scene: _Scene,
    rng: np.random.Generator,
    a: tuple[float, float],
    b: tuple[float, float],
    ring: Polygon,
    barrier_zone: Any,
) -> None:
    coords = _jittered_line(rng, np.array(a), np.array(b), 0.06 * math.dist(a, b))
    line = LineString(coords)
    if line.intersects(ring.buffer(100.0)) or line.intersects(barrier_zone):
        return
    scene.ways.append(_Way(line, {"highway": "track"}, "rural", max_seg=60.0))


def _street_gate(piece: Any, street_tree: shapely.STRtree) -> bool:
    return (
        piece is not None
        and not piece.is_empty
        and len(street_tree.query(piece, predicate="intersects")) > 0
    )


def _compound(scene: _Scene, rng: np.random.Generator, sub: Polygon, name: str, zone: str,
              street_tree: shapely.STRtree) -> bool:  # fmt: skip
    """A gated compound: internal paths reachable from the street only through 1-3 gates."""
    inner_c = sub.buffer(-14.0)
    if inner_c.geom_type != "Polygon" or inner_c.area < 2500.0:
        return False
    paths = inner_c.buffer(-6.0)
    if paths.is_empty or paths.geom_type != "Polygon":
        return False
    cpt = paths.centroid if paths.contains(paths.centroid) else paths.representative_point()
    cx, cy = cpt.x, cpt.y
    minx, miny, maxx, maxy = sub.bounds
    outer = sub.buffer(2.0)
    horizontal = (maxx - minx) >= (maxy - miny)
    spine = None
    for attempt in (horizontal, not horizontal):
        full_line = (LineString([(minx - 60, cy), (maxx + 60, cy)]) if attempt
                     else LineString([(cx, miny - 60), (cx, maxy + 60)]))  # fmt: skip
        fulls = [
            g for g in _parts(full_line.intersection(outer), "LineString") if g.distance(cpt) < 1e-6
        ]
        if not fulls:
            continue
        full = fulls[0]
        ins = [g for g in _parts(full.intersection(paths), "LineString") if g.distance(cpt) < 1e-6]
        if not ins:
            continue
        a, b = sorted(
            (full.project(Point(ins[0].coords[0])), full.project(Point(ins[0].coords[-1])))
        )
        end_a = shapely.ops.substring(full, 0, a)
        end_b = shapely.ops.substring(full, b, full.length)
        ok_a, ok_b = _street_gate(end_a, street_tree), _street_gate(end_b, street_tree)
        if not (ok_a or ok_b):
            continue
        two = ok_a and ok_b and rng.random() < 0.45
        use_a = ok_a and (two or not ok_b or rng.random() < 0.5)
        use_b = ok_b and (two or not use_a)
        spine = shapely.ops.substring(full, 0 if use_a else a, full.length if use_b else b)
        n_gates = int(use_a) + int(use_b)
        horizontal = attempt
        break
    if spine is None or spine.length < 20.0:
        return False
    scene.ways.append(
        _Way(LineString(spine.coords), {"highway": "service", "service": "driveway"}, "compound")
    )
    gate_pt = spine.interpolate(a if use_a else b)
    # ribs across the spine; a rib may become a side gate
    step = float(rng.uniform(55, 75))
    side_gate = n_gates < 3 and rng.random() < 0.25
    positions = np.arange(a + step / 2, b, step)
    for k, pos in enumerate(positions):
        p = full.interpolate(float(pos))
        rib_full = (LineString([(p.x, miny - 60), (p.x, maxy + 60)]) if horizontal
                    else LineString([(minx - 60, p.y), (maxx + 60, p.y)]))  # fmt: skip
        target = outer if (side_gate and k == len(positions) // 2) else paths
        ribs = [
            g for g in _parts(rib_full.intersection(target), "LineString") if g.distance(p) < 1e-6
        ]
        if not ribs or ribs[0].length < 20.0:
            continue
        rib = ribs[0]
        if target is outer:
            half = [g for g in _parts(rib.difference(Point(p.x, p.y).buffer(0.01)), "LineString")]
            keep = [g for g in half if _street_gate(g.difference(paths), street_tree)]
            inner_rib = [
                g for g in _parts(rib.intersection(paths), "LineString") if g.distance(p) < 1e-6
            ]
            if keep and inner_rib:
                rib = shapely.union_all([keep[0], inner_rib[0]])
                rib = shapely.line_merge(rib)
                if rib.geom_type != "LineString":
                    rib = inner_rib[0]
            else:
                rib = inner_rib[0] if inner_rib else rib
        scene.ways.append(_Way(rib, {"highway": "footway"}, "compound"))
    # buildings
    d = float(rng.uniform(48, 58))
    bx0, by0, bx1, by1 = inner_c.bounds
    gx, gy = np.meshgrid(np.arange(bx0 + d / 2, bx1, d), np.arange(by0 + d / 2, by1, d))
    gx, gy = gx.ravel(), gy.ravel()
    inside = shapely.contains_xy(inner_c.buffer(-4.0), gx, gy)
    xy = np.column_stack([gx[inside], gy[inside]])
    if len(xy) == 0:
        xy = np.array([[cx + 10.0, cy + 10.0]])
    zp = _ZONES[zone]
    w = rng.uniform(*zp.building_pop, len(xy))
    scene.add_residents(
        xy, w, "compound", [f"{name}{k + 1}号楼" for k in range(len(xy))], zone, "town"
    )
    scene.stations.append(_Candidate(gate_pt.x, gate_pt.y, "小区", name, zone))
    return True


def _street_side(scene: _Scene, rng: np.random.Generator, sub: Polygon, zone: str, group: str,
                 street_tree: shapely.STRtree) -> None:  # fmt: skip
    """Buildings along the edge of a sub-block, facing the street."""
    ring = sub.buffer(-12.0)
    zp = _ZONES[zone]
    pts: list[NDArray[np.float64]] = []
    for poly in _parts(ring, "Polygon"):
        ext = LineString(poly.exterior.coords)
        spacing = float(rng.uniform(38, 48))
        n = max(1, int(ext.length // spacing))
        pts.append(
            np.asarray(shapely.get_coordinates(ext.interpolate(np.arange(n) * ext.length / n)))
        )
    if not pts:
        c = sub.representative_point()
        pts.append(np.array([[c.x, c.y]]))
    xy = np.vstack(pts)
    w = rng.uniform(*zp.street_pop, len(xy))
    label = {"town": "临街住宅", "township": "镇区住宅"}.get(group, "住宅")
    no = len(scene.rx)
    scene.add_residents(
        xy, w, "street", [f"{label}{no + k + 1}" for k in range(len(xy))], zone, group
    )


def _park(
    scene: _Scene, sub: Polygon, name: str, kind: str, zone: str, street_tree: shapely.STRtree
) -> None:
    """A park or square: a footway loop (parks) or cross (squares) joined to the street."""
    c = sub.representative_point()
    minx, miny, maxx, maxy = sub.bounds
    outer = sub.buffer(2.0)
    lines = []
    if kind == "公园":
        inner = sub.buffer(-15.0)
        for poly in _parts(inner, "Polygon")[:1]:
            lines.append(LineString(poly.exterior.coords))
    for full in (
        LineString([(minx - 50, c.y), (maxx + 50, c.y)]),
        LineString([(c.x, miny - 50), (c.x, maxy + 50)]),
    ):
        parts = [g for g in _parts(full.intersection(outer), "LineString") if g.distance(c) < 1e-6]
        if parts and _street_gate(parts[0], street_tree):
            lines.append(parts[0])
    if len(lines) < (2 if kind == "公园" else 1):
        return
    for ln in lines:
        scene.ways.append(_Way(ln, {"highway": "footway", "name": name}, "park"))
    scene.stations.append(_Candidate(c.x, c.y, kind, name, zone))


def _island_park(scene: _Scene, part: Polygon) -> None:
    inner = part.buffer(-40.0)
    polys = _parts(inner, "Polygon")
    if not polys:
        return
    poly = max(polys, key=lambda p: p.area)
    poly = poly.simplify(5.0)
    loop = LineString(poly.exterior.coords)
    scene.ways.append(_Way(loop, {"highway": "footway", "name": "新区体育公园环路"}, "island"))
    c = poly.representative_point()
    cross = [
        g
        for g in _parts(
            LineString([(poly.bounds[0] - 10, c.y), (poly.bounds[2] + 10, c.y)]).intersection(
                poly.buffer(1.0)
            ),
            "LineString",
        )
        if g.distance(c) < 1e-6
    ]
    for g in cross:
        scene.ways.append(_Way(g, {"highway": "footway", "name": "新区体育公园步道"}, "island"))
    scene.islands.append(
        f"新区体育公园 (sports park in the south-west new area, "
        f"about {c.x:.0f} m E / {c.y:.0f} m N of the centre): "
        "a footway loop mapped without its connection to the street"
    )


def _village(
    scene: _Scene, rng: np.random.Generator, v: tuple[float, float], name: str, group: str
) -> None:
    """A village: two crossing lanes through its centre, a few side lanes, houses along them."""
    vx, vy = v
    alpha = float(rng.uniform(0, math.pi))
    lanes: list[LineString] = []
    for k, ang in enumerate((alpha, alpha + math.pi / 2)):
        half = float(rng.uniform(140, 260))
        d = np.array([math.cos(ang), math.sin(ang)])
        lanes.append(LineString([np.array(v) - half * d, np.array(v), np.array(v) + half * d]))
        if k == 0:
            for off in rng.choice([-1.0, 1.0], size=int(rng.integers(0, 3)), replace=False):
                normal = np.array([-d[1], d[0]]) * off * float(rng.uniform(70, 110))
                h2 = half * float(rng.uniform(0.5, 0.9))
                lanes.append(
                    LineString([np.array(v) + normal - h2 * d, np.array(v) + normal + h2 * d])
                )
    # side lanes must meet the perpendicular lane: extend them a little across it
    tags = {"highway": "residential", "name": f"{name}大街"}
    scene.ways.append(_Way(lanes[0], tags, "village"))
    scene.ways.append(_Way(lanes[1], {"highway": "residential"}, "village"))
    for ln in lanes[2:]:
        if ln.intersects(lanes[1]):
            scene.ways.append(_Way(ln, {"highway": "service"}, "village"))
    houses: list[NDArray[np.float64]] = []
    for ln in lanes:
        n = max(2, int(ln.length // float(rng.uniform(20, 28))))
        pos = (np.arange(n) + 0.5) * ln.length / n
        for off in (14.0, -14.0):
            side = ln.offset_curve(off)
            if side.is_empty:
                continue
            pts = np.asarray(
                shapely.get_coordinates(side.interpolate(pos * side.length / ln.length))
            )
            houses.append(pts)
    xy = np.vstack(houses)
    # drop houses standing on another lane
    d_lane = shapely.distance(shapely.points(xy), shapely.union_all(lanes))
    xy = xy[d_lane > 8.0]
    if group != "town":
        keep = shapely.contains_xy(scene.county, xy[:, 0], xy[:, 1])
        xy = xy[keep]
    if len(xy) == 0:
        return
    w = rng.uniform(12.0, 30.0, len(xy))
    scene.add_residents(xy, w, "village", [f"{name}{k + 1}号院" for k in range(len(xy))], "village",
                        "town" if group == "town" else "rural")  # fmt: skip
    scene.villages.append((vx, vy, name))
