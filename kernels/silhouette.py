"""The silhouette score (Rousseeuw, 1987), exact and blocked, from per-point class sums.

For each point i of class c, with S[i, c'] the sum of its Euclidean distances to the
points of class c' (:func:`class_distance_sums`)::

    a_i = S[i, c] / (n_c - 1)           mean distance to the rest of its class
    b_i = min over c' != c of S[i, c'] / n_c'
    s_i = (b_i - a_i) / max(a_i, b_i)   0 for a point alone in its class, and where a_i = b_i = 0

and the score is the mean of s_i, as ``sklearn.metrics.silhouette_score``. S is the pair
kernel's sums (``kernels.pairs``) resolved per point and class: summing S[i, y_i] over i
gives twice the same-label pair sum. It needs O(N x C) memory and O(N^2 d) time,
never an N x N array.

Implementations, by input and ``method``:

===========  ===========================================================  ==========
method       what                                                         input
===========  ===========================================================  ==========
``numba``    compiled, parallel over points, distances coordinate-wise    numpy, d<=32
``blocked``  row blocks of ``kernels.distances``, then one product with   either
             the one-hot class matrix per block
===========  ===========================================================  ==========
"""

from __future__ import annotations

from ._arrays import DEFAULT_BLOCK_BYTES, InputError, array_module, is_cupy, rows_per_block, validate
from .distances import squared_distances, squared_norms
from .pairs import NUMBA_MAX_DIMS

METHODS = ("auto", "numba", "blocked")


def _choose(xp, d: int, method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "numba" and (is_cupy(xp) or d > NUMBA_MAX_DIMS):
        raise InputError(f"method 'numba' needs numpy input with d <= {NUMBA_MAX_DIMS}")
    if method != "auto":
        return method
    if is_cupy(xp) or d > NUMBA_MAX_DIMS:
        return "blocked"
    try:
        from . import _numba  # noqa: F401
    except ImportError:
        return "blocked"
    return "numba"


def class_distance_sums(points, labels, *, method: str = "auto", block_bytes: int = DEFAULT_BLOCK_BYTES):
    """(N, C) float64 sums of each point's distances to the points of each class.

    Classes are the sorted distinct labels (``unique(labels)``); returns ``(sums,
    classes)`` in the input's module.

    Examples
    --------
    >>> import numpy as np
    >>> sums, classes = class_distance_sums(np.array([[0.0], [1.0], [3.0]]), np.array([0, 0, 1]))
    >>> sums.tolist(), classes.tolist()
    ([[1.0, 3.0], [1.0, 2.0], [5.0, 0.0]], [0, 1])
    """
    points, labels = validate(points, labels, min_points=1)
    xp = array_module(points)
    classes, ids = xp.unique(labels, return_inverse=True)
    ids = ids.reshape(-1)
    c = int(classes.shape[0])
    x = xp.ascontiguousarray(points, dtype=xp.float64)
    if _choose(xp, x.shape[1], method) == "numba":
        from ._numba import class_distance_sums_direct

        return class_distance_sums_direct(x, ids, c), classes
    n = x.shape[0]
    onehot = xp.zeros((n, c), dtype=xp.float64)
    onehot[xp.arange(n), ids] = 1.0
    sq = squared_norms(x)
    out = xp.empty((n, c), dtype=xp.float64)
    step = rows_per_block(n, arrays=3, budget=block_bytes)
    for r0 in range(0, n, step):
        dist = squared_distances(x[r0:r0 + step], x, sq[r0:r0 + step], sq)
        xp.sqrt(dist, out=dist)
        out[r0:r0 + step] = dist @ onehot
    return out, classes


def silhouette_samples(points, labels, *, method: str = "auto", block_bytes: int = DEFAULT_BLOCK_BYTES):
    """Each point's silhouette s_i (see the module doc), float64, in the input's module.

    Needs 2 <= number of classes <= N - 1 (as scikit-learn).
    """
    points, labels = validate(points, labels, min_points=1)
    xp = array_module(points)
    n = points.shape[0]
    sums, classes = class_distance_sums(points, labels, method=method, block_bytes=block_bytes)
    c = int(classes.shape[0])
    if not 2 <= c <= n - 1:
        raise InputError(f"the silhouette needs 2 to N - 1 classes; got {c} class(es) among {n} points")
    ids = xp.searchsorted(classes, labels)
    counts = xp.bincount(ids, minlength=c).astype(xp.float64)
    rows = xp.arange(n)
    own = counts[ids]
    a = sums[rows, ids] / xp.maximum(own - 1, 1)
    means = sums / counts[None, :]
    means[rows, ids] = xp.inf
    b = means.min(axis=1)
    top = xp.maximum(a, b)
    s = xp.where(top > 0, (b - a) / xp.where(top > 0, top, 1.0), 0.0)
    return xp.where(own > 1, s, 0.0)


def silhouette_score(points, labels, *, method: str = "auto", block_bytes: int = DEFAULT_BLOCK_BYTES) -> float:
    """The mean silhouette of ``points`` (N, d) with integer ``labels``, as a Python float.

    Examples
    --------
    Two tight, distant classes score close to 1:

    >>> import numpy as np
    >>> points = np.array([[0.0, 0.0], [0.0, 1.0], [9.0, 0.0], [9.0, 1.0]])
    >>> round(silhouette_score(points, np.array([0, 0, 1, 1])), 4)
    0.8892
    """
    return float(silhouette_samples(points, labels, method=method, block_bytes=block_bytes).mean())
