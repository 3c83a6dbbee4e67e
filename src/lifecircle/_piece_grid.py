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
        bx, by = ax + dx, ay + dy
        lo_x, hi_x = np.minimum(ax, bx), np.maximum(ax, bx)
        lo_y, hi_y = np.minimum(ay, by), np.maximum(ay, by)
        x0, y0 = float(lo_x.min()), float(lo_y.min())
        width = float(hi_x.max()) - x0
        height = float(hi_y.max()) - y0
        # bound the memory of a sparse network over a large area (a province's roads)
        cell = max(cell_m, math.sqrt(width * height / (max_cells_per_piece * len(ax))))
        nx = int(width // cell) + 1
        ny = int(height // cell) + 1
        i0 = ((lo_x - x0) // cell).astype(np.int64)
        i1 = ((hi_x - x0) // cell).astype(np.int64)
        j0 = ((lo_y - y0) // cell).astype(np.int64)
        j1 = ((hi_y - y0) // cell).astype(np.int64)
        wi = i1 - i0 + 1
        wj = j1 - j0 + 1
        per = wi * wj
        piece = np.repeat(np.arange(len(ax), dtype=np.int32), per)
        k = np.arange(len(piece)) - np.repeat(np.cumsum(per) - per, per)
        wj_r = np.repeat(wj, per)
        cells = (np.repeat(j0, per) + k % wj_r) * nx + np.repeat(i0, per) + k // wj_r
        order = np.argsort(cells, kind="stable")
        counts = np.bincount(cells, minlength=nx * ny)
        start = np.zeros(nx * ny + 1, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        den = dx * dx + dy * dy
        inv = np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)
        packed = np.column_stack([ax, ay, dx, dy, inv])
        return cls(x0, y0, float(cell), nx, ny, start, piece[order], packed)

    def nearest(
        self,
        px: NDArray[np.float64],
        py: NDArray[np.float64],
        max_m: float,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """Nearest piece, its distance and the fraction along it, proven exact for every point
        whose nearest piece is within ``max_m`` (others may get ``-1``, see the module)."""
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
