"""Peak memory of extracting a wide layer and reducing it by PCA, at two sizes, as JSON.

A model of 32 channels of 16x16 (8 192 values per example, so its whole layer is
reduced to 50 principal components) runs over N random 16x16 images from a ``.npz``
file, through ``python -m repscope extract`` in a fresh process per size; the peak
resident set size of that process comes from ``wait4``. Extraction streams one chunk
row-block at a time and the PCA is fitted and applied block by block, so the peak
should barely grow with N, although the layer itself (N x 8 192 float32, twice: trained
and untrained) grows from 0.13 GB to 1.3 GB between the default sizes. The goal: the
peak at the larger N exceeds the smaller's by less than 200 MB.

    python benchmarks/wide_memory.py [--sizes 2000 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from _common import RESULTS, run_engine, write_growth

LIMIT_MB = 200
MODEL = '''
from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 256, 10))


def to_input(images):
    return images.unsqueeze(1)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--out", type=Path, default=RESULTS / "wide_memory.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="repscope-bench-") as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        n_max = max(args.sizes)
        np.savez(tmp / "images.npz", x=rng.integers(0, 256, (n_max, 16, 16), dtype=np.uint8),
                 y=rng.integers(0, 10, n_max))
        (tmp / "wide_model.py").write_text(MODEL)
        (tmp / "wide.toml").write_text(textwrap.dedent("""
            datasets = ["images.npz"]
            methods = ["umap"]
            [model]
            factory = "wide_model:build"
            transform = "wide_model:to_input"
            layers = ["0"]
            [training]
            epochs = 0
        """))
        rows = []
        for n in args.sizes:
            run = tmp / f"n{n}"
            seconds, peak = run_engine(["extract", str(tmp / "wide.toml"), "--n", str(n), "--out", str(run),
                                        "--backend", "cpu"])
            config = json.loads((run / "config.json").read_text())
            rows.append({"n": n, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 2),
                         "layer_mb_per_network": round(n * 32 * 256 * 4 / 2**20, 1),
                         "reduced": config["extract"]["images"]["reduced"]})
            print(f"N={n:>6}: peak RSS {peak:7.1f} MB, {seconds:6.1f} s (layer {rows[-1]['layer_mb_per_network']} MB "
                  f"per network; reduced: {', '.join(rows[-1]['reduced'])})", flush=True)

    write_growth("wide_memory", rows, args.out, LIMIT_MB, backend="cpu")

if __name__ == "__main__":
    main()
