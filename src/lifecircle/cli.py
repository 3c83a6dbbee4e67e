"""The ``lifecircle`` command.

Thin by design: each subcommand parses its options, calls one pipeline function and writes its
outputs. Subcommands live in ``lifecircle._commands`` (one module each, discovered at start-up,
each with a ``register(subparsers)`` function that imports heavy libraries only when it runs).

Logs go to stderr (``-v`` for more, ``-q`` for errors only); data goes to files. Exit codes: 0 on
success, 1 when lifecircle reports an error (one line, no traceback), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from lifecircle import __version__
from lifecircle.errors import InputError, LifecircleError

logger = logging.getLogger("lifecircle")


def add_input_options(p: argparse.ArgumentParser, *, residents: bool = True) -> None:
    """The input options every analysis subcommand shares (the same as ``coverage``)."""
    g = p.add_argument_group("inputs")
    g.add_argument("--scenario", metavar="FILE",
                   help="scenario.toml naming the inputs (explicit options below override it)")
    g.add_argument("--network", metavar="PATH", help="road network: .osm, .osm.bz2, .osm.pbf or .graphml")
    g.add_argument("--facilities", metavar="PATH", help="facilities: .csv, .xlsx, .geojson or .gpkg")
    g.add_argument("--residents", metavar="PATH",
                   help="residents (points or polygons with population)" + ("" if residents else " (optional)"))
    g.add_argument("--standard", metavar="NAME|FILE",
                   help="service standard: preset tancheng (default) or gb50180, or a TOML file")
    g.add_argument("--mode", choices=("walk", "bike", "drive"),
                   help="travel mode for every tier (default: each tier's own mode)")
    g.add_argument("--max-snap-m", type=float, metavar="M",
                   help="longest straight access leg to a street in metres (default 300); farther "
                        "points are flagged off-network")
    g.add_argument("--facilities-crs", metavar="CRS",
                   help="coordinate system of the facilities file: wgs84 (default), cgcs2000, "
                        "gcj02 (Amap/Tencent), bd09 (Baidu) or EPSG:n")
    g.add_argument("--residents-crs", metavar="CRS", help="coordinate system of the residents file")
    g.add_argument("--network-crs", metavar="EPSG",
                   help="metric CRS for the analysis (default: UTM zone of the network)")
    g.add_argument("--units", action="append", default=[], metavar="PATH",
                   help="admin-unit polygons (communities, grids); repeat for several layers")
    g.add_argument("--upper-tiers-count", action="store_true", default=None,
                   help="let a higher-tier facility also serve lower tiers (GB 50180 counts them "
                        "separately, the default)")
    g.add_argument("--no-cache", action="store_true", help="do not use the network cache")


def inputs_from_args(args: argparse.Namespace, *, require_residents: bool = True) -> Any:
    """Load :class:`lifecircle.pipeline.Inputs` from the shared input options."""
    from lifecircle.pipeline import DEFAULT_CACHE_DIR, load_inputs

    if args.scenario is None and args.network is None:
        raise InputError("give --scenario FILE, or --network and --facilities"
                         + (" and --residents" if require_residents else ""))
    return load_inputs(
        scenario=args.scenario, network=args.network, facilities=args.facilities,
        residents=args.residents, standard=args.standard, mode=args.mode,
        max_snap_m=args.max_snap_m, facilities_crs=args.facilities_crs,
        residents_crs=args.residents_crs, network_crs=args.network_crs, units=tuple(args.units),
        upper_tiers_count=args.upper_tiers_count,
        cache_dir=None if args.no_cache else DEFAULT_CACHE_DIR,
        require_residents=require_residents,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="lifecircle",
        description="Road-network coverage analysis for the 15-minute community living circle "
                    "(15分钟社区生活圈): who reaches each tier of service within its standard, "
                    "where the gaps are, and where new sites should go.",
        epilog="examples:\n"
               "  lifecircle demo                      # the SYNTHETIC Tancheng demonstration\n"
               "  lifecircle coverage --scenario data/demo/tancheng/scenario.toml --out out/cov\n"
               "  lifecircle coverage --network roads.osm.pbf --facilities sites.xlsx \\\n"
               "      --facilities-crs gcj02 --residents people.csv --units communities.geojson --out out/cov\n"
               "  lifecircle COMMAND --help            # the options of one command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lifecircle {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import lifecircle._commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"lifecircle._commands.{info.name}").register(sub)
    # -v/-q work after the subcommand too (``lifecircle coverage ... -q``)
    for p in sub.choices.values():
        p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="more log output (-vv: debug)")
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="only errors on stderr")
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr at a level chosen by -v/-q (the library itself never configures logging)."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose == 1 else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lifecircle")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except LifecircleError as exc:
        msg = str(exc)
        first, _, rest = msg.partition("\n")
        print(f"lifecircle {args.command}: error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lifecircle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
