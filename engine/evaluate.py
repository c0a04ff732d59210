"""Evaluation: the metrics of every embedding (and, on request, of every representation
itself) gathered into ``metrics.csv`` with the measures beyond the study
(:mod:`repscope.engine.measures`), ``cka.csv``, ``statistics.csv`` (intervals and paired
tests across seeds, :mod:`repscope.engine.statistics`) and the study's tables.

Embedding metrics are computed by the jobs and read back from the store; a job made
with another k is scored again here. Representation-space metrics are computed here
and kept in the attributes of the array they were read from, so a rerun does not
repeat them and a rebuilt array drops them. Metrics kept beside an array are used
only after the array passes ``RunStore.verify`` (every byte read, every checksum and
the digest checked): a damaged array is marked incomplete and named, and nothing is
written until a rerun has rebuilt it. Kept metrics that were changed after they were
written (their seal fails, see :mod:`repscope.store.runstore`) are not used but
computed again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..kernels import separation_metrics
from ..store import NETWORKS, ORIGINAL, DamagedArrayError, Representation, RunStore
from .findings import Depths
from .jobs import JobKey, read_input, scored_with
from .measures import (
    CKA_CSV, DEFAULT_FAMILIES, between_networks, embedding_measures, group_by_representation, layer_cka,
    representation_measures,
)
from .progress import progress_bar
from .runinfo import read_run_config, store_location
from .statistics import STATISTICS_COLUMNS, comparisons
from .tables import write_cka_csv, write_metrics_csv, write_rows_csv, write_tables

log = logging.getLogger(__name__)

METRICS_CSV = "metrics.csv"
STATISTICS_CSV = "statistics.csv"
#: Above this N, exact neighbourhood measures on the CPU are worth a warning.
LARGE_N = 20_000
TABLES = "tables"


def _current(metrics: dict | None, k: int) -> bool:
    """Whether kept metrics were computed with ``k`` by these kernels (else they are computed again)."""
    return metrics is not None and all(metrics.get(name) == value for name, value in scored_with(k).items())


def _row(key: JobKey, network: str, space: str, n: int, k: int, metrics: dict) -> dict:
    return {"dataset": key.dataset, "seed": key.seed, "network": network,
            "method": key.method if space == "embedding" else "none", "space": space,
            "representation": key.representation, "in_study": key.in_study, "n": n, "k": k,
            **{m: float(v) for m, v in metrics.items() if m not in scored_with(k)}}


def _rows(key: JobKey, space: str, n: int, k: int, metrics: dict) -> list[dict]:
    """The rows of one result: ``original`` is shared, so it answers for both networks."""
    networks = NETWORKS if key.representation == ORIGINAL else (key.network,)
    return [_row(key, network, space, n, k, metrics) for network in networks]


def _sound(store: RunStore, key: str, damaged: list[str]) -> bool:
    """Whether array ``key`` passes verification (else it is marked incomplete and listed).
    Cached values of its record that were changed after they were written do not make it
    unsound: they are dropped (``RunStore.info`` no longer gives them) and computed again."""
    verified = store.verify(key)
    if verified.problem and not verified.cached:
        damaged.append(f"{key}: {verified.problem}")
        return False
    return True


def _embedding_metrics(store: RunStore, key: JobKey, labels, k: int, damaged: list[str]) -> dict | None:
    info = store.info(key.store_key)
    if info is None or not info.get("complete") or not _sound(store, key.store_key, damaged):
        return None
    metrics = info.get("metrics") or {}
    if not _current(metrics, k):
        metrics = {**scored_with(k), **separation_metrics(store.read(key.store_key), labels, k=k)}
        store.annotate(key.store_key, metrics=metrics)
    return metrics


def _representation_metrics(store: RunStore, key: JobKey, labels, k: int, damaged: list[str]) -> dict | None:
    source = key.source_key  # a wide representation is scored in its PCA-reduced form
    cache = (store.info(source) or {}).get("representation_metrics", {})
    cached = cache.get(key.representation)
    if _current(cached, k) and not _sound(store, source, damaged):
        return None
    if not _current(cached, k):
        cached = {**scored_with(k), **separation_metrics(read_input(store, key), labels, k=k)}
        store.annotate(source, representation_metrics={**cache, key.representation: cached})
    return cached


def evaluate(run_dir: str | Path, jobs: list[JobKey], spaces: tuple[str, ...], k: int,
             representations: dict[str, tuple[Representation, ...]],
             families: tuple[str, ...] = DEFAULT_FAMILIES, sample: int | None = None, gpu: bool = False) -> Path:
    """Write ``metrics.csv``, ``cka.csv`` (with the ``cka`` family) and the tables for
    ``jobs``; return the csv's path. ``families``: the measure families scored
    (:mod:`repscope.engine.measures`); ``sample``: query points of the neighbourhood
    measures' estimate (None: exact); ``gpu``: run the measures' kernels on CuPy arrays.

    Jobs whose embedding is missing are left out with a warning (the embed stage makes them).
    """
    run_dir = Path(run_dir)
    store = RunStore(store_location(run_dir))
    labels = {d: store.labels(d) for d in dict.fromkeys(key.dataset for key in jobs)}
    rows, missing, damaged = [], [], []
    extracted = read_run_config(run_dir).get("extract", {})
    heldout = {d: extracted.get(d, {}).get("heldout") != 0 for d in labels}  # 0: the source has no test split
    for d in labels:
        if "probe" in families and not heldout[d]:
            log.warning("%s has no test split: its probe_accuracy is NaN", d)
    largest = max((len(v) for v in labels.values()), default=0)
    if (not gpu and sample is None and largest > LARGE_N and "embedding" in spaces
            and {"recall", "trustworthiness"} & set(families)):
        log.warning("exact neighbourhood measures at N = %d on the CPU take minutes per representation (all pairs of "
                    "points; README, \"Measures beyond the study\"); --neighbourhood-sample M estimates them from M "
                    "query points with standard errors", largest)
    log.info("evaluate: %d embeddings, spaces %s, k %d, measures %s, neighbourhood %s, kernels %s", len(jobs),
             ", ".join(spaces), k, ", ".join(families), f"estimated from {sample} query points" if sample else "exact",
             "cupy" if gpu else "numpy")
    cka_rows = []
    if "cka" in families:
        for dataset, seed in sorted({(key.dataset, key.seed) for key in jobs}):
            depths = Depths(representations[dataset])
            whole = [next(r for r in representations[dataset] if r.name == depths.whole(layer)) for layer in depths.layers]
            cka_rows += layer_cka(store, dataset, seed, whole, len(labels[dataset]), gpu)
    layers = between_networks(cka_rows)
    if "embedding" in spaces:
        groups = group_by_representation(jobs)
        for group in progress_bar(list(groups.values()), desc="evaluate embeddings", unit="rep", leave=False):
            present = []
            for key in group:
                metrics = _embedding_metrics(store, key, labels[key.dataset], k, damaged)
                if metrics is None:
                    missing.append(key.id)
                else:
                    present.append((key, metrics))
            if not present:
                continue
            extra = embedding_measures(store, [key for key, _ in present], labels[present[0][0].dataset], k,
                                       families, sample, gpu)
            first = present[0][0]
            shared = representation_measures(store, first, labels[first.dataset], families, "embedding", first.seed,
                                             heldout[first.dataset], gpu, layers)
            for key, metrics in present:
                rows += _rows(key, "embedding", len(labels[key.dataset]), k,
                              {**metrics, **extra[key.id], **shared})
    if "representation" in spaces:
        seen = set()
        for key in progress_bar(jobs, desc="evaluate representations", unit="rep", leave=False):
            if (key.dataset, key.seed, key.network, key.representation) in seen:
                continue
            seen.add((key.dataset, key.seed, key.network, key.representation))
            metrics = _representation_metrics(store, key, labels[key.dataset], k, damaged)
            if metrics is None:
                continue
            extra = representation_measures(store, key, labels[key.dataset], families, "representation", key.seed,
                                            heldout[key.dataset], gpu, layers)
            rows += _rows(key, "representation", len(labels[key.dataset]), k, {**metrics, **extra})
    if damaged:
        raise DamagedArrayError(f"{len(damaged)} array(s) of {store.path} are damaged ({'; '.join(damaged[:3])}); "
                                "they are marked incomplete, and a rerun rebuilds them and then writes metrics.csv")
    if missing:
        log.warning("%d embeddings are missing and left out of metrics.csv (first: %s); run the embed stage",
                    len(missing), missing[0])
    order = {dataset: [r.name for r in reps] for dataset, reps in representations.items()}
    path = write_metrics_csv(rows, run_dir / METRICS_CSV, order)
    if "cka" in families:
        write_cka_csv(cka_rows, run_dir / CKA_CSV)
    depths = {d: Depths(reps) for d, reps in representations.items()}
    tables = write_tables(rows, run_dir / TABLES, depths)
    write_rows_csv(comparisons(rows, depths), STATISTICS_COLUMNS, run_dir / STATISTICS_CSV)
    log.info("metrics.csv: %d rows; %d table files in %s", len(rows), len(tables), run_dir / TABLES)
    return path
