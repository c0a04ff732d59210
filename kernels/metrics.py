"""All class-separation metrics of the study for one (points, labels) pair.

For points E (N, d) and labels y, distances Euclidean, sums in float64, pairs i < j:

========  ===================================================================
avg       mean distance over all pairs
ds        mean distance over same-label pairs / avg
dd        mean distance over different-label pairs / avg
cs        mean over classes of the mean distance to the class centroid / avg
cd        mean distance over pairs of distinct class centroids / avg
acc_knn   k-NN vote accuracy, each point its own nearest neighbour (the study's)
acc_knn_loo  the same with the point left out (the honest variant)
========  ===================================================================

A ratio whose pairs do not exist (one class, or every point identical) is NaN.
"""

from __future__ import annotations

import math

from ._arrays import DEFAULT_BLOCK_BYTES
from .centroids import centroid_stats
from .knn import knn_accuracy
from .pairs import pair_sums

METRICS = ("avg", "ds", "dd", "cs", "cd", "acc_knn", "acc_knn_loo")


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def separation_metrics(points, labels, k: int = 10, *, pair_method: str = "auto", knn_method: str = "auto",
                       block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, float]:
    """The metrics of the module doc as Python floats, keyed in the order of ``METRICS``.

    Works on numpy or CuPy input; with CuPy everything runs on the device and only the
    seven final scalars are copied to the host.

    Parameters
    ----------
    points : (N, d) array
        The points (an embedding or a representation), float.
    labels : (N,) integer array
        Their classes.
    k : int
        Neighbours of the kNN vote.
    pair_method, knn_method : str
        ``auto`` picks the kernel by input (see :func:`pair_sums`, :func:`knn_accuracy`).
    block_bytes : int
        Working memory of one block of a blocked kernel.

    Returns
    -------
    dict
        ``avg``, ``ds``, ``dd``, ``cs``, ``cd``, ``acc_knn``, ``acc_knn_loo``.

    Examples
    --------
    Two tight, distant classes: same-label pairs are short, different-label pairs long.

    >>> import numpy as np
    >>> points = np.array([[0.0, 0.0], [0.0, 1.0], [4.0, 0.0], [4.0, 1.0]])
    >>> m = separation_metrics(points, np.array([0, 0, 1, 1]), k=1)
    >>> round(m["ds"], 3), round(m["dd"], 3), m["acc_knn_loo"]
    (0.329, 1.336, 1.0)
    """
    pairs = pair_sums(points, labels, method=pair_method, block_bytes=block_bytes)
    cent = centroid_stats(points, labels, block_bytes=block_bytes)
    knn = knn_accuracy(points, labels, k, method=knn_method, block_bytes=block_bytes)
    same_sum, same_count = float(pairs.same_sum), int(pairs.same_count)
    diff_sum, diff_count = float(pairs.diff_sum), int(pairs.diff_count)
    avg = (same_sum + diff_sum) / (same_count + diff_count)
    return {
        "avg": avg,
        "ds": _ratio(_ratio(same_sum, same_count), avg),
        "dd": _ratio(_ratio(diff_sum, diff_count), avg),
        "cs": _ratio(float(cent.within), avg),
        "cd": _ratio(float(cent.between), avg),
        "acc_knn": float(knn.acc_knn),
        "acc_knn_loo": float(knn.acc_knn_loo),
    }
