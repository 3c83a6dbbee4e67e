"""What the service computes per request, as plain functions on a :class:`ServiceState`.

Each function takes validated plain data (numpy arrays, strings) and returns plain data
(dicts ready for JSON, GeoJSON text, bytes); the HTTP layer (:mod:`lifecircle.service.routes`)
runs them in worker threads. Distances are read off the precomputed lookups; the other answers
call the library: layers from :mod:`lifecircle.export`, polygons from
:func:`lifecircle.service_areas.compute_service_areas`, candidate ranking from
:func:`lifecircle.siting.score_sites` and the offline map from :mod:`lifecircle.maps`.

This module does not import FastAPI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lifecircle._files import csv_frame
from lifecircle.coords import from_wgs84, to_wgs84
from lifecircle.export import (
    ExportSources,
    build_layers,
    layer_csv_frame,
    layer_geojson,
    resolve_output_crs,
)
from lifecircle.maps import build_map, render_map_html
from lifecircle.routing import Positions
from lifecircle.service.state import ServiceState, nearest_from_lookup
from lifecircle.service_areas import compute_service_areas
from lifecircle.siting import score_sites
from lifecircle.snapping import snap_to_network

#: Coordinate systems a request may use for lon/lat.
REQUEST_CRS: Final = ("wgs84", "cgcs2000", "gcj02", "bd09")
CrsName = Literal["wgs84", "cgcs2000", "gcj02", "bd09"]
#: Layers of ``GET /layers/{layer}`` (the names of ``lifecircle export``).
LAYERS: Final = (
    "facilities",
    "residents",
    "units",
    "network",
    "gaps",
    "service_areas",
    "catchments",
    "rejects",
)
#: Output coordinate systems of ``GET /layers/{layer}``.
LAYER_CRS: Final = ("wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09")
LayerCrs = Literal["wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09"]
#: Media type of GeoJSON answers.
GEOJSON: Final = "application/geo+json"


# -- distances ------------------------------------------------------------------------------


def _finite(v: float, digits: int) -> float | None:
    return round(float(v), digits) if math.isfinite(v) else None


def query_distances(
    state: ServiceState,
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    *,
    tiers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Distances from WGS84 query points to the nearest facility of each tier.

    Parameters
    ----------
    state : ServiceState
    lon, lat : ndarray
        WGS84 degrees.
    tiers : sequence of str, optional
        Tier keys (default all).

    Returns
    -------
    dict
        Arrays per point: ``on_network``, ``snap_m`` (metres from the point to the walking
        network, or the first network) and under ``tiers``, per tier key, ``distance_m``
        (network metres, ``inf`` if unreachable), ``minutes``, ``nearest`` (facility row, -1 if
        none), ``covered`` and the scalar ``threshold_m``.
    """
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
    per_tier: dict[str, dict[str, Any]] = {}
    for key in keys:
        lk = state.lookups[key]
        d, s = nearest_from_lookup(
            lk.graph, lk.sources, lk.node_distance_m, lk.node_source, positions[lk.mode]
        )
        nearest = np.where(s >= 0, lk.facility_index[np.maximum(s, 0)], -1)
        per_tier[key] = {
            "distance_m": d,
            "minutes": d / lk.speed_m_per_min,
            "nearest": nearest,
            "covered": d <= lk.threshold_m,
            "threshold_m": lk.threshold_m,
        }
    return {"on_network": on_net, "snap_m": snap_m, "tiers": per_tier}


def distances_geojson(
    state: ServiceState,
    coords: NDArray[np.float64],
    ids: Sequence[str | int | None],
    *,
    crs: str = "wgs84",
    tiers: Sequence[str] | None = None,
    flat: bool = True,
) -> dict[str, Any]:
    """``POST /distances`` as plain data: a GeoJSON FeatureCollection, one feature per point.

    Parameters
    ----------
    state : ServiceState
    coords : ndarray, shape (n, 2)
        lon/lat in ``crs`` (degrees).
    ids : sequence
        Feature ids (``None``: the index is used).
    crs : {"wgs84", "cgcs2000", "gcj02", "bd09"}
    tiers : sequence of str, optional
        Tier keys (default all).
    flat : bool, default True
        Flat properties, named as in the ``residents`` layer of the GIS export, so that web
        maps (MapLibre, Leaflet) can style them directly: ``index``, ``snap_m``,
        ``off_network``, per tier ``{tier}_distance_m``, ``{tier}_minutes``,
        ``{tier}_threshold_m``, ``{tier}_nearest_id``, ``{tier}_nearest_name``,
        ``{tier}_covered``, then ``all_covered``. False: the nested form (``on_network``,
        ``tiers: {key: {distance_m, …}}``).
    """
    lon, lat = (
        to_wgs84(coords[:, 0], coords[:, 1], crs) if len(coords) else (np.zeros(0), np.zeros(0))
    )
    q = query_distances(state, lon, lat, tiers=tiers)
    fac = state.result.facilities
    fac_id = fac["id"].astype(str).to_numpy()
    fac_name = fac["name"].astype(str).to_numpy()
    tier_rows = {}
    for key, t in q["tiers"].items():
        tier_rows[key] = list(
            zip(
                t["distance_m"].tolist(),
                t["minutes"].tolist(),
                t["nearest"].tolist(),
                t["covered"].tolist(),
                strict=True,
            )
        )
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
                "distance_m": _finite(d, 2),
                "minutes": _finite(m, 2),
                "threshold_m": thresholds[key],
                "nearest_id": str(fac_id[f]) if f >= 0 else None,
                "nearest_name": str(fac_name[f]) if f >= 0 else None,
                "covered": bool(c),
            }
        fid = ids[i] if ids[i] is not None else i
        if flat:
            props: dict[str, Any] = {
                "index": i,
                "snap_m": _finite(snap[i], 2),
                "off_network": not on_net[i],
            }
            for key, v in per_tier.items():
                props.update({f"{key}_{k}": x for k, x in v.items()})
            props["all_covered"] = all_cov
        else:
            props = {
                "index": i,
                "on_network": bool(on_net[i]),
                "snap_m": _finite(snap[i], 2),
                "all_covered": all_cov,
                "tiers": per_tier,
            }
        features.append(
            {
                "type": "Feature",
                "id": fid,
                "geometry": {"type": "Point", "coordinates": coords_l[i]},
                "properties": props,
            }
        )
    return {
        "type": "FeatureCollection",
        "crs_name": crs,
        "standard": state.inputs.standard.name,
        "features": features,
    }


# -- OpenAPI examples from the loaded scenario -----------------------------------------------


@dataclass(frozen=True)
class ExampleData:
    """Real ids and positions of the loaded scenario for the OpenAPI examples.

    Attributes
    ----------
    points : list of (lon, lat)
        Resident positions (WGS84): the first covered for every tier and the first not (when
        there are such residents).
    facility_id : str
        The first loaded facility.
    tier : str
        The lowest tier (the one new sites are most often proposed for).
    candidates : list of (lon, lat)
        Up to three residents outside that tier's standard, most people first.
    """

    points: list[tuple[float, float]]
    facility_id: str
    tier: str
    candidates: list[tuple[float, float]]


def example_data(state: ServiceState) -> ExampleData:
    """Positions and ids of the loaded scenario for the OpenAPI "Try it out" examples."""
    res = state.result.residents
    fac = state.result.facilities
    tier = state.inputs.standard.keys[-1]
    lonlat = res[["lon", "lat"]].to_numpy(float)
    covered = res["all_covered"].to_numpy(bool)
    pick = [int(np.flatnonzero(m)[0]) for m in (covered, ~covered) if m.any()] or list(
        range(min(2, len(res)))
    )
    if not pick:  # a scenario without residents: the facilities' positions
        lonlat = fac[["lon", "lat"]].to_numpy(float)
        pick = list(range(min(2, len(fac))))
    uncovered = res.loc[~res[f"{tier}_covered"].to_numpy(bool)]
    best = uncovered.sort_values("population", ascending=False, kind="stable").head(3)
    cand = best[["lon", "lat"]].to_numpy(float) if len(best) else lonlat[pick]
    return ExampleData(
        points=[(float(x), float(y)) for x, y in lonlat[pick]],
        facility_id=str(fac["id"].iloc[0]),
        tier=tier,
        candidates=[(float(x), float(y)) for x, y in cand],
    )


# -- layers and the map ---------------------------------------------------------------------


def layer_names(state: ServiceState) -> list[str]:
    """Layers this service can export (``units`` only when unit polygons were loaded)."""
    if state.export_template is None:
        return []
    return [name for name in LAYERS if name != "units" or state.inputs.units]


def export_sources(state: ServiceState) -> ExportSources:
    """A per-request copy of the export sources (its cache dict is the request's own)."""
    tpl = state.export_template
    if tpl is None:
        raise ValueError("this service state has no export sources")
    return dataclasses.replace(tpl, cache=dict(tpl.cache))


def service_areas_frame(
    state: ServiceState,
    *,
    dissolve: str,
    facilities: pd.DataFrame | None = None,
    tiers: Sequence[str] | None = None,
    minutes: Sequence[float] | None = None,
    metres: Sequence[float] | None = None,
    rings: bool = False,
) -> gpd.GeoDataFrame:
    """Service areas of the loaded (or given) facilities as a WGS84 GeoDataFrame.

    Parameters
    ----------
    state : ServiceState
    dissolve : {"none", "tier", "catchment"}
    facilities : DataFrame, optional
        ``id``, ``name``, ``tier``, ``lon``, ``lat`` (WGS84); default the loaded facilities.
    tiers, minutes, metres, rings
        As for :func:`lifecircle.service_areas.compute_service_areas`.
    """
    res = state.result
    given = facilities is not None
    fac: pd.DataFrame = facilities if facilities is not None else res.facilities
    areas = compute_service_areas(
        state.inputs.networks,
        fac,
        state.inputs.standard,
        residents=res.residents,
        tiers=tiers,
        minutes=minutes,
        metres=metres,
        dissolve=dissolve,
        rings=rings,
        max_snap_m=state.inputs.max_snap_m,
        facility_located=None if given else res.facility_located,
        resident_located=res.resident_located,
    )
    return areas.to_wgs84()


def export_layer(state: ServiceState, layer: str, *, fmt: str, crs: str) -> tuple[bytes, str, str]:
    """One result layer as bytes: ``(content, media type, file name)``.

    Built by :mod:`lifecircle.export` (the same layers and columns as ``lifecircle export``),
    in the output CRS ``crs``; ``service_areas``/``catchments`` are computed for every loaded
    facility at its tier's standard.

    Parameters
    ----------
    state : ServiceState
    layer : str
        One of :func:`layer_names`.
    fmt : {"geojson", "csv"}
    crs : str
        An output CRS name (:data:`LAYER_CRS`).
    """
    src = export_sources(state)
    if layer == "service_areas":
        src.service_areas = service_areas_frame(state, dissolve="none")
    elif layer == "catchments":
        src.catchments = service_areas_frame(state, dissolve="catchment")
    gdf = build_layers(src, [layer])[layer]
    b = np.asarray(gdf.total_bounds, float) if len(gdf) else np.full(4, np.nan)
    lon_range = (float(b[0]), float(b[2])) if np.all(np.isfinite(b)) else None
    ocrs = resolve_output_crs(crs, lon_range=lon_range)
    tag = f"_{ocrs.tag}" if ocrs.tag else ""
    if fmt == "csv":
        geoms = ocrs.transform_geometries(np.asarray(gdf.geometry.values))
        out = gpd.GeoDataFrame(pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), geometry=geoms)
        frame = layer_csv_frame(out, ocrs, ocrs.default_precision)
        frame = frame.replace([np.inf, -np.inf], np.nan)
        # with a byte-order mark, like every CSV lifecircle writes: Excel then reads the Chinese
        content = csv_frame(frame).to_csv(index=False, lineterminator="\n").encode("utf-8-sig")
        return content, "text/csv; charset=utf-8", f"{layer}{tag}.csv"
    text = layer_geojson(gdf, crs=ocrs, name=layer)
    return text.encode("utf-8"), GEOJSON, f"{layer}{tag}.geojson"


def map_html(state: ServiceState, *, lang: str = "zh") -> str:
    """The offline HTML coverage map (:mod:`lifecircle.maps`), built in memory."""
    m = build_map(state.run, offline=True, lang=lang)
    return str(render_map_html(m, offline=True))


# -- service areas and scoring --------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAreaPlan:
    """A validated ``/service-areas`` request.

    Attributes
    ----------
    facility_rows : ndarray of int64 or None
        Rows of the loaded facilities (or None for new points).
    coords : ndarray, shape (n, 2), or None
        New points, lon/lat in the request's CRS.
    ids, names : list of str
        Ids and names of the new points.
    tier : str or None
        Tier key (required for new points).
    budgets_min, budgets_m : tuple of float
        Budgets in minutes or metres (empty: the tier's standard).
    dissolve : {"none", "tier", "catchment"}
    rings : bool
    """

    facility_rows: NDArray[np.int64] | None
    coords: NDArray[np.float64] | None
    ids: list[str]
    names: list[str]
    tier: str | None
    budgets_min: tuple[float, ...]
    budgets_m: tuple[float, ...]
    dissolve: str
    rings: bool = False


def service_areas_geojson(state: ServiceState, plan: ServiceAreaPlan, *, crs: str = "wgs84") -> str:
    """Service-area polygons as GeoJSON text.

    See :func:`lifecircle.service_areas.compute_service_areas`.

    Loaded facilities are chosen by id; new points become facilities of ``plan.tier``.
    Coordinates of the answer are in ``crs``.
    """
    if plan.facility_rows is not None:
        fac = state.result.facilities.iloc[plan.facility_rows][["id", "name", "tier", "lon", "lat"]]
        fac = fac.reset_index(drop=True)
    else:
        if plan.coords is None:
            raise ValueError("a service-area plan needs facility rows or coordinates")
        lon, lat = to_wgs84(plan.coords[:, 0], plan.coords[:, 1], crs)
        fac = pd.DataFrame(
            {"id": plan.ids, "name": plan.names, "tier": plan.tier, "lon": lon, "lat": lat}
        )
    gdf = service_areas_frame(
        state,
        dissolve=plan.dissolve,
        facilities=fac,
        tiers=[plan.tier] if plan.tier else None,
        minutes=plan.budgets_min or None,
        metres=plan.budgets_m or None,
        rings=plan.rings,
    )
    return str(layer_geojson(gdf, crs=crs, name="service_areas"))


def score_candidates(
    state: ServiceState,
    coords: NDArray[np.float64],
    ids: Sequence[str],
    names: Sequence[str],
    *,
    tier: str,
    k: int | None,
    weight: str = "population",
    crs: str = "wgs84",
) -> dict[str, Any]:
    """Rank candidate sites for ``tier`` (:func:`lifecircle.siting.score_sites`).

    Parameters
    ----------
    state : ServiceState
    coords : ndarray, shape (n, 2)
        Candidate lon/lat in ``crs`` (degrees).
    ids, names : sequence of str
    tier : str
        Tier key.
    k : int or None
        Sites to pick greedily (None: score only).
    weight : {"population", "elderly", "children"}
    crs : {"wgs84", "cgcs2000", "gcj02", "bd09"}

    Returns
    -------
    dict
        A GeoJSON FeatureCollection of the ranked candidates (points in ``crs``; properties:
        the ``candidates`` layer columns, ``rank`` first) with the foreign members ``tier``,
        ``k``, ``weight``, ``crs_name``, ``coverage_before``/``coverage_after`` (weighted
        coverage of the tier without/with the ``k`` picks) and ``picks``.
    """
    lon, lat = to_wgs84(coords[:, 0], coords[:, 1], crs)
    cand = pd.DataFrame({"id": list(ids), "name": list(names), "lon": lon, "lat": lat})
    t = state.inputs.standard.tier(tier)
    out = score_sites(
        state.result,
        state.inputs.networks[t.mode],
        cand,
        tier,
        weight=weight,
        select_k=int(k or 0),
        units=state.inputs.units,
    )
    table = out.candidates.drop(columns=[c for c in ("x", "y") if c in out.candidates.columns])
    lon_o, lat_o = table["lon"].to_numpy(float), table["lat"].to_numpy(float)
    if crs != "wgs84" and len(table):
        lon_o, lat_o = from_wgs84(lon_o, lat_o, crs)
    props = table.drop(columns=["lon", "lat"]).replace([np.inf, -np.inf], np.nan)
    props = props.astype(object).where(props.notna(), None)
    id_col = "candidate_id" if "candidate_id" in props.columns else None
    features = [
        {
            "type": "Feature",
            "id": row[id_col] if id_col else i,
            "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
            "properties": row,
        }
        for i, (row, x, y) in enumerate(
            zip(props.to_dict("records"), lon_o.tolist(), lat_o.tolist(), strict=True)
        )
    ]
    return {
        "type": "FeatureCollection",
        "tier": tier,
        "k": k,
        "weight": weight,
        "crs_name": crs,
        "coverage_before": out.before,
        "coverage_after": out.after,
        "picks": out.picks.to_dict("records"),
        "features": features,
    }


__all__ = [
    "GEOJSON",
    "LAYERS",
    "LAYER_CRS",
    "REQUEST_CRS",
    "CrsName",
    "ExampleData",
    "LayerCrs",
    "ServiceAreaPlan",
    "distances_geojson",
    "example_data",
    "export_layer",
    "export_sources",
    "layer_names",
    "map_html",
    "query_distances",
    "score_candidates",
    "service_areas_frame",
    "service_areas_geojson",
]
