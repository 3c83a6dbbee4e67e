"""``lifecircle batch``: coverage for many regions (all counties of a province) on Dask."""

from __future__ import annotations

import argparse
import sys

from lifecircle._commands._common import add_clip_options
from lifecircle.batch import run_batch


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "batch",
        help="coverage for many regions at once (counties of a province) on Dask",
        description="Clip one large .osm.pbf to every region (plus --clip-buffer-m) in one "
        "pass, then run coverage per region as one Dask task each: residents inside the "
        "region (each counted once), facilities within the buffered region. Writes "
        "regions/<id>/ (the coverage outputs and map), regions.gpkg, regions.csv, "
        "regions.xlsx, failed.csv, summary.json and regions.html to --out. A scenario's "
        "[batch] section may give regions, region_id, region_name, regions_crs, only, "
        "clip_buffer_m, scheduler, memory_per_worker and retries.",
        epilog="examples:\n"
        "  lifecircle batch --regions counties.gpkg --region-id adcode --network shandong.osm.pbf "
        "\\\n      --facilities sites.csv --residents people.csv --out out/shandong\n"
        "  lifecircle batch --scenario province.toml --scheduler tcp://10.0.0.5:8786 "
        "--out out/p --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("regions")
    g.add_argument("--regions", metavar="PATH", help="region polygons (GeoJSON, GPKG, Shapefile)")
    g.add_argument(
        "--region-id", metavar="FIELD", help="id field (default region_id/adcode/code/id)"
    )
    g.add_argument("--region-name", metavar="FIELD", help="name field (default name)")
    g.add_argument(
        "--regions-crs",
        metavar="CRS",
        help="coordinates of a regions file without its own CRS: wgs84 (default), cgcs2000, "
        "gcj02, bd09",
    )
    g.add_argument("--only", metavar="ID,...", help="run only these region ids")
    i = p.add_argument_group("inputs")
    i.add_argument("--scenario", metavar="FILE", help="scenario.toml (with a [batch] section)")
    i.add_argument("--network", metavar="PATH", help="one large .osm.pbf covering every region")
    i.add_argument("--facilities", metavar="PATH", help="facilities: .csv, .xlsx, .geojson, .gpkg")
    i.add_argument("--residents", metavar="PATH", help="residents (points with population)")
    i.add_argument("--standard", metavar="NAME|FILE", help="tancheng (default), gb50180 or TOML")
    i.add_argument("--mode", choices=("walk", "bike", "drive"), help="mode for every tier")
    i.add_argument("--max-snap-m", type=float, metavar="M", help="longest access leg (300 m)")
    i.add_argument("--facilities-crs", metavar="CRS", help="wgs84, cgcs2000, gcj02, bd09, EPSG:n")
    i.add_argument("--residents-crs", metavar="CRS", help="coordinate system of the residents")
    i.add_argument("--network-crs", metavar="EPSG", help="metric CRS (default: UTM per region)")
    i.add_argument(
        "--units",
        action="append",
        default=[],
        metavar="PATH",
        help="admin-unit polygons: each region also gets the report pages",
    )
    i.add_argument(
        "--upper-tiers-count", action="store_true", default=None, help="see coverage --help"
    )
    add_clip_options(i, clip=False)
    d = p.add_argument_group("Dask")
    d.add_argument(
        "--scheduler",
        metavar="local|local:N|tcp://HOST:PORT",
        help="local (default: one worker per core), local:N, or a running `dask scheduler`",
    )
    d.add_argument(
        "--memory-per-worker",
        metavar="SIZE",
        help="memory limit of each local worker (default 2GiB)",
    )
    d.add_argument(
        "--node-index",
        choices=("flex_mem", "sparse_file_array", "dense_file_array"),
        default="flex_mem",
        help="node locations during the clip pass: in memory (default) or in a temporary file",
    )
    d.add_argument("--retries", type=int, metavar="N", help="retries of a failing region (2)")
    d.add_argument("--resume", action="store_true", help="skip regions done with unchanged inputs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--limit-m", type=float, metavar="M", help="search cut-off in metres")
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="report language (zh)")
    p.add_argument("--no-maps", action="store_true", help="skip each region's map.html")
    p.set_defaults(func=run, clip_buffer_m=None)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    table = run_batch(
        args.regions,
        out=args.out,
        scenario=args.scenario,
        network=args.network,
        facilities=args.facilities,
        residents=args.residents,
        region_id=args.region_id,
        region_name=args.region_name,
        regions_crs=args.regions_crs,
        only=[s.strip() for s in args.only.split(",")] if args.only else None,
        standard=args.standard,
        mode=args.mode,
        max_snap_m=args.max_snap_m,
        facilities_crs=args.facilities_crs,
        residents_crs=args.residents_crs,
        network_crs=args.network_crs,
        units=args.units,
        upper_tiers_count=args.upper_tiers_count,
        limit_m=args.limit_m,
        lang=args.lang,
        maps=not args.no_maps,
        clip_buffer_m=args.clip_buffer_m,
        scheduler=args.scheduler,
        memory_per_worker=args.memory_per_worker,
        retries=args.retries,
        resume=args.resume,
        progress=sys.stderr.isatty(),
        echo=lambda msg: print(msg, file=sys.stderr),
        node_index=args.node_index,
    )
    ok = int((table["status"] == "ok").sum())
    failed = len(table) - ok
    print(f"{ok} of {len(table)} region(s) done, {failed} failed -> {args.out}")
    if failed:
        print(f"failed regions are listed in {args.out}/failed.csv", file=sys.stderr)
    return 0 if failed == 0 else 3
