"""The grid system (网格): full coverage, balance and reach of grids, and balanced re-gridding.

A street office asks four questions about its grids; this module answers them from the grid
polygons, the community polygons, the residents and the road network.

Coverage check
--------------
Does every household belong to exactly one grid? Inside each community, **gaps** are the parts
of the community that no grid covers, **overlaps** the parts that several grids cover, and
**crossings** the parts of a grid lying outside its own community (its ``community_id``, else
the community holding most of its area). Each is a polygon layer with its area (m²) and the
residents, households and people in it; parts smaller than ``min_area_m2`` (floating-point
slivers) are ignored. Residents are assigned to grids and communities by the one unit rule
(:func:`lifecircle.units.assign_units`): a resident in an overlap belongs to the grid listed
first, a resident in a gap to none ("outside every grid").

Per grid
--------
Households are population / household size (default :data:`DEFAULT_HOUSEHOLD_SIZE`, Tancheng's
2020 census) unless the residents carry a ``households`` column. ``within_band`` compares them
with the households band (default 300-500). The **base** of a grid is the base facility (of
the base tier, or from a bases file) inside the grid nearest to the grid's household-weighted
centre, else the base that is the network-nearest base of most of the grid's households (for a
grid without households, the base nearest its polygon). ``base_median_m``, ``base_p90_m`` and
``base_max_m`` are household-weighted network distances from the base to the grid's households
(exact one-to-many searches, access legs included:
:func:`lifecircle.routing.assigned_source_distances`); ``base_share_within`` is the share of
households within the walking standard.

Re-gridding (``propose=True``)
------------------------------
Method: **recursive spanning-tree partition** of a street-block adjacency graph, the
balanced-partition step of ReCom (DeFord, Duchin & Solomon 2021, "Recombination: a family of
Markov chains for redistricting", *Harvard Data Science Review*; GerryChain's
``recursive_tree_part``), with a households band as the balance constraint:

1. **Blocks.** Each community is cut by the streets (the network's edges), the current grid
   borders and its own border into faces (``shapely.polygonize`` of the lines noded on a 1 cm
   grid): street blocks, split where a current grid border runs through them. A block holding
   more households than the band's maximum is cut further into resident clusters (the Voronoi
   cells of its resident points). Faces tile the community. Residents go to faces by the unit
   rule (a resident in none goes to the nearest face of its community), so households are
   conserved by construction.
2. **Graph.** Faces sharing a border of positive length (rook adjacency, i.e. across a street
   or a grid border) are joined; the edge weight is the straight distance between their
   household-weighted centres.
3. **Kept grids.** A current grid whose households are already in the band and whose faces are
   contiguous is kept unchanged (its part inside its community); the rest of the community is
   re-gridded. If that rest cannot be split within the band, the whole community is.
4. **Peeling.** A connected region of ``H`` households gets ``k`` grids, ``k`` being the
   feasible count (``k·min <= H <= k·max``) nearest ``H`` / the band's midpoint (then its
   neighbours). One grid at a time is cut off a minimum spanning tree of the region: the
   subtree whose households are in the band, nearest ``H / k``, while the rest can still make
   ``k - 1`` grids. A subtree is connected and so is the rest of a tree, so every grid is
   contiguous; short trees keep grids compact. When no edge fits, the tree's weights are
   jittered (random, seeded) and it is tried again, up to ``max_tries`` times.
5. **Infeasible.** A community whose households admit no ``k`` (fewer than the band's minimum,
   or no multiple of the band), or with a single block above the band's maximum, or for which
   no balanced cut was found in ``max_tries`` trees, is reported with the reason and split
   as evenly as possible instead (so the proposal still covers and conserves everything).
6. Faces without households join a neighbouring grid; a group of them touching no grid is
   output with status ``empty`` (an area of the community, not a staffed grid).

The bases and base distances of proposed grids follow the same rule as current grids.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import NDArray
from scipy.sparse.csgraph import (
    breadth_first_order,
    connected_components,
    minimum_spanning_tree,
)

from lifecircle.errors import InputError
from lifecircle.routing import (
    NearestResult,
    Positions,
    RoutingGraph,
    assigned_source_distances,
    nearest_sources,
)
from lifecircle.units import assign_units, grouped_weighted_quantile

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd

logger = logging.getLogger(__name__)

#: People per family household in Tancheng county, 7th national census (2020): 867,933 people
#: in 288,936 family households (3.004), rounded.
DEFAULT_HOUSEHOLD_SIZE: Final = 3.0
#: Default households per grid (one full-time grid worker each), min and max.
DEFAULT_BAND: Final = (300.0, 500.0)
#: Default base tier: the service station (服务站) of the Tancheng standard.
DEFAULT_BASE_TIER: Final = "station"
#: Parts smaller than this (m²) are slivers of floating-point noise, not gaps or overlaps.
DEFAULT_MIN_AREA_M2: Final = 1.0

#: Precision grid (m) on which streets, grid borders and community borders are noded.
NODING_GRID_M: Final = 0.01

#: The columns of ``grids.csv`` and ``proposed_grids.csv`` (a contract), in order.
GRID_COLUMNS: Final = (
    "grid_id",
    "community_id",
    "households",
    "population",
    "elderly",
    "within_band",
    "base_id",
    "base_median_m",
    "base_p90_m",
    "base_max_m",
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ObjArray = NDArray[np.object_]


@dataclass(frozen=True)
class GridOptions:
    """Settings of a grid analysis (validated).

    Attributes
    ----------
    household_size : float
        People per household (used when residents carry no ``households`` column).
    households_min, households_max : float
        The households band of one grid.
    walk_m : float
        The walking standard in metres for ``base_share_within``.
    min_area_m2 : float
        Smallest gap, overlap or crossing reported, m².
    propose : bool
        Also propose a re-gridding.
    seed : int
        Seed of the spanning-tree jitter (the proposal is deterministic for a seed).
    max_tries : int
        Spanning trees tried per split before a community is reported infeasible.
    """

    household_size: float = DEFAULT_HOUSEHOLD_SIZE
    households_min: float = DEFAULT_BAND[0]
    households_max: float = DEFAULT_BAND[1]
    walk_m: float = 500.0
    min_area_m2: float = DEFAULT_MIN_AREA_M2
    propose: bool = False
    seed: int = 0
    max_tries: int = 20

    def __post_init__(self) -> None:
        if not (math.isfinite(self.household_size) and self.household_size > 0):
            raise InputError(
                f"household size must be a positive number of people, got {self.household_size}"
            )
        lo, hi = self.households_min, self.households_max
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise InputError(
                f"households band {lo:g}-{hi:g} is not valid; give MIN-MAX with 0 < MIN <= MAX, "
                "e.g. 300-500"
            )
        if not self.walk_m > 0:
            raise InputError(f"walking standard must be positive metres, got {self.walk_m}")

    @property
    def band_text(self) -> str:
        """The band as ``MIN-MAX``."""
        return f"{self.households_min:g}-{self.households_max:g}"


def parse_band(text: str) -> tuple[float, float]:
    """``"300-500"`` -> ``(300.0, 500.0)``; raises :class:`InputError` with the fix.

    Examples
    --------
    >>> parse_band("300-500")
    (300.0, 500.0)
    """
    parts = str(text).replace("–", "-").split("-")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"households band {text!r} is not MIN-MAX; write it like 300-500"
        ) from None
    GridOptions(households_min=lo, households_max=hi)
    return lo, hi


@dataclass(frozen=True)
class GridLayer:
    """Grid polygons in the analysis CRS (metres) with their ids, names and declared community."""

    grid_id: ObjArray
    name: ObjArray
    community_id: ObjArray  # declared, "" when the file has none
    geometry: ObjArray


@dataclass(frozen=True)
class CommunityLayer:
    """Community polygons in the analysis CRS (metres)."""

    community_id: ObjArray
    name: ObjArray
    geometry: ObjArray


@dataclass(frozen=True)
class People:
    """Residents as arrays: metric coordinates, weights and network positions."""

    x: FloatArray
    y: FloatArray
    households: FloatArray
    population: FloatArray
    elderly: FloatArray
    children: FloatArray
    positions: Positions


@dataclass(frozen=True)
class Bases:
    """Base facilities (metric coordinates, network positions)."""

    base_id: ObjArray
    name: ObjArray
    x: FloatArray
    y: FloatArray
    positions: Positions


@dataclass(frozen=True)
class GridResult:
    """What :func:`analyse_grids` returns (geometry columns hold metric shapely geometries).

    Attributes
    ----------
    grids : DataFrame
        One row per grid: :data:`GRID_COLUMNS`, then ``name``, ``children``, ``base_name``,
        ``base_share_within``, ``area_m2``, ``{tier}_facilities`` and ``geometry``.
    gaps, overlaps, crossings : DataFrame
        One row per part found, with ``area_m2``, ``residents``, ``households``,
        ``population`` and ``geometry``.
    proposed : DataFrame or None
        Like ``grids`` plus ``status``: ``kept``, ``new``, ``best_effort`` (in an infeasible
        community) or ``empty`` (a piece of the community without households that touches no
        grid: an area, not a staffed grid).
    communities : DataFrame
        Per community: households, grids now and proposed, ``feasible`` and ``reason``.
    summary : dict
        Counts for the terminal and ``grids.json``.
    """

    grids: pd.DataFrame
    gaps: pd.DataFrame
    overlaps: pd.DataFrame
    crossings: pd.DataFrame
    proposed: pd.DataFrame | None
    communities: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# per grid
# --------------------------------------------------------------------------------------------
def choose_bases(
    geoms: ObjArray, people: People, label: IntArray, bases: Bases, nearest_base: IntArray
) -> IntArray:
    """Base index per grid (``-1`` only without bases).

    The base inside the grid nearest its household-weighted centre; for a grid without one, the
    base that is the network-nearest base of most of the grid's households (``nearest_base``
    per resident); for an empty grid, the base nearest its polygon in a straight line.
    """
    n = len(geoms)
    out = np.full(n, -1, dtype=np.int64)
    if len(bases.base_id) == 0 or n == 0:
        return out
    ok = label >= 0
    w = np.bincount(label[ok], weights=people.households[ok], minlength=n)
    cx = np.bincount(label[ok], weights=(people.households * people.x)[ok], minlength=n)
    cy = np.bincount(label[ok], weights=(people.households * people.y)[ok], minlength=n)
    rep = shapely.get_coordinates(shapely.point_on_surface(geoms))
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(w > 0, cx / np.where(w > 0, w, 1), rep[:, 0])
        cy = np.where(w > 0, cy / np.where(w > 0, w, 1), rep[:, 1])
    inside = assign_units(bases.x, bases.y, geoms)
    b = np.flatnonzero(inside >= 0)
    if len(b):
        g = inside[b]
        d = np.hypot(bases.x[b] - cx[g], bases.y[b] - cy[g])
        order = np.lexsort((b, d, g))
        first = np.r_[True, g[order][1:] != g[order][:-1]]
        out[g[order][first]] = b[order][first]
    # grids without a base inside: the households' most common network-nearest base
    sel = ok & (nearest_base >= 0)
    sel[sel] = out[label[sel]] < 0
    if sel.any():
        key = label[sel] * len(bases.base_id) + nearest_base[sel]
        uk, inv = np.unique(key, return_inverse=True)
        wk = np.bincount(inv, weights=people.households[sel] + 1e-9)
        gk, bk = uk // len(bases.base_id), uk % len(bases.base_id)
        order = np.lexsort((bk, -wk, gk))
        first = np.r_[True, gk[order][1:] != gk[order][:-1]]
        out[gk[order][first]] = bk[order][first]
    missing = np.flatnonzero(out < 0)
    if len(missing):
        tree = shapely.STRtree(np.asarray(shapely.points(bases.x, bases.y), dtype=object))
        gi, bi = tree.query_nearest(geoms[missing], all_matches=False)
        out[missing[gi]] = bi
    return out


def grid_table(
    ids: ObjArray,
    community_id: ObjArray,
    geoms: ObjArray,
    label: IntArray,
    people: People,
    bases: Bases,
    graph: RoutingGraph,
    options: GridOptions,
    facility_xy: FloatArray,
    facility_tier: ObjArray,
    tier_keys: Sequence[str],
    nearest: NearestResult,
) -> pd.DataFrame:
    """The per-grid table (:data:`GRID_COLUMNS` first) for grids and resident labels."""
    n = len(ids)
    ok = label >= 0
    g = np.where(ok, label, n)
    m = n + 1

    def total(v: FloatArray) -> FloatArray:
        return np.bincount(g, weights=v, minlength=m)[:n].astype(float)

    households = total(people.households)
    base = choose_bases(geoms, people, label, bases, nearest.source)
    res_base = np.where(ok, base[np.where(ok, label, 0)], -1)
    # a household whose base is also its nearest base has that distance already (exact)
    known = (res_base >= 0) & (res_base == nearest.source)
    dist = np.where(known, nearest.distance_m, np.inf)
    rest = np.where(known, -1, res_base)
    if (rest >= 0).any():
        d2 = assigned_source_distances(graph, bases.positions, people.positions, rest)
        dist = np.where(known, dist, d2)
    on_net = ok & (people.positions.edge >= 0)
    w = np.where(on_net, people.households, 0.0)
    gg = np.where(on_net, label, n)
    median = grouped_weighted_quantile(gg, dist, w, 0.5, m)[:n]
    p90 = grouped_weighted_quantile(gg, dist, w, 0.9, m)[:n]
    # the farthest household of each grid (with any households on the network)
    pos = np.flatnonzero(w > 0)
    order = pos[np.lexsort((-dist[pos], gg[pos]))]
    first = order[np.r_[True, gg[order][1:] != gg[order][:-1]]] if len(order) else order
    far = np.full(n, -1, dtype=np.int64)
    far[gg[first]] = first
    has_far = far >= 0
    dmax = np.where(has_far, dist[np.maximum(far, 0)], np.nan)
    within = np.bincount(gg, weights=w * (dist <= options.walk_m), minlength=m)[:n]
    wsum = np.bincount(gg, weights=w, minlength=m)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(wsum > 0, within / np.where(wsum > 0, wsum, 1), np.nan)
    has_base = base >= 0
    frame: dict[str, Any] = {
        "grid_id": ids,
        "community_id": community_id,
        "households": households,
        "population": total(people.population),
        "elderly": total(people.elderly),
        "within_band": (households >= options.households_min)
        & (households <= options.households_max),
        "base_id": np.where(has_base, bases.base_id[np.maximum(base, 0)], ""),
        "base_median_m": median,
        "base_p90_m": p90,
        "base_max_m": dmax,
        "children": total(people.children),
        "residents": np.bincount(g, minlength=m)[:n],
        "base_name": np.where(has_base, bases.name[np.maximum(base, 0)], ""),
        "base_share_within": share,
        "area_m2": shapely.area(geoms),
        "base_x_m": np.where(has_base, bases.x[np.maximum(base, 0)], np.nan),
        "base_y_m": np.where(has_base, bases.y[np.maximum(base, 0)], np.nan),
        "farthest_x_m": np.where(has_far, people.x[np.maximum(far, 0)], np.nan),
        "farthest_y_m": np.where(has_far, people.y[np.maximum(far, 0)], np.nan),
    }
    fac_grid = assign_units(facility_xy[:, 0], facility_xy[:, 1], geoms)
    for key in tier_keys:
        sel = (facility_tier == key) & (fac_grid >= 0)
        frame[f"{key}_facilities"] = np.bincount(fac_grid[sel], minlength=n)
    frame["geometry"] = geoms
    return pd.DataFrame(frame)


# --------------------------------------------------------------------------------------------
# coverage check
# --------------------------------------------------------------------------------------------
def _polygonal(geoms: ObjArray) -> ObjArray:
    """Polygonal parts only (intersections may hold lines and points)."""
    out = np.empty(len(geoms), dtype=object)
    for i, geom in enumerate(geoms):  # one per reported part, not per resident
        parts = shapely.get_parts(geom)
        polys = parts[np.isin(shapely.get_type_id(parts), [3, 6])]
        out[i] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    return out


def _people_in(
    parts: ObjArray, people: People, select: NDArray[np.bool_]
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Residents, households and people of ``select``-ed residents in each part (unit rule)."""
    n = len(parts)
    idx = np.flatnonzero(select)
    at = assign_units(people.x[idx], people.y[idx], parts) if n else np.full(len(idx), -1)
    keep = at >= 0
    a, i = at[keep], idx[keep]
    return (
        np.bincount(a, minlength=n).astype(np.int64),
        np.bincount(a, weights=people.households[i], minlength=n).astype(float),
        np.bincount(a, weights=people.population[i], minlength=n).astype(float),
    )


def _part_frame(
    columns: dict[str, Any], parts: ObjArray, people: People, select: NDArray[np.bool_]
) -> pd.DataFrame:
    r, h, p = _people_in(parts, people, select)
    return pd.DataFrame(
        {
            **columns,
            "area_m2": shapely.area(parts) if len(parts) else np.zeros(0),
            "residents": r,
            "households": h,
            "population": p,
            "geometry": parts,
        }
    )


def diagnose(
    grids: GridLayer,
    grid_community: IntArray,
    communities: CommunityLayer,
    people: People,
    res_grid: IntArray,
    res_comm: IntArray,
    *,
    min_area_m2: float,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Gaps, overlaps and crossings (see the module docstring)."""
    gg, cg = grids.geometry, communities.geometry
    tree = shapely.STRtree(gg)
    # gaps: the community minus every grid
    gap_parts: list[Any] = []
    gap_comm: list[int] = []
    for c, geom in enumerate(cg):  # one per community
        near = tree.query(geom, predicate="intersects")
        rest = shapely.difference(geom, shapely.union_all(gg[near])) if len(near) else geom
        parts = shapely.get_parts(rest)
        parts = parts[np.isin(shapely.get_type_id(parts), [3])]
        parts = parts[shapely.area(parts) > min_area_m2]
        gap_parts.extend(parts)
        gap_comm.extend([c] * len(parts))
    gp = np.array(gap_parts, dtype=object)
    gc = np.array(gap_comm, dtype=np.int64)
    gaps = _part_frame(
        {
            "community_id": communities.community_id[gc],
            "community_name": communities.name[gc],
        },
        gp,
        people,
        res_grid < 0,
    )
    gaps.insert(0, "gap_id", [f"GAP{i + 1:03d}" for i in range(len(gaps))])
    # overlaps: pairs of grids sharing area
    i, j = tree.query(gg, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    inter = _polygonal(shapely.intersection(gg[i], gg[j])) if len(i) else np.zeros(0, object)
    big = shapely.area(inter) > min_area_m2 if len(i) else np.zeros(0, bool)
    i, j, inter = i[big], j[big], inter[big]
    pi, _ = tree.query(shapely.points(people.x, people.y), predicate="intersects")
    multi = np.bincount(pi, minlength=len(people.x)) >= 2
    overlaps = _part_frame(
        {"grid_id": grids.grid_id[i], "other_grid_id": grids.grid_id[j]}, inter, people, multi
    )
    overlaps.insert(0, "overlap_id", [f"OVL{k + 1:03d}" for k in range(len(overlaps))])
    # crossings: the part of a grid outside its community
    has = np.flatnonzero(grid_community >= 0)
    diff = shapely.difference(gg[has], cg[grid_community[has]]) if len(has) else np.zeros(0)
    diff = _polygonal(np.asarray(diff, dtype=object))
    big = shapely.area(diff) > min_area_m2 if len(has) else np.zeros(0, bool)
    has, diff = has[big], diff[big]
    into = []
    for piece in diff:  # one per crossing grid
        near = shapely.STRtree(cg).query(piece, predicate="intersects")
        areas = shapely.area(shapely.intersection(cg[near], piece)) if len(near) else np.zeros(0)
        into.append(
            ",".join(communities.community_id[near[np.argsort(-np.asarray(areas))]])
            if len(near)
            else ""
        )
    crossing_people = np.zeros(len(people.x), dtype=bool)
    ok = res_grid >= 0
    crossing_people[ok] = res_comm[ok] != grid_community[res_grid[ok]]
    crossings = _part_frame(
        {
            "grid_id": grids.grid_id[has],
            "community_id": communities.community_id[grid_community[has]],
            "into_community_id": np.array(into, dtype=object),
        },
        diff,
        people,
        crossing_people,
    )
    return gaps, overlaps, crossings


def grid_communities(grids: GridLayer, communities: CommunityLayer) -> IntArray:
    """Community index of each grid: its declared ``community_id``, else most of its area."""
    n = len(grids.grid_id)
    out = np.full(n, -1, dtype=np.int64)
    lookup = {str(c): k for k, c in enumerate(communities.community_id)}
    declared = np.array([lookup.get(str(c), -1) for c in grids.community_id], dtype=np.int64)
    out[:] = declared
    missing = np.flatnonzero(out < 0)
    if len(missing):
        tree = shapely.STRtree(communities.geometry)
        gi, ci = tree.query(grids.geometry[missing], predicate="intersects")
        area = shapely.area(
            shapely.intersection(grids.geometry[missing][gi], communities.geometry[ci])
        )
        order = np.lexsort((ci, -area, gi))
        first = np.r_[True, gi[order][1:] != gi[order][:-1]] if len(gi) else np.zeros(0, bool)
        out[missing[gi[order][first]]] = ci[order][first]
    return out


# --------------------------------------------------------------------------------------------
# re-gridding
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Faces:
    """Street blocks of one community (metric polygons) with their weights and adjacency."""

    geometry: ObjArray
    households: FloatArray
    population: FloatArray
    elderly: FloatArray
    children: FloatArray
    cx: FloatArray
    cy: FloatArray
    adjacency: sp.csr_matrix
    grid: IntArray  # current grid of each face (unit rule on a point inside it), -1 none

    @property
    def adjacency_coo(self) -> sp.coo_matrix:
        """The adjacency as COO arrays (cached)."""
        cached = self.__dict__.get("_coo")
        if cached is None:
            cached = self.adjacency.tocoo()
            object.__setattr__(self, "_coo", cached)
        return cached


def community_faces(
    community: Any,
    street_lines: ObjArray,
    street_tree: shapely.STRtree,
    grid_geoms: ObjArray,
    people: People,
    members: IntArray,
    max_households: float,
) -> tuple[_Faces, IntArray]:
    """Cut a community into street blocks; return them and each member resident's block.

    A block holding more than ``max_households`` is cut further into resident clusters: the
    Voronoi cells of its residents' points, clipped to the block.
    """
    shapely.prepare(community)
    near = street_tree.query(community, predicate="intersects")
    streets = street_lines[near].copy()
    crossing = ~shapely.covered_by(streets, community)  # only these need clipping
    streets[crossing] = shapely.intersection(streets[crossing], community)
    gnear = shapely.STRtree(grid_geoms).query(community, predicate="intersects")
    borders = shapely.intersection(shapely.boundary(grid_geoms[gnear]), community)
    lines = np.concatenate([streets, borders, [shapely.boundary(community)]])
    lines = lines[~shapely.is_empty(lines)]
    # node on a 1 cm grid: borders that coincide with streets up to rounding become one line
    noded = shapely.union_all(lines, grid_size=NODING_GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    rep = shapely.point_on_surface(faces)
    faces = faces[shapely.contains_xy(community, *shapely.get_coordinates(rep).T)]
    if len(faces) == 0:  # pragma: no cover - a community always yields its own face
        faces = np.array([community], dtype=object)
    faces = _split_heavy(faces, people, members, max_households)
    rep_xy = shapely.get_coordinates(shapely.point_on_surface(faces))
    cur = assign_units(rep_xy[:, 0], rep_xy[:, 1], grid_geoms)
    at = assign_units(people.x[members], people.y[members], faces)
    lost = np.flatnonzero(at < 0)
    if len(lost):
        _, nearest = shapely.STRtree(faces).query_nearest(
            shapely.points(people.x[members[lost]], people.y[members[lost]]), all_matches=False
        )
        at[lost] = nearest
    n = len(faces)

    def total(v: FloatArray) -> FloatArray:
        return np.bincount(at, weights=v[members], minlength=n).astype(float)

    hh = total(people.households)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(
            hh > 0, total(people.households * people.x) / np.maximum(hh, 1e-12), rep_xy[:, 0]
        )
        cy = np.where(
            hh > 0, total(people.households * people.y) / np.maximum(hh, 1e-12), rep_xy[:, 1]
        )
    ftree = shapely.STRtree(faces)
    i, j = ftree.query(faces, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    shared = shapely.length(shapely.intersection(faces[i], faces[j])) if len(i) else np.zeros(0)
    rook = shared > 1e-6
    i, j = i[rook], j[rook]
    w = np.hypot(cx[i] - cx[j], cy[i] - cy[j]) + 1e-3
    adj = sp.coo_matrix((np.r_[w, w], (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    return (
        _Faces(
            faces,
            hh,
            total(people.population),
            total(people.elderly),
            total(people.children),
            cx,
            cy,
            adj,
            cur,
        ),
        at,
    )


def _split_heavy(
    faces: ObjArray, people: People, members: IntArray, max_households: float
) -> ObjArray:
    at = assign_units(people.x[members], people.y[members], faces)
    ok = at >= 0
    hh = np.bincount(at[ok], weights=people.households[members[ok]], minlength=len(faces))
    heavy = np.flatnonzero(hh > max_households)
    if len(heavy) == 0:
        return faces
    pieces: list[Any] = []
    for f in heavy:  # one per over-full block
        pts = np.unique(
            np.column_stack([people.x[members[at == f]], people.y[members[at == f]]]), axis=0
        )
        if len(pts) < 2:
            pieces.append(faces[f])
            continue
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=faces[f])
        )
        cut = _polygonal(np.asarray(shapely.intersection(cells, faces[f]), dtype=object))
        pieces.extend(p for p in shapely.get_parts(np.asarray(cut, dtype=object)) if p.area > 0)
    rest = np.delete(faces, heavy)
    return np.concatenate([rest, np.array(pieces, dtype=object)])


@dataclass
class _Splitter:
    """Recursive spanning-tree bisection of a set of faces within a households band."""

    faces: _Faces
    lo: float
    hi: float
    rng: np.random.Generator
    max_tries: int

    def grid_counts(self, households: float, n: int = 3) -> list[int]:
        """Feasible numbers of grids (``k·min <= H <= k·max``), nearest H / mid-band first."""
        kmin = max(1, math.ceil(households / self.hi - 1e-9))
        kmax = math.floor(households / self.lo + 1e-9)
        mid = households / ((self.lo + self.hi) / 2)
        ks = sorted(range(kmin, kmax + 1), key=lambda k: (abs(k - mid), k))
        return ks[:n]

    def _tree(self, nodes: IntArray, jitter: bool) -> tuple[IntArray, IntArray, sp.coo_matrix]:
        """A minimum spanning tree of ``nodes``: BFS order, parents, and the tree's arcs."""
        adj = self.faces.adjacency_coo
        where = np.full(len(self.faces.households), -1, dtype=np.int64)
        where[nodes] = np.arange(len(nodes))
        keep = (where[adj.row] >= 0) & (where[adj.col] >= 0)
        row, col, w = where[adj.row[keep]], where[adj.col[keep]], adj.data[keep]
        w = w * (self.rng.uniform(1.0, 2.0, len(w)) if jitter else 1.0)
        shape = (len(nodes), len(nodes))
        tree = minimum_spanning_tree(sp.csr_matrix((w, (row, col)), shape))
        tree = (tree + tree.T).tocoo()
        order, pred = breadth_first_order(tree.tocsr(), 0, directed=False)
        return order, pred, tree

    def split(self, nodes: IntArray, k: int, *, relaxed: bool = False) -> list[IntArray] | None:
        """Split ``nodes`` (connected) into ``k`` contiguous parts within the band.

        Peels one grid at a time off a spanning tree (a subtree whose households are in the
        band while the rest can still make ``k - 1`` grids), the subtree nearest the mean
        size first; another tree (jittered weights) when no cut fits.
        """
        hh = self.faces.households
        lo, hi = (0.0, np.inf) if relaxed else (self.lo, self.hi)
        eps = 1e-9
        for attempt in range(1 if relaxed else self.max_tries):
            parts: list[IntArray] = []
            rest = nodes
            for left in range(k, 1, -1):  # grids still to make from ``rest``
                total = float(hh[rest].sum())
                cut = None
                for retry in range(1 if relaxed else 3):
                    order, pred, tree = self._tree(rest, attempt > 0 or retry > 0)
                    if len(order) < len(rest):
                        return None  # not connected
                    sums = hh[rest].astype(float)
                    for v in order[:0:-1]:  # children before parents (blocks, not streets)
                        sums[pred[v]] += sums[v]
                    cand = order[1:]
                    a = sums[cand]
                    b = total - a
                    ok = (a >= lo - eps) & (a <= hi + eps)
                    ok &= (b >= (left - 1) * lo - eps) & (b <= (left - 1) * hi + eps)
                    if relaxed:
                        ok &= a > 0
                    if ok.any():
                        score = np.where(ok, np.abs(a - total / left), np.inf)
                        cut = int(cand[int(np.argmin(score))])
                        break
                if cut is None:
                    parts = []
                    break
                keep = ~(
                    ((tree.row == cut) & (tree.col == pred[cut]))
                    | ((tree.col == cut) & (tree.row == pred[cut]))
                )
                cut_tree = sp.csr_matrix(
                    (tree.data[keep], (tree.row[keep], tree.col[keep])), tree.shape
                )
                _, lab = connected_components(cut_tree, directed=False)
                side = lab == lab[cut]
                parts.append(rest[side])
                rest = rest[~side]
            else:
                total = float(hh[rest].sum())
                if relaxed or lo - eps <= total <= hi + eps:
                    return [*parts, rest]
        return None


def _components(adj: sp.csr_matrix, nodes: IntArray) -> list[IntArray]:
    if len(nodes) == 0:
        return []
    _, lab = connected_components(adj[nodes][:, nodes], directed=False)
    return [nodes[lab == c] for c in np.unique(lab)]


def _attempt(faces: _Faces, keep: list[int], splitter: _Splitter) -> tuple[list[IntArray], str]:
    """Split what the kept grids leave; the parts, or the reason why not."""
    n = len(faces.households)
    adj = faces.adjacency
    everything = np.arange(n)
    fixed = np.isin(faces.grid, keep) if keep else np.zeros(n, bool)
    rest = everything[~fixed]
    parts: list[IntArray] = []
    for comp in _components(adj, rest):
        h = float(faces.households[comp].sum())
        if h <= 0:
            continue  # joins a neighbour below
        ks = splitter.grid_counts(h)
        if not ks:
            return [], (
                f"{h:.0f} households cannot make grids of {splitter.lo:g}-{splitter.hi:g} "
                "households"
            )
        heavy = faces.households[comp].max()
        if heavy > splitter.hi:
            return [], (
                f"one street block holds {heavy:.0f} households, more than the band's "
                f"maximum {splitter.hi:g}"
            )
        got = None
        for k in ks:  # the preferred count first, then its neighbours
            got = splitter.split(comp, k)
            if got is not None:
                break
        if got is None:
            return [], (
                f"no contiguous split of {h:.0f} households into "
                f"{' or '.join(map(str, ks))} grids of {splitter.lo:g}-{splitter.hi:g} "
                f"found in {splitter.max_tries} spanning trees each"
            )
        parts.extend(got)
    return parts, ""


def _join_empty(label: IntArray, adj: sp.csr_matrix, status: list[str]) -> None:
    """Blocks without households (parks, slivers) join a neighbouring grid, in place."""
    n = len(label)
    for _ in range(n):
        free = np.flatnonzero(label == -1)
        if len(free) == 0:
            break
        coo = adj[free].tocoo()
        nb = label[coo.col]
        has = nb != -1
        if not has.any():
            break
        src, val = free[coo.row[has]], nb[has]
        first = np.unique(src, return_index=True)[1]
        label[src[first]] = val[first]
    if (label == -1).any():  # isolated faces without households: areas, not staffed grids
        for nodes in _components(adj, np.flatnonzero(label == -1)):
            label[nodes] = len(status)
            status.append("empty")


def _partition(
    faces: _Faces,
    current: Sequence[int],
    splitter: _Splitter,
) -> tuple[IntArray, list[str], str]:
    """Face labels (``>= 0`` new grids, ``-2 - g`` kept grid ``g``), statuses and the reason.

    ``reason`` is empty when the community is feasible.
    """
    n = len(faces.households)
    adj = faces.adjacency
    everything = np.arange(n)
    kept: list[int] = []
    for g in current:  # grids of this community (a handful)
        sel = np.flatnonzero(faces.grid == g)
        h = faces.households[sel].sum()
        if len(sel) and splitter.lo <= h <= splitter.hi and len(_components(adj, sel)) == 1:
            kept.append(g)

    label = np.full(n, -1, dtype=np.int64)
    reason = ""
    parts, reason = _attempt(faces, kept, splitter)
    if reason and kept:
        kept = []
        parts, reason = _attempt(faces, kept, splitter)
    status: list[str] = []
    for g in kept:
        label[faces.grid == g] = -2 - g
    if reason:  # best effort: even split, band relaxed
        parts = []
        for comp in _components(adj, everything):
            h = float(faces.households[comp].sum())
            if h <= 0:
                continue
            mid = (splitter.lo + splitter.hi) / 2
            k = int(max(1, min(len(comp), round(h / mid))))
            got = splitter.split(comp, k, relaxed=True)
            assert got is not None
            parts.extend(got)
    for p, nodes in enumerate(parts):
        label[nodes] = p
        status.append("best_effort" if reason else "new")
    _join_empty(label, adj, status)
    return label, status, reason


def street_lines(edge_coords: FloatArray) -> ObjArray:
    """Street segments (metric) from ``(E, 2, 2)`` edge end points."""
    return np.asarray(shapely.linestrings(edge_coords), dtype=object)


def _clip(faces: ObjArray, community: Any) -> Any:
    """The union of ``faces`` (a coverage) cut to the community (noding moves borders < 1 cm)."""
    try:
        merged = shapely.coverage_union_all(faces)
    except shapely.errors.GEOSException:  # resident-cluster cells are not noded exactly
        merged = shapely.union_all(faces, grid_size=NODING_GRID_M)
    if not shapely.covered_by(merged, community):  # community prepared by the caller
        merged = shapely.intersection(merged, community)
    return _polygonal(np.array([merged], dtype=object))[0]


def propose_grids(
    grids: GridLayer,
    grid_community: IntArray,
    communities: CommunityLayer,
    people: People,
    res_comm: IntArray,
    streets: ObjArray,
    options: GridOptions,
) -> tuple[ObjArray, ObjArray, ObjArray, list[str], IntArray, pd.DataFrame]:
    """New grids: ids, community ids, metric polygons, statuses, each resident's new grid.

    Also returns the per-community summary (households, grids now and proposed, kept,
    ``feasible``, ``reason``).
    """
    rng = np.random.default_rng(options.seed)
    splitter = _Splitter(
        _Faces(
            np.zeros(0, object), *(np.zeros(0),) * 6, sp.csr_matrix((0, 0)), np.zeros(0, np.int64)
        ),
        options.households_min,
        options.households_max,
        rng,
        options.max_tries,
    )
    street_tree = shapely.STRtree(streets)
    ids: list[str] = []
    comms: list[str] = []
    geoms: list[Any] = []
    statuses: list[str] = []
    res_new = np.full(len(people.x), -1, dtype=np.int64)
    rows: list[dict[str, Any]] = []
    for c, cid in enumerate(communities.community_id):  # one per community
        members = np.flatnonzero(res_comm == c)
        shapely.prepare(communities.geometry[c])
        faces, at = community_faces(
            communities.geometry[c], streets, street_tree, grids.geometry, people, members,
            options.households_max,
        )  # fmt: skip
        splitter.faces = faces
        current = [int(g) for g in np.flatnonzero(grid_community == c)]
        label, status, reason = _partition(faces, current, splitter)
        base = len(ids)
        kept_ids = sorted({int(v) for v in label if v <= -2})
        mapping: dict[int, int] = {}
        for g in kept_ids:
            mapping[g] = len(ids)
            ids.append(str(grids.grid_id[-2 - g]))
            comms.append(str(cid))
            geoms.append(_clip(faces.geometry[label == g], communities.geometry[c]))
            statuses.append("kept")
        for p, st in enumerate(status):
            mapping[p] = len(ids)
            ids.append(f"{cid}-N{p + 1:02d}")
            comms.append(str(cid))
            geoms.append(_clip(faces.geometry[label == p], communities.geometry[c]))
            statuses.append(st)
        lut = np.array([mapping[int(v)] for v in label], dtype=np.int64)
        res_new[members] = lut[at]
        hh = float(faces.households.sum())
        rows.append(
            {
                "community_id": str(cid),
                "name": str(communities.name[c]),
                "households": hh,
                "population": float(faces.population.sum()),
                "grids_now": len(current),
                "grids_proposed": sum(st != "empty" for st in statuses[base:]),
                "grids_kept": len(kept_ids),
                "blocks": len(faces.households),
                "feasible": not reason,
                "reason": reason,
            }
        )
    return (
        np.array(ids, dtype=object),
        np.array(comms, dtype=object),
        np.array(geoms, dtype=object),
        statuses,
        res_new,
        pd.DataFrame(rows),
    )


# --------------------------------------------------------------------------------------------
# the analysis
# --------------------------------------------------------------------------------------------
def analyse_grids(
    grids: GridLayer,
    communities: CommunityLayer,
    people: People,
    bases: Bases,
    graph: RoutingGraph,
    *,
    options: GridOptions,
    facility_xy: FloatArray,
    facility_tier: ObjArray,
    tier_keys: Sequence[str],
    edge_coords: FloatArray | None = None,
) -> GridResult:
    """Coverage check, per-grid table and (with ``options.propose``) a re-gridding.

    Parameters
    ----------
    grids, communities : GridLayer, CommunityLayer
        Polygons in the network's metric CRS.
    people : People
        Residents (metric coordinates, households, positions on ``graph``'s network).
    bases : Bases
        Candidate bases (positions on ``graph``'s network).
    graph : RoutingGraph
        The network of the base tier's mode.
    options : GridOptions
    facility_xy, facility_tier : ndarray
        All facilities (metric) and their tier keys, counted per grid.
    tier_keys : sequence of str
    edge_coords : ndarray, shape (E, 2, 2), optional
        Street segments for the proposal (required with ``options.propose``).

    Returns
    -------
    GridResult
    """
    nearest = nearest_sources(graph, bases.positions, people.positions)
    res_grid = assign_units(people.x, people.y, grids.geometry)
    res_comm = assign_units(people.x, people.y, communities.geometry)
    gcomm = grid_communities(grids, communities)
    comm_ids = np.where(gcomm >= 0, communities.community_id[np.maximum(gcomm, 0)], "")
    table = grid_table(
        grids.grid_id, comm_ids, grids.geometry, res_grid, people, bases, graph, options,
        facility_xy, facility_tier, tier_keys, nearest,
    )  # fmt: skip
    table.insert(list(table.columns).index("children"), "name", grids.name)
    gaps, overlaps, crossings = diagnose(
        grids, gcomm, communities, people, res_grid, res_comm, min_area_m2=options.min_area_m2
    )
    proposed = None
    per_comm = _community_rows(communities, res_comm, people, gcomm)
    if options.propose:
        if edge_coords is None:
            raise InputError("a re-gridding proposal needs the street network (edge_coords)")
        ids, cids, geoms, status, res_new, per_comm = propose_grids(
            grids, gcomm, communities, people, res_comm, street_lines(edge_coords), options
        )
        proposed = grid_table(
            ids, cids, geoms, res_new, people, bases, graph, options, facility_xy,
            facility_tier, tier_keys, nearest,
        )  # fmt: skip
        proposed.insert(list(proposed.columns).index("children"), "status", status)
    outside = res_grid < 0
    summary = {
        "grids": len(table),
        "grids_within_band": int(table["within_band"].sum()),
        "band": options.band_text,
        "household_size": options.household_size,
        "households": float(people.households.sum()),
        "gaps": len(gaps),
        "gap_area_m2": float(gaps["area_m2"].sum()),
        "largest_gap_m2": float(gaps["area_m2"].max()) if len(gaps) else 0.0,
        "overlaps": len(overlaps),
        "overlap_area_m2": float(overlaps["area_m2"].sum()),
        "crossings": len(crossings),
        "residents_outside_grids": int(outside.sum()),
        "households_outside_grids": float(people.households[outside].sum()),
        "residents_outside_communities": int((res_comm < 0).sum()),
        "farthest_household_m": _finite_max(table["base_max_m"]),
        "farthest_grid_id": _argmax_id(table, "base_max_m"),
    }
    if proposed is not None:
        summary.update(
            {
                "proposed_grids": int((proposed["status"] != "empty").sum()),
                "proposed_empty_areas": int((proposed["status"] == "empty").sum()),
                "proposed_within_band": int(proposed["within_band"].sum()),
                "proposed_kept": int((proposed["status"] == "kept").sum()),
                "infeasible_communities": int((~per_comm["feasible"]).sum()),
                "proposed_farthest_household_m": _finite_max(proposed["base_max_m"]),
            }
        )
    return GridResult(table, gaps, overlaps, crossings, proposed, per_comm, summary)


def _finite_max(s: pd.Series) -> float:
    v = s.to_numpy(float)
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) else float("nan")


def _argmax_id(table: pd.DataFrame, col: str) -> str:
    v = table[col].to_numpy(float)
    ok = np.isfinite(v)
    return str(table["grid_id"].to_numpy()[ok][np.argmax(v[ok])]) if ok.any() else ""


def _community_rows(
    communities: CommunityLayer, res_comm: IntArray, people: People, gcomm: IntArray
) -> pd.DataFrame:
    n = len(communities.community_id)
    ok = res_comm >= 0
    return pd.DataFrame(
        {
            "community_id": communities.community_id,
            "name": communities.name,
            "households": np.bincount(res_comm[ok], weights=people.households[ok], minlength=n),
            "population": np.bincount(res_comm[ok], weights=people.population[ok], minlength=n),
            "grids_now": np.bincount(gcomm[gcomm >= 0], minlength=n),
        }
    )


#: Metric point columns of the result tables and the WGS84 columns they become.
POINT_COLUMNS: Final = {
    ("base_x_m", "base_y_m"): ("base_lon", "base_lat"),
    ("farthest_x_m", "farthest_y_m"): ("farthest_lon", "farthest_lat"),
}


def to_gdf(frame: pd.DataFrame, to_lonlat: Any) -> gpd.GeoDataFrame:
    """A result table as a GeoDataFrame in EPSG:4326 (``to_lonlat`` maps metric x, y).

    Metric point columns (``base_x_m``...) become WGS84 ``base_lon``/``base_lat`` and
    ``farthest_lon``/``farthest_lat``.
    """
    import geopandas as gpd

    out = frame.drop(columns="geometry")
    for (cx, cy), (clon, clat) in POINT_COLUMNS.items():
        if cx in out:
            lon, lat = to_lonlat(out[cx].to_numpy(float), out[cy].to_numpy(float))
            at = list(out.columns).index(cx)
            out = out.drop(columns=[cx, cy])
            out.insert(at, clon, np.round(lon, 7))
            out.insert(at + 1, clat, np.round(lat, 7))
    geoms = frame["geometry"].to_numpy(dtype=object) if len(frame) else np.zeros(0, object)
    if len(geoms):
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_lonlat(xy[:, 0], xy[:, 1])))
    return gpd.GeoDataFrame(out, geometry=list(geoms), crs="EPSG:4326")
