"""Site scoring and choosing the best k new sites of one tier (maximal covering).

Method
------
1. **Coverage first.** The residents' coverage for the tier (``{tier}_covered`` of a
   :class:`~lifecircle.coverage.CoverageResult`) says who is already within the standard of an
   existing facility. Existing facilities are fixed.
2. **Candidate x resident matrix.** Candidates are snapped onto the tier's network like any
   facility. :func:`lifecircle.routing.pair_distances_within` gives every (candidate, resident)
   pair within the tier's threshold, exactly (access legs, same-edge pairs and one-way streets
   included), in spatially compact blocks of candidates, each routed on the local part of the
   network it can reach (see :func:`build_site_matrix`), so memory stays bounded and the work
   grows with the candidates, not with candidates x network size. The pairs form a sparse CSR
   matrix ``A`` (candidates x residents, a 1 where the resident is within the threshold of the
   candidate), with the network metres kept alongside.
3. **Scores.** With ``w`` the residents' weight (population, elderly or children) and ``u = w *
   (not covered)``: ``marginal_gain = A @ u`` (weighted residents the candidate alone would newly
   bring within the standard), ``total_within = A @ w`` and ``overlap = total_within -
   marginal_gain`` (people within reach who are already covered). A candidate on top of an
   existing facility therefore gains 0. Each candidate also gets the network distance to the
   nearest existing facility of the tier, its snap distance, the admin units it lies in and a
   one-line reason in Chinese and English.
4. **Greedy selection** of ``k`` sites with lazy re-evaluation: a max-heap holds upper bounds of
   every candidate's gain; the top entry is re-evaluated against the current coverage and picked
   if it still beats the next bound, otherwise pushed back with its new value. Gains can only
   shrink as coverage grows, so bounds stay valid and the result equals plain greedy (which is
   within ``1 - 1/e`` of the optimum for this submodular objective). The gain of each pick is
   never larger than the one before.
5. **Exact selection** (``method="exact"``): the maximal covering location problem (MCLP,
   Church & ReVelle 1974) solved as a MILP by HiGHS (:func:`scipy.optimize.milp`)::

       maximise   sum_g W_g z_g
       subject to z_g <= sum_{i covers g} x_i,   sum_i x_i <= k,   x binary, 0 <= z_g <= 1

   over the *uncovered* residents only, merged into groups ``g`` with identical candidate sets
   (``W_g``: their summed weight). Instances above :data:`MAX_EXACT_PAIRS` non-zeros of the
   reduced matrix or :data:`MAX_EXACT_CANDIDATES` candidates are refused with an error (use the
   greedy method). The greedy objective on the same instance is reported, and the gap.

Capacity (optional)
-------------------
A candidate with a ``capacity`` (people a site can serve, in units of the weight) newly covers at
most that much. In scoring, ``marginal_gain = min(capacity, A @ u)``. In greedy selection a picked
site serves the uncovered residents within reach **nearest first** until its capacity is used up
(the last one partly: residents are points carrying many people); the rest stay uncovered for
later picks. The exact capacitated model adds assignment variables ``0 <= y_ig <= x_i`` (share of
group ``g`` served by site ``i``) with ``sum_i y_ig <= 1`` and ``sum_g W_g y_ig <= capacity_i``,
maximising ``sum W_g y_ig``. Without a capacity (empty cell) a site has no limit.

Automatic candidates
--------------------
:func:`auto_candidates` proposes sites inside the gaps: uncovered on-network residents of the
tier are binned into square cells of ``threshold_m / 2`` (aligned to the CRS origin); each cell
with uncovered weight proposes the point of the street network nearest to the weighted centroid
of its uncovered residents; the ``n`` cells with the most uncovered weight are kept (identical
street points merged). The proposals are then scored exactly like user candidates.

Batch runs and resuming
-----------------------
:func:`build_site_matrix` works through the candidates in blocks (``chunk`` candidates at a time,
default sized so one block's node-distance matrix stays within
:data:`lifecircle.routing.CHUNK_CELLS`). With ``checkpoint_dir`` each finished block's pairs are
saved there (``block_NNNNNNN.npz``, written atomically, with a ``manifest.json`` fingerprint of the
inputs); a later call with ``resume=True`` and identical inputs loads the finished blocks instead of
routing them again.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from lifecircle._threads import thread_budget
from lifecircle.config import Tier
from lifecircle.coverage import CoverageResult, Located, locate, tier_columns
from lifecircle.errors import InputError
from lifecircle.io import UnitLayer
from lifecircle.network import RoadNetwork, from_arrays
from lifecircle.routing import (
    Positions,
    RoutingGraph,
    chunk_size,
    nearest_sources,
    pair_distances_within,
)
from lifecircle.snapping import snap_to_network
from lifecircle.units import unit_columns

if TYPE_CHECKING:
    import geopandas as gpd

logger = logging.getLogger(__name__)

#: Resident columns that can weight the objective.
WEIGHTS: Final = ("population", "elderly", "children")
#: Largest exact instance: non-zeros of the reduced (candidates x resident groups) matrix.
MAX_EXACT_PAIRS: Final = 200_000
#: Largest exact instance: number of candidates.
MAX_EXACT_CANDIDATES: Final = 5_000
#: Default number of automatic candidates.
DEFAULT_AUTO_N: Final = 200
#: Folder (inside the output folder) holding per-block partial results of a batch run.
PARTIAL_DIR_NAME: Final = ".score_partial"

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# -- the candidate x resident matrix ---------------------------------------------------------


@dataclass(frozen=True)
class SiteMatrix:
    """Which residents lie within the threshold of which candidate (CSR, candidates as rows).

    Attributes
    ----------
    indptr : ndarray of int64, shape (n_candidates + 1,)
    indices : ndarray of int64
        Resident indices, sorted within each row.
    distance_m : ndarray of float64
        Network metres (access legs included) of each stored pair, aligned with ``indices``.
    n_residents : int
    """

    indptr: IntArray
    indices: IntArray
    distance_m: FloatArray
    n_residents: int

    @property
    def n_candidates(self) -> int:
        """Number of rows."""
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        """Stored (candidate, resident) pairs."""
        return len(self.indices)

    def csr(self) -> sp.csr_matrix:
        """The 0/1 coverage matrix as ``scipy.sparse.csr_matrix`` (float64)."""
        return sp.csr_matrix(
            (np.ones(self.nnz), self.indices, self.indptr),
            shape=(self.n_candidates, self.n_residents),
        )

    def row(self, i: int) -> tuple[IntArray, FloatArray]:
        """Residents within reach of candidate ``i`` and their distances."""
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.distance_m[a:b]

    @classmethod
    def from_pairs(
        cls,
        cand: IntArray,
        res: IntArray,
        dist_m: FloatArray,
        *,
        n_candidates: int,
        n_residents: int,
    ) -> SiteMatrix:
        """Build from unordered pair arrays (no duplicates expected)."""
        order = np.lexsort((res, cand))
        cand, res, dist_m = cand[order], res[order], dist_m[order]
        indptr = np.zeros(n_candidates + 1, dtype=np.int64)
        np.cumsum(np.bincount(cand, minlength=n_candidates), out=indptr[1:])
        return cls(indptr, res.astype(np.int64), dist_m.astype(np.float64), int(n_residents))


class Checkpoint:
    """Per-block partial results of :func:`build_site_matrix` in a folder (see module docstring)."""

    def __init__(self, directory: str | Path, fingerprint: str, *, resume: bool) -> None:
        self.dir = Path(directory)
        self.fingerprint = fingerprint
        manifest = self.dir / "manifest.json"
        if self.dir.exists() and any(self.dir.iterdir()):
            if not resume:
                raise InputError(
                    f"{self.dir} holds partial results of an earlier run; pass --resume "
                    "(resume=True) to continue it, or --overwrite to start afresh"
                )
            try:
                old = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
            except (OSError, ValueError):
                old = None
            if old != fingerprint:
                raise InputError(
                    f"{self.dir} holds partial results of a run with different inputs or options; "
                    "pass --overwrite to discard them and start afresh"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_name(f".manifest.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")
        os.replace(tmp, manifest)

    def _path(self, start: int) -> Path:
        return self.dir / f"block_{start:07d}.npz"

    def load(self, start: int) -> tuple[IntArray, IntArray, FloatArray] | None:
        """The saved pairs of the block starting at candidate ``start``, or None."""
        p = self._path(start)
        if not p.exists():
            return None
        with np.load(p) as z:
            return (
                z["cand"].astype(np.int64),
                z["res"].astype(np.int64),
                z["dist"].astype(np.float64),
            )

    def save(self, start: int, cand: IntArray, res: IntArray, dist_m: FloatArray) -> None:
        """Save one block's pairs atomically."""
        p = self._path(start)
        tmp = p.with_name(f".{p.stem}.tmp{os.getpid()}.npz")
        np.savez(
            tmp,
            cand=cand.astype(np.int32),
            res=res.astype(np.int32),
            dist=dist_m.astype(np.float64),
        )
        os.replace(tmp, p)

    def remove(self) -> None:
        """Delete the folder (after the final outputs are written)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def fingerprint(*arrays: np.ndarray, extra: str = "") -> str:
    """A SHA-256 over arrays and a text (identifies the inputs of a resumable run)."""
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def build_site_matrix(
    network: RoadNetwork,
    candidates: Positions,
    residents: Positions,
    candidate_xy: FloatArray,
    resident_xy: FloatArray,
    *,
    threshold_m: float,
    chunk: int | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> SiteMatrix:
    """All (candidate, resident) pairs within ``threshold_m`` network metres, block by block.

    Candidates are put in spatial (Z-order) sequence and cut into blocks of ``chunk``. Each
    block is routed on the part of the network that can matter: every edge with an end within
    ``threshold_m`` (straight line) of one of the block's candidates, plus the candidates' own
    edges. A network path never leaves the disc of its length around its start, so the pairs and
    distances are exactly those of the whole network, while the work per block stays local.

    Parameters
    ----------
    network : RoadNetwork
        The tier's network.
    candidates, residents : Positions
        Snapped positions on ``network`` (``edge = -1``: off the network, never within reach).
    candidate_xy, resident_xy : ndarray, shape (k, 2) / (n, 2)
        Original coordinates (metres, the network CRS), for the straight-line pre-filters.
    threshold_m : float
        The tier's standard distance in metres.
    chunk : int, optional
        Candidates per block (one multi-source search each); default sized by
        :func:`lifecircle.routing.chunk_size` so that even a block spanning the whole network
        stays within :data:`lifecircle.routing.CHUNK_CELLS`.
    checkpoint : Checkpoint, optional
        Saves each block and skips blocks already saved.
    progress : callable, optional
        Called as ``progress(finished_in_block, total_candidates)`` after every block.

    Returns
    -------
    SiteMatrix
    """
    from scipy.spatial import cKDTree

    k = len(candidates)
    n = len(residents)
    block = int(chunk or chunk_size(network.n_nodes, max(1, k)))
    if block < 1:
        raise InputError(f"chunk must be a positive number of candidates, got {chunk}")
    res_ok = np.flatnonzero(residents.edge >= 0)
    res_tree = cKDTree(resident_xy[res_ok]) if len(res_ok) else None
    node_tree = network._cache.get("siting_node_tree")
    if node_tree is None:
        node_tree = cKDTree(np.column_stack([network.node_x, network.node_y]))
        network._cache["siting_node_tree"] = node_tree
    radius = threshold_m * 1.001 + 1.0
    order = spatial_order(candidate_xy, cell_m=max(threshold_m, 1.0))
    parts_c: list[IntArray] = []
    parts_r: list[IntArray] = []
    parts_d: list[FloatArray] = []
    for start in range(0, k, block):
        idx = order[start : start + block]
        saved = checkpoint.load(start) if checkpoint is not None else None
        if saved is not None:
            c, r, d = saved
        else:
            c, r, d = _block_pairs(
                network,
                node_tree,
                res_tree,
                res_ok,
                candidates,
                residents,
                candidate_xy,
                resident_xy,
                idx,
                radius,
                threshold_m,
            )
            if checkpoint is not None:
                checkpoint.save(start, c, r, d)
        parts_c.append(c)
        parts_r.append(r)
        parts_d.append(d)
        if progress is not None:
            progress(len(idx), k)
    if parts_c:
        cc, rr, dd = np.concatenate(parts_c), np.concatenate(parts_r), np.concatenate(parts_d)
    else:
        cc = rr = np.zeros(0, np.int64)
        dd = np.zeros(0)
    return SiteMatrix.from_pairs(cc, rr, dd, n_candidates=k, n_residents=n)


def spatial_order(xy: FloatArray, *, cell_m: float) -> IntArray:
    """Indices of points in Z-order (Morton) of ``cell_m`` cells, so that blocks are compact."""
    if len(xy) == 0:
        return np.zeros(0, np.int64)
    cell = np.floor((xy - xy.min(axis=0)) / cell_m).astype(np.uint64)
    cell = np.minimum(cell, np.uint64(2**31 - 1))
    code = np.zeros(len(xy), dtype=np.uint64)
    for bit in range(31):
        b = np.uint64(bit)
        code |= ((cell[:, 0] >> b) & np.uint64(1)) << np.uint64(2 * bit)
        code |= ((cell[:, 1] >> b) & np.uint64(1)) << np.uint64(2 * bit + 1)
    return np.argsort(code, kind="stable").astype(np.int64)


def _flat(lists: Any) -> IntArray:
    """Concatenate a sequence of index lists (from a KD-tree ball query)."""
    arrs = [np.asarray(x, dtype=np.int64) for x in lists if len(x)]
    return np.concatenate(arrs) if arrs else np.zeros(0, np.int64)


def _block_pairs(
    network: RoadNetwork,
    node_tree: Any,
    res_tree: Any,
    res_ok: IntArray,
    candidates: Positions,
    residents: Positions,
    candidate_xy: FloatArray,
    resident_xy: FloatArray,
    idx: IntArray,
    radius: float,
    threshold_m: float,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Pairs of one block, routed on the local part of the network (see build_site_matrix)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    live = idx[candidates.edge[idx] >= 0]
    if res_tree is None or len(live) == 0:
        return empty
    threads = thread_budget()
    near = np.unique(
        _flat(res_tree.query_ball_point(candidate_xy[live], r=radius, workers=threads))
    )
    if len(near) == 0:
        return empty
    near = res_ok[near]
    # the local network: edges with an end near a candidate, and the candidates' own edges
    inside = np.zeros(network.n_nodes, dtype=bool)
    inside[_flat(node_tree.query_ball_point(candidate_xy[live], r=radius, workers=threads))] = True
    keep = inside[network.edge_u] | inside[network.edge_v]
    keep[candidates.edge[live]] = True
    edges = np.flatnonzero(keep)
    nodes, inv = np.unique(
        np.concatenate([network.edge_u[edges], network.edge_v[edges]]), return_inverse=True
    )
    inv = inv.ravel()
    local = from_arrays(
        network.node_x[nodes],
        network.node_y[nodes],
        inv[: len(edges)],
        inv[len(edges) :],
        crs=network.crs,
        mode=network.mode,
        edge_length_m=network.edge_length_m[edges],
        edge_oneway=network.edge_oneway[edges],
        source="local block",
    )
    edge_map = np.full(network.n_edges, -1, dtype=np.int64)
    edge_map[edges] = np.arange(len(edges))
    near = near[edge_map[residents.edge[near]] >= 0]
    if len(near) == 0:
        return empty
    cpos = Positions(
        edge_map[candidates.edge[live]], candidates.offset_m[live], candidates.access_m[live]
    )
    rpos = Positions(
        edge_map[residents.edge[near]], residents.offset_m[near], residents.access_m[near]
    )
    graph = RoutingGraph.from_network(local)
    s, d, m = pair_distances_within(
        graph,
        cpos,
        rpos,
        candidate_xy[live],
        resident_xy[near],
        limit_m=threshold_m,
        chunk=len(live),
    )
    return live[s].astype(np.int64), near[d].astype(np.int64), m


# -- greedy and exact selection ----------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Chosen sites in pick order.

    Attributes
    ----------
    order : ndarray of int64
        Candidate indices in pick order.
    gain : ndarray of float64
        Weight newly covered by each pick, given the earlier picks.
    served : ndarray of float64, shape (n_residents,)
        Share (0..1) of each resident newly covered by the selection.
    method : str
    objective : float
        Total weight newly covered (``gain.sum()``, or the solver's objective).
    extra : dict
        Per pick, the newly covered amount of each array passed as ``also`` (e.g. people and
        elderly when the weight is another column); NaN where unknown.
    """

    order: IntArray
    gain: FloatArray
    served: FloatArray
    method: str
    objective: float
    extra: dict[str, FloatArray] = field(default_factory=dict)


def _take(idx: IntArray, dist: FloatArray, avail: FloatArray, cap: float) -> FloatArray:
    """Weight taken from each resident of one row: all, or nearest first up to ``cap``."""
    if not np.isfinite(cap) or avail.sum() <= cap:
        return avail.copy()
    order = np.lexsort((idx, dist))
    a = avail[order]
    before = np.cumsum(a) - a
    taken = np.clip(cap - before, 0.0, a)
    out = np.empty_like(avail)
    out[order] = taken
    return out


def greedy_select(
    matrix: SiteMatrix,
    uncovered_weight: FloatArray,
    k: int,
    *,
    capacity: FloatArray | None = None,
    restrict: IntArray | None = None,
    also: dict[str, FloatArray] | None = None,
    uncovered: NDArray[np.bool_] | None = None,
) -> Selection:
    """Greedy maximal covering with lazy re-evaluation (see the module docstring).

    Parameters
    ----------
    matrix : SiteMatrix
    uncovered_weight : ndarray, shape (n_residents,)
        Weight of each resident not yet covered (0 for covered ones).
    k : int
        Sites to pick (fewer when no remaining candidate adds anything).
    capacity : ndarray, shape (n_candidates,), optional
        People (weight units) each site can serve; ``inf`` for no limit.
    restrict : ndarray of int, optional
        Only these candidates may be picked.
    also : dict of ndarray, optional
        Other per-resident amounts (uncovered people, elderly) to break each pick down by.
    uncovered : ndarray of bool, optional
        Residents not yet covered (default ``uncovered_weight > 0``); zero-weight ones among them
        are covered along with their neighbours by a site without a capacity.

    Returns
    -------
    Selection
        ``served`` is the share of each resident newly covered.
    """
    u = np.asarray(uncovered_weight, dtype=float)
    cap = np.full(matrix.n_candidates, np.inf) if capacity is None else np.asarray(capacity, float)
    start = (u > 0) if uncovered is None else np.asarray(uncovered, bool)
    open_ = start.astype(float)  # share of each resident not yet covered
    a = matrix.csr()
    bound = np.minimum(a @ u, cap)
    pool = np.arange(matrix.n_candidates) if restrict is None else np.asarray(restrict, np.int64)
    pool = pool[bound[pool] > 0]
    heap = list(zip((-bound[pool]).tolist(), pool.tolist(), strict=True))
    heapq.heapify(heap)
    order: list[int] = []
    gains: list[float] = []
    extra = {n: np.asarray(v, dtype=float) for n, v in (also or {}).items()}
    extra_vals: dict[str, list[float]] = {n: [] for n in extra}
    while heap and len(order) < k:
        _neg, i = heapq.heappop(heap)
        idx, dist = matrix.row(i)
        avail = u[idx] * open_[idx]
        g = min(float(avail.sum()), float(cap[i]))
        if g <= 0:
            continue
        if heap and (-g, i) > heap[0]:  # ties go to the lower index, as in plain greedy
            heapq.heappush(heap, (-g, i))
            continue
        if np.isfinite(cap[i]):
            taken = _take(idx, dist, avail, float(cap[i]))
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(u[idx] > 0, taken / u[idx], 0.0)
            share = np.minimum(share, open_[idx])
        else:
            share = open_[idx].copy()
        for name, arr in extra.items():
            extra_vals[name].append(float((arr[idx] * share).sum()))
        open_[idx] -= share
        order.append(i)
        gains.append(float((u[idx] * share).sum()))
    served = start - open_
    gain = np.asarray(gains, dtype=float)
    return Selection(
        np.asarray(order, dtype=np.int64),
        gain,
        served,
        "greedy",
        float(gain.sum()),
        {n: np.asarray(v, dtype=float) for n, v in extra_vals.items()},
    )


def _group_residents(
    a: sp.csr_matrix, u: FloatArray
) -> tuple[sp.csr_matrix, FloatArray, IntArray, IntArray]:
    """Merge uncovered residents with identical candidate sets.

    Returns the candidates x groups matrix, the group weights, the residents taking part and
    each one's group. Identical column sets are found by two random projections plus the count.
    """
    cols = np.flatnonzero((u > 0) & (np.asarray(a.sum(axis=0)).ravel() > 0))
    sub = a[:, cols].tocsc()
    r = np.random.default_rng(12345).random((2, a.shape[0]))
    key = np.column_stack([sub.T @ r[0], sub.T @ r[1], np.diff(sub.indptr)])
    _uniq, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel().astype(np.int64)
    weights = np.bincount(inverse, weights=u[cols], minlength=len(first))
    return sub[:, first].tocsr(), weights.astype(np.float64), cols.astype(np.int64), inverse


def exact_select(
    matrix: SiteMatrix,
    uncovered_weight: FloatArray,
    k: int,
    *,
    capacity: FloatArray | None = None,
    also: dict[str, FloatArray] | None = None,
    uncovered: NDArray[np.bool_] | None = None,
    max_pairs: int = MAX_EXACT_PAIRS,
    max_candidates: int = MAX_EXACT_CANDIDATES,
    time_limit_s: float | None = None,
) -> Selection:
    """Solve the maximal covering location problem exactly.

    A MILP solved by HiGHS via :func:`scipy.optimize.milp`.

    Parameters
    ----------
    matrix, uncovered_weight, k, capacity, also, uncovered
        As for :func:`greedy_select`. Without capacities the chosen sites are put in greedy order
        among themselves (their gains are then true marginal gains summing to the objective);
        with capacities they are ordered by the weight the solution assigns to them, and the
        ``also`` breakdown is NaN.
    max_pairs, max_candidates : int
        Refuse larger instances (see :data:`MAX_EXACT_PAIRS`).
    time_limit_s : float, optional
        Solver time limit; a run that stops on it raises (no unproven result is returned).

    Raises
    ------
    InputError
        If the instance is too large or the solver fails.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    u = np.asarray(uncovered_weight, dtype=float)
    a = matrix.csr()
    useful = np.flatnonzero(np.asarray(a @ (u > 0).astype(float)).ravel() > 0)
    if len(useful) > max_candidates:
        raise InputError(
            f"--method exact handles at most {max_candidates:,} candidates that reach uncovered "
            f"residents; this instance has {len(useful):,}. "
            "Use --method greedy, or fewer candidates"
        )
    sub = a[useful]
    grouped, gw, members, member_group = _group_residents(sub, u)
    if grouped.nnz > max_pairs:
        raise InputError(
            f"--method exact handles at most {max_pairs:,} candidate x resident-group pairs; this "
            f"instance has {grouped.nnz:,} ({len(useful):,} candidates, {grouped.shape[1]:,} "
            "groups of uncovered residents). Use --method greedy, or fewer candidates"
        )
    cap = (
        np.full(matrix.n_candidates, np.inf) if capacity is None else np.asarray(capacity, float)
    )[useful]
    capacitated = bool(np.isfinite(cap).any())
    n_sites, n_groups = grouped.shape
    # a tiny cost per site (far below the smallest group weight) so no useless site is opened
    eps = float(gw.min()) * 1e-3 / (k + 1) if len(gw) else 0.0
    coo = grouped.tocoo()
    if not capacitated:
        # variables [x_i (binary) | z_g (0..1)]: z_g <= sum_{i covers g} x_i
        n_aux = n_groups
        gain = np.asarray(gw, float)
        cover = sp.hstack([-grouped.T.tocsr(), sp.identity(n_groups, format="csr")], format="csr")
        rows = [LinearConstraint(cover, -np.inf, 0.0)]
    else:
        # variables [x_i (binary) | y_t (0..1) per (site, group) pair t]
        n_aux = coo.nnz
        t = np.arange(coo.nnz)
        gain = np.asarray(gw, float)[coo.col]
        y_le_x = sp.csr_matrix(
            (
                np.r_[np.ones(coo.nnz), -np.ones(coo.nnz)],
                (np.r_[t, t], np.r_[n_sites + t, coo.row]),
            ),
            shape=(coo.nnz, n_sites + n_aux),
        )
        once = sp.csr_matrix(
            (np.ones(coo.nnz), (coo.col, n_sites + t)), shape=(n_groups, n_sites + n_aux)
        )
        rows = [LinearConstraint(y_le_x, -np.inf, 0.0), LinearConstraint(once, -np.inf, 1.0)]
        lim = np.flatnonzero(np.isfinite(cap))
        if len(lim):
            cap_row = np.full(n_sites, -1, dtype=np.int64)
            cap_row[lim] = np.arange(len(lim))
            pick = cap_row[coo.row] >= 0
            r_idx = cap_row[coo.row[pick]]
            cap_rows = sp.csr_matrix(
                (
                    np.r_[gain[pick], -cap[lim]],
                    (np.r_[r_idx, np.arange(len(lim))], np.r_[n_sites + t[pick], lim]),
                ),
                shape=(len(lim), n_sites + n_aux),
            )
            rows.append(LinearConstraint(cap_rows, -np.inf, 0.0))
    budget = sp.csr_matrix(np.r_[np.ones(n_sites), np.zeros(n_aux)][None, :])
    rows.append(LinearConstraint(budget, -np.inf, float(k)))
    cost = np.r_[np.full(n_sites, eps), -gain]
    integrality = np.r_[np.ones(n_sites), np.zeros(n_aux)]
    options = {"time_limit": float(time_limit_s)} if time_limit_s is not None else {}
    sol = milp(
        cost, constraints=rows, integrality=integrality, bounds=Bounds(0.0, 1.0), options=options
    )
    if sol.status != 0 or sol.x is None:
        raise InputError(
            f"the exact solver (HiGHS) stopped without a proven optimum: {sol.message}"
        )
    xv = sol.x[:n_sites] > 0.5
    aux = np.clip(sol.x[n_sites:], 0.0, 1.0)
    chosen = useful[xv]
    objective = float(gain @ aux)
    if not capacitated:
        # order the chosen sites greedily among themselves: true marginal gains, same total
        sel = greedy_select(matrix, u, len(chosen), restrict=chosen, also=also, uncovered=uncovered)
        return Selection(sel.order, sel.gain, sel.served, "exact", objective, sel.extra)
    yv = aux
    site_gain = np.bincount(coo.row, weights=gw[coo.col] * yv, minlength=len(useful))[xv].astype(
        np.float64
    )
    order = np.argsort(-site_gain, kind="stable")
    group_share = np.minimum(np.bincount(coo.col, weights=yv, minlength=grouped.shape[1]), 1.0)
    served = np.zeros(len(u))
    served[members] = group_share[member_group]
    nan = np.full(len(order), np.nan)
    return Selection(
        chosen[order].astype(np.int64),
        site_gain[order],
        served,
        "exact",
        objective,
        {n: nan for n in (also or {})},
    )


# -- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringResult:
    """Scores of candidate sites for one tier, and the selected ones.

    Attributes
    ----------
    tier : Tier
    weight : str
        ``population``, ``elderly`` or ``children``.
    candidates : pandas.DataFrame
        One row per candidate, ranked (see :data:`CANDIDATE_COLUMNS`).
    picks : pandas.DataFrame
        One row per selected site in pick order: ``pick``, ``candidate_id``, ``gain``,
        ``gain_population``, ``gain_elderly``, ``cumulative_covered``, ``cumulative_share``.
    before, after : dict
        Weighted coverage of the tier before and after adding the selected sites:
        ``weight_total``, ``weight_covered``, ``share``.
    exact : dict or None
        For ``method="exact"``: ``objective``, ``greedy_objective``, ``gap`` and ``gap_share``.
    matrix : SiteMatrix
    served : ndarray
        Per resident, share newly covered by the selection.
    uncovered : ndarray of bool
        Per resident, not covered by existing facilities before the selection.
    timings_s : dict
    """

    tier: Tier
    weight: str
    method: str
    candidates: pd.DataFrame
    picks: pd.DataFrame
    before: dict[str, float]
    after: dict[str, float]
    exact: dict[str, float] | None
    matrix: SiteMatrix = field(repr=False)
    served: FloatArray = field(repr=False)
    uncovered: NDArray[np.bool_] = field(repr=False)
    timings_s: dict[str, float] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The ranked candidates as written to ``candidates.csv``: weights to 3 decimals, metres
        to centimetres, WGS84 degrees to 7 decimals, without the analysis-CRS ``x``/``y``."""
        table = self.candidates.copy()
        for c in (
            "marginal_gain",
            "marginal_gain_population",
            "marginal_gain_elderly",
            "total_within",
            "overlap",
            "pick_gain",
        ):
            table[c] = table[c].round(3)
        for c in ("nearest_existing_m", "snap_m"):
            table[c] = table[c].round(2)
        table["overlap_share"] = table["overlap_share"].round(4)
        table["cumulative_share"] = table["cumulative_share"].round(6)
        table[["lon", "lat"]] = table[["lon", "lat"]].round(7)
        return table.drop(columns=["x", "y"])

    def to_gdf(self) -> gpd.GeoDataFrame:
        """:meth:`table` as points in EPSG:4326 (infinite distances as nulls)."""
        import geopandas as gpd

        table = self.table().replace([np.inf, -np.inf], np.nan)
        return gpd.GeoDataFrame(
            table, geometry=gpd.points_from_xy(table["lon"], table["lat"]), crs="EPSG:4326"
        )

    def best(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` best candidates (plain data)."""
        cols = [
            c
            for c in (
                "rank",
                "candidate_id",
                "name",
                "marginal_gain",
                "total_within",
                "nearest_existing_m",
                "selected",
                "reason_zh",
                "reason_en",
            )
            if c in self.candidates.columns
        ]
        return _records(self.candidates.head(n)[cols])

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (tier, coverage before/after, picks, best sites)."""
        return {
            "tier": {
                "key": self.tier.key,
                "label_zh": self.tier.label_zh,
                "label_en": self.tier.label_en,
                "mode": self.tier.mode,
                "threshold_m": self.tier.threshold_m,
            },
            "weight": self.weight,
            "method": self.method,
            "candidates_scored": len(self.candidates),
            "candidates_with_gain": int((self.candidates["marginal_gain"] > 0).sum()),
            "pairs_within_threshold": self.matrix.nnz,
            "coverage_before": self.before,
            "coverage_after": self.after,
            "picks": _records(self.picks),
            "exact": self.exact,
            "best_sites": self.best(10),
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict("records"):
        clean = {}
        for k, v in rec.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


#: Columns of the candidates table, in order (unit columns ``{key}_id``/``{key}_name`` are
#: inserted before ``reason_zh`` when units are given).
CANDIDATE_COLUMNS: Final = (
    "rank",
    "candidate_id",
    "name",
    "selected",
    "pick_gain",
    "cumulative_share",
    "marginal_gain",
    "marginal_gain_population",
    "marginal_gain_elderly",
    "total_within",
    "overlap",
    "overlap_share",
    "residents_within",
    "residents_new",
    "nearest_existing_m",
    "nearest_existing_id",
    "snap_m",
    "on_network",
    "capacity",
    "reason_zh",
    "reason_en",
    "lon",
    "lat",
    "x",
    "y",
)


def resident_weight(residents: pd.DataFrame, weight: str) -> FloatArray:
    """The weight column of a coverage result's residents (NaN -> 0).

    Raises
    ------
    InputError
        If ``weight`` is unknown or the residents have no such numbers.
    """
    if weight not in WEIGHTS:
        raise InputError(f"weight must be one of {', '.join(WEIGHTS)}, got {weight!r}")
    if weight not in residents.columns or residents[weight].isna().all():
        raise InputError(f"--weight {weight}: the residents file has no {weight} column")
    return np.nan_to_num(residents[weight].to_numpy(float), nan=0.0)


def score_sites(
    coverage: CoverageResult,
    network: RoadNetwork,
    candidates: pd.DataFrame,
    tier: str,
    *,
    weight: str = "population",
    select_k: int = 0,
    method: str = "greedy",
    located: Located | None = None,
    units: Sequence[UnitLayer] = (),
    chunk: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int], Any] | None = None,
    max_exact_pairs: int = MAX_EXACT_PAIRS,
) -> ScoringResult:
    """Score candidate sites for one tier and optionally select the best ``select_k``.

    A pure function of its inputs (no files unless ``checkpoint_dir``): the HTTP service calls it
    with a handful of candidate points.

    Parameters
    ----------
    coverage : CoverageResult
        Existing coverage; must include ``tier``.
    network : RoadNetwork
        The tier's network (``coverage.standard.tier(tier).mode``), in ``coverage.crs``.
    candidates : DataFrame
        ``id``, ``lon``, ``lat`` (WGS84 degrees); optional ``name`` and ``capacity`` (people,
        in weight units; NaN/inf = no limit).
    tier : str
        Tier key (e.g. ``"station"``).
    weight : {"population", "elderly", "children"}
    select_k : int, default 0
        Sites to choose (0: score only).
    method : {"greedy", "exact"}
    located : Located, optional
        Pre-snapped candidates (as from :func:`lifecircle.coverage.locate`).
    units : sequence of UnitLayer
        Admin units; adds ``{key}_id`` and ``{key}_name`` per candidate.
    chunk : int, optional
        Candidates per routing block.
    checkpoint_dir, resume, progress
        See :func:`build_site_matrix` and :class:`Checkpoint`.
    max_exact_pairs : int
        Size limit of the exact method.

    Returns
    -------
    ScoringResult
    """
    t0 = time.perf_counter()
    std = coverage.standard
    t = std.tier(tier)
    if method not in ("greedy", "exact"):
        raise InputError(f"method must be 'greedy' or 'exact', got {method!r}")
    if select_k < 0:
        raise InputError(f"select must be >= 0, got {select_k}")
    cols = tier_columns(t.key)
    if cols["covered"] not in coverage.residents.columns:
        raise InputError(f"the coverage result has no tier {t.key!r}")
    for c in ("id", "lon", "lat"):
        if c not in candidates.columns:
            raise InputError(f"candidates need a {c!r} column")
    if network.crs != coverage.crs:
        raise InputError(f"the network is in {network.crs} but the coverage in {coverage.crs}")
    res = coverage.residents
    w = resident_weight(res, weight)
    pop = np.nan_to_num(res["population"].to_numpy(float), nan=0.0)
    eld = (
        np.nan_to_num(res["elderly"].to_numpy(float), nan=0.0)
        if "elderly" in res
        else np.zeros(len(res))
    )
    has_elderly = "elderly" in res and not res["elderly"].isna().all()
    covered = res[cols["covered"]].to_numpy(bool)
    uncov = ~covered
    u = w * uncov

    graph = RoutingGraph.from_network(network)
    mode = t.mode
    res_pos = coverage.resident_located.positions(mode)
    loc = located or locate(
        {mode: network},
        candidates["lon"].to_numpy(float),
        candidates["lat"].to_numpy(float),
        max_snap_m=coverage.max_snap_m,
    )
    snapped = loc.snapped[mode]
    cand_pos = loc.positions(mode)
    cand_xy = np.column_stack([loc.x, loc.y])
    res_xy = np.column_stack([res["x"].to_numpy(float), res["y"].to_numpy(float)])
    k = len(candidates)
    cap = np.full(k, np.inf)
    if "capacity" in candidates.columns:
        given = pd.to_numeric(candidates["capacity"], errors="coerce").to_numpy(float)
        cap = np.where(np.isnan(given), np.inf, given)
        if (cap < 0).any():
            raise InputError("candidate capacities must be non-negative numbers of people")
    t_snap = time.perf_counter() - t0

    t1 = time.perf_counter()
    ckpt = None
    if checkpoint_dir is not None:
        block = int(chunk or chunk_size(graph.n_nodes, max(1, k)))
        fp = fingerprint(
            cand_pos.edge,
            cand_pos.offset_m,
            cand_pos.access_m,
            cand_xy,
            res_pos.edge,
            res_pos.offset_m,
            res_pos.access_m,
            extra=f"{t.key}|{t.mode}|{t.threshold_m}|{block}|{graph.n_nodes}",
        )
        ckpt = Checkpoint(checkpoint_dir, fp, resume=resume)
        chunk = block
    m = build_site_matrix(
        network,
        cand_pos,
        res_pos,
        cand_xy,
        res_xy,
        threshold_m=t.threshold_m,
        chunk=chunk,
        checkpoint=ckpt,
        progress=progress,
    )
    t_route = time.perf_counter() - t1

    t2 = time.perf_counter()
    a = m.csr()
    gain_uncapped = a @ u
    gain = np.minimum(gain_uncapped, cap)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(gain_uncapped > 0, gain / gain_uncapped, 0.0)
    gain_pop = (a @ (pop * uncov)) * scale
    gain_eld = (a @ (eld * uncov)) * scale
    total_within = a @ w
    pop_within = a @ pop
    overlap = total_within - gain_uncapped
    n_within = np.diff(m.indptr)
    n_new = a @ uncov.astype(float)

    # nearest existing facility of the tier (network metres from the candidate)
    fac = coverage.facilities
    serving = np.flatnonzero(np.isin(fac["tier"].to_numpy(), std.serving_tiers(t.key)))
    if len(serving):
        near = nearest_sources(
            graph, coverage.facility_located.positions(mode).subset(serving), cand_pos
        )
        near_m = near.distance_m
        fac_ids = fac["id"].to_numpy()
        near_id = np.where(near.source >= 0, fac_ids[serving[np.maximum(near.source, 0)]], "")
    else:
        near_m = np.full(k, np.inf)
        near_id = np.full(k, "", dtype=object)

    table = pd.DataFrame(
        {
            "candidate_id": candidates["id"].astype(str).to_numpy(),
            "name": (
                candidates["name"].astype(str).to_numpy()
                if "name" in candidates.columns
                else np.full(k, "", dtype=object)
            ),
            "marginal_gain": gain,
            "marginal_gain_population": gain_pop,
            "marginal_gain_elderly": gain_eld if has_elderly else np.nan,
            "total_within": total_within,
            "overlap": overlap,
            "overlap_share": np.divide(
                overlap, total_within, out=np.zeros(k), where=total_within > 0
            ),
            "residents_within": n_within,
            "residents_new": np.rint(n_new).astype(np.int64),
            "nearest_existing_m": near_m,
            "nearest_existing_id": near_id,
            "snap_m": snapped.access_m,
            "on_network": snapped.on_network,
            "capacity": cap,
            "lon": candidates["lon"].to_numpy(float),
            "lat": candidates["lat"].to_numpy(float),
            "x": loc.x,
            "y": loc.y,
        }
    )
    unit_cols = unit_columns(
        candidates["lon"].to_numpy(float), candidates["lat"].to_numpy(float), units
    )
    for c, vals in unit_cols.items():
        table[c] = vals
    table["reason_zh"], table["reason_en"] = _reasons(
        t,
        weight,
        gain,
        gain_pop,
        gain_eld if has_elderly else None,
        pop_within,
        near_m,
        snapped.on_network,
        cap,
        gain_uncapped,
        coverage.max_snap_m,
    )

    # selection
    exact_info: dict[str, float] | None = None
    also = {"population": pop * uncov, "elderly": eld * uncov}
    if select_k > 0:
        greedy = greedy_select(m, u, select_k, capacity=cap, also=also, uncovered=uncov)
        if method == "exact":
            sel = exact_select(
                m, u, select_k, capacity=cap, also=also, uncovered=uncov, max_pairs=max_exact_pairs
            )
            gap = sel.objective - greedy.objective
            exact_info = {
                "objective": sel.objective,
                "greedy_objective": greedy.objective,
                "gap": gap,
                "gap_share": gap / sel.objective if sel.objective > 0 else 0.0,
                "sites": len(sel.order),
            }
            logger.info(
                "exact MCLP: %.1f vs greedy %.1f (gap %.2f%%)",
                sel.objective,
                greedy.objective,
                100 * exact_info["gap_share"],
            )
        else:
            sel = greedy
    else:
        sel = Selection(
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(len(res)),
            method,
            0.0,
            {n: np.zeros(0) for n in also},
        )
    w_total = float(w.sum())
    w_cov = float(w[covered].sum())
    cum = w_cov + np.cumsum(sel.gain)
    share = cum / w_total if w_total > 0 else np.zeros(len(cum))
    picks = pd.DataFrame(
        {
            "pick": np.arange(1, len(sel.order) + 1),
            "candidate_id": table["candidate_id"].to_numpy()[sel.order],
            "gain": sel.gain,
            "gain_population": sel.extra["population"],
            "gain_elderly": sel.extra["elderly"] if has_elderly else np.nan,
            "cumulative_covered": cum,
            "cumulative_share": share,
        }
    )
    table["selected"] = pd.array([pd.NA] * k, dtype="Int64")
    table["pick_gain"] = np.nan
    table["cumulative_share"] = np.nan
    if len(sel.order):
        table.loc[sel.order, "selected"] = np.arange(1, len(sel.order) + 1)
        table.loc[sel.order, "pick_gain"] = sel.gain
        table.loc[sel.order, "cumulative_share"] = share
    # rank: gain, then people within reach, then input order
    order = np.lexsort((np.arange(k), -total_within, -gain))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, k + 1))
    cols_out = [c for c in CANDIDATE_COLUMNS if c in table.columns]
    cols_out = (
        cols_out[: cols_out.index("reason_zh")]
        + list(unit_cols)
        + cols_out[cols_out.index("reason_zh") :]
    )
    table = table[cols_out]
    after_cov = w_cov + sel.objective
    t_select = time.perf_counter() - t2
    logger.info(
        "scored %d candidates for %s: %d pairs, routing %.2f s, selection %.2f s",
        k,
        t.key,
        m.nnz,
        t_route,
        t_select,
    )
    return ScoringResult(
        tier=t,
        weight=weight,
        method=method,
        candidates=table,
        picks=picks,
        before={
            "weight_total": w_total,
            "weight_covered": w_cov,
            "share": w_cov / w_total if w_total else 0.0,
        },
        after={
            "weight_total": w_total,
            "weight_covered": after_cov,
            "share": after_cov / w_total if w_total else 0.0,
        },
        exact=exact_info,
        matrix=m,
        served=sel.served,
        uncovered=uncov,
        timings_s={
            "snap": t_snap,
            "route": t_route,
            "select": t_select,
            "total": time.perf_counter() - t0,
        },
    )


def _reasons(
    t: Tier,
    weight: str,
    gain: FloatArray,
    gain_pop: FloatArray,
    gain_eld: FloatArray | None,
    pop_within: FloatArray,
    near_m: FloatArray,
    on_network: NDArray[np.bool_],
    cap: FloatArray,
    gain_uncapped: FloatArray,
    max_snap_m: float,
) -> tuple[list[str], list[str]]:
    """One line per candidate, Chinese and English."""
    wz = {"population": "人", "elderly": "老年人", "children": "儿童"}[weight]
    zh: list[str] = []
    en: list[str] = []
    lab_zh, lab_en = t.label_zh, t.label_en.lower()
    for i in range(len(gain)):
        if not on_network[i]:
            zh.append(f"距最近道路超过 {max_snap_m:,.0f} m，无法服务")
            en.append(f"More than {max_snap_m:,.0f} m from any street: would serve nobody")
            continue
        d = near_m[i]
        dz = f"距最近现有{lab_zh} {d:,.0f} m" if np.isfinite(d) else f"附近无可达的现有{lab_zh}"
        de = (
            f"nearest existing {lab_en} {d:,.0f} m away"
            if np.isfinite(d)
            else f"no existing {lab_en} reachable"
        )
        if gain[i] <= 0:
            if pop_within[i] <= 0:
                zh.append(f"{t.threshold_m:,.0f} m 范围内无居民；{dz}")
                en.append(f"No residents within {t.threshold_m:,.0f} m; {de}")
            else:
                zh.append(f"不新增覆盖：范围内 {pop_within[i]:,.0f} 人均已被现有{lab_zh}覆盖；{dz}")
                en.append(
                    f"Would newly cover nobody: all {pop_within[i]:,.0f} people within "
                    f"{t.threshold_m:,.0f} m are already covered; {de}"
                )
            continue
        if weight == "population":
            gz = f"新增覆盖 {gain_pop[i]:,.0f} 人"
            ge = f"Would newly cover {gain_pop[i]:,.0f} people"
            if gain_eld is not None:
                gz += f"（老年人 {gain_eld[i]:,.0f} 人）"
                ge += f" ({gain_eld[i]:,.0f} elderly)"
        else:
            gz = f"新增覆盖{wz} {gain[i]:,.0f} 人（共 {gain_pop[i]:,.0f} 人）"
            ge = f"Would newly cover {gain[i]:,.0f} {weight} ({gain_pop[i]:,.0f} people in all)"
        if np.isfinite(cap[i]) and gain_uncapped[i] > cap[i]:
            gz += f"，受容量 {cap[i]:,.0f} 限制"
            ge += f", capped by its capacity of {cap[i]:,.0f}"
        zh.append(f"{gz}，{dz}")
        en.append(f"{ge}; {de}")
    return zh, en


# -- automatic candidates ------------------------------------------------------------------------


def auto_candidates(
    coverage: CoverageResult,
    network: RoadNetwork,
    tier: str,
    *,
    n: int = DEFAULT_AUTO_N,
    weight: str = "population",
    cell_m: float | None = None,
) -> pd.DataFrame:
    """Propose up to ``n`` sites on the street network inside the tier's coverage gaps.

    Rule (documented in ``docs/site-scoring.md``): bin the uncovered on-network residents into
    square cells of ``cell_m`` (default half the tier's threshold) aligned to the CRS origin; per
    cell, snap the weighted centroid of its uncovered residents onto the nearest street; keep the
    ``n`` cells with the most uncovered weight (identical street points merged).

    Returns
    -------
    DataFrame
        ``id`` (``AUTO0001``…), ``name``, ``lon``, ``lat`` (WGS84), ``gap_weight`` (uncovered
        weight of the cell), ordered by ``gap_weight``.
    """
    t = coverage.standard.tier(tier)
    if n < 1:
        raise InputError(f"auto candidates: N must be at least 1, got {n}")
    res = coverage.residents
    w = resident_weight(res, weight)
    gap = (
        (~res[tier_columns(t.key)["covered"]].to_numpy(bool))
        & (w > 0)
        & ~res["off_network"].to_numpy(bool)
    )
    cols = ["id", "name", "lon", "lat", "gap_weight"]
    if not gap.any():
        logger.warning(
            "auto candidates: every reachable resident is covered for %s; none proposed", t.key
        )
        return pd.DataFrame(
            {
                c: pd.Series(dtype=float if c in ("lon", "lat", "gap_weight") else object)
                for c in cols
            }
        )
    size = float(cell_m or t.threshold_m / 2.0)
    x = res["x"].to_numpy(float)[gap]
    y = res["y"].to_numpy(float)[gap]
    wg = w[gap]
    cell = np.column_stack([np.floor(x / size), np.floor(y / size)]).astype(np.int64)
    _u, inv = np.unique(cell, axis=0, return_inverse=True)
    inv = inv.ravel()
    cw = np.bincount(inv, weights=wg)
    cx = np.bincount(inv, weights=wg * x) / cw
    cy = np.bincount(inv, weights=wg * y) / cw
    top = np.argsort(-cw, kind="stable")
    cx, cy, cw = cx[top], cy[top], cw[top]
    s = snap_to_network(network, cx, cy, max_snap_m=1e12)
    key = np.column_stack([np.round(s.x, 2), np.round(s.y, 2)])
    _k, first = np.unique(key, axis=0, return_index=True)
    keep = np.sort(first)[:n]
    lon, lat = network.to_lonlat(s.x[keep], s.y[keep])
    ids = [f"AUTO{i + 1:04d}" for i in range(len(keep))]
    return pd.DataFrame(
        {
            "id": ids,
            "name": [f"自动候选 auto {i + 1}" for i in range(len(keep))],
            "lon": lon,
            "lat": lat,
            "gap_weight": cw[keep],
        }
    )


def parse_candidates_spec(spec: str) -> int | None:
    """``auto`` / ``auto:N`` -> N (default :data:`DEFAULT_AUTO_N`); a path -> None."""
    s = str(spec).strip()
    if s.lower() == "auto":
        return DEFAULT_AUTO_N
    if s.lower().startswith("auto:"):
        try:
            n = int(s[5:])
        except ValueError:
            raise InputError(f"--candidates {s}: N in auto:N must be a whole number") from None
        if n < 1:
            raise InputError(f"--candidates {s}: N must be at least 1")
        return n
    return None
