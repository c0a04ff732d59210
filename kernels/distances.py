"""Blocks of squared Euclidean distances, exact where it matters, on numpy or CuPy.

Two ways, chosen by dimension:

* direct (d <= ``DIRECT_MAX_DIMS``): the sum over coordinates of squared differences,
  exact to rounding; one pass over the block per coordinate, so it serves only the
  lowest dimensions (the compiled pair kernel goes further);
* GEMM (larger d): ``|a|^2 + |b|^2 - 2 a.b``, one matrix product per block. Where the
  terms nearly cancel (identical or almost identical points) the result is clamped at
  zero and recomputed directly, so identical points are exactly 0 apart.
"""

from __future__ import annotations

from ._arrays import array_module

#: Up to this many dimensions distances are computed coordinate by coordinate.
DIRECT_MAX_DIMS = 4
#: GEMM results below this share of |a|^2 + |b|^2 are recomputed directly.
_CANCELLATION = 1e-9
#: Pairs recomputed directly per step (bounds the memory of that step).
_RECOMPUTE_CHUNK = 1 << 16


def squared_norms(x):
    """Row-wise squared norms of an (n, d) float64 array."""
    return (x * x).sum(axis=1)


def squared_distances(a, b, a_sq=None, b_sq=None):
    """(len(a), len(b)) float64 squared distances between the rows of ``a`` and ``b``.

    ``a`` and ``b`` are float64 arrays of one module; ``a_sq``/``b_sq`` are their
    squared norms when known (used by the GEMM way only).
    """
    xp = array_module(a)
    d = a.shape[1]
    if d <= DIRECT_MAX_DIMS:
        out = xp.zeros((a.shape[0], b.shape[0]), dtype=xp.float64)
        for k in range(d):
            t = a[:, k, None] - b[None, :, k]
            t *= t
            out += t
        return out
    a_sq = squared_norms(a) if a_sq is None else a_sq
    b_sq = squared_norms(b) if b_sq is None else b_sq
    scale = a_sq[:, None] + b_sq[None, :]
    out = a @ b.T
    out *= -2.0
    out += scale
    xp.maximum(out, 0.0, out=out)
    rows, cols = xp.nonzero((out <= _CANCELLATION * scale) & (scale > 0))
    for start in range(0, int(rows.shape[0]), _RECOMPUTE_CHUNK):
        r = rows[start:start + _RECOMPUTE_CHUNK]
        c = cols[start:start + _RECOMPUTE_CHUNK]
        diff = a[r] - b[c]
        out[r, c] = (diff * diff).sum(axis=1)
    return out
