"""What the analysis subcommands share: the input and output options, loading inputs, and the
console (what a command prints on success: nothing with ``-q``, JSON with ``--json``, Chinese or
English with ``--lang``)."""

from __future__ import annotations

import argparse
import contextlib
import locale
import math
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import pandas as pd

from lifecircle._files import (
    CSV_ENCODINGS,
    DEFAULT_CSV_ENCODING,
    check_writable,
    to_json_text,
    write_csv,
)
from lifecircle._outset import output_set
from lifecircle.diagnose import DEFAULT_MIN_USED_SHARE
from lifecircle.document import find_chromium, write_report_document
from lifecircle.errors import InputError, LifecircleError, RejectThresholdError
from lifecircle.extract import DEFAULT_CLIP_BUFFER_M
from lifecircle.io import COLUMN_FIELDS, DEFAULT_MAX_POPULATION, load_scenario
from lifecircle.pipeline import DEFAULT_CACHE_DIR, load_inputs
from lifecircle.report import CoverageReport, Section, write_report
from lifecircle.roads import DEFAULT_TOLERANCE_M
from lifecircle.runs import CoverageRun, Inputs
from lifecircle.workbook import DEFAULT_WORKBOOK_NAME, write_workbook


def number(
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    integer: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in a range, checked when the options are parsed.

    Full-width digits (``１９``) are accepted (NFKC); ``nan``, ``inf`` and values out of range are
    rejected with a message naming what is allowed (argparse exits with code 2).

    Examples
    --------
    >>> number(minimum=0, exclusive_minimum=True)("１５００")
    1500.0
    >>> number(minimum=0)("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number ≥ 0, got 'nan'
    """
    lo = "" if minimum is None else f"{'>' if exclusive_minimum else '≥'} {minimum:g}"
    hi = "" if maximum is None else f"≤ {maximum:g}"
    kind = "a whole number" if integer else "a finite number"
    allowed = " ".join(p for p in (kind, ", ".join(q for q in (lo, hi) if q)) if p)

    def parse(text: str) -> float:
        clean = unicodedata.normalize("NFKC", text).strip()
        try:
            value = int(clean) if integer else float(clean)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        bad = not math.isfinite(value)
        if minimum is not None:
            bad = bad or (value <= minimum if exclusive_minimum else value < minimum)
        if maximum is not None:
            bad = bad or value > maximum
        if bad:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


_POSITIVE_M = number(minimum=0, exclusive_minimum=True)


def limit_option(text: str) -> float | str:
    """A ``--limit-m`` value: a finite number of metres > 0, or ``auto`` (each tier cut at its own
    standard), checked when the options are parsed.

    Examples
    --------
    >>> limit_option("AUTO"), limit_option("１５００")
    ('auto', 1500.0)
    """
    if unicodedata.normalize("NFKC", text).strip().lower() == "auto":
        return "auto"
    try:
        return _POSITIVE_M(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected metres (a finite number > 0) or 'auto', got {text!r}"
        ) from None


def add_input_options(p: argparse.ArgumentParser, *, residents: bool = True) -> None:
    """The input options every analysis subcommand shares (the same as ``coverage``)."""
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--scenario",
        metavar="FILE",
        help="scenario.toml naming the inputs (explicit options below override it)",
    )
    g.add_argument(
        "--network",
        metavar="PATH",
        help="road network: .osm, .osm.bz2, .osm.pbf, .graphml, or road centre lines .shp/.gpkg",
    )
    g.add_argument(
        "--facilities", metavar="PATH", help="facilities: .csv, .xlsx, .geojson or .gpkg"
    )
    g.add_argument(
        "--residents",
        metavar="PATH",
        help="residents (points or polygons with population)"
        + ("" if residents else " (optional)"),
    )
    g.add_argument(
        "--standard",
        metavar="NAME|FILE",
        help="service standard: preset tancheng (default), gb50180 or tdt1062 (TD/T "
        "1062-2021), or a TOML file",
    )
    g.add_argument(
        "--mode",
        choices=("walk", "bike", "drive"),
        help="travel mode for every tier (default: each tier's own mode)",
    )
    g.add_argument(
        "--max-snap-m",
        type=number(minimum=0, maximum=100_000),
        metavar="M",
        help="longest straight access leg to a street in metres (default 300); farther "
        "points are flagged off-network",
    )
    g.add_argument(
        "--facilities-crs",
        metavar="CRS",
        help="coordinate system of the facilities file: wgs84 (default), cgcs2000, "
        "gcj02 (Amap/Tencent), bd09 (Baidu) or EPSG:n",
    )
    g.add_argument("--residents-crs", metavar="CRS", help="coordinate system of the residents file")
    g.add_argument(
        "--network-crs",
        metavar="EPSG",
        help="metric CRS for the analysis (default: UTM zone of the network)",
    )
    g.add_argument(
        "--units",
        action="append",
        default=[],
        metavar="PATH",
        help="admin-unit polygons (communities, grids); repeat for several layers",
    )
    g.add_argument(
        "--upper-tiers-count",
        action="store_true",
        default=None,
        help="let a higher-tier facility also serve lower tiers (GB 50180 counts them "
        "separately, the default)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not use the network cache")
    r = p.add_argument_group("rejected rows (exit code 3 when a limit is exceeded)")
    r.add_argument(
        "--allow-rejects",
        action="store_true",
        help="run even when fewer than half of a facility tier, or of the residents' people, "
        "are usable (by default such a run stops: its result cannot be right)",
    )
    r.add_argument(
        "--max-rejects",
        type=number(minimum=0, integer=True),
        metavar="N",
        help="stop (exit 3, after writing rejects.csv) when more than N input rows are rejected",
    )
    r.add_argument(
        "--max-population",
        type=number(minimum=0, exclusive_minimum=True),
        default=DEFAULT_MAX_POPULATION,
        metavar="N",
        help="most people at one resident point (default 50,000); more is rejected as "
        "implausible_population",
    )
    r.add_argument(
        "--strict", action="store_true", help="stop on any rejected row (--max-rejects 0)"
    )
    add_clip_options(g)
    g.add_argument(
        "--extra-roads",
        metavar="PATH",
        help="local road centre lines (.shp/.gpkg, optional highway-like class and oneway "
        "fields) merged into the network, noded at crossings",
    )
    g.add_argument(
        "--extra-roads-crs", metavar="CRS", help="CRS of a line file without .prj (EPSG:4490)"
    )
    g.add_argument(
        "--extra-roads-tolerance-m",
        type=number(minimum=0, maximum=1_000),
        default=DEFAULT_TOLERANCE_M,
        metavar="M",
        help="noding tolerance for --extra-roads in metres (default 1)",
    )
    t = p.add_argument_group("reading the files (encodings, spreadsheets, POI exports, population)")
    t.add_argument(
        "--columns",
        action="append",
        default=[],
        metavar="[KIND:]FIELD=COLUMN,...",
        help="name the columns of an input, e.g. --columns residents:id=编号,population=常住人口 "
        "(KIND: facilities, residents, candidates, units; without KIND for every input but "
        f"units). Fields: {', '.join(COLUMN_FIELDS)}; for units id and name",
    )
    t.add_argument(
        "--sheet",
        action="append",
        default=[],
        metavar="[KIND:]NAME|N",
        help="workbook sheet of an .xlsx input, by name or number from 1 (default the first)",
    )
    t.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding of CSV/Shapefile inputs, e.g. gb18030 or utf-8 (default: detected "
        "per file: UTF-8, UTF-8 with BOM or GB18030)",
    )
    t.add_argument(
        "--tier-rules",
        metavar="FILE",
        help="TOML rules giving each facility its tier from type/typecode/name (for Amap/Baidu "
        "POI exports); unmatched rows are rejected unknown_tier",
    )
    t.add_argument(
        "--population-table",
        metavar="FILE",
        help="population per community/village (CSV/XLSX) joined to the --residents polygons",
    )
    t.add_argument(
        "--population-join",
        metavar="TABLEFIELD=POLYGONFIELD",
        help="join key of --population-table, e.g. 社区代码=community_id (code or name)",
    )
    t.add_argument(
        "--population-field",
        metavar="FIELD",
        help="population column of --population-table, e.g. 常住人口 (default: detected)",
    )

    t.add_argument(
        "--buildings",
        metavar="PATH",
        help="residential building footprints with floors (层数) and/or area (建筑面积, m²): "
        "split the people of --residents polygons over them by floor area",
    )


def add_clip_options(g: argparse._ArgumentGroup, *, clip: bool = True) -> None:
    """``--clip``, ``--clip-crs`` and ``--clip-buffer-m`` (cutting a large OSM extract)."""
    if clip:
        g.add_argument(
            "--clip",
            metavar="PATH",
            help="boundary polygon file: load only the streets of --network (e.g. a province "
            ".osm.pbf) that intersect it plus --clip-buffer-m, in one cached streaming pass",
        )
        g.add_argument(
            "--clip-crs",
            metavar="CRS",
            default="wgs84",
            help="coordinates of the --clip file when it carries no CRS: wgs84 (default), "
            "cgcs2000, gcj02 (Amap) or bd09 (Baidu)",
        )
    g.add_argument(
        "--clip-buffer-m",
        type=number(minimum=0, maximum=100_000),
        default=DEFAULT_CLIP_BUFFER_M,
        metavar="M",
        help="buffer around each boundary in metres (default 2000), so facilities just "
        "across the border still serve residents near it",
    )


_KINDS = ("facilities", "residents", "candidates", "units")


def _split_kind(value: str, option: str) -> tuple[str, str]:
    kind, sep, rest = value.partition(":")
    if sep and kind in _KINDS:
        return kind, rest
    if sep and "=" not in kind and option == "--columns":
        raise InputError(
            f"{option} {value!r}: {kind!r} is not an input; use one of {', '.join(_KINDS)}"
        )
    return "", value


def parse_columns(values: list[str]) -> dict[str, dict[str, str]]:
    """``["residents:id=编号,population=常住人口"]`` -> ``{"residents": {...}}``.

    >>> parse_columns(["residents:id=编号,population=常住人口", "name=名称"])
    {'residents': {'id': '编号', 'population': '常住人口'}, '': {'name': '名称'}}
    """
    out: dict[str, dict[str, str]] = {}
    for value in values:
        kind, rest = _split_kind(value, "--columns")
        for item in filter(None, (s.strip() for s in rest.replace("，", ",").split(","))):
            field, sep, col = item.partition("=")
            if not sep or not field.strip() or not col.strip():
                raise InputError(
                    f"--columns {value!r}: {item!r} is not FIELD=COLUMN; e.g. --columns "
                    "residents:population=常住人口"
                )
            allowed = ("id", "name") if kind == "units" else COLUMN_FIELDS
            if field.strip() not in allowed:
                raise InputError(
                    f"--columns {value!r}: unknown field {field.strip()!r}; fields are "
                    f"{', '.join(allowed)}"
                )
            out.setdefault(kind, {})[field.strip()] = col.strip()
    return out


def parse_sheets(values: list[str]) -> dict[str, str]:
    """``["residents:2", "人口"]`` -> ``{"residents": "2", "": "人口"}``."""
    return dict(_split_kind(v, "--sheet") for v in values)


def inputs_from_args(args: argparse.Namespace, *, require_residents: bool = True) -> Inputs:
    """Load :class:`lifecircle.runs.Inputs` from the shared input options."""
    if args.scenario is None and args.network is None:
        raise InputError(
            "give --scenario FILE, or --network and --facilities"
            + (" and --residents" if require_residents else "")
        )
    return load_inputs(
        scenario=args.scenario,
        network=args.network,
        facilities=args.facilities,
        residents=args.residents,
        standard=args.standard,
        mode=args.mode,
        max_snap_m=args.max_snap_m,
        facilities_crs=args.facilities_crs,
        residents_crs=args.residents_crs,
        network_crs=args.network_crs,
        units=tuple(args.units),
        upper_tiers_count=args.upper_tiers_count,
        cache_dir=None if args.no_cache else DEFAULT_CACHE_DIR,
        require_residents=require_residents,
        min_used_share=0.0 if args.allow_rejects else DEFAULT_MIN_USED_SHARE,
        max_rejects=0 if args.strict else args.max_rejects,
        max_population=args.max_population,
        columns=parse_columns(args.columns),
        sheets=parse_sheets(args.sheet),
        encoding=args.encoding,
        tier_rules=args.tier_rules,
        population_table=args.population_table,
        population_join=args.population_join,
        population_field=args.population_field,
        buildings=args.buildings,
        clip=args.clip,
        clip_crs=args.clip_crs,
        clip_buffer_m=args.clip_buffer_m,
        extra_roads=args.extra_roads,
        extra_roads_crs=args.extra_roads_crs,
        extra_roads_tolerance_m=args.extra_roads_tolerance_m,
    )


def input_paths(args: argparse.Namespace) -> Iterator[Path]:
    """The input files a command read (for the manifest's fingerprints)."""
    for name in ("scenario", "network", "facilities", "residents", "standard", "candidates"):
        v = getattr(args, name, None)
        if isinstance(v, str) and Path(v).is_file():
            yield Path(v)
    yield from (Path(u) for u in getattr(args, "units", []) or [])
    if getattr(args, "scenario", None):
        try:
            sc = load_scenario(args.scenario)
        except LifecircleError:
            return
        yield from (p for p in (sc.network, sc.facilities, sc.residents, sc.candidates) if p)
        yield from (u.path for u in sc.units)


@contextlib.contextmanager
def command_output(
    args: argparse.Namespace, out: str | Path | None = None, *, overwrite: bool | None = None
) -> Iterator[Path]:
    """The output set of a command writing a folder (``--out``): see :mod:`lifecircle._outset`.

    Fails at once if the folder holds files (without ``--overwrite``) or another run is writing
    into it. A run stopped for too many rejects still delivers ``rejects.csv`` (and the manifest,
    status ``failed``) before exiting with code 3.
    """
    with output_set(
        out if out is not None else args.out,
        overwrite=getattr(args, "overwrite", False) if overwrite is None else overwrite,
        command=["lifecircle", *getattr(args, "argv", [])],
        inputs=input_paths(args),
        commit_on=(RejectThresholdError,),
    ) as tmp:
        try:
            yield tmp
        except RejectThresholdError as exc:
            if isinstance(exc.rejects, pd.DataFrame):
                write_csv(exc.rejects, tmp / "rejects.csv", overwrite=True)
            raise


def add_output_options(
    p: argparse.ArgumentParser,
    *,
    csv: bool = True,
    workbook: bool = False,
    report: bool = False,
    lang_help: str = "report and terminal",
) -> None:
    """``--lang``, ``--json``, (for commands writing CSVs) ``--csv-encoding`` and (for commands
    writing the Excel workbook) ``--workbook``/``--no-workbook``."""
    g = p.add_argument_group("output")
    if workbook:
        g.add_argument(
            "--workbook",
            default=DEFAULT_WORKBOOK_NAME,
            metavar="NAME.xlsx",
            help=f"name of the Excel workbook written to --out (default {DEFAULT_WORKBOOK_NAME})",
        )
        g.add_argument("--no-workbook", action="store_true", help="do not write the Excel workbook")
    g.add_argument(
        "--lang",
        choices=("zh", "en"),
        default=None,
        help=f"language of the {lang_help} (default: reports zh, the terminal from the locale)",
    )
    g.add_argument(
        "--json",
        action="store_true",
        help="print the run's summary as JSON on stdout (for scripts) instead of the table",
    )
    if report:
        g.add_argument(
            "--template",
            metavar="FILE.html",
            help="Jinja2 template for report.html/report.pdf (default the built-in one; see "
            "lifecircle.document.report_context for what it receives)",
        )
        g.add_argument(
            "--no-pdf",
            action="store_true",
            help="do not print report.pdf (it needs Chromium and the Noto CJK fonts)",
        )
    if csv:
        g.add_argument(
            "--csv-encoding",
            choices=CSV_ENCODINGS,
            default=DEFAULT_CSV_ENCODING,
            help="encoding of the CSV files: utf-8-sig (UTF-8 with BOM, opens in Excel on "
            "Chinese Windows; default), utf-8 or gb18030",
        )


def locale_lang(environ: Mapping[str, str] | None = None) -> str:
    """``"zh"`` when the user's locale is Chinese (``LC_ALL``/``LC_MESSAGES``/``LANG``, else the
    system locale, e.g. ``Chinese (Simplified)_China`` on Windows), otherwise ``"en"``.

    Examples
    --------
    >>> locale_lang({"LANG": "zh_CN.UTF-8"}), locale_lang({"LC_ALL": "en_US.UTF-8"})
    ('zh', 'en')
    """
    env = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    name = (locale.getlocale()[0] or "").lower()
    return "zh" if name.startswith(("zh", "chinese")) else "en"


def report_lang(args: argparse.Namespace) -> str:
    """Language of report pages: ``--lang``, else Chinese (the language of the standard)."""
    return getattr(args, "lang", None) or "zh"


class Console:
    """What a command prints on stdout when it succeeds.

    ``-q`` prints nothing; ``--json`` prints only the summary as JSON; otherwise lines in the
    language of ``--lang`` (default from the locale). A console that cannot show a character
    (e.g. a cp1252 pipe on an English Windows scheduler) gets ``?`` instead: printing never
    changes the exit code.
    """

    def __init__(self, args: argparse.Namespace, file: TextIO | None = None) -> None:
        self.lang = getattr(args, "lang", None) or locale_lang()
        self.quiet = bool(getattr(args, "quiet", False))
        self.json = bool(getattr(args, "json", False))
        self.file = file

    @property
    def zh(self) -> bool:
        """Chinese output."""
        return self.lang == "zh"

    def _write(self, text: str) -> None:
        out = self.file or sys.stdout
        try:
            out.write(text + "\n")
        except UnicodeEncodeError:
            enc = getattr(out, "encoding", None) or "ascii"
            out.write(text.encode(enc, errors="replace").decode(enc) + "\n")

    def line(self, zh: str, en: str | None = None) -> None:
        """Print one line (``zh`` or ``en`` by language) unless quiet or JSON."""
        if self.quiet or self.json:
            return
        self._write(zh if (self.zh or en is None) else en)

    def synthetic(self, flag: bool) -> None:
        """The synthetic-data banner, when ``flag``."""
        if flag:
            self.line(
                "合成示范数据（SYNTHETIC）：并非真实的郯城数据",
                "SYNTHETIC demonstration data (合成示范数据) — not real Tancheng data",
            )

    def summary(self, data: object) -> None:
        """With ``--json``: the summary as JSON (the only thing on stdout)."""
        if self.json:
            self._write(to_json_text(data))


def safe_console_streams() -> None:
    """Let stdout/stderr replace characters their encoding cannot show instead of raising.

    A run whose output is redirected to a cp1252 file (English Windows) then still exits 0.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")


def workbook_path(args: argparse.Namespace, out_dir: str | Path) -> Path | None:
    """Where the workbook goes (``--out``/``--workbook``), or ``None`` with ``--no-workbook``."""
    if args.no_workbook:
        return None
    name = Path(args.workbook)
    if name.suffix.lower() != ".xlsx":
        raise InputError(f"--workbook {args.workbook} should end in .xlsx")
    return name if name.is_absolute() else Path(out_dir) / name


def check_deliverables(args: argparse.Namespace, out_dir: str | Path, *, report: bool) -> None:
    """Before any work: the workbook and report files may be written, and Chromium is there
    when ``report.pdf`` is wanted (so that a missing program never leaves half the outputs)."""
    d = Path(out_dir)
    targets = []
    book = workbook_path(args, d)
    if book is not None:
        targets.append(book)
    if report:
        targets.append(d / "report.html")
        if not args.no_pdf:
            find_chromium()
            targets.append(d / "report.pdf")
    check_writable(targets, overwrite=bool(getattr(args, "overwrite", False)))


def write_deliverables(
    args: argparse.Namespace,
    cov: CoverageRun,
    rep: CoverageReport | None,
    out_dir: str | Path,
    *,
    overwrite: bool,
    sections: Sequence[Section] = (),
) -> dict[str, Path]:
    """Per-unit tables and gaps, the report (HTML and PDF) and the workbook of a coverage run.

    Without a report (no unit polygons) only the workbook is written. ``sections`` are extra
    report tables (e.g. the grid system's, :func:`lifecircle.report.grids_report_tables`).
    """
    lang = report_lang(args)
    paths: dict[str, Path] = {}
    if rep is not None:
        paths.update(
            write_report(
                cov,
                out_dir,
                lang=lang,
                overwrite=overwrite,
                report=rep,
                csv_encoding=args.csv_encoding,
                html=False,
                sections=sections,
            )
        )
    files = [p.name for p in paths.values() if p.suffix != ".md"]
    book = workbook_path(args, out_dir)
    if book is not None:
        paths["workbook"] = write_workbook(cov, book, report=rep, lang=lang, overwrite=overwrite)
        files.append(book.name)
    if rep is not None:
        paths.update(
            write_report_document(
                cov,
                rep,
                out_dir,
                lang=lang,
                template=args.template,
                pdf=not args.no_pdf,
                files=files,
                overwrite=overwrite,
                sections=sections,
            )
        )
    return paths


def settled_paths(paths: Mapping[str, Path], tmp: Path, out: str | Path) -> dict[str, Path]:
    """Where files written into an output set's temporary folder ``tmp`` are once the set is in
    place at ``out`` (paths outside ``tmp``, e.g. an absolute ``--workbook``, stay as they are).

    Examples
    --------
    >>> settled_paths({"a": Path("t/x.csv"), "b": Path("/o/y.csv")}, Path("t"), "out")
    {'a': PosixPath('out/x.csv'), 'b': PosixPath('/o/y.csv')}
    """
    return {
        k: Path(out) / p.relative_to(tmp) if p.is_relative_to(tmp) else p for k, p in paths.items()
    }
