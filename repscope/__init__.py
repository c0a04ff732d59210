"""repscope: what a network's layers learn, embedded in 2-D and scored, at the scale of whole data sets.

The package installs as one import name. Its parts live in the repository's top-level
folders and are installed beneath it:

* ``repscope.kernels``: array math (pair statistics, centroids, kNN votes, PCA) on numpy or CuPy;
* ``repscope.store``: the Zarr layout of a run and its resumable writes;
* ``repscope.engine``: the order of work (data, training, extraction, embedding, evaluation, report).

For a notebook the entry points are :func:`analyze` (a whole run on a model and data
of your own), :class:`Run` (a run folder's results) and :func:`separation_metrics`
(the study's metrics of any points).

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

__all__ = ["__version__", "Run", "analyze", "separation_metrics"]


def __getattr__(name: str):
    """The entry points, imported when first used: a command that needs neither PyTorch nor
    the kernels (``repscope --version``, ``verify``, ``report``) starts without them."""
    if name in ("Run", "analyze"):
        from .engine import api

        return getattr(api, name)
    if name == "separation_metrics":
        from .kernels import separation_metrics

        return separation_metrics
    raise AttributeError(f"module 'repscope' has no attribute {name!r}")
