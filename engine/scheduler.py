"""The local scheduler: a pool of worker processes, one progress bar, per-job timeouts
(``scheduler="dask"`` hands the same jobs to ``engine.cluster`` under the same bar).

Workers are started once (spawned, so no thread state is inherited) and pay the
one-time costs there: umap-learn compiles its numba code in every new process (about
15 s for its exact neighbour search, used up to 4 096 points, and a minute more for
pynndescent's above), so a worker warms up the path its jobs take before its first
job, never per job. (The compiled code is not kept in numba's cache: a parallel
function with fast-math flags loaded from it gives other last bits than one compiled
afresh, so the numbers would depend on the cache.) At
most one job per worker is in flight, so a job's start is its submission; a job that
outlives the timeout (cuML t-SNE has hung on some inputs) takes the pool down with it
and is reported as failed, and the other jobs in flight go to a fresh pool. A job that
raises is reported and the others go on; a rerun retries whatever is not complete.

Workers end with this process: when it stops (Ctrl-C, ``SIGTERM`` or ``SIGHUP``, which
``engine.signals`` turns into ``KeyboardInterrupt``, or an exception) the pool's workers
are killed and waited for, and a worker whose parent is killed outright ends itself
(``engine.signals.end_with_parent``). A job marks its embedding complete only at its
end, so a killed job leaves it incomplete and a rerun embeds it again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .jobs import JobKey, JobSettings, job_store, run_job
from .progress import progress_bar

log = logging.getLogger(__name__)

#: A job that kills its worker (out of memory, a crash) is tried this many times.
MAX_ATTEMPTS = 2


@dataclass
class Outcome:
    key: JobKey
    seconds: float | None = None
    error: str | None = None


def quiet_libraries(level: int) -> None:
    """The embedders log every step at INFO; keep the run's log to its own decisions."""
    for name in ("openTSNE", "umap", "pynndescent", "numba", "distributed"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def umap_warm_points(run_dir, queue: list[JobKey], settings: JobSettings) -> int:
    """The largest N among the umap-learn jobs of ``queue`` (0 where there are none): what a
    worker's warm-up compiles for (``UmapLearn.warm_up``)."""
    datasets = {k.dataset for k in queue if settings.embedders.get(k.method) == "umap-learn"}
    if not datasets:
        return 0
    store = job_store(run_dir, settings)
    return max(len(store.labels(d)) for d in datasets)


def prepare_process(threads: int, warm_umap: int, log_level: int, parent: int | None = None) -> None:
    """A worker process's one-time setup: thread counts, logging, umap-learn's compilation.

    Parameters
    ----------
    threads : int
        numba's threads in this process (and OpenMP's default); the numbers do not depend
        on it, and each job pins its other thread counts (``engine.threads``).
    warm_umap : int
        Compile umap-learn's numba code now, before the first job, for jobs of up to this
        many points (0: not at all).
    log_level : int
        The logging level of this process.
    parent : int, optional
        The process id of the parent (the local pool's): this process then ends as soon
        as the parent does, even when the parent is killed outright
        (``engine.signals.end_with_parent``). None (Dask workers, whose nanny watches
        them): no such tie.
    """
    if parent is not None:
        from .signals import end_with_parent

        end_with_parent(parent)
    if "numba" not in sys.modules:  # numba refuses a changed NUMBA_NUM_THREADS once its threads run
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    quiet_libraries(log_level)
    if warm_umap:
        from .embedders import UmapLearn

        UmapLearn.warm_up(warm_umap)


def _kill(pool: ProcessPoolExecutor, wait_s: float = 10.0) -> None:
    # concurrent.futures has no public way to stop a running task; its processes are known.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + wait_s
    for process in processes:  # reaped, so that none outlives this process (nor lingers as a zombie)
        process.join(max(0.0, deadline - time.monotonic()))


def run_jobs(run_dir: str | Path, jobs: list[JobKey], settings: JobSettings, *, workers: int,
             timeout: float, done: int = 0, total: int | None = None, scheduler: str = "local",
             address: str | None = None, gpu: bool = False) -> list[Outcome]:
    """Run ``jobs`` (none of them complete yet); return one Outcome per job.

    ``scheduler="local"``: a pool of ``workers`` processes, or with ``workers=0`` one job
    after another in this process. ``scheduler="dask"``: the Dask scheduler at
    ``address``, else a local Dask cluster of ``workers`` workers (one per GPU where
    ``gpu``; see ``engine.cluster``). ``done``/``total`` set the progress bar when
    complete jobs were filtered out beforehand.
    """
    total = len(jobs) + done if total is None else total
    outcomes: list[Outcome] = []
    with progress_bar(total=total, initial=done, desc="embed", unit="job", smoothing=0.1) as bar:
        def finish(outcome: Outcome) -> None:
            outcomes.append(outcome)
            bar.update()
            bar.set_postfix_str(outcome.key.id if outcome.error is None else f"FAILED {outcome.key.id}")
            if outcome.error:
                log.error("job %s failed: %s", outcome.key.id, outcome.error)

        if scheduler == "dask":
            from .cluster import run_dask

            run_dask(run_dir, list(jobs), settings, address=address, workers=max(1, workers), timeout=timeout,
                     gpu=gpu, max_attempts=MAX_ATTEMPTS, finish=finish)
            return outcomes
        if workers == 0:
            quiet_libraries(logging.getLogger().level)
            for key in jobs:
                started = time.perf_counter()
                try:
                    run_job(run_dir, key, settings)
                    finish(Outcome(key, time.perf_counter() - started))
                except Exception as exc:  # one failed job must not stop the others
                    finish(Outcome(key, error=f"{type(exc).__name__}: {exc}"))
            return outcomes
        _run_pool(run_dir, list(jobs), settings, workers, timeout, finish)
    return outcomes


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start worker processes without the parent's ``__main__``.

    A spawned process imports its parent's main script (to find what was pickled from
    it), which runs the script again: a script that calls ``repscope.analyze`` without
    ``if __name__ == "__main__":`` would start the run again in every worker. The jobs
    need nothing of the script (only repscope's functions and plain settings), so its
    name and path are hidden from ``multiprocessing`` while the pool's processes start.
    """
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        for name in saved:
            if name == "__spec__":
                main.__spec__ = None
            else:
                delattr(main, name)
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _run_pool(run_dir, queue: list[JobKey], settings: JobSettings, workers: int, timeout: float, finish) -> None:
    with _main_module_hidden():  # processes start at the first submit and whenever a pool is replaced
        _pool_loop(run_dir, queue, settings, workers, timeout, finish)


def _pool_loop(run_dir, queue: list[JobKey], settings: JobSettings, workers: int, timeout: float, finish) -> None:
    warm = umap_warm_points(run_dir, queue, settings)
    context = multiprocessing.get_context("spawn")
    attempts: dict[JobKey, int] = {}
    queue.reverse()  # pop() from the end keeps the original order

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=prepare_process,
                                   initargs=(settings.numba_threads, warm, logging.getLogger().level, os.getpid()))

    pool = new_pool()
    in_flight: dict = {}
    finished_all = False
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                key = queue.pop()
                attempts[key] = attempts.get(key, 0) + 1
                in_flight[pool.submit(run_job, run_dir, key, settings)] = (key, time.monotonic())
            finished, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                key, started = in_flight.pop(future)
                try:
                    future.result()
                    finish(Outcome(key, time.monotonic() - started))
                except BrokenProcessPool:
                    broken = True
                    if attempts[key] < MAX_ATTEMPTS:
                        queue.append(key)
                    else:
                        finish(Outcome(key, error="its worker process died (out of memory or a crash), twice"))
                except Exception as exc:
                    finish(Outcome(key, error=f"{type(exc).__name__}: {exc}"))
            now = time.monotonic()
            overdue = [f for f, (_, started) in in_flight.items() if now - started > timeout]
            if overdue or broken:
                _kill(pool)
                for future, (key, _) in list(in_flight.items()):
                    if future in overdue:
                        finish(Outcome(key, error=f"timed out after {timeout:g} s; the worker was stopped"))
                    else:
                        queue.append(key)  # in flight beside the culprit: try again
                in_flight.clear()
                pool = new_pool()
        finished_all = True
    finally:
        if finished_all:
            pool.shutdown(wait=True)
        else:  # KeyboardInterrupt (Ctrl-C, SIGTERM, SIGHUP) or an exception: no worker outlives the run
            _kill(pool)
