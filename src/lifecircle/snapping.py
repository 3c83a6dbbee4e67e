"""Snapping points onto the nearest point of the nearest edge (never to the nearest node).

A point's network position is ``(edge, offset_m)``: the edge it projects onto and the distance
along that edge from its ``u`` end, in the edge's own length metres. The straight line from the
point to its projection is the *access leg* (``access_m``), counted in the point's distance.
Points whose access leg exceeds ``max_snap_m`` are flagged ``on_network=False``: they are kept and
reported, but they reach nothing.

The nearest-edge search
-----------------------
Every edge is cut into pieces no longer than ``piece_m``. The pieces are registered in the cells
of a uniform grid, and a compiled kernel (:mod:`lifecircle._piece_grid`) searches the cells in
square rings around each point until no unseen piece can be nearer than the best one found:
exact, and proven for every point within ``max_snap_m`` of a street. The points left (farther
from every street) go to a KD-tree over the piece midpoints: for each point the ``k`` nearest
midpoints give candidate pieces; the exact point-to-segment distance to each is computed and the
smallest kept. A piece whose midpoint is at distance ``m`` is at least ``m - h`` away (``h``: the
largest half piece length), so when the best exact distance found is ``<= m_k - h`` no other
piece can be closer. The points that fail the test get a second pass with ``max(2k, 16)``
candidates; the very few left are re-checked against every piece within ``best + h`` (a ball
query). Points beyond ``max_snap_m`` by more than the bound keep the best of the first pass: they
are off the network whatever their nearest edge.
"""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lifecircle._threads import thread_budget

if TYPE_CHECKING:  # pragma: no cover
    from scipy.spatial import cKDTree

    from lifecircle._piece_grid import PieceGrid
    from lifecircle.network import RoadNetwork

logger = logging.getLogger(__name__)

DEFAULT_MAX_SNAP_M: Final = 300.0
DEFAULT_PIECE_M: Final = 40.0
#: Cell size of the pieces' grid (speed only; the search is exact for any size).
GRID_CELL_M: Final = 40.0
#: Batches of at least this many points are snapped in one block per core, in threads.
_BLOCKS_FROM = 40_000
#: Largest block of points one thread snaps at a time (bounds the memory of a large batch).
_BLOCK_POINTS = 50_000


@dataclass(frozen=True)
class SnapIndex:
    """Edge pieces, registered in a grid, and a KD-tree over their midpoints (see the module
    docstring); the tree is built on first use (only points far off the network need it)."""

    grid: PieceGrid
    piece_edge: NDArray[np.int64]
    ax: NDArray[np.float64]
    ay: NDArray[np.float64]
    dx: NDArray[np.float64]  # bx - ax (the piece's end minus its start)
    dy: NDArray[np.float64]
    t0: NDArray[np.float64]  # fraction along the edge at the piece start
    t1: NDArray[np.float64]  # fraction along the edge at the piece end
    half_max_m: float

    @classmethod
    def build(cls, network: RoadNetwork, *, piece_m: float = DEFAULT_PIECE_M) -> SnapIndex:
        """Cut the network's edges into pieces of at most ``piece_m`` metres and index them."""
        from lifecircle._piece_grid import PieceGrid  # imports Numba: only when snapping

        xu, yu = network.node_x[network.edge_u], network.node_y[network.edge_u]
        xv, yv = network.node_x[network.edge_v], network.node_y[network.edge_v]
        geom_len = np.hypot(xv - xu, yv - yu)
        n_pieces = np.maximum(1, np.ceil(geom_len / piece_m)).astype(np.int64)
        piece_edge = np.repeat(np.arange(network.n_edges, dtype=np.int64), n_pieces)
        starts = np.cumsum(n_pieces) - n_pieces
        k = np.arange(len(piece_edge)) - np.repeat(starts, n_pieces)
        cnt = n_pieces[piece_edge]
        t0 = k / cnt
        t1 = (k + 1) / cnt
        ax = xu[piece_edge] + t0 * (xv - xu)[piece_edge]
        ay = yu[piece_edge] + t0 * (yv - yu)[piece_edge]
        bx = xu[piece_edge] + t1 * (xv - xu)[piece_edge]
        by = yu[piece_edge] + t1 * (yv - yu)[piece_edge]
        half = float((geom_len / n_pieces).max()) / 2.0
        # pieces numbered along a Z-curve of grid cells: a cell's pieces lie together in memory
        # (the grid search runs about twice as fast as with pieces in edge order)
        z = _morton_order((ax + bx) / 2.0, (ay + by) / 2.0, cell_m=GRID_CELL_M)
        ax, ay, bx, by = ax[z], ay[z], bx[z], by[z]
        grid = PieceGrid.build(ax, ay, bx - ax, by - ay, cell_m=GRID_CELL_M)
        # the piece arrays are views of the grid's packed rows (no second copy)
        ax, ay, dx, dy = (grid.pieces[:, c] for c in range(4))
        return cls(grid, piece_edge[z], ax, ay, dx, dy, t0[z], t1[z], half)

    @cached_property
    def tree(self) -> cKDTree:
        """KD-tree over the piece midpoints (for points beyond the grid search)."""
        from scipy.spatial import cKDTree

        return cKDTree(
            np.column_stack([self.ax + self.dx / 2.0, self.ay + self.dy / 2.0]),
            leafsize=16,
            balanced_tree=False,
            compact_nodes=False,
        )

    def _exact(
        self,
        px: NDArray[np.float64],
        py: NDArray[np.float64],
        pieces: NDArray[np.int64],
        *,
        squared: bool = False,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Distance from points to pieces (broadcast) and the fraction along each piece
        (with ``squared``, the squared distance)."""
        ax, ay = self.ax[pieces], self.ay[pieces]
        dx, dy = self.dx[pieces], self.dy[pieces]
        wx = np.subtract(px, ax, out=ax)  # ax, ay are fresh gathers: reuse them
        wy = np.subtract(py, ay, out=ay)
        den = dx * dx
        den += dy * dy
        s = wx * dx
        s += wy * dy
        with np.errstate(invalid="ignore", divide="ignore"):
            s /= den
        s[den <= 0] = 0.0
        np.clip(s, 0.0, 1.0, out=s)
        # (a + s d) - p = s d - w
        dx *= s
        dx -= wx
        dy *= s
        dy -= wy
        if squared:
            dx *= dx
            dy *= dy
            dx += dy
            return dx, s
        return np.hypot(dx, dy, out=dx), s

    def _nearest_of_k(
        self, pts: NDArray[np.float64], k: int, workers: int, max_snap_m: float
    ) -> tuple[
        NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_] | None
    ]:
        """Best of the ``k`` pieces with the nearest midpoints: piece, distance, fraction and
        the points for which that is not proven (None: all proven)."""
        n = len(pts)
        mid_d, cand = self.tree.query(pts, k=k, workers=workers)
        mid_d = mid_d.reshape(n, k)
        cand = cand.reshape(n, k)
        d2, s = self._exact(pts[:, :1], pts[:, 1:], cand, squared=True)
        best = np.argmin(d2, axis=1)[:, None]
        best_piece = np.take_along_axis(cand, best, axis=1)[:, 0].astype(np.int64, copy=False)
        best_d = np.sqrt(np.take_along_axis(d2, best, axis=1)[:, 0])
        best_s = np.take_along_axis(s, best, axis=1)[:, 0]
        if k >= self.tree.n:
            return best_piece, best_d, best_s, None
        # exactness test; points beyond max_snap_m by more than the bound need no proof
        unproven = best_d > mid_d[:, -1] - self.half_max_m
        unproven &= mid_d[:, 0] - self.half_max_m <= max_snap_m
        return best_piece, best_d, best_s, unproven

    def _nearest(
        self, pts: NDArray[np.float64], k: int, workers: int, max_snap_m: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """The nearest piece of each point, exactly: piece, distance, fraction along it.

        The grid search proves every point within ``max_snap_m`` of a piece; the others go to
        the KD-tree search, where points more than ``max_snap_m`` (plus the bound) from every
        piece get the best of the first pass only: they are off the network anyway."""
        piece, d, s = self.grid.nearest(
            np.ascontiguousarray(pts[:, 0]), np.ascontiguousarray(pts[:, 1]), max_snap_m
        )
        far = np.flatnonzero(piece < 0)
        if len(far):
            piece[far], d[far], s[far] = self._nearest_by_tree(pts[far], k, workers, max_snap_m)
        return piece, d, s

    def _nearest_by_tree(
        self, pts: NDArray[np.float64], k: int, workers: int, max_snap_m: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`_nearest` by the KD-tree of piece midpoints (see the module docstring)."""
        k = int(min(k, self.tree.n))
        best_piece, best_d, best_s, unproven = self._nearest_of_k(pts, k, workers, max_snap_m)
        if unproven is None:
            return best_piece, best_d, best_s
        # the few unproven points: a second, wider fixed-width pass, then ball queries
        ui = np.flatnonzero(unproven)
        k2 = int(min(max(2 * k, 16), self.tree.n))
        if len(ui) and k2 > k:
            p2, d2, s2, un2 = self._nearest_of_k(pts[ui], k2, workers, max_snap_m)
            best_piece[ui], best_d[ui], best_s[ui] = p2, d2, s2
            ui = ui[un2] if un2 is not None else ui[:0]
        if len(ui) == 0:
            return best_piece, best_d, best_s
        lists = self.tree.query_ball_point(
            pts[ui], r=best_d[ui] + self.half_max_m + 1e-9, workers=workers
        )
        lens = np.fromiter((len(li) for li in lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter((j for li in lists for j in li), dtype=np.int64, count=int(lens.sum()))
        owner = np.repeat(ui, lens)
        dd, ss = self._exact(pts[owner, 0], pts[owner, 1], flat)
        # per owner: the smallest distance (ties: smallest piece index, for determinism)
        order = np.lexsort((flat, dd, owner))
        owner_s, first = np.unique(owner[order], return_index=True)
        pick = order[first]
        better = dd[pick] < best_d[owner_s]
        tgt = owner_s[better]
        best_piece[tgt] = flat[pick][better]
        best_d[tgt] = dd[pick][better]
        best_s[tgt] = ss[pick][better]
        logger.debug("snapping: %d of %d points needed the exact fallback", len(ui), len(pts))
        return best_piece, best_d, best_s

    def _place(
        self, network: RoadNetwork, piece: NDArray[np.int64], s: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Edge, offset along it, and the projected point, of fraction ``s`` along pieces."""
        edge = self.piece_edge[piece]
        t0 = self.t0[piece]
        frac = self.t1[piece]
        frac -= t0
        frac *= s
        frac += t0
        offset = network.edge_length_m[edge]
        offset *= frac
        sx = self.dx[piece]
        sx *= s
        sx += self.ax[piece]
        sy = self.dy[piece]
        sy *= s
        sy += self.ay[piece]
        return edge, offset, sx, sy


@dataclass(frozen=True)
class Snapped:
    """Points placed on the network.

    Attributes
    ----------
    edge : ndarray of int64
        Index of the nearest edge (always set, also for off-network points).
    offset_m : ndarray of float64
        Distance along the edge from its ``u`` end, in edge-length metres.
    access_m : ndarray of float64
        Straight-line metres from the point to the edge (the access leg).
    x, y : ndarray of float64
        The projection onto the edge, in the network CRS.
    on_network : ndarray of bool
        ``access_m <= max_snap_m``; False points are kept but reach nothing.
    max_snap_m : float
    """

    edge: NDArray[np.int64]
    offset_m: NDArray[np.float64]
    access_m: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    on_network: NDArray[np.bool_]
    max_snap_m: float

    def __len__(self) -> int:
        return len(self.edge)

    def routable_edge(self) -> NDArray[np.int64]:
        """``edge`` with -1 where the point is off the network (what routing expects)."""
        return np.where(self.on_network, self.edge, -1)


def snap_index(network: RoadNetwork, *, piece_m: float = DEFAULT_PIECE_M) -> SnapIndex:
    """The network's snapping index, built on first use and cached on the network."""
    key = f"snap_index_{piece_m}"
    if key not in network._cache:
        network._cache[key] = SnapIndex.build(network, piece_m=piece_m)
    return network._cache[key]


def snap_to_network(
    network: RoadNetwork,
    x: ArrayLike,
    y: ArrayLike,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    k: int = 6,
    piece_m: float = DEFAULT_PIECE_M,
) -> Snapped:
    """Snap points (network CRS metres) to the nearest point of the nearest edge.

    Parameters
    ----------
    network : RoadNetwork
    x, y : array_like
        Point coordinates in ``network.crs`` (metres).
    max_snap_m : float, default 300
        Longest access leg in metres; farther points are flagged ``on_network=False``.
    k : int, default 6
        Candidate pieces per point in the first pass (speed only; the result is exact).
    piece_m : float, default 40
        Piece length of the index (speed only).

    Returns
    -------
    Snapped
    """
    px = np.asarray(x, dtype=float).ravel()
    py = np.asarray(y, dtype=float).ravel()
    if px.shape != py.shape:
        raise ValueError(f"x and y differ in length: {px.shape} vs {py.shape}")
    if not (np.isfinite(max_snap_m) and max_snap_m >= 0):
        raise ValueError(f"max_snap_m must be a non-negative number of metres, got {max_snap_m}")
    n = len(px)
    idx = snap_index(network, piece_m=piece_m)
    if n == 0:
        e = np.zeros(0, np.int64)
        f = np.zeros(0, float)
        return Snapped(e, f, f, f, f, np.zeros(0, bool), max_snap_m)
    finite = np.isfinite(px) & np.isfinite(py)
    if not finite.all():
        raise ValueError("snap_to_network got NaN or infinite coordinates; validate inputs first")
    # visit the points in Morton (Z-curve) order: neighbouring queries touch the same tree nodes
    # and pieces, which roughly halves the time of a large batch; results are put back at the end
    zorder = _morton_order(px, py) if n >= 20_000 else None
    pts = np.empty((n, 2))
    if zorder is not None:
        np.take(px, zorder, out=pts[:, 0])
        np.take(py, zorder, out=pts[:, 1])
    else:
        pts[:, 0] = px
        pts[:, 1] = py
    out = Snapped(
        edge=np.empty(n, np.int64),
        offset_m=np.empty(n),
        access_m=np.empty(n),
        x=np.empty(n),
        y=np.empty(n),
        on_network=np.empty(n, bool),
        max_snap_m=float(max_snap_m),
    )

    def block(lo: int, hi: int, workers: int) -> None:
        piece, d, frac_s = idx._nearest(pts[lo:hi], k, workers, max_snap_m)
        at = slice(lo, hi) if zorder is None else zorder[lo:hi]
        out.edge[at], out.offset_m[at], out.x[at], out.y[at] = idx._place(network, piece, frac_s)
        out.access_m[at] = d
        out.on_network[at] = d <= max_snap_m

    # threads pay off for large batches only (small HTTP requests would wait for thread start-up);
    # blocks of the Z-curve per thread: the numpy work runs in parallel too, not just the
    # tree queries; blocks of at most _BLOCK_POINTS bound the temporaries (a city's million
    # residents would otherwise hold hundreds of megabytes of candidates per thread)
    threads = thread_budget() if n >= _BLOCKS_FROM else 1
    if threads > 1:
        n_blocks = max(threads, -(-n // _BLOCK_POINTS))
        cuts = np.linspace(0, n, n_blocks + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(lambda ab: block(ab[0], ab[1], 1), itertools.pairwise(cuts)):
                pass
    else:
        block(0, n, threads)
    return out


def _morton_order(
    x: NDArray[np.float64], y: NDArray[np.float64], *, cell_m: float = 400.0
) -> NDArray[np.int64]:
    """Indices that sort points along a Z-order curve of ``cell_m`` cells."""

    def spread(v: NDArray[np.int64]) -> NDArray[np.int64]:
        v = v & 0xFFFF
        v = (v | (v << 8)) & 0x00FF00FF
        v = (v | (v << 4)) & 0x0F0F0F0F
        v = (v | (v << 2)) & 0x33333333
        return (v | (v << 1)) & 0x55555555

    cx = np.floor((x - x.min()) / cell_m).astype(np.int64)
    cy = np.floor((y - y.min()) / cell_m).astype(np.int64)
    code = spread(cx) | (spread(cy) << 1)
    if code.max(initial=0) < 1 << 16:  # up to 256 x 256 cells: numpy sorts 16-bit keys by radix
        return np.argsort(code.astype(np.uint16), kind="stable")
    return np.argsort(code, kind="stable")


def outside_network_area(
    network: RoadNetwork, x: ArrayLike, y: ArrayLike, *, margin_m: float
) -> NDArray[np.bool_]:
    """True for points outside the network's convex hull grown by ``margin_m`` metres.

    Such points are almost always data errors (swapped lon/lat, a wrong coordinate system, a
    site in another county) rather than residents far from a street, so inputs reject them.
    """
    import shapely

    key = f"area_{margin_m}"
    if key not in network._cache:
        hull = _convex_hull(network.node_x, network.node_y)
        area = shapely.buffer(hull, margin_m)
        shapely.prepare(area)
        network._cache[key] = area
    area = network._cache[key]
    px = np.asarray(x, dtype=float)
    py = np.asarray(y, dtype=float)
    return ~shapely.contains_xy(area, px, py)


def _convex_hull(x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    """The convex hull of the points as a shapely geometry (Qhull on the coordinates: no
    MultiPoint of a million points is built)."""
    import shapely
    from scipy.spatial import ConvexHull, QhullError

    xy = np.column_stack([x, y])
    if len(xy) >= 3:
        try:
            return shapely.Polygon(xy[ConvexHull(xy).vertices])
        except QhullError:  # all points on one line
            pass
    return shapely.convex_hull(shapely.multipoints(xy))
