"""The FastAPI application, and running it with uvicorn.

:func:`create_app` wires the routers of :mod:`lifecircle.service.routes`, the problem-detail
exception handlers and the middleware around one :class:`ServiceState`.
:func:`serve` runs uvicorn after :func:`check_bind` (no listening beyond this machine without a
bearer token); with several workers each process builds its own app through
:func:`app_from_env` (uvicorn entry ``lifecircle.service.app:app_from_env``).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecircle._version import __version__
from lifecircle.errors import InputError, LifecircleError
from lifecircle.pipeline import DEFAULT_CACHE_DIR
from lifecircle.service.middleware import AccessLogMiddleware, GuardMiddleware, access_logger
from lifecircle.service.problems import ProblemError, problem, validation_problem
from lifecircle.service.protocol import HEADER_TIMEOUT_ENV, HeaderTimeoutProtocol
from lifecircle.service.routes import routers
from lifecircle.service.state import Limits, ServiceState, load_state

logger = logging.getLogger(__name__)

#: Environment variable holding the bearer token.
TOKEN_ENV: Final = "LIFECIRCLE_TOKEN"
#: Environment variable through which ``serve --workers N`` passes its settings to workers.
CONFIG_ENV: Final = "LIFECIRCLE_SERVE_CONFIG"
#: uvicorn factory of the worker processes.
WORKER_FACTORY: Final = "lifecircle.service.app:app_from_env"
#: The HTTP protocol class (h11 with a header-read timeout), as uvicorn imports it in workers.
PROTOCOL: Final = "lifecircle.service.protocol:HeaderTimeoutProtocol"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
#: Answers at least this large are gzip-compressed for clients that accept it.
GZIP_MIN_BYTES: Final = 1_000


def _add_exception_handlers(app: FastAPI) -> None:
    """Every error becomes a problem detail; tracebacks go to the server log only."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem(
            exc.status,
            exc.code,
            exc.detail,
            title=exc.title,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc, request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.url.path}; see /docs or /openapi.json"
        return problem(
            exc.status_code, code, detail, instance=request.url.path, headers=exc.headers
        )

    async def on_lifecircle(request: Request, exc: Exception) -> Response:
        return problem(422, "invalid_input", str(exc).partition("\n")[0], instance=request.url.path)

    async def on_error(request: Request, exc: Exception) -> Response:
        logger.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return problem(
            500,
            "internal_error",
            "the server failed to answer this request; the error is in the server log",
            instance=request.url.path,
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(LifecircleError, on_lifecircle)
    app.add_exception_handler(Exception, on_error)


#: The vendored Swagger UI (npm ``swagger-ui-dist``; see ``_assets/README.md``).
SWAGGER_UI_DIR: Final = Path(__file__).resolve().parents[1] / "_assets" / "swagger-ui"
DOCS_ASSETS_PATH: Final = "/docs-assets"


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the package's own copy (no CDN), for intranets."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
        )


def create_app(state: ServiceState) -> FastAPI:
    """The FastAPI application serving ``state`` (read-only; nothing mutable is shared).

    Parameters
    ----------
    state : ServiceState
        From :func:`lifecircle.service.state.build_state` or :func:`load_state`.
    """
    inputs = state.inputs
    app = FastAPI(
        title="lifecircle planning service",
        version=__version__,
        description=(
            f"15-minute community living circle (15分钟社区生活圈) analysis of **{inputs.title}**"
            + (" — SYNTHETIC demonstration data (合成示范数据)" if inputs.synthetic else "")
            + ". Coordinates in requests are lon/lat degrees in the `crs` given "
            "(wgs84, cgcs2000, gcj02 for Amap/Tencent, bd09 for Baidu). Errors are RFC 9457 "
            "problem details (application/problem+json)."
        ),
        docs_url=None,  # served below from the vendored Swagger UI: /docs opens offline
        redoc_url=None,
    )
    _add_offline_docs(app)
    app.state.lifecircle = state
    app.state.limiter = anyio.CapacityLimiter(state.limits.max_concurrent)
    app.state.heavy_limiter = anyio.CapacityLimiter(state.limits.max_concurrent)
    # heavy answers (layers, the map) computed once per scenario, and their locks
    app.state.heavy_answers = {}
    app.state.heavy_locks = {}
    _add_exception_handlers(app)
    for router in routers(state):
        app.include_router(router)
    # outermost last: access log, then CORS (so that 401/413 answers carry CORS headers), then guard
    app.add_middleware(GuardMiddleware, state=state)
    if state.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(state.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # large answers (layers, the map, many distances) compressed for clients that accept gzip
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES)
    app.add_middleware(AccessLogMiddleware)
    return app


def create_app_from_scenario(
    scenario: str | Path | None = None,
    *,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
    **load_kwargs: Any,
) -> FastAPI:
    """Load a scenario and return the app serving it (see :func:`load_state`)."""
    return create_app(
        load_state(scenario, limits=limits, token=token, cors_origins=cors_origins, **load_kwargs)
    )


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes; settings from :data:`CONFIG_ENV`.

    The settings are the keyword arguments of :func:`create_app_from_scenario` as JSON, with
    ``limits`` as a dict, ``use_cache`` (network cache in the default folder) and ``log_level``.
    """
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise InputError(f"{CONFIG_ENV} is not set; start the service with `lifecircle serve`")
    cfg = json.loads(raw)
    limits = Limits(**cfg.pop("limits", {}))
    token = os.environ.get(TOKEN_ENV) or None
    cors = tuple(cfg.pop("cors_origins", ()))
    level = cfg.pop("log_level", "INFO")
    cfg["units"] = tuple(cfg.get("units") or ())
    cfg["cache_dir"] = DEFAULT_CACHE_DIR if cfg.pop("use_cache", True) else None
    root = logging.getLogger("lifecircle")
    if not root.handlers:  # a fresh worker process: log like the command line does
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        root.propagate = False
        access_logger.setLevel(level)
    return create_app_from_scenario(limits=limits, token=token, cors_origins=cors, **cfg)


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
            "127.0.0.1"
        )


def serve(
    app_or_config: FastAPI | dict[str, Any],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    token: str | None = None,
    log_level: str = "warning",
    sock: socket.socket | None = None,
    header_timeout_s: float | None = None,
) -> None:
    """Run uvicorn (blocks until stopped).

    Parameters
    ----------
    app_or_config : FastAPI or dict
        An app (one process), or, for ``workers > 1``, the keyword arguments of
        :func:`create_app_from_scenario` (plus ``limits`` and ``cors_origins`` as plain data),
        from which each worker process builds its own app.
    host : str
        Address to listen on; not a loopback one only with ``token``.
    port : int
    workers : int
        Worker processes.
    token : str, optional
        The bearer token (passed to workers through :data:`TOKEN_ENV`).
    log_level : str
        uvicorn's log level.
    sock : socket, optional
        A socket already bound to ``host:port`` (see :func:`bind_port`), so that a port in use
        is reported before the scenario is loaded; one process only.
    header_timeout_s : float, optional
        Close connections whose request headers take longer (default 10 s).
    """
    import uvicorn

    check_bind(host, token)
    if header_timeout_s is not None:
        os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout_s)
    if workers > 1:
        if not isinstance(app_or_config, dict):
            raise InputError("several workers need the settings, not an app object")
        os.environ[CONFIG_ENV] = json.dumps(app_or_config)
        if token:
            os.environ[TOKEN_ENV] = token
        uvicorn.run(
            WORKER_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_level=log_level,
            http=PROTOCOL,
        )
        return
    if isinstance(app_or_config, dict):
        raise InputError("give an app to serve in one process")
    if sock is None:
        sock = bind_port(host, port)
    config = uvicorn.Config(
        app_or_config, access_log=False, log_level=log_level, http=HeaderTimeoutProtocol
    )
    uvicorn.Server(config).run(sockets=[sock])


def bind_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn listens on it).

    Raises
    ------
    InputError
        If the port is in use or the address is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections whose socket says
    # so, and without it every keep-alive answer waited ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc})"
        raise InputError(
            f"port {port} on {host} {why}; choose another --port or stop the other service"
        ) from None
    sock.set_inheritable(True)
    return sock


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "WORKER_FACTORY",
    "app_from_env",
    "bind_port",
    "check_bind",
    "create_app",
    "create_app_from_scenario",
    "is_loopback",
    "serve",
]
