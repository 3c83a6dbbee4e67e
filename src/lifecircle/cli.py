"""The ``lifecircle`` command.

Thin by design: each subcommand parses its options, calls one pipeline function and writes its
outputs. Subcommands live in ``lifecircle._commands`` (one module each, discovered at start-up,
each with a ``register(subparsers)`` function that imports heavy libraries only when it runs).

Logs go to stderr (``-v`` for more, ``-q`` for errors only); data goes to files. Exit codes: 0 on
success, 1 when lifecircle reports an error (one line, no traceback), 2 for bad arguments, 3 when
too many input rows were rejected for the result to be right (``rejects.csv`` is written; every
reject reason is counted on stderr), 130/143 when interrupted (SIGINT/SIGTERM; the output folder
is left as it was).

No traceback reaches a user: an unexpected error is one line plus the path of a log file holding
the traceback (``--debug`` prints it too).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import io
import logging
import os
import pkgutil
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from lifecircle import _commands
from lifecircle._commands._common import safe_console_streams
from lifecircle._files import user_cache_dir
from lifecircle._outset import is_disk_error
from lifecircle._version import __version__
from lifecircle.errors import LifecircleError, RejectThresholdError

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
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an unexpected error"
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
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print the traceback of an unexpected error",
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


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt, so that cleanup runs)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def safe_console() -> None:
    """Let stdout/stderr print Chinese labels on any console (cp1252, ASCII: no crash).

    stdout replaces what it cannot show with ``?`` (the :class:`Console` contract); error lines
    on stderr escape it (``\\u90ef``), so that a file name stays recognisable.
    """
    safe_console_streams()
    if isinstance(sys.stderr, io.TextIOWrapper):
        sys.stderr.reconfigure(errors="backslashreplace")


def write_crash_log(command: str, argv: Sequence[str]) -> Path | None:
    """Write the current exception's traceback to a log file; return its path (None if it
    cannot be written anywhere)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"lifecircle {__version__} {command}\nargv: {list(argv)}\n\n{traceback.format_exc()}"
    for folder in (user_cache_dir() / "logs", Path(os.environ.get("TMPDIR", "/tmp"))):
        path = folder / f"lifecircle-{stamp}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        return path
    return None


def _print_reject_counts(exc: RejectThresholdError) -> None:
    by_kind: dict[str, list[str]] = {}
    for (kind, reason), n in sorted(exc.counts.items()):
        by_kind.setdefault(kind, []).append(f"{reason} {n:,}")
    for kind, parts in by_kind.items():
        print(f"  rejected {kind}: {', '.join(parts)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    safe_console()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv
    configure_logging(args.verbose, args.quiet)
    prefix = f"lifecircle {args.command}: error:"
    old_handler = None
    try:
        old_handler = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (e.g. called from a test thread)
        pass
    try:
        return int(args.func(args) or 0)
    except RejectThresholdError as exc:
        print(f"{prefix} {exc}", file=sys.stderr)
        _print_reject_counts(exc)
        return exc.exit_code
    except LifecircleError as exc:
        msg = str(exc)
        first, _, rest = msg.partition("\n")
        print(f"{prefix} {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lifecircle: interrupted; the output folder is left as it was", file=sys.stderr)
        return 130
    except Terminated:
        if args.command == "serve":  # the normal way to stop a service
            return 0
        print("lifecircle: terminated; the output folder is left as it was", file=sys.stderr)
        return 143
    except Exception as exc:
        if is_disk_error(exc):
            assert isinstance(exc, OSError)
            where = f" {exc.filename}" if exc.filename else ""
            print(f"{prefix} cannot write{where}: {exc.strerror}", file=sys.stderr)
            return 1
        log = write_crash_log(args.command, argv)
        if getattr(args, "debug", False):
            traceback.print_exc()
        where = f"; details in {log}" if log else ""
        first_line = (str(exc).splitlines() or [""])[0]
        print(
            f"{prefix} unexpected {type(exc).__name__}: {first_line}{where} "
            "(please report it; --debug prints the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
