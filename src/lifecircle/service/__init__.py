"""The planning service: an HTTP API over one loaded scenario (FastAPI + uvicorn).

Modules
-------
:mod:`~lifecircle.service.state`
    :class:`ServiceState` built once at start-up (coverage, per-tier nearest-facility lookups,
    per-unit tables), :class:`Limits`; no FastAPI.
:mod:`~lifecircle.service.queries`
    What a request computes, as plain functions on the state (distances, layers, service
    areas, site scores, the map); no FastAPI.
:mod:`~lifecircle.service.schemas`
    Request and response models (pydantic), which make the OpenAPI document.
:mod:`~lifecircle.service.problems`
    RFC 9457 problem details and the JSON responses.
:mod:`~lifecircle.service.middleware`
    Access log; bearer token, media type and body size guard.
:mod:`~lifecircle.service.routes`
    The endpoints, one router per area.
:mod:`~lifecircle.service.app`
    :func:`create_app`, :func:`serve` and the bind check.

Distance queries read the answer off per-tier searches precomputed at start-up, so no graph
search runs per request (100 points take a few milliseconds).

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

The names below are loaded on first use, so ``import lifecircle.service`` (and
:mod:`lifecircle.service.state`) works without FastAPI installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifecircle.service.app import (
        CONFIG_ENV,
        TOKEN_ENV,
        app_from_env,
        check_bind,
        create_app,
        create_app_from_scenario,
        is_loopback,
        serve,
    )
    from lifecircle.service.queries import distances_geojson, query_distances
    from lifecircle.service.state import (
        Limits,
        ServiceState,
        TierLookup,
        build_state,
        load_state,
        nearest_from_lookup,
        precompute_tier_lookup,
    )

#: Public name -> submodule that defines it.
_WHERE = {
    "Limits": "state",
    "ServiceState": "state",
    "TierLookup": "state",
    "build_state": "state",
    "load_state": "state",
    "nearest_from_lookup": "state",
    "precompute_tier_lookup": "state",
    "query_distances": "queries",
    "distances_geojson": "queries",
    "CONFIG_ENV": "app",
    "TOKEN_ENV": "app",
    "app_from_env": "app",
    "check_bind": "app",
    "create_app": "app",
    "create_app_from_scenario": "app",
    "is_loopback": "app",
    "serve": "app",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "CONFIG_ENV",
    "TOKEN_ENV",
    "Limits",
    "ServiceState",
    "TierLookup",
    "app_from_env",
    "build_state",
    "check_bind",
    "create_app",
    "create_app_from_scenario",
    "distances_geojson",
    "is_loopback",
    "load_state",
    "nearest_from_lookup",
    "precompute_tier_lookup",
    "query_distances",
    "serve",
]
