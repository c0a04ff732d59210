"""Centroid statistics: spread of each class around its centroid, distances between centroids."""

from __future__ import annotations

from typing import NamedTuple

from ._arrays import DEFAULT_BLOCK_BYTES, array_module, is_cupy, rows_per_block, validate
from .distances import squared_distances


class CentroidStats(NamedTuple):
    """0-d float64 arrays of the input's module.

    within: mean over classes of the mean distance of a class's points to its centroid.
    between: mean distance over unordered pairs of distinct class centroids (NaN with
    fewer than two classes).
    """

    within: object
    between: object


def _segment_sums(xp, values, inverse, n_segments: int):
    """Sums of ``values`` rows per segment id in ``inverse`` (0 .. n_segments - 1)."""
    out = xp.zeros((n_segments, *values.shape[1:]), dtype=xp.float64)
    if is_cupy(xp):
        import cupyx

        cupyx.scatter_add(out, inverse, values)
    else:
        xp.add.at(out, inverse, values)
    return out


def centroid_stats(points, labels, *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> CentroidStats:
    """Per-class spread and centroid separation of ``points`` (N, d) with integer ``labels``."""
    points, labels = validate(points, labels, min_points=1)
    xp = array_module(points)
    classes, inverse, counts = xp.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    c = int(classes.shape[0])
    x = points.astype(xp.float64, copy=False)
    centroids = _segment_sums(xp, x, inverse, c) / counts[:, None]
    n = x.shape[0]
    dist = xp.empty(n, dtype=xp.float64)
    step = rows_per_block(x.shape[1], arrays=2, budget=block_bytes)
    for r0 in range(0, n, step):
        diff = x[r0:r0 + step] - centroids[inverse[r0:r0 + step]]
        dist[r0:r0 + step] = xp.sqrt((diff * diff).sum(axis=1))
    within = (_segment_sums(xp, dist, inverse, c) / counts).mean()
    if c < 2:
        return CentroidStats(within, xp.asarray(xp.nan, dtype=xp.float64))
    between = xp.sqrt(squared_distances(centroids, centroids))
    upper = xp.triu(xp.ones((c, c), dtype=bool), k=1)
    return CentroidStats(within, between[upper].mean())
