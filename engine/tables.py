"""``metrics.csv`` and the tables (CSV, Markdown, LaTeX) written from it.

Per dataset, method and analysed layer one table (``original`` first): a row per
channel (and, for a layer split by channel, a row with their mean) or one row for a
layer analysed whole, a column per metric, each cell ``trained / untrained`` to 4
decimals; with several seeds the cells are means, a companion ``-std`` table holds
the standard deviations and a ``-ci95`` table the 95 % intervals of the means
(``engine.statistics``). The whole-layer views of channel-split layers (``<layer>/all``,
beyond the main set) get their own table (``beyond-study``), never mixed into the rest.
For the study's preset these are exactly the study's tables.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..kernels import METRICS
from .measures import COLUMNS as MEASURES
from .runinfo import write_atomic

#: After the study's columns, the measures beyond them (``engine.measures``); a cell is empty
#: where its family was not scored.
COLUMNS = ("dataset", "seed", "network", "method", "space", "representation", "in_study", "n", "k", *METRICS,
           *MEASURES)
CKA_COLUMNS = ("dataset", "seed", "network_a", "representation_a", "network_b", "representation_b", "cka")
#: The table of the whole-layer views beyond the main set.
BEYOND = "beyond-study"
MEAN_ROW = "mean of filters"
#: Marks a filter mean that left out filters where the metric is undefined (dead filters).
PARTIAL = "*"
NOTE = ("* mean over the filters where the metric is defined: a dead filter maps every example to one "
        "point, where distance ratios are undefined (NaN)")


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
    return write_rows_csv(rows, COLUMNS, path)


def read_metrics_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["seed"], row["n"], row["k"] = int(row["seed"]), int(row["n"]), int(row["k"])
        row["in_study"] = row["in_study"] == "True"
        for m in METRICS:
            row[m] = float(row[m])
        for m in MEASURES:  # NaN where not scored (or a file written before the column existed)
            row[m] = float(row[m]) if row.get(m) not in (None, "") else math.nan
    return rows


def write_rows_csv(rows: list[dict], columns: tuple[str, ...], path: Path) -> Path:
    """Rows as CSV in ``columns``' order, floats at full precision, a cell a row lacks empty."""
    lines = [",".join(columns)]
    for row in rows:
        cells = (row.get(c, "") for c in columns)
        lines.append(",".join(f"{v:.17g}" if isinstance(v, float) else str(v) for v in cells))
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def write_cka_csv(rows: list[dict], path: Path) -> Path:
    """``cka.csv``: linear CKA between every pair of whole layers of both networks, per
    data set and seed (full precision, sorted)."""
    order = sorted(rows, key=lambda r: tuple(str(r[c]) if c != "seed" else f"{r[c]:012d}" for c in CKA_COLUMNS[:-1]))
    return write_rows_csv(order, CKA_COLUMNS, path)


def read_rows_csv(path: Path, numbers: dict[str, type]) -> list[dict]:
    """Rows of a CSV written by :func:`write_rows_csv`; the columns in ``numbers`` converted
    (``{"seed": int, "cka": float}``), the rest text (a layer may be called ``0``)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for column, kind in numbers.items():
            row[column] = kind(row[column])
    return rows


def read_cka_csv(path: Path) -> list[dict]:
    """The rows of ``cka.csv``."""
    return read_rows_csv(path, {"seed": int, "cka": float})


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


def _cell(values: list[float], stat: str) -> str:
    """One network's part of a table cell: the mean, the standard deviation or the 95 %
    interval of the mean over seeds (``engine.statistics``)."""
    if stat != "ci95":
        return _fmt(_stats(values)[0 if stat == "mean" else 1])
    from .statistics import mean_interval

    if any(math.isnan(v) for v in values):
        return "nan"
    interval = mean_interval(values)
    return f"[{_fmt(interval.low)}, {_fmt(interval.high)}]"


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
        statistics = ("mean", "std", "ci95") if len(seed_set) > 1 else ("mean",)
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
                            pair.append(_cell(values_, stat) + (PARTIAL if partial else ""))
                        cells.append(f"{pair[0]} / {pair[1]}")
                    body.append(cells)
                what = method if space == "embedding" else "representation space"
                label = {"mean": "", "std": ", standard deviation", "ci95": ", 95 % interval of the mean"}[stat]
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
        stem = table if stat == "mean" else f"{table}-{stat}"
        for ext, text in _render(t["title"], t["header"], t["body"]).items():
            path = folder / f"{stem}.{ext}"
            write_atomic(path, text)
            paths.append(path)
    return paths

