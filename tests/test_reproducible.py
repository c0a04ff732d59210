"""The same run gives the same numbers whatever the machine's state: worker count, thread
settings of the environment, numba's cache (engine/threads.py says how)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Without `if __name__ == "__main__":`, as a first script is written: worker processes
# must not run it again (engine/scheduler.py).
SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    import repscope

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    run = repscope.analyze(net, "digits", layers=["2"], methods=["tsne"], n=200, out=sys.argv[1],
                           workers=int(sys.argv[2]), train=True, recipe={"epochs": 2, "learning_rate": 0.05},
                           metrics="all", report=False)
    print(len(run.metrics), "rows")
""")


def _run(tmp_path: Path, name: str, workers: int, env: dict[str, str]) -> Path:
    script = tmp_path / "analyze_digits.py"
    script.write_text(SCRIPT)
    out = tmp_path / name
    proc = subprocess.run([sys.executable, str(script), str(out), str(workers)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # logging not configured by the script: the Python API shows its decisions and progress itself
    assert "INFO repscope.engine.pipeline: jobs:" in proc.stderr and "INFO repscope.progress: embed:" in proc.stderr
    return out


def test_a_run_from_nothing_gives_the_same_bytes_with_other_workers_threads_and_a_cold_numba_cache(tmp_path):
    """Trained from nothing twice: in-process with every library told to use one thread and
    an empty numba cache, then two worker processes with OpenMP told to use three. Training,
    t-SNE (openTSNE's n_jobs), BLAS in probes and PCA all used to follow these settings."""
    import torch

    one = _run(tmp_path, "one", 0, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                    "NUMBA_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
    two = _run(tmp_path, "two", 2, {"OMP_NUM_THREADS": "3"})
    for name in ("metrics.csv", "cka.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    trained = [torch.load(next((run / "checkpoints").rglob("trained.pt")), weights_only=True)["state_dict"]
               for run in (one, two)]
    assert trained[0].keys() == trained[1].keys()
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])
    for run in (one, two):
        threads = json.loads((run / "config.json").read_text())["backend"]["threads"]
        assert threads["run"] == 2 and threads["job"] == 1

    # Another worker count on a finished run changes nothing: no embedding is made again.
    embeddings = {p: p.stat().st_mtime_ns for p in (one / "store.zarr").rglob("embeddings/*/*/c/*/*")}
    assert embeddings
    _run(tmp_path, "one", 1, {})
    assert {p: p.stat().st_mtime_ns for p in embeddings} == embeddings
    assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
