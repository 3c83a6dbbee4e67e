"""The SYNTHETIC county seat: river, railway, arterial grid, blocks and edge villages."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
import shapely.ops
from numpy.typing import NDArray
from shapely.geometry import LineString, Point, Polygon, box

from lifecircle.demo.blocks import (
    _compound,
    _island_park,
    _park,
    _street_side,
    _village,
    _village_track,
)
from lifecircle.demo.scene import (
    _EW_NAMES,
    _HALF_H,
    _HALF_W,
    _LANE_NAMES,
    _NEW_AREA,
    _NS_NAMES,
    _OLD_TOWN,
    _ZONES,
    _Barrier,
    _Candidate,
    _compound_pool,
    _jittered_line,
    _parts,
    _polyline,
    _Scene,
    _unique_names,
    _village_pool,
    _Way,
)


def _river_fn(rng: np.random.Generator) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    phase = float(rng.uniform(0, 2 * math.pi))
    base = float(rng.uniform(1950, 2250))

    def river_x(y: NDArray[np.float64]) -> NDArray[np.float64]:
        y = np.asarray(y, float)
        return base + 0.22 * y + 140.0 * np.sin(y / 650.0 + phase)

    return river_x


def _zone_of(scene: _Scene, x: float, y: float) -> str:
    assert scene.river_x is not None
    if x > float(scene.river_x(np.array([y]))[0]):
        return "east"
    if x < _NEW_AREA[0] and y < _NEW_AREA[1]:
        return "new"
    if abs(x) < _OLD_TOWN[0] and abs(y) < _OLD_TOWN[1]:
        return "old"
    return "urban"


def _cut_for_barriers(scene: _Scene, geom: Any, may_cross: frozenset[str]) -> Any:
    for b in scene.barriers:
        if b.key not in may_cross and geom.intersects(b.cut_zone):
            geom = geom.difference(b.cut_zone)
    return geom


def _lattice_lines(
    scene: _Scene, rng: np.random.Generator, centre: tuple[float, float], half: tuple[float, float],
    spacing: float, jitter: float, sparse: Callable[[int, float, float], bool] | None,
) -> tuple[list[tuple[str, int, NDArray[np.float64]]], NDArray[np.float64]]:  # fmt: skip
    """An irregular grid of arterial polylines: ``(axis, index, coords)`` runs and the nodes."""
    cx, cy = centre
    nx = max(2, round(2 * half[0] / spacing))
    ny = max(2, round(2 * half[1] / spacing))
    xs = np.linspace(cx - half[0], cx + half[0], nx + 1)
    ys = np.linspace(cy - half[1], cy + half[1], ny + 1)
    xs[1:-1] += rng.uniform(-0.14, 0.14, nx - 1) * spacing
    ys[1:-1] += rng.uniform(-0.14, 0.14, ny - 1) * spacing
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    grid += rng.uniform(-jitter, jitter, grid.shape)
    runs: list[tuple[str, int, NDArray[np.float64]]] = []
    for axis in ("v", "h"):
        count = nx + 1 if axis == "v" else ny + 1
        length = ny if axis == "v" else nx
        for i in range(count):
            current: list[NDArray[np.float64]] = []
            for j in range(length):
                p = grid[i, j] if axis == "v" else grid[j, i]
                q = grid[i, j + 1] if axis == "v" else grid[j + 1, i]
                mid = (p + q) / 2
                boundary = i in (0, count - 1)
                if sparse is not None and not boundary and sparse(i, float(mid[0]), float(mid[1])):
                    if current:
                        runs.append((axis, i, np.vstack(current)))
                    current = []
                    continue
                seg = _jittered_line(rng, p, q, 0.02 * spacing)
                current.append(seg if not current else seg[1:])
            if current:
                runs.append((axis, i, np.vstack(current)))
    return runs, grid


def _build_barriers(
    scene: _Scene,
    rng: np.random.Generator,
    river_x: Callable[[NDArray[np.float64]], NDArray[np.float64]],
) -> tuple[LineString, LineString]:
    """The river through the east of town and the railway across the north, as barriers."""
    ys = np.arange(-60000.0, 60001.0, 100.0)
    river = LineString(np.column_stack([river_x(ys), ys]))
    rail_phase = float(rng.uniform(0, 2 * math.pi))
    xs = np.arange(-60000.0, 60001.0, 100.0)
    rail = LineString(
        np.column_stack([xs, 1750.0 + 0.12 * xs + 60.0 * np.sin(xs / 1500.0 + rail_phase)])
    )
    scene.barriers = [
        _Barrier("river", river, river.buffer(45.0), river.buffer(70.0),
                 {"bridge": "yes", "layer": "1"}, {"waterway": "river", "name": "白马河"}),
        _Barrier("rail", rail, rail.buffer(12.0), rail.buffer(25.0),
                 {"tunnel": "yes", "layer": "-1"}, {"railway": "rail", "usage": "main"}),
    ]  # fmt: skip
    return river, rail


def _arterial_class(axis: str, i: int, count: int, centre_idx: int, jc: int) -> str:
    """The highway class of arterial ``i`` along ``axis`` (ring, central or alternating)."""
    if i in (0, count - 1):
        return "secondary"
    if abs(i - centre_idx) <= 0 or (axis == "h" and i == jc + 3):
        return "primary"
    return "secondary" if i % 2 == 0 else "tertiary"


def _build_arterials(
    scene: _Scene, rng: np.random.Generator
) -> tuple[NDArray[np.float64], list[LineString]]:
    """The arterial grid and the diagonal old street: the lattice nodes and the arterial lines."""

    def sparse(i: int, mx: float, my: float) -> bool:
        return i % 2 == 1 and mx < _NEW_AREA[0] and my < _NEW_AREA[1]

    runs, grid = _lattice_lines(scene, rng, (0.0, 0.0), (_HALF_W, _HALF_H), 650.0, 35.0, sparse)
    nx, ny = grid.shape[0] - 1, grid.shape[1] - 1
    ic = int(np.argmin(np.abs(grid[:, ny // 2, 0])))
    jc = int(np.argmin(np.abs(grid[nx // 2, :, 1])))
    interior_h = [j for j in range(1, ny) if j != jc]
    bridges = {
        jc,
        *(int(v) for v in rng.choice(interior_h, size=int(rng.integers(2, 4)), replace=False)),
    }
    interior_v = [i for i in range(1, nx) if i != ic]
    underpasses = {
        ic,
        *(int(v) for v in rng.choice(interior_v, size=int(rng.integers(1, 3)), replace=False)),
    }
    ns_names = list(_NS_NAMES[: nx + 1])
    ns_names[-1] = "郯东路"
    ew_names = list(_EW_NAMES[: ny + 1])
    ew_names[-1] = "环城北路"
    ew_names[jc] = "人民路"
    arterial_geoms: list[LineString] = []
    for axis, i, coords in runs:
        count = nx + 1 if axis == "v" else ny + 1
        centre_idx = ic if axis == "v" else jc
        hw = _arterial_class(axis, i, count, centre_idx, jc)
        name = ns_names[i] if axis == "v" else ew_names[i]
        may: set[str] = set()
        if axis == "h" and i in bridges:
            may.add("river")
        if axis == "v" and i in underpasses:
            may.add("rail")
        line = _polyline(coords)
        arterial_geoms.append(line)
        scene.ways.append(_Way(line, {"highway": hw, "name": name}, "street", frozenset(may)))
    # a diagonal old street through the old town
    nodes = grid.reshape(-1, 2)
    outside_new = ~((nodes[:, 0] < _NEW_AREA[0]) & (nodes[:, 1] < _NEW_AREA[1]))
    ends = [nodes[outside_new][np.argmin(np.hypot(*(nodes[outside_new] - t).T))]
            for t in (np.array([-1100.0, -900.0]), np.array([950.0, 850.0]))]  # fmt: skip
    diag = _jittered_line(rng, ends[0], ends[1], 40.0, 2)
    diag_line = _polyline(diag)
    arterial_geoms.append(diag_line)
    scene.ways.append(_Way(diag_line, {"highway": "tertiary", "name": "鼓楼街"}, "street"))
    return grid, arterial_geoms


def _add_gateways(scene: _Scene, grid: NDArray[np.float64]) -> None:
    """Gateways on the ring (for county roads): the lattice boundary nodes."""
    nx, ny = grid.shape[0] - 1, grid.shape[1] - 1
    for i in range(0, nx + 1, 2):
        scene.gateways.extend([tuple(grid[i, 0]), tuple(grid[i, ny])])
    for j in range(1, ny, 2):
        scene.gateways.extend([tuple(grid[0, j]), tuple(grid[nx, j])])


def _block_parts(scene: _Scene, arterial_geoms: list[LineString]) -> list[Polygon]:
    """The blocks between the arterials outside the barrier zones, sorted by centroid."""
    noded = shapely.union_all(arterial_geoms)
    blocks = _parts(shapely.polygonize(shapely.get_parts(noded)), "Polygon")
    exclusion = shapely.union_all([b.exclude_zone for b in scene.barriers])
    block_parts: list[Polygon] = []
    for blk in blocks:
        for part in _parts(blk.difference(exclusion), "Polygon"):
            if part.area > 2000.0:
                block_parts.append(part)
    block_parts.sort(key=lambda p: (round(p.centroid.y, 1), round(p.centroid.x, 1)))
    return block_parts


def _dead_end(rng: np.random.Generator, seg: Any) -> Any:
    """A cul-de-sac: the part of ``seg`` from one of its ends to 40-70 % of its length."""
    frac = float(rng.uniform(0.4, 0.7))
    return (shapely.ops.substring(seg, 0, frac * seg.length) if rng.random() < 0.5
            else shapely.ops.substring(seg, (1 - frac) * seg.length, seg.length))  # fmt: skip


def _local_street_tags(
    rng: np.random.Generator, zone: str, lane_names: list[str], lane_counter: int
) -> tuple[dict[str, str], int]:
    """OSM tags of a local street in ``zone``, and the lane counter after naming it (if named)."""
    tags = {"highway": "residential" if zone != "old" or rng.random() < 0.7 else "unclassified"}
    if zone == "old" and rng.random() < 0.1:
        tags["oneway"] = "yes"
    if rng.random() < (0.6 if zone == "old" else 0.3):
        tags["name"] = lane_names[lane_counter % len(lane_names)] + (
            "" if lane_counter < len(lane_names) else str(lane_counter // len(lane_names) + 1)
        )
        lane_counter += 1
    return tags, lane_counter


def _local_streets(
    scene: _Scene, rng: np.random.Generator, block_parts: list[Polygon], island_park: Polygon | None
) -> list[list[_Way]]:
    """Local streets of each block part (none in the island park), also added to the scene."""
    local_lines: list[list[_Way]] = []
    lane_names = list(_LANE_NAMES)
    lane_counter = 0
    for part in block_parts:
        zone = _zone_of(scene, part.centroid.x, part.centroid.y)
        zp = _ZONES[zone]
        these: list[_Way] = []
        if part is not island_park:
            for dim in (0, 1):
                if rng.random() > zp.local_prob:
                    continue
                s = float(rng.uniform(*zp.spacing))
                minx, miny, maxx, maxy = part.bounds
                lo, hi = (minx, maxx) if dim == 0 else (miny, maxy)
                lo2, hi2 = (miny, maxy) if dim == 0 else (minx, maxx)
                if hi - lo < 1.3 * s:
                    continue
                outer = part.buffer(2.0)
                for c in np.arange(lo + s * rng.uniform(0.45, 0.65), hi - 0.4 * s, s):
                    c = float(c + rng.uniform(-10, 10))
                    slope = float(rng.uniform(-0.04, 0.04))
                    a, b = lo2 - 30.0, hi2 + 30.0
                    pts = np.array([[c, a], [c + slope * (b - a), b]])
                    if dim == 1:
                        pts = pts[:, ::-1]
                    for seg in _parts(LineString(pts).intersection(outer), "LineString"):
                        if seg.length < 50.0:
                            continue
                        if rng.random() < zp.culdesac:
                            seg = _dead_end(rng, seg)
                        tags, lane_counter = _local_street_tags(rng, zone, lane_names, lane_counter)
                        these.append(_Way(seg, tags, "street"))
        local_lines.append(these)
        scene.ways.extend(these)
    return local_lines


def _fill_sub_blocks(
    scene: _Scene,
    rng: np.random.Generator,
    block_parts: list[Polygon],
    local_lines: list[list[_Way]],
    island_park: Polygon | None,
    street_tree: shapely.STRtree,
) -> None:
    """Sub-blocks between the local streets: compounds, street-side buildings, parks, squares."""
    names_c = _unique_names(rng, _compound_pool(), scene.names_used, 3000)
    ci = 0
    park_no = 0
    for part, these in zip(block_parts, local_lines, strict=True):
        zone = _zone_of(scene, part.centroid.x, part.centroid.y)
        zp = _ZONES[zone]
        if part is island_park:
            _island_park(scene, part)
            continue
        subs = [part]
        if these:
            cut = shapely.union_all([w.geom for w in these]).buffer(0.25)
            subs = [s for s in _parts(part.difference(cut), "Polygon") if s.area > 600.0]
        for sub in subs:
            r = rng.random()
            if zone != "old" and r < zp.vacant:
                continue
            r = rng.random()
            if sub.area > 12000 and r < zp.park:
                park_no += 1
                _park(scene, sub, f"{names_c[ci][:2]}公园", "公园", zone, street_tree)
                ci += 1
                continue
            if sub.area > 3000 and r < zp.park + zp.square:
                _park(scene, sub, f"{names_c[ci][:2]}广场", "广场", zone, street_tree)
                ci += 1
                continue
            if sub.area >= zp.compound_min_area and rng.random() < zp.compound:
                if _compound(scene, rng, sub, names_c[ci], zone, street_tree):
                    ci += 1
                    continue
            _street_side(scene, rng, sub, zone, "town", street_tree)


def _shopping_streets(scene: _Scene) -> None:
    """Shopping-street candidates at the middle of every named old-town lane."""
    for w in scene.ways:
        if (
            w.role == "street"
            and "name" in w.tags
            and w.tags["highway"] in ("residential", "unclassified")
        ):
            mid = w.geom.interpolate(0.5, normalized=True)
            if _zone_of(scene, mid.x, mid.y) == "old":
                scene.stations.append(_Candidate(mid.x, mid.y, "商业街", w.tags["name"], "old"))


def _riverside(
    scene: _Scene,
    river: LineString,
    ring: Polygon,
    grid: NDArray[np.float64],
    river_x: Callable[[NDArray[np.float64]], NDArray[np.float64]],
) -> None:
    """Promenades along both river banks and the footways of the river island (no bridge)."""
    nx, ny = grid.shape[0] - 1, grid.shape[1] - 1
    town_box = ring.buffer(150.0)
    for side, label in ((58.0, "西"), (-58.0, "东")):
        prom = river.offset_curve(side).intersection(town_box)
        for seg in _parts(prom, "LineString"):
            scene.ways.append(
                _Way(seg, {"highway": "footway", "name": f"白马河{label}岸步道"}, "promenade")
            )
    j_isl = ny // 2 - 2 if ny // 2 - 2 >= 0 else 0
    y_isl = float((grid[nx // 2, j_isl, 1] + grid[nx // 2, j_isl + 1, 1]) / 2)
    x_isl = float(river_x(np.array([y_isl]))[0])
    t = np.linspace(0, 2 * math.pi, 25)
    ang = math.atan(0.22)  # along the river
    ex, ey = 16.0 * np.cos(t), 70.0 * np.sin(t)
    loop = np.column_stack([x_isl + ex * math.cos(ang) + ey * math.sin(ang),
                            y_isl - ex * math.sin(ang) + ey * math.cos(ang)])  # fmt: skip
    loop[-1] = loop[0]
    scene.ways.append(
        _Way(LineString(loop), {"highway": "footway", "name": "白马河河心岛步道"}, "island")
    )
    scene.ways.append(
        _Way(
            LineString([loop[6], loop[18]]),
            {"highway": "footway", "name": "白马河河心岛步道"},
            "island",
        )
    )
    scene.islands.append(
        f"白马河河心岛 (river island park, about {x_isl:.0f} m E / {y_isl:.0f} m N of the centre): "
        "footways in the river with no bridge"
    )


def _village_site(
    scene: _Scene, rng: np.random.Generator, k: int, n_vill: int, barrier_zone: Any
) -> tuple[float, float] | None:
    """Where village ``k`` of ``n_vill`` goes: outside the town, clear of barriers, or None."""
    theta = 2 * math.pi * k / n_vill + float(rng.uniform(-0.15, 0.15))
    c, s = math.cos(theta), math.sin(theta)
    r_edge = min(_HALF_W / max(abs(c), 1e-9), _HALF_H / max(abs(s), 1e-9))
    placed = None
    for _ in range(8):
        r = r_edge + float(rng.uniform(700, 1500))
        v = (r * c, r * s)
        if not barrier_zone.buffer(300.0).contains(Point(v)) and scene.county.buffer(-600).contains(
            Point(v)
        ):
            placed = v
            break
    return placed


def _village_road(
    rng: np.random.Generator,
    v: tuple[float, float],
    name: str,
    ring_pts: NDArray[np.float64],
    ring_tree: shapely.STRtree,
    barrier_zone: Any,
) -> _Way:
    """The rural road to the nearest ring point reachable without crossing river or railway."""
    d = np.hypot(ring_pts[:, 0] - v[0], ring_pts[:, 1] - v[1])
    road = None
    for idx in np.argsort(d, kind="stable"):
        p = ring_pts[idx]
        direction = (p - np.array(v)) / max(float(d[idx]), 1e-9)
        coords = _jittered_line(rng, np.array(v), p + 2.0 * direction, 0.05 * float(d[idx]))
        cand = LineString(coords)
        if cand.intersects(barrier_zone) or len(ring_tree.query(cand, predicate="intersects")) == 0:
            continue
        road = _Way(cand, {"highway": "unclassified", "name": f"{name}路"}, "rural", max_seg=60.0)
        break
    if road is None:  # cannot avoid the river/railway: a bridge or crossing it is
        p = ring_pts[int(np.argmin(d))]
        direction = (p - np.array(v)) / max(float(d.min()), 1e-9)
        road = _Way(
            LineString([v, p + 2.0 * direction]),
            {"highway": "unclassified", "name": f"{name}路"},
            "rural",
            frozenset({"river", "rail"}),
            60.0,
        )
    return road


def _build_villages(scene: _Scene, rng: np.random.Generator, ring: Polygon) -> None:
    """Villages around the town, each with a rural road to the ring, some joined by tracks."""
    vnames = _unique_names(rng, _village_pool(), scene.names_used, 15)
    n_vill = int(rng.integers(10, 14))
    ring_pts = np.asarray(shapely.get_coordinates(
        shapely.segmentize(LineString(ring.exterior.coords), 40.0)))  # fmt: skip
    ring_roads = [w.geom for w in scene.ways if w.role == "street"]
    ring_tree = shapely.STRtree(ring_roads)
    barrier_zone = shapely.union_all([b.exclude_zone for b in scene.barriers])
    prev: tuple[float, float] | None = None
    first: tuple[float, float] | None = None
    for k in range(n_vill):
        placed = _village_site(scene, rng, k, n_vill, barrier_zone)
        if placed is None:
            continue
        v = placed
        name = vnames[k]
        _village(scene, rng, v, name, "town")
        scene.ways.append(_village_road(rng, v, name, ring_pts, ring_tree, barrier_zone))
        if prev is not None and rng.random() < 0.6:
            _village_track(scene, rng, prev, v, ring, barrier_zone)
        prev = v
        first = first or v
    if prev is not None and first is not None and rng.random() < 0.6:
        _village_track(scene, rng, prev, first, ring, barrier_zone)


def _build_town(scene: _Scene) -> dict[str, Any]:
    """Arterials, blocks, local streets, compounds, river, railway, villages of the county seat."""
    rng = scene.rng(1)
    scene.river_x = _river_fn(rng)
    river_x = scene.river_x
    # --- barriers: a river through the east of town, a railway across the north ----------------
    river, rail = _build_barriers(scene, rng, river_x)

    # --- arterial grid ---------------------------------------------------------------------------
    grid, arterial_geoms = _build_arterials(scene, rng)
    ring = box(float(grid[:, :, 0].min()), float(grid[:, :, 1].min()),
               float(grid[:, :, 0].max()), float(grid[:, :, 1].max()))  # fmt: skip
    _add_gateways(scene, grid)

    # --- blocks ----------------------------------------------------------------------------------
    block_parts = _block_parts(scene, arterial_geoms)

    # the largest new-area block part hosts the disconnected sports-park island
    new_parts = [p for p in block_parts if _zone_of(scene, p.centroid.x, p.centroid.y) == "new"]
    island_park = max(new_parts, key=lambda p: p.area) if new_parts else None

    # local streets (first pass, so that compound gates can check they meet a street)
    local_lines = _local_streets(scene, rng, block_parts, island_park)
    street_geoms = [_cut_for_barriers(scene, w.geom, w.may_cross) for w in scene.ways]
    street_tree = shapely.STRtree([g for g in street_geoms if not g.is_empty])

    # --- sub-blocks: compounds, street-side buildings, parks, squares ---------------------------
    _fill_sub_blocks(scene, rng, block_parts, local_lines, island_park, street_tree)
    # shopping streets: named old-town lanes
    _shopping_streets(scene)

    # --- riverside promenades and the river island --------------------------------------------
    _riverside(scene, river, ring, grid, river_x)

    # --- villages around the town --------------------------------------------------------------
    _build_villages(scene, rng, ring)
    return {"ring": ring, "grid": grid, "river": river, "rail": rail}
