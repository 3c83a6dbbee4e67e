"""``lifecircle coverage``: distances and coverage per resident and tier."""

from __future__ import annotations

import argparse
from typing import Any

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    check_deliverables,
    command_output,
    inputs_from_args,
    limit_option,
    write_deliverables,
)
from lifecircle._files import TABLE_FORMATS
from lifecircle.pipeline import run_coverage, run_report, write_coverage_outputs
from lifecircle.runs import CoverageRun


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "coverage",
        help="network distance from every resident to each tier, and coverage",
        description="Compute every resident's road-network distance to the nearest facility of "
        "each tier and whether it is within the standard. Writes residents.csv, "
        "facilities.csv, summary.json and rejects.csv to --out; with --units (or units "
        "in the scenario) also the per-unit tables (units_*.csv, units.json), the gaps "
        "(gaps.csv/json/geojson) and report.md / report.html.",
    )
    add_input_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--limit-m",
        type=limit_option,
        metavar="M|auto",
        help="search cut-off in metres, or auto: each tier cut at its own standard (same "
        "coverage, distances beyond the standard left empty); default none: exact distances "
        "for everyone",
    )
    add_output_options(p, workbook=True, report=True)
    p.add_argument(
        "--format",
        dest="table_format",
        choices=TABLE_FORMATS,
        default="csv",
        help="format of the two large tables: csv (default; opens in Excel) or parquet "
        "(residents.parquet and facilities.parquet as GeoParquet: typed, WGS84 points, "
        "compressed; for millions of residents, QGIS 3.26+, ArcGIS Pro 3.2+, geopandas)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    with command_output(args) as out:
        inputs = inputs_from_args(args)
        check_deliverables(args, out, report=bool(inputs.units))
        cov = run_coverage(inputs, limit_m=args.limit_m)
        write_coverage_outputs(
            cov,
            out,
            overwrite=True,
            csv_encoding=args.csv_encoding,
            table_format=args.table_format,
        )
        # with units: per-unit 达标率 tables, gaps, report.html/.pdf; always the workbook
        rep = run_report(cov) if inputs.units else None
        write_deliverables(args, cov, rep, out, overwrite=True)
    con = Console(args)
    print_summary(cov, con)
    con.summary(cov.summary())
    return 0


def print_summary(cov: CoverageRun, con: Console) -> None:
    """A short table on the terminal: per tier, people covered and share."""
    s = cov.summary()
    std = cov.result.standard
    con.synthetic(bool(s.get("synthetic")))
    if s.get("scenario"):
        con.line(str(s["scenario"]))
    con.line(
        f"{'层级':<16}{'标准':>10}{'覆盖人口':>10}{'总人口':>11}{'达标率':>6}",
        f"{'tier':<20}{'standard':>12}{'covered':>14}{'total':>14}{'share':>9}",
    )
    for key, t in s["tiers"].items():
        tier = std.tier(key)
        std_m = f"{t['threshold_m']:.0f} m"
        nums = f"{t['population_covered']:>14,.0f}{t['population_total']:>14,.0f}"
        share = f"{100 * t['share']:>8.1f}%"
        label_zh = tier.label_zh + "\u3000" * max(0, 8 - len(tier.label_zh))
        con.line(f"{label_zh}{std_m:>12}{nums}{share}", f"{key:<20}{std_m:>12}{nums}{share}")
    a = s["all_tiers"]
    nums = (
        f"{a['population_covered']:>14,.0f}{a['population_total']:>14,.0f}{100 * a['share']:>8.1f}%"
    )
    con.line(f"{'全部层级':\u3000<8}{'':>12}{nums}", f"{'all tiers':<20}{'':>12}{nums}")
    pop = s.get("population_inputs")
    for kind, c in s["inputs"].items():
        if kind == "residents" and pop:
            _print_population(pop, con)
            continue
        con.line(
            f"{INPUT_KIND_ZH.get(kind, kind)}：输入 {c['input']} 行 = 使用 {c['used']} + "
            f"剔除 {c['rejected']}",
            f"{kind}: {c['input']} rows = {c['used']} used + {c['rejected']} rejected",
        )


#: Chinese names of the input files in the terminal summary.
INPUT_KIND_ZH = {"facilities": "设施", "residents": "居民", "candidates": "候选点"}


def _print_population(pop: dict[str, Any], con: Console) -> None:
    """How residents given as polygons, a table or a raster were placed (and what reconciles)."""
    if pop["kind"] == "raster":
        con.line(
            f"居民：栅格 {pop['raster_sum']:,.1f} 人，"
            f"路网范围内 {pop['raster_sum_in_area']:,.1f} 人，"
            f"{pop['population_placed']:,.1f} 人落到 {pop['points']:,} 个点",
            f"residents: raster {pop['raster_sum']:,.1f} people, {pop['raster_sum_in_area']:,.1f} "
            f"in the network's area, {pop['population_placed']:,.1f} placed on "
            f"{pop['points']:,} points",
        )
        return
    for key, label_zh, label in (
        ("polygons", "多边形", "polygons"),
        ("table_rows", "表格行", "table rows"),
        ("buildings", "建筑", "buildings"),
    ):
        if key in pop:
            c = pop[key]
            con.line(
                f"居民{label_zh}：{c['input']} = 使用 {c['used']} + 剔除 {c['rejected']}",
                f"residents {label}: {c['input']} = {c['used']} used + {c['rejected']} rejected",
            )
    con.line(
        f"居民：{pop['population_in']:,.0f} 人落到 {pop['points']:,} 个点"
        f"（{pop['areas_at_point']} 个无道路的多边形放在其内部一点）",
        f"residents: {pop['population_in']:,.0f} people placed on {pop['points']:,} points "
        f"({pop['areas_at_point']} polygons without a street, at a point inside)",
    )
