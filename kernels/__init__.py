"""Array math on numpy or CuPy arrays: no files, no pipeline knowledge.

Every kernel takes arrays of one module and answers in the same module; CuPy is
imported only when CuPy arrays come in.
"""

from ._arrays import InputError
from .centroids import CentroidStats, centroid_stats
from .cka import cka_matrix, linear_cka
from .knn import KnnAccuracy, KnnVotes, knn_accuracy, knn_votes, neighbours
from .metrics import METRICS, separation_metrics
from .neighbourhood import Neighbourhood, neighbourhood_scores
from .pairs import PairSums, pair_sums
from .probe import Probe, linear_probe
from .silhouette import class_distance_sums, silhouette_samples, silhouette_score

#: The version of the kernels' results: raised whenever any kernel's result changes in any
#: bit (another summation order, say), so that values computed by earlier kernels and kept
#: beside a run's arrays are computed again instead of being reported beside new ones.
KERNELS_VERSION = 1

__all__ = [
    "KERNELS_VERSION", "InputError", "CentroidStats", "centroid_stats", "KnnAccuracy", "knn_accuracy", "KnnVotes", "knn_votes", "neighbours",
    "METRICS", "separation_metrics", "PairSums", "pair_sums", "cka_matrix", "linear_cka", "Neighbourhood",
    "neighbourhood_scores", "Probe", "linear_probe", "class_distance_sums", "silhouette_samples", "silhouette_score",
]
