"""Maps of a coverage run: an interactive HTML page (folium/Leaflet) and a static PNG.

Interactive map
---------------
:func:`build_map` makes a folium map with a layer control holding one toggle per layer:

* facilities, one layer per tier (circle markers coloured by tier; popups with name, tier, id
  and the population within the standard for whom it is the nearest facility of its tier);
* service areas per tier, when the caller passes them (a GeoDataFrame with ``tier``,
  ``budget_m`` and polygon geometry in EPSG:4326, e.g. from ``lifecircle.service_areas``);
* residents coloured by coverage, one layer for all tiers (the complete living circle) and one per
  tier. Up to ``max_resident_points`` residents are drawn as points (green covered, red not);
  more are aggregated to square cells of the analysis CRS coloured by the share of their
  population covered, so 200,000 residents do not make a 100 MB page;
* per unit layer (sub-district, communities, grids) a choropleth of the share covered (达标率) with
  a popup giving population and every tier's share;
* gap clusters (:func:`lifecircle.report.find_gaps`), the largest first;
* the county / sub-district outlines of ``inputs.boundaries``;
* in offline mode without tiles, the road network itself as a light base layer.

A title (scenario, standard, and a "synthetic data" warning where it applies), a legend and
Leaflet's scale bar are always drawn. Labels are Chinese by default (``lang="en"`` for English).

Layer data is embedded once as compact JSON arrays and turned into Leaflet layers by a few lines
of inline JavaScript; the map uses the canvas renderer.

Offline mode
------------
With ``offline=True`` the page references no external file: Leaflet's JavaScript and CSS
(vendored in ``lifecircle/_assets`` from the npm package, see its README) are inlined, the CSS
images become ``data:`` URIs, and folium's other default assets (jQuery, Bootstrap, glyphicons,
Font Awesome, awesome-markers), which these maps do not use, are dropped. Tiles are either none
(the road network is drawn instead) or a user-given XYZ template such as an intranet tile server.
:func:`render_map_html` refuses to return an offline page that still has an external
``<script src>`` or ``<link href>``.

A small inline probe records JavaScript errors and, once the page has loaded, writes the Leaflet
version, the map's layers and its bounds as JSON into a hidden ``<pre id="lifecircle-probe">``
element (used by the browser test; it changes nothing visible).

Static map
----------
:func:`write_static_map` draws the same content with matplotlib in the analysis CRS (metres), with
legend, north arrow and scale bar. Chinese labels need a CJK font; without one the PNG falls back
to English labels (logged).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from lifecircle import report as report_mod
from lifecircle._files import (
    atomic_path,
    check_writable,
    geojson_dict,
    geometry_dict,
    jsonable,
    write_text,
)
from lifecircle._palette import (
    COVERED_COLOUR,
    GAP_COLOUR,
    SHARE_BREAKS,
    SHARE_COLOURS,
    UNCOVERED_COLOUR,
    tier_colours,
)
from lifecircle._version import __version__
from lifecircle.config import standard_title
from lifecircle.coords import from_wgs84, to_wgs84
from lifecircle.coverage import CoverageResult, tier_columns
from lifecircle.errors import InputError
from lifecircle.network import RoadNetwork
from lifecircle.report import CoverageReport, Gaps
from lifecircle.runs import CoverageRun, Inputs
from lifecircle.siting import ScoringResult, resident_weight

if TYPE_CHECKING:
    import folium
    import geopandas as gpd
    import pandas as pd
    from branca.element import Figure
    from matplotlib.axes import Axes

    from lifecircle.config import ServiceStandard

logger = logging.getLogger(__name__)

#: Vendored Leaflet version (``lifecircle/_assets/leaflet``).
LEAFLET_VERSION = "1.9.4"
LEAFLET_CDN = f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist"
#: Vendored web assets shipped as package data (read with ``importlib.resources``).
ASSETS_DIR = resources.files("lifecircle") / "_assets"

#: The unit choropleths (达标率 of a whole community/grid) use their own ramp, purple, darkest for
#: the lowest share, so that they are never read as the resident cells' red-to-green ramp.
UNIT_COLOURS = ("#54278f", "#756bb1", "#9e9ac8", "#cbc9e2", "#f2f0f7")

#: Above this many resident points the map aggregates residents to square cells.
MAX_RESIDENT_POINTS = 5_000
#: Largest number of aggregated resident cells per map (the cell grows until it fits).
MAX_RESIDENT_CELLS = 15_000
#: Gap outlines drawn on maps (largest first).
MAX_MAP_GAPS = 300

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "facilities": "设施",
        "service_areas": "服务范围",
        "residents": "居民覆盖",
        "all_tiers": "全部层级",
        "share": "达标率",
        "gaps": "覆盖缺口",
        "roads": "道路网络",
        "boundary_county": "县界",
        "boundary_subdistrict": "街道边界",
        "boundary": "边界",
        "units": "单元",
        "group_facilities": "设施",
        "group_coverage": "覆盖",
        "group_service_areas": "服务范围",
        "group_gaps": "缺口",
        "group_boundaries": "边界",
        "group_base": "底图",
        "covered": "已覆盖",
        "uncovered": "未覆盖",
        "population": "人口",
        "covered_pop": "覆盖人口",
        "name": "名称",
        "tier": "层级",
        "id": "编号",
        "catchment": "标准范围内服务人口",
        "legend": "图例",
        "synthetic": "合成示范数据（非真实数据）",
        "standard": "标准",
        "gap": "缺口",
        "missing": "缺失层级",
        "nearest": "最近设施",
        "distance": "网络距离",
        "elderly": "老年人",
        "cell": "方格",
        "north": "北",
        "outside": "（不在任何单元内）",
        "basemap": "底图",
        "labels": "注记",
        "gcj02_note": "底图为 GCJ-02 坐标（高德/腾讯）：各图层已由 WGS84 偏移至 GCJ-02 显示"
        "以便对齐",
        "weakest": "最弱层级",
        "people": "人",
    },
    "en": {
        "facilities": "Facilities",
        "service_areas": "Service area",
        "residents": "Residents covered",
        "all_tiers": "all tiers",
        "share": "share covered",
        "gaps": "Coverage gaps",
        "roads": "Road network",
        "boundary_county": "County boundary",
        "boundary_subdistrict": "Sub-district boundary",
        "boundary": "Boundary",
        "units": "units",
        "group_facilities": "Facilities",
        "group_coverage": "Coverage",
        "group_service_areas": "Service areas",
        "group_gaps": "Gaps",
        "group_boundaries": "Boundaries",
        "group_base": "Base",
        "covered": "covered",
        "uncovered": "not covered",
        "population": "Population",
        "covered_pop": "Covered",
        "name": "Name",
        "tier": "Tier",
        "id": "ID",
        "catchment": "Population served within standard",
        "legend": "Legend",
        "synthetic": "SYNTHETIC demonstration data (not real)",
        "standard": "Standard",
        "gap": "Gap",
        "missing": "Tiers missing",
        "nearest": "Nearest facility",
        "distance": "Network distance",
        "elderly": "Elderly",
        "cell": "cell",
        "north": "N",
        "outside": "(outside all units)",
        "basemap": "Basemap",
        "labels": "labels",
        "gcj02_note": "GCJ-02 basemap (Amap/Tencent): every layer is shown shifted from WGS84 to "
        "GCJ-02 so that it lines up",
        "weakest": "Weakest tier",
        "people": "people",
    },
}

_EXTERNAL_RE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE
)


def labels(lang: str) -> dict[str, str]:
    """Map labels for ``lang`` (``zh`` or ``en``)."""
    if lang not in LABELS:
        raise InputError(f"unknown language {lang!r}; use zh or en")
    return LABELS[lang]


def external_references(page: str) -> list[str]:
    """``<script src>``/``<link href>``/``<img src>`` tags of ``page`` that load from a URL."""
    return [m.group(0) for m in _EXTERNAL_RE.finditer(page)]


def share_colour(share: np.ndarray) -> np.ndarray:
    """Colour class of each share (0-1; ``nan`` gives grey)."""
    s = np.asarray(share, float)
    idx = np.searchsorted(np.asarray(SHARE_BREAKS), np.nan_to_num(s, nan=0.0), side="right")
    out = np.asarray(SHARE_COLOURS, dtype=object)[np.minimum(idx, len(SHARE_COLOURS) - 1)]
    return np.where(np.isnan(s), "#bdbdbd", out)


# -- assets -----------------------------------------------------------------------------------


def leaflet_inline() -> tuple[str, str]:
    """Leaflet's JavaScript and CSS ready to inline.

    The source map comment is removed and the images become data URIs.
    """
    d = ASSETS_DIR / "leaflet"
    js = (d / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js)
    css = (d / "leaflet.css").read_text(encoding="utf-8")

    def data_uri(m: re.Match[str]) -> str:
        img = d / m.group(1)
        return f"url(data:image/png;base64,{base64.b64encode(img.read_bytes()).decode('ascii')})"

    css = re.sub(r"url\((images/[\w.-]+\.png)\)", data_uri, css)
    if "</script" in js.lower():
        raise RuntimeError("vendored leaflet.js contains '</script' and cannot be inlined")
    return js, css


_PROBE_HEAD = """<script>
window.__lifecircleErrors = [];
window.addEventListener('error', function (e) {
  var t = e.target, what = e.message || ('failed to load ' + ((t && (t.src || t.href)) || '?'));
  window.__lifecircleErrors.push(String(what));
}, true);
(function () { var ce = console.error; console.error = function () {
  window.__lifecircleErrors.push(Array.prototype.join.call(arguments, ' ')); \
ce.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  var map = window.__lifecircleMap, ctl = window.__lifecircleControl,
    probe = {errors: window.__lifecircleErrors, \
leaflet: (typeof L !== 'undefined') ? L.version : null,
             map: !!map, control_layers: []};
  try {
    if (map) {
      var n = 0; map.eachLayer(function () { n++; }); probe.map_layers = n;
      var b = map.getBounds(); \
probe.bounds = [[b.getSouth(), b.getWest()], [b.getNorth(), b.getEast()]];
      probe.size = [map.getSize().x, map.getSize().y];
      var c = map.getCenter(), px = map.options.crs.latLngToPoint(c, 18);
      probe.crs = map.options.crs.code || null;
      probe.center = [c.lat, c.lng]; probe.center_px18 = [px.x, px.y];
    }
    if (ctl) { ctl._layers.forEach(function (l) { var c = 0;
      if (l.layer._lcCount !== undefined) { c = l.layer._lcCount; }
      else if (l.layer.getLayers) { c = l.layer.getLayers().length; }
      probe.control_layers.push({name: l.name, overlay: !!l.overlay, \
shown: map.hasLayer(l.layer), children: c}); }); }
    probe.legend = Array.prototype.filter.call(
      document.querySelectorAll('#lifecircle-legend [data-kinds]'),
      function (el) { return el.style.display !== 'none'; }).map(
      function (el) { return el.getAttribute('data-kinds'); });
    probe.groups = Array.prototype.map.call(document.querySelectorAll('.lc-group'),
      function (el) { return el.textContent; });
    probe.load_ms = (performance.timing && performance.timing.navigationStart) ?
      (Date.now() - performance.timing.navigationStart) : null;
  } catch (err) { probe.errors.push(String(err)); }
  var el = document.createElement('pre'); el.id = 'lifecircle-probe'; el.style.display = 'none';
  el.textContent = JSON.stringify(probe); document.body.appendChild(el);
});
</script>"""


# -- data preparation ------------------------------------------------------------------------


def _round(a: ArrayLike, nd: int = 6) -> list[float]:
    return np.round(np.asarray(a, float), nd).tolist()


def _coverage_bits(result: CoverageResult) -> np.ndarray:
    """Per resident: bit i set when tier i is covered; bit n_tiers when all are."""
    res = result.residents
    bits = np.zeros(len(res), dtype=np.int64)
    for i, t in enumerate(result.standard.tiers):
        bits |= res[tier_columns(t.key)["covered"]].to_numpy(bool).astype(np.int64) << i
    bits |= res["all_covered"].to_numpy(bool).astype(np.int64) << len(result.standard.tiers)
    return bits


def resident_cells(
    result: CoverageResult, *, cell_m: float | None = None, max_cells: int = MAX_RESIDENT_CELLS
) -> tuple[float, dict[str, np.ndarray]]:
    """Residents aggregated to square cells of the analysis CRS.

    Parameters
    ----------
    result : CoverageResult
    cell_m : float, optional
        Cell side in metres; default 100 m, doubled until at most ``max_cells`` cells are occupied.

    Returns
    -------
    cell_m : float
    cells : dict
        ``ix``, ``iy`` (cell indices: x from ``ix*cell_m``), ``population``, and per tier key
        and ``"all"`` the covered population, one entry per occupied cell.
    """
    res = result.residents
    x = res["x"].to_numpy(float)
    y = res["y"].to_numpy(float)
    pop = res["population"].to_numpy(float)
    size = float(cell_m) if cell_m else 100.0
    while True:
        ix = np.floor(x / size).astype(np.int64)
        iy = np.floor(y / size).astype(np.int64)
        if len(x) == 0:
            key = np.zeros(0, dtype=np.int64)
            break
        key = (iy - iy.min()) * (ix.max() - ix.min() + 1) + (ix - ix.min())
        n = len(np.unique(key))
        if cell_m or n <= max_cells:
            break
        size *= 2
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    cells: dict[str, np.ndarray] = {
        "ix": ix[first],
        "iy": iy[first],
        "population": np.bincount(inv, weights=pop, minlength=len(uniq)),
    }
    for t in result.standard.tiers:
        cov = res[tier_columns(t.key)["covered"]].to_numpy(bool)
        cells[t.key] = np.bincount(inv, weights=pop * cov, minlength=len(uniq))
    cells["all"] = np.bincount(
        inv, weights=pop * res["all_covered"].to_numpy(bool), minlength=len(uniq)
    )
    return size, cells


def _cell_bounds_lonlat(ix: np.ndarray, iy: np.ndarray, cell_m: float, crs: str) -> np.ndarray:
    """(n, 4) south, west, north, east of square cells, WGS84 degrees."""
    w, s = to_wgs84(ix * cell_m, iy * cell_m, crs)
    e, n = to_wgs84((ix + 1) * cell_m, (iy + 1) * cell_m, crs)
    return np.column_stack([s, w, n, e])


def _geojson(gdf: Any, props: Sequence[str], *, precision: int = 6) -> dict[str, Any]:
    """A compact GeoJSON FeatureCollection of ``gdf`` keeping ``props``."""
    return geojson_dict(gdf[[*props, gdf.geometry.name]], precision=precision, drop_empty=True)


def _dumps(o: Any) -> str:
    s = json.dumps(jsonable(o), ensure_ascii=False, separators=(",", ":"))
    return s.replace("</", "<\\/")


def _road_lines(net: RoadNetwork) -> dict[str, Any]:
    """The network's edges as ``[[lat, lon], [lat, lon]]`` segments.

    Major and minor roads apart, coordinates rounded to 6 decimals.
    """
    xy = net.edge_coords()  # (E, 2, 2)
    lon, lat = net.to_lonlat(xy[:, :, 0].ravel(), xy[:, :, 1].ravel())
    coords = np.round(np.stack([lat, lon], axis=1).reshape(-1, 2, 2), 6)  # Leaflet order: lat, lon
    hw = (
        np.asarray(net.highway_values, dtype=object)[net.edge_highway]
        if len(net.highway_values)
        else np.full(len(coords), "", dtype=object)
    )
    major = np.isin(
        hw,
        [
            "motorway",
            "trunk",
            "primary",
            "secondary",
            "tertiary",
            "motorway_link",
            "trunk_link",
            "primary_link",
            "secondary_link",
            "tertiary_link",
        ],
    )
    return {"major": coords[major].tolist(), "minor": coords[~major].tolist()}


# -- the folium map -------------------------------------------------------------------------------


def _js_layer_class() -> Any:
    from folium.map import Layer
    from jinja2 import Template

    class JsLayer(Layer):
        """A layer built by inline JavaScript (``__NAME__`` is replaced by the layer variable)."""

        _template = Template(
            "{% macro script(this, kwargs) %}{{ this.js }}\n"
            "{{ this.get_name() }}._lcKind = {{ this.kind | tojson }};{% endmacro %}"
        )

        def __init__(
            self,
            js: str,
            name: str,
            *,
            show: bool = True,
            overlay: bool = True,
            bounds: list[list[float]] | None = None,
            count: int = 0,
            kind: str = "",
        ) -> None:
            super().__init__(name=name, overlay=overlay, control=True, show=show)
            self._name = "LifecircleLayer"
            self.js = js.replace("__NAME__", self.get_name())
            self._bounds = bounds
            self.count = int(count)
            self.kind = kind

        def _get_self_bounds(self) -> Any:
            return self._bounds or [[None, None], [None, None]]

    return JsLayer


_JS_HELPERS = """
var LC = window.LC = {
  esc: function (s) { return String(s).replace(/[&<>"]/g, function (c) {
    return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; }); },
  pct: function (v) { return (v === null || v === undefined) ? '—' : (100 * v).toFixed(1) + '%'; },
  num: function (v) { return (v === null || v === undefined) ? '—' : \
Math.round(v).toLocaleString('en-US'); },
  m: function (v) { return (v === null || v === undefined) ? '∞' : \
Math.round(v).toLocaleString('en-US') + ' m'; },
  shareColour: function (s) { var b = __BREAKS__, c = __COLOURS__;
    if (s === null || s === undefined) { return '#bdbdbd'; }
    for (var i = 0; i < b.length; i++) { if (s < b[i]) { return c[i]; } } return c[c.length - 1]; },
  unitColour: function (s) { var b = __BREAKS__, c = __UNIT_COLOURS__;
    if (s === null || s === undefined) { return '#bdbdbd'; }
    for (var i = 0; i < b.length; i++) { if (s < b[i]) { return c[i]; } } return c[c.length - 1]; },
  lazy: function (count, now, fill) {
    // a feature group filled when first shown, so hidden layers cost nothing at load time
    var g = L.featureGroup(), done = false;
    g._lcCount = count;
    var run = function () { if (!done) { done = true; fill(g); } };
    if (now) { run(); } else { g.once('add', run); }
    return g; },
  table: function (title, rows) { \
var h = '<b>' + LC.esc(title) + '</b><table style="font-size:12px">';
    rows.forEach(function (r) { h += '<tr><td style="padding-right:8px">' + LC.esc(r[0]) + \
'</td><td>' + LC.esc(r[1]) + '</td></tr>'; });
    return h + '</table>'; }
};
"""


# -- basemaps ---------------------------------------------------------------------------------

#: Basemap names accepted by ``--basemap`` (or an XYZ URL template).
BASEMAPS = ("none", "osm", "tianditu", "tianditu-img", "amap")

_TDT = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
    "&TILECOL={x}&tk={key}"
)
_TDT_ATTR = "&copy; 天地图 Tianditu (国家地理信息公共服务平台)"
#: Tile hosts that serve GCJ-02 (Amap 高德, Tencent 腾讯): overlays must be shifted to match.
_GCJ02_HOSTS = ("autonavi.com", "amap.com", "gtimg.com", "map.qq.com")


@dataclass(frozen=True)
class Basemap:
    """A tile basemap: one or more XYZ layers (a base and an annotation layer for 天地图).

    Attributes
    ----------
    name : str
        ``osm``, ``tianditu``, ``tianditu-img``, ``amap`` or ``url``.
    layers : tuple of (url, attribution, subdomains)
    gcj02 : bool
        The tiles are drawn in GCJ-02 (Amap, Tencent): every overlay is shown shifted from
        WGS84 to GCJ-02 so that it lines up, and the map says so.
    """

    name: str
    layers: tuple[tuple[str, str, str], ...]
    gcj02: bool = False


def resolve_basemap(
    spec: str | None, *, environ: Mapping[str, str] | None = None
) -> Basemap | None:
    """The basemap named by ``--basemap`` (``None`` for ``none``).

    Parameters
    ----------
    spec : str or None
        ``none``, ``osm``, ``tianditu`` (vector + labels), ``tianditu-img`` (imagery + labels),
        ``amap`` (高德, GCJ-02), or an XYZ URL template with ``{z}``/``{x}``/``{y}`` (GCJ-02 when
        its host is Amap's or Tencent's).
    environ : mapping, optional
        Where ``TIANDITU_KEY`` is read (default the process environment). The key goes into the
        tile URLs of the page written, never into lifecircle's own files.

    Raises
    ------
    InputError
        For an unknown name, a URL without ``{z}``/``{x}``/``{y}``, or 天地图 without a key.
    """
    env = os.environ if environ is None else environ
    if spec is None or spec == "none":
        return None
    if spec == "osm":
        return Basemap(
            "osm",
            (
                (
                    "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                    "&copy; OpenStreetMap contributors",
                    "",
                ),
            ),
        )
    if spec in ("tianditu", "tianditu-img"):
        key = env.get("TIANDITU_KEY", "").strip()
        if not key:
            raise InputError(
                f"--basemap {spec} needs a 天地图 key: get one at https://console.tianditu.gov.cn "
                "and set the environment variable TIANDITU_KEY (it is never stored by lifecircle)"
            )
        base, notes = ("vec", "cva") if spec == "tianditu" else ("img", "cia")
        return Basemap(
            spec,
            tuple(
                (_TDT.replace("{layer}", lay).replace("{key}", key), _TDT_ATTR, "01234567")
                for lay in (base, notes)
            ),
        )
    if spec == "amap":
        return Basemap(
            "amap",
            (
                (
                    "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
                    "&style=8&x={x}&y={y}&z={z}",
                    "&copy; 高德地图 AutoNavi (GCJ-02)",
                    "1234",
                ),
            ),
            gcj02=True,
        )
    if "://" in spec:
        if not all(k in spec for k in ("{z}", "{x}", "{y}")):
            raise InputError(f"--basemap {spec}: a tile URL needs {{z}}, {{x}} and {{y}}")
        gcj = any(h in spec for h in _GCJ02_HOSTS)
        return Basemap("url", ((spec, "tiles", "abc" if "{s}" in spec else ""),), gcj02=gcj)
    raise InputError(
        f"unknown basemap {spec!r}; use one of {', '.join(BASEMAPS)} or an XYZ URL template"
    )


#: Leaflet CRS that shows WGS84 data on GCJ-02 tiles: WGS84 -> GCJ-02 (the published formula, as
#: :func:`lifecircle.coords.wgs84_to_gcj02`) before the Web Mercator projection, and back.
_GCJ02_CRS_JS = """
var LC_GCJ = (function () {
  var A = 6378245.0, EE = 0.00669342162296594323, PI = Math.PI;
  function tLat(x, y) { var r = -100 + 2*x + 3*y + 0.2*y*y + 0.1*x*y + 0.2*Math.sqrt(Math.abs(x));
    r += (20*Math.sin(6*x*PI) + 20*Math.sin(2*x*PI)) * 2/3;
    r += (20*Math.sin(y*PI) + 40*Math.sin(y/3*PI)) * 2/3;
    r += (160*Math.sin(y/12*PI) + 320*Math.sin(y*PI/30)) * 2/3; return r; }
  function tLng(x, y) { var r = 300 + x + 2*y + 0.1*x*x + 0.1*x*y + 0.1*Math.sqrt(Math.abs(x));
    r += (20*Math.sin(6*x*PI) + 20*Math.sin(2*x*PI)) * 2/3;
    r += (20*Math.sin(x*PI) + 40*Math.sin(x/3*PI)) * 2/3;
    r += (150*Math.sin(x/12*PI) + 300*Math.sin(x/30*PI)) * 2/3; return r; }
  function out(lat, lng) { return lng < 72.004 || lng > 137.8347 || lat < 0.8293 || lat > 55.8271; }
  function fwd(lat, lng) { if (out(lat, lng)) { return [lat, lng]; }
    var dLat = tLat(lng - 105, lat - 35), dLng = tLng(lng - 105, lat - 35);
    var rad = lat / 180 * PI, m = Math.sin(rad); m = 1 - EE*m*m; var sm = Math.sqrt(m);
    dLat = dLat * 180 / ((A * (1 - EE)) / (m * sm) * PI);
    dLng = dLng * 180 / (A / sm * Math.cos(rad) * PI);
    return [lat + dLat, lng + dLng]; }
  var M = L.CRS.EPSG3857;
  L.CRS.GCJ02 = L.extend({}, M, {code: 'GCJ02',
    latLngToPoint: function (ll, zoom) { var g = fwd(ll.lat, ll.lng);
      return M.latLngToPoint(L.latLng(g[0], g[1]), zoom); },
    pointToLatLng: function (p, zoom) { var g = M.pointToLatLng(p, zoom), w = [g.lat, g.lng];
      for (var i = 0; i < 4; i++) { var t = fwd(w[0], w[1]);
        w = [w[0] - (t[0] - g.lat), w[1] - (t[1] - g.lng)]; }
      return L.latLng(w[0], w[1]); }});
  return {fwd: fwd};
})();
"""


def _base_map(
    inputs: Inputs,
    bounds: list[list[float]],
    *,
    offline: bool,
    tiles: str | None,
    tiles_attr: str | None,
    lang: str,
    prefer_canvas: bool = False,
    basemap: Basemap | None = None,
) -> folium.Map:
    """The page every map starts from: a ``folium.Map`` centred on ``bounds`` with its basemap.

    ``basemap`` (:func:`resolve_basemap`) or ``tiles`` (an XYZ template) is the basemap when
    given; otherwise OpenStreetMap online, and offline the road network of ``inputs`` drawn as a
    light layer (no external request). A GCJ-02 basemap switches the map to the ``GCJ02`` CRS:
    the WGS84 overlays are drawn shifted to GCJ-02 so that they line up with the tiles.
    """
    import folium

    lb = labels(lang)
    m = folium.Map(
        location=[(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2],
        zoom_start=13,
        tiles=None,
        control_scale=False,
        prefer_canvas=prefer_canvas,
        crs="GCJ02" if basemap is not None and basemap.gcj02 else "EPSG3857",
    )
    if basemap is not None:
        if basemap.gcj02:
            m.get_root().html.add_child(  # type: ignore[attr-defined]
                folium.Element(f"<script>{_GCJ02_CRS_JS}</script>"), index=0
            )
        for i, (url, attr, subdomains) in enumerate(basemap.layers):
            folium.TileLayer(
                tiles=url,
                attr=attr,
                name=lb["basemap"] if i == 0 else f"{lb['basemap']} ({lb['labels']})",
                overlay=i > 0,
                control=True,
                max_zoom=18,
                subdomains=subdomains or "abc",
            ).add_to(m)
    elif tiles:
        folium.TileLayer(
            tiles=tiles,
            attr=tiles_attr or "tiles",
            name=lb["basemap"],
            overlay=False,
            control=True,
            max_zoom=19,
        ).add_to(m)
    elif not offline:
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", overlay=False, control=True).add_to(
            m
        )
    if offline or basemap is not None:  # the network replaces (or sits under) the basemap
        net = inputs.networks.get("walk") or next(iter(inputs.networks.values()))
        roads = _road_lines(net)
        style_minor = "{color: '#9e9e9e', weight: 0.8, opacity: 0.8, interactive: false}"
        style_major = "{color: '#757575', weight: 2, opacity: 0.9, interactive: false}"
        js = (
            "var __NAME__ = L.layerGroup([L.polyline("
            + _dumps(roads["minor"])
            + ", "
            + style_minor
            + "), L.polyline("
            + _dumps(roads["major"])
            + ", "
            + style_major
            + ")]);"
        )
        _js_layer_class()(
            js,
            lb["roads"],
            show=not tiles and basemap is None,
            count=len(roads["major"]) + len(roads["minor"]),
            kind="roads",
        ).add_to(m)
    return m


def build_map(
    run: CoverageRun,
    *,
    offline: bool = True,
    tiles: str | None = None,
    tiles_attr: str | None = None,
    service_areas: gpd.GeoDataFrame | None = None,
    gaps: Gaps | None = None,
    report: CoverageReport | None = None,
    lang: str = "zh",
    choropleth_tier: str | None = None,
    max_resident_points: int = MAX_RESIDENT_POINTS,
    resident_cell_m: float | None = None,
    basemap: str | Basemap | None = None,
) -> folium.Map:
    """The interactive map of a coverage run as a ``folium.Map`` (see the module docstring).

    Parameters
    ----------
    run : lifecircle.runs.CoverageRun
    offline : bool
        Inline every asset (see :func:`render_map_html`); without ``tiles`` draw the road network
        instead of a basemap.
    tiles : str, optional
        XYZ tile URL template (``https://tiles.example/{z}/{x}/{y}.png``); default a public
        OpenStreetMap basemap online, none offline.
    tiles_attr : str, optional
        Attribution for ``tiles``.
    service_areas : GeoDataFrame, optional
        Columns ``tier``, ``budget_m``, polygon geometry (EPSG:4326).
    gaps : lifecircle.report.Gaps, optional
        Default: computed with :func:`lifecircle.report.find_gaps` (or taken from ``report``).
    report : lifecircle.report.CoverageReport, optional
        Reuse per-unit tables and gaps already computed.
    lang : {"zh", "en"}
    choropleth_tier : str, optional
        Tier whose share colours the unit choropleths; default all tiers together.
    max_resident_points : int
        Above this many residents, draw cells instead of points.
    resident_cell_m : float, optional
        Cell side for aggregated residents (default: automatic, from 100 m).
    basemap : str or Basemap, optional
        ``none``, ``osm``, ``tianditu``, ``tianditu-img``, ``amap`` or an XYZ URL (see
        :func:`resolve_basemap`); with a GCJ-02 basemap the overlays are shown in GCJ-02.
    """
    import folium
    import shapely

    bm = basemap if isinstance(basemap, Basemap) or basemap is None else resolve_basemap(basemap)

    lb = labels(lang)
    result = run.result
    inputs = run.inputs
    std = result.standard
    colours = tier_colours(std.keys)
    if choropleth_tier is not None and choropleth_tier not in std.keys:
        raise InputError(f"unknown tier {choropleth_tier!r}; tiers are {', '.join(std.keys)}")
    if report is None:
        report = report_mod.build_report(run)
    if gaps is None:
        gaps = report.gaps
    JsLayer = _js_layer_class()

    def tier_label(key: str) -> str:
        t = std.tier(key)
        return t.label_zh if lang == "zh" else t.label_en

    res = result.residents
    fac = result.facilities
    lon_all = np.r_[res["lon"].to_numpy(float), fac["lon"].to_numpy(float)]
    lat_all = np.r_[res["lat"].to_numpy(float), fac["lat"].to_numpy(float)]
    if len(lon_all) == 0:
        b = next(iter(inputs.networks.values())).bounds
        lo, la = next(iter(inputs.networks.values())).to_lonlat(
            np.array([b[0], b[2]]), np.array([b[1], b[3]])
        )
        lon_all, lat_all = lo, la
    bounds = [
        [float(np.min(lat_all)), float(np.min(lon_all))],
        [float(np.max(lat_all)), float(np.max(lon_all))],
    ]

    m = _base_map(
        inputs,
        bounds,
        offline=offline,
        tiles=tiles,
        tiles_attr=tiles_attr,
        lang=lang,
        prefer_canvas=True,
        basemap=bm,
    )
    root_html: Any = m.get_root().html  # type: ignore[attr-defined]
    helpers = (
        _JS_HELPERS.replace("__BREAKS__", json.dumps(list(SHARE_BREAKS)))
        .replace("__UNIT_COLOURS__", json.dumps(list(UNIT_COLOURS)))
        .replace("__COLOURS__", json.dumps(list(SHARE_COLOURS)))
    )
    root_html.add_child(folium.Element(f"<script>{helpers}</script>"))

    # boundaries
    for name, geom in (inputs.boundaries or {}).items():
        if geom is None or shapely.is_empty(geom):
            continue
        gj = geometry_dict(geom)
        weight = 3 if name == "county" else 2
        js = (
            f"var __NAME__ = L.geoJSON({_dumps(gj)}, {{interactive: false, "
            f"style: function () {{ return "
            f"{{color: '#333333', weight: {weight}, dashArray: '6 4', fill: false}}; }}}});"
        )
        JsLayer(
            js,
            lb.get(f"boundary_{name}", f"{lb['boundary']}: {name}"),
            count=1,
            kind=f"boundary:{name}",
        ).add_to(m)

    # unit choropleths
    key = choropleth_tier or "all"
    share_title = (
        f"{tier_label(key)} {lb['share']}"
        if choropleth_tier
        else f"{lb['share']}（{lb['all_tiers']}）"
        if lang == "zh"
        else f"{lb['share']} ({lb['all_tiers']})"
    )
    for i, lv in enumerate(report.levels):
        tab = report.units[lv.key]
        tab = tab[~tab["outside"]].set_index("unit_id")
        if lv.geometry[0] is None:
            continue
        import geopandas as gpd

        gdf = gpd.GeoDataFrame(
            {"unit_id": lv.unit_id, "name": lv.name}, geometry=list(lv.geometry), crs="EPSG:4326"
        )
        t = tab.reindex(gdf["unit_id"])
        gdf["pop"] = t["population"].to_numpy(float)
        gdf["s"] = t[f"{key}_share"].to_numpy(float)
        gdf["sa"] = t["all_share"].to_numpy(float)
        gdf["rank"] = t["rank"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        for tk in std.keys:
            gdf[f"s_{tk}"] = t[f"{tk}_share"].to_numpy(float)
        gj = _geojson(
            gdf, ["unit_id", "name", "pop", "s", "sa", "rank", *[f"s_{tk}" for tk in std.keys]]
        )
        tier_rows = ",".join(
            f"[{json.dumps(tier_label(tk), ensure_ascii=False)}, LC.pct(p['s_{tk}'])]"
            for tk in std.keys
        )
        js = (
            f"var __NAME__ = L.geoJSON({_dumps(gj)}, {{style: function (f) {{ "
            f"return {{color: '#444', weight: {1.5 if i < 2 else 0.8}, "
            f"fillColor: LC.unitColour(f.properties.s), fillOpacity: 0.45}}; }}, "
            f"onEachFeature: function (f, l) {{ var p = f.properties; "
            f"l.bindPopup(LC.table(p.name + ' (' + p.unit_id + ')', "
            f"[[{json.dumps(lb['population'], ensure_ascii=False)}, LC.num(p.pop)], "
            f"[{json.dumps(lb['share'] + ' · ' + lb['all_tiers'], ensure_ascii=False)}, "
            f"LC.pct(p.sa)], "
            f"['#', p.rank === null ? '—' : p.rank + ' / {int(tab['rank'].notna().sum())}'], "
            f"{tier_rows}])); }}}});"
        )
        JsLayer(
            js,
            f"{lv.label(lang)}：{share_title}"
            if lang == "zh"
            else f"{lv.label(lang)}: {share_title}",
            show=(i == 1 or (i == 0 and len(report.levels) == 1)),
            count=len(gj["features"]),
            kind=f"units:{lv.key}",
        ).add_to(m)

    # residents
    bits = _coverage_bits(result)
    n_t = len(std.tiers)
    resident_layers = [("all", n_t)] + [(t.key, i) for i, t in enumerate(std.tiers)]
    if len(res) <= max_resident_points:
        data = {
            "lat": _round(res["lat"], 6),
            "lon": _round(res["lon"], 6),
            "pop": _round(res["population"], 1),
            "bits": bits.tolist(),
        }
        var = "LC.residentPoints"
        root_html.add_child(folium.Element(f"<script>LC.residentPoints = {_dumps(data)};</script>"))
        for key_r, bit in resident_layers:
            lab = lb["all_tiers"] if key_r == "all" else tier_label(key_r)
            js = (
                f"var __NAME__ = LC.lazy({var}.lat.length, {json.dumps(key_r == 'all')}, "
                f"function (g) {{ var d = {var}; "
                f"for (var i = 0; i < d.lat.length; i++) {{ "
                f"var c = (d.bits[i] >> {bit}) & 1; "
                f"g.addLayer(L.circleMarker([d.lat[i], d.lon[i]], {{radius: 3, weight: 0, "
                f"fillOpacity: 0.8, fillColor: c ? '{COVERED_COLOUR}' : "
                f"'{UNCOVERED_COLOUR}'}}).bindPopup("
                f"LC.table({json.dumps(lab, ensure_ascii=False)}, "
                f"[[{json.dumps(lb['population'], ensure_ascii=False)}, LC.num(d.pop[i])], "
                f"['', c ? {json.dumps(lb['covered'], ensure_ascii=False)} : "
                f"{json.dumps(lb['uncovered'], ensure_ascii=False)}]]))); }} }});"
            )
            JsLayer(
                js,
                f"{lb['residents']}：{lab}" if lang == "zh" else f"{lb['residents']}: {lab}",
                show=key_r == "all",
                count=len(res),
                kind=f"residents:{key_r}",
            ).add_to(m)
    else:
        cell_m, cells = resident_cells(result, cell_m=resident_cell_m)
        sb = _cell_bounds_lonlat(cells["ix"], cells["iy"], cell_m, result.crs)
        data = {
            "b": np.round(sb, 6).ravel().tolist(),
            "pop": _round(cells["population"], 0),
            "cov": {k: _round(cells[k], 0) for k, _ in resident_layers},
            "cell_m": cell_m,
        }
        root_html.add_child(folium.Element(f"<script>LC.residentCells = {_dumps(data)};</script>"))
        for key_r, _bit in resident_layers:
            lab = lb["all_tiers"] if key_r == "all" else tier_label(key_r)
            js = (
                f"var __NAME__ = LC.lazy(LC.residentCells.pop.length, "
                f"{json.dumps(key_r == 'all')}, function (g) {{ "
                f"var d = LC.residentCells, c = d.cov[{json.dumps(key_r)}]; "
                f"for (var i = 0; i < d.pop.length; i++) {{ "
                f"var b = d.b.slice(4 * i, 4 * i + 4), s = d.pop[i] > 0 ? c[i] / d.pop[i] : null; "
                f"g.addLayer(L.rectangle([[b[0], b[1]], [b[2], b[3]]], "
                f"{{weight: 0, fillOpacity: 0.6, fillColor: LC.shareColour(s)}})"
                f".bindPopup(LC.table({json.dumps(lab, ensure_ascii=False)} + ' · ' + d.cell_m + "
                f"' m {lb['cell']}', "
                f"[[{json.dumps(lb['population'], ensure_ascii=False)}, LC.num(d.pop[i])], "
                f"[{json.dumps(lb['covered_pop'], ensure_ascii=False)}, LC.num(c[i])], "
                f"[{json.dumps(lb['share'], ensure_ascii=False)}, LC.pct(s)]]))); }} }});"
            )
            JsLayer(
                js,
                f"{lb['residents']}：{lab}" if lang == "zh" else f"{lb['residents']}: {lab}",
                show=key_r == "all",
                count=len(cells["population"]),
                kind=f"resident_cells:{key_r}",
            ).add_to(m)

    # service areas
    if service_areas is not None and len(service_areas):
        sa = service_areas.to_crs(4326) if service_areas.crs is not None else service_areas
        for tk in std.keys:
            sub = sa[sa["tier"] == tk]
            if not len(sub):
                continue
            gj = _geojson(sub, ["tier", "budget_m"])
            js = (
                f"var __NAME__ = L.geoJSON({_dumps(gj)}, {{style: function () {{ "
                f"return {{color: '{colours[tk]}', weight: 1, "
                f"fillColor: '{colours[tk]}', fillOpacity: 0.15}}; }}, "
                f"onEachFeature: function (f, l) {{ "
                f"l.bindPopup(LC.table("
                f"{json.dumps(lb['service_areas'] + ' · ' + tier_label(tk), ensure_ascii=False)}, "
                f"[['m', LC.num(f.properties.budget_m)]])); }}}});"
            )
            JsLayer(
                js,
                f"{lb['service_areas']}：{tier_label(tk)}"
                if lang == "zh"
                else f"{lb['service_areas']}: {tier_label(tk)}",
                show=False,
                count=len(gj["features"]),
                kind=f"service_areas:{tk}",
            ).add_to(m)

    # gaps
    if gaps is not None and len(gaps.table):
        ggdf = gaps.geometries(limit=MAX_MAP_GAPS)
        ggdf["label"] = [tier_label(k) for k in ggdf["tier"]]
        ggdf["missing"] = [
            "、".join(tier_label(k) for k in str(v).split(";") if k)
            if lang == "zh"
            else ", ".join(tier_label(k) for k in str(v).split(";") if k)
            for v in ggdf["tiers_missing"]
        ]
        gj = _geojson(
            ggdf,
            [
                "rank",
                "gap_id",
                "label",
                "missing",
                "population",
                "elderly",
                "nearest_facility_id",
                "nearest_facility_distance_m",
            ],
        )
        js = (
            f"var __NAME__ = L.geoJSON({_dumps(gj)}, {{style: function () {{ "
            f"return {{color: '{GAP_COLOUR}', weight: 1.5, "
            f"fillColor: '{GAP_COLOUR}', fillOpacity: 0.12, dashArray: '3 3'}}; }}, onEachFeature: "
            f"function (f, l) {{ var p = f.properties; "
            f"l.bindPopup(LC.table({json.dumps(lb['gap'], ensure_ascii=False)} + ' #' + p.rank + "
            f"' · ' + p.label, "
            f"[[{json.dumps(lb['population'], ensure_ascii=False)}, LC.num(p.population)], "
            f"[{json.dumps(lb['elderly'], ensure_ascii=False)}, LC.num(p.elderly)], "
            f"[{json.dumps(lb['missing'], ensure_ascii=False)}, p.missing], "
            f"[{json.dumps(lb['nearest'], ensure_ascii=False)}, p.nearest_facility_id || '—'], "
            f"[{json.dumps(lb['distance'], ensure_ascii=False)}, "
            f"LC.m(p.nearest_facility_distance_m)]])); }}}});"
        )
        JsLayer(
            js, f"{lb['gaps']} ({len(ggdf)})", show=True, count=len(gj["features"]), kind="gaps"
        ).add_to(m)

    # facilities, highest tier drawn last (on top)
    fac_tier = fac["tier"].to_numpy()
    for i, ft in reversed(list(enumerate(std.tiers))):
        sel = fac_tier == ft.key
        if not sel.any():
            continue
        sub = fac[sel]
        data = {
            "lat": _round(sub["lat"], 6),
            "lon": _round(sub["lon"], 6),
            "id": sub["id"].tolist(),
            "name": sub["name"].tolist(),
            "pop": _round(sub["catchment_population"], 0),
        }
        radius = max(3, 9 - 1.5 * i)
        js = (
            f"var __NAME__ = (function () {{ var d = {_dumps(data)}, g = []; "
            f"for (var i = 0; i < d.lat.length; i++) {{ "
            f"g.push(L.circleMarker([d.lat[i], d.lon[i]], {{radius: {radius}, color: '#ffffff', "
            f"weight: 1, fillColor: '{colours[ft.key]}', "
            f"fillOpacity: 0.95}}).bindPopup(LC.table(d.name[i] || d.id[i], "
            f"[[{json.dumps(lb['tier'], ensure_ascii=False)}, "
            f"{json.dumps(tier_label(ft.key), ensure_ascii=False)}], "
            f"[{json.dumps(lb['id'], ensure_ascii=False)}, d.id[i]], ["
            f"{json.dumps(lb['catchment'] + f' (≤ {ft.threshold_m:,.0f} m)', ensure_ascii=False)}, "
            f"LC.num(d.pop[i])]]))); }} "
            f"return L.featureGroup(g); }})();"
        )
        JsLayer(
            js,
            f"{lb['facilities']}：{tier_label(ft.key)} ({int(sel.sum())})"
            if lang == "zh"
            else f"{lb['facilities']}: {tier_label(ft.key)} ({int(sel.sum())})",
            show=True,
            count=int(sel.sum()),
            kind=f"facilities:{ft.key}",
        ).add_to(m)

    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds(bounds)
    _add_title_and_legend(
        m,
        run,
        lang=lang,
        colours=colours,
        share_title=share_title,
        note=lb["gcj02_note"] if bm is not None and bm.gcj02 else "",
    )
    _add_probe(m, lang)
    return m


def map_layers(m: folium.Map) -> list[dict[str, Any]]:
    """The toggleable layers of a map from :func:`build_map`, in layer-control order.

    Each: ``name`` (as in the layer control), ``kind`` (e.g. ``facilities:point``,
    ``residents:all``, ``units:community``, ``gaps``, ``roads``), ``show`` (on at opening),
    ``overlay`` and ``count`` (features, markers or cells).
    """
    from folium.map import Layer

    return [
        {
            "name": c.layer_name,
            "kind": getattr(c, "kind", ""),
            "show": c.show,
            "overlay": c.overlay,
            "count": getattr(c, "count", None),
        }
        for c in m._children.values()
        if isinstance(c, Layer) and c.control
    ]


def map_title(run: CoverageRun, *, lang: str = "zh") -> str:
    """Title line: scenario, standard, and the synthetic-data warning where it applies."""
    lb = labels(lang)
    inputs = run.inputs
    sc = inputs.scenario
    name = ((sc.name_en or sc.name) if lang == "en" else sc.name) if sc else "lifecircle"
    parts = [name, f"{lb['standard']}: {standard_title(run.result.standard, lang)}"]
    if inputs.synthetic and not any(w in name.lower() for w in ("synthetic", "合成")):
        parts.append(lb["synthetic"])
    return " · ".join(parts)


def _add_title_and_legend(
    m: folium.Map,
    run: CoverageRun,
    *,
    lang: str,
    colours: dict[str, str],
    share_title: str,
    note: str = "",
) -> None:
    import folium

    lb = labels(lang)
    std = run.result.standard
    e = html.escape
    title = map_title(run, lang=lang)
    warn = ""
    if run.inputs.synthetic:
        warn = f'<div style="color:#b00;font-weight:bold">{e(lb["synthetic"])}</div>'
    if note:
        warn += f'<div id="lifecircle-crs-note" style="color:#0b5394">{e(note)}</div>'
    title_html = (
        f'<div id="lifecircle-title" style="position:absolute;top:10px;left:60px;z-index:1000;'
        f"background:rgba(255,255,255,.92);padding:6px 10px;border-radius:4px;font:14px sans-serif;"
        f'box-shadow:0 1px 4px rgba(0,0,0,.3);max-width:60%">{e(title)}{warn}</div>'
    )

    def swatch(colour: str, *, round_: bool = False, dashed: bool = False) -> str:
        border = f"border:1.5px dashed {colour};" if dashed else f"background:{colour};"
        radius = "border-radius:6px;" if round_ else ""
        return (
            f'<span style="display:inline-block;width:11px;height:11px;{radius}{border}'
            f'margin-right:5px;vertical-align:middle"></span>'
        )

    def ramp(colours_: Sequence[str], lo: str, hi: str) -> str:
        bar = "".join(
            f'<span style="display:inline-block;width:22px;height:10px;background:{c}"></span>'
            for c in colours_
        )
        return (
            f'<div>{bar}</div><div style="display:flex;justify-content:space-between;'
            f'width:110px"><span>{lo}</span><span>{hi}</span></div>'
        )

    # one section per kind of layer; each shows only while a layer of its kind is on the map
    sections = [f'<div data-kinds="facilities" style="margin-top:3px">{e(lb["facilities"])}</div>']
    for t in std.tiers:
        lab = t.label_zh if lang == "zh" else t.label_en
        sections.append(
            f'<div data-kinds="facilities:{t.key}">{swatch(colours[t.key], round_=True)}'
            f"{e(lab)} ≤ {t.threshold_m:,.0f} m</div>"
        )
    sections.append(
        f'<div data-kinds="residents resident_cells" style="margin-top:4px">'
        f"{e(lb['residents'])} · {e(lb['share'])}{ramp(SHARE_COLOURS, '0%', '100%')}</div>"
    )
    sections.append(
        f'<div data-kinds="units" style="margin-top:4px">{e(share_title)} · {e(lb["units"])}'
        f"{ramp(UNIT_COLOURS, '0%', '100%')}</div>"
    )
    sections.append(
        f'<div data-kinds="service_areas" style="margin-top:4px">{e(lb["service_areas"])}</div>'
    )
    for t in std.tiers:
        lab = t.label_zh if lang == "zh" else t.label_en
        sections.append(
            f'<div data-kinds="service_areas:{t.key}">{swatch(colours[t.key])}{e(lab)}</div>'
        )
    sections.append(
        f'<div data-kinds="gaps" style="margin-top:3px">{swatch(GAP_COLOUR, dashed=True)}'
        f"{e(lb['gaps'])}</div>"
    )
    sections.append(
        f'<div data-kinds="boundary">{swatch("#333333", dashed=True)}{e(lb["boundary"])}</div>'
    )
    legend_html = (
        f'<div id="lifecircle-legend" style="position:absolute;bottom:30px;right:10px;z-index:1000;'
        f"background:rgba(255,255,255,.92);padding:6px 10px;border-radius:4px;font:12px sans-serif;"
        f'box-shadow:0 1px 4px rgba(0,0,0,.3)"><b>{e(lb["legend"])}</b>{"".join(sections)}</div>'
    )
    root = cast("Figure", m.get_root())
    root.html.add_child(folium.Element(title_html + legend_html))
    root.title = e(title)


def _add_probe(m: folium.Map, lang: str = "zh") -> None:
    """Expose the map and its layer control to the probe (``_PROBE_HEAD``); add a metric scale."""
    from branca.element import MacroElement
    from folium import LayerControl
    from jinja2 import Template

    class ControlHook(MacroElement):
        _template = Template("""{% macro script(this, kwargs) %}
window.__lifecircleMap = {{ this._parent.get_name() }};
window.__lifecircleControl = {{ this.control_name }};
L.control.scale({imperial: false, maxWidth: 160}).addTo({{ this._parent.get_name() }});
(function (map, ctl, groups) {
  // group headers in the layer control (设施 / 覆盖 / 服务范围 / 缺口 / 边界)
  function groupOf(layer) { return groups[String(layer._lcKind || '').split(':')[0]] || ''; }
  var add = ctl._addItem, update = ctl._update;
  ctl._addItem = function (obj) {
    var g = obj.overlay ? groupOf(obj.layer) : '';
    if (g && g !== this._lcLast) {
      var h = document.createElement('div'); h.className = 'lc-group'; h.textContent = g;
      h.style.cssText = 'font-weight:bold;margin-top:4px;border-top:1px solid #ddd';
      this._overlaysList.appendChild(h);
    }
    if (obj.overlay) { this._lcLast = g; }
    return add.call(this, obj);
  };
  ctl._update = function () { this._lcLast = null; return update.apply(this, arguments); };
  ctl._update();
  // the legend shows the sections of the layers on the map, nothing else
  function refresh() {
    var on = [];
    map.eachLayer(function (l) { if (l._lcKind) { on.push(l._lcKind); } });
    document.querySelectorAll('#lifecircle-legend [data-kinds]').forEach(function (el) {
      var kinds = el.getAttribute('data-kinds').split(' ');
      var shown = kinds.some(function (k) { return on.some(function (o) {
        return o === k || o.indexOf(k + ':') === 0; }); });
      el.style.display = shown ? '' : 'none';
    });
  }
  map.on('overlayadd overlayremove layeradd layerremove', refresh);
  refresh();
})({{ this._parent.get_name() }}, {{ this.control_name }}, {{ this.groups }});
{% endmacro %}""")

        def __init__(self, control_name: str, groups: str) -> None:
            super().__init__()
            self._name = "LifecircleControlHook"
            self.control_name = control_name
            self.groups = groups

    lb = labels(lang)
    groups = {
        "facilities": lb["group_facilities"],
        "units": lb["group_coverage"],
        "residents": lb["group_coverage"],
        "resident_cells": lb["group_coverage"],
        "service_areas": lb["group_service_areas"],
        "gaps": lb["group_gaps"],
        "boundary": lb["group_boundaries"],
        "roads": lb["group_base"],
    }
    ctl = next(c for c in m._children.values() if isinstance(c, LayerControl))
    m.add_child(ControlHook(ctl.get_name(), json.dumps(groups, ensure_ascii=False)))


_ASSET_MARK = "<!--lifecircle-assets-->"


def render_map_html(m: folium.Map, *, offline: bool) -> str:
    """Render a map from :func:`build_map` to one HTML page.

    Online, the page loads Leaflet from a CDN; offline, Leaflet is inlined and no external
    script or stylesheet remains (checked: raises ``RuntimeError`` otherwise). folium's other
    default assets are dropped in both modes (the maps do not use them).
    """
    import folium

    m.default_js = [] if offline else [("leaflet", f"{LEAFLET_CDN}/leaflet.js")]
    m.default_css = [] if offline else [("leaflet_css", f"{LEAFLET_CDN}/leaflet.css")]
    root = cast("Figure", m.get_root())
    root.header.add_child(folium.Element(_ASSET_MARK), name="lifecircle_assets", index=0)
    page = root.render()
    head = _PROBE_HEAD
    if offline:
        js, css = leaflet_inline()
        head += f"\n<style>\n{css}\n</style>\n<script>\n{js}\n</script>\n"
    page = page.replace(_ASSET_MARK, head, 1)
    if offline:
        ext = external_references(page)
        if ext:
            raise RuntimeError(f"offline map still references external files: {ext[:3]}")
    return page


def write_coverage_map(
    run: CoverageRun,
    path: str | Path,
    *,
    offline: bool = True,
    tiles: str | None = None,
    service_areas: gpd.GeoDataFrame | None = None,
    gaps: Gaps | None = None,
    lang: str = "zh",
    overwrite: bool = False,
    report: CoverageReport | None = None,
    tiles_attr: str | None = None,
    choropleth_tier: str | None = None,
    basemap: str | Basemap | None = None,
) -> Path:
    """Write the interactive HTML map of a coverage run (see :func:`build_map`).

    Parameters
    ----------
    run : lifecircle.runs.CoverageRun
    path : path
        The ``.html`` file (folders are created).
    offline : bool
        Self-contained page: no external JavaScript/CSS; road network instead of a basemap unless
        ``tiles`` is given.
    tiles : str, optional
        XYZ tile URL template, e.g. an intranet tile server.
    service_areas : GeoDataFrame, optional
        ``tier``, ``budget_m``, polygons in EPSG:4326.
    gaps : lifecircle.report.Gaps, optional
        Default: computed.
    lang : {"zh", "en"}
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
    """
    target = Path(path)
    check_writable([target], overwrite=overwrite)
    m = build_map(
        run,
        offline=offline,
        tiles=tiles,
        tiles_attr=tiles_attr,
        service_areas=service_areas,
        gaps=gaps,
        report=report,
        lang=lang,
        choropleth_tier=choropleth_tier,
        basemap=basemap,
    )
    page = render_map_html(m, offline=offline)
    write_text(page, target, overwrite=True)
    logger.info(
        "wrote %s (%.1f MB%s)",
        target,
        len(page.encode("utf-8")) / 1e6,
        ", offline" if offline else "",
    )
    return target


# -- candidate sites ------------------------------------------------------------------------------


def build_candidates_map(
    scoring: ScoringResult,
    coverage: CoverageRun,
    *,
    offline: bool = True,
    tiles: str | None = None,
    tiles_attr: str | None = None,
    max_candidates: int = 2_000,
    max_gap_cells: int = 4_000,
    basemap: str | Basemap | None = None,
) -> folium.Map:
    """The map of a site scoring: current gaps, candidates sized by their gain, and the picks.

    Parameters
    ----------
    scoring : lifecircle.siting.ScoringResult
        Candidates ranked by marginal gain, with the picks (``selected``) and coverage before/after.
    coverage : lifecircle.runs.CoverageRun
        The coverage run the scoring started from (residents, inputs, title).
    offline : bool
        Self-contained page, as for :func:`build_map` (the road network replaces the basemap).
    tiles, tiles_attr : str, optional
        XYZ basemap template and its attribution.
    max_candidates : int, default 2000
        Draw at most this many unselected candidates (the best ranked).
    max_gap_cells : int, default 4000
        Draw at most this many gap cells (cells of half the tier threshold, the largest first).
    basemap : str or Basemap, optional
        As for :func:`build_map` (GCJ-02 tiles shift the overlays to GCJ-02).
    """
    import folium

    bm = basemap if isinstance(basemap, Basemap) or basemap is None else resolve_basemap(basemap)

    res = coverage.result.residents
    w = resident_weight(res, scoring.weight)
    gap = scoring.uncovered & (w > 0)
    tier = scoring.tier
    title = f"{coverage.inputs.title} — {tier.label_zh} {tier.label_en}: candidate sites"
    if coverage.inputs.synthetic:
        title = f"SYNTHETIC 合成数据 — {title}"
    cand = scoring.candidates
    pts = res if len(res) else cand
    lat, lon = pts["lat"].to_numpy(float), pts["lon"].to_numpy(float)
    bounds = (
        [[float(lat.min()), float(lon.min())], [float(lat.max()), float(lon.max())]]
        if len(pts)
        else [[0.0, 0.0], [0.0, 0.0]]
    )
    fmap = _base_map(
        coverage.inputs,
        bounds,
        offline=offline,
        tiles=tiles,
        tiles_attr=tiles_attr,
        lang="en",
        basemap=bm,
    )
    root = cast("Figure", fmap.get_root())
    root.title = _esc(title)
    root.html.add_child(
        folium.Element(
            f'<div style="position:fixed;top:8px;left:50px;z-index:9999;background:white;'
            f'padding:6px;font:14px sans-serif;border:1px solid #888">{_esc(title)}<br>'
            f"coverage {scoring.before['share']:.1%}"
            f" → {scoring.after['share']:.1%} with {len(scoring.picks)} new site(s)</div>"
        )
    )
    gaps = folium.FeatureGroup(name="gaps (uncovered, per cell) 未覆盖人口", show=True)
    if gap.any():
        size = tier.threshold_m / 2.0
        x, y, wg = res["x"].to_numpy(float)[gap], res["y"].to_numpy(float)[gap], w[gap]
        glon, glat = res["lon"].to_numpy(float)[gap], res["lat"].to_numpy(float)[gap]
        cell = np.column_stack([np.floor(x / size), np.floor(y / size)]).astype(np.int64)
        _u, inv = np.unique(cell, axis=0, return_inverse=True)
        inv = inv.ravel()
        cw = np.bincount(inv, weights=wg)
        clon = np.bincount(inv, weights=wg * glon) / np.maximum(cw, 1e-12)
        clat = np.bincount(inv, weights=wg * glat) / np.maximum(cw, 1e-12)
        top = np.argsort(-cw)[:max_gap_cells]
        scale = 12.0 / np.sqrt(cw[top].max())
        for j in top:
            folium.CircleMarker(
                [clat[j], clon[j]],
                radius=max(2.0, float(np.sqrt(cw[j]) * scale)),
                color=None,
                fill=True,
                fill_color="#d7301f",
                fill_opacity=0.35,
                tooltip=f"uncovered {scoring.weight}: {cw[j]:,.0f}",
            ).add_to(gaps)
    gaps.add_to(fmap)
    cl = folium.FeatureGroup(name="candidates (size = gain) 候选点", show=True)
    shown = cand.head(max_candidates)
    gmax = float(shown["marginal_gain"].max()) if len(shown) else 0.0
    sscale = 14.0 / np.sqrt(gmax) if gmax > 0 else 0.0
    rec: Any
    for rec in shown[shown["selected"].isna()].itertuples(index=False):
        folium.CircleMarker(
            [rec.lat, rec.lon],
            radius=max(3.0, float(np.sqrt(max(rec.marginal_gain, 0)) * sscale)),
            color="#2c7fb8",
            weight=1,
            fill=True,
            fill_opacity=0.5,
            # a tooltip, not a folium Popup: Popups need jQuery, which an offline page lacks
            tooltip=f"#{rec.rank} {_esc(rec.candidate_id)}: +{rec.marginal_gain:,.0f}"
            f"<br>{_esc(rec.reason_zh)}<br>{_esc(rec.reason_en)}",
        ).add_to(cl)
    cl.add_to(fmap)
    sl = folium.FeatureGroup(name=f"selected {len(scoring.picks)} 选定", show=True)
    for rec in cand[cand["selected"].notna()].itertuples(index=False):
        folium.Marker(
            [rec.lat, rec.lon],
            icon=folium.DivIcon(
                html=f'<div style="background:#fdae61;border:2px solid #000;'
                f"border-radius:50%;width:22px;height:22px;text-align:center;"
                f'font:bold 12px/22px sans-serif">{int(rec.selected)}</div>'
            ),
            tooltip=f"pick {int(rec.selected)}: {_esc(rec.candidate_id)} +{rec.pick_gain:,.0f} "
            f"(→ {rec.cumulative_share:.1%})<br>{_esc(rec.reason_zh)}<br>{_esc(rec.reason_en)}",
        ).add_to(sl)
    sl.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    if len(cand):
        fmap.fit_bounds(
            [
                [float(cand["lat"].min()), float(cand["lon"].min())],
                [float(cand["lat"].max()), float(cand["lon"].max())],
            ]
        )
    else:
        fmap.fit_bounds(bounds)
    return fmap


def write_candidates_map(
    scoring: ScoringResult,
    coverage: CoverageRun,
    path: str | Path,
    *,
    overwrite: bool = False,
    offline: bool = True,
    tiles: str | None = None,
    tiles_attr: str | None = None,
    max_candidates: int = 2_000,
    max_gap_cells: int = 4_000,
    basemap: str | Basemap | None = None,
) -> Path:
    """Write the HTML map of a site scoring (see :func:`build_candidates_map`).

    Parameters
    ----------
    scoring : lifecircle.siting.ScoringResult
    coverage : lifecircle.runs.CoverageRun
    path : path
        The ``.html`` file (folders are created).
    overwrite : bool
        Replace an existing file.
    offline, tiles, tiles_attr, max_candidates, max_gap_cells, basemap
        As for :func:`build_candidates_map`.

    Returns
    -------
    Path
    """
    target = Path(path)
    check_writable([target], overwrite=overwrite)
    m = build_candidates_map(
        scoring,
        coverage,
        offline=offline,
        tiles=tiles,
        tiles_attr=tiles_attr,
        max_candidates=max_candidates,
        max_gap_cells=max_gap_cells,
        basemap=basemap,
    )
    page = render_map_html(m, offline=offline)
    write_text(page, target, overwrite=True)
    logger.info(
        "wrote %s (%.1f MB%s)",
        target,
        len(page.encode("utf-8")) / 1e6,
        ", offline" if offline else "",
    )
    return target


def _esc(s: object) -> str:
    """``s`` as HTML text."""
    return html.escape(str(s))


# -- static PNG ---------------------------------------------------------------------------------


def cjk_font() -> str | None:
    """Name of an installed font with Chinese glyphs, or None.

    matplotlib's font list is cached: a CJK font installed after the cache was built (e.g.
    ``apt-get install fonts-noto-cjk`` on a machine that already ran matplotlib) is not in it,
    so the system font folders are searched too and a font found there is registered.
    """
    from matplotlib import font_manager

    wanted = (
        "Noto Sans CJK",
        "Noto Serif CJK",
        "Source Han",
        "WenQuanYi",
        "SimHei",
        "Microsoft YaHei",
        "PingFang",
        "Heiti",
        "AR PL",
        "Droid Sans Fallback",
        "SimSun",
        "Sarasa",
    )

    def known() -> str | None:
        for f in font_manager.fontManager.ttflist:
            if any(w.lower() in f.name.lower() for w in wanted):
                return str(f.name)
        return None

    name = known()
    if name is not None:
        return name
    files = sorted(
        f
        for f in font_manager.findSystemFonts()
        if any(
            k in Path(f).name.lower() for k in ("cjk", "wqy", "simhei", "msyh", "droidsansfallback")
        )
    )
    # Sans before Serif, regular weight first; its bold face too (titles)
    files.sort(key=lambda f: ("serif" in f.lower(), "regular" not in f.lower()))
    if files:
        first = files[0]
        bold = [f for f in files if f == first.replace("Regular", "Bold") and f != first]
        for f in [first, *bold]:
            font_manager.fontManager.addfont(f)
    return known()


def _nice_length(span_m: float) -> float:
    """A round scale-bar length near a fifth of ``span_m``."""
    target = max(span_m / 5, 1.0)
    p = 10 ** np.floor(np.log10(target))
    for f in (5, 2, 1):
        if f * p <= target:
            return float(f * p)
    return float(p)


def _draw_facilities(
    ax: Axes, fac: pd.DataFrame, std: ServiceStandard, colours: dict[str, str]
) -> None:
    """Facilities as dots per tier, the higher tiers larger and drawn on top."""
    for i, t in reversed(list(enumerate(std.tiers))):
        sel = fac["tier"].to_numpy() == t.key
        if sel.any():
            ax.scatter(
                fac["x"].to_numpy(float)[sel],
                fac["y"].to_numpy(float)[sel],
                s=max(4, 60 - 12 * i),
                c=colours[t.key],
                edgecolors="white",
                linewidths=0.4,
                zorder=5 + (len(std.tiers) - i),
            )


def _static_legend_handles(
    std: ServiceStandard, colours: dict[str, str], lang: str, lb: dict[str, str], key: str
) -> list[Any]:
    """Legend handles: one per tier, one per coverage-share class and one for the gaps."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    for t in std.tiers:
        lab = t.label_zh if lang == "zh" else t.label_en
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                color=colours[t.key],
                label=f"{lab} ≤ {t.threshold_m:,.0f} m",
            )
        )
    share_lab = (
        f"{lb['share']}: {lb['all_tiers']}"
        if key == "all"
        else f"{lb['share']}: {std.tier(key).label_zh if lang == 'zh' else std.tier(key).label_en}"
    )
    for lo, hi, c in zip((0, *SHARE_BREAKS[:-1]), SHARE_BREAKS, SHARE_COLOURS, strict=True):
        handles.append(
            Patch(
                color=c, alpha=0.75, label=f"{share_lab} {100 * lo:.0f}–{min(100, 100 * hi):.0f}%"
            )
        )
    handles.append(Line2D([], [], color=GAP_COLOUR, ls=":", label=lb["gaps"]))
    return handles


def _draw_north_and_scale(ax: Axes, lb: dict[str, str]) -> float:
    """A north arrow and a scale bar on ``ax``; returns the scale bar's length in metres."""
    # north arrow (the CRS is a projected grid: up is grid north)
    ax.annotate(
        lb["north"],
        xy=(0.95, 0.95),
        xytext=(0.95, 0.85),
        xycoords="axes fraction",
        ha="center",
        va="center",
        fontsize=12,
        fontweight="bold",
        arrowprops={"facecolor": "black", "width": 4, "headwidth": 12},
    )
    # scale bar
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    bx, by = x0 + 0.05 * (x1 - x0), y0 + 0.05 * (y1 - y0)
    ax.plot([bx, bx + length], [by, by], color="black", lw=3, solid_capstyle="butt", zorder=10)
    ax.plot(
        [bx, bx + length / 2], [by, by], color="white", lw=1.5, solid_capstyle="butt", zorder=11
    )
    ax.text(
        bx + length / 2,
        by + 0.015 * (y1 - y0),
        f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m",
        ha="center",
        va="bottom",
        fontsize=9,
        zorder=11,
    )
    return length


def draw_static_map(
    run: CoverageRun,
    ax: Axes,
    *,
    gaps: Gaps | None = None,
    report: CoverageReport | None = None,
    lang: str = "zh",
    tier: str | None = None,
    service_areas: gpd.GeoDataFrame | None = None,
) -> dict[str, Any]:
    """Draw the map on a matplotlib axis in the analysis CRS (metres); returns legend handles."""
    import shapely
    from matplotlib.collections import LineCollection, PolyCollection

    lb = labels(lang)
    result = run.result
    inputs = run.inputs
    std = result.standard
    colours = tier_colours(std.keys)
    crs = result.crs
    if report is None:
        report = report_mod.build_report(run)
    if gaps is None:
        gaps = report.gaps

    def proj(geom: Any) -> Any:
        return shapely.transform(
            geom, lambda xy: np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], crs))
        )

    def outline(geom: Any, **kw: Any) -> None:
        for g in shapely.get_parts(shapely.boundary(np.atleast_1d(geom))):
            for part in shapely.get_parts(g):
                c = shapely.get_coordinates(part)
                ax.plot(c[:, 0], c[:, 1], **kw)

    net = inputs.networks.get("walk") or next(iter(inputs.networks.values()))
    ax.add_collection(
        LineCollection(list(net.edge_coords()), colors="#bdbdbd", linewidths=0.3, zorder=1)
    )
    key = tier or "all"
    cell_m, cells = resident_cells(result)
    ix, iy = cells["ix"].astype(float), cells["iy"].astype(float)
    quads = (
        np.stack(
            [
                np.column_stack([ix, iy]),
                np.column_stack([ix + 1, iy]),
                np.column_stack([ix + 1, iy + 1]),
                np.column_stack([ix, iy + 1]),
            ],
            axis=1,
        )
        * cell_m
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(cells["population"] > 0, cells[key] / cells["population"], np.nan)
    ax.add_collection(
        PolyCollection(
            list(quads),
            facecolors=list(share_colour(share)),
            edgecolors="none",
            alpha=0.75,
            zorder=2,
        )
    )
    for lv in report.levels[1:2]:
        for g in lv.geometry:
            outline(proj(g), color="#555555", lw=0.8, zorder=3)
    for name, geom in (inputs.boundaries or {}).items():
        if geom is not None and name != "county":
            outline(proj(geom), color="#222222", lw=1.5, ls="--", zorder=3)
    if service_areas is not None and len(service_areas):
        for tk in std.keys:
            for g in service_areas[service_areas["tier"] == tk].geometry:
                outline(proj(g), color=colours[tk], lw=0.8, zorder=3)
    if gaps is not None and len(gaps.table):
        ggdf = gaps.geometries(limit=50)
        for g in ggdf.geometry:
            outline(proj(g), color=GAP_COLOUR, lw=1.0, ls=":", zorder=4)
    fac = result.facilities
    _draw_facilities(ax, fac, std, colours)
    handles = _static_legend_handles(std, colours, lang, lb, key)
    # extent: residents and facilities
    xs = np.r_[result.residents["x"].to_numpy(float), fac["x"].to_numpy(float)]
    ys = np.r_[result.residents["y"].to_numpy(float), fac["y"].to_numpy(float)]
    if len(xs):
        pad = 0.03 * max(np.ptp(xs), np.ptp(ys), 100.0)
        ax.set_xlim(xs.min() - pad, xs.max() + pad)
        ax.set_ylim(ys.min() - pad, ys.max() + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    length = _draw_north_and_scale(ax, lb)
    return {"handles": handles, "scale_m": length, "cell_m": cell_m}


def write_static_map(
    run: CoverageRun,
    path: str | Path,
    *,
    gaps: Gaps | None = None,
    report: CoverageReport | None = None,
    lang: str = "zh",
    tier: str | None = None,
    service_areas: gpd.GeoDataFrame | None = None,
    dpi: int = 150,
    overwrite: bool = False,
) -> Path:
    """Write a static PNG of the coverage map (matplotlib) with legend, north arrow and scale bar.

    Parameters
    ----------
    run : lifecircle.pipeline.CoverageRun
    path : path
        The ``.png`` file.
    tier : str, optional
        Tier whose coverage colours the resident cells; default all tiers together.
    lang : {"zh", "en"}
        Chinese labels need a CJK font; without one the PNG uses English (logged).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(path)
    labels(lang)
    rc: dict[str, Any] = {}
    if lang == "zh":
        font = cjk_font()
        if font is None:
            logger.warning(
                "no font with Chinese glyphs is installed (e.g. apt install fonts-noto-cjk); "
                "the PNG uses English labels"
            )
            lang = "en"
        else:
            rc = {
                "font.sans-serif": [font, "DejaVu Sans"],
                "font.family": "sans-serif",
                "axes.unicode_minus": False,
            }
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig, ax = plt.subplots(figsize=(10, 10))
        try:
            out = draw_static_map(
                run, ax, gaps=gaps, report=report, lang=lang, tier=tier, service_areas=service_areas
            )
            ax.legend(
                handles=out["handles"],
                loc="upper left",
                fontsize=7,
                framealpha=0.9,
                title=labels(lang)["legend"],
            )
            ax.set_title(map_title(run, lang=lang), fontsize=11)
            fig.tight_layout()
            with atomic_path(target, overwrite=overwrite) as tmp:
                fig.savefig(tmp, dpi=dpi, format="png")
        finally:
            plt.close(fig)
    logger.info("wrote %s", target)
    return target


# -- map sheets (图件) ---------------------------------------------------------------------------

#: Paper sizes of map sheets, landscape, inches: ISO A4 (297 x 210 mm) and A3 (420 x 297 mm).
PAPER_INCHES: dict[str, tuple[float, float]] = {
    "A4": (297 / 25.4, 210 / 25.4),
    "A3": (420 / 25.4, 297 / 25.4),
}

#: Formats a map sheet may be written in (by file suffix); PDF and SVG are vector.
SHEET_FORMATS = ("png", "pdf", "svg")

_SHEET_WORDS = {
    "zh": {
        "info": "制图信息",
        "sources": "数据来源",
        "crs": "坐标系",
        "date": "制图日期",
        "standard": "服务标准",
        "made": "制图软件",
        "synthetic": "合成示范数据，非真实数据",
        "coverage": "覆盖情况",
        "all": "全部层级",
        "x": "横坐标（米）",
        "y": "纵坐标（米）",
    },
    "en": {
        "info": "Map information",
        "sources": "Data sources",
        "crs": "Coordinate system",
        "date": "Date",
        "standard": "Standard",
        "made": "Made with",
        "synthetic": "SYNTHETIC demonstration data, not real",
        "coverage": "Coverage",
        "all": "all tiers",
        "x": "Easting (m)",
        "y": "Northing (m)",
    },
}


def _crs_description(crs: str) -> str:
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"{c.name} (EPSG:{epsg})" if epsg else c.name


def _sheet_info_lines(run: CoverageRun, lang: str) -> list[str]:
    w = _SHEET_WORDS[lang]
    inputs = run.inputs
    sc = inputs.scenario
    sep = "：" if lang == "zh" else ": "
    sources = []
    if sc is not None:
        sources = [Path(p).name for p in (sc.network, sc.facilities, sc.residents) if p is not None]
    else:
        sources = [net.source for net in inputs.networks.values() if net.source][:1]
    lines = [
        f"{w['sources']}{sep}{', '.join(sources) or '—'}",
        f"{w['crs']}{sep}{_crs_description(run.result.crs)}",
        f"{w['standard']}{sep}{standard_title(run.result.standard, lang)}",
        f"{w['date']}{sep}{_dt.date.today().isoformat()}",
        f"{w['made']}{sep}lifecircle {__version__}",
    ]
    if inputs.synthetic:
        lines.append(w["synthetic"])
    return lines


def write_map_sheet(
    run: CoverageRun,
    path: str | Path,
    *,
    report: CoverageReport | None = None,
    tier: str | None = None,
    lang: str = "zh",
    paper: str = "A4",
    dpi: int = 300,
    service_areas: gpd.GeoDataFrame | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a printable map sheet (图件): PNG at ``dpi``, or vector PDF/SVG, by file suffix.

    Landscape A4 or A3: the map in a frame with coordinate ticks (analysis CRS, metres), a north
    arrow and a scale bar; to its right, outside the data, the legend and the 制图信息 block (data
    sources, coordinate system, standard, date, lifecircle version, synthetic warning).

    Parameters
    ----------
    run : lifecircle.runs.CoverageRun
    path : path
        ``.png``, ``.pdf`` or ``.svg``.
    report : CoverageReport, optional
        Units and gaps (default: computed).
    tier : str, optional
        Tier whose coverage colours the cells; default all tiers together.
    lang : {"zh", "en"}
    paper : {"A4", "A3"}
    dpi : int, default 300
        Resolution of a PNG (and of raster parts of a PDF/SVG).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in SHEET_FORMATS:
        raise InputError(f"map sheet {target} should end in .png, .pdf or .svg")
    if paper not in PAPER_INCHES:
        raise InputError(f"paper {paper!r} is not one of {', '.join(PAPER_INCHES)}")
    if not 50 <= dpi <= 1200:
        raise InputError(f"--dpi {dpi} is out of range; use 50 to 1200 (300 for print)")
    check_writable([target], overwrite=overwrite)
    labels(lang)
    font = cjk_font()
    if lang == "zh" and font is None:
        raise InputError(
            "a Chinese map sheet needs a font with Chinese glyphs: install fonts-noto-cjk "
            "(apt-get install fonts-noto-cjk), or use --lang en"
        )
    rc: dict[str, Any] = {"pdf.fonttype": 42, "svg.fonttype": "path", "axes.unicode_minus": False}
    if font is not None:
        rc["font.family"] = [font, "DejaVu Sans"] if lang == "zh" else ["DejaVu Sans", font]
    w = _SHEET_WORDS[lang]
    std = run.result.standard
    width_in, height_in = PAPER_INCHES[paper]
    scale = width_in / PAPER_INCHES["A4"][0]
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig = plt.figure(figsize=(width_in, height_in))
        try:
            ax = fig.add_axes((0.06, 0.08, 0.62, 0.82))
            drawn = draw_static_map(
                run, ax, report=report, lang=lang, tier=tier, service_areas=service_areas
            )
            # frame and coordinate ticks (metres in the analysis CRS)
            for side in ("top", "right", "bottom", "left"):
                ax.spines[side].set_visible(True)
                ax.spines[side].set_linewidth(1.2)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(5))
            fmt_m = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
            ax.xaxis.set_major_formatter(fmt_m)
            ax.yaxis.set_major_formatter(fmt_m)
            ax.tick_params(labelsize=7 * scale, direction="in", top=True, right=True)
            ax.set_xlabel(w["x"], fontsize=8 * scale)
            ax.set_ylabel(w["y"], fontsize=8 * scale)
            key = tier or "all"
            tier_name = (
                w["all"]
                if key == "all"
                else (std.tier(key).label_zh if lang == "zh" else std.tier(key).label_en)
            )
            fig.suptitle(
                f"{map_title(run, lang=lang)}\n{w['coverage']}: {tier_name}"
                if lang == "en"
                else f"{map_title(run, lang=lang)}\n{w['coverage']}：{tier_name}",
                fontsize=12 * scale,
                y=0.97,
            )
            # legend outside the data, right of the map
            leg_ax = fig.add_axes((0.71, 0.36, 0.27, 0.54))
            leg_ax.axis("off")
            leg_ax.legend(
                handles=drawn["handles"],
                loc="upper left",
                fontsize=7.5 * scale,
                title=labels(lang)["legend"],
                title_fontsize=9 * scale,
                frameon=True,
                borderaxespad=0,
            )
            # 制图信息
            info_ax = fig.add_axes((0.71, 0.08, 0.27, 0.25))
            info_ax.set_xticks([])
            info_ax.set_yticks([])
            info_ax.text(
                0.04,
                0.94,
                w["info"],
                fontsize=9 * scale,
                fontweight="bold",
                va="top",
                transform=info_ax.transAxes,
            )
            info_ax.text(
                0.04,
                0.80,
                "\n".join(
                    part
                    for line in _sheet_info_lines(run, lang)
                    for part in textwrap.wrap(line, width=int(36 * scale), subsequent_indent="  ")
                ),
                fontsize=6.5 * scale,
                va="top",
                linespacing=1.6,
                wrap=True,
                transform=info_ax.transAxes,
            )
            with atomic_path(target, overwrite=overwrite) as tmp:
                fig.savefig(tmp, dpi=dpi, format=fmt)
        finally:
            plt.close(fig)
    logger.info("wrote map sheet %s (%s, %s, %d dpi)", target, fmt, paper, dpi)
    return target


# -- the grid system ------------------------------------------------------------------------------

#: Grid fill colours against the households band.
GRID_BAND_COLOURS = {"below": "#6baed6", "within": "#31a354", "above": "#de2d26"}

GRID_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "网格体系",
        "grids": "网格（按户数着色）",
        "proposed": "调整方案网格",
        "gaps": "网格缺口",
        "overlaps": "网格重叠",
        "crossings": "跨社区网格部分",
        "bases": "网格站点及最远住户",
        "below": "户数低于区间",
        "within": "户数在区间内",
        "above": "户数高于区间",
        "households": "户数",
        "population": "人口",
        "base": "网格站点",
        "median": "至住户距离中位数",
        "p90": "90%住户距离",
        "max": "最远住户距离",
        "band": "每格户数区间",
        "area": "面积",
        "residents": "居民点",
        "grid": "网格",
        "community": "社区",
        "into": "进入社区",
    },
    "en": {
        "title": "Grid system",
        "grids": "Grids (by households)",
        "proposed": "Proposed grids",
        "gaps": "Grid gaps",
        "overlaps": "Grid overlaps",
        "crossings": "Grid parts outside their community",
        "bases": "Grid bases and farthest households",
        "below": "households below the band",
        "within": "households within the band",
        "above": "households above the band",
        "households": "households",
        "population": "population",
        "base": "base",
        "median": "median distance to households",
        "p90": "p90 distance",
        "max": "farthest household",
        "band": "households band",
        "area": "area",
        "residents": "residents",
        "grid": "grid",
        "community": "community",
        "into": "into community",
    },
}


def _band_class(households: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.where(households < lo, "below", np.where(households > hi, "above", "within"))


def build_grids_map(
    inputs: Inputs,
    layers: dict[str, gpd.GeoDataFrame],
    summary: dict[str, Any],
    *,
    lang: str = "zh",
    offline: bool = True,
    tiles: str | None = None,
    tiles_attr: str | None = None,
) -> folium.Map:
    """The grid system on a map: one layer group per result layer.

    Grids (and proposed grids) are coloured by households against the band (below, within,
    above), gaps, overlaps and crossings outlined, and each grid's base drawn with a line to
    its farthest household (tooltip: the network distance).

    Parameters
    ----------
    inputs : Inputs
        For the basemap (the road network offline) and the title.
    layers : dict
        ``grids``, ``gaps``, ``overlaps``, ``crossings`` and optionally ``proposed``
        GeoDataFrames in EPSG:4326 (:class:`lifecircle.pipeline.GridRun` ``*_gdf()``).
    summary : dict
        :meth:`lifecircle.pipeline.GridRun.summary` (band, counts).
    """
    import folium

    if lang not in GRID_LABELS:
        raise InputError(f"unknown language {lang!r}; use zh or en")
    gl = GRID_LABELS[lang]
    lo, hi = (float(v) for v in str(summary["band"]).split("-"))
    grids = layers["grids"]
    minx, miny, maxx, maxy = grids.total_bounds if len(grids) else (0.0, 0.0, 0.0, 0.0)
    bounds = [[float(miny), float(minx)], [float(maxy), float(maxx)]]
    m = _base_map(inputs, bounds, offline=offline, tiles=tiles, tiles_attr=tiles_attr, lang=lang)
    JsLayer = _js_layer_class()
    helpers = _JS_HELPERS.replace("__BREAKS__", json.dumps(list(SHARE_BREAKS))).replace(
        "__COLOURS__", json.dumps(list(SHARE_COLOURS))
    )
    cast("Figure", m.get_root()).html.add_child(folium.Element(f"<script>{helpers}</script>"))

    def polygons(key: str, name: str, show: bool, style: str, props: list[str]) -> None:
        gdf = layers.get(key)
        if gdf is None:
            return
        keep = [p for p in props if p in gdf.columns]
        data = _geojson(gdf, keep) if len(gdf) else {"type": "FeatureCollection", "features": []}
        rows = ", ".join(f"[{_dumps(gl.get(p, p))}, f.properties[{_dumps(p)}]]" for p in keep)
        js = (
            f"var __NAME__ = L.geoJSON({_dumps(data)}, {{style: {style}, "
            "onEachFeature: function (f, l) { l.bindTooltip(LC.table("
            f"{_dumps(name)}, [{rows}].map(function (r) {{ return [r[0], "
            "typeof r[1] === 'number' ? LC.num(r[1]) : r[1]]; })), {sticky: true}); }});"
        )
        JsLayer(js, name, show=show, count=len(gdf), kind=f"grids:{key}").add_to(m)

    colours = _dumps(GRID_BAND_COLOURS)
    band_style = (
        "function (f) { var h = f.properties.households, c = " + colours + "; "
        f"var k = h < {lo} ? 'below' : (h > {hi} ? 'above' : 'within'); "
        "return {color: '#333', weight: 1, fillColor: c[k], fillOpacity: 0.45}; }"
    )
    props = ["grid_id", "community_id", "households", "population", "base_id",
             "base_median_m", "base_p90_m", "base_max_m"]  # fmt: skip
    polygons("grids", gl["grids"], True, band_style, props)
    polygons("proposed", gl["proposed"], False, band_style, [*props, "status"])
    polygons(
        "gaps", gl["gaps"], True,
        "function () { return {color: '#000', weight: 2.5, dashArray: '6 4', fill: false}; }",
        ["gap_id", "community_id", "area_m2", "residents", "households"],
    )  # fmt: skip
    polygons(
        "overlaps", gl["overlaps"], True,
        "function () { return {color: '#7a0177', weight: 2.5, fillColor: '#7a0177', "
        "fillOpacity: 0.3}; }",
        ["overlap_id", "grid_id", "other_grid_id", "area_m2", "residents", "households"],
    )  # fmt: skip
    polygons(
        "crossings", gl["crossings"], True,
        "function () { return {color: '#e66101', weight: 2.5, dashArray: '2 4', "
        "fillOpacity: 0.15}; }",
        ["grid_id", "community_id", "into_community_id", "area_m2", "residents"],
    )  # fmt: skip
    # bases and their reach: base -> farthest household of the grid
    ok = grids["base_lon"].notna() & grids["farthest_lon"].notna() if len(grids) else []
    g = grids[ok] if len(grids) else grids
    reach = [
        [
            [round(float(r.base_lat), 6), round(float(r.base_lon), 6)],
            [round(float(r.farthest_lat), 6), round(float(r.farthest_lon), 6)],
            str(r.grid_id),
            str(r.base_id),
            None if not np.isfinite(r.base_max_m) else float(r.base_max_m),
        ]
        for r in g.itertuples()  # one per grid
    ]
    js = (
        "var __NAME__ = L.layerGroup(); " + _dumps(reach) + ".forEach(function (r) { "
        "L.polyline([r[0], r[1]], {color: '#08519c', weight: 1.5, dashArray: '4 3'})"
        ".bindTooltip(LC.esc(r[2]) + ': ' + LC.m(r[4])).addTo(__NAME__); "
        "L.circleMarker(r[0], {radius: 5, color: '#08519c', fillOpacity: 0.9})"
        f".bindTooltip({_dumps(gl['base'])} + ' ' + LC.esc(r[3])).addTo(__NAME__); }});"
    )
    JsLayer(js, gl["bases"], show=True, count=len(reach), kind="grids:bases").add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    root = cast("Figure", m.get_root())
    e = html.escape
    title = f"{inputs.title} · {gl['title']}"
    warn = ""
    if inputs.synthetic:
        warn = f'<div style="color:#b00;font-weight:bold">{e(labels(lang)["synthetic"])}</div>'
    legend = "".join(
        f'<div><span style="display:inline-block;width:12px;height:10px;background:{c};'
        f'margin-right:5px"></span>{e(gl[k])}</div>'
        for k, c in GRID_BAND_COLOURS.items()
    )
    root.html.add_child(
        folium.Element(
            f'<div id="lifecircle-title" style="position:absolute;top:10px;left:60px;'
            f"z-index:1000;background:rgba(255,255,255,.92);padding:6px 10px;border-radius:4px;"
            f'font:14px sans-serif">{e(title)}{warn}</div>'
            f'<div id="lifecircle-legend" style="position:absolute;bottom:30px;right:10px;'
            f"z-index:1000;background:rgba(255,255,255,.92);padding:6px 10px;border-radius:4px;"
            f'font:12px sans-serif"><b>{e(gl["band"])} {lo:g}-{hi:g}</b>{legend}</div>'
        )
    )
    root.title = e(title)
    _add_probe(m)
    if len(grids):
        m.fit_bounds(bounds)
    return m


def write_grids_map(
    inputs: Inputs,
    layers: dict[str, gpd.GeoDataFrame],
    summary: dict[str, Any],
    path: str | Path,
    *,
    lang: str = "zh",
    offline: bool = True,
    overwrite: bool = False,
    tiles: str | None = None,
    tiles_attr: str | None = None,
) -> Path:
    """Write the grid-system map (see :func:`build_grids_map`); offline by default."""
    target = Path(path)
    check_writable([target], overwrite=overwrite)
    m = build_grids_map(
        inputs, layers, summary, lang=lang, offline=offline, tiles=tiles, tiles_attr=tiles_attr
    )
    page = render_map_html(m, offline=offline)
    write_text(page, target, overwrite=True)
    logger.info("wrote %s (%.1f MB)", target, len(page.encode("utf-8")) / 1e6)
    return target
