"""Coordinate systems: WGS84, CGCS2000, GCJ-02, BD-09, and the metric CRS of an analysis.

Chinese web maps do not publish coordinates in WGS84. Amap (高德) and Tencent use **GCJ-02**, an
obfuscated datum that shifts points by a few hundred metres (about 524 m east-west and 98 m
north-south at Tancheng); Baidu uses **BD-09**, a further shift of GCJ-02. OpenStreetMap is WGS84.
Anything geocoded with those services must be converted before it meets OSM data.

**CGCS2000** (EPSG:4490), China's national datum, agrees with WGS84 to well under a metre, so
lon/lat values are used unchanged between the two.

All functions are vectorised over NumPy arrays. The GCJ-02 and BD-09 inverses are exact
iterative inverses of the published forward formulas (error far below 1 mm), not the usual
one-step approximations that are off by up to a couple of metres.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lifecircle.errors import CRSError

#: The lon/lat coordinate systems :func:`convert` understands.
GEOGRAPHIC_SYSTEMS: Final = ("wgs84", "cgcs2000", "gcj02", "bd09")

_ALIASES: Final = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "wgs 84": "wgs84",
    "epsg:4326": "wgs84",
    "4326": "wgs84",
    "gps": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "gcj": "gcj02",
    "amap": "gcj02",
    "mars": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "bd09ll": "bd09",
    "baidu": "bd09",
}

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_GCJ_A: Final = 6378245.0
_GCJ_EE: Final = 0.00669342162296594323
_BD_X_PI: Final = math.pi * 3000.0 / 180.0

FloatArray = NDArray[np.float64]


def normalize_crs_name(name: str) -> str:
    """Return the canonical name of a coordinate-system option.

    Parameters
    ----------
    name : str
        One of ``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09`` (case-insensitive, with common
        aliases such as ``EPSG:4326``, ``amap``, ``baidu``), or ``EPSG:n`` for any projected or
        geographic CRS that pyproj knows.

    Returns
    -------
    str
        ``"wgs84"``, ``"cgcs2000"``, ``"gcj02"``, ``"bd09"`` or ``"EPSG:n"``.

    Raises
    ------
    CRSError
        If the name is none of these.
    """
    key = str(name).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("epsg:") and key[5:].isdigit():
        code = int(key[5:])
        try:
            from pyproj import CRS

            CRS.from_epsg(code)
        except Exception as exc:  # pyproj raises its own CRSError subclass
            raise CRSError(f"unknown coordinate system EPSG:{code}: {exc}") from exc
        return f"EPSG:{code}"
    raise CRSError(
        f"unknown coordinate system {name!r}; use one of wgs84, cgcs2000, gcj02, bd09 "
        "or EPSG:<code> (e.g. EPSG:4549 for CGCS2000 / 3-degree Gauss-Kruger CM 120E)"
    )


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Return True where a point lies outside the rectangle in which GCJ-02 applies.

    Outside it, GCJ-02 and BD-09's GCJ-02 step are the identity (the usual convention of the
    published implementations, e.g. eviltransform).
    """
    lon_a = np.asarray(lon, dtype=float)
    lat_a = np.asarray(lat, dtype=float)
    return (lon_a < 72.004) | (lon_a > 137.8347) | (lat_a < 0.8293) | (lat_a > 55.8271)


def _gcj_delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 offset (degrees) at WGS84 ``lon``, ``lat`` (published forward formula)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1.0 - _GCJ_EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrtmagic) * pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrtmagic * np.cos(radlat) * pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 lon/lat (degrees) to GCJ-02 (the published forward formula)."""
    lon_a = np.asarray(lon, dtype=float)
    lat_a = np.asarray(lat, dtype=float)
    dlon, dlat = _gcj_delta(lon_a, lat_a)
    return lon_a + dlon, lat_a + dlat


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 lon/lat (degrees) to BD-09 (Baidu's published forward formula)."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(
    forward: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    tol_deg: float = 1e-11,
    max_iter: int = 50,
) -> tuple[FloatArray, FloatArray]:
    """Invert a near-identity forward map by fixed-point iteration.

    Starting from the target itself, each step moves the guess by the residual
    ``forward(guess) - target``. The maps here shift by < 0.01 degrees and their offset varies
    slowly, so the iteration contracts strongly; 1e-11 degrees is about 1 micrometre.
    """
    tx = np.asarray(lon, dtype=float)
    ty = np.asarray(lat, dtype=float)
    gx = tx.copy()
    gy = ty.copy()
    for _ in range(max_iter):
        fx, fy = forward(gx, gy)
        rx = fx - tx
        ry = fy - ty
        gx = gx - rx
        gy = gy - ry
        if not (
            np.nanmax(np.abs(rx), initial=0.0) > tol_deg
            or np.nanmax(np.abs(ry), initial=0.0) > tol_deg
        ):
            break
    return gx, gy


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 lon/lat to WGS84 with an exact iterative inverse (error ≪ 1 mm)."""
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert BD-09 lon/lat to GCJ-02 with an exact iterative inverse (error ≪ 1 mm)."""
    return _invert(gcj02_to_bd09, lon, lat)


def convert(lon: ArrayLike, lat: ArrayLike, src: str, dst: str) -> tuple[FloatArray, FloatArray]:
    """Convert lon/lat arrays between WGS84, CGCS2000, GCJ-02 and BD-09.

    Parameters
    ----------
    lon, lat : array_like
        Longitudes and latitudes in degrees, in the system ``src``.
    src, dst : str
        ``{"wgs84", "cgcs2000", "gcj02", "bd09"}`` (aliases accepted, see
        :func:`normalize_crs_name`).

    Returns
    -------
    tuple of ndarray
        ``(lon, lat)`` in ``dst``, float64 arrays shaped like the input.

    Notes
    -----
    CGCS2000 and WGS84 differ by well under a metre and are treated as the same lon/lat.
    Outside China GCJ-02 is the identity. NaN stays NaN.

    Examples
    --------
    >>> lon, lat = convert([116.481499], [39.990475], "wgs84", "gcj02")
    >>> round(float(lon[0]), 5), round(float(lat[0]), 5)  # Amap's example: 116.487585, 39.991754
    (116.48759, 39.99175)
    """
    s = normalize_crs_name(src)
    d = normalize_crs_name(dst)
    for name, role in ((s, "src"), (d, "dst")):
        if name not in GEOGRAPHIC_SYSTEMS:
            raise CRSError(
                f"convert() {role}={name!r} is not a lon/lat system; use to_wgs84()/from_wgs84() "
                "for EPSG codes"
            )
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"lon and lat have different shapes: {x.shape} vs {y.shape}")
    # Route through WGS84: src -> wgs84 -> dst.
    if s == "gcj02":
        x, y = gcj02_to_wgs84(x, y)
    elif s == "bd09":
        x, y = gcj02_to_wgs84(*bd09_to_gcj02(x, y))
    if d == "gcj02":
        x, y = wgs84_to_gcj02(x, y)
    elif d == "bd09":
        x, y = gcj02_to_bd09(*wgs84_to_gcj02(x, y))
    return np.array(x, dtype=float), np.array(y, dtype=float)


def to_wgs84(x: ArrayLike, y: ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]:
    """Convert coordinates in any supported system (including ``EPSG:n``) to WGS84 lon/lat."""
    name = normalize_crs_name(crs)
    if name in GEOGRAPHIC_SYSTEMS:
        return convert(x, y, name, "wgs84")
    from pyproj import Transformer

    t = Transformer.from_crs(name, "EPSG:4326", always_xy=True)
    lon, lat = t.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def from_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 lon/lat to any supported system (including ``EPSG:n``)."""
    name = normalize_crs_name(crs)
    if name in GEOGRAPHIC_SYSTEMS:
        return convert(lon, lat, "wgs84", name)
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", name, always_xy=True)
    x, y = t.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing ``lon``, ``lat`` (e.g. 32650 for Tancheng)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise CRSError(f"cannot choose a UTM zone for lon={lon}, lat={lat}: not degrees")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def cgcs2000_gk_epsg(lon: float, *, zone_width: int = 3) -> int:
    """EPSG code of the CGCS2000 Gauss-Krüger zone (central-meridian form) containing ``lon``.

    China's GIS uses 3-degree zones with central meridians at multiples of 3°E (75°E to 135°E),
    EPSG:4534 (CM 75E) to EPSG:4554 (CM 135E), or 6-degree zones with central meridians at
    75°E, 81°E, …, 135°E, EPSG:4502 (CM 75E) to EPSG:4512 (CM 135E). These "CM" codes have a
    false easting of 500 km without a zone-number prefix. A point goes to the zone whose central
    meridian is nearest: Tancheng's seat (118.34°E) lies in the 3-degree zone of 117°E
    (EPSG:4548), which spans 115.5°E to 118.5°E.
    """
    if zone_width == 3:
        cm = round(lon / 3.0) * 3
        if not 75 <= cm <= 135:
            raise CRSError(f"longitude {lon} is outside China's CGCS2000 3-degree zones (75-135E)")
        return 4534 + (cm - 75) // 3
    if zone_width == 6:
        cm = int(lon // 6.0) * 6 + 3
        if not 75 <= cm <= 135:
            raise CRSError(f"longitude {lon} is outside China's CGCS2000 6-degree zones (72-138E)")
        return 4502 + (cm - 75) // 6
    raise CRSError(f"zone_width must be 3 or 6 degrees, got {zone_width}")
