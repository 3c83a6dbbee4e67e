"""The colours of every map and GIS style: tiers, covered/uncovered, gaps, the 达标率 ramp.

One palette shared by the folium/PNG maps (:mod:`lifecircle.maps`) and the QGIS styles of the GIS
export (:mod:`lifecircle.export.styles`), so a layer opened in QGIS looks like the HTML map.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "COVERED_COLOUR",
    "GAP_COLOUR",
    "SHARE_BREAKS",
    "SHARE_COLOURS",
    "TIER_COLOURS",
    "UNCOVERED_COLOUR",
    "tier_colours",
]

#: Tier colours, highest tier first (repeated when a standard has more tiers).
TIER_COLOURS = ("#6a3d9a", "#1f78b4", "#b15928", "#ff7f00", "#e7298a", "#17becf", "#7f7f7f")
COVERED_COLOUR = "#1a9641"
UNCOVERED_COLOUR = "#d7191c"
GAP_COLOUR = "#b2182b"
#: Share classes (upper bounds, 0-1) and colours for cells and choropleths (the 达标率 ramp).
SHARE_BREAKS = (0.2, 0.4, 0.6, 0.8, 1.0001)
SHARE_COLOURS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")


def tier_colours(keys: Sequence[str]) -> dict[str, str]:
    """A colour per tier key, in standard order.

    Examples
    --------
    >>> tier_colours(["a", "b"])
    {'a': '#6a3d9a', 'b': '#1f78b4'}
    """
    return {k: TIER_COLOURS[i % len(TIER_COLOURS)] for i, k in enumerate(keys)}
