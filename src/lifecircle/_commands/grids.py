"""``lifecircle grids``: the grid system (网格) -- coverage, balance, reach and re-gridding."""

from __future__ import annotations

import argparse
from typing import Any

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    command_output,
    inputs_from_args,
    number,
    report_lang,
)
from lifecircle.grids import DEFAULT_BAND, DEFAULT_HOUSEHOLD_SIZE
from lifecircle.pipeline import GridRun, run_grids, write_grids_outputs
from lifecircle.runs import Inputs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "grids",
        help="grid system (网格): gaps, overlaps, households per grid, reach from each grid's "
        "base, and a balanced re-gridding",
        description="Check that every household belongs to exactly one grid (gaps, overlaps and "
        "grids crossing their community), count households per grid against a band, "
        "measure the network distance from each grid's base to its households, and with "
        "--propose re-grid each community along its streets. Writes grids.csv, "
        "grid_gaps.csv, grid_overlaps.csv, grid_crossings.csv, grid_communities.csv, "
        "grids.json, grids.gpkg and grids.html (and proposed_grids.csv with --propose). "
        "Needs the communities as a unit layer (--units communities.geojson or the "
        "scenario's [[units]] with key community).",
    )
    add_input_options(p)
    p.add_argument("--grids", metavar="PATH", help="grid polygons (default: the scenario's)")
    p.add_argument("--grid-id", metavar="FIELD", help="id column of the grid file")
    p.add_argument(
        "--grids-crs",
        metavar="CRS",
        help="coordinate system of the grid file when it cannot say so itself: gcj02 (Amap), "
        "bd09 (Baidu), cgcs2000 or EPSG:n (default: the file's own, else wgs84)",
    )
    p.add_argument(
        "--household-size",
        type=number(minimum=0, exclusive_minimum=True, maximum=100),
        metavar="N",
        help=f"people per household (default {DEFAULT_HOUSEHOLD_SIZE:g}, Tancheng 2020 census); "
        "a households column in the residents wins",
    )
    p.add_argument(
        "--households-per-grid",
        metavar="MIN-MAX",
        help=f"households band of one grid (default {DEFAULT_BAND[0]:g}-{DEFAULT_BAND[1]:g})",
    )
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--base-tier", metavar="TIER", help="tier whose facilities are grid bases (default station)"
    )
    base.add_argument("--bases", metavar="PATH", help="points file of grid bases (id, lon, lat)")
    p.add_argument(
        "--walk-m",
        type=number(minimum=0, exclusive_minimum=True, maximum=100_000),
        metavar="M",
        help="walking standard for the share within reach (default: the base tier's)",
    )
    p.add_argument("--propose", action="store_true", default=None, help="propose a re-gridding")
    p.add_argument(
        "--seed",
        type=number(minimum=0, maximum=2**32 - 1, integer=True),
        default=0,
        help="seed of the re-gridding (default 0)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_output_options(p, csv=False, lang_help="map labels and terminal")
    p.add_argument(
        "--online", action="store_true", help="online basemap instead of the offline map"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    with command_output(args) as out:
        inputs = inputs_from_args(args)
        g = _run(args, inputs)
        write_grids_outputs(g, out, overwrite=True, lang=report_lang(args), offline=not args.online)
    con = Console(args)
    print_grid_summary(g.summary(), con)
    con.summary(g.summary())
    return 0


def _run(args: argparse.Namespace, inputs: Inputs) -> GridRun:
    return run_grids(
        inputs,
        grids_source=args.grids,
        grid_id=args.grid_id,
        grids_crs=args.grids_crs,
        household_size=args.household_size,
        households_per_grid=args.households_per_grid,
        base_tier=args.base_tier,
        bases=args.bases,
        walk_m=args.walk_m,
        propose=args.propose,
        seed=args.seed,
    )


def grid_summary_line(s: dict[str, Any], lang: str = "en") -> str:
    """One line: grids in band, the largest gap, the farthest household from its base."""
    far = s.get("farthest_household_m")
    if lang == "zh":
        far_text = f"{far:,.0f} 米（{s.get('farthest_grid_id')}）" if far == far else "无"
        return (
            f"网格：{s['grids_within_band']}/{s['grids']} 个户数在区间内（{s['band']} 户）；"
            f"最大缺口 {s['largest_gap_m2']:,.0f} 平方米（缺口 {s['gaps']} 处，重叠 "
            f"{s['overlaps']} 处，跨社区 {s['crossings']} 处）；距网格站点最远住户 {far_text}"
        )
    far_text = f"{far:,.0f} m ({s.get('farthest_grid_id')})" if far == far else "n/a"
    return (
        f"grids: {s['grids_within_band']}/{s['grids']} in band ({s['band']} households); "
        f"largest gap {s['largest_gap_m2']:,.0f} m² ({s['gaps']} gaps, {s['overlaps']} overlaps, "
        f"{s['crossings']} crossings); farthest household from its base {far_text}"
    )


def print_grid_summary(s: dict[str, Any], con: Console) -> None:
    """The summary line, and the proposal's when there is one."""
    con.synthetic(bool(s.get("synthetic")))
    con.line(grid_summary_line(s, "zh"), grid_summary_line(s, "en"))
    hh = f"{s['households_outside_grids']:,.0f}"
    con.line(
        f"不在任何网格内的户数：{hh}（{s['residents_outside_grids']} 个居民点）",
        f"households outside every grid: {hh} ({s['residents_outside_grids']} residents)",
    )
    if "proposed_grids" in s:
        con.line(
            f"调整方案：{s['proposed_grids']} 个网格（专职网格员），现状 {s['grids']} 个；"
            f"{s['proposed_within_band']} 个在区间内，保留 {s['proposed_kept']} 个；"
            f"{s['infeasible_communities']} 个社区无法满足（见 grid_communities.csv）",
            f"proposal: {s['proposed_grids']} grids (grid workers) against {s['grids']} today, "
            f"{s['proposed_within_band']} in band, {s['proposed_kept']} kept; "
            f"{s['infeasible_communities']} communities infeasible (see grid_communities.csv)",
        )
