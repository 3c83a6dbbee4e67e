"""The attribute schema of every exported layer: names, types, units, meanings, Shapefile names.

:data:`LAYER_SCHEMAS` is the contract GIS users rely on; ``docs/gis-export.md`` and the README
tables are generated from it (``scripts/update_schema_docs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "LAYER_DESCRIPTIONS",
    "LAYER_SCHEMAS",
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
    position in the standard).
    """

    name: str
    type: str
    unit: str
    meaning: str
    short: str


def _f(name: str, type_: str, unit: str, meaning: str, short: str | None = None) -> FieldSpec:
    return FieldSpec(name, type_, unit, meaning, short or name)


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
}


def layer_fields(layer: str, tier_keys: Sequence[str]) -> list[FieldSpec]:
    """The documented fields of ``layer`` with ``{tier}`` templates expanded in tier order."""
    out: list[FieldSpec] = []
    specs = LAYER_SCHEMAS.get(layer, ())
    i = 0
    while i < len(specs):
        if "{tier}" in specs[i].name:
            j = i
            while j < len(specs) and "{tier}" in specs[j].name:
                j += 1
            for n, key in enumerate(tier_keys, start=1):
                out += [
                    FieldSpec(
                        s.name.format(tier=key), s.type, s.unit, s.meaning, s.short.format(n=n)
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


def field_table(gdf: gpd.GeoDataFrame, layer: str, tier_keys: Sequence[str]) -> pd.DataFrame:
    """Name, Shapefile name, type, unit and meaning of every attribute column of ``gdf``.

    Shapefile names: the documented short name; else the name with common words abbreviated
    (population→pop, distance→dist, …) cut to 10 characters; a name that clashes
    (case-insensitively) with an earlier one gets ``_2``, ``_3``… in its last characters.
    """
    known = {f.name: f for f in layer_fields(layer, tier_keys)}
    rows = []
    used: set[str] = set()
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
        rows.append(
            {
                "field": short,
                "name": col,
                "type": spec.type if spec else _dtype_name(gdf[col]),
                "unit": spec.unit if spec else "",
                "meaning": spec.meaning if spec else f"passed through from the {layer} result",
            }
        )
    return pd.DataFrame(rows, columns=["field", "name", "type", "unit", "meaning"])


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
            "| name | type | unit | meaning | Shapefile field |",
            "|---|---|---|---|---|",
        ]
        for f in fields:
            short = f.short.replace("{n}", "N")
            lines.append(f"| `{f.name}` | {f.type} | {f.unit} | {f.meaning} | `{short}` |")
        lines.append("")
    return "\n".join(lines)
