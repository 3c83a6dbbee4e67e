"""Writing files: atomic writes, overwrite checks, JSON/CSV/text, and the one GeoJSON writer.

The lowest output layer: it knows files and plain data (dicts, tables, GeoDataFrames), never
results. Every writer is atomic: it writes to a temporary name in the target folder and renames
it at the end, so an error never leaves a partial file behind. Existing files are only replaced
with ``overwrite=True``.

GeoJSON follows RFC 7946: WGS84 longitude/latitude, counter-clockwise exterior rings (clockwise
holes), no ``crs`` member, coordinates rounded to ``precision`` decimals (6 decimals ≈ 0.1 m).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import shapely
import shapely.errors

from lifecircle._csv import write_csv_fast
from lifecircle.errors import InputError, OutputExistsError

if TYPE_CHECKING:
    import geopandas as gpd
    from shapely.geometry.base import BaseGeometry

__all__ = [
    "CSV_ENCODINGS",
    "DEFAULT_CSV_ENCODING",
    "DEFAULT_GEOJSON_PRECISION",
    "EMPTY_FEATURE_COLLECTION",
    "SHARE_DECIMALS",
    "atomic_path",
    "check_writable",
    "csv_frame",
    "geojson_dict",
    "geojson_text",
    "geometry_dict",
    "jsonable",
    "to_json_text",
    "user_cache_dir",
    "write_csv",
    "write_geojson",
    "write_json",
    "write_text",
]

DEFAULT_GEOJSON_PRECISION = 6
"""Decimals kept in GeoJSON coordinates: 6 decimals of a degree ≈ 0.11 m."""

#: Encodings a CSV may be written in: ``utf-8-sig`` (UTF-8 with a byte-order mark, the default:
#: Excel on Chinese Windows then opens 新城社区 correctly), ``utf-8`` (no BOM, for tools that
#: dislike it) and ``gb18030`` (the Chinese national encoding, for old software).
CSV_ENCODINGS: tuple[str, ...] = ("utf-8-sig", "utf-8", "gb18030")
DEFAULT_CSV_ENCODING = "utf-8-sig"

#: Decimals kept in share columns (``*share``) of CSVs: 4 decimals = 0.01 percentage point.
SHARE_DECIMALS = 4

EMPTY_FEATURE_COLLECTION = '{"type": "FeatureCollection", "features": []}'


def user_cache_dir() -> Path:
    """The user's cache folder for lifecircle: ``$XDG_CACHE_HOME/lifecircle`` (default
    ``~/.cache/lifecircle``; ``%LOCALAPPDATA%\\lifecircle`` on Windows)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
    return (Path(base) if base else Path.home() / ".cache") / "lifecircle"


# -- overwrite checks and atomic writes ------------------------------------------------------


def check_writable(paths: Iterable[str | Path], *, overwrite: bool) -> None:
    """Raise unless every path may be written.

    Parameters
    ----------
    paths : iterable of path
        Every file about to be written.
    overwrite : bool
        Existing files may be replaced.

    Raises
    ------
    OutputExistsError
        Naming every existing path, when ``overwrite`` is false.
    """
    if overwrite:
        return
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing:
        raise OutputExistsError(
            f"output already exists: {', '.join(existing)}; pass --overwrite (overwrite=True) to "
            "replace it, or choose another --out"
        )


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    Parameters
    ----------
    path : path
        The final file. Its folder is created if needed.
    overwrite : bool
        Replace an existing file; otherwise :class:`OutputExistsError` before anything is written.

    Yields
    ------
    Path
        A temporary file name in the same folder (so that the rename is atomic). If the block
        raises, the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    check_writable([target], overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- JSON --------------------------------------------------------------------------------------


def jsonable(obj: object) -> Any:
    """A copy of ``obj`` made of plain JSON types.

    Non-finite floats (NaN, ±inf) and ``pd.NA``/``pd.NaT``/``None`` become ``None``; numpy
    scalars become Python scalars; arrays and tuples become lists; mapping keys become strings;
    paths become strings; dataclass instances become dicts; dates become ISO 8601 strings.

    Raises
    ------
    TypeError
        For any other type.
    """
    if obj is None or isinstance(obj, str | bool):
        return obj
    if isinstance(obj, int | np.integer) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, _dt.date | _dt.time):  # pd.Timestamp is a datetime
        return obj.isoformat()
    if isinstance(obj, np.datetime64):
        return None if np.isnat(obj) else str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json_text(data: object, *, indent: int | None = 2) -> str:
    """JSON text of ``data`` (see :func:`jsonable`): UTF-8, Chinese kept, indented by default."""
    seps = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        jsonable(data), ensure_ascii=False, indent=indent, allow_nan=False, separators=seps
    )


def write_json(data: object, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``data`` as indented JSON (see :func:`to_json_text`) atomically; return the path."""
    text = to_json_text(data)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


# -- CSV and text ------------------------------------------------------------------------------


def _is_bool_column(col: pd.Series) -> bool:
    if col.dtype == bool or str(col.dtype) == "boolean":
        return True
    if col.dtype != object:
        return False
    values = col.dropna()
    return len(values) > 0 and all(isinstance(v, bool | np.bool_) for v in values)


def csv_frame(frame: pd.DataFrame, *, infinite: bool = True) -> pd.DataFrame:
    """The table as a CSV shows it: one spelling of booleans, rounded shares, no infinities.

    Boolean columns (bool dtype, or object columns holding only booleans and blanks) become
    ``true``/``false`` (a blank stays blank); columns whose name ends in ``share`` are rounded to
    :data:`SHARE_DECIMALS` decimals; with ``infinite=True`` infinite values become empty cells.
    The input is not changed, and its other columns are not copied.

    Examples
    --------
    >>> import pandas as pd
    >>> csv_frame(pd.DataFrame({"covered": [True, False], "share": [1 / 3, 0.5]}))
      covered   share
    0    true  0.3333
    1   false  0.5000
    """
    out = frame.copy(deep=False)
    for name in frame.columns:
        col = frame[name]
        if col.dtype == bool:
            # codes of a two-word category: a byte per cell, not a string pointer (residents.csv
            # has a million rows and a boolean column per tier)
            out[name] = pd.Categorical.from_codes(
                col.to_numpy().astype(np.int8), categories=pd.Index(["false", "true"])
            )
        elif _is_bool_column(col):
            # a dict lookup (vectorised in pandas), not a Python call per cell
            out[name] = col.map({True: "true", False: "false"}).astype(object)
        elif str(name).endswith("share") and pd.api.types.is_float_dtype(col):
            out[name] = col.round(SHARE_DECIMALS)
    return out.replace([np.inf, -np.inf], np.nan) if infinite else out


def check_csv_encoding(encoding: str) -> str:
    """Return ``encoding`` if it is one of :data:`CSV_ENCODINGS`, else raise :class:`InputError`."""
    if encoding not in CSV_ENCODINGS:
        raise InputError(
            f"CSV encoding {encoding!r} is not supported; use one of {', '.join(CSV_ENCODINGS)}"
        )
    return encoding


def write_csv(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    overwrite: bool = False,
    float_format: str | None = None,
    encoding: str = DEFAULT_CSV_ENCODING,
) -> Path:
    """Write a table as CSV atomically; return the path.

    The table is written as :func:`csv_frame` shows it (``true``/``false`` booleans, shares
    rounded to 4 decimals, infinite values as empty cells), in ``encoding`` (one of
    :data:`CSV_ENCODINGS`; default UTF-8 with a byte-order mark, which Excel needs to read
    Chinese). UTF-8 tables go through the fast writer (:mod:`lifecircle._csv`, the same bytes
    as pandas, without copying the frame); GB 18030 and ``float_format`` through pandas.
    """
    check_csv_encoding(encoding)
    out = csv_frame(frame, infinite=False)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fast = (
            float_format is None
            and encoding in ("utf-8", "utf-8-sig")
            and write_csv_fast(out, tmp, inf_as_empty=True, bom=encoding == "utf-8-sig")
        )
        if not fast:
            out.replace([np.inf, -np.inf], np.nan).to_csv(
                tmp, index=False, encoding=encoding, float_format=float_format, lineterminator="\n"
            )
    return Path(path)


#: Table formats of the large per-point outputs (``--format``).
TABLE_FORMATS = ("csv", "parquet")


def write_point_table(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    overwrite: bool = False,
    encoding: str = DEFAULT_CSV_ENCODING,
) -> Path:
    """Write a table of points as CSV, or as GeoParquet when ``path`` ends in ``.parquet``.

    GeoParquet keeps the column types (no text round trip), compresses (zstd) and opens in
    QGIS 3.26+, ArcGIS Pro 3.2+, geopandas and DuckDB: the format for tables of millions of
    rows. Its geometry is the point (``lon``, ``lat``) in WGS84 (EPSG:4326); rows without a
    position get an empty geometry. Infinite values (nothing reachable) are stored as nulls,
    as the CSV leaves those cells empty.
    """
    if Path(path).suffix.lower() != ".parquet":
        return write_csv(frame, path, overwrite=overwrite, encoding=encoding)
    import geopandas as gpd

    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c].dtype)]
    frame = frame.assign(**{str(c): frame[c].replace([np.inf, -np.inf], np.nan) for c in floats})
    lon = frame["lon"].to_numpy(dtype=float)
    lat = frame["lat"].to_numpy(dtype=float)
    gdf = gpd.GeoDataFrame(
        frame.reset_index(drop=True),
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    with atomic_path(path, overwrite=overwrite) as tmp:
        gdf.to_parquet(tmp, index=False, compression="zstd", geometry_encoding="geoarrow")
    return Path(path)


def write_text(text: str, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write UTF-8 text atomically; return the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# -- GeoJSON -----------------------------------------------------------------------------------


def _round_coords(c: Any, precision: int) -> Any:
    if isinstance(c, list | tuple) and c and isinstance(c[0], int | float):
        return [round(float(v), precision) for v in c]
    return [_round_coords(x, precision) for x in c]


def geometry_dict(
    geom: BaseGeometry | None,
    *,
    precision: int | None = DEFAULT_GEOJSON_PRECISION,
    orient: bool = True,
) -> dict[str, Any] | None:
    """One geometry as a GeoJSON geometry object (``None`` for a missing or empty geometry).

    Parameters
    ----------
    geom : shapely geometry or None
        Coordinates are written as they are (no reprojection).
    precision : int or None, default 6
        Decimals kept in each coordinate; ``None`` keeps them all. The geometry is snapped to
        that grid with :func:`shapely.set_precision` (which keeps it valid: parts thinner than
        the grid collapse and are dropped; ``None`` is returned when nothing is left). An invalid
        input that GEOS cannot snap has each vertex rounded instead.
    orient : bool, default True
        Exterior rings counter-clockwise, holes clockwise (RFC 7946 §3.1.6).
    """
    if geom is None or shapely.is_empty(geom):
        return None
    if precision is not None:
        # snap to the grid first, keeping the geometry valid: a sliver thinner than the grid
        # collapses and is dropped rather than written as a zero-area (unoriented) ring
        try:
            geom = shapely.set_precision(geom, 10.0**-precision)
        except shapely.errors.GEOSException:  # e.g. an invalid input polygon: round each vertex
            geom = shapely.set_precision(geom, 10.0**-precision, mode="pointwise")
        if shapely.is_empty(geom):
            return None
    if orient:
        geom = shapely.orient_polygons(geom, exterior_cw=False)
    gj: dict[str, Any] = json.loads(shapely.to_geojson(geom))
    if precision is not None:
        if gj["type"] == "GeometryCollection":
            for sub in gj["geometries"]:
                sub["coordinates"] = _round_coords(sub["coordinates"], precision)
        else:
            gj["coordinates"] = _round_coords(gj["coordinates"], precision)
    return gj


def _features_of(
    data: gpd.GeoDataFrame | Iterable[tuple[Mapping[str, object], BaseGeometry | None]],
    crs_given: bool,
) -> Iterator[tuple[Mapping[str, object], BaseGeometry | None]]:
    if isinstance(data, pd.DataFrame):
        gdf = cast("gpd.GeoDataFrame", data)
        if not crs_given and gdf.crs is not None and gdf.crs.to_epsg() != 4326:
            gdf = gdf.to_crs(4326)
        attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        records = attrs.to_dict("records") if len(attrs.columns) else [{} for _ in range(len(gdf))]
        yield from zip(records, np.asarray(gdf.geometry.values), strict=True)
    else:
        yield from data


def geojson_dict(
    data: gpd.GeoDataFrame | Iterable[tuple[Mapping[str, object], BaseGeometry | None]],
    *,
    precision: int | None = DEFAULT_GEOJSON_PRECISION,
    name: str | None = None,
    members: Mapping[str, object] | None = None,
    crs_member: Mapping[str, object] | None = None,
    drop_empty: bool = False,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (RFC 7946) as a dict of plain JSON types.

    Parameters
    ----------
    data : GeoDataFrame or iterable of (properties, geometry)
        A GeoDataFrame is reprojected to WGS84 (EPSG:4326) when it has another CRS (no CRS is
        taken as WGS84); its non-geometry columns become the properties, in column order.
        Pairs are written as they are, in WGS84 longitude/latitude.
    precision : int or None, default 6
        Decimals kept in each coordinate; ``None`` keeps them all.
    name : str, optional
        A ``name`` member (the layer name GDAL reads back).
    members : mapping, optional
        Further foreign members of the collection (e.g. ``description``).
    crs_member : mapping, optional
        A 2008-GeoJSON ``crs`` member for output that is deliberately NOT WGS84: the
        coordinates are then written as given, without reprojection. Not RFC 7946.
    drop_empty : bool, default False
        Leave out features whose geometry is missing or empty (else ``"geometry": null``).

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", ["name",] [...members,] ["crs",] "features": [...]}``.
        Non-finite numbers in the properties are ``None``.
    """
    feats = []
    for props, geom in _features_of(data, crs_member is not None):
        g = geometry_dict(geom, precision=precision)
        if g is None and drop_empty:
            continue
        feats.append({"type": "Feature", "properties": jsonable(props), "geometry": g})
    doc: dict[str, Any] = {"type": "FeatureCollection"}
    if name is not None:
        doc["name"] = name
    doc.update(jsonable(dict(members or {})))
    if crs_member is not None:
        doc["crs"] = jsonable(crs_member)
    doc["features"] = feats
    return doc


def geojson_text(
    data: gpd.GeoDataFrame | Iterable[tuple[Mapping[str, object], BaseGeometry | None]],
    *,
    precision: int | None = DEFAULT_GEOJSON_PRECISION,
    name: str | None = None,
    members: Mapping[str, object] | None = None,
    crs_member: Mapping[str, object] | None = None,
    drop_empty: bool = False,
    compact: bool = False,
) -> str:
    """GeoJSON text of :func:`geojson_dict` (UTF-8, Chinese kept, no NaN/Infinity).

    With ``compact=False`` (the default) each feature is on its own line, a format both
    diff-friendly and small; ``compact=True`` gives one line with no spaces. The text ends with a
    newline.
    """
    doc = geojson_dict(
        data,
        precision=precision,
        name=name,
        members=members,
        crs_member=crs_member,
        drop_empty=drop_empty,
    )

    def dumps(o: object) -> str:
        return json.dumps(o, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    if compact:
        return dumps(doc) + "\n"
    feats = doc.pop("features")
    head = dumps(doc)[:-1] + ',"features":['  # the members, without the closing brace
    if not feats:
        return head + "]}\n"
    return head + "\n" + ",\n".join(dumps(f) for f in feats) + "\n]}\n"


def write_geojson(
    data: gpd.GeoDataFrame | Iterable[tuple[Mapping[str, object], BaseGeometry | None]],
    path: str | Path,
    *,
    precision: int | None = DEFAULT_GEOJSON_PRECISION,
    overwrite: bool = False,
    name: str | None = None,
    members: Mapping[str, object] | None = None,
    crs_member: Mapping[str, object] | None = None,
    drop_empty: bool = False,
    compact: bool = False,
) -> Path:
    """Write :func:`geojson_text` atomically; return the path.

    See :func:`geojson_dict` for the parameters.
    """
    text = geojson_text(
        data,
        precision=precision,
        name=name,
        members=members,
        crs_member=crs_member,
        drop_empty=drop_empty,
        compact=compact,
    )
    return write_text(text, path, overwrite=overwrite)
