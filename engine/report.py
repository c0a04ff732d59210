"""The report: a finished run folder turned into figures and one HTML page.

``build_report(run_dir)`` reads only the run folder (``config.json``, ``metrics.csv``,
``jobs.csv``, ``store.zarr``) and writes ``report/index.html`` with its figures beside
it under ``report/figures/``. The page needs no network: no scripts, images by
relative path. Each figure is recorded in ``report/figures/manifest.json`` with a key
made from what it shows (the embedding's fingerprint, the metric values); a rerun
redraws only figures whose inputs changed or whose files are missing, so a report
interrupted halfway finishes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from kernels import knn_votes
from store import REPRESENTATIONS, RunStore, array_key, embedding_key, is_url

from .config import dataset_spec
from .errors import MissingDataError
from .evaluate import METRICS_CSV
from .findings import LAYERS, SEPARATION, Confusion, check_findings, cells_by_run, layer_average
from .jobs import K, NETWORKS
from .runinfo import store_location
from .runinfo import CONFIG
from .tables import NOTE, PARTIAL, read_metrics_csv, study_tables

log = logging.getLogger(__name__)

REPORT = "report"
FIGURES = "figures"
#: Bumped when a figure's drawing changes, so existing figures are redrawn.
FIGURE_VERSION = 1
STUDY = [r.name for r in REPRESENTATIONS if r.in_study]
BEYOND = [r.name for r in REPRESENTATIONS if not r.in_study]
#: The grid figure's panels, 8 per row: original, the layer1 filters and layer3; then layer2.
GRID = [*STUDY[:5], "layer3", "", "", *STUDY[5:21]]


def slug(name: str) -> str:
    """A file-name form of a representation or class name: ``layer2/filter3`` ->
    ``layer2-filter03``, ``T-shirt/top`` -> ``t-shirt-top``."""
    name = re.sub(r"filter(\d)$", lambda m: f"filter{int(m.group(1)):02d}", name)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([FIGURE_VERSION, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


class FigureCache:
    """Which figures are drawn and from what; draws the rest with one progress bar."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest_path = folder / "manifest.json"
        try:
            self.manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            self.manifest = {}
        self.todo: list[tuple[str, str, Callable[[Path], list[Path]]]] = []

    def add(self, rel: str, key: str, draw: Callable[[Path], list[Path]]) -> None:
        """Ask for figure ``rel`` (path under the folder, without suffix), made by ``draw(path)``."""
        entry = self.manifest.get(rel)
        if entry and entry["key"] == key and all((self.folder / f).is_file() for f in entry["files"]):
            return
        self.todo.append((rel, key, draw))

    def draw(self) -> int:
        for rel, key, draw in tqdm(self.todo, desc="report figures", unit="figure", leave=False):
            files = draw(self.folder / rel)
            self.manifest[rel] = {"key": key, "files": [str(f.relative_to(self.folder)) for f in files]}
            self._save()
        drawn, self.todo = len(self.todo), []
        return drawn

    def _save(self) -> None:
        tmp = self.manifest_path.with_name("manifest.json.partial")
        tmp.write_text(json.dumps(self.manifest, indent=0, sort_keys=True))
        os.replace(tmp, self.manifest_path)


@dataclass
class RunFolder:
    """What the report reads, loaded once."""

    path: Path
    config: dict
    rows: list[dict]
    store: RunStore
    jobs: list[dict]
    datasets: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        path = Path(path)
        hint = f"run `python -m engine run --out {path}` first"
        if not (path / CONFIG).is_file():
            raise MissingDataError(f"{path} is not a run folder (no {CONFIG}); {hint}")
        if not (path / METRICS_CSV).is_file():
            raise MissingDataError(f"{path / METRICS_CSV} does not exist; the evaluate stage writes it ({hint})")
        location = store_location(path)
        if not is_url(location) and not Path(location).is_dir():
            raise MissingDataError(f"{location} does not exist; {hint}")
        rows = read_metrics_csv(path / METRICS_CSV)
        if not rows:
            raise MissingDataError(f"{path / METRICS_CSV} has no rows; {hint}")
        jobs = []
        if (path / "jobs.csv").is_file():
            with open(path / "jobs.csv", newline="") as f:
                jobs = list(csv.DictReader(f))
        folder = cls(path, json.loads((path / CONFIG).read_text()), rows, RunStore(location), jobs)
        embedded = [r for r in rows if r["space"] == "embedding"]
        folder.datasets = sorted({r["dataset"] for r in rows}, key=["mnist", "fashion-mnist"].index)
        folder.methods = sorted({r["method"] for r in embedded})
        folder.seeds = sorted({r["seed"] for r in rows})
        return folder

    def embedding(self, dataset: str, seed: int, network: str, method: str, name: str) -> np.ndarray | None:
        """A complete embedding, or None (``original`` is stored once, under ``trained``)."""
        key = embedding_key(dataset, seed, "trained" if name == "original" else network, method, name)
        info = self.store.info(key)
        return self.store.array(key)[:] if info and info.get("complete") else None

    def panel_title(self, dataset: str, seed: int, network: str, method: str, name: str) -> str:
        """A representation's name, marked where it was constant (a dead filter: one point)."""
        info = self.store.info(embedding_key(dataset, seed, "trained" if name == "original" else network, method, name))
        return f"{name} (dead: one point)" if info and info.get("constant_input") else name

    def fingerprint(self, key: str) -> dict | None:
        info = self.store.info(key)
        return info.get("fingerprint") if info and info.get("complete") else None


# ---------------------------------------------------------------------------- figures


def _scatter_figures(run: RunFolder, cache: FigureCache, dataset: str, method: str, seed: int) -> dict:
    """Per-embedding scatters and grid figures of one (dataset, method, seed)."""
    from .figures import embedding_figure, grid_figure

    spec = dataset_spec(dataset)
    labels = run.store.labels(dataset).astype(np.int64)
    base = f"{dataset}/{method}/seed{seed}"
    out = {"grids": {}, "singles": defaultdict(list), "beyond": None}

    def fp(network, name):
        return run.fingerprint(embedding_key(dataset, seed, "trained" if name == "original" else network, method, name))

    for network in NETWORKS:
        for name in STUDY + BEYOND:
            if name == "original" and network != "trained":
                continue
            if fp(network, name) is None:
                continue
            rel = f"{base}/{slug(name)}" if name == "original" else f"{base}/{network}/{slug(name)}"
            title = f"{dataset}, {method}, seed {seed}: " + (name if name == "original" else f"{network} {name}")
            cache.add(rel, _key(fp(network, name)), lambda p, n=network, r=name, t=title: embedding_figure(
                run.embedding(dataset, seed, n, method, r), labels, spec.classes, t, p))
            out["singles"][network].append((name, rel + ".png"))

        rel = f"{base}/{network}/grid"
        cache.add(rel, _key([fp(network, n) for n in GRID if n]), lambda p, net=network: grid_figure(
            [(run.panel_title(dataset, seed, net, method, n), run.embedding(dataset, seed, net, method, n)) if n
             else ("", None) for n in GRID], labels, spec.classes,
            f"{dataset}, {method}, {net} network, seed {seed}, N = {len(labels)}", p))
        out["grids"][network] = rel + ".png"
    if out["singles"]["trained"][:1] == [("original", f"{base}/original.png")]:
        out["singles"]["untrained"].insert(0, out["singles"]["trained"][0])  # shared by both networks
    beyond = [(net, n) for n in BEYOND for net in NETWORKS if fp(net, n) is not None]
    if beyond:
        rel = f"{base}/beyond-study-grid"
        cache.add(rel, _key([fp(net, n) for net, n in beyond]), lambda p: grid_figure(
            [(f"{net} {n}", run.embedding(dataset, seed, net, method, n)) for net, n in beyond], labels,
            spec.classes, f"{dataset}, {method}, whole layers (beyond the study), seed {seed}", p, columns=4))
        out["beyond"] = rel + ".png"
    return out


def _depth_series(run: RunFolder, dataset: str, method: str) -> dict[str, dict[str, tuple]]:
    """metric -> network -> (mean over seeds, std over seeds or None), per depth."""
    cells = cells_by_run([r for r in run.rows if r["dataset"] == dataset and r["method"] == method])
    series = {}
    for metric in SEPARATION:
        series[metric] = {}
        for network in NETWORKS:
            values = np.array([[layer_average(c, network, layer, metric) for layer in LAYERS] for c in cells.values()])
            std = values.std(axis=0, ddof=1) if len(values) > 1 else None
            series[metric][network] = (values.mean(axis=0), std)
    return series


def _depth_figures(run: RunFolder, cache: FigureCache, dataset: str, method: str) -> dict[str, str]:
    from .figures import depth_figure

    seeds = len({r["seed"] for r in run.rows if r["dataset"] == dataset and r["method"] == method})
    note = (f"mean of {seeds} seeds, bars: 1 s.d." if seeds > 1 else "one seed") + "; layers 1-2: mean of filters"
    out = {}
    for metric, series in _depth_series(run, dataset, method).items():
        rel = f"{dataset}/{method}/depth/{metric}"
        key = _key({n: [m.tolist(), None if s is None else s.tolist()] for n, (m, s) in series.items()}, note)
        cache.add(rel, key, lambda p, m=metric, s=series: depth_figure(
            m, list(LAYERS), s, f"{dataset}, {method}: {m} by depth", note, p))
        out[metric] = rel + ".png"
    return out


def _images(run: RunFolder, dataset: str, rows: list[int]) -> np.ndarray:
    original = run.store.array(f"{dataset}/original")
    unique = sorted(set(rows))  # an orthogonal selection wants sorted, distinct rows
    lookup = dict(zip(unique, np.asarray(original.get_orthogonal_selection((unique, slice(None))))))
    images = np.stack([lookup[r] for r in rows]).reshape(len(rows), 28, 28)
    return images if images.dtype == np.uint8 else np.rint(images * 255).clip(0, 255)


@dataclass
class OutlierSet:
    """Trained layer3's kNN votes for one (dataset, method, seed) and its outlier figures."""

    confusion: Confusion
    figures: dict = field(default_factory=dict)  # (a, b) -> (count, rel path)


def _outliers(run: RunFolder, cache: FigureCache, dataset: str, method: str, seed: int, k: int) -> OutlierSet | None:
    """Votes of the trained layer3 embedding; an outlier figure per ordered class pair
    (a, b) where a point of class a is voted b (the study's vote, the point itself counted)."""
    from .figures import ImageRow

    points = run.embedding(dataset, seed, "trained", method, "layer3")
    if points is None:
        return None
    classes = dataset_spec(dataset).classes
    labels = run.store.labels(dataset).astype(np.int64)
    votes = knn_votes(points, labels, k)
    loo = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(loo, (labels, votes.left_out), 1)
    result = OutlierSet(Confusion(loo, classes))
    fingerprint = run.fingerprint(embedding_key(dataset, seed, "trained", method, "layer3"))
    correct = votes.with_self == labels
    canvas: list = []

    def nearest(target: int, cls: int) -> int:
        pool = np.flatnonzero(correct & (labels == cls))
        if pool.size == 0:
            return -1
        return int(pool[np.argmin(((points[pool] - points[target]) ** 2).sum(axis=1))])

    for a in range(len(classes)):
        for b in range(len(classes)):
            wrong = np.flatnonzero((labels == a) & (votes.with_self == b)) if a != b else []
            if len(wrong) == 0:
                continue
            outlier = int(wrong[0])
            rel = f"{dataset}/{method}/seed{seed}/outliers/{slug(classes[a])}-voted-{slug(classes[b])}"
            result.figures[a, b] = (len(wrong), rel + ".png")

            def draw(path, a=a, b=b, outlier=outlier, count=len(wrong)):
                picks = [nearest(outlier, a), nearest(outlier, b), outlier]
                shown = [p for p in picks if p >= 0]
                images = dict(zip(shown, _images(run, dataset, shown)))
                blank = np.zeros((28, 28))
                captions = [f"{classes[a]}, voted {classes[a]}\n(#{picks[0]})" if picks[0] >= 0 else "none voted right",
                            f"{classes[b]}, voted {classes[b]}\n(#{picks[1]})" if picks[1] >= 0 else "none voted right",
                            f"outlier: {classes[a]}, voted {classes[b]}\n(#{outlier})"]
                if not canvas:
                    canvas.append(ImageRow(3))
                return canvas[0].draw([images.get(p, blank) for p in picks], captions,
                                      f"{dataset}, {method}, trained layer3, seed {seed}: {count} point(s) of "
                                      f"{classes[a]} voted {classes[b]} (k = {k})", path)

            cache.add(rel, _key(fingerprint, a, b, k), draw)
    return result


def _filter_figures(run: RunFolder, cache: FigureCache, dataset: str, seed: int) -> list[tuple[str, str]]:
    """For the first example of each class: the input and the trained network's feature maps."""
    from .figures import filter_figure

    keys = {layer: array_key(dataset, seed, "trained", layer) for layer in ("layer1", "layer2")}
    prints = {layer: run.fingerprint(key) for layer, key in keys.items()}
    if any(p is None for p in prints.values()):
        return []
    classes = dataset_spec(dataset).classes
    labels = run.store.labels(dataset)
    out = []
    for c, name in enumerate(classes):
        hits = np.flatnonzero(labels == c)
        if hits.size == 0:
            continue
        row = int(hits[0])
        rel = f"{dataset}/filters/seed{seed}/{slug(name)}"

        def draw(path, row=row, name=name):
            maps = {layer: np.asarray(run.store.array(key)[row]) for layer, key in keys.items()}
            return filter_figure(_images(run, dataset, [row])[0], maps,
                                 f"{dataset}, trained network, seed {seed}: example #{row} ({name})", path)

        cache.add(rel, _key(prints, row), draw)
        out.append((name, rel + ".png"))
    return out


# ---------------------------------------------------------------------------- page


def _table_html(table: dict) -> dict:
    return {"title": table["title"], "header": table["header"], "body": table["body"],
            "partial": any(PARTIAL in cell for row in table["body"] for cell in row[1:])}


def _job_summary(jobs: list[dict]) -> list[dict]:
    by = defaultdict(list)
    for job in jobs:
        if job.get("seconds"):
            method = job["job"].split("/")[3]
            by[method, job["embedder"]].append(float(job["seconds"]))
    return [{"method": m, "embedder": e, "jobs": len(v), "total": sum(v), "median": float(np.median(v)),
             "max": max(v)} for (m, e), v in sorted(by.items())]


def _embedder_settings(run: RunFolder) -> list[dict]:
    seen = {}
    for dataset in run.datasets:
        for seed in run.seeds:
            for method in run.methods:
                fp = run.fingerprint(embedding_key(dataset, seed, "trained", method, "layer3"))
                if fp and method not in seen:
                    params = {k: v for k, v in fp.get("parameters", {}).items()}
                    seen[method] = {"method": method, "embedder": fp.get("embedder"), "library": fp.get("library"),
                                    "version": fp.get("version"), "device": fp.get("device"),
                                    "parameters": json.dumps(params, sort_keys=True)}
    return list(seen.values())


def _fmt_share(finding, dataset, method) -> str:
    held, total = finding.share(dataset, method)
    return "n/a" if total == 0 else f"{held} of {total} seed{'s' if total > 1 else ''}"


def _verdict(finding, dataset, method) -> str:
    held, total = finding.share(dataset, method)
    if total == 0:
        return "na"
    return "holds" if held == total else "fails" if held == 0 else "mixed"


def build_report(run_dir: str | os.PathLike, k: int = K) -> Path:
    """Write ``<run_dir>/report/index.html`` and its figures; return the page's path."""
    started = time.perf_counter()
    run = RunFolder.open(run_dir)
    report = run.path / REPORT
    cache = FigureCache(report / FIGURES)
    log.info("report %s: datasets %s, methods %s, seeds %s", report, ",".join(run.datasets),
             ",".join(run.methods), ",".join(map(str, run.seeds)))
    sections, confusions, missing = [], {}, []
    for dataset in run.datasets:
        spec = dataset_spec(dataset)
        n = len(run.store.labels(dataset))
        section = {"dataset": dataset, "id": slug(dataset), "n": n, "classes": spec.classes, "methods": [],
                   "filters": {seed: _filter_figures(run, cache, dataset, seed) for seed in run.seeds}}
        for method in run.methods:
            part = {"method": method, "id": f"{slug(dataset)}-{method}", "depth": _depth_figures(run, cache, dataset, method),
                    "seeds": {}, "outliers": {}}
            for seed in run.seeds:
                part["seeds"][seed] = _scatter_figures(run, cache, dataset, method, seed)
                outliers = _outliers(run, cache, dataset, method, seed, k)
                if outliers is None:
                    missing.append(f"{dataset}/seed{seed}/trained/{method}/layer3")
                    continue
                confusions[dataset, method, seed] = outliers.confusion
                part["outliers"][seed] = outliers
            section["methods"].append(part)
        sections.append(section)
    drawn = cache.draw()
    findings = check_findings(run.rows, confusions)
    tables = study_tables(run.rows)
    page = {
        "title": f"repscope report: {run.path.name}",
        "run": str(run.path),
        "made": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "config": run.config,
        "settings": run.config.get("settings", {}),
        "datasets": run.datasets, "methods": run.methods, "seeds": run.seeds,
        "sections": sections,
        "findings": findings,
        "verdict": _verdict, "share": _fmt_share,
        "tables": {key: _table_html(t) for key, t in tables.items()},
        "study_layers": ("original", "layer1", "layer2", "layer3"),
        "note": NOTE,
        "jobs": run.jobs, "job_summary": _job_summary(run.jobs),
        "embedders": _embedder_settings(run),
        "missing": missing, "k": k,
        "slug": slug, "classes_of": lambda d: dataset_spec(d).classes,
    }
    path = report / "index.html"
    tmp = path.with_name("index.html.partial")
    tmp.write_text(_render(page))
    os.replace(tmp, path)
    log.info("report: %d figures drawn (%d up to date) in %.1f s", drawn, len(cache.manifest) - drawn,
             time.perf_counter() - started)
    return path


def _render(page: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("engine", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, digits=2: "" if v is None or v == "" else (
        "nan" if isinstance(v, float) and math.isnan(v) else f"{float(v):.{digits}f}")
    return env.get_template("report.html").render(**page)
