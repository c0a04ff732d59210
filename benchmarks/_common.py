"""Helpers shared by the benchmark scripts: timed engine subprocesses, machine facts."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {"cpus": os.cpu_count(), "cpu": _cpu_model(), "platform": platform.platform(),
            "python": platform.python_version()}


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def provenance() -> dict:
    """What a result was measured on: the commit (HEAD, and whether tracked files differed
    from it when the measurement started), the date and the machine."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": _git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status),
            "timestamp": timestamp(), "machine": machine()}


def module_at(revision: str, path: str = "kernels/_numba.py") -> ModuleType | None:
    """The module ``path`` as it was at git ``revision``, imported from a temporary copy
    (None where git or the revision is missing), to time old code beside new in one run."""
    text = _git("show", f"{revision}:{path}")
    if text is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="repscope-bench-"))
    name = "old_" + "".join(c if c.isalnum() else "_" for c in revision)
    file = folder / f"{name}.py"
    file.write_text(text + "\n")
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
