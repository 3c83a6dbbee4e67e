"""``lifecircle network extract``: cut a province or country OSM extract down to one area, once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifecircle._commands._common import add_clip_options
from lifecircle._files import check_writable
from lifecircle.config import MODES
from lifecircle.errors import InputError
from lifecircle.extract import extract_regions, read_clip


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "network",
        help="road network tools (extract: cut a large .osm.pbf to a boundary)",
        description="Road network tools.",
    )
    tools = p.add_subparsers(dest="tool", metavar="TOOL", required=True)
    e = tools.add_parser(
        "extract",
        help="keep the streets of a large .osm.pbf that intersect a boundary plus a buffer",
        description="One streaming pass over --network keeps every way of the given modes that "
        "intersects the --clip boundary buffered by --clip-buffer-m, whole (complete node "
        "lists), and writes them to --out (.osm.pbf). `coverage --clip` does the same on the "
        "fly; this writes the file once for reuse.",
    )
    g = e.add_argument_group("inputs")
    g.add_argument("--network", required=True, metavar="PATH", help="large .osm.pbf extract")
    g.add_argument("--clip", required=True, metavar="PATH", help="boundary polygon file")
    add_clip_options(g, clip=False)
    g.add_argument(
        "--clip-crs",
        metavar="CRS",
        default="wgs84",
        help="coordinates of the --clip file when it carries no CRS (wgs84, cgcs2000, gcj02, bd09)",
    )
    e.add_argument(
        "--modes",
        default="walk,bike,drive",
        metavar="LIST",
        help="keep ways usable in any of these modes (default walk,bike,drive)",
    )
    e.add_argument(
        "--node-index",
        choices=("flex_mem", "sparse_file_array", "dense_file_array"),
        default="flex_mem",
        help="where pyosmium keeps node locations during the pass: flex_mem (memory, default) "
        "or a temporary file on disk (for country-sized files on small machines)",
    )
    e.add_argument("--out", required=True, metavar="FILE", help="output .osm.pbf")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    out = Path(args.out)
    if not out.name.endswith(".osm.pbf"):
        raise InputError(f"--out {out}: the output must be an .osm.pbf file")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InputError(
            f"--modes {args.modes!r}: use a comma-separated list of {', '.join(MODES)}"
        )
    check_writable([out], overwrite=args.overwrite)
    boundary = read_clip(args.clip, crs=args.clip_crs)
    stats = extract_regions(
        args.network,
        {"clip": boundary},
        {"clip": out},
        buffer_m=args.clip_buffer_m,
        modes=modes,
        node_index=args.node_index,
    )
    print(
        f"{out}: {stats.ways_kept['clip']:,} ways, {stats.nodes_kept['clip']:,} nodes kept of "
        f"{stats.ways_read:,} highway ways read ({stats.seconds:.1f} s)",
        file=sys.stdout,
    )
    return 0
