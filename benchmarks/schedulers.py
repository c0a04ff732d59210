"""The local scheduler against a Dask LocalCluster, on the same presets, as JSON.

For each preset (smoke, paper by default) the networks are trained once into a shared
folder; then each scheduler runs the whole preset (`python -m repscope run`, CPU backend,
2 workers) in a fresh run folder holding a copy of those checkpoints, so both time the
same work: extraction, the embedding jobs, evaluation and the report. Recorded: wall
time, the per-stage timings each run wrote, the peak RSS of the driver process, the
ratio dask / local, and whether both runs wrote the same metrics.csv.

    python benchmarks/schedulers.py [--presets smoke,paper] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from _common import RESULTS, provenance, run_engine

SCHEDULERS = ("local", "dask")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="smoke,paper")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "schedulers-cpu.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="repscope-schedulers-") as tmp:
        for preset in args.presets.split(","):
            trained = Path(tmp) / f"{preset}-trained"
            run_engine(["train", "--preset", preset, "--backend", "cpu", "--out", str(trained)])
            row = {"preset": preset, "workers": args.workers}
            csvs = {}
            for scheduler in SCHEDULERS:
                run = Path(tmp) / f"{preset}-{scheduler}"
                shutil.copytree(trained / "checkpoints", run / "checkpoints")
                seconds, peak = run_engine(["run", "--preset", preset, "--backend", "cpu", "--out", str(run),
                                            "--workers", str(args.workers), "--scheduler", scheduler])
                config = json.loads((run / "config.json").read_text())
                row[scheduler] = {"seconds": round(seconds, 1), "driver_peak_rss_mb": round(peak, 1),
                                  "stage_seconds": {k: v for k, v in config["timings"].items()
                                                    if k not in ("fetch", "train")}}
                csvs[scheduler] = (run / "metrics.csv").read_bytes()
                print(f"{preset} {scheduler}: {seconds:.1f} s", flush=True)
            row["ratio_dask_over_local"] = round(row["dask"]["seconds"] / row["local"]["seconds"], 3)
            row["same_metrics_csv"] = csvs["local"] == csvs["dask"]
            results.append(row)
    out = {"benchmark": "schedulers", "backend": "cpu", "results": results, **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for row in results:
        print(f"{row['preset']}: local {row['local']['seconds']} s, dask {row['dask']['seconds']} s, "
              f"ratio {row['ratio_dask_over_local']}, same metrics.csv: {row['same_metrics_csv']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
