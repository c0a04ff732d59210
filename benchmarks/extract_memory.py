"""Peak memory and wall time of extraction at two sizes, in one run, as JSON.

Each size runs ``python -m repscope extract`` in a fresh process against the same trained
networks (trained once beforehand, outside the measurement) and a fresh store; the peak
resident set size of that process comes from ``wait4``. The goal: the peak at
N = 60 000 exceeds the peak at N = 5 000 by less than 200 MB, since extraction holds one
batch, not N examples.

    python benchmarks/extract_memory.py [--sizes 5000 60000] [--dataset mnist]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import RESULTS, run_engine, write_growth

LIMIT_MB = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 60_000])
    parser.add_argument("--out", type=Path, default=RESULTS / "extract_memory.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="repscope-bench-") as tmp:
        base = Path(tmp) / "base"
        run_engine(["train", "--dataset", args.dataset, "--out", str(base), "--backend", "cpu"])
        rows = []
        for n in args.sizes:
            run = Path(tmp) / f"n{n}"
            shutil.copytree(base / "checkpoints", run / "checkpoints")
            seconds, peak = run_engine(["extract", "--dataset", args.dataset, "--n", str(n),
                                        "--out", str(run), "--backend", "cpu"])
            rows.append({"n": n, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 2)})
            print(f"N={n:>6}: peak RSS {peak:7.1f} MB, {seconds:6.1f} s", flush=True)

    write_growth("extract_memory", rows, args.out, LIMIT_MB, dataset=args.dataset, backend="cpu")

if __name__ == "__main__":
    main()
