"""``lifecircle isochrones``: service-area polygons (network isochrones) per facility or tier."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    inputs_from_args,
    number,
)
from lifecircle._commands.coverage import INPUT_KIND_ZH
from lifecircle._files import check_writable, write_csv
from lifecircle.errors import InputError, RejectThresholdError
from lifecircle.export import (
    GPKG_VERSIONS,
    ExportMeta,
    lon_range,
    resolve_output_crs,
    write_service_areas,
)
from lifecircle.pipeline import ServiceAreaRun, run_service_areas


def numbers(text: str) -> list[float]:
    """Comma-separated positive numbers (an argparse type)."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values or any(not (0 < v < math.inf) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "isochrones",
        help="service-area polygons: the land each facility (or tier) serves",
        description="Draw road-network service areas (trimmed network buffers): the streets from "
        "which a facility is reached within the budget, cut exactly at the budget and "
        "buffered. One polygon per facility and budget, one per tier (--dissolve "
        "tier), or non-overlapping nearest-facility catchments (--dissolve catchment). "
        "Residents are optional; when given, each polygon gets the population within "
        "its budget by network distance. Writes FILE.geojson (with a QGIS style "
        "FILE.qml) or FILE.gpkg in the chosen CRS and, when input rows were rejected, "
        "FILE_rejects.csv next to it.",
    )
    add_input_options(p, residents=False)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes",
        type=numbers,
        metavar="5,10,15",
        help="budgets in minutes at each tier's speed (default: each tier's standard)",
    )
    budget.add_argument(
        "--metres",
        "--meters",
        dest="metres",
        type=numbers,
        metavar="300,500",
        help="budgets in network metres",
    )
    p.add_argument(
        "--tier",
        action="append",
        default=[],
        metavar="KEY",
        help="only this tier (key or label); repeat for several (default: all tiers)",
    )
    p.add_argument(
        "--dissolve",
        choices=("none", "tier", "catchment"),
        default="none",
        help="none: one polygon per facility (overlaps allowed, default); tier: one "
        "per tier; catchment: the tier split among nearest facilities",
    )
    p.add_argument(
        "--rings",
        action="store_true",
        help="bands between consecutive budgets (0-5, 5-10, 10-15 min) instead of nested polygons",
    )
    p.add_argument(
        "--buffer-m",
        type=number(minimum=0, maximum=10_000),
        default=50.0,
        metavar="M",
        help="buffer width around reachable streets in metres (default 50)",
    )
    p.add_argument(
        "--simplify-m",
        type=number(minimum=0, maximum=10_000),
        default=0.0,
        metavar="M",
        help="simplification tolerance in metres (default 0: none)",
    )
    p.add_argument(
        "--crs",
        default="wgs84",
        metavar="CRS",
        help="output coordinates, as for export: wgs84 (default), cgcs2000, cgcs2000-gk "
        "(zone chosen from the data; or cgcs2000-gk:117), gcj02, bd09 or EPSG:n",
    )
    p.add_argument(
        "--gpkg-version",
        choices=GPKG_VERSIONS,
        default="1.2",
        help="GeoPackage version of a .gpkg output (default 1.2)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output .geojson or .gpkg")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_output_options(p, lang_help="terminal")
    p.set_defaults(func=run)


def rejects_path(out: str | Path) -> Path:
    """Where the rejects report goes: ``<out stem>_rejects.csv`` next to the output."""
    path = Path(out)
    return path.with_name(f"{path.stem}_rejects.csv")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    out = Path(args.out)
    if out.suffix.lower() not in (".geojson", ".json", ".gpkg"):
        raise InputError(f"--out must end in .geojson or .gpkg, got {out.name!r}")
    if not args.crs.strip().lower().startswith(("cgcs2000-gk", "cgcs2000_gk", "gk")):
        resolve_output_crs(args.crs)
    rej_path = rejects_path(out)
    try:
        inputs = inputs_from_args(args, require_residents=False)
    except RejectThresholdError as exc:  # exit 3, after writing the rejects
        if isinstance(exc.rejects, pd.DataFrame):
            write_csv(exc.rejects, rej_path, overwrite=args.overwrite, encoding=args.csv_encoding)
        raise
    rejects = inputs.rejects()
    qml = [out.with_suffix(".qml")] if out.suffix.lower() != ".gpkg" else []
    check_writable([out, *qml] + ([rej_path] if len(rejects) else []), overwrite=args.overwrite)
    run_ = run_service_areas(
        inputs,
        tiers=args.tier or None,
        minutes=args.minutes,
        metres=args.metres,
        dissolve=args.dissolve,
        rings=args.rings,
        buffer_m=args.buffer_m,
        simplify_m=args.simplify_m,
    )
    gdf = run_.to_gdf()
    ocrs = resolve_output_crs(args.crs, lon_range=lon_range({"service_areas": gdf}))
    write_service_areas(
        gdf,
        out,
        overwrite=args.overwrite,
        crs=ocrs,
        meta=ExportMeta(standard=inputs.standard, synthetic=inputs.synthetic),
        gpkg_version=args.gpkg_version,
    )
    if len(rejects):
        write_csv(rejects, rej_path, overwrite=args.overwrite, encoding=args.csv_encoding)
    con = Console(args)
    print_summary(run_, out, rej_path if len(rejects) else None, con)
    con.line(
        f"坐标系：{ocrs.label}" + (f"（{ocrs.reason}）" if ocrs.reason else ""),
        f"coordinate system: {ocrs.label}" + (f" ({ocrs.reason})" if ocrs.reason else ""),
    )
    con.summary(
        {
            **run_.result.summary(),
            "inputs": run_.inputs.input_counts(),
            "out": str(out),
            "rejects": str(rej_path) if len(rejects) else None,
            "crs": ocrs.label,
        }
    )
    return 0


def print_summary(run_: ServiceAreaRun, out: Path, rejects: Path | None, con: Console) -> None:
    """A short table: polygons, area and population per tier and budget."""
    con.synthetic(run_.inputs.synthetic)
    s = run_.result.summary()
    std = run_.inputs.standard
    con.line(
        f"{'层级':<16}{'范围':>14}{'多边形':>8}{'面积 km²':>10}{'人口':>11}",
        f"{'tier':<20}{'budget':>14}{'polygons':>10}{'area km2':>12}{'population':>13}",
    )
    for g in s["groups"]:
        pop = "" if g["population"] is None else f"{g['population']:,.0f}"
        budget = f"{g['budget_min']:.3g} min/{g['budget_m']:.0f} m"
        nums = f"{budget:>14}{g['polygons']:>10}{g['area_m2'] / 1e6:>12.3f}{pop:>13}"
        key = str(g["tier"])
        label_zh = std.tier(key).label_zh if key in std.keys else key
        con.line(f"{label_zh:\u3000<8}{nums}", f"{key:<20}{nums}")
    con.line(
        f"已写出 {s['polygons']} 个多边形：{out}", f"wrote {s['polygons']} polygon(s) to {out}"
    )
    if s["facilities_skipped"]:
        n = len(s["facilities_skipped"])
        con.line(
            f"{n} 处设施不在路网上，没有服务范围",
            f"{n} facilit(y/ies) off the network got no polygon",
        )
    for kind, c in run_.inputs.input_counts().items():
        con.line(
            f"{INPUT_KIND_ZH.get(kind, kind)}：输入 {c['input']} 行 = 使用 {c['used']} + "
            f"剔除 {c['rejected']}",
            f"{kind}: {c['input']} rows = {c['used']} used + {c['rejected']} rejected",
        )
    if rejects is not None:
        con.line(f"剔除记录：{rejects}", f"rejected rows: {rejects}")
