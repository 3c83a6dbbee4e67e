"""The result layers of the GIS export, built from result objects as WGS84 GeoDataFrames.

Every builder takes an :class:`ExportSources` and returns a GeoDataFrame in EPSG:4326 with the
documented columns of :data:`lifecircle.export.schema.LAYER_SCHEMAS` (per-tier columns expanded
from ``{tier}`` templates in the standard's tier order). :data:`LAYER_BUILDERS` maps layer name
to builder, so a new layer is one line there plus its schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lifecircle.config import ServiceStandard
from lifecircle.errors import InputError, LayerUnavailableError
from lifecircle.export.schema import LAYER_SCHEMAS, layer_fields
from lifecircle.report import Gaps, find_gaps
from lifecircle.routing import RoutingGraph, pair_distances_within
from lifecircle.runs import CoverageRun, points_gdf, resident_table
from lifecircle.service_areas import ServiceAreas, compute_service_areas
from lifecircle.siting import ScoringResult
from lifecircle.units import assign_units

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "DEFAULT_LAYERS",
    "LAYER_BUILDERS",
    "ExportSources",
    "LayerUnavailableError",
    "build_layers",
    "candidates_layer",
    "catchments_layer",
    "facilities_layer",
    "gaps_layer",
    "network_layer",
    "parse_layers",
    "residents_layer",
    "service_areas_layer",
    "unavailable_layers",
    "units_layer",
]

logger = logging.getLogger(__name__)


class _HasScoringResult(Protocol):
    """A scoring run (``lifecircle.pipeline.ScoringRun``): anything holding a ``ScoringResult``."""

    @property
    def result(self) -> ScoringResult: ...


#: What ``ExportSources.candidates`` may hold.
Candidates = _HasScoringResult | ScoringResult | pd.DataFrame


@dataclass
class ExportSources:
    """What layers are built from: a coverage run plus optional precomputed results.

    Attributes
    ----------
    run : lifecircle.runs.CoverageRun
    service_areas, catchments : ServiceAreas or GeoDataFrame, optional
        Precomputed polygons (any CRS geopandas knows; they are converted to WGS84). When
        missing, they are computed with :func:`lifecircle.service_areas.compute_service_areas`.
    gaps : Gaps or GeoDataFrame, optional
        Precomputed gaps; when missing, :func:`lifecircle.report.find_gaps`.
    candidates : ScoringRun, ScoringResult, DataFrame or GeoDataFrame, optional
        Scored candidate sites (a DataFrame needs WGS84 ``lon``/``lat``).
    unit_tables : DataFrame, GeoDataFrame or dict of DataFrame, optional
        Precomputed per-unit tables (from :mod:`lifecircle.report`) with ``unit_id`` (and
        ``unit_kind`` when several unit layers exist); used instead of the simple per-unit
        coverage computed here.
    area_minutes, area_metres : tuple of float, optional
        Budgets of the computed ``service_areas`` (default: each tier's standard); one polygon
        per facility and budget.
    area_rings : bool
        Computed ``service_areas`` as bands between consecutive budgets.
    cache : dict
        Intermediate results shared between builders (filled on first use).
    """

    run: CoverageRun
    service_areas: ServiceAreas | gpd.GeoDataFrame | None = None
    catchments: ServiceAreas | gpd.GeoDataFrame | None = None
    gaps: Gaps | gpd.GeoDataFrame | None = None
    candidates: Candidates | None = None
    unit_tables: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None
    area_minutes: tuple[float, ...] | None = None
    area_metres: tuple[float, ...] | None = None
    area_rings: bool = False
    cache: dict[str, object] = field(default_factory=dict)

    @property
    def standard(self) -> ServiceStandard:
        """The service standard of the run."""
        return self.run.result.standard

    @property
    def tier_keys(self) -> tuple[str, ...]:
        """Tier keys, highest tier first."""
        return tuple(self.standard.keys)


def _population_within(src: ExportSources) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per facility: people and resident points within its own tier's standard (network)."""
    cached = src.cache.get("population_within")
    if cached is not None:
        return cached  # type: ignore[return-value]
    result = src.run.result
    fac = result.facilities
    res = result.residents
    pop = res["population"].to_numpy(float)
    people = np.zeros(len(fac))
    points = np.zeros(len(fac), dtype=np.int64)
    tiers = fac["tier"].to_numpy()
    res_xy = np.column_stack([result.resident_located.x, result.resident_located.y])
    fac_xy = np.column_stack([result.facility_located.x, result.facility_located.y])
    for tier in src.standard.tiers:
        idx = np.flatnonzero(tiers == tier.key)
        if len(idx) == 0 or len(res) == 0:
            continue
        graph = RoutingGraph.from_network(src.run.inputs.networks[tier.mode])
        s, _d, _m = pair_distances_within(
            graph,
            result.facility_located.positions(tier.mode).subset(idx),
            result.resident_located.positions(tier.mode),
            fac_xy[idx],
            res_xy,
            limit_m=tier.threshold_m,
        )
        people[idx] = np.bincount(s, weights=pop[_d], minlength=len(idx))
        points[idx] = np.bincount(s, minlength=len(idx))
    src.cache["population_within"] = (people, points)
    return people, points


def facilities_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Facility points (see :data:`LAYER_SCHEMAS` ``facilities``)."""
    fac = src.run.result.facilities
    std = src.standard
    f = fac[
        [
            "id",
            "name",
            "tier",
            "lon",
            "lat",
            "snap_m",
            "off_network",
            "catchment_population",
            "catchment_residents",
        ]
    ].copy()
    tiers = {t.key: t for t in std.tiers}
    f["tier_label"] = [tiers[k].label_zh for k in f["tier"]]
    f["mode"] = [tiers[k].mode for k in f["tier"]]
    f["threshold_m"] = [tiers[k].threshold_m for k in f["tier"]]
    f["minutes"] = [tiers[k].minutes for k in f["tier"]]
    f["population_within"], f["residents_within"] = _population_within(src)
    f["snap_m"] = f["snap_m"].round(2)
    f["catchment_residents"] = f["catchment_residents"].astype(np.int64)
    cols = [s.name for s in LAYER_SCHEMAS["facilities"]]
    f["tier"] = f["tier"].astype(str)
    return points_gdf(f, cols)


def residents_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Resident points with the per-tier columns (see :data:`LAYER_SCHEMAS` ``residents``)."""
    table = resident_table(src.run.result)
    cols = [f.name for f in layer_fields("residents", src.tier_keys)]
    return points_gdf(table, cols)


def units_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Unit polygons with per-tier 达标率 (see :data:`LAYER_SCHEMAS` ``units``).

    Residents are assigned to units by :func:`lifecircle.units.assign_units` (on a shared
    boundary, the first unit in file order). A resident outside every unit counts in no unit.
    """
    import geopandas as gpd

    layers = src.run.inputs.units
    if not layers:
        raise LayerUnavailableError(
            "layer 'units' is not available in this run: no unit polygons were loaded; give "
            "--units FILE (communities, grids) or a scenario with [[units]]"
        )
    if src.unit_tables is not None:
        return _precomputed_units(src)
    res = src.run.result.residents
    pop = res["population"].to_numpy(float)
    lon = res["lon"].to_numpy(float)
    lat = res["lat"].to_numpy(float)
    frames = []
    for layer in layers:
        polys = np.asarray(layer.frame.geometry.values)
        k = len(polys)
        member = assign_units(lon, lat, polys)
        inside = member >= 0
        m = member[inside]
        p = pop[inside]
        total = np.bincount(m, weights=p, minlength=k)
        d: dict[str, NDArray[np.generic]] = {
            "unit_kind": np.full(k, layer.key, dtype=object),
            "unit_id": layer.frame["unit_id"].astype(str).to_numpy(),
            "name": layer.frame["name"].astype(str).to_numpy(),
            "residents": np.bincount(m, minlength=k).astype(np.int64),
            "population": total,
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            for key in src.tier_keys:
                cov = res[f"{key}_covered"].to_numpy(bool)[inside]
                c = np.bincount(m, weights=p * cov, minlength=k)
                d[f"{key}_population_covered"] = c
                d[f"{key}_share"] = np.where(total > 0, c / total, np.nan)
            allc = np.bincount(
                m, weights=p * res["all_covered"].to_numpy(bool)[inside], minlength=k
            )
            d["all_population_covered"] = allc
            d["all_share"] = np.where(total > 0, allc / total, np.nan)
        frames.append(gpd.GeoDataFrame(pd.DataFrame(d), geometry=polys, crs="EPSG:4326"))
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")


def _precomputed_units(src: ExportSources) -> gpd.GeoDataFrame:
    """Per-unit tables computed elsewhere (e.g. ``lifecircle.report``), joined to their polygons.

    Accepts a GeoDataFrame (used as is), a DataFrame with ``unit_id`` (and ``unit_kind`` or
    ``layer`` when there are several unit layers), or ``{unit_kind: DataFrame}``. Rows whose
    unit has no polygon (such as the report's "outside all units" row) are dropped.
    """
    import geopandas as gpd

    t = src.unit_tables
    if isinstance(t, gpd.GeoDataFrame) and t.crs is not None:
        return t.to_crs(4326)
    if isinstance(t, Mapping):
        t = pd.concat(
            [pd.DataFrame(v).assign(unit_kind=k) for k, v in t.items()], ignore_index=True
        )
    tab = pd.DataFrame(t).drop(columns=["geometry"], errors="ignore")
    if "unit_kind" not in tab.columns and "layer" in tab.columns:
        tab = tab.rename(columns={"layer": "unit_kind"})
    if "unit_id" not in tab.columns:
        raise LayerUnavailableError(
            "layer 'units': the precomputed unit table has no unit_id column"
        )
    geo = pd.concat(
        [
            pd.DataFrame(
                {
                    "unit_kind": layer.key,
                    "unit_id": layer.frame["unit_id"].astype(str).to_numpy(),
                    "geometry": np.asarray(layer.frame.geometry.values),
                }
            )
            for layer in src.run.inputs.units
        ],
        ignore_index=True,
    )
    on = ["unit_kind", "unit_id"] if "unit_kind" in tab.columns else ["unit_id"]
    merged = tab.assign(unit_id=tab["unit_id"].astype(str)).merge(geo, on=on, how="inner")
    cols = ["unit_kind", *[c for c in merged.columns if c != "unit_kind"]]
    return gpd.GeoDataFrame(merged[cols], geometry="geometry", crs="EPSG:4326")


def network_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Road segments of every mode's network as WGS84 LineStrings."""
    import geopandas as gpd
    import shapely

    frames = []
    for mode, net in sorted(src.run.inputs.networks.items()):
        lon, lat = net.to_lonlat(net.node_x, net.node_y)
        u, v = net.edge_u, net.edge_v
        coords = np.stack(
            [np.column_stack([lon[u], lat[u]]), np.column_stack([lon[v], lat[v]])], axis=1
        )
        geoms = shapely.linestrings(coords)
        hw = np.asarray([*net.highway_values, ""], dtype=object)[net.edge_highway]
        nm = np.asarray([*net.name_values, ""], dtype=object)[net.edge_name]
        frames.append(
            gpd.GeoDataFrame(
                pd.DataFrame(
                    {
                        "mode": np.full(len(u), mode, dtype=object),
                        "u": net.node_id[u].astype(np.int64),
                        "v": net.node_id[v].astype(np.int64),
                        "length_m": np.round(net.edge_length_m, 2),
                        "highway": hw.astype(str),
                        "name": nm.astype(str),
                        "oneway": np.asarray(net.edge_oneway, bool),
                    }
                ),
                geometry=geoms,
                crs="EPSG:4326",
            )
        )
    return gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326"
    )


def _given_gdf(layer: str, given: object) -> gpd.GeoDataFrame:
    """A precomputed layer as a WGS84 GeoDataFrame."""
    import geopandas as gpd

    if isinstance(given, ServiceAreas):
        given = given.to_wgs84()
    if not isinstance(given, gpd.GeoDataFrame):
        raise LayerUnavailableError(
            f"layer {layer!r}: expected a GeoDataFrame, got {type(given).__name__}"
        )
    if given.crs is None:
        raise LayerUnavailableError(f"layer {layer!r} has no CRS")
    return given.to_crs(4326) if given.crs.to_epsg() != 4326 else given


def _areas(src: ExportSources, layer: str, dissolve: str) -> gpd.GeoDataFrame:
    given = src.service_areas if layer == "service_areas" else src.catchments
    if given is None:
        run = src.run
        res = run.inputs.residents
        own = layer == "service_areas"  # budgets and rings apply to service areas only
        given = compute_service_areas(
            run.inputs.networks,
            run.inputs.facilities.frame,
            src.standard,
            residents=res.frame if res is not None else None,
            dissolve=dissolve,
            max_snap_m=run.inputs.max_snap_m,
            facility_located=run.result.facility_located,
            resident_located=run.result.resident_located,
            minutes=list(src.area_minutes) if own and src.area_minutes else None,
            metres=list(src.area_metres) if own and src.area_metres else None,
            rings=own and src.area_rings,
        )
    return _given_gdf(layer, given)


def service_areas_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Per facility, the polygon reachable within its tier's standard
    (:func:`lifecircle.service_areas.compute_service_areas`, ``dissolve="none"``)."""
    return _areas(src, "service_areas", "none")


def catchments_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Per facility, the part of its tier's service area it is the nearest facility for
    (:func:`lifecircle.service_areas.compute_service_areas`, ``dissolve="catchment"``)."""
    return _areas(src, "catchments", "catchment")


def gaps_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Coverage gaps (:func:`lifecircle.report.find_gaps`): outlines with the full gap table.

    ``src.gaps`` may hold a precomputed :class:`lifecircle.report.Gaps` or GeoDataFrame.
    """
    import geopandas as gpd

    gaps = src.gaps
    if gaps is None:
        run = src.run
        units = {}
        for layer in run.inputs.units:
            idx = assign_units(
                run.result.residents["lon"].to_numpy(float),
                run.result.residents["lat"].to_numpy(float),
                np.asarray(layer.frame.geometry.values),
            )
            units[layer.key] = (idx, layer.frame["unit_id"].astype(str).to_numpy(dtype=object))
        gaps = find_gaps(run.result, units=units)
    if isinstance(gaps, gpd.GeoDataFrame):
        return gaps.to_crs(4326)
    outlines = gaps.geometries()
    table = gaps.table.drop(columns=[c for c in ("x", "y") if c in gaps.table.columns])
    table = table.reset_index(drop=True).rename(columns={"lon": "wgs84_lon", "lat": "wgs84_lat"})
    if "tiers_missing" in table.columns:
        table["tiers_missing"] = table["tiers_missing"].astype(str)
    return gpd.GeoDataFrame(table, geometry=np.asarray(outlines.geometry.values), crs="EPSG:4326")


def candidates_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Scored candidate sites.

    ``src.candidates`` holds a scoring run (``lifecircle.pipeline.ScoringRun``), its
    :class:`lifecircle.siting.ScoringResult`, a DataFrame with ``lon``/``lat`` (WGS84) or a
    GeoDataFrame.
    """
    import geopandas as gpd

    given = src.candidates
    if given is None:
        raise LayerUnavailableError(
            "layer 'candidates' is not available in this run: no sites were scored; give "
            "--score-tier TIER (and --candidates FILE or auto)"
        )
    if not isinstance(given, pd.DataFrame | ScoringResult):
        given = given.result
    table = given.candidates if isinstance(given, ScoringResult) else given
    if isinstance(table, gpd.GeoDataFrame):
        return _given_gdf("candidates", table)
    frame = pd.DataFrame(table)
    if not {"lon", "lat"} <= set(frame.columns):
        raise LayerUnavailableError("layer 'candidates': the table has no lon/lat columns")
    cols = [c for c in frame.columns if c not in ("lon", "lat", "x", "y")]
    return points_gdf(frame.reset_index(drop=True), cols)


def rejects_layer(src: ExportSources) -> gpd.GeoDataFrame:
    """Rejected input rows whose coordinates parse, as WGS84 points (file, row, id, reason,
    detail), so that swapped or misplaced points can be seen on a map.

    Rows without usable coordinates stay in ``rejects.csv`` only (the CLI says how many).
    """
    rej = src.run.inputs.rejects()
    lon = pd.to_numeric(rej["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(rej["lat"], errors="coerce").to_numpy(float)
    placed = np.isfinite(lon) & np.isfinite(lat)
    table = rej.loc[placed].reset_index(drop=True)
    table["row"] = table["row"].astype(np.int64)
    for c in ("file", "id", "reason", "detail"):
        table[c] = table[c].astype(str)
    cols = [f.name for f in LAYER_SCHEMAS["rejects"]]
    return points_gdf(table, cols)


#: Layer name -> builder. Adding a layer is one line here plus its schema above.
LAYER_BUILDERS: dict[str, Callable[[ExportSources], gpd.GeoDataFrame]] = {
    "facilities": facilities_layer,
    "residents": residents_layer,
    "service_areas": service_areas_layer,
    "catchments": catchments_layer,
    "gaps": gaps_layer,
    "units": units_layer,
    "candidates": candidates_layer,
    "network": network_layer,
    "rejects": rejects_layer,
}


def unavailable_layers(
    names: Sequence[str], *, units_loaded: bool, given: Sequence[str] = ()
) -> list[str]:
    """Reasons why requested layers cannot be built (checked before any computation).

    Parameters
    ----------
    names : sequence of str
        Requested layers (already validated by :func:`parse_layers`).
    units_loaded : bool
        Whether unit polygons were loaded.
    given : sequence of str
        :class:`ExportSources` attributes that were supplied precomputed.
    """
    out = []
    if "units" in names and not units_loaded:
        out.append(
            "layer 'units' is not available in this run: no unit polygons were loaded; "
            "give --units FILE (communities, grids) or a scenario with [[units]]"
        )
    if "candidates" in names and "candidates" not in given:
        out.append(
            "layer 'candidates' is not available in this run: no sites were scored; "
            "give --score-tier TIER (and --candidates FILE or auto)"
        )
    return out


#: Layers exported when none are named.
DEFAULT_LAYERS = ("facilities", "residents", "units")


def parse_layers(spec: str | Sequence[str] | None) -> list[str]:
    """Layer names from ``"a,b"`` or a list; ``all`` means every layer; validates names.

    Raises
    ------
    InputError
        Naming every unknown layer and listing the known ones.
    """
    if spec is None:
        return list(DEFAULT_LAYERS)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [s.strip().lower().replace("-", "_") for s in items if s.strip()]
    if "all" in names:
        return list(LAYER_BUILDERS)
    unknown = [n for n in names if n not in LAYER_BUILDERS]
    if unknown:
        raise InputError(
            f"unknown layer(s) {', '.join(unknown)}; known layers: "
            f"{', '.join(LAYER_BUILDERS)} (or all)"
        )
    if not names:
        raise InputError("no layers requested")
    return list(dict.fromkeys(names))


def build_layers(
    src: ExportSources, layers: str | Sequence[str] | None = None, *, skip_unavailable: bool = False
) -> dict[str, gpd.GeoDataFrame]:
    """Build the requested layers as WGS84 GeoDataFrames, in request order.

    Parameters
    ----------
    src : ExportSources
    layers : str or sequence of str, optional
        Layer names (default :data:`DEFAULT_LAYERS`; ``"all"`` for every layer).
    skip_unavailable : bool, default False
        Drop layers that cannot be built in this run (logged) instead of failing.

    Raises
    ------
    InputError
        Unknown layer names.
    LayerUnavailableError
        A requested layer cannot be built (all such layers are named in one message).
    """
    names = parse_layers(layers)
    out: dict[str, gpd.GeoDataFrame] = {}
    problems = []
    for name in names:
        try:
            out[name] = LAYER_BUILDERS[name](src)
        except LayerUnavailableError as exc:
            problems.append(str(exc))
    if problems:
        if skip_unavailable:
            for p in problems:
                logger.warning("skipped: %s", p)
        else:
            raise LayerUnavailableError("; ".join(problems) + "; nothing was written")
    return out
