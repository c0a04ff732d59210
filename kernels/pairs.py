"""Pair statistics: sums and counts of distances over same-label and different-label pairs.

For points X (N, d) and integer labels y, over the unordered pairs i < j::

    same_sum  = sum of |x_i - x_j| where y_i == y_j      same_count = number of such pairs
    diff_sum  = sum of |x_i - x_j| where y_i != y_j      diff_count = number of such pairs

in one pass over the upper triangle, accumulated in float64 whatever the input dtype,
and never with an N x N array: memory is O(block x N). The points are first sorted by
label, so that the same-label partners of row i are the contiguous columns
``(i, end_of_its_class)`` and the different-label ones ``[end_of_its_class, N)``: no
label test in the inner loop.

Implementations, by input and ``method``:

==========  ===========================================================  ==========
method      what                                                         input
==========  ===========================================================  ==========
``cuda``    CuPy RawKernel, shared-memory tiles, fused sqrt and sums     CuPy, d=2
``numba``   compiled, parallel, cache-sized tiles, row blocks paired     numpy, d<=32
            so that both threads get equal work
``blocked`` row blocks of ``kernels.distances``, masked sums             either
==========  ===========================================================  ==========

``auto`` takes the first that applies. CuPy input stays on the device: the result is a
tuple of 0-d arrays of the input's module.
"""

from __future__ import annotations

from typing import NamedTuple

from ._arrays import DEFAULT_BLOCK_BYTES, InputError, array_module, is_cupy, rows_per_block, stable_argsort, validate
from .distances import DIRECT_MAX_DIMS, squared_distances, squared_norms

#: The compiled direct kernel serves up to this many dimensions; GEMM blocks beyond.
NUMBA_MAX_DIMS = 32

METHODS = ("auto", "cuda", "numba", "blocked")


class PairSums(NamedTuple):
    """Sums (float64) and counts (int64) of pair distances, as 0-d arrays of the input's module."""

    same_sum: object
    same_count: object
    diff_sum: object
    diff_count: object


class SortedPoints(NamedTuple):
    """Points sorted by label, as the pair kernels want them.

    x: (N, d) float64, rows grouped by label (stable order within a label).
    labels: (N,) the sorted labels.
    ends: (N,) int64, for each row the end (exclusive) of its label's run of rows.
    counts: (C,) int64 points per label present.
    """

    x: object
    labels: object
    ends: object
    counts: object


def sort_by_label(points, labels, *, keep_float32: bool = False) -> SortedPoints:
    """Sort points by label (stably); float64 unless ``keep_float32`` and the input is float32."""
    xp = array_module(points)
    order = stable_argsort(labels)
    sorted_labels = labels[order]
    dtype = xp.float32 if keep_float32 and points.dtype == xp.float32 else xp.float64
    x = xp.ascontiguousarray(points[order], dtype=dtype)
    ends = xp.searchsorted(sorted_labels, sorted_labels, side="right").astype(xp.int64)
    _, counts = xp.unique(sorted_labels, return_counts=True)
    return SortedPoints(x, sorted_labels, ends, counts.astype(xp.int64))


def _pair_counts(sp: SortedPoints):
    xp = array_module(sp.x)
    n = sp.x.shape[0]
    same = (sp.counts * (sp.counts - 1) // 2).sum()
    return same, xp.asarray(n * (n - 1) // 2, dtype=xp.int64) - same


def _choose(xp, d: int, method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method != "auto":
        if method == "cuda" and not (is_cupy(xp) and d == 2):
            raise InputError("method 'cuda' needs CuPy input with d = 2")
        if method == "numba" and (is_cupy(xp) or d > NUMBA_MAX_DIMS):
            raise InputError(f"method 'numba' needs numpy input with d <= {NUMBA_MAX_DIMS}")
        return method
    if is_cupy(xp):
        return "cuda" if d == 2 else "blocked"
    if d <= NUMBA_MAX_DIMS:
        try:
            from . import _numba  # noqa: F401
        except ImportError:
            return "blocked"
        return "numba"
    return "blocked"


def pair_sums(points, labels, *, method: str = "auto", block_bytes: int = DEFAULT_BLOCK_BYTES) -> PairSums:
    """Sums and counts of distances over same-label and different-label pairs (see module doc).

    points: (N, d) array, N >= 2, of numbers (numpy or CuPy); labels: (N,) integers.
    """
    points, labels = validate(points, labels)
    xp = array_module(points)
    chosen = _choose(xp, points.shape[1], method)
    sp = sort_by_label(points, labels, keep_float32=chosen == "cuda")
    same_count, diff_count = _pair_counts(sp)
    if chosen == "cuda":
        from ._cuda import pair_sums_2d

        same_sum, diff_sum = pair_sums_2d(sp.x, sp.ends)
    elif chosen == "numba":
        from ._numba import pair_sums_direct

        same, diff = pair_sums_direct(sp.x, sp.ends)
        same_sum, diff_sum = xp.asarray(same), xp.asarray(diff)
    else:
        same_sum, diff_sum = _blocked(sp.x, sp.ends, block_bytes)
    return PairSums(same_sum, same_count, diff_sum, diff_count)


def _blocked(x, ends, block_bytes: int):
    """Row blocks against the columns to their right: masked sums of each distance block."""
    xp = array_module(x)
    n, d = x.shape
    sq = squared_norms(x) if d > DIRECT_MAX_DIMS else None
    same = xp.zeros((), dtype=xp.float64)
    diff = xp.zeros((), dtype=xp.float64)
    rows = rows_per_block(n, arrays=4, budget=block_bytes)
    cols_all = xp.arange(n)
    for r0 in range(0, n - 1, rows):
        r1 = min(r0 + rows, n)
        cols = cols_all[r0:]
        dist = squared_distances(x[r0:r1], x[r0:], None if sq is None else sq[r0:r1], None if sq is None else sq[r0:])
        xp.sqrt(dist, out=dist)
        row_idx = cols_all[r0:r1, None]
        end = ends[r0:r1, None]
        upper = cols[None, :] > row_idx
        same += xp.where(upper & (cols[None, :] < end), dist, 0.0).sum()
        diff += xp.where(cols[None, :] >= end, dist, 0.0).sum()
    return same, diff
