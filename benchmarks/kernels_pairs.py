"""Pair-statistics kernels against the study's per-point loop and against older code, in one process, as JSON.

On 2-D data with 10 labels at each of ``--sizes`` (default 5 000, 20 000, 60 000), times:

* ``study-loop``: the study's method (for each i, numpy distances to every j > i, then
  masked sums), reimplemented from its description; once per N (half a minute at 60 000);
* ``numba``: the compiled, parallel CPU kernel (``kernels.pair_sums``' CPU default);
* ``numba@REV``: the same kernel as it was at git revision REV (``--against``; by default
  ``ef142e0^``, the last one with fast-math flags, and ``5c5f92a``, the last scalar one),
  loaded from git into this process and given the same label-sorted input;
* ``blocked-numpy``: the fallback without numba;
* ``sqrt``: a vectorised square root over as many values as there are pairs, in chunks
  that stay in cache, on every core: about the most a pair kernel can do on this machine
  (each pair needs one square root); the kernel's ``share_of_sqrt`` is its time against it;
* ``cuda`` (where CuPy sees a GPU): the RawKernel, timed with CUDA events.

Then the other compiled kernels, each against the same revisions: the general-d pair path
(N = 20 000, d = 8), the per-class distance sums behind the silhouette (N = 20 000, d = 2;
N = 5 000, d = 32) and the neighbour ranks (2 000 rows of 20 000 squared distances).

Every CPU time is the median of ``--repeats`` repeats taken in turn (each variant once per
round, after one warm-up call each), so a busy moment slows all alike. Results of the
current kernels are checked equal, bit for bit, to those of each revision that has the
same summation order (``same_bits``). The JSON (``benchmarks/results/kernels_pairs-<device>.json``)
records the commit, the date and the machine.

    python benchmarks/kernels_pairs.py [--sizes 5000 20000 60000] [--repeats 5] [--against REV ...]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import module_at, provenance  # noqa: E402
from repscope.kernels import _numba as current  # noqa: E402
from repscope.kernels import pair_sums  # noqa: E402
from repscope.kernels.pairs import sort_by_label  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
AGAINST = ("ef142e0^", "5c5f92a")
#: Revisions whose pair and class sums take the same order as today's (bits must match).
SAME_ORDER = ("5c5f92a",)


def study_loop(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    same = diff = 0.0
    for i in range(len(x) - 1):
        d = np.sqrt(((x[i + 1:] - x[i]) ** 2).sum(axis=1))
        mask = y[i + 1:] == y[i]
        same += d[mask].sum()
        diff += d[~mask].sum()
    return same, diff


@numba.njit(parallel=True)
def _sqrt_chunks(buf, out, rounds):
    for r in numba.prange(rounds):
        o = out[r % out.shape[0]]
        b = buf[r % buf.shape[0]]
        for t in range(b.shape[0]):
            o[t] = math.sqrt(b[t])


def sqrt_seconds(values: float, repeats: int) -> float:
    """Seconds for a vectorised square root of ``values`` doubles on every core, in cache-sized chunks."""
    chunk = 1 << 14  # 128 KiB of input and of output per chunk
    lanes = max(numba.get_num_threads(), 1) * 2
    buf = np.abs(np.random.default_rng(0).normal(size=(lanes, chunk))) + 1.0
    out = np.empty_like(buf)
    rounds = max(1, int(round(values / chunk)))
    _sqrt_chunks(buf, out, 4)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _sqrt_chunks(buf, out, rounds)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * values / (rounds * chunk)


def interleaved(variants: dict, repeats: int) -> tuple[dict[str, float], dict]:
    """Median seconds of each variant (run in turn ``repeats`` times after a warm-up each), and its result."""
    results = {name: fn() for name, fn in variants.items()}  # warm-up: compilation, caches
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}, results


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
    return cupy, cupy.cuda.runtime.getDeviceProperties(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 60_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", nargs="*", default=list(AGAINST),
                        help="git revisions whose kernels are timed beside today's (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    stamp = provenance()  # before anything is written
    gpu = _gpu()
    device = "cuda" if gpu else "cpu"
    old = {}
    for rev in args.against:
        module = module_at(rev)
        if module is None:
            print(f"--against {rev}: not found in git here; left out", file=sys.stderr)
        else:
            old[rev] = module
    rows = []

    def record(operation, method, n, d, seconds, **extra):
        row = {"operation": operation, "method": method, "n": n, "d": d, "seconds": seconds, **extra}
        rows.append(row)
        detail = "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
        print(f"{operation:>12} {method:>22} N={n:>6} d={d:<3} {seconds * 1e3:10.2f} ms  {detail}", flush=True)
        return row

    rng = np.random.default_rng(0)
    for n in args.sizes:
        x = rng.normal(size=(n, 2)).astype(np.float32)
        y = rng.integers(0, 10, n)
        pairs = n * (n - 1) / 2
        sp = sort_by_label(x, y)
        started = time.perf_counter()
        study_loop(x.astype(np.float64), y)
        loop = time.perf_counter() - started
        record("pair_sums", "study-loop", n, 2, loop, pairs_per_second=pairs / loop, speedup_vs_study_loop=1.0)
        variants = {"numba": lambda: current.pair_sums_direct(sp.x, sp.ends)}
        for rev, module in old.items():
            variants[f"numba@{rev}"] = lambda m=module: m.pair_sums_direct(sp.x, sp.ends)
        seconds, results = interleaved(variants, args.repeats)
        sqrt = sqrt_seconds(pairs, args.repeats)
        for name, value in seconds.items():
            extra = {"pairs_per_second": pairs / value, "speedup_vs_study_loop": loop / value,
                     "share_of_sqrt": sqrt / value}
            if name != "numba":
                extra["current_vs_this"] = value / seconds["numba"]
                if name.split("@")[1] in SAME_ORDER:
                    extra["same_bits"] = results[name] == results["numba"]
            record("pair_sums", name, n, 2, value, **extra)
        record("pair_sums", "sqrt", n, 2, sqrt, values_per_second=pairs / sqrt)
        blocked_repeats = 3 if n < 20_000 else 1
        blocked, _ = interleaved({"b": lambda: pair_sums(x, y, method="blocked")}, blocked_repeats)
        record("pair_sums", "blocked-numpy", n, 2, blocked["b"], pairs_per_second=pairs / blocked["b"],
               speedup_vs_study_loop=loop / blocked["b"])
        if gpu:
            cupy, props = gpu
            xg, yg = cupy.asarray(x), cupy.asarray(y)
            c = _cuda_seconds(lambda: pair_sums(xg, yg, method="cuda"), args.repeats)
            # one square root per pair on the special-function units: 16 per clock per SM on Hopper
            bound = pairs / (props["multiProcessorCount"] * 16 * props["clockRate"] * 1e3)
            record("pair_sums", "cuda", n, 2, c, pairs_per_second=pairs / c, speedup_vs_study_loop=loop / c,
                   sqrt_bound_seconds=bound, fraction_of_sqrt_bound=bound / c)

    # the other compiled kernels, each against the same revisions
    def compare(operation, n, d, run, same_order=True):
        variants = {"numba": lambda: run(current)}
        for rev, module in old.items():
            variants[f"numba@{rev}"] = lambda m=module: run(m)
        seconds, results = interleaved(variants, args.repeats)
        for name, value in seconds.items():
            extra = {}
            if name != "numba":
                extra["current_vs_this"] = value / seconds["numba"]
                if same_order and name.split("@")[1] in SAME_ORDER:
                    extra["same_bits"] = bool(np.array_equal(results[name], results["numba"]))
            record(operation, name, n, d, value, **extra)

    x = rng.normal(size=(20_000, 8))
    sp = sort_by_label(x, rng.integers(0, 10, 20_000))
    compare("pair_sums", 20_000, 8, lambda m: np.array(m.pair_sums_direct(sp.x, sp.ends)))
    for n, d in ((20_000, 2), (5_000, 32)):
        x = rng.normal(size=(n, d))
        ids = rng.integers(0, 10, n)
        compare("class_sums", n, d, lambda m, x=x, ids=ids: m.class_distance_sums_direct(x, ids, 10))
    d2 = rng.random((2_000, 20_000))
    pick_rows = np.repeat(np.arange(2_000), 10)
    pick_cols = rng.integers(0, 20_000, pick_rows.size)
    compare("ranks", 2_000, 20_000, lambda m: m.rank_excess(d2, pick_rows, pick_cols, 10, 2_000))

    versions = {"numpy": np.__version__, "numba": numba.__version__, "threads": numba.get_num_threads()}
    if gpu:
        cupy, props = gpu
        versions["cupy"] = cupy.__version__
        stamp["machine"]["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    result = {"benchmark": "kernels_pairs", "device": device, "repeats": args.repeats,
              "against": list(old), "rows": rows, "versions": versions, **stamp}
    out = args.out or RESULTS / f"kernels_pairs-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
