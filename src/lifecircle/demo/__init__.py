"""Seeded generator of the SYNTHETIC Tancheng demonstration scenario (合成示范数据).

Tancheng County (郯城县, Linyi, Shandong) built a 15-minute community living circle of
party-and-public service sites: 1 county-level centre, 1 sub-district (街道) centre,
16 community centres, 146 service stations and 1,423 convenience points. Neither its street
network nor its site inventory can be obtained offline, so this module generates a synthetic but
realistic stand-in inside the real county outline:

* ``roads.osm`` -- an OSM XML street network of a synthetic county seat (irregular arterial
  grid, local streets, gated residential compounds reachable only through their gates, a river
  crossed at a few bridges, a railway crossed at a few underpasses, a sparse new development
  area, edge villages on rural roads, and two deliberate disconnected islands);
* ``residents.csv`` -- residential points with population, elderly and children;
* ``facilities.csv`` -- the 1/1/16/146/1,423 facilities in **GCJ-02** coordinates, as an
  Amap-geocoded inventory would be, with deliberate coverage gaps;
* ``facilities_with_errors.csv`` -- a small copy with one deliberately bad row per error kind;
* ``communities.geojson`` / ``grids.geojson`` / ``subdistrict.geojson`` -- 16 synthetic
  communities tiled by 108 grids (网格), and their union;
* ``scenario.toml`` and ``README.md``.

Everything is deterministic for a seed: the same seed gives byte-identical files.

Geometry is built in a local metric frame (UTM zone 50N, EPSG:32650, shifted so that the town
centre is the origin) and written as WGS84 longitude/latitude.

The generator runs in steps, one module each: :mod:`~lifecircle.demo.scene` (parameters, the
local frame), :mod:`~lifecircle.demo.town` and :mod:`~lifecircle.demo.blocks` (the county seat),
:mod:`~lifecircle.demo.county` (townships and villages at county scale),
:mod:`~lifecircle.demo.network` (noding, OSM XML), :mod:`~lifecircle.demo.residents`,
:mod:`~lifecircle.demo.units` (communities and grids), :mod:`~lifecircle.demo.facilities`,
:mod:`~lifecircle.demo.files` (CSV/GeoJSON/TOML/README text) and :mod:`~lifecircle.demo.run`
(:func:`generate`, :func:`ensure_demo`).
"""

from lifecircle.demo.run import (
    DEFAULT_BOUNDARY_PATH,
    DEFAULT_DEMO_DIR,
    ensure_demo,
    generate,
    packaged_outline,
)
from lifecircle.demo.scene import (
    CHILDREN_SHARE,
    COUNTY_POPULATION,
    ELDERLY_SHARE,
    TIER_COUNTS,
    TOWN_CENTRE,
    TOWN_POPULATION,
)

__all__ = [
    "CHILDREN_SHARE",
    "COUNTY_POPULATION",
    "DEFAULT_BOUNDARY_PATH",
    "DEFAULT_DEMO_DIR",
    "ELDERLY_SHARE",
    "TIER_COUNTS",
    "TOWN_CENTRE",
    "TOWN_POPULATION",
    "ensure_demo",
    "generate",
    "packaged_outline",
]
