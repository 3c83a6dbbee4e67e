"""The endpoints of the HTTP service, one :class:`fastapi.APIRouter` per area.

``service`` (``/health``, ``/standard``), ``coverage`` (``/coverage/summary``,
``/coverage/units``), ``analysis`` (``/distances``, ``/service-areas``, ``/score``) and
``layers`` (``/layers/{layer}``, ``/map``). Handlers validate the request against the loaded
state (tiers, limits, ids), then run the computation of :mod:`lifecircle.service.queries` in a
worker thread (:func:`offload`) under the concurrency limit and the timeout.

The routers are built per state because their OpenAPI documentation lists what the loaded
scenario has (tier keys, unit layers, layers).
"""

# No ``from __future__ import annotations`` here: FastAPI evaluates the handlers' annotations,
# which refer to variables of the router functions (tier keys, unit layers, layers).

import functools
import gzip
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, ParamSpec, TypeVar, cast

import anyio
import anyio.to_thread
import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from numpy.typing import NDArray

from lifecircle._version import __version__
from lifecircle.service.isolate import run_isolated
from lifecircle.service.problems import (
    P400,
    P404,
    P413,
    P415,
    P422,
    P503,
    FastJSONResponse,
    GeoJSONResponse,
    ProblemError,
    responses,
)
from lifecircle.service.queries import (
    GEOJSON,
    CrsName,
    LayerCrs,
    ServiceAreaPlan,
    distances_geojson,
    example_data,
    export_layer,
    layer_names,
    map_html,
    score_candidates,
    service_areas_geojson,
)
from lifecircle.service.schemas import (
    DistancesOut,
    HealthOut,
    PointCollection,
    ScoreIn,
    ScoreOut,
    ServiceAreasIn,
    StandardOut,
    SummaryOut,
    UnitsOut,
    distances_examples,
    flat_distances_model,
    score_examples,
    service_area_examples,
)
from lifecircle.service.state import Limits, ServiceState

#: Layers computed once per scenario and then served from memory (``/layers/{layer}``).
HEAVY_LAYERS: Final = ("service_areas", "catchments", "gaps")

P = ParamSpec("P")
T = TypeVar("T")


# -- helpers shared by the handlers -----------------------------------------------------------


def app_state(request: Request) -> ServiceState:
    """The :class:`ServiceState` of the app answering ``request``."""
    state: ServiceState = request.app.state.lifecircle
    return state


async def offload(request: Request, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a quick, bounded computation (``/distances``) in a worker thread under the
    concurrency limit, with the timeout.

    Raises
    ------
    ProblemError
        503 ``timeout`` when the computation takes longer than :attr:`Limits.timeout_s`.
    """
    state = app_state(request)
    try:
        with anyio.fail_after(state.limits.timeout_s):
            return await anyio.to_thread.run_sync(
                functools.partial(fn, *args, **kwargs),
                abandon_on_cancel=True,
                limiter=request.app.state.limiter,
            )
    except TimeoutError:
        raise _timeout_problem(state) from None


async def offload_heavy(
    request: Request, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run a heavy computation in a child process (:mod:`lifecircle.service.isolate`) under the
    concurrency limit of heavy work (separate from the quick queries', so that heavy requests
    never make ``/distances`` wait): when the timeout is reached the process is stopped before
    the slot is given back, so timed-out work never piles up.

    Raises
    ------
    ProblemError
        503 ``timeout`` when the computation takes longer than :attr:`Limits.timeout_s`.
    """
    state = app_state(request)
    work = functools.partial(fn, *args, **kwargs)
    try:
        return await anyio.to_thread.run_sync(
            functools.partial(run_isolated, work, timeout_s=state.limits.timeout_s),
            abandon_on_cancel=False,  # the slot is held until the child process is gone
            limiter=request.app.state.heavy_limiter,
        )
    except TimeoutError:
        raise _timeout_problem(state) from None


async def cached_heavy(
    request: Request, key: tuple[str, ...], fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """A heavy answer computed once per scenario (the scenario is frozen) and then served from
    memory. Concurrent requests for the same answer wait, without taking a concurrency slot,
    for the one computation (at most :attr:`Limits.timeout_s`)."""
    store: dict[tuple[str, ...], Any] = request.app.state.heavy_answers
    if key in store:
        return cast(T, store[key])
    locks: dict[tuple[str, ...], anyio.Lock] = request.app.state.heavy_locks
    lock = locks.setdefault(key, anyio.Lock())
    state = app_state(request)
    with anyio.move_on_after(state.limits.timeout_s) as scope:
        await lock.acquire()
    if scope.cancelled_caught:
        raise _timeout_problem(state)
    try:
        if key not in store:
            store[key] = await offload_heavy(request, fn, *args, **kwargs)
        return cast(T, store[key])
    finally:
        lock.release()


@dataclass(frozen=True)
class EncodedAnswer:
    """A large answer as bytes, also gzip-compressed (done in the child process, so that the
    service's event loop never spends seconds compressing a layer or the map)."""

    content: bytes
    gzipped: bytes
    media_type: str
    filename: str = ""


def encode_answer(work: Callable[[], tuple[bytes, str, str] | str]) -> EncodedAnswer:
    """Run ``work`` (an exported layer ``(content, media type, file name)``, or an HTML page)
    and encode its answer once."""
    out = work()
    if isinstance(out, str):
        content, media, name = out.encode("utf-8"), "text/html; charset=utf-8", ""
    else:
        content, media, name = out
    return EncodedAnswer(content, gzip.compress(content, compresslevel=6), media, name)


def encoded_response(
    request: Request, enc: EncodedAnswer, headers: dict[str, str] | None = None
) -> Response:
    """``enc`` compressed for clients that accept gzip, else as it is."""
    h = {**(headers or {}), "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        return Response(
            enc.gzipped, media_type=enc.media_type, headers={**h, "Content-Encoding": "gzip"}
        )
    return Response(enc.content, media_type=enc.media_type, headers=h)


def _timeout_problem(state: ServiceState) -> ProblemError:
    return ProblemError(
        503,
        "timeout",
        f"the computation took longer than {state.limits.timeout_s:g} s; "
        "send fewer features or smaller budgets",
        headers={"Retry-After": "5"},
    )


def if_none_match(request: Request) -> set[str]:
    """The entity tags of the request's ``If-None-Match`` header (weak tags compare equal)."""
    raw = request.headers.get("if-none-match", "")
    return {t.strip().removeprefix("W/") for t in raw.split(",") if t.strip()}


def check_tiers(state: ServiceState, tiers: Sequence[str] | None, param: str = "tier") -> list[str]:
    """Tier keys of ``tiers`` (keys or labels); 422 ``unknown_tier`` for any other value."""
    keys = state.inputs.standard.keys
    out = []
    for t in tiers or ():
        key = state.inputs.standard.resolve_tier(t)
        if key is None:
            raise ProblemError(
                422,
                "unknown_tier",
                f"unknown tier {t!r} in {param}; known tiers: {', '.join(keys)}",
                errors=[{"parameter": param, "detail": f"unknown tier {t!r}"}],
            )
        out.append(key)
    return out


def collection_coords(
    fc: PointCollection, limits: Limits, what: str
) -> tuple[NDArray[np.float64], list[str | int | None]]:
    """``(coords (n, 2), ids)`` of a point collection; 413 beyond :attr:`Limits.max_features`."""
    n = len(fc.features)
    if n > limits.max_features:
        raise ProblemError(
            413,
            "too_many_features",
            f"{what} has {n:,} features; at most "
            f"{limits.max_features:,} per request (split the request)",
        )
    coords = np.array([f.geometry.coordinates for f in fc.features], dtype=float).reshape(n, 2)
    return coords, [f.id for f in fc.features]


def ids_and_names(fc: PointCollection, prefix: str, what: str) -> tuple[list[str], list[str]]:
    """Feature ids as strings (``{prefix}{n}`` when missing; must be unique) and names."""
    ids = [str(f.id) if f.id is not None else f"{prefix}{i + 1}" for i, f in enumerate(fc.features)]
    seen: dict[str, int] = {}
    for i, fid in enumerate(ids):
        if fid in seen:
            raise ProblemError(
                422,
                "duplicate_id",
                f"{what}: features[{i}] repeats the id {fid!r} of "
                f"features[{seen[fid]}]; ids must be unique",
                errors=[
                    {
                        "pointer": f"#/{what}/features/{i}/id",
                        "feature": i,
                        "detail": f"duplicate id {fid!r}",
                    }
                ],
            )
        seen[fid] = i
    names = [str((f.properties or {}).get("name") or "") for f in fc.features]
    return ids, names


def service_area_plan(state: ServiceState, body: ServiceAreasIn) -> ServiceAreaPlan:
    """Check a ``/service-areas`` request against the limits and the loaded facilities."""
    lim = state.limits
    if (body.facility_ids is None) == (body.points is None):
        raise ProblemError(
            422, "facilities_or_points", "give either facility_ids or points (not both)"
        )
    bm = tuple(body.budgets_min or ())
    bd = tuple(body.budgets_m or ())
    if bm and bd:
        raise ProblemError(422, "budgets_min_or_m", "give budgets_min or budgets_m, not both")
    if len(bm) + len(bd) > lim.max_budgets:
        raise ProblemError(
            422, "too_many_budgets", f"{len(bm) + len(bd)} budgets; at most {lim.max_budgets}"
        )
    for b in bm:
        if b > lim.max_budget_min:
            raise ProblemError(
                422,
                "budget_too_large",
                f"budget {b:g} min exceeds the limit of {lim.max_budget_min:g} min",
                errors=[{"pointer": "#/budgets_min", "detail": f"{b:g} > {lim.max_budget_min:g}"}],
            )
    for b in bd:
        if b > lim.max_budget_m:
            raise ProblemError(
                422,
                "budget_too_large",
                f"budget {b:g} m exceeds the limit of {lim.max_budget_m:g} m",
                errors=[{"pointer": "#/budgets_m", "detail": f"{b:g} > {lim.max_budget_m:g}"}],
            )
    tier = check_tiers(state, [body.tier], "tier")[0] if body.tier is not None else None
    if body.facility_ids is not None:
        ids = list(body.facility_ids)
        if len(ids) > lim.max_features:
            raise ProblemError(
                413,
                "too_many_features",
                f"{len(ids):,} facility ids; at most {lim.max_features:,} per request",
            )
        if not ids:
            raise ProblemError(422, "no_facilities", "facility_ids is empty")
        fac_ids = state.result.facilities["id"].astype(str).to_numpy()
        pos = pd.Index(fac_ids).get_indexer(pd.Index(ids))
        missing = [i for i, p in zip(ids, pos, strict=True) if p < 0]
        if missing:
            raise ProblemError(
                404,
                "unknown_facility",
                f"unknown facility id(s): "
                f"{', '.join(map(repr, missing[:10]))}" + (" …" if len(missing) > 10 else ""),
            )
        return ServiceAreaPlan(
            pos.astype(np.int64), None, ids, [], tier, bm, bd, body.dissolve, body.rings
        )
    points = body.points
    if points is None:  # excluded above; keeps the type checker informed
        raise ProblemError(422, "facilities_or_points", "give either facility_ids or points")
    if tier is None:
        raise ProblemError(
            422, "tier_required", "points need a tier (their travel mode and default budget)"
        )
    coords, _ = collection_coords(points, lim, "points")
    if len(coords) == 0:
        raise ProblemError(422, "no_points", "points has no features")
    ids, names = ids_and_names(points, "P", "points")
    return ServiceAreaPlan(None, coords, ids, names, tier, bm, bd, body.dissolve, body.rings)


# -- routers ----------------------------------------------------------------------------------


def service_router() -> APIRouter:
    """``/health`` and ``/standard``."""
    router = APIRouter(tags=["service"])

    @router.get(
        "/health",
        response_model=HealthOut,
        response_class=FastJSONResponse,
        responses=responses(),
        summary="Readiness and counts",
    )
    async def health(request: Request) -> Response:
        s = app_state(request)
        res = s.result
        return FastJSONResponse(
            {
                "status": "ok",
                "ready": True,
                "version": __version__,
                "scenario": s.inputs.scenario.name if s.inputs.scenario else None,
                "synthetic": s.inputs.synthetic,
                "standard": s.inputs.standard.name,
                "crs": s.inputs.crs,
                "counts": {
                    "facilities": len(res.facilities),
                    "residents": len(res.residents),
                    "population": float(res.population_total),
                    "rejected_rows": len(s.inputs.rejects()),
                },
                "networks": {
                    m: {"nodes": int(n.n_nodes), "edges": int(n.n_edges)}
                    for m, n in s.inputs.networks.items()
                },
                "units": list(s.unit_tables),
                "layers": layer_names(s),
                "load_s": round(s.load_s, 3),
            }
        )

    @router.get(
        "/standard",
        response_model=StandardOut,
        response_class=FastJSONResponse,
        responses=responses(),
        summary="Tiers and their thresholds",
    )
    async def standard(request: Request) -> Response:
        return FastJSONResponse(app_state(request).inputs.standard.to_dict())

    return router


def coverage_router(state: ServiceState) -> APIRouter:
    """``/coverage/summary`` and ``/coverage/units`` (documented with the loaded unit layers)."""
    router = APIRouter(prefix="/coverage", tags=["coverage"])
    unit_keys = list(state.unit_tables)

    @router.get(
        "/summary",
        response_model=SummaryOut,
        response_class=FastJSONResponse,
        responses=responses(),
        summary="Share of people covered per tier (the scenario's summary.json)",
    )
    async def coverage_summary(request: Request) -> Response:
        return FastJSONResponse(app_state(request).run.summary())

    @router.get(
        "/units",
        response_model=UnitsOut,
        response_class=FastJSONResponse,
        responses=responses(P404, P422),
        summary="Coverage (达标率) per admin unit",
    )
    async def coverage_units(
        request: Request,
        unit: Annotated[
            str,
            Query(
                description=f"unit layer: {', '.join(unit_keys) or 'none loaded'}",
                examples=unit_keys[:1] or ["community"],
                max_length=100,
                json_schema_extra={"enum": unit_keys} if unit_keys else None,
            ),
        ],
    ) -> Response:
        s = app_state(request)
        if unit not in s.unit_tables:
            raise ProblemError(
                404,
                "unknown_unit",
                f"unknown unit layer {unit!r}; this scenario has "
                f"{', '.join(s.unit_tables) or 'no unit layers'}",
            )
        table = s.unit_tables[unit]
        zh, en = s.unit_labels.get(unit, (unit, unit))
        return FastJSONResponse(
            {
                "unit": unit,
                "label_zh": zh,
                "label_en": en,
                "columns": list(table.columns),
                "rows": table.to_dict("records"),
            }
        )

    return router


def analysis_router(state: ServiceState) -> APIRouter:
    """``/distances``, ``/service-areas`` and ``/score``.

    The OpenAPI examples are built from the loaded scenario (real facility ids, positions of
    its residents), so that "Try it out" answers 200.
    """
    router = APIRouter(tags=["analysis"])
    tier_keys = state.inputs.standard.keys
    ex = example_data(state)
    dist_examples = distances_examples(ex.points)
    area_examples = service_area_examples(ex.facility_id, ex.tier, ex.points[0])
    score_ex = score_examples(ex.tier, ex.candidates)
    flat_out = flat_distances_model(tier_keys)

    @router.post(
        "/distances",
        response_model=flat_out | DistancesOut,
        response_class=GeoJSONResponse,
        responses=responses(P400, P413, P415, P422, P503),
        summary="Distance from each point to the nearest facility of each tier",
    )
    async def distances(
        request: Request,
        body: Annotated[PointCollection, Body(openapi_examples=dist_examples)],
        crs: Annotated[
            CrsName, Query(description="coordinate system of the points (and the answer)")
        ] = "wgs84",
        tier: Annotated[
            list[str] | None,
            Query(
                description=f"tiers to answer (default all): {', '.join(tier_keys)}", max_length=20
            ),
        ] = None,
        flat: Annotated[
            bool,
            Query(
                description="flat properties named as in the residents layer "
                "({tier}_distance_m, {tier}_covered, …), which web maps can style directly "
                "(default); false: per-tier results nested under 'tiers'"
            ),
        ] = True,
    ) -> Response:
        s = app_state(request)
        keys = check_tiers(s, tier)
        coords, ids = collection_coords(body, s.limits, "the FeatureCollection")
        data = await offload(
            request, distances_geojson, s, coords, ids, crs=crs, tiers=keys or None, flat=flat
        )
        return GeoJSONResponse(data)

    @router.post(
        "/service-areas",
        response_class=GeoJSONResponse,
        responses=responses(P400, P404, P413, P415, P422, P503)
        | {
            200: {
                "description": "service-area polygons",
                "content": {
                    GEOJSON: {
                        "schema": {
                            "type": "object",
                            "required": ["type", "features"],
                            "properties": {
                                "type": {"const": "FeatureCollection"},
                                "features": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    }
                },
            }
        },
        summary="Service-area polygons of facilities or new points",
    )
    async def service_areas(
        request: Request,
        body: Annotated[ServiceAreasIn, Body(openapi_examples=area_examples)],
        crs: Annotated[
            CrsName, Query(description="coordinate system of the points and the answer")
        ] = "wgs84",
    ) -> Response:
        s = app_state(request)
        plan = service_area_plan(s, body)
        text = await offload_heavy(request, service_areas_geojson, s, plan, crs=crs)
        return Response(text.encode("utf-8"), media_type=GEOJSON)

    @router.post(
        "/score",
        response_model=ScoreOut,
        response_class=GeoJSONResponse,
        responses=responses(P400, P413, P415, P422, P503),
        summary="Rank candidate sites for a tier by the people they would newly cover "
        "(a GeoJSON FeatureCollection of the ranked sites)",
    )
    async def score(
        request: Request,
        body: Annotated[ScoreIn, Body(openapi_examples=score_ex)],
        crs: Annotated[CrsName, Query(description="coordinate system of the candidates")] = "wgs84",
    ) -> Response:
        s = app_state(request)
        key = check_tiers(s, [body.tier], "tier")[0]
        if body.k is not None and body.k > s.limits.max_k:
            raise ProblemError(
                422, "k_too_large", f"k={body.k} exceeds the limit of {s.limits.max_k}"
            )
        coords, _ = collection_coords(body.candidates, s.limits, "candidates")
        if len(coords) == 0:
            raise ProblemError(422, "no_candidates", "candidates has no features")
        ids, names = ids_and_names(body.candidates, "C", "candidates")
        res = s.result.residents
        if body.weight != "population" and (
            body.weight not in res.columns or res[body.weight].isna().all()
        ):
            raise ProblemError(
                422,
                "unknown_weight",
                f"weight {body.weight!r}: the residents have no "
                f"{body.weight} numbers; use population",
            )
        data = await offload_heavy(
            request,
            score_candidates,
            s,
            coords,
            ids,
            names,
            tier=key,
            k=body.k,
            weight=body.weight,
            crs=crs,
        )
        return GeoJSONResponse(data)

    return router


def layers_router(state: ServiceState) -> APIRouter:
    """``/layers/{layer}`` (documented with the loaded scenario's layers) and ``/map``."""
    router = APIRouter(tags=["layers"])
    layers = layer_names(state)
    # ETag per (layer, format, crs): the loaded state never changes, so once a layer has been
    # built its tag is known and a matching If-None-Match gets 304 without rebuilding it
    etags: dict[tuple[str, str, str], str] = {}

    @router.get(
        "/layers/{layer}",
        summary="Export one result layer",
        responses=responses(P404, P422, P503)
        | {
            304: {"description": "not modified: the If-None-Match tag is the layer's ETag"},
            200: {
                "description": "the layer as GeoJSON or CSV (with an ETag; send it back as "
                "If-None-Match to get 304 when nothing changed)",
                "content": {
                    GEOJSON: {"schema": {"type": "object"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
        },
    )
    async def get_layer(
        request: Request,
        layer: Annotated[
            str,
            PathParam(
                description=f"one of {', '.join(layers)}",
                max_length=100,
                json_schema_extra={"enum": layers} if layers else None,
            ),
        ],
        format: Annotated[Literal["geojson", "csv"], Query(description="file format")] = "geojson",
        crs: Annotated[
            LayerCrs,
            Query(
                description="coordinate system of the output (cgcs2000-gk: the "
                "3-degree Gauss-Kruger zone of the data, metres)"
            ),
        ] = "wgs84",
    ) -> Response:
        s = app_state(request)
        if layer not in layer_names(s):
            raise ProblemError(
                404,
                "unknown_layer",
                f"unknown layer {layer!r}; layers: {', '.join(layer_names(s))}",
            )
        key = (layer, format, crs)
        known = etags.get(key)
        if known is not None and known in if_none_match(request):
            return Response(status_code=304, headers={"ETag": known, "Vary": "Accept-Encoding"})
        work = functools.partial(export_layer, s, layer, fmt=format, crs=crs)
        if layer in HEAVY_LAYERS:  # computed once per scenario, then served from memory
            enc = await cached_heavy(request, ("layer", layer, format, crs), encode_answer, work)
        else:
            enc = await offload_heavy(request, encode_answer, work)
        # the tag of the layer itself (the same whether it is sent gzip-compressed or not)
        etag = '"' + hashlib.blake2b(enc.content, digest_size=16).hexdigest() + '"'
        etags[key] = etag
        if etag in if_none_match(request):
            return Response(status_code=304, headers={"ETag": etag, "Vary": "Accept-Encoding"})
        return encoded_response(
            request,
            enc,
            {"Content-Disposition": f'attachment; filename="{enc.filename}"', "ETag": etag},
        )

    @router.get(
        "/map",
        response_class=HTMLResponse,
        summary="The offline HTML coverage map",
        responses=responses(P422, P503),
    )
    async def get_map(
        request: Request,
        lang: Annotated[Literal["zh", "en"], Query(description="language of the labels")] = "zh",
    ) -> Response:
        s = app_state(request)
        work = functools.partial(map_html, s, lang=lang)
        enc = await cached_heavy(request, ("map", lang), encode_answer, work)
        return encoded_response(request, enc)

    return router


def routers(state: ServiceState) -> list[APIRouter]:
    """Every router of the service, in the order of the OpenAPI document."""
    return [service_router(), coverage_router(state), analysis_router(state), layers_router(state)]


__all__ = [
    "analysis_router",
    "app_state",
    "check_tiers",
    "collection_coords",
    "coverage_router",
    "ids_and_names",
    "if_none_match",
    "layers_router",
    "offload",
    "routers",
    "service_area_plan",
    "service_router",
]
