"""Writing results: CSV and JSON tables (and, in GIS formats, every result layer).

All writers are atomic: they write to a temporary name in the target folder and rename it at
the end, so an error never leaves a partial file behind. Existing files are only replaced with
``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifecircle.errors import InputError, OutputExistsError

logger = logging.getLogger(__name__)


def check_writable(paths: list[Path], *, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` naming every existing path, unless ``overwrite``."""
    if overwrite:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise OutputExistsError(
            f"output already exists: {', '.join(existing)}; pass --overwrite (overwrite=True) to "
            "replace it, or choose another --out")


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
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


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """Replace non-finite floats by None (JSON has no Infinity/NaN)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def to_json_text(data: Any) -> str:
    """JSON text (UTF-8, Chinese kept, indented; inf/nan as null)."""
    return json.dumps(_clean(data), ensure_ascii=False, indent=2, default=_json_default, allow_nan=False)


def write_json(data: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``data`` as JSON atomically."""
    text = to_json_text(data)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def write_csv(frame: pd.DataFrame, path: str | Path, *, overwrite: bool = False,
              float_format: str | None = None) -> Path:
    """Write a table as UTF-8 CSV atomically (infinite distances as empty cells)."""
    from lifecircle._csv import write_csv_fast

    out = frame.replace([np.inf, -np.inf], np.nan)
    with atomic_path(path, overwrite=overwrite) as tmp:
        # the same bytes as pandas, several times faster on large tables
        if float_format is not None or not write_csv_fast(out, tmp):
            out.to_csv(tmp, index=False, encoding="utf-8", float_format=float_format, lineterminator="\n")
    return Path(path)


def write_text(text: str, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write text atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_files(writers: dict[Path, Callable[[Path], Any]], *, overwrite: bool = False) -> list[Path]:
    """Check every target first, then write each with its writer (atomic per file)."""
    check_writable(list(writers), overwrite=overwrite)
    done = []
    for path, fn in writers.items():
        fn(path)
        done.append(path)
    return done


def resident_table(result: Any) -> pd.DataFrame:
    """The ``residents.csv`` table of a coverage result, distances rounded to centimetres."""
    res = result.residents
    cols = ["id", "population", "elderly", "children", "lon", "lat", "snap_m", "off_network"]
    for t in result.standard.tiers:
        cols += [f"{t.key}_distance_m", f"{t.key}_minutes", f"{t.key}_nearest_id", f"{t.key}_covered"]
    cols.append("all_covered")
    out = res[[c for c in cols if c in res.columns]].copy()
    for c in out.columns:
        if c.endswith("_distance_m") or c == "snap_m":
            out[c] = out[c].round(2)
        elif c.endswith("_minutes"):
            out[c] = out[c].round(3)
        elif c in ("lon", "lat"):
            out[c] = out[c].round(7)
    return out


def facility_table(result: Any) -> pd.DataFrame:
    """The ``facilities.csv`` table of a coverage result."""
    fac = result.facilities
    cols = ["id", "name", "tier", "lon", "lat", "snap_m", "off_network", "catchment_population",
            "catchment_residents"]
    out = fac[cols].copy()
    out["snap_m"] = out["snap_m"].round(2)
    out[["lon", "lat"]] = out[["lon", "lat"]].round(7)
    return out


def write_coverage_outputs(run: Any, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``residents.csv``, ``facilities.csv``, ``summary.json`` and ``rejects.csv``.

    Parameters
    ----------
    run : lifecircle.pipeline.CoverageRun
    out_dir : path
        Created if missing.
    overwrite : bool
        Replace existing files; otherwise any existing target is an error and nothing is written.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {
        "residents": d / "residents.csv",
        "facilities": d / "facilities.csv",
        "summary": d / "summary.json",
        "rejects": d / "rejects.csv",
    }
    check_writable(list(paths.values()), overwrite=overwrite)
    write_csv(resident_table(run.result), paths["residents"], overwrite=True)
    write_csv(facility_table(run.result), paths["facilities"], overwrite=True)
    write_csv(run.inputs.rejects(), paths["rejects"], overwrite=True)
    write_json(run.summary(), paths["summary"], overwrite=True)
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


# =========================================================================================
# GIS export: every result layer as GeoJSON, GeoPackage, Shapefile or CSV, in any CRS
# =========================================================================================
#
# Method
# ------
# 1. *Build* layers from result objects. Every builder returns a GeoDataFrame in WGS84
#    (EPSG:4326) with the documented columns of :data:`LAYER_SCHEMAS` (per-tier columns are
#    expanded from ``{tier}`` templates in the standard's tier order). The registry
#    :data:`LAYER_BUILDERS` maps layer name -> builder, so a new layer is one line.
# 2. *Validate* the whole request (layer names, availability, CRS, format, target paths) before
#    the first byte is written.
# 3. *Transform* every vertex from WGS84 to the output CRS: pyproj for CGCS2000 and EPSG codes,
#    :func:`lifecircle.coords.convert` (the same code that reads GCJ-02/BD-09 inputs) through
#    :func:`shapely.transform` for GCJ-02/BD-09. Polygons are oriented counter-clockwise
#    (RFC 7946 right-hand rule) and coordinates rounded to the requested precision.
# 4. *Write* with pyogrio into a temporary name next to the target and rename at the end.

#: Output formats and their file extension.
GIS_FORMATS: dict[str, str] = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".shp", "csv": ".csv"}

#: Default coordinate precision (decimals) for degrees and for metres.
DEFAULT_PRECISION_DEG = 6
DEFAULT_PRECISION_M = 2

#: Output CRS options besides ``EPSG:n``.
OUTPUT_CRS_NAMES = ("wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09")

_GK_ALIASES = ("cgcs2000-gk", "cgcs2000_gk", "cgcs2000gk", "gk", "gauss-kruger", "gauss-krueger",
               "cgcs2000-gk3")

_OBFUSCATED_WKT = (
    'GEOGCRS["{name}",DATUM["{name} (obfuscated WGS 84, not a geodetic datum)",'
    'ELLIPSOID["WGS 84",6378137,298.257223563,LENGTHUNIT["metre",1]]],'
    'PRIMEM["Greenwich",0,ANGLEUNIT["degree",0.0174532925199433]],CS[ellipsoidal,2],'
    'AXIS["longitude",east,ORDER[1],ANGLEUNIT["degree",0.0174532925199433]],'
    'AXIS["latitude",north,ORDER[2],ANGLEUNIT["degree",0.0174532925199433]],'
    'REMARK["{remark}"]]'
)
_OBFUSCATED_REMARK = {
    "gcj02": "GCJ-02 (Amap/Tencent): WGS 84 lon/lat shifted by the GCJ-02 algorithm. Do not "
             "reproject as a datum; convert with lifecircle.coords.convert(..., 'gcj02', 'wgs84')",
    "bd09": "BD-09 (Baidu): GCJ-02 shifted again by Baidu's algorithm. Do not reproject as a "
            "datum; convert with lifecircle.coords.convert(..., 'bd09', 'wgs84')",
}


class LayerUnavailableError(InputError):
    """A requested layer exists but cannot be produced in this run."""


@dataclass(frozen=True)
class OutputCRS:
    """The coordinate system of an export.

    Attributes
    ----------
    name : str
        ``"wgs84"``, ``"cgcs2000"``, ``"gcj02"``, ``"bd09"`` or ``"EPSG:n"`` (Gauss-Krüger zones
        resolve to their ``EPSG:n``).
    label : str
        Human-readable name, e.g. ``"CGCS2000 / 3-degree Gauss-Kruger CM 117E (EPSG:4548)"``.
    geographic : bool
        True for lon/lat degrees, False for projected metres.
    tag : str
        Suffix added to file names for non-WGS84 output (``""`` for WGS84), e.g. ``"epsg4548"``.
    reason : str
        Why this CRS (for the automatic Gauss-Krüger zone: the data extent and central meridian).
    """

    name: str
    label: str
    geographic: bool
    tag: str
    reason: str = ""

    @property
    def is_wgs84(self) -> bool:
        """True for plain WGS84 output (standard RFC 7946 GeoJSON)."""
        return self.name == "wgs84"

    @property
    def obfuscated(self) -> bool:
        """True for GCJ-02/BD-09 (offset lon/lat that no EPSG code describes)."""
        return self.name in ("gcj02", "bd09")

    @property
    def default_precision(self) -> int:
        """Default decimals: 6 for degrees (~0.1 m), 2 for metres (1 cm)."""
        return DEFAULT_PRECISION_DEG if self.geographic else DEFAULT_PRECISION_M

    def pyproj_crs(self) -> Any:
        """The CRS to declare in files (a custom WKT CRS named GCJ-02/BD-09 for those)."""
        from pyproj import CRS

        if self.name == "wgs84":
            return CRS.from_epsg(4326)
        if self.name == "cgcs2000":
            return CRS.from_epsg(4490)
        if self.obfuscated:
            return CRS.from_wkt(self.wkt())
        return CRS.from_user_input(self.name)

    def wkt(self) -> str:
        """WKT2 of the declared CRS."""
        if self.obfuscated:
            return _OBFUSCATED_WKT.format(name="GCJ-02" if self.name == "gcj02" else "BD-09",
                                          remark=_OBFUSCATED_REMARK[self.name])
        return str(self.pyproj_crs().to_wkt())

    def from_wgs84(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 lon/lat (degrees) -> output coordinates."""
        from lifecircle.coords import from_wgs84

        if self.name == "wgs84":
            return np.asarray(lon, float), np.asarray(lat, float)
        return from_wgs84(lon, lat, self.name)

    def to_wgs84(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output coordinates -> WGS84 lon/lat (degrees); the exact inverse of :meth:`from_wgs84`."""
        from lifecircle.coords import to_wgs84

        if self.name == "wgs84":
            return np.asarray(x, float), np.asarray(y, float)
        return to_wgs84(x, y, self.name)

    def transform_geometries(self, geoms: np.ndarray, *, inverse: bool = False) -> np.ndarray:
        """Apply :meth:`from_wgs84` (or :meth:`to_wgs84`) to every vertex of ``geoms``."""
        import shapely

        if self.name == "wgs84" or len(geoms) == 0:
            return geoms
        fn = self.to_wgs84 if inverse else self.from_wgs84

        def apply(xy: np.ndarray) -> np.ndarray:
            x, y = fn(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return np.asarray(shapely.transform(geoms, apply))


def resolve_output_crs(name: str, *, lon_range: tuple[float, float] | None = None) -> OutputCRS:
    """Resolve an output CRS option.

    Parameters
    ----------
    name : str
        ``wgs84``, ``cgcs2000`` (EPSG:4490), ``cgcs2000-gk`` (3-degree Gauss-Krüger zone chosen
        from the data), ``cgcs2000-gk:<CM>`` (zone of central meridian ``CM`` degrees east),
        ``gcj02``, ``bd09`` or ``EPSG:n`` (aliases as in :func:`lifecircle.coords.normalize_crs_name`).
    lon_range : (float, float), optional
        West and east longitude (WGS84 degrees) of the data, needed for ``cgcs2000-gk``.

    Returns
    -------
    OutputCRS

    Raises
    ------
    CRSError
        For unknown names, or ``cgcs2000-gk`` without a longitude range.
    """
    from lifecircle.coords import cgcs2000_gk_epsg, normalize_crs_name
    from lifecircle.errors import CRSError

    key = str(name).strip().lower()
    base, _, arg = key.partition(":")
    if base in _GK_ALIASES:
        if arg:
            try:
                cm = float(arg.rstrip("e"))
            except ValueError:
                raise CRSError(f"bad Gauss-Kruger central meridian {arg!r} in {name!r}; use e.g. "
                               "cgcs2000-gk:117") from None
            if cm % 3:
                raise CRSError(f"{cm:g}E is not the central meridian of a 3-degree zone "
                               "(multiples of 3 degrees east)")
            epsg = cgcs2000_gk_epsg(cm)
            reason = f"central meridian {cm:g}E given"
        else:
            if lon_range is None or not all(np.isfinite(lon_range)):
                raise CRSError("cgcs2000-gk needs data to choose the zone from; give the zone as "
                               "cgcs2000-gk:<CM> or EPSG:n")
            west, east = float(lon_range[0]), float(lon_range[1])
            centre = (west + east) / 2.0
            epsg = cgcs2000_gk_epsg(centre)
            cm = 75.0 + 3.0 * (epsg - 4534)
            reason = (f"the data span {west:.4f}E to {east:.4f}E; their centre {centre:.4f}E lies "
                      f"in the 3-degree zone of central meridian {cm:g}E ({cm - 1.5:g}E to "
                      f"{cm + 1.5:g}E)")
            if west < cm - 1.5 or east > cm + 1.5:
                reason += (f"; part of the data lies outside that zone (up to "
                           f"{max(cm - west, east - cm):.2f} degrees from the central meridian; "
                           "scale distortion grows with the square of that distance)")
        return OutputCRS(f"EPSG:{epsg}", f"CGCS2000 / 3-degree Gauss-Kruger CM {cm:g}E (EPSG:{epsg})",
                         geographic=False, tag=f"epsg{epsg}", reason=reason)
    canon = normalize_crs_name(name)
    if canon == "wgs84":
        return OutputCRS("wgs84", "WGS 84 (EPSG:4326)", geographic=True, tag="")
    if canon == "cgcs2000":
        return OutputCRS("cgcs2000", "CGCS2000 (EPSG:4490)", geographic=True, tag="cgcs2000")
    if canon == "gcj02":
        return OutputCRS("gcj02", "GCJ-02 (Amap/Tencent, offset lon/lat)", geographic=True, tag="gcj02")
    if canon == "bd09":
        return OutputCRS("bd09", "BD-09 (Baidu, offset lon/lat)", geographic=True, tag="bd09")
    from pyproj import CRS

    crs = CRS.from_user_input(canon)
    code = canon.split(":")[1]
    if code == "4326":
        return OutputCRS("wgs84", "WGS 84 (EPSG:4326)", geographic=True, tag="")
    return OutputCRS(canon, f"{crs.name} ({canon})", geographic=bool(crs.is_geographic),
                     tag=f"epsg{code}", reason="given")


# -- layer schemas --------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    """One attribute of an exported layer.

    ``name`` may contain ``{tier}`` (expanded once per tier of the standard, highest first);
    ``short`` is the Shapefile field name (at most 10 characters; ``{n}`` is the tier's 1-based
    position in the standard).
    """

    name: str
    type: str
    unit: str
    meaning: str
    short: str


def _f(name: str, type_: str, unit: str, meaning: str, short: str | None = None) -> FieldSpec:
    return FieldSpec(name, type_, unit, meaning, short or name)


#: Documented columns of every layer (the geometry column is not listed).
LAYER_SCHEMAS: dict[str, tuple[FieldSpec, ...]] = {
    "facilities": (
        _f("id", "string", "", "facility id from the input file"),
        _f("name", "string", "", "facility name (Chinese kept, UTF-8)"),
        _f("tier", "string", "", "tier key of the standard, e.g. community_centre"),
        _f("tier_label", "string", "", "tier name in Chinese, e.g. 社区党群服务中心"),
        _f("mode", "string", "", "travel mode of the tier: walk, bike or drive"),
        _f("threshold_m", "float", "m", "network distance standard of the tier", "thresh_m"),
        _f("minutes", "float", "min", "time standard of the tier"),
        _f("snap_m", "float", "m", "straight-line distance from the site to the nearest street"),
        _f("off_network", "bool", "", "true when the site is farther than max_snap_m from every "
           "street (it serves nobody)", "off_net"),
        _f("population_within", "float", "people", "people whose network distance to this site is "
           "within the tier's standard (overlaps between sites counted for each)", "pop_within"),
        _f("residents_within", "integer", "points", "resident points within the standard",
           "res_within"),
        _f("catchment_population", "float", "people", "covered people for whom this is the nearest "
           "site of its tier", "catch_pop"),
        _f("catchment_residents", "integer", "points", "resident points in that catchment",
           "catch_res"),
    ),
    "residents": (
        _f("id", "string", "", "resident point id from the input file"),
        _f("population", "float", "people", "people at the point", "pop"),
        _f("elderly", "float", "people", "people aged 60+ (null when not given)"),
        _f("children", "float", "people", "children (null when not given)"),
        _f("snap_m", "float", "m", "straight-line distance from the point to the nearest street"),
        _f("off_network", "bool", "", "true when farther than max_snap_m from every street "
           "(counted, never covered)", "off_net"),
        _f("{tier}_distance_m", "float", "m", "network distance to the nearest facility of the "
           "tier, access legs included; null when none is reachable", "t{n}_dist_m"),
        _f("{tier}_minutes", "float", "min", "that distance at the tier's speed; null when none is "
           "reachable", "t{n}_min"),
        _f("{tier}_nearest_id", "string", "", "id of that facility (empty when none)", "t{n}_near"),
        _f("{tier}_covered", "bool", "", "distance within the tier's standard", "t{n}_cov"),
        _f("all_covered", "bool", "", "covered for every tier (complete living circle)", "all_cov"),
    ),
    "units": (
        _f("unit_kind", "string", "", "kind of unit layer, e.g. community or grid", "unit_kind"),
        _f("unit_id", "string", "", "unit id from the units file"),
        _f("name", "string", "", "unit name"),
        _f("residents", "integer", "points", "resident points inside the unit"),
        _f("population", "float", "people", "people inside the unit", "pop"),
        _f("{tier}_population_covered", "float", "people", "people inside the unit within the "
           "tier's standard", "t{n}_popcov"),
        _f("{tier}_share", "float", "0-1", "达标率: covered share of the unit's people for the "
           "tier (null when the unit has no people)", "t{n}_share"),
        _f("all_population_covered", "float", "people", "people covered for every tier",
           "all_popcov"),
        _f("all_share", "float", "0-1", "share of people covered for every tier (null when "
           "empty)"),
    ),
    "service_areas": (
        _f("facility_id", "string", "", "id of the facility", "fac_id"),
        _f("name", "string", "", "facility name"),
        _f("tier", "string", "", "tier key"),
        _f("mode", "string", "", "travel mode"),
        _f("budget_min", "float", "min", "travel-time budget of the area"),
        _f("budget_m", "float", "m", "network distance budget of the area"),
        _f("area_m2", "float", "m²", "polygon area (in the analysis CRS)"),
        _f("population", "float", "people", "people whose network distance to the facility is "
           "within the budget (from distances, not point-in-polygon)", "pop"),
        _f("residents", "integer", "points", "resident points counted"),
    ),
    "catchments": (
        _f("facility_id", "string", "", "id of the facility", "fac_id"),
        _f("name", "string", "", "facility name"),
        _f("tier", "string", "", "tier key"),
        _f("mode", "string", "", "travel mode"),
        _f("budget_min", "float", "min", "travel-time budget"),
        _f("budget_m", "float", "m", "network distance budget"),
        _f("area_m2", "float", "m²", "polygon area (in the analysis CRS)"),
        _f("population", "float", "people", "people for whom this is the nearest facility of "
           "its tier within the budget (the population served)", "pop"),
        _f("residents", "integer", "points", "resident points counted"),
    ),
    "network": (
        _f("mode", "string", "", "network mode: walk, bike or drive"),
        _f("u", "integer", "", "OSM node id at the start of the segment"),
        _f("v", "integer", "", "OSM node id at the end of the segment"),
        _f("length_m", "float", "m", "segment length"),
        _f("highway", "string", "", "OSM highway tag (empty when unknown)"),
        _f("name", "string", "", "street name (empty when unnamed)"),
        _f("oneway", "bool", "", "drive mode: travel only from u to v"),
    ),
    # gaps: the table of lifecircle.report.find_gaps (columns it adds later pass through)
    "gaps": (
        _f("rank", "integer", "", "1 = the gap with the most people"),
        _f("gap_id", "string", "", "gap id"),
        _f("tier", "string", "", "tier whose standard these residents miss"),
        _f("tiers_missing", "string", "", "';'-separated tiers that at least half of the gap's "
           "people miss", "tiers_miss"),
        _f("population", "float", "people", "people in the gap", "pop"),
        _f("elderly", "float", "people", "people aged 60+ in the gap"),
        _f("residents", "integer", "points", "resident points in the gap"),
        _f("cells", "integer", "", "grid cells merged into the gap"),
        _f("area_m2", "float", "m²", "area of those cells"),
        _f("wgs84_lon", "float", "degree", "population-weighted centroid, WGS84 longitude "
           "(always WGS84, whatever the output CRS)"),
        _f("wgs84_lat", "float", "degree", "population-weighted centroid, WGS84 latitude"),
        _f("threshold_m", "float", "m", "standard of the tier", "thresh_m"),
        _f("nearest_facility_id", "string", "", "nearest facility of the tier from the gap's "
           "centre resident", "near_fac"),
        _f("nearest_facility_distance_m", "float", "m", "network distance to it (null when "
           "unreachable)", "near_dist"),
        _f("shortfall_m", "float", "m", "that distance beyond the standard", "shortfall"),
        _f("median_distance_m", "float", "m", "population-weighted median distance over the gap",
           "med_dist_m"),
    ),
    # candidates: lifecircle.siting.CANDIDATE_COLUMNS (described there), passed through
    "candidates": (
        _f("rank", "integer", "", "1 = best candidate"),
        _f("candidate_id", "string", "", "candidate id", "cand_id"),
        _f("name", "string", "", "candidate name"),
        _f("selected", "bool", "", "chosen by the selection", "selected"),
        _f("pick_gain", "float", "weight", "weight newly covered when it was picked"),
        _f("cumulative_share", "float", "0-1", "tier coverage after this pick", "cum_share"),
        _f("marginal_gain", "float", "weight", "uncovered weight it alone would cover", "gain"),
        _f("marginal_gain_population", "float", "people", "uncovered people it alone would cover",
           "gain_pop"),
        _f("marginal_gain_elderly", "float", "people", "uncovered elderly it alone would cover",
           "gain_eld"),
        _f("total_within", "float", "weight", "weight within the standard of the site",
           "tot_within"),
        _f("overlap", "float", "weight", "weight within reach that is already covered"),
        _f("overlap_share", "float", "0-1", "overlap / total_within", "overlap_sh"),
        _f("residents_within", "integer", "points", "resident points within the standard",
           "res_within"),
        _f("residents_new", "integer", "points", "uncovered resident points within it", "res_new"),
        _f("nearest_existing_m", "float", "m", "network distance to the nearest existing "
           "facility of the tier", "near_ex_m"),
        _f("nearest_existing_id", "string", "", "its id", "near_ex_id"),
        _f("snap_m", "float", "m", "distance to the nearest street"),
        _f("on_network", "bool", "", "within max_snap_m of a street", "on_net"),
        _f("capacity", "float", "people", "capacity (null when not given)"),
        _f("reason_zh", "string", "", "one-line reason (Chinese)"),
        _f("reason_en", "string", "", "one-line reason (English)"),
    ),
}

#: Extra Shapefile abbreviations for columns of pass-through layers.
_SHORT_WORDS = {"population": "pop", "distance": "dist", "facility": "fac", "covered": "cov",
                "residents": "res", "catchment": "catch", "minutes": "min", "score": "score"}

LAYER_DESCRIPTIONS: dict[str, str] = {
    "facilities": "facility points with tier, snapping, population within standard, catchment",
    "residents": "resident points with per-tier distance, minutes, nearest facility, covered",
    "units": "unit polygons (communities, grids) with per-tier 达标率",
    "service_areas": "per facility, the area reachable within its tier's standard",
    "catchments": "per facility, the area it is the nearest facility of its tier for",
    "gaps": "areas/residents outside the standard (from lifecircle.report)",
    "candidates": "scored candidate sites (from lifecircle.siting)",
    "network": "road network segments with length (one per mode)",
}


def layer_fields(layer: str, tier_keys: Sequence[str]) -> list[FieldSpec]:
    """The documented fields of ``layer`` with ``{tier}`` templates expanded in tier order."""
    out: list[FieldSpec] = []
    specs = LAYER_SCHEMAS.get(layer, ())
    i = 0
    while i < len(specs):
        if "{tier}" in specs[i].name:
            j = i
            while j < len(specs) and "{tier}" in specs[j].name:
                j += 1
            for n, key in enumerate(tier_keys, start=1):
                out += [FieldSpec(s.name.format(tier=key), s.type, s.unit, s.meaning,
                                  s.short.format(n=n)) for s in specs[i:j]]
            i = j
        else:
            out.append(specs[i])
            i += 1
    return out


def _dtype_name(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_integer_dtype(s):
        return "integer"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "string"


def _generic_short(name: str) -> str:
    parts = [_SHORT_WORDS.get(p.lower(), p) for p in name.split("_")]
    return "_".join(parts)[:10]


def field_table(gdf: Any, layer: str, tier_keys: Sequence[str]) -> pd.DataFrame:
    """Name, Shapefile name, type, unit and meaning of every attribute column of ``gdf``.

    Shapefile names: the documented short name; else the name with common words abbreviated
    (population→pop, distance→dist, …) cut to 10 characters; a name that clashes
    (case-insensitively) with an earlier one gets ``_2``, ``_3``… in its last characters.
    """
    known = {f.name: f for f in layer_fields(layer, tier_keys)}
    rows = []
    used: set[str] = set()
    for col in gdf.columns:
        if col == gdf.geometry.name:
            continue
        spec = known.get(col)
        short = (spec.short if spec else _generic_short(str(col)))[:10]
        k = 2
        base = short
        while short.lower() in used:
            suffix = f"_{k}"
            short = base[:10 - len(suffix)] + suffix
            k += 1
        used.add(short.lower())
        rows.append({"field": short, "name": col,
                     "type": spec.type if spec else _dtype_name(gdf[col]),
                     "unit": spec.unit if spec else "",
                     "meaning": spec.meaning if spec else f"passed through from the {layer} result"})
    return pd.DataFrame(rows, columns=["field", "name", "type", "unit", "meaning"])


def schema_markdown(tier_keys: Sequence[str] = ("{tier}",)) -> str:
    """The schema tables of every layer as Markdown (used for ``docs/gis-export.md``)."""
    lines = []
    for layer, _ in LAYER_SCHEMAS.items():
        fields = layer_fields(layer, tier_keys) if tier_keys != ("{tier}",) else list(LAYER_SCHEMAS[layer])
        if not fields:
            continue
        lines += [f"### `{layer}`", "", LAYER_DESCRIPTIONS[layer] + ".", "",
                  "| name | type | unit | meaning | Shapefile field |", "|---|---|---|---|---|"]
        for f in fields:
            short = f.short.replace("{n}", "N")
            lines.append(f"| `{f.name}` | {f.type} | {f.unit} | {f.meaning} | `{short}` |")
        lines.append("")
    return "\n".join(lines)


# -- layer builders -------------------------------------------------------------------------

@dataclass
class ExportSources:
    """What layers are built from: a coverage run plus optional precomputed results.

    Attributes
    ----------
    run : lifecircle.pipeline.CoverageRun
    service_areas, catchments, gaps, candidates : GeoDataFrame, optional
        Precomputed layers (WGS84, or any CRS geopandas knows; they are converted). When
        missing, the builder tries the module that computes them.
    unit_tables : DataFrame or GeoDataFrame, optional
        Precomputed per-unit tables (from :mod:`lifecircle.report`) with ``unit_id`` (and
        ``unit_kind`` when several unit layers exist); used instead of the simple per-unit
        coverage computed here.
    """

    run: Any
    service_areas: Any = None
    catchments: Any = None
    gaps: Any = None
    candidates: Any = None
    unit_tables: Any = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def standard(self) -> Any:
        return self.run.result.standard

    @property
    def tier_keys(self) -> tuple[str, ...]:
        return tuple(self.standard.keys)


def _points_gdf(frame: pd.DataFrame, columns: list[str]) -> Any:
    import geopandas as gpd
    import shapely

    geoms = shapely.points(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    data = {c: frame[c].to_numpy() for c in columns}
    return gpd.GeoDataFrame(pd.DataFrame(data, index=pd.RangeIndex(len(frame))), geometry=geoms,
                            crs="EPSG:4326")


def _population_within(src: ExportSources) -> tuple[np.ndarray, np.ndarray]:
    """Per facility: people and resident points within its own tier's standard (network)."""
    if "population_within" in src.cache:
        return src.cache["population_within"]
    from lifecircle.routing import RoutingGraph, pair_distances_within

    result = src.run.result
    fac = result.facilities
    res = result.residents
    pop = res["population"].to_numpy(float)
    people = np.zeros(len(fac))
    points = np.zeros(len(fac), dtype=np.int64)
    tiers = fac["tier"].to_numpy()
    res_xy = np.column_stack([result.resident_located.x, result.resident_located.y])
    fac_xy = np.column_stack([result.facility_located.x, result.facility_located.y])
    for tier in src.standard.tiers:
        idx = np.flatnonzero(tiers == tier.key)
        if len(idx) == 0 or len(res) == 0:
            continue
        graph = RoutingGraph.from_network(src.run.inputs.networks[tier.mode])
        s, _d, _m = pair_distances_within(
            graph, result.facility_located.positions(tier.mode).subset(idx),
            result.resident_located.positions(tier.mode), fac_xy[idx], res_xy,
            limit_m=tier.threshold_m)
        people[idx] = np.bincount(s, weights=pop[_d], minlength=len(idx))
        points[idx] = np.bincount(s, minlength=len(idx))
    src.cache["population_within"] = (people, points)
    return people, points


def facilities_layer(src: ExportSources) -> Any:
    """Facility points (see :data:`LAYER_SCHEMAS` ``facilities``)."""
    fac = src.run.result.facilities
    std = src.standard
    f = fac[["id", "name", "tier", "lon", "lat", "snap_m", "off_network", "catchment_population",
             "catchment_residents"]].copy()
    tiers = {t.key: t for t in std.tiers}
    f["tier_label"] = [tiers[k].label_zh for k in f["tier"]]
    f["mode"] = [tiers[k].mode for k in f["tier"]]
    f["threshold_m"] = [tiers[k].threshold_m for k in f["tier"]]
    f["minutes"] = [tiers[k].minutes for k in f["tier"]]
    f["population_within"], f["residents_within"] = _population_within(src)
    f["snap_m"] = f["snap_m"].round(2)
    f["catchment_residents"] = f["catchment_residents"].astype(np.int64)
    cols = [s.name for s in LAYER_SCHEMAS["facilities"]]
    f["tier"] = f["tier"].astype(str)
    return _points_gdf(f, cols)


def residents_layer(src: ExportSources) -> Any:
    """Resident points with the per-tier columns (see :data:`LAYER_SCHEMAS` ``residents``)."""
    table = resident_table(src.run.result)
    cols = [f.name for f in layer_fields("residents", src.tier_keys)]
    return _points_gdf(table, cols)


def _unit_membership(points_lon: np.ndarray, points_lat: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Index of the (first) polygon containing each point (boundary included), -1 if none."""
    import shapely

    pts = np.asarray(shapely.points(points_lon, points_lat))
    tree = shapely.STRtree(polygons)
    pi, ui = tree.query(pts, predicate="intersects")
    out = np.full(len(pts), -1, dtype=np.int64)
    if len(pi):
        order = np.lexsort((ui, pi))  # per point, the lowest unit index first
        first_p, first = np.unique(pi[order], return_index=True)
        out[first_p] = ui[order][first]
    return out


def units_layer(src: ExportSources) -> Any:
    """Unit polygons with per-tier 达标率 (see :data:`LAYER_SCHEMAS` ``units``).

    Residents are assigned to the unit whose polygon contains their point (on a shared boundary,
    the first unit in file order). A resident outside every unit counts in no unit.
    """
    import geopandas as gpd

    layers = src.run.inputs.units
    if not layers:
        raise LayerUnavailableError(
            "layer 'units' is not available in this run: no unit polygons were loaded; give "
            "--units FILE (communities, grids) or a scenario with [[units]]")
    if src.unit_tables is not None:
        return _precomputed_units(src)
    res = src.run.result.residents
    pop = res["population"].to_numpy(float)
    lon = res["lon"].to_numpy(float)
    lat = res["lat"].to_numpy(float)
    frames = []
    for layer in layers:
        polys = np.asarray(layer.frame.geometry.values)
        k = len(polys)
        member = _unit_membership(lon, lat, polys)
        inside = member >= 0
        m = member[inside]
        p = pop[inside]
        d: dict[str, Any] = {
            "unit_kind": np.full(k, layer.key, dtype=object),
            "unit_id": layer.frame["unit_id"].astype(str).to_numpy(),
            "name": layer.frame["name"].astype(str).to_numpy(),
            "residents": np.bincount(m, minlength=k).astype(np.int64),
            "population": np.bincount(m, weights=p, minlength=k),
        }
        total = d["population"]
        with np.errstate(invalid="ignore", divide="ignore"):
            for key in src.tier_keys:
                cov = res[f"{key}_covered"].to_numpy(bool)[inside]
                c = np.bincount(m, weights=p * cov, minlength=k)
                d[f"{key}_population_covered"] = c
                d[f"{key}_share"] = np.where(total > 0, c / total, np.nan)
            allc = np.bincount(m, weights=p * res["all_covered"].to_numpy(bool)[inside], minlength=k)
            d["all_population_covered"] = allc
            d["all_share"] = np.where(total > 0, allc / total, np.nan)
        frames.append(gpd.GeoDataFrame(pd.DataFrame(d), geometry=polys, crs="EPSG:4326"))
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")


def _precomputed_units(src: ExportSources) -> Any:
    """Per-unit tables computed elsewhere (e.g. ``lifecircle.report``), joined to their polygons.

    Accepts a GeoDataFrame (used as is), a DataFrame with ``unit_id`` (and ``unit_kind`` or
    ``layer`` when there are several unit layers), or ``{unit_kind: DataFrame}``. Rows whose
    unit has no polygon (such as the report's "outside all units" row) are dropped.
    """
    import geopandas as gpd

    t = src.unit_tables
    if isinstance(t, gpd.GeoDataFrame) and t.crs is not None:
        return t.to_crs(4326)
    if isinstance(t, dict):
        t = pd.concat([pd.DataFrame(v).assign(unit_kind=k) for k, v in t.items()], ignore_index=True)
    tab = pd.DataFrame(t).drop(columns=["geometry"], errors="ignore")
    if "unit_kind" not in tab.columns and "layer" in tab.columns:
        tab = tab.rename(columns={"layer": "unit_kind"})
    if "unit_id" not in tab.columns:
        raise LayerUnavailableError("layer 'units': the precomputed unit table has no unit_id column")
    geo = pd.concat([pd.DataFrame({"unit_kind": layer.key,
                                   "unit_id": layer.frame["unit_id"].astype(str).to_numpy(),
                                   "geometry": np.asarray(layer.frame.geometry.values)})
                     for layer in src.run.inputs.units], ignore_index=True)
    on = ["unit_kind", "unit_id"] if "unit_kind" in tab.columns else ["unit_id"]
    merged = tab.assign(unit_id=tab["unit_id"].astype(str)).merge(geo, on=on, how="inner")
    cols = ["unit_kind", *[c for c in merged.columns if c != "unit_kind"]]
    return gpd.GeoDataFrame(merged[cols], geometry="geometry", crs="EPSG:4326")


def network_layer(src: ExportSources) -> Any:
    """Road segments of every mode's network as WGS84 LineStrings."""
    import geopandas as gpd
    import shapely

    frames = []
    for mode, net in sorted(src.run.inputs.networks.items()):
        lon, lat = net.to_lonlat(net.node_x, net.node_y)
        u, v = net.edge_u, net.edge_v
        coords = np.stack([np.column_stack([lon[u], lat[u]]), np.column_stack([lon[v], lat[v]])], axis=1)
        geoms = shapely.linestrings(coords)
        hw = np.asarray([*net.highway_values, ""], dtype=object)[net.edge_highway]
        nm = np.asarray([*net.name_values, ""], dtype=object)[net.edge_name]
        frames.append(gpd.GeoDataFrame(pd.DataFrame({
            "mode": np.full(len(u), mode, dtype=object),
            "u": net.node_id[u].astype(np.int64),
            "v": net.node_id[v].astype(np.int64),
            "length_m": np.round(net.edge_length_m, 2),
            "highway": hw.astype(str),
            "name": nm.astype(str),
            "oneway": np.asarray(net.edge_oneway, bool),
        }), geometry=geoms, crs="EPSG:4326"))
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def _given_gdf(layer: str, given: Any) -> Any:
    """A precomputed layer as a WGS84 GeoDataFrame."""
    import geopandas as gpd

    if hasattr(given, "to_wgs84"):  # lifecircle.service_areas.ServiceAreas
        given = given.to_wgs84()
    if not isinstance(given, gpd.GeoDataFrame):
        raise LayerUnavailableError(f"layer {layer!r}: expected a GeoDataFrame, got {type(given).__name__}")
    if given.crs is None:
        raise LayerUnavailableError(f"layer {layer!r} has no CRS")
    return given.to_crs(4326) if given.crs.to_epsg() != 4326 else given


def _areas(src: ExportSources, layer: str, dissolve: str) -> Any:
    given = getattr(src, layer)
    if given is None:
        try:
            from lifecircle.service_areas import compute_service_areas
        except ImportError:
            raise LayerUnavailableError(
                f"layer {layer!r} is not available in this run: lifecircle.service_areas is not "
                "part of this installation") from None
        run = src.run
        res = run.inputs.residents
        given = compute_service_areas(
            run.inputs.networks, run.inputs.facilities.frame, src.standard,
            residents=res.frame if res is not None else None, dissolve=dissolve,
            max_snap_m=run.inputs.max_snap_m, facility_located=run.result.facility_located,
            resident_located=run.result.resident_located)
    return _given_gdf(layer, given)


def service_areas_layer(src: ExportSources) -> Any:
    """Per facility, the polygon reachable within its tier's standard
    (:func:`lifecircle.service_areas.compute_service_areas`, ``dissolve="none"``)."""
    return _areas(src, "service_areas", "none")


def catchments_layer(src: ExportSources) -> Any:
    """Per facility, the part of its tier's service area it is the nearest facility for
    (:func:`lifecircle.service_areas.compute_service_areas`, ``dissolve="catchment"``)."""
    return _areas(src, "catchments", "catchment")


def gaps_layer(src: ExportSources) -> Any:
    """Coverage gaps (:func:`lifecircle.report.find_gaps`): outlines with the full gap table.

    ``src.gaps`` may hold a precomputed :class:`lifecircle.report.Gaps` or GeoDataFrame.
    """
    import geopandas as gpd

    gaps = src.gaps
    if gaps is None:
        try:
            from lifecircle import report
        except ImportError:
            raise LayerUnavailableError("layer 'gaps' is not available in this run: "
                                        "lifecircle.report is not part of this installation") from None
        run = src.run
        units = {}
        for layer in run.inputs.units:
            idx = report.assign_units(run.result.residents["lon"].to_numpy(float),
                                      run.result.residents["lat"].to_numpy(float),
                                      np.asarray(layer.frame.geometry.values))
            units[layer.key] = (idx, layer.frame["unit_id"].astype(str).to_numpy(dtype=object))
        gaps = report.find_gaps(run.result, units=units)
    if isinstance(gaps, gpd.GeoDataFrame):
        return gaps.to_crs(4326)
    outlines = gaps.geometries()
    table = gaps.table.drop(columns=[c for c in ("x", "y") if c in gaps.table.columns])
    table = table.reset_index(drop=True).rename(columns={"lon": "wgs84_lon", "lat": "wgs84_lat"})
    if "tiers_missing" in table.columns:
        table["tiers_missing"] = table["tiers_missing"].astype(str)
    return gpd.GeoDataFrame(table, geometry=np.asarray(outlines.geometry.values), crs="EPSG:4326")


def candidates_layer(src: ExportSources) -> Any:
    """Scored candidate sites: ``src.candidates`` holds a :class:`lifecircle.siting.ScoringRun`,
    its ``ScoringResult``, a DataFrame with ``lon``/``lat`` (WGS84) or a GeoDataFrame."""
    import geopandas as gpd

    given = src.candidates
    if given is None:
        raise LayerUnavailableError(
            "layer 'candidates' is not available in this run: no sites were scored; give "
            "--score-tier TIER (and --candidates FILE or auto)")
    if hasattr(given, "result") and hasattr(given.result, "candidates"):
        given = given.result
    if hasattr(given, "candidates") and isinstance(given.candidates, pd.DataFrame):
        given = given.candidates
    if isinstance(given, gpd.GeoDataFrame):
        return _given_gdf("candidates", given)
    frame = pd.DataFrame(given)
    if not {"lon", "lat"} <= set(frame.columns):
        raise LayerUnavailableError("layer 'candidates': the table has no lon/lat columns")
    cols = [c for c in frame.columns if c not in ("lon", "lat", "x", "y")]
    return _points_gdf(frame.reset_index(drop=True), cols)


#: Layer name -> builder. Adding a layer is one line here plus its schema above.
LAYER_BUILDERS: dict[str, Callable[[ExportSources], Any]] = {
    "facilities": facilities_layer,
    "residents": residents_layer,
    "service_areas": service_areas_layer,
    "catchments": catchments_layer,
    "gaps": gaps_layer,
    "units": units_layer,
    "candidates": candidates_layer,
    "network": network_layer,
}

#: Layers computed by another module: layer -> (ExportSources attribute, module).
OPTIONAL_LAYER_MODULES: dict[str, tuple[str, str]] = {
    "service_areas": ("service_areas", "service_areas"),
    "catchments": ("catchments", "service_areas"),
    "gaps": ("gaps", "report"),
}


def unavailable_layers(names: Sequence[str], *, units_loaded: bool,
                       given: Sequence[str] = ()) -> list[str]:
    """Reasons why requested layers cannot be built (checked before any computation).

    Parameters
    ----------
    names : sequence of str
        Requested layers (already validated by :func:`parse_layers`).
    units_loaded : bool
        Whether unit polygons were loaded.
    given : sequence of str
        :class:`ExportSources` attributes that were supplied precomputed.
    """
    import importlib.util

    out = []
    if "units" in names and not units_loaded:
        out.append("layer 'units' is not available in this run: no unit polygons were loaded; "
                   "give --units FILE (communities, grids) or a scenario with [[units]]")
    if "candidates" in names and "candidates" not in given:
        out.append("layer 'candidates' is not available in this run: no sites were scored; "
                   "give --score-tier TIER (and --candidates FILE or auto)")
    for n in names:
        if n in OPTIONAL_LAYER_MODULES:
            attr, module = OPTIONAL_LAYER_MODULES[n]
            if attr not in given and importlib.util.find_spec(f"lifecircle.{module}") is None:
                out.append(f"layer {n!r} is not available in this run: lifecircle.{module} is "
                           "not part of this installation")
    return out


#: Layers exported when none are named.
DEFAULT_LAYERS = ("facilities", "residents", "units")


def parse_layers(spec: str | Sequence[str] | None) -> list[str]:
    """Layer names from ``"a,b"`` or a list; ``all`` means every layer; validates names.

    Raises
    ------
    InputError
        Naming every unknown layer and listing the known ones.
    """
    if spec is None:
        return list(DEFAULT_LAYERS)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [s.strip().lower().replace("-", "_") for s in items if s.strip()]
    if "all" in names:
        return list(LAYER_BUILDERS)
    unknown = [n for n in names if n not in LAYER_BUILDERS]
    if unknown:
        raise InputError(f"unknown layer(s) {', '.join(unknown)}; known layers: "
                         f"{', '.join(LAYER_BUILDERS)} (or all)")
    if not names:
        raise InputError("no layers requested")
    return list(dict.fromkeys(names))


def build_layers(src: ExportSources, layers: str | Sequence[str] | None = None, *,
                 skip_unavailable: bool = False) -> dict[str, Any]:
    """Build the requested layers as WGS84 GeoDataFrames, in request order.

    Parameters
    ----------
    src : ExportSources
    layers : str or sequence of str, optional
        Layer names (default :data:`DEFAULT_LAYERS`; ``"all"`` for every layer).
    skip_unavailable : bool, default False
        Drop layers that cannot be built in this run (logged) instead of failing.

    Raises
    ------
    InputError
        Unknown layer names.
    LayerUnavailableError
        A requested layer cannot be built (all such layers are named in one message).
    """
    names = parse_layers(layers)
    out: dict[str, Any] = {}
    problems = []
    for name in names:
        try:
            out[name] = LAYER_BUILDERS[name](src)
        except LayerUnavailableError as exc:
            problems.append(str(exc))
    if problems:
        if skip_unavailable:
            for p in problems:
                logger.warning("skipped: %s", p)
        else:
            raise LayerUnavailableError("; ".join(problems) + "; nothing was written")
    return out


# -- writing --------------------------------------------------------------------------------

def _lon_range(layers: dict[str, Any]) -> tuple[float, float] | None:
    bounds = [g.total_bounds for g in layers.values() if len(g) and g.crs is not None]
    bounds = [b for b in bounds if np.all(np.isfinite(b))]
    if not bounds:
        return None
    b = np.array(bounds)
    return float(b[:, 0].min()), float(b[:, 2].max())


def _prepare(gdf: Any, crs: OutputCRS, precision: int | None) -> Any:
    """Project to ``crs``, orient polygons CCW, round coordinates, infinities to null."""
    import geopandas as gpd
    import shapely

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


def _geojson_bytes(gdf: Any, crs: OutputCRS, precision: int, name: str) -> bytes:
    import io

    buf = io.BytesIO()
    opts: dict[str, Any] = {"COORDINATE_PRECISION": precision,
                            "RFC7946": "YES" if crs.is_wgs84 else "NO"}
    gdf.to_file(buf, driver="GeoJSON", engine="pyogrio", layer=name, layer_options=opts)
    data = buf.getvalue()
    if crs.obfuscated:
        # GDAL writes no crs member for a CRS without an EPSG code; add one (GDAL reads the WKT
        # back as the custom GCJ-02/BD-09 CRS) so that nobody mistakes the file for WGS84.
        member = json.dumps({"type": "name", "properties": {"name": crs.wkt()}}, ensure_ascii=False)
        data = data.replace(b'"features": [', b'"crs": ' + member.encode() + b',\n"features": [', 1)
    return data


def layer_geojson(gdf: Any, *, crs: str | OutputCRS = "wgs84", precision: int | None = None,
                  name: str = "layer") -> str:
    """One layer as GeoJSON text (in memory; for the HTTP service).

    WGS84 output is RFC 7946 GeoJSON (lon/lat, CCW exteriors, no ``crs`` member); any other CRS
    adds a ``crs`` member (a non-standard extension of the 2008 GeoJSON format).
    """
    ocrs = crs if isinstance(crs, OutputCRS) else resolve_output_crs(
        crs, lon_range=_lon_range({name: gdf}))
    p = ocrs.default_precision if precision is None else int(precision)
    return _geojson_bytes(_prepare(gdf, ocrs, p), ocrs, p, name).decode("utf-8")


def _csv_frame(gdf: Any, crs: OutputCRS, precision: int) -> pd.DataFrame:
    import shapely

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
        return {"format": self.fmt, "crs": self.crs.name, "crs_label": self.crs.label,
                "crs_reason": self.crs.reason,
                "layers": {k: {"features": self.features[k], "files": [str(p) for p in v]}
                           for k, v in self.paths.items()}}


_SHP_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def export_paths(layer_names: Sequence[str], out: str | Path, fmt: str, crs: OutputCRS) -> dict[str, list[Path]]:
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
        raise InputError(f"--out {o} looks like a file, but {fmt} writes one file per layer: give "
                         "a folder")
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
    layers: dict[str, Any],
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
    import shutil
    import tempfile

    fmt = str(fmt).lower().lstrip(".")
    fmt = {"json": "geojson", "shapefile": "shp", "geopackage": "gpkg"}.get(fmt, fmt)
    if fmt not in GIS_FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(GIS_FORMATS)}")
    if not layers:
        raise InputError("no layers to export")
    if isinstance(crs, OutputCRS):
        ocrs = crs
    else:
        ocrs = resolve_output_crs(crs, lon_range=_lon_range(layers))
        if ocrs.reason and ocrs.reason != "given":
            logger.info("output CRS %s: %s", ocrs.label, ocrs.reason)
    if precision is not None and not 0 <= int(precision) <= 15:
        raise InputError(f"precision must be 0..15 decimals, got {precision}")
    text_precision = ocrs.default_precision if precision is None else int(precision)
    paths = export_paths(list(layers), out, fmt, ocrs)
    all_paths = list(dict.fromkeys(p for ps in paths.values() for p in ps))
    check_writable(all_paths, overwrite=overwrite)

    prepared = {n: _prepare(g, ocrs, precision if fmt in ("gpkg", "shp") else text_precision)
                for n, g in layers.items()}
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
                tmp_main.write_bytes(_geojson_bytes(g, ocrs, text_precision, n))
            elif fmt == "csv":
                _csv_frame(g, ocrs, text_precision).to_csv(tmp_main, index=False, encoding="utf-8",
                                                           lineterminator="\n")
            else:
                ft = field_table(g, n, tier_keys)
                shp = g.rename(columns=dict(zip(ft["name"], ft["field"], strict=True)))
                shp.to_file(tmp_main, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
                ft.to_csv(tmp_dir / files[-1].name, index=False, encoding="utf-8", lineterminator="\n")
                if not (tmp_dir / files[0].with_suffix(".cpg").name).exists():
                    (tmp_dir / files[0].with_suffix(".cpg").name).write_text("UTF-8", encoding="ascii")
        for p in all_paths:
            src_p = tmp_dir / p.name
            if src_p.exists():
                os.replace(src_p, p)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info("wrote %d layer(s) as %s to %s (%s)", len(prepared), fmt, out_dir, ocrs.label)
    return ExportResult(paths, ocrs, fmt, features)


def read_back(path: str | Path, *, layer: str | None = None, crs: str | OutputCRS | None = None) -> Any:
    """Read an exported layer and convert it back to WGS84 (for checks and round trips).

    ``crs`` is the export's CRS; it is needed for GCJ-02/BD-09 files (whose declared CRS is a
    custom one) and for Shapefiles whose field names are mapped back through the sidecar.
    """
    import geopandas as gpd
    import shapely

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
