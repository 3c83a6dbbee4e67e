"""Writing export layers: GeoJSON, GeoPackage, Shapefile or CSV, in any output CRS, atomically.

1. *Validate* the whole request (format, CRS, target paths) before the first byte is written.
2. *Transform* every vertex from WGS84 to the output CRS
   (:class:`~lifecircle.export.crs.OutputCRS`); polygons are oriented counter-clockwise (RFC 7946
   right-hand rule) and coordinates rounded.
3. *Write* into a temporary folder next to the targets and rename into place at the end.

GeoJSON is written by :func:`lifecircle._files.geojson_text` (the package's one GeoJSON writer);
GeoPackage and Shapefile by pyogrio.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from lifecircle._files import (
    DEFAULT_CSV_ENCODING,
    atomic_path,
    check_writable,
    csv_frame,
    geojson_text,
)
from lifecircle.config import ServiceStandard
from lifecircle.errors import InputError, LifecircleError
from lifecircle.export.crs import OutputCRS, lon_range, resolve_output_crs
from lifecircle.export.schema import LAYER_DESCRIPTIONS, LAYER_TITLES_ZH, field_table
from lifecircle.export.styles import layer_qml, style_description
from lifecircle.service_areas import ServiceAreas

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "GIS_FORMATS",
    "GPKG_VERSIONS",
    "SHP_ENCODINGS",
    "ExportMeta",
    "ExportResult",
    "export_layers",
    "export_paths",
    "layer_csv_frame",
    "layer_geojson",
    "read_back",
    "write_service_areas",
]

logger = logging.getLogger(__name__)

#: Output formats and their file extension.
GIS_FORMATS: dict[str, str] = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".shp", "csv": ".csv"}
#: GeoPackage versions that can be written (1.2 opens without warnings in GDAL 3.6 / QGIS 3.28).
GPKG_VERSIONS = ("1.2", "1.3", "1.4")
#: Shapefile encodings: UTF-8 with a ``.cpg`` (default), or CP936 (GBK) for SuperMap/ArcMap 10.x.
SHP_ENCODINGS = {"utf-8": "UTF-8", "cp936": "CP936"}


class GeometryValidityError(LifecircleError, ValueError):
    """A geometry stayed invalid after repair in the output CRS (a bug to report)."""


@dataclass(frozen=True)
class ExportMeta:
    """What a layer's description says besides the layer itself.

    Attributes
    ----------
    standard : ServiceStandard, optional
        The standard (its name and tier labels go into descriptions, aliases and styles).
    synthetic : bool
        The data are the synthetic demonstration (said in every layer description).
    date : str
        ISO date of the run (default today).
    titles : dict
        ``{layer: (Chinese title, description)}`` for layers that are not export layers (or
        that share an export layer's name with another meaning, such as the grid system's
        ``gaps``); the others use :data:`LAYER_TITLES_ZH` and :data:`LAYER_DESCRIPTIONS`.
    """

    standard: ServiceStandard | None = None
    synthetic: bool = False
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())
    titles: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def title(self, layer: str) -> str:
        """The layer's Chinese title (its name when it has none)."""
        given = self.titles.get(layer)
        return given[0] if given else LAYER_TITLES_ZH.get(layer, layer)

    @property
    def tier_keys(self) -> tuple[str, ...]:
        """Tier keys of the standard, highest first (empty without a standard)."""
        return tuple(self.standard.keys) if self.standard else ()

    @property
    def tier_labels(self) -> dict[str, str]:
        """Tier key -> Chinese name."""
        return {t.key: t.label_zh for t in self.standard.tiers} if self.standard else {}

    def layer_description(self, layer: str, crs: OutputCRS) -> str:
        """What, standard, CRS, date and the synthetic flag, in one paragraph."""
        given = self.titles.get(layer)
        what = given[1] if given else LAYER_DESCRIPTIONS.get(layer, layer)
        title = self.title(layer)
        std = f"; standard: {self.standard.name}" if self.standard else ""
        flag = (
            "; SYNTHETIC demonstration data (合成示范数据), not real data" if self.synthetic else ""
        )
        return f"{title} - {what}{std}; CRS: {crs.label}; lifecircle export {self.date}{flag}"


def _geometry_kind(gdf: gpd.GeoDataFrame) -> str:
    """``point``, ``line`` or ``polygon``: the kind of the layer's first non-empty geometry."""
    types = shapely.get_type_id(np.asarray(gdf.geometry.values))
    types = types[types >= 0]
    if len(types) == 0:
        return "point"
    t = int(types[0])
    return "point" if t in (0, 4) else "line" if t in (1, 2, 5) else "polygon"


def _repair(polys: NDArray[np.object_]) -> NDArray[np.object_]:
    """``make_valid`` (structure method: polygonal in, polygonal out) where a polygon is invalid."""
    bad = ~shapely.is_valid(polys)
    if bad.any():
        polys = polys.copy()
        polys[bad] = shapely.make_valid(polys[bad], method="structure", keep_collapsed=False)
    return polys


def _snap_to_grid(polys: NDArray[np.object_], grid: float) -> NDArray[np.object_]:
    """Polygons on a grid of ``grid`` units (GEOS precision reduction, valid output).

    GEOS gives up on a few polygons (``TopologyException``); those are rounded vertex by vertex
    and left to the repair that follows.
    """
    try:
        return np.asarray(shapely.set_precision(polys, grid))
    except shapely.errors.GEOSException:
        out = polys.copy()
        for i, g in enumerate(polys):  # only after GEOS failed on the batch: find the culprits
            try:
                out[i] = shapely.set_precision(g, grid)
            except shapely.errors.GEOSException:
                out[i] = shapely.transform(g, lambda xy: np.round(xy / grid) * grid)
        return out


def _valid_geometries(
    geoms: NDArray[np.object_], precision: int | None, layer: str
) -> NDArray[np.object_]:
    """Round to ``precision`` decimals and repair polygons in the output CRS, then check.

    Polygons are snapped to the precision grid with :func:`shapely.set_precision` (which keeps
    them valid) and repaired with :func:`shapely.make_valid` (``structure`` method: polygonal in,
    polygonal out), because reprojection (e.g. to Gauss-Krüger) can make a ring touch or cross
    itself. Points and lines are rounded vertex by vertex.
    """
    geoms = np.array(geoms, dtype=object, copy=True)  # never modify the caller's geometries
    types = shapely.get_type_id(geoms)
    poly = (types == 3) | (types == 6)
    other = ~poly & (types >= 0)
    # zero-length segments of the source network (two nodes at one position) are kept as they are
    degenerate_in = other & ~shapely.is_valid(geoms)
    if precision is not None and other.any():
        geoms[other] = shapely.transform(geoms[other], lambda xy: np.round(xy, precision))
    if poly.any():
        p = _repair(geoms[poly])
        if precision is not None:
            p = _repair(_snap_to_grid(p, 10.0 ** (-precision)))
        geoms[poly] = shapely.orient_polygons(p, exterior_cw=False)
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if degenerate_in.any():
        logger.info(
            "layer %r: %d zero-length line(s) kept as in the input", layer, int(degenerate_in.sum())
        )
    collapsed = invalid & other & ~degenerate_in
    if collapsed.any():
        # a line shorter than the rounding grid collapses: only with a coarse --precision
        logger.warning(
            "layer %r: %d line(s) shorter than the %s-decimal grid collapsed (give more "
            "--precision)",
            layer,
            int(collapsed.sum()),
            precision,
        )
    invalid &= poly
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        raise GeometryValidityError(
            f"layer {layer!r}: {int(invalid.sum())} geometr(y/ies) invalid after repair in the "
            f"output CRS (first: feature {i}, {shapely.is_valid_reason(geoms[i])}); "
            "please report this with the input files"
        )
    return geoms


def _prepare(
    gdf: gpd.GeoDataFrame, crs: OutputCRS, precision: int | None, layer: str = "layer"
) -> gpd.GeoDataFrame:
    """Project to ``crs``, round, repair and check geometries, orient polygons CCW,
    infinities to null."""
    import geopandas as gpd

    g = gdf if gdf.crs is not None and gdf.crs.to_epsg() == 4326 else gdf.to_crs(4326)
    geoms = crs.transform_geometries(np.asarray(g.geometry.values))
    geoms = _valid_geometries(geoms, precision, layer)
    attrs = pd.DataFrame(g.drop(columns=g.geometry.name))
    for c in attrs.columns:
        if pd.api.types.is_float_dtype(attrs[c]):
            attrs[c] = attrs[c].replace([np.inf, -np.inf], np.nan)
    return gpd.GeoDataFrame(attrs, geometry=geoms, crs=crs.pyproj_crs())


def _geojson(gdf: gpd.GeoDataFrame, crs: OutputCRS, precision: int, name: str) -> str:
    """GeoJSON text of a prepared layer: RFC 7946 for WGS84, else with a ``crs`` member."""
    return geojson_text(gdf, precision=precision, name=name, crs_member=crs.geojson_crs_member())


def layer_geojson(
    gdf: gpd.GeoDataFrame,
    *,
    crs: str | OutputCRS = "wgs84",
    precision: int | None = None,
    name: str = "layer",
) -> str:
    """One layer as GeoJSON text (in memory; for the HTTP service).

    WGS84 output is RFC 7946 GeoJSON (lon/lat, CCW exteriors, no ``crs`` member); any other CRS
    adds a ``crs`` member (a non-standard extension of the 2008 GeoJSON format).
    """
    ocrs = (
        crs
        if isinstance(crs, OutputCRS)
        else resolve_output_crs(crs, lon_range=lon_range({name: gdf}))
    )
    p = ocrs.default_precision if precision is None else int(precision)
    return _geojson(_prepare(gdf, ocrs, p), ocrs, p, name)


def layer_csv_frame(gdf: gpd.GeoDataFrame, crs: OutputCRS, precision: int) -> pd.DataFrame:
    """Attributes plus coordinates: point layers get ``lon``/``lat`` in a geographic output CRS
    (and ``wgs84_lon``/``wgs84_lat`` when that CRS is not WGS84), or ``easting``/``northing``
    (metres) plus WGS84 ``lon``/``lat`` in a projected one; other layers a ``wkt`` column."""
    geoms = np.asarray(gdf.geometry.values)
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    types = shapely.get_type_id(geoms)
    if len(geoms) and np.all(types == 0):
        x, y = shapely.get_x(geoms), shapely.get_y(geoms)
        if crs.geographic:
            attrs["lon"], attrs["lat"] = np.round(x, precision), np.round(y, precision)
            if not crs.is_wgs84:
                wlon, wlat = crs.to_wgs84(x, y)
                attrs["wgs84_lon"] = np.round(wlon, 7)
                attrs["wgs84_lat"] = np.round(wlat, 7)
        else:
            attrs["easting"], attrs["northing"] = np.round(x, precision), np.round(y, precision)
            wlon, wlat = crs.to_wgs84(x, y)
            attrs["lon"], attrs["lat"] = np.round(wlon, 7), np.round(wlat, 7)
    else:
        attrs["wkt"] = shapely.to_wkt(geoms, rounding_precision=precision, trim=True)
    return attrs


def _prj_text(crs: OutputCRS) -> str:
    """The ``.prj`` content: ESRI WKT1 when the CRS has one, else WKT2."""
    if crs.obfuscated:
        return crs.wkt()
    try:
        return str(crs.pyproj_crs().to_wkt("WKT1_ESRI"))
    except Exception:  # pyproj raises CRSError for CRSs without an ESRI form
        return crs.wkt()


def _crs_text(crs: OutputCRS, columns: Sequence[str]) -> str:
    """The ``_crs.txt`` sidecar of a CSV: CRS code, name and which columns hold what."""
    code = crs.pyproj_crs().to_epsg() if not crs.obfuscated else None
    lines = [
        f"EPSG:{code}" if code is not None else crs.name,
        crs.label,
    ]
    if "easting" in columns:
        lines += [
            "easting: metres east (Gauss-Kruger Y in Chinese surveying notation)",
            "northing: metres north (Gauss-Kruger X in Chinese surveying notation)",
            "lon, lat: WGS 84 degrees (EPSG:4326)",
            "QGIS: Layer > Add Delimited Text Layer, X field = easting, Y field = northing, "
            f"Geometry CRS = {f'EPSG:{code}' if code is not None else crs.label}",
        ]
    elif "lon" in columns:
        lines += [f"lon, lat: degrees in {crs.label}"]
        if "wgs84_lon" in columns:
            lines += ["wgs84_lon, wgs84_lat: WGS 84 degrees (EPSG:4326)"]
    elif "wkt" in columns:
        axes = "" if crs.geographic else " (x = easting, y = northing, metres)"
        lines += [f"wkt: geometry as WKT in {crs.label}{axes}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_layers` wrote.

    Attributes
    ----------
    paths : dict
        ``{layer: [paths]}`` (all layers share one path for GeoPackage).
    crs : OutputCRS
    fmt : str
    features : dict
        ``{layer: feature count}``.
    skipped : dict
        ``{layer: reason}`` for layers of ``--layers all`` that cannot be built in this run.
    """

    paths: dict[str, list[Path]]
    crs: OutputCRS
    fmt: str
    features: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain data for printing or JSON."""
        return {
            "format": self.fmt,
            "crs": self.crs.name,
            "crs_label": self.crs.label,
            "crs_reason": self.crs.reason,
            "skipped": dict(self.skipped),
            "layers": {
                k: {"features": self.features[k], "files": [str(p) for p in v]}
                for k, v in self.paths.items()
            },
        }


_SHP_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def export_paths(
    layer_names: Sequence[str], out: str | Path, fmt: str, crs: OutputCRS
) -> dict[str, list[Path]]:
    """The files an export writes: ``{layer: [paths]}``.

    GeoPackage: ``out`` itself if it ends in ``.gpkg``, else ``out/lifecircle[_tag].gpkg``.
    Other formats: ``out/<layer>[_tag].<ext>`` (Shapefile: plus its sidecars,
    ``<layer>[_tag]_fields.csv`` and a ``.qml`` style; GeoJSON: plus a ``.qml`` style; CSV: plus
    a ``.prj`` and a ``_crs.txt`` naming the CRS), where ``tag`` names the CRS for non-WGS84
    output.
    """
    o = Path(out)
    suffix = f"_{crs.tag}" if crs.tag else ""
    if fmt == "gpkg":
        path = o if o.suffix.lower() == ".gpkg" else o / f"lifecircle{suffix}.gpkg"
        return {n: [path] for n in layer_names}
    if o.suffix.lower() in (".gpkg", ".geojson", ".shp", ".csv", ".json"):
        raise InputError(
            f"--out {o} looks like a file, but {fmt} writes one file per layer: give a folder"
        )
    ext = GIS_FORMATS[fmt]
    out_paths: dict[str, list[Path]] = {}
    for n in layer_names:
        stem = f"{n}{suffix}"
        if fmt == "shp":
            out_paths[n] = [o / f"{stem}{e}" for e in _SHP_SIDECARS] + [
                o / f"{stem}.qml",
                o / f"{stem}_fields.csv",
            ]
        elif fmt == "geojson":
            out_paths[n] = [o / f"{stem}{ext}", o / f"{stem}.qml"]
        else:
            out_paths[n] = [o / f"{stem}{ext}", o / f"{stem}.prj", o / f"{stem}_crs.txt"]
    return out_paths


def _bool_to_int(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Boolean columns as integers 0/1 (Shapefiles have no boolean type; ``T``/``F`` text is
    what GDAL writes otherwise)."""
    cols = [c for c in g.columns if c != g.geometry.name and pd.api.types.is_bool_dtype(g[c])]
    return g.assign(**{c: g[c].astype(np.int32) for c in cols}) if cols else g


def _qml_for(
    layer: str,
    g: gpd.GeoDataFrame,
    ft: pd.DataFrame,
    meta: ExportMeta,
    crs: OutputCRS,
    *,
    short: bool,
    fmt: str,
) -> str:
    """The QGIS style of a written layer (field names as written: short for Shapefiles)."""
    name_of = dict(zip(ft["name"], ft["field"] if short else ft["name"], strict=True))
    fields = dict(zip(ft["field"] if short else ft["name"], ft["alias_zh"], strict=True))
    return layer_qml(
        layer,
        _geometry_kind(g),
        fields=fields,
        tier_keys=meta.tier_keys,
        tier_labels=meta.tier_labels,
        tier_field=name_of.get("tier", "tier"),
        share_field=name_of.get("all_share", "all_share"),
        covered_field=name_of.get("all_covered", "all_covered"),
        selected_field=name_of.get("selected", "selected"),
        # GeoPackage and GeoJSON booleans reach QGIS as booleans, Shapefile ones as integers
        bool_values=("1", "0") if fmt == "shp" else ("true", "false"),
        title=meta.title(layer),
        abstract=meta.layer_description(layer, crs),
    )


def _write_shapefile(
    g: gpd.GeoDataFrame, ft: pd.DataFrame, path: Path, encoding: str, layer: str
) -> None:
    """One Shapefile: short field names, booleans as 0/1, text in ``encoding`` (with ``.cpg``)."""
    shp = _bool_to_int(g).rename(columns=dict(zip(ft["name"], ft["field"], strict=True)))
    gdal_enc = SHP_ENCODINGS[encoding]
    if gdal_enc != "UTF-8":
        for col in shp.columns:
            text = pd.api.types.is_object_dtype(shp[col]) or pd.api.types.is_string_dtype(shp[col])
            if col == shp.geometry.name or not text:
                continue
            values = shp[col].astype("string")
            kept = values.str.encode(encoding, errors="replace").str.decode(encoding)
            lost = (kept != values).fillna(False).to_numpy(bool)
            if lost.any():
                i = int(np.flatnonzero(lost)[0])
                raise InputError(
                    f"layer {layer!r}, feature {i + 1}, field {col}: {values.iloc[i]!r} has "
                    f"characters {encoding.upper()} cannot store ({int(lost.sum())} value(s) in "
                    "all); use --shp-encoding utf-8 (or the GeoPackage format)"
                )
    shp.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding=gdal_enc)
    cpg = path.with_suffix(".cpg")
    if not cpg.exists():
        cpg.write_text("UTF-8" if gdal_enc == "UTF-8" else "936", encoding="ascii")


def _write_gpkg_layer(g: gpd.GeoDataFrame, path: Path, layer: str, version: str) -> None:
    """Append one layer to a GeoPackage (created as ``version``)."""
    opts = {} if path.exists() else {"dataset_options": {"VERSION": version}}
    g.to_file(path, layer=layer, driver="GPKG", engine="pyogrio", **opts)


def _gpkg_metadata(
    path: Path,
    tables: Mapping[str, tuple[gpd.GeoDataFrame, pd.DataFrame]],
    crs: OutputCRS,
    meta: ExportMeta,
) -> None:
    """Layer descriptions, ``gpkg_data_columns`` aliases and QGIS ``layer_styles``.

    * ``gpkg_contents``: ``identifier`` = Chinese title, ``description`` = what, standard, CRS,
      date and the synthetic flag.
    * ``gpkg_data_columns`` (the GeoPackage schema extension, registered in ``gpkg_extensions``):
      per field, ``name``/``title`` = Chinese alias (GDAL reads ``name`` as the alternative name
      QGIS shows) and ``description`` = meaning and unit.
    * ``layer_styles`` (the table QGIS reads and writes): one default QML style per layer,
      registered in ``gpkg_contents`` as an attributes table, as QGIS does. GDAL and geopandas
      list it as a layer (as for any GeoPackage QGIS has saved styles in), so read data layers
      by name.
    """
    with closing(sqlite3.connect(path)) as con, con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS gpkg_data_columns (table_name TEXT NOT NULL, "
            "column_name TEXT NOT NULL, name TEXT, title TEXT, description TEXT, "
            "mime_type TEXT, constraint_name TEXT, "
            "CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name), "
            "CONSTRAINT gdc_tn UNIQUE (table_name, name))"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS gpkg_data_column_constraints (constraint_name TEXT NOT "
            "NULL, constraint_type TEXT NOT NULL, value TEXT, min NUMERIC, min_is_inclusive "
            "BOOLEAN, max NUMERIC, max_is_inclusive BOOLEAN, description TEXT, CONSTRAINT "
            "gdcc_ntv UNIQUE (constraint_name, constraint_type, value))"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT, "
            "extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, "
            "CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))"
        )
        for table in ("gpkg_data_columns", "gpkg_data_column_constraints"):
            con.execute(
                "INSERT OR IGNORE INTO gpkg_extensions VALUES (?, NULL, 'gpkg_schema', "
                "'http://www.geopackage.org/spec/#extension_schema', 'read-write')",
                (table,),
            )
        con.execute(
            "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256), "
            "f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT, "
            "useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
            "update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
        )
        con.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
            "description, last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', "
            "'QGIS default styles of the layers', strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
        )
        for layer, (g, ft) in tables.items():
            con.execute(
                "UPDATE gpkg_contents SET identifier = ?, description = ? WHERE table_name = ?",
                (meta.title(layer), meta.layer_description(layer, crs), layer),
            )
            con.executemany(
                "INSERT OR REPLACE INTO gpkg_data_columns (table_name, column_name, name, "
                "title, description) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        layer,
                        r["name"],
                        r["alias_zh"],
                        r["alias_zh"],
                        f"{r['meaning']} [{r['unit']}]" if r["unit"] else r["meaning"],
                    )
                    for r in ft.to_dict("records")
                ],
            )
            geom_col = con.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
            ).fetchone()
            con.execute(
                "DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?",
                (layer, layer),
            )
            con.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
                "owner, ui) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, 'lifecircle', '')",
                (
                    layer,
                    geom_col[0] if geom_col else "geom",
                    layer,
                    _qml_for(layer, g, ft, meta, crs, short=False, fmt="gpkg"),
                    style_description(layer),
                ),
            )


def export_layers(
    layers: Mapping[str, gpd.GeoDataFrame],
    out: str | Path,
    fmt: str = "geojson",
    crs: str | OutputCRS = "wgs84",
    *,
    precision: int | None = None,
    overwrite: bool = False,
    tier_keys: Sequence[str] = (),
    meta: ExportMeta | None = None,
    gpkg_version: str = "1.2",
    shp_encoding: str = "utf-8",
) -> ExportResult:
    """Write layers as GeoJSON, GeoPackage, Shapefile or CSV in the chosen CRS.

    Parameters
    ----------
    layers : dict
        ``{name: GeoDataFrame}``; any CRS geopandas knows (converted via WGS84).
    out : path
        GeoPackage: the ``.gpkg`` file (or a folder for ``lifecircle[_tag].gpkg``); other
        formats: a folder (created) receiving one file per layer.
    fmt : {"geojson", "gpkg", "shp", "csv"}
    crs : str or OutputCRS
        See :func:`resolve_output_crs`. ``cgcs2000-gk`` picks the 3-degree Gauss-Krüger zone of
        the centre of the layers' extent (logged).
    precision : int, optional
        Decimals kept in coordinates. Default: 6 for degrees, 2 for metres in GeoJSON and CSV;
        GeoPackage and Shapefile keep full double precision unless given.
    overwrite : bool
        Replace existing files; otherwise any existing target is an error and nothing is written.
    tier_keys : sequence of str
        Tier keys of the standard, highest first (Shapefile names ``t1_…`` follow this order);
        taken from ``meta.standard`` when that is given.
    meta : ExportMeta, optional
        Standard, synthetic flag and date for layer descriptions, Chinese aliases and styles.
    gpkg_version : {"1.2", "1.3", "1.4"}
        GeoPackage version (default 1.2, which GDAL 3.6 / QGIS 3.28 LTR and ArcGIS read
        without warnings).
    shp_encoding : {"utf-8", "cp936"}
        Shapefile text encoding (default UTF-8 with a ``.cpg``; CP936/GBK for software that
        ignores ``.cpg``, such as ArcMap 10.x and older SuperMap).

    Returns
    -------
    ExportResult

    Raises
    ------
    InputError
        Unknown format, version or encoding, empty request, a file name where a folder is
        needed, or text a CP936 Shapefile cannot store.
    CRSError
        Unknown CRS.
    OutputExistsError
        A target exists and ``overwrite`` is False. Nothing is written on any error.
    """
    fmt = str(fmt).lower().lstrip(".")
    fmt = {"json": "geojson", "shapefile": "shp", "geopackage": "gpkg"}.get(fmt, fmt)
    if fmt not in GIS_FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(GIS_FORMATS)}")
    if gpkg_version not in GPKG_VERSIONS:
        raise InputError(
            f"unknown GeoPackage version {gpkg_version!r}; use one of {', '.join(GPKG_VERSIONS)}"
        )
    enc = str(shp_encoding).lower().replace("gbk", "cp936").replace("utf8", "utf-8")
    if enc not in SHP_ENCODINGS:
        raise InputError(
            f"unknown Shapefile encoding {shp_encoding!r}; use one of {', '.join(SHP_ENCODINGS)}"
        )
    if not layers:
        raise InputError("no layers to export")
    meta = meta or ExportMeta()
    keys = meta.tier_keys or tuple(tier_keys)
    if isinstance(crs, OutputCRS):
        ocrs = crs
    else:
        ocrs = resolve_output_crs(crs, lon_range=lon_range(layers))
        if ocrs.reason and ocrs.reason != "given":
            logger.info("output CRS %s: %s", ocrs.label, ocrs.reason)
    if precision is not None and not 0 <= int(precision) <= 15:
        raise InputError(f"precision must be 0..15 decimals, got {precision}")
    text_precision = ocrs.default_precision if precision is None else int(precision)
    paths = export_paths(list(layers), out, fmt, ocrs)
    all_paths = list(dict.fromkeys(p for ps in paths.values() for p in ps))
    check_writable(all_paths, overwrite=overwrite)

    prepared = {
        n: _prepare(g, ocrs, precision if fmt in ("gpkg", "shp") else text_precision, n)
        for n, g in layers.items()
    }
    tables = {n: field_table(g, n, keys, meta.tier_labels) for n, g in prepared.items()}
    features = {n: len(g) for n, g in prepared.items()}
    out_dir = all_paths[0].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # everything goes to a temporary folder next to the targets, renamed into place at the end
    tmp_dir = Path(tempfile.mkdtemp(prefix=".lifecircle-export-", dir=out_dir))
    try:
        for n, g in prepared.items():
            files = paths[n]
            ft = tables[n]
            tmp_main = tmp_dir / files[0].name
            if fmt == "gpkg":
                _write_gpkg_layer(g, tmp_main, n, gpkg_version)
            elif fmt == "geojson":
                tmp_main.write_text(_geojson(g, ocrs, text_precision, n), encoding="utf-8")
                (tmp_dir / files[1].name).write_text(
                    _qml_for(n, g, ft, meta, ocrs, short=False, fmt=fmt), encoding="utf-8"
                )
            elif fmt == "csv":
                frame = layer_csv_frame(g, ocrs, text_precision)
                csv_frame(frame).to_csv(
                    tmp_main, index=False, encoding=DEFAULT_CSV_ENCODING, lineterminator="\n"
                )
                (tmp_dir / files[1].name).write_text(_prj_text(ocrs), encoding="utf-8")
                (tmp_dir / files[2].name).write_text(
                    _crs_text(ocrs, list(frame.columns)), encoding="utf-8"
                )
            else:
                _write_shapefile(g, ft, tmp_main, enc, n)
                (tmp_dir / files[-2].name).write_text(
                    _qml_for(n, g, ft, meta, ocrs, short=True, fmt=fmt), encoding="utf-8"
                )
                ft.to_csv(
                    tmp_dir / files[-1].name,
                    index=False,
                    encoding=DEFAULT_CSV_ENCODING,
                    lineterminator="\n",
                )
        if fmt == "gpkg":
            main = tmp_dir / all_paths[0].name
            _gpkg_metadata(main, {n: (prepared[n], tables[n]) for n in prepared}, ocrs, meta)
        for p in all_paths:
            src_p = tmp_dir / p.name
            if src_p.exists():
                os.replace(src_p, p)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info("wrote %d layer(s) as %s to %s (%s)", len(prepared), fmt, out_dir, ocrs.label)
    return ExportResult(paths, ocrs, fmt, features)


def read_back(
    path: str | Path,
    *,
    layer: str | None = None,
    crs: str | OutputCRS | None = None,
    encoding: str | None = None,
) -> gpd.GeoDataFrame:
    """Read an exported layer and convert it back to WGS84 (for checks and round trips).

    ``crs`` is the export's CRS; it is needed for GCJ-02/BD-09 files (whose declared CRS is a
    custom one). Shapefile field names and 0/1 booleans are mapped back through the
    ``_fields.csv`` sidecar; ``encoding`` overrides the ``.cpg`` (e.g. ``"cp936"``).
    """
    import geopandas as gpd

    p = Path(path)
    if p.suffix.lower() == ".csv":
        raise InputError("read_back reads GeoJSON, GeoPackage and Shapefile")
    g = gpd.read_file(p, layer=layer, engine="pyogrio", encoding=encoding)
    side = p.with_name(p.stem + "_fields.csv")
    if p.suffix.lower() == ".shp" and side.exists():
        ft = pd.read_csv(side, dtype=str, keep_default_na=False)
        g = g.rename(columns=dict(zip(ft["field"], ft["name"], strict=True)))
        for name in ft.loc[ft["type"] == "bool", "name"]:
            if name in g.columns and not g[name].isna().any():
                g[name] = g[name].astype(int).astype(bool)
    if crs is None:
        return g.to_crs(4326) if g.crs is not None else g
    ocrs = crs if isinstance(crs, OutputCRS) else resolve_output_crs(crs)
    geoms = ocrs.transform_geometries(np.asarray(g.geometry.values), inverse=True)
    attrs = pd.DataFrame(g.drop(columns=g.geometry.name))
    return gpd.GeoDataFrame(attrs, geometry=np.asarray(shapely.force_2d(geoms)), crs="EPSG:4326")


#: Service-area file formats: extension -> GDAL driver.
SERVICE_AREA_DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def write_service_areas(
    areas: ServiceAreas | gpd.GeoDataFrame,
    path: str | Path,
    *,
    overwrite: bool = False,
    crs: str | OutputCRS = "wgs84",
    meta: ExportMeta | None = None,
    gpkg_version: str = "1.2",
) -> Path:
    """Write service-area polygons as GeoJSON or GeoPackage in any output CRS.

    The format follows the suffix: ``.geojson``/``.json`` or ``.gpkg``. Polygons are repaired
    and checked in the output CRS (as in :func:`export_layers`).

    GeoJSON in WGS84 follows RFC 7946 (:func:`lifecircle._files.geojson_text`, 6 decimals, CCW
    exteriors, layer name ``service_areas``); other CRSs add a ``crs`` member. A ``.qml`` style
    is written next to a GeoJSON file; a GeoPackage carries it in ``layer_styles`` with the
    aliases and description. The write is atomic; an existing file is only replaced with
    ``overwrite=True``.

    Raises
    ------
    InputError
        Another file extension.
    OutputExistsError
        The file exists and ``overwrite`` is false.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SERVICE_AREA_DRIVERS:
        raise InputError(f"--out must end in .geojson or .gpkg, got {target.name!r}")
    if gpkg_version not in GPKG_VERSIONS:
        raise InputError(
            f"unknown GeoPackage version {gpkg_version!r}; use one of {', '.join(GPKG_VERSIONS)}"
        )
    gdf = areas.to_wgs84() if isinstance(areas, ServiceAreas) else areas
    ocrs = (
        crs
        if isinstance(crs, OutputCRS)
        else resolve_output_crs(crs, lon_range=lon_range({"service_areas": gdf}))
    )
    meta = meta or ExportMeta()
    qml_path = target.with_suffix(".qml")
    check_writable([target] + ([qml_path] if suffix != ".gpkg" else []), overwrite=overwrite)
    precision = ocrs.default_precision
    g = _prepare(gdf, ocrs, None if suffix == ".gpkg" else precision, "service_areas")
    ft = field_table(g, "service_areas", meta.tier_keys, meta.tier_labels)
    with atomic_path(target, overwrite=overwrite) as tmp:
        if suffix == ".gpkg":
            # GDAL wants the real extension: write beside the temporary name, then take its place
            staged = tmp.with_name(tmp.name + suffix)
            try:
                _write_gpkg_layer(g, staged, "service_areas", gpkg_version)
                _gpkg_metadata(staged, {"service_areas": (g, ft)}, ocrs, meta)
                os.replace(staged, tmp)
            finally:
                if staged.exists():
                    staged.unlink()
        else:
            tmp.write_text(_geojson(g, ocrs, precision, "service_areas"), encoding="utf-8")
    if suffix != ".gpkg":
        with atomic_path(qml_path, overwrite=True) as tmp:
            tmp.write_text(
                _qml_for("service_areas", g, ft, meta, ocrs, short=False, fmt="geojson"),
                encoding="utf-8",
            )
    logger.info("wrote %d polygon(s) to %s (%s)", len(g), target, ocrs.label)
    return target
