"""The Excel workbook for planners: ``lifecircle.xlsx``.

One sheet per table that applies — 总体 (per tier), 街道 / 社区 / 网格 (one per unit layer, named by
the layer's Chinese label), 缺口 (gaps), 设施 (facilities), 候选点 (scored candidates), 剔除记录
(rejected input rows) — and a 说明 sheet (standard, thresholds, data sources, synthetic flag, date,
lifecircle version). The values are the CSV/JSON values (same rows, same numbers); only the headers
change: Chinese labels built from the standard's tier labels and the units' labels
(:func:`column_label`), never a machine key. Shares carry the ``0.0%`` number format, counts and
distances thousands separators; share cells are filled red/amber/green with the report's
thresholds (below 60 % red, below 90 % amber, else green); header rows are frozen, bold and
filtered; column widths fit their content (a CJK character counts twice).

English headers with ``lang="en"``. openpyxl is imported when a workbook is written.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecircle._files import atomic_path
from lifecircle._version import __version__
from lifecircle.config import ServiceStandard, standard_title
from lifecircle.errors import InputError
from lifecircle.report import CoverageReport, text
from lifecircle.runs import CoverageRun, Inputs, facility_table
from lifecircle.units import OUTSIDE_NAME

if TYPE_CHECKING:
    from openpyxl import Workbook

logger = logging.getLogger(__name__)

#: Default file name of the workbook.
DEFAULT_WORKBOOK_NAME = "lifecircle.xlsx"

#: Share thresholds of the red/amber/green fills (the report's colours): below 0.6 red, below
#: 0.9 amber, else green.
FILL_THRESHOLDS = (0.6, 0.9)
FILL_COLOURS = {"low": "F8D7DA", "mid": "FFF3CD", "high": "D4EDDA"}

PERCENT_FORMAT = "0.0%"
COUNT_FORMAT = "#,##0"
METRES_FORMAT = "#,##0"
DECIMAL_FORMAT = "#,##0.0"

SHEETS = {
    "zh": {
        "overall": "总体",
        "gaps": "缺口",
        "facilities": "设施",
        "candidates": "候选点",
        "picks": "选址结果",
        "rejects": "剔除记录",
        "about": "说明",
    },
    "en": {
        "overall": "Overall",
        "gaps": "Gaps",
        "facilities": "Facilities",
        "candidates": "Candidates",
        "picks": "Picks",
        "rejects": "Rejects",
        "about": "About",
    },
}

# headers of columns that do not belong to a tier: (zh, en)
_PLAIN: dict[str, tuple[str, str]] = {
    # the grid system (lifecircle grids)
    "grid_id": ("网格编号", "Grid id"),
    "households": ("户数", "Households"),
    "within_band": ("户数在标准范围内", "Households within band"),
    "base_id": ("网格站点编号", "Base id"),
    "base_name": ("网格站点名称", "Base name"),
    "base_median_m": ("至站点距离中位数（米）", "Median distance to base (m)"),
    "base_p90_m": ("至站点90%分位距离（米）", "90th pct distance to base (m)"),
    "base_max_m": ("至站点最远距离（米）", "Farthest household from base (m)"),
    "base_share_within": ("步行标准内户数比例", "Share of households within the walk"),
    "base_lon": ("站点经度", "Base longitude"),
    "base_lat": ("站点纬度", "Base latitude"),
    "farthest_lon": ("最远住户经度", "Farthest household longitude"),
    "farthest_lat": ("最远住户纬度", "Farthest household latitude"),
    "status": ("状态", "Status"),
    "community_name": ("社区名称", "Community name"),
    "grids_now": ("现有网格数", "Grids now"),
    "grids_proposed": ("建议网格数", "Grids proposed"),
    "grids_kept": ("保留网格数", "Grids kept"),
    "blocks": ("街块数", "Street blocks"),
    "feasible": ("可满足户数标准", "Band feasible"),
    "into_community_id": ("越入社区编号", "Crossed into community"),
    "overlap_id": ("重叠编号", "Overlap id"),
    "other_grid_id": ("另一网格编号", "Other grid id"),
    "rank": ("排名", "Rank"),
    "layer": ("单元层级", "Unit layer"),
    "unit_id": ("单元编号", "Unit id"),
    "name": ("名称", "Name"),
    "residents": ("居民点数", "Resident points"),
    "population": ("人口", "Population"),
    "elderly": ("老年人口", "Elderly"),
    "children": ("儿童人口", "Children"),
    "outside": ("不在任何单元内", "Outside all units"),
    "uncovered_population": ("未全部达标人口", "Population not fully covered"),
    "weakest_tier": ("最弱层级", "Weakest tier"),
    "gap_id": ("缺口编号", "Gap id"),
    "tier": ("层级", "Tier"),
    "tiers_missing": ("缺失层级", "Tiers missing"),
    "cells": ("网格数", "Cells"),
    "area_m2": ("面积（平方米）", "Area (m²)"),
    "lon": ("经度", "Longitude"),
    "lat": ("纬度", "Latitude"),
    "threshold_m": ("标准距离（米）", "Standard (m)"),
    "minutes": ("标准时间（分钟）", "Standard (min)"),
    "mode": ("出行方式", "Mode"),
    "speed_m_per_min": ("速度（米/分钟）", "Speed (m/min)"),
    "nearest_facility_id": ("最近现有设施", "Nearest facility"),
    "nearest_facility_distance_m": ("最近设施网络距离（米）", "Nearest facility distance (m)"),
    "shortfall_m": ("超出标准（米）", "Beyond standard (m)"),
    "median_distance_m": ("距离中位数（米）", "Median distance (m)"),
    "p90_distance_m": ("90%分位距离（米）", "90th pct distance (m)"),
    "id": ("编号", "Id"),
    "snap_m": ("接入距离（米）", "Access leg (m)"),
    "off_network": ("远离路网", "Off network"),
    "catchment_population": ("服务人口", "Catchment population"),
    "catchment_residents": ("服务居民点数", "Catchment resident points"),
    "facilities": ("设施数", "Facilities"),
    "facilities_off_network": ("远离路网设施数", "Facilities off network"),
    "population_total": ("总人口", "Population"),
    "population_covered": ("覆盖人口", "Covered"),
    "share": ("达标率", "Share covered"),
    "elderly_total": ("老年人口", "Elderly"),
    "elderly_covered": ("覆盖老年人口", "Elderly covered"),
    "elderly_share": ("老年人达标率", "Elderly share covered"),
    "residents_total": ("居民点数", "Resident points"),
    "residents_covered": ("覆盖居民点数", "Resident points covered"),
    "candidate_id": ("候选点编号", "Candidate id"),
    "selected": ("入选", "Selected"),
    "pick": ("入选顺序", "Pick"),
    "pick_gain": ("入选新增覆盖", "Gain when picked"),
    "gain": ("新增覆盖", "Gain"),
    "gain_population": ("新增覆盖人口", "Population gained"),
    "gain_elderly": ("新增覆盖老年人口", "Elderly gained"),
    "cumulative_covered": ("累计覆盖", "Cumulative covered"),
    "cumulative_share": ("累计达标率", "Cumulative share"),
    "marginal_gain": ("边际新增覆盖", "Marginal gain"),
    "marginal_gain_population": ("边际新增人口", "Marginal gain, population"),
    "marginal_gain_elderly": ("边际新增老年人口", "Marginal gain, elderly"),
    "total_within": ("服务范围内人数", "Within the standard"),
    "overlap": ("与现有覆盖重叠", "Overlap with existing coverage"),
    "overlap_share": ("重叠比例", "Overlap share"),
    "residents_within": ("范围内居民点数", "Resident points within"),
    "residents_new": ("新增覆盖居民点数", "Resident points newly covered"),
    "nearest_existing_m": ("最近现有设施距离（米）", "Nearest existing (m)"),
    "nearest_existing_id": ("最近现有设施", "Nearest existing"),
    "on_network": ("在路网上", "On network"),
    "capacity": ("容量", "Capacity"),
    "reason_zh": ("说明", "Reason (zh)"),
    "reason_en": ("说明（英文）", "Reason"),
    "file": ("文件", "File"),
    "row": ("行号", "Row"),
    "reason": ("原因", "Reason"),
    "detail": ("详细说明", "Detail"),
    "all_covered": ("全部层级达标", "All tiers covered"),
    "tier_rule": ("层级判定规则", "Tier rule"),
    "placement": ("落点方式", "Placement"),
}

# tier-column suffixes: (zh, en); "{tier} ..." is prefixed with the tier's label
_TIER_SUFFIX: dict[str, tuple[str, str]] = {
    "population_covered": ("覆盖人口", "covered"),
    "share": ("达标率", "share"),
    "elderly_covered": ("覆盖老年人口", "elderly covered"),
    "elderly_share": ("老年人达标率", "elderly share"),
    "median_distance_m": ("距离中位数（米）", "median distance (m)"),
    "p90_distance_m": ("90%分位距离（米）", "90th pct distance (m)"),
    "distance_m": ("网络距离（米）", "distance (m)"),
    "minutes": ("时间（分钟）", "minutes"),
    "nearest_id": ("最近设施", "nearest facility"),
    "covered": ("达标", "covered"),
    "facilities": ("设施数", "facilities"),
}

_INPUT_ZH = {"facilities": "设施", "residents": "居民", "candidates": "候选点"}
_ALL_PREFIX = {"zh": "全部层级", "en": "All tiers"}
_REASON_ZH = {
    "missing_id": "缺少编号",
    "missing_coordinates": "缺少坐标",
    "non_numeric_coordinates": "坐标不是数字",
    "coordinates_out_of_range": "坐标超出范围",
    "duplicate_id": "编号重复",
    "unknown_tier": "未知层级",
    "missing_population": "缺少人口",
    "non_numeric_population": "人口不是数字",
    "negative_population": "人口为负",
    "bad_elderly": "老年人口无效",
    "bad_children": "儿童人口无效",
    "outside_network_area": "在路网范围以外",
    "outside_boundary": "在规划范围以外",
    "off_network": "远离路网",
    "different_tier": "层级不符",
}


def column_label(
    column: str,
    standard: ServiceStandard,
    *,
    lang: str = "zh",
    unit_labels: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """The header a person reads for a machine column name.

    Parameters
    ----------
    column : str
        A CSV column, e.g. ``point_share`` or ``community_id``.
    standard : ServiceStandard
        Gives the tier labels (``point`` → 便民点).
    lang : {"zh", "en"}
    unit_labels : mapping, optional
        ``{layer key: (label_zh, label_en)}`` for ``{layer}_id``/``{layer}_name`` columns.

    A column without a label (one added elsewhere and not labelled here yet) keeps its name and
    a warning is logged.

    Examples
    --------
    >>> from lifecircle.config import preset
    >>> std = preset("tancheng")
    >>> column_label("point_share", std), column_label("all_elderly_share", std)
    ('便民点达标率', '全部层级老年人达标率')
    >>> column_label("community_id", std, unit_labels={"community": ("社区", "Community")})
    '社区编号'
    """
    i = 0 if lang == "zh" else 1
    if column in _PLAIN:
        return _PLAIN[column][i]
    sep = "" if lang == "zh" else " "
    if column.startswith("all_"):
        rest = column[4:]
        if rest in _TIER_SUFFIX:
            return f"{_ALL_PREFIX[lang]}{sep}{_TIER_SUFFIX[rest][i]}"
    for t in sorted(standard.tiers, key=lambda t: -len(t.key)):
        if column.startswith(t.key + "_") and column[len(t.key) + 1 :] in _TIER_SUFFIX:
            label = t.label_zh if lang == "zh" else t.label_en
            return f"{label}{sep}{_TIER_SUFFIX[column[len(t.key) + 1 :]][i]}"
    m = re.fullmatch(r"(.+)_(id|name)", column)
    if m and unit_labels and m.group(1) in unit_labels:
        label = unit_labels[m.group(1)][i]
        return (
            f"{label}{'编号' if m.group(2) == 'id' else '名称'}"
            if lang == "zh"
            else (f"{label} {m.group(2)}")
        )
    # a column added by a newer part of lifecircle and not yet labelled here: shown as it is
    # (and logged) rather than failing the whole run
    logger.warning("workbook: no %s header for column %r; the column name is shown", lang, column)
    return column


def _kind(column: str) -> str:
    if column.endswith("share"):
        return "share"
    if column.endswith(("_m", "_m2")) or column in ("snap_m",):
        return "metres"
    if column.endswith("minutes") or column == "speed_m_per_min":
        return "decimal"
    if column in ("lon", "lat"):
        return "coord"
    return "count"


@dataclass(frozen=True)
class Sheet:
    """One table of the workbook: a title, the machine table and how to show its cells."""

    name: str
    table: pd.DataFrame
    headers: list[str]
    translate: dict[str, dict[Any, str]]


def _tier_name(std: ServiceStandard, key: object, lang: str) -> str:
    k = str(key)
    if k in std.keys:
        t = std.tier(k)
        return t.label_zh if lang == "zh" else t.label_en
    return k


def _translations(
    std: ServiceStandard, lang: str, columns: Sequence[str]
) -> dict[str, dict[Any, str]]:
    """Cell values shown as words: tier keys as tier labels, modes, booleans, reject reasons."""
    tx = text(lang)
    tiers = {k: _tier_name(std, k, lang) for k in std.keys}
    out: dict[str, dict[Any, str]] = {}
    for c in columns:
        if c in ("tier", "weakest_tier"):
            out[c] = {**tiers, "": "—"}
        elif c == "tiers_missing":
            out[c] = {}
        elif c == "mode":
            out[c] = {m: tx[m] for m in ("walk", "bike", "drive")}
        elif c == "reason" and lang == "zh":
            out[c] = dict(_REASON_ZH)
    return out


def build_sheets(
    run: CoverageRun,
    *,
    report: CoverageReport | None = None,
    candidates: pd.DataFrame | None = None,
    picks: pd.DataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    lang: str = "zh",
) -> list[Sheet]:
    """The tables of the workbook, in sheet order (说明 is added by :func:`write_workbook`)."""
    text(lang)
    std = run.result.standard
    names = SHEETS[lang]
    units = {lv.key: (lv.label_zh, lv.label_en) for lv in (report.levels if report else [])}
    sheets: list[tuple[str, pd.DataFrame]] = []
    overall = run.result.tiers.drop(columns=["label_zh", "label_en"])
    sheets.append((names["overall"], overall))
    if report is not None:
        for lv in report.levels:
            tab = report.units[lv.key].copy()
            tab["name"] = [
                OUTSIDE_NAME[lang] if o else n
                for o, n in zip(tab["outside"], tab["name"], strict=True)
            ]
            tab = tab.drop(columns=["layer"])
            if lv.key == "subdistrict":  # its id is a machine key ("subdistrict"/"all")
                tab["unit_id"] = ""
            sheets.append((lv.label_zh if lang == "zh" else lv.label_en, tab))
        sheets.append((names["gaps"], report.gaps.table.drop(columns=["x", "y"])))
    sheets.append((names["facilities"], facility_table(run.result)))
    if candidates is not None:
        sheets.append((names["candidates"], candidates))
    if picks is not None and len(picks):
        sheets.append((names["picks"], picks))
    rej = run.inputs.rejects() if rejects is None else rejects
    sheets.append((names["rejects"], rej))
    out = []
    for name, tab in sheets:
        cols = [str(c) for c in tab.columns]
        headers = [column_label(c, std, lang=lang, unit_labels=units) for c in cols]
        out.append(Sheet(name, tab, headers, _translations(std, lang, cols)))
    return out


def _cell_value(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if np.isfinite(f) else None
    return v


def _display_width(v: object) -> int:
    s = str(v)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


def _sheet_values(sheet: Sheet, std: ServiceStandard, lang: str) -> list[list[Any]]:
    """The cell values of a sheet's rows: plain Python values, codes translated, yes/no."""
    yes_no = ("是", "否") if lang == "zh" else ("yes", "no")
    cols = [str(c) for c in sheet.table.columns]
    rows = []
    for rec in sheet.table.itertuples(index=False, name=None):
        row = []
        for c, v in zip(cols, rec, strict=True):
            value = _cell_value(v)
            if c in sheet.translate and value is not None:
                if c == "tiers_missing":
                    value = ("、" if lang == "zh" else ", ").join(
                        _tier_name(std, k, lang) for k in str(value).split(";") if k
                    )
                else:
                    value = sheet.translate[c].get(value, value)
            elif isinstance(value, bool):
                value = yes_no[0] if value else yes_no[1]
            row.append(value)
        rows.append(row)
    return rows


def _write_sheet(wb: Workbook, sheet: Sheet, std: ServiceStandard, lang: str) -> None:
    """One table as a sheet of a write-only workbook (rows streamed to the file, not kept as
    cell objects): bold wrapped headers, number formats, share fills, widths, frozen header,
    filter."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(sheet.name)
    fills = {k: PatternFill("solid", start_color=c, end_color=c) for k, c in FILL_COLOURS.items()}
    formats = {
        "share": PERCENT_FORMAT,
        "metres": METRES_FORMAT,
        "count": COUNT_FORMAT,
        "decimal": DECIMAL_FORMAT,
        "coord": "0.000000",
    }
    kinds = [_kind(str(c)) for c in sheet.table.columns]
    rows = _sheet_values(sheet, std, lang)
    # column widths from what Excel will show (set before the rows in write-only mode)
    widths = [_display_width(h) for h in sheet.headers]
    for row in rows:
        for j, (v, kind) in enumerate(zip(row, kinds, strict=True)):
            if isinstance(v, int | float) and not isinstance(v, bool):
                if kind == "share":
                    shown = f"{100 * v:.1f}%"
                elif kind == "coord":
                    shown = f"{v:.6f}"
                else:
                    shown = f"{v:,.1f}" if kind == "decimal" else f"{v:,.0f}"
            else:
                shown = "" if v is None else str(v)
            widths[j] = max(widths[j], _display_width(shown))
    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = min(60, max(8, w + 2))
    ws.freeze_panes = "A2"
    if rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(widths))}{len(rows) + 1}"
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="center")
    head = []
    for h in sheet.headers:
        cell = WriteOnlyCell(ws, value=h)
        cell.font, cell.alignment = bold, wrap
        head.append(cell)
    ws.append(head)
    for row in rows:
        out: list[Any] = []
        for v, kind in zip(row, kinds, strict=True):
            if isinstance(v, int | float) and not isinstance(v, bool):
                cell = WriteOnlyCell(ws, value=v)
                cell.number_format = formats[kind]
                if kind == "share":
                    key = (
                        "low"
                        if v < FILL_THRESHOLDS[0]
                        else "mid"
                        if v < FILL_THRESHOLDS[1]
                        else "high"
                    )
                    cell.fill = fills[key]
                out.append(cell)
            else:
                out.append(v)
        ws.append(out)


def _about_rows(inputs: Inputs, sheets: Sequence[Sheet], lang: str) -> list[list[str]]:
    std = inputs.standard
    tx = text(lang)
    zh = lang == "zh"
    sc = inputs.scenario
    rows = [
        ["项目" if zh else "Item", "内容" if zh else "Value"],
        [
            "报告" if zh else "Report",
            (sc.name if zh else (sc.name_en or sc.name)) if sc else tx["report"],
        ],
        [
            "数据性质" if zh else "Data",
            tx["synthetic"] if inputs.synthetic else ("实际数据" if zh else "real data"),
        ],
        ["服务标准" if zh else "Standard", standard_title(std, lang)],
    ]
    for t in std.tiers:
        label = t.label_zh if zh else t.label_en
        rows.append(
            [
                f"{'标准' if zh else 'Standard'}：{label}" if zh else f"Standard: {label}",
                f"{tx[t.mode]} {t.minutes:g} {tx['minutes']}，{t.threshold_m:,.0f} 米"
                if zh
                else f"{tx[t.mode]} {t.minutes:g} min, {t.threshold_m:,.0f} m",
            ]
        )
    net = next(iter(inputs.networks.values()))
    sources = (
        ("路网", "Network", sc.network if sc else net.source),
        ("设施", "Facilities", sc.facilities if sc else inputs.facilities.path),
        (
            "居民",
            "Residents",
            (sc.residents if sc else None) or getattr(inputs.residents, "path", None),
        ),
    )
    for label_zh, label_en, path in sources:
        if path:
            rows.append([f"数据来源：{label_zh}" if zh else f"Source: {label_en}", Path(path).name])
    for kind, c in inputs.input_counts().items():
        rows.append(
            [
                f"输入：{_INPUT_ZH.get(kind, kind)}" if zh else f"Input: {kind}",
                f"{c['input']} 行 = 使用 {c['used']} + 剔除 {c['rejected']}"
                if zh
                else f"{c['input']} rows = {c['used']} used + {c['rejected']} rejected",
            ]
        )
    rows += [
        ["分析坐标系" if zh else "Analysis CRS", inputs.crs],
        [
            "达标率颜色" if zh else "Share colours",
            "红：低于 60%；黄：60%–90%；绿：90% 及以上"
            if zh
            else "red: below 60 %; amber: 60-90 %; green: 90 % and above",
        ],
        ["工作表" if zh else "Sheets", "、".join(s.name for s in sheets)],
        ["生成日期" if zh else "Date", _dt.date.today().isoformat()],
        ["lifecircle 版本" if zh else "lifecircle version", __version__],
    ]
    return rows


def write_workbook(
    run: CoverageRun,
    path: str | Path,
    *,
    report: CoverageReport | None = None,
    candidates: pd.DataFrame | None = None,
    picks: pd.DataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    lang: str = "zh",
    overwrite: bool = False,
) -> Path:
    """Write the planners' workbook (see the module docstring) atomically; return its path.

    Parameters
    ----------
    run : CoverageRun
        The coverage run (总体, 设施, 剔除记录, 说明).
    path : path
        The ``.xlsx`` file.
    report : CoverageReport, optional
        Adds one sheet per unit layer and 缺口.
    candidates, picks : DataFrame, optional
        The ``candidates.csv`` and ``picks.csv`` tables of a scoring run (候选点, 选址结果).
    rejects : DataFrame, optional
        Rejected rows (default ``run.inputs.rejects()``).
    lang : {"zh", "en"}, default "zh"
        Language of sheet names, headers and words in cells.
    overwrite : bool
        Replace an existing file.
    """
    if Path(path).suffix.lower() != ".xlsx":
        raise InputError(f"workbook {path} should end in .xlsx")
    sheets = build_sheets(
        run, report=report, candidates=candidates, picks=picks, rejects=rejects, lang=lang
    )
    _save(run.inputs, sheets, path, lang=lang, overwrite=overwrite)
    return Path(path)


def _save(
    inputs: Inputs, sheets: Sequence[Sheet], path: str | Path, *, lang: str, overwrite: bool
) -> None:
    """Write ``sheets`` and the 说明 sheet (last) to ``path`` atomically."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    std = inputs.standard
    # a write-only workbook streams its rows to temporary files: open the target first, so a
    # refused or failed write never leaves a half-built workbook behind
    with atomic_path(path, overwrite=overwrite) as tmp:
        wb = Workbook(write_only=True)
        for sheet in sheets:
            _write_sheet(wb, sheet, std, lang)
        # 说明 last: the tables come first when the file opens
        about = wb.create_sheet(SHEETS[lang]["about"])
        about.column_dimensions["A"].width = 24
        about.column_dimensions["B"].width = 100
        about.freeze_panes = "A2"
        for k, row in enumerate(_about_rows(inputs, sheets, lang)):
            if k == 0:
                cells = [WriteOnlyCell(about, value=v) for v in row]
                for c in cells:
                    c.font = Font(bold=True)
                about.append(cells)
            else:
                about.append(row)
        wb.save(tmp)
    logger.info("wrote workbook %s (%d sheets)", path, len(sheets) + 1)


def write_tables_workbook(
    inputs: Inputs,
    tables: Sequence[tuple[str, pd.DataFrame]],
    path: str | Path,
    *,
    lang: str = "zh",
    unit_labels: Mapping[str, tuple[str, str]] | None = None,
    overwrite: bool = False,
) -> Path:
    """A workbook of named tables with the same headers, formats, fills and 说明 sheet as
    :func:`write_workbook` (used by ``lifecircle grids`` for ``grids.xlsx``).

    Parameters
    ----------
    inputs : Inputs
        For the 说明 sheet (standard, data sources, synthetic flag).
    tables : sequence of (sheet name, DataFrame)
        In sheet order; the values are written as they are (the CSV values).
    path : path
        The ``.xlsx`` file.
    lang : {"zh", "en"}
    unit_labels : mapping, optional
        ``{layer key: (label_zh, label_en)}`` for ``{layer}_id``/``{layer}_name`` headers.
    overwrite : bool
    """
    if Path(path).suffix.lower() != ".xlsx":
        raise InputError(f"workbook {path} should end in .xlsx")
    std = inputs.standard
    sheets = []
    for name, tab in tables:
        cols = [str(c) for c in tab.columns]
        headers = [column_label(c, std, lang=lang, unit_labels=unit_labels) for c in cols]
        sheets.append(Sheet(name, tab, headers, _translations(std, lang, cols)))
    _save(inputs, sheets, path, lang=lang, overwrite=overwrite)
    return Path(path)
