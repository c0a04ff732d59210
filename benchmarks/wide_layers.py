"""A layer of 802 816 values per example, reduced at capture time: disk, memory and speed, as JSON.

The network is torchvision's ResNet-50 where torchvision imports, otherwise a stand-in
of the same shapes up to ``layer1`` (a 7 x 7 stride-2 stem of 64 channels, a 3 x 3
stride-2 max-pool, a bottleneck block to 256 x 56 x 56, then a pooled linear head); its
``layer1`` output is 256 x 56 x 56 = 802 816 float32 values, 3.2 MB per example. N
synthetic 224 x 224 images (uint8, from a seeded generator) are read from ``.npy`` files.

For each reduction but ``none`` (which would store 2 x N x 3.2 MB), in a fresh process:

- ``repscope extract`` (both networks, the reduction applied on each batch), its peak
  resident set size from ``wait4``, and its extraction time from config.json; the
  throughput as a ratio to the baseline below (goal: pooling and projection at least
  0.8 of it, PCA, which runs a fitting pass per network first, at least 0.4);
- ``repscope run`` on the same folder (UMAP, tables, report and explorer), then the
  finished folder's bytes against the plan's ``disk_bytes`` (the folder never exceeds
  it, and the plan overstates it by less than a factor of two).

The baseline: the same two networks, built the same way, running ``torch.no_grad()``
forwards over the same batches (the extraction's batch size) of the same examples on
the same device, without hooks or writes, in this process.

    python benchmarks/wide_layers.py [--n 2000] [--reductions avgpool maxpool pool:2x2 project:256 pca:64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, provenance, run_engine, timestamp

REDUCTIONS = ("avgpool", "maxpool", "pool:2x2", "project:256", "pca:64")
#: Goals: extraction throughput as a share of the plain forward passes'.
GOALS = {"avgpool": 0.8, "maxpool": 0.8, "pool": 0.8, "project": 0.8, "pca": 0.4}
MODEL = '''
import torch
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self, inputs, width, outputs):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inputs, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, outputs, 1, bias=False), nn.BatchNorm2d(outputs)
        self.down = nn.Sequential(nn.Conv2d(inputs, outputs, 1, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + self.down(x))


class StandIn(nn.Module):
    """ResNet-50's shapes up to layer1 (256 x 56 x 56 on 224 x 224 images), then a linear head."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = Bottleneck(64, 64, 256)
        self.fc = nn.Linear(256, classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(self.layer1(x).mean(dim=(2, 3)))


def build():
    try:
        from torchvision.models import resnet50
    except Exception:  # torchvision absent, or built for another torch
        return StandIn()
    return resnet50(num_classes=10)


def to_input(images):
    return images
'''


def _baseline(tmp: Path, n: int, batch: int) -> float:
    """Seconds of plain no-grad forwards of both networks over the N examples, ``batch`` at a time."""
    import torch

    from repscope.engine.threads import RUN_THREADS, pinned

    from wide_model import build

    images = np.load(tmp / "x.npy", mmap_mode="r")
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(build().eval())
    with pinned(RUN_THREADS), torch.no_grad():  # the extraction's thread count
        started = time.perf_counter()
        for a in range(0, n, batch):
            x = torch.from_numpy(np.array(images[a:a + batch])).float().div_(255.0)
            for net in nets:
                net(x)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--reductions", nargs="+", default=list(REDUCTIONS))
    parser.add_argument("--out", type=Path, default=RESULTS / "wide_layers.json")
    args = parser.parse_args()

    from repscope.engine.extract import forward_rows
    from repscope.engine.model import Layer, ModelSpec
    from repscope.engine.pipeline import make_plan
    from repscope.engine.plan import folder_size, format_size
    from repscope.engine.settings import from_options
    from repscope.engine.sources import Split
    from repscope.engine.threads import RUN_THREADS

    with tempfile.TemporaryDirectory(prefix="repscope-bench-") as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        np.save(tmp / "x.npy", rng.integers(0, 256, (args.n, 3, 224, 224), dtype=np.uint8))
        np.save(tmp / "y.npy", rng.integers(0, 10, args.n))
        (tmp / "wide_model.py").write_text(MODEL)
        sys.path.insert(0, str(tmp))
        from wide_model import build

        spec = ModelSpec(factory=build, layers=(Layer("layer1"),))
        network = ("torchvision ResNet-50" if type(build()).__name__ == "ResNet"
                   else "ResNet-50 stand-in (its shapes to layer1)")
        batch = forward_rows(build().eval(), spec, Split(np.load(tmp / "x.npy", mmap_mode="r"), np.zeros(args.n)), 255.0)
        _baseline(tmp, min(args.n, 2 * batch), batch)  # warm-up: the allocator, oneDNN's kernels
        baseline = _baseline(tmp, args.n, batch)
        print(f"baseline: {args.n} examples through both networks in {baseline:.1f} s ({batch} at a time)", flush=True)
        rows = []
        for reduce in args.reductions:
            name = reduce.replace(":", "")
            (tmp / f"{name}.toml").write_text(textwrap.dedent(f"""
                datasets = [{{source = "npy", x = "x.npy", y = "y.npy", name = "images"}}]
                methods = ["umap"]
                seeds = [0]
                metrics = "default"
                [model]
                factory = "wide_model:build"
                transform = "wide_model:to_input"
                layers = [{{path = "layer1", reduce = "{reduce}"}}]
                [training]
                epochs = 0
            """))
            run = tmp / f"run-{name}"
            plan = make_plan(from_options(out=run, run_file=tmp / f"{name}.toml", n=args.n, backend="cpu"))
            seconds, peak = run_engine(["extract", str(tmp / f"{name}.toml"), "--n", str(args.n), "--out", str(run),
                                        "--backend", "cpu"])
            # the examples through both networks into the store (not the embedders' PCA that follows)
            extract_seconds = json.loads((run / "config.json").read_text())["extract"]["images"]["stream_seconds"]
            run_engine(["run", str(tmp / f"{name}.toml"), "--n", str(args.n), "--out", str(run), "--backend", "cpu"])
            size = folder_size(run)
            ratio = baseline / extract_seconds
            goal = GOALS[reduce.split(":")[0]]
            rows.append({"reduce": reduce, "stored_values": plan.layers[0].stored, "extract_seconds": extract_seconds,
                         "throughput_ratio": round(ratio, 3), "goal_ratio": goal, "meets_goal": ratio >= goal,
                         "peak_rss_mb": round(peak, 1), "process_seconds": round(seconds, 1),
                         "folder_bytes": size, "plan_bytes": plan.disk_bytes,
                         "plan_over_folder": round(plan.disk_bytes / size, 3), "within_plan": size <= plan.disk_bytes})
            print(f"{reduce:>12}: {plan.layers[0].stored} values, extraction {extract_seconds:.1f} s "
                  f"({ratio:.2f} of the baseline), peak RSS {peak:.0f} MB, folder {format_size(size)} of a planned "
                  f"{format_size(plan.disk_bytes)}", flush=True)
        whole = plan.layers[0].values * 4 * 2 * args.n

    result = {"benchmark": "wide_layers", "n": args.n, "layer": "layer1", "values_per_example": plan.layers[0].values,
              "whole_layer_bytes_both_networks": whole, "batch": batch, "baseline_seconds": round(baseline, 2),
              "network": network,
              "threads": RUN_THREADS, "rows": rows, "machine": machine(),
              "provenance": provenance(), "timestamp": timestamp()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
