"""SYNTHETIC units: the sub-district, its communities and grids (exact tilings)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPoint, Point, Polygon, box

from lifecircle.demo.scene import (
    _COMMUNITY_POOLS,
    _N_GRIDS,
    _NEW_AREA,
    _Frame,
    _largest_remainder,
    _parts,
    _Scene,
)

_GRID: Final = 1e-7  # degrees: the precision of written coordinates


def _kmeans_seeds(rng: np.random.Generator, xy: NDArray[np.float64], w: NDArray[np.float64], k: int,
                  iters: int = 10) -> NDArray[np.float64]:  # fmt: skip
    """``k`` distinct sample points near the weighted k-means centres of ``xy``."""
    if len(xy) <= k:
        return xy.copy()
    p = w / w.sum()
    centres = xy[rng.choice(len(xy), size=k, replace=False, p=p)]
    for _ in range(iters):
        d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = d.argmin(1)
        for j in range(k):
            m = lab == j
            if m.any():
                centres[j] = (xy[m] * w[m, None]).sum(0) / w[m].sum()
    # snap each centre to a distinct sample point (so that it lies inside the region)
    chosen: list[int] = []
    taken: set[tuple[float, float]] = set()
    for j in range(k):
        d = ((xy - centres[j]) ** 2).sum(-1)
        for idx in np.argsort(d, kind="stable"):
            key = (float(xy[idx, 0]), float(xy[idx, 1]))
            if key not in taken:
                chosen.append(int(idx))
                taken.add(key)
                break
    return xy[chosen]


def _voronoi_tiles(seeds_ll: NDArray[np.float64], region: Any) -> list[Any]:
    """Voronoi cells of ``seeds_ll`` clipped to ``region`` (lon/lat, snapped to the output grid)."""
    if len(seeds_ll) == 1:
        return [region]
    env = box(*region.bounds).buffer(0.05)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(MultiPoint(seeds_ll), extend_to=env, ordered=True)
    )
    return [shapely.intersection(c, region, grid_size=_GRID) for c in cells]


def _exact_tiling(approx: list[Any]) -> list[Any]:
    """Re-tile ``approx`` (nearly a tiling) so that neighbours share their edges exactly."""
    lines = shapely.get_parts(shapely.boundary(np.array(approx, dtype=object)))
    noded = shapely.union_all(lines, grid_size=_GRID)
    faces = np.array(_parts(shapely.polygonize(shapely.get_parts(noded)), "Polygon"), dtype=object)
    rp = shapely.point_on_surface(faces)
    tree = shapely.STRtree(approx)
    owner = np.full(len(faces), -1, np.int64)
    fi, gi = tree.query(rp, predicate="within")
    first = np.unique(fi, return_index=True)
    owner[first[0]] = gi[first[1]]
    missing = np.flatnonzero(owner < 0)
    if len(missing):
        owner[missing] = tree.query_nearest(rp[missing], all_matches=False)[1]
    return [
        shapely.union_all(faces[owner == k]) if (owner == k).any() else approx[k]
        for k in range(len(approx))
    ]


def _uniform_in(rng: np.random.Generator, poly: Any, n: int) -> NDArray[np.float64]:
    minx, miny, maxx, maxy = poly.bounds
    out = np.empty((0, 2))
    for _ in range(20):
        c = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
        out = np.vstack([out, c[shapely.contains_xy(poly, c[:, 0], c[:, 1])]])
        if len(out) >= n:
            break
    return out[:n]


@dataclass
class _Units:
    subdistrict: Any  # lon/lat
    communities: list[tuple[str, str, Any]]  # id, name, geometry (lon/lat)
    grids: list[tuple[str, str, str, Any]]  # grid id, community id, name, geometry
    townships: list[tuple[str, str, Any]] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)  # deliberately under-served community ids


def _subdistrict_local(scene: _Scene, town: dict[str, Any]) -> Polygon:
    pts = [town["ring"].buffer(350.0)]
    pts += [Point(x, y).buffer(500.0) for x, y, _ in scene.villages]
    hull = shapely.union_all(pts).convex_hull.buffer(150.0)
    sd = hull.intersection(scene.county.buffer(-50.0))
    polys = _parts(sd, "Polygon")
    return max(polys, key=lambda p: p.area)


def _build_units(scene: _Scene, frame: _Frame, sd_local: Polygon, town: dict[str, Any],
                 res_xy: NDArray[np.float64], res_pop: NDArray[np.float64]) -> _Units:  # fmt: skip
    rng = scene.rng(3)
    sd = shapely.set_precision(frame.geom_to_lonlat(sd_local.simplify(2.0)), _GRID)
    # the strip east of the river, and the south-west new area, are communities of their own
    assert scene.river_x is not None
    ys = np.arange(-60000.0, 60001.0, 100.0)
    east_half = Polygon(
        np.vstack([np.column_stack([scene.river_x(ys), ys]), [[1e5, 6e4], [1e5, -6e4]]])
    )
    east_half = frame.geom_to_lonlat(
        shapely.segmentize(east_half.intersection(sd_local.buffer(2000.0)), 200.0)
    )
    east = shapely.intersection(sd, east_half, grid_size=_GRID)
    new_box = frame.geom_to_lonlat(
        shapely.segmentize(
            box(-20000.0, -20000.0, _NEW_AREA[0], _NEW_AREA[1]).intersection(
                sd_local.buffer(2000.0)
            ),
            200.0,
        )
    )
    new = shapely.difference(
        shapely.intersection(sd, new_box, grid_size=_GRID), east, grid_size=_GRID
    )
    rest = shapely.difference(sd, shapely.union(east, new, grid_size=_GRID), grid_size=_GRID)
    res_ll = np.column_stack(frame.to_lonlat(res_xy[:, 0], res_xy[:, 1]))
    in_rest = shapely.contains_xy(rest, res_ll[:, 0], res_ll[:, 1])
    seeds = _kmeans_seeds(rng, res_ll[in_rest], res_pop[in_rest], 14)
    cells = _voronoi_tiles(seeds, rest)
    # names by direction from the centre
    seeds_local = np.column_stack(frame.to_local(seeds[:, 0], seeds[:, 1]))
    used: set[str] = set()
    pools = {k: list(v) for k, v in _COMMUNITY_POOLS.items()}
    named: list[tuple[str, Any, tuple[float, float]]] = []
    order = np.argsort(np.hypot(seeds_local[:, 0], seeds_local[:, 1]), kind="stable")
    for idx in order:
        x, y = seeds_local[idx]
        if math.hypot(x, y) < 1300 and pools["centre"]:
            pool = "centre"
        else:
            ang = math.degrees(math.atan2(y, x)) % 360
            pool = (
                "E" if ang < 45 or ang >= 315 else "N" if ang < 135 else "W" if ang < 225 else "S"
            )
            if not pools[pool]:
                pool = "spare"
        name = pools[pool].pop(0)
        used.add(name)
        named.append((name, cells[int(idx)], (float(x), float(y))))
    for name, geom in (("河东社区", east), ("新城社区", new)):
        rp = geom.representative_point()
        x, y = frame.to_local(rp.x, rp.y)
        named.append((name, geom, (float(x), float(y))))
    # ids from north-west to south-east
    named.sort(key=lambda t: (-round(t[2][1] / 800.0), t[2][0]))
    communities = [(f"C{k + 1:02d}", n, g) for k, (n, g, _) in enumerate(named)]
    weak = [cid for cid, n, _ in communities if n in ("河东社区", "新城社区")]
    # grids: 108 in all, proportional to population (at least 3 per community)
    pops = []
    members = []
    for _, _, g in communities:
        m = shapely.contains_xy(g, res_ll[:, 0], res_ll[:, 1])
        members.append(m)
        pops.append(float(res_pop[m].sum()) + 1.0)
    ks = _largest_remainder(np.array(pops), _N_GRIDS, minimum=3)
    grids: list[tuple[str, str, str, Any]] = []
    for (cid, cname, g), m, k in zip(communities, members, ks, strict=True):
        pts = res_ll[m]
        w = res_pop[m]
        extra = _uniform_in(rng, g, 80)
        allp = np.vstack([pts, extra]) if len(pts) else extra
        allw = np.concatenate(
            [w, np.full(len(extra), max(float(w.mean()) if len(w) else 1.0, 1.0) * 0.3)]
        )
        seeds_g = _kmeans_seeds(rng, allp, allw, int(k))
        gcells = _voronoi_tiles(seeds_g, g)
        gl = np.column_stack(frame.to_local(seeds_g[:, 0], seeds_g[:, 1]))
        gorder = np.lexsort((gl[:, 0], -np.round(gl[:, 1] / 300.0)))
        for n, gi in enumerate(gorder):
            grids.append((f"{cid}-G{n + 1:02d}", cid, f"{cname}第{n + 1}网格", gcells[int(gi)]))
    # exact tiling: node all boundaries once, polygonize, give every face to one grid
    exact = _exact_tiling([g for *_, g in grids])
    grids = [(gid, cid, n, e) for (gid, cid, n, _), e in zip(grids, exact, strict=True)]
    communities = [(cid, n, shapely.union_all([e for _, gc, _, e in grids if gc == cid]))
                   for cid, n, _ in communities]  # fmt: skip
    subdistrict = shapely.union_all([g for _, _, g in communities])
    units = _Units(subdistrict, communities, grids, weak=weak)
    if scene.townships:
        county_ll = shapely.set_precision(frame.geom_to_lonlat(scene.county), _GRID)
        remaining = shapely.difference(county_ll, subdistrict, grid_size=_GRID)
        seeds_t = np.column_stack(
            frame.to_lonlat([t[0] for t in scene.townships], [t[1] for t in scene.townships])
        )
        tcells = _voronoi_tiles(seeds_t, remaining)
        units.townships = [
            (f"T{k + 1:02d}", t[2], c)
            for k, (t, c) in enumerate(zip(scene.townships, tcells, strict=True))
        ]
    return units
