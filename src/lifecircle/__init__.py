"""lifecircle: road-network coverage analysis for the 15-minute community living circle.

The main job in Python (GeoDataFrames in, GeoDataFrames out)::

    import lifecircle as lc
    inputs = lc.load_inputs(network="roads.osm.pbf", facilities=sites_gdf, residents=people_gdf,
                            facilities_crs="gcj02")
    run = lc.run_coverage(inputs)
    run.residents_gdf()          # per resident: {tier}_distance_m, {tier}_covered, ...
    run.units_gdf("community")   # 达标率 per community
    lc.run_report(run)           # per-unit tables and coverage gaps

``import lifecircle`` stays light: the API functions are loaded on first use (PEP 562), and heavy
optional parts (folium maps, the HTTP service, Dask) only when the module that needs them is
imported.

Public API
----------
load_inputs, run_coverage, run_service_areas, run_report, run_scoring, run_export, run_grids
    :mod:`lifecircle.pipeline`.
load_network, load_networks
    :mod:`lifecircle.network` (OSM XML/PBF, GraphML, networkx).
load_standard
    :mod:`lifecircle.config` (presets ``tancheng``, ``gb50180``, or a TOML file).
run_batch
    :mod:`lifecircle.batch` (many regions at once on Dask; returns a GeoDataFrame of regions).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lifecircle._version import __version__
from lifecircle.errors import (
    CRSError,
    InputError,
    LifecircleError,
    NetworkError,
    OutputExistsError,
)

#: Public name -> the module that defines it (loaded on first access).
_LAZY = {
    "load_inputs": "lifecircle.pipeline",
    "run_coverage": "lifecircle.pipeline",
    "run_service_areas": "lifecircle.pipeline",
    "run_report": "lifecircle.pipeline",
    "run_scoring": "lifecircle.pipeline",
    "run_export": "lifecircle.pipeline",
    "run_grids": "lifecircle.pipeline",
    "load_network": "lifecircle.network",
    "load_networks": "lifecircle.network",
    "load_standard": "lifecircle.config",
    "run_batch": "lifecircle.batch",
}

if TYPE_CHECKING:
    from lifecircle.batch import run_batch
    from lifecircle.config import load_standard
    from lifecircle.network import load_network, load_networks
    from lifecircle.pipeline import (
        load_inputs,
        run_coverage,
        run_export,
        run_grids,
        run_report,
        run_scoring,
        run_service_areas,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lifecircle' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "CRSError",
    "InputError",
    "LifecircleError",
    "NetworkError",
    "OutputExistsError",
    "__version__",
    "load_inputs",
    "load_network",
    "load_networks",
    "load_standard",
    "run_batch",
    "run_coverage",
    "run_export",
    "run_grids",
    "run_report",
    "run_scoring",
    "run_service_areas",
]
