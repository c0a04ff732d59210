"""The order of work: fetch, train, extract, embed, evaluate, report; each stage skips what is done.

``run(settings, stages)`` decides the backends once (and logs them), records the
settings and decisions in ``config.json``, then runs the stages asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from ..store import Representation, RunStore, same_name
from . import threads
from .backend import torch_device
from .embedders import choose_embedder, embedder_device
from .errors import JobsFailedError, MissingDataError, SettingsError
from .jobs import JobKey, JobSettings, is_done, job_list
from .lock import LOCK, run_lock
from .runinfo import CONFIG, read_run_config, store_location, update_run_config, write_atomic
from .scheduler import run_jobs
from .settings import RunSettings, default_workers

log = logging.getLogger(__name__)

STAGES = ("fetch", "train", "extract", "embed", "evaluate", "report")
#: The runs of stages config.json keeps (``stage_runs``), the latest last.
STAGE_RUNS = 50


def decide(settings: RunSettings) -> dict:
    """Which implementation serves each part; logged once and recorded."""
    chosen = {m: choose_embedder(m, settings.backend, settings.embedder_for(m)) for m in settings.methods}
    embedders = {m: cls.name for m, cls in chosen.items()}
    devices = {m: embedder_device(cls, settings.backend) for m, cls in chosen.items()}
    gpu_embedders = "cuda" in devices.values()
    workers = settings.workers if settings.workers is not None else default_workers(gpu_embedders)
    decisions = {"embedders": embedders, "devices": devices, "workers": workers, "threads": threads.record(workers),
                 "kernels": "cupy" if gpu_embedders else "numpy"}
    for method, cls in chosen.items():
        log.info("%s: %s (%s, %s)", method, cls.library, cls.name, devices[method])
    where = {"local": "local worker processes", "dask": "a Dask cluster"}[settings.scheduler]
    if settings.dask_address:
        where = f"the Dask scheduler at {settings.dask_address}"
    decisions["scheduler"] = settings.scheduler
    log.info("jobs: %s, %d worker(s), %d thread(s) each (numba: %d); training, extraction and evaluation on %d "
             "thread(s); metrics on %s", where, workers, threads.JOB_THREADS, threads.numba_threads(workers),
             threads.RUN_THREADS, decisions["kernels"])
    return decisions


def jobs_for(settings: RunSettings, representations: dict[str, tuple[Representation, ...]]) -> list[JobKey]:
    return job_list(settings.datasets, settings.seeds, settings.methods, representations, settings.representations)


def recorded_representations(out: Path, datasets) -> dict[str, tuple[Representation, ...]]:
    """Each data set's representations as the extract stage recorded them in config.json."""
    recorded = read_run_config(out).get("representations", {})
    missing = [d for d in datasets if d not in recorded]
    if missing:
        raise MissingDataError(f"{out}: no representations recorded for {', '.join(missing)}; "
                               f"run `repscope extract --out {out}` (with the same settings) first")
    return {d: tuple(Representation.from_record(r) for r in recorded[d]) for d in datasets}


def plan(settings: RunSettings, sources: dict) -> dict[str, tuple[Representation, ...]]:
    """Each data set's representations from a dry forward pass; checks N, the chosen names
    and that the run fits on its disk (:mod:`repscope.engine.plan`)."""
    representations, found = _dry_pass(settings, sources)
    if sources:  # the disk it needs, against max_disk and the free space (a store elsewhere: max_disk alone)
        from . import plan as budget

        needs = disk_plan(settings, found)
        log.info("plan: up to %s on disk for %s (%s free), peak memory about %s", budget.format_size(needs.disk_bytes),
                 settings.out, budget.format_size(needs.free_bytes), budget.format_size(needs.memory_bytes))
        budget.check(needs, settings.max_disk)
    return representations


def make_plan(settings: RunSettings):
    """The :class:`~repscope.engine.plan.Plan` of a run: its data sets opened (nothing is
    fetched) and a dry forward pass per data set; nothing is written. Whether it fits is
    :func:`repscope.engine.plan.check`'s to say."""
    from .sources import open_source

    sources = {name: open_source(spec, settings.data_root, fetch=False)
               for name, spec in zip(settings.datasets, settings.sources)}
    return disk_plan(settings, _dry_pass(settings, sources)[1])


def _dry_pass(settings: RunSettings, sources: dict) -> tuple[dict[str, tuple[Representation, ...]], dict]:
    """Each data set's representations, and what the dry pass found of its layers."""
    from .extract import plan_representations

    representations, found = {}, {}
    _check_n(settings, sources)
    for name, source in sources.items():
        found[name] = {"source": source, "layers": settings.model.layers}
        representations[name] = found[name]["representations"] = plan_representations(settings.model, source,
                                                                                       found=found[name])[0]
        if len(source.classes) < 2:
            log.warning("%s has a single class (%s): class separation is undefined, so the distance ratios, "
                        "silhouettes and findings are NaN or undefined; kNN accuracy is 1", name,
                        source.classes[0] if source.classes else "none")
    narrow = [f"{name}/{r.name}" for name, reps in representations.items() for r in reps if r.dims < 2
              and (settings.representations is None or same_name(r.name) in map(same_name, settings.representations))]
    if narrow and settings.methods:
        raise SettingsError(f"{', '.join(narrow)}: one value per example; t-SNE and UMAP embed in 2-D from at least "
                            "two: leave it out with --representations (the others), or analyse a wider layer")
    if settings.representations is not None:
        known = {r.name for reps in representations.values() for r in reps}
        bad = [r for r in settings.representations if same_name(r) not in {same_name(k) for k in known}]
        if bad:
            raise SettingsError(f"--representations: unknown {', '.join(map(repr, bad))}; choose from "
                                f"{', '.join(dict.fromkeys(r.name for reps in representations.values() for r in reps))}")
    return representations, found


def disk_plan(settings: RunSettings, found: dict):
    """The :class:`~repscope.engine.plan.Plan` of ``settings`` from what :func:`plan`'s dry pass found."""
    from . import plan as budget

    parameters = max((f.get("parameters", 0) for f in found.values()), default=0)
    return budget.estimate(settings.out, settings.n, settings.seeds, settings.methods, "probe" in settings.metrics,
                           found, parameters, store_elsewhere=settings.store is not None)


def _check_n(settings: RunSettings, sources: dict) -> None:
    """N against the size of each data set."""
    big = [(name, len(s.train)) for name, s in sources.items() if settings.n > len(s.train)]
    if big:
        raise SettingsError("; ".join(f"--n {settings.n} is more than the {size} examples of {name}" for name, size
                                      in big) + f"; give --n {min(size for _, size in big)} or less")


def _sources_at_hand(settings: RunSettings) -> dict:
    """The data sets that are already there (nothing is fetched)."""
    from .sources import open_source

    found = {}
    for name, spec in zip(settings.datasets, settings.sources):
        try:
            found[name] = open_source(spec, settings.data_root, fetch=False)
        except MissingDataError:
            continue  # fetched by the run, and checked then
    return found


def run(settings: RunSettings, stages: tuple[str, ...] = STAGES) -> dict:
    """Run ``stages`` of ``settings``; return a summary (paths, timings, failures)."""
    out = settings.out
    at_hand = _sources_at_hand(settings) if {"fetch", "train", "extract"} & set(stages) else {}
    if {"train", "extract"} & set(stages):  # the data first (N, NaN and Inf), before anything is decided
        _check_n(settings, at_hand)
    decisions = decide(settings) if {"embed"} & set(stages) else {}  # may refuse: before the folder is made
    with nothing_left_unless_started(out):
        out.mkdir(parents=True, exist_ok=True)
        # One writer per run folder (a second run here stops at once, naming this one); thread
        # counts fixed, so that the numbers do not depend on the machine (engine.threads).
        with run_lock(out), threads.pinned(threads.RUN_THREADS):
            return _run_stages(settings, stages, decisions, at_hand)


@contextlib.contextmanager
def nothing_left_unless_started(out: Path) -> Iterator[None]:
    """Remove ``out`` again where the block made it and failed before a run was recorded there.

    A run records its settings in ``config.json`` once its data, model and layers have been
    checked (a dry forward pass); an error before that (a layer typo, a forward that takes
    other arguments, data that does not load), or one before anything besides the settings
    was written (training that diverged), leaves no run folder behind. A folder that was
    there before is left as it is.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> try:
    ...     with nothing_left_unless_started(out):
    ...         (out / "checkpoints").mkdir(parents=True)
    ...         raise SettingsError("a layer typo")
    ... except SettingsError:
    ...     out.exists()
    False
    """
    fresh = not out.exists()
    try:
        yield
    except BaseException:
        if fresh and out.is_dir():
            try:
                started = "settings" in read_run_config(out)
            except Exception:  # an unreadable config.json: not this block's to judge
                started = True
            # settings alone (training diverged, say) are no work to keep
            worked = any(p.name not in (CONFIG, LOCK) for p in out.iterdir())
            if not (started and worked):
                shutil.rmtree(out, ignore_errors=True)
        raise


def _run_stages(settings: RunSettings, stages: tuple[str, ...], decisions: dict, at_hand: dict) -> dict:
    """The stages, under the run's lock; ``at_hand``: the data sets opened (and checked)
    before, without fetching."""
    out = settings.out

    def record_settings() -> None:  # once they are known to be usable: a run folder's settings are its identity
        update_run_config(out, {"settings": settings.as_record(), **({"backend": decisions} if decisions else {})})

    log.info("run %s: preset %s, N=%d, datasets %s, methods %s, seeds %s, backend %s",
             out, settings.preset, settings.n, ",".join(settings.datasets), ",".join(settings.methods),
             ",".join(map(str, settings.seeds)), settings.backend)
    timings, summary = {}, {"out": str(out)}
    idle: set[str] = set()  # stages that found everything done

    def stage(name, fn, watch=False):
        """Run stage ``name``; its time is recorded in config.json's ``timings`` only when it
        did work (a rerun with nothing to do keeps the time of the run that did it), and
        every run of it in ``stage_runs``. ``watch``: it did work where it changed a file of
        the run folder (files with the same content are not written again)."""
        if name not in stages:
            return None
        started = time.perf_counter()
        before = _files(out) if watch else None
        result = fn()
        if watch and _files(out) == before:
            idle.add(name)
        timings[name] = round(time.perf_counter() - started, 2)
        runs = read_run_config(out).get("stage_runs", [])[-(STAGE_RUNS - 1):]
        runs.append({"stage": name, "seconds": timings[name], "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "work": name not in idle})
        update_run_config(out, {"stage_runs": runs, **({} if name in idle else {"timings": {name: timings[name]}})})
        return result

    from .sources import open_source

    # the fetch stage opens each data set again, fetching or verifying its files; without it
    # those opened before serve
    sources = {} if "fetch" in stages else dict(at_hand)

    def open_all(fetch: bool):
        for name, spec in zip(settings.datasets, settings.sources):
            if name not in sources:
                sources[name] = open_source(spec, settings.data_root, fetch=fetch)
        return sources

    def fetch_all():
        if len(at_hand) == len(settings.datasets):
            idle.add("fetch")  # every data set was there: nothing to fetch
        return open_all(True)

    stage("fetch", fetch_all)
    if {"train", "extract"} & set(stages):
        open_all(False)
        plan(settings, sources)
        record_settings()
        device = torch_device(settings.backend)
        model = settings.model

        def train_all():
            from .train import ensure_checkpoints

            pairs = [ensure_checkpoints(out, model, sources[d], settings.recipe_for(d), seed, device)
                     for seed in settings.seeds for d in settings.datasets]
            if all(pair.reused for pair in pairs):
                idle.add("train")

        def extract_all():
            from .extract import extract

            before = _store_state(out)
            for seed in settings.seeds:
                for d in settings.datasets:
                    extract(out, model, sources[d], settings.recipe_for(d), settings.n, seed, backend=settings.backend,
                            heldout="probe" in settings.metrics)
            if _store_state(out) == before:
                idle.add("extract")

        stage("train", train_all)
        stage("extract", extract_all)
    else:
        record_settings()
    if not {"embed", "evaluate", "report"} & set(stages):
        summary["timings"] = timings
        return summary
    representations = recorded_representations(out, settings.datasets)
    jobs = jobs_for(settings, representations)
    job_settings = JobSettings(embedders=decisions.get("embedders", {}), devices=decisions.get("devices", {}),
                               numba_threads=threads.numba_threads(decisions.get("workers", 1)),
                               k=settings.k, store=str(store_location(out)))

    def embed_all():
        store = RunStore(store_location(out))
        try:
            n = {d: len(store.labels(d)) for d in settings.datasets}
        except KeyError as exc:
            raise MissingDataError(f"{exc.args[0]} (the embed stage reads what extract wrote)") from None
        store.ensure_groups(*sorted({k.store_key.rsplit("/", 1)[0] for k in jobs}))
        todo = [k for k in jobs if not is_done(store, k, job_settings, n[k.dataset])]
        if not todo:
            idle.add("embed")
        log.info("embed: %d jobs, %d complete, %d to run", len(jobs), len(jobs) - len(todo), len(todo))
        outcomes = run_jobs(out, todo, job_settings, workers=decisions["workers"], timeout=settings.job_timeout,
                            done=len(jobs) - len(todo), total=len(jobs), scheduler=settings.scheduler,
                            address=settings.dask_address, gpu=decisions["kernels"] == "cupy")
        failed = [o for o in outcomes if o.error]
        try:
            _record_job_times(out, store, jobs)
        except OSError:  # a full disk, say: the error says so in one line, and this says what came before
            if failed:
                log.error("%d of %d embedding jobs failed (a rerun retries them)", len(failed), len(jobs))
            raise
        return failed

    failures = stage("embed", embed_all) or []
    if "evaluate" in stages:
        from .evaluate import evaluate

        gpu = (decisions or decide(settings))["kernels"] == "cupy"  # decided here when embed is not run
        summary["metrics"] = str(stage("evaluate", lambda: evaluate(out, jobs, settings.spaces, settings.k,
                                                                     representations, settings.metrics,
                                                                     settings.neighbourhood_sample, gpu=gpu),
                                       watch=True))
    if "report" in stages:  # also after failed jobs: the page lists what is missing
        from .report import build_report

        try:
            summary["report"] = str(stage("report", lambda: build_report(out, settings.k), watch=True))
        except MissingDataError as exc:
            if not failures:
                raise
            log.warning("no report: %s", exc)  # every job failed; the error below names them
    summary["timings"] = timings
    if failures:
        listing = "; ".join(f"{o.key.id}: {o.error}" for o in failures[:5])
        raise JobsFailedError(f"{len(failures)} of {len(jobs)} embedding jobs failed ({listing}); the others are "
                          "complete and kept, and a rerun retries only the failed ones")
    return summary


def _files(out: Path) -> dict[str, tuple[int, int]]:
    """Every file of a run folder but its config.json and lock, with its size and time."""
    found = {}
    for folder, _, names in os.walk(out):
        for name in names:
            path = os.path.join(folder, name)
            if folder == str(out) and name in (CONFIG, LOCK):
                continue
            with contextlib.suppress(OSError):  # gone meanwhile
                stat = os.stat(path)
                found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


def _store_state(out: Path) -> dict[str, str | None]:
    """Every array of the run's store and its digest (None while incomplete)."""
    store = RunStore(store_location(out))
    return {key: (store.info(key) or {}).get("digest") for key in store.keys()}


def _record_job_times(out: Path, store: RunStore, jobs: list[JobKey]) -> None:
    """``jobs.csv``: every job's embedder and wall time, from the store (so it spans reruns)."""
    lines = ["job,embedder,seconds"]
    for key in jobs:
        info = store.info(key.store_key) or {}
        if info.get("complete"):
            lines.append(f"{key.id},{info['fingerprint'].get('embedder', '')},{info.get('seconds', '')}")
    write_atomic(out / "jobs.csv", "\n".join(lines) + "\n")
