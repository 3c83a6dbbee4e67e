"""Coverage: every resident's network distance to each tier, and who is within the standard.

Output columns follow one scheme, built in :func:`tier_columns`:

=========================  ==========================================================
``{tier}_distance_m``      network metres to the nearest facility of the tier, access
                           legs included (``inf`` when none is reachable)
``{tier}_minutes``         that distance at the tier's speed
``{tier}_nearest_id``      id of that facility (empty when none)
``{tier}_covered``         ``{tier}_distance_m <= threshold_m`` of the tier
``all_covered``            covered for every tier (the complete living circle)
=========================  ==========================================================

Residents whose access leg exceeds ``max_snap_m`` (``off_network``) are kept: their population
counts in the totals and they are not covered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from lifecircle.config import ServiceStandard, Tier
from lifecircle.errors import CRSError, InputError
from lifecircle.network import RoadNetwork
from lifecircle.routing import Positions, RoutingGraph, nearest_sources
from lifecircle.snapping import DEFAULT_MAX_SNAP_M, Snapped, snap_to_network

logger = logging.getLogger(__name__)


def tier_columns(key: str) -> dict[str, str]:
    """The per-tier column names: ``distance``, ``minutes``, ``nearest``, ``covered``."""
    return {
        "distance": f"{key}_distance_m",
        "minutes": f"{key}_minutes",
        "nearest": f"{key}_nearest_id",
        "covered": f"{key}_covered",
    }


def positions(s: Snapped) -> Positions:
    """Routing positions of snapped points (off-network points become unreachable)."""
    return Positions(s.routable_edge(), s.offset_m, s.access_m)


@dataclass(frozen=True)
class Located:
    """Points projected and snapped onto each mode's network.

    Attributes
    ----------
    x, y : ndarray
        Projected coordinates (metres, the networks' CRS).
    snapped : dict
        ``{mode: Snapped}``.
    """

    x: np.ndarray
    y: np.ndarray
    snapped: dict[str, Snapped]

    def positions(self, mode: str) -> Positions:
        """Routing positions on ``mode``'s network."""
        return positions(self.snapped[mode])


def common_crs(networks: Mapping[str, RoadNetwork]) -> str:
    """The CRS all networks share; raises :class:`CRSError` if they differ."""
    crss = {n.crs for n in networks.values()}
    if len(crss) != 1:
        raise CRSError(
            f"networks are in different CRSs: {', '.join(sorted(crss))}; load them with one crs"
        )
    return crss.pop()


def locate(
    networks: Mapping[str, RoadNetwork],
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> Located:
    """Project WGS84 points into the networks' CRS and snap them onto each network."""
    first = next(iter(networks.values()))
    common_crs(networks)
    x, y = first.from_lonlat(np.asarray(lon, float), np.asarray(lat, float))
    snapped = {m: snap_to_network(net, x, y, max_snap_m=max_snap_m) for m, net in networks.items()}
    return Located(x, y, snapped)


@dataclass(frozen=True)
class CoverageResult:
    """Distances and coverage for every resident and tier (immutable).

    Attributes
    ----------
    standard : ServiceStandard
    crs : str
        The analysis CRS (metres) of ``x``/``y`` columns.
    residents : pandas.DataFrame
        One row per used resident: ``id``, ``population``, ``elderly``, ``children``, ``lon``,
        ``lat``, ``x``, ``y``, ``snap_m``, ``off_network``, the four columns per tier and
        ``all_covered``.
    facilities : pandas.DataFrame
        One row per used facility: ``id``, ``name``, ``tier``, ``lon``, ``lat``, ``x``, ``y``,
        ``snap_m``, ``off_network``, ``catchment_population`` (covered people for whom it is the
        nearest facility of its tier), ``catchment_residents``.
    tiers : pandas.DataFrame
        One row per tier: threshold, population total/covered/share, elderly, distances.
    resident_located, facility_located : Located
        Snapped positions, reused by service areas and site scoring.
    max_snap_m : float
    """

    standard: ServiceStandard
    crs: str
    residents: pd.DataFrame
    facilities: pd.DataFrame
    tiers: pd.DataFrame
    resident_located: Located = field(repr=False)
    facility_located: Located = field(repr=False)
    max_snap_m: float = DEFAULT_MAX_SNAP_M

    @property
    def population_total(self) -> float:
        """People in the used resident rows."""
        return float(self.residents["population"].sum())

    @property
    def all_covered_share(self) -> float:
        """Share of people covered for every tier (the complete living circle)."""
        tot = self.population_total
        return (
            float(self.residents.loc[self.residents["all_covered"], "population"].sum() / tot)
            if tot
            else 0.0
        )

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (per tier and all tiers)."""
        tiers = {
            str(r["tier"]): {
                k: (
                    None
                    if isinstance(v, float) and not np.isfinite(v)
                    else (v.item() if hasattr(v, "item") else v)
                )
                for k, v in r.items()
                if k != "tier"
            }
            for r in self.tiers.to_dict("records")
        }
        pop = self.population_total
        covered = float(self.residents.loc[self.residents["all_covered"], "population"].sum())
        return {
            "standard": self.standard.name,
            "tiers": tiers,
            "all_tiers": {
                "population_total": pop,
                "population_covered": covered,
                "share": covered / pop if pop else 0.0,
            },
            "residents_off_network": int(self.residents["off_network"].sum()),
            "population_off_network": float(
                self.residents.loc[self.residents["off_network"], "population"].sum()
            ),
            "max_snap_m": self.max_snap_m,
            "crs": self.crs,
        }


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float | list[float]) -> Any:
    """The ``q`` quantile(s) of ``values`` weighted by ``weights`` (inf values allowed).

    One sort serves several quantiles: pass a list to get a list back.
    """
    qs = [q] if np.isscalar(q) else list(q)  # type: ignore[arg-type]
    ok = weights > 0
    v, w = (values, weights) if ok.all() else (values[ok], weights[ok])
    if len(v) == 0:
        out = [float("nan")] * len(qs)
    elif len(v) > _SELECT_FROM and float(v.min()) > -np.inf:  # no NaN, no -inf
        out = _binned_quantiles(v, w, [float(x) for x in qs])  # type: ignore[arg-type]
    else:
        order = np.argsort(v)
        cw = np.cumsum(w[order])
        idx = np.minimum(np.searchsorted(cw, np.asarray(qs) * cw[-1], side="left"), len(v) - 1)
        out = [float(x) for x in v[order[idx]]]
    return out[0] if np.isscalar(q) else out


#: Above this many values, quantiles are selected through bins instead of a full sort.
_SELECT_FROM: Final = 4096
_BINS: Final = 2048


def _binned_quantiles(v: np.ndarray, w: np.ndarray, qs: list[float]) -> list[float]:
    """:func:`weighted_quantile`'s rule without sorting everything: the weights are summed
    into value bins, and only the bin holding each quantile is sorted (infinite values form
    the last bin). The smallest value whose cumulative weight reaches ``q`` of the total is the
    same; only the order of the floating-point additions differs."""
    fin = np.isfinite(v)
    all_fin = bool(fin.all())
    vf = v if all_fin else v[fin]
    b = np.full(len(v), _BINS, dtype=np.int64)
    if len(vf):
        lo, hi = float(vf.min()), float(vf.max())
        scale = _BINS / (hi - lo) if hi > lo else 0.0
        fb = np.minimum(((vf - lo) * scale).astype(np.int64), _BINS - 1)
        if all_fin:
            b = fb
        else:
            b[fin] = fb
    cum = np.cumsum(np.bincount(b, weights=w, minlength=_BINS + 1))
    out = []
    for q in qs:
        target = q * cum[-1]
        k = min(int(np.searchsorted(cum, target, side="left")), _BINS)
        while not np.any(b == k):  # q beyond the total by rounding: the last non-empty bin
            k -= 1
        sel = np.flatnonzero(b == k)
        order = np.argsort(v[sel])
        cw = np.cumsum(w[sel][order]) + (cum[k - 1] if k > 0 else 0.0)
        j = min(int(np.searchsorted(cw, target, side="left")), len(sel) - 1)
        out.append(float(v[sel[order[j]]]))
    return out


def tier_limit(tier: Tier, limit_m: float | str | None) -> float:
    """The search cut-off of one tier: ``None`` → none (exact distances beyond the standard),
    ``"auto"`` → the tier's own threshold, a number → that many metres."""
    if limit_m is None:
        return float(np.inf)
    if isinstance(limit_m, str):
        if limit_m != "auto":
            raise InputError(f"limit_m must be a number of metres, 'auto' or None, got {limit_m!r}")
        return float(tier.threshold_m)
    return float(limit_m)


def compute_coverage(
    networks: Mapping[str, RoadNetwork],
    facilities: pd.DataFrame,
    residents: pd.DataFrame,
    standard: ServiceStandard,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    limit_m: float | str | None = None,
    facility_located: Located | None = None,
    resident_located: Located | None = None,
) -> CoverageResult:
    """Nearest-facility distance per resident and tier, and coverage.

    Parameters
    ----------
    networks : mapping
        ``{mode: RoadNetwork}`` for every mode the standard's tiers use, all in one CRS.
    facilities : DataFrame
        ``id``, ``tier`` (a key of ``standard``), ``lon``, ``lat`` (WGS84); ``name`` optional.
    residents : DataFrame
        ``id``, ``population``, ``lon``, ``lat`` (WGS84); ``elderly``, ``children`` optional.
    standard : ServiceStandard
    max_snap_m : float, default 300
        Points farther than this from every street reach nothing (flagged ``off_network``).
    limit_m : float or "auto", optional
        Search cut-off in metres; default no cut-off, so every reachable resident gets its exact
        distance even beyond the standard (useful for ranking gaps). A cut-off speeds up very
        large runs; distances beyond it are reported as ``inf``. ``"auto"`` cuts each tier at
        its own standard distance (``threshold_m``): coverage, shares and catchments are the
        same as without a cut-off, but distances (and medians / 90th percentiles) beyond the
        standard become ``inf``.

    Returns
    -------
    CoverageResult
    """
    needed = {t.mode for t in standard.tiers}
    missing = needed - set(networks)
    if missing:
        raise InputError(f"the standard needs network(s) for mode(s) {', '.join(sorted(missing))}")
    nets: dict[str, RoadNetwork] = {m: networks[m] for m in sorted(needed)}
    crs = common_crs(nets)
    for col in ("id", "tier", "lon", "lat"):
        if col not in facilities.columns:
            raise InputError(f"facilities need a {col!r} column")
    for col in ("id", "population", "lon", "lat"):
        if col not in residents.columns:
            raise InputError(f"residents need a {col!r} column")
    unknown = sorted(set(facilities["tier"]) - set(standard.keys))
    if unknown:
        raise InputError(
            f"facilities have tiers not in standard {standard.name!r}: "
            f"{', '.join(map(str, unknown))}"
        )

    fac_loc = facility_located or locate(
        nets,
        facilities["lon"].to_numpy(float),
        facilities["lat"].to_numpy(float),
        max_snap_m=max_snap_m,
    )
    res_loc = resident_located or locate(
        nets,
        residents["lon"].to_numpy(float),
        residents["lat"].to_numpy(float),
        max_snap_m=max_snap_m,
    )
    primary = "walk" if "walk" in nets else next(iter(nets))
    pop = residents["population"].to_numpy(float)
    elderly = (
        residents["elderly"].to_numpy(float)
        if "elderly" in residents.columns
        else np.full(len(residents), np.nan)
    )
    elderly = np.nan_to_num(elderly, nan=0.0)

    res = pd.DataFrame(
        {
            # .array keeps pandas' own string storage (no round trip through Python objects)
            "id": residents["id"].astype(str).array,
            "population": pop,
            "elderly": residents["elderly"].to_numpy(float)
            if "elderly" in residents.columns
            else np.nan,
            "children": residents["children"].to_numpy(float)
            if "children" in residents.columns
            else np.nan,
            "lon": residents["lon"].to_numpy(float),
            "lat": residents["lat"].to_numpy(float),
            "x": res_loc.x,
            "y": res_loc.y,
            "snap_m": res_loc.snapped[primary].access_m,
            "off_network": ~res_loc.snapped[primary].on_network,
        }
    )
    for col in ("source_id", "placement"):  # residents placed from polygons or a raster
        if col in residents.columns:
            res[col] = residents[col].to_numpy()
    fac = pd.DataFrame(
        {
            "id": facilities["id"].astype(str).to_numpy(),
            "name": facilities["name"].astype(str).to_numpy()
            if "name" in facilities.columns
            else "",
            "tier": facilities["tier"].to_numpy(),
            "lon": facilities["lon"].to_numpy(float),
            "lat": facilities["lat"].to_numpy(float),
            "x": fac_loc.x,
            "y": fac_loc.y,
        }
    )
    if "tier_rule" in facilities.columns:  # the tier rule that gave a POI its tier
        fac["tier_rule"] = facilities["tier_rule"].to_numpy()
    fac_mode = fac["tier"].map({t.key: t.mode for t in standard.tiers}).to_numpy(dtype=object)
    fac["snap_m"] = np.nan
    fac["off_network"] = False
    for m in nets:
        sel = fac_mode == m
        fac.loc[sel, "snap_m"] = fac_loc.snapped[m].access_m[sel]
        fac.loc[sel, "off_network"] = ~fac_loc.snapped[m].on_network[sel]
    if fac["off_network"].any():
        logger.warning(
            "%d facilit(y/ies) lie more than %.0f m from the network and serve nobody: %s",
            int(fac["off_network"].sum()),
            max_snap_m,
            ", ".join(fac.loc[fac["off_network"], "id"].head(10)),
        )
    fac["catchment_population"] = 0.0
    fac["catchment_residents"] = 0

    tier_rows = []
    all_cov = np.ones(len(res), dtype=bool)
    fac_tier = fac["tier"].to_numpy()
    # index -1 reads the blank; an array of the id column's own dtype, so that taking from it
    # gives each tier's nearest ids without building Python strings per resident
    ids_or_blank = pd.concat(
        [fac["id"], pd.Series([""], dtype=fac["id"].dtype)], ignore_index=True
    ).array
    catch_pop = np.zeros(len(fac))
    catch_res = np.zeros(len(fac), dtype=np.int64)
    new_cols: dict[str, Any] = {}  # added to the frame once, at the end
    pop_total = float(pop.sum())
    eld_total = float(elderly.sum())
    # residents and facilities moved onto each mode's junction graph once, for every tier
    graphs = {m: RoutingGraph.from_network(nets[m]) for m in nets}
    res_core = {m: graphs[m].to_core(res_loc.positions(m)) for m in nets}
    fac_core = {m: graphs[m].to_core(fac_loc.positions(m)) for m in nets}
    for tier in standard.tiers:
        cols = tier_columns(tier.key)
        serving = np.isin(fac_tier, standard.serving_tiers(tier.key))
        idx = np.flatnonzero(serving)
        out = nearest_sources(
            graphs[tier.mode],
            fac_core[tier.mode].subset(idx),
            res_core[tier.mode],
            limit_m=tier_limit(tier, limit_m),
        )
        d = out.distance_m
        covered = d <= tier.threshold_m
        has = out.source >= 0
        fac_index = np.where(has, idx[np.maximum(out.source, 0)], -1) if len(idx) else out.source
        new_cols[cols["distance"]] = d
        new_cols[cols["minutes"]] = d / tier.speed_m_per_min
        new_cols[cols["nearest"]] = ids_or_blank.take(fac_index)
        new_cols[cols["covered"]] = covered
        all_cov &= covered
        # catchments: covered people per nearest facility of this tier's own facilities
        sel = np.flatnonzero(has & covered)
        sel = sel[(fac_tier == tier.key)[fac_index[sel]]]
        catch_pop += np.bincount(fac_index[sel], weights=pop[sel], minlength=len(fac))
        catch_res += np.bincount(fac_index[sel], minlength=len(fac))
        tot = pop_total
        cov_pop = float(pop[covered].sum())
        med, p90 = weighted_quantile(d, pop, [0.5, 0.9])
        eld_cov = float(elderly[covered].sum())
        tier_rows.append(
            {
                "tier": tier.key,
                "label_zh": tier.label_zh,
                "label_en": tier.label_en,
                "mode": tier.mode,
                "threshold_m": tier.threshold_m,
                "minutes": tier.minutes,
                "speed_m_per_min": tier.speed_m_per_min,
                "facilities": int((fac_tier == tier.key).sum()),
                "facilities_off_network": int(
                    ((fac_tier == tier.key) & fac["off_network"].to_numpy()).sum()
                ),
                "population_total": tot,
                "population_covered": cov_pop,
                "share": cov_pop / tot if tot else 0.0,
                "elderly_total": eld_total,
                "elderly_covered": eld_cov,
                "elderly_share": eld_cov / eld_total if eld_total else float("nan"),
                "residents_total": len(res),
                "residents_covered": int(covered.sum()),
                "median_distance_m": med,
                "p90_distance_m": p90,
            }
        )
        logger.info(
            "%s: %.1f%% of %.0f people within %.0f m",
            tier.key,
            100 * tier_rows[-1]["share"],
            tot,
            tier.threshold_m,
        )
    new_cols["all_covered"] = all_cov
    res = pd.concat([res, pd.DataFrame(new_cols, index=res.index)], axis=1)
    fac["catchment_population"] = catch_pop
    fac["catchment_residents"] = catch_res
    return CoverageResult(
        standard=standard,
        crs=crs,
        residents=res,
        facilities=fac,
        tiers=pd.DataFrame(tier_rows),
        resident_located=res_loc,
        facility_located=fac_loc,
        max_snap_m=float(max_snap_m),
    )
