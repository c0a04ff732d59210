"""Linear centred kernel alignment (CKA; Kornblith et al., 2019) between representations.

For representations X (N, d1) and Y (N, d2) of the same N examples, each centred by its
column means::

    CKA(X, Y) = |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F)

which equals the HSIC form on the N x N linear Gram matrices but needs only the d x d
feature cross-covariances: O(N d1 d2) time, O(d1 d2) memory, never N x N. It is 1 for
representations that differ by a rotation and an isotropic scaling, and invariant to
shifts.

:func:`cka_matrix` takes any number of representations and passes once over their rows
in blocks, accumulating, in float64, every pair's cross-products of the rows shifted by
the first block's means (the shifted-data form, which keeps the centring exact to
rounding when means are large against spreads). A representation's rows are read with
``x[a:b]``, so a Zarr array or a memory map is read block by block.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._arrays import InputError, array_module

#: Rows per block of :func:`cka_matrix`.
BLOCK_ROWS = 4096


def _as_float64(xp, block):
    block = xp.asarray(block)
    return block.reshape(block.shape[0], -1).astype(xp.float64, copy=False)


def cka_matrix(features: Sequence, *, block_rows: int = BLOCK_ROWS, xp=None) -> np.ndarray:
    """Linear CKA of every pair of ``features`` (each (N, ...) rows of the same examples;
    trailing axes are flattened), as a symmetric (R, R) numpy array.

    A representation that is constant over the examples has no spread: its row and column
    are NaN (its diagonal too).

    Parameters
    ----------
    features : sequence of arrays
        Numpy or CuPy arrays, or anything whose ``x[a:b]`` gives one (a Zarr array).
    block_rows : int
        Rows read per block.
    xp : module, optional
        ``cupy`` to compute on the GPU; by default the module of the first block read.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 8))
    >>> rotation = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))[0]
    >>> m = cka_matrix([x, 3 * x @ rotation + 5, x[:, :1]])
    >>> round(float(m[0, 1]), 10), bool(m[0, 2] < 0.5)
    (1.0, True)
    """
    if len(features) == 0:
        raise InputError("cka_matrix needs at least one representation")
    n = int(features[0].shape[0])
    for f in features:
        if int(f.shape[0]) != n:
            raise InputError(f"representations of {f.shape[0]} and {n} rows: CKA compares the same examples, "
                             "row for row")
    if n < 2:
        raise InputError(f"CKA needs at least 2 examples; got {n}")
    if not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise InputError(f"block_rows must be a whole number >= 1; got {block_rows!r}")
    r = len(features)
    xp = array_module(features[0][0:1]) if xp is None else xp
    shifts, cross = [None] * r, {}
    sums = [None] * r
    for a in range(0, n, block_rows):
        blocks = []
        for i, f in enumerate(features):
            block = _as_float64(xp, f[a:a + block_rows])
            if not bool(xp.isfinite(block).all()):
                raise InputError(f"representation {i} holds NaN or Inf values in rows {a}..{a + len(block) - 1}")
            if shifts[i] is None:
                shifts[i] = block.mean(axis=0)
                sums[i] = xp.zeros_like(shifts[i])
            block = block - shifts[i]
            sums[i] += block.sum(axis=0)
            blocks.append(block)
        for i in range(r):
            for j in range(i, r):
                product = blocks[i].T @ blocks[j]
                cross[i, j] = product if (i, j) not in cross else cross[i, j] + product
    means = [s / n for s in sums]
    # centred cross-products: sum (x - m_x)(y - m_y)^T = sum (x - K)(y - L)^T - n (m_x - K)(m_y - L)^T
    norm = {}
    for (i, j), c in cross.items():
        c -= n * xp.outer(means[i], means[j])
        norm[i, j] = float((c * c).sum())
    out = np.full((r, r), np.nan)
    for (i, j), value in norm.items():
        den = math.sqrt(norm[i, i] * norm[j, j])
        if den > 0:
            out[i, j] = out[j, i] = value / den
    return out


def linear_cka(x, y) -> float:
    """Linear CKA of two representations of the same examples (see the module doc).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 5))
    >>> round(linear_cka(x, 2 * x + 1), 12)
    1.0
    """
    return float(cka_matrix([x, y])[0, 1])
