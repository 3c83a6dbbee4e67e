"""GIS export: every result layer as GeoJSON, GeoPackage, Shapefile or CSV, in any CRS.

Submodules, in reading order:

* :mod:`~lifecircle.export.crs` -- output coordinate systems (:class:`OutputCRS`).
* :mod:`~lifecircle.export.schema` -- the documented attribute schema of each layer.
* :mod:`~lifecircle.export.styles` -- QGIS default styles (QML) in the HTML map's colours.
* :mod:`~lifecircle.export.layers` -- layer builders (result objects -> WGS84 GeoDataFrames).
* :mod:`~lifecircle.export.writers` -- writing layers (atomic, validated before writing).

The generic file writers (``check_writable``, ``write_csv``, ``write_json``, ``write_geojson``…)
live in :mod:`lifecircle._files`.
"""

from __future__ import annotations

from lifecircle.errors import LayerUnavailableError
from lifecircle.export.crs import (
    DEFAULT_PRECISION_DEG,
    DEFAULT_PRECISION_M,
    OUTPUT_CRS_NAMES,
    OutputCRS,
    lon_range,
    resolve_output_crs,
)
from lifecircle.export.layers import (
    DEFAULT_LAYERS,
    LAYER_BUILDERS,
    ExportSources,
    build_layers,
    candidates_layer,
    catchments_layer,
    facilities_layer,
    gaps_layer,
    network_layer,
    parse_layers,
    rejects_layer,
    residents_layer,
    service_areas_layer,
    unavailable_layers,
    units_layer,
)
from lifecircle.export.schema import (
    LAYER_DESCRIPTIONS,
    LAYER_SCHEMAS,
    LAYER_TITLES_ZH,
    FieldSpec,
    field_table,
    layer_fields,
    schema_markdown,
)
from lifecircle.export.styles import layer_qml
from lifecircle.export.writers import (
    GIS_FORMATS,
    GPKG_VERSIONS,
    SHP_ENCODINGS,
    ExportMeta,
    ExportResult,
    GeometryValidityError,
    export_layers,
    export_paths,
    layer_csv_frame,
    layer_geojson,
    read_back,
    write_service_areas,
)

__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_PRECISION_DEG",
    "DEFAULT_PRECISION_M",
    "GIS_FORMATS",
    "GPKG_VERSIONS",
    "LAYER_BUILDERS",
    "LAYER_DESCRIPTIONS",
    "LAYER_SCHEMAS",
    "LAYER_TITLES_ZH",
    "OUTPUT_CRS_NAMES",
    "SHP_ENCODINGS",
    "ExportMeta",
    "ExportResult",
    "ExportSources",
    "FieldSpec",
    "GeometryValidityError",
    "LayerUnavailableError",
    "OutputCRS",
    "build_layers",
    "candidates_layer",
    "catchments_layer",
    "export_layers",
    "export_paths",
    "facilities_layer",
    "field_table",
    "gaps_layer",
    "layer_csv_frame",
    "layer_fields",
    "layer_geojson",
    "layer_qml",
    "lon_range",
    "network_layer",
    "parse_layers",
    "read_back",
    "rejects_layer",
    "residents_layer",
    "resolve_output_crs",
    "schema_markdown",
    "service_areas_layer",
    "unavailable_layers",
    "units_layer",
    "write_service_areas",
]
# temporary re-exports of lifecircle._files, until every caller imports them from there
__all__ += [
    "atomic_path",
    "check_writable",
    "to_json_text",
    "write_csv",
    "write_json",
    "write_text",
]
