"""The measures beyond the study's separation metrics, computed over a run's store.

Families (``--metrics``), each a set of ``metrics.csv`` columns:

=================  ==========================================================  ===========
family             columns                                                     default
=================  ==========================================================  ===========
``separation``     the study's: avg, ds, dd, cs, cd, acc_knn, acc_knn_loo      always
``recall``         recall: share of each point's k nearest in the represen-    yes
                   tation kept among its k nearest in the embedding
``trustworthiness``  trustworthiness, continuity (and recall, from the same    no
                   pass), each with its standard error where sampled
``silhouette``     silhouette of the classes in the space scored (2-D in the   yes
                   embedding rows; in representation rows, of what the
                   embedders read: a wide one's PCA-reduced form)
``cka``            cka_untrained: linear CKA of a representation between the   yes
                   trained and the untrained network; ``cka.csv``: CKA between
                   every pair of whole layers of both networks (up to
                   ``CKA_MAX_DIMS`` values wide)
``probe``          probe_accuracy: a linear probe's accuracy on held-out test  no
                   examples (needs their activations: extract stores them)
=================  ==========================================================  ===========

Where the run's kernels are CuPy's (a GPU run) the neighbourhood measures, silhouettes
and CKA run on the GPU; probes are scikit-learn's, on the CPU.

The neighbourhood measures compare an embedding with what it was made from (the
representation, or its PCA-reduced form for a wide one); both of a representation's
embeddings (t-SNE, UMAP) are scored in one pass over its distances. They are exact by
default; ``neighbourhood_sample=m`` estimates them from m seeded query points with a
standard error (``queries`` says how many points were used). A dead filter (every
example in one point) has NaN neighbourhood measures and silhouette, as it has NaN
distance ratios. Every value is kept beside the array it was computed from, keyed by
what decides it (k, the sample, the digests of the arrays it reads), so a rerun does
not repeat it and a rebuilt array with other bytes recomputes it. Kept values are sealed
by the store (:mod:`repscope.store.runstore`): one changed after it was written is not
used but computed again.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

import numpy as np

from ..kernels import KERNELS_VERSION, InputError, cka_matrix, linear_probe, neighbourhood_scores, silhouette_score
from ..store import NETWORKS, ORIGINAL, RunStore, array_key, heldout_key
from .errors import MissingDataError, SettingsError
from .jobs import JobKey, read_input

log = logging.getLogger(__name__)

FAMILIES = ("separation", "recall", "trustworthiness", "silhouette", "cka", "probe")
DEFAULT_FAMILIES = ("separation", "recall", "silhouette", "cka")
#: The columns the families add to ``metrics.csv``, in order.
COLUMNS = ("silhouette", "recall", "recall_se", "trustworthiness", "trustworthiness_se", "continuity",
           "continuity_se", "queries", "probe_accuracy", "cka_untrained")
#: What each family fills.
FILLS = {"recall": ("recall", "recall_se", "queries"),
         "trustworthiness": ("trustworthiness", "trustworthiness_se", "continuity", "continuity_se", "recall",
                             "recall_se", "queries"),
         "silhouette": ("silhouette",), "cka": ("cka_untrained",), "probe": ("probe_accuracy",)}
CKA_CSV = "cka.csv"
#: CKA accumulates a d1 x d2 float64 cross-product per pair: representations wider than
#: this (2 GB for one d x d matrix) are left out (NaN, with a warning) rather than filling memory.
CKA_MAX_DIMS = 16_384


def parse_families(value) -> tuple[str, ...]:
    """The families asked for, ``separation`` always first, in the order of ``FAMILIES``.

    ``value``: None or ``default`` (the default set), ``all``, or a list or comma-separated
    string of family names.

    Examples
    --------
    >>> parse_families("probe,recall")
    ('separation', 'recall', 'probe')
    >>> parse_families(None) == DEFAULT_FAMILIES, parse_families("all") == FAMILIES
    (True, True)
    """
    if value is None or value == "default":
        return DEFAULT_FAMILIES
    if value == "all":
        return FAMILIES
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    bad = [v for v in items if v not in FAMILIES and v != "default"]
    if bad or not items:
        raise SettingsError(f"--metrics: unknown {', '.join(map(repr, bad)) or 'empty list'}; choose from "
                            f"{', '.join(FAMILIES)}, default or all")
    chosen = set(items) | {"separation"} | (set(DEFAULT_FAMILIES) if "default" in items else set())
    return tuple(f for f in FAMILIES if f in chosen)


def _module(gpu: bool):
    """The array module of the measures' kernels: CuPy where the run's kernels are CuPy's."""
    if not gpu:
        return np
    import cupy

    return cupy


def _device(array, gpu: bool):
    """``array`` on the GPU when ``gpu``, else as it is."""
    return _module(gpu).asarray(array) if gpu else array


def _cached(info: dict, name: str, decided_by: dict):
    """The value kept in an array's attributes ``info`` (``RunStore.info``) under ``name``
    if made with ``decided_by`` by these kernels (``KERNELS_VERSION``), else None."""
    kept = (info.get("measures") or {}).get(name)
    return kept["value"] if kept is not None and kept.get("by") == {**decided_by, "kernels": KERNELS_VERSION} else None


def _keep(store: RunStore, key: str, info: dict, name: str, decided_by: dict, value) -> None:
    """Keep ``value`` under ``name`` beside array ``key``, and in ``info``, its attributes as read."""
    by = {**decided_by, "kernels": KERNELS_VERSION}
    info["measures"] = {**(info.get("measures") or {}), name: {"by": by, "value": value}}
    store.annotate(key, measures=info["measures"])


def _or_nan(fn, what: str):
    """``fn()``, or NaN where the measure is undefined for these points (one class, too few points)."""
    try:
        return fn()
    except InputError as exc:
        log.info("%s: undefined (%s); NaN", what, exc)
        return math.nan


def embedding_measures(store: RunStore, keys: list[JobKey], labels, k: int, families: tuple[str, ...],
                       sample: int | None = None, gpu: bool = False) -> dict[str, dict]:
    """The embedding columns of the jobs of one representation (its t-SNE and UMAP
    embeddings), ``{job id: {column: value}}``; their embeddings must be complete. With
    ``gpu`` the kernels run on CuPy arrays."""
    out: dict[str, dict] = {key.id: {} for key in keys}
    infos = {key.id: store.info(key.store_key) or {} for key in keys}
    source = store.made_from(keys[0].source_key).get("digest")
    digests = {key.id: [infos[key.id].get("digest"), source] for key in keys}
    # A dead filter (every example one point) has no classes or neighbourhoods to keep:
    # NaN, as its distance ratios, rather than the perfect scores of an all-tied picture.
    dead = {key.id for key in keys if infos[key.id].get("constant_input")}
    if "silhouette" in families:
        for key in keys:
            by = {"digests": digests[key.id]}
            value = _cached(infos[key.id], "silhouette", by)
            if value is None:
                value = math.nan if key.id in dead else _or_nan(
                    lambda key=key: silhouette_score(_device(store.read(key.store_key), gpu), _device(labels, gpu)),
                    key.id)
                _keep(store, key.store_key, infos[key.id], "silhouette", by, value)
            out[key.id]["silhouette"] = value
    if "recall" in families or "trustworthiness" in families:
        def decided_by(key: JobKey) -> dict:
            return {"k": k, "sample": sample, "seed": key.seed if sample else None, "digests": digests[key.id]}

        todo = [key for key in keys if _cached(infos[key.id], "neighbourhood", decided_by(key)) is None]
        if todo:
            values = {key.id: dict.fromkeys(FILLS["trustworthiness"], math.nan) for key in todo}
            alive = [key for key in todo if key.id not in dead]
            if alive:
                high = _device(read_input(store, alive[0]), gpu)
                try:
                    scores = neighbourhood_scores(high, [_device(store.read(key.store_key), gpu) for key in alive],
                                                  k=k, sample=sample, seed=alive[0].seed)
                    values.update({key.id: s._asdict() for key, s in zip(alive, scores)})
                except InputError as exc:
                    log.info("%s: neighbourhood measures undefined (%s); NaN", alive[0].id, exc)
            for key in todo:
                _keep(store, key.store_key, infos[key.id], "neighbourhood", decided_by(key), values[key.id])
        wanted = FILLS["trustworthiness"] if "trustworthiness" in families else FILLS["recall"]
        for key in keys:
            value = _cached(infos[key.id], "neighbourhood", decided_by(key))
            out[key.id].update({c: value[c] for c in wanted})
    return out


def representation_measures(store: RunStore, key: JobKey, labels, families: tuple[str, ...], space: str,
                            seed: int, heldout: bool = True, gpu: bool = False,
                            layers: dict[tuple, float] | None = None) -> dict:
    """The columns of one representation that do not depend on an embedding: its
    silhouette (in representation rows only; of what the embedders read: the PCA-reduced
    form of a wide representation), its probe (NaN where the source has no held-out
    examples: ``heldout`` False), its trained-untrained CKA (a whole layer's taken from
    ``layers``, :func:`between_networks` of :func:`layer_cka`'s rows, where it is there)."""
    out = {}
    source = key.source_key
    if space == "representation" and "silhouette" in families:
        info = store.info(source) or {}
        by = {"digests": [info.get("digest")]}
        value = _cached(info, f"silhouette:{key.representation}", by)
        if value is None:
            value = _or_nan(lambda: silhouette_score(_device(read_input(store, key), gpu), _device(labels, gpu)),
                            key.id)
            _keep(store, source, info, f"silhouette:{key.representation}", by, value)
        out["silhouette"] = value
    if "probe" in families:
        out["probe_accuracy"] = probe_accuracy(store, key, seed) if heldout else math.nan
    if "cka" in families:
        known = (layers or {}).get((key.dataset, key.seed, key.representation))
        out["cka_untrained"] = known if known is not None else cka_untrained(store, key, len(labels), gpu)
    return out


def cka_untrained(store: RunStore, key: JobKey, n: int, gpu: bool = False) -> float:
    """Linear CKA of representation ``key.rep`` between the trained and the untrained
    network (1 for ``original``, which both share, unless every example is the same: then,
    as for any constant representation, NaN) over its ``n`` examples; kept beside the
    trained array."""
    if key.representation == ORIGINAL:
        return math.nan if (store.info(key.store_key) or {}).get("constant_input") else 1.0
    rep = key.rep
    if rep.dims > CKA_MAX_DIMS:
        log.warning("%s: %d values, wider than CKA's %d: cka_untrained is NaN", key.id, rep.dims, CKA_MAX_DIMS)
        return math.nan
    arrays = [array_key(key.dataset, key.seed, network, rep.array) for network in NETWORKS]
    infos = [store.info(a) or {} for a in arrays]
    by = {"digests": [info.get("digest") for info in infos]}
    name = f"cka_untrained:{key.representation}"
    value = _cached(infos[0], name, by)
    if value is None:
        rows = [_Rows(store, key.dataset, key.seed, network, rep, n) for network in NETWORKS]
        value = float(cka_matrix(rows, xp=_module(gpu))[0, 1])
        _keep(store, arrays[0], infos[0], name, by, value)
    return value


class _Rows:
    """A representation read block by block (``x[a:b]``), for :func:`~repscope.kernels.cka_matrix`."""

    def __init__(self, store: RunStore, dataset: str, seed: int, network: str, rep, n: int):
        self.store, self.dataset, self.seed, self.network, self.rep = store, dataset, seed, network, rep
        self.shape = (n, rep.dims)

    def __getitem__(self, rows: slice):
        return self.store.read_representation(self.dataset, self.seed, self.network, self.rep, rows=rows)


def layer_cka(store: RunStore, dataset: str, seed: int, whole: list, n: int, gpu: bool = False) -> list[dict]:
    """Linear CKA between every pair of the whole-layer representations ``whole`` (in depth
    order, ``original`` first) of both networks of one seed, over its ``n`` examples: rows
    for ``cka.csv``. Kept in the attributes of the seed's group, keyed by the arrays'
    digests."""
    wide = [rep.name for rep in whole if rep.dims > CKA_MAX_DIMS]
    if wide:
        log.warning("%s/seed%d: %s wider than CKA's %d values: left out of cka.csv", dataset, seed,
                    ", ".join(wide), CKA_MAX_DIMS)
    members = [(network, rep) for network in NETWORKS for rep in whole
               if not (rep.name == ORIGINAL and network != NETWORKS[0]) and rep.dims <= CKA_MAX_DIMS]
    digests = [store.made_from(array_key(dataset, seed, network, rep.array)).get("digest") for network, rep in members]
    group = f"{dataset}/seed{seed}"
    kept = store.kept(group, "cka")  # None where it was changed after it was written: computed again
    by = {"members": [f"{network}/{rep.name}" for network, rep in members], "digests": digests}
    if isinstance(kept, dict) and kept.get("by") == by:
        matrix = np.array(kept["matrix"], dtype=np.float64)
    else:
        log.info("%s/seed%d: linear CKA between %d whole-layer representations", dataset, seed, len(members))
        matrix = cka_matrix([_Rows(store, dataset, seed, network, rep, n) for network, rep in members],
                            xp=_module(gpu))
        store.keep(group, "cka", {"by": by, "matrix": matrix.tolist()})
    rows = []
    for i, (net_a, rep_a) in enumerate(members):
        for j, (net_b, rep_b) in enumerate(members):
            for a_net in ((net_a,) if rep_a.name != ORIGINAL else NETWORKS):
                for b_net in ((net_b,) if rep_b.name != ORIGINAL else NETWORKS):
                    rows.append({"dataset": dataset, "seed": seed, "network_a": a_net, "representation_a": rep_a.name,
                                 "network_b": b_net, "representation_b": rep_b.name, "cka": float(matrix[i, j])})
    return rows


def between_networks(rows: list[dict]) -> dict[tuple, float]:
    """``{(dataset, seed, layer): CKA}`` between the trained and the untrained network at
    each whole layer, from :func:`layer_cka`'s rows (the pairs :func:`cka_untrained` would
    otherwise compute again; the same sums, so the same bits)."""
    trained, untrained = NETWORKS
    return {(r["dataset"], r["seed"], r["representation_a"]): r["cka"] for r in rows
            if (r["network_a"], r["network_b"]) == (trained, untrained) and r["representation_a"] == r["representation_b"]
            and r["representation_a"] != ORIGINAL}


def probe_accuracy(store: RunStore, key: JobKey, seed: int) -> float:
    """A linear probe's held-out accuracy for representation ``key.rep`` of ``key.network``
    (fitted on the analysed training examples, scored on the held-out test examples
    stored by extract); kept beside the representation's array."""
    network = NETWORKS[0] if key.representation == ORIGINAL else key.network
    rep = key.rep
    train_key = array_key(key.dataset, key.seed, network, rep.array)
    test_key = heldout_key(train_key)
    train, test = store.info(train_key) or {}, store.info(test_key) or {}
    if test.get("complete") is not True or not _same_networks(train, test):
        raise MissingDataError(f"{key.dataset}: the probe needs the held-out examples' activations ({test_key}), "
                               "made by the same network and input as the training ones; the extract stage writes "
                               "them when the probe family is chosen: run `repscope run` (or extract) with --metrics "
                               "including probe")
    by = {"digests": [train.get("digest"), test.get("digest")], "seed": seed}
    name = f"probe:{key.representation}:seed{seed}"  # original's array is shared by the seeds
    value = _cached(train, name, by)
    if value is None:
        probe = linear_probe(store.read_representation(key.dataset, key.seed, network, rep),
                             store.labels(key.dataset),
                             store.read_representation(key.dataset, key.seed, network, rep, heldout=True),
                             store.labels(key.dataset, heldout=True), seed=seed)
        if not probe.converged:
            log.warning("%s: the linear probe did not converge in its iterations; its accuracy is reported",
                        key.id)
        value = probe.test_accuracy
        _keep(store, train_key, train, name, by, value)
    return value


def _same_networks(train: dict, test: dict) -> bool:
    """Whether the held-out array of attributes ``test`` was made as the training array of
    attributes ``train`` was (the same networks, module, transform and input), all but its rows."""
    def made(info):
        return {k: v for k, v in info.get("fingerprint", {}).items() if k not in ("n", "split")}

    return made(train) == made(test)


def group_by_representation(jobs: list[JobKey]) -> dict[tuple, list[JobKey]]:
    """Jobs of the same (dataset, seed, network, representation): the embeddings of one source."""
    groups: dict[tuple, list[JobKey]] = defaultdict(list)
    for key in jobs:
        groups[key.dataset, key.seed, key.network, key.representation].append(key)
    return dict(groups)
