"""``lifecircle serve``: the HTTP planning service over one loaded scenario."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import asdict
from typing import Any

from lifecircle import service
from lifecircle._commands._common import add_input_options, inputs_from_args
from lifecircle.errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "serve",
        help="HTTP API over a loaded scenario (distances, coverage, layers, scoring)",
        description="Load the scenario once, compute coverage, and serve it over HTTP (FastAPI + "
        "uvicorn): /health, /standard, /coverage/summary, /coverage/units, /distances, "
        "/service-areas, /score, /layers/{layer}, /map; OpenAPI at /docs. Listens on "
        "127.0.0.1 unless --host says otherwise, and then only with a token "
        "(LIFECIRCLE_TOKEN or --token).",
    )
    add_input_options(p)
    g = p.add_argument_group("service")
    g.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only); any other "
        "address needs a token",
    )
    g.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (default 1; each holds its own copy of the scenario)",
    )
    g.add_argument(
        "--token",
        default=None,
        help="bearer token every request must send (default: the environment variable "
        "LIFECIRCLE_TOKEN; prefer the variable, a command line is visible to others)",
    )
    g.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from this origin (e.g. http://dashboard.intranet:8080); "
        "repeat for several; default none (CORS off)",
    )
    g.add_argument(
        "--max-body-bytes",
        type=int,
        default=2_000_000,
        metavar="B",
        help="largest request body (default 2,000,000 bytes)",
    )
    g.add_argument(
        "--max-features",
        type=int,
        default=1_000,
        metavar="N",
        help="most points per request (default 1,000)",
    )
    g.add_argument(
        "--max-budget-min",
        type=float,
        default=60.0,
        metavar="MIN",
        help="largest service-area budget in minutes (default 60)",
    )
    g.add_argument(
        "--timeout-s",
        type=float,
        default=30.0,
        metavar="S",
        help="longest computation per request in seconds (default 30)",
    )
    g.add_argument(
        "--max-concurrent",
        type=int,
        default=4,
        metavar="N",
        help="computations running at once (default 4)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand (blocks until stopped with Ctrl-C)."""
    try:  # the service's optional dependencies, loaded with lifecircle.service.app
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        raise InputError(
            f"the service needs {exc.name}: pip install 'lifecircle[service]'"
        ) from None

    token = args.token or os.environ.get(service.TOKEN_ENV) or None
    service.check_bind(args.host, token)
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a TCP port (1-65535)")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    limits = service.Limits(
        max_body_bytes=args.max_body_bytes,
        max_features=args.max_features,
        max_budget_min=args.max_budget_min,
        timeout_s=args.timeout_s,
        max_concurrent=args.max_concurrent,
    )
    if not args.quiet:
        logging.getLogger("lifecircle.service.access").setLevel(logging.INFO)
    uv_level = "info" if args.verbose else "warning"
    scheme_note = "" if token is None else " (bearer token required)"
    if args.workers == 1:
        inputs = inputs_from_args(args)
        state = service.build_state(
            inputs, limits=limits, token=token, cors_origins=args.cors_origin
        )
        app = service.create_app(state)
        print(
            f"lifecircle serve: {inputs.title} on http://{_url_host(args.host)}:{args.port}"
            f"{scheme_note}; API docs at /docs; Ctrl-C stops",
            flush=True,
        )
        service.serve(app, host=args.host, port=args.port, token=token, log_level=uv_level)
        return 0
    config: dict[str, Any] = {
        "scenario": args.scenario,
        "network": args.network,
        "facilities": args.facilities,
        "residents": args.residents,
        "standard": args.standard,
        "mode": args.mode,
        "max_snap_m": args.max_snap_m,
        "facilities_crs": args.facilities_crs,
        "residents_crs": args.residents_crs,
        "network_crs": args.network_crs,
        "units": list(args.units),
        "upper_tiers_count": args.upper_tiers_count,
        "use_cache": not args.no_cache,
        "limits": asdict(limits),
        "cors_origins": list(args.cors_origin),
        "log_level": "ERROR" if args.quiet else "INFO",
    }
    if args.scenario is None and args.network is None:
        raise InputError("give --scenario FILE, or --network, --facilities and --residents")
    print(
        f"lifecircle serve: {args.workers} workers on http://{_url_host(args.host)}:{args.port}"
        f"{scheme_note}; each loads the scenario; Ctrl-C stops",
        flush=True,
    )
    service.serve(
        config,
        host=args.host,
        port=args.port,
        workers=args.workers,
        token=token,
        log_level=uv_level,
    )
    return 0


def _url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host
