"""How faithfully a low-dimensional embedding keeps each point's neighbourhood.

For a representation X (N, D), an embedding E (N, d) of it and k neighbours, with
ranks counted among the other points (the point itself left out), nearest = 1:

=================  ================================================================
trustworthiness    Venna and Kaski: 1 - 2 / (N k (2N - 3k - 1)) * sum over i and over
                   the points j among i's k nearest in E but not in X of (r_X(i, j) - k);
                   1 when the embedding brings no stranger close (as
                   ``sklearn.manifold.trustworthiness``)
continuity         the same with X and E exchanged: 1 when every true neighbour stays close
recall             the share of i's k nearest in X that are among its k nearest in E,
                   averaged over i (neighbourhood preservation, "kNN recall")
=================  ================================================================

Distances are Euclidean. Equal distances are ordered by index, both for who the k
nearest are and for ranks, so the results are defined for tied and duplicated points.
"Equal" means equal as computed: above 4 dimensions distances come from GEMM blocks
(``kernels.distances``), exact for duplicated points but rounded otherwise, so distances
that are equal in exact arithmetic (lattice points) may compare unequal, and numpy and
CuPy may then break such a tie differently.

All three come from one pass over row blocks of queries: for a block, the distances to
every point in X (a GEMM block, ``kernels.distances``) and in each embedding; memory is
O(block x N), never N x N. The pass over X, the costly part (N^2 D), is shared by every
embedding of the same representation (t-SNE and UMAP), and by the three measures.

Each measure is a mean of per-point values, so a seeded sample of m query points gives
an unbiased estimate at m/N of the cost; its standard error (with the finite-population
correction) comes with it. The exact value is the default; a sample is only taken when
asked for (``sample=m``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._arrays import DEFAULT_BLOCK_BYTES, InputError, array_module, is_cupy, rows_per_block
from .distances import squared_distances, squared_norms

MEASURES = ("trustworthiness", "continuity", "recall")


class Neighbourhood(NamedTuple):
    """The three measures of one embedding, with standard errors (0 when exact).

    queries: how many query points they were computed from (N when exact).
    """

    trustworthiness: float
    continuity: float
    recall: float
    trustworthiness_se: float
    continuity_se: float
    recall_se: float
    queries: int


def _nearest_mask(xp, d2, k: int):
    """(B, N) bool: each row's k smallest entries, equal values taken in index order."""
    kth = xp.partition(d2, k - 1, axis=1)[:, k - 1:k]
    less = d2 < kth
    tied = d2 == kth
    need = k - less.sum(axis=1, keepdims=True)
    mask = less | tied
    crowded = xp.nonzero(tied.sum(axis=1) > need[:, 0])[0]  # rows with more ties at the k-th than places
    if crowded.shape[0]:
        t = tied[crowded]
        mask[crowded] = less[crowded] | (t & (xp.cumsum(t, axis=1) <= need[crowded]))
    return mask


def _rank_excess(xp, d2, rows, cols, k: int, n_rows: int, chunk: int):
    """Per row of the block, the sum over (row, col) pairs of rank(col in row) - k, where a
    rank counts the entries before col in (distance, index) order, plus one."""
    if not is_cupy(xp):
        try:
            from ._numba import rank_excess
        except ImportError:
            pass
        else:
            return rank_excess(d2, rows, cols, k, n_rows)
    out = xp.zeros(n_rows, dtype=xp.float64)
    index = xp.arange(d2.shape[1])
    for a in range(0, int(rows.shape[0]), chunk):
        r, c = rows[a:a + chunk], cols[a:a + chunk]
        line = d2[r]
        value = line[xp.arange(r.shape[0]), c][:, None]
        rank = (line < value).sum(axis=1) + ((line == value) & (index[None, :] < c[:, None])).sum(axis=1) + 1
        excess = (rank - k).astype(xp.float64)
        if is_cupy(xp):
            import cupyx

            cupyx.scatter_add(out, r, excess)
        else:
            np.add.at(out, r, excess)  # r repeats: one row has up to k pairs
    return out


def _check(high, lows, k: int):
    xp = array_module(high)
    if getattr(high, "ndim", 0) != 2:
        raise InputError(f"the representation must be a 2-D (N, D) array; got shape {getattr(high, 'shape', None)}")
    n = high.shape[0]
    for low in lows:
        if array_module(low) is not xp:
            raise InputError("the representation and its embeddings must all be numpy or all CuPy arrays")
        if low.ndim != 2 or low.shape[0] != n:
            raise InputError(f"an embedding of shape {low.shape} does not match the representation's {n} rows; "
                             "give one (N, d) array per embedding, rows in the same order")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a whole number >= 1; got {k!r}")
    if not 2 * k < n:
        raise InputError(f"k = {k} needs more than {2 * k} points (trustworthiness is defined for k < N / 2); "
                         f"got N = {n}: lower k")
    for a in (high, *lows):
        if a.dtype.kind not in "fiub":
            raise InputError(f"points must be numbers; got dtype {a.dtype}")
        if a.dtype.kind == "f" and not bool(xp.isfinite(a).all()):
            raise InputError("points hold NaN or Inf values; remove or replace them")
    return xp, n


def query_sample(n: int, sample: int | None, seed: int = 0):
    """The query points: all of ``range(n)``, or ``sample`` of them drawn without
    replacement by ``numpy.random.default_rng(seed)``, in increasing order.

    Examples
    --------
    >>> query_sample(10, None).tolist() == list(range(10)), len(query_sample(1000, 50, seed=1))
    (True, 50)
    """
    if sample is None or sample >= n:
        return np.arange(n)
    if not isinstance(sample, (int, np.integer)) or sample < 2:
        raise InputError(f"sample must be a whole number of query points >= 2, or None for all; got {sample!r}")
    return np.sort(np.random.default_rng(seed).choice(n, size=int(sample), replace=False))


def _summary(per_point: np.ndarray, n: int) -> tuple[float, float]:
    """Mean of per-point values and its standard error as an estimate of the mean over n."""
    m = per_point.shape[0]
    mean = float(per_point.mean())
    if m >= n or m < 2:
        return mean, 0.0
    return mean, float(per_point.std(ddof=1) / math.sqrt(m) * math.sqrt(1 - m / n))


def neighbourhood_scores(high, low, k: int = 10, *, sample: int | None = None, seed: int = 0,
                         block_bytes: int = DEFAULT_BLOCK_BYTES):
    """Trustworthiness, continuity and recall of one embedding, or of several of the same
    representation in one pass (see the module doc).

    Parameters
    ----------
    high : (N, D) array
        The representation (numpy or CuPy; computed in float64).
    low : (N, d) array or sequence of them
        Its embedding(s), rows in the same order.
    k : int
        Neighbours; 1 <= k < N / 2.
    sample : int, optional
        Estimate from this many query points (seeded by ``seed``) instead of all N.
    block_bytes : int
        Working memory of one block of queries.

    Returns
    -------
    Neighbourhood or list of Neighbourhood
        One per embedding, as ``low`` was given.

    Examples
    --------
    An embedding that keeps every neighbourhood scores 1 on all three:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(60, 5))
    >>> neighbourhood_scores(x, x.copy(), k=5)[:3]
    (1.0, 1.0, 1.0)
    """
    lows = [low] if not isinstance(low, (list, tuple)) else list(low)
    xp, n = _check(high, lows, k)
    queries = query_sample(n, sample, seed)
    xs = [xp.ascontiguousarray(a, dtype=xp.float64) for a in (high, *lows)]
    norms = [squared_norms(a) for a in xs]
    per = np.zeros((len(lows), 3, queries.shape[0]))  # embedding, measure, query
    scale = 2.0 / (k * (2.0 * n - 3.0 * k - 1.0))
    step = rows_per_block(n, arrays=4 + 2 * len(lows), budget=block_bytes)
    chunk = max(1, rows_per_block(n, arrays=3, budget=block_bytes))
    q_all = xp.asarray(queries)
    for a in range(0, queries.shape[0], step):
        q = q_all[a:a + step]
        b = q.shape[0]
        local = xp.arange(b)

        def distances(i):
            d2 = squared_distances(xs[i][q], xs[i], norms[i][q], norms[i])
            d2[local, q] = xp.inf  # the point itself is nobody's neighbour
            return d2

        d_high = distances(0)
        near_high = _nearest_mask(xp, d_high, k)
        for e in range(len(lows)):
            d_low = distances(e + 1)
            near_low = _nearest_mask(xp, d_low, k)
            rows, cols = xp.nonzero(near_low & ~near_high)
            trust = 1.0 - scale * _rank_excess(xp, d_high, rows, cols, k, b, chunk)
            rows, cols = xp.nonzero(near_high & ~near_low)
            cont = 1.0 - scale * _rank_excess(xp, d_low, rows, cols, k, b, chunk)
            recall = (near_high & near_low).sum(axis=1) / k
            for m, values in enumerate((trust, cont, recall)):
                per[e, m, a:a + b] = values.get() if hasattr(values, "get") else values
    out = []
    for e in range(len(lows)):
        (t, t_se), (c, c_se), (r, r_se) = (_summary(per[e, m], n) for m in range(3))
        out.append(Neighbourhood(t, c, r, t_se, c_se, r_se, int(queries.shape[0])))
    return out if isinstance(low, (list, tuple)) else out[0]
