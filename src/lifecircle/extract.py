"""Cutting large OSM extracts down to regions: one streaming pass, many regions at once.

A province or country ``.osm.pbf`` is far larger than one county's streets. :func:`extract_regions`
reads it once with pyosmium and keeps, for every region, each way of the requested modes (osmnx's
``walk``/``bike``/``drive`` filters, :func:`lifecircle.network.way_allowed`) that **intersects the
region's boundary buffered by** ``buffer_m`` metres. Kept ways are whole (complete node lists, also
the nodes outside the buffer), so a street that leaves the area is not cut in the middle. Each
region's ways are written to a small ``.osm.pbf`` that :func:`lifecircle.network.load_networks`
reads like any other file; the rule is the same as cutting the file beforehand, so distances are
the same.

Memory: ways are tested in chunks of ``chunk_ways`` and only the kept ones are held, so memory is
bounded by the clipped area plus the node-location index. The index (pyosmium's ``idx``) is
``flex_mem`` by default (about 16 bytes per node of the file, in memory); for country-sized files
pass ``node_index="sparse_file_array"`` to keep it in a temporary file on disk instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray

from lifecircle.config import MODES
from lifecircle.coords import normalize_crs_name, to_wgs84, utm_epsg
from lifecircle.errors import InputError, NetworkError
from lifecircle.network import way_allowed

logger = logging.getLogger(__name__)

#: Default buffer around a clip boundary in metres (facilities just across the border still count).
DEFAULT_CLIP_BUFFER_M: Final = 2000.0
EXTRACT_VERSION: Final = 1


def buffer_geometry_m(geom: Any, distance_m: float) -> Any:
    """Buffer a WGS84 geometry by ``distance_m`` metres (in the UTM zone of its centre).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = buffer_geometry_m(box(118.30, 34.60, 118.31, 34.61), 1000.0)
    >>> round(g.bounds[0], 3), round(g.bounds[2], 3)
    (118.289, 118.321)
    """
    from pyproj import Transformer

    if distance_m < 0:
        raise InputError(f"the clip buffer must be >= 0 m, got {distance_m}")
    if distance_m == 0:
        return geom
    c = geom.centroid
    epsg = utm_epsg(c.x, c.y)
    fwd = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    back = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    metric = shapely.transform(geom, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    buffered = shapely.buffer(metric, distance_m, quad_segs=16)
    return shapely.transform(
        buffered, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1]))
    )


def read_clip(path: str | Path, *, crs: str = "wgs84") -> Any:
    """Read a boundary polygon file (GeoJSON, GPKG, Shapefile) as one WGS84 geometry.

    ``crs`` declares coordinates that no EPSG code carries (``gcj02``, ``bd09``); a file with its
    own CRS is reprojected from it.
    """
    import geopandas as gpd

    p = Path(path)
    if not p.exists():
        raise InputError(f"clip boundary file {p} does not exist; give a polygon file for --clip")
    try:
        gdf = gpd.read_file(p)
    except Exception as exc:
        raise InputError(f"cannot read clip boundary file {p}: {exc}") from exc
    if len(gdf) == 0:
        raise InputError(f"clip boundary file {p} has no features")
    if gdf.crs is not None and gdf.crs.to_epsg() not in (4326, 4490):
        gdf = gdf.to_crs(4326)
    geoms = np.asarray(gdf.geometry.values)
    polys = shapely.get_type_id(geoms)
    if not np.isin(polys, (3, 6)).all():
        raise InputError(f"clip boundary file {p}: every feature must be a Polygon or MultiPolygon")
    return to_wgs84_geometry(shapely.union_all(geoms), crs)


def to_wgs84_geometry(geom: Any, crs: str) -> Any:
    """A geometry in WGS84 from one in ``wgs84``/``cgcs2000``/``gcj02``/``bd09`` degrees."""
    name = normalize_crs_name(crs)
    if name in ("gcj02", "bd09"):
        return shapely.transform(
            geom, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], name))
        )
    if name not in ("wgs84", "cgcs2000"):
        raise InputError(
            f"clip CRS {crs!r}: give a file that carries its CRS, or one of wgs84, cgcs2000, "
            "gcj02, bd09"
        )
    return geom


@dataclass
class _Kept:
    """Kept ways as Python lists (only ways that intersect some region)."""

    way_id: list[int]
    refs: list[NDArray[np.int64]]
    lon: list[NDArray[np.float64]]
    lat: list[NDArray[np.float64]]
    tags: list[dict[str, str]]


@dataclass(frozen=True)
class ExtractStats:
    """What one pass read and kept.

    Attributes
    ----------
    ways_read : int
        Ways with a ``highway`` tag in the file.
    ways_tested : int
        Of those, ways of the requested modes with at least two located nodes.
    ways_kept : dict
        ``{region_id: ways}``.
    nodes_kept : dict
        ``{region_id: nodes}``.
    seconds : float
    """

    ways_read: int
    ways_tested: int
    ways_kept: dict[str, int]
    nodes_kept: dict[str, int]
    seconds: float


def _clip_pass(
    path: Path,
    areas: Sequence[Any],
    modes: Sequence[str],
    *,
    chunk_ways: int,
    node_index: str,
) -> tuple[_Kept, list[list[int]], int, int]:
    """Stream ``path`` once; return the kept ways and, per area, the indices of its ways."""
    import osmium

    tree = shapely.STRtree(np.asarray(areas, dtype=object))
    kept = _Kept([], [], [], [], [])
    per_area: list[list[int]] = [[] for _ in areas]
    counts = {"read": 0, "tested": 0}
    chunk: dict[str, list[Any]] = {"id": [], "refs": [], "lon": [], "lat": [], "tags": []}

    def flush() -> None:
        n = len(chunk["id"])
        if n == 0:
            return
        sizes = np.fromiter((len(r) for r in chunk["refs"]), dtype=np.int64, count=n)
        lon = np.concatenate(chunk["lon"])
        lat = np.concatenate(chunk["lat"])
        lines = shapely.linestrings(
            np.column_stack([lon, lat]), indices=np.repeat(np.arange(n), sizes)
        )
        li, ai = tree.query(lines, predicate="intersects")
        if len(li):
            uniq = np.unique(li)
            slot = {}
            for w in uniq.tolist():
                slot[w] = len(kept.way_id)
                kept.way_id.append(chunk["id"][w])
                kept.refs.append(chunk["refs"][w])
                kept.lon.append(chunk["lon"][w])
                kept.lat.append(chunk["lat"][w])
                kept.tags.append(chunk["tags"][w])
            for w, a in zip(li.tolist(), ai.tolist(), strict=True):
                per_area[a].append(slot[w])
        for v in chunk.values():
            v.clear()

    bboxes = np.array([shapely.bounds(a) for a in areas], dtype=float).reshape(-1, 4)
    ux0, uy0 = (float(v) for v in np.nanmin(bboxes[:, :2], axis=0))
    ux1, uy1 = (float(v) for v in np.nanmax(bboxes[:, 2:], axis=0))
    wkb_factory = osmium.geom.WKBFactory()
    all_nodes = osmium.geom.use_nodes.ALL

    def add(w: Any, tags: dict[str, str], refs: Any, lon: Any, lat: Any) -> None:
        counts["tested"] += 1
        chunk["id"].append(w.id)
        chunk["refs"].append(refs)
        chunk["lon"].append(lon)
        chunk["lat"].append(lat)
        chunk["tags"].append(tags)
        if len(chunk["id"]) >= chunk_ways:
            flush()

    class Handler(osmium.SimpleHandler):
        def way(self, w: Any) -> None:
            counts["read"] += 1
            tags = {t.k: t.v for t in w.tags}
            if not any(way_allowed(tags, m) for m in modes):
                return
            try:
                # the way's geometry built in C++ (one point per node): no loop over nodes here
                wkb = wkb_factory.create_linestring(w, use_nodes=all_nodes)
            except (osmium.InvalidLocationError, RuntimeError):
                wkb = None
            if wkb is not None:
                xy = np.frombuffer(bytes.fromhex(wkb), dtype="<f8", offset=9).reshape(-1, 2)
                x0, y0 = xy.min(axis=0)
                x1, y1 = xy.max(axis=0)
                # far from every region (most of a national extract): skipped here, in plain
                # floats; which regions a way meets is decided per chunk (STRtree, vectorised)
                if x1 < ux0 or x0 > ux1 or y1 < uy0 or y0 > uy1:
                    counts["tested"] += 1
                    return
                refs = np.fromiter((n.ref for n in w.nodes), dtype=np.int64)
                add(w, tags, refs, xy[:, 0].copy(), xy[:, 1].copy())
                return
            # some node has no location (a way cut at the edge of an extract): keep the others
            rl: list[int] = []
            lons: list[float] = []
            lats: list[float] = []
            for nd in w.nodes:
                loc = nd.location
                if loc.valid():
                    rl.append(nd.ref)
                    lons.append(loc.lon)
                    lats.append(loc.lat)
            if len(rl) >= 2:
                add(w, tags, np.array(rl, np.int64), np.array(lons), np.array(lats))

    with tempfile.TemporaryDirectory(prefix="lifecircle-idx-") as tmp:
        idx = node_index
        if node_index in ("sparse_file_array", "dense_file_array"):
            idx = f"{node_index},{Path(tmp) / 'nodes.idx'}"
        # ways without a highway tag (buildings, most of a real extract) are dropped in C++,
        # after the location handler has stored every node's position
        highways = osmium.filter.KeyFilter("highway")
        highways.enable_for(osmium.osm.WAY)
        try:
            Handler().apply_file(
                str(path),
                locations=True,
                idx=idx,
                filters=[osmium.filter.EntityFilter(osmium.osm.NODE | osmium.osm.WAY), highways],
            )
        except RuntimeError as exc:
            raise NetworkError(f"cannot read OSM file {path}: {exc}") from exc
    flush()
    return kept, per_area, counts["read"], counts["tested"]


def _write_pbf(kept: _Kept, ways: list[int], path: Path) -> int:
    """Write the given kept ways and their nodes to ``path`` atomically; return the node count."""
    import osmium

    order = sorted(set(ways), key=lambda i: kept.way_id[i])
    if order:
        refs = np.concatenate([kept.refs[i] for i in order])
        lon = np.concatenate([kept.lon[i] for i in order])
        lat = np.concatenate([kept.lat[i] for i in order])
        node_ids, first = np.unique(refs, return_index=True)
        lon, lat = lon[first], lat[first]
    else:
        node_ids = np.zeros(0, np.int64)
        lon = lat = np.zeros(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.osm.pbf")
    if tmp.exists():
        tmp.unlink()
    writer = osmium.SimpleWriter(str(tmp))
    try:
        for nid, x, y in zip(node_ids.tolist(), lon.tolist(), lat.tolist(), strict=True):
            writer.add_node(osmium.osm.mutable.Node(id=nid, location=(x, y)))
        for i in order:
            writer.add_way(
                osmium.osm.mutable.Way(
                    id=kept.way_id[i], nodes=kept.refs[i].tolist(), tags=kept.tags[i]
                )
            )
    finally:
        writer.close()
    os.replace(tmp, path)
    return len(node_ids)


def extract_regions(
    path: str | Path,
    regions: Mapping[str, Any],
    out_paths: Mapping[str, str | Path],
    *,
    buffer_m: float = DEFAULT_CLIP_BUFFER_M,
    modes: Iterable[str] = ("walk",),
    chunk_ways: int = 50_000,
    node_index: str = "flex_mem",
) -> ExtractStats:
    """Clip one large OSM file to many regions in a single streaming pass.

    Parameters
    ----------
    path : str or Path
        ``.osm.pbf`` (or any OSM file pyosmium reads).
    regions : mapping
        ``{region_id: shapely geometry}`` in WGS84 degrees.
    out_paths : mapping
        ``{region_id: output .osm.pbf path}``; every region needs one.
    buffer_m : float
        Buffer around each region in metres (default 2,000 m).
    modes : iterable of {"walk", "bike", "drive"}
        Ways allowed in any of these modes are kept.
    chunk_ways : int
        Ways tested per vectorised batch (bounds the working memory).
    node_index : str
        pyosmium location index: ``flex_mem`` (memory) or ``sparse_file_array`` /
        ``dense_file_array`` (a temporary file on disk, for very large files).

    Returns
    -------
    ExtractStats

    Raises
    ------
    NetworkError
        If the file is missing or unreadable.
    """
    p = Path(path)
    if not p.exists():
        raise NetworkError(f"network file {p} does not exist")
    modes = list(dict.fromkeys(modes))
    for m in modes:
        if m not in MODES:
            raise NetworkError(f"mode {m!r} is not one of {', '.join(MODES)}")
    missing = [r for r in regions if r not in out_paths]
    if missing:
        raise ValueError(f"no output path for region(s) {', '.join(map(str, missing))}")
    ids = list(regions)
    areas = [buffer_geometry_m(regions[r], buffer_m) for r in ids]
    t0 = time.perf_counter()
    kept, per_area, n_read, n_tested = _clip_pass(
        p, areas, modes, chunk_ways=chunk_ways, node_index=node_index
    )
    ways_kept: dict[str, int] = {}
    nodes_kept: dict[str, int] = {}
    for r, ways in zip(ids, per_area, strict=True):
        nodes_kept[r] = _write_pbf(kept, ways, Path(out_paths[r]))
        ways_kept[r] = len(set(ways))
    stats = ExtractStats(n_read, n_tested, ways_kept, nodes_kept, time.perf_counter() - t0)
    logger.info(
        "clipped %s to %d region(s) in one pass: %d highway ways read, %d kept, %.1f s",
        p,
        len(ids),
        n_read,
        len(kept.way_id),
        stats.seconds,
    )
    return stats


def clip_to_file(
    path: str | Path,
    regions: Mapping[str, Any],
    out: str | Path,
    *,
    buffer_m: float = DEFAULT_CLIP_BUFFER_M,
    modes: Iterable[str] = ("walk",),
    chunk_ways: int = 50_000,
    node_index: str = "flex_mem",
) -> ExtractStats:
    """The pass of :func:`extract_regions` without the writing: the ways kept for all regions in
    one ``.npz`` (plain arrays, no pickles), from which :func:`write_clipped_region` writes any one
    region's ``.osm.pbf``. A batch writes each region's file inside that region's own task, so
    the serial part of the work is the pass alone.

    Returns
    -------
    ExtractStats
        ``nodes_kept`` is empty: nodes are counted when a region is written.
    """
    p = Path(path)
    if not p.exists():
        raise NetworkError(f"network file {p} does not exist")
    modes = list(dict.fromkeys(modes))
    ids = list(regions)
    areas = [buffer_geometry_m(regions[r], buffer_m) for r in ids]
    t0 = time.perf_counter()
    kept, per_area, n_read, n_tested = _clip_pass(
        p, areas, modes, chunk_ways=chunk_ways, node_index=node_index
    )
    sizes = np.array([len(r) for r in kept.refs], dtype=np.int64)
    tags = [json.dumps(t, ensure_ascii=False).encode("utf-8") for t in kept.tags]
    tag_sizes = np.array([len(t) for t in tags], dtype=np.int64)
    region_ways = [np.unique(np.asarray(w, dtype=np.int64)) for w in per_area]
    arrays = {
        "way_id": np.asarray(kept.way_id, dtype=np.int64),
        "way_start": np.r_[0, np.cumsum(sizes)],
        "refs": np.concatenate(kept.refs) if kept.refs else np.zeros(0, np.int64),
        "lon": np.concatenate(kept.lon) if kept.lon else np.zeros(0),
        "lat": np.concatenate(kept.lat) if kept.lat else np.zeros(0),
        "tags": np.frombuffer(b"".join(tags), dtype=np.uint8),
        "tag_start": np.r_[0, np.cumsum(tag_sizes)],
        "region_id": np.asarray(ids, dtype=str),
        "region_start": np.r_[0, np.cumsum([len(w) for w in region_ways])],
        "region_ways": np.concatenate(region_ways) if region_ways else np.zeros(0, np.int64),
    }
    target = Path(out)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    stats = ExtractStats(
        n_read,
        n_tested,
        {r: len(w) for r, w in zip(ids, region_ways, strict=True)},
        {},
        time.perf_counter() - t0,
    )
    logger.info(
        "clipped %s for %d region(s) in one pass: %d highway ways read, %d kept, %.1f s",
        p,
        len(ids),
        n_read,
        len(kept.way_id),
        stats.seconds,
    )
    return stats


class BackgroundClip:
    """:func:`clip_to_file` running in a separate process, started at once.

    A batch starts the pass before anything else, so it runs beside reading the points and
    starting the Dask workers instead of after them. The process is spawned (not forked: the
    caller has threads running) and imports only this module; call :meth:`result` to wait for
    the saved file (errors of the pass are raised there) and :meth:`stop` to end it early. As
    with Dask's local cluster, a script that uses it needs the ``if __name__ == "__main__":``
    guard.
    """

    def __init__(self, path: str | Path, regions: Mapping[str, Any], out: str | Path, **kw: Any):
        ctx = multiprocessing.get_context("spawn")
        self.out = Path(out)
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_clip_in_child,
            args=(send, str(path), dict(regions), str(out), kw),
            name="lifecircle-clip",
            daemon=True,
        )
        self._proc.start()
        send.close()

    def result(self) -> Path:
        """Wait for the pass; the file it saved."""
        try:
            ok, value = self._recv.recv()
        except EOFError:
            self._proc.join()
            raise NetworkError(
                f"the clip pass ended without a result (exit code {self._proc.exitcode}); "
                "out of memory? try --node-index sparse_file_array"
            ) from None
        self._proc.join()
        if not ok:
            raise value
        return self.out

    def stop(self) -> None:
        """End the pass if it still runs."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()
        self._recv.close()


def _clip_in_child(
    conn: Any, path: str, regions: dict[str, Any], out: str, kw: dict[str, Any]
) -> None:
    # the caller's own work (reading and validating the points) is what the regions wait for
    # first: the pass yields the CPU to it and takes the idle cycles
    if hasattr(os, "nice"):
        os.nice(10)
    try:
        clip_to_file(path, regions, out, **kw)
        conn.send((True, out))
    except BaseException as exc:  # sent to the parent, which raises it
        conn.send((False, exc))
    finally:
        conn.close()


def write_clipped_region(clip_file: str | Path, region_id: str, path: str | Path) -> int:
    """Write one region's ``.osm.pbf`` from a :func:`clip_to_file` result; return its node count.

    The file is the same as :func:`extract_regions` writes for that region.
    """
    with np.load(clip_file, allow_pickle=False) as z:
        ids = z["region_id"].tolist()
        if region_id not in ids:
            raise ValueError(f"{clip_file} holds no region {region_id!r}")
        k = ids.index(region_id)
        start = z["region_start"]
        ways = z["region_ways"][start[k] : start[k + 1]]
        way_start, tag_start = z["way_start"], z["tag_start"]
        refs, lon, lat, tags = z["refs"], z["lon"], z["lat"], z["tags"]
        way_id = z["way_id"]
        kept = _Kept(
            way_id[ways].tolist(),
            [refs[way_start[w] : way_start[w + 1]] for w in ways.tolist()],
            [lon[way_start[w] : way_start[w + 1]] for w in ways.tolist()],
            [lat[way_start[w] : way_start[w + 1]] for w in ways.tolist()],
            [
                json.loads(tags[tag_start[w] : tag_start[w + 1]].tobytes().decode("utf-8"))
                for w in ways.tolist()
            ],
        )
    return _write_pbf(kept, list(range(len(ways))), Path(path))


def clip_fingerprint(path: Path, geom: Any, buffer: float, modes: Sequence[str]) -> str:
    """A key for a clipped extract: the file (path, size, mtime), the boundary, buffer and modes."""
    st = path.stat()
    h = hashlib.sha256()
    h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{buffer}|{sorted(modes)}".encode())
    h.update(f"|{EXTRACT_VERSION}|".encode())
    h.update(shapely.normalize(geom).wkb)
    return h.hexdigest()[:16]


def clip_network_file(
    path: str | Path,
    boundary: Any,
    *,
    buffer: float = DEFAULT_CLIP_BUFFER_M,
    modes: Iterable[str] = ("walk",),
    cache_dir: str | Path | None = None,
    node_index: str = "flex_mem",
) -> Path:
    """The part of ``path`` around ``boundary`` (WGS84) as a cached ``.osm.pbf``.

    The result is cached under ``cache_dir`` (a temporary folder when ``None``) keyed by
    :func:`clip_fingerprint`, so a second run with the same file and boundary skips the pass.
    """
    p = Path(path)
    if not p.exists():
        raise NetworkError(f"network file {p} does not exist")
    modes = list(dict.fromkeys(modes))
    folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp("lifecircle"))
    key = clip_fingerprint(p, boundary, buffer, modes)
    stem = p.name.split(".")[0]
    out = folder / f"{stem}.clip.{key}.osm.pbf"
    if out.exists():
        logger.info("clipped network from cache %s", out)
        return out
    extract_regions(
        p,
        {"clip": boundary},
        {"clip": out},
        buffer_m=buffer,
        modes=modes,
        node_index=node_index,
    )
    return out
