"""``lifecircle map``: interactive HTML map (optionally fully offline) and static PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    inputs_from_args,
    number,
    report_lang,
)
from lifecircle._files import check_writable
from lifecircle.config import ServiceStandard
from lifecircle.errors import InputError
from lifecircle.maps import resolve_basemap, write_coverage_map, write_map_sheet
from lifecircle.pipeline import run_coverage, run_report

if TYPE_CHECKING:
    import geopandas as gpd


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "map",
        help="interactive HTML coverage map (opens offline) and static map sheets (PNG/PDF/SVG)",
        description="Compute coverage and draw it: facilities per tier, residents covered or not, "
        "per-community/grid share covered (达标率), coverage gaps and boundaries, with a "
        "layer control, legend and scale bar. Every JavaScript/CSS asset is inlined so "
        "the page opens on an intranet without internet access (--online: from CDNs).",
    )
    add_input_options(p)
    p.add_argument("--out", required=True, metavar="FILE.html", help="the HTML map to write")
    p.add_argument(
        "--online",
        action="store_true",
        help="load Leaflet from a CDN instead of inlining it (by default the page is "
        "self-contained and opens on an intranet without internet access)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="the default (kept for old scripts): self-contained page, no external JavaScript/CSS",
    )
    p.add_argument(
        "--basemap",
        metavar="NAME|URL",
        help="basemap: none (default: the road network, no request at all), osm, tianditu "
        "(天地图 vector, needs TIANDITU_KEY), tianditu-img (天地图 imagery), amap (高德, GCJ-02: "
        "the layers are shifted to GCJ-02 to line up) or an XYZ URL template",
    )
    p.add_argument(
        "--tiles",
        metavar="URL",
        help="XYZ tile URL template, e.g. an intranet tile server "
        "'http://tiles.local/{z}/{x}/{y}.png' or Tianditu with your key",
    )
    p.add_argument("--tiles-attr", metavar="TEXT", help="attribution shown for --tiles")
    p.add_argument(
        "--service-areas",
        metavar="FILE",
        help="service-area polygons (GeoJSON/GPKG with columns tier, budget_m) to draw",
    )
    g = p.add_argument_group("map sheets (图件)")
    g.add_argument("--png", metavar="FILE.png", help="also write a map sheet as PNG (at --dpi)")
    g.add_argument("--pdf", metavar="FILE.pdf", help="also write a map sheet as vector PDF")
    g.add_argument("--svg", metavar="FILE.svg", help="also write a map sheet as vector SVG")
    g.add_argument(
        "--dpi", type=int, default=300, metavar="N", help="PNG resolution (default 300, for print)"
    )
    g.add_argument(
        "--paper", choices=("A4", "A3"), default="A4", help="sheet size, landscape (default A4)"
    )
    g.add_argument(
        "--per-tier",
        action="store_true",
        help="one sheet per tier (FILE_<tier>.png …) instead of all tiers together",
    )
    g.add_argument(
        "--png-tier",
        metavar="TIER",
        help="tier whose coverage colours the sheets (default: all tiers together)",
    )
    p.add_argument(
        "--choropleth-tier",
        metavar="TIER",
        help="tier whose share colours the unit choropleths (default: all tiers together)",
    )
    p.add_argument(
        "--gap-cell-m",
        type=number(minimum=0, exclusive_minimum=True, maximum=100_000),
        default=200.0,
        metavar="M",
        help="cell size for clustering uncovered residents into gaps (default 200 m)",
    )
    add_output_options(p, csv=False, lang_help="map labels and terminal")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _read_service_areas(path: str, standard: ServiceStandard) -> gpd.GeoDataFrame:
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path)
    except Exception as exc:
        raise InputError(f"cannot read service areas {path}: {exc}") from exc
    missing = {"tier", "budget_m"} - set(gdf.columns)
    if missing:
        raise InputError(f"service areas {path}: missing column(s) {', '.join(sorted(missing))}")
    gdf["tier"] = [standard.resolve_tier(str(t)) or str(t) for t in gdf["tier"]]
    return gdf.to_crs(4326) if gdf.crs is not None else gdf.set_crs(4326)


def _sheet_paths(
    args: argparse.Namespace, standard: ServiceStandard
) -> list[tuple[Path, str | None]]:
    """Every map sheet to write: ``(path, tier)``; with ``--per-tier`` one per tier and format."""
    out: list[tuple[Path, str | None]] = []
    for given in (args.png, args.pdf, args.svg):
        if not given:
            continue
        path = Path(given)
        if args.per_tier:
            out += [(path.with_name(f"{path.stem}_{k}{path.suffix}"), k) for k in standard.keys]
        else:
            out.append((path, args.png_tier))
    return out


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out} should end in .html")
    resolve_basemap(args.basemap)  # a missing 天地图 key fails before the work
    inputs = inputs_from_args(args)
    sheets = _sheet_paths(args, inputs.standard)
    check_writable([out] + [p for p, _ in sheets], overwrite=args.overwrite)
    for key in (args.png_tier, args.choropleth_tier):
        if key is not None and key not in inputs.standard.keys:
            raise InputError(f"unknown tier {key!r}; tiers are {', '.join(inputs.standard.keys)}")
    cov = run_coverage(inputs)
    rep = run_report(cov, gap_cell_m=args.gap_cell_m)
    sa = _read_service_areas(args.service_areas, inputs.standard) if args.service_areas else None
    write_coverage_map(
        cov,
        out,
        offline=not args.online,
        basemap=args.basemap,
        tiles=args.tiles,
        tiles_attr=args.tiles_attr,
        service_areas=sa,
        report=rep,
        lang=report_lang(args),
        overwrite=args.overwrite,
        choropleth_tier=args.choropleth_tier,
    )
    con = Console(args)
    size = f"{out.stat().st_size / 1e6:.1f} MB"
    con.line(
        f"地图：{out}（{size}{'' if args.online else '，离线可用'}）",
        f"map: {out} ({size}{'' if args.online else ', opens offline'})",
    )
    files = {"map": str(out)}
    for path, tier in sheets:
        write_map_sheet(
            cov,
            path,
            report=rep,
            lang=report_lang(args),
            tier=tier,
            paper=args.paper,
            dpi=args.dpi,
            service_areas=sa,
            overwrite=args.overwrite,
        )
        con.line(f"图件：{path}", f"map sheet: {path}")
        files[f"sheet_{tier or 'all'}_{path.suffix.lstrip('.')}"] = str(path)
    con.summary({**cov.summary(), "files": files})
    return 0
