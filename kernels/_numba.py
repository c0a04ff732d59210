"""The compiled CPU kernels (numba): pair sums over the upper triangle, class distance sums,
neighbour ranks.

Pair sums: rows are taken in blocks of ``_ROWS``; block p is paired with block
``nb - 1 - p`` so that every parallel iteration covers the same number of pairs (row i
has N - 1 - i partners). Columns are visited in tiles of ``_tile(d)`` columns, starting
at the block's first row + 1. One kernel serves every d up to 32: in 2-D, summing the two
squared differences from 0.0 gives the bits of ``u * u + v * v``, as fast.

Why the results are reproducible
--------------------------------
Every floating-point sum is written out in one fixed order, and nothing may change it:

* No fast-math flags. Without ``reassoc`` and ``contract`` LLVM may not reorder a sum or
  fuse a multiply-add, so a kernel compiled afresh, one loaded from numba's cache, a
  scalar build and a vector build all perform the same operations on the same operands.
  (With the flags, the copy of a parallel loop's body loaded from the cache gave other
  last bits than the one compiled afresh.)
* Vectorised across rows, never along a sum. The inner loops run over the rows of a
  block (``for l in range(m)``): each lane owns one row's running sums, which take the
  columns one at a time in increasing order. Lanes never meet, so the vector width (or
  none) changes no operation. The loop vectoriser does this without reassociation; it
  is what makes these kernels as fast as the former fast-math ones.
* Masks add exact zeros. A row takes the columns to its right (j > i) and splits them
  into same-label (j < end of its label's run) and other-label partners; in a vector
  lane the column it does not take adds +0.0, which leaves a sum of non-negative terms
  unchanged bit for bit.
* Per row and tile a partial sum starts at 0.0; a block adds its rows' partial sums in
  (tile, row) order; each parallel iteration writes its own slot, and the slots are
  summed by numpy after the parallel loop. So no sum depends on the thread count, and
  the order is that of the plain loop ``for tile: for row: for column`` with these
  constants (``tests/test_kernels.py`` checks the kernels against that loop, bit for bit).
* Class distance sums add, per (row, class), the distances to that class's points in
  column order, each squared distance summed over the dimensions in order.

Importing this module needs numba; the callers fall back to the blocked numpy kernels
without it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Rows per block: the vector lanes of the pair and class-sum kernels.
_ROWS = 32
#: Columns per tile in 2-D: the order of the pair sums depends on it (see the module doc).
_TILE_2D = 8192


def _tile(d: int) -> int:
    """Columns per tile: 8 192 in 2-D, else d columns of one tile within about 256 KiB."""
    return _TILE_2D if d == 2 else max(512, min(8192, 32768 // d))


@numba.njit(cache=True)
def _load(xt, r0, m, a):
    """The coordinates of rows r0 .. r0 + m - 1 into ``a`` (d, lanes)."""
    for k in range(xt.shape[0]):
        for l in range(m):
            a[k, l] = xt[k, r0 + l]


@numba.njit(cache=True)
def _squared(xt, j, a, m, sq):
    """``sq[l]``: the squared distance of column j to lane l's row, over the dimensions in order."""
    if xt.shape[0] == 2:  # (0.0 + u * u) + v * v is u * u + v * v: the same bits, in one pass
        p = xt[0, j]
        q = xt[1, j]
        for l in range(m):
            u = p - a[0, l]
            v = q - a[1, l]
            sq[l] = u * u + v * v
        return
    for l in range(m):
        sq[l] = 0.0
    for k in range(xt.shape[0]):
        p = xt[k, j]
        for l in range(m):
            u = p - a[k, l]
            sq[l] += u * u


@numba.njit(cache=True)
def _rows(xt, ends, r0, r1, tile, a, e, sq, ps, pd):
    """(same, diff) sums of rows r0 .. r1 - 1 against the columns to their right."""
    n = xt.shape[1]
    m = r1 - r0
    _load(xt, r0, m, a)
    for l in range(m):
        e[l] = ends[r0 + l]
    same = 0.0
    diff = 0.0
    for c0 in range(r0 + 1, n, tile):
        c1 = min(c0 + tile, n)
        for l in range(m):
            ps[l] = 0.0
            pd[l] = 0.0
        for j in range(c0, c1):
            _squared(xt, j, a, m, sq)
            c = j - r0
            for l in range(m):
                dist = math.sqrt(sq[l])
                take = l < c
                w = dist if take and j < e[l] else 0.0
                ps[l] += w
                pd[l] += dist - w if take else 0.0
        for l in range(m):
            same += ps[l]
            diff += pd[l]
    return same, diff


@numba.njit(parallel=True, cache=True)
def _sums(xt, ends, rows, tile):
    """Per-iteration partial sums for label-sorted points ``xt`` (d, n); block p is paired
    with block nb - 1 - p, a long row block with a short one, so iterations weigh the same."""
    d, n = xt.shape
    nb = (n + rows - 1) // rows
    half = (nb + 1) // 2
    same = np.zeros(half)
    diff = np.zeros(half)
    for p in numba.prange(half):
        # scratch of one iteration: the block's coordinates, label ends, lanes' sums
        a = np.empty((d, rows))
        e = np.empty(rows, dtype=np.int64)
        sq = np.empty(rows)
        ps = np.empty(rows)
        pd = np.empty(rows)
        r0 = p * rows
        s, t = _rows(xt, ends, r0, min(r0 + rows, n), tile, a, e, sq, ps, pd)
        q = nb - 1 - p
        if q != p:
            r0 = q * rows
            s2, t2 = _rows(xt, ends, r0, min(r0 + rows, n), tile, a, e, sq, ps, pd)
            s += s2
            t += t2
        same[p] = s
        diff[p] = t
    return same, diff


def pair_sums_direct(x: np.ndarray, ends: np.ndarray, *, rows: int = _ROWS,
                     tile: int | None = None) -> tuple[float, float]:
    """(same_sum, diff_sum) for label-sorted float64 points ``x`` (N, d) and class ends.

    ``rows`` and ``tile`` are the block and tile sizes; the defaults define the order of
    the sums (the numbers every run reports). A test varies them.
    """
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    tile = _tile(x.shape[1]) if tile is None else tile
    same, diff = _sums(np.ascontiguousarray(x.T), ends, rows, tile)
    # Summed here, not inside the parallel function: numba would turn that sum into a
    # parallel reduction whose order, hence last bits, depends on the thread count.
    return float(np.sum(same)), float(np.sum(diff))


@numba.njit(parallel=True, cache=True)
def _ranks(d2, rows, cols):
    """For each (row, col) pair, the rank of column col in its row: the entries before it
    in (value, index) order, plus one."""
    out = np.empty(rows.shape[0], dtype=np.int64)
    n = d2.shape[1]
    for t in numba.prange(rows.shape[0]):
        r = rows[t]
        c = cols[t]
        v = d2[r, c]
        count = 0
        for m in range(n):
            x = d2[r, m]
            if x < v or (x == v and m < c):
                count += 1
        out[t] = count + 1
    return out


def rank_excess(d2: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int, n_rows: int) -> np.ndarray:
    """Per row, the sum over its (row, col) pairs of rank - k (see ``kernels.neighbourhood``)."""
    ranks = _ranks(d2, rows.astype(np.int64), cols.astype(np.int64))
    return np.bincount(rows, weights=(ranks - k).astype(np.float64), minlength=n_rows)


@numba.njit(parallel=True, cache=True)
def _class_sums(xt, ids, n_classes, rows):
    d, n = xt.shape
    out = np.empty((n, n_classes))
    nb = (n + rows - 1) // rows
    for blk in numba.prange(nb):
        r0 = blk * rows
        m = min(r0 + rows, n) - r0
        a = np.empty((d, rows))
        _load(xt, r0, m, a)
        acc = np.zeros((n_classes, rows))  # per (class, row): distances in column order
        sq = np.empty(rows)
        for j in range(n):
            _squared(xt, j, a, m, sq)
            row = acc[ids[j]]
            for l in range(m):
                row[l] += math.sqrt(sq[l])
        for l in range(m):
            for c in range(n_classes):
                out[r0 + l, c] = acc[c, l]
    return out


def class_distance_sums_direct(x: np.ndarray, ids: np.ndarray, n_classes: int, *, rows: int = _ROWS) -> np.ndarray:
    """(N, C) sums of each point's distances to the points of each class (float64 ``x``,
    class ids 0 .. C - 1), each in column order (``rows``, the block size, changes no bit)."""
    return _class_sums(np.ascontiguousarray(x.T), np.ascontiguousarray(ids, dtype=np.int64), n_classes, rows)
