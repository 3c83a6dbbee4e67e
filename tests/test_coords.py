"""Coordinate conversions: published GCJ-02/BD-09 pairs, exact inverses, CGCS2000 and Gauss-Krüger.

The Gauss-Krüger check computes the projection with an implementation written here from the
textbook series (meridian arc by numerical integration, series in the longitude difference to
the 6th order) and compares it with pyproj.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad

from lifecircle.coords import (
    cgcs2000_gk_epsg,
    convert,
    from_wgs84,
    normalize_crs_name,
    out_of_china,
    to_wgs84,
    utm_epsg,
)
from lifecircle.errors import CRSError

# (src, lon, lat) -> (dst lon, lat), tolerance in metres, source
PUBLISHED = [
    # Amap Web Service coordinate/convert API, documented example (first point)
    ("wgs84", "gcj02", 116.481499, 39.990475, 116.487585177952, 39.991754014757, 0.5),
    # Amap, same example, second point
    ("wgs84", "gcj02", 116.481499, 39.990375, 116.487585177952, 39.991653917101, 0.5),
    # Amap convert API answer, Shenzhen
    ("wgs84", "gcj02", 114.07, 22.62, 114.07513075, 22.61731092, 0.5),
    # eviltransform test suite (BSD-2-Clause): Shanghai, Shenzhen, Beijing
    ("wgs84", "gcj02", 121.5272106, 31.1774276, 121.531541859215, 31.17530398364597, 0.05),
    ("wgs84", "gcj02", 113.912316, 22.543847, 113.9171764808363, 22.540796131694766, 0.05),
    ("wgs84", "gcj02", 116.377817, 39.911954, 116.38404722455657, 39.91334545536069, 0.05),
    # Alibaba Cloud TransferCoord API documentation example
    ("gcj02", "bd09", 120.026268, 30.279164, 120.032768, 30.285238, 0.5),
]


def metres_between(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres (haversine, R = 6,371,008.8 m)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(h))


@pytest.mark.parametrize(("src", "dst", "lon", "lat", "elon", "elat", "tol_m"), PUBLISHED)
def test_published_pairs(src, dst, lon, lat, elon, elat, tol_m):
    x, y = convert(lon, lat, src, dst)
    assert metres_between(x, y, elon, elat) < tol_m
    # and back: the inverse returns the published input
    bx, by = convert(elon, elat, dst, src)
    assert metres_between(bx, by, lon, lat) < tol_m


def random_china(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(74.0, 135.0, n), rng.uniform(18.0, 53.0, n)


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_inverse_round_trip_below_1mm(system):
    lon, lat = random_china(20_000)
    x, y = convert(lon, lat, "wgs84", system)
    assert metres_between(lon, lat, x, y).min() > 1.0  # the shift is real
    bx, by = convert(x, y, system, "wgs84")
    assert metres_between(lon, lat, bx, by).max() < 1e-3
    # the other direction too: system -> wgs84 -> system
    fx, fy = convert(*convert(lon, lat, system, "wgs84"), "wgs84", system)
    assert metres_between(lon, lat, fx, fy).max() < 1e-3


def test_vectorised_shapes_and_scalars():
    lon, lat = random_china(12, seed=3)
    x2, y2 = convert(lon.reshape(3, 4), lat.reshape(3, 4), "wgs84", "bd09")
    assert x2.shape == (3, 4) and y2.shape == (3, 4)
    x1, y1 = convert(lon, lat, "wgs84", "bd09")
    np.testing.assert_array_equal(x2.ravel(), x1)
    np.testing.assert_array_equal(y2.ravel(), y1)
    # element-wise: each point alone gives the same answer as in the batch
    for i in (0, 5, 11):
        xs, ys = convert(lon[i], lat[i], "wgs84", "bd09")
        assert float(xs) == x1[i] and float(ys) == y1[i]
    with pytest.raises(ValueError, match="different shapes"):
        convert([1.0, 2.0], [1.0], "wgs84", "gcj02")


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_nan_stays_nan_and_leaves_others_alone(system):
    lon = np.array([118.35, np.nan, 116.4, np.nan])
    lat = np.array([34.62, 39.9, np.nan, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, y = convert(lon, lat, system, "wgs84")
        fx, fy = convert(lon, lat, "wgs84", system)
    assert np.isnan(x[1:]).all() and np.isnan(y[1:]).all()
    assert np.isnan(fx[1:]).all() and np.isnan(fy[1:]).all()
    ex, ey = convert(lon[:1], lat[:1], system, "wgs84")
    assert x[0] == ex[0] and y[0] == ey[0]


def test_outside_china_is_identity():
    lon = np.array([24.94, -0.1276, 139.69, 100.5])
    lat = np.array([60.17, 51.5072, 35.69, 13.75])  # Helsinki, London, Tokyo, Bangkok
    assert out_of_china(lon, lat)[:3].all()
    for system in ("gcj02", "bd09"):
        x, y = convert(lon[:3], lat[:3], "wgs84", "gcj02")
        np.testing.assert_array_equal(x, lon[:3])
        np.testing.assert_array_equal(y, lat[:3])
        bx, by = convert(lon[:3], lat[:3], system, "wgs84")
        if system == "gcj02":
            np.testing.assert_array_equal(bx, lon[:3])
            np.testing.assert_array_equal(by, lat[:3])
    # Bangkok (100.5E, 13.75N) is inside the rectangle used by the published algorithm
    assert not out_of_china(lon[3], lat[3])


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("WGS84", "wgs84"),
        ("wgs-84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("gps", "wgs84"),
        ("CGCS2000", "cgcs2000"),
        ("epsg:4490", "cgcs2000"),
        ("GCJ-02", "gcj02"),
        ("amap", "gcj02"),
        ("mars", "gcj02"),
        ("BD-09", "bd09"),
        ("baidu", "bd09"),
        ("bd09ll", "bd09"),
        (" Gcj02 ", "gcj02"),
        ("epsg:4548", "EPSG:4548"),
        ("EPSG:32650", "EPSG:32650"),
    ],
)
def test_alias_names(alias, canonical):
    assert normalize_crs_name(alias) == canonical


@pytest.mark.parametrize("bad", ["gcj03", "", "EPSG:", "EPSG:999999", "utm50", "baidu09x"])
def test_unknown_names_raise(bad):
    with pytest.raises(CRSError):
        normalize_crs_name(bad)
    with pytest.raises(CRSError):
        convert([118.0], [34.0], "wgs84", bad)


def test_convert_refuses_projected_crs():
    with pytest.raises(CRSError, match="not a lon/lat system"):
        convert([118.0], [34.0], "wgs84", "EPSG:4548")


def test_cgcs2000_is_wgs84_through_pyproj():
    """pyproj's WGS 84 -> CGCS2000 (EPSG:4490) is the null transformation (datums < 1 m apart)."""
    lon, lat = np.array([118.34, 100.0, 87.6]), np.array([34.62, 30.0, 43.8])
    x, y = from_wgs84(lon, lat, "EPSG:4490")
    np.testing.assert_allclose(x, lon, atol=1e-9)
    np.testing.assert_allclose(y, lat, atol=1e-9)
    x2, y2 = convert(lon, lat, "wgs84", "cgcs2000")
    np.testing.assert_array_equal(x2, lon)
    np.testing.assert_array_equal(y2, lat)


# -- Gauss-Krüger, independent implementation -------------------------------------------------

A_CGCS = 6378137.0
F_CGCS = 1.0 / 298.257222101


def meridian_arc(phi: float) -> float:
    """Meridian arc length from the equator to latitude ``phi`` (radians), by integration."""
    e2 = F_CGCS * (2 - F_CGCS)
    m = A_CGCS * (1 - e2)

    def dm(p: float) -> float:
        return m / (1 - e2 * math.sin(p) ** 2) ** 1.5

    return quad(dm, 0.0, phi, epsabs=1e-6, epsrel=1e-13)[0]


def gauss_kruger(lon: float, lat: float, cm: float) -> tuple[float, float]:
    """Textbook Gauss-Krüger series (k0 = 1, false easting 500 km): (easting, northing) metres."""
    e2 = F_CGCS * (2 - F_CGCS)
    ep2 = e2 / (1 - e2)
    phi = math.radians(lat)
    ell = math.radians(lon - cm)
    s, c = math.sin(phi), math.cos(phi)
    t = math.tan(phi)
    eta2 = ep2 * c * c
    n = A_CGCS / math.sqrt(1 - e2 * s * s)
    x = (
        meridian_arc(phi)
        + n * t * c**2 * ell**2 / 2
        + n * t * c**4 * (5 - t**2 + 9 * eta2 + 4 * eta2**2) * ell**4 / 24
        + n * t * c**6 * (61 - 58 * t**2 + t**4 + 270 * eta2 - 330 * t**2 * eta2) * ell**6 / 720
    )
    y = (
        n * c * ell
        + n * c**3 * (1 - t**2 + eta2) * ell**3 / 6
        + n * c**5 * (5 - 18 * t**2 + t**4 + 14 * eta2 - 58 * t**2 * eta2) * ell**5 / 120
    )
    return 500_000.0 + y, x


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (118.34, 34.62),  # Tancheng county seat
        (117.0, 34.62),  # on the central meridian
        (118.49, 35.1),  # near the zone's east edge
        (115.6, 34.0),  # near its west edge
    ],
)
def test_gauss_kruger_matches_independent_series(lon, lat):
    epsg = cgcs2000_gk_epsg(lon)
    assert epsg == 4548  # CM 117E
    e, n = gauss_kruger(lon, lat, 117.0)
    x, y = from_wgs84(np.array([lon]), np.array([lat]), f"EPSG:{epsg}")
    assert abs(x[0] - e) < 0.01 and abs(y[0] - n) < 0.01
    back = to_wgs84(x, y, f"EPSG:{epsg}")
    assert metres_between(back[0], back[1], lon, lat)[0] < 1e-3


def test_gauss_kruger_zone_choice():
    assert cgcs2000_gk_epsg(118.34) == 4548  # Tancheng: CM 117E (115.5-118.5E)
    assert cgcs2000_gk_epsg(118.6) == 4549  # east of 118.5E: CM 120E
    assert cgcs2000_gk_epsg(75.2) == 4534 and cgcs2000_gk_epsg(134.9) == 4554
    assert cgcs2000_gk_epsg(118.34, zone_width=6) == 4509  # CM 117E, 6-degree zones
    from pyproj import CRS

    assert (
        CRS.from_epsg(cgcs2000_gk_epsg(118.34)).name == "CGCS2000 / 3-degree Gauss-Kruger CM 117E"
    )
    assert (
        CRS.from_epsg(cgcs2000_gk_epsg(118.34, zone_width=6)).name
        == "CGCS2000 / Gauss-Kruger CM 117E"
    )
    with pytest.raises(CRSError):
        cgcs2000_gk_epsg(24.9)
    with pytest.raises(CRSError):
        cgcs2000_gk_epsg(118.0, zone_width=4)
    assert utm_epsg(118.34, 34.62) == 32650
