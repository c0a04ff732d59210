"""Pair-statistics kernels against the study's per-point loop, in one process, as JSON.

On 2-D data with 10 labels at N = 5 000, 20 000 and 60 000, times:

* ``study-loop``: the study's method (for each i, numpy distances to every j > i, then
  masked sums), reimplemented from its description;
* ``numba``: the compiled, parallel CPU kernel (``kernels.pair_sums``' CPU default);
* ``blocked-numpy``: the fallback without numba;
* ``cuda`` (where CuPy sees a GPU): the RawKernel, timed with CUDA events.

Each time is the median of several runs after a warm-up (the study loop runs once at
the largest N: it takes about half a minute). Pairs per second and the speed-up over
the loop at the same N go to ``benchmarks/results/kernels_pairs-<device>.json``.

    python benchmarks/kernels_pairs.py [--sizes 5000 20000 60000] [--repeats 5] [--high-d]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import median_seconds  # noqa: E402
from repscope.kernels import pair_sums  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def study_loop(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    same = diff = 0.0
    for i in range(len(x) - 1):
        d = np.sqrt(((x[i + 1:] - x[i]) ** 2).sum(axis=1))
        mask = y[i + 1:] == y[i]
        same += d[mask].sum()
        diff += d[~mask].sum()
    return same, diff


_median_seconds = functools.partial(median_seconds, warm_up=True)  # compilation and caches first


def _cuda_seconds(fn, repeats: int) -> float:
    import cupy

    fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(times)


def _gpu():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None
    except Exception:
        return None
    props = cupy.cuda.runtime.getDeviceProperties(0)
    return cupy, props


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 60_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--high-d", action="store_true", help="also time the GEMM path on (N, 784) at the largest N")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    gpu = _gpu()
    device = "cuda" if gpu else "cpu"
    rows = []

    def record(op, backend, n, d, seconds, loop_seconds=None):
        pairs = n * (n - 1) / 2
        row = {"operation": "pair_sums", "method": op, "backend": backend, "n": n, "d": d,
               "seconds": seconds, "pairs_per_second": pairs / seconds}
        if loop_seconds is not None:
            row["speedup_vs_study_loop"] = loop_seconds / seconds
        rows.append(row)
        extra = f"  x{row['speedup_vs_study_loop']:.1f} the loop" if loop_seconds else ""
        print(f"{op:>14} N={n:>6} d={d:<3} {seconds * 1e3:10.2f} ms  {row['pairs_per_second']:.3g} pairs/s{extra}",
              flush=True)
        return row

    rng = np.random.default_rng(0)
    for n in args.sizes:
        x = rng.normal(size=(n, 2)).astype(np.float32)
        y = rng.integers(0, 10, n)
        loop_repeats = 1 if n >= 20_000 else 3
        loop = _median_seconds(lambda: study_loop(x.astype(np.float64), y), loop_repeats) if loop_repeats > 1 else None
        if loop is None:
            start = time.perf_counter()
            study_loop(x.astype(np.float64), y)
            loop = time.perf_counter() - start
        record("study-loop", "numpy", n, 2, loop, loop)
        record("numba", "numpy", n, 2, _median_seconds(lambda: pair_sums(x, y, method="numba"), args.repeats), loop)
        record("blocked-numpy", "numpy", n, 2,
               _median_seconds(lambda: pair_sums(x, y, method="blocked"), max(1, args.repeats // 2)), loop)
        if gpu:
            cupy, props = gpu
            xg, yg = cupy.asarray(x), cupy.asarray(y)
            row = record("cuda", "cupy", n, 2, _cuda_seconds(lambda: pair_sums(xg, yg, method="cuda"), args.repeats), loop)
            # One square root per pair on the special-function units: 16 per clock per SM on Hopper.
            bound = (n * (n - 1) / 2) / (props["multiProcessorCount"] * 16 * props["clockRate"] * 1e3)
            row["sqrt_bound_seconds"] = bound
            row["fraction_of_sqrt_bound"] = bound / row["seconds"]
    if args.high_d:
        n = max(args.sizes)
        x = rng.normal(size=(n, 784)).astype(np.float32)
        y = rng.integers(0, 10, n)
        if gpu:
            cupy, _ = gpu
            xg, yg = cupy.asarray(x), cupy.asarray(y)
            record("blocked-gemm", "cupy", n, 784, _cuda_seconds(lambda: pair_sums(xg, yg), 3))
        record("blocked-gemm", "numpy", n, 784, _median_seconds(lambda: pair_sums(x, y), 1))

    versions = {"numpy": np.__version__, "python": platform.python_version()}
    try:
        import numba

        versions["numba"] = numba.__version__
    except ImportError:
        pass
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    if gpu:
        cupy, props = gpu
        versions["cupy"] = cupy.__version__
        machine["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        machine["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        machine["driver"] = cupy.cuda.runtime.driverGetVersion()
    result = {
        "benchmark": "kernels_pairs",
        "device": device,
        "rows": rows,
        "versions": versions,
        "machine": machine,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = args.out or RESULTS / f"kernels_pairs-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
