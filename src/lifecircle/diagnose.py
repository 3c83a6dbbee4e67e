"""Results that cannot be right: how much of each input was lost to rejects, and why.

A run in which most facilities of a tier, or most residents (by people), were rejected would
report a coverage share that looks real and is not ("0.0 % covered"). :func:`check_used_shares`
stops such a run with :class:`~lifecircle.errors.RejectThresholdError` (exit code 3) and a
one-line diagnosis found by trying what usually went wrong on the rejected points:

* lon and lat swapped (the swapped points land on the network);
* the declared coordinate system is wrong (read in another system they land on the network; the
  offset between the two readings is reported);
* the network does not cover the inputs (both bounding boxes are reported).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lifecircle.coords import cgcs2000_gk_epsg, to_wgs84, utm_epsg
from lifecircle.errors import CRSError, RejectThresholdError
from lifecircle.io import PointTable
from lifecircle.network import RoadNetwork
from lifecircle.snapping import outside_network_area

logger = logging.getLogger(__name__)

#: Reject reasons that say where a point is (the diagnosis looks at these).
_PLACE_REASONS = ("outside_network_area", "coordinates_out_of_range")

#: Default smallest share of an input that must be usable (of each facility tier, of people).
DEFAULT_MIN_USED_SHARE = 0.5


@dataclass(frozen=True)
class UsedShare:
    """How much of one input (or one tier of it) is usable.

    Attributes
    ----------
    what : str
        ``"residents (by people)"`` or ``"facilities of tier station"``…
    used, total : float
        People or rows used, and read.
    """

    what: str
    used: float
    total: float

    @property
    def share(self) -> float:
        """``used / total`` (1.0 when nothing was read)."""
        return self.used / self.total if self.total > 0 else 1.0


def used_shares(table: PointTable, ignore_reasons: Sequence[str] = ()) -> list[UsedShare]:
    """Used shares of a table: residents by people (rows when no population is known);
    facilities as a whole and per tier. Rows rejected for ``ignore_reasons`` are left out of
    the totals (e.g. rows outside a network clipped to a region, on purpose)."""
    if ignore_reasons and len(table.rejects):
        keep = ~table.rejects["reason"].isin(list(ignore_reasons)).to_numpy()
        vals0 = table.rejected_values
        table = dataclasses.replace(
            table,
            rejects=table.rejects.loc[keep].reset_index(drop=True),
            n_input=len(table.frame) + int(keep.sum()),
            rejected_values=None
            if vals0 is None or len(vals0) != len(keep)
            else vals0.loc[keep].reset_index(drop=True),
        )
    vals = table.rejected_values
    if vals is None or len(vals) != len(table.rejects):
        vals = pd.DataFrame(
            {"tier": [""] * len(table.rejects), "population": np.full(len(table.rejects), np.nan)}
        )
    out: list[UsedShare] = []
    if table.kind == "residents":
        used = float(table.frame["population"].sum()) if len(table.frame) else 0.0
        pop = vals["population"].to_numpy(float)
        # an implausible population (1e11 in one row) is not people lost: count it as none
        plausible = np.isfinite(pop) & (pop >= 0)
        plausible &= ~table.rejects["reason"].eq("implausible_population").to_numpy()
        rejected = float(np.sum(np.where(plausible, pop, 0.0)))
        if used + rejected > 0:
            out.append(UsedShare("residents (by people)", used, used + rejected))
        else:
            out.append(UsedShare("residents (rows)", len(table.frame), table.n_input))
        return out
    out.append(UsedShare(f"{table.kind} (rows)", len(table.frame), table.n_input))
    if "tier" in table.frame:
        used_by = table.frame["tier"].astype(str).value_counts()
        rej_by = vals["tier"].astype(str).value_counts()
        for tier in sorted(set(used_by.index) | set(rej_by.index)):
            if tier:
                u = float(used_by.get(tier, 0))
                out.append(UsedShare(f"{table.kind} of tier {tier}", u, u + rej_by.get(tier, 0)))
    return out


def _inside_share(net: RoadNetwork, lon: np.ndarray, lat: np.ndarray, margin_m: float) -> float:
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if not ok.any():
        return 0.0
    x, y = net.from_lonlat(lon[ok], lat[ok])
    return float((~outside_network_area(net, x, y, margin_m=margin_m)).sum() / len(lon))


def _bbox(lon: np.ndarray, lat: np.ndarray) -> str:
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return "none"
    lo, la = lon[ok], lat[ok]
    return f"lon {lo.min():.4f}..{lo.max():.4f}, lat {la.min():.4f}..{la.max():.4f}"


def _safe_wgs84(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.errstate(all="ignore"):
            lon, lat = to_wgs84(x, y, crs)
    except (CRSError, ValueError):
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    return np.asarray(lon, float), np.asarray(lat, float)


def diagnose(table: PointTable, net: RoadNetwork, margin_m: float) -> str:
    """A one-line guess at why the rows of ``table`` were rejected as off the map.

    Parameters
    ----------
    table : PointTable
        With ``rejected_values`` (coordinates as declared).
    net : RoadNetwork
        The network the points should lie on.
    margin_m : float
        How far beyond the network's outline a point may lie (the snapping limit), metres.
    """
    vals = table.rejected_values
    placed = table.rejects["reason"].isin(_PLACE_REASONS).to_numpy()
    if vals is None or len(vals) != len(table.rejects) or not placed.any():
        top = table.rejects["reason"].value_counts()
        return (
            f"{table.path}: most rows were rejected for {', '.join(map(str, top.index[:3]))}; "
            "see rejects.csv"
            if len(top)
            else "no rejected rows"
        )
    vals = vals.loc[placed]
    x = vals["x"].to_numpy(float)
    y = vals["y"].to_numpy(float)
    known = np.isfinite(x) & np.isfinite(y)
    x, y = x[known], y[known]
    if len(x) == 0:
        return "the rejected rows have no readable coordinates"
    nlon, nlat = net.to_lonlat(net.node_x, net.node_y)
    lon0, lat0 = _safe_wgs84(x, y, table.crs)
    if _inside_share(net, *_safe_wgs84(y, x, table.crs), margin_m) > 0.5:
        return (
            f"{table.path}: lon and lat are probably swapped (swapped, the points land on the "
            "road network); swap the two columns"
        )
    cx, cy = float(np.mean(nlon)), float(np.mean(nlat))
    alternatives = [
        "wgs84",
        "gcj02",
        "bd09",
        f"EPSG:{cgcs2000_gk_epsg(cx)}",
        f"EPSG:{utm_epsg(cx, cy)}",
    ]
    for alt in alternatives:
        if alt == table.crs:
            continue
        lon1, lat1 = _safe_wgs84(x, y, alt)
        if _inside_share(net, lon1, lat1, margin_m) > 0.5:
            both = np.isfinite(lon0) & np.isfinite(lon1)
            offset = ""
            if both.any():
                ax, ay = net.from_lonlat(lon0[both], lat0[both])
                bx, by = net.from_lonlat(lon1[both], lat1[both])
                offset = f", an offset of {float(np.median(np.hypot(ax - bx, ay - by))):,.0f} m"
            return (
                f"{table.path}: the declared coordinate system {table.crs} is probably wrong: "
                f"read as {alt} the points land on the road network{offset}; declare crs = "
                f'"{alt}"'
            )
    return (
        f"{table.path}: the road network does not cover the inputs: network {_bbox(nlon, nlat)}; "
        f"rejected points {_bbox(lon0, lat0)} (WGS84); use the network of the same area"
    )


def reject_counts(tables: list[PointTable]) -> dict[tuple[str, str], int]:
    """Rejected rows per ``(input kind, reason)``."""
    counts: dict[tuple[str, str], int] = {}
    for t in tables:
        for reason, n in t.rejects["reason"].value_counts().items():
            counts[(t.kind, str(reason))] = int(n)
    return counts


def check_used_shares(
    tables: list[PointTable],
    net: RoadNetwork,
    *,
    margin_m: float,
    min_used_share: float = DEFAULT_MIN_USED_SHARE,
    max_rejects: int | None = None,
    ignore_reasons: Sequence[str] = (),
) -> None:
    """Raise when too little of an input is usable for the result to be right.

    Parameters
    ----------
    tables : list of PointTable
        Facilities, residents (after the network-area check).
    net : RoadNetwork
        The network (for the diagnosis).
    margin_m : float
        The snapping limit in metres (points farther beyond the network's outline are rejected).
    min_used_share : float
        Smallest usable share of each facility tier and of people, 0..1 (default 0.5).
    max_rejects : int, optional
        Most rejected rows allowed over all inputs (``--max-rejects``; 0 for ``--strict``).
    ignore_reasons : sequence of str
        Reject reasons that do not count against ``min_used_share`` (``outside_network_area``
        when the network was clipped to a region: rows beyond it are left out on purpose).

    Raises
    ------
    RejectThresholdError
        With a one-line diagnosis; ``counts`` holds every reject reason.
    """
    counts = reject_counts(tables)
    rejects = pd.concat([t.rejects for t in tables], ignore_index=True)
    n_rejected = sum(counts.values())
    if max_rejects is not None and n_rejected > max_rejects:
        raise RejectThresholdError(
            f"{n_rejected} input row(s) rejected, more than --max-rejects {max_rejects}; "
            "see rejects.csv, fix the rows or raise the limit",
            counts,
            rejects,
        )
    for t in tables:
        for u in used_shares(t, ignore_reasons):
            if u.share < min_used_share:
                logger.debug("%s: %s of %s used", u.what, u.used, u.total)
                raise RejectThresholdError(
                    f"only {100 * u.share:.1f} % of {u.what} usable ({u.used:,.0f} of "
                    f"{u.total:,.0f}; at least {100 * min_used_share:.0f} % needed), so the "
                    f"result cannot be right. Probable cause: {diagnose(t, net, margin_m)}. "
                    "Use --allow-rejects to run anyway",
                    counts,
                    rejects,
                )
