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

from lifecircle import _commands
from lifecircle._commands._common import safe_console_streams
from lifecircle._version import __version__
from lifecircle.errors import LifecircleError

logger = logging.getLogger("lifecircle")


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
        "      --facilities-crs gcj02 --residents people.csv "
        "--units communities.geojson --out out/cov\n"
        "  lifecircle COMMAND --help            # the options of one command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lifecircle {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing on success; only errors on stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"lifecircle._commands.{info.name}").register(sub)
    # -v/-q work after the subcommand too (``lifecircle coverage ... -q``)
    for p in sub.choices.values():
        p.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=argparse.SUPPRESS,
            help="more log output (-vv: debug)",
        )
        p.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print nothing on success; only errors on stderr",
        )
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr at a level chosen by -v/-q (the library itself never configures logging)."""
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING)
    )
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
    safe_console_streams()
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
