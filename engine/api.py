"""The Python entry points: analyse a model and data of your own, and read a run back.

In the style of scikit-learn and openTSNE: one call does the work and returns an
object that holds the results::

    import repscope
    run = repscope.analyze(model, "digits", layers=["stem", "block1"], out="runs/mine")
    run = repscope.analyze(model, (x, y), layers=["stem"], out="runs/arrays")   # data in memory
    run.metrics            # the rows of metrics.csv, as dicts
    run.embedding("digits", "block1")   # an (N, 2) array
    run.report             # the path of report/index.html
    run.explorer           # the path of report/explore.html

Nothing here needs the command line; :func:`analyze` builds the same settings a run
file would and runs the same stages.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..store import NETWORKS, Representation, RunStore, embedding_key, find
from .errors import MissingDataError, SettingsError
from .evaluate import METRICS_CSV
from .progress import shown
from .runinfo import CONFIG, read_run_config, require_run, store_location
from .settings import DEFAULT_SEED, MIN_N
from .sources import (InMemory, Source, Spec, from_memory, is_array_like, is_in_memory, memory_spec, open_source,
                      type_name)
from .tables import read_metrics_csv


class _Reinitialise:
    """A factory made from a model object: a copy of it with every submodule's
    ``reset_parameters`` called (under the caller's seed), i.e. a fresh initialisation
    of the same architecture."""

    def __init__(self, model) -> None:
        self.model = copy.deepcopy(model).cpu()
        self.__qualname__ = type(model).__qualname__
        self.__module__ = type(model).__module__

    def __call__(self):
        fresh = copy.deepcopy(self.model)
        kept = []
        for prefix, module in fresh.named_modules():
            reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
            if callable(reset):
                reset()
            else:  # parameters of its own that nothing re-initialises
                kept += [f"{prefix}.{name}".lstrip(".") for name, _ in module.named_parameters(recurse=False)]
        if kept:
            raise SettingsError(f"re-initialising a copy of the {type(self.model).__name__} object leaves "
                                f"{', '.join(kept[:5])} unchanged (no reset_parameters reaches them); give the model "
                                "as a factory (a class or function that builds it) instead of an object")
        return fresh


def _save_if_changed(state: dict, path: Path) -> None:
    """Save ``state`` to ``path`` unless the file already holds the same weights (so that a
    rerun with the same model object finds its checkpoints and arrays still valid)."""
    import torch

    from .train import state_digest

    if path.is_file():
        try:
            if state_digest(torch.load(path, map_location="cpu", weights_only=True)) == state_digest(state):
                return
        except Exception:  # unreadable: write it again
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def in_python_words() -> Iterator[None]:
    """SettingsErrors raised inside name analyze's keyword arguments, not command-line flags
    (``n must ...``, not ``--n must ...``)."""
    try:
        yield
    except SettingsError as exc:
        parts = str(exc).split("`")  # commands quoted in backticks keep their flags
        parts[::2] = [re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), part)
                      for part in parts[::2]]
        raise SettingsError("`".join(parts)) from None


def _other_weights(model, out: Path, train: bool) -> list[str]:
    """Where a model object taken as trained differs from the weights a run in ``out`` saved:
    one text, else none."""
    import torch

    from .train import state_digest

    saved = out / "checkpoints" / "given.pt"
    if train or not isinstance(model, torch.nn.Module) or not saved.is_file():
        return []
    try:
        same = state_digest(torch.load(saved, map_location="cpu", weights_only=True)) == state_digest(model.state_dict())
    except Exception:  # unreadable: the run rebuilds it as before
        return []
    return [] if same else [f"the model's weights (they differ from those the run saved in {saved})"]


def model_spec(model, layers: Sequence, *, transform: Callable | None = None, checkpoint=None,
               out: str | os.PathLike | None = None, train: bool | None = None):
    """A :class:`~repscope.engine.model.ModelSpec` from a model object or factory.

    ``model`` is a ``torch.nn.Module`` or a callable that returns one (a class, a
    function). A module object is taken as trained as it is (its weights are saved
    under ``out/checkpoints/given.pt``) unless ``train`` is True; its untrained twin is a
    seeded re-initialisation of a copy (every submodule's ``reset_parameters``). A
    factory's network is trained by the run's recipe unless ``checkpoint`` is given.
    """
    from torch import nn

    from .model import Layer, ModelSpec

    layers = tuple(Layer.parse(layer) for layer in layers)
    extra = {"transform": transform} if transform is not None else {}
    if isinstance(model, nn.Module):
        factory = _Reinitialise(model)
        reference = f"{type(model).__module__}:{type(model).__qualname__} (object)"
        if checkpoint is None and not train:
            if out is None:
                raise SettingsError("a model object is saved as the trained network under out/; give out=")
            checkpoint = Path(out) / "checkpoints" / "given.pt"
            _save_if_changed(model.state_dict(), checkpoint)
        return ModelSpec(factory=factory, layers=layers, checkpoint=None if checkpoint is None else Path(checkpoint),
                         reference=reference, **extra)
    if not callable(model):
        raise SettingsError(f"model must be a torch.nn.Module or a callable that returns one; got {type(model).__name__}")
    reference = f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', repr(model))}"
    return ModelSpec(factory=model, layers=layers, checkpoint=None if checkpoint is None else Path(checkpoint),
                     reference=reference, **extra)


def _data_sets(data: Any) -> list[Any]:
    """The data sets ``analyze`` is given: ``(x, y)`` (a tuple of two array-likes) and any
    other single data set are one; a list or tuple of them several.

    Examples
    --------
    >>> x, y = np.zeros((4, 2)), np.arange(4)
    >>> len(_data_sets((x, y))), len(_data_sets(["digits", (x, y)])), len(_data_sets(("digits", "mnist")))
    (1, 2, 2)
    """
    if isinstance(data, (list, tuple)) and not is_in_memory(data):
        return list(data)
    return [data]


def _not_a_data_set(item: Any, data: Any) -> SettingsError:
    """The one line for a data set ``analyze`` cannot understand: its type, never its value."""
    hint = ""
    if isinstance(data, list) and len(data) == 2 and all(map(is_array_like, data)):
        hint = " (a list is several data sets: give examples and labels as a tuple (x, y))"
    return SettingsError(f'data: {type_name(item)} is not a data set{hint}; give (x, y), {{"x": ..., "y": ...}}, '
                         'a Dataset, a DataLoader, a name such as "digits" or a .npz path')


def _check_memory_names(items: Sequence[Any]) -> None:
    """Several data sets from memory in one call need a name each (a mapping's ``name``), all different."""
    if len(items) < 2:
        return
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    if any(name is None for name in names):
        raise SettingsError(f"data: {len(items)} data sets are given from memory; name each: "
                            '{"x": ..., "y": ..., "name": "..."}')
    twice = sorted({str(name) for name in names if names.count(name) > 1})
    if twice:
        raise SettingsError(f"data: several data sets from memory are named {twice[0]!r}; give each its own name")


def _open_data(data: Any, data_root: str | os.PathLike | None, fetch: bool) -> tuple[list[Spec], list[Source]]:
    """(specs, sources): each data set's spec for the settings, and the sources opened. Every
    form is checked before any data is read; data from memory becomes a registered source
    (its spec names it by content digest); a spec whose files are missing is left out where
    ``fetch`` is False, for the run to fetch."""
    items = _data_sets(data)
    unknown = next((item for item in items if not is_in_memory(item)
                    and not isinstance(item, (str, os.PathLike, Mapping))), None)
    if unknown is not None:
        raise _not_a_data_set(unknown, data)
    _check_memory_names([item for item in items if is_in_memory(item)])
    specs, opened = [], []
    for item in items:
        if is_in_memory(item):
            source = from_memory(item)
            specs.append(memory_spec(source))
            opened.append(source)
            continue
        specs.append(item)
        try:
            opened.append(open_source(item, data_root, fetch=fetch))
        except MissingDataError:
            if fetch:
                raise  # N needs its size
    return specs, opened


def analyze(
    model,
    data: Spec | InMemory | Sequence[Spec | InMemory],
    layers: Sequence,
    *,
    out: str | os.PathLike,
    methods: Sequence[str] = ("tsne", "umap"),
    n: int | None = None,
    seeds: Sequence[int] = (DEFAULT_SEED,),
    transform: Callable | None = None,
    checkpoint: str | os.PathLike | None = None,
    train: bool | None = None,
    recipe=None,
    backend: str = "auto",
    workers: int | None = None,
    k: int = 10,
    data_root: str | os.PathLike | None = None,
    report: bool = True,
    tsne_embedder: str | None = None,
    umap_embedder: str | None = None,
    metrics: str | Sequence[str] | None = None,
    neighbourhood_sample: int | None = None,
    progress: bool = True,
    reconfigure: bool = False,
    max_disk: int | str | None = None,
) -> "Run":
    """Embed every analysed layer of ``model`` (trained and untrained) on ``data`` and score it.

    Parameters
    ----------
    model : torch.nn.Module or callable
        The network, or a factory of it (see :func:`model_spec` for which weights are
        the trained network and how the untrained one is made).
    data : str, mapping, tuple, Dataset, DataLoader, or a list of them
        One data set, or a list of several. A data set is a spec
        (:func:`repscope.engine.sources.open_source`: ``"digits"``, ``"mnist"``,
        ``"path/to/data.npz"``, ``{"source": "npz", ...}``, ...) or data in memory
        (:func:`repscope.engine.sources.from_memory`): ``(x, y)``, numpy arrays or torch
        tensors; ``{"x": ..., "y": ..., "x_test": ..., "y_test": ..., "classes": ...,
        "name": ..., "scale": ...}``; a ``torch.utils.data.Dataset`` of ``(x, y)`` pairs;
        a ``DataLoader`` of ``(x, y)`` batches with a fixed order (``shuffle=False``). A
        data set from memory is named ``"memory"`` unless a mapping's ``name`` says
        otherwise (several need a name each); a Dataset or DataLoader is read into memory
        once (for more data than memory holds, save ``.npy`` files and give the memory-mapped
        ``npy`` source). A run made from memory is resumed only from Python, with the same
        data: another data set on the same ``out`` is refused unless ``reconfigure=True``.
    layers : list of str or mapping
        Module paths (``"features.3"``) or ``{"path": ..., "split": "channels",
        "max_channels": 16}``; for a transformer or an RNN, ``{"path": "blocks.1",
        "tokens": "mean"}``, ``{"path": "gru", "element": 0, "tokens": -1}`` or
        ``{"path": "head", "read": "input"}`` (:class:`~repscope.engine.model.Layer`).
    out : path
        The run folder; a rerun with the same settings skips what is done.
    methods, n, seeds, backend, workers, k
        As the run file's keys; ``n`` defaults to the whole training split (at most 5 000).
    transform : callable, optional
        A float batch in natural units -> the network's input.
    checkpoint : path, optional
        A state dict that makes the trained network.
    train : bool, optional
        With a model object: train a fresh copy instead of taking its weights.
    recipe : Recipe or mapping, optional
        How to train (epochs, learning_rate, ...); the defaults of
        :class:`~repscope.engine.train.Recipe` otherwise.
    report : bool
        Also write ``report/index.html``.
    tsne_embedder, umap_embedder : str, optional
        The library per method by name (``"torchdr-tsne"``, ``"sklearn-tsne"``, ...); by
        default the backend's choice.
    metrics : str or list of str, optional
        Measure families besides the study's (:mod:`repscope.engine.measures`): ``recall``,
        ``trustworthiness``, ``silhouette``, ``cka``, ``probe``, ``"default"`` or ``"all"``.
    neighbourhood_sample : int, optional
        Estimate the neighbourhood measures from this many seeded query points.
    progress : bool
        Where logging is not configured, show what the run decides and its progress on
        standard error (bars on a terminal, a line at most every 30 s elsewhere).
    reconfigure : bool
        Allow ``out`` to hold a run made with other settings or another model object's
        weights, and rebuild what they decide; without it such a call is refused
        (``SettingsError`` naming what differs) and nothing is changed.
    max_disk : int or str, optional
        The most the finished run folder may take: bytes, or a text with SI or IEC units
        (``"200MB"``, ``"2GiB"``). A run whose :func:`plan` needs more, or more than the
        free space of ``out``'s disk, is refused before work (``SettingsError`` naming the
        widest layers and the ``reduce`` settings that would fit). It does not define the
        run: changing it rebuilds nothing.

    Returns
    -------
    Run
        The run folder's results.

    Examples
    --------
    A network object as it is (here untrained) on scikit-learn's digits, t-SNE only:

    >>> import tempfile
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    >>> run = analyze(net, "digits", layers=["2"], methods=["tsne"], n=150, out=tempfile.mkdtemp(),
    ...               workers=0, report=False)
    >>> run.embedding("digits", "2").shape
    (150, 2)
    >>> sorted({row["representation"] for row in run.metrics})
    ['2', 'original']

    Data in memory: examples and labels as arrays (or torch tensors), here named
    ``"memory"``:

    >>> from sklearn.datasets import load_digits
    >>> x, y = load_digits(return_X_y=True)
    >>> run = analyze(net, (x, y), layers=["2"], methods=["tsne"], n=150, out=tempfile.mkdtemp(),
    ...               workers=0, report=False)
    >>> run.embedding("memory", "2").shape, run.labels("memory")[:5].tolist()
    ((150, 2), [0, 1, 2, 3, 4])
    """
    from . import pipeline
    from .settings import contradictions, from_options, refuse_changes

    # opened and checked before anything is written under out/ (a model object's weights are);
    # data from memory stays registered while ``opened`` holds it, for the run to find by its spec
    sources, opened = _open_data(data, data_root, fetch=n is None)
    if n is None:
        n = min(5_000, min(len(source.train) for source in opened))
        if n < MIN_N and "tsne" in methods:
            small = min(opened, key=lambda source: len(source.train))
            raise SettingsError(f"{small.name} has {len(small.train)} training examples; t-SNE with perplexity 30 "
                                f"needs at least {MIN_N} (give more data, or methods=['umap'])")
    stages = pipeline.STAGES if report else tuple(s for s in pipeline.STAGES if s != "report")
    record = read_run_config(Path(out)).get("settings") if (Path(out) / CONFIG).is_file() else None
    weights = [] if reconfigure or record is None else _other_weights(model, Path(out), train or recipe is not None)
    with shown(progress), pipeline.nothing_left_unless_started(Path(out)):
        if weights:  # refused before the new weights replace the saved ones
            refuse_changes(Path(out), weights, "pass reconfigure=True")
        spec = model_spec(model, layers, transform=transform, checkpoint=checkpoint, out=out,
                          train=train or recipe is not None)
        with in_python_words():
            settings = from_options(out=out, model=spec, recipe=recipe, n=n, datasets=sources, methods=list(methods),
                                    seeds=list(seeds), backend=backend, workers=workers, k=k, data_root=data_root,
                                    tsne_embedder=tsne_embedder, umap_embedder=umap_embedder, metrics=metrics,
                                    neighbourhood_sample=neighbourhood_sample, max_disk=max_disk)
        if record is not None and not reconfigure:
            refuse_changes(Path(out), contradictions(settings, record), "pass reconfigure=True")
        with in_python_words():
            pipeline.run(settings, stages)
    return Run(out)


def plan(
    model,
    data,
    layers: Sequence,
    *,
    out: str | os.PathLike,
    methods: Sequence[str] = ("tsne", "umap"),
    n: int | None = None,
    seeds: Sequence[int] = (DEFAULT_SEED,),
    transform: Callable | None = None,
    metrics: str | Sequence[str] | None = None,
    data_root: str | os.PathLike | None = None,
):
    """What :func:`analyze` with the same arguments would store, and the disk and memory it
    needs, from one dry forward pass; nothing is written.

    Returns a :class:`~repscope.engine.plan.Plan`: per layer its read shape, values per
    example, reduction and stored bytes (N examples, both networks, every seed), and
    ``disk_bytes`` (an upper bound of the finished run folder), ``memory_bytes`` (an
    estimate of the peak) and ``free_bytes`` (the free space of ``out``'s disk). Its
    text is the table ``repscope plan`` prints; :func:`repscope.engine.plan.check` says
    whether it fits a ``max_disk``.

    Examples
    --------
    >>> import tempfile
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3), nn.Flatten())
    >>> p = plan(net, "digits", layers=["1", {"path": "1", "name": "pooled", "reduce": "avgpool"}], n=500,
    ...          transform=lambda x: x.reshape(len(x), -1), out=tempfile.mkdtemp())
    >>> [(layer.name, layer.values, layer.stored, layer.bytes) for layer in p.layers]
    [('1', 288, 288, 1152000), ('pooled[avgpool]', 288, 8, 32000)]
    >>> p.disk_bytes > sum(layer.bytes for layer in p.layers)
    True
    """
    from .pipeline import make_plan
    from .settings import from_options

    sources, opened = _open_data(data, data_root, fetch=False)
    if n is None:
        n = min(5_000, min(len(source.train) for source in opened))
    spec = model_spec(model, layers, transform=transform, out=None, train=True)  # nothing saved: only shapes count
    with in_python_words():
        settings = from_options(out=out, model=spec, n=n, datasets=sources, methods=list(methods), seeds=list(seeds),
                                backend="cpu", metrics=metrics, data_root=data_root)
        return make_plan(settings)


class Run:
    """A run folder's results: metrics, embeddings, representations, the report.

    Examples
    --------
    >>> Run("no/such/run")
    Traceback (most recent call last):
    ...
    repscope.engine.errors.MissingDataError: no/such/run is not a run folder (no config.json with a run's settings); make one with `repscope run --out no/such/run` or repscope.analyze(..., out=...)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = require_run(self.path)
        self.store = RunStore(store_location(self.path))

    def __repr__(self) -> str:
        settings = self.config.get("settings", {})
        return (f"Run({str(self.path)!r}: datasets {settings.get('datasets')}, N = {settings.get('n')}, "
                f"methods {settings.get('methods')}, seeds {settings.get('seeds')})")

    def _results_file(self, name: str, written_by: str) -> Path:
        """``name`` in the run folder; MissingDataError saying what writes it where it is absent."""
        path = self.path / name
        if not path.is_file():
            raise MissingDataError(f"{path} does not exist; {written_by} writes it")
        return path

    @property
    def metrics(self) -> list[dict]:
        """The rows of ``metrics.csv`` (one per dataset, seed, network, method, space, representation)."""
        return read_metrics_csv(self._results_file(METRICS_CSV, "the evaluate stage"))

    @property
    def cka(self) -> list[dict]:
        """The rows of ``cka.csv``: linear CKA between whole layers of both networks, per data
        set and seed (the ``cka`` measure family)."""
        from .measures import CKA_CSV
        from .tables import read_cka_csv

        return read_cka_csv(self._results_file(CKA_CSV, "the evaluate stage with the cka family"))

    @property
    def statistics(self) -> list[dict]:
        """The rows of ``statistics.csv``: per data set, space, method, layer and measure, both
        networks' means over seeds with 95 % intervals and the paired test's p value."""
        from .evaluate import STATISTICS_CSV
        from .statistics import STATISTICS_COLUMNS
        from .tables import read_rows_csv

        numbers = {c: float for c in STATISTICS_COLUMNS[6:]}
        return read_rows_csv(self._results_file(STATISTICS_CSV, "the evaluate stage"),
                             {**numbers, "seeds": int, "trained_better": int})

    def metrics_frame(self):
        """The metrics as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.metrics)

    @property
    def report(self) -> Path | None:
        """``report/index.html``, where it was written."""
        path = self.path / "report" / "index.html"
        return path if path.is_file() else None

    @property
    def explorer(self) -> Path | None:
        """``report/explore.html``, the linked interactive views of every embedding, where it
        was written (in a notebook: ``repscope.engine.explore.notebook_view(run.path)``)."""
        path = self.path / "report" / "explore.html"
        return path if path.is_file() else None

    def representations(self, dataset: str) -> tuple[Representation, ...]:
        """The representations analysed on ``dataset``, in order."""
        recorded = self.config.get("representations", {})
        if dataset not in recorded:
            raise KeyError(f"{dataset!r} was not extracted in {self.path}; data sets: {', '.join(recorded)}")
        return tuple(Representation.from_record(r) for r in recorded[dataset])

    def _seed(self, seed: int | None) -> int:
        seeds = self.config.get("settings", {}).get("seeds", [])
        if seed is None:
            if not seeds:
                raise KeyError(f"{self.path} records no seeds")
            return seeds[0]
        return seed

    def embedding(self, dataset: str, representation: str, method: str | None = None,
                  network: str = "trained", seed: int | None = None) -> np.ndarray:
        """The (N, 2) embedding of one representation (method: the run's first by default)."""
        if network not in NETWORKS:
            raise KeyError(f"network {network!r}: choose from {', '.join(NETWORKS)}")
        method = method or self.config.get("settings", {}).get("methods", ["tsne"])[0]
        representation = find(self.representations(dataset), representation).name
        key = embedding_key(dataset, self._seed(seed), network, method, representation)
        return self.store.read(key)

    def labels(self, dataset: str) -> np.ndarray:
        """The (N,) labels of the examples analysed on ``dataset``."""
        return np.asarray(self.store.labels(dataset))

    def representation(self, dataset: str, representation: str, network: str = "trained",
                       seed: int | None = None) -> np.ndarray:
        """The (N, dims) representation itself, as the embedders saw it before any PCA."""
        rep = find(self.representations(dataset), representation)
        return self.store.read_representation(dataset, self._seed(seed), network, rep)

    def summary(self) -> str:
        """The run's settings as one JSON text."""
        return json.dumps(self.config.get("settings", {}), indent=2, sort_keys=True)
