"""The one place where the stages are wired together.

``load_inputs`` reads a scenario or explicit files into an :class:`Inputs` object (networks per
mode, validated facilities and residents with their rejects, units, boundaries); the ``run_*``
functions take it and return result objects. No algorithm lives here, and nothing is printed:
effective parameters and unit conversions are logged once per run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifecircle.config import ServiceStandard, load_standard
from lifecircle.coords import out_of_china
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
    lon = table.frame["lon"].to_numpy(float)
    lat = table.frame["lat"].to_numpy(float)

    def details(i: np.ndarray) -> list[str]:   # formatted for the rejected rows only
        # an Amap/Baidu offset is a few hundred metres: worth a hint for points in China only
        hint = np.where(~out_of_china(lon[i], lat[i]) & (table.crs in ("wgs84", "cgcs2000")),
                        "; if the file came from Amap/Tencent or Baidu, declare its crs as gcj02 or bd09",
                        "")
        return [f"lon={lo:.6f}, lat={la:.6f} (WGS84) is outside the road network's area "
                f"(more than {max_snap_m:.0f} m beyond its outline){h}"
                for lo, la, h in zip(lon[i], lat[i], hint, strict=True)]

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


def run_coverage(inputs: Inputs, *, limit_m: float | str | None = None) -> CoverageRun:
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


def run_export(
    inputs: Inputs,
    *,
    out: str | Path,
    layers: str | list[str] | tuple[str, ...] | None = None,
    fmt: str = "geojson",
    crs: str = "wgs84",
    precision: int | None = None,
    overwrite: bool = False,
    limit_m: float | str | None = None,
    coverage: CoverageRun | None = None,
    sources: dict[str, Any] | None = None,
    score_tier: str | None = None,
    candidates: str | Path | None = None,
) -> Any:
    """Export result layers as GeoJSON, GeoPackage, Shapefile or CSV in the chosen CRS.

    The request (layer names and their availability, format, CRS, existing files) is checked
    before the coverage run, and every layer is built before the first file is written, so a bad
    request writes nothing.

    Parameters
    ----------
    inputs : Inputs
    out : path
        Folder (one file per layer) or ``.gpkg`` file.
    layers : str or sequence, optional
        ``"facilities,residents"``…, ``"all"``; default facilities, residents and (when unit
        polygons are loaded) units.
    fmt : {"geojson", "gpkg", "shp", "csv"}
    crs : str
        ``wgs84``, ``cgcs2000``, ``cgcs2000-gk`` (zone chosen from the network's extent),
        ``cgcs2000-gk:<CM>``, ``gcj02``, ``bd09`` or ``EPSG:n``.
    precision : int, optional
        Coordinate decimals (default 6 for degrees, 2 for metres in GeoJSON/CSV).
    overwrite : bool
    limit_m : float or "auto", optional
        Search cut-off of the coverage run (see :func:`lifecircle.coverage.compute_coverage`).
    coverage : CoverageRun, optional
        Reuse a coverage run instead of computing one.
    sources : dict, optional
        Precomputed layers for :class:`lifecircle.export.ExportSources` (``service_areas``,
        ``catchments``, ``gaps``, ``candidates``, ``unit_tables``).
    score_tier, candidates : str, optional
        For the ``candidates`` layer: score candidate sites of this tier with
        :func:`run_scoring` (``candidates``: a file, ``"auto"`` or ``"auto:N"``; default the
        scenario's).

    Returns
    -------
    lifecircle.export.ExportResult
    """
    from lifecircle.export import (
        GIS_FORMATS,
        ExportSources,
        LayerUnavailableError,
        build_layers,
        check_writable,
        export_layers,
        export_paths,
        parse_layers,
        resolve_output_crs,
        unavailable_layers,
        write_csv,
    )

    names = (parse_layers(layers) if layers is not None
             else ["facilities", "residents", *(["units"] if inputs.units else [])])
    f = str(fmt).lower()
    if f not in GIS_FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(GIS_FORMATS)}")
    given = [k for k, v in (sources or {}).items() if v is not None]
    if score_tier is not None:
        given.append("candidates")
    problems = unavailable_layers(names, units_loaded=bool(inputs.units), given=given)
    if problems:
        raise LayerUnavailableError("; ".join(problems) + "; nothing was written")
    net = next(iter(inputs.networks.values()))
    minx, miny, maxx, maxy = net.bounds
    lon, _lat = net.to_lonlat(np.array([minx, maxx, minx, maxx], float), np.array([miny, miny, maxy, maxy], float))
    ocrs = resolve_output_crs(crs, lon_range=(float(lon.min()), float(lon.max())))
    if ocrs.reason and ocrs.reason != "given":
        logger.info("export CRS %s: %s", ocrs.label, ocrs.reason)
    o = Path(out)
    rejects_path = (o.with_name(f"{o.stem}_rejects.csv") if f == "gpkg" and o.suffix.lower() == ".gpkg"
                    else o / "rejects.csv")
    check_writable([p for ps in export_paths(names, out, f, ocrs).values() for p in ps] + [rejects_path],
                   overwrite=overwrite)
    t0 = time.perf_counter()
    cov = coverage or run_coverage(inputs, limit_m=limit_m)
    extra = dict(sources or {})
    if "candidates" in names and extra.get("candidates") is None and score_tier is not None:
        extra["candidates"] = run_scoring(inputs, tier=score_tier, candidates=candidates)
    src = ExportSources(run=cov, **extra)
    built = build_layers(src, names)
    t1 = time.perf_counter()
    result = export_layers(built, out, f, ocrs, precision=precision, overwrite=overwrite,
                           tier_keys=inputs.standard.keys)
    rejects = inputs.rejects()
    write_csv(rejects, rejects_path, overwrite=overwrite)
    result = dataclasses.replace(result, paths={**result.paths, "rejects": [rejects_path]},
                                 features={**result.features, "rejects": len(rejects)})
    logger.info("export: layers %.2f s, write %.2f s", t1 - t0, time.perf_counter() - t1)
    return result


def run_scoring(
    inputs: Inputs,
    *,
    tier: str,
    candidates: str | Path | pd.DataFrame | None = None,
    candidates_crs: str | None = None,
    weight: str = "population",
    select_k: int = 0,
    method: str = "greedy",
    chunk: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Any = None,
    max_exact_pairs: int | None = None,
) -> Any:
    """Score candidate sites for one tier and choose the best ``select_k`` (see :mod:`lifecircle.siting`).

    Parameters
    ----------
    tier : str
        Tier key or label (e.g. ``station`` or ``服务站``).
    candidates : path, ``"auto"``, ``"auto:N"`` or DataFrame, optional
        A candidates file (validated like facilities, rejects kept), automatic gap sites, or a
        frame with ``id, lon, lat`` (WGS84); default the scenario's ``[candidates]`` file.
    candidates_crs : str, optional
        Coordinate system of the candidates file (default the scenario's, else ``wgs84``).
    weight, select_k, method, chunk, checkpoint_dir, resume, progress, max_exact_pairs
        See :func:`lifecircle.siting.score_sites`; ``progress(finished_in_block, total)`` is
        called after every routing block.

    Returns
    -------
    lifecircle.siting.ScoringRun
    """
    from dataclasses import replace

    from lifecircle import siting
    from lifecircle.io import empty_rejects

    if inputs.residents is None:
        raise InputError("scoring needs residents (--residents or [residents] in the scenario)")
    std = inputs.standard
    key = std.resolve_tier(tier)
    if key is None:
        std.tier(tier)  # raises with the list of known tiers
    assert key is not None
    t = std.tier(key)
    t0 = time.perf_counter()
    keep = set(std.serving_tiers(key))
    sub_std = replace(std, tiers=tuple(x for x in std.tiers if x.key in keep))
    fac = inputs.facilities.frame
    fac = fac.loc[fac["tier"].isin(keep)].reset_index(drop=True)
    net = inputs.networks[t.mode]
    res = inputs.residents.frame
    res_loc = locate({t.mode: net}, res["lon"].to_numpy(float), res["lat"].to_numpy(float),
                     max_snap_m=inputs.max_snap_m)
    result = compute_coverage({t.mode: net}, fac, res, sub_std, max_snap_m=inputs.max_snap_m,
                              resident_located=res_loc)
    t_cov = time.perf_counter() - t0
    cov = CoverageRun(inputs=inputs, result=result, timings_s={"coverage": t_cov})

    sc = inputs.scenario
    spec = candidates if candidates is not None else (sc.candidates if sc else None)
    if spec is None:
        raise InputError("give --candidates PATH or --candidates auto[:N] (or [candidates] in the scenario)")
    if isinstance(spec, pd.DataFrame):
        frame = spec.reset_index(drop=True).copy()
        if "row" not in frame.columns:
            frame["row"] = np.arange(1, len(frame) + 1)
        frame["id"] = frame["id"].astype(str)
        table = PointTable("candidates", "<candidates>", "wgs84", frame, empty_rejects(), len(frame))
    else:
        auto_n = siting.parse_candidates_spec(str(spec))
        if auto_n is not None:
            frame = siting.auto_candidates(result, net, key, n=auto_n, weight=weight)
            frame.insert(1, "row", np.arange(1, len(frame) + 1))
            table = PointTable("candidates", f"auto:{auto_n}", "wgs84", frame, empty_rejects(), len(frame))
        else:
            crs = candidates_crs or (sc.candidates_crs if sc and candidates is None else "wgs84")
            # tiers are resolved in validate_candidates (a blank tier means "this tier")
            table = read_points(spec, "candidates", crs=crs)
    table = siting.validate_candidates(table, inputs, key)
    logger.info("candidates: %d used, %d rejected", len(table.frame), len(table.rejects))
    if len(table.frame) == 0:
        logger.warning("no usable candidate sites (%d rejected; see rejects.csv)", len(table.rejects))
    scored = siting.score_sites(
        result, net, table.frame, key, weight=weight, select_k=select_k, method=method,
        units=inputs.units, chunk=chunk, checkpoint_dir=checkpoint_dir, resume=resume,
        progress=progress, max_exact_pairs=max_exact_pairs or siting.MAX_EXACT_PAIRS)
    load = inputs.timings_s.get("load", 0.0)
    timings = {"load": load, "coverage": t_cov, **{f"scoring_{k}": v for k, v in scored.timings_s.items()},
               "total": load + time.perf_counter() - t0}
    return siting.ScoringRun(inputs=inputs, coverage=cov, candidates=table, result=scored,
                             timings_s=timings)


def run_report(run: CoverageRun, *, gap_cell_m: float = 200.0, min_gap_population: float = 1.0) -> Any:
    """Per-unit coverage (达标率) and coverage gaps of a coverage run.

    Units are the sub-district and ``run.inputs.units``; see :mod:`lifecircle.report` for the
    method. Returns a :class:`lifecircle.report.CoverageReport` (write it with
    :func:`lifecircle.report.write_report`, draw it with :func:`lifecircle.maps.write_coverage_map`).
    """
    from lifecircle.report import build_report

    t0 = time.perf_counter()
    rep = build_report(run, gap_cell_m=gap_cell_m, min_gap_population=min_gap_population)
    logger.info("report: %d unit layer(s), %d gap(s) in %.2f s", len(rep.levels), len(rep.gaps.table),
                time.perf_counter() - t0)
    return rep


def tier_service_areas(run: CoverageRun, *, buffer_m: float = 50.0) -> Any:
    """Each tier's service area at its own standard (``dissolve="tier"``), for maps.

    Reuses the run's snapped positions. Returns a GeoDataFrame in EPSG:4326 with ``tier``,
    ``budget_m``, ``budget_min``, ``area_m2`` and ``population``.
    """
    from lifecircle.service_areas import compute_service_areas

    inputs = run.inputs
    res = inputs.residents.frame if inputs.residents is not None else None
    t0 = time.perf_counter()
    areas = compute_service_areas(
        inputs.networks, inputs.facilities.frame, inputs.standard, residents=res, dissolve="tier",
        buffer_m=buffer_m, max_snap_m=inputs.max_snap_m,
        facility_located=run.result.facility_located, resident_located=run.result.resident_located)
    logger.info("tier service areas in %.2f s", time.perf_counter() - t0)
    return areas.to_wgs84()


@dataclass(frozen=True)
class ServiceAreaRun:
    """A service-area run: inputs, polygons (:class:`lifecircle.service_areas.ServiceAreas`)
    and timings."""

    inputs: Inputs
    result: Any
    timings_s: dict[str, float]


def run_service_areas(
    inputs: Inputs,
    *,
    tiers: tuple[str, ...] | list[str] | None = None,
    minutes: list[float] | None = None,
    metres: list[float] | None = None,
    dissolve: str = "none",
    rings: bool = False,
    buffer_m: float = 50.0,
    simplify_m: float = 0.0,
) -> ServiceAreaRun:
    """Service-area polygons (see :mod:`lifecircle.service_areas`); residents are optional.

    Returns
    -------
    ServiceAreaRun
        ``timings_s`` has ``load``, ``snap``, ``polygons`` and ``total`` seconds.
    """
    from lifecircle.service_areas import compute_service_areas

    t0 = time.perf_counter()
    fac = inputs.facilities.frame
    fac_loc = locate(inputs.networks, fac["lon"].to_numpy(float), fac["lat"].to_numpy(float),
                     max_snap_m=inputs.max_snap_m)
    res = inputs.residents.frame if inputs.residents is not None else None
    res_loc = (locate(inputs.networks, res["lon"].to_numpy(float), res["lat"].to_numpy(float),
                      max_snap_m=inputs.max_snap_m) if res is not None else None)
    t_snap = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = compute_service_areas(
        inputs.networks, fac, inputs.standard, residents=res, tiers=tiers, minutes=minutes,
        metres=metres, dissolve=dissolve, rings=rings, buffer_m=buffer_m, simplify_m=simplify_m,
        max_snap_m=inputs.max_snap_m, facility_located=fac_loc, resident_located=res_loc)
    t_poly = time.perf_counter() - t1
    load = inputs.timings_s.get("load", 0.0)
    timings = {"load": load, "snap": t_snap, "polygons": t_poly, "total": load + t_snap + t_poly}
    logger.info("service areas: snap %.2f s, polygons %.2f s", t_snap, t_poly)
    return ServiceAreaRun(inputs=inputs, result=result, timings_s=timings)
