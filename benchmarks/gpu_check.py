"""What a GPU owner runs first: the GPU paths, end to end, in about a quarter of an hour, as one JSON.

Steps (each with its own time limit; a failed step is recorded and the next one runs; the
limits add up to about 13 minutes, most of it TorchDR's exact t-SNE where cuML is missing):

1. ``gpu-tests``: the tests marked ``gpu`` (CuPy kernels, CUDA extraction, cuML PCA, the Dask
   CUDA cluster).
2. ``kernels``: the pair-statistics benchmark at N = 60 000 (CUDA kernel against the CPU ones).
3. ``extract``: the full preset's network trained and MNIST's 60 000 examples extracted on CUDA
   (``layer3`` and the input).
4. ``parity``: ``benchmarks/parity.py`` on that run's MNIST (``original``, ``layer3``, N = 5 000):
   the GPU embedders installed here (cuML's, TorchDR's) against openTSNE and umap-learn, 3 seeds.
   A GPU embedder whose library is missing is left out and named in the JSON (``left_out``).
5. ``full-jobs``: the four jobs at N = 60 000 (``layer3`` of both networks, t-SNE and UMAP on
   the GPU), then ``evaluate``.

Writes ``benchmarks/results/gpu_check.json``: the device, library versions, and per step
its command, exit code, seconds and output tail, with the JSON each benchmark wrote.
The data sets must be on disk (``--data-root`` or ``$ENGINE_DATA_DIR``; ``repscope data
fetch`` on a machine with a network, then copy the folder).

    python benchmarks/gpu_check.py [--data-root DIR] [--work DIR] [--only STEP,...]
    python benchmarks/gpu_check.py --dry-run      # list the steps and their commands

Exit codes: 0 every step passed; 1 a step failed (see the JSON); 3 no CUDA device here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, provenance

NO_GPU = 3


#: The GPU embedders the parity step compares with the CPU references, where their library imports.
GPU_EMBEDDERS = ("cuml-tsne@cuda", "torchdr-tsne@cuda", "cuml-umap@cuda", "torchdr-umap@cuda")


def steps(work: Path, python: str = sys.executable, embedders: tuple[str, ...] = GPU_EMBEDDERS) -> list[dict]:
    """The steps in order: name, command, time limit in seconds, the JSON it writes (if any)."""
    run = work / "run"
    engine = [python, "-m", "repscope", "-q"]
    # one set of run options for every engine step: a step with other options would be refused
    # as a run made with other settings
    gpu = ["--backend", "gpu", "--preset", "full", "--datasets", "mnist", "--representations", "layer3",
           "--out", str(run)]
    return [
        # test_beyond's small run compiles umap-learn first (about 70 s on a 16-core cloud CPU)
        {"name": "gpu-tests", "limit": 150, "command": [python, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"]},
        # the study's loop alone takes 45 to 80 s at N = 60 000
        {"name": "kernels", "limit": 130, "results": work / "kernels_pairs-gpu.json",
         "command": [python, "benchmarks/kernels_pairs.py", "--sizes", "60000", "--repeats", "3",
                     "--out", str(work / "kernels_pairs-gpu.json")]},
        {"name": "extract", "limit": 90, "command": [*engine, "extract", *gpu]},
        {"name": "parity", "limit": 160, "results": work / "parity-gpu.json",
         "command": [python, "benchmarks/parity.py", "--run", str(run), "--sizes", "5000", "--seeds", "42,43,44",
                     "--inputs", "mnist/original/N=5000,mnist/layer3/N=5000",
                     "--threads", str(min(8, os.cpu_count() or 1)),
                     "--embedders", ",".join(("opentsne", "umap-learn", *embedders)),
                     "--out", str(work / "parity-gpu.json")]},
        # four jobs (both networks, both methods); TorchDR's exact t-SNE takes minutes per job
        # at this N, cuML's seconds
        {"name": "full-jobs", "limit": 240, "command": [*engine, "embed", *gpu, "--workers", "1"]},
        {"name": "evaluate", "limit": 40, "results": run / "metrics.csv",
         "command": [*engine, "evaluate", *gpu]},
    ]


def installed_embedders() -> tuple[tuple[str, ...], dict[str, str]]:
    """The GPU embedders usable here, and why each other one is left out."""
    from repscope.engine.parity import available_embedders

    usable = set(available_embedders("tsne") + available_embedders("umap"))
    left_out = {spec: f"{spec.partition('@')[0]}: its library is not importable here or sees no CUDA device"
                for spec in GPU_EMBEDDERS if spec not in usable}
    return tuple(spec for spec in GPU_EMBEDDERS if spec in usable), left_out


def device() -> str | None:
    """The first CUDA device's name, or None where PyTorch sees none."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def run_step(step: dict, env: dict) -> dict:
    started = time.perf_counter()
    try:
        proc = subprocess.run(step["command"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=step["limit"])
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, output = 124, f"{exc.stdout or ''}{exc.stderr or ''}\n(stopped after {step['limit']} s)"
        output = output if isinstance(output, str) else output.decode(errors="replace")
    record = {"name": step["name"], "command": " ".join(map(str, step["command"])), "rc": rc,
              "seconds": round(time.perf_counter() - started, 1), "tail": output.replace("\r", "\n")[-3000:]}
    path = step.get("results")
    if path is not None and Path(path).is_file():
        text = Path(path).read_text()
        record["results"] = json.loads(text) if str(path).endswith(".json") else text
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list the steps and their commands; run nothing")
    parser.add_argument("--data-root", type=Path, default=None, help="the data sets (default: $ENGINE_DATA_DIR)")
    parser.add_argument("--work", type=Path, default=None, help="a folder for the run (default: a temporary one)")
    parser.add_argument("--only", default=None, help="comma-separated step names to run")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_check.json")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.gettempdir()) / "repscope-gpu-check-XXXX"
    chosen = steps(work)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {s["name"] for s in chosen})
        if unknown:
            print(f"gpu_check: --only: unknown step(s) {', '.join(unknown)}; "
                  f"choose from {', '.join(s['name'] for s in chosen)}", file=sys.stderr)
            return 2
        chosen = [s for s in chosen if s["name"] in names]
    if args.dry_run:
        for i, step in enumerate(chosen, 1):
            print(f"{i}. {step['name']} (up to {step['limit']} s): {' '.join(map(str, step['command']))}")
        print(f"results: {args.out}; total limit {sum(s['limit'] for s in chosen)} s")
        return 0
    name = device()
    if name is None:
        import torch

        print(f"gpu_check: no CUDA device here (PyTorch {torch.__version__} sees none); run it on a machine "
              "with a GPU, or add --dry-run to list its steps", file=sys.stderr)
        return NO_GPU
    if args.work is None:
        work = Path(tempfile.mkdtemp(prefix="repscope-gpu-check-"))
    embedders, left_out = installed_embedders()
    chosen = [s for s in steps(work, embedders=embedders) if s["name"] in {c["name"] for c in chosen}]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.data_root is not None:
        env["ENGINE_DATA_DIR"] = str(args.data_root.resolve())
    from repscope.engine.runinfo import versions

    report = {"benchmark": "gpu_check", "device": name, "versions": versions(), **provenance(), "work": str(work), "left_out": left_out, "steps": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for step in chosen:
        print(f"{step['name']} ...", end=" ", flush=True)
        record = run_step(step, env)
        report["steps"].append(record)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")  # a kill keeps the steps done
        print(f"rc {record['rc']} in {record['seconds']} s", flush=True)
    failed = [s["name"] for s in report["steps"] if s["rc"] != 0]
    print(f"{len(chosen) - len(failed)} of {len(chosen)} steps passed"
          + (f" (failed: {', '.join(failed)})" if failed else "") + f"; written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
