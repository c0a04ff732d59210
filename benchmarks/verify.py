"""What integrity costs: writing with checksums and digests, and ``repscope verify``.

A synthetic store shaped as a run's arrays at N examples (a 4-channel 24 x 24 layer, a
16-channel 5 x 5 layer, a 10-unit layer, the 784-value input as uint8, embeddings) is
written twice, once as the engine writes (per-chunk crc32c, every chunk stored, a
digest at completion) and once as plain Zarr (zstd only, the library's defaults), and
then read back: ``verify`` (every stored byte read, every checksum and digest checked)
against a plain read of every array decoded (the baseline: what any stage pays to read
it). Ratios against the baseline of the same run are recorded in
``benchmarks/results/verify.json``::

    python benchmarks/verify.py [--n 60000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS, provenance  # noqa: E402
from repscope.store import CHUNK_ROWS, RunStore, chunks_for  # noqa: E402

ARRAYS = {"layer1": ((4, 24, 24), "float32"), "layer2": ((16, 5, 5), "float32"), "layer3": ((10,), "float32"),
          "original": ((784,), "uint8"), "embedding_a": ((2,), "float32"), "embedding_b": ((2,), "float32")}


def _block(name: str, shape: tuple, dtype: str, a: int, b: int) -> np.ndarray:
    rng = np.random.default_rng(a)
    if dtype == "uint8":
        return rng.integers(0, 256, (b - a, *shape), dtype=np.uint8)
    return np.maximum(rng.normal(size=(b - a, *shape)), 0).astype(dtype)  # ReLU-like: many zeros


def write(root: Path, n: int, checked: bool) -> float:
    """Write every array in row blocks, as extraction does; return the seconds."""
    started = time.perf_counter()
    if checked:
        store = RunStore(root)
        for name, (shape, dtype) in ARRAYS.items():
            progress = store.prepare(f"d/{name}", (n, *shape), dtype, {"n": n})
            for a in range(0, n, CHUNK_ROWS):
                b = min(a + CHUNK_ROWS, n)
                progress.array[a:b] = _block(name, shape, dtype, a, b)
                store.commit_rows(progress, b)
            store.mark_complete(progress)
    else:
        group = zarr.open_group(str(root), mode="a", zarr_format=3)
        for name, (shape, dtype) in ARRAYS.items():
            array = group.create_array(f"d/{name}", shape=(n, *shape), dtype=dtype, chunks=chunks_for((n, *shape)))
            for a in range(0, n, CHUNK_ROWS):
                b = min(a + CHUNK_ROWS, n)
                array[a:b] = _block(name, shape, dtype, a, b)
    return time.perf_counter() - started


def read_all(root: Path) -> float:
    started = time.perf_counter()
    group = zarr.open_group(str(root), mode="r")
    for name in ARRAYS:
        array = group[f"d/{name}"]
        for a in range(0, array.shape[0], CHUNK_ROWS):
            np.asarray(array[a:a + CHUNK_ROWS])
    return time.perf_counter() - started


def verify_all(root: Path) -> tuple[float, int]:
    started = time.perf_counter()
    store = RunStore(root)
    results = [store.verify(key) for key in store.keys()]
    assert all(r.problem is None for r in results), [r.problem for r in results]
    return time.perf_counter() - started, sum(r.nbytes for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="repscope-verify-"))
    try:
        rows = []
        for _ in range(args.repeats):
            for sub in ("checked.zarr", "plain.zarr"):
                shutil.rmtree(work / sub, ignore_errors=True)
            write_checked = write(work / "checked.zarr", args.n, True)
            write_plain = write(work / "plain.zarr", args.n, False)
            read_checked, read_plain = read_all(work / "checked.zarr"), read_all(work / "plain.zarr")
            verify_seconds, nbytes = verify_all(work / "checked.zarr")
            rows.append({"write_checked_s": write_checked, "write_plain_s": write_plain,
                         "read_checked_s": read_checked, "read_plain_s": read_plain,
                         "verify_s": verify_seconds, "stored_mb": nbytes / 1e6})
        best = {k: min(r[k] for r in rows) for k in rows[0]}
        result = {
            "benchmark": "verify", "n": args.n, "arrays": {k: [list(s), d] for k, (s, d) in ARRAYS.items()},
            "best_of": args.repeats, "best": {k: round(v, 3) for k, v in best.items()},
            "write_ratio": round(best["write_checked_s"] / best["write_plain_s"], 3),
            "read_ratio": round(best["read_checked_s"] / best["read_plain_s"], 3),
            "verify_ratio_to_plain_read": round(best["verify_s"] / best["read_plain_s"], 3),
            "verify_mb_per_s": round(best["stored_mb"] / best["verify_s"], 1),
            **provenance(),
        }
        out = RESULTS / "verify.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"N={args.n}: {best['stored_mb']:.0f} MB stored; write x{result['write_ratio']}, read "
              f"x{result['read_ratio']} of plain Zarr; verify {best['verify_s']:.2f} s "
              f"({result['verify_mb_per_s']} MB/s, x{result['verify_ratio_to_plain_read']} of a plain read); "
              f"written to {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
