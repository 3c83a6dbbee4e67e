"""The read-off of one search's node distances at every destination, compiled by Numba.

A destination at ``offset_m`` along raw edge ``u -> v`` (``access_m`` from it) is reached
through ``u`` (``d[u] + offset``; only on two-way edges or when it sits exactly on ``u``) or
through ``v`` (``d[v] + length - offset``); the nearer wins, ``v`` on ties. It is the same
arithmetic, in the same order, as the NumPy read-off of several searches at once in
:mod:`lifecircle.routing`, fused into one pass without temporaries.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


def destination_ends(
    edge: NDArray[np.int64],
    offset_m: NDArray[np.float64],
    edge_u: NDArray[np.integer],
    edge_v: NDArray[np.integer],
    length_m: NDArray[np.float64],
    twoway: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Per destination, once for all searches: its edge's ``u`` and ``v`` (-1 off the network),
    metres to ``u`` (``inf`` where leaving towards ``u`` is not allowed) and metres to ``v``."""
    ok = edge >= 0
    e = np.where(ok, edge, 0)
    u = np.where(ok, edge_u[e], -1).astype(np.int64)
    v = np.where(ok, edge_v[e], -1).astype(np.int64)
    to_u = np.where(twoway[e] | (offset_m <= 0.0), offset_m, np.inf)
    to_v = length_m[e] - offset_m
    return u, v, to_u, to_v


@njit(nogil=True, cache=True)
def read_off_one(  # pragma: no cover - compiled; tested against the NumPy read-off
    u: NDArray[np.int64],
    v: NDArray[np.int64],
    to_u: NDArray[np.float64],
    to_v: NDArray[np.float64],
    access_m: NDArray[np.float64],
    node_d: NDArray[np.float64],
    node_src: NDArray[np.int64],
    out_d: NDArray[np.float64],
    out_src: NDArray[np.int64],
) -> None:
    """Fill ``out_d``/``out_src`` per destination (``inf``/-1 off the network or unreached)
    from its ends (:func:`destination_ends`)."""
    for i in range(len(u)):
        a = u[i]
        if a < 0:
            out_d[i] = np.inf
            out_src[i] = -1
            continue
        b = v[i]
        via_v = node_d[b] + to_v[i]
        via_u = node_d[a] + to_u[i]
        if via_u < via_v:
            d = via_u + access_m[i]
            s = node_src[a]
        else:
            d = via_v + access_m[i]
            s = node_src[b]
        out_d[i] = d
        out_src[i] = s if np.isfinite(d) else -1
