"""The one place where the stages are wired together.

``load_inputs`` reads a scenario and/or explicit inputs (files, or networkx graphs and
(Geo)DataFrames from Python) into an :class:`~lifecircle.runs.Inputs` object (networks per mode,
validated facilities and residents with their rejects, units, boundaries); the ``run_*``
functions take it and return result objects; the ``write_*`` functions write a command's files.
No algorithm lives here, and nothing is printed: effective parameters and unit conversions are
logged once per run.

Examples
--------
>>> import lifecircle as lc
>>> from lifecircle.demo import ensure_demo
>>> scenario = ensure_demo()  # doctest: +SKIP
>>> run = lc.run_coverage(lc.load_inputs(scenario=scenario))  # doctest: +SKIP
>>> run.residents_gdf().crs.to_epsg()  # doctest: +SKIP
4326
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
import shapely

from lifecircle import grids, siting
from lifecircle._files import (
    DEFAULT_CSV_ENCODING,
    TABLE_FORMATS,
    check_csv_encoding,
    check_writable,
    write_csv,
    write_geojson,
    write_json,
    write_point_table,
    write_text,
)
from lifecircle.config import ServiceStandard, Tier, load_standard
from lifecircle.coords import out_of_china
from lifecircle.coverage import compute_coverage, locate
from lifecircle.diagnose import DEFAULT_MIN_USED_SHARE, check_used_shares
from lifecircle.errors import InputError
from lifecircle.export import (
    GIS_FORMATS,
    ExportMeta,
    ExportResult,
    ExportSources,
    LayerUnavailableError,
    build_layers,
    export_layers,
    export_paths,
    parse_layers,
    resolve_output_crs,
    unavailable_layers,
)
from lifecircle.extract import (
    DEFAULT_CLIP_BUFFER_M,
    clip_network_file,
    read_clip,
    to_wgs84_geometry,
)
from lifecircle.grids import GridOptions, GridResult
from lifecircle.io import (
    DEFAULT_MAX_POPULATION,
    PointTable,
    Scenario,
    UnitLayer,
    empty_rejects,
    load_scenario,
    read_boundary,
    read_boundary_name,
    read_buildings,
    read_points,
    read_population_areas,
    read_units,
)
from lifecircle.maps import write_candidates_map, write_grids_map
from lifecircle.network import RoadNetwork, from_networkx, load_networks
from lifecircle.population import (
    Placement,
    distribute_areas,
    distribute_raster,
    distribute_with_buildings,
)
from lifecircle.report import CoverageReport, build_report, grids_report_html
from lifecircle.roads import DEFAULT_TOLERANCE_M, merge_road_lines, read_road_lines
from lifecircle.routing import RoutingGraph
from lifecircle.runs import CoverageRun, Inputs, facility_table, resident_table
from lifecircle.service_areas import ServiceAreas, compute_service_areas
from lifecircle.siting import ScoringResult
from lifecircle.snapping import DEFAULT_MAX_SNAP_M, outside_network_area, snap_to_network
from lifecircle.tier_rules import TierRules, load_tier_rules
from lifecircle.workbook import write_tables_workbook

if TYPE_CHECKING:
    import geopandas as gpd
    import networkx as nx
    from shapely.geometry.base import BaseGeometry

logger = logging.getLogger(__name__)

#: Default folder for cached networks (relative to the working directory).
DEFAULT_CACHE_DIR = Path(".lifecircle_cache")


#: Network files read as road centre lines (:mod:`lifecircle.roads`).
LINE_SUFFIXES = (".shp", ".gpkg", ".geojson")

#: What ``load_inputs`` takes for each input.
NetworkSource: TypeAlias = "str | Path | nx.Graph"
PointSource: TypeAlias = "str | Path | pd.DataFrame"
UnitSource: TypeAlias = "str | Path | pd.DataFrame | UnitLayer"


def load_inputs(
    *,
    scenario: str | Path | None = None,
    network: NetworkSource | None = None,
    facilities: PointSource | None = None,
    residents: PointSource | None = None,
    standard: str | Path | ServiceStandard | None = None,
    mode: str | None = None,
    max_snap_m: float | None = None,
    facilities_crs: str | None = None,
    residents_crs: str | None = None,
    network_crs: str | int | None = None,
    units: Sequence[UnitSource] = (),
    upper_tiers_count: bool | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    require_residents: bool = True,
    min_used_share: float = DEFAULT_MIN_USED_SHARE,
    max_rejects: int | None = None,
    max_population: float = DEFAULT_MAX_POPULATION,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    sheets: Mapping[str, str] | None = None,
    encoding: str | None = None,
    tier_rules: str | Path | TierRules | None = None,
    population_table: str | Path | None = None,
    population_join: str | None = None,
    population_field: str | None = None,
    buildings: str | Path | pd.DataFrame | None = None,
    clip: str | Path | BaseGeometry | None = None,
    clip_crs: str = "wgs84",
    clip_buffer_m: float = DEFAULT_CLIP_BUFFER_M,
    extra_roads: str | Path | gpd.GeoDataFrame | None = None,
    extra_roads_crs: str | None = None,
    extra_roads_tolerance_m: float = DEFAULT_TOLERANCE_M,
) -> Inputs:
    """Load a scenario file and/or explicit inputs; explicit arguments override the scenario.

    In-memory inputs get exactly the same validation and rejects as files.

    Parameters
    ----------
    scenario : path, optional
        A ``scenario.toml`` naming the files and their coordinate systems.
    network : path or networkx graph, optional
        ``.osm``/``.osm.pbf``/``.graphml`` file, or a networkx/osmnx graph (node ``x``/``y`` in
        the graph's ``crs``, default EPSG:4326).
    facilities, residents : path, DataFrame or GeoDataFrame, optional
        Input files or frames (required unless the scenario names them). A GeoDataFrame's
        geometry and ``.crs`` are used; a DataFrame has ``lon``/``lat`` columns.
    standard : str, path or ServiceStandard, optional
        Preset name or TOML file; default the scenario's, else ``tancheng``.
    mode : {"walk", "bike", "drive"}, optional
        Override every tier's mode.
    max_snap_m : float, optional
        Longest access leg in metres (default 300 m).
    facilities_crs, residents_crs : str, optional
        ``wgs84``, ``cgcs2000``, ``gcj02`` (Amap, Tencent), ``bd09`` (Baidu) or ``EPSG:n``.
        Files default to ``wgs84``; a frame without ``.crs`` must declare it (never a silent
        WGS84), and ``gcj02``/``bd09`` declare the offsets that no EPSG code carries.
    network_crs : str or int, optional
        Metric analysis CRS (default: the UTM zone of the network).
    units : sequence of path, GeoDataFrame or UnitLayer
        Extra admin-unit layers (communities, grids).
    upper_tiers_count : bool, optional
        Whether a facility of an upper tier also serves the tiers below it.
    cache_dir : path, optional
        Network cache folder; ``None`` disables caching.
    require_residents : bool
        Raise when no residents are given.
    min_used_share : float
        Stop when less than this share (0..1) of a facility tier, or of the residents' people,
        is usable (default 0.5; 0 accepts any rejects). See :mod:`lifecircle.diagnose`.
    max_rejects : int, optional
        Stop when more input rows than this are rejected (0: any reject stops the run).
    max_population : float
        Most people at one resident point (default 50,000); more is ``implausible_population``.
    columns : mapping, optional
        Explicit column names per input, ``{"residents": {"population": "常住人口"}}``; the key
        ``""`` applies to every input but units; ``{"units": {"id": ..., "name": ...}}`` names
        the id and name columns of the ``units`` layers. Merged over the scenario's ``columns``
        tables.
    sheets : mapping, optional
        Workbook sheet per input (name or number from 1), e.g. ``{"residents": "2"}``.
    encoding : str, optional
        Text encoding of every CSV/Shapefile input (default: detected per file).
    tier_rules : path or TierRules, optional
        Assign facility tiers from POI type/typecode/name (:mod:`lifecircle.tier_rules`).
    population_table, population_join, population_field : optional
        A population table joined to polygon residents (``"TABLEFIELD=POLYGONFIELD"``), see
        :func:`lifecircle.io.read_population_areas`.
    buildings : path or GeoDataFrame, optional
        Residential building footprints with ``floors``/``area`` columns: polygon residents'
        people are split over the buildings inside each polygon by floor area
        (:func:`lifecircle.population.distribute_with_buildings`).

    Residents given as polygons (with a population column or a joined table) or as a
    population raster (``.tif``) are distributed along the streets inside each polygon or cell
    (:mod:`lifecircle.population`); ``Inputs.population`` reports how. With ``clip``, a raster
    keeps only the cells whose centre lies inside the boundary (not its buffer: the county's
    own people).
    clip : path or shapely geometry, optional
        Boundary polygon(s) to cut a large OSM file down to: only ways of the tiers' modes that
        intersect the boundary buffered by ``clip_buffer_m`` are loaded, whole (one streaming
        pass, cached under ``cache_dir``). Facilities and residents are treated exactly as with
        a file cut beforehand by the same rule. A geometry is in ``clip_crs`` degrees.
    clip_crs : str
        ``wgs84`` (default), ``cgcs2000``, ``gcj02`` or ``bd09``: the boundary's coordinates
        when the file (or geometry) carries no CRS of its own.
    clip_buffer_m : float
        Buffer around the boundary in metres (default 2,000 m).
    extra_roads : path or GeoDataFrame, optional
        Local road centre lines (Shapefile/GPKG) merged into the OSM network and noded at
        crossings within ``extra_roads_tolerance_m`` (see :mod:`lifecircle.roads`); the noding
        report is in ``summary.json`` under ``networks.{mode}.extra_roads``. A ``.shp``/``.gpkg``
        given as ``network`` is loaded the same way, as the whole network.
    extra_roads_crs : str, optional
        CRS of a line file without a ``.prj`` (e.g. ``EPSG:4490``).
    extra_roads_tolerance_m : float
        Noding tolerance in metres (default 1 m).

    Returns
    -------
    Inputs

    Raises
    ------
    InputError
        If a required input is missing or unreadable.
    CRSError
        If a frame's coordinate system is neither declared nor carried by the frame.
    RejectThresholdError
        If too much of an input was rejected (``min_used_share``, ``max_rejects``), with a
        diagnosis (swapped lon/lat, a wrong coordinate system, a network of another area).

    Examples
    --------
    >>> import geopandas as gpd, networkx as nx
    >>> from shapely.geometry import Point
    >>> import lifecircle as lc
    >>> G = nx.Graph(crs="EPSG:4326")
    >>> G.add_node(1, x=118.340, y=34.610)
    >>> G.add_node(2, x=118.350, y=34.610)
    >>> G.add_edge(1, 2)
    >>> fac = gpd.GeoDataFrame({"id": ["S1"], "tier": ["station"]},
    ...                        geometry=[Point(118.341, 34.610)], crs="EPSG:4326")
    >>> res = gpd.GeoDataFrame({"id": ["R1"], "population": [120]},
    ...                        geometry=[Point(118.345, 34.6102)], crs="EPSG:4326")
    >>> inputs = lc.load_inputs(network=G, facilities=fac, residents=res, cache_dir=None)
    >>> run = lc.run_coverage(inputs)
    >>> round(float(run.residents_gdf()["station_distance_m"].iloc[0]))
    389
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sc = load_scenario(scenario) if scenario is not None else None
    net_src = network if network is not None else (sc.network if sc else None)
    fac_src = facilities if facilities is not None else (sc.facilities if sc else None)
    res_src = residents if residents is not None else (sc.residents if sc else None)
    if net_src is None or fac_src is None or (require_residents and res_src is None):
        need = [
            n
            for n, v in (
                ("--network", net_src),
                ("--facilities", fac_src),
                ("--residents", res_src if require_residents else 1),
            )
            if v is None
        ]
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
        logger.info(
            "tier %s (%s): %s, %.4g min at %.4g m/min -> %.0f m",
            t.key,
            t.label_zh,
            t.mode,
            t.minutes,
            t.speed_m_per_min,
            t.threshold_m,
        )
    scenario_snap = sc.max_snap_m if sc and sc.max_snap_m is not None else DEFAULT_MAX_SNAP_M
    snap = float(max_snap_m if max_snap_m is not None else scenario_snap)
    if not (math.isfinite(snap) and snap >= 0):
        raise InputError(f"max_snap_m must be a distance in metres >= 0, got {snap!r}")

    modes = sorted({t.mode for t in std.tiers})
    t1 = time.perf_counter()
    nets: dict[str, RoadNetwork]
    clip_area = None  # the --clip boundary (WGS84): a population raster is cut to it too
    # a graph exists only if networkx was imported: no import here (0.05 s of every batch
    # worker's start), and none for a file
    nx_module = sys.modules.get("networkx")
    if nx_module is not None and isinstance(net_src, nx_module.Graph):
        nets = {m: from_networkx(net_src, mode=m, crs=network_crs) for m in modes}
    else:
        if clip is not None:
            boundary = (
                read_clip(clip, crs=clip_crs)
                if isinstance(clip, str | Path)
                else to_wgs84_geometry(clip, clip_crs)
            )
            net_src = clip_network_file(
                net_src, boundary, buffer=clip_buffer_m, modes=modes, cache_dir=cache_dir
            )
            clip_area = boundary
        if Path(net_src).suffix.lower() in LINE_SUFFIXES:
            lines = read_road_lines(net_src, crs=extra_roads_crs)
            nets = {
                m: merge_road_lines(
                    lines, mode=m, tolerance_m=extra_roads_tolerance_m, crs=network_crs
                )[0]
                for m in modes
            }
        else:
            nets = load_networks(net_src, modes, crs=network_crs, cache_dir=cache_dir)
    if extra_roads is not None:
        lines = (
            read_road_lines(extra_roads, crs=extra_roads_crs)
            if isinstance(extra_roads, str | Path)
            else extra_roads
        )
        nets = {
            m: merge_road_lines(lines, mode=m, base=n, tolerance_m=extra_roads_tolerance_m)[0]
            for m, n in nets.items()
        }
    timings["load_network"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    opts = read_options(sc, columns=columns, sheets=sheets, encoding=encoding)
    rules_src = tier_rules if tier_rules is not None else (sc.tier_rules if sc else None)
    rules = (
        rules_src
        if isinstance(rules_src, TierRules) or rules_src is None
        else load_tier_rules(rules_src, std)
    )
    # files declare their CRS in the scenario (default WGS84); frames carry their own
    fac_crs = facilities_crs or (sc.facilities_crs if sc and facilities is None else None)
    fac = read_points(
        fac_src, "facilities", crs=fac_crs, standard=std, tier_rules=rules, **opts["facilities"]
    )
    res = None
    population: dict[str, Any] = {}
    net0 = nets[modes[0]]
    if res_src is not None:
        res_crs = residents_crs or (sc.residents_crs if sc and residents is None else None)
        table_src = population_table or (sc.population_table if sc else None)
        res, population = load_residents(
            res_src,
            nets.get("walk", net0),
            crs=res_crs,
            max_snap_m=snap,
            population_table=table_src,
            population_join=population_join or (sc.population_join if sc else None),
            population_field=population_field or (sc.population_field if sc else None),
            area=clip_area,
            buildings=buildings if buildings is not None else (sc.buildings if sc else None),
            max_population=max_population,
            **opts["residents"],
        )
    fac = reject_outside(fac, net0, snap)
    if res is not None:
        res = reject_outside(res, net0, snap)
    check_used_shares(
        [t for t in (fac, res) if t is not None],
        net0,
        margin_m=snap,
        min_used_share=min_used_share,
        max_rejects=max_rejects,
        # a clipped network leaves out, on purpose, the rows beyond the region
        ignore_reasons=("outside_network_area",) if clip is not None else (),
    )
    unit_layers: list[UnitLayer] = [u.read(encoding=encoding) for u in sc.units] if sc else []
    unit_cols = dict((columns or {}).get("units", {}))
    unit_layers += [
        u
        if isinstance(u, UnitLayer)
        else read_units(
            u,
            id_field=unit_cols.get("id"),
            name_field=unit_cols.get("name"),
            encoding=encoding,
        )
        for u in units
    ]
    bound_paths = {k: v for k, v in (sc.boundaries.items() if sc else []) if v.exists()}
    bounds = {k: read_boundary(v) for k, v in bound_paths.items()}
    bound_names = {k: n for k, v in bound_paths.items() if (n := read_boundary_name(v))}
    timings["load_points"] = time.perf_counter() - t1
    timings["load"] = time.perf_counter() - t0
    return Inputs(
        standard=std,
        networks=nets,
        facilities=fac,
        residents=res,
        units=tuple(unit_layers),
        boundaries=bounds,
        boundary_names=bound_names,
        scenario=sc,
        max_snap_m=snap,
        timings_s=timings,
        population=population,
        read_options=opts,
    )


def read_options(
    sc: Scenario | None,
    *,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    sheets: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Per input kind, the ``columns``/``sheet``/``encoding`` keyword arguments to read it with.

    Explicit arguments override the scenario's; ``columns[""]`` applies to every kind.
    """
    out: dict[str, dict[str, Any]] = {}
    for kind in ("facilities", "residents", "candidates"):
        cols = {
            **(sc.columns.get(kind, {}) if sc else {}),
            **dict((columns or {}).get("", {})),
            **dict((columns or {}).get(kind, {})),
        }
        sheet = (
            (sheets or {}).get(kind)
            or (sheets or {}).get("")
            or (sc.sheets.get(kind) if sc else None)
        )
        enc = encoding or (sc.encodings.get(kind) if sc else None)
        out[kind] = {"columns": cols or None, "sheet": sheet, "encoding": enc}
    return out


def _is_polygon_source(src: PointSource) -> bool:
    """True when a residents input holds polygons (buildings, compounds, communities...)."""
    import geopandas as gpd

    if isinstance(src, gpd.GeoDataFrame):
        types = shapely.get_type_id(np.asarray(src.geometry.values))
        return bool(len(types)) and bool(np.isin(types, [3, 6]).mean() > 0.5)
    if isinstance(src, pd.DataFrame):
        return False
    p = Path(src)
    if p.suffix.lower() not in (".geojson", ".json", ".gpkg", ".shp", ".fgb") or not p.exists():
        return False
    import pyogrio

    try:
        kind = str(pyogrio.read_info(p).get("geometry_type") or "").lower()
        if kind == "unknown":  # mixed geometry types (GeoJSON): most features decide
            geoms = pyogrio.read_dataframe(p, columns=[]).geometry.values
            types = shapely.get_type_id(np.asarray(geoms))
            return bool(len(types)) and bool(np.isin(types, [3, 6]).mean() > 0.5)
    except Exception:  # unreadable: read_points reports it
        return False
    return "polygon" in kind


def load_residents(
    src: PointSource,
    network: RoadNetwork,
    *,
    crs: str | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    columns: dict[str, str] | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    population_table: str | Path | None = None,
    population_join: str | None = None,
    population_field: str | None = None,
    buildings: str | Path | pd.DataFrame | None = None,
    area: Any = None,
    max_population: float = DEFAULT_MAX_POPULATION,
) -> tuple[PointTable, dict[str, Any]]:
    """Residents as points: read as given, or placed on the streets from polygons or a raster.

    Points (CSV/XLSX lon/lat, point features) are read as they are. Polygons with a population
    (or joined to ``population_table``) and population rasters (``.tif``) are distributed along
    the streets of ``network`` inside each polygon or cell (:mod:`lifecircle.population`).

    ``area`` (a shapely geometry in WGS84, e.g. a clip boundary) limits a raster to the cells
    whose centre lies inside it; default the network's convex hull plus ``max_snap_m``.

    Returns
    -------
    (PointTable, dict)
        The residents and how they were placed (empty for points).
    """
    if not isinstance(src, pd.DataFrame) and Path(src).suffix.lower() in (".tif", ".tiff"):
        area_m = (
            None
            if area is None
            else shapely.transform(
                area, lambda xy: np.column_stack(network.from_lonlat(xy[:, 0], xy[:, 1]))
            )
        )
        rp = distribute_raster(network, Path(src), margin_m=max_snap_m, area_m=area_m)
        pl = rp.placement
        cell_no = rp.cell_row * (int(rp.cell_col.max()) + 1) + rp.cell_col + 1
        ids = np.array([f"r{r}c{c}" for r, c in zip(rp.cell_row, rp.cell_col, strict=True)])
        frame = _placed_frame(network, pl, ids, cell_no[pl.area], np.full(len(ids), "", object))
        table = PointTable("residents", str(src), "raster", frame, empty_rejects(), len(frame))
        return table, {"kind": "raster", **rp.summary()}
    if population_table is None and not _is_polygon_source(src):
        return read_points(
            src,
            "residents",
            crs=crs,
            columns=columns,
            sheet=sheet,
            encoding=encoding,
            max_population=max_population,
        ), {}
    areas = read_population_areas(
        src,
        crs=crs,
        columns=columns,
        encoding=encoding,
        table=population_table,
        join=population_join,
        population_field=population_field,
        table_sheet=sheet,
        table_encoding=encoding,
    )
    f = areas.frame
    geoms = np.asarray(f.geometry.values)

    def to_net(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(network.from_lonlat(xy[:, 0], xy[:, 1]))

    extras = {k: f[k].to_numpy(float) for k in ("elderly", "children") if f[k].notna().any()}
    areas_m = shapely.transform(geoms, to_net)
    rejects = areas.rejects
    b_info: dict[str, Any] = {}
    if buildings is None:
        pl = distribute_areas(network, areas_m, f["population"].to_numpy(float), extras=extras)
    else:
        b = read_buildings(buildings)
        b_m = shapely.transform(np.asarray(b.frame.geometry.values), to_net)
        floors = np.nan_to_num(b.frame["floors"].to_numpy(float), nan=1.0)
        given = b.frame["floor_area_m2"].to_numpy(float)
        floor_area = np.where(np.isnan(given), shapely.area(b_m) * floors, given)
        pl = distribute_with_buildings(
            network, areas_m, f["population"].to_numpy(float), b_m, floor_area, extras=extras
        )
        rejects = pd.concat([r for r in (rejects, b.rejects) if len(r)] or [rejects])
        rejects = rejects.reset_index(drop=True)
        b_info = {
            "buildings": {"input": b.n_input, "used": len(b.frame), "rejected": len(b.rejects)}
        }
    frame = _placed_frame(
        network,
        pl,
        f["id"].to_numpy(object),
        f["row"].to_numpy()[pl.area],
        f["name"].to_numpy(object),
    )
    table = PointTable(
        "residents", areas.path, areas.crs, frame, rejects, len(frame) + len(rejects)
    )
    info = {
        "kind": "polygons" if population_table is None else "polygons_with_table",
        **areas.counts,
        **b_info,
        **pl.summary(),
        "population_in": float(f["population"].sum()),
    }
    return table, info


def _placed_frame(
    network: RoadNetwork,
    pl: Placement,
    area_ids: np.ndarray,
    rows: np.ndarray,
    names: np.ndarray,
) -> pd.DataFrame:
    """The residents frame of placed points: ids ``AREA#k``, WGS84 lon/lat, source area."""
    lon, lat = network.to_lonlat(pl.x_m, pl.y_m)
    src_id = np.asarray(area_ids, dtype=object)[pl.area].astype(str)
    k = pd.Series(src_id).groupby(src_id).cumcount().to_numpy() + 1
    frame = pd.DataFrame(
        {
            "id": np.char.add(np.char.add(src_id.astype(str), "#"), k.astype(str)),
            "row": np.asarray(rows, dtype=np.int64),
            "name": np.asarray(names, dtype=object)[pl.area],
            "population": pl.population,
            "elderly": pl.extras.get("elderly", np.full(len(pl.area), np.nan)),
            "children": pl.extras.get("children", np.full(len(pl.area), np.nan)),
            "lon": lon,
            "lat": lat,
            "source_id": src_id,
            "placement": pl.kind,
        }
    )
    return frame[frame["population"] > 0].reset_index(drop=True)


def reject_outside(table: PointTable, network: RoadNetwork, max_snap_m: float) -> PointTable:
    """Move rows outside the network's area (hull + ``max_snap_m``) to the rejects."""
    if len(table.frame) == 0:
        return table
    x, y = network.from_lonlat(
        table.frame["lon"].to_numpy(float), table.frame["lat"].to_numpy(float)
    )
    out = outside_network_area(network, x, y, margin_m=max_snap_m)
    lon = table.frame["lon"].to_numpy(float)
    lat = table.frame["lat"].to_numpy(float)

    def details(i: np.ndarray) -> list[str]:  # formatted for the rejected rows only
        # an Amap/Baidu offset is a few hundred metres: worth a hint for points in China only
        hint = np.where(
            ~out_of_china(lon[i], lat[i]) & (table.crs in ("wgs84", "cgcs2000")),
            "; if the file came from Amap/Tencent or Baidu, declare its crs as gcj02 or bd09",
            "",
        )
        return [
            f"lon={lo:.6f}, lat={la:.6f} (WGS84) is outside the road network's area "
            f"(more than {max_snap_m:.0f} m beyond its outline){h}"
            for lo, la, h in zip(lon[i], lat[i], hint, strict=True)
        ]

    if out.any():
        logger.warning(
            "%s: %d of %d row(s) rejected as outside the road network's area "
            "(outside_network_area)",
            table.path,
            int(out.sum()),
            table.n_input,
        )
    return table.with_rejects(out, "outside_network_area", details)


def run_coverage(inputs: Inputs, *, limit_m: float | str | None = None) -> CoverageRun:
    """Distances and coverage for every resident and tier.

    Parameters
    ----------
    inputs : Inputs
        From :func:`load_inputs` (residents required).
    limit_m : float, optional
        Stop every search at this network distance (metres); residents beyond it get ``inf``.
        Default: no cut-off, so every resident gets an exact distance for ranking gaps.

    Returns
    -------
    CoverageRun
        ``timings_s`` has ``load``, ``snap``, ``route`` and ``total`` seconds.

    Examples
    --------
    >>> import lifecircle as lc
    >>> from lifecircle.datasets import tiny_town
    >>> run = lc.run_coverage(lc.load_inputs(**tiny_town(), cache_dir=None))
    >>> run.residents_gdf()[["id", "station_distance_m", "station_covered"]].head(3)
       id  station_distance_m  station_covered
    0  R1               185.0             True
    1  R2                60.0             True
    2  R3               260.0             True

    By hand for R3 at (250, 190) m: 10 m access leg to the street y = 200, 50 m west to the
    junction (200, 200), then 100 m + 100 m to the station at (100, 100): 260 m.
    >>> round(run.summary()["tiers"]["station"]["share"], 4)  # R8 (60 of 450 people) is 590 m away
    0.8667
    """
    if inputs.residents is None:
        raise InputError("coverage needs residents (--residents or [residents] in the scenario)")
    if limit_m is not None and limit_m != "auto":
        if isinstance(limit_m, str) or not (math.isfinite(limit_m) and limit_m > 0):
            raise InputError(
                f"limit_m must be a positive number of metres or 'auto', got {limit_m!r}"
            )
    t0 = time.perf_counter()
    fac = inputs.facilities.frame
    res = inputs.residents.frame
    fac_loc = locate(
        inputs.networks,
        fac["lon"].to_numpy(float),
        fac["lat"].to_numpy(float),
        max_snap_m=inputs.max_snap_m,
    )
    res_loc = locate(
        inputs.networks,
        res["lon"].to_numpy(float),
        res["lat"].to_numpy(float),
        max_snap_m=inputs.max_snap_m,
    )
    t_snap = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = compute_coverage(
        inputs.networks,
        fac,
        res,
        inputs.standard,
        max_snap_m=inputs.max_snap_m,
        limit_m=limit_m,
        facility_located=fac_loc,
        resident_located=res_loc,
    )
    t_route = time.perf_counter() - t1
    load = inputs.timings_s.get("load", 0.0)
    timings = {"load": load, "snap": t_snap, "route": t_route, "total": load + t_snap + t_route}
    logger.info("coverage: snap %.2f s, route %.2f s", t_snap, t_route)
    return CoverageRun(inputs=inputs, result=result, timings_s=timings)


def write_coverage_outputs(
    run: CoverageRun,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    csv_encoding: str = DEFAULT_CSV_ENCODING,
    table_format: str = "csv",
) -> dict[str, Path]:
    """Write ``residents.csv``, ``facilities.csv``, ``summary.json`` and ``rejects.csv``.

    Parameters
    ----------
    run : CoverageRun
    out_dir : path
        Created if missing.
    overwrite : bool
        Replace existing files; otherwise any existing target is an error and nothing is written.
    csv_encoding : {"utf-8-sig", "utf-8", "gb18030"}, default "utf-8-sig"
        Encoding of the CSVs (UTF-8 with BOM opens in Excel on Chinese Windows).
    table_format : {"csv", "parquet"}, default "csv"
        ``parquet`` writes the two large tables as GeoParquet (``residents.parquet``,
        ``facilities.parquet``: typed columns, WGS84 point geometry, zstd) for runs of millions
        of residents; ``rejects.csv`` stays a CSV for reading in Excel.
    """
    check_csv_encoding(csv_encoding)
    if table_format not in TABLE_FORMATS:
        raise InputError(f"table format {table_format!r} is not one of {', '.join(TABLE_FORMATS)}")
    ext = "parquet" if table_format == "parquet" else "csv"
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {
        "residents": d / f"residents.{ext}",
        "facilities": d / f"facilities.{ext}",
        "summary": d / "summary.json",
        "rejects": d / "rejects.csv",
    }
    check_writable(list(paths.values()), overwrite=overwrite)
    write_point_table(
        resident_table(run.result), paths["residents"], overwrite=True, encoding=csv_encoding
    )
    write_point_table(
        facility_table(run.result), paths["facilities"], overwrite=True, encoding=csv_encoding
    )
    write_csv(run.inputs.rejects(), paths["rejects"], overwrite=True, encoding=csv_encoding)
    write_json(run.summary(), paths["summary"], overwrite=True)
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


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
    gpkg_version: str = "1.2",
    shp_encoding: str = "utf-8",
    area_minutes: list[float] | tuple[float, ...] | None = None,
    area_metres: list[float] | tuple[float, ...] | None = None,
    area_rings: bool = False,
) -> ExportResult:
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
        ``"facilities,residents"``…; default facilities, residents and (when unit polygons are
        loaded) units. ``"all"`` is every layer that can be built in this run; the others are
        listed in ``ExportResult.skipped`` with the reason. GeoPackage and GeoJSON exports add
        a ``rejects`` point layer when rejected input rows have usable coordinates.
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
    gpkg_version : {"1.2", "1.3", "1.4"}
        GeoPackage version (default 1.2).
    shp_encoding : {"utf-8", "cp936"}
        Shapefile text encoding.
    area_minutes, area_metres : sequence of float, optional
        Budgets of the ``service_areas`` layer (default: each tier's standard).
    area_rings : bool
        ``service_areas`` as bands between consecutive budgets.

    Returns
    -------
    ExportResult
    """
    names = (
        parse_layers(layers)
        if layers is not None
        else ["facilities", "residents", *(["units"] if inputs.units else [])]
    )
    f = str(fmt).lower()
    if f not in GIS_FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(GIS_FORMATS)}")
    everything = layers is not None and "all" in (
        [s.strip().lower() for s in layers.split(",")] if isinstance(layers, str) else layers
    )
    given = [k for k, v in (sources or {}).items() if v is not None]
    if score_tier is not None:
        given.append("candidates")
    skipped: dict[str, str] = {}
    if everything:
        for name in names:
            why = unavailable_layers([name], units_loaded=bool(inputs.units), given=given)
            if why:
                skipped[name] = why[0]
        names = [n for n in names if n not in skipped]
        for reason in skipped.values():
            logger.warning("--layers all: skipped %s", reason)
    rej_table = inputs.rejects()
    placeable = int(
        (np.isfinite(pd.to_numeric(rej_table["lon"], errors="coerce").to_numpy(float))).sum()
    )
    if f in ("gpkg", "geojson") and placeable and "rejects" not in names:
        names.append("rejects")
    elif "rejects" in names and not placeable and everything:
        names.remove("rejects")
        skipped["rejects"] = "no rejected input row has usable coordinates"
    problems = unavailable_layers(names, units_loaded=bool(inputs.units), given=given)
    if problems:
        raise LayerUnavailableError("; ".join(problems) + "; nothing was written")
    net = next(iter(inputs.networks.values()))
    minx, miny, maxx, maxy = net.bounds
    lon, _lat = net.to_lonlat(
        np.array([minx, maxx, minx, maxx], float), np.array([miny, miny, maxy, maxy], float)
    )
    ocrs = resolve_output_crs(crs, lon_range=(float(lon.min()), float(lon.max())))
    if ocrs.reason and ocrs.reason != "given":
        logger.info("export CRS %s: %s", ocrs.label, ocrs.reason)
    o = Path(out)
    rejects_path = (
        o.with_name(f"{o.stem}_rejects.csv")
        if f == "gpkg" and o.suffix.lower() == ".gpkg"
        else o / "rejects.csv"
    )
    check_writable(
        [p for ps in export_paths(names, out, f, ocrs).values() for p in ps] + [rejects_path],
        overwrite=overwrite,
    )
    t0 = time.perf_counter()
    cov = coverage or run_coverage(inputs, limit_m=limit_m)
    extra = dict(sources or {})
    if "candidates" in names and extra.get("candidates") is None and score_tier is not None:
        extra["candidates"] = run_scoring(inputs, tier=score_tier, candidates=candidates)
    src = ExportSources(
        run=cov,
        area_minutes=tuple(area_minutes) if area_minutes else None,
        area_metres=tuple(area_metres) if area_metres else None,
        area_rings=area_rings,
        **extra,
    )
    built = build_layers(src, names)
    t1 = time.perf_counter()
    result = export_layers(
        built,
        out,
        f,
        ocrs,
        precision=precision,
        overwrite=overwrite,
        tier_keys=inputs.standard.keys,
        meta=ExportMeta(standard=inputs.standard, synthetic=inputs.synthetic),
        gpkg_version=gpkg_version,
        shp_encoding=shp_encoding,
    )
    rejects = inputs.rejects()
    write_csv(rejects, rejects_path, overwrite=overwrite)
    result = replace(
        result,
        paths={**result.paths, "rejects_csv": [rejects_path]},
        features={**result.features, "rejects_csv": len(rejects)},
        skipped=skipped,
    )
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
    progress: Callable[[int, int], None] | None = None,
    max_exact_pairs: int | None = None,
) -> ScoringRun:
    """Score candidate sites for one tier and choose the best ``select_k``.

    See :mod:`lifecircle.siting` for the method.

    Parameters
    ----------
    tier : str
        Tier key or label (e.g. ``station`` or ``服务站``).
    candidates : path, ``"auto"``, ``"auto:N"``, DataFrame or GeoDataFrame, optional
        A candidates file or frame (validated like facilities, rejects kept), or automatic gap
        sites; default the scenario's ``[candidates]`` file.
    candidates_crs : str, optional
        Coordinate system of the candidates (default the scenario's, else ``wgs84`` for files;
        a frame without ``.crs`` must declare it).
    weight, select_k, method, chunk, checkpoint_dir, resume, progress, max_exact_pairs
        See :func:`lifecircle.siting.score_sites`; ``progress(finished_in_block, total)`` is
        called after every routing block.

    Returns
    -------
    ScoringRun

    Examples
    --------
    >>> import lifecircle as lc
    >>> from lifecircle.datasets import tiny_town
    >>> town = tiny_town()
    >>> inputs = lc.load_inputs(**town, cache_dir=None)
    >>> scoring = lc.run_scoring(inputs, tier="station", candidates="auto:5", select_k=1)
    >>> best = scoring.to_gdf().iloc[0]
    >>> bool(best["selected"]), bool(best["marginal_gain"] > 0)
    (True, True)
    """
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
    res_loc = locate(
        {t.mode: net},
        res["lon"].to_numpy(float),
        res["lat"].to_numpy(float),
        max_snap_m=inputs.max_snap_m,
    )
    result = compute_coverage(
        {t.mode: net}, fac, res, sub_std, max_snap_m=inputs.max_snap_m, resident_located=res_loc
    )
    t_cov = time.perf_counter() - t0
    cov = CoverageRun(inputs=inputs, result=result, timings_s={"coverage": t_cov})

    sc = inputs.scenario
    spec = candidates if candidates is not None else (sc.candidates if sc else None)
    if spec is None:
        raise InputError(
            "give --candidates PATH or --candidates auto[:N] (or [candidates] in the scenario)"
        )
    if isinstance(spec, pd.DataFrame):
        # in-memory candidates get exactly the validation of a file (a GeoDataFrame's .crs is used)
        table = read_points(spec, "candidates", crs=candidates_crs)
    else:
        auto_n = siting.parse_candidates_spec(str(spec))
        if auto_n is not None:
            frame = siting.auto_candidates(result, net, key, n=auto_n, weight=weight)
            frame.insert(1, "row", np.arange(1, len(frame) + 1))
            table = PointTable(
                "candidates", f"auto:{auto_n}", "wgs84", frame, empty_rejects(), len(frame)
            )
        else:
            crs = candidates_crs or (sc.candidates_crs if sc and candidates is None else "wgs84")
            # tiers are resolved in validate_candidates (a blank tier means "this tier")
            table = read_points(
                spec, "candidates", crs=crs, **inputs.read_options.get("candidates", {})
            )
    table = validate_candidates(table, inputs, key)
    logger.info("candidates: %d used, %d rejected", len(table.frame), len(table.rejects))
    if len(table.frame) == 0:
        logger.warning(
            "no usable candidate sites (%d rejected; see rejects.csv)", len(table.rejects)
        )
    scored = siting.score_sites(
        result,
        net,
        table.frame,
        key,
        weight=weight,
        select_k=select_k,
        method=method,
        units=inputs.units,
        chunk=chunk,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
        max_exact_pairs=max_exact_pairs or siting.MAX_EXACT_PAIRS,
    )
    load = inputs.timings_s.get("load", 0.0)
    timings = {
        "load": load,
        "coverage": t_cov,
        **{f"scoring_{k}": v for k, v in scored.timings_s.items()},
        "total": load + time.perf_counter() - t0,
    }
    return ScoringRun(
        inputs=inputs, coverage=cov, candidates=table, result=scored, timings_s=timings
    )


def run_report(
    run: CoverageRun, *, gap_cell_m: float = 200.0, min_gap_population: float = 1.0
) -> CoverageReport:
    """Per-unit coverage (达标率) and coverage gaps of a coverage run.

    Units are the sub-district and ``run.inputs.units``; see :mod:`lifecircle.report` for the
    method. Returns a :class:`lifecircle.report.CoverageReport` (write it with
    :func:`lifecircle.report.write_report`, draw it with
    :func:`lifecircle.maps.write_coverage_map`).

    Examples
    --------
    >>> import lifecircle as lc
    >>> from lifecircle.datasets import tiny_town
    >>> run = lc.run_coverage(lc.load_inputs(**tiny_town(), cache_dir=None))
    >>> rep = lc.run_report(run)
    >>> [level.key for level in rep.levels]
    ['subdistrict']
    """
    t0 = time.perf_counter()
    rep = build_report(run, gap_cell_m=gap_cell_m, min_gap_population=min_gap_population)
    logger.info(
        "report: %d unit layer(s), %d gap(s) in %.2f s",
        len(rep.levels),
        len(rep.gaps.table),
        time.perf_counter() - t0,
    )
    return rep


def tier_service_areas(run: CoverageRun, *, buffer_m: float = 50.0) -> gpd.GeoDataFrame:
    """Each tier's service area at its own standard (``dissolve="tier"``), for maps.

    Reuses the run's snapped positions. Returns a GeoDataFrame in EPSG:4326 with ``tier``,
    ``budget_m``, ``budget_min``, ``area_m2`` and ``population``.
    """
    inputs = run.inputs
    res = inputs.residents.frame if inputs.residents is not None else None
    t0 = time.perf_counter()
    areas = compute_service_areas(
        inputs.networks,
        inputs.facilities.frame,
        inputs.standard,
        residents=res,
        dissolve="tier",
        buffer_m=buffer_m,
        max_snap_m=inputs.max_snap_m,
        facility_located=run.result.facility_located,
        resident_located=run.result.resident_located,
    )
    logger.info("tier service areas in %.2f s", time.perf_counter() - t0)
    return areas.to_wgs84()


@dataclass(frozen=True)
class ServiceAreaRun:
    """A service-area run: inputs, polygons and timings (what :func:`run_service_areas` returns)."""

    inputs: Inputs
    result: ServiceAreas
    timings_s: dict[str, float]

    def to_gdf(self) -> gpd.GeoDataFrame:
        """The polygons in EPSG:4326 (see :class:`lifecircle.service_areas.ServiceAreas`)."""
        return self.result.to_wgs84()


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

    Examples
    --------
    >>> import lifecircle as lc
    >>> from lifecircle.datasets import tiny_town
    >>> inputs = lc.load_inputs(**tiny_town(), cache_dir=None)
    >>> areas = lc.run_service_areas(inputs, tiers=["station"], dissolve="tier").to_gdf()
    >>> areas.crs.to_epsg(), len(areas), bool(areas["area_m2"].iloc[0] > 0)
    (4326, 1, True)
    """
    t0 = time.perf_counter()
    fac = inputs.facilities.frame
    fac_loc = locate(
        inputs.networks,
        fac["lon"].to_numpy(float),
        fac["lat"].to_numpy(float),
        max_snap_m=inputs.max_snap_m,
    )
    res = inputs.residents.frame if inputs.residents is not None else None
    res_loc = (
        locate(
            inputs.networks,
            res["lon"].to_numpy(float),
            res["lat"].to_numpy(float),
            max_snap_m=inputs.max_snap_m,
        )
        if res is not None
        else None
    )
    t_snap = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = compute_service_areas(
        inputs.networks,
        fac,
        inputs.standard,
        residents=res,
        tiers=tiers,
        minutes=minutes,
        metres=metres,
        dissolve=dissolve,
        rings=rings,
        buffer_m=buffer_m,
        simplify_m=simplify_m,
        max_snap_m=inputs.max_snap_m,
        facility_located=fac_loc,
        resident_located=res_loc,
    )
    t_poly = time.perf_counter() - t1
    load = inputs.timings_s.get("load", 0.0)
    timings = {"load": load, "snap": t_snap, "polygons": t_poly, "total": load + t_snap + t_poly}
    logger.info("service areas: snap %.2f s, polygons %.2f s", t_snap, t_poly)
    return ServiceAreaRun(inputs=inputs, result=result, timings_s=timings)


# -- scoring runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringRun:
    """A scoring run: inputs, the tier's coverage, validated candidates and the result."""

    inputs: Inputs
    coverage: CoverageRun
    candidates: PointTable
    result: ScoringResult
    timings_s: dict[str, float]

    def to_gdf(self) -> gpd.GeoDataFrame:
        """The scored candidates, ranked, as EPSG:4326 points (the ``candidates.csv`` columns)."""
        return self.result.to_gdf()

    def rejects(self) -> pd.DataFrame:
        """Rejected rows of every input file, candidates included."""
        frames = [f for f in (self.inputs.rejects(), self.candidates.rejects) if len(f)]
        if not frames:
            return empty_rejects()
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        sc = self.inputs.scenario
        counts = self.inputs.input_counts()
        c = self.candidates
        counts["candidates"] = {
            "input": c.n_input,
            "used": len(c.frame),
            "rejected": len(c.rejects),
        }
        return {
            "scenario": sc.name if sc else None,
            "synthetic": self.inputs.synthetic,
            "standard": self.inputs.standard.name,
            "candidates_source": c.path,
            "inputs": counts,
            "rejected_by_reason": {
                str(k): int(v) for k, v in self.rejects()["reason"].value_counts().items()
            },
            **self.result.summary(),
            "max_snap_m": self.inputs.max_snap_m,
            "crs": self.inputs.crs,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


def validate_candidates(table: PointTable, inputs: Inputs, tier: str) -> PointTable:
    """Reject candidates outside the network area, off the network, outside the boundary, or of
    another tier (when the file has a ``tier`` column)."""
    t = inputs.standard.tier(tier)
    net = inputs.networks[t.mode]
    table = reject_outside(table, net, inputs.max_snap_m)
    f = table.frame
    if len(f) and "tier" in f.columns:
        std = inputs.standard
        raw = f["tier"].astype(str).str.strip().to_numpy()
        keys = np.array([std.resolve_tier(v) or "" if v else t.key for v in raw], dtype=object)
        known = ", ".join(f"{x.key} ({x.label_zh})" for x in std.tiers)
        table = table.with_rejects(
            keys == "",
            "unknown_tier",
            [
                f"tier {v!r} is not in standard {std.name!r}; use one of {known} or leave it empty"
                for v in raw
            ],
        )
        keys = keys[keys != ""]
        f = table.frame
        table = table.with_rejects(
            keys != t.key,
            "different_tier",
            [f"candidate is for tier {v!r}, this run scores {t.key!r}" for v in keys],
        )
        f = table.frame
    if len(f) and inputs.boundaries:
        area = shapely.union_all(list(inputs.boundaries.values()))
        inside = shapely.contains_xy(area, f["lon"].to_numpy(float), f["lat"].to_numpy(float))
        table = table.with_rejects(
            ~inside,
            "outside_boundary",
            [
                f"lon={a:.6f}, lat={b:.6f} (WGS84) lies outside the planning boundary "
                f"({', '.join(inputs.boundaries)})"
                for a, b in zip(f["lon"], f["lat"], strict=True)
            ],
        )
        f = table.frame
    if len(f):
        x, y = net.from_lonlat(f["lon"].to_numpy(float), f["lat"].to_numpy(float))
        s = snap_to_network(net, x, y, max_snap_m=inputs.max_snap_m)
        table = table.with_rejects(
            ~s.on_network,
            "off_network",
            [
                f"{d:,.0f} m from the nearest {t.mode} street "
                f"(limit {inputs.max_snap_m:,.0f} m): a site "
                "there would serve nobody; move it to a street or raise --max-snap-m"
                for d in s.access_m
            ],
        )
    return table


def write_scoring_outputs(
    run: ScoringRun,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    map_html: bool = True,
    csv_encoding: str = DEFAULT_CSV_ENCODING,
    offline: bool = True,
    basemap: str | None = None,
) -> dict[str, Path]:
    """Write ``candidates.csv``, ``candidates.geojson``, ``picks.csv``, ``summary.json``,
    ``rejects.csv`` and ``candidates.html`` (each atomically; existing files need ``overwrite``).

    CSVs are written in ``csv_encoding`` (default UTF-8 with BOM, see
    :data:`lifecircle._files.CSV_ENCODINGS`); ``candidates.html`` opens offline unless
    ``offline=False`` (Leaflet from a CDN); ``basemap`` as for
    :func:`lifecircle.maps.build_map`.
    """
    check_csv_encoding(csv_encoding)
    d = Path(out_dir)
    paths = {
        "candidates": d / "candidates.csv",
        "geojson": d / "candidates.geojson",
        "picks": d / "picks.csv",
        "summary": d / "summary.json",
        "rejects": d / "rejects.csv",
    }
    if map_html:
        paths["map"] = d / "candidates.html"
    check_writable(list(paths.values()), overwrite=overwrite)
    d.mkdir(parents=True, exist_ok=True)
    table = run.result.table()
    write_csv(table, paths["candidates"], overwrite=True, encoding=csv_encoding)
    gdf = run.result.to_gdf()
    gdf["selected"] = gdf["selected"].astype("float64")
    write_geojson(gdf, paths["geojson"], overwrite=True, precision=7, name="candidates")
    write_csv(run.result.picks, paths["picks"], overwrite=True, encoding=csv_encoding)
    write_csv(run.rejects(), paths["rejects"], overwrite=True, encoding=csv_encoding)
    write_json(run.summary(), paths["summary"], overwrite=True)
    if map_html:
        write_candidates_map(
            run.result,
            run.coverage,
            paths["map"],
            overwrite=True,
            offline=offline,
            basemap=basemap,
        )
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


# -- grid runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridRun:
    """A grid run (what :func:`run_grids` returns): inputs, settings and the result."""

    inputs: Inputs
    grid_layer: UnitLayer
    options: GridOptions
    base_source: str
    result: GridResult
    timings_s: dict[str, float]
    base_rejects: pd.DataFrame = field(default_factory=empty_rejects)

    def rejects(self) -> pd.DataFrame:
        """Rejected rows of every input file, a bases file included."""
        frames = [f for f in (self.inputs.rejects(), self.base_rejects) if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else empty_rejects()

    def _gdf(self, frame: pd.DataFrame | None) -> gpd.GeoDataFrame:
        if frame is None:
            raise InputError("no re-gridding was proposed; run with propose=True (--propose)")
        net = next(iter(self.inputs.networks.values()))
        return grids.to_gdf(frame, net.to_lonlat)

    def grids_gdf(self) -> gpd.GeoDataFrame:
        """Per grid (the ``grids.csv`` columns) with its polygon, EPSG:4326."""
        return self._gdf(self.result.grids)

    def proposed_gdf(self) -> gpd.GeoDataFrame:
        """Proposed grids (the ``proposed_grids.csv`` columns) with polygons, EPSG:4326."""
        return self._gdf(self.result.proposed)

    def gaps_gdf(self) -> gpd.GeoDataFrame:
        """Parts of communities in no grid, EPSG:4326."""
        return self._gdf(self.result.gaps)

    def overlaps_gdf(self) -> gpd.GeoDataFrame:
        """Parts covered by two grids, EPSG:4326."""
        return self._gdf(self.result.overlaps)

    def crossings_gdf(self) -> gpd.GeoDataFrame:
        """Parts of grids outside their own community, EPSG:4326."""
        return self._gdf(self.result.crossings)

    def summary(self) -> dict[str, Any]:
        """The content of ``grids.json``."""
        sc = self.inputs.scenario
        return {
            "scenario": sc.name if sc else None,
            "synthetic": self.inputs.synthetic,
            "grids_file": self.grid_layer.path,
            "bases": self.base_source,
            "walk_m": self.options.walk_m,
            **self.result.summary,
            "crs": self.inputs.crs,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


def _unit_layer(inputs: Inputs, key: str) -> UnitLayer | None:
    return next((u for u in inputs.units if u.key == key), None)


def run_grids(
    inputs: Inputs,
    *,
    grids_source: UnitSource | None = None,
    grid_id: str | None = None,
    grids_crs: str | None = None,
    household_size: float | None = None,
    households_per_grid: str | tuple[float, float] | None = None,
    base_tier: str | None = None,
    bases: PointSource | None = None,
    walk_m: float | None = None,
    propose: bool | None = None,
    seed: int = 0,
) -> GridRun:
    """The grid system (网格): coverage check, per-grid balance and reach, and re-gridding.

    Settings not given here come from the scenario's ``[grids]`` section, else the defaults of
    :mod:`lifecircle.grids` (household size 3.0, band 300-500 households, bases of tier
    ``station``, walking standard = the base tier's threshold).

    Parameters
    ----------
    inputs : Inputs
        With residents and a ``community`` unit layer (``[[units]]`` key ``community``).
    grids_source : path, GeoDataFrame or UnitLayer, optional
        The grid polygons (default: ``[grids] path``, else the ``grid`` unit layer).
    grid_id : str, optional
        Id column of the grid file.
    grids_crs : str, optional
        Coordinate system of the grid file when it cannot say so itself (``gcj02`` for Amap
        exports, ``bd09``, ``cgcs2000``, ``EPSG:n``); default the file's own, else WGS84.
    household_size : float, optional
        People per household (ignored where residents carry ``households``).
    households_per_grid : "MIN-MAX" or (min, max), optional
    base_tier : str, optional
        Tier whose facilities are bases; or ``bases``: a points file/frame of bases (``id``).
    walk_m : float, optional
        Walking standard for ``base_share_within`` (default: the base tier's threshold, else
        500 m).
    propose : bool, optional
        Also propose a re-gridding.
    seed : int
        Seed of the proposal's spanning-tree jitter.

    Returns
    -------
    GridRun
    """
    if inputs.residents is None:
        raise InputError("grids needs residents (--residents or [residents] in the scenario)")
    t0 = time.perf_counter()
    cfg = dict(inputs.scenario.grids) if inputs.scenario else {}
    src = grids_source if grids_source is not None else cfg.get("path")
    gid = grid_id or cfg.get("id_field")
    if src is None:
        layer = _unit_layer(inputs, "grid")
        if layer is None:
            raise InputError(
                "no grid polygons: give --grids FILE, [grids] path in the scenario, or a "
                "[[units]] layer with key 'grid'"
            )
    else:
        layer = (
            src
            if isinstance(src, UnitLayer)
            else read_units(
                src, key="grid", id_field=gid, crs=grids_crs or cfg.get("crs"),
                label_zh="网格", label_en="Grid",
            )
        )  # fmt: skip
    comm = _unit_layer(inputs, "community")
    if comm is None:
        raise InputError(
            "grids needs the community polygons: add --units communities.geojson or a "
            "[[units]] layer with key 'community' to the scenario"
        )
    band = (
        households_per_grid if households_per_grid is not None else cfg.get("households_per_grid")
    )
    if band is None:
        lo, hi = grids.DEFAULT_BAND
    elif isinstance(band, str):
        lo, hi = grids.parse_band(band)
    else:
        lo, hi = (float(v) for v in band)
    size = household_size if household_size is not None else cfg.get("household_size")
    std = inputs.standard
    bases_src = bases if bases is not None else cfg.get("bases")
    tier_key = base_tier or cfg.get("base_tier")
    tier: Tier | None
    if bases_src is None:
        tier_key = tier_key or (
            grids.DEFAULT_BASE_TIER if grids.DEFAULT_BASE_TIER in std.keys else std.keys[-1]
        )
        tier = std.tier(std.resolve_tier(tier_key) or tier_key)
        mode = tier.mode
        base_key = tier.key
    else:
        tier = std.tier(std.resolve_tier(tier_key) or tier_key) if tier_key else None
        mode = tier.mode if tier is not None else std.tiers[-1].mode
    walk = walk_m if walk_m is not None else cfg.get("walk_m")
    options = grids.GridOptions(
        household_size=float(size) if size is not None else grids.DEFAULT_HOUSEHOLD_SIZE,
        households_min=float(lo),
        households_max=float(hi),
        walk_m=float(walk if walk is not None else (tier.threshold_m if tier else 500.0)),
        propose=bool(propose if propose is not None else cfg.get("propose", False)),
        seed=seed,
    )
    net = inputs.networks[mode]
    graph = RoutingGraph.from_network(net)
    res = inputs.residents.frame
    res_loc = locate({mode: net}, res["lon"].to_numpy(float), res["lat"].to_numpy(float),
                     max_snap_m=inputs.max_snap_m)  # fmt: skip
    pop = res["population"].to_numpy(float)
    if "households" in res.columns:
        raw = res["households"]
        blank = raw.isna() | (raw.astype(str).str.strip() == "")
        hh = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        bad = ~blank.to_numpy() & ~(np.isfinite(hh) & (hh >= 0))
        if bad.any():
            rows = res["row"].to_numpy()[bad] if "row" in res else np.flatnonzero(bad) + 1
            shown = ", ".join(
                f"row {r} ({v!r})" for r, v in zip(rows[:5], raw.to_numpy()[bad][:5], strict=True)
            )
            raise InputError(
                f"{inputs.residents.path}: households must be a non-negative number or empty "
                f"(empty: population / household size); bad in {int(bad.sum())} row(s): {shown}"
            )
        hh = np.where(np.isfinite(hh), hh, pop / options.household_size)
    else:
        hh = pop / options.household_size
    people = grids.People(
        res_loc.x,
        res_loc.y,
        hh,
        pop,
        np.nan_to_num(res["elderly"].to_numpy(float)),
        np.nan_to_num(res["children"].to_numpy(float)) if "children" in res else np.zeros(len(res)),
        res_loc.positions(mode),
    )
    base_rejects = empty_rejects()
    if bases_src is None:
        fac = inputs.facilities.frame
        bframe = fac[fac["tier"].astype(str) == base_key]
        base_source = f"tier {base_key} ({std.tier(base_key).label_zh})"
    else:
        table = read_points(bases_src, "candidates")
        table = reject_outside(table, net, inputs.max_snap_m)
        bframe = table.frame
        base_source = str(table.path)
        base_rejects = table.rejects
        if len(base_rejects):
            logger.warning("%d base(s) rejected (see grid_rejects.csv)", len(base_rejects))
    if len(bframe) == 0:
        raise InputError(
            f"no grid bases: {base_source} has no usable points; give --bases FILE or another "
            "--base-tier"
        )
    b_loc = locate({mode: net}, bframe["lon"].to_numpy(float), bframe["lat"].to_numpy(float),
                   max_snap_m=inputs.max_snap_m)  # fmt: skip
    base = grids.Bases(
        bframe["id"].astype(str).to_numpy(dtype=object),
        (bframe["name"] if "name" in bframe else bframe["id"]).astype(str).to_numpy(dtype=object),
        b_loc.x,
        b_loc.y,
        b_loc.positions(mode),
    )

    def metric(geoms: Any) -> Any:
        return shapely.transform(
            np.asarray(geoms, dtype=object),
            lambda xy: np.column_stack(net.from_lonlat(xy[:, 0], xy[:, 1])),
        )

    gf = layer.frame
    glayer = grids.GridLayer(
        gf["unit_id"].astype(str).to_numpy(dtype=object),
        gf["name"].astype(str).to_numpy(dtype=object),
        (gf["community_id"].astype(str) if "community_id" in gf else pd.Series([""] * len(gf)))
        .to_numpy(dtype=object),
        metric(gf.geometry.values),
    )  # fmt: skip
    cf = comm.frame
    clayer = grids.CommunityLayer(
        cf["unit_id"].astype(str).to_numpy(dtype=object),
        cf["name"].astype(str).to_numpy(dtype=object),
        metric(cf.geometry.values),
    )
    fac = inputs.facilities.frame
    fx, fy = net.from_lonlat(fac["lon"].to_numpy(float), fac["lat"].to_numpy(float))
    t1 = time.perf_counter()
    result = grids.analyse_grids(
        glayer,
        clayer,
        people,
        base,
        graph,
        options=options,
        facility_xy=np.column_stack([fx, fy]),
        facility_tier=fac["tier"].astype(str).to_numpy(dtype=object),
        tier_keys=std.keys,
        edge_coords=net.edge_coords() if options.propose else None,
    )
    t2 = time.perf_counter()
    load = inputs.timings_s.get("load", 0.0)
    timings = {"load": load, "prepare": t1 - t0, "grids": t2 - t1, "total": load + t2 - t0}
    logger.info(
        "grids: %d grids, band %s households, bases %s; %.2f s",
        len(glayer.grid_id),
        options.band_text,
        base_source,
        t2 - t0,
    )
    return GridRun(inputs, layer, options, base_source, result, timings, base_rejects)


def write_grids_outputs(
    run: GridRun,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    lang: str = "zh",
    offline: bool = True,
) -> dict[str, Path]:
    """Write ``grids.csv``, ``proposed_grids.csv`` (with a proposal), ``grid_communities.csv``,
    ``grid_gaps.csv``, ``grid_overlaps.csv``, ``grid_crossings.csv``, ``grids.json``,
    ``grids.gpkg`` (layers ``grids``, ``gaps``, ``overlaps``, ``crossings``, ``proposed``), the
    map ``grids.html`` (offline by default), the report section ``grids_report.html`` and the
    workbook ``grids.xlsx`` (one sheet per table, Chinese headers, and a 说明 sheet)."""
    d = Path(out_dir)
    r = run.result
    layers = {
        "grids": run.grids_gdf(),
        "gaps": run.gaps_gdf(),
        "overlaps": run.overlaps_gdf(),
        "crossings": run.crossings_gdf(),
    }
    if r.proposed is not None:
        layers["proposed"] = run.proposed_gdf()
    names = {
        "grids": "grids",
        "gaps": "grid_gaps",
        "overlaps": "grid_overlaps",
        "crossings": "grid_crossings",
        "proposed": "proposed_grids",
    }
    paths = {names[k]: d / f"{names[k]}.csv" for k in layers}
    paths["grid_communities"] = d / "grid_communities.csv"
    paths["summary"] = d / "grids.json"
    paths["rejects"] = d / "grid_rejects.csv"
    paths["gpkg"] = d / "grids.gpkg"
    paths["map"] = d / "grids.html"
    paths["report"] = d / "grids_report.html"
    paths["workbook"] = d / "grids.xlsx"
    check_writable(list(paths.values()), overwrite=overwrite)
    d.mkdir(parents=True, exist_ok=True)
    for k, gdf in layers.items():
        write_csv(pd.DataFrame(gdf.drop(columns="geometry")), paths[names[k]], overwrite=True)
    write_csv(r.communities, paths["grid_communities"], overwrite=True)
    write_csv(run.rejects(), paths["rejects"], overwrite=True)
    write_json(run.summary(), paths["summary"], overwrite=True)
    meta = ExportMeta(
        standard=run.inputs.standard,
        synthetic=run.inputs.synthetic,
        titles={
            "grids": ("网格", "grids with households against the band, balance and base reach"),
            "gaps": ("网格缺口", "parts of communities in no grid"),
            "overlaps": ("网格重叠", "parts covered by two grids"),
            "crossings": ("跨社区网格部分", "parts of grids outside their own community"),
            "proposed": ("建议网格", "proposed grids (re-gridding)"),
        },
    )
    export_layers(layers, paths["gpkg"], "gpkg", "wgs84", overwrite=True, meta=meta)
    write_grids_map(
        run.inputs,
        layers,
        run.summary(),
        paths["map"],
        lang=lang,
        offline=offline,
        overwrite=True,
    )
    write_text(grids_report_html(layers, r.communities, run.summary(), lang=lang),
               paths["report"], overwrite=True)  # fmt: skip
    zh = lang == "zh"
    sheet_names = {
        "grids": "网格" if zh else "Grids",
        "proposed": "建议网格" if zh else "Proposed grids",
        "gaps": "网格缺口" if zh else "Gaps",
        "overlaps": "网格重叠" if zh else "Overlaps",
        "crossings": "跨社区网格" if zh else "Crossings",
    }
    tables = [
        (sheet_names[k], pd.DataFrame(gdf.drop(columns="geometry"))) for k, gdf in layers.items()
    ]
    tables.insert(1, ("社区网格变化" if zh else "Communities", r.communities))
    tables.append(("剔除记录" if zh else "Rejected rows", run.rejects()))
    write_tables_workbook(
        run.inputs, tables, paths["workbook"], lang=lang, overwrite=True,
        unit_labels={"community": ("社区", "Community")},
    )  # fmt: skip
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths
