"""Placing population on the streets: polygons and raster cells distributed dasymetrically.

Census tables, household registers and population grids give people per **area** (a community,
a village, a 100 m cell); coverage needs them as **points** that reach the network. Each area's
population is distributed **along the walkable streets inside it**, in proportion to the street
length (people live along streets, not in fields or lakes), and placed **on** the streets, so the
access leg of every placed point is zero.

* Streets are the network's edges, each undirected street once (a two-way street of a directed
  network is not counted twice), clipped exactly to the area (shapely); each clipped piece gets
  one point at its middle, with weight = its length in metres. A piece is inside its area
  (closed polygon: interior or border), so nobody is placed on a street outside their area.
* **Whole people, conserved exactly.** An area of ``P`` people gets ``floor(P)`` whole people
  split by the largest-remainder (Hamilton) method over its pieces, so the pieces of an area with
  a whole-number population sum exactly to it; a fractional part (raster cells, estimates) is
  added to the longest piece, so such totals are conserved to floating-point precision.
  Elderly and children are split the same way, with the same weights.
* An area with no street inside falls back to its representative point (``point_on_surface``),
  which then snaps like any resident point; these are counted (``areas_at_point``).
* A raster cell is an area like any other, with the cell's value as its population. Streets are
  clipped to the cells in the raster's own grid, where cells are squares (vectorised
  Liang-Barsky), and a piece's position is mapped linearly along its straight street segment
  (exact when the raster is in the network's CRS; otherwise the cell border is the straight
  chord of the transformed border, a sub-millimetre difference at 100 m). A cell without a
  street inside falls back to its centre. Only cells whose centre lies in ``area`` (default: the
  network's convex hull buffered by ``margin_m``) are used; their sum is reported.

Arrays in, arrays out: geometries are in the network's metric CRS; :mod:`lifecircle.pipeline`
reads the files and builds the residents table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from lifecircle.errors import InputError
from lifecircle.network import RoadNetwork

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """People placed on the streets.

    Attributes
    ----------
    area : numpy.ndarray of int
        Index of the source area (polygon or raster cell) of each placed point.
    x_m, y_m : numpy.ndarray of float
        Point positions in the network's metric CRS (on a street, or an area's representative
        point when ``on_street`` is False).
    population : numpy.ndarray of float
        People at each point (whole people, see the module docstring).
    extras : dict of str to numpy.ndarray
        ``elderly``/``children`` per point, split the same way.
    on_street : numpy.ndarray of bool
        False for the representative point of an area with no street inside.
    n_areas : int
        Areas given.
    """

    area: NDArray[np.int64]
    x_m: NDArray[np.float64]
    y_m: NDArray[np.float64]
    population: NDArray[np.float64]
    extras: dict[str, NDArray[np.float64]]
    on_street: NDArray[np.bool_]
    n_areas: int
    building: NDArray[np.int64] | None = None

    @property
    def kind(self) -> NDArray[np.str_]:
        """Per point ``street``, ``building`` or ``representative_point``."""
        out = np.where(self.on_street, "street", "representative_point")
        if self.building is not None:
            out = np.where(self.building >= 0, "building", out)
        return out

    @property
    def areas_at_point(self) -> int:
        """Areas with people but no street inside (placed at their representative point)."""
        return int(np.unique(self.area[self.kind == "representative_point"]).size)

    def summary(self) -> dict[str, Any]:
        """Counts for ``summary.json``."""
        return {
            "areas": self.n_areas,
            "areas_on_streets": int(np.unique(self.area[self.on_street]).size),
            "areas_at_point": self.areas_at_point,
            "areas_by_buildings": int(np.unique(self.area[self.kind == "building"]).size),
            "buildings_with_people": int(np.unique(self.building[self.building >= 0]).size)
            if self.building is not None
            else 0,
            "points": int((self.population > 0).sum()),
            "population": float(self.population.sum()),
        }


def _streets(network: RoadNetwork) -> NDArray[np.object_]:
    """The network's edges as LineStrings, each undirected street once."""
    u, v = network.edge_u, network.edge_v
    key = np.minimum(u, v).astype(np.int64) * network.n_nodes + np.maximum(u, v)
    # parallel edges between the same nodes are straight duplicates here
    _, first = np.unique(key, return_index=True)
    geoms = network.edge_geometries()
    return np.asarray(geoms[np.sort(first)])


def largest_remainder(
    weights: NDArray[np.float64], group: NDArray[np.int64], totals: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Split each group's total over its members in proportion to ``weights``.

    ``floor(total)`` whole units by the largest-remainder method; the fractional part of the
    total goes to the member with the largest weight. Every group must have a positive weight.

    >>> largest_remainder(np.array([1.0, 1.0, 1.0]), np.array([0, 0, 0]), np.array([10.0]))
    array([4., 3., 3.])
    >>> largest_remainder(np.array([3.0, 1.0]), np.array([0, 0]), np.array([2.5]))
    array([2.5, 0. ])
    """
    n_groups = len(totals)
    w_sum = np.bincount(group, weights, minlength=n_groups)
    whole = np.floor(totals)
    quota = whole[group] * weights / w_sum[group]
    base = np.floor(quota)
    deficit = np.rint(whole - np.bincount(group, base, minlength=n_groups)).astype(np.int64)
    rem = quota - base
    order = np.lexsort((-rem, group))  # by group, then largest remainder first
    g_sorted = group[order]
    start = np.searchsorted(g_sorted, np.arange(n_groups))
    rank = np.arange(len(order)) - start[g_sorted]
    base[order[rank < deficit[g_sorted]]] += 1.0
    frac = totals - whole
    if np.any(frac > 0):
        top = np.lexsort((-weights, group))
        first = top[np.unique(group[top], return_index=True)[1]]
        base[first] += frac[group[first]]
    return base


def distribute_areas(
    network: RoadNetwork,
    areas_m: NDArray[np.object_],
    population: NDArray[np.float64],
    *,
    extras: dict[str, NDArray[np.float64]] | None = None,
) -> Placement:
    """Distribute each area's population along the streets inside it.

    Parameters
    ----------
    network : RoadNetwork
        The streets (a walk network: every street people can walk along).
    areas_m : numpy.ndarray of shapely Polygon/MultiPolygon
        The areas, in the network's metric CRS.
    population : numpy.ndarray
        People per area (non-negative).
    extras : dict, optional
        Other counts per area (``elderly``, ``children``), split in proportion to the people
        placed on each piece (largest remainder too, so each area's totals are kept).

    Returns
    -------
    Placement
        One point per street piece of every area with people (areas with none place nothing).

    Examples
    --------
    Two streets of 100 m cross a 150 m square (network metres, the test grid's CRS):

    >>> from lifecircle.network import from_arrays
    >>> net = from_arrays(np.array([0.0, 100, 0, 0]), np.array([0.0, 0, -50, 50]) + 3.8e6,
    ...                   np.array([0, 2]), np.array([1, 3]), crs="EPSG:32650")
    >>> square = shapely.box(-50, 3.8e6 - 75, 100, 3.8e6 + 75)
    >>> pl = distribute_areas(net, np.array([square]), np.array([7.0]))
    >>> pl.population.tolist(), pl.on_street.all()
    ([4.0, 3.0], np.True_)
    """
    areas_m = np.asarray(areas_m, dtype=object)
    pop = np.asarray(population, dtype=float)
    extras = extras or {}
    n = len(areas_m)
    streets = _streets(network)
    tree = shapely.STRtree(streets)
    people = np.flatnonzero(pop > 0)
    ai, si = tree.query(areas_m[people], predicate="intersects")
    ai = people[ai]
    pieces = shapely.intersection(streets[si], areas_m[ai])
    parts, which = shapely.get_parts(pieces, return_index=True)
    is_line = shapely.get_type_id(parts) == 1
    parts, which = parts[is_line], which[is_line]
    length = shapely.length(parts)
    ok = length > 1e-6
    parts, which, length = parts[ok], which[ok], length[ok]
    group = ai[which]
    mid = shapely.line_interpolate_point(parts, 0.5, normalized=True)
    # areas with people and no street piece: their representative point
    covered = np.zeros(n, dtype=bool)
    covered[group] = True
    lonely = people[~covered[people]]
    rep = shapely.point_on_surface(areas_m[lonely])
    return _split(
        n,
        group,
        length,
        shapely.get_x(mid),
        shapely.get_y(mid),
        lonely,
        shapely.get_x(rep),
        shapely.get_y(rep),
        pop,
        extras,
    )


def _split(
    n: int,
    group: NDArray[np.int64],
    length: NDArray[np.float64],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    lonely: NDArray[np.int64],
    lonely_x: NDArray[np.float64],
    lonely_y: NDArray[np.float64],
    pop: NDArray[np.float64],
    extras: dict[str, NDArray[np.float64]],
) -> Placement:
    """Split each area's people over its street pieces (``group``, ``length``, ``x``/``y``) or
    put them at its fallback point (``lonely`` areas at ``lonely_x``/``lonely_y``)."""
    order = np.argsort(group, kind="stable")
    all_group = np.concatenate([group[order], lonely]).astype(np.int64)
    weights = np.concatenate([length[order], np.ones(len(lonely))])
    # compact group ids for the split (only areas with people take part)
    ids, inv = np.unique(all_group, return_inverse=True)
    people_split = largest_remainder(weights, inv, pop[ids])
    # elderly and children follow the people placed (none where nobody is placed)
    split = {
        k: largest_remainder(people_split, inv, np.asarray(v, dtype=float)[ids])
        for k, v in extras.items()
    }
    out = Placement(
        area=all_group,
        x_m=np.concatenate([x[order], lonely_x]),
        y_m=np.concatenate([y[order], lonely_y]),
        population=people_split,
        extras=split,
        on_street=np.concatenate([np.ones(len(group), bool), np.zeros(len(lonely), bool)]),
        n_areas=n,
    )
    logger.info(
        "population: %d area(s) -> %d point(s) on %d street piece(s); %d area(s) without a "
        "street at their representative point",
        n,
        len(out.area),
        len(group),
        len(lonely),
    )
    return out


def distribute_with_buildings(
    network: RoadNetwork,
    areas_m: NDArray[np.object_],
    population: NDArray[np.float64],
    buildings_m: NDArray[np.object_],
    floor_area_m2: NDArray[np.float64],
    *,
    extras: dict[str, NDArray[np.float64]] | None = None,
) -> Placement:
    """Split each area's people over the residential buildings inside it by floor area.

    A building belongs to the first area (in input order) that contains its representative
    point; an area's people are split over its buildings in proportion to ``floor_area_m2``
    (largest remainder, as :func:`distribute_areas`) and placed at each building's representative
    point, which then snaps to the street like any resident point (buildings are where people
    are). Areas without a building are distributed along their streets
    (:func:`distribute_areas`).

    Parameters
    ----------
    network : RoadNetwork
    areas_m : numpy.ndarray of shapely polygons
        Areas with people, network CRS.
    population : numpy.ndarray
        People per area.
    buildings_m : numpy.ndarray of shapely polygons
        Residential building footprints, network CRS.
    floor_area_m2 : numpy.ndarray
        Floor area per building, square metres (positive).
    extras : dict, optional
        ``elderly``/``children`` per area.
    """
    areas_m = np.asarray(areas_m, dtype=object)
    pop = np.asarray(population, dtype=float)
    extras = extras or {}
    n = len(areas_m)
    rep = shapely.point_on_surface(np.asarray(buildings_m, dtype=object))
    bi, ai = shapely.STRtree(areas_m).query(rep, predicate="intersects")
    order = np.lexsort((ai, bi))
    bi, ai = bi[order], ai[order]
    first = np.unique(bi, return_index=True)[1]
    b_idx, b_area = bi[first], ai[first]  # each building's first area
    b_ok = (pop[b_area] > 0) & (np.asarray(floor_area_m2, dtype=float)[b_idx] > 0)
    b_idx, b_area = b_idx[b_ok], b_area[b_ok]
    with_b = np.zeros(n, dtype=bool)
    with_b[b_area] = True
    by_b = _split(
        n,
        b_area.astype(np.int64),
        np.asarray(floor_area_m2, dtype=float)[b_idx],
        shapely.get_x(rep[b_idx]),
        shapely.get_y(rep[b_idx]),
        np.zeros(0, dtype=np.int64),
        np.zeros(0),
        np.zeros(0),
        np.where(with_b, pop, 0.0),
        {k: np.where(with_b, np.asarray(v, float), 0.0) for k, v in extras.items()},
    )
    bld = b_idx[np.argsort(b_area, kind="stable")].astype(np.int64)
    rest = distribute_areas(
        network,
        areas_m,
        np.where(with_b, 0.0, pop),
        extras={k: np.where(with_b, 0.0, np.asarray(v, float)) for k, v in extras.items()},
    )
    return Placement(
        area=np.concatenate([by_b.area, rest.area]),
        x_m=np.concatenate([by_b.x_m, rest.x_m]),
        y_m=np.concatenate([by_b.y_m, rest.y_m]),
        population=np.concatenate([by_b.population, rest.population]),
        extras={k: np.concatenate([by_b.extras[k], rest.extras[k]]) for k in extras},
        on_street=np.concatenate([np.zeros(len(by_b.area), bool), rest.on_street]),
        n_areas=n,
        building=np.concatenate([bld, np.full(len(rest.area), -1, dtype=np.int64)]),
    )


def _street_ends(network: RoadNetwork) -> tuple[NDArray[np.float64], ...]:
    """``x0, y0, x1, y1`` of every undirected street once (network metres)."""
    u, v = network.edge_u, network.edge_v
    key = np.minimum(u, v).astype(np.int64) * network.n_nodes + np.maximum(u, v)
    first = np.sort(np.unique(key, return_index=True)[1])
    u, v = u[first], v[first]
    return network.node_x[u], network.node_y[u], network.node_x[v], network.node_y[v]


def _clip_to_cells(
    c0: NDArray[np.float64],
    r0: NDArray[np.float64],
    c1: NDArray[np.float64],
    r1: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], Any, Any]:
    """Clip segments given in grid space (column, row; cells are unit squares) to every cell.

    Returns (segment, cell row, cell column, t_start, t_end): each segment's part inside each
    cell it crosses, as parameters along the segment (Liang-Barsky, vectorised).
    """
    cmin = np.floor(np.minimum(c0, c1)).astype(np.int64)
    cmax = np.floor(np.maximum(c0, c1)).astype(np.int64)
    rmin = np.floor(np.minimum(r0, r1)).astype(np.int64)
    rmax = np.floor(np.maximum(r0, r1)).astype(np.int64)
    nc, nr = cmax - cmin + 1, rmax - rmin + 1
    count = nc * nr
    seg = np.repeat(np.arange(len(c0)), count)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(count) - count, count)
    col = cmin[seg] + k % nc[seg]
    row = rmin[seg] + k // nc[seg]
    dx, dy = (c1 - c0)[seg], (r1 - r0)[seg]
    x0, y0 = c0[seg], r0[seg]
    t_lo = np.zeros(len(seg))
    t_hi = np.ones(len(seg))
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, q in (
            (-dx, x0 - col),
            (dx, col + 1 - x0),
            (-dy, y0 - row),
            (dy, row + 1 - y0),
        ):
            t = q / p
            t_lo = np.where(p < 0, np.maximum(t_lo, t), t_lo)
            t_hi = np.where(p > 0, np.minimum(t_hi, t), t_hi)
            t_hi = np.where((p == 0) & (q < 0), -1.0, t_hi)  # parallel and outside
    keep = t_hi - t_lo > 1e-12
    return seg[keep], row[keep], col[keep], t_lo[keep], t_hi[keep]


@dataclass(frozen=True)
class RasterPlacement:
    """A population raster placed on the streets.

    Attributes
    ----------
    placement : Placement
        ``area`` indexes :attr:`cell_row`/:attr:`cell_col`.
    cell_row, cell_col : numpy.ndarray of int
        Raster row and column of each used cell.
    sum_raster : float
        Sum of all valid cells of the raster.
    sum_in_area : float
        Sum of the cells whose centre lies in the area (what is placed).
    crs : str
        The raster's CRS.
    cell_size : tuple of float
        Cell width and height in the raster's CRS units.
    """

    placement: Placement
    cell_row: NDArray[np.int64]
    cell_col: NDArray[np.int64]
    sum_raster: float
    sum_in_area: float
    crs: str
    cell_size: tuple[float, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Figures for ``summary.json``: sums over the raster and the area, cells, points."""
        return {
            "raster_crs": self.crs,
            "cell_size": list(self.cell_size),
            "raster_sum": self.sum_raster,
            "raster_sum_in_area": self.sum_in_area,
            "cells_used": len(self.cell_row),
            "cells_without_street": self.placement.areas_at_point,
            "points": len(self.placement.area),
            "population_placed": float(self.placement.population.sum()),
        }


def network_area(network: RoadNetwork, margin_m: float) -> Any:
    """The network's convex hull buffered by ``margin_m`` (metric CRS)."""
    hull = shapely.convex_hull(
        shapely.multipoints(np.column_stack([network.node_x, network.node_y]))
    )
    return shapely.buffer(hull, margin_m)


def distribute_raster(
    network: RoadNetwork,
    path: str | Path,
    *,
    area_m: Any = None,
    margin_m: float = 300.0,
    band: int = 1,
) -> RasterPlacement:
    """Distribute a population raster (people per cell, e.g. WorldPop) along the streets.

    Parameters
    ----------
    network : RoadNetwork
    path : str or Path
        A GeoTIFF (any CRS with an EPSG code or WKT) of people per cell; nodata and negative
        cells are ignored.
    area_m : shapely geometry, optional
        Use only cells whose centre lies inside (network CRS), e.g. a ``--clip`` boundary;
        default the network's convex hull buffered by ``margin_m``.
    margin_m : float
        Buffer of the default area, metres.
    band : int
        Band number (from 1).

    Raises
    ------
    InputError
        If the file cannot be read, has no CRS, or no cell with people lies in the area.
    """
    import rasterio
    from pyproj import Transformer

    p = Path(path)
    if not p.exists():
        raise InputError(f"population raster {p} does not exist")
    try:
        with rasterio.open(p) as ds:
            data = ds.read(band, masked=True)
            transform = ds.transform
            crs = ds.crs
    except Exception as exc:  # rasterio raises several kinds
        raise InputError(f"cannot read population raster {p}: {exc}") from exc
    if crs is None:
        raise InputError(
            f"population raster {p} has no CRS; set it (gdal_edit.py -a_srs EPSG:4326 {p.name})"
        )
    values = np.ma.filled(data.astype(float), 0.0)
    values[~np.isfinite(values) | (values < 0)] = 0.0
    rows, cols = np.nonzero(values > 0)
    sum_raster = float(values.sum())
    to_net = Transformer.from_crs(crs.to_wkt(), network.crs, always_xy=True)

    def to_xy(c: NDArray[Any], r: NDArray[Any]) -> tuple[Any, Any]:
        t = transform  # affine: x = a col + b row + c, y = d col + e row + f
        return t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f

    cx, cy = to_xy(cols + 0.5, rows + 0.5)
    nx_, ny_ = to_net.transform(np.asarray(cx, float), np.asarray(cy, float))
    area = area_m if area_m is not None else network_area(network, margin_m)
    inside = shapely.contains_xy(area, nx_, ny_)
    rows, cols = rows[inside], cols[inside]
    if len(rows) == 0:
        raise InputError(
            f"population raster {p}: no cell with people lies in the network's area; is it "
            "the right region (its CRS is " + str(crs) + ")?"
        )
    cell_pop = values[rows, cols]
    # streets clipped to the cells in grid space, where cells are unit squares; a piece's
    # position maps linearly along its (metric, straight) street segment
    index = np.full(values.shape, -1, dtype=np.int64)
    index[rows, cols] = np.arange(len(rows))
    x0, y0, x1, y1 = _street_ends(network)
    to_grid = Transformer.from_crs(network.crs, crs.to_wkt(), always_xy=True)
    inv = ~transform

    def grid(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[Any, Any]:
        gx, gy = to_grid.transform(x, y)
        gx, gy = np.asarray(gx), np.asarray(gy)
        return inv.a * gx + inv.b * gy + inv.c, inv.d * gx + inv.e * gy + inv.f

    gc0, gr0 = grid(x0, y0)
    gc1, gr1 = grid(x1, y1)
    seg, prow, pcol, t_lo, t_hi = _clip_to_cells(gc0, gr0, gc1, gr1)
    h, w = values.shape
    in_grid = (prow >= 0) & (prow < h) & (pcol >= 0) & (pcol < w)
    seg, prow, pcol, t_lo, t_hi = (a[in_grid] for a in (seg, prow, pcol, t_lo, t_hi))
    cell = index[prow, pcol]
    used = cell >= 0
    seg, cell, t_lo, t_hi = seg[used], cell[used], t_lo[used], t_hi[used]
    seg_len = np.hypot(x1 - x0, y1 - y0)
    t_mid = 0.5 * (t_lo + t_hi)
    px = x0[seg] + t_mid * (x1 - x0)[seg]
    py = y0[seg] + t_mid * (y1 - y0)[seg]
    has_street = np.zeros(len(rows), dtype=bool)
    has_street[cell] = True
    lonely = np.flatnonzero(~has_street)
    placement = _split(
        len(rows),
        cell,
        seg_len[seg] * (t_hi - t_lo),
        px,
        py,
        lonely,
        np.asarray(nx_)[lonely],
        np.asarray(ny_)[lonely],
        cell_pop,
        {},
    )
    res = transform.a, -transform.e
    out = RasterPlacement(
        placement=placement,
        cell_row=rows.astype(np.int64),
        cell_col=cols.astype(np.int64),
        sum_raster=sum_raster,
        sum_in_area=float(cell_pop.sum()),
        crs=str(crs),
        cell_size=(float(res[0]), float(res[1])),
    )
    logger.info(
        "population raster %s: %.1f people in %d cells inside the area (%.1f in the whole "
        "raster) -> %d points",
        p,
        out.sum_in_area,
        len(rows),
        sum_raster,
        len(placement.area),
    )
    return out
