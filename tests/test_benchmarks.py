"""The benchmark scripts that others run: the GPU check's listing and refusal, the parity table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_gpu_check_dry_run_lists_every_step(tmp_path):
    proc = _script("gpu_check.py", "--dry-run", "--work", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    names = [line.split(" ")[1] for line in lines[:-1]]
    assert names == ["gpu-tests", "kernels", "extract", "parity", "full-jobs", "evaluate"]
    assert "--backend gpu --preset full" in proc.stdout and "cuml-tsne@cuda" in proc.stdout
    assert "total limit" in lines[-1] and int(lines[-1].rsplit(" ", 2)[1]) <= 900  # fits in 15 minutes
    # the engine steps share one set of run options (other options would be refused as another run)
    engine = [line.split(" -q ", 1)[1].split(" ", 1)[1] for line in lines if " -m repscope -q " in line]
    assert len(engine) == 3 and engine[0] == engine[2] and engine[1].startswith(engine[0] + " ")
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_gpu_check_refuses_in_one_line_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = _script("gpu_check.py", "--work", str(tmp_path), "--out", str(tmp_path / "out.json"))
    assert proc.returncode == 3
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("gpu_check: no CUDA device here") and "--dry-run" in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_gpu_check_names_an_unknown_step(tmp_path):
    proc = _script("gpu_check.py", "--dry-run", "--only", "kernels,warp")
    assert proc.returncode == 2 and "unknown step(s) warp" in proc.stderr


def test_parity_table_marks_a_miss():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from parity import table
    finally:
        sys.path.remove(str(BENCHMARKS))
    from repscope.engine.parity import BANDED, compare

    metrics = dict.fromkeys(BANDED, 0.5)
    reference = [{**metrics, "seed": s, "seconds": 1.0} for s in (1, 2)]
    other = [{**metrics, "ds": 0.7, "seed": s, "seconds": 2.0} for s in (1, 2)]
    result = {"comparisons": [{"input": "digits", "embedder": "torchdr-tsne@cpu", "seeds": 2, "seconds_mean": 2.0,
                               "metrics": compare(reference, other)}]}
    text = table(result)
    row = text.splitlines()[2]
    assert row.startswith("| digits | torchdr-tsne@cpu | 2 | 2.0 | 0.500 ± 0.000")
    assert "+0.200 (±0.030) ✗" in row and row.endswith("| 5/6 |")


def test_explorer_benchmark_records_both_ways_of_drawing(tmp_path):
    import json
    import os

    from benchmarks import _browser

    if _browser.binaries() is None and os.environ.get("REPSCOPE_BROWSER") != "required":
        pytest.skip("no Chromium or ChromeDriver (apt-get install chromium chromium-driver)")
    out = tmp_path / "explorer.json"
    proc = _script("explorer.py", "--n", "3000", "--repeat", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["n"] == 3000 and record["panels"] == 8
    for raster in ("cpu", "gl"):
        result = record[raster]
        assert 0 < result["first_view_ms"]["median"] < 60_000 and len(result["first_view_ms"]["runs"]) == 1
        sizes = [points for points, _ in result["selection"]["total_ms_by_points_selected"]]
        assert 0 < min(sizes) and max(sizes) <= 3000 and set(result["met"]) == {"first_view", "update"}


def test_the_performance_tables_agree_with_their_records():
    """The docs' performance tables are those benchmarks/tables.py makes from the JSON records."""
    proc = _script("tables.py", "--check")
    assert proc.returncode == 0, proc.stderr


def test_a_table_edited_by_hand_is_found():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import tables
    finally:
        sys.path.remove(str(BENCHMARKS))
    text = (tables.ROOT / "README.md").read_text()
    assert tables.render(text)[1] == []
    start = text.index("<!-- table kernels-cpu")
    edited = text[:start] + text[start:].replace("| 20 000 |", "| 20 001 |", 1).replace("| 60 000 |", "| 60 001 |", 1)
    assert edited != text and tables.render(edited)[1] == ["kernels-cpu"]
    assert tables.render(edited)[0] == text  # rewriting restores it
