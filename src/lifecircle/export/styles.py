"""QGIS default styles (QML) of the exported layers, in the colours of the HTML map.

:func:`layer_qml` writes a QGIS style document for a layer: facilities and service areas by tier
(the tier colours of :mod:`lifecircle._palette`), residents by complete coverage, units as the
达标率 ramp (five classes of ``all_share``), gaps as red outlines, catchments as tier-coloured
fills with outlines, candidates by selection, rejects as crosses. The style also carries the
Chinese field aliases of :mod:`lifecircle.export.schema`, so fields read ``人口(人)`` instead of
``pop``. The writers store it in the GeoPackage ``layer_styles`` table (QGIS applies it when the
layer is opened) and as ``.qml`` sidecars next to Shapefiles and GeoJSON files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

from lifecircle._palette import (
    COVERED_COLOUR,
    GAP_COLOUR,
    SHARE_BREAKS,
    SHARE_COLOURS,
    UNCOVERED_COLOUR,
    tier_colours,
)

__all__ = ["QGIS_VERSION", "layer_qml", "style_description"]

#: The QGIS version the styles declare (QGIS 3.28 LTR reads them, and so does every later one).
QGIS_VERSION = "3.28.0-Firenze"

_GEOMETRY = {"point": 0, "line": 1, "polygon": 2}
_SYMBOL = {"point": "marker", "line": "line", "polygon": "fill"}


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    """``#rrggbb`` -> QGIS ``r,g,b,a``."""
    h = hex_colour.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def _options(values: Mapping[str, str]) -> str:
    items = "".join(
        f'<Option name={quoteattr(k)} type="QString" value={quoteattr(v)}/>'
        for k, v in values.items()
    )
    return f'<Option type="Map">{items}</Option>'


def _symbol(
    name: str, kind: str, colour: str, *, fill_alpha: int = 255, outline: str | None = None
) -> str:
    """One QGIS symbol: a circle marker, a line, or a fill (``fill_alpha`` 0 = outline only)."""
    if kind == "point":
        cls, opts = (
            "SimpleMarker",
            {
                "name": "circle",
                "color": _rgba(colour),
                "size": "2.6",
                "size_unit": "MM",
                "outline_color": _rgba(outline or "#ffffff"),
                "outline_width": "0.3",
                "outline_style": "solid",
            },
        )
    elif kind == "cross":
        cls, opts = (
            "SimpleMarker",
            {
                "name": "cross2",
                "color": _rgba(colour),
                "size": "3.2",
                "size_unit": "MM",
                "outline_color": _rgba(colour),
                "outline_width": "0.6",
                "outline_style": "solid",
            },
        )
    elif kind == "line":
        cls, opts = (
            "SimpleLine",
            {
                "line_color": _rgba(colour),
                "line_width": "0.4",
                "line_width_unit": "MM",
                "line_style": "solid",
            },
        )
    else:
        cls, opts = (
            "SimpleFill",
            {
                "color": _rgba(colour, fill_alpha),
                "style": "solid" if fill_alpha else "no",
                "outline_color": _rgba(outline or colour),
                "outline_width": "0.5",
                "outline_width_unit": "MM",
                "outline_style": "solid",
            },
        )
    sym_type = "marker" if kind in ("point", "cross") else _SYMBOL[kind]
    return (
        f'<symbol type="{sym_type}" name={quoteattr(name)} alpha="1" clip_to_extent="1" '
        f'force_rhr="0"><layer class="{cls}" enabled="1" pass="0" locked="0">'
        f"{_options(opts)}</layer></symbol>"
    )


def _categorized(
    attr: str, kind: str, categories: Sequence[tuple[str, str, str]], *, fill_alpha: int = 255
) -> str:
    """A categorized renderer: ``(value, label, colour)`` per category."""
    cats = "".join(
        f'<category render="true" symbol="{i}" value={quoteattr(v)} label={quoteattr(lb)}/>'
        for i, (v, lb, _c) in enumerate(categories)
    )
    syms = "".join(
        _symbol(str(i), kind, c, fill_alpha=fill_alpha) for i, (_v, _l, c) in enumerate(categories)
    )
    return (
        f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(attr)} symbollevels="0" '
        f'enableorderby="0" forceraster="0"><categories>{cats}</categories>'
        f"<symbols>{syms}</symbols></renderer-v2>"
    )


def _graduated(attr: str, kind: str) -> str:
    """The 达标率 ramp: five classes of a 0-1 share, red (low) to green (high)."""
    lows = (0.0, *SHARE_BREAKS[:-1])
    ranges = "".join(
        f'<range render="true" symbol="{i}" lower="{lo:g}" upper="{min(hi, 1.0):g}" '
        f'label="{lo * 100:.0f}% - {min(hi, 1.0) * 100:.0f}%"/>'
        for i, (lo, hi) in enumerate(zip(lows, SHARE_BREAKS, strict=True))
    )
    syms = "".join(
        _symbol(str(i), kind, c, fill_alpha=200, outline="#636363")
        for i, c in enumerate(SHARE_COLOURS)
    )
    return (
        f'<renderer-v2 type="graduatedSymbol" attr={quoteattr(attr)} '
        f'graduatedMethod="GraduatedColor" symbollevels="0" enableorderby="0" forceraster="0">'
        f"<ranges>{ranges}</ranges><symbols>{syms}</symbols></renderer-v2>"
    )


def _single(kind: str, colour: str, *, fill_alpha: int = 255, outline: str | None = None) -> str:
    return (
        '<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">'
        f"<symbols>{_symbol('0', kind, colour, fill_alpha=fill_alpha, outline=outline)}"
        "</symbols></renderer-v2>"
    )


def style_description(layer: str) -> str:
    """One line saying what the default style of ``layer`` shows (``layer_styles.description``)."""
    return {
        "facilities": "facilities coloured by tier (设施按层级着色)",
        "residents": "residents: green = covered for every tier, red = not (全部达标/未达标)",
        "units": "达标率 ramp of all_share: red < 20 % ... green >= 80 %",
        "service_areas": "service areas filled by tier colour (服务范围)",
        "catchments": "catchments filled by tier colour with outlines (服务片区)",
        "gaps": "coverage gaps as red outlines (覆盖缺口)",
        "candidates": "candidate sites: selected ones green (候选点)",
        "network": "road network in grey (道路网络)",
        "rejects": "rejected input rows as red crosses (剔除的输入行)",
    }.get(layer, f"{layer} (single symbol)")


def layer_qml(
    layer: str,
    geometry: str,
    *,
    fields: Mapping[str, str],
    tier_keys: Sequence[str] = (),
    tier_labels: Mapping[str, str] | None = None,
    share_field: str = "all_share",
    tier_field: str = "tier",
    covered_field: str = "all_covered",
    selected_field: str = "selected",
    bool_values: tuple[str, str] = ("1", "0"),
    title: str = "",
    abstract: str = "",
) -> str:
    """A QGIS style document (QML text) for one exported layer.

    Parameters
    ----------
    layer : str
        Layer name (``facilities``, ``units``…): chooses the renderer.
    geometry : {"point", "line", "polygon"}
    fields : dict
        Field name as written in the file -> alias (Chinese, with unit).
    tier_keys : sequence of str
        Tier keys, highest first (their colours follow this order, as on the HTML map).
    tier_labels : dict, optional
        Tier key -> Chinese label (category labels).
    share_field, tier_field, covered_field, selected_field : str
        Names of those fields in the file (Shapefiles use short names).
    bool_values : (str, str)
        How QGIS reads true and false from the file: ``("1", "0")`` for Shapefile (integers),
        ``("true", "false")`` for GeoPackage and GeoJSON (booleans).
    title, abstract : str
        Layer title and description, written as the style's layer metadata (QGIS shows them
        under Layer Properties > Metadata when the style is loaded).

    Returns
    -------
    str
        A well-formed XML document (``<!DOCTYPE qgis …><qgis …>``).

    Examples
    --------
    >>> import xml.etree.ElementTree as ET
    >>> qml = layer_qml("units", "polygon", fields={"all_share": "全部达标率(0-1)"})
    >>> root = ET.fromstring(qml[qml.index("<qgis ") :])
    >>> root.find("renderer-v2").get("type"), root.find("aliases/alias").get("name")
    ('graduatedSymbol', '全部达标率(0-1)')
    """
    if geometry not in _GEOMETRY:
        raise ValueError(f"geometry must be point, line or polygon, got {geometry!r}")
    labels = dict(tier_labels or {})
    colours = tier_colours(tier_keys)
    tiers = [(k, labels.get(k, k), colours[k]) for k in tier_keys]
    yes, no = bool_values
    if layer == "facilities" and tiers:
        renderer = _categorized(tier_field, geometry, tiers)
    elif layer in ("service_areas", "catchments") and tiers:
        renderer = _categorized(tier_field, geometry, tiers, fill_alpha=60)
    elif layer == "units" and geometry == "polygon":
        renderer = _graduated(share_field, geometry)
    elif layer == "residents":
        renderer = _categorized(
            covered_field,
            geometry,
            [
                (yes, "全部达标 covered", COVERED_COLOUR),
                (no, "未全部达标 not covered", UNCOVERED_COLOUR),
            ],
        )
    elif layer == "candidates":
        renderer = _categorized(
            selected_field,
            geometry,
            [(yes, "入选 selected", COVERED_COLOUR), (no, "未入选 not selected", "#969696")],
        )
    elif layer == "gaps" and geometry == "polygon":
        renderer = _single(geometry, GAP_COLOUR, fill_alpha=0, outline=GAP_COLOUR)
    elif layer == "rejects":
        renderer = _single("cross" if geometry == "point" else geometry, UNCOVERED_COLOUR)
    elif layer == "network":
        renderer = _single(geometry, "#7f7f7f")
    else:
        renderer = _single(geometry, "#3182bd", fill_alpha=80)
    aliases = "".join(
        f"<alias field={quoteattr(f)} index={quoteattr(str(i))} name={quoteattr(a)}/>"
        for i, (f, a) in enumerate(fields.items())
    )
    metadata = (
        f"<resourceMetadata><type>dataset</type><title>{escape(title)}</title>"
        f"<abstract>{escape(abstract)}</abstract></resourceMetadata>"
        if title or abstract
        else ""
    )
    categories = "Symbology|Fields" + ("|Metadata" if metadata else "")
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="{QGIS_VERSION}" styleCategories="{categories}">'
        f"{metadata}{renderer}<aliases>{aliases}</aliases>"
        f"<layerGeometryType>{_GEOMETRY[geometry]}</layerGeometryType></qgis>\n"
    )
