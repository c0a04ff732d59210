"""k-nearest-neighbour vote accuracy, with the point itself counted or left out.

``acc_knn`` is the study's definition: the classifier is fitted and queried on the same
points, so each point is its own nearest neighbour and one of its k votes. ``acc_knn_loo``
leaves the point out and takes the k nearest others. A tied vote goes to the smallest
label. One search for k + 1 neighbours serves both.

Searchers, by input and ``method``:

=========  ==============================================================  ===========
method     what                                                            input
=========  ==============================================================  ===========
``kdtree``  scikit-learn's KD-tree (fastest on the CPU in 2-D)             numpy
``faiss``   FAISS flat L2: a GPU index on CuPy input (through DLPack and   either
            torch tensors, no host copy), a CPU index on numpy input
``exact``   blocked exact search (``kernels.distances``), ties by index    either
=========  ==============================================================  ===========

``auto``: numpy input with d <= 3 takes the KD-tree; numpy input of higher d takes FAISS
where it imports; CuPy input takes FAISS where it has GPU support; everything else the
exact search.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from ._arrays import (
    DEFAULT_BLOCK_BYTES, InputError, array_module, is_cupy, rows_per_block, stable_argsort, validate,
)
from .distances import squared_distances, squared_norms

METHODS = ("auto", "kdtree", "faiss", "exact")
_TREE_MAX_DIMS = 3


class KnnAccuracy(NamedTuple):
    """0-d float64 arrays of the input's module."""

    acc_knn: object
    acc_knn_loo: object


def _faiss_usable(gpu: bool) -> bool:
    loader = logging.getLogger("faiss.loader")
    if loader.level == logging.NOTSET:  # its tries of builds for other CPUs, one INFO line each, are no news
        loader.setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError:
        return False
    return not gpu or (hasattr(faiss, "knn_gpu") and faiss.get_num_gpus() > 0)


def choose_method(xp, d: int, method: str = "auto") -> str:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "kdtree" and is_cupy(xp):
        raise InputError("method 'kdtree' takes numpy input only")
    if method != "auto":
        return method
    if is_cupy(xp):
        return "faiss" if _faiss_usable(gpu=True) else "exact"
    if d <= _TREE_MAX_DIMS:
        return "kdtree"
    return "faiss" if _faiss_usable(gpu=False) else "exact"


def neighbours(points, k: int, *, method: str = "auto", block_bytes: int = DEFAULT_BLOCK_BYTES):
    """Indices (N, k) of each point's k nearest points, itself included, nearest first."""
    xp = array_module(points)
    method = choose_method(xp, points.shape[1], method)
    if method == "kdtree":
        from sklearn.neighbors import KDTree

        x = np.asarray(points, dtype=np.float64)
        return KDTree(x).query(x, k=k, return_distance=False)
    if method == "faiss":
        return _faiss_search(points, k)
    return _exact_search(points, k, block_bytes)


def _faiss_search(points, k: int):
    import faiss

    xp = array_module(points)
    x = xp.ascontiguousarray(points, dtype=xp.float32)
    if is_cupy(xp):
        import faiss.contrib.torch_utils  # noqa: F401  (lets faiss take torch tensors)
        import torch

        t = torch.from_dlpack(x)
        _, idx = faiss.knn_gpu(faiss.StandardGpuResources(), t, t, k)
        return xp.from_dlpack(idx)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, idx = index.search(x, k)
    return idx


def _exact_search(points, k: int, block_bytes: int):
    """Exact k nearest by blocks of squared distances; equal distances ordered by index."""
    xp = array_module(points)
    x = xp.ascontiguousarray(points, dtype=xp.float64)
    n = x.shape[0]
    sq = squared_norms(x)
    out = xp.empty((n, k), dtype=xp.int64)
    step = rows_per_block(n, arrays=3, budget=block_bytes)
    for r0 in range(0, n, step):
        r1 = min(r0 + step, n)
        d2 = squared_distances(x[r0:r1], x, sq[r0:r1], sq)
        cand = d2.argsort(axis=1)[:, :k] if k >= n else xp.argpartition(d2, k - 1, axis=1)[:, :k]
        cand = xp.sort(cand, axis=1)  # by index first, so that the stable sort breaks ties by index
        order = stable_argsort(xp.take_along_axis(d2, cand, axis=1), axis=1)
        out[r0:r1] = xp.take_along_axis(cand, order, axis=1)
    return out


def _vote(xp, votes, n_classes: int):
    """Majority class per row of ``votes`` (class ids); ties to the smallest id."""
    n = votes.shape[0]
    counts = xp.zeros((n, n_classes), dtype=xp.int32)
    rows = xp.arange(n)
    for m in range(votes.shape[1]):
        counts[rows, votes[:, m]] += 1
    return counts.argmax(axis=1)


class KnnVotes(NamedTuple):
    """Each point's majority-vote label (the input's labels, not class ids), shape (N,)."""

    with_self: object
    left_out: object


def knn_votes(points, labels, k: int = 10, *, method: str = "auto",
              block_bytes: int = DEFAULT_BLOCK_BYTES) -> KnnVotes:
    """Majority vote of each point's k nearest neighbours, self counted and self left out.

    One search for k + 1 neighbours serves both. Ties go to the smallest label; with
    fewer points than k (+1), every other point votes.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a whole number >= 1; got {k!r}")
    points, labels = validate(points, labels)
    xp = array_module(points)
    n = points.shape[0]
    classes, ids = xp.unique(labels, return_inverse=True)
    ids = ids.reshape(-1)
    n_classes = int(ids.max()) + 1
    found = neighbours(points, min(k + 1, n), method=method, block_bytes=block_bytes)
    found = xp.asarray(found, dtype=xp.int64)
    with_self = found[:, :min(k, n)]
    # Leave the point itself out: drop its own index where present, else the farthest.
    rows = xp.arange(n)[:, None]
    is_self = found == rows
    drop = xp.where(is_self.any(axis=1), is_self.argmax(axis=1), found.shape[1] - 1)
    keep = xp.ones(found.shape, dtype=bool)
    keep[xp.arange(n), drop] = False
    without_self = found[keep].reshape(n, found.shape[1] - 1)[:, :min(k, n - 1)]
    return KnnVotes(classes[_vote(xp, ids[with_self], n_classes)],
                    classes[_vote(xp, ids[without_self], n_classes)])


def knn_accuracy(points, labels, k: int = 10, *, method: str = "auto",
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> KnnAccuracy:
    """Vote accuracies of the k nearest neighbours, self counted and self left out."""
    votes = knn_votes(points, labels, k, method=method, block_bytes=block_bytes)  # validates
    xp = array_module(points)
    labels = xp.asarray(labels)
    return KnnAccuracy((votes.with_self == labels).mean(dtype=xp.float64),
                       (votes.left_out == labels).mean(dtype=xp.float64))
