"""``lifecircle report``: coverage per community/grid (达标率), coverage gaps, report pages."""

from __future__ import annotations

import argparse

from lifecircle._commands._common import add_input_options, inputs_from_args
from lifecircle.config import parse_limit
from lifecircle.pipeline import run_coverage, run_report
from lifecircle.report import write_report


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "report",
        help="coverage per community and grid (达标率), coverage gaps, report.md/.html",
        description="Compute coverage, then for every unit (sub-district, and each --units layer "
        "such as communities and grids) and tier the population, population covered, "
        "share (达标率), elderly coverage and distances, units ranked worst first; and "
        "clusters of uncovered residents (gaps) ranked by population. Writes "
        "units_*.csv, units.json, gaps.csv/.json/.geojson, report.md and report.html "
        "to --out.",
    )
    add_input_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--lang", choices=("zh", "en"), default="zh", help="report language (default zh)"
    )
    p.add_argument(
        "--gap-cell-m",
        type=float,
        default=200.0,
        metavar="M",
        help="cell size for clustering uncovered residents into gaps (default 200 m)",
    )
    p.add_argument(
        "--limit-m",
        type=parse_limit,
        metavar="M|auto",
        help="search cut-off in metres, or auto (each tier at its own standard); default none: "
        "exact distances for everyone",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    inputs = inputs_from_args(args)
    cov = run_coverage(inputs, limit_m=args.limit_m)
    rep = run_report(cov, gap_cell_m=args.gap_cell_m)
    paths = write_report(cov, args.out, lang=args.lang, overwrite=args.overwrite, report=rep)
    if inputs.synthetic:
        print("SYNTHETIC demonstration data (合成示范数据) — not real data")
    for lv in rep.levels:
        tab = rep.units[lv.key]
        ranked = tab[tab["rank"].notna()]
        if len(ranked) > 1:
            worst = ranked.iloc[0]
            print(
                f"{lv.label_en} ({len(ranked)}): worst {worst['unit_id']} {worst['name']}, "
                f"all tiers {100 * worst['all_share']:.1f}%"
            )
    g = rep.gaps.table
    print(
        f"gaps: {len(g)}"
        + (
            f", largest {g.iloc[0]['gap_id']} with {g.iloc[0]['population']:,.0f} people"
            if len(g)
            else ""
        )
    )
    print(f"report: {paths['report_html']}")
    return 0
