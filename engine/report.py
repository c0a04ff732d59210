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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..kernels import knn_votes
from ..store import NETWORKS, Representation, RunStore, array_key, embedding_key, original_key
from .errors import DataError, MissingDataError, SettingsError
from .evaluate import METRICS_CSV
from .findings import SEPARATION, Confusion, Depths, check_findings, cells_by_run, layer_average
from .jobs import K
from .progress import progress_bar
from .runinfo import CONFIG, read_run_config, require_run, store_location, write_atomic
from .statistics import ALPHA, comparisons
from .tables import BEYOND, NOTE, PARTIAL, read_metrics_csv, study_tables

log = logging.getLogger(__name__)

REPORT = "report"
FIGURES = "figures"
#: Bumped when a figure's drawing changes, so existing figures are redrawn.
FIGURE_VERSION = 1


#: Longest slug kept whole; a longer one is cut and ends in a digest of the whole name.
SLUG_LENGTH = 60
#: The word between the two classes of an outlier figure's name.
VOTED = "voted"


def _digest(text: str) -> str:
    """Eight hex digits of the sha256 of ``text``: the same for the same text on every run."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def slug(name: str) -> str:
    """A file-name form of a representation or class name, never empty.

    Parameters
    ----------
    name : str
        Any name.

    Returns
    -------
    str
        Lower-case letters, digits and single inner hyphens: ``conv/filter03`` ->
        ``conv-filter03``, ``Top/Shirt`` -> ``top-shirt``. A name with no ASCII letter or
        digit (``<!--``) is a digest of it; one longer than ``SLUG_LENGTH`` is cut and
        ends in the digest. Different names may share a slug (``a/b``, ``a-b``):
        :func:`file_names` gives a set of names distinct ones.
    """
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not base:
        return _digest(name)
    if len(base) > SLUG_LENGTH:
        return f"{base[:SLUG_LENGTH].rstrip('-')}-{_digest(name)}"
    return base


def file_names(names: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Distinct, non-empty file names (without suffix) for a set of names, in their order.

    Parameters
    ----------
    names : sequence of str
        Class or representation names; any text, duplicates included.
    taken : iterable of str
        File names already used in the same folder (``grid``), which none of the result is.

    Returns
    -------
    list of str
        Each name's :func:`slug` where no other name (nor ``taken``) has it, else the slug
        and a digest of the name (``a/b``, ``a-b`` -> ``a-b-<8 hex>`` each); a name that
        still meets another's (the same name twice) is numbered (``-2``, ``-3``, ...).
        Letters, digits and hyphens only, so they are safe in a path and a link.
    """
    slugs = [slug(name) for name in names]
    taken = set(taken)
    counts = Counter(slugs)
    stems = [s if counts[s] == 1 and s not in taken else f"{s}-{_digest(name)}" for s, name in zip(slugs, names)]
    out = []
    for stem in stems:
        candidate, number = stem, 1
        while candidate in taken:
            number += 1
            candidate = f"{stem}-{number}"
        taken.add(candidate)
        out.append(candidate)
    return out


def outlier_name(stem_a: str, stem_b: str) -> str:
    """The file name (without suffix) of the figure of points of class a voted b.

    Parameters
    ----------
    stem_a, stem_b : str
        The two classes' names from :func:`file_names` (distinct for distinct classes).

    Returns
    -------
    str
        ``<a>-voted-<b>`` (``shirt-voted-t-shirt-top``); where a class's own name holds
        the word ``voted`` (``x-voted-y`` voted ``z`` and ``x`` voted ``y-voted-z``), the
        split would be ambiguous, so a digest of the pair is added.
    """
    name = f"{stem_a}-{VOTED}-{stem_b}"
    if name.split("-").count(VOTED) > 1:
        name = f"{name}-{_digest(json.dumps([stem_a, stem_b]))}"
    return name


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([FIGURE_VERSION, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


class FigureCache:
    """Which figures (or other files) are drawn and from what; draws the rest with one progress bar."""

    def __init__(self, folder: Path, desc: str = "report figures", unit: str = "figure") -> None:
        self.folder = folder
        self.desc, self.unit = desc, unit
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
        for rel, key, draw in progress_bar(self.todo, desc=self.desc, unit=self.unit, leave=False):
            files = draw(self.folder / rel)
            self.manifest[rel] = {"key": key, "files": [str(f.relative_to(self.folder)) for f in files]}
            self._save()
        drawn, self.todo = len(self.todo), []
        return drawn

    def _save(self) -> None:
        write_atomic(self.manifest_path, json.dumps(self.manifest, indent=0, sort_keys=True))


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
    #: Per data set: its representations' depths, class names, example shape and whether it is an image.
    depths: dict[str, Depths] = field(default_factory=dict)
    preset: str = ""

    def classes(self, dataset: str) -> tuple[str, ...]:
        return tuple(self.config["data"][dataset]["classes"])

    def example_shape(self, dataset: str) -> tuple[int, ...]:
        return tuple(self.config["data"][dataset]["example_shape"])

    @property
    def k(self) -> int:
        """The neighbours behind the run's numbers: the ``k`` of metrics.csv's rows (the
        evaluate stage scores a whole run with one), else config.json's setting."""
        values = {r["k"] for r in self.rows if r.get("k") is not None}
        if len(values) > 1:
            raise DataError(f"{self.path / METRICS_CSV} mixes k = {', '.join(map(str, sorted(values)))}; rerun "
                            f"`repscope evaluate --out {self.path}` to score the whole run with one k")
        return int(values.pop()) if values else int(self.config.get("settings", {}).get("k", K))

    def is_image(self, dataset: str) -> bool:
        return bool(self.config["data"][dataset].get("image"))

    def main(self, dataset: str) -> list[str]:
        return [r.name for r in self.depths[dataset].representations if r.in_study]

    def beyond(self, dataset: str) -> list[str]:
        return [r.name for r in self.depths[dataset].representations if not r.in_study]

    def grid(self, dataset: str) -> list[str]:
        """The panels of a network's grid figure ("" leaves a gap): the preset's arrangement,
        else every representation of the main set in order."""
        if self.preset:
            from .presets import preset_module

            return preset_module(self.preset).grid(self.main(dataset))
        return self.main(dataset)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        path = Path(path)
        hint = f"run `repscope run --out {path}` first"
        require_run(path, store=True)
        if not (path / METRICS_CSV).is_file():
            raise MissingDataError(f"{path / METRICS_CSV} does not exist; the evaluate stage writes it ({hint})")
        location = store_location(path)
        rows = read_metrics_csv(path / METRICS_CSV)
        if not rows:
            raise MissingDataError(f"{path / METRICS_CSV} has no rows; {hint}")
        jobs = []
        if (path / "jobs.csv").is_file():
            with open(path / "jobs.csv", newline="") as f:
                jobs = list(csv.DictReader(f))
        folder = cls(path, read_run_config(path), rows, RunStore(location), jobs)
        embedded = [r for r in rows if r["space"] == "embedding"]
        order = list(folder.config.get("settings", {}).get("datasets", []))
        present = {r["dataset"] for r in rows}
        folder.datasets = [d for d in order if d in present] + sorted(present - set(order))
        recorded = folder.config.get("representations", {})
        missing = [d for d in folder.datasets if d not in recorded or d not in folder.config.get("data", {})]
        if missing:
            raise MissingDataError(f"{path / CONFIG} records no representations or data for {', '.join(missing)}; "
                                   f"{hint}")
        folder.depths = {d: Depths([Representation.from_record(r) for r in recorded[d]]) for d in folder.datasets}
        folder.preset = folder.config.get("settings", {}).get("model", {}).get("preset", "")
        folder.methods = sorted({r["method"] for r in embedded})
        folder.seeds = sorted({r["seed"] for r in rows})
        return folder

    def embedding(self, dataset: str, seed: int, network: str, method: str, name: str) -> np.ndarray | None:
        """A complete embedding, or None (``original`` is stored once, under ``trained``)."""
        key = embedding_key(dataset, seed, network, method, name)
        info = self.store.info(key)
        return self.store.read(key) if info and info.get("complete") else None

    def panel_title(self, dataset: str, seed: int, network: str, method: str, name: str) -> str:
        """A representation's name, marked where it was constant (a dead filter: one point)."""
        info = self.store.info(embedding_key(dataset, seed, network, method, name))
        if not (info and info.get("constant_input")):
            return name
        return f"{name} ({'dead' if '/filter' in name else 'constant'}: one point)"

    def fingerprint(self, key: str) -> dict | None:
        info = self.store.info(key)
        return info.get("fingerprint") if info and info.get("complete") else None


# ---------------------------------------------------------------------------- figures


def _scatter_figures(run: RunFolder, cache: FigureCache, dataset: str, method: str, seed: int) -> dict:
    """Per-embedding scatters and grid figures of one (dataset, method, seed)."""
    from .figures import embedding_figure, grid_figure

    classes = run.classes(dataset)
    labels = run.store.labels(dataset).astype(np.int64)
    base = f"{dataset}/{method}/seed{seed}"
    grid = run.grid(dataset)
    out = {"grids": {}, "singles": defaultdict(list), "beyond": None}
    names = run.main(dataset) + run.beyond(dataset)
    stems = dict(zip(names, file_names(names, taken=("grid",))))

    def fp(network, name):
        return run.fingerprint(embedding_key(dataset, seed, network, method, name))

    for network in NETWORKS:
        for name in names:
            if name == "original" and network != "trained":
                continue
            if fp(network, name) is None:
                continue
            rel = f"{base}/{stems[name]}" if name == "original" else f"{base}/{network}/{stems[name]}"
            title = f"{dataset}, {method}, seed {seed}: " + (name if name == "original" else f"{network} {name}")
            cache.add(rel, _key(fp(network, name)), lambda p, n=network, r=name, t=title: embedding_figure(
                run.embedding(dataset, seed, n, method, r), labels, classes, t, p))
            out["singles"][network].append((name, rel + ".png"))

        rel = f"{base}/{network}/grid"
        cache.add(rel, _key([fp(network, n) for n in grid if n]), lambda p, net=network: grid_figure(
            [(run.panel_title(dataset, seed, net, method, n), run.embedding(dataset, seed, net, method, n)) if n
             else ("", None) for n in grid], labels, classes,
            f"{dataset}, {method}, {net} network, seed {seed}, N = {len(labels)}", p))
        out["grids"][network] = rel + ".png"
    if [name for name, _ in out["singles"]["trained"][:1]] == ["original"]:
        out["singles"]["untrained"].insert(0, out["singles"]["trained"][0])  # shared by both networks
    beyond = [(net, n) for n in run.beyond(dataset) for net in NETWORKS if fp(net, n) is not None]
    if beyond:
        rel = f"{base}/beyond-study-grid"
        cache.add(rel, _key([fp(net, n) for net, n in beyond]), lambda p: grid_figure(
            [(f"{net} {n}", run.embedding(dataset, seed, net, method, n)) for net, n in beyond], labels,
            classes, f"{dataset}, {method}, whole layers (beyond the main set), seed {seed}", p, columns=4))
        out["beyond"] = rel + ".png"
    return out


def _depth_series(run: RunFolder, dataset: str, method: str) -> dict[str, dict[str, tuple]]:
    """metric -> network -> (mean over seeds, std over seeds or None), per depth."""
    cells = cells_by_run([r for r in run.rows if r["dataset"] == dataset and r["method"] == method])
    depths = run.depths[dataset]
    series = {}
    for metric in SEPARATION:
        series[metric] = {}
        for network in NETWORKS:
            values = np.array([[layer_average(c, depths, network, layer, metric) for layer in depths.layers]
                               for c in cells.values()])
            std = values.std(axis=0, ddof=1) if len(values) > 1 else None
            series[metric][network] = (values.mean(axis=0), std)
    return series


def _depth_figures(run: RunFolder, cache: FigureCache, dataset: str, method: str) -> dict[str, str]:
    from .figures import depth_figure

    seeds = len({r["seed"] for r in run.rows if r["dataset"] == dataset and r["method"] == method})
    split = run.depths[dataset].channel_layers()
    note = (f"mean of {seeds} seeds, bars: 1 s.d." if seeds > 1 else "one seed") + (
        f"; {', '.join(split)}: mean of filters" if split else "")
    out = {}
    for metric, series in _depth_series(run, dataset, method).items():
        rel = f"{dataset}/{method}/depth/{metric}"
        key = _key({n: [m.tolist(), None if s is None else s.tolist()] for n, (m, s) in series.items()}, note)
        cache.add(rel, key, lambda p, m=metric, s=series: depth_figure(
            m, run.depths[dataset].layers, s, f"{dataset}, {method}: {m} by depth", note, p))
        out[metric] = rel + ".png"
    return out


def _cka_figures(run: RunFolder, cache: FigureCache, dataset: str) -> str | None:
    """The data set's CKA heat maps (mean over seeds), or None where the run has no ``cka.csv``."""
    from .figures import cka_figure
    from .measures import CKA_CSV
    from .tables import read_cka_csv

    if not (run.path / CKA_CSV).is_file():
        return None
    rows = [r for r in read_cka_csv(run.path / CKA_CSV) if r["dataset"] == dataset]
    if not rows:
        return None
    depths = run.depths[dataset]
    layers = depths.layers
    names = {depths.whole(layer): i for i, layer in enumerate(layers)}
    sums = defaultdict(lambda: np.zeros((len(layers), len(layers))))
    counts = defaultdict(lambda: np.zeros((len(layers), len(layers))))
    for r in rows:
        if r["representation_a"] not in names or r["representation_b"] not in names:
            continue
        pair = (r["network_a"], r["network_b"])
        i, j = names[r["representation_a"]], names[r["representation_b"]]
        sums[pair][i, j] += r["cka"]
        counts[pair][i, j] += 1
    with np.errstate(invalid="ignore"):
        mean = {pair: sums[pair] / counts[pair] for pair in sums}
    matrices = {network: mean[network, network] for network in NETWORKS if (network, network) in mean}
    across = np.diag(mean.get(("trained", "untrained"), np.full((len(layers),) * 2, np.nan)))
    seeds = len({r["seed"] for r in rows})
    note = f"linear CKA, mean of {seeds} seed{'s' if seeds > 1 else ''}; whole layers (channel-split layers: <layer>/all)"
    rel = f"{dataset}/cka"
    key = _key({f"{a}/{b}": m.tolist() for (a, b), m in mean.items()}, layers, note)
    cache.add(rel, key, lambda p: cka_figure(layers, matrices, across, f"{dataset}: similarity of layers", note, p))
    return rel + ".png"


def _measure_summary(comparisons: list[dict], dataset: str, method: str) -> dict:
    """The paired comparisons of one (dataset, method) for the page, with a count of those
    where the trained network is better at p < 0.05."""
    from .statistics import significant

    rows = [c for c in comparisons if c["dataset"] == dataset and c["method"] == method and c["space"] == "embedding"]
    held = [c for c in rows if significant(c["p"])]
    layers = list(dict.fromkeys(c["layer"] for c in rows))
    grid = {}  # measure -> {layer: comparison}
    for c in rows:
        grid.setdefault(c["measure"], {})[c["layer"]] = {**c, "significant": significant(c["p"])}
    return {"rows": rows, "layers": layers, "grid": grid, "held": len(held),
            "tested": sum(not math.isnan(c["p"]) for c in rows)}


def _images(run: RunFolder, dataset: str, rows: list[int]) -> np.ndarray:
    """The examples of ``rows`` as images on a 0-255 scale: (rows, H, W) or (rows, H, W, 3)."""
    key = original_key(dataset)
    scale = float((run.store.info(key) or {}).get("scale", 1.0))
    unique = sorted(set(rows))  # an orthogonal selection wants sorted, distinct rows
    lookup = dict(zip(unique, run.store.read(key, (unique, slice(None)), orthogonal=True)))
    images = np.stack([lookup[r] for r in rows]).reshape(len(rows), *run.example_shape(dataset))
    if images.ndim == 4:  # (C, H, W) -> (H, W, C), one channel -> grey
        images = images.transpose(0, 2, 3, 1) if images.shape[1] in (1, 3, 4) else images
        images = images[..., 0] if images.shape[-1] == 1 else images[..., :3]
    if images.dtype == np.uint8 and scale == 255.0:
        return images
    return np.rint(images.astype(np.float64) / scale * 255).clip(0, 255).astype(np.uint8)


@dataclass
class OutlierSet:
    """The trained last layer's kNN votes for one (dataset, method, seed) and its outlier figures."""

    confusion: Confusion
    figures: dict = field(default_factory=dict)  # (a, b) -> (count, rel path)
    members: dict = field(default_factory=dict)  # (a, b) -> the indices of the points of a voted b


def _outliers(run: RunFolder, cache: FigureCache, dataset: str, method: str, seed: int, k: int) -> OutlierSet | None:
    """Votes of the trained network's last layer embedding; an outlier figure per ordered
    class pair (a, b) where a point of class a is voted b (the study's vote, the point
    itself counted), where the examples are images."""
    from .figures import ImageRow

    last = run.depths[dataset].last
    points = run.embedding(dataset, seed, "trained", method, last)
    if points is None:
        return None
    classes = run.classes(dataset)
    labels = run.store.labels(dataset).astype(np.int64)
    votes = knn_votes(points, labels, k)
    loo = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(loo, (labels, votes.left_out), 1)
    result = OutlierSet(Confusion(loo, classes))
    stems = file_names(classes)
    fingerprint = run.fingerprint(embedding_key(dataset, seed, "trained", method, last))
    for a in range(len(classes)):
        for b in range(len(classes)):
            wrong = np.flatnonzero((labels == a) & (votes.with_self == b)) if a != b else []
            if len(wrong):
                result.members[a, b] = wrong.tolist()
                result.figures[a, b] = (len(wrong), None)
    if not run.is_image(dataset):
        return result
    shape = _images(run, dataset, [0]).shape[1:]
    correct = votes.with_self == labels
    canvas: list = []

    def nearest(target: int, cls: int) -> int:
        pool = np.flatnonzero(correct & (labels == cls))
        if pool.size == 0:
            return -1
        return int(pool[np.argmin(((points[pool] - points[target]) ** 2).sum(axis=1))])

    for (a, b), wrong in result.members.items():
        outlier = int(wrong[0])
        rel = f"{dataset}/{method}/seed{seed}/outliers/{outlier_name(stems[a], stems[b])}"
        result.figures[a, b] = (len(wrong), rel + ".png")

        def draw(path, a=a, b=b, outlier=outlier, count=len(wrong)):
            picks = [nearest(outlier, a), nearest(outlier, b), outlier]
            shown = [p for p in picks if p >= 0]
            images = dict(zip(shown, _images(run, dataset, shown)))
            blank = np.zeros(shape)
            captions = [f"{classes[a]}, voted {classes[a]}\n(#{picks[0]})" if picks[0] >= 0 else "none voted right",
                        f"{classes[b]}, voted {classes[b]}\n(#{picks[1]})" if picks[1] >= 0 else "none voted right",
                        f"outlier: {classes[a]}, voted {classes[b]}\n(#{outlier})"]
            if not canvas:
                canvas.append(ImageRow(3, shape))
            return canvas[0].draw([images.get(p, blank) for p in picks], captions,
                                  f"{dataset}, {method}, trained {last}, seed {seed}: {count} point(s) of "
                                  f"{classes[a]} voted {classes[b]} (k = {k})", path)

        cache.add(rel, _key(fingerprint, a, b, k), draw)
    return result


#: Filter figures: at most this many classes, and this many maps of a layer.
FILTER_CLASSES = 20
FILTER_MAPS = 32


def _map_layers(run: RunFolder, dataset: str) -> dict[str, int]:
    """The channel-split layers with (C, H, W) feature maps, for image data, and how many
    of their maps the filter figures show (the channels analysed, at most FILTER_MAPS)."""
    if not run.is_image(dataset):
        return {}
    depths = run.depths[dataset]
    shapes = run.config["extract"][dataset]["layers"]
    return {layer: min(len(depths.members(layer)), FILTER_MAPS) for layer in depths.channel_layers()
            if len(shapes.get(layer, ())) == 3}


def _filter_figures(run: RunFolder, cache: FigureCache, dataset: str, seed: int) -> list[tuple[str, str]]:
    """For the first example of each class: the input and the trained network's feature maps."""
    from .figures import filter_figure

    maps = _map_layers(run, dataset)
    if not maps:
        return []
    keys = {layer: array_key(dataset, seed, "trained", layer) for layer in maps}
    maps_shown = list(maps.values())
    prints = {layer: run.fingerprint(key) for layer, key in keys.items()}
    if any(p is None for p in prints.values()):
        return []
    classes = run.classes(dataset)
    labels = run.store.labels(dataset)
    out = []
    stems = file_names(classes)
    for c, name in enumerate(classes[:FILTER_CLASSES]):
        hits = np.flatnonzero(labels == c)
        if hits.size == 0:
            continue
        row = int(hits[0])
        rel = f"{dataset}/filters/seed{seed}/{stems[c]}"

        def draw(path, row=row, name=name):
            maps = {layer: run.store.read(key, (row, slice(None, count))) for (layer, key), count
                    in zip(keys.items(), maps_shown)}
            return filter_figure(_images(run, dataset, [row])[0], maps,
                                 f"{dataset}, trained network, seed {seed}: example #{row} ({name})", path)

        cache.add(rel, _key(prints, row, maps_shown), draw)
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
                fp = run.fingerprint(embedding_key(dataset, seed, "trained", method, run.depths[dataset].last))
                if fp and method not in seen:
                    params = {k: v for k, v in fp.get("parameters", {}).items()}
                    seen[method] = {"method": method, "embedder": fp.get("embedder"), "library": fp.get("library"),
                                    "version": fp.get("version"), "device": fp.get("device"),
                                    "parameters": json.dumps(params, sort_keys=True)}
    return list(seen.values())


def _fmt_share(finding, dataset, method) -> str:
    held, total = finding.share(dataset, method)
    return "n/a" if total == 0 else f"{held} of {total} seed{'s' if total > 1 else ''}"


def _sign_p(finding, dataset, method) -> float:
    """The one-sided exact sign test of the seeds in which a finding holds (NaN: none checked)."""
    from .statistics import sign_test

    return sign_test(*finding.share(dataset, method))


def _verdict(finding, dataset, method) -> str:
    held, total = finding.share(dataset, method)
    if total == 0:
        return "na"
    return "holds" if held == total else "fails" if held == 0 else "mixed"


def _layer_notes(run: RunFolder, dataset: str) -> dict:
    """Sentences describing the data set's layers for the page: depths, maps, whole layers."""
    depths = run.depths[dataset]
    shapes = run.config["extract"][dataset]["layers"]
    averaged = [f"{i} = {'mean of the ' + layer + ' filters' if layer in depths.channel_layers() else layer}"
                for i, layer in enumerate(depths.layers)]
    maps = [f"{layer} ({count}{' of ' + str(shapes[layer][0]) if count < shapes[layer][0] else ''} maps of "
            f"{shapes[layer][1]}\u00d7{shapes[layer][2]})" for layer, count in _map_layers(run, dataset).items()]
    beyond = [f"{r.name} ({r.dims} dimensions)" for r in depths.representations if not r.in_study]
    return {"depths": ", ".join(averaged), "maps": maps, "beyond": beyond}


def build_report(run_dir: str | os.PathLike, k: int | None = None) -> Path:
    """Write ``<run_dir>/report/index.html`` and its figures; return the page's path.

    Parameters
    ----------
    run_dir : str or os.PathLike
        A run folder the evaluate stage has finished.
    k : int, optional
        Neighbours of the kNN votes: the run's own (that of its metrics.csv, which is fixed
        when the run is evaluated), which is also the default. The page shows the run's
        numbers, so another value is refused rather than described beside them.

    Returns
    -------
    Path
        The page.

    Raises
    ------
    SettingsError
        Where ``k`` is given and is not the run's k.
    MissingDataError
        Where ``run_dir`` is not a finished run folder (no config.json, metrics.csv or store).
    DataError
        Where its config.json cannot be read, or its metrics.csv mixes several k.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise SettingsError(f"--k must be a whole number >= 1; got {k!r}")
    started = time.perf_counter()
    run = RunFolder.open(run_dir)
    if k is not None and k != run.k:  # the page would say k beside numbers computed with another
        again = (f"`repscope run --out {run.path} --k {k} --reconfigure`" if run.config.get("settings", {}).get("preset")
                 else f"repscope.analyze(..., out={str(run.path)!r}, k={k}) (the run was made in Python)")
        raise SettingsError(f"--k {k}: the numbers of {run.path} were computed with k = {run.k}, which is fixed when "
                            f"a run is evaluated; leave --k out, or score the run again with k = {k}: {again}")
    k = run.k
    sizes = {dataset: len(run.store.labels(dataset)) for dataset in run.datasets}
    report = run.path / REPORT
    cache = FigureCache(report / FIGURES)
    log.info("report %s: datasets %s, methods %s, seeds %s", report, ",".join(run.datasets),
             ",".join(run.methods), ",".join(map(str, run.seeds)))
    sections, confusions, missing = [], {}, []
    ids = dict(zip(run.datasets, file_names(run.datasets)))
    for dataset in run.datasets:
        n = sizes[dataset]
        section = {"dataset": dataset, "id": ids[dataset], "n": n, "classes": run.classes(dataset), "methods": [],
                   "cka": _cka_figures(run, cache, dataset),
                   "last": run.depths[dataset].last, "layers": _layer_notes(run, dataset),
                   "filters": {seed: _filter_figures(run, cache, dataset, seed) for seed in run.seeds}}
        for method in run.methods:
            part = {"method": method, "id": f"{ids[dataset]}-{method}", "depth": _depth_figures(run, cache, dataset, method),
                    "seeds": {}, "outliers": {}}
            for seed in run.seeds:
                part["seeds"][seed] = _scatter_figures(run, cache, dataset, method, seed)
                outliers = _outliers(run, cache, dataset, method, seed, k)
                if outliers is None:
                    missing.append(f"{dataset}/seed{seed}/trained/{method}/{run.depths[dataset].last}")
                    continue
                confusions[dataset, method, seed] = outliers.confusion
                part["outliers"][seed] = outliers
            section["methods"].append(part)
        sections.append(section)
    drawn = cache.draw()
    explorer = _explorer(run)
    from .explore import explorer_link  # the explorer builds on this module
    findings = check_findings(run.rows, run.depths, confusions, run.preset)
    tables = study_tables(run.rows, run.depths)
    compared = comparisons(run.rows, run.depths)
    page = {
        "title": f"repscope report: {run.path.name}",
        "run": str(run.path),
        "made": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "config": run.config,
        "settings": run.config.get("settings", {}),
        "datasets": run.datasets, "methods": run.methods, "seeds": run.seeds,
        "sections": sections,
        "findings": findings,
        "verdict": _verdict, "share": _fmt_share, "sign_p": _sign_p, "alpha": ALPHA,
        "measures": {(d, m): _measure_summary(compared, d, m) for d in run.datasets for m in run.methods},
        "tables": {key: _table_html(t) for key, t in tables.items()},
        "table_names": {d: run.depths[d].layers for d in run.datasets}, "beyond_table": BEYOND,
        "study": run.preset == "study",
        "note": NOTE,
        "jobs": run.jobs, "job_summary": _job_summary(run.jobs),
        "embedders": _embedder_settings(run),
        "missing": missing, "k": k,
        "slug": slug, "explorer": explorer, "explore_link": explorer_link,
    }
    path = report / "index.html"
    text = _render(page)
    if path.is_file():  # a page that differs only in when it was made stays as it was
        made = re.search(r"report made ([^<]*?)\.\n", path.read_text(errors="replace"))
        if made and _render({**page, "made": made.group(1)}) == path.read_text(errors="replace"):
            text = path.read_text()
    write_atomic(path, text)
    log.info("report: %d figures drawn (%d up to date) in %.1f s", drawn, len(cache.manifest) - drawn,
             time.perf_counter() - started)
    return path


def _explorer(run: RunFolder) -> bool:
    """Build the explorer beside the report; False (with a warning) where it cannot be built."""
    from .explore import build_explorer  # the explorer builds on this module

    try:
        build_explorer(run)
    except MissingDataError as exc:
        log.warning("no explorer: %s", exc)
        return False
    return True


def _render(page: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, digits=2: "" if v is None or v == "" else (
        "nan" if isinstance(v, float) and math.isnan(v) else f"{float(v):.{digits}f}")
    return env.get_template("report.html").render(**page)
