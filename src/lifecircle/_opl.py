"""OSM ways as OPL text, read and written by compiled loops (Numba).

The clip pass lets libosmium do the per-object work in C++: it reads the extract, fills in the
node locations and writes every ``highway`` way as one line of OPL, libosmium's text format with
one object per line (``locations_on_ways``, no metadata)::

    w10 Thighway=residential,name=%4eba%%6c11%%8def% Nn1x118.3y34.6,n2x118.31y34.6,n3xy

This module turns such lines into arrays (way ids, where each way's tags lie in the text, node
refs and their coordinates as exact 1e-7 degree integers, a flag for nodes without a location,
``n3xy`` above) and writes a region's nodes and ways back as OPL for libosmium to encode as
``.osm.pbf``. Tags are never decoded here: they are copied as the escaped text libosmium wrote
(``%4eba%`` is U+4EBA), which its OPL reader decodes again.

Coordinates stay integers of 1e-7 degrees, libosmium's own fixed point, so a coordinate read
here and written back is the one libosmium stored, and ``x / 1e7`` is the same double that
pyosmium's ``Location.lon`` gives.

>>> import numpy as np
>>> text = b"w7 Thighway=path Nn1x118.3y34.6,n2x-0.0000001y-34.61,n3xy\\n"
>>> ways = parse_ways(np.frombuffer(text, dtype=np.uint8))
>>> ways.way_id.tolist(), ways.ref.tolist(), ways.located.tolist()
([7], [1, 2, 3], [True, True, False])
>>> ways.x.tolist(), ways.y.tolist()
([1183000000, -1, 0], [346000000, -346100000, 0])
>>> bytes(text[ways.tag_start[0] : ways.tag_end[0]])
b'highway=path'
>>> tags = np.frombuffer(b"highway=path", np.uint8)
>>> opl = write_opl(
...     np.array([1, 2]), ways.x[:2], ways.y[:2], ways.way_id, tags,
...     np.array([0, 12]), np.array([1, 2]), np.array([0, 2]),
... )
>>> print(opl.tobytes().decode())
n1 x118.3 y34.6
n2 x-0.0000001 y-34.61
w7 Thighway=path Nn1,n2
<BLANKLINE>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numba import njit
from numpy.typing import NDArray

_NL, _SP, _COMMA, _MINUS, _DOT = 10, 32, 44, 45, 46
_N_UPPER, _T_UPPER = 78, 84
_N_LOWER, _W_LOWER, _X_LOWER, _Y_LOWER = 110, 119, 120, 121
#: libosmium's fixed point: 1e-7 degrees
_PRECISION = 10_000_000


class OplError(ValueError):
    """A line that is not a way as libosmium writes it (the byte offset is in the message)."""


@dataclass(frozen=True)
class OplWays:
    """Ways parsed from OPL lines.

    Attributes
    ----------
    way_id : ndarray of int64
    tag_start, tag_end : ndarray of int64
        Each way's escaped tags ``k=v,k=v`` are ``text[tag_start[i]:tag_end[i]]``.
    node_start : ndarray of int64
        Way ``i``'s nodes are ``node_start[i]:node_start[i + 1]`` of the node arrays.
    ref : ndarray of int64
    x, y : ndarray of int64
        Longitude and latitude in 1e-7 degrees (0 where the node has no location).
    located : ndarray of bool
    """

    way_id: NDArray[np.int64]
    tag_start: NDArray[np.int64]
    tag_end: NDArray[np.int64]
    node_start: NDArray[np.int64]
    ref: NDArray[np.int64]
    x: NDArray[np.int64]
    y: NDArray[np.int64]
    located: NDArray[np.bool_]


@njit(nogil=True, cache=True)
def _read_int(buf: NDArray[np.uint8], i: int) -> tuple[int, int, bool]:
    """An optionally signed integer at ``buf[i]``: (value, next position, any digit?)."""
    n = len(buf)
    sign = 1
    if i < n and buf[i] == _MINUS:
        sign = -1
        i += 1
    v = 0
    start = i
    while i < n and 48 <= buf[i] <= 57:
        v = v * 10 + (buf[i] - 48)
        i += 1
    return sign * v, i, i > start


@njit(nogil=True, cache=True)
def _read_coordinate(buf: NDArray[np.uint8], i: int) -> tuple[int, int, bool]:
    """A decimal coordinate at ``buf[i]`` in 1e-7 units: (value, next position, present?)."""
    n = len(buf)
    sign = 1
    if i < n and buf[i] == _MINUS:
        sign = -1
        i += 1
    whole, i, any_whole = _read_int(buf, i)
    frac = 0
    digits = 0
    if i < n and buf[i] == _DOT:
        i += 1
        while i < n and 48 <= buf[i] <= 57:
            if digits < 7:  # libosmium writes at most 7 decimals
                frac = frac * 10 + (buf[i] - 48)
                digits += 1
            i += 1
    while digits < 7:
        frac *= 10
        digits += 1
    return sign * (whole * _PRECISION + frac), i, any_whole


@njit(nogil=True, cache=True)
def _parse(
    buf: NDArray[np.uint8],
    way_id: NDArray[np.int64],
    tag_start: NDArray[np.int64],
    tag_end: NDArray[np.int64],
    node_start: NDArray[np.int64],
    ref: NDArray[np.int64],
    x: NDArray[np.int64],
    y: NDArray[np.int64],
    located: NDArray[np.bool_],
) -> tuple[int, int, int]:
    """Fill the arrays (long enough: see :func:`parse_ways`): (ways, nodes, -1), or (0, 0, byte)
    at an error."""
    n = len(buf)
    i = 0
    w = 0
    k = 0
    while i < n:
        if buf[i] == _NL:
            i += 1
            continue
        if buf[i] != _W_LOWER:
            return 0, 0, i
        wid, i, ok = _read_int(buf, i + 1)
        if not ok:
            return 0, 0, i
        ts = i
        te = i
        way_id[w] = wid
        node_start[w] = k
        while i < n and buf[i] != _NL:
            c = buf[i]
            i += 1
            if c == _SP:
                continue
            if c == _T_UPPER:
                ts = i
                while i < n and buf[i] != _SP and buf[i] != _NL:
                    i += 1
                te = i
            elif c == _N_UPPER:
                while i < n and buf[i] != _SP and buf[i] != _NL:
                    if buf[i] == _COMMA:
                        i += 1
                        continue
                    if buf[i] != _N_LOWER:
                        return 0, 0, i
                    r, i, ok = _read_int(buf, i + 1)
                    if not ok or i >= n or buf[i] != _X_LOWER:
                        return 0, 0, i
                    xv, i, okx = _read_coordinate(buf, i + 1)
                    if i >= n or buf[i] != _Y_LOWER:
                        return 0, 0, i
                    yv, i, oky = _read_coordinate(buf, i + 1)
                    ref[k] = r
                    located[k] = okx and oky
                    x[k] = xv if okx and oky else 0
                    y[k] = yv if okx and oky else 0
                    k += 1
            else:  # a field this reader does not use (metadata): skipped
                while i < n and buf[i] != _SP and buf[i] != _NL:
                    i += 1
        tag_start[w] = ts
        tag_end[w] = te
        w += 1
    node_start[w] = k
    return w, k, -1


#: One line of the text the clip pass reads: ``np.frombuffer`` of ``bytes``, read-only
PARSER_SAMPLE: Final = b"w1 Thighway=path Nn1x118.3y34.6,n2x118.31y34.6\n"


def load_parser() -> None:
    """Load the compiled parser now (from Numba's cache: about 0.2 s of CPU).

    It is compiled for the argument types of the first call; the sample has the type of the
    blocks :mod:`lifecircle.extract` reads (read-only bytes), so this is the parser the clip
    pass uses. Dask's forkserver calls it (through :mod:`lifecircle._worker_preload`) so that
    every local worker of a batch starts with the parser loaded.
    """
    parse_ways(np.frombuffer(PARSER_SAMPLE, dtype=np.uint8))


def parse_ways(buf: NDArray[np.uint8]) -> OplWays:
    """The ways of complete OPL lines (``w...`` lines with ``T`` and ``N`` fields).

    Raises
    ------
    OplError
        At the first byte that does not fit the format.
    """
    # one pass: every way is a line and every node reference holds an "n", so these counts
    # bound the arrays (tags holding an "n" only make them longer than needed)
    max_ways = int(np.count_nonzero(buf == _NL)) + 1
    max_nodes = int(np.count_nonzero(buf == _N_LOWER))
    way_id = np.empty(max_ways, np.int64)
    tag_start = np.empty(max_ways, np.int64)
    tag_end = np.empty(max_ways, np.int64)
    node_start = np.empty(max_ways + 1, np.int64)
    ref = np.empty(max_nodes, np.int64)
    x = np.empty(max_nodes, np.int64)
    y = np.empty(max_nodes, np.int64)
    located = np.empty(max_nodes, np.bool_)
    n_ways, n_nodes, bad = _parse(buf, way_id, tag_start, tag_end, node_start, ref, x, y, located)
    if bad >= 0:
        line = int(np.count_nonzero(buf[:bad] == _NL)) + 1
        raise OplError(f"OPL line {line} (byte {bad}) is not a way with T and N fields")
    return OplWays(
        way_id=way_id[:n_ways],
        tag_start=tag_start[:n_ways],
        tag_end=tag_end[:n_ways],
        node_start=node_start[: n_ways + 1],
        ref=ref[:n_nodes],
        x=x[:n_nodes],
        y=y[:n_nodes],
        located=located[:n_nodes],
    )


@njit(nogil=True, cache=True)
def _write_int(out: NDArray[np.uint8], j: int, v: int) -> int:
    if v < 0:
        out[j] = _MINUS
        j += 1
        v = -v
    digits = 1
    t = v
    while t >= 10:
        t //= 10
        digits += 1
    for d in range(digits - 1, -1, -1):
        out[j + d] = 48 + v % 10
        v //= 10
    return j + digits


@njit(nogil=True, cache=True)
def _write_coordinate(out: NDArray[np.uint8], j: int, v: int) -> int:
    if v < 0:
        out[j] = _MINUS
        j += 1
        v = -v
    j = _write_int(out, j, v // _PRECISION)
    frac = v % _PRECISION
    if frac:
        out[j] = _DOT
        j += 1
        digits = 7
        while frac % 10 == 0:  # trailing zeros dropped, as libosmium writes them
            frac //= 10
            digits -= 1
        for d in range(digits - 1, -1, -1):
            out[j + d] = 48 + frac % 10
            frac //= 10
        j += digits
    return j


@njit(nogil=True, cache=True)
def _write(
    node_id: NDArray[np.int64],
    node_x: NDArray[np.int64],
    node_y: NDArray[np.int64],
    way_id: NDArray[np.int64],
    tags: NDArray[np.uint8],
    tag_start: NDArray[np.int64],
    ref: NDArray[np.int64],
    node_start: NDArray[np.int64],
    out: NDArray[np.uint8],
) -> int:
    j = 0
    for k in range(len(node_id)):
        out[j] = _N_LOWER
        j = _write_int(out, j + 1, node_id[k])
        out[j] = _SP
        out[j + 1] = _X_LOWER
        j = _write_coordinate(out, j + 2, node_x[k])
        out[j] = _SP
        out[j + 1] = _Y_LOWER
        j = _write_coordinate(out, j + 2, node_y[k])
        out[j] = _NL
        j += 1
    for w in range(len(way_id)):
        out[j] = _W_LOWER
        j = _write_int(out, j + 1, way_id[w])
        out[j] = _SP
        out[j + 1] = _T_UPPER
        j += 2
        for t in range(tag_start[w], tag_start[w + 1]):
            out[j] = tags[t]
            j += 1
        out[j] = _SP
        out[j + 1] = _N_UPPER
        j += 2
        for k in range(node_start[w], node_start[w + 1]):
            if k > node_start[w]:
                out[j] = _COMMA
                j += 1
            out[j] = _N_LOWER
            j = _write_int(out, j + 1, ref[k])
        out[j] = _NL
        j += 1
    return j


def write_opl(
    node_id: NDArray[np.int64],
    node_x: NDArray[np.integer],
    node_y: NDArray[np.integer],
    way_id: NDArray[np.int64],
    tags: NDArray[np.uint8],
    tag_start: NDArray[np.int64],
    ref: NDArray[np.int64],
    node_start: NDArray[np.int64],
) -> NDArray[np.uint8]:
    """Nodes (1e-7 degree coordinates) then ways (escaped tags ``tags[tag_start[w]:...[w+1]]``,
    refs ``ref[node_start[w]:...[w+1]]``) as OPL lines."""
    # at most 20 digits and a sign per number
    size = len(node_id) * 70 + len(way_id) * 30 + len(tags) + len(ref) * 22
    out = np.empty(size, np.uint8)
    end = _write(
        np.asarray(node_id, np.int64), np.asarray(node_x, np.int64), np.asarray(node_y, np.int64),
        np.asarray(way_id, np.int64), np.asarray(tags, np.uint8),
        np.asarray(tag_start, np.int64), np.asarray(ref, np.int64),
        np.asarray(node_start, np.int64), out,
    )  # fmt: skip
    return out[:end]
