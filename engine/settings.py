"""A run's settings: presets, validation before any work starts, one frozen object."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from store import REPRESENTATIONS

from .backend import BACKENDS
from .config import DATASETS, STUDY_SEED, TRAIN_SIZE
from .embedders import EMBEDDERS, METHODS
from .errors import SettingsError

SPACES = ("embedding", "representation", "both")
SCHEDULERS = ("local", "dask")
MIN_N = 100

#: Presets: N examples per data set; everything else from the defaults below.
PRESETS = {
    "smoke": {"n": 1_000},
    "paper": {"n": 5_000},
    "full": {"n": TRAIN_SIZE},
}


@dataclass(frozen=True)
class RunSettings:
    """Everything a run is asked to do. Build with ``from_options``, which validates."""

    out: Path
    preset: str = "paper"
    n: int = 5_000
    datasets: tuple[str, ...] = tuple(DATASETS)
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (STUDY_SEED,)
    backend: str = "auto"
    space: str = "embedding"
    representations: tuple[str, ...] | None = None
    workers: int | None = None
    job_timeout: float = 3600.0
    tsne_embedder: str | None = None
    k: int = 10
    data_root: Path | None = None
    scheduler: str = "local"
    dask_address: str | None = None
    #: The Zarr store: None for ``<out>/store.zarr``, else an absolute path or an fsspec URL.
    store: str | None = None

    @property
    def spaces(self) -> tuple[str, ...]:
        return ("embedding", "representation") if self.space == "both" else (self.space,)

    def as_record(self) -> dict:
        record = asdict(self)
        record["out"] = str(self.out)
        record["data_root"] = None if self.data_root is None else str(self.data_root)
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
    from .embedders import EMBEDDERS

    gpu = [cls for cls in EMBEDDERS.values() if cls.device == "cuda"]
    methods = {cls.method for cls in gpu if cls.available()}
    return "full" if methods >= set(METHODS) else "paper"


def from_options(*, out, preset: str = "paper", n=None, datasets=None, methods=None, seeds=None,
                 backend: str = "auto", space: str = "embedding", representations=None, workers=None,
                 job_timeout: float = 3600.0, tsne_embedder=None, k: int = 10, data_root=None,
                 scheduler: str = "local", dask_address: str | None = None, store=None) -> RunSettings:
    """Validate every option (each bad value gets its own message) and resolve the preset."""
    if backend not in BACKENDS:
        raise SettingsError(f"--backend: unknown {backend!r}; choose from {', '.join(BACKENDS)}")
    if preset == "auto":
        preset = auto_preset(backend)
    if preset not in PRESETS:
        raise SettingsError(f"--preset: unknown {preset!r}; choose from auto, {', '.join(PRESETS)}")
    n = PRESETS[preset]["n"] if n is None else n
    if not isinstance(n, int) or not 1 <= n <= TRAIN_SIZE:
        raise SettingsError(f"--n must be a whole number from 1 to {TRAIN_SIZE}; got {n!r}")
    if n < MIN_N:  # t-SNE's perplexity of 30 wants at least 3 x 30 neighbours per point
        raise SettingsError(f"--n must be at least {MIN_N} for t-SNE with perplexity 30; got {n}")
    datasets = _split(datasets, what="datasets") or tuple(DATASETS)
    _check_choices(datasets, tuple(DATASETS), "datasets")
    methods = _split(methods, what="methods") or METHODS
    _check_choices(methods, METHODS, "methods")
    seeds = _split(seeds, int, "seeds") or (STUDY_SEED,)
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise SettingsError(f"--seeds must be distinct whole numbers >= 0; got {','.join(map(str, seeds))}")
    if backend not in BACKENDS:
        raise SettingsError(f"--backend: unknown {backend!r}; choose from {', '.join(BACKENDS)}")
    if space not in SPACES:
        raise SettingsError(f"--space: unknown {space!r}; choose from {', '.join(SPACES)}")
    reps = _split(representations, what="representations")
    if reps is not None:
        _check_choices(reps, tuple(r.name for r in REPRESENTATIONS), "representations")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise SettingsError(f"--workers must be a whole number >= 0 (0: run jobs in this process); got {workers!r}")
    if not job_timeout > 0:
        raise SettingsError(f"--job-timeout must be a positive number of seconds; got {job_timeout!r}")
    if tsne_embedder is not None and (tsne_embedder not in EMBEDDERS or EMBEDDERS[tsne_embedder].method != "tsne"):
        names = [name for name, cls in EMBEDDERS.items() if cls.method == "tsne"]
        raise SettingsError(f"--tsne-embedder: unknown {tsne_embedder!r}; choose from {', '.join(names)}")
    if not isinstance(k, int) or k < 1:
        raise SettingsError(f"--k must be a whole number >= 1; got {k!r}")
    _check_scheduler(scheduler, dask_address, workers)
    store = _check_store(store)
    return RunSettings(out=Path(out), preset=preset, n=n, datasets=datasets, methods=methods, seeds=seeds,
                       backend=backend, space=space, representations=reps, workers=workers,
                       job_timeout=float(job_timeout), tsne_embedder=tsne_embedder, k=k,
                       data_root=None if data_root is None else Path(data_root), scheduler=scheduler,
                       dask_address=dask_address or None, store=store)


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

