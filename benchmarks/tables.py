"""The performance tables of the docs, made from the benchmarks' JSON records, and a check that they agree.

Each table sits in a Markdown file between two markers::

    <!-- table NAME: made by benchmarks/tables.py from benchmarks/results/FILE; do not edit -->
    ...
    <!-- end table NAME -->

and ends with a line naming the commit, date and machine its record was measured on.
Running this script rewrites every table from its record; ``--check`` writes nothing,
names each table that differs from what its record gives, and exits 1 (CI runs it
through ``tests/test_benchmarks.py``).

    python benchmarks/tables.py            # rewrite the tables
    python benchmarks/tables.py --check    # exit 1 where a table and its record disagree
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The files that hold tables.
DOCUMENTS = (ROOT / "README.md",)

_BLOCK = re.compile(r"(<!-- table (?P<name>[\w-]+):[^\n]*-->\n)(?P<body>.*?)(<!-- end table (?P=name) -->)", re.S)


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def seconds(value: float) -> str:
    """A duration as people read it: 2.1 ms, 0.31 s, 36 s, 2.9 min."""
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 0.1:
        return f"{value * 1e3:.2g} ms" if value < 0.01 else f"{value * 1e3:.0f} ms"
    if value < 10:
        return f"{value:.3g} s" if value < 1 else f"{value:.1f} s"
    if value < 600:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"


def rate(value: float) -> str:
    """A rate in short scientific notation: 9.3e8."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def provenance(record: dict, script: str, source: str, extra: str = "") -> str:
    """The line under a table: what made it, on which commit, date and machine."""
    commit = record.get("commit")
    when = (record.get("timestamp") or record.get("when") or "")[:10] or "date not recorded"
    machine = record.get("machine") or {}
    cpu = machine.get("cpu")
    where = ", ".join(x for x in (machine.get("gpu"), cpu, f"{machine['cpus']} CPUs" if "cpus" in machine else None) if x)
    made = f"commit {commit[:7]}" + (" with local changes" if record.get("dirty") else "") if commit else \
        "commit not recorded"
    return f"*`{script}`{extra}: {made}, {when}, {where or 'machine not recorded'} (`benchmarks/results/{source}`).*"


# ------------------------------------------------------------------ the tables


def kernels_cpu() -> str:
    record = _load("kernels_pairs-cpu.json")
    rows = [r for r in record["rows"] if r["operation"] == "pair_sums" and r["d"] == 2]
    sizes = sorted({r["n"] for r in rows})
    against = record.get("against", [])
    head = ["N", "study's per-point loop", "numba kernel", "× the loop", "share of the √ bound",
            *[f"numba at {rev}" for rev in against], "numpy fallback"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---:"] * len(head)) + " |"]
    for n in sizes:
        by = {r["method"]: r for r in rows if r["n"] == n}
        today = by["numba"]
        cells = [f"{n:,}".replace(",", " "),
                 f"{seconds(by['study-loop']['seconds'])} ({rate(by['study-loop']['pairs_per_second'])} pairs/s)",
                 f"{seconds(today['seconds'])} ({rate(today['pairs_per_second'])} pairs/s)",
                 f"{today['speedup_vs_study_loop']:.0f}×", f"{today['share_of_sqrt']:.0%}"]
        for rev in against:
            old = by[f"numba@{rev}"]
            bits = " (same bits)" if old.get("same_bits") else ""
            cells.append(f"{seconds(old['seconds'])}: {old['current_vs_this']:.2f}× today's{bits}")
        cells.append(seconds(by["blocked-numpy"]["seconds"]))
        lines.append("| " + " | ".join(cells) + " |")
    extra = f", medians of {record.get('repeats', '?')} repeats taken in turn, numba {record['versions']['numba']}"
    return "\n".join(lines) + "\n\n" + provenance(record, "benchmarks/kernels_pairs.py", "kernels_pairs-cpu.json", extra)


OTHER_KERNELS = {("pair_sums", 8): "pair sums, d = {d}, N = {n}", ("class_sums", 2): "class distance sums, 2-D, N = {n}",
                 ("class_sums", 32): "class distance sums, d = {d}, N = {n}",
                 ("ranks", 20_000): "neighbour ranks, {n} rows of {d} distances"}


def kernels_other_cpu() -> str:
    record = _load("kernels_pairs-cpu.json")
    against = record.get("against", [])
    head = ["kernel", "today", *[f"at {rev}" for rev in against]]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * (len(head) - 1)) + " |"]
    for (operation, d), label in OTHER_KERNELS.items():
        by = {r["method"]: r for r in record["rows"] if r["operation"] == operation and r["d"] == d}
        if "numba" not in by:
            continue
        n = by["numba"]["n"]
        cells = [label.format(n=f"{n:,}".replace(",", " "), d=f"{d:,}".replace(",", " ")),
                 seconds(by["numba"]["seconds"])]
        for rev in against:
            old = by[f"numba@{rev}"]
            bits = ", same bits" if old.get("same_bits") else ""
            cells.append(f"{seconds(old['seconds'])} ({old['current_vs_this']:.2f}×{bits})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + provenance(record, "benchmarks/kernels_pairs.py", "kernels_pairs-cpu.json")


MEASURES = {"neighbourhood": "trustworthiness, continuity, recall, exact",
            "neighbourhood-sample": "the same from 2 000 query points",
            "silhouette-2d": "silhouette, 2-D embedding", "silhouette-50d": "silhouette, 50-value representation",
            "cka": "linear CKA, 50 against 256 values", "probe": "linear probe, 50 values, 10 000 held out"}


def measures_cpu() -> str:
    record = _load("measures-cpu.json")
    sizes = sorted({r["n"] for r in record["rows"]})
    largest = sizes[-1]
    head = ["measure", *[f"N = {n:,}".replace(",", " ") for n in sizes], "growth exponent",
            f"memory at {largest:,}".replace(",", " ")]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * (len(head) - 1)) + " |"]
    for measure, label in MEASURES.items():
        by = {r["n"]: r for r in record["rows"] if r["measure"] == measure}
        cells = [label, *[seconds(by[n]["seconds"]) for n in sizes], f"{record['growth_exponent'][measure]:.2f}",
                 f"{by[largest]['work_mb']:.0f} MB"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + provenance(record, "benchmarks/measures.py", "measures-cpu.json")


def gpu_h200() -> str:
    follow = _load("gpu_followup.json")
    summary = follow["summary"]
    kernels = {(r["method"], r["n"], r["d"]): r for r in follow["kernels"]}
    parity = _load("parity-gpu.json")
    runs = parity["runs"]
    cuda60, cuda20 = kernels["cuda", 60_000, 2], kernels["cuda", 20_000, 2]
    numba60, numba20 = kernels["numba", 60_000, 2], kernels["numba", 20_000, 2]
    loop = summary["study_loop_seconds_60000"]

    def mean_seconds(key: str, skip_first: bool = False) -> float:
        times = [r["seconds"] for r in runs[key]["rows"]]
        times = times[1:] if skip_first and len(times) > 1 else times
        return sum(times) / len(times)

    original = "mnist/original/N=5000"
    rows = [
        ("tests marked `gpu` (CuPy kernels, CUDA extraction)", f"{summary['tests_passed']} passed",
         "cuML PCA and the Dask CUDA cluster skipped (not installed)"),
        ("pair sums, N = 60 000, 2-D, CUDA kernel", f"{seconds(cuda60['seconds'])} ({rate(cuda60['pairs_per_second'])} pairs/s)",
         f"numba on {follow['machine']['cpus']} cores {seconds(numba60['seconds'])}; the study's loop {seconds(loop)} "
         f"({loop / cuda60['seconds']:,.0f}×)".replace(",", " ")),
        ("the same, N = 20 000", seconds(cuda20["seconds"]), f"numba {seconds(numba20['seconds'])}"),
        ("CUDA kernel against one square root per pair", f"{cuda60['sqrt_bound_seconds'] / cuda60['seconds']:.0%} of that "
         f"bound ({seconds(cuda60['sqrt_bound_seconds'])})", ""),
        ("pair sums, N = 60 000, d = 784, CuPy blocked GEMM", seconds(kernels["blocked-gemm-cupy", 60_000, 784]["seconds"]), ""),
        ("MNIST extraction, 60 000 examples, both networks", seconds(summary["extraction_seconds_60000"]),
         "training and extraction on CUDA: " + " to ".join(
             seconds(v) for v in sorted(summary["training_and_extraction_seconds"].values()))),
        ("t-SNE, MNIST pixels, N = 5 000 (3 seeds)", f"TorchDR {seconds(mean_seconds(original + '|torchdr-tsne@cuda', True))} per run",
         f"openTSNE {seconds(mean_seconds(original + '|opentsne'))} on 8 threads"),
        ("UMAP, the same", f"TorchDR {seconds(mean_seconds(original + '|torchdr-umap@cuda'))} per run",
         f"umap-learn {seconds(mean_seconds(original + '|umap-learn', True))} (its first run compiles numba: "
         f"{seconds(runs[original + '|umap-learn']['rows'][0]['seconds'])})"),
        ("t-SNE, `layer3`, N = 60 000", "TorchDR: not done after "
         f"{seconds(summary['tsne_60000_torchdr']['stopped_after_seconds'])}",
         "exact repulsion over 3.6e9 pairs per step; cuML's is the route at this N"),
    ]
    lines = ["| what | H200 | beside it |", "| --- | ---: | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    record = {"commit": None, "timestamp": follow["timestamp"], "machine": {"gpu": follow["machine"]["gpu"],
                                                                           "cpus": follow["machine"]["cpus"]}}
    return "\n".join(lines) + "\n\n" + provenance(record, "benchmarks/gpu_check.py", "gpu_followup.json",
                                                  ", then its failed steps by hand")


#: name -> what makes the table.
TABLES: dict[str, Callable[[], str]] = {
    "kernels-cpu": kernels_cpu,
    "kernels-other-cpu": kernels_other_cpu,
    "measures-cpu": measures_cpu,
    "gpu-h200": gpu_h200,
}


def render(text: str) -> tuple[str, list[str]]:
    """``text`` with every table made again, and the names of the tables that changed."""
    changed = []

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise SystemExit(f"tables: unknown table {name!r} (known: {', '.join(TABLES)})")
        body = TABLES[name]() + "\n"
        if body != match.group("body"):
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return _BLOCK.sub(replace, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 where a table disagrees")
    args = parser.parse_args(argv)
    stale = []
    for document in DOCUMENTS:
        text = document.read_text()
        new, changed = render(text)
        stale += [f"{document.relative_to(ROOT)}: {name}" for name in changed]
        if changed and not args.check:
            document.write_text(new)
    if args.check and stale:
        print("tables: these differ from their records; run python benchmarks/tables.py: " + "; ".join(stale),
              file=sys.stderr)
        return 1
    print(("rewritten: " if stale else "up to date: ") + ("; ".join(stale) or ", ".join(TABLES)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
