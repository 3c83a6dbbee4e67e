"""Planners' coverage report: compliance (达标率) per admin unit, gap finding, report pages.

Units
-----
Every resident point is assigned to at most one polygon of each unit layer (communities, grids
and the sub-district) by a point-in-polygon test on its WGS84 longitude/latitude
(:func:`lifecircle.units.assign_units`, a vectorised ``shapely.STRtree`` query; a point on a
shared border goes to the unit listed first in the file). Residents in no polygon of a layer go
to an explicit ``(outside all units)`` row, so that the populations of a layer always sum to the
total. The sub-district layer is the scenario's ``subdistrict`` boundary when it has one, else
one row with every resident.

For each unit and tier the table gives the population, the population within the tier's standard
and its share (达标率), the elderly within the standard and their share, and the
population-weighted median and 90th-percentile network distance (the same
:func:`lifecircle.coverage.weighted_quantile` rule as the study-wide figures, computed for all
units at once). ``all_share`` is the share of people within the standard of every tier (the
complete living circle). Units are ranked worst first: lowest ``all_share``, ties broken by the
larger uncovered population; units without residents and the outside row come last, unranked.

Gaps
----
For each tier, residents outside its standard (population > 0; off-network residents included)
are binned to a square grid of ``cell_m`` metres (default 200 m) in the analysis CRS, anchored at
multiples of ``cell_m``. Occupied cells that touch, including diagonally (8-connectivity), are
merged into one gap (connected components of the cell adjacency graph, so the extent of the area
does not matter). Each gap reports its tier, the tiers that at least half of its population lacks
(``tiers_missing``, always including its own tier), population, elderly, resident points, cells,
area, the population-weighted centroid (longitude/latitude), the unit of each layer holding most
of its population, and the nearest existing facility of the tier seen from the gap's *centre
resident* (the resident point closest to the centroid): its id, the network distance and the
shortfall beyond the standard. Gaps are ranked by population, largest first.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecircle._files import (
    DEFAULT_CSV_ENCODING,
    check_csv_encoding,
    check_writable,
    write_csv,
    write_geojson,
    write_json,
    write_text,
)
from lifecircle.config import ServiceStandard, standard_title
from lifecircle.coords import to_wgs84
from lifecircle.coverage import CoverageResult, tier_columns
from lifecircle.errors import InputError
from lifecircle.runs import CoverageRun
from lifecircle.units import (
    OUTSIDE_ID,
    OUTSIDE_NAME,
    UnitLevel,
    grouped_weighted_quantile,
    resident_units,
    unit_coverage,
)

if TYPE_CHECKING:
    import geopandas as gpd

logger = logging.getLogger(__name__)

#: Name of the row collecting residents outside every polygon of a layer.

#: Default side of the square cells used to cluster uncovered residents, metres.
DEFAULT_GAP_CELL_M = 200.0

LANGS = ("zh", "en")

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "report": "15分钟社区生活圈覆盖评估报告",
        "synthetic": "合成示范数据：并非真实的道路、设施或人口，仅用于演示。",
        "standard": "服务标准",
        "tier": "层级",
        "mode": "出行方式",
        "threshold": "标准距离",
        "minutes": "分钟",
        "facilities": "设施数",
        "overall": "总体覆盖",
        "population": "人口",
        "covered": "覆盖人口",
        "share": "达标率",
        "elderly_share": "老年人达标率",
        "median": "距离中位数",
        "p90": "90%分位距离",
        "all_tiers": "全部层级（完整生活圈）",
        "units_title": "各{label}达标情况（从差到好排序）",
        "rank": "排名",
        "unit": "单元",
        "name": "名称",
        "weakest": "最弱层级",
        "gaps_title": "覆盖缺口（按人口排序）",
        "gap": "缺口",
        "missing": "缺失层级",
        "centroid": "中心（经度, 纬度）",
        "nearest": "最近现有设施",
        "distance": "网络距离",
        "shortfall": "超出标准",
        "cells": "网格数",
        "in_unit": "所在单元",
        "method": "方法说明",
        "method_text": (
            "距离为沿道路网络的最短距离（含从住宅点到道路的接入段）。居民点按经纬度落入多边形分配到"
            "社区、网格和街道；不在任何多边形内的居民单列一行，因此各层级人口之和等于总人口。"
            "缺口：某一层级未覆盖的居民按 {cell:.0f} 米方格汇总，相邻（含对角）方格合并为一个缺口；"
            "最近设施从缺口人口加权中心附近的居民点计算。"
        ),
        "inputs": "输入数据",
        "files": "文件",
        "more_gaps": "另有 {n} 个缺口见 gaps.csv。",
        "walk": "步行",
        "bike": "骑行",
        "drive": "驾车",
        "layer_subdistrict": "街道",
        "all_residents": "全部居民",
        "none": "—",
    },
    "en": {
        "report": "15-minute community living circle: coverage report",
        "synthetic": "SYNTHETIC demonstration data: not real streets, sites or people.",
        "standard": "Service standard",
        "tier": "Tier",
        "mode": "Mode",
        "threshold": "Standard",
        "minutes": "min",
        "facilities": "Facilities",
        "overall": "Overall coverage",
        "population": "Population",
        "covered": "Covered",
        "share": "Share covered",
        "elderly_share": "Elderly covered",
        "median": "Median distance",
        "p90": "90th pct distance",
        "all_tiers": "All tiers (complete living circle)",
        "units_title": "Coverage by {label} (worst first)",
        "rank": "Rank",
        "unit": "Unit",
        "name": "Name",
        "weakest": "Weakest tier",
        "gaps_title": "Coverage gaps (largest population first)",
        "gap": "Gap",
        "missing": "Tiers missing",
        "centroid": "Centre (lon, lat)",
        "nearest": "Nearest existing facility",
        "distance": "Network distance",
        "shortfall": "Beyond standard",
        "cells": "Cells",
        "in_unit": "Mostly in",
        "method": "Method",
        "method_text": (
            "Distances are shortest road-network distances, access legs from the home to the "
            "street included. Residents are assigned to communities, grids and the sub-district by "
            "point-in-polygon on longitude/latitude; residents in no polygon get their own row, so "
            "each layer's populations sum to the total. Gaps: uncovered residents of a tier binned "
            "to {cell:.0f} m squares, touching squares (diagonals included) merged into one gap; "
            "the nearest facility is seen from the resident closest to the gap's "
            "population-weighted centre."
        ),
        "inputs": "Inputs",
        "files": "Files",
        "more_gaps": "{n} more gaps are listed in gaps.csv.",
        "walk": "walk",
        "bike": "bike",
        "drive": "drive",
        "layer_subdistrict": "Sub-district",
        "all_residents": "All residents",
        "none": "—",
    },
}


def text(lang: str) -> dict[str, str]:
    """The label dictionary for ``lang`` (``zh`` or ``en``)."""
    if lang not in TEXT:
        raise InputError(f"unknown language {lang!r}; use one of {', '.join(LANGS)}")
    return TEXT[lang]


# -- gaps ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gaps:
    """Clusters of uncovered residents (see the module docstring for the rule).

    Attributes
    ----------
    table : DataFrame
        One row per gap, largest population first: ``rank``, ``gap_id``, ``tier``,
        ``tiers_missing`` (``;``-separated keys), ``population``, ``elderly``, ``residents``,
        ``cells``, ``area_m2``, ``lon``, ``lat`` (population-weighted centroid, WGS84),
        ``x``, ``y`` (same, analysis CRS metres), ``threshold_m``, ``nearest_facility_id``,
        ``nearest_facility_distance_m`` and ``shortfall_m`` (from the centre resident; ``inf``
        when no facility is reachable), ``median_distance_m`` (population-weighted, over the gap),
        and ``{layer}_id`` per unit layer given.
    cells : DataFrame
        ``gap_id``, ``ix``, ``iy`` (cell column/row: the cell spans ``ix*cell_m`` to
        ``(ix+1)*cell_m`` in x, likewise y), ``population``.
    cell_m : float
        Cell side, metres.
    crs : str
        The analysis CRS of ``x``, ``y`` and the cells.
    """

    table: pd.DataFrame
    cells: pd.DataFrame
    cell_m: float
    crs: str
    resident_gap: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def geometries(self, *, limit: int | None = None) -> gpd.GeoDataFrame:
        """Gap outlines as a GeoDataFrame in EPSG:4326 (``gap_id``, ``tier``, ``population``).

        Each outline is the union of the gap's cells; ``limit`` keeps the largest gaps only.
        """
        import geopandas as gpd
        import shapely

        tab = self.table if limit is None else self.table.head(limit)
        cells = self.cells[self.cells["gap_id"].isin(tab["gap_id"])]
        c = self.cell_m
        ix = cells["ix"].to_numpy(float)
        iy = cells["iy"].to_numpy(float)
        boxes = shapely.box(ix * c, iy * c, (ix + 1) * c, (iy + 1) * c)
        gid = cells["gap_id"].to_numpy()
        order = np.argsort(gid, kind="stable")
        gid, boxes = gid[order], boxes[order]
        uniq, start = np.unique(gid, return_index=True)
        parts = np.split(boxes, start[1:])
        geoms = {u: shapely.union_all(p) for u, p in zip(uniq, parts, strict=True)}
        geom = np.array([geoms.get(g) for g in tab["gap_id"]], dtype=object)

        def fn(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], self.crs))

        geom = shapely.transform(geom, fn) if len(geom) else geom
        keep = [
            c
            for c in (
                "rank",
                "gap_id",
                "tier",
                "tiers_missing",
                "population",
                "elderly",
                "nearest_facility_id",
                "nearest_facility_distance_m",
                "shortfall_m",
            )
            if c in tab.columns
        ]
        return gpd.GeoDataFrame(
            tab[keep].reset_index(drop=True), geometry=list(geom), crs="EPSG:4326"
        )


def _cell_components(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Connected-component label of each occupied cell (8-connectivity), cells given once each."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ix)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ox, oy = ix.min() - 1, iy.min() - 1
    width = int(ix.max() - ox + 2)
    key = (iy - oy) * width + (ix - ox)
    order = np.argsort(key)
    skey = key[order]
    rows, cols = [], []
    for dx, dy in ((1, 0), (0, 1), (1, 1), (-1, 1)):
        nk = key + dy * width + dx
        pos = np.clip(np.searchsorted(skey, nk), 0, n - 1)
        hit = skey[pos] == nk
        rows.append(np.flatnonzero(hit))
        cols.append(order[pos[hit]])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    adj = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, labels = connected_components(adj, directed=False)
    return labels.astype(np.int64)


def _grouped_argmax_key(
    group: np.ndarray, key: np.ndarray, weights: np.ndarray, n_groups: int
) -> np.ndarray:
    """For each group, the ``key`` value with the largest total weight (-1 if none)."""
    out = np.full(n_groups, -1, dtype=np.int64)
    ok = key >= 0
    if not ok.any():
        return out
    kmax = int(key.max()) + 1
    combo = group[ok] * kmax + key[ok]
    uniq, inv = np.unique(combo, return_inverse=True)
    tot = np.bincount(inv, weights=weights[ok])
    ug, uk = uniq // kmax, uniq % kmax
    order = np.lexsort((uk, -tot, ug))
    first = np.r_[True, ug[order][1:] != ug[order][:-1]]
    out[ug[order][first]] = uk[order][first]
    return out


def find_gaps(
    result: CoverageResult,
    *,
    cell_m: float = DEFAULT_GAP_CELL_M,
    tiers: Sequence[str] | None = None,
    min_population: float = 1.0,
    units: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Gaps:
    """Cluster uncovered residents into gaps, per tier, ranked by population.

    Parameters
    ----------
    result : CoverageResult
    cell_m : float, default 200
        Side of the square cells (metres, analysis CRS) uncovered residents are binned to.
    tiers : sequence of str, optional
        Tier keys to search (default every tier).
    min_population : float, default 1
        Gaps with fewer people are dropped.
    units : mapping, optional
        ``{layer_key: (resident_unit_index, unit_ids)}``; adds a ``{layer_key}_id`` column with
        the unit holding most of each gap's population.

    Returns
    -------
    Gaps
    """
    if not cell_m > 0:
        raise InputError(f"gap cell size must be positive, got {cell_m}")
    res = result.residents
    std = result.standard
    keys = list(tiers) if tiers is not None else list(std.keys)
    pop = res["population"].to_numpy(float)
    eld = np.nan_to_num(res["elderly"].to_numpy(float), nan=0.0)
    x = res["x"].to_numpy(float)
    y = res["y"].to_numpy(float)
    cix = np.floor(x / cell_m).astype(np.int64)
    ciy = np.floor(y / cell_m).astype(np.int64)
    covered = {t.key: res[tier_columns(t.key)["covered"]].to_numpy(bool) for t in std.tiers}
    rows: list[pd.DataFrame] = []
    cell_rows: list[pd.DataFrame] = []
    resident_gap: dict[str, np.ndarray] = {}
    for key in keys:
        tier = std.tier(key)
        cols = tier_columns(key)
        sel = np.flatnonzero(~covered[key] & (pop > 0))
        gap_of = np.full(len(res), -1, dtype=np.int64)
        if len(sel) == 0:
            resident_gap[key] = gap_of
            continue
        width = int(cix[sel].max() - cix[sel].min() + 1)
        ckey = (ciy[sel] - ciy[sel].min()) * width + (cix[sel] - cix[sel].min())
        ucell, first, inv = np.unique(ckey, return_index=True, return_inverse=True)
        uix, uiy = cix[sel][first], ciy[sel][first]
        comp = _cell_components(uix, uiy)
        n_gap = int(comp.max()) + 1
        rg = comp[inv]  # gap of each selected resident
        p, e = pop[sel], eld[sel]
        gpop = np.bincount(rg, weights=p, minlength=n_gap)
        geld = np.bincount(rg, weights=e, minlength=n_gap)
        gres = np.bincount(rg, minlength=n_gap)
        gcells = np.bincount(comp, minlength=n_gap)
        cx = np.bincount(rg, weights=p * x[sel], minlength=n_gap) / gpop
        cy = np.bincount(rg, weights=p * y[sel], minlength=n_gap) / gpop
        # centre resident: the gap's resident point closest to its weighted centroid
        d2 = (x[sel] - cx[rg]) ** 2 + (y[sel] - cy[rg]) ** 2
        order = np.lexsort((d2, rg))
        firsts = order[np.r_[True, rg[order][1:] != rg[order][:-1]]]
        centre = np.empty(n_gap, dtype=np.int64)
        centre[rg[firsts]] = sel[firsts]
        dist = res[cols["distance"]].to_numpy(float)
        near = res[cols["nearest"]].astype(str).to_numpy(dtype=object)
        cdist = dist[centre]
        missing = []
        for other in std.tiers:
            unc = np.bincount(rg, weights=p * ~covered[other.key][sel], minlength=n_gap)
            missing.append(np.where((unc >= 0.5 * gpop) | (other.key == key), other.key, ""))
        tiers_missing = [";".join(m for m in col if m) for col in zip(*missing, strict=True)]
        lon, lat = to_wgs84(cx, cy, result.crs)
        tab = pd.DataFrame(
            {
                "tier": key,
                "tiers_missing": tiers_missing,
                "population": gpop,
                "elderly": geld,
                "residents": gres,
                "cells": gcells,
                "area_m2": gcells * cell_m * cell_m,
                "lon": lon,
                "lat": lat,
                "x": cx,
                "y": cy,
                "threshold_m": tier.threshold_m,
                "nearest_facility_id": near[centre],
                "nearest_facility_distance_m": cdist,
                "shortfall_m": cdist - tier.threshold_m,
                "median_distance_m": grouped_weighted_quantile(rg, dist[sel], p, 0.5, n_gap),
                "_comp": np.arange(n_gap),
            }
        )
        for lk, (assign, ids) in (units or {}).items():
            best = _grouped_argmax_key(rg, assign[sel], p, n_gap)
            ids_arr = np.asarray(ids, dtype=object)
            tab[f"{lk}_id"] = np.where(best >= 0, ids_arr[np.maximum(best, 0)], OUTSIDE_ID)
        tab = tab[tab["population"] >= min_population]
        tab = tab.sort_values(["population", "_comp"], ascending=[False, True], kind="stable")
        tab.insert(0, "gap_id", [f"{key}-{i:03d}" for i in range(1, len(tab) + 1)])
        id_of_comp = np.full(n_gap, "", dtype=object)
        id_of_comp[tab["_comp"].to_numpy()] = tab["gap_id"].to_numpy()
        kept = id_of_comp[comp] != ""
        cell_rows.append(
            pd.DataFrame(
                {
                    "gap_id": id_of_comp[comp][kept],
                    "ix": uix[kept],
                    "iy": uiy[kept],
                    "population": np.bincount(inv, weights=p, minlength=len(ucell))[kept],
                }
            )
        )
        comp_rank = np.full(n_gap, -1, dtype=np.int64)
        comp_rank[tab["_comp"].to_numpy()] = np.arange(len(tab))
        gap_of[sel] = comp_rank[rg]
        resident_gap[key] = gap_of
        rows.append(tab.drop(columns="_comp"))
    if rows:
        table = pd.concat(rows, ignore_index=True)
        table = table.sort_values(
            ["population", "gap_id"], ascending=[False, True], kind="stable"
        ).reset_index(drop=True)
    else:
        table = pd.DataFrame(
            columns=[
                "gap_id",
                "tier",
                "tiers_missing",
                "population",
                "elderly",
                "residents",
                "cells",
                "area_m2",
                "lon",
                "lat",
                "x",
                "y",
                "threshold_m",
                "nearest_facility_id",
                "nearest_facility_distance_m",
                "shortfall_m",
                "median_distance_m",
            ]
        )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    cells = (
        pd.concat(cell_rows, ignore_index=True)
        if cell_rows
        else pd.DataFrame({"gap_id": [], "ix": [], "iy": [], "population": []})
    )
    logger.info("gaps: %d clusters of uncovered residents (%.0f m cells)", len(table), cell_m)
    return Gaps(
        table=table, cells=cells, cell_m=float(cell_m), crs=result.crs, resident_gap=resident_gap
    )


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageReport:
    """Per-unit tables and gaps of one coverage run.

    Attributes
    ----------
    levels : list of UnitLevel
    units : dict
        ``{layer key: DataFrame}`` from :func:`unit_coverage`.
    assignments : dict
        ``{layer key: resident unit index}`` (``-1`` outside).
    gaps : Gaps
    run : CoverageRun
    """

    levels: list[UnitLevel]
    units: dict[str, pd.DataFrame]
    assignments: dict[str, np.ndarray]
    gaps: Gaps
    run: CoverageRun

    def level(self, key: str) -> UnitLevel:
        """The unit layer ``key``."""
        return next(lv for lv in self.levels if lv.key == key)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``units.json``."""
        std = self.run.result.standard
        layers = {}
        for lv in self.levels:
            tab = self.units[lv.key]
            recs = []
            for r in tab.to_dict("records"):
                tiers = {
                    t.key: {
                        "population_covered": r[f"{t.key}_population_covered"],
                        "share": r[f"{t.key}_share"],
                        "elderly_covered": r[f"{t.key}_elderly_covered"],
                        "elderly_share": r[f"{t.key}_elderly_share"],
                        "median_distance_m": r[f"{t.key}_median_distance_m"],
                        "p90_distance_m": r[f"{t.key}_p90_distance_m"],
                    }
                    for t in std.tiers
                }
                recs.append(
                    {
                        "rank": None if pd.isna(r["rank"]) else int(r["rank"]),
                        "unit_id": r["unit_id"],
                        "name": r["name"],
                        "outside": bool(r["outside"]),
                        "residents": int(r["residents"]),
                        "population": r["population"],
                        "elderly": r["elderly"],
                        "all_tiers": {
                            "population_covered": r["all_population_covered"],
                            "share": r["all_share"],
                            "elderly_covered": r["all_elderly_covered"],
                            "elderly_share": r["all_elderly_share"],
                        },
                        "uncovered_population": r["uncovered_population"],
                        "weakest_tier": r["weakest_tier"] or None,
                        "tiers": tiers,
                    }
                )
            layers[lv.key] = {"label_zh": lv.label_zh, "label_en": lv.label_en, "units": recs}
        inputs = self.run.inputs
        return {
            "scenario": inputs.scenario.name if inputs.scenario else None,
            "synthetic": inputs.synthetic,
            "standard": std.name,
            "population_total": self.run.result.population_total,
            "layers": layers,
        }

    def gaps_dict(self) -> dict[str, Any]:
        """Plain data for ``gaps.json``."""
        return {
            "method": {
                "cell_m": self.gaps.cell_m,
                "connectivity": 8,
                "crs": self.gaps.crs,
                "nearest_from": "centre resident (closest to the population-weighted centroid)",
            },
            "synthetic": self.run.inputs.synthetic,
            "gaps": self.gaps.table.drop(columns=["x", "y"]).to_dict("records"),
        }


def build_report(
    run: CoverageRun, *, gap_cell_m: float = DEFAULT_GAP_CELL_M, min_gap_population: float = 1.0
) -> CoverageReport:
    """Per-unit coverage for every unit layer of ``run.inputs``, and the gaps.

    Parameters
    ----------
    run : lifecircle.pipeline.CoverageRun
    gap_cell_m : float, default 200
        Cell side for gap clustering, metres.
    min_gap_population : float, default 1
        Smaller gaps are dropped.
    """
    levels = run.inputs.unit_levels()
    assignments = {lv.key: resident_units(run.result, lv) for lv in levels}
    units = {lv.key: unit_coverage(run.result, lv, assignments[lv.key]) for lv in levels}
    gaps = find_gaps(
        run.result,
        cell_m=gap_cell_m,
        min_population=min_gap_population,
        units={lv.key: (assignments[lv.key], lv.unit_id) for lv in levels[1:]},
    )
    return CoverageReport(levels=levels, units=units, assignments=assignments, gaps=gaps, run=run)


# -- rendering --------------------------------------------------------------------------------


def _pct(v: Any) -> str:
    return (
        "—"
        if v is None or (isinstance(v, float) and not np.isfinite(v))
        else f"{100 * float(v):.1f}%"
    )


def _m(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return "∞" if not np.isfinite(float(v)) else f"{float(v):,.0f} m"


def _n(v: Any) -> str:
    return f"{float(v):,.0f}"


def _tier_label(std: ServiceStandard, key: str, lang: str) -> str:
    if not key:
        return "—"
    t = std.tier(key)
    return t.label_zh if lang == "zh" else t.label_en


def _unit_name(row: Mapping[Any, Any], lang: str) -> str:
    return OUTSIDE_NAME[lang] if row["outside"] else str(row["name"])


def report_tables(
    rep: CoverageReport, *, lang: str = "zh", max_gaps: int = 30
) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The report's sections as ``(title, header, rows, note)`` with formatted cells."""
    tx = text(lang)
    res = rep.run.result
    std = res.standard
    sections = []
    rows = []
    for t in std.tiers:
        rows.append(
            [
                _tier_label(std, t.key, lang),
                tx[t.mode],
                f"{t.threshold_m:,.0f} m ({t.minutes:g} {tx['minutes']})",
            ]
        )
    sections.append(
        (
            f"{tx['standard']}：{standard_title(std, lang)}"
            if lang == "zh"
            else f"{tx['standard']}: {standard_title(std, lang)}",
            [tx["tier"], tx["mode"], tx["threshold"]],
            rows,
            "",
        )
    )
    rows = []
    for r in res.tiers.to_dict("records"):
        rows.append(
            [
                _tier_label(std, r["tier"], lang),
                str(r["facilities"]),
                _n(r["population_total"]),
                _n(r["population_covered"]),
                _pct(r["share"]),
                _pct(r["elderly_share"]),
                _m(r["median_distance_m"]),
                _m(r["p90_distance_m"]),
            ]
        )
    covered_all = res.population_total * res.all_covered_share
    rows.append(
        [
            tx["all_tiers"],
            "",
            _n(res.population_total),
            _n(covered_all),
            _pct(res.all_covered_share),
            "",
            "",
            "",
        ]
    )
    sections.append(
        (
            tx["overall"],
            [
                tx["tier"],
                tx["facilities"],
                tx["population"],
                tx["covered"],
                tx["share"],
                tx["elderly_share"],
                tx["median"],
                tx["p90"],
            ],
            rows,
            "",
        )
    )
    tier_heads = [f"{_tier_label(std, t.key, lang)} {tx['share']}" for t in std.tiers]
    for lv in rep.levels:
        tab = rep.units[lv.key]
        rows = []
        for r in tab.to_dict("records"):
            rows.append(
                [
                    "" if pd.isna(r["rank"]) else str(int(r["rank"])),
                    # the sub-district row's id is a machine key ("subdistrict"): not shown
                    str(r["unit_id"]) if not r["outside"] and lv.key != "subdistrict" else "",
                    _unit_name(r, lang),
                    _n(r["population"]),
                    _pct(r["all_share"]),
                    _pct(r["all_elderly_share"]),
                    *[_pct(r[f"{t.key}_share"]) for t in std.tiers],
                    _tier_label(std, r["weakest_tier"], lang),
                ]
            )
        sections.append(
            (
                tx["units_title"].format(label=lv.label(lang)),
                [
                    tx["rank"],
                    tx["unit"],
                    tx["name"],
                    tx["population"],
                    f"{tx['all_tiers']} {tx['share']}",
                    tx["elderly_share"],
                    *tier_heads,
                    tx["weakest"],
                ],
                rows,
                "",
            )
        )
    gt = rep.gaps.table
    unit_cols = [f"{lv.key}_id" for lv in rep.levels[1:] if f"{lv.key}_id" in gt.columns]
    rows = []
    for r in gt.head(max_gaps).to_dict("records"):
        rows.append(
            [
                str(r["rank"]),
                r["gap_id"],
                _tier_label(std, r["tier"], lang),
                "、".join(
                    _tier_label(std, k, lang) for k in str(r["tiers_missing"]).split(";") if k
                )
                if lang == "zh"
                else ", ".join(
                    _tier_label(std, k, lang) for k in str(r["tiers_missing"]).split(";") if k
                ),
                _n(r["population"]),
                _n(r["elderly"]),
                f"{r['lon']:.5f}, {r['lat']:.5f}",
                " / ".join(str(r[c]) for c in unit_cols),
                str(r["nearest_facility_id"]) or tx["none"],
                _m(r["nearest_facility_distance_m"]),
                _m(r["shortfall_m"]),
            ]
        )
    more = len(gt) - min(len(gt), max_gaps)
    sections.append(
        (
            tx["gaps_title"],
            [
                "#",
                tx["gap"],
                tx["tier"],
                tx["missing"],
                tx["population"],
                tx["elderly_share"].replace("达标率", "") if lang == "zh" else "Elderly",
                tx["centroid"],
                tx["in_unit"],
                tx["nearest"],
                tx["distance"],
                tx["shortfall"],
            ],
            rows,
            tx["more_gaps"].format(n=more) if more > 0 else "",
        )
    )
    return sections


def _title(rep: CoverageReport, lang: str) -> str:
    inputs = rep.run.inputs
    sc = inputs.scenario
    name = (sc.name_en or sc.name) if (sc and lang == "en") else (sc.name if sc else "lifecircle")
    return f"{text(lang)['report']} — {name}"


#: Extra report sections: (title, header, rows), e.g. :func:`grids_report_tables`.
Section = tuple[str, list[str], list[list[str]]]


def render_markdown(
    rep: CoverageReport,
    *,
    lang: str = "zh",
    files: Sequence[str] = (),
    sections: Sequence[Section] = (),
) -> str:
    """``report.md``: the report as Markdown tables (``sections`` after the unit tables)."""
    tx = text(lang)
    out = [f"# {_title(rep, lang)}", ""]
    if rep.run.inputs.synthetic:
        out += [f"> **{tx['synthetic']}**", ""]
    extra = [(t, h, r, "") for t, h, r in sections]
    for title, head, rows, note in [*report_tables(rep, lang=lang), *extra]:
        out += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        out += ["", note, ""] if note else [""]
    out += [f"## {tx['method']}", "", tx["method_text"].format(cell=rep.gaps.cell_m), ""]
    if files:
        out += [f"## {tx['files']}", ""] + [f"- [{f}]({f})" for f in files] + [""]
    return "\n".join(out)


_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;\
margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:nth-child(2),td:nth-child(3){text-align:left}
.synthetic{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;font-weight:bold}
.low{background:#f8d7da}.mid{background:#fff3cd}.high{background:#d4edda}
"""


def _cell_class(c: str) -> str:
    if not c.endswith("%"):
        return ""
    v = float(c[:-1])
    return ' class="low"' if v < 60 else ' class="mid"' if v < 90 else ' class="high"'


def render_html(
    rep: CoverageReport,
    *,
    lang: str = "zh",
    files: Sequence[str] = (),
    sections: Sequence[Section] = (),
) -> str:
    """``report.html``: a self-contained page (inline CSS, no script, no external resource).

    ``sections`` (title, header, rows) follow the unit tables, e.g. the grid system's.
    """
    tx = text(lang)
    e = html.escape
    title = _title(rep, lang)
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if rep.run.inputs.synthetic:
        out.append(f'<p class="synthetic">{e(tx["synthetic"])}</p>')
    extra = [(t, h, r, "") for t, h, r in sections]
    for sec_title, head, rows, note in [*report_tables(rep, lang=lang), *extra]:
        out.append(
            f"<h2>{e(sec_title)}</h2><table><thead><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
        )
        for r in rows:
            out.append("<tr>" + "".join(f"<td{_cell_class(c)}>{e(c)}</td>" for c in r) + "</tr>")
        out.append("</tbody></table>")
        if note:
            out.append(f"<p>{e(note)}</p>")
    out.append(
        f"<h2>{e(tx['method'])}</h2><p>{e(tx['method_text'].format(cell=rep.gaps.cell_m))}</p>"
    )
    if files:
        out.append(
            f"<h2>{e(tx['files'])}</h2><ul>"
            + "".join(f'<li><a href="{e(f)}">{e(f)}</a></li>' for f in files)
            + "</ul>"
        )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    run: CoverageRun,
    out_dir: str | Path,
    *,
    lang: str = "zh",
    overwrite: bool = False,
    gap_cell_m: float = DEFAULT_GAP_CELL_M,
    report: CoverageReport | None = None,
    csv_encoding: str = DEFAULT_CSV_ENCODING,
    html: bool = True,
    sections: Sequence[Section] = (),
) -> dict[str, Path]:
    """Write the per-unit tables, gaps and report pages of a coverage run.

    Files (in ``out_dir``): ``units_{layer}.csv`` per unit layer (``subdistrict`` first, then the
    layers of ``run.inputs.units``), ``units.json``, ``gaps.csv``, ``gaps.json``,
    ``gaps.geojson`` (gap outlines, EPSG:4326), ``report.md`` and ``report.html``.

    Parameters
    ----------
    run : lifecircle.pipeline.CoverageRun
    out_dir : path
        Created if missing.
    lang : {"zh", "en"}, default "zh"
        Language of ``report.md``/``report.html`` (CSV/JSON keys are always English).
    overwrite : bool
        Replace existing files; otherwise any existing target is an error and nothing is written.
    gap_cell_m : float, default 200
        Cell side for gap clustering, metres.
    report : CoverageReport, optional
        Reuse an already built report.
    csv_encoding : {"utf-8-sig", "utf-8", "gb18030"}, default "utf-8-sig"
        Encoding of the CSVs (UTF-8 with BOM opens in Excel on Chinese Windows).
    html : bool, default True
        Write the plain ``report.html``; False when :mod:`lifecircle.document` writes the full
        report (maps, charts, PDF) instead.
    sections : sequence of (title, header, rows), optional
        Extra sections after the unit tables, e.g. :func:`grids_report_tables`.

    Returns
    -------
    dict
        ``{name: path}`` of the files written.
    """
    text(lang)
    check_csv_encoding(csv_encoding)
    d = Path(out_dir)
    rep = report or build_report(run, gap_cell_m=gap_cell_m)
    paths = {f"units_{lv.key}": d / f"units_{lv.key}.csv" for lv in rep.levels}
    paths.update(
        {
            "units_json": d / "units.json",
            "gaps": d / "gaps.csv",
            "gaps_json": d / "gaps.json",
            "gaps_geojson": d / "gaps.geojson",
            "report_md": d / "report.md",
        }
    )
    if html:
        paths["report_html"] = d / "report.html"
    check_writable(list(paths.values()), overwrite=overwrite)
    d.mkdir(parents=True, exist_ok=True)
    for lv in rep.levels:
        write_csv(
            rep.units[lv.key], paths[f"units_{lv.key}"], overwrite=True, encoding=csv_encoding
        )
    write_json(rep.to_dict(), paths["units_json"], overwrite=True)
    write_csv(
        rep.gaps.table.drop(columns=["x", "y"]),
        paths["gaps"],
        overwrite=True,
        encoding=csv_encoding,
    )
    write_json(rep.gaps_dict(), paths["gaps_json"], overwrite=True)
    write_geojson(rep.gaps.geometries(), paths["gaps_geojson"], overwrite=True, name="gaps")
    files = [p.name for k, p in paths.items() if not k.startswith("report")]
    md = render_markdown(rep, lang=lang, files=files, sections=sections)
    write_text(md, paths["report_md"], overwrite=True)
    if html:
        page = render_html(rep, lang=lang, files=files, sections=sections)
        write_text(page, paths["report_html"], overwrite=True)
    logger.info("wrote report to %s (%d files)", d, len(paths))
    return paths


# -- the grid system (网格) --------------------------------------------------------------------

GRID_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "网格体系：全覆盖、均衡与可达",
        "synthetic": "合成示范数据，非郯城真实数据",
        "overview": "概况",
        "grids": "网格",
        "in_band": "户数在区间内的网格",
        "band": "每格户数区间",
        "hh_size": "户均人口",
        "gaps": "网格缺口（处）",
        "largest_gap": "最大缺口面积（平方米）",
        "overlaps": "网格重叠（处）",
        "crossings": "跨社区网格（处）",
        "outside": "不在任何网格内的户数",
        "farthest": "距网格站点最远住户（米）",
        "per_grid": "各网格（户数偏离区间最多者在前）",
        "proposal": "网格调整方案（按社区）",
        "proposed": "调整后网格数（专职网格员）",
        "grid_id": "网格编号",
        "community_id": "社区编号",
        "name": "名称",
        "households": "户数",
        "population": "人口",
        "within_band": "在区间内",
        "base_id": "网格站点",
        "base_median_m": "距离中位数（米）",
        "base_p90_m": "90%住户距离（米）",
        "base_max_m": "最远距离（米）",
        "grids_now": "现有网格",
        "grids_proposed": "方案网格",
        "grids_kept": "保留网格",
        "feasible": "可行",
        "reason": "原因",
        "yes": "是",
        "no": "否",
        "method": "方法",
        "method_text": "住户按“先列者优先”的统一规则归属网格与社区；户数＝人口÷户均人口。"
        "网格站点为网格内距住户加权中心最近的站点，否则为多数住户路网最近的站点；"
        "距离为精确路网距离（含接入段）。调整方案：按街道与现状网格边界切分街坊，"
        "在街坊邻接图上以生成树逐格切分（ReCom 递归生成树划分），"
        "每格连片、位于本社区内且户数在区间内；"
        "无法满足的社区注明原因并均衡切分。",
    },
    "en": {
        "title": "Grid system: full coverage, balance and reach",
        "synthetic": "SYNTHETIC demonstration data, not real Tancheng data",
        "overview": "Overview",
        "grids": "grids",
        "in_band": "grids within the households band",
        "band": "households band",
        "hh_size": "people per household",
        "gaps": "gaps",
        "largest_gap": "largest gap (m²)",
        "overlaps": "overlaps",
        "crossings": "grids crossing their community",
        "outside": "households outside every grid",
        "farthest": "farthest household from its base (m)",
        "per_grid": "Grids (farthest from the band first)",
        "proposal": "Re-gridding proposal per community",
        "proposed": "proposed grids (grid workers)",
        "grid_id": "grid",
        "community_id": "community",
        "name": "name",
        "households": "households",
        "population": "population",
        "within_band": "in band",
        "base_id": "base",
        "base_median_m": "median (m)",
        "base_p90_m": "p90 (m)",
        "base_max_m": "max (m)",
        "grids_now": "grids now",
        "grids_proposed": "proposed",
        "grids_kept": "kept",
        "feasible": "feasible",
        "reason": "reason",
        "yes": "yes",
        "no": "no",
        "method": "Method",
        "method_text": "Residents belong to grids and communities by the one unit rule (first "
        "listed wins); households = population / household size. A grid's base is the base "
        "inside it nearest its household-weighted centre, else the network-nearest base of most "
        "of its households; distances are exact network distances (access legs included). "
        "Proposal: communities are cut into blocks by streets and current grid borders, and "
        "grids are peeled off spanning trees of the block adjacency graph (ReCom's recursive "
        "tree partition): contiguous, inside the community, within the band; communities where "
        "this is impossible are listed with the reason and split evenly.",
    },
}


def grids_report_tables(
    layers: Mapping[str, pd.DataFrame],
    communities: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    lang: str = "zh",
) -> list[Section]:
    """The grid section's tables: overview, per grid, and the proposal per community."""
    tx = GRID_TEXT["zh" if lang == "zh" else "en"]
    s = summary
    overview = [
        [tx["grids"], _n(s["grids"])],
        [tx["in_band"], _n(s["grids_within_band"])],
        [tx["band"], str(s["band"])],
        [tx["hh_size"], f"{float(s['household_size']):g}"],
        [tx["gaps"], _n(s["gaps"])],
        [tx["largest_gap"], _n(s["largest_gap_m2"])],
        [tx["overlaps"], _n(s["overlaps"])],
        [tx["crossings"], _n(s["crossings"])],
        [tx["outside"], _n(s["households_outside_grids"])],
        [tx["farthest"], _m(s["farthest_household_m"])],
    ]
    if "proposed_grids" in s:
        overview.append([tx["proposed"], f"{_n(s['proposed_grids'])} / {_n(s['grids'])}"])
    out = [(tx["title"], ["", ""], overview)]
    g = layers["grids"]
    lo, hi = (float(v) for v in str(s["band"]).split("-"))
    hh = g["households"].to_numpy(float)
    off = np.maximum(lo - hh, 0) + np.maximum(hh - hi, 0)
    cols = ["grid_id", "community_id", "name", "households", "population", "within_band",
            "base_id", "base_median_m", "base_p90_m", "base_max_m"]  # fmt: skip
    rows = []
    for _, r in g.iloc[np.argsort(-off, kind="stable")].iterrows():  # one per grid
        rows.append(
            [
                str(r["grid_id"]),
                str(r["community_id"]),
                str(r["name"]),
                _n(r["households"]),
                _n(r["population"]),
                tx["yes"] if r["within_band"] else tx["no"],
                str(r["base_id"]),
                _m(r["base_median_m"]),
                _m(r["base_p90_m"]),
                _m(r["base_max_m"]),
            ]
        )
    out.append((tx["per_grid"], [tx[c] for c in cols], rows))
    if "proposed_grids" in s and "feasible" in communities:
        ccols = ["community_id", "name", "households", "grids_now", "grids_proposed",
                 "grids_kept", "feasible", "reason"]  # fmt: skip
        crow = [
            [
                str(r["community_id"]),
                str(r["name"]),
                _n(r["households"]),
                _n(r["grids_now"]),
                _n(r["grids_proposed"]),
                _n(r["grids_kept"]),
                tx["yes"] if r["feasible"] else tx["no"],
                str(r["reason"]),
            ]
            for _, r in communities.iterrows()  # one per community
        ]
        out.append((tx["proposal"], [tx[c] for c in ccols], crow))
    return out


def grids_report_html(
    layers: Mapping[str, pd.DataFrame],
    communities: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    lang: str = "zh",
) -> str:
    """``grids_report.html``: the grid section as a self-contained page (no script)."""
    tx = GRID_TEXT["zh" if lang == "zh" else "en"]
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">',
        f"<title>{e(tx['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(tx['title'])}</h1>",
    ]
    if summary.get("synthetic"):
        out.append(f'<p class="synthetic">{e(tx["synthetic"])}</p>')
    for title, head, rows in grids_report_tables(layers, communities, summary, lang=lang):
        out.append(
            f"<h2>{e(title)}</h2><table><thead><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
        )
        out.extend(
            "<tr>" + "".join(f"<td{_cell_class(c)}>{e(c)}</td>" for c in r) + "</tr>" for r in rows
        )
        out.append("</tbody></table>")
    out.append(f"<h2>{e(tx['method'])}</h2><p>{e(tx['method_text'])}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
