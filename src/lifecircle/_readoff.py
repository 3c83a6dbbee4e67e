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


@njit(nogil=True, cache=True)
def read_off_one(  # pragma: no cover - compiled; tested against the NumPy read-off
    edge: NDArray[np.int64],
    offset_m: NDArray[np.float64],
    access_m: NDArray[np.float64],
    edge_u: NDArray[np.integer],
    edge_v: NDArray[np.integer],
    length_m: NDArray[np.float64],
    twoway: NDArray[np.bool_],
    node_d: NDArray[np.float64],
    node_src: NDArray[np.int64],
    out_d: NDArray[np.float64],
    out_src: NDArray[np.int64],
) -> None:
    """Fill ``out_d``/``out_src`` per destination (``inf``/-1 off the network or unreached)."""
    for i in range(len(edge)):
        e = edge[i]
        if e < 0:
            out_d[i] = np.inf
            out_src[i] = -1
            continue
        o = offset_m[i]
        u = edge_u[e]
        v = edge_v[e]
        via_v = node_d[v] + (length_m[e] - o)
        via_u = node_d[u] + o if (twoway[e] or o <= 0.0) else np.inf
        if via_u < via_v:
            d = via_u + access_m[i]
            s = node_src[u]
        else:
            d = via_v + access_m[i]
            s = node_src[v]
        out_d[i] = d
        out_src[i] = s if np.isfinite(d) else -1
