"""``lifecircle score``: score candidate sites for one tier and choose the best k."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from lifecircle._commands._common import (
    Console,
    add_input_options,
    add_output_options,
    check_deliverables,
    command_output,
    inputs_from_args,
    number,
    report_lang,
    workbook_path,
)
from lifecircle._commands.coverage import INPUT_KIND_ZH
from lifecircle.errors import InputError
from lifecircle.maps import resolve_basemap
from lifecircle.pipeline import ScoringRun, run_scoring, write_scoring_outputs
from lifecircle.runs import Inputs
from lifecircle.siting import PARTIAL_DIR_NAME
from lifecircle.workbook import write_workbook


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the subcommand to the parser."""
    p = sub.add_parser(
        "score",
        help="score candidate sites for a tier and choose the best k (maximal covering)",
        description="For every candidate site: how many residents it would newly bring within the "
        "tier's standard, overlap with existing coverage, nearest existing facility, "
        "and a one-line reason; optionally choose the k sites that together cover the "
        "most (greedy, or exact MCLP with CBC). Writes candidates.csv/.geojson, "
        "picks.csv, summary.json, rejects.csv and candidates.html to --out.",
    )
    add_input_options(p)
    g = p.add_argument_group("scoring")
    g.add_argument(
        "--candidates",
        metavar="PATH|auto[:N]",
        help="candidate sites (.csv, .xlsx, .geojson, .gpkg; id, lon, lat, optional "
        "name and capacity), or auto[:N] to propose up to N sites in the gaps "
        "(default 200); default the scenario's [candidates]",
    )
    g.add_argument(
        "--candidates-crs",
        metavar="CRS",
        help="coordinate system of the candidates file (like --facilities-crs)",
    )
    g.add_argument(
        "--tier",
        required=True,
        metavar="KEY",
        help="tier to score for, key or label (e.g. station, 服务站)",
    )
    g.add_argument(
        "--select",
        type=number(minimum=0, integer=True),
        default=0,
        metavar="K",
        help="choose the K sites that together newly cover the most (default 0: score only)",
    )
    g.add_argument(
        "--method",
        choices=("greedy", "exact"),
        default="greedy",
        help="selection method: greedy (lazy, any size) or exact (MCLP with CBC, small "
        "instances; also reports the greedy gap)",
    )
    g.add_argument(
        "--weight",
        choices=("population", "elderly", "children"),
        default="population",
        help="what to cover (default population)",
    )
    g.add_argument(
        "--chunk",
        type=number(minimum=1, integer=True),
        metavar="N",
        help="candidates per routing block (default: sized to bound memory)",
    )
    g.add_argument(
        "--max-exact-pairs",
        type=number(minimum=1, integer=True),
        metavar="N",
        help="largest exact instance, in candidate x resident-group pairs (default 200,000)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in DIR (finished blocks are not routed again)",
    )
    p.add_argument("--no-map", action="store_true", help="do not write candidates.html")
    p.add_argument(
        "--online",
        action="store_true",
        help="candidates.html loads Leaflet from a CDN (default: inlined, opens offline)",
    )
    p.add_argument(
        "--basemap",
        metavar="NAME|URL",
        help="basemap of candidates.html: none (default), osm, tianditu, tianditu-img, amap "
        "(GCJ-02) or an XYZ URL (see lifecircle map --help)",
    )
    add_output_options(p, workbook=True)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    if args.select < 0:
        raise InputError(f"--select must be >= 0, got {args.select}")
    if args.chunk is not None and args.chunk < 1:
        raise InputError(f"--chunk must be >= 1, got {args.chunk}")
    out = Path(args.out)
    resolve_basemap(args.basemap)  # a missing 天地图 key fails before the work
    partial = out / PARTIAL_DIR_NAME
    # a folder holding only an interrupted run's blocks takes the new set (run_scoring decides
    # whether they may be resumed)
    only_partial = out.is_dir() and {p.name for p in out.iterdir()} == {PARTIAL_DIR_NAME}
    with command_output(args, overwrite=args.overwrite or only_partial) as tmp:
        if partial.exists() and args.overwrite and not args.resume:
            shutil.rmtree(partial)
        check_deliverables(args, tmp, report=False)
        inputs = inputs_from_args(args)
        scoring = _score(args, inputs, partial)
        write_scoring_outputs(
            scoring,
            tmp,
            overwrite=True,
            map_html=not args.no_map,
            csv_encoding=args.csv_encoding,
            offline=not args.online,
            basemap=args.basemap,
        )
        book = workbook_path(args, tmp)
        if book is not None:
            write_workbook(
                scoring.coverage,
                book,
                candidates=scoring.result.table(),
                picks=scoring.result.picks,
                rejects=scoring.rejects(),
                lang=report_lang(args),
                overwrite=True,
            )
    shutil.rmtree(partial, ignore_errors=True)
    con = Console(args)
    print_summary(scoring, con)
    con.summary(scoring.summary())
    return 0


def _score(args: argparse.Namespace, inputs: Inputs, partial: Path) -> ScoringRun:
    bar = _progress_bar(args)
    try:
        return run_scoring(
            inputs,
            tier=args.tier,
            candidates=args.candidates,
            candidates_crs=args.candidates_crs,
            weight=args.weight,
            select_k=args.select,
            method=args.method,
            chunk=args.chunk,
            checkpoint_dir=partial,
            resume=args.resume,
            progress=bar,
            max_exact_pairs=args.max_exact_pairs,
        )
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(args: argparse.Namespace) -> _Bar | None:
    """A tqdm bar on stderr, only on a terminal and without -q."""
    if args.quiet or not sys.stderr.isatty():
        return None
    return _Bar()


class _Bar:
    """Scoring progress (``progress(n, total)``) as a tqdm bar on stderr."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="site", desc="scoring", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, n: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(n)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def print_summary(scoring: ScoringRun, con: Console) -> None:
    """Coverage before/after, the picks and the best sites, on the terminal."""
    r = scoring.result
    s = scoring.summary()
    con.synthetic(bool(s.get("synthetic")))
    t = r.tier
    mode_zh = {"walk": "步行", "bike": "骑行", "drive": "驾车"}[t.mode]
    weight_zh = {"population": "人口", "elderly": "老年人", "children": "儿童"}.get(
        r.weight, r.weight
    )
    con.line(
        f"层级 {t.label_zh}：{mode_zh} {t.threshold_m:,.0f} 米；权重 {weight_zh}",
        f"tier {t.key} ({t.label_en}), {t.threshold_m:,.0f} m by {t.mode}; weight {r.weight}",
    )
    for kind, c in s["inputs"].items():
        con.line(
            f"{INPUT_KIND_ZH.get(kind, kind)}：输入 {c['input']} 行 = 使用 {c['used']} + "
            f"剔除 {c['rejected']}",
            f"{kind}: {c['input']} rows = {c['used']} used + {c['rejected']} rejected",
        )
    before, after = f"{r.before['share']:.2%}", f"{r.after['share']:.2%}"
    con.line(
        f"达标率 {before} -> {after}（新增 {len(r.picks)} 处）",
        f"coverage {before} -> {after} with {len(r.picks)} new site(s)",
    )
    if r.exact:
        e = r.exact
        nums = (
            f"{e['objective']:,.1f} vs {e['greedy_objective']:,.1f} "
            f"({e['gap']:,.1f} = {100 * e['gap_share']:.2f}%)"
        )
        con.line(f"精确 MCLP 与贪心：{nums}", f"exact MCLP vs greedy (greedy gap): {nums}")
    for p in r.picks.itertuples(index=False):
        con.line(
            f"  第 {p.pick} 处：{p.candidate_id}  +{p.gain:,.0f}  -> {p.cumulative_share:.2%}",
            f"  pick {p.pick}: {p.candidate_id}  +{p.gain:,.0f}  -> {p.cumulative_share:.2%}",
        )
    con.line("最佳候选点：", "best candidates:")
    for c in r.candidates.head(5).itertuples(index=False):
        con.line(
            f"  #{c.rank} {c.candidate_id}：{c.reason_zh}",
            f"  #{c.rank} {c.candidate_id}: {c.reason_en}",
        )
