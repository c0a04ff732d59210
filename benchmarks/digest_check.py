"""What the digest check costs a stage's read: the chunks' checksums against the recorded digest.

Before a stage uses an array, ``RunStore`` reads the last 4 bytes (the crc32c checksum)
of each of its chunks and checks that, in chunk order, they give the digest recorded
when the array was written (once per array and handle). A synthetic store shaped as the
study's layers at N examples (ReLU-like float32: ``layer1`` 4 x 12 x 12, ``layer2``
16 x 5 x 5, ``layer3`` 64) is written once; then, per representation, the median of
``--repeats`` reads through a handle that has already checked the array (the read
alone, as before the check existed) against the check alone on a fresh handle. Recorded
in ``benchmarks/results/digest_check.json``::

    python benchmarks/digest_check.py [--n 60000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS, median_seconds, provenance  # noqa: E402
from repscope.engine.presets.study import REPRESENTATIONS  # noqa: E402
from repscope.store import CHUNK_ROWS, RunStore, find, layer_key  # noqa: E402

LAYERS = {"layer1": (4, 12, 12), "layer2": (16, 5, 5), "layer3": (64,)}
#: What jobs read: one filter (its own chunks), a whole layer.
READS = ("layer2/filter03", "layer2/all", "layer1/filter02", "layer3")


def write(root: Path, n: int) -> None:
    """The layers of one network, written in row blocks as extraction writes them."""
    store = RunStore(root)
    rng = np.random.default_rng(0)
    for layer, shape in LAYERS.items():
        progress = store.prepare(layer_key("m", 42, "trained", layer), (n, *shape), "float32", {"n": n})
        for a in range(0, n, CHUNK_ROWS):
            b = min(a + CHUNK_ROWS, n)
            progress.array[a:b] = np.maximum(rng.normal(size=(b - a, *shape)), 0).astype(np.float32)
            store.commit_rows(progress, b)
        store.mark_complete(progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="repscope-digest-"))
    try:
        root = work / "store.zarr"
        write(root, args.n)
        rows = []
        for name in READS:
            rep = find(REPRESENTATIONS, name)
            key = layer_key("m", 42, "trained", rep.array)
            checked = RunStore(root)
            checked.check(key)
            read = median_seconds(lambda: checked.read_representation("m", 42, "trained", rep), args.repeats)
            opening = median_seconds(lambda: RunStore(root), args.repeats)
            check = median_seconds(lambda: RunStore(root).check(key), args.repeats) - opening
            rows.append({"read": name, "array": key, "chunks": checked.root[key].nchunks,
                         "read_s": round(read, 5), "check_s": round(check, 5), "check_to_read": round(check / read, 3)})
            print(f"{name}: read {read * 1e3:.1f} ms, check of its {rows[-1]['chunks']} chunks {check * 1e3:.1f} ms "
                  f"(x{rows[-1]['check_to_read']})", flush=True)
        result = {"benchmark": "digest_check", "n": args.n, "repeats": args.repeats, "rows": rows,
                  **provenance()}
        out = RESULTS / "digest_check.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
