"""``metrics.csv`` and the tables (CSV, Markdown, LaTeX) written from it.

Per dataset, method and analysed layer one table (``original`` first): a row per
channel (and, for a layer split by channel, a row with their mean) or one row for a
layer analysed whole, a column per metric, each cell ``trained / untrained`` to 4
decimals; with several seeds the cells are means and a companion ``-std`` table holds
the standard deviations. The whole-layer views of channel-split layers (``<layer>/all``,
beyond the main set) get their own table (``beyond-study``), never mixed into the rest.
For the study's preset these are exactly the study's tables.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..kernels import METRICS

COLUMNS = ("dataset", "seed", "network", "method", "space", "representation", "in_study", "n", "k", *METRICS)
#: The table of the whole-layer views beyond the main set.
BEYOND = "beyond-study"
MEAN_ROW = "mean of filters"
#: Marks a filter mean that left out filters where the metric is undefined (dead filters).
PARTIAL = "*"
NOTE = ("* mean over the filters where the metric is defined: a dead filter maps every example to one "
        "point, where distance ratios are undefined (NaN)")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def layer_tables(depths) -> dict[str, list[str]]:
    """Table name -> its rows in order, for one data set's :class:`~repscope.engine.findings.Depths`."""
    tables = {layer: depths.members(layer) for layer in depths.layers}
    beyond = [r.name for r in depths.representations if not r.in_study]
    return {**tables, **({BEYOND: beyond} if beyond else {})}


def write_metrics_csv(rows: list[dict], path: Path, order: dict[str, list[str]]) -> Path:
    """All rows, sorted (each data set's representations in ``order[dataset]``), floats at
    full precision (a rerun with the same results gives the same bytes)."""
    position = {(dataset, name): i for dataset, names in order.items() for i, name in enumerate(names)}
    rows = sorted(rows, key=lambda r: (r["dataset"], r["seed"], r["space"], r["method"], r["network"],
                                       position[r["dataset"], r["representation"]]))
    lines = [",".join(COLUMNS)]
    for row in rows:
        cells = []
        for col in COLUMNS:
            value = row[col]
            cells.append(f"{value:.17g}" if isinstance(value, float) else str(value))
        lines.append(",".join(cells))
    _atomic_write(path, "\n".join(lines) + "\n")
    return path


def read_metrics_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["seed"], row["n"], row["k"] = int(row["seed"]), int(row["n"]), int(row["k"])
        row["in_study"] = row["in_study"] == "True"
        for m in METRICS:
            row[m] = float(row[m])
    return rows


def filter_mean(values: list[float | None]) -> tuple[float, bool]:
    """Mean of one metric over a layer's filters for one seed: (mean, whether some were left out).

    A missing value (a job that failed) makes the mean NaN. A NaN value (a dead filter:
    every example in one point, so no distance ratio is defined) is left out of the mean,
    and the second element says so.
    """
    if any(v is None for v in values):
        return math.nan, False
    defined = [v for v in values if not math.isnan(v)]
    return (float(np.mean(defined)) if defined else math.nan), len(defined) < len(values)


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _tex(text: str) -> str:
    return text.replace("_", r"\_")


def _render(title: str, header: list[str], body: list[list[str]]) -> dict[str, str]:
    csv_text = "\n".join(",".join(f'"{c}"' if "," in c else c for c in row) for row in [header, *body]) + "\n"
    md = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in body]
    partial = any(PARTIAL in cell for row in body for cell in row[1:])
    if partial:
        md += ["", NOTE]
    tex = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex(title)}}}",
           r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
           " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    tex += [" & ".join(_tex(c) for c in row) + r" \\" for row in body]
    tex += [r"\bottomrule", r"\end{tabular}"]
    if partial:
        tex += [r"\par\footnotesize " + _tex(NOTE.replace("*", r"$^*$", 1))]
    tex += [r"\end{table}"]
    return {"csv": csv_text, "md": "\n".join(md) + "\n", "tex": "\n".join(tex) + "\n"}


def study_tables(rows: list[dict], depths: dict) -> dict[tuple, dict]:
    """{(dataset, space, method, table, statistic): {"title", "header", "body"}} from metrics rows.

    A cell missing for some seed (a failed job) makes that seed's filter mean NaN rather
    than a mean over fewer filters.
    """
    values = defaultdict(dict)  # (dataset, space, method, rep, network, metric) -> {seed: value}
    seeds = defaultdict(set)
    for row in rows:
        for m in METRICS:
            values[row["dataset"], row["space"], row["method"], row["representation"], row["network"], m][row["seed"]] = row[m]
        seeds[row["dataset"], row["space"], row["method"]].add(row["seed"])
    tables = {}
    for (dataset, space, method), seed_set in sorted(seeds.items()):
        statistics = ("mean", "std") if len(seed_set) > 1 else ("mean",)
        for table, names in layer_tables(depths[dataset]).items():
            present = [n for n in names if (dataset, space, method, n, "trained", METRICS[0]) in values]
            if not present:
                continue
            row_names = present + ([MEAN_ROW] if len(present) > 1 and table != BEYOND else [])

            def series(name, network, m) -> tuple[list[float], bool]:
                """Per-seed values of a cell, and whether a filter mean left out undefined filters."""
                if name != MEAN_ROW:
                    return list(values[dataset, space, method, name, network, m].values()), False
                per_seed, partial = [], False
                for seed in sorted(seed_set):
                    mean, left_out = filter_mean([values[dataset, space, method, f, network, m].get(seed)
                                                  for f in present])
                    per_seed.append(mean)
                    partial |= left_out
                return per_seed, partial

            for stat in statistics:
                body = []
                for name in row_names:
                    cells = [name]
                    for m in METRICS:
                        pair = []
                        for network in ("trained", "untrained"):
                            values_, partial = series(name, network, m)
                            pair.append(_fmt(_stats(values_)[0 if stat == "mean" else 1]) + (PARTIAL if partial else ""))
                        cells.append(f"{pair[0]} / {pair[1]}")
                    body.append(cells)
                what = method if space == "embedding" else "representation space"
                label = "" if stat == "mean" else ", standard deviation"
                n_seeds = f", {len(seed_set)} seeds" if len(seed_set) > 1 else ""
                title = f"{dataset}, {what}, {table} (trained / untrained{label}{n_seeds})"
                tables[dataset, space, method, table, stat] = {
                    "title": title, "header": ["representation", *METRICS], "body": body}
    return tables


def write_tables(rows: list[dict], out: Path, depths: dict) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX under ``out``; return the paths."""
    paths = []
    for (dataset, space, method, table, stat), t in study_tables(rows, depths).items():
        folder = out / dataset / (method if space == "embedding" else "representation")
        stem = table if stat == "mean" else f"{table}-std"
        for ext, text in _render(t["title"], t["header"], t["body"]).items():
            path = folder / f"{stem}.{ext}"
            _atomic_write(path, text)
            paths.append(path)
    return paths

