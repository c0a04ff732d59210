"""Helpers shared by the benchmark scripts: timed engine subprocesses, machine facts."""

from __future__ import annotations

import os
import platform
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


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
