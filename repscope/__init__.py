"""repscope: what a network's layers learn, embedded in 2-D and scored, at the scale of whole data sets.

The package installs as one import name. Its parts live in the repository's top-level
folders and are installed beneath it:

* ``repscope.kernels``: array math (pair statistics, centroids, kNN votes, PCA) on numpy or CuPy;
* ``repscope.store``: the Zarr layout of a run and its resumable writes;
* ``repscope.engine``: the order of work (data, training, extraction, embedding, evaluation, report).

For a notebook the entry points are :func:`analyze` (a whole run on a model and data
of your own), :func:`plan` (what such a run would store, and the disk it needs, before
any work), :class:`Run` (a run folder's results), :func:`separation_metrics` (the
study's metrics of any points) and the measures beyond them: :func:`neighbourhood_scores`
(trustworthiness, continuity, recall of an embedding), :func:`silhouette_score`,
:func:`linear_cka` and :func:`cka_matrix`, :func:`linear_probe`.

Examples
--------
>>> import numpy as np, repscope
>>> points = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0], [5.0, 1.0]])
>>> metrics = repscope.separation_metrics(points, np.array([0, 0, 1, 1]), k=1)
>>> round(metrics["acc_knn_loo"], 3)
1.0
"""

from __future__ import annotations

__version__ = "0.2.0"

#: The measures of any arrays, from ``repscope.kernels``.
_KERNELS = ("separation_metrics", "neighbourhood_scores", "silhouette_score", "linear_cka", "cka_matrix", "linear_probe")
__all__ = ["__version__", "Run", "analyze", "plan", *_KERNELS]


def __getattr__(name: str):
    """The entry points, imported when first used: a command that needs neither PyTorch nor
    the kernels (``repscope --version``, ``verify``, ``report``) starts without them."""
    if name in ("Run", "analyze", "plan"):
        from .engine import api

        return getattr(api, name)
    if name in _KERNELS:
        from . import kernels

        return getattr(kernels, name)
    raise AttributeError(f"module 'repscope' has no attribute {name!r}")
