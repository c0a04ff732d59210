"""The whole ``paper`` preset (both data sets, both methods, N = 5 000, seed 42) timed, as JSON.

Runs ``python -m repscope run --preset paper --backend cpu`` into a fresh run folder (data
already fetched) and records the wall time, the peak memory and the per-stage timings
the run itself wrote to its ``config.json``. Target on a 2-core machine: 20 minutes.

    python benchmarks/paper_preset.py [--keep runs/paper]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from _common import RESULTS, provenance, run_engine

TARGET_SECONDS = 20 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folder here")
    parser.add_argument("--out", type=Path, default=RESULTS / "paper-preset-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repscope-paper-") as tmp:
        run = Path(tmp) / "paper"
        seconds, peak = run_engine(["run", "--preset", "paper", "--backend", "cpu", "--out", str(run)])
        config = json.loads((run / "config.json").read_text())
        jobs = (run / "jobs.csv").read_text().splitlines()[1:]
        if args.keep:
            shutil.copytree(run, args.keep, dirs_exist_ok=True)
    result = {
        "benchmark": "paper_preset", "backend": "cpu", "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2), "target_seconds": TARGET_SECONDS,
        "within_target": seconds <= TARGET_SECONDS, "peak_rss_mb": round(peak, 1),
        "stage_seconds": config.get("timings", {}), "jobs": len(jobs),
        "embedders": config.get("backend", {}).get("embedders"), "workers": config.get("backend", {}).get("workers"),
        **provenance(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"paper preset: {seconds / 60:.1f} min ({result['stage_seconds']}); written to {args.out}")


if __name__ == "__main__":
    main()
