"""Road networks: loading, projecting, and the compact arrays every analysis runs on.

A :class:`RoadNetwork` is a set of nodes (projected x/y in metres) and straight edges between
them. Every OSM way is split at each of its nodes, so each edge is one straight street segment;
osmnx GraphML edges with curved ``geometry`` are split at their vertices the same way (their
``length`` attribute is kept, shared out along the pieces in proportion to their projected
lengths). Straight edges make snapping, partial-edge trimming and service-area buffers exact and
simple.

Sources
-------
- OSM XML (``.osm``, ``.osm.bz2``, ``.osm.gz``) and OSM PBF (``.osm.pbf``), read with pyosmium and
  filtered with the same rules as osmnx's ``walk``, ``bike`` and ``drive`` network types.
- osmnx GraphML (``.graphml``), used as-is (its ``length`` in metres is the edge length), streamed
  into arrays without networkx (:func:`from_graphml`); plain networkx GraphML works too.
- a networkx graph in Python (:func:`from_networkx`).
- online by place name or polygon through osmnx (:func:`from_place`, :func:`from_polygon`; needs
  the internet, never used in tests).

Lengths
-------
Edge lengths computed from coordinates (OSM XML/PBF ways) are geodesic lengths on the WGS84
ellipsoid (``pyproj.Geod``, Karney's algorithm, vectorised), not osmnx's spherical great-circle
(haversine, radius 6,371,009 m), which is off the geodesic by about -0.2 % to +0.4 % depending on
latitude and bearing. GraphML and networkx ``length`` attributes are kept as given.

Routing graph
-------------
The network keeps every vertex and straight piece (snapping, geometry and service areas use
them), and :meth:`RoadNetwork.junctions` contracts chains of degree-2 vertices into
junction-to-junction edges (:class:`Junctions`) that searches run on; one-way chains and changes
of ``highway`` tag keep their junctions, so distances stay exact.

Modes
-----
``walk`` and ``bike`` are undirected. ``drive`` is directed: ``oneway=yes|true|1`` edges run in
the way's direction, ``oneway=-1|reverse`` against it, and roundabouts are one-way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from lifecircle._files import user_cache_dir
from lifecircle._threads import thread_budget
from lifecircle.config import MODES
from lifecircle.coords import utm_epsg
from lifecircle.errors import CRSError, NetworkError

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

logger = logging.getLogger(__name__)

EARTH_RADIUS_M: Final = 6_371_009.0
CACHE_VERSION: Final = 4

# osmnx 2.x network-type filters (osmnx/_overpass.py, _get_network_filter), as (tag, regex)
# pairs: a way is excluded when the tag is present and the (unanchored) regex matches its value.
_COMMON_EXCLUDE: Final = [("area", "yes"), ("access", "private")]
_FILTERS: Final[dict[str, list[tuple[str, str]]]] = {
    "walk": [
        *_COMMON_EXCLUDE,
        (
            "highway",
            "abandoned|bus_guideway|construction|cycleway|motor|no|planned|platform|"
            "proposed|raceway|razed|rest_area|services",
        ),
        ("foot", "no"),
        ("service", "private"),
        ("sidewalk", "separate"),
        ("sidewalk:both", "separate"),
        ("sidewalk:left", "separate"),
        ("sidewalk:right", "separate"),
    ],
    "bike": [
        *_COMMON_EXCLUDE,
        (
            "highway",
            "abandoned|bus_guideway|construction|corridor|elevator|escalator|footway|"
            "motor|no|planned|platform|proposed|raceway|razed|rest_area|services|steps",
        ),
        ("bicycle", "no"),
        ("service", "private"),
    ],
    "drive": [
        *_COMMON_EXCLUDE,
        (
            "highway",
            "abandoned|bridleway|bus_guideway|construction|corridor|cycleway|elevator|"
            "escalator|footway|no|path|pedestrian|planned|platform|proposed|raceway|"
            "razed|rest_area|service|services|steps|track",
        ),
        ("motor_vehicle", "no"),
        ("motorcar", "no"),
        ("service", "alley|driveway|emergency_access|parking|parking_aisle|private"),
    ],
}
_COMPILED: Final = {m: [(k, re.compile(v)) for k, v in f] for m, f in _FILTERS.items()}
_ONEWAY_VALUES: Final = {"yes", "true", "1", "-1", "reverse", "T", "F"}
_REVERSED_VALUES: Final = {"-1", "reverse", "T"}


def way_filters(mode: str) -> list[tuple[str, re.Pattern[str]]]:
    """The ``(key, pattern)`` pairs that exclude a way from the ``mode`` network: a way whose
    value of ``key`` contains a match of ``pattern`` is excluded (osmnx's rules)."""
    return list(_COMPILED[mode])


def way_allowed(tags: Mapping[str, str], mode: str) -> bool:
    """True if a way with these OSM tags belongs to the ``mode`` network (osmnx's rules)."""
    if "highway" not in tags:
        return False
    for key, rx in _COMPILED[mode]:
        value = tags.get(key)
        if value is not None and rx.search(value):
            return False
    return True


def haversine_m(
    lon1: NDArray[np.float64],
    lat1: NDArray[np.float64],
    lon2: NDArray[np.float64],
    lat2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Great-circle distance in metres (osmnx's formula and earth radius; kept for comparisons,
    network lengths use :func:`geodesic_m`)."""
    y1, y2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dy = y2 - y1
    dx = np.deg2rad(lon2 - lon1)
    h = np.sin(dy / 2) ** 2 + np.cos(y1) * np.cos(y2) * np.sin(dx / 2) ** 2
    h = np.minimum(1.0, h)
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))


_GEOD: list[Any] = []


def geodesic_m(
    lon1: NDArray[np.float64],
    lat1: NDArray[np.float64],
    lon2: NDArray[np.float64],
    lat2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Geodesic distance in metres on the WGS84 ellipsoid (vectorised ``pyproj.Geod.inv``)."""
    if not _GEOD:
        from pyproj import Geod

        _GEOD.append(Geod(ellps="WGS84"))
    lon1, lat1, lon2, lat2 = (
        np.ascontiguousarray(a, dtype=np.float64) for a in (lon1, lat1, lon2, lat2)
    )
    if len(lon1) == 0:
        return np.zeros(0)
    _, _, dist = _GEOD[0].inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=np.float64)


@dataclass(frozen=True)
class ComponentReport:
    """Connected components of a network (weakly connected for ``drive``).

    Attributes
    ----------
    n_components : int
    largest_nodes : int
        Nodes in the largest component.
    other_nodes : int
        Nodes outside it (islands). Residents snapped onto an island can only reach facilities
        on that island: unreachable, not wrong.
    node_component : ndarray of int32
        Component label per node; label 0 is the largest component.
    """

    n_components: int
    largest_nodes: int
    other_nodes: int
    node_component: NDArray[np.int32] = field(repr=False)


@dataclass(eq=False)
class RoadNetwork:
    """A projected road network as compact arrays (immutable by convention).

    Attributes
    ----------
    crs : str
        The metric CRS of ``node_x``/``node_y``, e.g. ``"EPSG:32650"``.
    mode : {"walk", "bike", "drive"}
    node_id : ndarray of int64
        OSM node id (or the source graph's node key when it is an integer; otherwise 0..N-1).
        Vertices added when splitting curved GraphML edges get negative ids.
    node_x, node_y : ndarray of float64
        Projected coordinates in metres.
    edge_u, edge_v : ndarray of int32
        Node indices of each straight edge.
    edge_length_m : ndarray of float64
        Edge length in metres.
    edge_oneway : ndarray of bool
        In ``drive`` mode, True where the edge may only be travelled from ``u`` to ``v``.
        Always False in ``walk`` and ``bike`` mode.
    edge_highway : ndarray of int16
        Index into :attr:`highway_values` (the OSM ``highway`` tag), -1 when unknown.
    edge_name : ndarray of int32
        Index into :attr:`name_values` (street names), -1 when unnamed.
    highway_values, name_values : tuple of str
    source : str
        Where the network came from, for reports.
    extra_roads : dict
        When local road lines were merged in (:mod:`lifecircle.roads`), their noding report.
    """

    crs: str
    mode: str
    node_id: NDArray[np.int64]
    node_x: NDArray[np.float64]
    node_y: NDArray[np.float64]
    edge_u: NDArray[np.int32]
    edge_v: NDArray[np.int32]
    edge_length_m: NDArray[np.float64]
    edge_oneway: NDArray[np.bool_]
    edge_highway: NDArray[np.int16]
    edge_name: NDArray[np.int32]
    highway_values: tuple[str, ...] = ()
    name_values: tuple[str, ...] = ()
    source: str = ""
    extra_roads: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise NetworkError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        n = len(self.node_x)
        if n == 0 or len(self.edge_u) == 0:
            raise NetworkError(
                f"the {self.mode} network from {self.source or 'the input'} has no edges; check "
                "that the file covers the study area and contains highway=* ways for this mode"
            )
        for arr in (self.edge_u, self.edge_v):
            if arr.min() < 0 or arr.max() >= n:
                raise NetworkError("edge endpoints refer to nodes that do not exist")
        for name in (
            "node_id",
            "node_x",
            "node_y",
            "edge_u",
            "edge_v",
            "edge_length_m",
            "edge_oneway",
            "edge_highway",
            "edge_name",
        ):
            getattr(self, name).setflags(write=False)

    # -- sizes and derived geometry -------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_x)

    @property
    def n_edges(self) -> int:
        """Number of straight edges."""
        return len(self.edge_u)

    @property
    def directed(self) -> bool:
        """True in ``drive`` mode (one-way streets respected)."""
        return self.mode == "drive"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the nodes, in :attr:`crs` metres."""
        return (
            float(self.node_x.min()),
            float(self.node_y.min()),
            float(self.node_x.max()),
            float(self.node_y.max()),
        )

    def edge_coords(self) -> NDArray[np.float64]:
        """Edge end points as an array of shape (E, 2, 2): ``[[xu, yu], [xv, yv]]``."""
        u, v = self.edge_u, self.edge_v
        return np.stack(
            [
                np.column_stack([self.node_x[u], self.node_y[u]]),
                np.column_stack([self.node_x[v], self.node_y[v]]),
            ],
            axis=1,
        )

    def edge_geometries(self) -> NDArray[np.object_]:
        """Shapely LineStrings of the edges (built on first use, then cached)."""
        if "geoms" not in self._cache:
            import shapely

            self._cache["geoms"] = shapely.linestrings(self.edge_coords())
        return self._cache["geoms"]

    def junctions(self) -> Junctions:
        """The contracted junction graph (built on first use, cached, saved by :meth:`save`)."""
        if "junctions" not in self._cache:
            self._cache["junctions"] = contract_junctions(self)
        return self._cache["junctions"]

    def components(self) -> ComponentReport:
        """Connected components (weak for ``drive``); label 0 is the largest."""
        if "components" not in self._cache:
            import scipy.sparse as sp
            from scipy.sparse.csgraph import connected_components

            n = self.n_nodes
            adj = sp.csr_matrix((np.ones(self.n_edges), (self.edge_u, self.edge_v)), shape=(n, n))
            k, labels = connected_components(adj, directed=True, connection="weak")
            sizes = np.bincount(labels, minlength=k)
            order = np.argsort(-sizes, kind="stable")
            relabel = np.empty(k, dtype=np.int32)
            relabel[order] = np.arange(k, dtype=np.int32)
            labels = relabel[labels]
            largest = int(sizes.max())
            self._cache["components"] = ComponentReport(
                n_components=int(k),
                largest_nodes=largest,
                other_nodes=n - largest,
                node_component=labels,
            )
        return self._cache["components"]

    def to_lonlat(
        self, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metric x/y in :attr:`crs` → WGS84 lon/lat."""

        return _transform(_transformer(self.crs, "EPSG:4326"), x, y)

    def from_lonlat(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """WGS84 lon/lat → metric x/y in :attr:`crs`."""
        return _transform(_transformer("EPSG:4326", self.crs), lon, lat)

    def summary(self) -> dict[str, Any]:
        """Counts for logs and reports."""
        comp = self.components()
        return {
            "source": self.source,
            "mode": self.mode,
            "crs": self.crs,
            "nodes": self.n_nodes,
            "edges": self.n_edges,
            "length_km": round(float(self.edge_length_m.sum()) / 1000.0, 3),
            "components": comp.n_components,
            "nodes_outside_largest_component": comp.other_nodes,
            **({"extra_roads": self.extra_roads} if self.extra_roads else {}),
        }

    # -- cache --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the network to an uncompressed ``.npz`` cache file (fast to reload).

        The contracted junction graph (:meth:`junctions`) is saved with it, so a reload routes
        without rebuilding it.
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        try:
            self._write_npz(tmp)
            os.replace(tmp, p)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return p

    def _write_npz(self, tmp: Path) -> None:
        jn = self.junctions()
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                version=np.array(CACHE_VERSION),
                crs=np.array(self.crs),
                mode=np.array(self.mode),
                source=np.array(self.source),
                node_id=self.node_id,
                node_x=self.node_x,
                node_y=self.node_y,
                edge_u=self.edge_u,
                edge_v=self.edge_v,
                edge_length_m=self.edge_length_m,
                edge_oneway=self.edge_oneway,
                edge_highway=self.edge_highway,
                edge_name=self.edge_name,
                highway_values=np.array(self.highway_values, dtype=str),
                name_values=np.array(self.name_values, dtype=str),
                **{f"junctions_{k}": getattr(jn, k) for k in Junctions.FIELDS},
            )

    @classmethod
    def load(cls, path: str | Path) -> RoadNetwork:
        """Read a network written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != CACHE_VERSION:
                    raise NetworkError(f"cache file {path} has an old format; delete it")
                net = cls(
                    crs=str(z["crs"]),
                    mode=str(z["mode"]),
                    source=str(z["source"]),
                    node_id=z["node_id"],
                    node_x=z["node_x"],
                    node_y=z["node_y"],
                    edge_u=z["edge_u"],
                    edge_v=z["edge_v"],
                    edge_length_m=z["edge_length_m"],
                    edge_oneway=z["edge_oneway"],
                    edge_highway=z["edge_highway"],
                    edge_name=z["edge_name"],
                    highway_values=tuple(z["highway_values"].tolist()),
                    name_values=tuple(z["name_values"].tolist()),
                )
                net._cache["junctions"] = Junctions(
                    **{k: z[f"junctions_{k}"] for k in Junctions.FIELDS}
                )
                return net
        except (OSError, KeyError, ValueError) as exc:
            raise NetworkError(f"cannot read network cache {path}: {exc}") from exc


def _cache_dirs(cache_dir: str | Path | None) -> list[Path]:
    """Where cached networks are looked for and written: the given folder, then the user's
    cache folder (used when the first is corrupt, read-only or not a folder)."""
    return [Path(cache_dir), user_cache_dir() / "networks"] if cache_dir is not None else []


def _load_cached(dirs: Sequence[Path], name: str) -> RoadNetwork | None:
    """A cached network, or None; a corrupt or unreadable cache file is ignored with a warning
    (and removed when possible), so that the network is parsed again and re-cached."""
    for d in dirs:
        path = d / name
        try:
            if not path.is_file():
                continue
            t0 = time.perf_counter()
            net = RoadNetwork.load(path)
        except (NetworkError, OSError, zipfile.BadZipFile, EOFError) as exc:
            logger.warning("ignoring the network cache %s (%s); it is rebuilt", path, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        logger.info(
            "loaded %s network from cache %s in %.2f s", net.mode, path, time.perf_counter() - t0
        )
        return net
    return None


def _save_cached(net: RoadNetwork, dirs: Sequence[Path], name: str) -> None:
    """Cache a network in the first folder that can be written (the cache is an optimisation:
    if none can, the run goes on with a warning)."""
    for d in dirs:
        try:
            net.save(d / name)
        except OSError as exc:
            logger.warning("cannot write the network cache in %s (%s)", d, exc.strerror or exc)
            continue
        logger.debug("cached the %s network in %s", net.mode, d / name)
        return


# --------------------------------------------------------------------------------------
# Junction contraction
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Junctions:
    """The network's chains of degree-2 vertices contracted into junction-to-junction edges.

    A vertex is *interior* when exactly two edges meet there (no self-loop), both have the same
    one-way status (and, when one-way, one enters and one leaves it) and the same ``highway``
    tag; every other vertex is a *junction*. The maximal runs of edges through interior vertices
    are *chains*: one routing edge each, from junction ``chain_u`` to junction ``chain_v``,
    whose length is the sum of its pieces. A closed loop of interior vertices keeps its lowest
    vertex as a junction. One-way chains run in their legal direction.

    Positions on raw edges map onto chains exactly: a point at ``offset`` metres from the ``u``
    end of edge ``e`` is at ``edge_start_m[e] + offset`` along chain ``edge_chain[e]`` (or
    ``edge_start_m[e] + length - offset`` when ``edge_flip[e]``).

    Attributes
    ----------
    node_junction : ndarray of int32
        Per raw vertex: its junction index, -1 for interior vertices.
    junction_node : ndarray of int64
        Per junction: its raw vertex.
    chain_u, chain_v : ndarray of int32
        Junction indices at the start and end of each chain.
    chain_length_m : ndarray of float64
    chain_oneway : ndarray of bool
        True where the chain may only be travelled from ``chain_u`` to ``chain_v``.
    edge_chain : ndarray of int32
        Per raw edge: its chain.
    edge_flip : ndarray of bool
        Per raw edge: True when it runs from ``v`` to ``u`` along its chain.
    edge_start_m : ndarray of float64
        Per raw edge: metres along its chain where it starts (in the chain's direction).
    node_chain : ndarray of int32
        Per raw vertex: the chain an interior vertex lies on, -1 for junctions.
    node_offset_m : ndarray of float64
        Per raw vertex: metres along ``node_chain`` (0 for junctions).
    csr_indptr, csr_indices, csr_weights : ndarray
        The *towards* graph over the junctions in CSR form (see :mod:`lifecircle.routing`):
        for junction ``a`` the arcs ``a→b`` of a chain a traveller may take from ``b`` to ``a``,
        the shortest of parallel arcs, no self-loops. Built here so the cache holds it too.
    """

    node_junction: NDArray[np.int32]
    junction_node: NDArray[np.int64]
    chain_u: NDArray[np.int32]
    chain_v: NDArray[np.int32]
    chain_length_m: NDArray[np.float64]
    chain_oneway: NDArray[np.bool_]
    edge_chain: NDArray[np.int32]
    edge_flip: NDArray[np.bool_]
    edge_start_m: NDArray[np.float64]
    node_chain: NDArray[np.int32]
    node_offset_m: NDArray[np.float64]
    csr_indptr: NDArray[np.int64]
    csr_indices: NDArray[np.int32]
    csr_weights: NDArray[np.float64]

    FIELDS: ClassVar[tuple[str, ...]] = (
        "node_junction",
        "junction_node",
        "chain_u",
        "chain_v",
        "chain_length_m",
        "chain_oneway",
        "edge_chain",
        "edge_flip",
        "edge_start_m",
        "node_chain",
        "node_offset_m",
        "csr_indptr",
        "csr_indices",
        "csr_weights",
    )

    @property
    def n_junctions(self) -> int:
        """Number of junctions (routing nodes)."""
        return len(self.junction_node)

    @property
    def n_chains(self) -> int:
        """Number of chains (routing edges)."""
        return len(self.chain_u)


def contract_junctions(network: RoadNetwork) -> Junctions:
    """Contract the network's chains of degree-2 vertices (see :class:`Junctions`).

    Vectorised: every path of half-edges through interior vertices is walked from its starting
    junction in lock step (one NumPy pass per edge of the longest chain, over the paths still
    going), never by a Python loop over vertices.
    """
    n, m = network.n_nodes, network.n_edges
    u = network.edge_u.astype(np.int64)
    v = network.edge_v.astype(np.int64)
    length = network.edge_length_m
    oneway = network.edge_oneway & network.directed
    hw = network.edge_highway
    forced = np.zeros(n, dtype=bool)
    forced[u[u == v]] = True  # self-loops end chains
    # incidence: the (up to) two edges at each vertex, and which end of them it is
    ends = np.concatenate([u, v])
    inc_edge = np.concatenate([np.arange(m), np.arange(m)])
    order = np.argsort(ends, kind="stable")
    deg = np.bincount(ends, minlength=n)
    first = np.cumsum(deg) - deg
    two = deg == 2
    e1 = np.where(two, inc_edge[order[np.minimum(first, 2 * m - 1)]], -1)
    e2 = np.where(two, inc_edge[order[np.minimum(first + 1, 2 * m - 1)]], -1)
    ok = two.copy()
    t = np.flatnonzero(two)
    a, b = e1[t], e2[t]
    cond = (a != b) & (oneway[a] == oneway[b]) & (hw[a] == hw[b])
    # a one-way pair must pass through: one edge enters the vertex, the other leaves it
    enters_a = v[a] == t
    enters_b = v[b] == t
    cond &= ~oneway[a] | (enters_a != enters_b)
    ok[t] = cond
    while True:
        interior = ok & ~forced
        res = _rank_chains(n, u, v, length, oneway, interior, e1, e2)
        if isinstance(res, Junctions):
            return res
        forced |= res


def _rank_chains(
    n: int,
    u: NDArray[np.int64],
    v: NDArray[np.int64],
    length: NDArray[np.float64],
    oneway: NDArray[np.bool_],
    interior: NDArray[np.bool_],
    e1: NDArray[np.int64],
    e2: NDArray[np.int64],
) -> Junctions | NDArray[np.bool_]:
    """Chains by walking all paths in lock step; or, if closed loops of interior vertices remain,
    a mask of one vertex per loop to make a junction (the caller retries)."""
    m = len(u)
    h = np.arange(2 * m)
    he = h // 2
    back = (h % 2).astype(bool)  # half-edge 2e: u->v, 2e+1: v->u
    tail = np.where(back, v[he], u[he])
    head = np.where(back, u[he], v[he])
    # successor: through an interior head vertex onto the other edge, leaving it
    succ = np.full(2 * m, -1, dtype=np.int64)
    hi = np.flatnonzero(interior[head])
    w = head[hi]
    other = np.where(e1[w] == he[hi], e2[w], e1[w])
    succ[hi] = 2 * other + (v[other] == w)  # leaves w: forward if u == w, else backward
    # walk every path from its start (a half-edge leaving a junction) in lock step: one pass per
    # edge of the longest chain, over the walkers still going (O(edges) in all)
    start = np.flatnonzero(~interior[tail])
    pre_of = np.full(2 * m, np.nan)  # metres along the path before each half-edge
    path_of = np.full(2 * m, -1, dtype=np.int64)
    last = np.empty(len(start), dtype=np.int64)
    path_len = np.empty(len(start), dtype=np.float64)
    cur, pid, pre = start, np.arange(len(start)), np.zeros(len(start))
    while len(cur):
        pre_of[cur] = pre
        path_of[cur] = pid
        pre = pre + length[he[cur]]
        nxt = succ[cur]
        done = nxt < 0
        last[pid[done]] = cur[done]
        path_len[pid[done]] = pre[done]
        go = ~done
        cur, pid, pre = nxt[go], pid[go], pre[go]
    lost = np.flatnonzero(path_of < 0)  # half-edges on closed loops of interior vertices
    if len(lost):
        # make the lowest vertex of each loop a junction (the caller retries)
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        le = np.unique(he[lost])
        g = sp.csr_matrix((np.ones(len(le)), (u[le], v[le])), shape=(n, n))
        _, lab = connected_components(g, directed=False)
        verts = np.unique(np.concatenate([u[le], v[le]]))
        lowest = np.full(lab.max() + 1, n, dtype=np.int64)
        np.minimum.at(lowest, lab[verts], verts)
        mask = np.zeros(n, dtype=bool)
        mask[lowest[lowest < n]] = True
        return mask
    term = last[path_of]
    acc = path_len[path_of] - pre_of  # metres from each half-edge's tail to its path's end
    # each path is paired with its reverse; one of the two is the chain's direction
    end = term[start]
    rev_start = end ^ 1
    one = oneway[he[start]]
    a_node, b_node = tail[start], head[end]
    canon = np.where(
        one, ~back[start], (a_node < b_node) | ((a_node == b_node) & (start < rev_start))
    )
    cs = start[canon]
    k = len(cs)
    chain_of_term = np.full(2 * m, -1, dtype=np.int64)
    chain_of_term[term[cs]] = np.arange(k)
    total = acc[cs]
    hc = chain_of_term[term]
    mine = np.flatnonzero(hc >= 0)  # the canonical half-edge of every edge
    e_of = he[mine]
    c_of = hc[mine]
    edge_chain = np.empty(m, dtype=np.int32)
    edge_flip = np.empty(m, dtype=bool)
    edge_start = np.empty(m, dtype=np.float64)
    edge_chain[e_of] = c_of
    edge_flip[e_of] = back[mine]
    edge_start[e_of] = pre_of[mine]
    node_junction = np.full(n, -1, dtype=np.int32)
    junction_node = np.flatnonzero(~interior).astype(np.int64)
    node_junction[junction_node] = np.arange(len(junction_node), dtype=np.int32)
    node_chain = np.full(n, -1, dtype=np.int32)
    node_offset = np.zeros(n, dtype=np.float64)
    inner = mine[interior[head[mine]]]
    node_chain[head[inner]] = hc[inner]
    node_offset[head[inner]] = pre_of[inner] + length[he[inner]]
    chain_u = node_junction[a_node[canon]]
    chain_v = node_junction[b_node[canon]]
    indptr, indices, weights = _towards_csr(len(junction_node), chain_u, chain_v, total, one[canon])
    return Junctions(
        node_junction=node_junction,
        junction_node=junction_node,
        chain_u=chain_u,
        chain_v=chain_v,
        chain_length_m=total,
        chain_oneway=one[canon],
        csr_indptr=indptr,
        csr_indices=indices,
        csr_weights=weights,
        edge_chain=edge_chain,
        edge_flip=edge_flip,
        edge_start_m=edge_start,
        node_chain=node_chain,
        node_offset_m=node_offset,
    )


def _towards_csr(
    n: int,
    chain_u: NDArray[np.int32],
    chain_v: NDArray[np.int32],
    length: NDArray[np.float64],
    oneway: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float64]]:
    """CSR arrays of the towards graph: forward u→v is always allowed (towards arc v→u), v→u
    on two-way chains (arc u→v); self-loops dropped, the shortest of parallel arcs kept."""
    u = chain_u.astype(np.int64)
    v = chain_v.astype(np.int64)
    twoway = ~oneway
    rows = np.concatenate([v, u[twoway]])
    cols = np.concatenate([u, v[twoway]])
    data = np.concatenate([length, length[twoway]])
    keep = rows != cols
    rows, cols, data = rows[keep], cols[keep], data[keep]
    order = np.lexsort((data, cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, data = rows[first], cols[first], data[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols.astype(np.int32), data.astype(np.float64)


_TRANSFORMERS: dict[tuple[str, str], Any] = {}


#: Points from which a transformation is split over threads (pyproj releases the GIL and its
#: Transformer is thread-safe: 200,000 points took 22 ms on one thread, 14 ms on two).
_THREADED_FROM: Final = 40_000


def _transform(
    t: Any, a: NDArray[np.float64], b: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    threads = thread_budget() if len(a) >= _THREADED_FROM else 1
    if threads == 1:
        x, y = t.transform(a, b)
        return np.asarray(x, float), np.asarray(y, float)
    cuts = np.linspace(0, len(a), threads + 1).astype(int)
    x = np.empty(len(a))
    y = np.empty(len(a))

    def part(lo: int, hi: int) -> None:
        x[lo:hi], y[lo:hi] = t.transform(a[lo:hi], b[lo:hi])

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(part, cuts[:-1], cuts[1:]):
            pass
    return x, y


def _transformer(src: str, dst: str) -> Any:
    key = (src, dst)
    if key not in _TRANSFORMERS:
        from pyproj import Transformer

        _TRANSFORMERS[key] = Transformer.from_crs(src, dst, always_xy=True)
    return _TRANSFORMERS[key]


def choose_metric_crs(
    lon: NDArray[np.float64], lat: NDArray[np.float64], crs: str | int | None = None
) -> str:
    """The analysis CRS: ``crs`` if given (must be projected, in metres), else the UTM zone of
    the data's centre."""
    if crs is not None:
        from pyproj import CRS

        try:
            c = CRS.from_user_input(crs)
        except Exception as exc:
            raise CRSError(f"unknown CRS {crs!r}: {exc}") from exc
        if not c.is_projected:
            raise CRSError(
                f"analysis CRS {crs!r} is not projected; give a metric CRS such as EPSG:32650"
            )
        epsg = c.to_epsg()
        return f"EPSG:{epsg}" if epsg else c.to_wkt()
    cx = (float(np.nanmin(lon)) + float(np.nanmax(lon))) / 2.0
    cy = (float(np.nanmin(lat)) + float(np.nanmax(lat))) / 2.0
    return f"EPSG:{utm_epsg(cx, cy)}"


# --------------------------------------------------------------------------------------
# Building from raw ways
# --------------------------------------------------------------------------------------


@dataclass
class _RawWays:
    """Ways as flat arrays: node refs, their lon/lat, and per-way attributes."""

    refs: NDArray[np.int64]  # concatenated node refs of all ways
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    way_start: NDArray[np.int64]  # start offset of each way in refs
    way_tags: list[dict[str, str]]
    source: str


def _edges_from_ways(raw: _RawWays, mode: str, crs: str | int | None) -> RoadNetwork:
    keep_way = np.array([way_allowed(t, mode) for t in raw.way_tags], dtype=bool)
    if not keep_way.any():
        raise NetworkError(
            f"{raw.source}: no way is usable for the {mode!r} network (osmnx {mode} filter); "
            "is this an OSM file with highway=* ways?"
        )
    n_refs = len(raw.refs)
    way_end = np.append(raw.way_start[1:], n_refs)
    way_len = way_end - raw.way_start
    way_of_ref = np.repeat(np.arange(len(way_len)), way_len)
    # segment i runs from ref i to ref i+1 within one way
    seg_from = np.arange(n_refs - 1)
    same_way = way_of_ref[:-1] == way_of_ref[1:]
    seg_from = seg_from[same_way & keep_way[way_of_ref[:-1]]]
    seg_way = way_of_ref[seg_from]
    valid = np.isfinite(raw.lon[seg_from]) & np.isfinite(raw.lon[seg_from + 1])
    valid &= raw.refs[seg_from] != raw.refs[seg_from + 1]
    seg_from, seg_way = seg_from[valid], seg_way[valid]
    if len(seg_from) == 0:
        raise NetworkError(f"{raw.source}: the usable ways have no node locations")

    # oneway handling (drive only)
    oneway_way = np.zeros(len(raw.way_tags), dtype=bool)
    reverse_way = np.zeros(len(raw.way_tags), dtype=bool)
    if mode == "drive":
        for i, t in enumerate(raw.way_tags):
            if keep_way[i]:
                ow = t.get("oneway")
                if ow in _ONEWAY_VALUES:
                    oneway_way[i] = True
                    reverse_way[i] = ow in _REVERSED_VALUES
                elif t.get("junction") == "roundabout":
                    oneway_way[i] = True
    a_ref = np.where(reverse_way[seg_way], seg_from + 1, seg_from)
    b_ref = np.where(reverse_way[seg_way], seg_from, seg_from + 1)

    used_refs = np.concatenate([raw.refs[a_ref], raw.refs[b_ref]])
    node_ids, inverse = np.unique(used_refs, return_inverse=True)
    m = len(a_ref)
    edge_u = inverse[:m].astype(np.int32)
    edge_v = inverse[m:].astype(np.int32)
    # one lon/lat per node id (first occurrence)
    first = np.full(len(node_ids), -1, dtype=np.int64)
    all_pos = np.concatenate([a_ref, b_ref])
    first[inverse[::-1]] = all_pos[::-1]
    lon = raw.lon[first]
    lat = raw.lat[first]
    length = geodesic_m(lon[edge_u], lat[edge_u], lon[edge_v], lat[edge_v])

    metric = choose_metric_crs(lon, lat, crs)
    x, y = _transformer("EPSG:4326", metric).transform(lon, lat)

    hw_codes, hw_values = _categorize(
        [raw.way_tags[w].get("highway", "") for w in range(len(raw.way_tags))]
    )
    nm_codes, nm_values = _categorize(
        [raw.way_tags[w].get("name", "") for w in range(len(raw.way_tags))]
    )
    return RoadNetwork(
        crs=metric,
        mode=mode,
        node_id=node_ids.astype(np.int64),
        node_x=np.asarray(x, float),
        node_y=np.asarray(y, float),
        edge_u=edge_u,
        edge_v=edge_v,
        edge_length_m=length,
        edge_oneway=oneway_way[seg_way],
        edge_highway=hw_codes[seg_way].astype(np.int16),
        edge_name=nm_codes[seg_way].astype(np.int32),
        highway_values=hw_values,
        name_values=nm_values,
        source=raw.source,
    )


def _categorize(values: list[str]) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    cats = sorted({v for v in values if v})
    index = {v: i for i, v in enumerate(cats)}
    codes = np.array([index.get(v, -1) for v in values], dtype=np.int32)
    return codes, tuple(cats)


_OSM_SUFFIXES: Final = (".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf", ".xml", ".osm.xml")


def _read_osm_ways(path: Path) -> _RawWays:
    import osmium

    refs: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    starts: list[int] = []
    tags: list[dict[str, str]] = []
    try:
        fp = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for obj in fp:
            if not isinstance(obj, osmium.osm.Way):
                continue
            starts.append(len(refs))
            tags.append({t.k: t.v for t in obj.tags})
            for nd in obj.nodes:
                refs.append(nd.ref)
                loc = nd.location
                if loc.valid():
                    lons.append(loc.lon)
                    lats.append(loc.lat)
                else:
                    lons.append(np.nan)
                    lats.append(np.nan)
    except RuntimeError as exc:
        raise NetworkError(f"cannot read OSM file {path}: {exc}") from exc
    if not starts:
        raise NetworkError(f"OSM file {path} contains no highway=* ways")
    return _RawWays(
        refs=np.array(refs, dtype=np.int64),
        lon=np.array(lons, dtype=float),
        lat=np.array(lats, dtype=float),
        way_start=np.array(starts, dtype=np.int64),
        way_tags=tags,
        source=str(path),
    )


# --------------------------------------------------------------------------------------
# GraphML, streamed (no networkx, no osmnx)
# --------------------------------------------------------------------------------------

_GML_NS: Final = "{http://graphml.graphdrawing.org/xmlns}"


@dataclass
class _GraphMLData:
    """A GraphML file's graph as flat arrays (edges in document order)."""

    directed: bool
    crs: str
    node_key: list[str]
    node_x: NDArray[np.float64]
    node_y: NDArray[np.float64]
    edge_u: NDArray[np.int64]
    edge_v: NDArray[np.int64]
    edge_length: NDArray[np.float64]  # NaN where the edge has no length attribute
    edge_highway: NDArray[np.int64]  # index into highway_values
    edge_name: NDArray[np.int64]  # index into name_values
    geometry: dict[int, str]  # edge index -> WKT
    highway_values: list[str] = field(default_factory=list)
    name_values: list[str] = field(default_factory=list)
    node_int: NDArray[np.int64] | None = None  # node ids as integers, when they all are


def _codes(values: list[str]) -> tuple[NDArray[np.int64], list[str]]:
    """Integer codes of strings (first-seen order) and the distinct strings."""
    index: dict[str, int] = {}
    codes = np.fromiter(
        (index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values)
    )
    return codes, list(index)


def _first_item(text: str) -> str:
    """osmnx writes merged attributes as a Python list literal: keep its first item."""
    if text.startswith("[") and text.endswith("]"):
        import ast

        try:
            value = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            return text
        return _first_str(value)
    return text


def _read_graphml(path: Path) -> _GraphMLData:
    """Read a GraphML file into flat arrays: the fast columnar scanner when the file has the
    regular layout networkx and osmnx write, else ``iterparse``."""
    fast = _read_graphml_fast(path)
    return fast if fast is not None else _read_graphml_iter(path)


def _read_graphml_iter(path: Path) -> _GraphMLData:
    """Stream a GraphML file (``xml.etree.ElementTree.iterparse``) into flat arrays."""
    import xml.etree.ElementTree as ET

    keys: dict[str, str] = {}  # key id -> attribute name
    defaults: dict[str, str] = {}  # key id -> default value text
    graph_attrs: dict[str, str] = {}
    directed = True
    node_index: dict[str, int] = {}
    node_key: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    us: list[int] = []
    vs: list[int] = []
    lens: list[float] = []
    hws: list[str] = []
    names: list[str] = []
    geoms: dict[int, str] = {}
    node_tag, edge_tag, data_tag = _GML_NS + "node", _GML_NS + "edge", _GML_NS + "data"
    key_tag, graph_tag, default_tag = _GML_NS + "key", _GML_NS + "graph", _GML_NS + "default"
    graph_elem = None
    depth_in_item = 0
    pending_edges: list[tuple[str, str]] = []
    nan = float("nan")
    try:
        for event, elem in ET.iterparse(str(path), events=("start", "end")):
            tag = elem.tag
            if event == "start":
                if tag == node_tag or tag == edge_tag:
                    depth_in_item += 1
                elif tag == graph_tag and graph_elem is None:
                    graph_elem = elem
                    directed = elem.get("edgedefault") == "directed"  # as networkx reads it
                continue
            if tag == node_tag:
                depth_in_item -= 1
                attrs = {keys.get(d.get("key", ""), ""): d.text or "" for d in elem.iter(data_tag)}
                nid = elem.get("id", "")
                if nid not in node_index:
                    node_index[nid] = len(node_key)
                    node_key.append(nid)
                    x = attrs.get("x", defaults.get("x"))
                    y = attrs.get("y", defaults.get("y"))
                    xs.append(float(x) if x is not None else nan)
                    ys.append(float(y) if y is not None else nan)
                if graph_elem is not None:
                    graph_elem.clear()
            elif tag == edge_tag:
                depth_in_item -= 1
                attrs = {keys.get(d.get("key", ""), ""): d.text or "" for d in elem.iter(data_tag)}
                pending_edges.append((elem.get("source", ""), elem.get("target", "")))
                length = attrs.get("length", defaults.get("length"))
                lens.append(float(_first_item(length)) if length else nan)
                hws.append(_first_item(attrs.get("highway", defaults.get("highway", ""))))
                names.append(_first_item(attrs.get("name", defaults.get("name", ""))))
                geom = attrs.get("geometry")
                if geom:
                    geoms[len(lens) - 1] = geom
                if graph_elem is not None:
                    graph_elem.clear()
            elif tag == key_tag:
                name = elem.get("attr.name", elem.get("id", ""))
                keys[elem.get("id", "")] = name
                d = elem.find(default_tag)
                if d is not None and d.text is not None:
                    defaults[name] = d.text
            elif tag == data_tag and depth_in_item == 0:
                graph_attrs[keys.get(elem.get("key", ""), "")] = elem.text or ""
    except ET.ParseError as exc:
        raise NetworkError(f"cannot read GraphML file {path}: {exc}") from exc
    except ValueError as exc:
        raise NetworkError(
            f"cannot read GraphML file {path}: a number is malformed ({exc})"
        ) from exc
    for s, t in pending_edges:  # networkx adds nodes an edge names without declaring them
        for nid in (s, t):
            if nid not in node_index:
                node_index[nid] = len(node_key)
                node_key.append(nid)
                xs.append(nan)
                ys.append(nan)
    us = [node_index[s] for s, _ in pending_edges]
    vs = [node_index[t] for _, t in pending_edges]
    hw_codes, hw_values = _codes(hws)
    nm_codes, nm_values = _codes(names)
    return _GraphMLData(
        directed=directed,
        crs=graph_attrs.get("crs", "EPSG:4326"),
        node_key=node_key,
        node_x=np.array(xs, dtype=float),
        node_y=np.array(ys, dtype=float),
        edge_u=np.array(us, dtype=np.int64),
        edge_v=np.array(vs, dtype=np.int64),
        edge_length=np.array(lens, dtype=float),
        edge_highway=hw_codes,
        edge_name=nm_codes,
        geometry=geoms,
        highway_values=hw_values,
        name_values=nm_values,
    )


def _recode(
    codes: NDArray[np.int64], values: list[str]
) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    """First-seen codes → codes into the sorted non-empty values (-1: empty), as
    :func:`_categorize` gives."""
    cats = sorted({v for v in values if v})
    index = {v: i for i, v in enumerate(cats)}
    remap = np.array([index.get(v, -1) for v in values] or [-1], dtype=np.int32)
    return remap[codes], tuple(cats)


class _NotRegular(Exception):
    """The GraphML file is not in the regular layout the columnar scanner reads."""


def _data_rx(keys: dict[tuple[str, str], str], kind: str, key: str) -> Any:
    """The compiled pattern of one attribute's ``<data>`` elements (None if no such key)."""
    import re

    kid = keys.get((kind, key))
    if kid is None:
        return None
    return re.compile(b'<data key="' + re.escape(kid.encode()) + b'">([^<]*)</data>')


class _GraphMLScan:
    """State of the columnar GraphML scan (see :func:`_read_graphml_fast`)."""

    def __init__(self, head: bytes, first: int) -> None:
        import html
        import re

        if b"<![CDATA[" in head:
            raise _NotRegular
        keys: dict[tuple[str, str], str] = {}  # (for, attr.name) -> key id
        for km in re.finditer(rb"<key\b([^>]*?)(?:/>|>(.*?)</key>)", head[:first], re.S):
            attrs = dict(re.findall(rb'([\w.:-]+)="([^"]*)"', km.group(1)))
            kind = attrs.get(b"for", b"")
            if (km.group(2) and b"<default" in km.group(2)) or kind not in (
                b"node",
                b"edge",
                b"graph",
            ):
                raise _NotRegular
            name = attrs.get(b"attr.name", b"").decode()
            keys[(kind.decode(), name)] = attrs.get(b"id", b"").decode()
        gm = re.search(rb"<graph(\s[^>]*)?>", head[:first])
        if gm is None or len(re.findall(rb"<graph[\s>]", head)) != 1:
            raise _NotRegular
        self.directed = b'edgedefault="directed"' in (gm.group(1) or b"")  # else undirected
        graph_data = re.findall(rb'<data key="([^"]*)">([^<]*)</data>', head[gm.end() : first])
        graph_attrs = {k.decode(): html.unescape(v.decode()) for k, v in graph_data}
        self.crs = graph_attrs.get(keys.get(("graph", "crs"), "\0"), "EPSG:4326")
        self.rx_x, self.rx_y = _data_rx(keys, "node", "x"), _data_rx(keys, "node", "y")
        self.rx_len = _data_rx(keys, "edge", "length")
        self.rx_geom = _data_rx(keys, "edge", "geometry")
        self.rx_text = [_data_rx(keys, "edge", "highway"), _data_rx(keys, "edge", "name")]
        if self.rx_x is None or self.rx_y is None:
            raise _NotRegular
        self.node_re = re.compile(rb'<node id="([^"]*)"\s*(/?)>')
        self.edge_re = re.compile(rb'<edge source="([^"]*)" target="([^"]*)"[^>]*?(/?)>')
        self.edge_start = re.compile(rb"<edge ")
        self.ids: list[bytes] = []
        self.xs: list[NDArray[np.float64]] = []
        self.ys: list[NDArray[np.float64]] = []
        self.src: list[bytes] = []
        self.dst: list[bytes] = []
        self.lens: list[NDArray[np.float64]] = []
        self.text_pos: list[list[NDArray[np.int64]]] = [[], []]
        self.text_val: list[list[bytes]] = [[], []]
        self.geoms: dict[int, str] = {}

    def nodes(self, part: bytes) -> None:
        """Node ids, then x and y, which must be one per node."""
        found = self.node_re.findall(part)
        if len(found) != part.count(b"<node") or any(sc for _, sc in found):
            raise _NotRegular
        if not found:
            return
        px, py = self.rx_x.findall(part), self.rx_y.findall(part)
        if len(px) != len(found) or len(py) != len(found):
            raise _NotRegular
        self.ids += [i for i, _ in found]
        self.xs.append(np.array(px).astype(float))
        self.ys.append(np.array(py).astype(float))

    def edges(self, part: bytes) -> None:
        """Edge ends; length, highway, name and geometry located by their offsets."""
        import html

        before = len(self.src)
        found = self.edge_re.findall(part)
        if len(found) != part.count(b"<edge"):
            raise _NotRegular
        if not found:
            return
        self.src += [a for a, _, _ in found]
        self.dst += [b for _, b, _ in found]
        it = (m.start() for m in self.edge_start.finditer(part))
        starts = np.fromiter(it, dtype=np.int64, count=len(found))
        length = np.full(len(found), np.nan)
        if self.rx_len is not None:
            pos, val = _positions(self.rx_len, part)
            length[np.searchsorted(starts, pos, side="right") - 1] = np.array(val).astype(float)
        self.lens.append(length)
        for k, r in enumerate(self.rx_text):
            if r is not None:
                pos, val = _positions(r, part)
                self.text_pos[k].append(np.searchsorted(starts, pos, side="right") - 1 + before)
                self.text_val[k] += val
        if self.rx_geom is not None:
            pos, val = _positions(self.rx_geom, part)
            owner = np.searchsorted(starts, pos, side="right") - 1 + before
            for o, v in zip(owner.tolist(), val, strict=True):
                self.geoms[o] = html.unescape(v.decode())

    def ends(
        self,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64] | None, list[str]]:
        """Edge ends as node indices, integer node ids (if all are) and the text ids."""
        import html

        if not self.ids:
            raise _NotRegular
        try:
            node_int: NDArray[np.int64] | None = np.array(self.ids).astype(np.int64)
        except (ValueError, OverflowError):
            node_int = None
        if node_int is None:
            index = {k: i for i, k in enumerate(self.ids)}
            if len(index) != len(self.ids):
                raise _NotRegular
            try:
                eu = np.array([index[a] for a in self.src], dtype=np.int64)
                ev = np.array([index[b] for b in self.dst], dtype=np.int64)
            except KeyError:
                raise _NotRegular from None
            return eu, ev, None, [html.unescape(i.decode()) for i in self.ids]
        order = np.argsort(node_int, kind="stable")
        sorted_ids = node_int[order]
        if (np.diff(sorted_ids) == 0).any():
            raise _NotRegular
        su = np.array(self.src).astype(np.int64) if self.src else np.zeros(0, np.int64)
        sv = np.array(self.dst).astype(np.int64) if self.dst else np.zeros(0, np.int64)
        iu = np.minimum(np.searchsorted(sorted_ids, su), len(sorted_ids) - 1)
        iv = np.minimum(np.searchsorted(sorted_ids, sv), len(sorted_ids) - 1)
        if (sorted_ids[iu] != su).any() or (sorted_ids[iv] != sv).any():
            raise _NotRegular  # an edge names an undeclared node: iterparse reports it
        return order[iu], order[iv], node_int, []

    def coded(self, k: int) -> tuple[NDArray[np.int64], list[str]]:
        """Codes (0: missing) and values of the k-th text attribute (highway, name)."""
        import html

        codes = np.zeros(len(self.src), dtype=np.int64)
        values = [""]
        val = self.text_val[k]
        if val:
            uniq: dict[bytes, int] = {}
            it = (uniq.setdefault(v, len(uniq)) for v in val)
            c = np.fromiter(it, dtype=np.int64, count=len(val))
            values += [_first_item(html.unescape(v.decode())) for v in uniq]
            codes[np.concatenate(self.text_pos[k])] = c + 1
        return codes, values


def _chunks(fh: Any, buf: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """The rest of a file in large pieces that end just after a ``</node>`` or ``</edge>``."""
    eof = False
    while not eof:
        more = fh.read(chunk_bytes)
        eof = not more
        buf += more
        cut = len(buf) if eof else max(buf.rfind(b"</node>"), buf.rfind(b"</edge>")) + 7
        if cut >= 7:
            yield buf[:cut]
            buf = buf[cut:]


def _read_graphml_fast(path: Path, chunk_bytes: int = 64 << 20) -> _GraphMLData | None:
    """Columnar scan of a regular GraphML file (what networkx and osmnx write): regular
    expressions over large byte chunks collect every node id, edge end and data value in C,
    and numpy converts them. Returns None when the file has another layout (the caller then
    uses ``iterparse``), so the result is always the same."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise NetworkError(f"cannot read GraphML file {path}: {exc}") from exc
    try:
        with fh:
            head = fh.read(1 << 20)
            firsts = [i for i in (head.find(b"<node"), head.find(b"<edge")) if i >= 0]
            if not firsts:
                return None
            scan = _GraphMLScan(head, min(firsts))
            for part in _chunks(fh, head[min(firsts) :], chunk_bytes):
                scan.nodes(part)
                scan.edges(part)
        eu, ev, node_int, node_key = scan.ends()
        hw_codes, hw_values = scan.coded(0)
        nm_codes, nm_values = scan.coded(1)
    except (_NotRegular, ValueError):
        return None
    return _GraphMLData(
        directed=scan.directed,
        crs=scan.crs,
        node_key=node_key,
        node_x=np.concatenate(scan.xs),
        node_y=np.concatenate(scan.ys),
        edge_u=eu,
        edge_v=ev,
        edge_length=np.concatenate(scan.lens) if scan.lens else np.zeros(0),
        edge_highway=hw_codes,
        edge_name=nm_codes,
        geometry=scan.geoms,
        highway_values=hw_values,
        name_values=nm_values,
        node_int=node_int,
    )


def _positions(rx: Any, part: bytes) -> tuple[NDArray[np.int64], list[bytes]]:
    """Start offsets and captured values of every match of ``rx`` in ``part``."""
    pos: list[int] = []
    val: list[bytes] = []
    for mt in rx.finditer(part):
        pos.append(mt.start())
        val.append(mt.group(1))
    return np.array(pos, dtype=np.int64), val


def _parse_linestrings(
    wkts: list[str],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """x, y and the vertex count of WKT LINESTRINGs (one string split, no shapely)."""
    inner = [w[w.index("(") + 1 : w.rindex(")")] for w in wkts]
    counts = np.array([s.count(",") + 1 for s in inner], dtype=np.int64)
    flat = np.array(" ".join(inner).replace(",", " ").split(), dtype=float)
    if len(flat) != 2 * counts.sum():
        raise NetworkError("GraphML geometry: only 2-D LINESTRING values are supported")
    return flat[0::2], flat[1::2], counts


def from_graphml(
    path: str | Path,
    *,
    mode: str = "walk",
    crs: str | int | None = None,
    data: _GraphMLData | None = None,
) -> RoadNetwork:
    """Build a network from a GraphML file without networkx (same result as
    ``from_networkx(osmnx.load_graphml(path))``).

    The file is streamed (``iterparse``) straight into arrays. osmnx attributes are honoured:
    node ``x``/``y`` in the graph's ``crs`` (default EPSG:4326), edge ``length`` (metres, kept
    as given), ``geometry`` (WKT LINESTRING, split at its vertices, the length shared out in
    proportion to the projected pieces), ``highway`` and ``name`` (first item of osmnx's
    merged lists). Plain networkx GraphML with typed attributes and non-integer node ids works
    too. In ``drive`` mode an edge of a directed graph without its reverse is one-way; in
    ``walk``/``bike`` mode the two directions of a street are stored once.

    Raises
    ------
    NetworkError
        If the file is malformed, nodes lack ``x``/``y`` or there are no edges.
    """
    p = Path(path)
    g = data or _read_graphml(p)
    source = str(p)
    if len(g.edge_u) == 0:
        raise NetworkError(f"{source}: the graph has no edges")
    if np.isnan(g.node_x).any() or np.isnan(g.node_y).any():
        raise NetworkError(f"{source}: every node needs 'x' and 'y' attributes")
    n = len(g.node_key) if g.node_int is None else len(g.node_int)
    if g.node_int is not None:
        node_keys = g.node_int
    else:
        try:
            node_keys = np.array([int(k) for k in g.node_key], dtype=np.int64)
        except ValueError:
            node_keys = np.arange(n, dtype=np.int64)
    graph_crs = str(g.crs)
    to_lonlat = (
        _transformer(graph_crs, "EPSG:4326")
        if graph_crs.upper() not in ("EPSG:4326", "WGS84")
        else None
    )
    lon, lat = to_lonlat.transform(g.node_x, g.node_y) if to_lonlat else (g.node_x, g.node_y)
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    metric = choose_metric_crs(lon, lat, crs)
    to_metric = _transformer("EPSG:4326", metric)
    nx_, ny_ = to_metric.transform(lon, lat)
    node_x, node_y = np.asarray(nx_, float), np.asarray(ny_, float)

    # edges in networkx's iteration order: by source node, then by first appearance of the
    # (source, target) pair among that node's edges, then file order
    u, v = g.edge_u, g.edge_v
    m = len(u)
    pair = u * n + v
    _, first_pos, pair_id = np.unique(pair, return_index=True, return_inverse=True)
    order = np.lexsort((np.arange(m), first_pos[pair_id], u))
    u, v = u[order], v[order]
    length = g.edge_length[order]
    hw_codes, hw_values = _recode(g.edge_highway[order], g.highway_values)
    nm_codes, nm_values = _recode(g.edge_name[order], g.name_values)
    geom_rows = np.flatnonzero(
        np.isin(order, np.fromiter(g.geometry, dtype=np.int64, count=len(g.geometry)))
    )
    wkts = [g.geometry[int(order[r])] for r in geom_rows]
    gx, gy, gcount = (
        _parse_linestrings(wkts) if wkts else (np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    )
    gstart = np.cumsum(gcount) - gcount
    # geometry length in the file's CRS (osmnx/shapely ``geometry.length``): the duplicate key
    geom_len = np.full(m, np.nan)
    if len(gx):
        seg = np.hypot(np.diff(gx), np.diff(gy))
        within = np.ones(len(seg) + 1, dtype=bool)
        within[(gstart + gcount - 1)] = False  # no segment across geometries
        seg = np.append(np.where(within[:-1], seg, 0.0), 0.0)
        geom_len[geom_rows] = np.round(np.add.reduceat(seg, gstart), 9)

    directed = g.directed and mode == "drive"
    keep = np.ones(m, dtype=bool)
    if not directed:
        a, b = np.minimum(u, v), np.maximum(u, v)
        gk = np.where(np.isnan(geom_len), -1.0, geom_len)
        key = np.rec.fromarrays([a, b, gk])
        _, first = np.unique(key, return_index=True)
        keep[:] = False
        keep[first] = True
    if directed:
        fwd = u * n + v
        oneway = ~np.isin(v * n + u, fwd)
    else:
        oneway = np.zeros(m, dtype=bool)

    # curved edges: interior geometry vertices become nodes (ids -1, -2, ... in edge order)
    n_int = np.zeros(m, dtype=np.int64)
    curved_rows = geom_rows[gcount > 2]
    cstart, ccount = gstart[gcount > 2], gcount[gcount > 2]
    n_int[curved_rows] = ccount - 2
    n_int[~keep] = 0
    kept_curved = keep[curved_rows]
    curved_rows, cstart, ccount = curved_rows[kept_curved], cstart[kept_curved], ccount[kept_curved]
    # coordinates of the curved geometries, projected and oriented from u to v
    loc_start = np.cumsum(ccount) - ccount
    take = np.repeat(cstart - loc_start, ccount) + np.arange(int(ccount.sum()))
    if len(take):
        clon, clat = to_lonlat.transform(gx[take], gy[take]) if to_lonlat else (gx[take], gy[take])
        cx, cy = to_metric.transform(np.asarray(clon, float), np.asarray(clat, float))
        cx, cy = np.asarray(cx, float), np.asarray(cy, float)
    else:
        cx = cy = np.zeros(0)
    first_i, last_i = loc_start, loc_start + ccount - 1
    uu = u[curved_rows]
    flip = np.hypot(cx[first_i] - node_x[uu], cy[first_i] - node_y[uu]) > np.hypot(
        cx[last_i] - node_x[uu], cy[last_i] - node_y[uu]
    )
    # piece table: per kept edge, n_int + 1 pieces
    rows = np.flatnonzero(keep)
    pieces = n_int[rows] + 1
    e_of = np.repeat(rows, pieces)
    k_in = np.arange(len(e_of)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    # new vertex numbering follows the edge order
    new_count = n_int[rows]
    new_base = n + np.cumsum(new_count) - new_count  # first new vertex per kept row
    base_of_row = np.zeros(m, dtype=np.int64)
    base_of_row[rows] = new_base
    cnt_of_row = n_int
    start_node = np.where(k_in == 0, u[e_of], base_of_row[e_of] + k_in - 1)
    end_node = np.where(k_in == cnt_of_row[e_of], v[e_of], base_of_row[e_of] + k_in)
    # coordinates of the new vertices
    n_new = int(new_count.sum())
    all_x = np.concatenate([node_x, np.zeros(n_new)])
    all_y = np.concatenate([node_y, np.zeros(n_new)])
    if n_new:
        pos_in_curved = np.full(m, -1, dtype=np.int64)
        pos_in_curved[curved_rows] = np.arange(len(curved_rows))
        cr = np.repeat(np.arange(len(curved_rows)), ccount - 2)
        j = np.arange(len(cr)) - np.repeat(np.cumsum(ccount - 2) - (ccount - 2), ccount - 2)
        src_i = np.where(flip[cr], last_i[cr] - 1 - j, first_i[cr] + 1 + j)
        tgt = base_of_row[curved_rows][cr] + j
        all_x[tgt] = cx[src_i]
        all_y[tgt] = cy[src_i]
    piece_len = np.hypot(all_x[end_node] - all_x[start_node], all_y[end_node] - all_y[start_node])
    total_proj = np.bincount(
        np.repeat(np.arange(len(rows)), pieces), weights=piece_len, minlength=len(rows)
    )
    given = length[rows]
    total = np.where(np.isnan(given), total_proj, given)
    row_of_piece = np.repeat(np.arange(len(rows)), pieces)
    share = np.where(
        total_proj[row_of_piece] > 0,
        piece_len / np.where(total_proj > 0, total_proj, 1.0)[row_of_piece],
        1.0 / pieces[row_of_piece],
    )
    piece_length = np.where(
        pieces[row_of_piece] == 1, total[row_of_piece], total[row_of_piece] * share
    )
    ok = start_node != end_node
    node_id = np.concatenate([node_keys, -np.arange(1, n_new + 1, dtype=np.int64)])
    return RoadNetwork(
        crs=metric,
        mode=mode,
        node_id=node_id,
        node_x=all_x,
        node_y=all_y,
        edge_u=start_node[ok].astype(np.int32),
        edge_v=end_node[ok].astype(np.int32),
        edge_length_m=piece_length[ok],
        edge_oneway=oneway[e_of][ok],
        edge_highway=hw_codes[e_of][ok].astype(np.int16),
        edge_name=nm_codes[e_of][ok].astype(np.int32),
        highway_values=hw_values,
        name_values=nm_values,
        source=source,
    )


def load_networks(
    path: str | Path,
    modes: Iterable[str] = ("walk",),
    *,
    crs: str | int | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, RoadNetwork]:
    """Load one network per mode from a file, parsing it once.

    Parameters
    ----------
    path : str or Path
        ``.osm``, ``.osm.bz2``, ``.osm.gz``, ``.osm.pbf`` or ``.graphml``.
    modes : iterable of {"walk", "bike", "drive"}
    crs : str or int, optional
        Metric CRS for the analysis; default: the UTM zone of the data's centre.
    cache_dir : str or Path, optional
        If given, networks are cached there as ``.npz`` files keyed by the file's path, size,
        modification time, mode and CRS, and later calls reload them in well under a second.

    Returns
    -------
    dict
        ``{mode: RoadNetwork}``.

    Raises
    ------
    NetworkError
        If the file is missing, unreadable, of an unknown type, or has no usable ways.
    """
    p = Path(path)
    modes = list(dict.fromkeys(modes))
    for m in modes:
        if m not in MODES:
            raise NetworkError(f"mode {m!r} is not one of {', '.join(MODES)}")
    if not p.exists():
        raise NetworkError(f"network file {p} does not exist")
    out: dict[str, RoadNetwork] = {}
    cache_names: dict[str, str] = {}
    if cache_dir is not None:
        st = p.stat()
        for m in modes:
            key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{m}|{crs}|{CACHE_VERSION}"
            digest = hashlib.sha1(key.encode()).hexdigest()[:16]
            cache_names[m] = f"{p.name}.{m}.{digest}.npz"
            cached = _load_cached(_cache_dirs(cache_dir), cache_names[m])
            if cached is not None:
                out[m] = cached
    missing = [m for m in modes if m not in out]
    if missing:
        t0 = time.perf_counter()
        name = p.name.lower()
        if name.endswith(".graphml"):
            data = _read_graphml(p)
            for m in missing:
                out[m] = from_graphml(p, mode=m, crs=crs, data=data)
        elif name.endswith(_OSM_SUFFIXES):
            raw = _read_osm_ways(p)
            for m in missing:
                out[m] = _edges_from_ways(raw, m, crs)
        else:
            raise NetworkError(
                f"network file {p}: unknown type; use .osm, .osm.bz2, .osm.pbf or .graphml"
            )
        logger.info("parsed %s (%s) in %.2f s", p, ", ".join(missing), time.perf_counter() - t0)
        for m in missing:
            if m in cache_names:
                _save_cached(out[m], _cache_dirs(cache_dir), cache_names[m])
    for m in modes:
        s = out[m].summary()
        logger.info(
            "%s network: %d nodes, %d edges, %.1f km, %d component(s), %d node(s) outside the "
            "largest",
            m,
            s["nodes"],
            s["edges"],
            s["length_km"],
            s["components"],
            s["nodes_outside_largest_component"],
        )
    return {m: out[m] for m in modes}


def load_network(path: str | Path, mode: str = "walk", **kwargs: Any) -> RoadNetwork:
    """Load one network; see :func:`load_networks` for the parameters."""
    return load_networks(path, [mode], **kwargs)[mode]


def from_networkx(
    graph: nx.Graph | nx.MultiDiGraph,
    *,
    mode: str = "walk",
    crs: str | int | None = None,
    source: str = "networkx graph",
    length_attr: str = "length",
) -> RoadNetwork:
    """Build a network from a networkx graph (osmnx graphs included).

    Node attributes ``x``/``y`` are read in the graph's ``crs`` attribute (default EPSG:4326,
    lon/lat). Edge ``length`` (metres) is used when present, else the straight or great-circle
    length of the geometry. An edge's shapely ``geometry`` (a LineString) is split at its
    vertices, the length shared out in proportion to the projected piece lengths. In ``drive``
    mode a directed graph's edges keep their direction (an edge without its reverse is one-way);
    in ``walk``/``bike`` mode every edge is two-way.

    Raises
    ------
    NetworkError
        If nodes lack ``x``/``y`` or the graph has no edges.
    """
    if graph.number_of_edges() == 0:
        raise NetworkError(f"{source}: the graph has no edges")
    graph_crs = graph.graph.get("crs", "EPSG:4326")
    nodes = list(graph.nodes)
    try:
        gx = np.array([graph.nodes[n]["x"] for n in nodes], dtype=float)
        gy = np.array([graph.nodes[n]["y"] for n in nodes], dtype=float)
    except KeyError:
        raise NetworkError(f"{source}: every node needs 'x' and 'y' attributes") from None
    index = {n: i for i, n in enumerate(nodes)}
    if all(isinstance(n, int | np.integer) for n in nodes):
        node_keys = np.array(nodes, dtype=np.int64)
    else:
        node_keys = np.arange(len(nodes), dtype=np.int64)

    to_lonlat = (
        _transformer(str(graph_crs), "EPSG:4326")
        if str(graph_crs).upper() not in ("EPSG:4326", "WGS84")
        else None
    )
    lon, lat = to_lonlat.transform(gx, gy) if to_lonlat else (gx, gy)
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    metric = choose_metric_crs(lon, lat, crs)
    nx_, ny_ = _transformer("EPSG:4326", metric).transform(lon, lat)
    node_x = list(np.asarray(nx_, float))
    node_y = list(np.asarray(ny_, float))
    node_id = list(node_keys)

    directed = graph.is_directed() and mode == "drive"
    edges = (
        graph.edges(keys=True, data=True)
        if graph.is_multigraph()
        else ((u, v, 0, d) for u, v, d in graph.edges(data=True))
    )
    us: list[int] = []
    vs: list[int] = []
    lens: list[float] = []
    oneway: list[bool] = []
    hw: list[str] = []
    names: list[str] = []
    seen_undirected: set[tuple[int, int, Any]] = set()
    next_virtual = -1
    for u, v, _k, d in edges:
        iu, iv = index[u], index[v]
        if not directed:
            # undirected modes: osmnx stores two-way streets twice (u,v) and (v,u); keep one
            ukey = (min(iu, iv), max(iu, iv), _geom_key(d))
            if ukey in seen_undirected:
                continue
            seen_undirected.add(ukey)
        is_oneway = bool(directed and not graph.has_edge(v, u))
        geom = d.get("geometry")
        chain = [iu]
        if geom is not None and len(geom.coords) > 2:
            coords = np.asarray(geom.coords, dtype=float)
            if to_lonlat is not None:
                clon, clat = to_lonlat.transform(coords[:, 0], coords[:, 1])
            else:
                clon, clat = coords[:, 0], coords[:, 1]
            mx, my = _transformer("EPSG:4326", metric).transform(np.asarray(clon), np.asarray(clat))
            # orient the geometry from u to v
            if np.hypot(mx[0] - node_x[iu], my[0] - node_y[iu]) > np.hypot(
                mx[-1] - node_x[iu], my[-1] - node_y[iu]
            ):
                mx, my = mx[::-1], my[::-1]
            for px, py in zip(mx[1:-1], my[1:-1], strict=True):
                node_x.append(float(px))
                node_y.append(float(py))
                node_id.append(next_virtual)
                next_virtual -= 1
                chain.append(len(node_x) - 1)
        chain.append(iv)
        hw_value = _first_str(d.get("highway"))
        name_value = _first_str(d.get("name"))
        if len(chain) == 2:  # a straight edge: the common case, no numpy per edge
            total = d.get(length_attr)
            if total is None:
                total = math.hypot(node_x[iv] - node_x[iu], node_y[iv] - node_y[iu])
            us.append(iu)
            vs.append(iv)
            lens.append(float(total))
            oneway.append(is_oneway)
            hw.append(hw_value)
            names.append(name_value)
            continue
        cx = np.array([node_x[i] for i in chain])
        cy = np.array([node_y[i] for i in chain])
        piece = np.hypot(np.diff(cx), np.diff(cy))
        # without a length attribute, the projected length of the geometry
        total = float(d.get(length_attr, piece.sum()))
        share = piece / piece.sum() if piece.sum() > 0 else np.full(len(piece), 1.0 / len(piece))
        for a, b, s in zip(chain[:-1], chain[1:], share, strict=True):
            us.append(a)
            vs.append(b)
            lens.append(total * float(s))
            oneway.append(is_oneway)
            hw.append(hw_value)
            names.append(name_value)
    hw_codes, hw_values = _categorize(hw)
    nm_codes, nm_values = _categorize(names)
    keep = np.array(us) != np.array(vs)
    return RoadNetwork(
        crs=metric,
        mode=mode,
        node_id=np.array(node_id, dtype=np.int64),
        node_x=np.array(node_x, dtype=float),
        node_y=np.array(node_y, dtype=float),
        edge_u=np.array(us, dtype=np.int32)[keep],
        edge_v=np.array(vs, dtype=np.int32)[keep],
        edge_length_m=np.array(lens, dtype=float)[keep],
        edge_oneway=np.array(oneway, dtype=bool)[keep],
        edge_highway=hw_codes[keep].astype(np.int16),
        edge_name=nm_codes[keep].astype(np.int32),
        highway_values=hw_values,
        name_values=nm_values,
        source=source,
    )


def _geom_key(d: Mapping[str, Any]) -> Any:
    g = d.get("geometry")
    return None if g is None else round(float(g.length), 9)


def _first_str(v: Any) -> str:
    if isinstance(v, list | tuple):
        v = v[0] if v else ""
    return "" if v is None else str(v)


def from_arrays(
    node_x: NDArray[np.float64],
    node_y: NDArray[np.float64],
    edge_u: NDArray[np.integer[Any]],
    edge_v: NDArray[np.integer[Any]],
    *,
    crs: str,
    mode: str = "walk",
    edge_length_m: NDArray[np.float64] | None = None,
    edge_oneway: NDArray[np.bool_] | None = None,
    node_id: NDArray[np.int64] | None = None,
    source: str = "arrays",
) -> RoadNetwork:
    """Build a network from projected arrays (benchmarks, synthetic grids, tests).

    ``edge_length_m`` defaults to the straight-line length of each edge.
    """
    x = np.asarray(node_x, dtype=float)
    y = np.asarray(node_y, dtype=float)
    u = np.asarray(edge_u, dtype=np.int32)
    v = np.asarray(edge_v, dtype=np.int32)
    length = (
        np.hypot(x[v] - x[u], y[v] - y[u])
        if edge_length_m is None
        else np.asarray(edge_length_m, dtype=float)
    )
    e = len(u)
    return RoadNetwork(
        crs=crs,
        mode=mode,
        node_id=np.arange(len(x), dtype=np.int64)
        if node_id is None
        else np.asarray(node_id, np.int64),
        node_x=x,
        node_y=y,
        edge_u=u,
        edge_v=v,
        edge_length_m=length,
        edge_oneway=(
            np.zeros(e, bool)
            if edge_oneway is None or mode != "drive"
            else np.asarray(edge_oneway, bool)
        ),
        edge_highway=np.full(e, -1, np.int16),
        edge_name=np.full(e, -1, np.int32),
        source=source,
    )


def from_place(query: str, *, mode: str = "walk", crs: str | int | None = None) -> RoadNetwork:
    """Download a network by place name through osmnx (needs the internet)."""
    import osmnx as ox

    network_type = {"walk": "walk", "bike": "bike", "drive": "drive"}[mode]
    g = ox.graph_from_place(query, network_type=network_type, simplify=True, retain_all=True)
    return from_networkx(g, mode=mode, crs=crs, source=f"OSM via osmnx: {query}")


def from_polygon(polygon: Any, *, mode: str = "walk", crs: str | int | None = None) -> RoadNetwork:
    """Download a network inside a WGS84 shapely polygon through osmnx (needs the internet)."""
    import osmnx as ox

    g = ox.graph_from_polygon(polygon, network_type=mode, simplify=True, retain_all=True)
    return from_networkx(g, mode=mode, crs=crs, source="OSM via osmnx: polygon")
