"""Which unit a point belongs to, and coverage per unit (达标率 tables).

One rule, used by every table, export, map and service response
-------------------------------------------------------------------
A point belongs to a unit when the unit's closed polygon (interior *and* boundary) contains
it. A point on a border shared by several units, or inside an overlap of several units, belongs
to the unit listed **first** (the lowest index in the unit file), so every point belongs to at
most one unit of a layer, deterministically. A point in no polygon belongs to none (``-1``) and is
reported in the "outside all units" row rather than dropped.

Per-unit tables are weighted by population; shares are fractions (0-1, ``nan`` for a unit
without people); distance quantiles use the same weighted rule as the study-wide figures
(:func:`lifecircle.coverage.weighted_quantile`).

Examples
--------
>>> import numpy as np
>>> from shapely.geometry import box
>>> west, east = box(0, 0, 1, 1), box(1, 0, 2, 1)  # share the border x = 1
>>> assign_units(np.array([0.5, 1.0, 1.5, 3.0]), np.array([0.5, 0.5, 0.5, 0.5]), [west, east])
array([ 0,  0,  1, -1])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from lifecircle.coverage import CoverageResult, tier_columns
from lifecircle.io import UnitLayer

logger = logging.getLogger(__name__)

#: Id and names of the row that holds residents outside every unit of a layer.
OUTSIDE_ID = "(outside all units)"
OUTSIDE_NAME = {"zh": "（不在任何单元内）", "en": "(outside all units)"}

#: Labels of the sub-district level (the whole study area when no sub-district outline is given).
SUBDISTRICT_LABELS = {"zh": "街道", "en": "Sub-district"}
ALL_RESIDENTS_LABELS = {"zh": "全部居民", "en": "All residents"}


#: Cells per side of the grid that groups points by place in :func:`assign_units` (16-bit cell
#: numbers, so the points are grouped by a radix sort).
_GRID_CELLS: Final = 256


def assign_units(
    lon: ArrayLike, lat: ArrayLike, polygons: Sequence[Any] | NDArray[np.object_]
) -> NDArray[np.int64]:
    """Index of the unit each point belongs to, ``-1`` for points in none (the module's rule).

    Parameters
    ----------
    lon, lat : array_like
        Point coordinates, in the polygons' CRS (WGS84 degrees everywhere in lifecircle).
    polygons : sequence of shapely geometries
        Unit polygons; ``None`` entries contain nothing.

    Returns
    -------
    ndarray of int64
        For a point on a shared border or in an overlap, the lowest polygon index.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> assign_units([0.5, 2.0], [0.5, 0.5], [box(0, 0, 1, 1), box(2, 0, 3, 1)])
    array([0, 1])
    """
    x = np.asarray(lon, float)
    y = np.asarray(lat, float)
    out = np.full(len(x), -1, dtype=np.int64)
    polys = np.asarray(polygons, dtype=object)
    if len(x) == 0 or len(polys) == 0:
        return out
    # no Point objects (creating millions of them costs more than the tests): the points are
    # binned on a grid of at most 256 x 256 cells over the units' extent and grouped by cell (a
    # radix sort of 16-bit cell numbers); per unit, the points of the cells its bounding box
    # covers are tested with intersects_xy (closed polygon: the border counts); units in file
    # order, so the lowest index wins
    valid = np.array([g is not None and not shapely.is_empty(g) for g in polys], dtype=bool)
    if not valid.any():
        return out
    bounds = np.full((len(polys), 4), np.nan)
    bounds[valid] = shapely.bounds(polys[valid])
    x0, y0 = np.nanmin(bounds[:, 0]), np.nanmin(bounds[:, 1])
    x1, y1 = np.nanmax(bounds[:, 2]), np.nanmax(bounds[:, 3])
    side = _GRID_CELLS
    dx = max(x1 - x0, 1e-12) / side
    dy = max(y1 - y0, 1e-12) / side
    with np.errstate(invalid="ignore"):
        near = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)  # False for NaN too
    idx = np.flatnonzero(near)
    col = np.minimum(((x[idx] - x0) / dx).astype(np.int64), side - 1)
    row = np.minimum(((y[idx] - y0) / dy).astype(np.int64), side - 1)
    cell = row * side + col
    by_cell = np.argsort(cell.astype(np.uint16), kind="stable")  # radix sort: 16-bit keys
    order = idx[by_cell]
    start = np.searchsorted(cell[by_cell], np.arange(side * side + 1))
    # each unit's box in cells (units without a geometry: a box of no interest, never used)
    cb = np.where(valid[:, None], bounds, [x0, y0, x0, y0])
    c_lo, r_lo, c_hi, r_hi = (
        np.minimum(((cb[:, j] - o) / d).astype(np.int64), side - 1)
        for j, o, d in ((0, x0, dx), (1, y0, dy), (2, x0, dx), (3, y0, dy))
    )
    n_multi = 0
    for k in np.flatnonzero(valid):
        # each row of cells under the box is one run of the grouped points
        rows = np.arange(r_lo[k], r_hi[k] + 1) * side
        parts = [order[start[r + c_lo[k]] : start[r + c_hi[k] + 1]] for r in rows]
        cand = np.concatenate(parts) if parts else order[:0]
        xc, yc = x[cand], y[cand]
        box = (
            (xc >= bounds[k, 0])
            & (xc <= bounds[k, 2])
            & (yc >= bounds[k, 1])
            & (yc <= bounds[k, 3])
        )
        cand, xc, yc = cand[box], xc[box], yc[box]
        if len(cand) == 0:
            continue
        poly = polys[k]
        shapely.prepare(poly)
        inside = cand[shapely.intersects_xy(poly, xc, yc)]
        taken = out[inside] >= 0
        n_multi += int(taken.sum())
        out[inside[~taken]] = k
    if n_multi:
        logger.info(
            "%d point(s) lie in several units (shared borders or overlaps); each goes to "
            "the unit listed first",
            n_multi,
        )
    return out


def unit_columns(
    lon: ArrayLike, lat: ArrayLike, units: Sequence[UnitLayer]
) -> dict[str, NDArray[np.object_]]:
    """``{key}_id`` and ``{key}_name`` of the unit of each point, per layer (``""`` for none).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> from lifecircle.io import UnitLayer
    >>> frame = gpd.GeoDataFrame({"unit_id": ["C1"], "name": ["城东社区"]},
    ...                          geometry=[box(0, 0, 1, 1)], crs="EPSG:4326")
    >>> cols = unit_columns(
    ...     [0.5, 5.0], [0.5, 5.0], [UnitLayer("community", "社区", "Community", frame, "")]
    ... )
    >>> list(cols["community_id"]), list(cols["community_name"])
    (['C1', ''], ['城东社区', ''])
    """
    n = len(np.asarray(lon))
    out: dict[str, NDArray[np.object_]] = {}
    for layer in units:
        idx = assign_units(lon, lat, np.asarray(layer.frame.geometry.values, dtype=object))
        ok = idx >= 0
        for col, src in (("id", "unit_id"), ("name", "name")):
            values = np.full(n, "", dtype=object)
            values[ok] = layer.frame[src].astype(str).to_numpy(dtype=object)[idx[ok]]
            out[f"{layer.key}_{col}"] = values
    return out


def grouped_weighted_quantile(
    group: NDArray[np.int64],
    values: NDArray[np.float64],
    weights: NDArray[np.float64],
    q: float,
    n_groups: int,
) -> NDArray[np.float64]:
    """Weighted ``q`` quantile of ``values`` within each group, all groups at once.

    Same rule as :func:`lifecircle.coverage.weighted_quantile` (zero weights ignored; the first
    value whose cumulative weight reaches ``q`` of the group's total). Groups without positive
    weight get ``nan``.
    """
    out = np.full(n_groups, np.nan)
    ok = weights > 0
    g, v, w = group[ok], values[ok], weights[ok]
    if len(g) == 0:
        return out
    order = np.lexsort((v, g))
    g, v, w = g[order], v[order], w[order]
    cw = np.cumsum(w)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    base = np.where(starts > 0, cw[np.maximum(starts - 1, 0)], 0.0)
    total = cw[ends - 1] - base
    idx = np.searchsorted(cw, base + q * total, side="left")
    idx = np.clip(idx, starts, ends - 1)
    out[g[starts]] = v[idx]
    return out


@dataclass(frozen=True)
class UnitLevel:
    """One layer of units: polygons (WGS84) with ids, names and labels.

    A level whose only geometry is ``None`` holds every resident (the whole study area).
    """

    key: str
    label_zh: str
    label_en: str
    unit_id: NDArray[np.object_]
    name: NDArray[np.object_]
    geometry: NDArray[np.object_]  # shapely geometries, WGS84

    def label(self, lang: str) -> str:
        """The layer's label in ``lang`` (``zh`` or ``en``)."""
        return self.label_zh if lang == "zh" else self.label_en

    @classmethod
    def from_layer(cls, layer: UnitLayer) -> UnitLevel:
        """A level from a loaded unit file."""
        f = layer.frame
        return cls(
            key=layer.key,
            label_zh=layer.label_zh,
            label_en=layer.label_en,
            unit_id=f["unit_id"].astype(str).to_numpy(dtype=object),
            name=f["name"].astype(str).to_numpy(dtype=object),
            geometry=np.asarray(f.geometry.values, dtype=object),
        )


def unit_levels(
    units: Sequence[UnitLayer], subdistrict: Any = None, subdistrict_name: str | None = None
) -> list[UnitLevel]:
    """The unit levels of an analysis: the sub-district, then ``units`` in order.

    Parameters
    ----------
    units : sequence of UnitLayer
    subdistrict : shapely geometry, optional
        The sub-district outline (WGS84); without it the first level is one unit without
        geometry holding every resident.
    subdistrict_name : str, optional
        The sub-district's name (default 街道).
    """
    has_sub = subdistrict is not None
    levels = [
        UnitLevel(
            key="subdistrict",
            label_zh=SUBDISTRICT_LABELS["zh"],
            label_en=SUBDISTRICT_LABELS["en"],
            unit_id=np.array(["subdistrict" if has_sub else "all"], dtype=object),
            name=np.array(
                [
                    (subdistrict_name or SUBDISTRICT_LABELS["zh"])
                    if has_sub
                    else ALL_RESIDENTS_LABELS["zh"]
                ],
                dtype=object,
            ),
            geometry=np.array([subdistrict], dtype=object),
        )
    ]
    levels.extend(UnitLevel.from_layer(layer) for layer in units)
    return levels


def point_units(lon: ArrayLike, lat: ArrayLike, level: UnitLevel) -> NDArray[np.int64]:
    """Unit index (into ``level``) of each point; ``-1`` outside all units."""
    n = len(np.asarray(lon))
    if len(level.geometry) == 1 and level.geometry[0] is None:
        return np.zeros(n, dtype=np.int64)
    return assign_units(lon, lat, level.geometry)


def resident_units(result: CoverageResult, level: UnitLevel) -> NDArray[np.int64]:
    """Unit index (into ``level``) per resident of a coverage result; ``-1`` outside all units."""
    res = result.residents
    return point_units(res["lon"].to_numpy(float), res["lat"].to_numpy(float), level)


def _share(num: NDArray[Any], den: NDArray[Any]) -> NDArray[np.float64]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def unit_coverage(
    result: CoverageResult, level: UnitLevel, assignment: NDArray[np.int64] | None = None
) -> pd.DataFrame:
    """Coverage per unit of one level, worst first, plus the ``(outside all units)`` row.

    Parameters
    ----------
    result : CoverageResult
    level : UnitLevel
    assignment : ndarray, optional
        :func:`resident_units` output, if already computed.

    Returns
    -------
    DataFrame
        One row per unit: ``rank`` (1 = worst; empty for units without people and the outside
        row), ``layer``, ``unit_id``, ``name``, ``residents``, ``population``, ``elderly``,
        ``all_population_covered``, ``all_share``, ``all_elderly_covered``, ``all_elderly_share``,
        ``uncovered_population``, ``weakest_tier``, ``outside`` and per tier
        ``{tier}_population_covered``, ``{tier}_share``, ``{tier}_elderly_covered``,
        ``{tier}_elderly_share``, ``{tier}_median_distance_m``, ``{tier}_p90_distance_m``
        (network metres; ``inf`` when unreachable). The outside row is present only when some
        resident lies outside every unit, so populations always sum to the study total.
    """
    res = result.residents
    a = resident_units(result, level) if assignment is None else assignment
    n_units = len(level.unit_id)
    outside = a < 0
    n = n_units + 1
    g = np.where(outside, n_units, a)
    pop = res["population"].to_numpy(float)
    eld = np.nan_to_num(res["elderly"].to_numpy(float), nan=0.0)
    population = np.bincount(g, weights=pop, minlength=n)
    elderly = np.bincount(g, weights=eld, minlength=n)
    all_cov = res["all_covered"].to_numpy(bool)
    all_pop = np.bincount(g, weights=pop * all_cov, minlength=n)
    all_eld = np.bincount(g, weights=eld * all_cov, minlength=n)
    frame: dict[str, Any] = {
        "layer": level.key,
        "unit_id": np.r_[level.unit_id, [OUTSIDE_ID]],
        "name": np.r_[level.name, [OUTSIDE_NAME["zh"]]],
        "residents": np.bincount(g, minlength=n),
        "population": population,
        "elderly": elderly,
        "all_population_covered": all_pop,
        "all_share": _share(all_pop, population),
        "all_elderly_covered": all_eld,
        "all_elderly_share": _share(all_eld, elderly),
        "uncovered_population": population - all_pop,
    }
    tier_shares = []
    for tier in result.standard.tiers:
        cols = tier_columns(tier.key)
        cov = res[cols["covered"]].to_numpy(bool)
        d = res[cols["distance"]].to_numpy(float)
        k = tier.key
        frame[f"{k}_population_covered"] = np.bincount(g, weights=pop * cov, minlength=n)
        frame[f"{k}_share"] = _share(frame[f"{k}_population_covered"], population)
        frame[f"{k}_elderly_covered"] = np.bincount(g, weights=eld * cov, minlength=n)
        frame[f"{k}_elderly_share"] = _share(frame[f"{k}_elderly_covered"], elderly)
        frame[f"{k}_median_distance_m"] = grouped_weighted_quantile(g, d, pop, 0.5, n)
        frame[f"{k}_p90_distance_m"] = grouped_weighted_quantile(g, d, pop, 0.9, n)
        tier_shares.append(frame[f"{k}_share"])
    shares = np.column_stack(tier_shares)
    keys = np.array(result.standard.keys, dtype=object)
    frame["weakest_tier"] = np.where(
        np.isnan(shares).all(axis=1),
        "",
        keys[np.argmin(np.where(np.isnan(shares), np.inf, shares), axis=1)],
    )
    out = pd.DataFrame(frame)
    out["outside"] = np.r_[np.zeros(n_units, bool), [True]]
    if not outside.any():
        out = out.iloc[:n_units]
    rankable = (~out["outside"]) & (out["population"] > 0)
    ranked = out[rankable].sort_values(
        ["all_share", "uncovered_population", "unit_id"],
        ascending=[True, False, True],
        kind="stable",
    )
    rest = out[~rankable].sort_values(["outside", "unit_id"], kind="stable")
    out = pd.concat([ranked, rest], ignore_index=True)
    rank = np.full(len(out), np.nan)
    rank[: len(ranked)] = np.arange(1, len(ranked) + 1)
    out.insert(0, "rank", pd.Series(rank, index=out.index).astype("Int64"))
    return out


def unit_tables(result: CoverageResult, levels: Sequence[UnitLevel]) -> dict[str, pd.DataFrame]:
    """:func:`unit_coverage` for every level, keyed by level key."""
    return {lvl.key: unit_coverage(result, lvl) for lvl in levels}
