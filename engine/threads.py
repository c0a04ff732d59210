"""The thread counts that fix a run's numbers, whatever the machine, its load or its environment.

Several computations give results whose last bits depend on how many threads share
the work: PyTorch's backward passes (gradients summed over the batch), openTSNE's
gradients (its ``n_jobs``), BLAS in PCA initialisations and in the probes. t-SNE turns
a last-bit difference in its input into a different picture, so a run whose thread
counts followed the number of cores, the number of workers or ``OMP_NUM_THREADS`` gave
other numbers on another machine, with ``--workers 1``, or in another shell.

Every such computation therefore runs on a fixed number of threads, the same
everywhere, and recorded in ``config.json`` (``backend.threads``):

* :data:`RUN_THREADS` in the run's own process: training, extraction, evaluation;
* :data:`JOB_THREADS` in each embedding job: the embedder (openTSNE's ``n_jobs``,
  TorchDR on the CPU), its BLAS, the job's scores.

Parallelism comes from running jobs side by side (``--workers``), which changes no
number. numba's kernels (:mod:`repscope.kernels`) sum in an order that does not depend
on their thread count, so they use every core a worker has.

Examples
--------
>>> import torch
>>> before = torch.get_num_threads()
>>> with pinned(1):
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: Threads of training, extraction and evaluation (PyTorch, BLAS, OpenMP) in the run's process.
RUN_THREADS = 2
#: Threads of each embedding job (the embedder, BLAS, OpenMP).
JOB_THREADS = 1


#: What a library loaded later reads its thread count from.
_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def numba_threads(workers: int) -> int:
    """numba threads per job process: the cores shared among ``workers`` (speed only)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def record(workers: int) -> dict[str, int]:
    """The thread counts of a run with ``workers`` job processes, as config.json records them."""
    return {"run": RUN_THREADS, "job": JOB_THREADS, "numba_per_worker": numba_threads(workers)}


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[None]:
    """Run the block with PyTorch, BLAS and OpenMP (FAISS included) on ``threads`` threads.

    The counts in force before are restored on leaving. PyTorch is touched only when it
    is imported already; FAISS is imported here when installed. A library first loaded
    inside the block (openTSNE's OpenMP runtime, SciPy's BLAS) reads its count from the
    environment then, so ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` say ``threads`` inside the block too.
    """
    import sys

    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        import faiss
    except Exception:  # not installed, or broken by its own dependencies: not used either
        faiss = None
    faiss_before = faiss.omp_get_max_threads() if faiss is not None else None
    environment = {name: os.environ.get(name) for name in _VARIABLES}
    try:
        os.environ.update({name: str(threads) for name in _VARIABLES})
        if torch is not None:
            torch.set_num_threads(threads)
        if faiss is not None:
            faiss.omp_set_num_threads(threads)
        with threadpool_limits(limits=threads):
            yield
    finally:
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if torch is not None:
            torch.set_num_threads(before)
        if faiss is not None:
            faiss.omp_set_num_threads(faiss_before)
