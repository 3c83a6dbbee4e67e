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

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely

from lifecircle._files import (
    DEFAULT_CSV_ENCODING,
    atomic_path,
    check_writable,
    csv_frame,
    geojson_text,
)
from lifecircle.errors import InputError
from lifecircle.export.crs import OutputCRS, lon_range, resolve_output_crs
from lifecircle.export.schema import field_table
from lifecircle.service_areas import ServiceAreas

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "GIS_FORMATS",
    "ExportResult",
    "export_layers",
    "export_paths",
    "layer_geojson",
    "read_back",
    "write_service_areas",
]

logger = logging.getLogger(__name__)

#: Output formats and their file extension.
GIS_FORMATS: dict[str, str] = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".shp", "csv": ".csv"}


def _prepare(gdf: gpd.GeoDataFrame, crs: OutputCRS, precision: int | None) -> gpd.GeoDataFrame:
    """Project to ``crs``, orient polygons CCW, round coordinates, infinities to null."""
    import geopandas as gpd

    g = gdf if gdf.crs is not None and gdf.crs.to_epsg() == 4326 else gdf.to_crs(4326)
    geoms = crs.transform_geometries(np.asarray(g.geometry.values))
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    if precision is not None:
        geoms = shapely.transform(geoms, lambda xy: np.round(xy, precision))
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


def _csv_frame(gdf: gpd.GeoDataFrame, crs: OutputCRS, precision: int) -> pd.DataFrame:
    geoms = np.asarray(gdf.geometry.values)
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    xname, yname = ("lon", "lat") if crs.geographic else ("x", "y")
    types = shapely.get_type_id(geoms)
    if len(geoms) and np.all(types == 0):
        attrs[xname] = np.round(shapely.get_x(geoms), precision)
        attrs[yname] = np.round(shapely.get_y(geoms), precision)
    else:
        attrs["wkt"] = shapely.to_wkt(geoms, rounding_precision=precision, trim=True)
    return attrs


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
    """

    paths: dict[str, list[Path]]
    crs: OutputCRS
    fmt: str
    features: dict[str, int]

    def summary(self) -> dict[str, Any]:
        """Plain data for printing or JSON."""
        return {
            "format": self.fmt,
            "crs": self.crs.name,
            "crs_label": self.crs.label,
            "crs_reason": self.crs.reason,
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
    Other formats: ``out/<layer>[_tag].<ext>`` (Shapefile: plus its sidecars and
    ``<layer>[_tag]_fields.csv``), where ``tag`` names the CRS for non-WGS84 output.
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
            out_paths[n] = [o / f"{stem}{e}" for e in _SHP_SIDECARS] + [o / f"{stem}_fields.csv"]
        else:
            out_paths[n] = [o / f"{stem}{ext}"]
    return out_paths


def export_layers(
    layers: Mapping[str, gpd.GeoDataFrame],
    out: str | Path,
    fmt: str = "geojson",
    crs: str | OutputCRS = "wgs84",
    *,
    precision: int | None = None,
    overwrite: bool = False,
    tier_keys: Sequence[str] = (),
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
        Tier keys of the standard, highest first (Shapefile names ``t1_…`` follow this order).

    Returns
    -------
    ExportResult

    Raises
    ------
    InputError
        Unknown format, empty request or a file name where a folder is needed.
    CRSError
        Unknown CRS.
    OutputExistsError
        A target exists and ``overwrite`` is False. Nothing is written on any error.
    """
    fmt = str(fmt).lower().lstrip(".")
    fmt = {"json": "geojson", "shapefile": "shp", "geopackage": "gpkg"}.get(fmt, fmt)
    if fmt not in GIS_FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(GIS_FORMATS)}")
    if not layers:
        raise InputError("no layers to export")
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
        n: _prepare(g, ocrs, precision if fmt in ("gpkg", "shp") else text_precision)
        for n, g in layers.items()
    }
    features = {n: len(g) for n, g in prepared.items()}
    out_dir = all_paths[0].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # everything goes to a temporary folder next to the targets, renamed into place at the end
    tmp_dir = Path(tempfile.mkdtemp(prefix=".lifecircle-export-", dir=out_dir))
    try:
        for n, g in prepared.items():
            files = paths[n]
            tmp_main = tmp_dir / files[0].name
            if fmt == "gpkg":
                g.to_file(tmp_main, layer=n, driver="GPKG", engine="pyogrio")
            elif fmt == "geojson":
                tmp_main.write_text(_geojson(g, ocrs, text_precision, n), encoding="utf-8")
            elif fmt == "csv":
                csv_frame(_csv_frame(g, ocrs, text_precision)).to_csv(
                    tmp_main, index=False, encoding=DEFAULT_CSV_ENCODING, lineterminator="\n"
                )
            else:
                ft = field_table(g, n, tier_keys)
                shp = g.rename(columns=dict(zip(ft["name"], ft["field"], strict=True)))
                shp.to_file(tmp_main, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
                ft.to_csv(
                    tmp_dir / files[-1].name,
                    index=False,
                    encoding=DEFAULT_CSV_ENCODING,
                    lineterminator="\n",
                )
                if not (tmp_dir / files[0].with_suffix(".cpg").name).exists():
                    (tmp_dir / files[0].with_suffix(".cpg").name).write_text(
                        "UTF-8", encoding="ascii"
                    )
        for p in all_paths:
            src_p = tmp_dir / p.name
            if src_p.exists():
                os.replace(src_p, p)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info("wrote %d layer(s) as %s to %s (%s)", len(prepared), fmt, out_dir, ocrs.label)
    return ExportResult(paths, ocrs, fmt, features)


def read_back(
    path: str | Path, *, layer: str | None = None, crs: str | OutputCRS | None = None
) -> gpd.GeoDataFrame:
    """Read an exported layer and convert it back to WGS84 (for checks and round trips).

    ``crs`` is the export's CRS; it is needed for GCJ-02/BD-09 files (whose declared CRS is a
    custom one) and for Shapefiles whose field names are mapped back through the sidecar.
    """
    import geopandas as gpd

    p = Path(path)
    if p.suffix.lower() == ".csv":
        raise InputError("read_back reads GeoJSON, GeoPackage and Shapefile")
    g = gpd.read_file(p, layer=layer, engine="pyogrio")
    side = p.with_name(p.stem + "_fields.csv")
    if p.suffix.lower() == ".shp" and side.exists():
        ft = pd.read_csv(side, dtype=str, keep_default_na=False)
        g = g.rename(columns=dict(zip(ft["field"], ft["name"], strict=True)))
    if crs is None:
        return g.to_crs(4326) if g.crs is not None else g
    ocrs = crs if isinstance(crs, OutputCRS) else resolve_output_crs(crs)
    geoms = ocrs.transform_geometries(np.asarray(g.geometry.values), inverse=True)
    attrs = pd.DataFrame(g.drop(columns=g.geometry.name))
    return gpd.GeoDataFrame(attrs, geometry=np.asarray(shapely.force_2d(geoms)), crs="EPSG:4326")


#: Service-area file formats: extension -> GDAL driver.
SERVICE_AREA_DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def write_service_areas(areas: ServiceAreas, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write service-area polygons (WGS84) as GeoJSON or GeoPackage.

    The format follows the suffix: ``.geojson``/``.json`` or ``.gpkg``.

    GeoJSON follows RFC 7946 (:func:`lifecircle._files.write_geojson`, 6 decimals, CCW
    exteriors, layer name ``service_areas``). The write is atomic; an existing file is only
    replaced with ``overwrite=True``.

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
    gdf = areas.to_wgs84()
    with atomic_path(target, overwrite=overwrite) as tmp:
        if suffix == ".gpkg":
            # GDAL wants the real extension: write beside the temporary name, then take its place
            staged = tmp.with_name(tmp.name + suffix)
            try:
                gdf.to_file(staged, driver="GPKG", engine="pyogrio", layer="service_areas")
                os.replace(staged, tmp)
            finally:
                if staged.exists():
                    staged.unlink()
        else:
            tmp.write_text(geojson_text(gdf, name="service_areas"), encoding="utf-8")
    logger.info("wrote %d polygon(s) to %s", len(gdf), target)
    return target
