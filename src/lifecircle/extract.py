"""Cutting large OSM extracts down to regions: one streaming pass, many regions at once.

A province or country ``.osm.pbf`` is far larger than one county's streets. :func:`extract_regions`
reads it once and keeps, for every region, each way of the requested modes (osmnx's
``walk``/``bike``/``drive`` filters, :func:`lifecircle.network.way_allowed`) that **intersects the
region's boundary buffered by** ``buffer_m`` metres. Kept ways are whole (complete node lists, also
the nodes outside the buffer), so a street that leaves the area is not cut in the middle. Each
region's ways are written to a small ``.osm.pbf`` that :func:`lifecircle.network.load_networks`
reads like any other file; the rule is the same as cutting the file beforehand, so distances are
the same.

How: pyosmium's C++ handlers read the file, fill in node locations and write every ``highway``
way as a line of OPL text, with no Python call per object; :mod:`lifecircle._opl` reads the text
back into arrays in blocks, Arrow applies the mode filters to the tags and one STRtree query per
block finds the regions each way meets. Region files are written the same way round: OPL text
from the arrays, encoded as ``.osm.pbf`` by libosmium.

Memory: only the kept ways are held, so memory is bounded by the clipped area, one block of text
and the node-location index. The index (pyosmium's ``idx``) is ``flex_mem`` by default (about 16
bytes per node of the file, in memory); for country-sized files pass
``node_index="sparse_file_array"`` to keep it in a temporary file on disk instead. The OPL text
lies in a temporary folder beside the output (about 35 bytes per node reference of a highway).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import NDArray

from lifecircle.config import MODES
from lifecircle.coords import normalize_crs_name, to_wgs84, utm_epsg
from lifecircle.errors import InputError, NetworkError
from lifecircle.network import way_filters

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
    """The kept ways (those meeting some region) as flat arrays.

    Way ``w`` has the located nodes ``ref/x/y[node_start[w]:node_start[w + 1]]`` (coordinates in
    1e-7 degrees) and the escaped OPL tags ``tags[tag_start[w]:tag_start[w + 1]]``.
    """

    way_id: NDArray[np.int64]
    node_start: NDArray[np.int64]
    ref: NDArray[np.int64]
    x: NDArray[np.int32]
    y: NDArray[np.int32]
    tags: NDArray[np.uint8]
    tag_start: NDArray[np.int64]


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


#: OPL as the clip pass has libosmium write it: node locations on the ways, no metadata
_OPL_FORMAT: Final = "opl,locations_on_ways=true,add_metadata=false"
_OPL_PRECISION: Final = 10_000_000  # libosmium's fixed point: 1e-7 degrees
_OPL_ESCAPE: Final = re.compile(r"%([0-9a-f]+)%")


def _unescape_opl(text: str) -> str:
    """An OPL tag value with its ``%hex%`` escapes decoded."""
    return _OPL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _ways_allowed(tags: pa.StringArray, modes: Sequence[str]) -> NDArray[np.bool_]:
    """:func:`lifecircle.network.way_allowed` of every way, from its escaped OPL tags.

    Each filter key's value is cut out of the tag text and matched by Arrow (the patterns are
    plain alternatives, which RE2 and Python's ``re`` match alike); the rare value with an
    escape (``%20%`` for a space) is decoded and matched by Python's own rule.
    """
    n = len(tags)
    allowed = np.zeros(n, dtype=bool)
    values: dict[str, pa.Array] = {}
    for mode in modes:
        ok = np.ones(n, dtype=bool)
        for key, rx in way_filters(mode):
            if key not in values:
                found = pc.extract_regex(tags, rf"(?:^|,){re.escape(key)}=(?P<v>[^,]*)")
                values[key] = pc.struct_field(found, [0])
            value = values[key]
            hit = pc.fill_null(pc.match_substring_regex(value, rx.pattern), False)
            excluded = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
            escaped = np.flatnonzero(
                pc.fill_null(pc.match_substring(value, "%"), False).to_numpy(zero_copy_only=False)
            )
            for i in escaped.tolist():
                excluded[i] = rx.search(_unescape_opl(value[i].as_py())) is not None
            ok &= ~excluded
        allowed |= ok
    return allowed


def _line_blocks(
    path: Path, block_bytes: int, start: int = 0, end: int | None = None
) -> Iterator[NDArray[np.uint8]]:
    """Bytes ``start:end`` of the file (whole lines) in blocks of whole lines of about
    ``block_bytes``."""
    rest = b""
    left = (path.stat().st_size if end is None else end) - start
    with path.open("rb") as f:
        f.seek(start)
        while left > 0:
            data = f.read(min(block_bytes, left))
            if not data:
                break
            left -= len(data)
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield np.frombuffer(data, dtype=np.uint8, count=cut)
    if rest:
        yield np.frombuffer(rest, dtype=np.uint8)


def opl_piece(opl: str | Path, piece: int, pieces: int) -> tuple[int, int]:
    """The byte range of piece ``piece`` of ``pieces`` of a text file, cut at line ends.

    The pieces are about equal, cover the file once, and any piece can be found on its own (a
    cut is the end of the line that holds byte ``size * k // pieces``), so each task of a
    batch reads just its own part of the clip pass's OPL text.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> f = Path(tempfile.mkdtemp()) / "t.opl"
    >>> _ = f.write_bytes(b"w1 a\\nw2 bb\\nw3 ccc\\n")
    >>> [opl_piece(f, k, 2) for k in range(2)]
    [(0, 11), (11, 18)]
    """
    if not 0 <= piece < pieces:
        raise ValueError(f"piece {piece} of {pieces}")
    path = Path(opl)
    size = path.stat().st_size

    def cut(k: int) -> int:
        at = size * k // pieces
        if at == 0 or at >= size:
            return min(at, size)
        with path.open("rb") as f:
            f.seek(at - 1)
            pos = at - 1
            while True:
                data = f.read(1 << 16)
                if not data:
                    return size
                i = data.find(b"\n")
                if i >= 0:
                    return pos + i + 1
                pos += len(data)

    return cut(piece), cut(piece + 1)


def _write_highway_opl(path: Path, opl: Path, node_index: str, tmp: Path) -> None:
    """libosmium writes every ``highway`` way of ``path`` with its node locations as OPL."""
    import osmium

    idx = node_index
    if node_index in ("sparse_file_array", "dense_file_array"):
        idx = f"{node_index},{tmp / 'nodes.idx'}"
    locations = osmium.NodeLocationsForWays(osmium.index.create_map(idx))
    locations.ignore_errors()  # a way cut at the edge of an extract keeps its located nodes
    # everything in C++: the locations handler sees every node, the filters pass on only the
    # highway ways, the writer formats them (no Python call per object)
    try:
        with osmium.SimpleWriter(osmium.io.File(str(opl), _OPL_FORMAT)) as writer:
            osmium.apply(
                str(path),
                locations,
                osmium.filter.EntityFilter(osmium.osm.WAY),
                osmium.filter.KeyFilter("highway"),
                writer,
            )
    except RuntimeError as exc:
        raise NetworkError(f"cannot read OSM file {path}: {exc}") from exc


def write_highway_opl(path: str | Path, opl: str | Path, *, node_index: str = "flex_mem") -> None:
    """The one streaming pass over an extract: libosmium writes every ``highway`` way of ``path``
    with its node locations as OPL text to ``opl`` (atomically; about 35 bytes per node reference
    of a highway). :func:`clip_opl_to_file` cuts it to regions, in one or several pieces.

    Raises
    ------
    NetworkError
        If libosmium cannot read ``path``.
    """
    target = Path(opl)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)  # left by a lost worker (libosmium won't overwrite a file)
    with tempfile.TemporaryDirectory(prefix=".lifecircle-index-", dir=target.parent) as index_dir:
        try:
            _write_highway_opl(Path(path), tmp, node_index, Path(index_dir))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


def _clip_pass(
    path: Path,
    areas: Sequence[Any],
    modes: Sequence[str],
    *,
    block_bytes: int,
    node_index: str,
    work_dir: Path,
) -> tuple[_Kept, list[NDArray[np.int64]], int, int]:
    """Stream ``path`` once; return the kept ways and, per area, the indices of its ways.

    libosmium writes the highway ways as OPL text into a temporary folder in ``work_dir``
    (:func:`write_highway_opl`), which :func:`_clip_blocks` reads back in blocks.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lifecircle-clip-", dir=work_dir) as tmp:
        opl = Path(tmp) / "highways.opl"
        _write_highway_opl(path, opl, node_index, Path(tmp))
        return _clip_blocks(_line_blocks(opl, block_bytes), areas, modes)


def _clip_blocks(
    blocks: Iterable[NDArray[np.uint8]], areas: Sequence[Any], modes: Sequence[str]
) -> tuple[_Kept, list[NDArray[np.int64]], int, int]:
    """The kept ways of some blocks of OPL text and, per area, the indices of its ways; also
    the ways read and tested.

    The text is parsed by :mod:`lifecircle._opl`, and each block's ways are tested at once: the
    mode filters by Arrow, the regions by one STRtree query.
    """
    from lifecircle import _opl

    tree = shapely.STRtree(np.asarray(areas, dtype=object))
    bboxes = np.array([shapely.bounds(a) for a in areas], dtype=float).reshape(-1, 4)
    ux0, uy0 = np.nanmin(bboxes[:, :2], axis=0) * _OPL_PRECISION
    ux1, uy1 = np.nanmax(bboxes[:, 2:], axis=0) * _OPL_PRECISION
    parts: dict[str, list[NDArray[Any]]] = {
        k: [] for k in ("way_id", "sizes", "ref", "x", "y", "tags", "tag_sizes")
    }
    per_area: list[list[NDArray[np.int64]]] = [[] for _ in areas]
    n_read = n_tested = n_kept = 0
    for buf in blocks:
        ways = _opl.parse_ways(buf)
        n = len(ways.way_id)
        n_read += n
        # each way's escaped tags, gathered into one Arrow text array
        tag_len = ways.tag_end - ways.tag_start
        tag_off = np.r_[0, np.cumsum(tag_len)]
        tag_bytes = buf[_ranges(ways.tag_start, tag_len)]
        tags = pa.StringArray.from_buffers(
            n, pa.py_buffer(tag_off.astype(np.int32)), pa.py_buffer(tag_bytes)
        )
        sizes = np.diff(ways.node_start)
        way_of = np.repeat(np.arange(n), sizes)
        located_before = np.r_[0, np.cumsum(ways.located)]
        n_located = located_before[ways.node_start[1:]] - located_before[ways.node_start[:-1]]
        tested = _ways_allowed(tags, modes) & (n_located >= 2)
        n_tested += int(tested.sum())
        # the located nodes of the tested ways; far from every region: dropped here
        node_ok = ways.located & tested[way_of]
        w_idx = way_of[node_ok]
        x, y = ways.x[node_ok], ways.y[node_ok]
        ways_t = np.flatnonzero(tested)
        first = np.searchsorted(w_idx, ways_t)
        x0, x1 = np.minimum.reduceat(x, first), np.maximum.reduceat(x, first)
        y0, y1 = np.minimum.reduceat(y, first), np.maximum.reduceat(y, first)
        near = (x1 >= ux0) & (x0 <= ux1) & (y1 >= uy0) & (y0 <= uy1)
        cand = ways_t[near]
        if len(cand) == 0:
            continue
        is_cand = np.zeros(n, dtype=bool)
        is_cand[cand] = True
        sel = is_cand[w_idx]
        xy = np.column_stack([x[sel], y[sel]]) / _OPL_PRECISION
        lines = shapely.linestrings(xy, indices=np.searchsorted(cand, w_idx[sel]))
        li, ai = tree.query(lines, predicate="intersects")
        if len(li) == 0:
            continue
        keep = np.unique(li)  # indices into cand
        kept_ways = cand[keep]
        slot = np.full(len(cand), -1, dtype=np.int64)
        slot[keep] = n_kept + np.arange(len(keep))
        by_area = np.argsort(ai, kind="stable")
        areas_hit, first_hit = np.unique(ai[by_area], return_index=True)
        for a, hits in zip(areas_hit.tolist(), np.split(li[by_area], first_hit[1:]), strict=True):
            per_area[a].append(slot[hits])
        n_kept += len(keep)
        is_kept = np.zeros(n, dtype=bool)
        is_kept[kept_ways] = True
        knode = is_kept[w_idx]
        parts["way_id"].append(ways.way_id[kept_ways])
        parts["sizes"].append(n_located[kept_ways])
        parts["ref"].append(ways.ref[node_ok][knode])
        parts["x"].append(x[knode].astype(np.int32))
        parts["y"].append(y[knode].astype(np.int32))
        parts["tags"].append(tag_bytes[_ranges(tag_off[kept_ways], tag_len[kept_ways])])
        parts["tag_sizes"].append(tag_len[kept_ways])
    kept = _Kept(
        way_id=_cat(parts["way_id"], np.int64),
        node_start=np.r_[0, np.cumsum(_cat(parts["sizes"], np.int64))],
        ref=_cat(parts["ref"], np.int64),
        x=_cat(parts["x"], np.int32),
        y=_cat(parts["y"], np.int32),
        tags=_cat(parts["tags"], np.uint8),
        tag_start=np.r_[0, np.cumsum(_cat(parts["tag_sizes"], np.int64))],
    )
    return kept, [_cat(a, np.int64) for a in per_area], n_read, n_tested


def _ranges(starts: NDArray[np.int64], sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    """The positions ``starts[i]:starts[i] + sizes[i]`` of every ``i``, one after the other."""
    ends = np.cumsum(sizes)
    return np.repeat(starts - (ends - sizes), sizes) + np.arange(ends[-1] if len(ends) else 0)


def _cat(arrays: list[NDArray[Any]], dtype: Any) -> NDArray[Any]:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)


def _write_pbf(kept: _Kept, ways: NDArray[np.int64], path: Path) -> int:
    """Write the given kept ways and their nodes to ``path`` atomically; return the node count.

    The ways (by id) and their nodes (by id) are written as OPL by :func:`lifecircle._opl.write_opl`
    and encoded as ``.osm.pbf`` by libosmium.
    """
    import osmium

    from lifecircle import _opl

    ways = np.unique(np.asarray(ways, dtype=np.int64))
    order = ways[np.argsort(kept.way_id[ways], kind="stable")]
    sizes = kept.node_start[order + 1] - kept.node_start[order]
    pos = _ranges(kept.node_start[order], sizes)
    refs = kept.ref[pos]
    node_ids, first = np.unique(refs, return_index=True)
    t_sizes = kept.tag_start[order + 1] - kept.tag_start[order]
    t_pos = _ranges(kept.tag_start[order], t_sizes)
    node_start = np.r_[0, np.cumsum(sizes)]
    tag_start = np.r_[0, np.cumsum(t_sizes)]
    text = _opl.write_opl(
        node_ids,
        kept.x[pos][first],
        kept.y[pos][first],
        kept.way_id[order],
        kept.tags[t_pos],
        tag_start,
        refs,
        node_start,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.osm.pbf")
    if tmp.exists():
        tmp.unlink()
    with osmium.SimpleWriter(str(tmp)) as writer:
        osmium.apply(osmium.io.FileBuffer(text.tobytes(), "opl"), writer)
    os.replace(tmp, path)
    return len(node_ids)


def extract_regions(
    path: str | Path,
    regions: Mapping[str, Any],
    out_paths: Mapping[str, str | Path],
    *,
    buffer_m: float = DEFAULT_CLIP_BUFFER_M,
    modes: Iterable[str] = ("walk",),
    block_bytes: int = 16 << 20,
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
    block_bytes : int
        Ways are tested in blocks of this much OPL text (bounds the working memory).
    node_index : str
        pyosmium location index: ``flex_mem`` (memory) or ``sparse_file_array`` /
        ``dense_file_array`` (a temporary file on disk, for very large files).

    Notes
    -----
    The pass writes the file's highway ways as a temporary text file beside the first output
    (about 35 bytes per node reference of a highway, deleted at the end).

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
    work_dir = Path(out_paths[ids[0]]).parent if ids else Path(tempfile.gettempdir())
    kept, per_area, n_read, n_tested = _clip_pass(
        p, areas, modes, block_bytes=block_bytes, node_index=node_index, work_dir=work_dir
    )
    ways_kept: dict[str, int] = {}
    nodes_kept: dict[str, int] = {}
    for r, ways in zip(ids, per_area, strict=True):
        nodes_kept[r] = _write_pbf(kept, ways, Path(out_paths[r]))
        ways_kept[r] = len(np.unique(ways))
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
    block_bytes: int = 16 << 20,
    node_index: str = "flex_mem",
) -> ExtractStats:
    """The pass of :func:`extract_regions` without the writing: the ways kept for all regions in
    one ``.npz`` (plain arrays, no pickles), from which :func:`write_clipped_region` writes any one
    region's ``.osm.pbf``.

    It is :func:`write_highway_opl` and :func:`clip_opl_to_file` in one piece; a batch runs them
    as separate tasks, the second in as many pieces as there are workers.

    Returns
    -------
    ExtractStats
        ``nodes_kept`` is empty: nodes are counted when a region is written.
    """
    p = Path(path)
    if not p.exists():
        raise NetworkError(f"network file {p} does not exist")
    ids = list(regions)
    areas = {r: buffer_geometry_m(regions[r], buffer_m) for r in ids}
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".lifecircle-clip-", dir=target.parent) as tmp:
        opl = Path(tmp) / "highways.opl"
        write_highway_opl(p, opl, node_index=node_index)
        stats = clip_opl_to_file(opl, areas, target, modes=modes, block_bytes=block_bytes)
    return ExtractStats(
        stats.ways_read, stats.ways_tested, stats.ways_kept, {}, time.perf_counter() - t0
    )


def clip_opl_to_file(
    opl: str | Path,
    areas: Mapping[str, Any],
    out: str | Path,
    *,
    modes: Iterable[str] = ("walk",),
    piece: tuple[int, int] = (0, 1),
    block_bytes: int = 16 << 20,
) -> ExtractStats:
    """Cut one piece of :func:`write_highway_opl`'s text to the regions' areas; save the kept
    ways and each region's share of them as one ``.npz`` at ``out`` (atomically).

    Parameters
    ----------
    opl : path
        The OPL text of the pass.
    areas : mapping
        ``{region_id: shapely geometry}`` in WGS84 degrees, **already buffered**
        (:func:`buffer_geometry_m`): a way is kept for each area it intersects.
    out : path
        The ``.npz`` to write.
    modes : iterable of {"walk", "bike", "drive"}
        Ways allowed in any of these modes are kept.
    piece : (int, int)
        ``(k, n)``: the ``k``-th of ``n`` pieces of the text (:func:`opl_piece`). The ``n`` files
        together hold what one piece ``(0, 1)`` would, and :func:`write_clipped_region` writes
        the same region file from all ``n`` as from that one.
    block_bytes : int
        The text is read in blocks of about this much (bounds the working memory).

    Returns
    -------
    ExtractStats
        Counts of this piece; ``nodes_kept`` is empty.
    """
    modes = list(dict.fromkeys(modes))
    for m in modes:
        if m not in MODES:
            raise NetworkError(f"mode {m!r} is not one of {', '.join(MODES)}")
    ids = list(areas)
    t0 = time.perf_counter()
    start, end = opl_piece(opl, *piece)
    kept, per_area, n_read, n_tested = _clip_blocks(
        _line_blocks(Path(opl), block_bytes, start, end), [areas[r] for r in ids], modes
    )
    region_ways = [np.unique(w) for w in per_area]
    arrays = {
        "way_id": kept.way_id,
        "node_start": kept.node_start,
        "ref": kept.ref,
        "x": kept.x,
        "y": kept.y,
        "tags": kept.tags,
        "tag_start": kept.tag_start,
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
        "clipped piece %d of %d of %s for %d region(s): %d highway ways read, %d kept, %.1f s",
        piece[0] + 1,
        piece[1],
        opl,
        len(ids),
        n_read,
        len(kept.way_id),
        stats.seconds,
    )
    return stats


def _region_ways(clip_file: str | Path, region_id: str) -> _Kept:
    """The ways of one region in one :func:`clip_opl_to_file` file, as their own arrays."""
    with np.load(clip_file, allow_pickle=False) as z:
        ids = z["region_id"].tolist()
        if region_id not in ids:
            raise ValueError(f"{clip_file} holds no region {region_id!r}")
        k = ids.index(region_id)
        start = z["region_start"]
        ways = z["region_ways"][start[k] : start[k + 1]]
        node_start, tag_start = z["node_start"], z["tag_start"]
        sizes = node_start[ways + 1] - node_start[ways]
        t_sizes = tag_start[ways + 1] - tag_start[ways]
        pos = _ranges(node_start[ways], sizes)
        return _Kept(
            way_id=z["way_id"][ways],
            node_start=np.r_[0, np.cumsum(sizes)],
            ref=z["ref"][pos],
            x=z["x"][pos],
            y=z["y"][pos],
            tags=z["tags"][_ranges(tag_start[ways], t_sizes)],
            tag_start=np.r_[0, np.cumsum(t_sizes)],
        )


def write_clipped_region(
    clip_files: str | Path | Sequence[str | Path], region_id: str, path: str | Path
) -> int:
    """Write one region's ``.osm.pbf`` from the file(s) of :func:`clip_to_file` or of the pieces
    of :func:`clip_opl_to_file`; return its node count.

    The file is the same as :func:`extract_regions` writes for that region.
    """
    files = [clip_files] if isinstance(clip_files, str | Path) else list(clip_files)
    parts = [_region_ways(f, region_id) for f in files]
    node_start = [np.zeros(1, np.int64)]
    tag_start = [np.zeros(1, np.int64)]
    n_nodes = n_tags = 0
    for part in parts:
        node_start.append(part.node_start[1:] + n_nodes)
        tag_start.append(part.tag_start[1:] + n_tags)
        n_nodes += int(part.node_start[-1])
        n_tags += int(part.tag_start[-1])
    kept = _Kept(
        way_id=_cat([q.way_id for q in parts], np.int64),
        node_start=np.concatenate(node_start),
        ref=_cat([q.ref for q in parts], np.int64),
        x=_cat([q.x for q in parts], np.int32),
        y=_cat([q.y for q in parts], np.int32),
        tags=_cat([q.tags for q in parts], np.uint8),
        tag_start=np.concatenate(tag_start),
    )
    return _write_pbf(kept, np.arange(len(kept.way_id)), Path(path))


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
