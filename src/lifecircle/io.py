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
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lifecircle.config import ServiceStandard, load_standard
from lifecircle.coords import normalize_crs_name, to_wgs84
from lifecircle.errors import CRSError, InputError

logger = logging.getLogger(__name__)

Kind = Literal["facilities", "residents", "candidates"]

#: Columns of a rejects table.
REJECT_COLUMNS: Final = ["file", "row", "id", "reason", "detail"]

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
    "name": ("name", "名称", "站点名称", "site_name"),
    "tier": ("tier", "层级", "级别", "类型", "type", "category", "level"),
    "lon": ("lon", "lng", "longitude", "long", "x", "经度"),
    "lat": ("lat", "latitude", "y", "纬度"),
    "population": ("population", "pop", "人口", "人数", "people", "residents"),
    "elderly": ("elderly", "老年人口", "老人", "pop_65plus", "aged"),
    "children": ("children", "儿童", "少儿人口", "pop_0_14"),
    "capacity": ("capacity", "容量", "服务能力"),
}

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
    """

    kind: str
    path: str
    crs: str
    frame: pd.DataFrame
    rejects: pd.DataFrame
    n_input: int

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
            }
        )
        return PointTable(
            self.kind,
            self.path,
            self.crs,
            self.frame.loc[~mask].reset_index(drop=True),
            pd.concat([self.rejects, new], ignore_index=True),
            self.n_input,
        )


def empty_rejects() -> pd.DataFrame:
    """An empty rejects table with the standard columns."""
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "row" else "object") for c in REJECT_COLUMNS}
    )


# -- reading raw tables -------------------------------------------------------------------


def _count_comment_lines(path: Path) -> int:
    n = 0
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            if line.startswith("#"):
                n += 1
            else:
                break
    return n


def read_table(
    path: str | Path, *, layer: str | None = None
) -> tuple[pd.DataFrame, np.ndarray, Any]:
    """Read a table file; return (data frame of strings/values, user row numbers, geometry or None).

    CSV is read with every column as text (so ``"007"`` ids survive and bad numbers can be
    reported rather than guessed); XLSX through openpyxl; GeoJSON/GeoPackage through pyogrio.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file {p} does not exist")
    suffix = (
        "".join(p.suffixes[-2:]).lower() if p.name.lower().endswith(".csv.gz") else p.suffix.lower()
    )
    try:
        if suffix in (".csv", ".txt", ".csv.gz", ".tsv"):
            skip = _count_comment_lines(p) if suffix != ".csv.gz" else 0
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(
                p,
                dtype=str,
                keep_default_na=False,
                skiprows=skip,
                sep=sep,
                encoding="utf-8-sig",
                skipinitialspace=True,
            )
            rows = np.arange(len(df)) + 2 + skip
            return df, rows, None
        if suffix in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(p, dtype=object, sheet_name=layer or 0)
            return df, np.arange(len(df)) + 2, None
        if suffix in (".geojson", ".json", ".gpkg", ".shp", ".fgb"):
            import geopandas as gpd

            gdf = gpd.read_file(p, layer=layer) if layer else gpd.read_file(p)
            geom = gdf.geometry
            df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
            return df, np.arange(len(df)) + 1, geom
    except InputError:
        raise
    except Exception as exc:  # pandas/pyogrio raise many kinds
        raise InputError(
            f"cannot read {p}: {exc}. Is it a valid {suffix or 'table'} file?"
        ) from exc
    raise InputError(f"{p}: unknown file type {suffix!r}; use .csv, .xlsx, .geojson or .gpkg")


def _find_columns(
    df: pd.DataFrame, path: str, kind: str, overrides: dict[str, str] | None
) -> dict[str, str]:
    lower = {str(c).strip().lower(): c for c in df.columns}
    found: dict[str, str] = {}
    for canon, aliases in _ALIASES.items():
        if overrides and canon in overrides:
            col = overrides[canon]
            if col not in df.columns:
                raise InputError(
                    f"{path}: column {col!r} (given for {canon}) not found; columns are "
                    f"{', '.join(map(str, df.columns))}"
                )
            found[canon] = col
            continue
        for a in aliases:
            if a.lower() in lower:
                found[canon] = lower[a.lower()]
                break
    return found


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as float and a mask of cells that were blank."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        vals = series.to_numpy(dtype=float, na_value=np.nan)  # parsed as numbers already
        return vals, np.isnan(vals)
    s = series.astype(object)
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
    path: str | Path | pd.DataFrame, kind: Kind, crs: str | None, layer: str | None
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
        df, rows, geom = read_table(Path(path), layer=layer)
    return df, rows, geom, crs_name, src


def _point_columns(
    df: pd.DataFrame,
    src: str,
    kind: Kind,
    columns: dict[str, str] | None,
    geom: Any,
    in_memory: bool,
    standard: ServiceStandard | None,
) -> tuple[dict[str, str], bool]:
    """The columns found and whether lon/lat columns exist; raises if a required one is missing."""
    cols = _find_columns(df, src, kind, columns)
    if geom is not None and in_memory:
        cols.pop("lon", None)  # a GeoDataFrame's geometry wins over lon/lat-like columns
        cols.pop("lat", None)
    missing = [c for c in _REQUIRED[kind] if c not in cols]
    if kind == "facilities" and standard is None:
        raise InputError("reading facilities needs the service standard to resolve tiers")
    has_xy = "lon" in cols and "lat" in cols
    if not has_xy and geom is None:
        missing += [c for c in ("lon", "lat") if c not in cols]
    if missing:
        raise InputError(
            f"{src}: missing required column(s) {', '.join(missing)}; found "
            f"{', '.join(map(str, df.columns))}. Rename the columns or pass them explicitly "
            f"(e.g. --columns population=常住人口)"
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
        lon, lon_blank = _numeric(df[cols["lon"]])
        lat, lat_blank = _numeric(df[cols["lat"]])
        raw_lon, raw_lat = df[cols["lon"]], df[cols["lat"]]
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


def _flag_duplicate_ids(id_str: pd.Series, rows: NDArray[np.int64], flag: _Flag) -> None:
    """Flag the second and later rows of a duplicate id (the first is kept)."""
    dup = id_str.duplicated(keep="first").to_numpy() & (id_str != "").to_numpy()
    first_row: dict[str, Any] = {}
    for i in np.flatnonzero(id_str.duplicated(keep=False).to_numpy()):
        first_row.setdefault(str(id_str.iat[int(i)]), rows[i])
    flag(
        dup,
        "duplicate_id",
        lambda i: [f"id {v!r} already used on row {first_row.get(v, '?')}" for v in id_str.iloc[i]],
    )


def _tier_column(
    df: pd.DataFrame,
    cols: dict[str, str],
    kind: Kind,
    standard: ServiceStandard | None,
    out: pd.DataFrame,
    flag: _Flag,
) -> None:
    """Set ``out["tier"]`` to the tier keys, flagging tiers the standard does not know."""
    assert standard is not None or kind == "candidates"
    raw_tier = df[cols["tier"]].astype(str).str.strip().to_numpy()
    if standard is not None:
        keys = np.array([standard.resolve_tier(t) or "" for t in raw_tier], dtype=object)
        known = ", ".join(f"{t.key} ({t.label_zh})" for t in standard.tiers)
        # a candidate's tier may be left blank: it is then scored for the requested tier
        blank_ok = (raw_tier == "") if kind == "candidates" else np.zeros(len(raw_tier), bool)
        flag(
            (keys == "") & ~blank_ok,
            "unknown_tier",
            lambda i: [
                f"tier {t!r} is not in standard {standard.name!r}; use one of {known}"
                for t in raw_tier[i]
            ],
        )
        out["tier"] = keys
    else:
        out["tier"] = raw_tier


def _population_columns(
    df: pd.DataFrame, cols: dict[str, str], out: pd.DataFrame, flag: _Flag
) -> None:
    """Set ``out``'s population, elderly and children columns, flagging bad values."""
    pop, pop_blank = _numeric(df[cols["population"]])
    raw_pop = df[cols["population"]]
    flag(pop_blank, "missing_population", "population is empty; give the number of people")
    flag(
        ~pop_blank & np.isnan(pop),
        "non_numeric_population",
        lambda i: [f"population {v!r} is not a number" for v in raw_pop.iloc[i].astype(str)],
    )
    flag(
        ~np.isnan(pop) & (pop < 0),
        "negative_population",
        lambda i: [f"population {v} is negative" for v in pop[i]],
    )
    out["population"] = pop
    for extra in ("elderly", "children"):
        if extra in cols:
            vals, blank = _numeric(df[cols[extra]])
            flag(
                ~blank & (np.isnan(vals) | (vals < 0)),
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
) -> pd.DataFrame:
    """The rejects table of the rows that are not ``good``."""
    return (
        pd.DataFrame(
            {
                "file": src,
                "row": rows[~good],
                "id": id_str.to_numpy()[~good],
                "reason": reason[~good],
                "detail": detail[~good],
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
        Explicit column names, e.g. ``{"population": "常住人口"}``.

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
    df, rows, geom, crs_name, src = _open_points(path, kind, crs, layer)
    n = len(df)
    in_memory = isinstance(path, pd.DataFrame)
    cols, has_xy = _point_columns(df, src, kind, columns, geom, in_memory, standard)

    ids = df[cols["id"]].astype(object)
    id_str = ids.where(~ids.isna(), "").astype(str).str.strip()
    id_str = (
        id_str.str.replace(r"\.0$", "", regex=True) if df[cols["id"]].dtype != object else id_str
    )
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
    lon, lat, crs_name = _point_coordinates(df, cols, has_xy, geom, crs_name, flag)
    geographic = crs_name in ("wgs84", "cgcs2000", "gcj02", "bd09")
    if geographic:
        _flag_out_of_range(lon, lat, flag)

    # duplicate ids (the second and later rows are rejected; the first is kept)
    _flag_duplicate_ids(id_str, rows, flag)

    out = pd.DataFrame({"id": id_str.to_numpy(), "row": rows})
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
        _tier_column(df, cols, kind, standard, out, flag)

    if kind == "residents":
        _population_columns(df, cols, out, flag)
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
    # keep the other input columns for the user's own reference
    used = set(cols.values())
    for c in df.columns:
        if c not in used and str(c) not in out.columns:
            out[str(c)] = df[c].to_numpy()

    rejects = _rejects_frame(src, rows, id_str, reason, detail, good)
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
    return PointTable(kind, src, crs_name, frame, rejects, n)


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
) -> UnitLayer:
    """Read admin-unit polygons (GeoJSON/GeoPackage/Shapefile or a GeoDataFrame) into WGS84.

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
            gdf = gpd.read_file(p)
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
    import geopandas as gpd
    import shapely

    p = Path(path)
    if not p.exists():
        raise InputError(f"boundary file {p} does not exist")
    try:
        gdf = gpd.read_file(p)
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

    def read(self) -> UnitLayer:
        """Read the layer."""
        return read_units(
            self.path,
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
    #: The raw ``[batch]`` section (regions file, scheduler...), read by ``lifecircle batch``.
    batch: dict[str, Any] = field(default_factory=dict)
    grids: dict[str, Any] = field(default_factory=dict)

    def load_standard(self) -> ServiceStandard:
        """The scenario's service standard."""
        return load_standard(self.standard)


_SCENARIO_SECTIONS: Final = {
    "scenario",
    "network",
    "facilities",
    "residents",
    "standard",
    "units",
    "boundaries",
    "candidates",
    "analysis",
    "batch",
    "grids",
}

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
    unknown = set(data) - _SCENARIO_SECTIONS
    if unknown:
        raise InputError(
            f"scenario file {p}: unknown section(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_SCENARIO_SECTIONS))}"
        )
    base = p.parent

    def rel(v: str | None) -> Path | None:
        return None if not v else (base / v).resolve() if not Path(v).is_absolute() else Path(v)

    for section in ("network", "facilities"):
        if "path" not in data.get(section, {}):
            raise InputError(f"scenario file {p}: [{section}] needs a 'path'")
    meta = data.get("scenario", {})
    std = data.get("standard", {})
    standard = std.get("preset") or (str(rel(std["path"])) if "path" in std else "tancheng")
    units = tuple(
        UnitSpec(
            key=u.get("key") or Path(u["path"]).stem,
            path=rel(u["path"]),  # type: ignore[arg-type]
            id_field=u.get("id_field"),
            name_field=u.get("name_field"),
            crs=u.get("crs", "wgs84"),
            label_zh=u.get("label_zh"),
            label_en=u.get("label_en"),
        )
        for u in data.get("units", [])
    )
    bounds = {k: rel(v) for k, v in data.get("boundaries", {}).items()}
    analysis = data.get("analysis", {})
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
        batch=dict(data.get("batch", {})),
        grids=grids,
    )
