"""Helpers shared by the benchmark scripts: timed engine subprocesses, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run_engine(args: list[str]) -> tuple[float, float]:
    """Run ``python -m repscope -q ARGS`` in a fresh process; return (wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "repscope", "-q", *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"`python -m repscope {' '.join(args)}` failed")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def median_seconds(fn, repeats: int, warm_up: bool = False) -> float:
    """The median wall time of ``repeats`` calls of ``fn``, after one untimed call where
    ``warm_up`` (compilation, caches)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_growth(benchmark: str, rows: list[dict], out: Path, limit_mb: float, **extra) -> dict:
    """Record how the peak RSS of ``rows`` (smallest N first, largest last) grows, against
    ``limit_mb``, as JSON in ``out``; print one line and return the record."""
    small, large = rows[0], rows[-1]
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    result = {
        "benchmark": benchmark,
        **extra,
        "rows": rows,
        "peak_rss_growth_mb": round(growth, 1),
        "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "n_ratio": large["n"] / small["n"],
        "limit_mb": limit_mb,
        "within_limit": growth < limit_mb,
        "machine": machine(),
        "timestamp": timestamp(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"growth {growth:.1f} MB for {result['n_ratio']:.0f}x the examples "
          f"({'within' if result['within_limit'] else 'OVER'} the {limit_mb} MB limit); written to {out}")
    return result
