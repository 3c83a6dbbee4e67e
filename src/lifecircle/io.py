"""Reading inputs: facilities, residents, candidate sites, admin units and scenario files.

Every point table goes through the same steps:

1. read the file (CSV, XLSX, GeoJSON, GeoPackage; leading ``#`` comment lines of a CSV are
   skipped, which is how the synthetic demo files label themselves);
2. find the columns (case-insensitive, with common English and Chinese aliases);
3. validate every row and collect *all* problems: missing or non-numeric coordinates, out of
   range, duplicate id, unknown tier, negative or missing population;
4. convert the coordinates from the file's declared system (``wgs84``, ``cgcs2000``, ``gcj02``,
   ``bd09`` or ``EPSG:n``) to WGS84.

Bad rows are not dropped silently: they go to the :class:`PointTable`'s ``rejects`` table with
file, row, id, reason and detail, and ``n_input == len(rows) + len(rejects)`` always holds. An
unreadable file or a missing required column is one :class:`~lifecircle.errors.InputError`.

Row numbers are what a user sees: for CSV/XLSX the spreadsheet line (the header is line 1, so the
first data row is 2, counting comment lines above the header too), for GeoJSON/GeoPackage the
1-based feature number.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import NDArray

from lifecircle._schema import SCENARIO, validate
from lifecircle._tables import read_raw_table, read_vector
from lifecircle.config import ServiceStandard, load_standard
from lifecircle.coords import from_wgs84, normalize_crs_name, to_wgs84
from lifecircle.errors import CRSError, InputError
from lifecircle.tier_rules import TierRules

logger = logging.getLogger(__name__)

Kind = Literal["facilities", "residents", "candidates"]

#: Columns of a rejects table.
#: ``lon``/``lat``: WGS84 degrees of the row when its coordinates parse and convert (else empty),
#: so that rejected rows can be put on a map (the ``rejects`` layer of the GIS export).
REJECT_COLUMNS: Final = ["file", "row", "id", "reason", "detail", "lon", "lat"]

_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "id": (
        "id",
        "fid",
        "编号",
        "代码",
        "site_id",
        "facility_id",
        "resident_id",
        "candidate_id",
        "code",
    ),
    "name": ("name", "名称", "站点名称", "site_name", "小区名称", "社区名称", "村名"),
    "tier": ("tier", "层级", "级别", "类型", "type", "category", "level"),
    "lon": ("lon", "lng", "longitude", "long", "x", "经度"),
    "lat": ("lat", "latitude", "y", "纬度"),
    "population": (
        "population",
        "pop",
        "人口",
        "人数",
        "people",
        "residents",
        "常住人口",
        "户籍人口",
        "总人口",
        "人口数",
    ),
    "elderly": ("elderly", "老年人口", "老人", "pop_65plus", "aged", "60岁以上", "65岁以上"),
    "children": ("children", "儿童", "少儿人口", "pop_0_14", "0-14岁"),
    "capacity": ("capacity", "容量", "服务能力"),
    "location": ("location", "经纬度", "坐标", "lnglat"),
    "poi_type": ("type", "类型", "poi_type", "category"),
    "typecode": ("typecode", "type_code", "类型编码", "分类编码"),
}

#: The fields ``columns={...}`` / ``--columns`` can name.
COLUMN_FIELDS: Final = tuple(_ALIASES)

#: Metres within which two facilities of the same name are one POI listed twice.
DUPLICATE_LOCATION_M: Final = 10.0

_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "facilities": ("id", "tier"),
    "residents": ("id", "population"),
    "candidates": ("id",),
}


@dataclass(frozen=True)
class PointTable:
    """Validated points of one input file.

    Attributes
    ----------
    kind : {"facilities", "residents", "candidates"}
    path : str
        The file the rows came from.
    crs : str
        The coordinate system the file declared (its coordinates were converted from it).
    frame : pandas.DataFrame
        The usable rows: ``id`` (str), ``lon``/``lat`` (WGS84 degrees), ``row`` (as the user sees
        it), and per kind ``name``, ``tier`` (the tier key), ``population``, ``elderly``,
        ``children``, ``capacity``; other input columns are kept after those.
    rejects : pandas.DataFrame
        Columns ``file, row, id, reason, detail``.
    n_input : int
        Rows in the file; always ``len(frame) + len(rejects)``.
    rejected_values : pandas.DataFrame, optional
        What is known of each rejected row, aligned with ``rejects``: ``x``, ``y`` (coordinates as
        declared, NaN if unreadable), ``tier`` (key, "" if unknown) and ``population`` (NaN if
        unknown). Used to judge how much of an input was lost and why (:mod:`lifecircle.diagnose`).
    """

    kind: str
    path: str
    crs: str
    frame: pd.DataFrame
    rejects: pd.DataFrame
    n_input: int
    rejected_values: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if self.n_input != len(self.frame) + len(self.rejects):
            raise AssertionError(
                f"{self.path}: {self.n_input} rows in, {len(self.frame)} used + "
                f"{len(self.rejects)} rejected"
            )

    def with_rejects(
        self,
        mask: np.ndarray,
        reason: str,
        details: list[str] | str | Callable[[np.ndarray], list[str]],
    ) -> PointTable:
        """A copy in which the rows under ``mask`` move to the rejects with ``reason``.

        ``details``: one text for all, one per row, or a function of the rejected rows' indices
        returning their texts (formatted for rejected rows only).
        """
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return self
        bad = self.frame.loc[mask]
        if callable(details):
            det: list[str] | str = list(details(np.flatnonzero(mask)))
        else:
            det = (
                details
                if isinstance(details, str)
                else [d for d, m in zip(details, mask, strict=True) if m]
            )
        new = pd.DataFrame(
            {
                "file": self.path,
                "row": bad["row"].to_numpy(),
                "id": bad["id"].to_numpy(),
                "reason": reason,
                "detail": det,
                "lon": bad["lon"].to_numpy(float),
                "lat": bad["lat"].to_numpy(float),
            }
        )
        return PointTable(
            self.kind,
            self.path,
            self.crs,
            self.frame.loc[~mask].reset_index(drop=True),
            pd.concat([self.rejects, new], ignore_index=True),
            self.n_input,
            _concat_values(self, bad),
        )


_VALUE_COLUMNS: Final = ("x", "y", "tier", "population")


def _values_frame(
    x: np.ndarray, y: np.ndarray, tier: np.ndarray | None, population: np.ndarray | None
) -> pd.DataFrame:
    """The ``rejected_values`` table (see :class:`PointTable`)."""
    n = len(x)
    return pd.DataFrame(
        {
            "x": np.asarray(x, dtype=float),
            "y": np.asarray(y, dtype=float),
            "tier": np.full(n, "", dtype=object) if tier is None else np.asarray(tier, object),
            "population": np.full(n, np.nan)
            if population is None
            else np.asarray(population, dtype=float),
        }
    )


def _concat_values(table: PointTable, bad: pd.DataFrame) -> pd.DataFrame:
    """``table``'s rejected values plus those of the usable rows ``bad`` being rejected now."""
    old = table.rejected_values
    if old is None:
        old = _values_frame(*(np.full(len(table.rejects), np.nan),) * 2, None, None)
    lon, lat = bad["lon"].to_numpy(float), bad["lat"].to_numpy(float)
    try:  # back to the coordinates as declared (for the diagnosis of wrong declarations)
        lon, lat = from_wgs84(lon, lat, table.crs)
    except CRSError:  # e.g. points placed from a raster: WGS84 is all there is
        pass
    new = _values_frame(
        lon,
        lat,
        bad["tier"].to_numpy(object) if "tier" in bad else None,
        bad["population"].to_numpy(float) if "population" in bad else None,
    )
    return pd.concat([old, new], ignore_index=True)


def empty_rejects() -> pd.DataFrame:
    """An empty rejects table with the standard columns."""
    return pd.DataFrame(
        {
            c: pd.Series(
                dtype={"row": "int64", "lon": "float64", "lat": "float64"}.get(c, "object")
            )
            for c in REJECT_COLUMNS
        }
    )


# -- reading raw tables -------------------------------------------------------------------


def read_table(
    path: str | Path,
    *,
    layer: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, Any]:
    """Read a table file; return (data frame of strings/values, user row numbers, geometry or None).

    CSV is read with every column as text (so ``"007"`` ids survive and bad numbers can be
    reported rather than guessed), its encoding detected (UTF-8, UTF-8 with BOM, GB18030) unless
    ``encoding`` is given; XLSX through openpyxl (``sheet`` a name or a number from 1, title rows
    above the header skipped); GeoJSON/GeoPackage/Shapefile through pyogrio (a Shapefile without
    ``.cpg`` whose text is not UTF-8 is read as GB18030). See :mod:`lifecircle._tables`.
    """
    raw = read_raw_table(path, layer=layer, sheet=sheet, encoding=encoding)
    return raw.frame, raw.rows, raw.geometry


def _find_columns(
    df: pd.DataFrame, path: str, kind: str, overrides: dict[str, str] | None
) -> dict[str, str]:
    lower = {str(c).strip().lower(): c for c in df.columns}
    found: dict[str, str] = {}
    unknown = sorted(set(overrides or {}) - set(_ALIASES))
    if unknown:
        raise InputError(
            f"{path}: --columns names unknown field(s) {', '.join(unknown)}; the fields are "
            f"{', '.join(_ALIASES)}"
        )
    for canon, aliases in _ALIASES.items():
        if overrides and canon in overrides:
            col = overrides[canon]
            if col not in df.columns:
                col = lower.get(str(col).strip().lower(), col)
            if col not in df.columns:
                raise InputError(
                    f"{path}: column {col!r} (given for {canon} with --columns or a scenario "
                    f"'columns' table) not found; columns are {', '.join(map(str, df.columns))}"
                )
            found[canon] = col
            continue
        for a in aliases:
            if a.lower() in lower:
                found[canon] = lower[a.lower()]
                break
    return found


#: Default largest population of one resident point (a building or compound); more is a
#: data error (a county's total in one row, a misplaced decimal point) rejected as
#: ``implausible_population``.
DEFAULT_MAX_POPULATION: Final = 50_000

#: ``1,900`` or ``12,345,678.5``: commas between groups of three digits (unambiguous).
_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"


def _has_text(series: pd.Series) -> bool:
    """Whether a column holds text cells (the ``.str`` accessor works on it)."""
    if series.dtype != object:
        return pd.api.types.is_string_dtype(series.dtype)
    return pd.api.types.infer_dtype(series, skipna=True) in (
        "string",
        "mixed",
        "mixed-integer",
    )


def _nfkc(series: pd.Series) -> pd.Series:
    """Text cells NFKC-normalised (full-width digits ``１９`` -> ``19``, ``，`` -> ``,``)."""
    if not _has_text(series):
        return series
    norm = series.str.normalize("NFKC").str.strip()  # NaN for cells that are not text
    return series.where(norm.isna(), norm)


def _numeric_count(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_numeric`, also accepting thousands separators (``1,900``) in counts."""
    if not _has_text(series):
        return _numeric(series)
    vals = _quick_numbers(series)
    blank = np.zeros(len(series), dtype=bool)
    todo = np.flatnonzero(np.isnan(vals))
    if len(todo):
        s = _nfkc(series.iloc[todo])
        grouped = s.str.match(_THOUSANDS).fillna(False).astype(bool)
        vals[todo], blank[todo] = _careful_numbers(
            s.where(~grouped, s.str.replace(",", "", regex=False))
        )
    return vals, blank


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as float (full-width digits accepted) and a mask of cells that were blank.

    Plain ASCII numbers, nearly every cell of a real table, are parsed in one vectorised pass;
    only the cells that pass fails on (blank, full-width, padded, text) take the careful path.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        vals = series.to_numpy(dtype=float, na_value=np.nan)  # parsed as numbers already
        return vals, np.isnan(vals)
    vals = _quick_numbers(series)
    blank = np.zeros(len(series), dtype=bool)
    todo = np.flatnonzero(np.isnan(vals))
    if len(todo):
        vals[todo], blank[todo] = _careful_numbers(series.iloc[todo])
    return vals, blank


def _quick_numbers(series: pd.Series) -> np.ndarray:
    """Cells that are plain numbers as float; NaN for every other cell (text, blank, None)."""
    whole = _arrow_numbers(series)
    if whole is not None:
        return whole
    cells = series.to_numpy(dtype="object")
    return np.array(pd.to_numeric(cells, errors="coerce"), dtype=float)


def _arrow_numbers(series: pd.Series) -> np.ndarray | None:
    """An Arrow-backed text column parsed at C speed by Arrow's cast, or None when the column is
    not Arrow-backed or Arrow refuses it (some cell is not a plain number: padded, blank,
    full-width); :func:`_quick_numbers` then parses it cell by cell."""
    if getattr(series.dtype, "storage", None) != "pyarrow":
        return None
    try:
        parsed = pc.cast(pa.array(series.array), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return np.array(parsed.to_numpy(zero_copy_only=False), dtype=float)  # a writable copy


def _careful_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values of cells that are not plain numbers: NFKC-normalised, stripped; blank mask."""
    s = _nfkc(series).astype(object)
    blank = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy()
    vals = pd.to_numeric(s.where(~blank, None), errors="coerce").to_numpy(dtype=float)
    return vals, blank


def _crs_label(crs: Any, where: str) -> str:
    """lifecircle's name for a pyproj CRS: ``wgs84``, ``cgcs2000`` or ``EPSG:n``."""
    epsg = crs.to_epsg()
    if epsg is None:
        raise CRSError(
            f"{where}: its CRS ({crs.name}) has no EPSG code; reproject it first "
            "(e.g. gdf.to_crs(4326))"
        )
    return "wgs84" if epsg == 4326 else "cgcs2000" if epsg == 4490 else f"EPSG:{epsg}"


def frame_table(
    frame: pd.DataFrame, kind: str, crs: str | None
) -> tuple[pd.DataFrame, NDArray[np.int64], Any, str]:
    """An in-memory input as (table, user row numbers, geometry or None, CRS name).

    A GeoDataFrame's geometry and ``.crs`` are used (projected CRSs too); ``crs="gcj02"`` or
    ``"bd09"`` declares the Chinese offsets that no EPSG code carries (the frame's own CRS must
    then be geographic or unset). A plain DataFrame has ``lon``/``lat`` columns and needs
    ``crs``. Rows are numbered from 1 in frame order.

    Raises
    ------
    CRSError
        If the coordinate system is neither declared nor carried by the frame, or they disagree.
    """
    import geopandas as gpd

    where = (
        f"<{kind} GeoDataFrame>" if isinstance(frame, gpd.GeoDataFrame) else f"<{kind} DataFrame>"
    )
    hint = (
        f"pass {kind}_crs='wgs84', 'cgcs2000', 'gcj02', 'bd09' or 'EPSG:n'"
        if kind != "candidates"
        else "pass candidates_crs=..."
    )
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        geom = frame.geometry
        df = pd.DataFrame(frame.drop(columns=geom.name)).reset_index(drop=True)
        own = _crs_label(frame.crs, where) if frame.crs is not None else None
        if crs is None:
            if own is None:
                raise CRSError(
                    f"{where}: the frame has no CRS and none was declared; set it "
                    f"(gdf.set_crs(4326)) or {hint}"
                )
            return df, rows, geom, own
        declared = normalize_crs_name(crs)
        if declared in ("gcj02", "bd09"):
            if own not in (None, "wgs84", "cgcs2000"):
                raise CRSError(
                    f"{where}: declared {declared} but the frame's CRS is {own}; "
                    f"{declared} coordinates are lon/lat degrees"
                )
            return df, rows, geom, declared
        if own is not None and own != declared:
            raise CRSError(
                f"{where}: declared {declared} but the frame's CRS is {own}; drop the "
                "declaration or fix the frame's CRS (gdf.set_crs(..., allow_override=True))"
            )
        return df, rows, geom, declared
    if crs is None:
        raise CRSError(f"{where}: a DataFrame carries no CRS; {hint} for its lon/lat columns")
    return frame.reset_index(drop=True), rows, None, normalize_crs_name(crs)


#: ``flag(mask, code, text)``: record a problem on the rows under ``mask`` that have none yet.
_Flag = Callable[[np.ndarray, str, Any], None]


def _open_points(
    path: str | Path | pd.DataFrame,
    kind: Kind,
    crs: str | None,
    layer: str | None,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> tuple[pd.DataFrame, NDArray[np.int64], Any, str, str]:
    """The raw input as (table, user row numbers, geometry or None, CRS name, source label)."""
    if isinstance(path, pd.DataFrame):
        df, rows, geom, crs_name = frame_table(path, kind, crs)
        src = f"<{kind}>"
    else:
        src = str(path)
        try:
            crs_name = normalize_crs_name(crs or "wgs84")
        except CRSError as exc:
            raise CRSError(f"{src}: {exc}") from None
        df, rows, geom = read_table(Path(path), layer=layer, sheet=sheet, encoding=encoding)
    return df, rows, geom, crs_name, src


def _point_columns(
    df: pd.DataFrame,
    src: str,
    kind: Kind,
    columns: dict[str, str] | None,
    geom: Any,
    in_memory: bool,
    standard: ServiceStandard | None,
    tier_rules: TierRules | None = None,
) -> tuple[dict[str, str], bool]:
    """The columns found and whether lon/lat columns exist; raises if a required one is missing."""
    cols = _find_columns(df, src, kind, columns)
    if geom is not None and in_memory:
        cols.pop("lon", None)  # a GeoDataFrame's geometry wins over lon/lat-like columns
        cols.pop("lat", None)
        cols.pop("location", None)
    required = [c for c in _REQUIRED[kind] if not (c == "tier" and tier_rules)]
    missing = [c for c in required if c not in cols]
    if kind == "facilities" and standard is None:
        raise InputError("reading facilities needs the service standard to resolve tiers")
    has_xy = ("lon" in cols and "lat" in cols) or ("location" in cols and geom is None)
    if not has_xy and geom is None:
        missing += [c for c in ("lon", "lat") if c not in cols]
    if missing:
        example = {"id": "编号", "tier": "类别", "population": "常住人口", "lon": "经度"}
        hint = (
            f"columns={{'{missing[0]}': ...}}"
            if in_memory
            else f"--columns {kind}:{missing[0]}={example.get(missing[0], 'COLUMN')} or "
            f'columns = {{{missing[0]} = "..."}} in the scenario\'s [{kind}] section'
        )
        if kind == "facilities" and "tier" in missing:
            hint += "; for a POI export, map types and names to tiers with --tier-rules FILE"
        raise InputError(
            f"{src}: missing required column(s) {', '.join(missing)}; found "
            f"{', '.join(map(str, df.columns))}. Rename the columns or name them: {hint}"
        )
    return cols, has_xy


def _point_coordinates(
    df: pd.DataFrame,
    cols: dict[str, str],
    has_xy: bool,
    geom: Any,
    crs_name: str,
    flag: _Flag,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Raw lon/lat (from the columns or the geometry), flagging missing ones, and the CRS name."""
    if has_xy:
        if "lon" in cols and "lat" in cols:
            lon_col, lat_col = df[cols["lon"]], df[cols["lat"]]
        else:  # Amap/Baidu exports: one "lng,lat" column
            loc = df[cols["location"]].astype(object).where(~df[cols["location"]].isna(), "")
            parts = loc.astype(str).str.strip().str.split(r"\s*[,，]\s*", n=1, regex=True)
            lon_col = parts.str[0].fillna("")
            lat_col = parts.str[1].fillna("")
        lon, lon_blank = _numeric(lon_col)
        lat, lat_blank = _numeric(lat_col)
        raw_lon, raw_lat = lon_col, lat_col
        flag(
            lon_blank | lat_blank,
            "missing_coordinates",
            "lon or lat is empty; geocode the address or remove the row",
        )
        flag(
            ~lon_blank & np.isnan(lon),
            "non_numeric_coordinates",
            lambda i: [f"lon {v!r} is not a number" for v in raw_lon.iloc[i].astype(str)],
        )
        flag(
            ~lat_blank & np.isnan(lat),
            "non_numeric_coordinates",
            lambda i: [f"lat {v!r} is not a number" for v in raw_lat.iloc[i].astype(str)],
        )
    else:
        import shapely

        g = np.asarray(geom.values if hasattr(geom, "values") else geom)
        empty = shapely.is_missing(g) | shapely.is_empty(g)
        pts = shapely.point_on_surface(np.where(empty, None, g))  # type: ignore[call-overload]
        lon = np.where(empty, np.nan, shapely.get_x(pts))
        lat = np.where(empty, np.nan, shapely.get_y(pts))
        flag(empty, "missing_coordinates", "the feature has no geometry")
        if geom is not None and getattr(geom, "crs", None) is not None:
            epsg = geom.crs.to_epsg()
            file_crs = "wgs84" if epsg == 4326 else ("cgcs2000" if epsg == 4490 else f"EPSG:{epsg}")
            if crs_name in ("wgs84", "cgcs2000") and file_crs not in ("wgs84", "cgcs2000"):
                crs_name = file_crs  # trust a projected CRS stored in the file
    return lon, lat, crs_name


def _flag_geometry_types(geom: Any, kind: str, flag: _Flag) -> None:
    """Flag geometries that are not one place: a MultiPoint whose members differ, any line, and
    (for facilities and candidates, which are sites) any polygon. Residents may be polygons
    (buildings, compounds: a point inside each is used)."""
    import shapely

    g = np.asarray(geom.values if hasattr(geom, "values") else geom, dtype=object)
    gtype = shapely.get_type_id(g)  # -1 missing, 0 point, 1 line, 2 ring, 3 polygon, 4 multipoint…
    multi = gtype == 4
    spread = np.zeros(len(g), dtype=bool)
    if multi.any():
        parts, index = shapely.get_parts(g[multi], return_index=True)
        x, y = shapely.get_x(parts), shapely.get_y(parts)
        span = pd.DataFrame({"i": index, "x": x, "y": y}).groupby("i").agg(["min", "max"])
        far = (span[("x", "max")] - span[("x", "min")] > 0) | (
            span[("y", "max")] - span[("y", "min")] > 0
        )
        spread[np.flatnonzero(multi)[span.index.to_numpy()]] = far.to_numpy()
    flag(
        spread,
        "multipoint_geometry",
        "a MultiPoint with members at different places; split it into one row per point",
    )
    lines = np.isin(gtype, (1, 2, 5))
    areas = np.isin(gtype, (3, 6)) if kind != "residents" else np.zeros(len(g), dtype=bool)
    what = "a point" if kind != "residents" else "a point or a polygon"
    flag(
        lines | areas | (gtype == 7),
        "non_point_geometry",
        f"{kind} need {what} per row, got a line, polygon or collection; use its location "
        "as a point",
    )


def _flag_out_of_range(lon: np.ndarray, lat: np.ndarray, flag: _Flag) -> None:
    """Flag geographic coordinates outside lon -180..180, lat -90..90."""
    bad_range = ~np.isnan(lon) & ~np.isnan(lat) & ((np.abs(lon) > 180) | (np.abs(lat) > 90))
    flag(
        bad_range,
        "coordinates_out_of_range",
        lambda i: [
            f"lon={a}, lat={b} are not degrees in range (lon -180..180, lat -90..90); "
            "are lon and lat swapped, or is the file projected (declare its EPSG code)?"
            for a, b in zip(lon[i], lat[i], strict=True)
        ],
    )


def _id_strings(ids: pd.Series) -> pd.Series:
    """The id column as stripped text, "" for a missing id.

    An Arrow-backed text column (every CSV) stays in Arrow: no Python string per row (2.5 M
    ids: 0.15 s instead of 0.6 s, most of it the memory of the round trip through objects).
    """
    if getattr(ids.dtype, "storage", None) == "pyarrow" and pd.api.types.is_string_dtype(ids):
        return ids.fillna("").str.strip()
    obj = ids.astype(object)
    id_str = obj.where(~obj.isna(), "").astype(str).str.strip()
    if pd.api.types.is_numeric_dtype(ids.dtype):  # 1001.0 read from a float column
        id_str = id_str.str.replace(r"\.0$", "", regex=True)
    return id_str


def _all_distinct(values: pd.Series) -> bool:
    """Whether no value repeats (Arrow's hash table finds the distinct strings at C speed: the
    common case of a table without duplicates skips the full duplicate pass). ``unique`` is
    twice as fast as ``count_distinct`` here (0.29 s against 0.58 s for 2.5 M ids)."""
    if getattr(values.dtype, "storage", None) != "pyarrow":
        return False
    return len(pc.unique(pa.array(values.array))) == len(values)


def _flag_duplicate_ids(id_str: pd.Series, rows: NDArray[np.int64], flag: _Flag) -> None:
    """Flag the second and later rows of a duplicate id (the first is kept)."""
    if _all_distinct(id_str):
        return
    dup = id_str.duplicated(keep="first").to_numpy() & (id_str != "").to_numpy()
    if not dup.any():
        return
    first_row: dict[str, Any] = {}
    for i in np.flatnonzero(id_str.duplicated(keep=False).to_numpy()):
        first_row.setdefault(str(id_str.iat[int(i)]), rows[i])
    flag(
        dup,
        "duplicate_id",
        lambda i: [f"id {v!r} already used on row {first_row.get(v, '?')}" for v in id_str.iloc[i]],
    )


def _flag_duplicate_locations(
    out: pd.DataFrame, good: np.ndarray, within_m: float, flag: _Flag
) -> None:
    """Flag a facility with the same name as an earlier row within ``within_m`` metres."""
    from scipy.spatial import cKDTree

    idx = np.flatnonzero(good)
    lon = out["lon"].to_numpy(float)[idx]
    lat = out["lat"].to_numpy(float)[idx]
    # local equirectangular metres: exact enough for a few metres
    r_m = 6_371_008.8
    x = np.radians(lon) * r_m * np.cos(np.radians(np.nanmean(lat)))
    y = np.radians(lat) * r_m
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(within_m, output_type="ndarray")
    if len(pairs) == 0:
        return
    names = out["name"].to_numpy(object)[idx]
    a, b = pairs.min(axis=1), pairs.max(axis=1)  # a is the earlier row
    same = (names[a] == names[b]) & (np.char.str_len(names[a].astype(str)) > 0)
    a, b = a[same], b[same]
    if len(b) == 0:
        return
    order = np.lexsort((a, b))  # for each later row, its earliest twin
    b, a = b[order], a[order]
    first = np.unique(b, return_index=True)[1]
    later, twin = b[first], a[first]
    dist = np.hypot(x[later] - x[twin], y[later] - y[twin])
    mask = np.zeros(len(out), dtype=bool)
    mask[idx[later]] = True
    details = np.full(len(out), "", dtype=object)
    rows = out["row"].to_numpy()
    details[idx[later]] = [
        f"same name {names[t]!r} as row {rows[idx[t]]}, {d:.1f} m away (within "
        f"{within_m:g} m): the export lists one site twice; keep one row"
        for t, d in zip(twin, dist, strict=True)
    ]
    flag(mask, "duplicate_location", lambda i: list(details[i]))


def _tier_column(
    df: pd.DataFrame,
    cols: dict[str, str],
    kind: Kind,
    standard: ServiceStandard | None,
    out: pd.DataFrame,
    flag: _Flag,
    tier_rules: TierRules | None = None,
) -> None:
    """Set ``out["tier"]`` to the tier keys, flagging tiers the standard does not know."""
    assert standard is not None or kind == "candidates"
    if tier_rules is not None:
        blank = pd.Series([""] * len(df), dtype=object)

        def col(key: str) -> pd.Series:
            return df[cols[key]].astype(object).reset_index(drop=True) if key in cols else blank

        keys, rule = tier_rules.assign(col("name"), col("poi_type"), col("typecode"))
        names, types, codes = (
            col(k).astype(str).to_numpy() for k in ("name", "poi_type", "typecode")
        )
        flag(
            keys == "",
            "unknown_tier",
            lambda i: [
                f"no rule of {tier_rules.path} matches name {a!r}, type {b!r}, typecode "
                f"{c!r}; add a rule for it or remove the row"
                for a, b, c in zip(names[i], types[i], codes[i], strict=True)
            ],
        )
        out["tier"] = keys
        out["tier_rule"] = rule
        return
    raw_tier = df[cols["tier"]].astype(str).str.strip().to_numpy()
    if standard is not None:
        keys = np.array([standard.resolve_tier(t) or "" for t in raw_tier], dtype=object)
        known = ", ".join(f"{t.key} ({t.label_zh})" for t in standard.tiers)
        # a POI export's category column taken for the tier: point at the tier rules
        is_poi = str(cols["tier"]).strip().lower() in ("type", "类型", "category")
        poi = " (a POI category? assign tiers with --tier-rules FILE)" if is_poi else ""
        # a candidate's tier may be left blank: it is then scored for the requested tier
        blank_ok = (raw_tier == "") if kind == "candidates" else np.zeros(len(raw_tier), bool)
        flag(
            (keys == "") & ~blank_ok,
            "unknown_tier",
            lambda i: [
                f"tier {t!r} is not in standard {standard.name!r}; use one of {known}{poi}"
                for t in raw_tier[i]
            ],
        )
        out["tier"] = keys
    else:
        out["tier"] = raw_tier


def _flag_implausible_population(pop: np.ndarray, max_population: float, flag: _Flag) -> None:
    """Flag infinite populations and populations above ``max_population`` people per point."""
    flag(
        np.isinf(pop) | (np.isfinite(pop) & (pop > max_population)),
        "implausible_population",
        lambda i: [
            f"population {v:g} is not plausible for one point (at most {max_population:,.0f}); "
            "check the value, or raise --max-population"
            for v in pop[i]
        ],
    )


def _population_columns(
    df: pd.DataFrame,
    cols: dict[str, str],
    out: pd.DataFrame,
    flag: _Flag,
    max_population: float = DEFAULT_MAX_POPULATION,
) -> None:
    """Set ``out``'s population, elderly and children columns, flagging bad values."""
    pop, pop_blank = _numeric_count(df[cols["population"]])
    raw_pop = df[cols["population"]]
    flag(pop_blank, "missing_population", "population is empty; give the number of people")
    flag(
        ~pop_blank & np.isnan(pop),
        "non_numeric_population",
        lambda i: [
            f"population {v!r} is not a number (write digits, e.g. 1900 or 1,900)"
            for v in raw_pop.iloc[i].astype(str)
        ],
    )
    _flag_implausible_population(pop, max_population, flag)
    flag(
        ~np.isnan(pop) & (pop < 0),
        "negative_population",
        lambda i: [f"population {v} is negative" for v in pop[i]],
    )
    out["population"] = pop
    for extra in ("elderly", "children"):
        if extra in cols:
            vals, blank = _numeric_count(df[cols[extra]])
            flag(
                ~blank & ~(np.isfinite(vals) & (vals >= 0)),
                f"bad_{extra}",
                lambda i, c=df[cols[extra]], e=extra: [
                    f"{e} {v!r} is not a non-negative number" for v in c.iloc[i].astype(str)
                ],
            )
            too_many = ~np.isnan(vals) & ~np.isnan(pop) & (vals > pop)
            flag(
                too_many,
                f"bad_{extra}",
                lambda i, v=vals, e=extra: [
                    f"{e} {a} exceeds population {b}" for a, b in zip(v[i], pop[i], strict=True)
                ],
            )
            out[extra] = np.where(blank, 0.0, vals)
        else:
            out[extra] = np.nan


def _rejects_frame(
    src: str,
    rows: NDArray[np.int64],
    id_str: pd.Series,
    reason: np.ndarray,
    detail: np.ndarray,
    good: np.ndarray,
    wlon: NDArray[np.float64] | None = None,
    wlat: NDArray[np.float64] | None = None,
) -> pd.DataFrame:
    """The rejects table of the rows that are not ``good`` (``wlon``/``wlat``: WGS84 position
    of each row or NaN; none given: no positions)."""
    if wlon is None or wlat is None:
        wlon = wlat = np.full(len(good), np.nan)
    return (
        pd.DataFrame(
            {
                "file": src,
                "row": rows[~good],
                "id": id_str.to_numpy()[~good],
                "reason": reason[~good],
                "detail": detail[~good],
                "lon": wlon[~good],
                "lat": wlat[~good],
            }
        )
        if (~good).any()
        else empty_rejects()
    )


def read_points(
    path: str | Path | pd.DataFrame,
    kind: Kind,
    *,
    crs: str | None = None,
    standard: ServiceStandard | None = None,
    columns: dict[str, str] | None = None,
    layer: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    tier_rules: TierRules | None = None,
    duplicate_location_m: float = DUPLICATE_LOCATION_M,
    max_population: float = DEFAULT_MAX_POPULATION,
) -> PointTable:
    """Read and validate facilities, residents or candidate sites.

    Parameters
    ----------
    path : str, Path, DataFrame or GeoDataFrame
        CSV, XLSX, GeoJSON or GeoPackage, or the same rows in memory. Points come from
        ``lon``/``lat`` columns (aliases: lng/longitude/x/经度, latitude/y/纬度) or from the
        geometry (polygons → a point inside each, for residents given as buildings or
        compounds); a GeoDataFrame's geometry always wins over such columns.
    kind : {"facilities", "residents", "candidates"}
        Facilities need ``id`` and ``tier`` (key or label of ``standard``); residents need
        ``id`` and ``population`` (``elderly``, ``children`` optional); candidates need ``id``
        (``tier`` and ``capacity`` optional).
    crs : str, optional
        The coordinate system: ``wgs84``, ``cgcs2000``, ``gcj02`` (Amap, Tencent), ``bd09``
        (Baidu) or ``EPSG:n``. Files default to ``wgs84`` (a file's own projected CRS is
        trusted); a frame without ``.crs`` must declare it.
    standard : ServiceStandard, optional
        Needed for facilities, to resolve tiers.
    columns : dict, optional
        Explicit column names, e.g. ``{"population": "常住人口"}``; the fields are ``id, name,
        tier, lon, lat, population, elderly, children, capacity, location`` (one ``"lng,lat"``
        column, as in Amap/Baidu exports), ``poi_type`` and ``typecode``.
    layer : str, optional
        Layer of a GeoPackage.
    sheet : str or int, optional
        Sheet of a workbook, a name or a number from 1 (default the first).
    encoding : str, optional
        Text encoding of a CSV or Shapefile; default detected (UTF-8, UTF-8 with BOM, GB18030).
    tier_rules : TierRules, optional
        Facilities only: assign tiers from type, typecode and name (see
        :mod:`lifecircle.tier_rules`) instead of a tier column; the matched rule is kept in the
        column ``tier_rule``; rows no rule matches are rejected ``unknown_tier``.
    duplicate_location_m : float
        Facilities only: a row with the same non-empty name as an earlier row within this many
        metres is rejected ``duplicate_location`` (scraped POI exports list some sites twice).
    max_population : float
        Most people at one resident point (default 50,000); more, or an infinite value, is
        rejected as ``implausible_population``.

    Returns
    -------
    PointTable

    Raises
    ------
    InputError
        If the file cannot be read, a required column is missing, or no coordinates exist.
    CRSError
        If ``crs`` is unknown.
    """
    with _malloc_pool():
        return _read_points(
            path,
            kind,
            crs,
            standard,
            columns,
            layer,
            sheet,
            encoding,
            tier_rules,
            duplicate_location_m,
            max_population,
        )


@contextmanager
def _malloc_pool() -> Iterator[None]:
    """Arrow allocates from the C library's ``malloc`` meanwhile, not its default mimalloc pool.

    Here mimalloc hands freed memory back and takes it again as fresh huge pages: reading 2.5 M
    residents took 1.4-2.5 s, most of it the kernel's (zeroing pages), against 1.1-1.25 s with
    ``malloc``. Buffers remember their pool, so arrays made here are freed correctly later.
    Arrow's default pool is one setting for the process: two reads at once (threads of the HTTP
    service) may leave ``malloc`` in place after both, which is as correct, only not the default.
    """
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def _read_points(
    path: str | Path | pd.DataFrame,
    kind: Kind,
    crs: str | None,
    standard: ServiceStandard | None,
    columns: dict[str, str] | None,
    layer: str | None,
    sheet: str | int | None,
    encoding: str | None,
    tier_rules: TierRules | None,
    duplicate_location_m: float,
    max_population: float,
) -> PointTable:
    df, rows, geom, crs_name, src = _open_points(path, kind, crs, layer, sheet, encoding)
    n = len(df)
    in_memory = isinstance(path, pd.DataFrame)
    rules = tier_rules if kind == "facilities" else None
    cols, has_xy = _point_columns(df, src, kind, columns, geom, in_memory, standard, rules)

    id_str = _id_strings(df[cols["id"]])
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, code: str, text: Any) -> None:
        """Reject the rows under ``mask`` not rejected yet. ``text`` is the detail: a string,
        or a function of the rejected rows' indices returning one message per row (messages
        are formatted for rejected rows only)."""
        new = mask & (reason == "")
        if not new.any():
            return
        reason[new] = code
        if callable(text):
            idx = np.flatnonzero(new)
            detail[idx] = np.asarray(list(text(idx)), dtype=object)
        else:
            detail[new] = text

    flag(
        (id_str == "").to_numpy(), "missing_id", "the id cell is empty; give every row a unique id"
    )

    # coordinates
    if not has_xy and geom is not None:
        _flag_geometry_types(geom, kind, flag)
    lon, lat, crs_name = _point_coordinates(df, cols, has_xy, geom, crs_name, flag)
    geographic = crs_name in ("wgs84", "cgcs2000", "gcj02", "bd09")
    if geographic:
        _flag_out_of_range(lon, lat, flag)

    # duplicate ids (the second and later rows are rejected; the first is kept)
    _flag_duplicate_ids(id_str, rows, flag)

    out = pd.DataFrame({"id": id_str.array, "row": rows})
    if "name" in cols:
        out["name"] = (
            df[cols["name"]]
            .astype(object)
            .where(~df[cols["name"]].isna(), "")
            .astype(str)
            .to_numpy()
        )
    else:
        out["name"] = ""

    if kind == "facilities" or (kind == "candidates" and "tier" in cols):
        _tier_column(df, cols, kind, standard, out, flag, rules)

    if kind == "residents":
        _population_columns(df, cols, out, flag, max_population)
    if "capacity" in cols:
        cap, cap_blank = _numeric(df[cols["capacity"]])
        flag(
            ~cap_blank & (np.isnan(cap) | (cap < 0)),
            "bad_capacity",
            "capacity must be a non-negative number of people (or empty for no limit)",
        )
        out["capacity"] = np.where(cap_blank, np.inf, cap)

    # convert coordinates of the good rows to WGS84
    good = reason == ""
    wlon = np.full(n, np.nan)
    wlat = np.full(n, np.nan)
    if good.any():
        wlon[good], wlat[good] = to_wgs84(lon[good], lat[good], crs_name)
        if not geographic:
            bad = good & ~(np.isfinite(wlon) & np.isfinite(wlat))
            flag(
                bad,
                "coordinates_out_of_range",
                f"coordinates cannot be converted from {crs_name} to WGS84",
            )
            good = reason == ""
    out["lon"] = wlon
    out["lat"] = wlat
    if kind == "facilities" and "name" in cols and good.sum() > 1:
        _flag_duplicate_locations(out, good, duplicate_location_m, flag)
        good = reason == ""
    # where the rejected rows would lie (for the rejects map layer), when their coordinates parse
    rlon, rlat = wlon.copy(), wlat.copy()
    placeable = ~good & np.isfinite(lon) & np.isfinite(lat)
    if geographic:
        placeable &= (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if placeable.any():
        with np.errstate(all="ignore"):
            rlon[placeable], rlat[placeable] = to_wgs84(lon[placeable], lat[placeable], crs_name)
    # keep the other input columns for the user's own reference
    used = {v for k, v in cols.items() if k not in ("poi_type", "typecode", "location")}
    for c in df.columns:
        if c not in used and str(c) not in out.columns:
            out[str(c)] = df[c].to_numpy()

    rejects = _rejects_frame(src, rows, id_str, reason, detail, good, rlon, rlat)
    frame = out.loc[good].reset_index(drop=True)
    if len(rejects):
        logger.warning(
            "%s: %d of %d row(s) rejected (%s)",
            src,
            len(rejects),
            n,
            ", ".join(f"{k}: {v}" for k, v in rejects["reason"].value_counts().items()),
        )
    logger.info("%s: %d %s read (coordinates %s -> WGS84)", src, len(frame), kind, crs_name)
    values = _values_frame(
        lon[~good],
        lat[~good],
        out["tier"].astype(str).to_numpy(object)[~good] if "tier" in out else None,
        out["population"].to_numpy(float)[~good] if "population" in out else None,
    )
    return PointTable(kind, src, crs_name, frame, rejects, n, values)


# -- admin units --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitLayer:
    """Polygons of one kind of admin unit (communities, grids…), in WGS84.

    Attributes
    ----------
    key : str
        e.g. ``"community"``; becomes the column ``community_id`` on residents.
    label_zh, label_en : str
    frame : geopandas.GeoDataFrame
        Columns ``unit_id``, ``name``, ``geometry`` (EPSG:4326) plus the file's other columns.
    path : str
    """

    key: str
    label_zh: str
    label_en: str
    frame: Any
    path: str


def read_units(
    path: str | Path | pd.DataFrame,
    *,
    key: str | None = None,
    id_field: str | None = None,
    name_field: str | None = None,
    crs: str | None = None,
    label_zh: str | None = None,
    label_en: str | None = None,
    encoding: str | None = None,
) -> UnitLayer:
    """Read admin-unit polygons (GeoJSON/GeoPackage/Shapefile or a GeoDataFrame) into WGS84.

    A Shapefile's attributes are decoded as :func:`lifecircle._tables.dbf_encoding` says (a
    ``.cpg``, else UTF-8 or GB18030 detected) unless ``encoding`` is given.

    ``crs`` is the coordinate system when the data cannot say so itself (GeoJSON from Amap/DataV
    is GCJ-02 while claiming WGS84: pass ``crs="gcj02"``); files default to their own CRS, else
    WGS84; a GeoDataFrame without ``.crs`` must declare it. The id column defaults to the first
    of ``{key}_id``, ``unit_id``, ``id``, ``code``; the name column to ``name``. The key defaults
    to the file name in the singular (``communities.geojson`` -> ``community``; ``unit`` for a
    frame).
    """
    import geopandas as gpd
    import shapely

    if isinstance(path, pd.DataFrame):
        if not isinstance(path, gpd.GeoDataFrame):
            raise InputError(
                "units must be polygons: pass a GeoDataFrame or a file, not a DataFrame"
            )
        gdf = path
        p = Path(f"<{key or 'unit'} GeoDataFrame>")
        if gdf.crs is None and crs is None:
            raise CRSError(
                f"{p}: the frame has no CRS and none was declared; set it "
                "(gdf.set_crs(4326)) or pass crs='wgs84', 'gcj02', 'bd09' or 'EPSG:n'"
            )
        key = key or "unit"
    else:
        p = Path(path)
        if not p.exists():
            raise InputError(f"units file {p} does not exist")
        try:
            gdf = read_vector(p, encoding=encoding)
        except Exception as exc:
            raise InputError(f"cannot read units file {p}: {exc}") from exc
        key = key or _singular(p.stem)
    if id_field is None:
        for cand in (f"{key}_id", "unit_id", "id", "code", "adcode"):
            if cand in gdf.columns:
                id_field = cand
                break
        else:  # e.g. community_id in communities.geojson
            id_field = next((str(c) for c in gdf.columns if str(c).endswith("_id")), None)
    if id_field is None or id_field not in gdf.columns:
        raise InputError(
            f"units file {p}: no id column (looked for {key}_id, unit_id, id, code); "
            f"columns are {', '.join(map(str, gdf.columns))}; pass id_field"
        )
    name_field = name_field or ("name" if "name" in gdf.columns else id_field)
    if name_field not in gdf.columns:
        raise InputError(f"units file {p}: name column {name_field!r} not found")
    geoms = np.asarray(gdf.geometry.values)
    bad = shapely.is_missing(geoms) | ~np.isin(shapely.get_type_id(geoms), [3, 6])
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad)[:10])
        raise InputError(
            f"units file {p}: feature(s) {rows} are not polygons; units must be "
            "Polygon or MultiPolygon"
        )
    declared = normalize_crs_name(crs or "wgs84")
    file_epsg = gdf.crs.to_epsg() if gdf.crs is not None else 4326
    if gdf.crs is None and declared not in ("wgs84", "cgcs2000", "gcj02", "bd09"):
        gdf = gdf.set_crs(declared)
        file_epsg = gdf.crs.to_epsg()
    if declared in ("gcj02", "bd09"):

        def fn(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], declared))

        geoms = shapely.transform(geoms, fn)
    elif file_epsg not in (4326, 4490, None):
        geoms = np.asarray(gdf.to_crs(4326).geometry.values)
    geoms = shapely.make_valid(geoms)
    frame = gpd.GeoDataFrame(
        {
            "unit_id": gdf[id_field].astype(str).to_numpy(),
            "name": gdf[name_field].astype(str).to_numpy(),
        },
        geometry=geoms,
        crs="EPSG:4326",
    )
    for c in gdf.columns:
        if c not in (id_field, name_field, gdf.geometry.name) and c not in frame.columns:
            frame[c] = gdf[c].to_numpy()
    dup = frame["unit_id"].duplicated()
    if dup.any():
        raise InputError(
            f"units file {p}: duplicate unit ids {', '.join(frame['unit_id'][dup].head(5))}"
        )
    return UnitLayer(
        key=key, label_zh=label_zh or key, label_en=label_en or key, frame=frame, path=str(p)
    )


def _singular(word: str) -> str:
    """``communities`` -> ``community``, ``grids`` -> ``grid`` (unit keys from file names)."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def read_boundary(path: str | Path, *, crs: str = "wgs84") -> Any:
    """Read a boundary file and return its union as one WGS84 shapely geometry."""
    import shapely

    p = Path(path)
    if not p.exists():
        raise InputError(f"boundary file {p} does not exist")
    try:
        gdf = read_vector(p)
    except Exception as exc:
        raise InputError(f"cannot read boundary file {p}: {exc}") from exc
    if gdf.crs is not None and gdf.crs.to_epsg() not in (4326, 4490):
        gdf = gdf.to_crs(4326)
    geom = shapely.union_all(np.asarray(gdf.geometry.values))
    name = normalize_crs_name(crs)
    if name in ("gcj02", "bd09"):
        geom = shapely.transform(
            geom, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], name))
        )
    return geom


def read_boundary_name(path: str | Path) -> str | None:
    """The boundary's name: the ``name`` (or ``名称``) of its features when they all agree, else
    ``None`` (the sub-district row of a report then shows this name instead of 街道)."""
    import pyogrio

    frame = pyogrio.read_dataframe(path, read_geometry=False)
    for col in ("name", "名称", "NAME", "Name"):
        if col in frame.columns:
            names = {str(v).strip() for v in frame[col] if pd.notna(v) and str(v).strip()}
            if len(names) == 1:
                return names.pop()
    return None


# -- scenario files -----------------------------------------------------------------------


@dataclass(frozen=True)
class UnitSpec:
    """Where one admin-unit layer of a scenario lives."""

    key: str
    path: Path
    id_field: str | None = None
    name_field: str | None = None
    crs: str = "wgs84"
    label_zh: str | None = None
    label_en: str | None = None

    def read(self, *, encoding: str | None = None) -> UnitLayer:
        """Read the layer (``encoding``: of a Shapefile's attributes, default detected)."""
        return read_units(
            self.path,
            encoding=encoding,
            key=self.key,
            id_field=self.id_field,
            name_field=self.name_field,
            crs=self.crs,
            label_zh=self.label_zh,
            label_en=self.label_en,
        )


@dataclass(frozen=True)
class Scenario:
    """A scenario file: which inputs, in which coordinate systems, under which standard.

    See ``data/demo/tancheng/scenario.toml`` for an example. Paths are relative to the file.
    """

    path: Path | None
    name: str
    network: Path
    facilities: Path
    residents: Path | None
    facilities_crs: str = "wgs84"
    residents_crs: str = "wgs84"
    standard: str = "tancheng"
    mode: str | None = None
    synthetic: bool = False
    name_en: str = ""
    description: str = ""
    units: tuple[UnitSpec, ...] = ()
    boundaries: dict[str, Path] = field(default_factory=dict)
    candidates: Path | None = None
    candidates_crs: str = "wgs84"
    max_snap_m: float | None = None
    #: per input (``facilities``, ``residents``, ``candidates``): explicit column names
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    #: per input: the workbook sheet (name or number from 1)
    sheets: dict[str, str] = field(default_factory=dict)
    #: per input: the text encoding
    encodings: dict[str, str] = field(default_factory=dict)
    tier_rules: Path | None = None
    population_table: Path | None = None
    population_join: str | None = None
    population_field: str | None = None
    buildings: Path | None = None
    #: The raw ``[batch]`` section (regions file, scheduler...), read by ``lifecircle batch``.
    batch: dict[str, Any] = field(default_factory=dict)
    grids: dict[str, Any] = field(default_factory=dict)

    def load_standard(self) -> ServiceStandard:
        """The scenario's service standard."""
        return load_standard(self.standard)


#: Keys of a scenario's ``[grids]`` section (the options of ``lifecircle grids``).
GRID_SETTINGS: Final = {
    "path": "grid polygons (default: the [[units]] layer with key 'grid')",
    "id_field": "grid id column",
    "crs": "coordinate system of the grid file (wgs84, gcj02, bd09, cgcs2000, EPSG:n)",
    "household_size": "people per household (default 3.0)",
    "households_per_grid": 'households band, e.g. "300-500"',
    "base_tier": "tier whose facilities are grid bases (default station)",
    "bases": "points file of grid bases instead of a tier",
    "walk_m": "walking standard for the share within reach, metres",
    "propose": "propose a re-gridding (true/false)",
}


def load_scenario(path: str | Path) -> Scenario:
    """Read a ``scenario.toml`` file.

    Raises
    ------
    InputError
        If the file is missing, not TOML, has unknown sections, or lacks network/facilities.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"scenario file {p} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"scenario file {p} is not valid TOML: {exc}") from exc
    validate(data, SCENARIO, str(p))
    base = p.parent

    def rel(v: str | None) -> Path | None:
        return None if not v else (base / v).resolve() if not Path(v).is_absolute() else Path(v)

    meta = data.get("scenario", {})
    std = data.get("standard", {})
    standard = std.get("preset") or (str(rel(std["path"])) if "path" in std else "tancheng")
    units = tuple(
        UnitSpec(
            key=u.get("key") or Path(u["path"]).stem,
            path=rel(u["path"]),  # type: ignore[arg-type]
            id_field=u.get("id_field") or u.get("columns", {}).get("id"),
            name_field=u.get("name_field") or u.get("columns", {}).get("name"),
            crs=u.get("crs", "wgs84"),
            label_zh=u.get("label_zh"),
            label_en=u.get("label_en"),
        )
        for u in data.get("units", [])
    )
    bounds = {k: rel(v) for k, v in data.get("boundaries", {}).items()}
    analysis = data.get("analysis", {})
    columns: dict[str, dict[str, str]] = {}
    sheets: dict[str, str] = {}
    encodings: dict[str, str] = {}
    for section in ("facilities", "residents", "candidates"):
        sec = data.get(section, {})
        cols = sec.get("columns", {})
        if not isinstance(cols, dict) or not all(isinstance(v, str) for v in cols.values()):
            raise InputError(
                f"scenario file {p}: [{section}] columns must be a table of field = "
                '"column name", e.g. columns = { population = "常住人口" }'
            )
        if cols:
            columns[section] = dict(cols)
        if "sheet" in sec:
            sheets[section] = str(sec["sheet"])
        if "encoding" in sec:
            encodings[section] = str(sec["encoding"])
    fac_sec = data["facilities"]
    res_sec = data.get("residents", {})
    grids = dict(data.get("grids", {}))
    bad = sorted(set(grids) - set(GRID_SETTINGS))
    if bad:
        raise InputError(
            f"scenario file {p}: unknown key(s) {', '.join(bad)} in [grids]; "
            f"allowed: {', '.join(GRID_SETTINGS)}"
        )
    for key in ("path", "bases"):
        if key in grids:
            grids[key] = rel(str(grids[key]))
    return Scenario(
        path=p,
        name=str(meta.get("name", p.stem)),
        name_en=str(meta.get("name_en", "")),
        synthetic=bool(meta.get("synthetic", False)),
        description=str(meta.get("description", "")),
        network=rel(data["network"]["path"]),  # type: ignore[arg-type]
        facilities=rel(data["facilities"]["path"]),  # type: ignore[arg-type]
        facilities_crs=data["facilities"].get("crs", "wgs84"),
        residents=rel(data.get("residents", {}).get("path")),
        residents_crs=data.get("residents", {}).get("crs", "wgs84"),
        standard=standard,
        mode=std.get("mode") or analysis.get("mode"),
        units=units,
        boundaries={k: v for k, v in bounds.items() if v is not None},
        candidates=rel(data.get("candidates", {}).get("path")),
        candidates_crs=data.get("candidates", {}).get("crs", "wgs84"),
        max_snap_m=analysis.get("max_snap_m"),
        columns=columns,
        sheets=sheets,
        encodings=encodings,
        tier_rules=rel(fac_sec.get("tier_rules")),
        population_table=rel(res_sec.get("population_table")),
        population_join=res_sec.get("population_join"),
        population_field=res_sec.get("population_field"),
        buildings=rel(res_sec.get("buildings")),
        batch=dict(data.get("batch", {})),
        grids=grids,
    )


# -- population areas (polygons with people, or polygons joined to a population table) --------


@dataclass(frozen=True)
class PopulationAreas:
    """Polygons with a population, ready to be distributed along the streets.

    Attributes
    ----------
    path : str
        The polygon file.
    crs : str
        The coordinate system the polygons were converted from.
    frame : geopandas.GeoDataFrame
        The usable polygons in EPSG:4326: ``id``, ``row``, ``name``, ``population``,
        ``elderly``, ``children`` (NaN when not given), ``geometry``.
    rejects : pandas.DataFrame
        Rejected polygons and population-table rows (``file`` says which).
    counts : dict
        ``{"polygons": {"input", "used", "rejected"}, "table_rows": {...}}`` (table rows only
        with a population table); they reconcile.
    """

    path: str
    crs: str
    frame: Any
    rejects: pd.DataFrame
    counts: dict[str, dict[str, int]]


def parse_join(spec: str) -> tuple[str, str]:
    """``"社区代码=community_id"`` -> ``("社区代码", "community_id")`` (table field, polygon field).

    >>> parse_join("社区代码=community_id")
    ('社区代码', 'community_id')
    """
    left, sep, right = spec.partition("=")
    if not sep or not left.strip() or not right.strip():
        raise InputError(
            f"--population-join {spec!r}: expected TABLEFIELD=POLYGONFIELD, e.g. "
            "--population-join 社区代码=community_id"
        )
    return left.strip(), right.strip()


_NAME_SUFFIXES: Final = ("居民委员会", "村民委员会", "居委会", "村委会")


def _join_key(values: pd.Series) -> pd.Series:
    """Comparable join keys: text without spaces, ``123.0`` -> ``123``, committee suffixes off."""
    s = (
        values.astype(object)
        .where(~values.isna(), "")
        .astype(str)
        .str.replace(r"\s+", "", regex=True)
    )
    s = s.str.replace(r"^(\d+)\.0$", r"\1", regex=True)
    for suffix in _NAME_SUFFIXES:
        s = s.str.removesuffix(suffix)
    return s


def _closest(value: str, choices: list[str]) -> str:
    import difflib

    best = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    return f"; closest: {best[0]!r}" if best else ""


def _join_population_table(
    df: pd.DataFrame,
    rows: NDArray[np.int64],
    src: str,
    table: str | Path,
    join: str,
    field_name: str | None,
    flag: _Flag,
    *,
    sheet: str | int | None,
    encoding: str | None,
    columns: dict[str, str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The polygons with the table's population columns joined; table rejects; counts."""
    t_field, p_field = parse_join(join)
    tdf, trows, _ = read_table(table, sheet=sheet, encoding=encoding)
    tsrc = str(table)
    if p_field not in df.columns:
        raise InputError(
            f"{src}: no column {p_field!r} to join the population table on (--population-join "
            f"{t_field}={p_field}); columns are {', '.join(map(str, df.columns))}"
        )
    if t_field not in tdf.columns:
        raise InputError(
            f"{tsrc}: no column {t_field!r} to join on (--population-join {t_field}={p_field}); "
            f"columns are {', '.join(map(str, tdf.columns))}"
        )
    overrides = {k: v for k, v in (columns or {}).items() if k in ("elderly", "children")}
    if field_name:
        overrides["population"] = field_name
    tcols = _find_columns(tdf, tsrc, "residents", overrides)
    if "population" not in tcols:
        raise InputError(
            f"{tsrc}: no population column; name it with --population-field (columns are "
            f"{', '.join(map(str, tdf.columns))})"
        )
    tkey = _join_key(tdf[t_field])
    pkey = _join_key(df[p_field])
    n_t = len(tdf)
    t_reason = np.full(n_t, "", dtype=object)
    t_detail = np.full(n_t, "", dtype=object)
    dup = tkey.duplicated(keep="first").to_numpy() & (tkey != "").to_numpy()
    t_reason[dup] = "duplicate_id"
    t_detail[dup] = [f"{t_field} {k!r} appears on an earlier row" for k in tkey[dup]]
    poly_keys = set(pkey)
    pchoices = sorted(k for k in poly_keys if k)
    unmatched = (t_reason == "") & ~tkey.isin(poly_keys).to_numpy()
    t_reason[unmatched] = "unmatched_population_row"
    t_detail[unmatched] = [
        f"no polygon of {src} has {p_field} = {k!r}{_closest(k, pchoices)}" for k in tkey[unmatched]
    ]
    good_t = t_reason == ""
    lookup = pd.Series(np.flatnonzero(good_t), index=tkey[good_t].to_numpy())
    pos = pkey.map(lookup)
    missing = pos.isna().to_numpy()
    # suggest among every table key: the unmatched rows are the likely partners of a typo
    tchoices = sorted(k for k in set(tkey) if k)
    flag(
        missing,
        "no_population_row",
        lambda i: [
            f"no row of {tsrc} has {t_field} = {k!r}{_closest(k, tchoices)}" for k in pkey.iloc[i]
        ],
    )
    idx = pos.fillna(0).astype(int).to_numpy()
    out = df.copy()
    for canon in ("population", "elderly", "children"):
        if canon in tcols:
            vals = tdf[tcols[canon]].to_numpy(object)[idx]
            out[f"__{canon}"] = np.where(missing, "0", vals)
    t_id = tkey.to_numpy()
    t_rejects = (
        pd.DataFrame(
            {
                "file": tsrc,
                "row": trows[~good_t],
                "id": t_id[~good_t],
                "reason": t_reason[~good_t],
                "detail": t_detail[~good_t],
            }
        )
        if (~good_t).any()
        else empty_rejects()
    )
    counts = {"input": n_t, "used": int(good_t.sum()), "rejected": int((~good_t).sum())}
    return out, t_rejects, counts


def read_population_areas(
    path: str | Path | pd.DataFrame,
    *,
    crs: str | None = None,
    columns: dict[str, str] | None = None,
    layer: str | None = None,
    encoding: str | None = None,
    table: str | Path | None = None,
    join: str | None = None,
    population_field: str | None = None,
    table_sheet: str | int | None = None,
    table_encoding: str | None = None,
) -> PopulationAreas:
    """Read polygons with people (buildings, compounds, grid cells, communities, villages).

    The population comes from the polygons' own column (``population`` or an alias, or
    ``columns={"population": ...}``), or from a population table joined to them
    (``table``, ``join="TABLEFIELD=POLYGONFIELD"``, ``population_field``), e.g. a census
    spreadsheet keyed by community code or name; ``elderly``/``children`` columns come along.
    Keys are compared as text without spaces, ``"123.0"`` as ``"123"``, and names without a
    trailing 居民委员会/村民委员会/居委会/村委会.

    Rejects: ``not_a_polygon``, the population reasons of :func:`read_points`
    (``missing_population``…), ``no_population_row`` (a polygon no table row matches) and, for
    table rows, ``unmatched_population_row`` (no polygon matches) and ``duplicate_id``; unmatched
    ones name the closest key of the other side (difflib).

    Raises
    ------
    InputError
        If a file cannot be read or a needed column is missing.
    """
    import geopandas as gpd

    df, rows, geom, crs_name, src = _open_points(path, "residents", crs, layer, None, encoding)
    if geom is None:
        raise InputError(f"{src}: population areas need polygons (GeoJSON, GeoPackage, Shapefile)")
    n = len(df)
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, code: str, text: Any) -> None:
        """As in :func:`read_points`: ``text`` a string or a function of the rows' indices."""
        new = mask & (reason == "")
        if not new.any():
            return
        reason[new] = code
        if callable(text):
            idx = np.flatnonzero(new)
            detail[idx] = np.asarray(list(text(idx)), dtype=object)
        else:
            detail[new] = text

    counts: dict[str, dict[str, int]] = {}
    t_rejects = empty_rejects()
    cols_in = dict(columns or {})
    if table is not None:
        if not join:
            raise InputError(
                "--population-table needs --population-join TABLEFIELD=POLYGONFIELD "
                "(e.g. --population-join 社区代码=community_id)"
            )
        df, t_rejects, counts["table_rows"] = _join_population_table(
            df,
            rows,
            src,
            table,
            join,
            population_field,
            flag,
            sheet=table_sheet,
            encoding=table_encoding,
            columns=columns,
        )
        for canon in ("population", "elderly", "children"):
            if f"__{canon}" in df.columns:
                cols_in[canon] = f"__{canon}"
    cols = _find_columns(df, src, "residents", cols_in)
    if "population" not in cols:
        raise InputError(
            f"{src}: no population column; found {', '.join(map(str, df.columns))}. Name it "
            "(--columns residents:population=常住人口) or join a table (--population-table FILE "
            "--population-join TABLEFIELD=POLYGONFIELD --population-field FIELD)"
        )
    if "id" not in cols:  # polygons: community_id, adcode, code...
        id_col = next(
            (c for c in df.columns if str(c).lower().endswith("_id") or str(c) == "adcode"), None
        )
        if id_col is not None:
            cols["id"] = id_col
    if "id" in cols:
        id_str = _join_key(df[cols["id"]])
    else:
        id_str = pd.Series([str(r) for r in rows], dtype=object)
    g = np.asarray(geom.values if hasattr(geom, "values") else geom)
    bad_geom = shapely.is_missing(g) | ~np.isin(shapely.get_type_id(g), [3, 6])
    flag(bad_geom, "not_a_polygon", "the feature is not a Polygon or MultiPolygon")
    out = pd.DataFrame({"id": id_str.array, "row": rows})
    out["name"] = (
        df[cols["name"]].astype(object).where(~df[cols["name"]].isna(), "").astype(str).to_numpy()
        if "name" in cols
        else ""
    )
    # an area (a polygon spread along its streets) may hold a whole town: no per-point maximum
    _population_columns(df, cols, out, flag, math.inf)
    _flag_duplicate_ids(id_str, rows, flag)
    good = reason == ""
    g = np.where(good, g, None)  # type: ignore[call-overload]
    file_crs = getattr(geom, "crs", None)
    if crs_name in ("gcj02", "bd09"):
        name = crs_name

        def fn(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], name))

        g = shapely.transform(g, fn)
    elif file_crs is not None and file_crs.to_epsg() not in (4326, 4490):
        g = np.asarray(gpd.GeoSeries(g, crs=file_crs).to_crs(4326).values)
    elif file_crs is None and crs_name not in ("wgs84", "cgcs2000"):
        g = np.asarray(gpd.GeoSeries(g, crs=crs_name).to_crs(4326).values)
    g = shapely.make_valid(g)
    frame = gpd.GeoDataFrame(out.loc[good].reset_index(drop=True), geometry=g[good], crs=4326)
    rejects = _rejects_frame(src, rows, id_str, reason, detail, good)
    rejects = (
        pd.concat([r for r in (rejects, t_rejects) if len(r)], ignore_index=True)
        if (len(rejects) or len(t_rejects))
        else empty_rejects()
    )
    counts["polygons"] = {"input": n, "used": int(good.sum()), "rejected": int((~good).sum())}
    logger.info(
        "%s: %d population area(s), %.0f people (%d rejected)",
        src,
        len(frame),
        float(frame["population"].sum()),
        int((~good).sum()),
    )
    return PopulationAreas(src, crs_name, frame, rejects, counts)


@dataclass(frozen=True)
class Buildings:
    """Residential building footprints for splitting an area's people by floor area.

    Attributes
    ----------
    path : str
    frame : geopandas.GeoDataFrame
        Usable buildings in EPSG:4326: ``id``, ``row``, ``floors`` (NaN when not given),
        ``floor_area_m2`` (NaN when not given: footprint x floors is used), ``geometry``.
    rejects : pandas.DataFrame
        ``not_a_polygon``, ``bad_floors``, ``bad_floor_area``.
    n_input : int
    """

    path: str
    frame: Any
    rejects: pd.DataFrame
    n_input: int


_FLOORS: Final = ("floors", "层数", "building:levels", "levels", "楼层数")
_FLOOR_AREA: Final = ("area", "floor_area", "建筑面积", "floor_area_m2")


def read_buildings(
    path: str | Path | pd.DataFrame, *, crs: str | None = None, encoding: str | None = None
) -> Buildings:
    """Read residential building polygons with ``floors`` (层数) and/or ``area`` (建筑面积, m²).

    A building's floor area is its ``area`` column when given, else its footprint (computed in
    the network's metric CRS) times ``floors`` (1 when not given).

    Raises
    ------
    InputError
        If the file cannot be read or holds no geometry.
    """
    import geopandas as gpd

    df, rows, geom, crs_name, src = _open_points(path, "residents", crs, None, None, encoding)
    if geom is None:
        raise InputError(f"{src}: buildings need polygons (GeoJSON, GeoPackage, Shapefile)")
    n = len(df)
    lower = {str(c).strip().lower(): c for c in df.columns}
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, code: str, text: str) -> None:
        new = mask & (reason == "")
        reason[new] = code
        detail[new] = text

    g = np.asarray(geom.values if hasattr(geom, "values") else geom)
    flag(
        shapely.is_missing(g) | ~np.isin(shapely.get_type_id(g), [3, 6]),
        "not_a_polygon",
        "the feature is not a Polygon or MultiPolygon",
    )
    values: dict[str, np.ndarray] = {}
    for key, aliases, code in (
        ("floors", _FLOORS, "bad_floors"),
        ("floor_area_m2", _FLOOR_AREA, "bad_floor_area"),
    ):
        col = next((lower[a] for a in aliases if a in lower), None)
        if col is None:
            values[key] = np.full(n, np.nan)
            continue
        v, blank = _numeric(df[col])
        flag(
            ~blank & ~(v > 0),
            code,
            f"{col} must be a positive number (or empty); fix the value or remove the building",
        )
        values[key] = np.where(blank, np.nan, v)
    id_col = lower.get("id") or next((c for c in df.columns if str(c).endswith("_id")), None)
    ids = df[id_col].astype(str).to_numpy() if id_col is not None else rows.astype(str)
    good = reason == ""
    g = np.where(good, g, None)  # type: ignore[call-overload]
    file_crs = getattr(geom, "crs", None)
    if crs_name in ("gcj02", "bd09"):
        name = crs_name
        g = shapely.transform(g, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], name)))
    elif file_crs is not None and file_crs.to_epsg() not in (4326, 4490):
        g = np.asarray(gpd.GeoSeries(g, crs=file_crs).to_crs(4326).values)
    frame = gpd.GeoDataFrame(
        {
            "id": ids[good],
            "row": rows[good],
            "floors": values["floors"][good],
            "floor_area_m2": values["floor_area_m2"][good],
        },
        geometry=g[good],
        crs=4326,
    )
    rejects = _rejects_frame(src, rows, pd.Series(ids), reason, detail, good)
    logger.info("%s: %d building(s) read, %d rejected", src, len(frame), int((~good).sum()))
    return Buildings(src, frame, rejects, n)
