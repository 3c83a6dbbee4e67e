"""``lifecircle demo``: the synthetic Tancheng demonstration, end to end (what ``make demo`` runs).

Every path is relative to the current working directory unless given absolutely: the scenario
(``data/demo/tancheng``), the tables (``out/tancheng_demo``) and the map (``maps/``). An installed
lifecircle therefore runs the demonstration in any empty folder; it never writes into the package.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from lifecircle import demo
from lifecircle._commands._common import (
    Console,
    add_output_options,
    check_deliverables,
    command_output,
    number,
    report_lang,
    settled_paths,
    write_deliverables,
)
from lifecircle._commands.coverage import print_summary
from lifecircle._commands.grids import grid_summary_line
from lifecircle._outset import output_set
from lifecircle.maps import resolve_basemap, write_coverage_map, write_map_sheet
from lifecircle.pipeline import (
    load_inputs,
    run_coverage,
    run_grids,
    run_report,
    tier_service_areas,
    write_coverage_outputs,
    write_grids_outputs,
)
from lifecircle.report import CoverageReport, grids_report_tables
from lifecircle.runs import CoverageRun

logger = logging.getLogger(__name__)

#: Scenario folder of ``--scale county`` (relative to the working directory).
COUNTY_DATA_DIR = Path("out") / "tancheng_county" / "data"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "demo",
        help="build and analyse the SYNTHETIC Tancheng demonstration scenario",
        description="Generate the synthetic Tancheng demonstration scenario (if missing), compute "
        "coverage, service areas, the per-community/grid report and gaps, and write "
        "the offline HTML map maps/tancheng_demo.html. The data are SYNTHETIC: a "
        "generated county seat inside the real county outline. Relative paths are "
        "relative to the current folder.",
    )
    p.add_argument("--regenerate", action="store_true", help="generate the scenario files again")
    p.add_argument(
        "--seed",
        type=number(minimum=0, maximum=2**32 - 1, integer=True),
        default=2020,
        help="random seed of the generator (default 2020)",
    )
    p.add_argument(
        "--scale",
        choices=("town", "county"),
        default="town",
        help="town: the county seat, ~200,000 people (default); county: the whole county, "
        "~885,000 people (written to out/tancheng_county/data)",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help=f"scenario folder (default {demo.DEFAULT_DEMO_DIR.as_posix()})",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="out/tancheng_demo",
        help="folder for tables and reports (default out/tancheng_demo)",
    )
    p.add_argument(
        "--map",
        metavar="PATH",
        default="maps/tancheng_demo.html",
        help="HTML map to write (default maps/tancheng_demo.html)",
    )
    p.add_argument(
        "--online",
        action="store_true",
        help="load Leaflet from a CDN instead of inlining it (default: the map opens offline)",
    )
    p.add_argument(
        "--basemap",
        metavar="NAME|URL",
        help="basemap of the HTML map: none (default), osm, tianditu, tianditu-img (need "
        "TIANDITU_KEY), amap (GCJ-02: layers shifted to match) or an XYZ URL",
    )
    add_output_options(p, workbook=True, report=True, lang_help="maps, reports and terminal")
    p.add_argument(
        "--population",
        choices=("points", "table"),
        default="points",
        help="points: one point per residential building (default); table: a census-style "
        "population table per community (GB18030, title row) joined to the community polygons "
        "and placed along their streets (scenario_population_table.toml)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    t0 = time.perf_counter()
    resolve_basemap(args.basemap)  # a missing 天地图 key fails before the work
    if args.data:
        data = Path(args.data)
    elif args.scale == "county":
        data = COUNTY_DATA_DIR
    else:
        data = demo.DEFAULT_DEMO_DIR
    name = "scenario_population_table.toml" if args.population == "table" else "scenario.toml"
    scenario = data / name
    if args.regenerate or not scenario.exists():
        if not args.quiet:
            print(
                f"generating the SYNTHETIC {args.scale} scenario (seed {args.seed}) in {data} …",
                file=sys.stderr,
            )
        # the whole scenario appears at once: never roads of one seed beside sites of another
        with output_set(
            data,
            overwrite=True,
            command=["lifecircle", *getattr(args, "argv", [])],
            extra_suffixes=frozenset({".osm", ".toml"}),
        ) as tmp:
            demo.generate(tmp, seed=args.seed, scale=args.scale)
    inputs = load_inputs(scenario=scenario)
    cov = run_coverage(inputs)
    out = Path(args.out)
    lang = report_lang(args)
    args.overwrite = True
    with command_output(args, overwrite=True) as tmp_out:
        check_deliverables(args, tmp_out, report=True)
        write_coverage_outputs(cov, tmp_out, overwrite=True, csv_encoding=args.csv_encoding)
        rep = run_report(cov)
        grids = run_grids(inputs)
        write_grids_outputs(grids, tmp_out, overwrite=True, lang=lang, offline=not args.online)
        # the grid system is a section of the report
        grid_sections = grids_report_tables(
            {"grids": grids.result.grids}, grids.result.communities, grids.summary(), lang=lang
        )
        written = write_deliverables(
            args, cov, rep, tmp_out, overwrite=True, sections=grid_sections
        )
    # where the files are once the output set is in place
    report_paths = settled_paths(written, tmp_out, out)
    areas = tier_service_areas(cov)
    # colour communities by the 5-minute tier: the gaps a planner acts on first
    five_minute = cov.result.standard.tiers[-1].key
    map_path = write_coverage_map(
        cov,
        args.map,
        offline=not args.online,
        basemap=args.basemap,
        lang=lang,
        overwrite=True,
        report=rep,
        service_areas=areas,
        choropleth_tier=five_minute,
    )
    # the map sheet (图件): A4 landscape, 300 dpi, legend and 制图信息 outside the data
    png = write_map_sheet(
        cov, Path(args.map).with_suffix(".png"), report=rep, overwrite=True, lang=lang
    )
    con = Console(args)
    print_summary(cov, con)
    if inputs.population:
        pop = inputs.population
        con.line(
            f"{pop['polygons']['used']} 个社区多边形 + 人口表：{pop['population']:,.0f} 人落到 "
            f"{pop['points']:,} 个道路点（{pop['areas_at_point']} 个多边形无道路）",
            f"people from {pop['polygons']['used']} community polygons + the population table: "
            f"{pop['population']:,.0f} placed on {pop['points']:,} street points "
            f"({pop['areas_at_point']} polygons without a street)",
        )
    print_worst_units(rep, cov, key="community", con=con)
    con.line(
        f"\n{grid_summary_line(grids.summary(), 'zh')}",
        f"\n{grid_summary_line(grids.summary(), 'en')}",
    )
    size = f"{Path(map_path).stat().st_size / 1e6:.1f} MB"
    con.line(
        f"\n地图：  {map_path}（离线可用；{size}）",
        f"\nmap:    {map_path}  (opens offline; {size})",
    )
    con.line(f"        {png}")
    con.line(
        f"表格：  {out}/（residents.csv、summary.json、units_*.csv、gaps.csv、report.html、"
        "report.pdf、lifecircle.xlsx、grids.csv、grids.html …）",
        f"tables: {out}/ (residents.csv, summary.json, units_*.csv, gaps.csv, report.html, "
        "report.pdf, lifecircle.xlsx, grids.csv, grids.html …)",
    )
    elapsed_s = time.perf_counter() - t0
    con.line(f"用时 {elapsed_s:.1f} 秒", f"done in {elapsed_s:.1f} s")
    con.summary(
        {
            **cov.summary(),
            "grids": grids.summary(),
            "files": {
                "map": str(map_path),
                "png": str(png),
                **{k: str(v) for k, v in report_paths.items()},
            },
            "elapsed_s": round(elapsed_s, 2),
        }
    )
    return 0


def print_worst_units(
    rep: CoverageReport, cov: CoverageRun, *, key: str, con: Console, n: int = 3
) -> None:
    """Name the communities with the lowest share for the lowest tier (the 5-minute circle).

    Parameters
    ----------
    rep : CoverageReport
        Per-unit tables of the run.
    cov : CoverageRun
        The coverage run (for the tier labels).
    key : str
        Unit level, e.g. ``"community"``; nothing is printed if the report has no such level.
    con : Console
        Where and in which language to print.
    n : int, default 3
        How many units to name.
    """
    if key not in rep.units:
        return
    tab = rep.units[key]
    tier = cov.result.standard.tiers[-1]
    col = f"{tier.key}_share"
    if col not in tab.columns:
        return
    real = tab[(tab["unit_id"].astype(str) != "") & (tab["population"] > 0)]
    if "outside" in real.columns:
        real = real[~real["outside"].astype(bool)]
    worst = real.sort_values(col).head(n)
    median = float(real[col].median())
    con.line(
        f"\n{tier.label_zh}（{tier.minutes:.0f} 分钟 / {tier.threshold_m:.0f} 米）"
        f"达标率最低的社区；社区中位数 {100 * median:.1f}%：",
        f"\nworst-served communities for {tier.label_en} ({tier.minutes:.0f} min / "
        f"{tier.threshold_m:.0f} m); median community {100 * median:.1f}%:",
    )
    for r in worst.itertuples():
        share = f"{100 * getattr(r, col):.1f}%"
        con.line(
            f"  {r.name}（{r.unit_id}）：{r.population:,.0f} 人中 {share}",
            f"  {r.name} ({r.unit_id}): {share} of {r.population:,.0f} people",
        )
