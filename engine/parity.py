"""Do two embedders give the same scores? Seeds of a reference against seeds of the others.

A t-SNE or UMAP embedding changes with its seed, so one run of each library proves
nothing: each embedder embeds the same input under several seeds, the study's metrics
score every embedding, and each other embedder's mean is compared with the reference's
(openTSNE for t-SNE, umap-learn for UMAP) within a band:

    |mean(other) - mean(reference)| <= SPREAD x sd(reference) + ALLOWANCE[metric]

``SPREAD`` x the reference's own seed spread is what chance alone gives; the allowance
is what two correct implementations of one method may differ by beyond it (a stated
number, not fitted to pass). ``avg`` (the mean pair distance) depends on the
embedding's scale, which the libraries do not share, and is reported without a band.

``benchmarks/parity.py`` runs this on the study's inputs and writes the table of the
README; a test runs it in CI on a small input.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterable, Sequence

import numpy as np

from .embedders import EMBEDDERS, Embedder

log = logging.getLogger(__name__)

#: The scores compared, all scale-free: distance ratios and kNN accuracies.
BANDED = ("ds", "dd", "cs", "cd", "acc_knn", "acc_knn_loo")
#: How many of the reference's seed standard deviations chance may account for.
SPREAD = 3.0
#: What two correct implementations may differ by beyond seed noise, per metric:
#: 0.03 on the distance ratios (about a tenth of ds or cs on the study's inputs),
#: 0.01 on the accuracies (one point in a hundred).
ALLOWANCE = {"ds": 0.03, "dd": 0.03, "cs": 0.03, "cd": 0.03, "acc_knn": 0.01, "acc_knn_loo": 0.01}
#: The reference embedder per method.
REFERENCE = {"tsne": "opentsne", "umap": "umap-learn"}


def score_seeds(embedder: Embedder, x: np.ndarray, labels: np.ndarray, seeds: Iterable[int],
                k: int = 10) -> list[dict]:
    """Embed ``x`` once per seed and score each embedding; one dict per seed.

    Each dict holds the seed, the seconds the embedding took and the study's metrics
    (:func:`repscope.kernels.separation_metrics`), computed on the host.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> x, y = load_digits(return_X_y=True)
    >>> rows = score_seeds(EMBEDDERS["umap-learn"](), x[:300].astype("float32"), y[:300], [0])
    >>> sorted(rows[0])[:4], rows[0]["acc_knn"] > 0.9
    (['acc_knn', 'acc_knn_loo', 'avg', 'cd'], True)
    """
    from ..kernels import separation_metrics

    rows = []
    for seed in seeds:
        data = x
        if embedder.device == "cuda":
            import cupy

            data = cupy.asarray(x)
        started = time.perf_counter()
        points = embedder.embed(data, seed)
        seconds = time.perf_counter() - started
        if embedder.device == "cuda":
            points = points.get()
        metrics = separation_metrics(np.asarray(points, dtype=np.float32), np.asarray(labels, dtype=np.int64), k=k)
        log.info("%s seed %d: %.1f s, ds %.3f, cs %.3f, acc %.3f", embedder.name, seed, seconds,
                 metrics["ds"], metrics["cs"], metrics["acc_knn"])
        rows.append({"seed": seed, "seconds": round(seconds, 3), **metrics})
    return rows


def summarise(rows: Sequence[dict], metric: str) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one seed) of ``metric`` over ``rows``."""
    values = [r[metric] for r in rows]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def compare(reference: Sequence[dict], other: Sequence[dict]) -> dict[str, dict]:
    """Each metric's reference mean and spread, the other's mean, their difference, band and verdict.

    Examples
    --------
    >>> ref = [{"ds": 0.20, "avg": 10.0}, {"ds": 0.22, "avg": 11.0}]
    >>> out = compare(ref, [{"ds": 0.25, "avg": 40.0}])
    >>> round(out["ds"]["band"], 4), out["ds"]["within"], out["avg"]["within"]
    (0.0724, True, None)
    """
    out = {}
    for metric in reference[0]:
        if metric in ("seed", "seconds") or metric not in other[0]:
            continue
        ref_mean, ref_sd = summarise(reference, metric)
        mean, sd = summarise(other, metric)
        diff = mean - ref_mean
        row = {"reference_mean": ref_mean, "reference_sd": ref_sd, "mean": mean, "sd": sd, "difference": diff}
        if metric in BANDED:
            band = SPREAD * ref_sd + ALLOWANCE[metric]
            row.update(band=band, within=bool(abs(diff) <= band) if np.isfinite(diff) else False)
        else:
            row.update(band=None, within=None)
        out[metric] = row
    return out


def available_embedders(method: str) -> list[str]:
    """Every embedder of ``method`` usable here, with the device it runs on (``name@device``)."""
    found = []
    for name, cls in EMBEDDERS.items():
        if cls.method != method:
            continue
        found += [f"{name}@{device}" for device in cls.devices if cls.available(device)]
    return found


def make(spec: str, threads: int = 1) -> Embedder:
    """An embedder from ``name`` or ``name@device`` (``torchdr-tsne@cpu``)."""
    name, _, device = spec.partition("@")
    return EMBEDDERS[name](threads=threads, device=device or None)
