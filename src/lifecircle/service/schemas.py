"""Request and response models of the HTTP service (pydantic); they make the OpenAPI schema.

Coordinates are ``[lon, lat]`` degrees in the coordinate system the request's ``crs`` names.
"""

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]


class PointGeometry(BaseModel):
    """A GeoJSON Point: ``[lon, lat]`` in degrees of the request's ``crs``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["Point"]
    coordinates: tuple[Lon, Lat]


class PointFeature(BaseModel):
    """A GeoJSON Feature with a Point geometry."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["Feature"]
    id: str | int | None = None
    geometry: PointGeometry
    properties: dict[str, Any] | None = None


class PointCollection(BaseModel):
    """A GeoJSON FeatureCollection of points."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "id": "home-1",
                            "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]},
                            "properties": {},
                        },
                    ],
                }
            ]
        },
    )
    type: Literal["FeatureCollection"]
    features: list[PointFeature]


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    errors: list[dict[str, Any]] | None = None


class TierOut(BaseModel):
    """One tier of the standard (``GET /standard``)."""

    key: str
    label_zh: str
    label_en: str
    mode: str
    threshold_m: float
    minutes: float
    speed_m_per_min: float


class StandardOut(BaseModel):
    """The loaded standard (``GET /standard``)."""

    name: str
    description: str
    upper_tiers_count: bool
    tiers: list[TierOut]


class HealthOut(BaseModel):
    """Readiness and counts (``GET /health``)."""

    status: Literal["ok"]
    ready: bool
    version: str
    scenario: str | None
    synthetic: bool
    standard: str
    crs: str
    counts: dict[str, int | float]
    networks: dict[str, dict[str, int]]
    units: list[str]
    layers: list[str]
    load_s: float


class TierDistance(BaseModel):
    """Distance from one point to the nearest facility of one tier."""

    distance_m: float | None = Field(
        description="network metres incl. access legs; null if unreachable"
    )
    minutes: float | None
    threshold_m: float
    covered: bool
    nearest_id: str | None
    nearest_name: str | None


class DistanceProps(BaseModel):
    """Properties of one answered point."""

    index: int
    on_network: bool
    snap_m: float | None
    all_covered: bool
    tiers: dict[str, TierDistance]


class DistanceFeature(BaseModel):
    """One answered point (``POST /distances``)."""

    type: Literal["Feature"]
    id: str | int
    geometry: PointGeometry
    properties: DistanceProps


class DistancesOut(BaseModel):
    """The answer of ``POST /distances``: a GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"]
    crs_name: str
    standard: str
    features: list[DistanceFeature]


class UnitsOut(BaseModel):
    """Coverage per admin unit (``GET /coverage/units``)."""

    unit: str
    label_zh: str
    label_en: str
    columns: list[str]
    rows: list[dict[str, Any]]


class SummaryOut(BaseModel):
    """The scenario's coverage summary (``GET /coverage/summary``)."""

    model_config = ConfigDict(extra="allow")
    scenario: str | None
    synthetic: bool
    tiers: dict[str, dict[str, Any]]
    all_tiers: dict[str, Any]


class ServiceAreasIn(BaseModel):
    """Facilities (by id) or new points, budgets, and how to merge the polygons."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"facility_ids": ["F0001"], "budgets_min": [5, 10], "dissolve": "none"}]
        },
    )
    facility_ids: list[str] | None = Field(None, description="ids of loaded facilities")
    points: PointCollection | None = Field(None, description="new sites (needs tier)")
    tier: str | None = Field(None, description="tier key of the new points (and their mode)")
    budgets_min: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None
    budgets_m: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None
    dissolve: Literal["none", "tier", "catchment"] = Field(
        "none",
        description="none: one polygon per facility and budget; tier: their union per tier; "
        "catchment: the tier polygon split among the facilities",
    )
    rings: bool = Field(
        False, description="bands between consecutive budgets instead of nested polygons"
    )


class ScoreIn(BaseModel):
    """Candidate sites for one tier; the best ``k`` are picked greedily."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tier": "station",
                    "k": 3,
                    "candidates": {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "id": "C1",
                                "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]},
                            }
                        ],
                    },
                }
            ]
        },
    )
    candidates: PointCollection
    tier: str
    k: (
        Annotated[int, Field(ge=1, description="sites to pick greedily (default: score only)")]
        | None
    ) = None
    weight: Literal["population", "elderly", "children"] = "population"


class ScoreOut(BaseModel):
    """Ranked candidates and picks (``POST /score``)."""

    tier: str
    k: int | None
    weight: str
    crs_name: str
    coverage_before: dict[str, Any]
    coverage_after: dict[str, Any]
    picks: list[dict[str, Any]]
    candidates: list[dict[str, Any]]


#: OpenAPI examples of the request bodies.
DISTANCES_EXAMPLES: Final = {
    "two_addresses": {
        "summary": "two addresses (WGS84)",
        "value": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": "home-1",
                    "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]},
                    "properties": {},
                },
                {
                    "type": "Feature",
                    "id": "home-2",
                    "geometry": {"type": "Point", "coordinates": [118.3551, 34.6190]},
                    "properties": {},
                },
            ],
        },
    },
}
SERVICE_AREA_EXAMPLES: Final = {
    "facilities": {
        "summary": "loaded facilities by id, 5 and 10 minutes",
        "value": {"facility_ids": ["F0001"], "budgets_min": [5, 10], "dissolve": "none"},
    },
    "new_site": {
        "summary": "a proposed station (its tier's own standard)",
        "value": {
            "tier": "station",
            "points": {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": "proposal-7",
                        "geometry": {"type": "Point", "coordinates": [118.3475, 34.6139]},
                    }
                ],
            },
        },
    },
}
SCORE_EXAMPLES: Final = {
    "three_candidates": {
        "summary": "rank three proposed stations and pick the best two",
        "value": {
            "tier": "station",
            "k": 2,
            "candidates": {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": f"C{i + 1}",
                        "geometry": {"type": "Point", "coordinates": [lon, 34.6139]},
                        "properties": {"name": f"候选点{i + 1}"},
                    }
                    for i, lon in enumerate((118.3475, 118.3520, 118.3590))
                ],
            },
        },
    },
}


__all__ = [
    "DISTANCES_EXAMPLES",
    "SCORE_EXAMPLES",
    "SERVICE_AREA_EXAMPLES",
    "DistanceFeature",
    "DistanceProps",
    "DistancesOut",
    "HealthOut",
    "PointCollection",
    "PointFeature",
    "PointGeometry",
    "Problem",
    "ScoreIn",
    "ScoreOut",
    "ServiceAreasIn",
    "StandardOut",
    "SummaryOut",
    "TierDistance",
    "TierOut",
    "UnitsOut",
]
