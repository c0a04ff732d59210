"""The explorer in headless Chromium: time to the first view and to a linked-selection update.

Builds a run folder of N synthetic examples (10 classes in Gaussian clusters, 28 x 28
images) whose first view is 8 panels (the input and three layers, for two networks), as
the study's run has, writes its explorer with the engine's own code, and opens the page
from ``file://`` several times in a fresh headless Chromium:

* ``first_view_ms``: from the start of navigation to the end of the first frame with every
  panel's points drawn (the page's ``repscope.ready``; the page reads a pixel back, so the
  time includes the rendering itself);
* ``selection``: a box in one panel selecting 5-40 % of the points, through the page's own
  selection code: the hit test in that panel, then the update (selection buffer, draw
  order, every panel redrawn and a pixel read back); ``total`` is what a user waits for;
* ``hover_vote_ms``: the 10-NN vote the tooltip shows, computed in the page over all N.

Both ways the page draws points are measured: ``cpu`` (its script rasterises them, its
choice where WebGL runs in software, as in headless Chromium here) and ``gl`` (WebGL's
own points, its choice on a GPU).

Goals: first view under 1 s and update under 100 ms at N = 60 000
in 8 panels. Chromium renders WebGL here in software (SwiftShader) on the CPU; the record
names the renderer. Run: ``python benchmarks/explorer.py [--n 60000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _browser  # noqa: E402
from benchmarks._common import RESULTS, provenance  # noqa: E402

LAYERS = ("layer1", "layer2", "layer3")


def synthetic_run(folder: Path, n: int, seed: int = 0, classes: list[str] | None = None, image: bool = True,
                  dead: bool = False) -> Path:
    """A run folder the report and explorer read: labels, 28 x 28 images, and the 2-D
    embeddings of ``original`` and three whole layers for both networks (UMAP, seed 42),
    with one row of metrics each. ``classes`` names the classes (default: the ten digits);
    ``image=False`` records the examples as not images; ``dead`` makes the trained
    network's last layer a dead one (every point in one place, as for a constant input)."""
    from repscope.engine.runinfo import update_run_config
    from repscope.store import RunStore, build_representations, embedding_key, labels_key, original_key

    classes = classes or [str(c) for c in range(10)]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(classes), n).astype(np.uint8 if len(classes) < 256 else np.uint16)
    store = RunStore(folder / "store.zarr")
    reps = build_representations(784, [(layer, "whole", (64,), None) for layer in LAYERS])
    images = rng.integers(0, 256, (n, 784), dtype=np.uint8)

    def write(key, value, **extra):
        store.write_whole(key, value, {"synthetic": seed})
        if extra:
            store.annotate(key, **extra)

    write(labels_key("mnist"), labels)
    write(original_key("mnist"), images, scale=255.0)
    for network in ("trained", "untrained"):
        for depth, rep in enumerate(reps):
            if rep.name == "original" and network == "untrained":
                continue
            centres = rng.normal(size=(len(classes), 2)) * (10 if network == "trained" else 2) * (depth + 1)
            points = (centres[labels] + rng.normal(size=(n, 2))).astype(np.float32)
            constant = dead and network == "trained" and rep.name == LAYERS[-1]
            write(embedding_key("mnist", 42, network, "umap", rep.name), np.zeros_like(points) if constant else points,
                  **({"constant_input": True} if constant else {}))
    rows = [f"mnist,42,{network},umap,embedding,{rep.name},True,{n},10" + ",0" * 7
            for network in ("trained", "untrained") for rep in reps]
    header = "dataset,seed,network,method,space,representation,in_study,n,k,avg,ds,dd,cs,cd,acc_knn,acc_knn_loo"
    (folder / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
    update_run_config(folder, {
        "settings": {"datasets": ["mnist"], "methods": ["umap"], "seeds": [42], "n": n},
        "data": {"mnist": {"classes": classes, "example_shape": [28, 28], "image": image}},
        "representations": {"mnist": [r.record() for r in reps]},
    })
    return folder


def measure(page: Path, repeat: int, raster: str) -> dict:
    loads, selections, votes, renderer = [], [], [], None
    for attempt in range(repeat):
        with _browser.chrome(1600, 1000) as driver:
            loads.append(_browser.open_explorer(driver, page, f"raster={raster}"))
            if _browser.errors(driver):
                raise SystemExit(f"console errors: {_browser.errors(driver)}")
            panels = driver.execute_script("return window.repscope.panels()")
            if len(panels) != 8 or any(p["drawn"] == 0 for p in panels):
                raise SystemExit(f"expected 8 drawn panels, got {panels}")
            renderer = driver.execute_script(
                "const gl = document.getElementById('gl').getContext('webgl');"
                "const ext = gl.getExtension('WEBGL_debug_renderer_info');"
                "return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);")
            driver.execute_script("window.repscope.measuring = true")
            left, top, width, height = panels[1]["rect"]
            for k, (a, b) in enumerate([(0.1, 0.5), (0.3, 0.6), (0.2, 0.9), (0.45, 0.7), (0.05, 0.95)] * 2):
                driver.execute_script("window.repscope.selectBox(1, ...arguments)", left + a * width, top + a * height,
                                      left + b * width, top + b * height)
                selections.append(driver.execute_script("return window.repscope.timings.lastSelect"))
            votes.append(driver.execute_script(
                "const t = performance.now(); window.repscope.vote(3, 0); return performance.now() - t;"))
    update = [s["update"] for s in selections]
    total = [s["total"] for s in selections]
    by_size = sorted({(s["points"], round(s["total"], 1)) for s in selections[:5]})
    return {
        "first_view_ms": {"median": statistics.median(loads), "max": max(loads), "runs": loads},
        "selection": {"update_ms_median": statistics.median(update), "update_ms_max": max(update),
                      "total_ms_median": statistics.median(total), "total_ms_max": max(total),
                      "hit_test_ms_median": statistics.median(s["hitTest"] for s in selections),
                      "total_ms_by_points_selected": by_size},
        "hover_vote_ms_median": statistics.median(votes),
        "renderer": renderer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=5, help="fresh browser loads per way of drawing "
                        "(10 selections each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "explorer.json")
    args = parser.parse_args()
    from repscope.engine.explore import build_explorer

    with tempfile.TemporaryDirectory(prefix="repscope-explorer-") as tmp:
        run = synthetic_run(Path(tmp) / "run", args.n)
        started = time.perf_counter()
        page = build_explorer(run)
        build_s = time.perf_counter() - started
        files = [p for p in (page.parent / "explore").rglob("*") if p.is_file()]
        first_view_bytes = sum(p.stat().st_size for p in files if p.suffix == ".js")
        result = {raster: measure(page, args.repeat, raster) for raster in ("cpu", "gl")}
    chromium = subprocess.run([_browser.binaries()[0], "--version"], capture_output=True, text=True).stdout.strip()
    record = {"benchmark": "explorer", **provenance(), "chromium": chromium,
              "n": args.n, "panels": 8, "viewport": [1600, 1000], "build_s": round(build_s, 2),
              "script_bytes": first_view_bytes, "goals": {"first_view_ms": 1000, "update_ms": 100},
              **{raster: {**r, "met": {"first_view": r["first_view_ms"]["median"] < 1000,
                                       "update": r["selection"]["total_ms_median"] < 100}}
                 for raster, r in result.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for raster, r in result.items():
        print(f"N = {args.n}, 8 panels, points drawn by {raster} ({r['renderer']}): first view "
              f"{r['first_view_ms']['median']:.0f} ms, linked selection {r['selection']['total_ms_median']:.1f} ms "
              f"(update {r['selection']['update_ms_median']:.1f} ms), 10-NN vote {r['hover_vote_ms_median']:.1f} ms")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
