"""Wall time and peak memory of each stage at several N, one data set, on the CPU, as JSON.

For N in 5 000, 20 000 and 60 000 (MNIST, seed 42, networks trained once beforehand):
``extract``; ``embed`` per method for a few representations (``--representations``;
both networks of each); ``evaluate``. Each stage runs as its own process, whose peak
resident set size comes from ``wait4``; for ``embed`` the jobs' own wall times are
recorded too (the process time includes worker start-up and umap-learn's one-time
compilation). The growth exponent of a stage is the slope of log(time) against log(N)
over the sizes.

    python benchmarks/stages.py [--sizes 5000 20000 60000] [--representations layer3,layer2/filter01]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from pathlib import Path

from _common import RESULTS, provenance, run_engine


def _slope(sizes: list[int], times: list[float]) -> float:
    xs, ys = [math.log(n) for n in sizes], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 60_000])
    parser.add_argument("--representations", default="layer3,layer2/filter01")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--out", type=Path, default=RESULTS / "stages-cpu.json")
    args = parser.parse_args()

    common = ["--datasets", args.dataset, "--backend", "cpu"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="repscope-stages-") as tmp:
        base = Path(tmp) / "base"
        run_engine(["train", "--out", str(base), *common])
        for n in args.sizes:
            run = Path(tmp) / f"n{n}"
            shutil.copytree(base / "checkpoints", run / "checkpoints")
            opts = ["--out", str(run), "--n", str(n), "--representations", args.representations, *common]
            stages = [("extract", ["extract", *opts])]
            stages += [(f"embed-{m}", ["embed", *opts, "--methods", m]) for m in ("tsne", "umap")]
            stages += [("evaluate", ["evaluate", *opts])]
            for stage, cmd in stages:
                seconds, peak = run_engine(cmd)
                row = {"stage": stage, "n": n, "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1)}
                if stage.startswith("embed"):
                    # The jobs' own wall times, without process start and umap-learn's compilation.
                    method = stage.split("-", 1)[1]
                    lines = (run / "jobs.csv").read_text().splitlines()[1:]
                    times = [float(line.rsplit(",", 1)[1]) for line in lines if f"/{method}/" in line]
                    row["job_seconds"] = round(sum(times), 2)
                    row["jobs"] = len(times)
                rows.append(row)
                extra = f" (jobs {row['job_seconds']:.1f} s)" if "job_seconds" in row else ""
                print(f"{stage:>12} N={n:>6}: {seconds:8.1f} s{extra}, peak RSS {peak:7.1f} MB", flush=True)
    growth = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        series = [r for r in rows if r["stage"] == stage]
        growth[stage] = round(_slope([r["n"] for r in series], [r["seconds"] for r in series]), 2)
        if "job_seconds" in series[0]:
            growth[f"{stage} (jobs only)"] = round(
                _slope([r["n"] for r in series], [r["job_seconds"] for r in series]), 2)
    result = {
        "benchmark": "stages", "dataset": args.dataset, "backend": "cpu",
        "representations": args.representations.split(","), "rows": rows, "growth_exponent": growth,
        **provenance(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"growth exponents {growth}; written to {args.out}")


if __name__ == "__main__":
    main()
