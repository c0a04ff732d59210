"""Embedder parity: every available embedder against the reference on the same inputs, as JSON.

The inputs are scikit-learn's digits (all 1 797) and, from a run folder of the study
(``--run``, the paper preset's for instance), MNIST's pixels (``original``) and the
trained network's ``layer3`` at each of ``--sizes`` (the run's first N examples). Every
embedder usable here (``name@device``: TorchDR's on the CPU and, where there is one, a
GPU; cuML's on a GPU) embeds each input under each of ``--seeds``; the study's metrics
score every embedding; each metric's reference mean and seed spread and each other
embedder's difference and band (:mod:`repscope.engine.parity`) go to the JSON, and a
Markdown table (the README's) to ``--table``.

    python benchmarks/parity.py --run runs/main [--sizes 1000 5000] [--seeds 42,43,44,45,46]
    python benchmarks/parity.py --embedders opentsne,torchdr-tsne@cpu --sizes 1000 --seeds 42,43
    python benchmarks/parity.py --merge tsne.json umap.json --out parity-cpu.json --table parity.md

The JSON is written after every (input, embedder) and read back by the next call with
the same ``--out``: what is there already is not run again (a stop loses only the run in
flight, and slow embedders can be run later with fewer seeds). ``--merge`` joins the runs
of several such files (from processes run side by side) and compares them, running
nothing. Each process's BLAS and PyTorch use ``--threads`` threads (default 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, provenance


def _threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)  # numpy's BLAS is loaded already


def inputs(run: Path | None, sizes: list[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (x float32, labels): digits, and the run's MNIST original and layer3 per size."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    found = {"digits": (x.astype(np.float32), y.astype(np.int64))}
    if run is not None:
        from repscope import Run

        r = Run(run)
        labels = r.labels("mnist")
        for rep in ("original", "layer3"):
            data = np.asarray(r.representation("mnist", rep), dtype=np.float32)
            for n in sizes:
                if n > len(labels):
                    raise SystemExit(f"--sizes {n}: the run {run} has only {len(labels)} MNIST examples")
                found[f"mnist/{rep}/N={n}"] = (data[:n], labels[:n])
    return found


def table(results: dict) -> str:
    """The Markdown table of the README: per input and embedder, each banded metric's difference."""
    from repscope.engine.parity import BANDED

    head = ["input", "embedder", "seeds", "s/run"] + [f"{m} (ref ± sd)" for m in ("ds", "cs")] + \
           [f"Δ{m}" for m in BANDED] + ["within"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in results["comparisons"]:
        c = entry["metrics"]
        seeds = str(entry["seeds"])
        if entry.get("reference_seeds", entry["seeds"]) != entry["seeds"]:
            seeds += f" (ref {entry['reference_seeds']})"
        cells = [entry["input"], entry["embedder"], seeds, f"{entry['seconds_mean']:.1f}"]
        cells += [f"{c[m]['reference_mean']:.3f} ± {c[m]['reference_sd']:.3f}" for m in ("ds", "cs")]
        for m in BANDED:
            mark = "" if c[m]["within"] else " ✗"
            cells.append(f"{c[m]['difference']:+.3f} (±{c[m]['band']:.3f}){mark}")
        cells.append(f"{sum(c[m]['within'] for m in BANDED)}/{len(BANDED)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons(runs: dict) -> list[dict]:
    """Each non-reference run against its method's reference run on the same input."""
    from repscope.engine.parity import REFERENCE, compare

    found = []
    for key, entry in runs.items():
        name, spec = key.split("|")
        method = _method(spec)
        reference = REFERENCE[method]
        if spec.partition("@")[0] == reference or f"{name}|{reference}" not in runs:
            continue
        rows, ref_rows = entry["rows"], runs[f"{name}|{reference}"]["rows"]
        found.append({"input": name, "n": entry["n"], "method": method, "reference": reference, "embedder": spec,
                      "seeds": len(rows), "reference_seeds": len(ref_rows),
                      "seconds_mean": float(np.mean([r["seconds"] for r in rows])),
                      "metrics": compare(ref_rows, rows)})
    return found


def _method(spec: str) -> str:
    from repscope.engine.embedders import EMBEDDERS

    return EMBEDDERS[spec.partition("@")[0]].method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a run folder of the study (MNIST, seed 42)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 5_000])
    parser.add_argument("--seeds", default="42,43,44,45,46")
    parser.add_argument("--embedders", default=None,
                        help="comma-separated name[@device] (default: every one usable here)")
    parser.add_argument("--inputs", default=None, help="comma-separated input names (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/parity-<cpu|gpu>.json")
    parser.add_argument("--table", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="join the runs of these JSON files into --out and compare them; run nothing")
    args = parser.parse_args()
    if args.merge:
        merged = {"benchmark": "parity", "merged_from": [str(p) for p in args.merge], "runs": {},
                  **provenance()}
        for path in args.merge:
            merged["runs"].update(json.loads(path.read_text())["runs"])
        merged["comparisons"] = comparisons(merged["runs"])
        finish(merged, args.out or RESULTS / "parity-cpu.json", args.table)
        return
    _threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    import torch

    torch.set_num_threads(args.threads)
    from repscope.engine.parity import REFERENCE, available_embedders, make, score_seeds

    seeds = [int(s) for s in args.seeds.split(",")]
    if args.embedders:
        chosen = args.embedders.split(",")
    else:
        chosen = available_embedders("tsne") + available_embedders("umap")
    methods = {_method(spec) for spec in chosen}
    for method in methods:  # the reference always runs
        if not any(spec.partition("@")[0] == REFERENCE[method] for spec in chosen):
            chosen.insert(0, REFERENCE[method])
    data = inputs(args.run, args.sizes)
    if args.inputs:
        data = {k: v for k, v in data.items() if k in args.inputs.split(",")}
    gpu = any(spec.endswith("@cuda") for spec in chosen)
    out = args.out or RESULTS / f"parity-{'gpu' if gpu else 'cpu'}.json"
    results = {"benchmark": "parity", "runs": {}}
    if out.is_file():
        results = json.loads(out.read_text())
        logging.info("%s: %d runs done before are kept", out, len(results["runs"]))
    results.update(seeds=seeds, embedders=chosen, inputs=sorted(set(results.get("inputs", [])) | set(data)),
                   **provenance())
    if gpu:
        results["machine"]["device"] = torch.cuda.get_device_name(0)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, (x, labels) in data.items():
        for spec in chosen:
            key = f"{name}|{spec}"
            if key in results["runs"]:
                continue
            embedder = make(spec, threads=args.threads)
            results["runs"][key] = {"n": len(x), "describe": embedder.describe(len(x), seeds[0]),
                                    "rows": score_seeds(embedder, x, labels, seeds)}
            results["comparisons"] = comparisons(results["runs"])
            out.write_text(json.dumps(results, indent=2) + "\n")  # after every run: a stop keeps what ran
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["comparisons"] = comparisons(results["runs"])
    finish(results, out, args.table)


def finish(results: dict, out: Path, table_path: Path | None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    if table_path:
        table_path.write_text(text + "\n")
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
