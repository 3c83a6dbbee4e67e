"""What a run holds: validated inputs and the results computed from them (data only).

:class:`Inputs` is what :func:`lifecircle.load_inputs` returns; :class:`CoverageRun` and
:class:`ServiceAreaRun` are what :func:`lifecircle.run_coverage` and
:func:`lifecircle.run_service_areas` return. They orchestrate nothing: their methods only shape
the data they hold, e.g. as GeoDataFrames in EPSG:4326 with the documented columns.

The column lists of ``residents.csv`` and ``facilities.csv`` (a contract, see the README schema)
live here, once: :func:`resident_table` and :func:`facility_table`; the GIS export builds its
``residents`` and ``facilities`` layers from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecircle.config import ServiceStandard
from lifecircle.coverage import CoverageResult
from lifecircle.errors import InputError
from lifecircle.io import PointTable, Scenario, UnitLayer, empty_rejects
from lifecircle.network import RoadNetwork
from lifecircle.snapping import DEFAULT_MAX_SNAP_M
from lifecircle.units import UnitLevel, unit_coverage, unit_levels

if TYPE_CHECKING:
    import geopandas as gpd

#: Per-resident columns of ``residents.csv``, before and after the per-tier block.
RESIDENT_BASE_COLUMNS = (
    "id",
    "population",
    "elderly",
    "children",
    "lon",
    "lat",
    "snap_m",
    "off_network",
)
RESIDENT_TIER_COLUMNS = (
    "{tier}_distance_m",
    "{tier}_minutes",
    "{tier}_nearest_id",
    "{tier}_covered",
)
#: Columns of ``facilities.csv``.
FACILITY_COLUMNS = (
    "id",
    "name",
    "tier",
    "lon",
    "lat",
    "snap_m",
    "off_network",
    "catchment_population",
    "catchment_residents",
)
#: Columns added to ``facilities.csv`` / ``residents.csv`` when the inputs carry them: the tier
#: rule that gave a POI its tier; the polygon or raster cell a placed resident point came from
#: and whether it lies on a street or at the area's representative point.
FACILITY_OPTIONAL_COLUMNS = ("tier_rule",)
RESIDENT_OPTIONAL_COLUMNS = ("source_id", "placement")


def resident_columns(tier_keys: tuple[str, ...] | list[str]) -> list[str]:
    """The columns of ``residents.csv`` for tiers ``tier_keys`` (highest tier first).

    Examples
    --------
    >>> resident_columns(["station"])  # doctest: +NORMALIZE_WHITESPACE
    ['id', 'population', 'elderly', 'children', 'lon', 'lat', 'snap_m', 'off_network',
     'station_distance_m', 'station_minutes', 'station_nearest_id', 'station_covered',
     'all_covered']
    """
    cols = list(RESIDENT_BASE_COLUMNS)
    for key in tier_keys:
        cols += [c.format(tier=key) for c in RESIDENT_TIER_COLUMNS]
    return [*cols, "all_covered"]


def resident_table(result: CoverageResult) -> pd.DataFrame:
    """The ``residents.csv`` table of a coverage result, distances rounded to centimetres."""
    res = result.residents
    cols = resident_columns(result.standard.keys)
    cols += [c for c in RESIDENT_OPTIONAL_COLUMNS if c in res.columns]

    def rounded(c: str) -> Any:
        if c.endswith("_distance_m") or c == "snap_m":
            return res[c].round(2)
        if c.endswith("_minutes"):
            return res[c].round(3)
        if c in ("lon", "lat"):
            return res[c].round(7)
        return res[c]

    # a new table of the rounded columns and the others as they are (not copied: a city's
    # residents table is hundreds of megabytes, and nothing here changes it)
    return pd.DataFrame({c: rounded(c) for c in cols if c in res.columns}, copy=False)


def facility_table(result: CoverageResult) -> pd.DataFrame:
    """The ``facilities.csv`` table of a coverage result."""
    fac = result.facilities
    cols = [*FACILITY_COLUMNS, *(c for c in FACILITY_OPTIONAL_COLUMNS if c in fac.columns)]
    out = fac[cols].copy()
    out["snap_m"] = out["snap_m"].round(2)
    out[["lon", "lat"]] = out[["lon", "lat"]].round(7)
    return out


def points_gdf(frame: pd.DataFrame, columns: list[str] | None = None) -> gpd.GeoDataFrame:
    """Points from a frame's WGS84 ``lon``/``lat`` columns as a GeoDataFrame in EPSG:4326."""
    import geopandas as gpd
    import shapely

    geoms = shapely.points(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    cols = list(frame.columns) if columns is None else columns
    data = pd.DataFrame({c: frame[c].to_numpy() for c in cols}, index=pd.RangeIndex(len(frame)))
    return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326")


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
    boundary_names : dict
        ``{name: the boundary's own name}``, e.g. ``{"subdistrict": "郯城街道"}``.
    scenario : Scenario or None
    max_snap_m : float
    timings_s : dict
        Seconds per loading stage.
    population : dict
        How residents given as polygons or a raster were placed on the streets (counts, sums;
        see :mod:`lifecircle.population`); empty for points.
    read_options : dict
        Per input kind, the ``columns``/``sheet``/``encoding`` it was read with (candidates read
        later use them too).
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
    boundary_names: dict[str, str] = field(default_factory=dict)
    population: dict[str, Any] = field(default_factory=dict)
    read_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def crs(self) -> str:
        """The analysis CRS (metric)."""
        return next(iter(self.networks.values())).crs

    @property
    def title(self) -> str:
        """Scenario name for maps and reports."""
        if self.scenario is None:
            return "lifecircle"
        return self.scenario.name

    @property
    def synthetic(self) -> bool:
        """True for the synthetic demonstration scenario."""
        return bool(self.scenario and self.scenario.synthetic)

    def rejects(self) -> pd.DataFrame:
        """All rejected input rows, every file (columns ``file, row, id, reason, detail``)."""
        frames = [
            t.rejects for t in (self.facilities, self.residents) if t is not None and len(t.rejects)
        ]
        return pd.concat(frames, ignore_index=True) if frames else empty_rejects()

    def input_counts(self) -> dict[str, dict[str, int]]:
        """Rows read, used and rejected per input file (they reconcile)."""
        out = {}
        for t in (self.facilities, self.residents):
            if t is not None:
                out[t.kind] = {"input": t.n_input, "used": len(t.frame), "rejected": len(t.rejects)}
        return out

    def unit_levels(self) -> list[UnitLevel]:
        """The sub-district level, then every loaded unit layer (see :mod:`lifecircle.units`)."""
        return unit_levels(
            self.units,
            self.boundaries.get("subdistrict"),
            self.boundary_names.get("subdistrict"),
        )

    def facilities_gdf(self) -> gpd.GeoDataFrame:
        """The usable facilities as points in EPSG:4326 (input columns kept)."""
        return points_gdf(self.facilities.frame)

    def residents_gdf(self) -> gpd.GeoDataFrame:
        """The usable residents as points in EPSG:4326 (input columns kept)."""
        if self.residents is None:
            raise InputError("no residents were loaded")
        return points_gdf(self.residents.frame)


@dataclass(frozen=True)
class CoverageRun:
    """A coverage run: inputs, result and timings (what :func:`lifecircle.run_coverage` returns)."""

    inputs: Inputs
    result: CoverageResult
    timings_s: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        s = self.result.summary()
        first = (
            "threshold_m",
            "minutes",
            "mode",
            "population_total",
            "population_covered",
            "share",
        )
        tiers = {
            key: {**{k: t[k] for k in first}, **{k: v for k, v in t.items() if k not in first}}
            for key, t in s["tiers"].items()
        }
        sc = self.inputs.scenario
        return {
            "scenario": sc.name if sc else None,
            "synthetic": self.inputs.synthetic,
            "standard": self.inputs.standard.to_dict(),
            "tiers": tiers,
            "all_tiers": s["all_tiers"],
            "inputs": self.inputs.input_counts(),
            **({"population_inputs": self.inputs.population} if self.inputs.population else {}),
            "networks": {m: n.summary() for m, n in self.inputs.networks.items()},
            "residents_off_network": s["residents_off_network"],
            "population_off_network": s["population_off_network"],
            "max_snap_m": self.inputs.max_snap_m,
            "crs": s["crs"],
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }

    def residents_gdf(self) -> gpd.GeoDataFrame:
        """Residents with per-tier distances as points in EPSG:4326.

        Columns are those of ``residents.csv`` (:func:`resident_columns`): ``id``, ``population``,
        ``elderly``, ``children``, ``lon``, ``lat``, ``snap_m``, ``off_network`` and per tier
        ``{tier}_distance_m``, ``{tier}_minutes``, ``{tier}_nearest_id``, ``{tier}_covered``, then
        ``all_covered``.
        """
        return points_gdf(resident_table(self.result))

    def facilities_gdf(self) -> gpd.GeoDataFrame:
        """Facilities with snapping and catchments as points in EPSG:4326.

        The columns are those of ``facilities.csv``.
        """
        return points_gdf(facility_table(self.result))

    def unit_table(self, kind: str) -> pd.DataFrame:
        """Coverage per unit of one level (see :func:`lifecircle.units.unit_coverage`).

        ``kind`` is ``subdistrict`` or the key of a loaded unit layer (e.g. ``community``).
        """
        return unit_coverage(self.result, self._level(kind))

    def units_gdf(self, kind: str) -> gpd.GeoDataFrame:
        """Unit polygons of one level with their coverage columns, in EPSG:4326.

        Rows are the units of the layer in file order (the "outside all units" row of
        :meth:`unit_table` has no polygon and is left out).
        """
        import geopandas as gpd

        level = self._level(kind)
        table = self.unit_table(kind)
        if len(level.geometry) == 1 and level.geometry[0] is None:
            raise InputError(
                f"unit level {kind!r} has no polygons (no sub-district outline was loaded)"
            )
        order = pd.Series(np.arange(len(level.unit_id)), index=level.unit_id.astype(str))
        table = table.loc[~table["outside"]].copy()
        pos = order.loc[table["unit_id"].astype(str)].to_numpy()
        table = table.iloc[np.argsort(pos)].reset_index(drop=True)
        geoms = level.geometry[np.sort(pos)]
        return gpd.GeoDataFrame(
            table.drop(columns=["outside"]), geometry=list(geoms), crs="EPSG:4326"
        )

    def _level(self, kind: str) -> UnitLevel:
        levels = {lvl.key: lvl for lvl in self.inputs.unit_levels()}
        if kind not in levels:
            raise InputError(f"unknown unit level {kind!r}; loaded: {', '.join(levels)}")
        return levels[kind]


__all__ = [
    "CoverageRun",
    "Inputs",
    "facility_table",
    "points_gdf",
    "resident_columns",
    "resident_table",
]
