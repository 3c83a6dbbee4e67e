"""``lifecircle coverage``: distances and coverage per resident and tier."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from lifecircle._commands._common import add_input_options, inputs_from_args
from lifecircle.config import parse_limit
from lifecircle.pipeline import run_coverage, write_coverage_outputs
from lifecircle.report import write_report
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
        type=parse_limit,
        metavar="M|auto",
        help="search cut-off in metres, or auto: each tier cut at its own standard (same "
        "coverage, distances beyond the standard left empty); default none: exact distances "
        "for everyone",
    )
    p.add_argument(
        "--lang",
        choices=("zh", "en"),
        default="zh",
        help="language of the report pages written when units are given (default zh)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    inputs = inputs_from_args(args)
    cov = run_coverage(inputs, limit_m=args.limit_m)
    write_coverage_outputs(cov, args.out, overwrite=args.overwrite)
    if inputs.units:
        # per-unit 达标率 tables, gaps and the report pages
        write_report(cov, args.out, lang=args.lang, overwrite=args.overwrite)
    print_summary(cov)
    return 0


def print_summary(cov: CoverageRun, file: TextIO | None = None) -> None:
    """A short table on the terminal: per tier, people covered and share."""
    out = file or sys.stdout
    s = cov.summary()
    if s.get("synthetic"):
        print("SYNTHETIC demonstration data (合成示范数据) — not real Tancheng data", file=out)
    if s.get("scenario"):
        print(s["scenario"], file=out)
    print(f"{'tier':<20}{'standard':>12}{'covered':>14}{'total':>14}{'share':>9}", file=out)
    for key, t in s["tiers"].items():
        std = f"{t['threshold_m']:.0f} m"
        print(
            f"{key:<20}{std:>12}{t['population_covered']:>14,.0f}{t['population_total']:>14,.0f}"
            f"{100 * t['share']:>8.1f}%",
            file=out,
        )
    a = s["all_tiers"]
    print(
        f"{'all tiers':<20}{'':>12}{a['population_covered']:>14,.0f}{a['population_total']:>14,.0f}"
        f"{100 * a['share']:>8.1f}%",
        file=out,
    )
    pop = s.get("population_inputs")
    for kind, c in s["inputs"].items():
        if kind == "residents" and pop:
            _print_population(pop, out)
            continue
        print(f"{kind}: {c['input']} rows = {c['used']} used + {c['rejected']} rejected", file=out)


def _print_population(pop: dict[str, Any], out: TextIO) -> None:
    """How residents given as polygons, a table or a raster were placed (and what reconciles)."""
    if pop["kind"] == "raster":
        print(
            f"residents: raster {pop['raster_sum']:,.1f} people, {pop['raster_sum_in_area']:,.1f} "
            f"in the network's area, {pop['population_placed']:,.1f} placed on "
            f"{pop['points']:,} points",
            file=out,
        )
        return
    for key, label in (
        ("polygons", "polygons"),
        ("table_rows", "table rows"),
        ("buildings", "buildings"),
    ):
        if key in pop:
            c = pop[key]
            print(
                f"residents {label}: {c['input']} = {c['used']} used + {c['rejected']} rejected",
                file=out,
            )
    print(
        f"residents: {pop['population_in']:,.0f} people placed on {pop['points']:,} points "
        f"({pop['areas_at_point']} polygons without a street, at a point inside)",
        file=out,
    )
