"""lifecircle: road-network coverage analysis for the 15-minute community living circle.

The package is light on import: heavy optional parts (folium maps, the HTTP service, osmnx) load
only when the submodule that needs them is imported.

Main entry points
-----------------
- :mod:`lifecircle.pipeline` — ``run_coverage`` and friends, wiring the stages together.
- :class:`lifecircle.network.RoadNetwork` — load a road network (OSM XML/PBF, GraphML, networkx).
- :func:`lifecircle.coords.convert` — WGS84 / CGCS2000 / GCJ-02 / BD-09 conversions.
"""

from lifecircle.errors import (
    CRSError,
    InputError,
    LifecircleError,
    NetworkError,
    OutputExistsError,
)

__version__ = "0.1.0"

__all__ = [
    "CRSError",
    "InputError",
    "LifecircleError",
    "NetworkError",
    "OutputExistsError",
    "__version__",
]
