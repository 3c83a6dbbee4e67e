"""``lifecircle report``: coverage per community/grid (达标率), coverage gaps, report pages."""

from __future__ import annotations

import argparse

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    check_deliverables,
    command_output,
    inputs_from_args,
    limit_option,
    number,
    settled_paths,
    write_deliverables,
)
from lifecircle.pipeline import run_coverage, run_report


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
    add_output_options(p, workbook=True, report=True)
    p.add_argument(
        "--gap-cell-m",
        type=number(minimum=0, exclusive_minimum=True, maximum=100_000),
        default=200.0,
        metavar="M",
        help="cell size for clustering uncovered residents into gaps (default 200 m)",
    )
    p.add_argument(
        "--limit-m",
        type=limit_option,
        metavar="M|auto",
        help="search cut-off in metres, or auto (each tier at its own standard); default none: "
        "exact distances for everyone",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    with command_output(args) as out:
        check_deliverables(args, out, report=True)
        inputs = inputs_from_args(args)
        cov = run_coverage(inputs, limit_m=args.limit_m)
        rep = run_report(cov, gap_cell_m=args.gap_cell_m)
        written = write_deliverables(args, cov, rep, out, overwrite=True)
    paths = settled_paths(written, out, args.out)
    con = Console(args)
    con.synthetic(inputs.synthetic)
    worst_units = {}
    for lv in rep.levels:
        tab = rep.units[lv.key]
        ranked = tab[tab["rank"].notna()]
        if len(ranked) > 1:
            worst = ranked.iloc[0]
            worst_units[lv.key] = {
                "unit_id": worst["unit_id"],
                "name": worst["name"],
                "all_share": worst["all_share"],
            }
            share = f"{100 * worst['all_share']:.1f}%"
            con.line(
                f"{lv.label_zh}（{len(ranked)} 个）：最差 {worst['name']}（{worst['unit_id']}），"
                f"全部层级达标率 {share}",
                f"{lv.label_en} ({len(ranked)}): worst {worst['unit_id']} {worst['name']}, "
                f"all tiers {share}",
            )
    g = rep.gaps.table
    largest = (
        {"gap_id": g.iloc[0]["gap_id"], "population": g.iloc[0]["population"]} if len(g) else None
    )
    con.line(
        f"覆盖缺口：{len(g)} 个"
        + (f"，最大缺口 {largest['population']:,.0f} 人" if largest else ""),
        f"gaps: {len(g)}"
        + (
            f", largest {largest['gap_id']} with {largest['population']:,.0f} people"
            if largest
            else ""
        ),
    )
    con.line(f"报告：{paths['report_html']}", f"report: {paths['report_html']}")
    if "report_pdf" in paths:
        con.line(f"      {paths['report_pdf']}")
    if "workbook" in paths:
        con.line(f"工作簿：{paths['workbook']}", f"workbook: {paths['workbook']}")
    con.summary(
        {
            **cov.summary(),
            "worst_units": worst_units,
            "gaps": len(g),
            "largest_gap": largest,
            "files": {k: str(v) for k, v in paths.items()},
        }
    )
    return 0
