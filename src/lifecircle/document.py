"""The report a planner hands in: ``report.html`` (Jinja2) and ``report.pdf`` (headless Chromium).

Contents, in Chinese by default (English with ``lang="en"``): a cover (title, scenario, standard,
date, synthetic banner when it applies), the 总体 summary, one map per tier (coverage and gaps,
static PNGs embedded in the page), bar charts of 达标率 by tier and by community (people and
elderly), the distribution of network distances, the unit tables (headers repeated on every
printed page, rows never split), the gap list with place descriptions (the community that holds
most of the gap and the nearest named street, not raw ids) and 方法说明. In Chinese, no tier key,
standard key or English unit-layer name is shown.

The page is self-contained (inline CSS, images as ``data:`` URIs, no script): it opens offline.
``report.pdf`` is A4, wide tables and maps in landscape (CSS named pages), printed by headless
Chromium (``chromium --headless --print-to-pdf``) with the installed Noto CJK fonts embedded.
A different look: ``template=`` a Jinja2 file using the context of :func:`report_context`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from lifecircle._files import atomic_path, check_writable, write_text
from lifecircle._version import __version__
from lifecircle.config import ServiceStandard, standard_title
from lifecircle.errors import InputError, MissingProgramError
from lifecircle.maps import cjk_font, draw_static_map
from lifecircle.report import CoverageReport, Section, report_tables, text
from lifecircle.runs import CoverageRun, resident_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: The default template (package data).
DEFAULT_TEMPLATE = Path(__file__).with_name("_templates") / "report.html.j2"

#: Programs tried, in order, to print the PDF: Chromium, Chrome, and Microsoft Edge (Chromium
#: based, installed on every Windows 10/11 machine a planner uses), by name on PATH or where their
#: installers put them.
CHROMIUM_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "msedge",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
    r"C:\Program Files\Microsoft\Edge\Application\msedge.exe",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)

WORDS = {
    "zh": {
        "date": "日期",
        "made_with": "制作工具：",
        "maps": "各层级覆盖图",
        "charts": "统计图",
        "map_caption": "{tier}（{mode} {minutes:g} 分钟 / {threshold:,.0f} 米）覆盖情况与缺口",
        "by_tier": "各层级达标率（全部人口与老年人）",
        "by_unit": "各{label}全部层级达标率（全部人口与老年人）",
        "distances": "到各层级最近设施的网络距离分布（按人口累计）",
        "people": "全部人口",
        "elderly": "老年人",
        "cum_share": "累计人口比例",
        "distance_km": "网络距离（千米）",
        "share_axis": "达标率",
        "place": "位置",
        "near_street": "近{street}",
        "unnamed_street": "无名道路",
        "finding": "{n} 人中，{share} 的居民在全部层级标准之内（完整生活圈）。",
        "worst_tier": "达标率最低的层级：{tier}（{share}）。",
        "worst_unit": "达标率最低的{label}：{name}（全部层级 {share}）。",
        "method_extra": (
            "距离单位为米；分钟按各层级速度换算。地图坐标系：{crs}（分析用投影坐标系），"
            "底图为道路网络。达标率颜色：低于 60% 为红色，60%–90% 为黄色，90% 及以上为绿色。"
        ),
    },
    "en": {
        "date": "Date",
        "made_with": "Made with",
        "maps": "Coverage maps by tier",
        "charts": "Charts",
        "map_caption": "{tier} ({mode} {minutes:g} min / {threshold:,.0f} m): coverage and gaps",
        "by_tier": "Share covered by tier (everyone and the elderly)",
        "by_unit": "Share covered by {label}, all tiers (everyone and the elderly)",
        "distances": "Network distance to the nearest facility of each tier (cumulative, people)",
        "people": "Everyone",
        "elderly": "Elderly",
        "cum_share": "Cumulative share of people",
        "distance_km": "Network distance (km)",
        "share_axis": "Share covered",
        "place": "Place",
        "near_street": "near {street}",
        "unnamed_street": "unnamed street",
        "finding": "Of {n} people, {share} live within the standard of every tier.",
        "worst_tier": "Weakest tier: {tier} ({share}).",
        "worst_unit": "Weakest {label}: {name} (all tiers {share}).",
        "method_extra": (
            "Distances in metres; minutes from each tier's speed. Map coordinates: {crs} (the "
            "analysis projection), drawn over the road network. Share colours: red below 60 %, "
            "amber 60-90 %, green 90 % and above."
        ),
    },
}


# -- figures ------------------------------------------------------------------------------------


def _font_rc(lang: str) -> dict[str, Any]:
    """Fonts for the figures: a CJK font (needed in Chinese; in English a fallback for Chinese
    place names in the data)."""
    font = cjk_font()
    if font is None:
        if lang == "zh":
            raise MissingProgramError(
                "a Chinese report needs a font with Chinese glyphs: install fonts-noto-cjk "
                "(apt-get install fonts-noto-cjk), or use --lang en"
            )
        return {}
    families = [font, "DejaVu Sans"] if lang == "zh" else ["DejaVu Sans", font]
    return {"font.family": families, "axes.unicode_minus": False}


def _png(fig: Figure, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tier_label(std: ServiceStandard, key: str, lang: str) -> str:
    t = std.tier(key)
    return t.label_zh if lang == "zh" else t.label_en


def tier_maps(
    run: CoverageRun, rep: CoverageReport, *, lang: str = "zh", dpi: int = 110
) -> list[dict[str, str]]:
    """One static map per tier (coverage cells, facilities, gaps), legend outside the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    std = run.result.standard
    words = WORDS[lang]
    tx = text(lang)
    out = []
    with matplotlib.rc_context(_font_rc(lang)):  # type: ignore[arg-type]
        for t in std.tiers:
            fig, ax = plt.subplots(figsize=(11.0, 7.2))
            try:
                drawn = draw_static_map(run, ax, report=rep, lang=lang, tier=t.key)
                ax.legend(
                    handles=drawn["handles"],
                    loc="upper left",
                    bbox_to_anchor=(1.01, 1.0),
                    fontsize=8,
                    frameon=False,
                )
                fig.subplots_adjust(left=0.01, right=0.72, top=0.99, bottom=0.01)
                src = _png(fig, dpi)
            finally:
                plt.close(fig)
            caption = words["map_caption"].format(
                tier=_tier_label(std, t.key, lang),
                mode=tx[t.mode],
                minutes=t.minutes,
                threshold=t.threshold_m,
            )
            out.append({"tier": t.key, "src": src, "caption": caption})
    return out


def _unit_level_for_chart(rep: CoverageReport) -> int:
    """The first unit layer below the sub-district (communities), else the sub-district."""
    return 1 if len(rep.levels) > 1 else 0


def charts(
    run: CoverageRun, rep: CoverageReport, *, lang: str = "zh", dpi: int = 130
) -> list[dict[str, str]]:
    """Bar charts of 达标率 by tier and by unit (people and elderly), and the distance CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    res = run.result
    std = res.standard
    words = WORDS[lang]
    out: list[dict[str, str]] = []
    with matplotlib.rc_context(_font_rc(lang)):  # type: ignore[arg-type]
        # by tier
        tiers = res.tiers
        labels = [_tier_label(std, k, lang) for k in tiers["tier"]]
        y = np.arange(len(labels))
        fig, ax = plt.subplots(figsize=(9.0, 0.55 * len(labels) + 1.4))
        try:
            ax.barh(y - 0.2, tiers["share"], 0.4, label=words["people"], color="#3b7dd8")
            ax.barh(y + 0.2, tiers["elderly_share"], 0.4, label=words["elderly"], color="#f28e2b")
            ax.set_yticks(y, labels)
            ax.invert_yaxis()
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlim(0, 1)
            ax.set_xlabel(words["share_axis"])
            ax.legend(loc="lower right", fontsize=8)
            ax.grid(axis="x", alpha=0.3)
            fig.tight_layout()
            out.append({"name": "by_tier", "src": _png(fig, dpi), "caption": words["by_tier"]})
        finally:
            plt.close(fig)
        # by unit (communities)
        lv = rep.levels[_unit_level_for_chart(rep)]
        tab = rep.units[lv.key]
        tab = tab[~tab["outside"].astype(bool) & (tab["population"] > 0)]
        tab = tab.sort_values("all_share")
        if len(tab) > 40:
            tab = tab.head(40)
        y = np.arange(len(tab))
        fig, ax = plt.subplots(figsize=(9.0, 0.3 * len(tab) + 1.4))
        try:
            ax.barh(y - 0.2, tab["all_share"], 0.4, label=words["people"], color="#3b7dd8")
            ax.barh(y + 0.2, tab["all_elderly_share"], 0.4, label=words["elderly"], color="#f28e2b")
            ax.set_yticks(y, [str(n) for n in tab["name"]], fontsize=8)
            ax.invert_yaxis()
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlim(0, 1)
            ax.set_xlabel(words["share_axis"])
            ax.legend(loc="lower right", fontsize=8)
            ax.grid(axis="x", alpha=0.3)
            fig.tight_layout()
            out.append(
                {
                    "name": "by_unit",
                    "src": _png(fig, dpi),
                    "caption": words["by_unit"].format(label=lv.label(lang)),
                }
            )
        finally:
            plt.close(fig)
        # distance distribution
        table = resident_table(res)
        pop = table["population"].to_numpy(float)
        fig, ax = plt.subplots(figsize=(9.0, 4.6))
        try:
            for i, t in enumerate(std.tiers):
                d = table[f"{t.key}_distance_m"].to_numpy(float)
                order = np.argsort(d, kind="stable")
                cum = np.cumsum(pop[order]) / max(pop.sum(), 1e-12)
                finite = np.isfinite(d[order])
                colour = f"C{i}"
                ax.step(
                    d[order][finite] / 1000,
                    cum[finite],
                    where="post",
                    color=colour,
                    label=_tier_label(std, t.key, lang),
                )
                ax.axvline(t.threshold_m / 1000, color=colour, ls=":", lw=1)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_ylim(0, 1)
            ax.set_xlim(left=0)
            ax.set_xlabel(words["distance_km"])
            ax.set_ylabel(words["cum_share"])
            ax.legend(loc="lower right", fontsize=8)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            out.append({"name": "distances", "src": _png(fig, dpi), "caption": words["distances"]})
        finally:
            plt.close(fig)
    return out


# -- gaps as places -------------------------------------------------------------------------------


def nearest_street_names(run: CoverageRun, x: np.ndarray, y: np.ndarray) -> list[str]:
    """Name of the nearest named street to each point (analysis CRS metres); ``""`` if none."""
    net = run.inputs.networks.get("walk") or next(iter(run.inputs.networks.values()))
    named = np.flatnonzero(net.edge_name >= 0)
    if len(named) == 0 or len(x) == 0:
        return [""] * len(x)
    coords = net.edge_coords()[named]
    lines = np.asarray(shapely.linestrings(coords), dtype=object)
    tree = shapely.STRtree(lines)
    idx = tree.query_nearest(shapely.points(x, y), all_matches=False)
    out = [""] * len(x)
    for p, e in zip(idx[0], idx[1], strict=True):
        out[int(p)] = net.name_values[int(net.edge_name[named[int(e)]])]
    return out


def gap_places(run: CoverageRun, rep: CoverageReport, *, lang: str = "zh") -> list[str]:
    """Each gap as a place: "新城社区，近人民路" (majority community, nearest named street)."""
    gt = rep.gaps.table
    words = WORDS[lang]
    streets = nearest_street_names(run, gt["x"].to_numpy(float), gt["y"].to_numpy(float))
    unit_names: list[list[str]] = []
    for lv in rep.levels[1:2]:
        col = f"{lv.key}_id"
        if col in gt.columns:
            names = dict(zip(lv.unit_id.astype(str), lv.name.astype(str), strict=True))
            unit_names.append([names.get(str(v), "") for v in gt[col]])
    sep = "，" if lang == "zh" else ", "
    out = []
    for i in range(len(gt)):
        parts = [u[i] for u in unit_names if u[i]]
        parts.append(words["near_street"].format(street=streets[i] or words["unnamed_street"]))
        out.append(sep.join(parts))
    return out


# -- the page -------------------------------------------------------------------------------------


def _table_html(head: Sequence[str], rows: Sequence[Sequence[str]], *, text_cols: int = 0) -> str:
    e = html.escape

    def cls(j: int, c: str) -> str:
        if j < text_cols:
            return ' class="name"'
        if c.endswith("%"):
            v = float(c[:-1])
            return ' class="low"' if v < 60 else ' class="mid"' if v < 90 else ' class="high"'
        return ""

    out = ["<table>"]
    if any(head):  # a key-value table (e.g. the grid overview) has no header row
        out.append("<thead><tr>")
        out += [
            f'<th class="text">{e(h)}</th>' if j < text_cols else f"<th>{e(h)}</th>"
            for j, h in enumerate(head)
        ]
        out.append("</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td{cls(j, c)}>{e(c)}</td>" for j, c in enumerate(r)))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _gap_table(run: CoverageRun, rep: CoverageReport, lang: str, max_gaps: int) -> str:
    tx = text(lang)
    words = WORDS[lang]
    std = run.result.standard
    gt = rep.gaps.table.head(max_gaps)
    places = gap_places(run, rep, lang=lang)[: len(gt)]
    fac = run.result.facilities
    fac_names = dict(zip(fac["id"].astype(str), fac["name"].astype(str), strict=True))
    join = "、" if lang == "zh" else ", "
    rows = []
    for r, place in zip(gt.to_dict("records"), places, strict=True):
        fid = str(r["nearest_facility_id"])
        rows.append(
            [
                str(r["rank"]),
                place,
                _tier_label(std, r["tier"], lang),
                join.join(
                    _tier_label(std, k, lang) for k in str(r["tiers_missing"]).split(";") if k
                ),
                f"{r['population']:,.0f}",
                f"{r['elderly']:,.0f}",
                fac_names.get(fid, fid) or tx["none"],
                _metres(r["nearest_facility_distance_m"]),
                _metres(r["shortfall_m"]),
            ]
        )
    head = [
        "#",
        words["place"],
        tx["tier"],
        tx["missing"],
        tx["population"],
        words["elderly"],
        tx["nearest"],
        tx["distance"],
        tx["shortfall"],
    ]
    return _table_html(head, rows, text_cols=4)


def _metres(v: Any) -> str:
    f = float(v)
    if np.isnan(f):
        return "—"
    return "∞" if not np.isfinite(f) else f"{f:,.0f} m"


def _key_findings(run: CoverageRun, rep: CoverageReport, lang: str) -> list[str]:
    res = run.result
    words = WORDS[lang]
    std = res.standard
    out = [
        words["finding"].format(
            n=f"{res.population_total:,.0f}", share=f"{100 * res.all_covered_share:.1f}%"
        )
    ]
    tiers = res.tiers.sort_values("share")
    if len(tiers):
        w = tiers.iloc[0]
        out.append(
            words["worst_tier"].format(
                tier=_tier_label(std, w["tier"], lang), share=f"{100 * w['share']:.1f}%"
            )
        )
    lv = rep.levels[_unit_level_for_chart(rep)]
    tab = rep.units[lv.key]
    ranked = tab[tab["rank"].notna()]
    if len(ranked) > 1:
        worst = ranked.iloc[0]
        out.append(
            words["worst_unit"].format(
                label=lv.label(lang), name=worst["name"], share=f"{100 * worst['all_share']:.1f}%"
            )
        )
    return out


def report_context(
    run: CoverageRun,
    rep: CoverageReport,
    *,
    lang: str = "zh",
    files: Sequence[str] = (),
    max_gaps: int = 30,
    sections: Sequence[Section] = (),
) -> dict[str, Any]:
    """Everything the template sees.

    Keys: ``title``, ``scenario``, ``synthetic`` (bool), ``standard`` (its title), ``date``,
    ``version``, ``html_lang``, ``t`` (labels), ``key_findings`` (sentences), ``tables``
    (``overall``, ``standard``, ``standard_title``, ``gaps``: HTML), ``maps`` and ``charts``
    (lists of ``{"src": data URI, "caption"}``), ``unit_tables`` (``{"title", "html"}``),
    ``gaps_note``, ``method`` (paragraphs), ``files``, ``extra_tables`` (``{"title", "html"}``
    of further sections, e.g. the grid system).
    """
    tx = text(lang)
    words = WORDS[lang]
    inputs = run.inputs
    sc = inputs.scenario
    std = run.result.standard
    tables = report_tables(rep, lang=lang, max_gaps=max_gaps)
    std_sec, overall_sec, unit_secs = tables[0], tables[1], tables[2:-1]
    gap_note = tables[-1][3]
    unit_tables = [
        {"title": title, "html": _table_html(head, rows, text_cols=3)}
        for title, head, rows, _ in unit_secs
    ]
    scenario = (sc.name if lang == "zh" else (sc.name_en or sc.name)) if sc else ""
    return {
        "title": tx["report"],
        "scenario": scenario,
        "synthetic": inputs.synthetic,
        "standard": standard_title(std, lang),
        "date": _dt.date.today().isoformat(),
        "version": __version__,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "t": {**tx, **words},
        "key_findings": _key_findings(run, rep, lang),
        "tables": {
            "overall": _table_html(overall_sec[1], overall_sec[2], text_cols=1),
            "standard": _table_html(std_sec[1], std_sec[2], text_cols=1),
            "standard_title": std_sec[0],
            "gaps": _gap_table(run, rep, lang, max_gaps),
        },
        "maps": tier_maps(run, rep, lang=lang),
        "charts": charts(run, rep, lang=lang),
        "unit_tables": unit_tables,
        "gaps_note": gap_note,
        "method": [
            tx["method_text"].format(cell=rep.gaps.cell_m),
            words["method_extra"].format(crs=run.result.crs),
        ],
        "files": list(files),
        "extra_tables": [
            {"title": title, "html": _table_html(head, rows, text_cols=2)}
            for title, head, rows in sections
        ],
    }


def render_report_html(
    run: CoverageRun,
    rep: CoverageReport,
    *,
    lang: str = "zh",
    template: str | Path | None = None,
    files: Sequence[str] = (),
    sections: Sequence[Section] = (),
) -> str:
    """``report.html``: the report rendered with the Jinja2 ``template`` (default the built-in)."""
    import jinja2

    text(lang)
    path = Path(template) if template is not None else DEFAULT_TEMPLATE
    if not path.is_file():
        raise InputError(f"report template {path} does not exist; give a Jinja2 .html file")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    try:
        tpl = env.get_template(path.name)
        return tpl.render(**report_context(run, rep, lang=lang, files=files, sections=sections))
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f"{path}" + (f", line {line}" if line else "")
        raise InputError(f"report template {where}: {exc}") from exc


# -- PDF ------------------------------------------------------------------------------------------


def find_chromium() -> str:
    """The Chromium executable (``LIFECIRCLE_CHROMIUM`` or the first of :data:`CHROMIUM_NAMES`)."""
    env = os.environ.get("LIFECIRCLE_CHROMIUM")
    if env:
        found = shutil.which(env)
        if found is None:
            raise MissingProgramError(
                f"LIFECIRCLE_CHROMIUM={env} is not an executable; fix it, or pass --no-pdf"
            )
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise MissingProgramError(
        "report.pdf needs Chromium (or Chrome/Edge) and none was found: apt-get install "
        "chromium fonts-noto-cjk, or set LIFECIRCLE_CHROMIUM=/path/to/chrome, or pass --no-pdf"
    )


def write_pdf(html_path: str | Path, pdf_path: str | Path, *, overwrite: bool = False) -> Path:
    """Print an HTML file to PDF with headless Chromium (page sizes from its CSS ``@page``)."""
    exe = find_chromium()
    src = Path(html_path).resolve()
    with (
        atomic_path(pdf_path, overwrite=overwrite) as tmp,
        tempfile.TemporaryDirectory(prefix="lifecircle-chromium-") as profile,
    ):
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={tmp.resolve()}",
            src.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingProgramError(f"Chromium could not print {src.name} to PDF: {last}")
    logger.info("wrote %s", pdf_path)
    return Path(pdf_path)


def write_report_document(
    run: CoverageRun,
    rep: CoverageReport,
    out_dir: str | Path,
    *,
    lang: str = "zh",
    template: str | Path | None = None,
    pdf: bool = True,
    files: Sequence[str] = (),
    overwrite: bool = False,
    sections: Sequence[Section] = (),
) -> dict[str, Path]:
    """Write ``report.html`` and (``pdf=True``) ``report.pdf`` to ``out_dir``.

    Raises
    ------
    MissingProgramError
        ``pdf=True`` and Chromium is missing (checked before anything is written).
    """
    d = Path(out_dir)
    paths = {"report_html": d / "report.html"}
    if pdf:
        paths["report_pdf"] = d / "report.pdf"
        find_chromium()
    check_writable(list(paths.values()), overwrite=overwrite)
    page = render_report_html(
        run, rep, lang=lang, template=template, files=files, sections=sections
    )
    write_text(page, paths["report_html"], overwrite=True)
    if pdf:
        write_pdf(paths["report_html"], paths["report_pdf"], overwrite=True)
    return paths


__all__ = [
    "DEFAULT_TEMPLATE",
    "charts",
    "find_chromium",
    "gap_places",
    "nearest_street_names",
    "render_report_html",
    "report_context",
    "tier_maps",
    "write_pdf",
    "write_report_document",
]
