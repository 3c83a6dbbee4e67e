"""The attribute schema of every exported layer: names, types, units, meanings, Shapefile names.

:data:`LAYER_SCHEMAS` is the contract GIS users rely on; ``docs/gis-export.md`` and the README
tables are generated from it (``scripts/update_schema_docs.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "FIELD_TABLE_COLUMNS",
    "LAYER_DESCRIPTIONS",
    "LAYER_SCHEMAS",
    "LAYER_TITLES_ZH",
    "FieldSpec",
    "field_table",
    "layer_fields",
    "schema_markdown",
]


@dataclass(frozen=True)
class FieldSpec:
    """One attribute of an exported layer.

    ``name`` may contain ``{tier}`` (expanded once per tier of the standard, highest first);
    ``short`` is the Shapefile field name (at most 10 characters; ``{n}`` is the tier's 1-based
    position in the standard); ``alias_zh`` is the Chinese field alias shown by QGIS/ArcGIS
    (``{tier_zh}`` becomes the tier's Chinese name; the unit is appended in brackets).
    """

    name: str
    type: str
    unit: str
    meaning: str
    short: str
    alias_zh: str = ""

    def alias(self) -> str:
        """The Chinese alias with its unit, e.g. ``人口(人)``; the name when there is none.

        Examples
        --------
        >>> [f.alias() for f in LAYER_SCHEMAS["units"] if f.name == "population"]
        ['人口(人)']
        """
        if not self.alias_zh:
            return self.name
        unit = _UNIT_ZH.get(self.unit, self.unit)
        return f"{self.alias_zh}({unit})" if unit else self.alias_zh

    def description(self) -> str:
        """Meaning and unit, for ``gpkg_data_columns.description`` and QGIS field comments."""
        return f"{self.meaning} [{self.unit}]" if self.unit else self.meaning


def _f(name: str, type_: str, unit: str, meaning: str, short: str | None = None) -> FieldSpec:
    return FieldSpec(name, type_, unit, meaning, short or name, _ALIASES_ZH.get(name, ""))


#: Units as written in Chinese aliases.
_UNIT_ZH = {
    "m": "米",
    "min": "分钟",
    "people": "人",
    "points": "个点",
    "m²": "平方米",
    "0-1": "0-1",
    "degree": "度",
    "weight": "权重",
}

#: Chinese aliases of the fields (the same word in every layer; see :meth:`FieldSpec.alias`).
_ALIASES_ZH = {
    "id": "编号",
    "name": "名称",
    "tier": "层级",
    "tier_label": "层级名称",
    "mode": "出行方式",
    "threshold_m": "距离标准",
    "minutes": "时间标准",
    "snap_m": "距道路距离",
    "off_network": "不在路网上(1是0否)",
    "population_within": "标准内人口",
    "residents_within": "标准内居民点",
    "catchment_population": "服务人口",
    "catchment_residents": "服务居民点",
    "population": "人口",
    "elderly": "60岁以上人口",
    "children": "儿童",
    "{tier}_distance_m": "{tier_zh}距离",
    "{tier}_minutes": "{tier_zh}时间",
    "{tier}_nearest_id": "最近{tier_zh}编号",
    "{tier}_covered": "{tier_zh}达标(1是0否)",
    "all_covered": "全部达标(1是0否)",
    "unit_kind": "单元类型",
    "unit_id": "单元编号",
    "residents": "居民点数",
    "{tier}_population_covered": "{tier_zh}达标人口",
    "{tier}_share": "{tier_zh}达标率",
    "all_population_covered": "全部达标人口",
    "all_share": "全部达标率",
    "facility_id": "设施编号",
    "budget_min": "时间预算",
    "budget_m": "距离预算",
    "ring_from_min": "环带起始时间",
    "ring_from_m": "环带起始距离",
    "facilities": "设施数",
    "area_m2": "面积",
    "u": "起点节点",
    "v": "终点节点",
    "length_m": "长度",
    "highway": "道路等级",
    "oneway": "单行(1是0否)",
    "rank": "排名",
    "gap_id": "缺口编号",
    "tiers_missing": "缺失层级",
    "cells": "网格数",
    "wgs84_lon": "WGS84经度",
    "wgs84_lat": "WGS84纬度",
    "nearest_facility_id": "最近设施编号",
    "nearest_facility_distance_m": "最近设施距离",
    "shortfall_m": "超出标准距离",
    "median_distance_m": "距离中位数",
    "candidate_id": "候选点编号",
    "selected": "入选(1是0否)",
    "pick_gain": "入选增益",
    "cumulative_share": "累计达标率",
    "marginal_gain": "边际增益",
    "marginal_gain_population": "边际增益人口",
    "marginal_gain_elderly": "边际增益老人",
    "total_within": "标准内总权重",
    "overlap": "重叠权重",
    "overlap_share": "重叠比例",
    "residents_new": "新增覆盖居民点",
    "nearest_existing_m": "最近现状设施距离",
    "nearest_existing_id": "最近现状设施编号",
    "on_network": "在路网上(1是0否)",
    "capacity": "容量",
    "reason_zh": "理由(中文)",
    "reason_en": "理由(英文)",
    "file": "输入文件",
    "row": "行号",
    "reason": "剔除原因",
    "detail": "详细说明",
}


#: Documented columns of every layer (the geometry column is not listed).
LAYER_SCHEMAS: dict[str, tuple[FieldSpec, ...]] = {
    "facilities": (
        _f("id", "string", "", "facility id from the input file"),
        _f("name", "string", "", "facility name (Chinese kept, UTF-8)"),
        _f("tier", "string", "", "tier key of the standard, e.g. community_centre"),
        _f("tier_label", "string", "", "tier name in Chinese, e.g. 社区党群服务中心"),
        _f("mode", "string", "", "travel mode of the tier: walk, bike or drive"),
        _f("threshold_m", "float", "m", "network distance standard of the tier", "thresh_m"),
        _f("minutes", "float", "min", "time standard of the tier"),
        _f("snap_m", "float", "m", "straight-line distance from the site to the nearest street"),
        _f(
            "off_network",
            "bool",
            "",
            "true when the site is farther than max_snap_m from every street (it serves nobody)",
            "off_net",
        ),
        _f(
            "population_within",
            "float",
            "people",
            "people whose network distance to this site is "
            "within the tier's standard (overlaps between sites counted for each)",
            "pop_within",
        ),
        _f(
            "residents_within",
            "integer",
            "points",
            "resident points within the standard",
            "res_within",
        ),
        _f(
            "catchment_population",
            "float",
            "people",
            "covered people for whom this is the nearest site of its tier",
            "catch_pop",
        ),
        _f(
            "catchment_residents",
            "integer",
            "points",
            "resident points in that catchment",
            "catch_res",
        ),
    ),
    "residents": (
        _f("id", "string", "", "resident point id from the input file"),
        _f("population", "float", "people", "people at the point", "pop"),
        _f("elderly", "float", "people", "people aged 60+ (null when not given)"),
        _f("children", "float", "people", "children (null when not given)"),
        _f("snap_m", "float", "m", "straight-line distance from the point to the nearest street"),
        _f(
            "off_network",
            "bool",
            "",
            "true when farther than max_snap_m from every street (counted, never covered)",
            "off_net",
        ),
        _f(
            "{tier}_distance_m",
            "float",
            "m",
            "network distance to the nearest facility of the "
            "tier, access legs included; null when none is reachable",
            "t{n}_dist_m",
        ),
        _f(
            "{tier}_minutes",
            "float",
            "min",
            "that distance at the tier's speed; null when none is reachable",
            "t{n}_min",
        ),
        _f("{tier}_nearest_id", "string", "", "id of that facility (empty when none)", "t{n}_near"),
        _f("{tier}_covered", "bool", "", "distance within the tier's standard", "t{n}_cov"),
        _f("all_covered", "bool", "", "covered for every tier (complete living circle)", "all_cov"),
    ),
    "units": (
        _f("unit_kind", "string", "", "kind of unit layer, e.g. community or grid", "unit_kind"),
        _f("unit_id", "string", "", "unit id from the units file"),
        _f("name", "string", "", "unit name"),
        _f("residents", "integer", "points", "resident points inside the unit"),
        _f("population", "float", "people", "people inside the unit", "pop"),
        _f(
            "{tier}_population_covered",
            "float",
            "people",
            "people inside the unit within the tier's standard",
            "t{n}_popcov",
        ),
        _f(
            "{tier}_share",
            "float",
            "0-1",
            "达标率: covered share of the unit's people for the "
            "tier (null when the unit has no people)",
            "t{n}_share",
        ),
        _f(
            "all_population_covered",
            "float",
            "people",
            "people covered for every tier",
            "all_popcov",
        ),
        _f("all_share", "float", "0-1", "share of people covered for every tier (null when empty)"),
    ),
    "service_areas": (
        _f("facility_id", "string", "", "id of the facility", "fac_id"),
        _f("name", "string", "", "facility name"),
        _f("tier", "string", "", "tier key"),
        _f("mode", "string", "", "travel mode"),
        _f("budget_min", "float", "min", "travel-time budget of the area"),
        _f("budget_m", "float", "m", "network distance budget of the area"),
        _f(
            "ring_from_min",
            "float",
            "min",
            "with --rings: the band starts at this budget (the previous one)",
            "ring_min",
        ),
        _f("ring_from_m", "float", "m", "with --rings: the band starts at this distance", "ring_m"),
        _f("area_m2", "float", "m²", "polygon area (in the analysis CRS)"),
        _f(
            "population",
            "float",
            "people",
            "people whose network distance to the facility is "
            "within the budget (from distances, not point-in-polygon)",
            "pop",
        ),
        _f("residents", "integer", "points", "resident points counted"),
    ),
    "catchments": (
        _f("facility_id", "string", "", "id of the facility", "fac_id"),
        _f("name", "string", "", "facility name"),
        _f("tier", "string", "", "tier key"),
        _f("mode", "string", "", "travel mode"),
        _f("budget_min", "float", "min", "travel-time budget"),
        _f("budget_m", "float", "m", "network distance budget"),
        _f("area_m2", "float", "m²", "polygon area (in the analysis CRS)"),
        _f(
            "population",
            "float",
            "people",
            "people for whom this is the nearest facility of "
            "its tier within the budget (the population served)",
            "pop",
        ),
        _f("residents", "integer", "points", "resident points counted"),
    ),
    "network": (
        _f("mode", "string", "", "network mode: walk, bike or drive"),
        _f("u", "integer", "", "OSM node id at the start of the segment"),
        _f("v", "integer", "", "OSM node id at the end of the segment"),
        _f("length_m", "float", "m", "segment length"),
        _f("highway", "string", "", "OSM highway tag (empty when unknown)"),
        _f("name", "string", "", "street name (empty when unnamed)"),
        _f("oneway", "bool", "", "drive mode: travel only from u to v"),
    ),
    # gaps: the table of lifecircle.report.find_gaps (columns it adds later pass through)
    "gaps": (
        _f("rank", "integer", "", "1 = the gap with the most people"),
        _f("gap_id", "string", "", "gap id"),
        _f("tier", "string", "", "tier whose standard these residents miss"),
        _f(
            "tiers_missing",
            "string",
            "",
            "';'-separated tiers that at least half of the gap's people miss",
            "tiers_miss",
        ),
        _f("population", "float", "people", "people in the gap", "pop"),
        _f("elderly", "float", "people", "people aged 60+ in the gap"),
        _f("residents", "integer", "points", "resident points in the gap"),
        _f("cells", "integer", "", "grid cells merged into the gap"),
        _f("area_m2", "float", "m²", "area of those cells"),
        _f(
            "wgs84_lon",
            "float",
            "degree",
            "population-weighted centroid, WGS84 longitude (always WGS84, whatever the output CRS)",
        ),
        _f("wgs84_lat", "float", "degree", "population-weighted centroid, WGS84 latitude"),
        _f("threshold_m", "float", "m", "standard of the tier", "thresh_m"),
        _f(
            "nearest_facility_id",
            "string",
            "",
            "nearest facility of the tier from the gap's centre resident",
            "near_fac",
        ),
        _f(
            "nearest_facility_distance_m",
            "float",
            "m",
            "network distance to it (null when unreachable)",
            "near_dist",
        ),
        _f("shortfall_m", "float", "m", "that distance beyond the standard", "shortfall"),
        _f(
            "median_distance_m",
            "float",
            "m",
            "population-weighted median distance over the gap",
            "med_dist_m",
        ),
    ),
    # candidates: lifecircle.siting.CANDIDATE_COLUMNS (described there), passed through
    "candidates": (
        _f("rank", "integer", "", "1 = best candidate"),
        _f("candidate_id", "string", "", "candidate id", "cand_id"),
        _f("name", "string", "", "candidate name"),
        _f("selected", "bool", "", "chosen by the selection", "selected"),
        _f("pick_gain", "float", "weight", "weight newly covered when it was picked"),
        _f("cumulative_share", "float", "0-1", "tier coverage after this pick", "cum_share"),
        _f("marginal_gain", "float", "weight", "uncovered weight it alone would cover", "gain"),
        _f(
            "marginal_gain_population",
            "float",
            "people",
            "uncovered people it alone would cover",
            "gain_pop",
        ),
        _f(
            "marginal_gain_elderly",
            "float",
            "people",
            "uncovered elderly it alone would cover",
            "gain_eld",
        ),
        _f(
            "total_within",
            "float",
            "weight",
            "weight within the standard of the site",
            "tot_within",
        ),
        _f("overlap", "float", "weight", "weight within reach that is already covered"),
        _f("overlap_share", "float", "0-1", "overlap / total_within", "overlap_sh"),
        _f(
            "residents_within",
            "integer",
            "points",
            "resident points within the standard",
            "res_within",
        ),
        _f("residents_new", "integer", "points", "uncovered resident points within it", "res_new"),
        _f(
            "nearest_existing_m",
            "float",
            "m",
            "network distance to the nearest existing facility of the tier",
            "near_ex_m",
        ),
        _f("nearest_existing_id", "string", "", "its id", "near_ex_id"),
        _f("snap_m", "float", "m", "distance to the nearest street"),
        _f("on_network", "bool", "", "within max_snap_m of a street", "on_net"),
        _f("capacity", "float", "people", "capacity (null when not given)"),
        _f("reason_zh", "string", "", "one-line reason (Chinese)"),
        _f("reason_en", "string", "", "one-line reason (English)"),
    ),
    "rejects": (
        _f("file", "string", "", "input file the row came from"),
        _f("row", "integer", "", "row number as the user sees it (header = 1)"),
        _f("id", "string", "", "id of the row (may be empty)"),
        _f("reason", "string", "", "reason code, e.g. coordinates_out_of_range, missing_id"),
        _f("detail", "string", "", "what is wrong and how to fix it"),
    ),
}

#: Extra Shapefile abbreviations for columns of pass-through layers.
_SHORT_WORDS = {
    "population": "pop",
    "distance": "dist",
    "facility": "fac",
    "covered": "cov",
    "residents": "res",
    "catchment": "catch",
    "minutes": "min",
    "score": "score",
}

LAYER_DESCRIPTIONS: dict[str, str] = {
    "facilities": "facility points with tier, snapping, population within standard, catchment",
    "residents": "resident points with per-tier distance, minutes, nearest facility, covered",
    "units": "unit polygons (communities, grids) with per-tier 达标率",
    "service_areas": "per facility, the area reachable within its tier's standard",
    "catchments": "per facility, the area it is the nearest facility of its tier for",
    "gaps": "areas/residents outside the standard (from lifecircle.report)",
    "candidates": "scored candidate sites (from lifecircle.siting)",
    "network": "road network segments with length (one per mode)",
    "rejects": "rejected input rows whose coordinates parse, with file, row and reason",
}

#: Chinese layer titles (GeoPackage ``gpkg_contents.identifier``, QGIS layer names).
LAYER_TITLES_ZH: dict[str, str] = {
    "facilities": "公共服务设施",
    "residents": "居民点",
    "units": "评估单元达标率",
    "service_areas": "设施服务范围",
    "catchments": "设施服务片区",
    "gaps": "覆盖缺口",
    "candidates": "候选点评分",
    "network": "道路网络",
    "rejects": "剔除的输入行",
}


def layer_fields(
    layer: str, tier_keys: Sequence[str], tier_labels: Mapping[str, str] | None = None
) -> list[FieldSpec]:
    """The documented fields of ``layer`` with ``{tier}`` templates expanded in tier order.

    ``tier_labels`` (tier key -> Chinese name) fills the ``{tier_zh}`` of the aliases (default:
    the key).
    """
    out: list[FieldSpec] = []
    specs = LAYER_SCHEMAS.get(layer, ())
    i = 0
    while i < len(specs):
        if "{tier}" in specs[i].name:
            j = i
            while j < len(specs) and "{tier}" in specs[j].name:
                j += 1
            for n, key in enumerate(tier_keys, start=1):
                label = (tier_labels or {}).get(key, key)
                out += [
                    FieldSpec(
                        s.name.format(tier=key),
                        s.type,
                        s.unit,
                        s.meaning,
                        s.short.format(n=n),
                        s.alias_zh.replace("{tier_zh}", label),
                    )
                    for s in specs[i:j]
                ]
            i = j
        else:
            out.append(specs[i])
            i += 1
    return out


def _dtype_name(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_integer_dtype(s):
        return "integer"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "string"


def _generic_short(name: str) -> str:
    parts = [_SHORT_WORDS.get(p.lower(), p) for p in name.split("_")]
    return "_".join(parts)[:10]


def field_table(
    gdf: gpd.GeoDataFrame,
    layer: str,
    tier_keys: Sequence[str],
    tier_labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Name, Shapefile name, Chinese alias, type, unit and meaning of every attribute column.

    Shapefile names: the documented short name; else the name with common words abbreviated
    (population→pop, distance→dist, …) cut to 10 characters; a name that clashes
    (case-insensitively) with an earlier one gets ``_2``, ``_3``… in its last characters.
    Aliases are unique within the layer (a clash gets the column name appended). Boolean
    columns are written to Shapefiles as integers: ``values`` says ``1 = true, 0 = false``.
    """
    known = {f.name: f for f in layer_fields(layer, tier_keys, tier_labels)}
    rows = []
    used: set[str] = set()
    aliases: set[str] = set()
    for col in gdf.columns:
        if col == gdf.geometry.name:
            continue
        spec = known.get(col)
        short = (spec.short if spec else _generic_short(str(col)))[:10]
        k = 2
        base = short
        while short.lower() in used:
            suffix = f"_{k}"
            short = base[: 10 - len(suffix)] + suffix
            k += 1
        used.add(short.lower())
        alias = spec.alias() if spec else str(col)
        if alias in aliases:
            alias = f"{alias} {col}"
        aliases.add(alias)
        type_ = spec.type if spec else _dtype_name(gdf[col])
        rows.append(
            {
                "field": short,
                "name": col,
                "alias_zh": alias,
                "type": type_,
                "unit": spec.unit if spec else "",
                "meaning": spec.meaning if spec else f"passed through from the {layer} result",
                "values": "1 = true, 0 = false" if type_ == "bool" else "",
            }
        )
    return pd.DataFrame(rows, columns=list(FIELD_TABLE_COLUMNS))


#: Columns of :func:`field_table` (and of the Shapefile ``_fields.csv`` sidecar).
FIELD_TABLE_COLUMNS = ("field", "name", "alias_zh", "type", "unit", "meaning", "values")


def schema_markdown(tier_keys: Sequence[str] = ("{tier}",)) -> str:
    """The schema tables of every layer as Markdown (used for ``docs/gis-export.md``)."""
    lines = []
    for layer, _ in LAYER_SCHEMAS.items():
        fields = (
            layer_fields(layer, tier_keys)
            if tier_keys != ("{tier}",)
            else list(LAYER_SCHEMAS[layer])
        )
        if not fields:
            continue
        lines += [
            f"### `{layer}`",
            "",
            LAYER_DESCRIPTIONS[layer] + ".",
            "",
            "| name | type | unit | meaning | Shapefile field | alias (QGIS/ArcGIS) |",
            "|---|---|---|---|---|---|",
        ]
        for f in fields:
            short = f.short.replace("{n}", "N")
            alias = f.alias().replace("{tier_zh}", "{层级}")
            lines.append(
                f"| `{f.name}` | {f.type} | {f.unit} | {f.meaning} | `{short}` | {alias} |"
            )
        lines.append("")
    return "\n".join(lines)
