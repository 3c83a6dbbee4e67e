"""What the analysis subcommands share: the input options and loading inputs from them."""

from __future__ import annotations

import argparse

from lifecircle.errors import InputError
from lifecircle.extract import DEFAULT_CLIP_BUFFER_M
from lifecircle.pipeline import DEFAULT_CACHE_DIR, load_inputs
from lifecircle.roads import DEFAULT_TOLERANCE_M
from lifecircle.runs import Inputs


def add_input_options(p: argparse.ArgumentParser, *, residents: bool = True) -> None:
    """The input options every analysis subcommand shares (the same as ``coverage``)."""
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--scenario",
        metavar="FILE",
        help="scenario.toml naming the inputs (explicit options below override it)",
    )
    g.add_argument(
        "--network",
        metavar="PATH",
        help="road network: .osm, .osm.bz2, .osm.pbf, .graphml, or road centre lines .shp/.gpkg",
    )
    g.add_argument(
        "--facilities", metavar="PATH", help="facilities: .csv, .xlsx, .geojson or .gpkg"
    )
    g.add_argument(
        "--residents",
        metavar="PATH",
        help="residents (points or polygons with population)"
        + ("" if residents else " (optional)"),
    )
    g.add_argument(
        "--standard",
        metavar="NAME|FILE",
        help="service standard: preset tancheng (default) or gb50180, or a TOML file",
    )
    g.add_argument(
        "--mode",
        choices=("walk", "bike", "drive"),
        help="travel mode for every tier (default: each tier's own mode)",
    )
    g.add_argument(
        "--max-snap-m",
        type=float,
        metavar="M",
        help="longest straight access leg to a street in metres (default 300); farther "
        "points are flagged off-network",
    )
    g.add_argument(
        "--facilities-crs",
        metavar="CRS",
        help="coordinate system of the facilities file: wgs84 (default), cgcs2000, "
        "gcj02 (Amap/Tencent), bd09 (Baidu) or EPSG:n",
    )
    g.add_argument("--residents-crs", metavar="CRS", help="coordinate system of the residents file")
    g.add_argument(
        "--network-crs",
        metavar="EPSG",
        help="metric CRS for the analysis (default: UTM zone of the network)",
    )
    g.add_argument(
        "--units",
        action="append",
        default=[],
        metavar="PATH",
        help="admin-unit polygons (communities, grids); repeat for several layers",
    )
    g.add_argument(
        "--upper-tiers-count",
        action="store_true",
        default=None,
        help="let a higher-tier facility also serve lower tiers (GB 50180 counts them "
        "separately, the default)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not use the network cache")
    add_clip_options(g)
    g.add_argument(
        "--extra-roads",
        metavar="PATH",
        help="local road centre lines (.shp/.gpkg, optional highway-like class and oneway "
        "fields) merged into the network, noded at crossings",
    )
    g.add_argument(
        "--extra-roads-crs", metavar="CRS", help="CRS of a line file without .prj (EPSG:4490)"
    )
    g.add_argument(
        "--extra-roads-tolerance-m",
        type=float,
        default=DEFAULT_TOLERANCE_M,
        metavar="M",
        help="noding tolerance for --extra-roads in metres (default 1)",
    )


def add_clip_options(g: argparse._ArgumentGroup, *, clip: bool = True) -> None:
    """``--clip``, ``--clip-crs`` and ``--clip-buffer-m`` (cutting a large OSM extract)."""
    if clip:
        g.add_argument(
            "--clip",
            metavar="PATH",
            help="boundary polygon file: load only the streets of --network (e.g. a province "
            ".osm.pbf) that intersect it plus --clip-buffer-m, in one cached streaming pass",
        )
        g.add_argument(
            "--clip-crs",
            metavar="CRS",
            default="wgs84",
            help="coordinates of the --clip file when it carries no CRS: wgs84 (default), "
            "cgcs2000, gcj02 (Amap) or bd09 (Baidu)",
        )
    g.add_argument(
        "--clip-buffer-m",
        type=float,
        default=DEFAULT_CLIP_BUFFER_M,
        metavar="M",
        help="buffer around each boundary in metres (default 2000), so facilities just "
        "across the border still serve residents near it",
    )


def inputs_from_args(args: argparse.Namespace, *, require_residents: bool = True) -> Inputs:
    """Load :class:`lifecircle.runs.Inputs` from the shared input options."""
    if args.scenario is None and args.network is None:
        raise InputError(
            "give --scenario FILE, or --network and --facilities"
            + (" and --residents" if require_residents else "")
        )
    return load_inputs(
        scenario=args.scenario,
        network=args.network,
        facilities=args.facilities,
        residents=args.residents,
        standard=args.standard,
        mode=args.mode,
        max_snap_m=args.max_snap_m,
        facilities_crs=args.facilities_crs,
        residents_crs=args.residents_crs,
        network_crs=args.network_crs,
        units=tuple(args.units),
        upper_tiers_count=args.upper_tiers_count,
        cache_dir=None if args.no_cache else DEFAULT_CACHE_DIR,
        require_residents=require_residents,
        clip=args.clip,
        clip_crs=args.clip_crs,
        clip_buffer_m=args.clip_buffer_m,
        extra_roads=args.extra_roads,
        extra_roads_crs=args.extra_roads_crs,
        extra_roads_tolerance_m=args.extra_roads_tolerance_m,
    )
