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
- osmnx GraphML (``.graphml``), used as-is (its ``length`` in metres is the edge length).
- a networkx graph in Python (:func:`from_networkx`).
- online by place name or polygon through osmnx (:func:`from_place`, :func:`from_polygon`; needs
  the internet, never used in tests).

Edge lengths of OSM data are great-circle lengths (the same haversine formula, earth radius
6,371,009 m, that osmnx uses), so distances agree with osmnx graphs of the same data.

Modes
-----
``walk`` and ``bike`` are undirected. ``drive`` is directed: ``oneway=yes|true|1`` edges run in
the way's direction, ``oneway=-1|reverse`` against it, and roundabouts are one-way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from lifecircle.config import MODES
from lifecircle.coords import utm_epsg
from lifecircle.errors import CRSError, NetworkError

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

logger = logging.getLogger(__name__)

EARTH_RADIUS_M: Final = 6_371_009.0
CACHE_VERSION: Final = 2

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
    """Great-circle distance in metres (osmnx's formula and earth radius)."""
    y1, y2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dy = y2 - y1
    dx = np.deg2rad(lon2 - lon1)
    h = np.sin(dy / 2) ** 2 + np.cos(y1) * np.cos(y2) * np.sin(dx / 2) ** 2
    h = np.minimum(1.0, h)
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))


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

        t = _transformer(self.crs, "EPSG:4326")
        lon, lat = t.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def from_lonlat(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """WGS84 lon/lat → metric x/y in :attr:`crs`."""
        t = _transformer("EPSG:4326", self.crs)
        x, y = t.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

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
        """Write the network to a compressed-free ``.npz`` cache file (fast to reload)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
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
            )
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> RoadNetwork:
        """Read a network written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != CACHE_VERSION:
                    raise NetworkError(f"cache file {path} has an old format; delete it")
                return cls(
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
        except (OSError, KeyError, ValueError) as exc:
            raise NetworkError(f"cannot read network cache {path}: {exc}") from exc


_TRANSFORMERS: dict[tuple[str, str], Any] = {}


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
    length = haversine_m(lon[edge_u], lat[edge_u], lon[edge_v], lat[edge_v])

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
    cache_paths: dict[str, Path] = {}
    if cache_dir is not None:
        st = p.stat()
        for m in modes:
            key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{m}|{crs}|{CACHE_VERSION}"
            digest = hashlib.sha1(key.encode()).hexdigest()[:16]
            cache_paths[m] = Path(cache_dir) / f"{p.name}.{m}.{digest}.npz"
            if cache_paths[m].exists():
                t0 = time.perf_counter()
                out[m] = RoadNetwork.load(cache_paths[m])
                logger.info(
                    "loaded %s network from cache %s in %.2f s",
                    m,
                    cache_paths[m],
                    time.perf_counter() - t0,
                )
    missing = [m for m in modes if m not in out]
    if missing:
        t0 = time.perf_counter()
        name = p.name.lower()
        if name.endswith(".graphml"):
            import osmnx as ox

            try:
                g = ox.load_graphml(p)
            except Exception as exc:
                raise NetworkError(f"cannot read GraphML file {p}: {exc}") from exc
            for m in missing:
                out[m] = from_networkx(g, mode=m, crs=crs, source=str(p))
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
            if m in cache_paths:
                out[m].save(cache_paths[m])
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
