"""Request and response models of the HTTP service (pydantic); they make the OpenAPI schema.

Coordinates are ``[lon, lat]`` degrees in the coordinate system the request's ``crs`` names.
"""

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

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

    model_config = ConfigDict(extra="ignore")
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


class FlatDistanceFeature(BaseModel):
    """One answered point with flat properties (``POST /distances``, the default): ``index``,
    ``snap_m``, ``off_network``, per tier ``{tier}_distance_m``, ``{tier}_minutes``,
    ``{tier}_threshold_m``, ``{tier}_nearest_id``, ``{tier}_nearest_name``, ``{tier}_covered``,
    and ``all_covered`` (the names of the ``residents`` layer of the GIS export)."""

    type: Literal["Feature"]
    id: str | int
    geometry: PointGeometry
    properties: dict[str, Any]


class FlatDistancesOut(BaseModel):
    """The answer of ``POST /distances`` (``flat=true``): a GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"]
    crs_name: str
    standard: str
    features: list[FlatDistanceFeature]


def flat_distances_model(tier_keys: Sequence[str]) -> type[BaseModel]:
    """:class:`FlatDistancesOut` with the properties of the loaded standard's tiers spelled out,
    so that the OpenAPI document lists ``station_distance_m``, ``station_covered``, …"""
    fields: dict[str, Any] = {
        "index": (int, Field(description="position of the point in the request")),
        "snap_m": (float | None, Field(description="metres from the point to its street")),
        "off_network": (bool, Field(description="farther than max_snap_m from every street")),
    }
    for key in tier_keys:
        fields |= {
            f"{key}_distance_m": (
                float | None,
                Field(description=f"{key}: network metres incl. access legs; null if unreachable"),
            ),
            f"{key}_minutes": (float | None, Field(description=f"{key}: minutes at its speed")),
            f"{key}_threshold_m": (float, Field(description=f"{key}: the standard in metres")),
            f"{key}_nearest_id": (str | None, Field(description=f"{key}: nearest facility id")),
            f"{key}_nearest_name": (str | None, Field(description=f"{key}: its name")),
            f"{key}_covered": (bool, Field(description=f"{key}: within the standard")),
        }
    fields["all_covered"] = (bool, Field(description="within the standard of every tier"))
    props = create_model("FlatDistanceProps", **fields)
    feature = create_model(
        "FlatDistanceFeature",
        __base__=FlatDistanceFeature,
        properties=(props, ...),
    )
    # models built at run time from the standard: mypy cannot see them as types
    features = list[feature]  # type: ignore[valid-type]
    return create_model("FlatDistancesOut", __base__=FlatDistancesOut, features=(features, ...))


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

    model_config = ConfigDict(extra="forbid")
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

    model_config = ConfigDict(extra="forbid")
    candidates: PointCollection
    tier: str
    k: (
        Annotated[int, Field(ge=1, description="sites to pick greedily (default: score only)")]
        | None
    ) = None
    weight: Literal["population", "elderly", "children"] = "population"


class CandidateFeature(BaseModel):
    """One ranked candidate site: a Point with the ``candidates`` layer columns."""

    type: Literal["Feature"]
    id: str | int
    geometry: PointGeometry
    properties: dict[str, Any]


class ScoreOut(BaseModel):
    """Ranked candidates and picks (``POST /score``): a GeoJSON FeatureCollection of the ranked
    candidates, with the scoring summary as foreign members."""

    type: Literal["FeatureCollection"]
    tier: str
    k: int | None
    weight: str
    crs_name: str
    coverage_before: dict[str, Any]
    coverage_after: dict[str, Any]
    picks: list[dict[str, Any]]
    features: list[CandidateFeature]


def _point_features(
    points: Sequence[tuple[float, float]], ids: Sequence[str], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "id": fid,
            "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
            "properties": {"name": names[i]} if names else {},
        }
        for i, (fid, (x, y)) in enumerate(zip(ids, points, strict=True))
    ]


def distances_examples(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """OpenAPI examples of ``POST /distances``: points of the loaded scenario (WGS84)."""
    return {
        "addresses": {
            "summary": f"{len(points)} addresses in the loaded scenario (WGS84)",
            "value": {
                "type": "FeatureCollection",
                "features": _point_features(points, [f"home-{i + 1}" for i in range(len(points))]),
            },
        },
    }


def service_area_examples(
    facility_id: str, tier: str, point: tuple[float, float]
) -> dict[str, Any]:
    """OpenAPI examples of ``POST /service-areas``: a real facility id and a new site."""
    return {
        "facilities": {
            "summary": f"loaded facility {facility_id}, 5 and 10 minutes",
            "value": {"facility_ids": [facility_id], "budgets_min": [5, 10], "dissolve": "none"},
        },
        "new_site": {
            "summary": f"a proposed {tier} (its tier's own standard)",
            "value": {
                "tier": tier,
                "points": {
                    "type": "FeatureCollection",
                    "features": _point_features([point], ["proposal-1"]),
                },
            },
        },
    }


def score_examples(tier: str, points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """OpenAPI examples of ``POST /score``: candidate sites among the scenario's residents."""
    n = len(points)
    return {
        "candidates": {
            "summary": f"rank {n} proposed sites for {tier} and pick the best {min(2, n)}",
            "value": {
                "tier": tier,
                "k": min(2, n),
                "candidates": {
                    "type": "FeatureCollection",
                    "features": _point_features(
                        points,
                        [f"C{i + 1}" for i in range(n)],
                        [f"候选点{i + 1}" for i in range(n)],
                    ),
                },
            },
        },
    }


__all__ = [
    "CandidateFeature",
    "DistanceFeature",
    "DistanceProps",
    "DistancesOut",
    "FlatDistanceFeature",
    "FlatDistancesOut",
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
    "distances_examples",
    "flat_distances_model",
    "score_examples",
    "service_area_examples",
]
