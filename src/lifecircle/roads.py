"""Local road centre lines (Shapefile / GeoPackage) as a network, alone or merged with OSM.

A county bureau often has its own road centre lines, newer or more complete than OSM. They are
read as lines (LineString/MultiLineString) with an optional class field (``highway``-like values:
``residential``, ``footway``...; lines whose class is excluded from the mode by osmnx's filter
are left out, lines without a class are kept in every mode) and an optional ``oneway`` field
(``yes``/``true``/``1`` along the line, ``-1``/``reverse`` against it; ``drive`` only).

**Noding** within ``tolerance_m`` (default 1 m): a local line is connected where it crosses
another local line or an OSM street (both are split at the crossing point), and where one of
its end points lies within the tolerance of a street (the street gets a node there); nodes closer
than the tolerance are merged. Lines that merely pass over each other without a shared point
(bridges) cannot be told apart in plain centre lines: give them separate ``layer`` values to
keep them apart (lines on different layers are not noded with each other). Lengths of local
lines are planar lengths in the analysis CRS; split OSM edges share their length in proportion.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from lifecircle.config import MODES
from lifecircle.errors import InputError, NetworkError
from lifecircle.network import RoadNetwork, choose_metric_crs, way_allowed

logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE_M: Final = 1.0
CLASS_FIELDS: Final = ("highway", "fclass", "class", "type", "道路等级", "等级")
ONEWAY_FIELDS: Final = ("oneway", "单行", "one_way")
_ONEWAY_FWD: Final = {"yes", "true", "1", "t", "f", "是"}
_ONEWAY_REV: Final = {"-1", "reverse", "tf"}


def read_road_lines(path: str | Path, *, crs: str | None = None) -> Any:
    """Read a line file as a WGS84 GeoDataFrame with ``klass``, ``oneway``, ``layer`` columns.

    Raises
    ------
    InputError
        If the file is missing, unreadable, has no lines, or has non-line geometries.
    """
    import geopandas as gpd

    p = Path(path)
    if not p.exists():
        raise InputError(f"road lines file {p} does not exist")
    try:
        gdf = gpd.read_file(p)
    except Exception as exc:
        raise InputError(f"cannot read road lines file {p}: {exc}") from exc
    if len(gdf) == 0:
        raise InputError(f"road lines file {p} has no features")
    if gdf.crs is None:
        if crs is None:
            raise InputError(
                f"road lines file {p} has no CRS (.prj); declare it, e.g. --extra-roads-crs "
                "EPSG:4490"
            )
        gdf = gdf.set_crs(crs)
    gdf = gdf.to_crs(4326)
    kinds = gdf.geom_type.fillna("empty")
    bad = [i + 1 for i, k in enumerate(kinds) if k not in ("LineString", "MultiLineString")]
    if bad:
        rows = ", ".join(map(str, bad[:10]))
        raise InputError(f"road lines file {p}: row(s) {rows} are not lines; keep only lines")
    lower = {str(c).lower(): c for c in gdf.columns}
    cls = next((lower[f] for f in CLASS_FIELDS if f in lower), None)
    ow = next((lower[f] for f in ONEWAY_FIELDS if f in lower), None)
    out = gpd.GeoDataFrame(
        {
            "klass": gdf[cls].fillna("").astype(str) if cls else "",
            "oneway": gdf[ow].fillna("").astype(str).str.strip().str.lower() if ow else "",
            "layer": gdf[lower["layer"]].fillna(0).astype(int) if "layer" in lower else 0,
        },
        geometry=gdf.geometry.values,
        crs=4326,
    ).explode(index_parts=False)
    out.attrs["source"] = str(p)
    return out.reset_index(drop=True)


def merge_road_lines(
    lines: Any,
    *,
    mode: str = "walk",
    base: RoadNetwork | None = None,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    crs: str | int | None = None,
) -> tuple[RoadNetwork, dict[str, Any]]:
    """A network from local lines, alone or merged into ``base`` (an OSM network), noded.

    Parameters
    ----------
    lines : GeoDataFrame
        From :func:`read_road_lines` (WGS84; ``klass``, ``oneway``, ``layer`` columns).
    mode : {"walk", "bike", "drive"}
    base : RoadNetwork, optional
        The OSM network to merge into (its CRS is kept).
    tolerance_m : float
        Noding tolerance in metres.
    crs : str or int, optional
        Metric CRS when there is no ``base`` (default: the UTM zone of the lines).

    Returns
    -------
    (RoadNetwork, dict)
        The network and a report: lines used and left out, segments, crossings noded,
        end points snapped, nodes merged, length in km.
    """
    if mode not in MODES:
        raise NetworkError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if tolerance_m <= 0:
        raise InputError(f"the noding tolerance must be > 0 m, got {tolerance_m}")
    source = str(lines.attrs.get("source", "road lines"))
    keep = np.array([not k or way_allowed({"highway": k}, mode) for k in lines["klass"]])
    used = lines[keep].reset_index(drop=True)
    if len(used) == 0:
        if base is None:
            raise NetworkError(f"{source}: no line is usable for the {mode!r} network")
        logger.info("%s: no line is usable for the %s network; nothing merged", source, mode)
        return base, {"file": source, "lines": len(lines), "lines_used": 0}
    geoms = np.asarray(used.geometry.values)
    coords, line_of = shapely.get_coordinates(geoms, return_index=True)
    if base is not None:
        metric = base.crs
    else:
        metric = choose_metric_crs(coords[:, 0], coords[:, 1], crs)
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", metric, always_xy=True)
    mx, my = t.transform(coords[:, 0], coords[:, 1])
    pts = np.column_stack([np.asarray(mx, float), np.asarray(my, float)])
    # local segments: consecutive vertices of the same line
    same = line_of[:-1] == line_of[1:]
    a = np.flatnonzero(same)
    seg_a, seg_b = pts[a], pts[a + 1]
    seg_line = line_of[a]
    nz = np.hypot(*(seg_b - seg_a).T) > 0
    seg_a, seg_b, seg_line = seg_a[nz], seg_b[nz], seg_line[nz]
    n_local = len(seg_a)

    # all segments: base edges first, then local ones
    if base is not None:
        ba = np.column_stack([base.node_x[base.edge_u], base.node_y[base.edge_u]])
        bb = np.column_stack([base.node_x[base.edge_v], base.node_y[base.edge_v]])
        n_base = base.n_edges
    else:
        ba = bb = np.zeros((0, 2))
        n_base = 0
    sa = np.vstack([ba, seg_a])
    sb = np.vstack([bb, seg_b])
    layer = np.r_[np.zeros(n_base, int), used["layer"].to_numpy(int)[seg_line]]
    segs: Any = np.asarray(shapely.linestrings(np.stack([sa, sb], axis=1)), dtype=object)
    tree = shapely.STRtree(segs)
    local = np.arange(n_base, n_base + n_local)

    # crossings: local segments with any segment on the same layer (not their own neighbours)
    qi, qj = tree.query(segs[local], predicate="intersects")
    qi = local[qi]
    ok = (qi != qj) & (layer[qi] == layer[qj]) & ((qj < n_base) | (qj > qi))
    qi, qj = qi[ok], qj[ok]
    inter = shapely.intersection(segs[qi], segs[qj])
    is_pt = shapely.get_type_id(inter) == 0
    qi, qj, inter = qi[is_pt], qj[is_pt], inter[is_pt]
    cross_xy = shapely.get_coordinates(inter)
    # end points of local lines within the tolerance of another segment: a node there
    ends: Any = np.zeros(0, np.int64)
    last: Any = np.zeros(0, np.int64)
    if n_local:
        ends = np.flatnonzero(np.r_[True, seg_line[1:] != seg_line[:-1]])
        last = np.flatnonzero(np.r_[seg_line[1:] != seg_line[:-1], True])
    end_seg = np.r_[ends, last] + n_base
    end_xy = np.vstack([seg_a[ends], seg_b[last]]) if n_local else np.zeros((0, 2))
    ei, ej = tree.query(shapely.points(end_xy), predicate="dwithin", distance=tolerance_m)
    ok = (end_seg[ei] != ej) & (layer[end_seg[ei]] == layer[ej])
    ei, ej = ei[ok], ej[ok]
    snap_xy = shapely.get_coordinates(
        shapely.shortest_line(shapely.points(end_xy[ei]), segs[ej])
    ).reshape(-1, 2, 2)[:, 1]

    # split parameters per segment
    split_seg = np.r_[qi, qj, ej]
    split_xy = np.vstack([cross_xy, cross_xy, snap_xy])
    d = sb - sa
    seg_len2 = np.maximum((d**2).sum(1), 1e-12)
    tpar = ((split_xy - sa[split_seg]) * d[split_seg]).sum(1) / seg_len2[split_seg]
    tpar = np.clip(tpar, 0.0, 1.0)
    n_all = n_base + n_local
    all_seg = np.r_[np.arange(n_all), np.arange(n_all), split_seg]
    all_t = np.r_[np.zeros(n_all), np.ones(n_all), tpar]
    order = np.lexsort((all_t, all_seg))
    all_seg, all_t = all_seg[order], all_t[order]
    vx = sa[all_seg, 0] + all_t * d[all_seg, 0]
    vy = sa[all_seg, 1] + all_t * d[all_seg, 1]
    # vertices: base nodes keep their index; the rest are merged within the tolerance
    n_nodes0 = base.n_nodes if base is not None else 0
    vert_xy = np.column_stack([vx, vy])
    base_xy = np.column_stack([base.node_x, base.node_y]) if base is not None else np.zeros((0, 2))
    cand = np.vstack([base_xy, vert_xy])
    pairs = cKDTree(cand).query_pairs(tolerance_m, output_type="ndarray")
    # base edge end points are exactly their nodes
    is_base_vert = all_seg < n_base
    exact_copy = np.r_[np.zeros(n_nodes0, bool), is_base_vert & ((all_t == 0.0) | (all_t == 1.0))]
    # base nodes never merge with each other (OSM topology is kept as it is)
    if len(pairs):
        both_base = (pairs < n_nodes0) | exact_copy[pairs]
        pairs = pairs[~(both_base[:, 0] & both_base[:, 1]) & ~exact_copy[pairs].any(axis=1)]
    end_node = np.where(
        all_t == 0.0,
        base.edge_u[np.minimum(all_seg, max(n_base - 1, 0))] if base is not None else 0,
        base.edge_v[np.minimum(all_seg, max(n_base - 1, 0))] if base is not None else 0,
    )
    exact = is_base_vert & ((all_t == 0.0) | (all_t == 1.0))
    link_a = np.r_[pairs[:, 0], np.flatnonzero(exact) + n_nodes0]
    link_b = np.r_[pairs[:, 1], end_node[exact]]
    m = len(cand)
    graph = coo_matrix((np.ones(len(link_a)), (link_a, link_b)), shape=(m, m))
    _, label = connected_components(graph, directed=False)
    # representative per component: a base node if there is one, else the first vertex
    rep = np.full(label.max() + 1, -1, dtype=np.int64)
    idx = np.arange(m)
    rep_order = np.lexsort((idx, label))
    first = np.r_[True, label[rep_order][1:] != label[rep_order][:-1]]
    rep[label[rep_order][first]] = rep_order[first]
    node_of = rep[label]
    used_nodes, new_index = np.unique(node_of, return_inverse=True)
    if base is not None:
        # keep base nodes first and in their order
        assert (used_nodes[:n_nodes0] == np.arange(n_nodes0)).all()
    vert_node = new_index[n_nodes0:]
    # pieces between consecutive vertices of the same segment
    same_seg = all_seg[:-1] == all_seg[1:]
    pa = vert_node[:-1][same_seg]
    pb = vert_node[1:][same_seg]
    pseg = all_seg[:-1][same_seg]
    frac = (all_t[1:] - all_t[:-1])[same_seg]
    keep_p = pa != pb
    pa, pb, pseg, frac = pa[keep_p], pb[keep_p], pseg[keep_p], frac[keep_p]
    node_xy = cand[used_nodes]
    is_b = pseg < n_base
    bseg = np.minimum(pseg, max(n_base - 1, 0))
    length = np.where(
        is_b,
        (base.edge_length_m[bseg] if base is not None else 0.0) * frac,
        np.hypot(*(node_xy[pb] - node_xy[pa]).T),
    )
    # attributes
    lseg = np.maximum(pseg - n_base, 0)
    lline = seg_line[np.minimum(lseg, max(n_local - 1, 0))] if n_local else np.zeros(0, int)
    hw_vals = list(base.highway_values) if base is not None else []
    klass = used["klass"].to_numpy(str)
    extra_cls = sorted({k for k in klass if k} - set(hw_vals))
    hw_vals += extra_cls
    hw_index = {v: i for i, v in enumerate(hw_vals)}
    local_hw = np.array([hw_index.get(k, -1) for k in klass], dtype=np.int16)
    ow = used["oneway"].to_numpy(str)
    fwd = np.isin(ow, list(_ONEWAY_FWD))
    rev = np.isin(ow, list(_ONEWAY_REV))
    edge_hw = np.where(
        is_b,
        base.edge_highway[bseg] if base is not None else -1,
        local_hw[lline] if n_local else -1,
    ).astype(np.int16)
    edge_name = np.where(is_b, base.edge_name[bseg] if base is not None else -1, -1)
    oneway = np.zeros(len(pa), bool)
    if mode == "drive":
        oneway = np.where(
            is_b,
            base.edge_oneway[bseg] if base is not None else False,
            (fwd | rev)[lline] if n_local else False,
        ).astype(bool)
        flip = ~is_b & (rev[lline] if n_local else False)
        pa, pb = np.where(flip, pb, pa), np.where(flip, pa, pb)
    n_new = len(used_nodes) - n_nodes0
    node_id = np.r_[
        base.node_id if base is not None else np.zeros(0, np.int64),
        -(np.arange(n_new, dtype=np.int64) + 1)
        + (min(0, int(base.node_id.min())) if base is not None else 0),
    ]
    net = RoadNetwork(
        crs=metric,
        mode=mode,
        node_id=node_id.astype(np.int64),
        node_x=node_xy[:, 0].copy(),
        node_y=node_xy[:, 1].copy(),
        edge_u=pa.astype(np.int32),
        edge_v=pb.astype(np.int32),
        edge_length_m=np.asarray(length, float),
        edge_oneway=oneway,
        edge_highway=edge_hw,
        edge_name=np.asarray(edge_name, np.int32),
        highway_values=tuple(hw_vals),
        name_values=base.name_values if base is not None else (),
        source=f"{base.source} + {source}" if base is not None else source,
    )
    report: dict[str, Any] = {
        "file": source,
        "lines": len(lines),
        "lines_used": len(used),
        "lines_left_out_by_class": int((~keep).sum()),
        "segments": int(n_local),
        "crossings_noded": len(cross_xy),
        "end_points_snapped": len(ei),
        "tolerance_m": tolerance_m,
        "length_km": round(float(length[~is_b].sum()) / 1000.0, 3),
    }
    logger.info(
        "%s: %d line(s) merged into the %s network (%d crossing(s) noded, %d end point(s) "
        "snapped within %.1f m)",
        source,
        report["lines_used"],
        mode,
        report["crossings_noded"],
        report["end_points_snapped"],
        tolerance_m,
    )
    net.extra_roads.update(report)
    return net, report
