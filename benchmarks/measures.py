"""The measures beyond the study at N = 5 000, 20 000 and 60 000 on this machine, as JSON.

Each (measure, N) runs in a fresh process on synthetic data shaped like a run's (10
classes; a representation of 50 values, the width a wide layer is reduced to; its 2-D
embedding), and records its seconds and its peak resident memory above the inputs'
(``work_mb``) beside the size an N x N float64 matrix would have (``nxn_mb``): none
comes near it. Per measure, the growth exponent of time in N (the slope of log time
against log N between the smallest and the largest N; 2 for an exact all-pairs
measure). Baseline in the same run: scikit-learn's ``trustworthiness`` and
``silhouette_score`` at the smallest N (their speed ratio to ours; scikit-learn's
trustworthiness holds N x N matrices, so it is not run beyond).

    python benchmarks/measures.py [--sizes 5000 20000 60000] [--out benchmarks/results/measures-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, provenance  # noqa: E402

MEASURES = {
    "neighbourhood": "trustworthiness, continuity and recall, exact (one embedding)",
    "neighbourhood-sample": "the same estimated from 2 000 seeded query points",
    "silhouette-2d": "silhouette of the 2-D embedding (compiled kernel)",
    "silhouette-50d": "silhouette of the 50-value representation (GEMM blocks)",
    "cka": "linear CKA between a 50-value and a 256-value representation",
    "probe": "linear probe on the 50-value representation, 10 000 held-out rows",
    "sklearn-trustworthiness": "baseline: sklearn.manifold.trustworthiness",
    "sklearn-silhouette": "baseline: sklearn.metrics.silhouette_score",
}
BASELINES = {"sklearn-trustworthiness": "neighbourhood", "sklearn-silhouette": "silhouette-2d"}
WIDTH = 50


def data(n: int, seed: int = 0):
    """A 10-class representation (n, 50), its noisy 2-D picture and a wider relative (n, 256)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(scale=3.0, size=(10, WIDTH))
    x = (centres[labels] + rng.normal(size=(n, WIDTH))).astype(np.float32)
    embedding = (x[:, :2] + 0.5 * rng.normal(size=(n, 2))).astype(np.float32)
    wide = np.tanh(x @ rng.normal(size=(WIDTH, 256)).astype(np.float32) / 8)
    return x, embedding, wide, labels


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(measure: str, n: int) -> dict:
    """Run one measure at one N in this process; return its record."""
    import sklearn.linear_model  # noqa: F401  (imports outside the timing)
    import sklearn.preprocessing  # noqa: F401
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import silhouette_score as sklearn_silhouette

    from repscope.kernels import cka_matrix, linear_probe, neighbourhood_scores, silhouette_score

    x, embedding, wide, labels = data(n)
    test_x, _, _, test_labels = data(10_000, seed=1)
    calls = {
        "neighbourhood": lambda: neighbourhood_scores(x, embedding, k=10),
        "neighbourhood-sample": lambda: neighbourhood_scores(x, embedding, k=10, sample=2000, seed=0),
        "silhouette-2d": lambda: silhouette_score(embedding, labels),
        "silhouette-50d": lambda: silhouette_score(x, labels),
        "cka": lambda: cka_matrix([x, wide]),
        "probe": lambda: linear_probe(x, labels, test_x, test_labels, seed=0),
        "sklearn-trustworthiness": lambda: trustworthiness(x, embedding, n_neighbors=10),
        "sklearn-silhouette": lambda: sklearn_silhouette(embedding, labels),
    }
    small = data(200)  # compile the numba kernels outside the timing
    if measure.startswith("neighbourhood"):
        neighbourhood_scores(small[0], small[1], k=10)
    elif measure == "silhouette-2d":
        silhouette_score(small[1], small[3])
    before = _rss_mb()
    started = time.perf_counter()
    value = calls[measure]()
    seconds = time.perf_counter() - started
    return {"measure": measure, "n": n, "seconds": round(seconds, 3), "work_mb": round(_rss_mb() - before, 1),
            "peak_rss_mb": round(_rss_mb(), 1), "nxn_mb": round(n * n * 8 / 2**20, 1),
            "value": [float(v) for v in value[:3]] if hasattr(value, "_fields") and len(value) > 3 else
            (float(value[0, 1]) if isinstance(value, np.ndarray) and value.ndim == 2 else
             float(value[0]) if isinstance(value, tuple) else float(value))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 60_000])
    parser.add_argument("--out", type=Path, default=RESULTS / "measures-cpu.json")
    parser.add_argument("--one", nargs=2, metavar=("MEASURE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return 0
    rows = []
    for measure in MEASURES:
        sizes = args.sizes[:1] if measure in BASELINES else args.sizes
        for n in sizes:
            proc = subprocess.run([sys.executable, __file__, "--one", measure, str(n)], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"})
            if proc.returncode:
                raise SystemExit(f"{measure} at N = {n} failed: {proc.stderr.strip().splitlines()[-1]}")
            row = json.loads(proc.stdout)
            rows.append(row)
            print(f"{measure:24s} N = {n:6d}: {row['seconds']:8.2f} s, {row['work_mb']:8.1f} MB above the inputs "
                  f"(N x N would be {row['nxn_mb']:.0f} MB)", flush=True)
    growth = {}
    for measure in MEASURES:
        own = sorted((r for r in rows if r["measure"] == measure), key=lambda r: r["n"])
        if len(own) > 1 and own[0]["seconds"] > 0:
            growth[measure] = round(math.log(own[-1]["seconds"] / own[0]["seconds"]) / math.log(own[-1]["n"] / own[0]["n"]), 2)
    ratios = {}
    for baseline, ours in BASELINES.items():
        a = next(r for r in rows if r["measure"] == baseline)
        b = next(r for r in rows if r["measure"] == ours and r["n"] == a["n"])
        ratios[f"{ours} vs {baseline}"] = {"n": a["n"], "speedup": round(a["seconds"] / b["seconds"], 2),
                                           "baseline_work_mb": a["work_mb"], "ours_work_mb": b["work_mb"]}
    result = {"benchmark": "measures", "backend": "cpu", "descriptions": MEASURES, "rows": rows,
              "growth_exponent": growth, "baseline_ratios": ratios,
              "largest_work_mb": max(r["work_mb"] for r in rows if r["measure"] not in BASELINES),
              **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"growth exponents {growth}; baseline ratios {ratios}; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
