"""Plain, obviously correct reference implementations of the study's metrics (float64).

Slow on purpose: loops that follow the definitions of the study's metrics (docs/study.md) word for word.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def pair_sums_loops(x, y):
    """Pure-Python double loop over i < j: (same_sum, same_count, diff_sum, diff_count)."""
    x = np.asarray(x, dtype=np.float64)
    same = diff = 0.0
    ns = nd = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        d = math.sqrt(sum((a - b) ** 2 for a, b in zip(x[i], x[j])))
        if y[i] == y[j]:
            same, ns = same + d, ns + 1
        else:
            diff, nd = diff + d, nd + 1
    return same, ns, diff, nd


def pair_sums(x, y):
    """The study's loop: for each i, the distances to all j > i, then masked sums."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    same = diff = 0.0
    ns = nd = 0
    for i in range(len(x) - 1):
        d = np.sqrt(((x[i + 1:] - x[i]) ** 2).sum(axis=1))
        mask = y[i + 1:] == y[i]
        same += d[mask].sum()
        diff += d[~mask].sum()
        ns += int(mask.sum())
        nd += int((~mask).sum())
    return same, ns, diff, nd


def centroid_stats(x, y):
    """(mean over classes of mean distance to the centroid, mean distance between centroids)."""
    x = np.asarray(x, dtype=np.float64)
    classes = sorted(set(np.asarray(y).tolist()))
    centroids = {c: x[y == c].mean(axis=0) for c in classes}
    within = np.mean([np.sqrt(((x[y == c] - centroids[c]) ** 2).sum(axis=1)).mean() for c in classes])
    pairs = [np.sqrt(((centroids[a] - centroids[b]) ** 2).sum()) for a, b in itertools.combinations(classes, 2)]
    return within, (np.mean(pairs) if pairs else math.nan)


def knn_accuracy(x, y, k, leave_out_self):
    """Brute force: all distances, nearest first (ties by index), majority vote, ties to the smallest label."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n = len(x)
    correct = 0
    for i in range(n):
        d = np.sqrt(((x - x[i]) ** 2).sum(axis=1))
        order = [j for j in np.argsort(d, kind="stable") if not (leave_out_self and j == i)][:k]
        votes = {}
        for j in order:
            votes[y[j]] = votes.get(y[j], 0) + 1
        best = max(votes.values())
        correct += min(c for c, v in votes.items() if v == best) == y[i]
    return correct / n
