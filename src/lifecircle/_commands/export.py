"""``lifecircle export``: every result layer as GeoJSON, GeoPackage, Shapefile or CSV, any CRS."""

from __future__ import annotations

import argparse

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    inputs_from_args,
)
from lifecircle.config import parse_limit
from lifecircle.export import parse_layers, resolve_output_crs
from lifecircle.pipeline import run_export


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "export",
        help="GIS layers (GeoJSON, GeoPackage, Shapefile, CSV) in WGS84, CGCS2000, "
        "Gauss-Kruger or GCJ-02",
        description="Run the coverage analysis and export result layers for ArcGIS, QGIS, "
        "SuperMap or Amap dashboards. Layers: facilities, residents, units, "
        "service_areas, catchments, gaps, candidates, network (or all). One "
        "multi-layer GeoPackage, or one file per layer for the other formats. See "
        "docs/gis-export.md for the attribute schema.",
    )
    add_input_options(p)
    p.add_argument(
        "--layers",
        metavar="LIST",
        help="comma-separated layers (default facilities, residents and, when unit "
        "polygons are loaded, units; 'all' for every layer)",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        default="geojson",
        choices=("geojson", "gpkg", "shp", "csv"),
        help="output format (default geojson)",
    )
    p.add_argument(
        "--crs",
        default="wgs84",
        metavar="CRS",
        help="output coordinates: wgs84 (default), cgcs2000 (EPSG:4490), cgcs2000-gk "
        "(3-degree Gauss-Kruger zone chosen from the data; or cgcs2000-gk:117), "
        "gcj02 (Amap/Tencent), bd09 (Baidu) or EPSG:n",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="output folder (one file per layer), or a .gpkg file for --format gpkg",
    )
    p.add_argument(
        "--precision",
        type=int,
        metavar="N",
        help="coordinate decimals (default 6 for degrees, 2 for metres)",
    )
    p.add_argument(
        "--limit-m",
        type=parse_limit,
        metavar="M|auto",
        help="search cut-off in metres for the coverage run, or auto (each tier at its own "
        "standard); default none",
    )
    p.add_argument(
        "--score-tier",
        metavar="TIER",
        help="for the candidates layer: score candidate sites of this tier",
    )
    p.add_argument(
        "--candidates",
        metavar="PATH|auto",
        help="candidate sites to score (a file, auto or auto:N; default the scenario's)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_output_options(p, csv=False, lang_help="terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    # cheap argument checks before the (slow) inputs are loaded
    names = parse_layers(args.layers) if args.layers else None
    if not args.crs.strip().lower().startswith(("cgcs2000-gk", "cgcs2000_gk", "gk")):
        resolve_output_crs(args.crs)
    inputs = inputs_from_args(args)
    res = run_export(
        inputs,
        out=args.out,
        layers=names,
        fmt=args.fmt,
        crs=args.crs,
        precision=args.precision,
        overwrite=args.overwrite,
        limit_m=args.limit_m,
        score_tier=args.score_tier,
        candidates=args.candidates,
    )
    s = res.summary()
    con = Console(args)
    con.synthetic(inputs.synthetic)
    con.line(f"坐标系：{s['crs_label']}", f"coordinate system: {s['crs_label']}")
    if s["crs_reason"] and s["crs_reason"] != "given":
        con.line(f"  选择原因：{s['crs_reason']}", f"  chosen because {s['crs_reason']}")
    for layer, info in s["layers"].items():
        con.line(
            f"{layer:<15}{info['features']:>9,} 个要素  {info['files'][0]}",
            f"{layer:<15}{info['features']:>9,} features  {info['files'][0]}",
        )
    n_rej = len(inputs.rejects())
    if n_rej:
        con.line(
            f"剔除 {n_rej} 行输入，见 rejects.csv",
            f"{n_rej} input row(s) rejected; see rejects.csv",
        )
    con.summary(s)
    return 0
