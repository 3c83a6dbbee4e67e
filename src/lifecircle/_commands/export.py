"""``lifecircle export``: every result layer as GeoJSON, GeoPackage, Shapefile or CSV, any CRS."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    command_output,
    inputs_from_args,
    limit_option,
    number,
)
from lifecircle._commands.isochrones import numbers
from lifecircle.export import GPKG_VERSIONS, SHP_ENCODINGS, parse_layers, resolve_output_crs
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
        "polygons are loaded, units; 'all' for every layer this run can build, the others "
        "are listed with the reason). GeoPackage and GeoJSON exports add a 'rejects' point "
        "layer when rejected input rows have coordinates",
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
        type=number(minimum=0, maximum=15, integer=True),
        metavar="N",
        help="coordinate decimals (default 6 for degrees, 2 for metres)",
    )
    p.add_argument(
        "--limit-m",
        type=limit_option,
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
    p.add_argument(
        "--gpkg-version",
        choices=GPKG_VERSIONS,
        default="1.2",
        help="GeoPackage version (default 1.2: opens without warnings in QGIS 3.28 LTR / "
        "GDAL 3.6 and ArcGIS)",
    )
    p.add_argument(
        "--shp-encoding",
        choices=tuple(SHP_ENCODINGS),
        default="utf-8",
        help="Shapefile text encoding: utf-8 with a .cpg (default) or cp936 (GBK) for "
        "software that ignores .cpg (ArcMap 10.x, older SuperMap)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes",
        type=numbers,
        metavar="5,10,15",
        help="service_areas layer: budgets in minutes at each tier's speed (default: each "
        "tier's standard)",
    )
    budget.add_argument(
        "--metres",
        "--meters",
        dest="metres",
        type=numbers,
        metavar="300,500",
        help="service_areas layer: budgets in network metres",
    )
    p.add_argument(
        "--rings",
        action="store_true",
        help="service_areas layer: bands between consecutive budgets instead of nested polygons",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_output_options(p, csv=False, lang_help="terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    # cheap argument checks before the (slow) inputs are loaded
    if args.layers:
        parse_layers(args.layers)  # unknown names fail here, before loading anything
    if not args.crs.strip().lower().startswith(("cgcs2000-gk", "cgcs2000_gk", "gk")):
        resolve_output_crs(args.crs)
    single_file = Path(args.out).suffix.lower() == ".gpkg"
    # a folder of files (Shapefile sets, one file per layer) is written as one atomic set; a
    # single .gpkg file is written atomically by the writer itself
    ctx = contextlib.nullcontext(Path(args.out)) if single_file else command_output(args)
    with ctx as tmp:
        inputs = inputs_from_args(args)
        res = run_export(
            inputs,
            out=tmp,
            layers=args.layers,
            fmt=args.fmt,
            crs=args.crs,
            precision=args.precision,
            overwrite=args.overwrite or not single_file,
            limit_m=args.limit_m,
            score_tier=args.score_tier,
            candidates=args.candidates,
            gpkg_version=args.gpkg_version,
            shp_encoding=args.shp_encoding,
            area_minutes=args.minutes,
            area_metres=args.metres,
            area_rings=args.rings,
        )

    def shown(path: str | Path) -> Path:
        """Where a written file is once the output set is in place."""
        p = Path(path)
        return (
            p if single_file or not p.is_relative_to(tmp) else Path(args.out) / p.relative_to(tmp)
        )

    s = res.summary()
    for info in s["layers"].values():  # --json names the files where they are now
        info["files"] = [str(shown(f)) for f in info["files"]]
    con = Console(args)
    con.synthetic(inputs.synthetic)
    con.line(f"坐标系：{s['crs_label']}", f"coordinate system: {s['crs_label']}")
    if s["crs_reason"] and s["crs_reason"] != "given":
        con.line(f"  选择原因：{s['crs_reason']}", f"  chosen because {s['crs_reason']}")
    for layer, info in s["layers"].items():
        if layer == "rejects_csv":
            continue
        con.line(
            f"{layer:<15}{info['features']:>9,} 个要素  {info['files'][0]}",
            f"{layer:<15}{info['features']:>9,} features  {info['files'][0]}",
        )
    for layer, why in s["skipped"].items():
        con.line(f"未导出 {layer}：{why}", f"skipped {layer}: {why}")
    n_rej = len(inputs.rejects())
    if n_rej:
        mapped = s["layers"].get("rejects", {}).get("features", 0)
        rej_file = s["layers"]["rejects_csv"]["files"][0]
        con.line(
            f"剔除 {n_rej} 行输入，见 {rej_file}"
            + (f"（其中 {mapped} 行有坐标，见 rejects 图层）" if mapped else ""),
            f"{n_rej} input row(s) rejected, listed in {rej_file}"
            + (f" ({mapped} with coordinates in the rejects layer)" if mapped else ""),
        )
    con.summary(s)
    return 0
