"""Output coordinate systems of the GIS export: WGS84, CGCS2000 (and its Gauss-Krüger zones),
any EPSG code, and the offset lon/lat of Chinese web maps (GCJ-02, BD-09).

Every layer is built in WGS84; :meth:`OutputCRS.transform_geometries` moves each vertex to the
output CRS: pyproj for CGCS2000 and EPSG codes, :func:`lifecircle.coords.from_wgs84` (the code
that reads GCJ-02/BD-09 inputs) for GCJ-02/BD-09.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from lifecircle.coords import cgcs2000_gk_epsg, from_wgs84, normalize_crs_name, to_wgs84
from lifecircle.errors import CRSError

if TYPE_CHECKING:
    import geopandas as gpd
    from pyproj import CRS

__all__ = [
    "DEFAULT_PRECISION_DEG",
    "DEFAULT_PRECISION_M",
    "OUTPUT_CRS_NAMES",
    "OutputCRS",
    "lon_range",
    "resolve_output_crs",
]

#: Default coordinate precision (decimals) for degrees and for metres.
DEFAULT_PRECISION_DEG = 6
DEFAULT_PRECISION_M = 2

#: Output CRS options besides ``EPSG:n``.
OUTPUT_CRS_NAMES = ("wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09")

_GK_ALIASES = (
    "cgcs2000-gk",
    "cgcs2000_gk",
    "cgcs2000gk",
    "gk",
    "gauss-kruger",
    "gauss-krueger",
    "cgcs2000-gk3",
)

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

    def pyproj_crs(self) -> CRS:
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
            return _OBFUSCATED_WKT.format(
                name="GCJ-02" if self.name == "gcj02" else "BD-09",
                remark=_OBFUSCATED_REMARK[self.name],
            )
        return str(self.pyproj_crs().to_wkt())

    def geojson_crs_member(self) -> dict[str, object] | None:
        """The 2008-GeoJSON ``crs`` member for this CRS; ``None`` for WGS84 (RFC 7946 has none).

        An EPSG CRS is named by its OGC URN (``urn:ogc:def:crs:EPSG::4490``); GCJ-02/BD-09 by
        the WKT of their custom CRS, so that nobody mistakes such a file for WGS84.
        """
        if self.is_wgs84:
            return None
        if self.obfuscated:
            return {"type": "name", "properties": {"name": self.wkt()}}
        code = self.pyproj_crs().to_epsg()
        name = f"urn:ogc:def:crs:EPSG::{code}" if code is not None else self.wkt()
        return {"type": "name", "properties": {"name": name}}

    def from_wgs84(
        self, lon: ArrayLike, lat: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """WGS84 lon/lat (degrees) -> output coordinates."""
        if self.name == "wgs84":
            return np.asarray(lon, float), np.asarray(lat, float)
        return from_wgs84(lon, lat, self.name)

    def to_wgs84(
        self, x: ArrayLike, y: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Output coordinates -> WGS84 lon/lat in degrees; exact inverse of :meth:`from_wgs84`."""
        if self.name == "wgs84":
            return np.asarray(x, float), np.asarray(y, float)
        return to_wgs84(x, y, self.name)

    def transform_geometries(
        self, geoms: NDArray[np.object_], *, inverse: bool = False
    ) -> NDArray[np.object_]:
        """Apply :meth:`from_wgs84` (or :meth:`to_wgs84`) to every vertex of ``geoms``."""
        if self.name == "wgs84" or len(geoms) == 0:
            return geoms
        fn = self.to_wgs84 if inverse else self.from_wgs84

        def apply(xy: NDArray[np.float64]) -> NDArray[np.float64]:
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
        ``gcj02``, ``bd09`` or ``EPSG:n`` (aliases as in
        :func:`lifecircle.coords.normalize_crs_name`).
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
    key = str(name).strip().lower()
    base, _, arg = key.partition(":")
    if base in _GK_ALIASES:
        if arg:
            try:
                cm = float(arg.rstrip("e"))
            except ValueError:
                raise CRSError(
                    f"bad Gauss-Kruger central meridian {arg!r} in {name!r}; use e.g. "
                    "cgcs2000-gk:117"
                ) from None
            if cm % 3:
                raise CRSError(
                    f"{cm:g}E is not the central meridian of a 3-degree zone "
                    "(multiples of 3 degrees east)"
                )
            epsg = cgcs2000_gk_epsg(cm)
            reason = f"central meridian {cm:g}E given"
        else:
            if lon_range is None or not all(np.isfinite(lon_range)):
                raise CRSError(
                    "cgcs2000-gk needs data to choose the zone from; give the zone as "
                    "cgcs2000-gk:<CM> or EPSG:n"
                )
            west, east = float(lon_range[0]), float(lon_range[1])
            centre = (west + east) / 2.0
            epsg = cgcs2000_gk_epsg(centre)
            cm = 75.0 + 3.0 * (epsg - 4534)
            reason = (
                f"the data span {west:.4f}E to {east:.4f}E; their centre {centre:.4f}E lies "
                f"in the 3-degree zone of central meridian {cm:g}E ({cm - 1.5:g}E to "
                f"{cm + 1.5:g}E)"
            )
            if west < cm - 1.5 or east > cm + 1.5:
                reason += (
                    f"; part of the data lies outside that zone (up to "
                    f"{max(cm - west, east - cm):.2f} degrees from the central meridian; "
                    "scale distortion grows with the square of that distance)"
                )
        return OutputCRS(
            f"EPSG:{epsg}",
            f"CGCS2000 / 3-degree Gauss-Kruger CM {cm:g}E (EPSG:{epsg})",
            geographic=False,
            tag=f"epsg{epsg}",
            reason=reason,
        )
    canon = normalize_crs_name(name)
    if canon == "wgs84":
        return OutputCRS("wgs84", "WGS 84 (EPSG:4326)", geographic=True, tag="")
    if canon == "cgcs2000":
        return OutputCRS("cgcs2000", "CGCS2000 (EPSG:4490)", geographic=True, tag="cgcs2000")
    if canon == "gcj02":
        return OutputCRS(
            "gcj02", "GCJ-02 (Amap/Tencent, offset lon/lat)", geographic=True, tag="gcj02"
        )
    if canon == "bd09":
        return OutputCRS("bd09", "BD-09 (Baidu, offset lon/lat)", geographic=True, tag="bd09")
    from pyproj import CRS

    crs = CRS.from_user_input(canon)
    code = canon.split(":")[1]
    if code == "4326":
        return OutputCRS("wgs84", "WGS 84 (EPSG:4326)", geographic=True, tag="")
    return OutputCRS(
        canon,
        f"{crs.name} ({canon})",
        geographic=bool(crs.is_geographic),
        tag=f"epsg{code}",
        reason="given",
    )


def lon_range(layers: Mapping[str, gpd.GeoDataFrame]) -> tuple[float, float] | None:
    """West and east WGS84 longitude of the layers' extent (``None`` when there is none).

    Used to choose the Gauss-Krüger zone of ``cgcs2000-gk``. Layers without a CRS are ignored.
    """
    bounds = []
    for g in layers.values():
        if len(g) and g.crs is not None:
            b = (g if g.crs.to_epsg() == 4326 else g.to_crs(4326)).total_bounds
            if np.all(np.isfinite(b)):
                bounds.append(b)
    if not bounds:
        return None
    arr = np.array(bounds)
    return float(arr[:, 0].min()), float(arr[:, 2].max())
