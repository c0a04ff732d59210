"""A run's settings: run files and presets, validation before any work starts, one frozen object.

A run is described by a run file (TOML, read with the standard library's ``tomllib``)
or by the same options from Python; command-line flags override the file. The shipped
presets ``smoke``, ``paper`` and ``full`` are run files (``engine/presets/*.toml``).
A run file::

    n = 1000
    datasets = ["digits"]                     # or [{source = "npz", path = "data.npz"}], "mnist", ...
    methods = ["tsne", "umap"]
    seeds = [0]

    [model]
    factory = "mynets:build"                  # package.module:callable returning a torch.nn.Module
    transform = "mynets:to_input"             # optional: batch in natural units -> network input
    checkpoint = "weights.pt"                 # optional: the trained network's state dict
    layers = ["stem", {path = "blocks.0", split = "channels", max_channels = 16}, "head.1"]

    [training]                                # optional: how to train when there is no checkpoint
    epochs = 3
    learning_rate = 0.05

Paths in a run file are taken relative to the file's folder, and that folder is
importable for the factory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from .backend import BACKENDS
from .embedders import EMBEDDERS, METHODS, choose_embedder
from .errors import SettingsError
from .model import Layer, ModelSpec, resolve
from .train import Recipe

SPACES = ("embedding", "representation", "both")
SCHEDULERS = ("local", "dask")
from .config import DEFAULT_SEED, MAX_SEED, MIN_N, MIN_SEED  # noqa: E402,F401  (kept importable from here)
#: Keys of a run file's top level and of its tables.
RUN_KEYS = {"preset", "n", "datasets", "methods", "seeds", "backend", "space", "representations", "workers",
            "job_timeout", "tsne_embedder", "umap_embedder", "k", "data_root", "scheduler", "dask_address", "store", "model",
            "training", "metrics", "neighbourhood_sample", "max_disk"}
MODEL_KEYS = {"factory", "transform", "checkpoint", "layers"}


@dataclass(frozen=True)
class RunSettings:
    """Everything a run is asked to do. Build with ``from_options``, which validates."""

    out: Path
    model: ModelSpec
    #: The data sets' names (in the store, metrics.csv and the report), and how to open each.
    datasets: tuple[str, ...]
    sources: tuple = ()
    #: The run file's name (a shipped preset) or path; "" for options given in Python.
    preset: str = ""
    n: int = 5_000
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (DEFAULT_SEED,)
    #: How to train when the model has no checkpoint (None: the preset's recipe per data set).
    recipe: Recipe | None = None
    backend: str = "auto"
    space: str = "embedding"
    representations: tuple[str, ...] | None = None
    workers: int | None = None
    job_timeout: float = 3600.0
    #: The embedder per method by name (None: the backend's choice).
    tsne_embedder: str | None = None
    umap_embedder: str | None = None
    k: int = 10
    data_root: Path | None = None
    scheduler: str = "local"
    dask_address: str | None = None
    #: The Zarr store: None for ``<out>/store.zarr``, else an absolute path or an fsspec URL.
    store: str | None = None
    #: The measure families scored (``engine.measures``; the study's separation metrics always).
    metrics: tuple[str, ...] = ("separation", "recall", "silhouette", "cka")
    #: Query points of the neighbourhood measures' estimate; None: exact, every point.
    neighbourhood_sample: int | None = None
    #: The most bytes the finished run folder may take (``engine.plan``); None: the free space alone.
    max_disk: int | None = None

    @property
    def spaces(self) -> tuple[str, ...]:
        return ("embedding", "representation") if self.space == "both" else (self.space,)

    def embedder_for(self, method: str) -> str | None:
        """The embedder asked for ``method`` by name, or None for the backend's choice."""
        return {"tsne": self.tsne_embedder, "umap": self.umap_embedder}.get(method)

    def recipe_for(self, dataset: str) -> Recipe:
        """How the network is trained on ``dataset``: the run's recipe, else its preset's."""
        if self.recipe is not None:
            return self.recipe
        if self.model.preset:
            from .presets import preset_module

            return preset_module(self.model.preset).recipe(dataset)
        return Recipe()

    def source_of(self, dataset: str):
        return self.sources[self.datasets.index(dataset)]

    def as_record(self) -> dict:
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "recipe", "sources")}
        record["out"] = str(self.out)
        record["data_root"] = None if self.data_root is None else str(self.data_root)
        record["sources"] = [s if isinstance(s, str) else {k: str(v) for k, v in s.items()} for s in self.sources]
        record["model"] = self.model.record()
        record["recipe"] = None if self.recipe is None else asdict(self.recipe)
        return record


def _split(value, convert=str, what="value") -> tuple:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip() if isinstance(i, str) else i for i in items]
    if not items or any(i == "" for i in items):
        raise SettingsError(f"--{what} takes a comma-separated list; got {value!r}")
    try:
        return tuple(convert(i) for i in items)
    except ValueError:
        raise SettingsError(f"--{what} takes whole numbers; got {value!r}") from None


def _check_choices(values, valid, what):
    bad = [v for v in values if v not in valid]
    if bad:
        raise SettingsError(f"--{what}: unknown {', '.join(map(repr, bad))}; choose from {', '.join(valid)}")
    if len(set(values)) != len(values):
        raise SettingsError(f"--{what} lists a value twice: {', '.join(values)}")


def auto_preset(backend: str) -> str:
    """``full`` where the GPU backend is there (CUDA and a GPU embedder), else ``paper``."""
    if backend == "cpu":
        return "paper"
    methods = {cls.method for cls in EMBEDDERS.values() if "cuda" in cls.devices and cls.available("cuda")}
    return "full" if methods >= set(METHODS) else "paper"


def read_run_file(path: str | os.PathLike) -> dict:
    """The options of a run file, paths made absolute against its folder."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"run file {path} does not exist; give a TOML run file or --preset smoke|paper|full")
    try:
        options = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"run file {path} is not valid TOML: {exc}") from None
    unknown = set(options) - RUN_KEYS
    if unknown:
        raise SettingsError(f"run file {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(RUN_KEYS))}")
    base = path.resolve().parent
    model = options.get("model")
    if model is not None:
        if not isinstance(model, dict) or set(model) - MODEL_KEYS:
            unknown = "" if not isinstance(model, dict) else f"unknown key(s) {', '.join(sorted(set(model) - MODEL_KEYS))}; "
            raise SettingsError(f"run file {path}: [model] {unknown}it takes {', '.join(sorted(MODEL_KEYS))}")
        if model.get("checkpoint"):
            model["checkpoint"] = str((base / model["checkpoint"]).resolve())
        model["_base"] = str(base)
    sources = options.get("datasets")
    if isinstance(sources, list):
        options["datasets"] = [_absolute_paths(s, base) for s in sources]
    for key in ("data_root", "store"):
        if options.get(key) and "://" not in str(options[key]):
            options[key] = str((base / options[key]).resolve())
    return options


def _absolute_paths(source, base: Path):
    if isinstance(source, str) and source.endswith((".npz", ".npy")):
        return str((base / source).resolve())
    if isinstance(source, dict):
        return {k: str((base / v).resolve()) if k in ("path", "x", "y", "root") and isinstance(v, str) else v
                for k, v in source.items()}
    return source


def model_from_table(table: Mapping[str, Any]) -> ModelSpec:
    """A ModelSpec from a run file's ``[model]`` table."""
    if "factory" not in table:
        raise SettingsError("[model] needs factory = \"package.module:callable\" (a function or class that returns "
                            "the torch.nn.Module)")
    if "layers" not in table or not table["layers"] or not isinstance(table["layers"], list):
        raise SettingsError("[model] needs layers = [...]: a list of the module paths to analyse, e.g. [\"features.3\"]")
    base = table.get("_base")
    if base and base not in sys.path:
        sys.path.insert(0, base)
    factory = resolve(table["factory"], "[model] factory")
    transform = resolve(table["transform"], "[model] transform") if table.get("transform") else None
    layers = tuple(Layer.parse(item) for item in table["layers"])
    checkpoint = Path(table["checkpoint"]) if table.get("checkpoint") else None
    return ModelSpec(factory=factory, layers=layers, checkpoint=checkpoint, reference=table["factory"],
                     **({"transform": transform} if transform is not None else {}))


def recipe_from_table(table: Mapping[str, Any]) -> Recipe:
    """A Recipe from a run file's ``[training]`` table (or a mapping), every key checked."""
    known = {f.name for f in fields(Recipe)}
    unknown = set(table) - known
    if unknown:
        raise SettingsError(f"[training]: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    try:
        return Recipe(**table)
    except SettingsError as exc:
        raise SettingsError(f"[training]: {exc}") from None


def from_options(*, out: str | os.PathLike, preset: str | None = None, run_file: str | os.PathLike | None = None,
                 model: ModelSpec | Mapping | None = None, recipe: Recipe | Mapping | None = None,
                 n: int | None = None, datasets=None, methods=None, seeds=None, backend: str | None = None,
                 space: str | None = None, representations=None, workers: int | None = None,
                 job_timeout: float | None = None, tsne_embedder: str | None = None,
                 umap_embedder: str | None = None, k: int | None = None,
                 data_root: str | os.PathLike | None = None, scheduler: str | None = None,
                 dask_address: str | None = None, store: str | os.PathLike | None = None,
                 metrics=None, neighbourhood_sample: int | None = None,
                 max_disk: int | str | None = None) -> RunSettings:
    """Validate every option and resolve the run file or preset, before anything is made.

    Options given here override the run file's (None: the file's, else the default); a
    run file given as ``preset`` names a shipped one (``smoke``, ``paper``, ``full``,
    ``auto``), ``run_file`` a path. Without either, ``model`` and ``datasets`` must be
    given. ``datasets``, ``methods``, ``seeds`` and ``representations`` take a list or a
    comma-separated string. Seeds lie in ``MIN_SEED`` .. ``MAX_SEED`` (0 .. 2**32 - 1),
    ``k`` in 1 .. N - 1; ``out`` must be a folder that can be made or written, and
    ``backend="gpu"`` needs a CUDA device (and a GPU embedder for each method).

    Raises
    ------
    SettingsError
        Naming every bad value: one message, or "N problems:" and one per line (a run
        file that cannot be read, or an unknown preset, stops the checks at once).

    Examples
    --------
    >>> s = from_options(out="runs/x", preset="smoke", methods="umap", seeds=[1, 2])
    >>> s.n, s.datasets, s.methods, s.seeds, s.model.preset
    (1000, ('mnist', 'fashion-mnist'), ('umap',), (1, 2), 'study')
    """
    base: dict = {}
    name = ""
    if run_file is not None:
        base, name = read_run_file(run_file), str(run_file)

    def option(value, key, default):
        return value if value is not None else base.get(key, default)

    problems: list[str] = []  # every bad value, reported together in one SettingsError

    def check(fn, *args):
        """``fn(*args)``, or None with its SettingsError kept in ``problems``."""
        try:
            return fn(*args)
        except SettingsError as exc:
            problems.append(str(exc))
            return None

    def stop() -> None:
        if problems:
            raise SettingsError(problems[0] if len(problems) == 1 else
                                f"{len(problems)} problems:" + "".join(f"\n  {p}" for p in problems))

    check(check_out, out)
    backend = option(backend, "backend", "auto")
    if backend not in BACKENDS:
        problems.append(f"--backend: unknown {backend!r}; choose from {', '.join(BACKENDS)}")
        backend = "auto"  # for the checks below; the problem is reported
    no_cuda = backend == "gpu" and check(_check_gpu) is None  # then the embedders' checks would say it again
    if run_file is None and (preset is not None or model is None):
        from .presets import run_file as shipped

        preset = preset or "auto"
        if preset == "auto":
            preset = auto_preset(backend)
        shipped_file = check(shipped, preset)
        if shipped_file is None:  # the run file decides the rest: nothing more to check
            stop()
        base, name = read_run_file(shipped_file), preset
    space, workers = option(space, "space", "embedding"), option(workers, "workers", None)
    job_timeout, k = option(job_timeout, "job_timeout", 3600.0), option(k, "k", 10)
    tsne_embedder, umap_embedder = option(tsne_embedder, "tsne_embedder", None), option(umap_embedder, "umap_embedder", None)
    scheduler = option(scheduler, "scheduler", "local")
    dask_address, store = option(dask_address, "dask_address", None), option(store, "store", None)
    data_root, representations = option(data_root, "data_root", None), option(representations, "representations", None)
    metrics, neighbourhood_sample = option(metrics, "metrics", None), option(neighbourhood_sample, "neighbourhood_sample", None)
    max_disk = option(max_disk, "max_disk", None)
    if model is None:
        model = base.get("model")
    if base.get("preset"):
        if model is not None and not isinstance(model, ModelSpec):
            raise SettingsError(f"run file {name}: give either preset = {base['preset']!r} or a [model] table, not both")
        from .presets import preset_module

        model = model or preset_module(base["preset"]).model_spec()
    if model is None:
        problems.append("no model: give a run file with a [model] table, --preset smoke|paper|full, "
                        "or model= in Python")
    elif not isinstance(model, ModelSpec):
        model = check(model_from_table, model)
    recipe = recipe if recipe is not None else base.get("training")
    if recipe is not None and not isinstance(recipe, Recipe):
        if not isinstance(recipe, Mapping):
            problems.append(f"a training recipe is a Recipe or a mapping of its fields; got {recipe!r}")
        else:
            recipe = check(recipe_from_table, recipe)
    n = base.get("n", 5_000) if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        problems.append(f"--n must be a whole number >= 1; got {n!r}")
        n = None
    sources = check(_sources, datasets if datasets is not None else base.get("datasets")) or ()
    from .sources import source_name

    names = []
    for s in sources:
        try:
            names.append(source_name(s))
        except SettingsError as exc:
            problems.append(f"--datasets: {exc}")
    names = tuple(names)
    if len(set(names)) != len(names):
        problems.append(f"--datasets lists a data set twice: {', '.join(names)}")
    if isinstance(model, ModelSpec) and model.preset and recipe is None:
        from .presets import preset_module

        known = preset_module(model.preset).RECIPES
        bad = [d for d in names if d not in known]
        if bad:
            problems.append(f"--datasets: the {model.preset} preset trains its network on {', '.join(known)} only; "
                            f"{', '.join(bad)} needs a run file with a [model] table (see examples/digits.toml)")
    methods = check(_split, methods if methods is not None else base.get("methods"), str, "methods") or METHODS
    check(_check_choices, methods, METHODS, "methods")
    if n is not None and n < MIN_N and "tsne" in methods:  # perplexity 30 wants 3 x 30 neighbours per point
        problems.append(f"--n must be at least {MIN_N} for t-SNE with perplexity 30; got {n} (UMAP alone takes "
                        "fewer: --methods umap)")
        n = None
    seeds = check(_split, seeds if seeds is not None else base.get("seeds"), int, "seeds") or (DEFAULT_SEED,)
    if any(not MIN_SEED <= s <= MAX_SEED for s in seeds) or len(set(seeds)) != len(seeds):
        problems.append(f"--seeds must be distinct whole numbers from {MIN_SEED} to {MAX_SEED} (2**32 - 1, the "
                        f"largest seed numpy's RandomState, scikit-learn and openTSNE accept); "
                        f"got {','.join(map(str, seeds))}")
    if space not in SPACES:
        problems.append(f"--space: unknown {space!r}; choose from {', '.join(SPACES)}")
    reps = check(_split, representations, str, "representations")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        problems.append(f"--workers must be a whole number >= 0 (0: run jobs in this process); got {workers!r}")
    if isinstance(job_timeout, bool) or not isinstance(job_timeout, (int, float)) or not job_timeout > 0:
        problems.append(f"--job-timeout must be a positive number of seconds; got {job_timeout!r}")
    for method, chosen in (("tsne", tsne_embedder), ("umap", umap_embedder)):
        if chosen is not None and (chosen not in EMBEDDERS or EMBEDDERS[chosen].method != method):
            names_ = [n_ for n_, cls in EMBEDDERS.items() if cls.method == method]
            problems.append(f"--{method}-embedder: unknown {chosen!r}; choose from {', '.join(names_)}")
        elif method in methods and (chosen is not None or backend == "gpu") and not no_cuda:
            check(choose_embedder, method, backend, chosen)  # one that cannot run under the backend
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        problems.append(f"--k must be a whole number >= 1; got {k!r}")
    elif n is not None and k >= n:
        problems.append(f"--k must be less than N = {n} (a point's neighbours are the other points); got {k}; "
                        f"give --k {n - 1} or less, or a larger --n")
    check(_check_scheduler, scheduler, dask_address, workers)
    store = check(_check_store, store)
    from .measures import parse_families

    families = check(parse_families, metrics)
    if neighbourhood_sample is not None and (isinstance(neighbourhood_sample, bool)
                                             or not isinstance(neighbourhood_sample, int) or neighbourhood_sample < 2):
        problems.append(f"--neighbourhood-sample must be a whole number of query points >= 2 (or left out: exact); "
                        f"got {neighbourhood_sample!r}")
    if max_disk is not None:
        from .plan import parse_size

        max_disk = check(parse_size, max_disk)
    stop()
    return RunSettings(out=Path(out), model=model, datasets=names, sources=sources, preset=name, n=n,
                       methods=methods, seeds=seeds, recipe=recipe, backend=backend, space=space,
                       representations=reps, workers=workers, job_timeout=float(job_timeout),
                       tsne_embedder=tsne_embedder, umap_embedder=umap_embedder, k=k, data_root=None if data_root is None else Path(data_root),
                       scheduler=scheduler, dask_address=dask_address or None, store=store, metrics=families,
                       neighbourhood_sample=neighbourhood_sample, max_disk=max_disk)


#: The settings that decide a run's numbers: a command on a run folder that would change
#: one of its recorded values is refused unless told to (``--reconfigure``).
DEFINING = ("preset", "sources", "n", "methods", "seeds", "backend", "space", "representations", "k",
            "tsne_embedder", "umap_embedder", "store")
#: The recorded settings a command on a run folder starts from (besides its run file).
_CARRIED = ("n", "methods", "seeds", "backend", "space", "representations", "k", "tsne_embedder", "umap_embedder",
            "store", "workers", "job_timeout", "data_root", "scheduler", "dask_address", "metrics",
            "neighbourhood_sample", "max_disk")


def recorded_options(record: Mapping[str, Any]) -> dict:
    """``from_options`` keywords that give a run folder's recorded settings back
    (``config.json``'s ``settings``): its run file or preset, data sets and the rest.

    Raises
    ------
    SettingsError
        Where the run was made in Python from a model object (no run file names it).
    MissingDataError
        Where a data set was given from memory (``repscope.engine.sources.from_memory``)
        and this process does not hold it: only Python can give it again.

    Examples
    --------
    >>> recorded_options({"preset": "smoke", "sources": ["mnist"], "n": 1000, "seeds": [42], "k": 10})
    {'preset': 'smoke', 'datasets': ['mnist'], 'n': 1000, 'seeds': [42], 'k': 10}
    """
    from .presets import run_files
    from .sources import require_at_hand

    for spec in record.get("sources") or ():  # data given from memory: only Python can give it again
        require_at_hand(spec)
    name = record.get("preset") or ""
    if name in run_files():
        options: dict = {"preset": name}
    elif name and Path(name).is_file():
        options = {"run_file": name}
    else:
        raise SettingsError(f"the run was made {'from run file ' + name if name else 'in Python'}, which is not "
                            "at hand; give its run file, or use repscope.analyze for it")
    options["datasets"] = record.get("sources") or record.get("datasets")
    options.update({key: record[key] for key in _CARRIED if record.get(key) is not None})
    return options


def refuse_changes(out: Path, differ: Sequence[str], fix: str) -> None:
    """Raise SettingsError where ``differ`` (from :func:`contradictions`) is not empty: the run
    folder ``out`` holds a run made with other settings, and ``fix`` says how to rebuild
    (``--reconfigure`` on the command line, ``reconfigure=True`` in Python).

    Examples
    --------
    >>> refuse_changes(Path("runs/x"), ["n: 2000 (the run has 1000)"], "pass reconfigure=True")
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: runs/x holds a run made with other settings (n: 2000 (the run has 1000)); pass reconfigure=True to change them (what they decide is rebuilt), or give another out
    """
    if differ:
        where = "--out" if fix.startswith("give --") else "out"
        raise SettingsError(f"{out} holds a run made with other settings ({'; '.join(differ)}); {fix} to change "
                            f"them (what they decide is rebuilt), or give another {where}")


def contradictions(settings: RunSettings, record: Mapping[str, Any]) -> list[str]:
    """Where ``settings`` would change what decides a recorded run's numbers: one text per
    setting (``n: 2000 (the run has 1000)``); empty when they agree.

    Examples
    --------
    >>> s = from_options(out="runs/x", preset="smoke")
    >>> contradictions(s, {**s.as_record(), "n": 300})
    ['n: 1000 (the run has 300)']
    """
    new = json.loads(json.dumps(settings.as_record()))
    differ = []
    for key in DEFINING:
        if new.get(key) != json.loads(json.dumps(record.get(key))):
            differ.append(f"{key}: {_show(new.get(key))} (the run has {_show(record.get(key))})")
    return differ


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def check_out(out: str | os.PathLike) -> Path:
    """Check that ``out`` can be a run folder, making nothing.

    Parameters
    ----------
    out : str or os.PathLike
        The run folder: an existing folder, or a path where one can be made.

    Returns
    -------
    Path
        ``out`` as a Path.

    Raises
    ------
    SettingsError
        Where ``out`` is a file (or a broken link), lies under a file, or cannot be
        written (it, or the nearest existing folder above it); the message names the
        path and the fix.

    Examples
    --------
    >>> check_out("runs/x")
    PosixPath('runs/x')
    """
    path = Path(out).expanduser()
    if path.is_symlink() and not path.exists():
        raise SettingsError(f"--out {out} is a broken link; remove it or give another folder")
    if path.exists() and not path.is_dir():
        raise SettingsError(f"--out {out} is a file, not a folder; give a folder (it is made where missing)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SettingsError(f"--out {out}: {existing} is a file, so no folder can be made under it; "
                            "give another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the run folder" if existing == path else f"{existing}, where it would be made,"
        raise SettingsError(f"--out {out}: {what} cannot be written (permission denied); give a folder you "
                            "can write to, or change its permissions")
    return Path(out)


def _check_gpu() -> bool:
    """``--backend gpu`` wants a CUDA device that PyTorch sees (training and extraction run there)."""
    import torch

    if not torch.cuda.is_available():
        raise SettingsError(f"--backend gpu: PyTorch sees no CUDA device (torch {torch.__version__}); use "
                            "--backend cpu or auto, or install a CUDA build of PyTorch")
    return True


def _sources(value) -> tuple:
    """Data set specs: a comma-separated string of names, or a list of names and tables."""
    if value is None:
        raise SettingsError("no data sets: give datasets (a name such as mnist or digits, a .npz file, "
                            "or a table such as {source = \"npz\", path = \"data.npz\"})")
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, (list, tuple)) or not value or any(v in ("", None) for v in value):
        raise SettingsError(f"--datasets takes a comma-separated list of data sets; got {value!r}")
    return tuple(value)


def _check_store(store) -> str | None:
    """An fsspec URL whose protocol is installed, or a path made absolute (workers may start elsewhere)."""
    if store is None or str(store) == "":
        return None
    store = str(store)
    if "://" not in store:
        return str(Path(store).expanduser().resolve())
    import fsspec

    protocol = store.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise SettingsError(f"--store {store}: fsspec knows no protocol {protocol!r}; give a path or a URL "
                            "such as s3://bucket/run.zarr or file:///shared/run.zarr") from None
    except ImportError as exc:
        raise SettingsError(f"--store {store}: {exc} (the package fsspec needs for {protocol}://)") from None
    return store


def _check_scheduler(scheduler: str, address: str | None, workers) -> None:
    if scheduler not in SCHEDULERS:
        raise SettingsError(f"--scheduler: unknown {scheduler!r}; choose from {', '.join(SCHEDULERS)}")
    if scheduler == "local":
        if address:
            raise SettingsError(f"--dask-address {address} needs --scheduler dask")
        return
    if importlib.util.find_spec("distributed") is None:
        raise SettingsError("--scheduler dask needs dask.distributed: pip install 'repscope[dask]' "
                            "(or 'dask[distributed]'), or use --scheduler local")
    if workers == 0:
        raise SettingsError("--workers 0 (in-process) is for --scheduler local; give a Dask cluster 1 or more")
    if address is not None and not re.fullmatch(r"([a-z]+://)?[^\s:/]+:\d+", address):
        raise SettingsError(f"--dask-address takes HOST:PORT (or tcp://HOST:PORT) of a running scheduler; "
                            f"got {address!r}")


def default_workers(gpu: bool) -> int:
    """One worker per core on the CPU (seeded jobs are single-threaded); one on a GPU."""
    return 1 if gpu else max(1, os.cpu_count() or 1)

