"""Embedding jobs: what they are, and the pure function that runs one.

A job is one (dataset, seed, network, representation, method). ``run_job`` reads the
representation from the store chunk-wise, embeds it, computes its metrics (on the
embedder's device: a GPU embedding is scored with the CuPy kernels before it leaves the
device), writes the (N, 2) embedding, records timing, parameters and metrics beside it,
and only then marks it complete. It depends on nothing but the run folder and the key,
so any scheduler (the local pool, a Dask worker) can run it, and a rerun skips it once
complete.

The trained and untrained networks see the same input, so ``original`` is embedded
once, under ``trained``, and serves both.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..store import (
    CHUNK_ROWS, EMBEDDING_DIMS, NETWORKS, ORIGINAL, Representation, RunStore, array_key, embedding_key, reduced_key,
    same_name,
)
from ..kernels import KERNELS_VERSION
from .embedders import EMBEDDERS
from .runinfo import STORE
from .threads import JOB_THREADS, pinned

log = logging.getLogger(__name__)

#: Magnitudes the embedders handle: their squared distances, in float32 inside openTSNE,
#: umap-learn and pynndescent, overflow beyond about 1.8e19 and lose precision long before;
#: below 1e-12 they underflow towards float32's smallest normal numbers (1.2e-38).
LARGE_VALUES, SMALL_VALUES = 1e12, 1e-12

K = 10
#: Representations wider than this are reduced by PCA before embedding (openTSNE's and
#: cuML's documentation recommend it); narrower ones are embedded as they are.
WIDE = 1_000
#: Principal components a wide representation is reduced to.
COMPONENTS = 50


def needs_reduction(rep: Representation) -> bool:
    """Whether a representation is wide enough to be reduced by PCA before embedding."""
    return rep.dims > WIDE


@dataclass(frozen=True, order=True)
class JobKey:
    """One embedding job."""

    dataset: str
    seed: int
    network: str
    method: str
    representation: str
    #: What the representation is (its array, channel, width); not part of the key's identity.
    rep: Representation = field(compare=False, repr=False, default=None)

    @property
    def id(self) -> str:
        return f"{self.dataset}/seed{self.seed}/{self.network}/{self.method}/{self.representation}"

    @property
    def store_key(self) -> str:
        return embedding_key(self.dataset, self.seed, self.network, self.method, self.representation)

    @property
    def in_study(self) -> bool:
        return self.rep.in_study

    @property
    def reduced(self) -> bool:
        """Whether the job embeds the PCA-reduced form of a wide representation."""
        return needs_reduction(self.rep)

    @property
    def source_key(self) -> str:
        """The array the job reads: the representation's, or its reduced form."""
        if self.reduced:
            return reduced_key(self.dataset, self.seed, self.network, self.representation)
        return array_key(self.dataset, self.seed, self.network, self.rep.array)


def job_list(datasets, seeds, methods, representations: dict[str, tuple[Representation, ...]],
             names=None) -> list[JobKey]:
    """Every job of the product, ``original`` once per (dataset, seed, method).

    ``representations``: each data set's representations; ``names`` a subset by name.
    """
    jobs = []
    for dataset, seed, method in itertools.product(datasets, seeds, methods):
        reps = representations[dataset]
        if names is not None:
            wanted = {same_name(name) for name in names}
            reps = [r for r in reps if same_name(r.name) in wanted]
        for rep in reps:
            for network in (("trained",) if rep.name == ORIGINAL else NETWORKS):
                jobs.append(JobKey(dataset, seed, network, method, rep.name, rep))
    return jobs


@dataclass(frozen=True)
class JobSettings:
    """What a job needs besides its key: which embedder per method, numba threads, k, the store."""

    embedders: dict  # method -> embedder name
    #: method -> the device its embedder runs on; a method not named: the embedder's first device.
    devices: dict = field(default_factory=dict)
    #: numba threads of the job's process (speed only: the kernels' sums do not depend on it).
    numba_threads: int = 1
    k: int = K
    #: The store's location (a path or an fsspec URL); empty: ``<run_dir>/store.zarr``.
    store: str = ""


def _magnitude_hint(x) -> str:
    """Where the input's values are outside what the embedders handle, a clause saying so."""
    top = float(abs(x).max()) if x.size else 0.0
    if top > LARGE_VALUES or 0 < top < SMALL_VALUES:
        return (f"; the input's largest magnitude is {top:.3g}, outside the {SMALL_VALUES:g} to {LARGE_VALUES:g} the "
                "embedders handle (they compute squared distances in float32): rescale the data")
    return ""


def scored_with(k: int) -> dict:
    """What the study's metrics kept beside an array were computed with: k and the kernels'
    version (values kept by other kernels are computed again)."""
    return {"k": k, "kernels": KERNELS_VERSION}


def make_embedder(settings: JobSettings, method: str):
    """The embedder instance that serves ``method``: its class, device and threads (``JOB_THREADS``)."""
    return EMBEDDERS[settings.embedders[method]](threads=JOB_THREADS, device=settings.devices.get(method))


def job_store(run_dir: str | Path, settings: JobSettings) -> RunStore:
    """The store a job reads and writes: ``settings.store``, else ``<run_dir>/store.zarr``."""
    return RunStore(settings.store or Path(run_dir) / STORE)


def source_fingerprint(store: RunStore, key: JobKey) -> dict:
    """What the array a job reads is made from, and its content digest: a changed or
    rebuilt source with other bytes means a stale embedding."""
    return store.made_from(key.source_key)


def job_fingerprint(store: RunStore, key: JobKey, settings: JobSettings, n: int) -> dict:
    """What a job's embedding is made from: its source array and the embedder's full description."""
    embedder = make_embedder(settings, key.method)
    return {"source": source_fingerprint(store, key), **embedder.describe(n, key.seed)}


def is_done(store: RunStore, key: JobKey, settings: JobSettings, n: int) -> bool:
    """Whether the job's embedding is complete and made from the current inputs and settings."""
    return store.is_complete(key.store_key, job_fingerprint(store, key, settings, n))


def read_input(store: RunStore, key: JobKey) -> np.ndarray:
    """The (N, dims) float32 array a job embeds: the representation, or its PCA-reduced form."""
    if key.reduced:
        return store.read(key.source_key).astype(np.float32, copy=False)
    return store.read_representation(key.dataset, key.seed, key.network, key.rep)


def run_job(run_dir: str | Path, key: JobKey, settings: JobSettings) -> dict:
    """Embed and score one representation; return {id, seconds, metrics, skipped}."""
    from ..kernels import separation_metrics

    store = job_store(run_dir, settings)
    embedder = make_embedder(settings, key.method)
    labels = store.labels(key.dataset)
    n = len(labels)
    fingerprint = job_fingerprint(store, key, settings, n)
    progress = store.prepare(key.store_key, (n, 2), "float32", fingerprint, chunks=(min(CHUNK_ROWS, n), 2),
                             dims=EMBEDDING_DIMS, attributes={"description": f"{embedder.name} embedding of "
                             f"{key.representation}, {key.network} network, seed {key.seed}"})
    if progress.complete:
        info = store.info(key.store_key)
        return {"id": key.id, "seconds": info.get("seconds"), "metrics": info.get("metrics"), "skipped": True}
    x = read_input(store, key)
    constant = bool((x == x[:1]).all())
    if embedder.device == "cuda":
        import cupy

        x, labels = cupy.asarray(x), cupy.asarray(labels)
    started = time.perf_counter()
    if constant:
        # A dead filter: every example has the same representation. Embedders divide by its
        # zero spread (openTSNE's PCA initialisation returns NaN); the faithful 2-D picture of
        # identical points is one point, and the metrics then say there is nothing to separate.
        log.warning("%s: every example has the same representation (%s); its embedding is a single point", key.id,
                    "a dead filter" if "/filter" in key.representation else "it is constant")
        embedding = (cupy if embedder.device == "cuda" else np).zeros((n, 2), dtype=np.float32)
    else:
        # Thread counts change the last bits of gradients and PCA initialisations: fixed, so
        # that any scheduler, worker count or machine (pool, Dask worker, in-process) gives the same bytes.
        with pinned(JOB_THREADS):
            try:
                embedding = embedder.embed(x, key.seed)
            except Exception as exc:  # the embedder's own error, said to be its own
                raise RuntimeError(f"{embedder.name} failed on {key.id}: {type(exc).__name__}: {exc}"
                                   f"{_magnitude_hint(x)}") from exc
        xp = cupy if embedder.device == "cuda" else np
        bad = int((~xp.isfinite(embedding)).sum())
        if bad:
            raise RuntimeError(f"{embedder.name} returned {bad} NaN or Inf coordinates for {key.id} from finite input"
                               f"{_magnitude_hint(x)}")
    seconds = time.perf_counter() - started
    metrics = separation_metrics(embedding, labels.astype("int64"), k=settings.k)
    host = embedding.get() if embedder.device == "cuda" else embedding
    progress.array[:] = np.asarray(host, dtype=np.float32)
    store.commit_rows(progress, n)
    reduced = {}
    if key.reduced:
        pca = store.info(key.source_key)["pca"]
        reduced = {"reduced": {k: pca[k] for k in ("from_dims", "components", "explained_variance_total", "library")}}
    store.annotate(key.store_key, seconds=round(seconds, 4), metrics={**scored_with(settings.k), **metrics},
                   constant_input=constant, **reduced)
    store.mark_complete(progress)
    return {"id": key.id, "seconds": seconds, "metrics": metrics, "skipped": False}

