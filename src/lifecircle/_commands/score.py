"""``lifecircle score``: score candidate sites for one tier and choose the best k."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TextIO

from lifecircle._commands._common import add_input_options, inputs_from_args
from lifecircle._files import check_writable
from lifecircle.errors import InputError
from lifecircle.pipeline import ScoringRun, run_scoring, write_scoring_outputs
from lifecircle.siting import PARTIAL_DIR_NAME


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
        type=int,
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
        type=int,
        metavar="N",
        help="candidates per routing block (default: sized to bound memory)",
    )
    g.add_argument(
        "--max-exact-pairs",
        type=int,
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
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand."""
    if args.select < 0:
        raise InputError(f"--select must be >= 0, got {args.select}")
    if args.chunk is not None and args.chunk < 1:
        raise InputError(f"--chunk must be >= 1, got {args.chunk}")
    out = Path(args.out)
    finals = [
        out / n
        for n in (
            "candidates.csv",
            "candidates.geojson",
            "picks.csv",
            "summary.json",
            "rejects.csv",
        )
    ] + ([] if args.no_map else [out / "candidates.html"])
    check_writable(finals, overwrite=args.overwrite)
    partial = out / PARTIAL_DIR_NAME
    if partial.exists() and args.overwrite and not args.resume:
        shutil.rmtree(partial)
    inputs = inputs_from_args(args)
    bar = _progress_bar(args)
    try:
        scoring = run_scoring(
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
    write_scoring_outputs(scoring, out, overwrite=args.overwrite, map_html=not args.no_map)
    shutil.rmtree(partial, ignore_errors=True)
    print_summary(scoring)
    return 0


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


def print_summary(scoring: ScoringRun, file: TextIO | None = None) -> None:
    """Coverage before/after, the picks and the best sites, on the terminal."""
    o = file or sys.stdout
    r = scoring.result
    s = scoring.summary()
    if s.get("synthetic"):
        print("SYNTHETIC demonstration data (合成示范数据) — not real Tancheng data", file=o)
    t = r.tier
    print(
        f"tier {t.key} ({t.label_zh}), {t.threshold_m:,.0f} m by {t.mode}; weight {r.weight}",
        file=o,
    )
    for kind, c in s["inputs"].items():
        print(f"{kind}: {c['input']} rows = {c['used']} used + {c['rejected']} rejected", file=o)
    print(
        f"coverage {r.before['share']:.2%} -> {r.after['share']:.2%} "
        f"with {len(r.picks)} new site(s)",
        file=o,
    )
    if r.exact:
        e = r.exact
        print(
            f"exact MCLP {e['objective']:,.1f} vs greedy {e['greedy_objective']:,.1f} "
            f"(greedy gap {e['gap']:,.1f} = {100 * e['gap_share']:.2f}%)",
            file=o,
        )
    for p in r.picks.itertuples(index=False):
        print(
            f"  pick {p.pick}: {p.candidate_id}  +{p.gain:,.0f}  -> {p.cumulative_share:.2%}",
            file=o,
        )
    print("best candidates:", file=o)
    for c in r.candidates.head(5).itertuples(index=False):
        print(f"  #{c.rank} {c.candidate_id}: {c.reason_en}", file=o)
