"""The Dask scheduler: the embedding jobs on a LocalCluster, a LocalCUDACluster or a
running Dask scheduler.

The jobs are the local scheduler's: ``jobs.run_job(run_dir, key, settings)``, a pure
function of the run folder and the key. Each worker writes its job's embedding into the
store itself (one job, one array; the groups above them exist before any job starts),
and the driver only learns which jobs finished. Dask reschedules a job whose worker
died on another worker; after ``MAX_ATTEMPTS`` deaths (on clusters started here; a
running scheduler applies its own ``distributed.scheduler.allowed-failures``) the job
is reported as failed and the others go on.

Dask has no per-task timeout, so a job stops its own worker process when it outlives
``--job-timeout``, after flagging the timeout in the store (the one place every worker
reaches); the rescheduled attempt sees it and fails at once with the
timeout as its error, rather than running again. A later run retries the job.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
import uuid

from distributed.diagnostics.plugin import WorkerPlugin

from ..store import RunStore, flag_group

from . import jobs
from .jobs import JobKey, JobSettings
from .scheduler import Outcome, prepare_process, quiet_libraries, umap_warm_points

log = logging.getLogger(__name__)

class JobTimeout(RuntimeError):
    pass


def _stop_worker(store: RunStore, key: JobKey, flags: str, timeout: float) -> None:
    """Past the timeout: flag it in the store (what every worker reaches), then end this
    worker process; its nanny starts a fresh one."""
    store.set_flag(flags, key.id)
    logging.getLogger(__name__).error("%s: past the %g s timeout; stopping this worker", key.id, timeout)
    os._exit(3)


def dask_job(run_dir: str, key: JobKey, settings: JobSettings, timeout: float, flags: str) -> dict:
    """One job on a Dask worker, stopped (with its worker) past ``timeout`` seconds;
    ``flags``: this invocation's flag group of jobs that timed out."""
    store = jobs.job_store(run_dir, settings)
    if store.has_flag(flags, key.id):
        raise JobTimeout(f"timed out after {timeout:g} s; the worker was stopped")
    try:
        import numba

        numba.set_num_threads(max(1, min(settings.numba_threads, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:
        pass
    timer = threading.Timer(timeout, _stop_worker, (store, key, flags, timeout))
    timer.daemon = True
    timer.start()
    try:
        return jobs.run_job(run_dir, key, settings)  # looked up at call time, so a worker may wrap it
    finally:
        timer.cancel()


class PrepareWorker(WorkerPlugin):
    """Every worker, also one restarted after a death: threads, logging, umap-learn's compilation."""

    name = "repscope-prepare"

    def __init__(self, threads: int, warm_umap: int, log_level: int) -> None:
        self.args = (threads, warm_umap, log_level)

    def setup(self, worker) -> None:
        prepare_process(*self.args)


@contextlib.contextmanager
def connect(address: str | None, workers: int, threads: int, gpu: bool, max_attempts: int):
    """A Dask client: to the scheduler at ``address``, else to a cluster started here
    (a LocalCUDACluster with one worker per GPU where ``gpu`` and dask-cuda is installed,
    else a LocalCluster of ``workers`` single-task worker processes)."""
    import dask
    from distributed import Client

    if address:
        with Client(address, timeout="30s") as client:
            log.info("dask: scheduler %s, %d workers", address, len(client.scheduler_info()["workers"]))
            yield client
        return
    # Thread counts are set in each worker (PrepareWorker, dask_job), not through the nanny's
    # pre-spawn-environ: the nanny writes those variables into this process's environment too,
    # and numba here would then refuse its own thread count.
    with contextlib.ExitStack() as stack:
        # worker-saturation 1: a worker is sent only the job it runs (see the task keys below)
        stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": max_attempts - 1,
                                             "distributed.scheduler.worker-saturation": 1.0}))
        if gpu and importlib.util.find_spec("dask_cuda") is not None:
            from dask_cuda import LocalCUDACluster

            cluster = stack.enter_context(LocalCUDACluster(threads_per_worker=1, dashboard_address=":0"))
            kind = "LocalCUDACluster (one worker per GPU)"
        else:
            from distributed import LocalCluster

            if gpu:
                log.warning("dask: dask-cuda is not installed; a LocalCluster of %d worker(s) shares the GPU", workers)
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0"))
            kind = "LocalCluster"
        client = stack.enter_context(Client(cluster))
        log.info("dask: %s with %d workers, %d numba thread(s) per job", kind, len(cluster.workers), threads)
        try:
            yield client
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP (engine.signals): the jobs are abandoned
            stop_workers(cluster)
            raise


def stop_workers(cluster, timeout: float = 1.0) -> None:
    """Close every worker of a cluster started here at once, each within ``timeout`` seconds.

    A worker busy with a job does not close when asked; its nanny kills it after
    ``0.8 * timeout`` seconds. Closing the cluster then finds no worker left, rather
    than waiting 4 s per busy worker while the scheduler goes away under it.

    Parameters
    ----------
    cluster : distributed.SpecCluster
        A ``LocalCluster`` or ``LocalCUDACluster`` of nannies started in this process.
    timeout : float, default 1.0
        Seconds each nanny allows its worker process.
    """
    import asyncio

    async def close_all() -> None:
        await asyncio.gather(*(worker.close(timeout=timeout, reason="repscope-interrupted")
                               for worker in list(cluster.workers.values())), return_exceptions=True)

    try:
        cluster.sync(close_all)
    except Exception as exc:  # closing the cluster still stops them, only more slowly
        log.warning("dask: could not stop the workers at once (%s); closing the cluster", exc)


def run_dask(run_dir, queue: list[JobKey], settings: JobSettings, *, address: str | None, workers: int,
             timeout: float, gpu: bool, max_attempts: int, finish) -> None:
    """Run ``queue`` on Dask; call ``finish(Outcome)`` as each job ends."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    warm = umap_warm_points(run_dir, queue, settings)
    quiet_libraries(logging.getLogger().level)  # distributed logs every worker start and stop at INFO
    token = uuid.uuid4().hex[:12]  # this invocation: a rerun retries the jobs that time out now
    flags = f"timeouts-{token}"
    store = jobs.job_store(run_dir, settings)
    store.ensure_groups(flag_group(flags))
    try:
        with connect(address, workers, settings.numba_threads, gpu, max_attempts) as client:
            log.info("dask dashboard: %s%s", client.dashboard_link,
                     "" if importlib.util.find_spec("bokeh") else " (install bokeh to serve it)")
            client.register_plugin(PrepareWorker(settings.numba_threads, warm, logging.getLogger().level))
            started = time.monotonic()
            # One task group ("embed-..."), so that Dask queues the jobs on the scheduler and a
            # worker holds only the job it runs: a death then blames no job waiting behind it.
            def submit(key: JobKey, attempt: int = 0):
                suffix = f"-{attempt}" if attempt else ""
                return client.submit(dask_job, str(run_dir), key, settings, timeout, flags,
                                     key=f"embed-{key.id.replace('/', '.')}-{token}{suffix}", pure=False)

            futures = {submit(key): key for key in queue}
            resubmitted: set = set()
            pending = as_completed(futures)
            for future in pending:
                key = futures[future]
                if future.status == "finished":
                    finish(Outcome(key, future.result().get("seconds")))
                elif future.status != "error" and key not in resubmitted:
                    # Lost or cancelled without an error of its own (a neighbour's worker died
                    # while the scheduler moved it): it never failed, so it runs again, once.
                    log.warning("dask: %s was %s without an error; submitting it again", key.id, future.status)
                    resubmitted.add(key)
                    again = submit(key, attempt=1)
                    futures[again] = key
                    pending.add(again)
                else:
                    error = future.exception() if future.status == "error" else None
                    if isinstance(error, JobTimeout) or (isinstance(error, KilledWorker)
                                                         and store.has_flag(flags, key.id)):
                        message = f"timed out after {timeout:g} s; the worker was stopped"
                    elif isinstance(error, KilledWorker):
                        message = "its worker process died (out of memory or a crash) on every attempt"
                    elif error is None:
                        message = f"it was {future.status} by the Dask scheduler twice without an error"
                    else:
                        message = f"{type(error).__name__}: {error}"
                    finish(Outcome(key, error=message))
                future.release()
            log.info("dask: %d jobs in %.1f s", len(queue), time.monotonic() - started)
    finally:
        store.clear_flags(flags)
