"""The planning service: an HTTP API over one loaded scenario (FastAPI + uvicorn).

Method
------
At start-up :func:`build_state` loads the scenario once (network per mode, facilities,
residents, standard, units), computes coverage, and precomputes per tier one multi-source
Dijkstra search with that tier's facilities as sources (:func:`precompute_tier_lookup`): every
network node then knows its distance to the nearest facility of the tier and which facility
that is. A request for arbitrary query points (``POST /distances``) only has to snap the points
onto the network and *read off* the answer from the two nodes of their edge, plus the same-edge
case (a facility on the query point's own edge), which :func:`nearest_from_lookup` handles
exactly as :func:`lifecircle.routing.nearest_sources` does. No graph search runs per request, so
100 points take a few milliseconds.

The other endpoints call the library's public functions on the loaded state: per-unit tables
from :mod:`lifecircle.report` (computed at start-up), layers from :mod:`lifecircle.export`,
polygons from :func:`lifecircle.service_areas.compute_service_areas`, candidate ranking from
:func:`lifecircle.siting.score_sites` and the offline map from :mod:`lifecircle.maps`. If an
installation lacks one of those modules, its endpoint answers 501.

The state (:class:`ServiceState`) is immutable and lives on ``app.state``; requests share
nothing mutable. Caches on the networks (routing graph, snapping index) are filled at start-up,
before the first request, and only read afterwards.

Safety
------
* Binds to loopback by default; :func:`check_bind` refuses any other host without a bearer
  token (``--token`` or the environment variable ``LIFECIRCLE_TOKEN``).
* No request parameter is ever a file path: layers, units and tiers are chosen by name from
  what the loaded scenario has.
* Limits (:class:`Limits`): body size (413), features per request (413), budgets and ``k``
  (422). Computations run in worker threads with a concurrency limit and a timeout (503).
* Errors are RFC 9457 problem details (``application/problem+json``) naming the offending
  feature or parameter; tracebacks stay in the server log.
* CORS is off unless origins are configured.
* One access log line per request with status and latency (logger
  ``lifecircle.service.access``).
"""


import functools
import hmac
import ipaddress
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import anyio
import anyio.to_thread
import numpy as np
import pandas as pd
from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecircle import __version__
from lifecircle.coords import from_wgs84, to_wgs84
from lifecircle.errors import InputError, LifecircleError
from lifecircle.routing import Positions, RoutingGraph, nearest_from_nodes, nearest_sources

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("lifecircle.service.access")

#: Environment variable holding the bearer token.
TOKEN_ENV: Final = "LIFECIRCLE_TOKEN"
#: Environment variable through which ``serve --workers N`` passes its settings to workers.
CONFIG_ENV: Final = "LIFECIRCLE_SERVE_CONFIG"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
#: Coordinate systems a request may use for lon/lat.
REQUEST_CRS: Final = ("wgs84", "cgcs2000", "gcj02", "bd09")
PROBLEM_JSON: Final = "application/problem+json"
GEOJSON: Final = "application/geo+json"

CrsName = Literal["wgs84", "cgcs2000", "gcj02", "bd09"]


# -- limits and state --------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes
    ----------
    max_body_bytes : int
        Largest request body in bytes (larger: 413).
    max_features : int
        Most points per ``/distances`` or ``/score`` request, and facility ids per
        ``/service-areas`` request (more: 413).
    max_budget_min : float
        Largest travel-time budget in minutes for service areas (larger: 422).
    max_budget_m : float
        Largest distance budget in metres for service areas (larger: 422).
    max_budgets : int
        Most budgets per service-area request.
    max_k : int
        Most sites ``/score`` may pick.
    timeout_s : float
        Seconds a computation may take before the request fails with 503.
    max_concurrent : int
        Computations running at once (further requests wait for a slot).
    """

    max_body_bytes: int = 2_000_000
    max_features: int = 1_000
    max_budget_min: float = 60.0
    max_budget_m: float = 20_000.0
    max_budgets: int = 6
    max_k: int = 50
    timeout_s: float = 30.0
    max_concurrent: int = 4

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"service limit {name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class TierLookup:
    """Precomputed nearest-facility search of one tier (see the module docstring).

    Attributes
    ----------
    key, mode : str
        Tier key and the travel mode of its network.
    threshold_m, speed_m_per_min : float
    graph : RoutingGraph
        The mode's towards graph.
    sources : Positions
        Positions of the facilities that serve the tier (``edge = -1``: off the network).
    facility_index : ndarray of int64
        Row in the coverage result's facility table of each source.
    node_distance_m : ndarray of float64
        Per node: metres to the nearest source (``inf`` if none reachable).
    node_source : ndarray of int64
        Per node: index into ``sources`` of that source, -1 if none.
    """

    key: str
    mode: str
    threshold_m: float
    speed_m_per_min: float
    graph: RoutingGraph = field(repr=False)
    sources: Positions = field(repr=False)
    facility_index: np.ndarray = field(repr=False)
    node_distance_m: np.ndarray = field(repr=False)
    node_source: np.ndarray = field(repr=False)


def precompute_tier_lookup(graph: RoutingGraph, sources: Positions) -> tuple[np.ndarray, np.ndarray]:
    """Node distances to the nearest source and which source, from one multi-source search.

    Parameters
    ----------
    graph : RoutingGraph
    sources : Positions
        Facilities (``edge = -1`` ones are ignored).

    Returns
    -------
    node_distance_m : ndarray of float64, shape (n_nodes,)
        Network metres from each node to its nearest source, the source's access leg included.
    node_source : ndarray of int64, shape (n_nodes,)
        Index into ``sources`` of that source, -1 where none is reachable.
    """
    empty = Positions(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    out = nearest_sources(graph, sources, empty)
    return out.node_distance_m, out.node_source


def nearest_from_lookup(
    graph: RoutingGraph,
    sources: Positions,
    node_distance_m: np.ndarray,
    node_source: np.ndarray,
    destinations: Positions,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distance from each destination to its nearest source, from precomputed nodes.

    Gives the same answer as :func:`lifecircle.routing.nearest_sources` (no cut-off) without a
    graph search: the read-off through the destination's edge ends plus the same-edge sources.

    Returns
    -------
    distance_m : ndarray of float64
        Metres, access legs included; ``inf`` if unreachable or off the network.
    source : ndarray of int64
        Index into ``sources``, -1 if none.
    """
    return nearest_from_nodes(graph, sources, node_distance_m, node_source, destinations)


@dataclass(frozen=True)
class ServiceState:
    """Everything the service answers from; built once, never changed.

    Attributes
    ----------
    run : lifecircle.pipeline.CoverageRun
        Inputs and the coverage result of the loaded scenario.
    lookups : dict
        ``{tier key: TierLookup}``.
    unit_tables : dict
        ``{unit key: DataFrame}``: coverage per admin unit (达标率).
    limits : Limits
    token : str or None
        Bearer token every request must carry, if set.
    cors_origins : tuple of str
        Origins allowed by CORS (empty: CORS off).
    load_s : float
        Seconds spent loading and precomputing.
    """

    run: Any
    lookups: dict[str, TierLookup]
    unit_tables: dict[str, pd.DataFrame]
    limits: Limits = Limits()
    token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    load_s: float = 0.0
    export_template: Any = field(default=None, repr=False)
    """``lifecircle.export.ExportSources`` with its start-up cache filled; each request works
    on a copy (see :func:`export_sources`)."""

    @property
    def inputs(self) -> Any:
        """The loaded :class:`lifecircle.pipeline.Inputs`."""
        return self.run.inputs

    @property
    def result(self) -> Any:
        """The :class:`lifecircle.coverage.CoverageResult`."""
        return self.run.result


def unit_coverage_table(result: Any, layer: Any) -> pd.DataFrame:
    """Coverage per admin unit by point-in-polygon of the residents (达标率 table).

    Parameters
    ----------
    result : CoverageResult
    layer : lifecircle.io.UnitLayer
        Polygons in WGS84.

    Returns
    -------
    DataFrame
        One row per unit: ``unit_id``, ``name``, ``residents``, ``population``, per tier
        ``{tier}_population_covered`` and ``{tier}_share``, ``all_population_covered`` and
        ``all_share`` (share 0 for a unit without people). Residents are assigned to the first
        unit that contains them.
    """
    import shapely

    res = result.residents
    polys = np.asarray(layer.frame.geometry.values)
    pts = shapely.points(res["lon"].to_numpy(float), res["lat"].to_numpy(float))
    tree = shapely.STRtree(polys)
    pi, ui = tree.query(pts, predicate="within")
    unit_of = np.full(len(res), -1, np.int64)
    first = np.unique(pi, return_index=True)[1]
    unit_of[pi[first]] = ui[first]
    inside = unit_of >= 0
    n_units = len(polys)
    pop = res["population"].to_numpy(float)
    out = pd.DataFrame({
        "unit_id": layer.frame["unit_id"].astype(str).to_numpy(),
        "name": layer.frame["name"].astype(str).to_numpy(),
        "residents": np.bincount(unit_of[inside], minlength=n_units),
        "population": np.bincount(unit_of[inside], weights=pop[inside], minlength=n_units),
    })
    total = out["population"].to_numpy()
    cols = [(t.key, f"{t.key}_covered") for t in result.standard.tiers] + [("all", "all_covered")]
    for key, col in cols:
        cov = inside & res[col].to_numpy(bool)
        covered = np.bincount(unit_of[cov], weights=pop[cov], minlength=n_units)
        out[f"{key}_population_covered"] = covered
        out[f"{key}_share"] = np.divide(covered, total, out=np.zeros(n_units), where=total > 0)
    return out


def _unit_tables(run: Any) -> dict[str, pd.DataFrame]:
    """Per-unit tables: :func:`lifecircle.report.unit_coverage` per level when available
    (sub-district first, then the scenario's unit layers), else :func:`unit_coverage_table`."""
    report = _module("report")
    if report is None:
        return {u.key: unit_coverage_table(run.result, u) for u in run.inputs.units}
    return {lvl.key: report.unit_coverage(run.result, lvl) for lvl in report.unit_levels(run.inputs)}


def _unit_labels(run: Any) -> dict[str, tuple[str, str]]:
    labels = {u.key: (u.label_zh, u.label_en) for u in run.inputs.units}
    labels.setdefault("subdistrict", ("街道", "Sub-district"))
    return labels


def build_state(
    inputs: Any,
    *,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
) -> ServiceState:
    """Compute coverage and the per-tier lookups for loaded inputs.

    Parameters
    ----------
    inputs : lifecircle.pipeline.Inputs
        Must include residents.
    limits : Limits, optional
    token : str, optional
        Bearer token required on every request.
    cors_origins : sequence of str
        Browser origins allowed to call the API (empty: CORS off).
    """
    from lifecircle.pipeline import run_coverage

    t0 = time.perf_counter()
    run = run_coverage(inputs)
    result = run.result
    std = inputs.standard
    fac_tier = result.facilities["tier"].to_numpy()
    lookups: dict[str, TierLookup] = {}
    for tier in std.tiers:
        idx = np.flatnonzero(np.isin(fac_tier, std.serving_tiers(tier.key))).astype(np.int64)
        graph = RoutingGraph.from_network(inputs.networks[tier.mode])
        src = result.facility_located.positions(tier.mode).subset(idx)
        node_d, node_s = precompute_tier_lookup(graph, src)
        lookups[tier.key] = TierLookup(tier.key, tier.mode, tier.threshold_m, tier.speed_m_per_min,
                                       graph, src, idx, node_d, node_s)
    # fill every lazily built cache now, so requests only read
    for net in inputs.networks.values():
        from lifecircle.snapping import snap_index

        snap_index(net)
    tables = _unit_tables(run)
    template = None
    export = _module("export")
    if export is not None and hasattr(export, "ExportSources"):
        template = export.ExportSources(run)
        export.facilities_layer(template)  # fills the per-facility population cache once
    load_s = time.perf_counter() - t0 + inputs.timings_s.get("load", 0.0)
    logger.info("service state ready in %.2f s: %d facilities, %d residents, %d unit layer(s)",
                load_s, len(result.facilities), len(result.residents), len(tables))
    return ServiceState(run=run, lookups=lookups, unit_tables=tables, limits=limits or Limits(),
                        token=token or None, cors_origins=tuple(cors_origins), load_s=load_s,
                        export_template=template)


def load_state(
    scenario: str | Path | None = None,
    *,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
    **load_kwargs: Any,
) -> ServiceState:
    """Load a scenario (and/or explicit inputs, see :func:`lifecircle.pipeline.load_inputs`)."""
    from lifecircle.pipeline import load_inputs

    inputs = load_inputs(scenario=scenario, **load_kwargs)
    return build_state(inputs, limits=limits, token=token, cors_origins=cors_origins)


# -- computations (plain functions, run in worker threads) -------------------------------

def _finite(v: float, digits: int) -> float | None:
    return round(float(v), digits) if math.isfinite(v) else None


def query_distances(
    state: ServiceState,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    tiers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Distances from WGS84 query points to the nearest facility of each tier.

    Parameters
    ----------
    lon, lat : ndarray
        WGS84 degrees.
    tiers : sequence of str, optional
        Tier keys (default all).

    Returns
    -------
    dict
        Arrays per point: ``on_network``, ``snap_m`` and per tier ``distance_m`` (``inf`` if
        unreachable), ``minutes``, ``nearest`` (facility row, -1 if none), ``covered``.
    """
    from lifecircle.snapping import snap_to_network

    inputs = state.inputs
    keys = list(tiers) if tiers else list(inputs.standard.keys)
    n = len(lon)
    net0 = next(iter(inputs.networks.values()))
    x, y = net0.from_lonlat(np.asarray(lon, float), np.asarray(lat, float))
    finite = np.isfinite(x) & np.isfinite(y)
    fi = np.flatnonzero(finite)
    positions: dict[str, Positions] = {}
    snap_m = np.full(n, np.inf)
    on_net = np.zeros(n, bool)
    primary = "walk" if "walk" in inputs.networks else next(iter(inputs.networks))
    for mode, net in inputs.networks.items():
        snapped = snap_to_network(net, x[fi], y[fi], max_snap_m=inputs.max_snap_m)
        edge = np.full(n, -1, np.int64)
        off = np.zeros(n)
        acc = np.full(n, np.inf)
        edge[fi] = snapped.routable_edge()
        off[fi] = snapped.offset_m
        acc[fi] = snapped.access_m
        positions[mode] = Positions(edge, off, acc)
        if mode == primary:
            snap_m = acc
            on_net = edge >= 0
    out: dict[str, Any] = {"on_network": on_net, "snap_m": snap_m, "tiers": {}}
    for key in keys:
        lk = state.lookups[key]
        d, s = nearest_from_lookup(lk.graph, lk.sources, lk.node_distance_m, lk.node_source,
                                   positions[lk.mode])
        nearest = np.where(s >= 0, lk.facility_index[np.maximum(s, 0)], -1)
        out["tiers"][key] = {"distance_m": d, "minutes": d / lk.speed_m_per_min, "nearest": nearest,
                             "covered": d <= lk.threshold_m, "threshold_m": lk.threshold_m}
    return out


def distances_geojson(
    state: ServiceState,
    coords: np.ndarray,
    ids: Sequence[Any],
    *,
    crs: str = "wgs84",
    tiers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``POST /distances`` as plain data: a GeoJSON FeatureCollection, one feature per point.

    Parameters
    ----------
    coords : ndarray, shape (n, 2)
        lon/lat in ``crs`` (degrees).
    ids : sequence
        Feature ids (``None``: the index is used).
    crs : {"wgs84", "cgcs2000", "gcj02", "bd09"}
    """
    lon, lat = to_wgs84(coords[:, 0], coords[:, 1], crs) if len(coords) else (np.zeros(0), np.zeros(0))
    q = query_distances(state, lon, lat, tiers=tiers)
    fac = state.result.facilities
    fac_id = fac["id"].astype(str).to_numpy()
    fac_name = fac["name"].astype(str).to_numpy()
    tier_rows = {}
    for key, t in q["tiers"].items():
        tier_rows[key] = list(zip(t["distance_m"].tolist(), t["minutes"].tolist(), t["nearest"].tolist(),
                                  t["covered"].tolist(), strict=True))
    thresholds = {key: t["threshold_m"] for key, t in q["tiers"].items()}
    features = []
    on_net = q["on_network"].tolist()
    snap = q["snap_m"].tolist()
    coords_l = coords.tolist()
    for i in range(len(coords)):  # building JSON objects: one dict per requested point
        per_tier = {}
        all_cov = True
        for key, rows in tier_rows.items():
            d, m, f, c = rows[i]
            all_cov &= bool(c)
            per_tier[key] = {
                "distance_m": _finite(d, 2), "minutes": _finite(m, 2),
                "threshold_m": thresholds[key], "covered": bool(c),
                "nearest_id": str(fac_id[f]) if f >= 0 else None,
                "nearest_name": str(fac_name[f]) if f >= 0 else None,
            }
        fid = ids[i] if ids[i] is not None else i
        features.append({
            "type": "Feature", "id": fid,
            "geometry": {"type": "Point", "coordinates": coords_l[i]},
            "properties": {"index": i, "on_network": bool(on_net[i]), "snap_m": _finite(snap[i], 2),
                           "all_covered": all_cov, "tiers": per_tier},
        })
    return {"type": "FeatureCollection", "crs_name": crs, "standard": state.inputs.standard.name,
            "features": features}


#: Layers of ``GET /layers/{layer}`` (the names of ``lifecircle export``).
LAYERS: Final = ("facilities", "residents", "units", "network", "gaps", "service_areas", "catchments")
#: Output coordinate systems of ``GET /layers/{layer}``.
LAYER_CRS: Final = ("wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09")
LayerCrs = Literal["wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09"]


def layer_names(state: ServiceState) -> list[str]:
    """Layers this service can export (``units`` only when unit polygons were loaded)."""
    if state.export_template is None:
        return []
    out = []
    for name in LAYERS:
        if name == "units" and not state.inputs.units:
            continue
        if name in ("service_areas", "catchments") and _module("service_areas") is None:
            continue
        if name == "gaps" and _module("report") is None:
            continue
        out.append(name)
    return out


def export_sources(state: ServiceState) -> Any:
    """A per-request copy of the export sources (its cache dict is the request's own)."""
    from dataclasses import replace

    tpl = state.export_template
    return replace(tpl, cache=dict(tpl.cache))


def _service_areas_frame(state: ServiceState, *, dissolve: str, facilities: pd.DataFrame | None = None,
                         tiers: Sequence[str] | None = None, minutes: Sequence[float] | None = None,
                         metres: Sequence[float] | None = None, rings: bool = False) -> Any:
    """Service areas of the loaded (or given) facilities as a WGS84 GeoDataFrame."""
    from lifecircle.service_areas import compute_service_areas

    res = state.result
    given = facilities is not None
    fac: pd.DataFrame = facilities if facilities is not None else res.facilities
    areas = compute_service_areas(
        state.inputs.networks, fac, state.inputs.standard,
        residents=res.residents, tiers=tiers, minutes=minutes, metres=metres, dissolve=dissolve,
        rings=rings, max_snap_m=state.inputs.max_snap_m,
        facility_located=None if given else res.facility_located,
        resident_located=res.resident_located)
    return areas.to_wgs84()


def _csv_bytes(gdf: Any, crs: Any) -> bytes:
    """A layer as CSV: ``lon``/``lat`` (or ``x``/``y``) columns for points, else ``wkt``."""
    import shapely

    geoms = np.asarray(gdf.geometry.values)
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    xname, yname = ("lon", "lat") if crs.geographic else ("x", "y")
    digits = crs.default_precision
    if len(geoms) and np.all(shapely.get_type_id(geoms) == 0):
        attrs[xname] = np.round(shapely.get_x(geoms), digits)
        attrs[yname] = np.round(shapely.get_y(geoms), digits)
    else:
        attrs["wkt"] = shapely.to_wkt(geoms, rounding_precision=digits, trim=True)
    attrs = attrs.replace([np.inf, -np.inf], np.nan)
    return attrs.to_csv(index=False, lineterminator="\n").encode("utf-8")


def export_layer(state: ServiceState, layer: str, *, fmt: str, crs: str) -> tuple[bytes, str, str]:
    """One result layer as bytes: ``(content, media type, file name)``.

    Built by :mod:`lifecircle.export` (the same layers and columns as ``lifecircle export``),
    in the output CRS ``crs``; ``service_areas``/``catchments`` are computed for every loaded
    facility at its tier's standard.
    """
    from lifecircle import export

    src = export_sources(state)
    if layer == "service_areas":
        src.service_areas = _service_areas_frame(state, dissolve="none")
    elif layer == "catchments":
        src.catchments = _service_areas_frame(state, dissolve="catchment")
    gdf = export.build_layers(src, [layer])[layer]
    b = np.asarray(gdf.total_bounds, float) if len(gdf) else np.full(4, np.nan)
    lon_range = (float(b[0]), float(b[2])) if np.all(np.isfinite(b)) else None
    ocrs = export.resolve_output_crs(crs, lon_range=lon_range)
    tag = f"_{ocrs.tag}" if ocrs.tag else ""
    if fmt == "csv":
        import geopandas as gpd

        geoms = ocrs.transform_geometries(np.asarray(gdf.geometry.values))
        out = gpd.GeoDataFrame(pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), geometry=geoms)
        return _csv_bytes(out, ocrs), "text/csv; charset=utf-8", f"{layer}{tag}.csv"
    text = export.layer_geojson(gdf, crs=ocrs, name=layer)
    return text.encode("utf-8"), GEOJSON, f"{layer}{tag}.geojson"


def map_html(state: ServiceState, *, lang: str = "zh") -> str:
    """The offline HTML coverage map (:mod:`lifecircle.maps`), built in memory."""
    from lifecircle import maps

    m = maps.build_map(state.run, offline=True, lang=lang)
    return str(maps.render_map_html(m, offline=True))


# -- JSON helpers ------------------------------------------------------------------------

def _jsonable(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return _jsonable(float(o))
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, Path):
        return str(o)
    if o is pd.NA or o is pd.NaT:
        return None
    return o


def _dumps(data: Any) -> bytes:
    return json.dumps(_jsonable(data), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


class FastJSONResponse(JSONResponse):
    """JSON without NaN/Infinity (they become null), UTF-8, compact."""

    def render(self, content: Any) -> bytes:
        return _dumps(content)


class GeoJSONResponse(FastJSONResponse):
    """A GeoJSON document (``application/geo+json``)."""

    media_type = GEOJSON


# -- request and response models (they make the OpenAPI schema) -----------------------------

Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]


class PointGeometry(BaseModel):
    """A GeoJSON Point: ``[lon, lat]`` in degrees of the request's ``crs``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["Point"]
    coordinates: tuple[Lon, Lat]


class PointFeature(BaseModel):
    """A GeoJSON Feature with a Point geometry."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["Feature"]
    id: str | int | None = None
    geometry: PointGeometry
    properties: dict[str, Any] | None = None


class PointCollection(BaseModel):
    """A GeoJSON FeatureCollection of points."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "home-1",
             "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]}, "properties": {}},
        ]}]})
    type: Literal["FeatureCollection"]
    features: list[PointFeature]


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    errors: list[dict[str, Any]] | None = None


class TierOut(BaseModel):
    key: str
    label_zh: str
    label_en: str
    mode: str
    threshold_m: float
    minutes: float
    speed_m_per_min: float


class StandardOut(BaseModel):
    name: str
    description: str
    upper_tiers_count: bool
    tiers: list[TierOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    ready: bool
    version: str
    scenario: str | None
    synthetic: bool
    standard: str
    crs: str
    counts: dict[str, int | float]
    networks: dict[str, dict[str, int]]
    units: list[str]
    layers: list[str]
    load_s: float


class TierDistance(BaseModel):
    distance_m: float | None = Field(description="network metres incl. access legs; null if unreachable")
    minutes: float | None
    threshold_m: float
    covered: bool
    nearest_id: str | None
    nearest_name: str | None


class DistanceProps(BaseModel):
    index: int
    on_network: bool
    snap_m: float | None
    all_covered: bool
    tiers: dict[str, TierDistance]


class DistanceFeature(BaseModel):
    type: Literal["Feature"]
    id: str | int
    geometry: PointGeometry
    properties: DistanceProps


class DistancesOut(BaseModel):
    type: Literal["FeatureCollection"]
    crs_name: str
    standard: str
    features: list[DistanceFeature]


class UnitsOut(BaseModel):
    unit: str
    label_zh: str
    label_en: str
    columns: list[str]
    rows: list[dict[str, Any]]


class SummaryOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    scenario: str | None
    synthetic: bool
    tiers: dict[str, dict[str, Any]]
    all_tiers: dict[str, Any]


class ServiceAreasIn(BaseModel):
    """Facilities (by id) or new points, budgets, and how to merge the polygons."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"facility_ids": ["F0001"], "budgets_min": [5, 10], "dissolve": "none"}]})
    facility_ids: list[str] | None = Field(None, description="ids of loaded facilities")
    points: PointCollection | None = Field(None, description="new sites (needs tier)")
    tier: str | None = Field(None, description="tier key of the new points (and their mode)")
    budgets_min: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None
    budgets_m: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None
    dissolve: Literal["none", "tier", "catchment"] = Field(
        "none", description="none: one polygon per facility and budget; tier: their union per tier; "
                            "catchment: the tier polygon split among the facilities")
    rings: bool = Field(False, description="bands between consecutive budgets instead of nested polygons")


class ScoreIn(BaseModel):
    """Candidate sites for one tier; the best ``k`` are picked greedily."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "tier": "station", "k": 3, "candidates": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "C1",
             "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]}}]}}]})
    candidates: PointCollection
    tier: str
    k: Annotated[int, Field(ge=1, description="sites to pick greedily (default: score only)")] | None = None
    weight: Literal["population", "elderly", "children"] = "population"


class ScoreOut(BaseModel):
    tier: str
    k: int | None
    weight: str
    crs_name: str
    coverage_before: dict[str, Any]
    coverage_after: dict[str, Any]
    picks: list[dict[str, Any]]
    candidates: list[dict[str, Any]]


_DISTANCES_EXAMPLES: Final = {
    "two_addresses": {
        "summary": "two addresses (WGS84)",
        "value": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "home-1", "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]},
             "properties": {}},
            {"type": "Feature", "id": "home-2", "geometry": {"type": "Point", "coordinates": [118.3551, 34.6190]},
             "properties": {}}]}},
}
_SERVICE_AREA_EXAMPLES: Final = {
    "facilities": {"summary": "loaded facilities by id, 5 and 10 minutes",
                   "value": {"facility_ids": ["F0001"], "budgets_min": [5, 10], "dissolve": "none"}},
    "new_site": {"summary": "a proposed station (its tier's own standard)",
                 "value": {"tier": "station", "points": {"type": "FeatureCollection", "features": [
                     {"type": "Feature", "id": "proposal-7",
                      "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]}}]}}},
}
_SCORE_EXAMPLES: Final = {
    "three_candidates": {"summary": "rank three proposed stations and pick the best two", "value": {
        "tier": "station", "k": 2, "candidates": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": f"C{i + 1}", "geometry": {"type": "Point", "coordinates": [lon, 34.6139]},
             "properties": {"name": f"候选点{i + 1}"}}
            for i, lon in enumerate((118.3475, 118.3520, 118.3590))]}}},
}


def _problem_response(status: int, title: str, detail: str, code: str) -> dict[str, Any]:
    return {"description": title, "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema(),
                                                           "example": {"type": "about:blank", "title": title,
                                                                       "status": status, "detail": detail,
                                                                       "code": code}}}}


_P400 = {400: _problem_response(400, "Bad request", "request body is not valid JSON: Expecting value "
                                "at line 1 column 1", "malformed_json")}
_P401 = {401: _problem_response(401, "Unauthorized", "missing bearer token", "unauthorized")}
_P404 = {404: _problem_response(404, "Not found", "unknown layer 'roads'", "not_found")}
_P415 = {415: _problem_response(415, "Unsupported media type", "send the body as JSON with the header "
                                "'Content-Type: application/json'", "unsupported_media_type")}
_P413 = {413: _problem_response(413, "Content too large", "1500 features; at most 1000 per request",
                                "too_many_features")}
_P422 = {422: _problem_response(422, "Invalid request", "features[3].geometry.type: Input should be "
                                "'Point'", "invalid_request")}
_P501 = {501: _problem_response(501, "Not implemented", "service areas are not available in this "
                                "installation", "not_implemented")}
_P503 = {503: _problem_response(503, "Service unavailable", "the computation took longer than 30 s",
                                "timeout")}


def _responses(*parts: dict[Any, Any]) -> dict[int | str, Any]:
    out: dict[int | str, Any] = {}
    for p in (_P401, *parts):
        out.update(p)
    return out


# -- problem details ----------------------------------------------------------------------

class ProblemError(Exception):
    """Raised inside handlers; becomes an RFC 9457 problem detail response."""

    def __init__(self, status: int, code: str, detail: str, *, title: str | None = None,
                 errors: list[dict[str, Any]] | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.errors = errors
        self.headers = dict(headers or {})


_TITLES: Final = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                  405: "Method not allowed", 413: "Content too large", 415: "Unsupported media type",
                  422: "Invalid request", 500: "Internal server error", 501: "Not implemented",
                  503: "Service unavailable"}


def problem(status: int, code: str, detail: str, *, instance: str | None = None,
            title: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    """An ``application/problem+json`` response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title or _TITLES.get(status, "Error"),
                            "status": status, "detail": detail, "code": code}
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return Response(_dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _pointer(loc: Sequence[Any]) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


#: Names pydantic puts into error locations for the members of a union type.
_UNION_TAGS: Final = frozenset({"function-after", "str", "int", "float", "bool", "none", "list", "dict",
                                "tuple", "int-str"})


def _validation_problem(exc: RequestValidationError, instance: str) -> Response:
    errs = list(exc.errors())
    body = getattr(exc, "body", None)
    for e in errs:
        if e.get("type") == "json_invalid":
            msg = e.get("ctx", {}).get("error", "invalid JSON")
            return problem(400, "malformed_json", f"request body is not valid JSON: {msg}", instance=instance)
    items = []
    for e in errs[:50]:
        loc = list(e.get("loc", ()))
        where = loc[0] if loc else "body"
        path = loc[1:]
        # drop pydantic's union/tagged-type markers from the path
        path = [p for p in path if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS))]
        text = str(e.get("msg", "invalid"))
        item: dict[str, Any] = {"detail": text}
        if where == "body":
            item["pointer"] = _pointer(path)
            label = _dotted(path) or "body"
            feat = _feature_of(path)
            if feat is not None:
                item["feature"] = feat[0]
                fid = _feature_id(body, feat[1])
                inner = _dotted(path[len(feat[1]):]) or "feature"
                label = f"{_dotted(feat[1])}" + (f" (id {fid!r})" if fid is not None else "") + f" {inner}"
            item["detail"] = f"{label}: {text}"
        else:
            item["parameter"] = ".".join(map(str, path)) or str(where)
            item["detail"] = f"{where} parameter {item['parameter']!r}: {text}"
        items.append(item)
    first = items[0]["detail"] if items else "invalid request"
    more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    return problem(422, "invalid_request", first + more, instance=instance, errors=items)


def _feature_of(path: Sequence[Any]) -> tuple[int, list[Any]] | None:
    """``(feature index, path to the feature)`` if ``path`` points into a features array."""
    for i, p in enumerate(path[:-1]):
        if p == "features" and isinstance(path[i + 1], int):
            return int(path[i + 1]), list(path[: i + 2])
    return None


def _feature_id(body: Any, path: Sequence[Any]) -> Any:
    node = body
    try:
        for p in path:
            node = node[p]
        fid = node.get("id") if isinstance(node, dict) else None
    except (KeyError, IndexError, TypeError):
        return None
    return fid if isinstance(fid, str | int) and not isinstance(fid, bool) else None


# -- ASGI middleware ------------------------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class AccessLogMiddleware:
    """Outermost layer: one access log line per request (client, method, path, status, ms)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ms = 1000.0 * (time.perf_counter() - t0)
            client = scope.get("client") or ("-", 0)
            access_logger.info("%s %s %s %d %.1f ms", client[0], scope.get("method", "-"),
                               scope.get("path", ""), status["code"], ms)


class GuardMiddleware:
    """Bearer token, JSON media type of bodies, and the body size limit (inside CORS).

    The body is read here (at most ``max_body_bytes`` + 1 bytes) and replayed to the app, so an
    oversized upload is refused with 413 however it is sent (with or without Content-Length).
    """

    def __init__(self, app: ASGIApp, *, state: ServiceState) -> None:
        self.app = app
        self.token = state.token
        self.max_body = state.limits.max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        resp = self._refuse(scope) or self._check_media_type(scope)
        if resp is None:
            body_or_resp = await self._read_body(scope, receive)
            if isinstance(body_or_resp, Response):
                resp = body_or_resp
        if resp is not None:
            await resp(scope, receive, send)
            return
        body = body_or_resp
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # type: ignore[no-any-return]

        await self.app(scope, replay, send)

    def _refuse(self, scope: dict[str, Any]) -> Response | None:
        if self.token is None or scope.get("method") == "OPTIONS":
            return None
        auth = ""
        for k, v in scope.get("headers", []):
            if k == b"authorization":
                auth = v.decode("latin-1")
                break
        scheme, _, given = auth.partition(" ")
        hdr = {"WWW-Authenticate": 'Bearer realm="lifecircle"'}
        if scheme.lower() != "bearer" or not given:
            return problem(401, "unauthorized", "this service needs a bearer token: send the header "
                           "'Authorization: Bearer <token>'", instance=scope.get("path"), headers=hdr)
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return problem(401, "unauthorized", "the bearer token is wrong", instance=scope.get("path"),
                           headers={"WWW-Authenticate": 'Bearer realm="lifecircle", error="invalid_token"'})
        return None

    def _check_media_type(self, scope: dict[str, Any]) -> Response | None:
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return None
        ctype = ""
        for k, v in scope.get("headers", []):
            if k == b"content-type":
                ctype = v.decode("latin-1")
                break
        sub = ctype.partition(";")[0].strip().lower().partition("/")[2]
        if sub == "json" or sub.endswith("+json"):
            return None
        return problem(415, "unsupported_media_type", f"send the body as JSON with the header "
                       f"'Content-Type: application/json' (got {ctype or 'no Content-Type'!r})",
                       instance=scope.get("path"))

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> bytes | Response:
        limit = self.max_body
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    return problem(400, "bad_content_length", "Content-Length is not a number",
                                   instance=scope.get("path"))
                if declared > limit:
                    return problem(413, "body_too_large", f"request body has {declared:,} bytes; this "
                                   f"service accepts at most {limit:,}", instance=scope.get("path"))
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                return problem(413, "body_too_large", f"request body exceeds {limit:,} bytes, the most "
                               "this service accepts", instance=scope.get("path"))
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(chunks)


# -- the app -----------------------------------------------------------------------------------

def _state(request: Request) -> ServiceState:
    return request.app.state.lifecircle  # type: ignore[no-any-return]


async def _offload(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a worker thread under the concurrency limit, with the timeout."""
    state = _state(request)
    try:
        with anyio.fail_after(state.limits.timeout_s):
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs),
                                                  abandon_on_cancel=True,
                                                  limiter=request.app.state.limiter)
    except TimeoutError:
        raise ProblemError(503, "timeout", f"the computation took longer than {state.limits.timeout_s:g} s; "
                           "send fewer features or smaller budgets", headers={"Retry-After": "5"}) from None


def _check_tiers(state: ServiceState, tiers: Sequence[str] | None, param: str = "tier") -> list[str]:
    keys = state.inputs.standard.keys
    out = []
    for t in tiers or ():
        key = state.inputs.standard.resolve_tier(t)
        if key is None:
            raise ProblemError(422, "unknown_tier", f"unknown tier {t!r} in {param}; known tiers: "
                               f"{', '.join(keys)}", errors=[{"parameter": param, "detail": f"unknown tier {t!r}"}])
        out.append(key)
    return out


def _collection_coords(fc: PointCollection, limits: Limits, what: str) -> tuple[np.ndarray, list[Any]]:
    n = len(fc.features)
    if n > limits.max_features:
        raise ProblemError(413, "too_many_features", f"{what} has {n:,} features; at most "
                           f"{limits.max_features:,} per request (split the request)")
    coords = np.array([f.geometry.coordinates for f in fc.features], dtype=float).reshape(n, 2)
    return coords, [f.id for f in fc.features]


def _module(name: str) -> Any:
    """An optional lifecircle module, or None if this installation lacks it."""
    import importlib

    try:
        return importlib.import_module(f"lifecircle.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"lifecircle.{name}":
            return None
        raise


def create_app(state: ServiceState) -> FastAPI:
    """The FastAPI application serving ``state`` (read-only; nothing mutable is shared).

    Parameters
    ----------
    state : ServiceState
        From :func:`build_state` or :func:`load_state`.
    """
    inputs = state.inputs
    title = inputs.title
    app = FastAPI(
        title="lifecircle planning service",
        version=__version__,
        description=(f"15-minute community living circle (15分钟社区生活圈) analysis of **{title}**"
                     + (" — SYNTHETIC demonstration data (合成示范数据)" if inputs.synthetic else "")
                     + ". Coordinates in requests are lon/lat degrees in the `crs` given "
                     "(wgs84, cgcs2000, gcj02 for Amap/Tencent, bd09 for Baidu). Errors are RFC 9457 "
                     "problem details (application/problem+json)."),
        docs_url="/docs", redoc_url=None,
    )
    app.state.lifecircle = state
    app.state.limiter = anyio.CapacityLimiter(state.limits.max_concurrent)
    std = inputs.standard
    unit_labels = _unit_labels(state.run)

    @app.exception_handler(ProblemError)
    async def _on_problem(request: Request, exc: ProblemError) -> Response:
        return problem(exc.status, exc.code, exc.detail, title=exc.title, instance=request.url.path,
                       errors=exc.errors, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> Response:
        return _validation_problem(exc, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.url.path}; see /docs or /openapi.json"
        return problem(exc.status_code, code, detail, instance=request.url.path,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(LifecircleError)
    async def _on_lifecircle(request: Request, exc: LifecircleError) -> Response:
        return problem(422, "invalid_input", str(exc).partition("\n")[0], instance=request.url.path)

    @app.exception_handler(Exception)
    async def _on_error(request: Request, exc: Exception) -> Response:
        logger.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal_error", "the server failed to answer this request; the error is "
                       "in the server log", instance=request.url.path)

    @app.get("/health", response_model=HealthOut, response_class=FastJSONResponse,
             responses=_responses(), tags=["service"], summary="Readiness and counts")
    async def health(request: Request) -> Any:
        s = _state(request)
        res = s.result
        return FastJSONResponse({
            "status": "ok", "ready": True, "version": __version__,
            "scenario": s.inputs.scenario.name if s.inputs.scenario else None,
            "synthetic": s.inputs.synthetic, "standard": s.inputs.standard.name, "crs": s.inputs.crs,
            "counts": {"facilities": len(res.facilities), "residents": len(res.residents),
                       "population": float(res.population_total),
                       "rejected_rows": len(s.inputs.rejects())},
            "networks": {m: {"nodes": int(n.n_nodes), "edges": int(n.n_edges)}
                         for m, n in s.inputs.networks.items()},
            "units": list(s.unit_tables), "layers": layer_names(s), "load_s": round(s.load_s, 3),
        })

    @app.get("/standard", response_model=StandardOut, response_class=FastJSONResponse,
             responses=_responses(), tags=["service"], summary="Tiers and their thresholds")
    async def standard(request: Request) -> Any:
        return FastJSONResponse(_state(request).inputs.standard.to_dict())

    @app.get("/coverage/summary", response_model=SummaryOut, response_class=FastJSONResponse,
             responses=_responses(), tags=["coverage"],
             summary="Share of people covered per tier (the scenario's summary.json)")
    async def coverage_summary(request: Request) -> Any:
        return FastJSONResponse(_state(request).run.summary())

    unit_keys = list(state.unit_tables)

    @app.get("/coverage/units", response_model=UnitsOut, response_class=FastJSONResponse,
             responses=_responses(_P404, _P422), tags=["coverage"],
             summary="Coverage (达标率) per admin unit")
    async def coverage_units(
        request: Request,
        unit: Annotated[str, Query(description=f"unit layer: {', '.join(unit_keys) or 'none loaded'}",
                                   examples=unit_keys[:1] or ["community"], max_length=100,
                                   json_schema_extra={"enum": unit_keys} if unit_keys else None)],
    ) -> Any:
        s = _state(request)
        if unit not in s.unit_tables:
            raise ProblemError(404, "unknown_unit", f"unknown unit layer {unit!r}; this scenario has "
                               f"{', '.join(s.unit_tables) or 'no unit layers'}")
        table = s.unit_tables[unit]
        zh, en = unit_labels.get(unit, (unit, unit))
        return FastJSONResponse({"unit": unit, "label_zh": zh, "label_en": en,
                                 "columns": list(table.columns), "rows": table.to_dict("records")})

    @app.post("/distances", response_model=DistancesOut, response_class=GeoJSONResponse,
              responses=_responses(_P400, _P413, _P415, _P422, _P503), tags=["analysis"],
              summary="Distance from each point to the nearest facility of each tier")
    async def distances(
        request: Request,
        body: Annotated[PointCollection, Body(openapi_examples=_DISTANCES_EXAMPLES)],
        crs: Annotated[CrsName, Query(description="coordinate system of the points (and the answer)")] = "wgs84",
        tier: Annotated[list[str] | None, Query(description=f"tiers to answer (default all): "
                                                f"{', '.join(std.keys)}", max_length=20)] = None,
    ) -> Any:
        s = _state(request)
        keys = _check_tiers(s, tier)
        coords, ids = _collection_coords(body, s.limits, "the FeatureCollection")
        data = await _offload(request, distances_geojson, s, coords, ids, crs=crs, tiers=keys or None)
        return GeoJSONResponse(data)

    @app.post("/service-areas", response_class=GeoJSONResponse,
              responses=_responses(_P400, _P404, _P413, _P415, _P422, _P501, _P503)
              | {200: {"description": "service-area polygons", "content": {GEOJSON: {"schema": {
                  "type": "object", "required": ["type", "features"],
                  "properties": {"type": {"const": "FeatureCollection"},
                                 "features": {"type": "array", "items": {"type": "object"}}}}}}}},
              tags=["analysis"], summary="Service-area polygons of facilities or new points")
    async def service_areas(
        request: Request,
        body: Annotated[ServiceAreasIn, Body(openapi_examples=_SERVICE_AREA_EXAMPLES)],
        crs: Annotated[CrsName, Query(description="coordinate system of the points and the answer")] = "wgs84",
    ) -> Any:
        s = _state(request)
        plan = _service_area_plan(s, body)
        mod = _module("service_areas")
        if mod is None:
            raise ProblemError(501, "not_implemented", "service areas are not available in this "
                               "installation (lifecircle.service_areas is missing)")
        text = await _offload(request, service_areas_geojson, s, plan, crs=crs)
        return Response(text.encode("utf-8"), media_type=GEOJSON)

    @app.post("/score", response_model=ScoreOut, response_class=FastJSONResponse,
              responses=_responses(_P400, _P413, _P415, _P422, _P501, _P503), tags=["analysis"],
              summary="Rank candidate sites for a tier by the people they would newly cover")
    async def score(
        request: Request,
        body: Annotated[ScoreIn, Body(openapi_examples=_SCORE_EXAMPLES)],
        crs: Annotated[CrsName, Query(description="coordinate system of the candidates")] = "wgs84",
    ) -> Any:
        s = _state(request)
        key = _check_tiers(s, [body.tier], "tier")[0]
        if body.k is not None and body.k > s.limits.max_k:
            raise ProblemError(422, "k_too_large", f"k={body.k} exceeds the limit of {s.limits.max_k}")
        coords, _ = _collection_coords(body.candidates, s.limits, "candidates")
        if len(coords) == 0:
            raise ProblemError(422, "no_candidates", "candidates has no features")
        ids, names = _ids_and_names(body.candidates, "C", "candidates")
        res = s.result.residents
        if body.weight != "population" and (body.weight not in res.columns or res[body.weight].isna().all()):
            raise ProblemError(422, "unknown_weight", f"weight {body.weight!r}: the residents have no "
                               f"{body.weight} numbers; use population")
        if _module("siting") is None:
            raise ProblemError(501, "not_implemented", "site scoring is not available in this "
                               "installation (lifecircle.siting is missing)")
        data = await _offload(request, score_candidates, s, coords, ids, names, tier=key, k=body.k,
                              weight=body.weight, crs=crs)
        return FastJSONResponse(data)

    layers = layer_names(state)

    @app.get("/layers/{layer}", tags=["layers"], summary="Export one result layer",
             responses=_responses(_P404, _P422, _P503) | {200: {
                 "description": "the layer as GeoJSON or CSV",
                 "content": {GEOJSON: {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}}})
    async def get_layer(
        request: Request,
        layer: Annotated[str, PathParam(description=f"one of {', '.join(layers)}", max_length=100,
                                        json_schema_extra={"enum": layers} if layers else None)],
        format: Annotated[Literal["geojson", "csv"], Query(description="file format")] = "geojson",
        crs: Annotated[LayerCrs, Query(description="coordinate system of the output (cgcs2000-gk: the "
                                       "3-degree Gauss-Kruger zone of the data, metres)")] = "wgs84",
    ) -> Any:
        s = _state(request)
        if layer not in layer_names(s):
            raise ProblemError(404, "unknown_layer", f"unknown layer {layer!r}; layers: "
                               f"{', '.join(layer_names(s))}")
        content, media, name = await _offload(request, export_layer, s, layer, fmt=format, crs=crs)
        return Response(content, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/map", response_class=HTMLResponse, tags=["layers"], summary="The offline HTML coverage map",
             responses=_responses(_P422, _P501, _P503))
    async def get_map(
        request: Request,
        lang: Annotated[Literal["zh", "en"], Query(description="language of the labels")] = "zh",
    ) -> Any:
        s = _state(request)
        if _module("maps") is None:
            raise ProblemError(501, "not_implemented", "maps are not available in this installation "
                               "(lifecircle.maps is missing)")
        html = await _offload(request, map_html, s, lang=lang)
        return HTMLResponse(html)

    # outermost last: access log, then CORS (so that 401/413 answers carry CORS headers), then guard
    app.add_middleware(GuardMiddleware, state=state)
    if state.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(state.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(AccessLogMiddleware)
    return app


# -- service areas and scoring (wired to lifecircle.service_areas / lifecircle.siting) -----

@dataclass(frozen=True)
class ServiceAreaPlan:
    """A validated ``/service-areas`` request."""

    facility_rows: np.ndarray | None
    coords: np.ndarray | None
    ids: list[str]
    names: list[str]
    tier: str | None
    budgets_min: tuple[float, ...]
    budgets_m: tuple[float, ...]
    dissolve: str
    rings: bool = False


def _service_area_plan(state: ServiceState, body: ServiceAreasIn) -> ServiceAreaPlan:
    lim = state.limits
    if (body.facility_ids is None) == (body.points is None):
        raise ProblemError(422, "facilities_or_points", "give either facility_ids or points (not both)")
    bm = tuple(body.budgets_min or ())
    bd = tuple(body.budgets_m or ())
    if bm and bd:
        raise ProblemError(422, "budgets_min_or_m", "give budgets_min or budgets_m, not both")
    if len(bm) + len(bd) > lim.max_budgets:
        raise ProblemError(422, "too_many_budgets", f"{len(bm) + len(bd)} budgets; at most {lim.max_budgets}")
    for b in bm:
        if b > lim.max_budget_min:
            raise ProblemError(422, "budget_too_large", f"budget {b:g} min exceeds the limit of "
                               f"{lim.max_budget_min:g} min", errors=[{"pointer": "#/budgets_min",
                                                                      "detail": f"{b:g} > {lim.max_budget_min:g}"}])
    for b in bd:
        if b > lim.max_budget_m:
            raise ProblemError(422, "budget_too_large", f"budget {b:g} m exceeds the limit of "
                               f"{lim.max_budget_m:g} m", errors=[{"pointer": "#/budgets_m",
                                                                  "detail": f"{b:g} > {lim.max_budget_m:g}"}])
    tier = _check_tiers(state, [body.tier], "tier")[0] if body.tier is not None else None
    if body.facility_ids is not None:
        ids = list(body.facility_ids)
        if len(ids) > lim.max_features:
            raise ProblemError(413, "too_many_features", f"{len(ids):,} facility ids; at most "
                               f"{lim.max_features:,} per request")
        if not ids:
            raise ProblemError(422, "no_facilities", "facility_ids is empty")
        fac_ids = state.result.facilities["id"].astype(str).to_numpy()
        pos = pd.Index(fac_ids).get_indexer(ids)
        missing = [i for i, p in zip(ids, pos, strict=True) if p < 0]
        if missing:
            raise ProblemError(404, "unknown_facility", f"unknown facility id(s): "
                               f"{', '.join(map(repr, missing[:10]))}" + (" …" if len(missing) > 10 else ""))
        return ServiceAreaPlan(pos.astype(np.int64), None, ids, [], tier, bm, bd, body.dissolve, body.rings)
    assert body.points is not None
    if tier is None:
        raise ProblemError(422, "tier_required", "points need a tier (their travel mode and default budget)")
    coords, _ = _collection_coords(body.points, lim, "points")
    if len(coords) == 0:
        raise ProblemError(422, "no_points", "points has no features")
    ids, names = _ids_and_names(body.points, "P", "points")
    return ServiceAreaPlan(None, coords, ids, names, tier, bm, bd, body.dissolve, body.rings)


def _ids_and_names(fc: PointCollection, prefix: str, what: str) -> tuple[list[str], list[str]]:
    """Feature ids as strings (``{prefix}{n}`` when missing; must be unique) and names."""
    ids = [str(f.id) if f.id is not None else f"{prefix}{i + 1}" for i, f in enumerate(fc.features)]
    seen: dict[str, int] = {}
    for i, fid in enumerate(ids):
        if fid in seen:
            raise ProblemError(422, "duplicate_id", f"{what}: features[{i}] repeats the id {fid!r} of "
                               f"features[{seen[fid]}]; ids must be unique",
                               errors=[{"pointer": f"#/{what}/features/{i}/id", "feature": i,
                                        "detail": f"duplicate id {fid!r}"}])
        seen[fid] = i
    names = [str((f.properties or {}).get("name") or "") for f in fc.features]
    return ids, names


def service_areas_geojson(state: ServiceState, plan: "ServiceAreaPlan", *, crs: str = "wgs84") -> str:
    """Service-area polygons as GeoJSON text (:func:`lifecircle.service_areas.compute_service_areas`).

    Loaded facilities are chosen by id; new points become facilities of ``plan.tier``.
    Coordinates of the answer are in ``crs``.
    """
    from lifecircle.export import layer_geojson

    if plan.facility_rows is not None:
        fac = state.result.facilities.iloc[plan.facility_rows][["id", "name", "tier", "lon", "lat"]]
        fac = fac.reset_index(drop=True)
    else:
        assert plan.coords is not None
        lon, lat = to_wgs84(plan.coords[:, 0], plan.coords[:, 1], crs)
        fac = pd.DataFrame({"id": plan.ids, "name": plan.names, "tier": plan.tier, "lon": lon, "lat": lat})
    gdf = _service_areas_frame(state, dissolve=plan.dissolve, facilities=fac,
                               tiers=[plan.tier] if plan.tier else None,
                               minutes=plan.budgets_min or None, metres=plan.budgets_m or None,
                               rings=plan.rings)
    return str(layer_geojson(gdf, crs=crs, name="service_areas"))


def score_candidates(state: ServiceState, coords: np.ndarray, ids: Sequence[str], names: Sequence[str], *,
                     tier: str, k: int | None, weight: str = "population", crs: str = "wgs84") -> dict[str, Any]:
    """Rank candidate sites for ``tier`` (:func:`lifecircle.siting.score_sites`).

    Returns
    -------
    dict
        ``tier``, ``k``, ``weight``, ``coverage_before``/``coverage_after`` (weighted coverage
        of the tier without/with the ``k`` picks), ``picks`` and ``candidates`` (ranked;
        ``lon``/``lat`` in ``crs``).
    """
    from lifecircle.siting import score_sites

    lon, lat = to_wgs84(coords[:, 0], coords[:, 1], crs)
    cand = pd.DataFrame({"id": list(ids), "name": list(names), "lon": lon, "lat": lat})
    t = state.inputs.standard.tier(tier)
    out = score_sites(state.result, state.inputs.networks[t.mode], cand, tier, weight=weight,
                      select_k=int(k or 0), units=state.inputs.units)
    table = out.candidates.drop(columns=[c for c in ("x", "y") if c in out.candidates.columns])
    if crs != "wgs84" and len(table):
        table = table.copy()
        table["lon"], table["lat"] = from_wgs84(table["lon"].to_numpy(float), table["lat"].to_numpy(float), crs)
    return {"tier": tier, "k": k, "weight": weight, "crs_name": crs,
            "coverage_before": out.before, "coverage_after": out.after,
            "picks": out.picks.to_dict("records"), "candidates": table.to_dict("records")}


# -- running ----------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a bearer token.

    Raises
    ------
    InputError
        If ``host`` is not a loopback address and no token is set.
    """
    if not is_loopback(host) and not token:
        raise InputError(
            f"refusing to listen on {host} without a token: anyone on the network could use the "
            f"service. Set the environment variable {TOKEN_ENV} (or pass --token), or bind to "
            "127.0.0.1")


def create_app_from_scenario(
    scenario: str | Path | None = None,
    *,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
    **load_kwargs: Any,
) -> FastAPI:
    """Load a scenario and return the app serving it (see :func:`load_state`)."""
    return create_app(load_state(scenario, limits=limits, token=token, cors_origins=cors_origins,
                                 **load_kwargs))


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes; settings from :data:`CONFIG_ENV`."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise InputError(f"{CONFIG_ENV} is not set; start the service with `lifecircle serve`")
    cfg = json.loads(raw)
    limits = Limits(**cfg.pop("limits", {}))
    token = os.environ.get(TOKEN_ENV) or None
    cors = tuple(cfg.pop("cors_origins", ()))
    level = cfg.pop("log_level", "INFO")
    cfg["units"] = tuple(cfg.get("units") or ())
    root = logging.getLogger("lifecircle")
    if not root.handlers:  # a fresh worker process: log like the command line does
        import sys

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        root.propagate = False
        access_logger.setLevel(level)
    return create_app_from_scenario(limits=limits, token=token, cors_origins=cors, **cfg)


def serve(
    app_or_config: FastAPI | dict[str, Any],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    token: str | None = None,
    log_level: str = "warning",
) -> None:
    """Run uvicorn (blocks until stopped).

    Parameters
    ----------
    app_or_config : FastAPI or dict
        An app (one process), or, for ``workers > 1``, the keyword arguments of
        :func:`create_app_from_scenario` (plus ``limits`` and ``cors_origins`` as plain data),
        from which each worker process builds its own app.
    """
    import uvicorn

    check_bind(host, token)
    if workers > 1:
        if not isinstance(app_or_config, dict):
            raise InputError("several workers need the settings, not an app object")
        os.environ[CONFIG_ENV] = json.dumps(app_or_config)
        if token:
            os.environ[TOKEN_ENV] = token
        uvicorn.run("lifecircle.service:app_from_env", factory=True, host=host, port=port,
                    workers=workers, access_log=False, log_level=log_level)
        return
    if isinstance(app_or_config, dict):
        raise InputError("give an app to serve in one process")
    uvicorn.run(app_or_config, host=host, port=port, access_log=False, log_level=log_level)


__all__ = ["Limits", "ServiceState", "TierLookup", "build_state", "check_bind",
           "create_app", "create_app_from_scenario", "is_loopback", "load_state", "nearest_from_lookup",
           "precompute_tier_lookup", "query_distances", "serve", "unit_coverage_table"]
