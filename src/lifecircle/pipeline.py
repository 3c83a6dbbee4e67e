"""The one place where the stages are wired together.

``load_inputs`` reads a scenario or explicit files into an :class:`Inputs` object (networks per
mode, validated facilities and residents with their rejects, units, boundaries); the ``run_*``
functions take it and return result objects. No algorithm lives here, and nothing is printed:
effective parameters and unit conversions are logged once per run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifecircle.config import ServiceStandard, load_standard
from lifecircle.coverage import CoverageResult, compute_coverage, locate
from lifecircle.errors import InputError
from lifecircle.io import PointTable, Scenario, UnitLayer, load_scenario, read_boundary, read_points
from lifecircle.network import RoadNetwork, load_networks
from lifecircle.snapping import DEFAULT_MAX_SNAP_M, outside_network_area

logger = logging.getLogger(__name__)

#: Default folder for cached networks (relative to the working directory).
DEFAULT_CACHE_DIR = Path(".lifecircle_cache")


@dataclass(frozen=True)
class Inputs:
    """Everything an analysis needs, loaded and validated once.

    Attributes
    ----------
    standard : ServiceStandard
    networks : dict
        ``{mode: RoadNetwork}``, one per mode the standard uses, all in one metric CRS.
    facilities : PointTable
    residents : PointTable or None
    units : tuple of UnitLayer
    boundaries : dict
        ``{name: shapely geometry}`` in WGS84 (e.g. ``county``, ``subdistrict``).
    scenario : Scenario or None
    max_snap_m : float
    timings_s : dict
        Seconds per loading stage.
    """

    standard: ServiceStandard
    networks: dict[str, RoadNetwork]
    facilities: PointTable
    residents: PointTable | None
    units: tuple[UnitLayer, ...] = ()
    boundaries: dict[str, Any] = field(default_factory=dict)
    scenario: Scenario | None = None
    max_snap_m: float = DEFAULT_MAX_SNAP_M
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def crs(self) -> str:
        """The analysis CRS."""
        return next(iter(self.networks.values())).crs

    @property
    def title(self) -> str:
        """Scenario name for maps and reports, marked synthetic where it applies."""
        if self.scenario is None:
            return "lifecircle"
        return self.scenario.name

    @property
    def synthetic(self) -> bool:
        """True for the synthetic demonstration scenario."""
        return bool(self.scenario and self.scenario.synthetic)

    def rejects(self) -> pd.DataFrame:
        """All rejected input rows, every file."""
        from lifecircle.io import empty_rejects

        frames = [t.rejects for t in (self.facilities, self.residents) if t is not None and len(t.rejects)]
        return pd.concat(frames, ignore_index=True) if frames else empty_rejects()

    def input_counts(self) -> dict[str, dict[str, int]]:
        """Rows read, used and rejected per input file (they reconcile)."""
        out = {}
        for t in (self.facilities, self.residents):
            if t is not None:
                out[t.kind] = {"input": t.n_input, "used": len(t.frame), "rejected": len(t.rejects)}
        return out


def load_inputs(
    *,
    scenario: str | Path | None = None,
    network: str | Path | None = None,
    facilities: str | Path | None = None,
    residents: str | Path | None = None,
    standard: str | Path | ServiceStandard | None = None,
    mode: str | None = None,
    max_snap_m: float | None = None,
    facilities_crs: str | None = None,
    residents_crs: str | None = None,
    network_crs: str | int | None = None,
    units: tuple[str | Path, ...] = (),
    upper_tiers_count: bool | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    require_residents: bool = True,
) -> Inputs:
    """Load a scenario file and/or explicit inputs; explicit arguments override the scenario.

    Parameters
    ----------
    scenario : path, optional
        A ``scenario.toml`` naming the files and their coordinate systems.
    network, facilities, residents : path, optional
        Input files (required unless the scenario names them).
    standard : str, path or ServiceStandard, optional
        Preset name or TOML file; default the scenario's, else ``tancheng``.
    mode : {"walk", "bike", "drive"}, optional
        Override every tier's mode.
    max_snap_m : float, optional
        Longest access leg (default 300 m).
    facilities_crs, residents_crs : str, optional
        ``wgs84`` (default), ``cgcs2000``, ``gcj02``, ``bd09`` or ``EPSG:n``.
    network_crs : str or int, optional
        Metric analysis CRS (default: the UTM zone of the network).
    units : tuple of path
        Extra admin-unit layers (communities, grids).
    cache_dir : path, optional
        Network cache folder; ``None`` disables caching.

    Raises
    ------
    InputError
        If a required input is missing or unreadable.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sc = load_scenario(scenario) if scenario is not None else None
    net_path = network or (sc.network if sc else None)
    fac_path = facilities or (sc.facilities if sc else None)
    res_path = residents or (sc.residents if sc else None)
    if net_path is None or fac_path is None or (require_residents and res_path is None):
        need = [n for n, v in (("--network", net_path), ("--facilities", fac_path),
                               ("--residents", res_path if require_residents else 1)) if v is None]
        raise InputError(f"missing input(s): {', '.join(need)}; give them or a --scenario file")
    if isinstance(standard, ServiceStandard):
        std = standard
    else:
        std = load_standard(standard or (sc.standard if sc else "tancheng"))
    mode = mode or (sc.mode if sc else None)
    if mode:
        std = std.with_mode(mode)
        logger.info("every tier uses mode %s", mode)
    std = std.with_options(upper_tiers_count=upper_tiers_count)
    for t in std.tiers:
        logger.info("tier %s (%s): %s, %.4g min at %.4g m/min -> %.0f m", t.key, t.label_zh, t.mode,
                    t.minutes, t.speed_m_per_min, t.threshold_m)
    snap = float(max_snap_m if max_snap_m is not None else (sc.max_snap_m if sc and sc.max_snap_m else DEFAULT_MAX_SNAP_M))

    modes = sorted({t.mode for t in std.tiers})
    t1 = time.perf_counter()
    nets = load_networks(net_path, modes, crs=network_crs, cache_dir=cache_dir)
    timings["load_network"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    fac = read_points(fac_path, "facilities", crs=facilities_crs or (sc.facilities_crs if sc else "wgs84"),
                      standard=std)
    res = None
    if res_path is not None:
        res = read_points(res_path, "residents", crs=residents_crs or (sc.residents_crs if sc else "wgs84"))
    net0 = nets[modes[0]]
    fac = reject_outside(fac, net0, snap)
    if res is not None:
        res = reject_outside(res, net0, snap)
    unit_layers: list[UnitLayer] = []
    if sc:
        unit_layers += [u.read() for u in sc.units]
    if units:
        from lifecircle.io import read_units

        unit_layers += [read_units(u) for u in units]
    bounds = {k: read_boundary(v) for k, v in (sc.boundaries.items() if sc else []) if v.exists()}
    timings["load_points"] = time.perf_counter() - t1
    timings["load"] = time.perf_counter() - t0
    return Inputs(standard=std, networks=nets, facilities=fac, residents=res, units=tuple(unit_layers),
                  boundaries=bounds, scenario=sc, max_snap_m=snap, timings_s=timings)


def reject_outside(table: PointTable, network: RoadNetwork, max_snap_m: float) -> PointTable:
    """Move rows outside the network's area (hull + ``max_snap_m``) to the rejects."""
    if len(table.frame) == 0:
        return table
    x, y = network.from_lonlat(table.frame["lon"].to_numpy(float), table.frame["lat"].to_numpy(float))
    out = outside_network_area(network, x, y, margin_m=max_snap_m)
    hint = (" (if the file came from Amap/Tencent or Baidu, declare its crs as gcj02 or bd09)"
            if table.crs in ("wgs84", "cgcs2000") else "")
    details = [f"lon={lo:.6f}, lat={la:.6f} (WGS84) is outside the road network's area "
               f"(more than {max_snap_m:.0f} m beyond its outline){hint}"
               for lo, la in zip(table.frame["lon"], table.frame["lat"], strict=True)]
    return table.with_rejects(out, "outside_network_area", details)


@dataclass(frozen=True)
class CoverageRun:
    """A coverage run: inputs, result and timings."""

    inputs: Inputs
    result: CoverageResult
    timings_s: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        s = self.result.summary()
        tiers = {}
        for key, t in s["tiers"].items():
            tiers[key] = {"threshold_m": t["threshold_m"], "minutes": t["minutes"], "mode": t["mode"],
                          "population_total": t["population_total"],
                          "population_covered": t["population_covered"], "share": t["share"],
                          **{k: v for k, v in t.items() if k not in (
                              "threshold_m", "minutes", "mode", "population_total",
                              "population_covered", "share")}}
        sc = self.inputs.scenario
        return {
            "scenario": sc.name if sc else None,
            "synthetic": self.inputs.synthetic,
            "standard": self.inputs.standard.to_dict(),
            "tiers": tiers,
            "all_tiers": s["all_tiers"],
            "inputs": self.inputs.input_counts(),
            "networks": {m: n.summary() for m, n in self.inputs.networks.items()},
            "residents_off_network": s["residents_off_network"],
            "population_off_network": s["population_off_network"],
            "max_snap_m": self.inputs.max_snap_m,
            "crs": s["crs"],
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


def run_coverage(inputs: Inputs, *, limit_m: float | None = None) -> CoverageRun:
    """Distances and coverage for every resident and tier.

    Returns
    -------
    CoverageRun
        ``timings_s`` has ``load``, ``snap``, ``route`` and ``total`` seconds.
    """
    if inputs.residents is None:
        raise InputError("coverage needs residents (--residents or [residents] in the scenario)")
    t0 = time.perf_counter()
    fac = inputs.facilities.frame
    res = inputs.residents.frame
    fac_loc = locate(inputs.networks, fac["lon"].to_numpy(float), fac["lat"].to_numpy(float),
                     max_snap_m=inputs.max_snap_m)
    res_loc = locate(inputs.networks, res["lon"].to_numpy(float), res["lat"].to_numpy(float),
                     max_snap_m=inputs.max_snap_m)
    t_snap = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = compute_coverage(inputs.networks, fac, res, inputs.standard, max_snap_m=inputs.max_snap_m,
                              limit_m=limit_m, facility_located=fac_loc, resident_located=res_loc)
    t_route = time.perf_counter() - t1
    load = inputs.timings_s.get("load", 0.0)
    timings = {"load": load, "snap": t_snap, "route": t_route, "total": load + t_snap + t_route}
    logger.info("coverage: snap %.2f s, route %.2f s", t_snap, t_route)
    return CoverageRun(inputs=inputs, result=result, timings_s=timings)


def finite_or_none(v: float) -> float | None:
    """JSON has no infinity: ``inf``/``nan`` become ``None``."""
    return float(v) if np.isfinite(v) else None
