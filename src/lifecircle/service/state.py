"""What the service answers from: the loaded scenario and per-tier lookups, built once.

Method
------
At start-up :func:`build_state` loads the scenario once (network per mode, facilities,
residents, standard, units), computes coverage, and precomputes per tier one multi-source
Dijkstra search with that tier's facilities as sources (:func:`precompute_tier_lookup`): every
network node then knows its distance to the nearest facility of the tier and which facility
that is. A distance query then only snaps the points onto the network and *reads off* the
answer from the two nodes of their edge, plus the same-edge case (a facility on the query
point's own edge), which :func:`nearest_from_lookup` handles exactly as
:func:`lifecircle.routing.nearest_sources` does.

The state (:class:`ServiceState`) is immutable. Caches on the networks (routing graph, snapping
index) and the export template's per-facility populations are filled here, before the first
request, and only read afterwards.

This module does not import FastAPI.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lifecircle.coverage import CoverageResult
from lifecircle.errors import InputError
from lifecircle.export import ExportSources, facilities_layer
from lifecircle.pipeline import load_inputs, run_coverage
from lifecircle.routing import Positions, RoutingGraph, nearest_from_nodes, nearest_sources
from lifecircle.runs import CoverageRun, Inputs
from lifecircle.snapping import snap_index
from lifecircle.units import unit_tables

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes
    ----------
    max_body_bytes : int
        Largest request body in bytes (larger: 413).
    max_features : int
        Most points per ``/distances`` or ``/score`` request, and facility ids per
        ``/service-areas`` request (more: 413).
    max_budget_min : float
        Largest travel-time budget in minutes for service areas (larger: 422).
    max_budget_m : float
        Largest distance budget in metres for service areas (larger: 422).
    max_budgets : int
        Most budgets per service-area request.
    max_k : int
        Most sites ``/score`` may pick.
    timeout_s : float
        Seconds a computation may take before the request fails with 503.
    max_concurrent : int
        Computations running at once, of quick queries and (separately) of heavy work in child
        processes (further requests wait for a slot).
    body_timeout_s : float
        Seconds a client may take between two parts of its request body (slower: 408).
    """

    max_body_bytes: int = 2_000_000
    max_features: int = 1_000
    max_budget_min: float = 60.0
    max_budget_m: float = 20_000.0
    max_budgets: int = 6
    max_k: int = 50
    timeout_s: float = 30.0
    max_concurrent: int = 4
    body_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"service limit {name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class TierLookup:
    """Precomputed nearest-facility search of one tier (see the module docstring).

    Attributes
    ----------
    key, mode : str
        Tier key and the travel mode of its network.
    threshold_m : float
        The tier's standard in network metres.
    speed_m_per_min : float
        Travel speed of the tier's mode, metres per minute.
    graph : RoutingGraph
        The mode's towards graph.
    sources : Positions
        Positions of the facilities that serve the tier (``edge = -1``: off the network).
    facility_index : ndarray of int64
        Row in the coverage result's facility table of each source.
    node_distance_m : ndarray of float64
        Per node: metres to the nearest source (``inf`` if none reachable).
    node_source : ndarray of int64
        Per node: index into ``sources`` of that source, -1 if none.
    """

    key: str
    mode: str
    threshold_m: float
    speed_m_per_min: float
    graph: RoutingGraph = field(repr=False)
    sources: Positions = field(repr=False)
    facility_index: NDArray[np.int64] = field(repr=False)
    node_distance_m: NDArray[np.float64] = field(repr=False)
    node_source: NDArray[np.int64] = field(repr=False)


def precompute_tier_lookup(
    graph: RoutingGraph, sources: Positions
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Node distances to the nearest source and which source, from one multi-source search.

    Parameters
    ----------
    graph : RoutingGraph
    sources : Positions
        Facilities (``edge = -1`` ones are ignored).

    Returns
    -------
    node_distance_m : ndarray of float64, shape (n_nodes,)
        Network metres from each node to its nearest source, the source's access leg included.
    node_source : ndarray of int64, shape (n_nodes,)
        Index into ``sources`` of that source, -1 where none is reachable.
    """
    empty = Positions(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    out = nearest_sources(graph, sources, empty)
    return out.node_distance_m, out.node_source


def nearest_from_lookup(
    graph: RoutingGraph,
    sources: Positions,
    node_distance_m: NDArray[np.float64],
    node_source: NDArray[np.int64],
    destinations: Positions,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Exact distance from each destination to its nearest source, from precomputed nodes.

    Gives the same answer as :func:`lifecircle.routing.nearest_sources` (no cut-off) without a
    graph search: the read-off through the destination's edge ends plus the same-edge sources.

    Returns
    -------
    distance_m : ndarray of float64
        Metres, access legs included; ``inf`` if unreachable or off the network.
    source : ndarray of int64
        Index into ``sources``, -1 if none.
    """
    return nearest_from_nodes(graph, sources, node_distance_m, node_source, destinations)


@dataclass(frozen=True)
class ServiceState:
    """Everything the service answers from; built once, never changed.

    Attributes
    ----------
    run : CoverageRun
        Inputs and the coverage result of the loaded scenario.
    lookups : dict
        ``{tier key: TierLookup}``.
    unit_tables : dict
        ``{unit key: DataFrame}``: coverage per admin unit (达标率,
        :func:`lifecircle.units.unit_coverage`), the sub-district level first.
    unit_labels : dict
        ``{unit key: (label_zh, label_en)}``.
    limits : Limits
    token : str or None
        Bearer token every request must carry, if set.
    cors_origins : tuple of str
        Origins allowed by CORS (empty: CORS off).
    load_s : float
        Seconds spent loading and precomputing.
    export_template : ExportSources or None
        Export sources with their start-up cache filled; each request works on a copy
        (see :func:`lifecircle.service.queries.export_sources`).
    """

    run: CoverageRun
    lookups: dict[str, TierLookup]
    unit_tables: dict[str, pd.DataFrame]
    unit_labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    limits: Limits = Limits()
    token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    load_s: float = 0.0
    export_template: ExportSources | None = field(default=None, repr=False)

    @property
    def inputs(self) -> Inputs:
        """The loaded inputs."""
        return self.run.inputs

    @property
    def result(self) -> CoverageResult:
        """The coverage result."""
        return self.run.result


def build_state(
    inputs: Inputs,
    *,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
) -> ServiceState:
    """Compute coverage and the per-tier lookups for loaded inputs.

    Parameters
    ----------
    inputs : Inputs
        Must include residents.
    limits : Limits, optional
    token : str, optional
        Bearer token required on every request.
    cors_origins : sequence of str
        Browser origins allowed to call the API (empty: CORS off).
    """
    t0 = time.perf_counter()
    run = run_coverage(inputs)
    result = run.result
    std = inputs.standard
    fac_tier = result.facilities["tier"].to_numpy()
    lookups: dict[str, TierLookup] = {}
    for tier in std.tiers:
        idx = np.flatnonzero(np.isin(fac_tier, std.serving_tiers(tier.key))).astype(np.int64)
        graph = RoutingGraph.from_network(inputs.networks[tier.mode])
        src = result.facility_located.positions(tier.mode).subset(idx)
        node_d, node_s = precompute_tier_lookup(graph, src)
        lookups[tier.key] = TierLookup(
            tier.key,
            tier.mode,
            tier.threshold_m,
            tier.speed_m_per_min,
            graph,
            src,
            idx,
            node_d,
            node_s,
        )
    # fill every lazily built cache now, so requests only read
    for net in inputs.networks.values():
        snap_index(net).tree  # noqa: B018 - the KD-tree for points far off the network, built now
    levels = inputs.unit_levels()
    tables = unit_tables(result, levels)
    labels = {lvl.key: (lvl.label_zh, lvl.label_en) for lvl in levels}
    template = ExportSources(run)
    facilities_layer(template)  # fills the per-facility population cache once
    load_s = time.perf_counter() - t0 + inputs.timings_s.get("load", 0.0)
    logger.info(
        "service state ready in %.2f s: %d facilities, %d residents, %d unit layer(s)",
        load_s,
        len(result.facilities),
        len(result.residents),
        len(tables),
    )
    return ServiceState(
        run=run,
        lookups=lookups,
        unit_tables=tables,
        unit_labels=labels,
        limits=limits or Limits(),
        token=token or None,
        cors_origins=tuple(cors_origins),
        load_s=load_s,
        export_template=template,
    )


def load_state(
    scenario: str | Path | None = None,
    *,
    limits: Limits | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
    **load_kwargs: Any,
) -> ServiceState:
    """Load a scenario (and/or explicit inputs) and build the state.

    Parameters
    ----------
    scenario : str or Path, optional
        A scenario TOML file.
    limits, token, cors_origins
        As for :func:`build_state`.
    **load_kwargs
        Further keyword arguments of :func:`lifecircle.pipeline.load_inputs`.
    """
    inputs = load_inputs(scenario=scenario, **load_kwargs)
    return build_state(inputs, limits=limits, token=token, cors_origins=cors_origins)


__all__ = [
    "Limits",
    "ServiceState",
    "TierLookup",
    "build_state",
    "load_state",
    "nearest_from_lookup",
    "precompute_tier_lookup",
]
