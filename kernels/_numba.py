"""The compiled CPU pair kernel (numba): upper triangle, label-sorted, tiled, parallel.

Rows are taken in blocks of ``_ROWS``; block p is paired with block ``nb - 1 - p`` so
that every parallel iteration covers the same number of pairs (row i has N - 1 - i
partners). Within a block, columns are visited in tiles that stay in cache while every
row of the block uses them. Importing this module needs numba; the callers fall back to
the blocked numpy kernel without it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_ROWS = 32
_TILE_2D = 8192
# No fast-math flags anywhere: numba compiles the body of a parallel loop (with what it
# calls) into a function of its own, and with the flags the copy loaded from numba's
# cache gave other last bits than the one compiled afresh, so a number depended on
# whether the cache was warm (tests/test_kernels.py checks that both agree).


@numba.njit(cache=True)
def _rows_2d(x0, x1, ends, r0, r1):
    n = x0.shape[0]
    same = 0.0
    diff = 0.0
    for c0 in range(r0 + 1, n, _TILE_2D):
        c1 = min(c0 + _TILE_2D, n)
        for i in range(r0, r1):
            lo = max(c0, i + 1)
            if lo >= c1:
                continue
            mid = min(max(ends[i], lo), c1)
            a = x0[i]
            b = x1[i]
            s = 0.0
            for j in range(lo, mid):
                u = x0[j] - a
                v = x1[j] - b
                s += math.sqrt(u * u + v * v)
            same += s
            s = 0.0
            for j in range(mid, c1):
                u = x0[j] - a
                v = x1[j] - b
                s += math.sqrt(u * u + v * v)
            diff += s
    return same, diff


@numba.njit(cache=True)
def _rows_nd(xt, ends, r0, r1, tile, buf):
    d, n = xt.shape
    same = 0.0
    diff = 0.0
    for c0 in range(r0 + 1, n, tile):
        c1 = min(c0 + tile, n)
        for i in range(r0, r1):
            lo = max(c0, i + 1)
            if lo >= c1:
                continue
            m = c1 - lo
            for t in range(m):
                buf[t] = 0.0
            for k in range(d):
                a = xt[k, i]
                for t in range(m):
                    u = xt[k, lo + t] - a
                    buf[t] += u * u
            split = min(max(ends[i], lo), c1) - lo
            s = 0.0
            for t in range(split):
                s += math.sqrt(buf[t])
            same += s
            s = 0.0
            for t in range(split, m):
                s += math.sqrt(buf[t])
            diff += s
    return same, diff


@numba.njit(cache=True)
def _block(xt, ends, b, tile, buf):
    """(same, diff) sums of row block ``b`` against the columns to its right."""
    d, n = xt.shape
    r0 = b * _ROWS
    r1 = min(r0 + _ROWS, n)
    if d == 2:
        return _rows_2d(xt[0], xt[1], ends, r0, r1)
    return _rows_nd(xt, ends, r0, r1, tile, buf)


@numba.njit(parallel=True, cache=True)
def _sums(xt, ends, tile):
    """Per-iteration partial sums for label-sorted points ``xt`` (d, n); block p is paired
    with block nb - 1 - p, a long row block with a short one, so iterations weigh the same."""
    n = xt.shape[1]
    nb = (n + _ROWS - 1) // _ROWS
    half = (nb + 1) // 2
    same = np.zeros(half)
    diff = np.zeros(half)
    for p in numba.prange(half):
        buf = np.empty(tile)  # one small allocation per 64 rows of work
        s, t = _block(xt, ends, p, tile, buf)
        q = nb - 1 - p
        if q != p:
            s2, t2 = _block(xt, ends, q, tile, buf)
            s += s2
            t += t2
        same[p] = s
        diff[p] = t
    return same, diff


def pair_sums_direct(x: np.ndarray, ends: np.ndarray) -> tuple[float, float]:
    """(same_sum, diff_sum) for label-sorted float64 points ``x`` (N, d) and class ends."""
    d = x.shape[1]
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    tile = max(512, min(8192, 32768 // d))  # d columns of one tile stay within ~256 KiB
    same, diff = _sums(np.ascontiguousarray(x.T), ends, tile)
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
def _class_sums(xt, ids, n_classes):
    d, n = xt.shape
    out = np.zeros((n, n_classes))
    for i in numba.prange(n):
        row = out[i]
        for j in range(n):
            s = 0.0
            for c in range(d):
                u = xt[c, j] - xt[c, i]
                s += u * u
            row[ids[j]] += math.sqrt(s)
    return out


def class_distance_sums_direct(x: np.ndarray, ids: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) sums of each point's distances to the points of each class (float64 ``x``,
    class ids 0 .. C - 1)."""
    return _class_sums(np.ascontiguousarray(x.T), np.ascontiguousarray(ids, dtype=np.int64), n_classes)
