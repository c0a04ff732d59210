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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from store import CHUNK_ROWS, REPRESENTATIONS, RunStore, array_key, embedding_key, representation

from .embedders import EMBEDDERS
from .runinfo import STORE

log = logging.getLogger(__name__)

NETWORKS = ("trained", "untrained")
K = 10


@dataclass(frozen=True, order=True)
class JobKey:
    """One embedding job."""

    dataset: str
    seed: int
    network: str
    method: str
    representation: str

    @property
    def id(self) -> str:
        return f"{self.dataset}/seed{self.seed}/{self.network}/{self.method}/{self.representation}"

    @property
    def store_key(self) -> str:
        return embedding_key(self.dataset, self.seed, self.network, self.method, self.representation)

    @property
    def in_study(self) -> bool:
        return representation(self.representation).in_study


def job_list(datasets, seeds, methods, representations=None) -> list[JobKey]:
    """Every job of the product, ``original`` once per (dataset, seed, method)."""
    names = [r.name for r in REPRESENTATIONS] if representations is None else list(representations)
    jobs = []
    for dataset, seed, method, name in itertools.product(datasets, seeds, methods, names):
        for network in (("trained",) if name == "original" else NETWORKS):
            jobs.append(JobKey(dataset, seed, network, method, name))
    return jobs


@dataclass(frozen=True)
class JobSettings:
    """What a job needs besides its key: which embedder per method, threads, k, the store."""

    embedders: dict  # method -> embedder name
    threads: int = 1
    k: int = K
    #: The store's location (a path or an fsspec URL); empty: ``<run_dir>/store.zarr``.
    store: str = ""


def job_store(run_dir: str | Path, settings: JobSettings) -> RunStore:
    """The store a job reads and writes: ``settings.store``, else ``<run_dir>/store.zarr``."""
    return RunStore(settings.store or Path(run_dir) / STORE)


def source_fingerprint(store: RunStore, key: JobKey) -> dict:
    """The fingerprint of the array a job reads: a changed source means a stale embedding."""
    info = store.info(array_key(key.dataset, key.seed, key.network, representation(key.representation).array))
    return {} if info is None else info.get("fingerprint", {})


def job_fingerprint(store: RunStore, key: JobKey, settings: JobSettings, n: int) -> dict:
    """What a job's embedding is made from: its source array and the embedder's full description."""
    embedder = EMBEDDERS[settings.embedders[key.method]](threads=settings.threads)
    return {"source": source_fingerprint(store, key), **embedder.describe(n, key.seed)}


def is_done(store: RunStore, key: JobKey, settings: JobSettings, n: int) -> bool:
    """Whether the job's embedding is complete and made from the current inputs and settings."""
    return store.is_complete(key.store_key, job_fingerprint(store, key, settings, n))


def run_job(run_dir: str | Path, key: JobKey, settings: JobSettings) -> dict:
    """Embed and score one representation; return {id, seconds, metrics, skipped}."""
    from kernels import separation_metrics

    store = job_store(run_dir, settings)
    embedder = EMBEDDERS[settings.embedders[key.method]](threads=settings.threads)
    labels = store.labels(key.dataset)
    n = len(labels)
    fingerprint = job_fingerprint(store, key, settings, n)
    progress = store.prepare(key.store_key, (n, 2), "float32", fingerprint, chunks=(min(CHUNK_ROWS, n), 2))
    if progress.complete:
        info = store.info(key.store_key)
        return {"id": key.id, "seconds": info.get("seconds"), "metrics": info.get("metrics"), "skipped": True}
    x = store.read_representation(key.dataset, key.seed, key.network, key.representation)
    constant = bool((x == x[:1]).all())
    if embedder.device == "cuda":
        import cupy

        x, labels = cupy.asarray(x), cupy.asarray(labels)
    started = time.perf_counter()
    if constant:
        # A dead filter: every example has the same representation. Embedders divide by its
        # zero spread (openTSNE's PCA initialisation returns NaN); the faithful 2-D picture of
        # identical points is one point, and the metrics then say there is nothing to separate.
        log.warning("%s: every example has the same representation (a dead filter); "
                    "its embedding is a single point", key.id)
        embedding = (cupy if embedder.device == "cuda" else np).zeros((n, 2), dtype=np.float32)
    else:
        # BLAS threads change the last bits of PCA initialisations; pin them to the job's
        # threads so that every scheduler (pool, Dask worker, in-process) gives the same bytes.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=settings.threads):
            embedding = embedder.embed(x, key.seed)
    seconds = time.perf_counter() - started
    metrics = separation_metrics(embedding, labels.astype("int64"), k=settings.k)
    host = embedding.get() if embedder.device == "cuda" else embedding
    progress.array[:] = np.asarray(host, dtype=np.float32)
    store.commit_rows(progress, n)
    store.annotate(key.store_key, seconds=round(seconds, 4), metrics={"k": settings.k, **metrics},
                   constant_input=constant)
    store.mark_complete(progress)
    return {"id": key.id, "seconds": seconds, "metrics": metrics, "skipped": False}

