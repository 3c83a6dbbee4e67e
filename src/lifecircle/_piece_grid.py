"""The exact nearest straight piece of each point, on a uniform grid, compiled by Numba.

Every piece (a straight segment ``a + s d``, ``0 <= s <= 1``) is registered in each grid cell
its bounding box touches. For a point, the cells are searched in square rings around the
point's own cell: after ring ``r`` every piece with a point nearer than ``bound`` (the distance
from the point to the outside of the square searched so far) has been seen, because that piece
point lies in a searched cell and the piece is registered there. The search stops as soon as the
best distance found is ``<= bound``: the answer is exact. Ties go to the smaller piece index.

Points that are still unproven after ``max_rings`` rings (farther from every street than the
snapping limit, or outside the grid) are returned with piece ``-1``, for the caller's fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray


@dataclass(frozen=True)
class PieceGrid:
    """Pieces registered in the cells of a uniform grid (cells in row-major order)."""

    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    cell_start: NDArray[np.int64]  # registrations of cell c: cell_piece[cell_start[c]:...[c+1]]
    cell_piece: NDArray[np.int32]
    #: per piece ``ax, ay, dx, dy, 1 / (dx² + dy²)`` in one row (one cache line per piece;
    #: 0 in the last column for a piece of no length)
    pieces: NDArray[np.float64]

    @classmethod
    def build(
        cls,
        ax: NDArray[np.float64],
        ay: NDArray[np.float64],
        dx: NDArray[np.float64],
        dy: NDArray[np.float64],
        *,
        cell_m: float,
        max_cells_per_piece: float = 4.0,
    ) -> PieceGrid:
        """Register the pieces ``a + s d`` in a grid of ``cell_m`` cells (coarser when the
        network's bounding box would need more than ``max_cells_per_piece`` cells per piece)."""
        n = len(ax)
        x0 = float(min(ax.min(), (ax + dx).min()))
        y0 = float(min(ay.min(), (ay + dy).min()))
        width = float(max(ax.max(), (ax + dx).max())) - x0
        height = float(max(ay.max(), (ay + dy).max())) - y0
        # bound the memory of a sparse network over a large area (a province's roads)
        cell = max(cell_m, math.sqrt(width * height / (max_cells_per_piece * n)))
        # the kernels compute cells as floor((x - x0) / cell); one spare column and row keep the
        # largest coordinate inside the grid whatever the rounding
        nx = math.floor(width / cell) + 2
        ny = math.floor(height / cell) + 2
        packed = np.empty((n, 5))
        cell_start = np.zeros(nx * ny + 1, dtype=np.int64)
        n_reg = _pack_and_count(ax, ay, dx, dy, x0, y0, cell, nx, packed, cell_start)
        cell_piece = np.empty(n_reg, dtype=np.int32)
        _register(packed, x0, y0, cell, nx, cell_start, cell_piece)
        return cls(x0, y0, float(cell), nx, ny, cell_start, cell_piece, packed)

    def nearest(
        self,
        px: NDArray[np.float64],
        py: NDArray[np.float64],
        max_m: float,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """Nearest piece, its distance and the fraction along it, proven exact for every point
        whose nearest piece is within ``max_m`` (others may get ``-1``, see the module).

        Examples
        --------
        One 100 m piece along the x axis; a point 5 m off it, 30 m along:

        >>> import numpy as np
        >>> one = np.ones(1)
        >>> grid = PieceGrid.build(one * 0, one * 0, one * 100, one * 0, cell_m=40.0)
        >>> piece, dist, frac = grid.nearest(np.array([30.0]), np.array([5.0]), 300.0)
        >>> int(piece[0]), float(dist[0]), float(frac[0])
        (0, 5.0, 0.3)
        >>> grid.nearest(np.array([5000.0]), np.array([0.0]), 300.0)[0]  # beyond the limit
        array([-1])
        """
        n = len(px)
        piece = np.empty(n, np.int64)
        dist = np.empty(n)
        frac = np.empty(n)
        max_rings = math.ceil(max_m / self.cell_m) + 1
        _nearest_kernel(
            px,
            py,
            self.x0,
            self.y0,
            self.cell_m,
            self.nx,
            self.ny,
            self.cell_start,
            self.cell_piece,
            self.pieces,
            max_rings,
            piece,
            dist,
            frac,
        )
        return piece, dist, frac


@njit(nogil=True, cache=True)
def _cells_of(  # pragma: no cover - compiled
    row: NDArray[np.float64], x0: float, y0: float, cell: float
) -> tuple[int, int, int, int]:
    """First and last cell column and row that a piece's bounding box touches."""
    xa, ya = row[0], row[1]
    xb, yb = xa + row[2], ya + row[3]
    return (
        math.floor((min(xa, xb) - x0) / cell),
        math.floor((max(xa, xb) - x0) / cell),
        math.floor((min(ya, yb) - y0) / cell),
        math.floor((max(ya, yb) - y0) / cell),
    )


@njit(nogil=True, cache=True)
def _pack_and_count(  # pragma: no cover - compiled; tested through the grid search
    ax: NDArray[np.float64],
    ay: NDArray[np.float64],
    dx: NDArray[np.float64],
    dy: NDArray[np.float64],
    x0: float,
    y0: float,
    cell: float,
    nx: int,
    packed: NDArray[np.float64],
    cell_start: NDArray[np.int64],
) -> int:
    """Fill the packed piece rows; count each cell's pieces into ``cell_start[c + 1]`` and
    turn the counts into start offsets. Returns the number of registrations."""
    for k in range(len(ax)):
        packed[k, 0] = ax[k]
        packed[k, 1] = ay[k]
        packed[k, 2] = dx[k]
        packed[k, 3] = dy[k]
        den = dx[k] * dx[k] + dy[k] * dy[k]
        packed[k, 4] = 1.0 / den if den > 0.0 else 0.0
        i0, i1, j0, j1 = _cells_of(packed[k], x0, y0, cell)
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                cell_start[j * nx + i + 1] += 1
    for c in range(1, len(cell_start)):
        cell_start[c] += cell_start[c - 1]
    return cell_start[-1]


@njit(nogil=True, cache=True)
def _register(  # pragma: no cover - compiled; tested through the grid search
    packed: NDArray[np.float64],
    x0: float,
    y0: float,
    cell: float,
    nx: int,
    cell_start: NDArray[np.int64],
    cell_piece: NDArray[np.int32],
) -> None:
    """Each cell's pieces in increasing order (a counting sort by cell)."""
    cursor = cell_start[:-1].copy()
    for k in range(len(packed)):
        i0, i1, j0, j1 = _cells_of(packed[k], x0, y0, cell)
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                c = j * nx + i
                cell_piece[cursor[c]] = k
                cursor[c] += 1


@njit(nogil=True, cache=True)
def _gap(v: float, lo: float, cell: float) -> float:  # pragma: no cover - compiled
    """Distance along one axis from ``v`` to the interval ``[lo, lo + cell]``."""
    if v < lo:
        return lo - v
    if v > lo + cell:
        return v - lo - cell
    return 0.0


@njit(nogil=True, cache=True)
def _scan_cell(  # pragma: no cover - compiled; covered through _nearest_kernel
    c: int,
    x: float,
    y: float,
    cell_start: NDArray[np.int64],
    cell_piece: NDArray[np.int32],
    pieces: NDArray[np.float64],
    best: float,
    best_k: int,
    best_s: float,
) -> tuple[float, int, float]:
    for r in range(cell_start[c], cell_start[c + 1]):
        k = cell_piece[r]
        wx = x - pieces[k, 0]
        wy = y - pieces[k, 1]
        ddx = pieces[k, 2]
        ddy = pieces[k, 3]
        # pieces[k, 4] = 1 / |d|^2 (0 for a piece of no length: s = 0)
        s = min(max((wx * ddx + wy * ddy) * pieces[k, 4], 0.0), 1.0)
        ex = s * ddx - wx
        ey = s * ddy - wy
        d2 = ex * ex + ey * ey
        if d2 < best or (d2 == best and k < best_k):
            best = d2
            best_k = k
            best_s = s
    return best, best_k, best_s


@njit(nogil=True, cache=True)
def _nearest_kernel(  # pragma: no cover - compiled; its results are tested against brute force
    px: NDArray[np.float64],
    py: NDArray[np.float64],
    x0: float,
    y0: float,
    cell: float,
    nx: int,
    ny: int,
    cell_start: NDArray[np.int64],
    cell_piece: NDArray[np.int32],
    pieces: NDArray[np.float64],
    max_rings: int,
    out_piece: NDArray[np.int64],
    out_dist: NDArray[np.float64],
    out_frac: NDArray[np.float64],
) -> None:
    for p in range(len(px)):
        x = px[p]
        y = py[p]
        ci = math.floor((x - x0) / cell)
        cj = math.floor((y - y0) / cell)
        best = np.inf
        best_k = -1
        best_s = 0.0
        proven = False
        # the first ring nearest side first: the best found early skips the farther cells
        hx = 1 if x - x0 - ci * cell >= 0.5 * cell else -1
        hy = 1 if y - y0 - cj * cell >= 0.5 * cell else -1
        ring1 = ((hx, 0), (0, hy), (hx, hy), (-hx, 0), (0, -hy), (-hx, hy), (hx, -hy), (-hx, -hy))
        for r in range(max_rings + 1):
            lo_i = max(ci - r, 0)
            hi_i = min(ci + r, nx - 1)
            if r == 1:
                for di, dj in ring1:
                    i = ci + di
                    j = cj + dj
                    if 0 <= i < nx and 0 <= j < ny:
                        gx = _gap(x, x0 + i * cell, cell)
                        gy = _gap(y, y0 + j * cell, cell)
                        if gx * gx + gy * gy <= best:
                            best, best_k, best_s = _scan_cell(
                                j * nx + i, x, y, cell_start, cell_piece, pieces,
                                best, best_k, best_s,
                            )  # fmt: skip
            # the ring's bottom and top rows, then its left and right columns (inside the grid)
            # cells farther than the best so far are skipped (equal ones not: ties matter)
            for j in (cj - r, cj + r):
                if r == 1:
                    break
                if 0 <= j < ny:
                    gy = _gap(y, y0 + j * cell, cell)
                    for i in range(lo_i, hi_i + 1):
                        gx = _gap(x, x0 + i * cell, cell)
                        if gx * gx + gy * gy <= best:
                            best, best_k, best_s = _scan_cell(
                                j * nx + i, x, y, cell_start, cell_piece, pieces,
                                best, best_k, best_s,
                            )  # fmt: skip
                if r == 0:
                    break
            for i in (ci - r, ci + r):
                if r > 1 and 0 <= i < nx:
                    gx = _gap(x, x0 + i * cell, cell)
                    for j in range(max(cj - r + 1, 0), min(cj + r - 1, ny - 1) + 1):
                        gy = _gap(y, y0 + j * cell, cell)
                        if gx * gx + gy * gy <= best:
                            best, best_k, best_s = _scan_cell(
                                j * nx + i, x, y, cell_start, cell_piece, pieces,
                                best, best_k, best_s,
                            )  # fmt: skip
            if ci - r <= 0 and cj - r <= 0 and ci + r >= nx - 1 and cj + r >= ny - 1:
                proven = best_k >= 0  # every cell has been searched
                break
            # distance from the point to the outside of the square searched so far
            bound = min(
                x - (x0 + (ci - r) * cell),
                x0 + (ci + r + 1) * cell - x,
                y - (y0 + (cj - r) * cell),
                y0 + (cj + r + 1) * cell - y,
            )
            if best_k >= 0 and bound > 0.0 and best <= bound * bound:
                proven = True
                break
        if proven:
            out_piece[p] = best_k
            out_dist[p] = math.sqrt(best)
            out_frac[p] = best_s
        else:
            out_piece[p] = -1
            out_dist[p] = np.inf
            out_frac[p] = 0.0
