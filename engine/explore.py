"""The explorer: every embedding of a run as linked, interactive scatter plots in one offline page.

``build_explorer(run_dir)`` writes ``report/explore.html`` beside the report. The page
opens from the file system (no server, no network) and draws each panel with WebGL from
data it loads lazily: every embedding is one small script under ``report/explore/data/``
(``repscope.put(id, meta, "<base64>")``), because a page opened from ``file://`` may add
``<script>`` elements but may not ``fetch`` files. The first view loads the labels and the
panels it shows; any other embedding loads when a panel asks for it.

Formats
-------
* Coordinates: 16-bit unsigned integers, x and y interleaved, over the embedding's
  bounding square (``meta.lo``, ``meta.span``: ``x = lo[0] + span * u / 65535``); the
  quantisation step is 1/65 535 of the embedding's extent.
* Labels: one byte per example (two where a data set has more than 255 classes).
* Thumbnails, where the examples are images: sprite sheets of ``SHEET_COLUMNS`` x
  ``SHEET_COLUMNS`` thumbnails (PNG), example ``i`` at cell ``i % per_sheet`` of sheet
  ``i // per_sheet``, row-major.

Every file is written atomically and recorded in ``report/explore/manifest.json`` with a
key made from what it shows (the embedding's fingerprint), so a rebuild writes only what
changed or is missing and an interrupted one finishes where it stopped.

The same linked view is available in a notebook through jupyter-scatter
(:func:`notebook_view`, the ``notebook`` extra), and any one embedding exports to the
files TensorBoard's projector loads (:func:`export_projector`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import numpy as np

from ..store import NETWORKS, ORIGINAL, embedding_key, find, holder
from .errors import MissingDataError, SettingsError
from .figures import hex_colours
from .report import REPORT, FigureCache, RunFolder, _images, _key, slug
from .runinfo import write_atomic

log = logging.getLogger(__name__)

#: The page, beside the report's index.html.
PAGE = "explore.html"
#: Its data, script and sprite sheets.
FOLDER = "explore"
#: Thumbnails per sheet row (and rows per sheet).
SHEET_COLUMNS = 64
#: Thumbnails are shrunk (by whole factors) to at most this many pixels a side.
THUMB_MAX = 64
#: Bumped when a data file's format changes, so existing files are rewritten.
FORMAT_VERSION = 2
_QUANT = 65535


@dataclass(frozen=True)
class Quantised:
    """An embedding as the page reads it: 16-bit coordinates over its bounding square."""

    codes: np.ndarray  # (N, 2) uint16
    lo: tuple[float, float]
    span: float

    def decode(self) -> np.ndarray:
        """The (N, 2) float64 coordinates the page draws."""
        return np.asarray(self.lo) + self.codes.astype(np.float64) * (self.span / _QUANT)


def quantise(points: np.ndarray) -> Quantised:
    """Coordinates of ``points`` as 16-bit integers over their bounding square (aspect kept,
    the shorter side centred, so that the page's view centres every embedding).

    Examples
    --------
    >>> q = quantise(np.array([[0.0, 0.0], [2.0, 1.0], [1.0, 0.5]]))
    >>> q.codes.tolist(), q.lo, q.span
    ([[0, 16384], [65535, 49151], [32768, 32768]], (0.0, -0.5), 2.0)
    >>> float(np.abs(q.decode() - [[0, 0], [2, 1], [1, 0.5]]).max()) < 2 / 65535
    True
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.size == 0 or not np.isfinite(points).all():
        raise ValueError("an embedding to explore must hold finite coordinates")
    low, high = points.min(axis=0), points.max(axis=0)
    span = float((high - low).max())
    span = span if span > 0 else 1.0  # a dead filter's embedding: every point in one place
    lo = (low + high) / 2 - span / 2  # the shorter side centred in the square
    codes = np.rint((points - lo) / span * _QUANT).clip(0, _QUANT).astype(np.uint16)
    return Quantised(codes, (float(lo[0]), float(lo[1])), span)


def data_script(ident: str, meta: dict, payload: bytes) -> str:
    """The text of a data file: one call that hands the page its id, meta and bytes.

    Examples
    --------
    >>> data_script("mnist/labels", {"dtype": "uint8"}, bytes([1, 2, 3]))
    'repscope.put("mnist/labels", {"dtype": "uint8"}, "AQID");\\n'
    """
    encoded = base64.b64encode(payload).decode("ascii")
    return f"repscope.put({json.dumps(ident)}, {json.dumps(meta, sort_keys=True)}, \"{encoded}\");\n"


def _write_text(path: Path, text: str) -> list[Path]:
    return [write_atomic(path, text)]


def _label_bytes(labels: np.ndarray) -> tuple[bytes, str]:
    dtype = "uint8" if int(labels.max(initial=0)) < 256 else "uint16"
    return np.ascontiguousarray(labels.astype("<u1" if dtype == "uint8" else "<u2")).tobytes(), dtype


def thumbnail_factor(height: int, width: int) -> int:
    """The whole factor by which images shrink so that neither side exceeds ``THUMB_MAX``."""
    return max(1, math.ceil(max(height, width) / THUMB_MAX))


def _shrink(images: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return images
    n, h, w = images.shape[:3]
    h2, w2 = h // factor, w // factor
    cut = images[:, :h2 * factor, :w2 * factor].astype(np.float32)
    cut = cut.reshape(n, h2, factor, w2, factor, *images.shape[3:]).mean(axis=(2, 4))
    return np.rint(cut).astype(np.uint8)


def sprite_sheet(images: np.ndarray, columns: int = SHEET_COLUMNS) -> np.ndarray:
    """Thumbnails ``(n, h, w[, 3])`` uint8 packed row-major into one sheet of ``columns``
    per row (black where the last row is short).

    Examples
    --------
    >>> sheet = sprite_sheet(np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2), columns=2)
    >>> sheet.shape, sheet[2:, :2].tolist()
    ((4, 4), [[8, 9], [10, 11]])
    """
    n, h, w = images.shape[:3]
    rows = max(1, math.ceil(n / columns))
    sheet = np.zeros((rows * h, columns * w, *images.shape[3:]), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[i]
    return sheet


def _save_png(array: np.ndarray, path: Path) -> list[Path]:
    from PIL import Image  # matplotlib's own dependency

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return [path]


def default_panels(run: RunFolder, dataset: str) -> list[list[str]]:
    """The panels the page opens with: each analysed layer as a whole (the input, then
    ``<layer>`` or ``<layer>/all``), for the trained network and then the untrained one."""
    depths = run.depths[dataset]
    return [[network, depths.whole(layer)] for network in NETWORKS for layer in depths.layers]


def explorer_link(dataset: str, method: str, seed: int, select: Sequence[int] = ()) -> str:
    """The page's address (relative to the report) showing one (dataset, method, seed), with
    examples selected.

    Examples
    --------
    >>> explorer_link("mnist", "umap", 42, [3, 17])
    'explore.html#dataset=mnist&method=umap&seed=42&select=3,17'
    >>> explorer_link("a&b", "umap", 1)
    'explore.html#dataset=a%26b&method=umap&seed=1'
    """
    link = f"{PAGE}#dataset={quote(dataset, safe='')}&method={quote(method, safe='')}&seed={int(seed)}"
    return link + (f"&select={','.join(str(int(i)) for i in select)}" if len(select) else "")


def _dataset_files(run: RunFolder, cache: FigureCache, dataset: str) -> dict:
    """Ask ``cache`` for one data set's files; return its entry in the page's manifest."""
    root = f"data/{slug(dataset)}"
    labels = run.store.labels(dataset).astype(np.int64)
    n = len(labels)
    classes = run.classes(dataset)
    label_rel = f"{root}/labels.js"  # paths in the cache are under explore/, in the page under report/

    def write_labels(path: Path) -> list[Path]:
        payload, dtype = _label_bytes(labels)
        return _write_text(path, data_script(f"{dataset}/labels", {"dtype": dtype, "n": n}, payload))

    cache.add(label_rel[:-3], _key(FORMAT_VERSION, "labels", hashlib.sha256(labels.tobytes()).hexdigest()),
              lambda p: write_labels(p.with_suffix(".js")))
    entry = {"name": dataset, "slug": slug(dataset), "n": n, "classes": list(classes),
             "colours": hex_colours(len(classes)),  # the report's figures' colours
             "counts": np.bincount(labels, minlength=len(classes)).tolist(), "labels": f"{FOLDER}/{label_rel}",
             "image": None, "methods": [], "seeds": run.seeds, "networks": list(NETWORKS),
             "representations": [{"name": r.name, "depth": r.depth, "layer": r.array, "in_study": r.in_study,
                                  "dims": r.dims} for r in run.depths[dataset].representations],
             "defaults": default_panels(run, dataset), "embeddings": {}}
    if run.is_image(dataset):
        entry["image"] = _sprites(run, cache, dataset, n, root.replace("data/", "sprites/"))
    for method in run.methods:
        for seed in run.seeds:
            for network in NETWORKS:
                for rep in run.depths[dataset].representations:
                    key = embedding_key(dataset, seed, network, method, rep.name)
                    info = run.store.info(key)  # read once: fingerprint, completion, a dead filter
                    if not info or not info.get("complete"):
                        continue
                    ident = f"{method}/{seed}/{network}/{rep.name}"
                    rel = f"{root}/{method}/seed{seed}/{holder(network, rep.name)}/{slug(rep.name)}"
                    entry["embeddings"][ident] = {"file": f"{FOLDER}/{rel}.js", "dead": bool(info.get("constant_input"))}
                    if network != holder(network, rep.name):
                        continue  # ``original``: one file, under the trained network

                    def write(path: Path, key=key, ident=ident) -> list[Path]:
                        points = run.store.read(key)
                        bad = int((~np.isfinite(points).all(axis=1)).sum())
                        if bad:  # the page says so in the panel instead of drawing a part
                            log.warning("%s: %d of %d points are not finite; the explorer does not draw it", key, bad,
                                        len(points))
                            meta = {"n": len(points), "error": f"not drawn: {bad} of {len(points)} points are not finite"}
                            return _write_text(path.with_suffix(".js"), data_script(f"{dataset}/{ident}", meta, b""))
                        q = quantise(points)
                        meta = {"lo": list(q.lo), "span": q.span, "n": len(q.codes)}
                        return _write_text(path.with_suffix(".js"),
                                           data_script(f"{dataset}/{ident}", meta, q.codes.astype("<u2").tobytes()))

                    cache.add(rel, _key(FORMAT_VERSION, info.get("fingerprint")), write)
            if any(k.startswith(f"{method}/") for k in entry["embeddings"]) and method not in entry["methods"]:
                entry["methods"].append(method)
    return entry


def _sprites(run: RunFolder, cache: FigureCache, dataset: str, n: int, root: str) -> dict:
    shape = _images(run, dataset, [0]).shape[1:]
    factor = thumbnail_factor(shape[0], shape[1])
    h, w = shape[0] // factor, shape[1] // factor
    per_sheet = SHEET_COLUMNS * SHEET_COLUMNS
    sheets = []
    for s, start in enumerate(range(0, n, per_sheet)):
        stop = min(n, start + per_sheet)
        rel = f"{root}/{s}"

        def draw(path: Path, start=start, stop=stop) -> list[Path]:
            thumbs = _shrink(_images(run, dataset, list(range(start, stop))), factor)
            return _save_png(sprite_sheet(thumbs), path.with_suffix(".png"))

        cache.add(rel, _key(FORMAT_VERSION, "sprites", run.fingerprint(f"{dataset}/original"), start, stop, factor),
                  draw)
        sheets.append(f"{FOLDER}/{rel}.png")
    return {"width": w, "height": h, "columns": SHEET_COLUMNS, "per_sheet": per_sheet, "sheets": sheets}


def _write_page(report: Path, manifest: dict) -> Path:
    import jinja2

    script = resources.files(__package__).joinpath("templates", "explore.js").read_text()
    _write_text(report / FOLDER / "explore.js", script)
    env = jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    # inside <script>: no '<' (no end tag, no comment), no '&' or '>', all as JSON escapes
    data = json.dumps(manifest, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    path = report / PAGE
    _write_text(path, env.get_template("explore.html").render(title=manifest["title"], manifest=data,
                                                              folder=FOLDER))
    return path


def build_explorer(run_dir: str | os.PathLike | RunFolder) -> Path:
    """Write ``<run_dir>/report/explore.html`` and its data files; return the page's path.

    Files already written from the same embeddings are kept, so a rebuild after new
    embeddings (or after an interruption) writes only the rest.
    """
    started = time.perf_counter()
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder.open(run_dir)
    report = run.path / REPORT
    cache = FigureCache(report / FOLDER, desc="explorer files", unit="file")
    datasets = [_dataset_files(run, cache, dataset) for dataset in run.datasets]
    written = cache.draw()
    manifest = {"version": FORMAT_VERSION, "title": f"repscope explorer: {run.path.name}", "run": run.path.name,
                "report": "index.html", "datasets": [d for d in datasets if d["embeddings"]]}
    if not manifest["datasets"]:
        raise MissingDataError(f"{run.path}: no complete embedding to explore; run `repscope run --out {run.path}`")
    path = _write_page(report, manifest)
    log.info("explorer %s: %d embeddings, %d files written (%d up to date) in %.1f s", path,
             sum(len(d["embeddings"]) for d in datasets), written, len(cache.manifest) - written,
             time.perf_counter() - started)
    return path


# ---------------------------------------------------------------------------- other views


def _check_choice(what: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise SettingsError(f"{what} {value!r} is not in this run; choose from {', '.join(map(str, allowed))}")


def export_projector(run_dir: str | os.PathLike, out: str | os.PathLike, dataset: str, method: str,
                     seed: int | None = None, network: str = "trained", representation: str | None = None,
                     vectors: str = "embedding") -> Path:
    """Write one embedding as the files TensorBoard's projector loads; return the config's path.

    ``out`` receives ``tensors.tsv`` (one row of tab-separated values per example: the 2-D
    embedding, or with ``vectors="representation"`` the representation it was made from),
    ``metadata.tsv`` (a header, then index, label and class name per example),
    ``sprite.png`` for image data (the thumbnails in one square sheet, at most 8 192 pixels
    a side as the projector requires) and ``projector_config.pbtxt`` naming them.
    ``seed`` defaults to the run's first, ``representation`` to the last analysed layer. Open it with
    ``tensorboard --logdir OUT`` or load the TSV files at projector.tensorflow.org.
    """
    run = RunFolder.open(run_dir)
    seed = run.seeds[0] if seed is None else seed
    _check_choice("data set", dataset, run.datasets)
    _check_choice("method", method, run.methods)
    _check_choice("seed", seed, run.seeds)
    _check_choice("network", network, NETWORKS)
    _check_choice("vectors", vectors, ("embedding", "representation"))
    depths = run.depths[dataset]
    try:
        representation = find(depths.representations, representation).name if representation else depths.last
    except KeyError:
        _check_choice("representation", representation, [r.name for r in depths.representations])
    if vectors == "embedding":
        values = run.embedding(dataset, seed, network, method, representation)
        if values is None:
            raise MissingDataError(f"{run.path}: embedding {embedding_key(dataset, seed, network, method, representation)}"
                                   f" is missing or incomplete; run `repscope embed --out {run.path}`")
    else:
        rep = find(depths.representations, representation)
        values = run.store.read_representation(dataset, seed, network, rep)
    labels = run.store.labels(dataset).astype(np.int64)
    classes = run.classes(dataset)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"cannot write the projector's files into {out} ({exc.strerror}); name a folder") from None
    np.savetxt(out / "tensors.tsv", np.asarray(values, dtype=np.float64), delimiter="\t", fmt="%.7g")
    rows = ["index\tlabel\tclass"] + [f"{i}\t{int(c)}\t{classes[c]}" for i, c in enumerate(labels)]
    (out / "metadata.tsv").write_text("\n".join(rows) + "\n")
    name = f"{dataset}/{method}/seed{seed}/{network if representation != ORIGINAL else 'input'}/{representation}"
    config = ["embeddings {", f"  tensor_name: {json.dumps(name + ('' if vectors == 'embedding' else ' (vectors)'))}",
              '  tensor_path: "tensors.tsv"', '  metadata_path: "metadata.tsv"']
    if run.is_image(dataset):
        images = _images(run, dataset, list(range(len(labels))))
        side = math.ceil(math.sqrt(len(labels)))
        factor = max(thumbnail_factor(*images.shape[1:3]), math.ceil(max(images.shape[1:3]) * side / 8192))
        thumbs = _shrink(images, factor)
        _save_png(sprite_sheet(thumbs, columns=side), out / "sprite.png")
        config += ["  sprite {", '    image_path: "sprite.png"', f"    single_image_dim: {thumbs.shape[2]}",
                   f"    single_image_dim: {thumbs.shape[1]}", "  }"]
    path = out / "projector_config.pbtxt"
    path.write_text("\n".join(config + ["}"]) + "\n")
    return path


def notebook_view(run_dir: str | os.PathLike, dataset: str | None = None, method: str | None = None,
                  seed: int | None = None, panels: Sequence[tuple[str, str]] | None = None, rows: int | None = None):
    """The explorer's linked panels as a jupyter-scatter widget (the ``notebook`` extra).

    One ``jscatter.Scatter`` per panel (``(network, representation)`` pairs; by default the
    page's first view: every layer as a whole, trained then untrained), coloured by class,
    composed with linked selection and hover, matched by example index: a lasso in one
    panel selects the same examples in all of them. The returned widget keeps its
    ``jscatter.Scatter`` objects, in panel order, as ``.scatters``.
    """
    try:
        import jscatter
        import pandas as pd
    except ImportError:
        raise SettingsError("the notebook view needs jupyter-scatter: pip install 'repscope[notebook]'") from None
    run = RunFolder.open(run_dir)
    dataset = dataset or run.datasets[0]
    _check_choice("data set", dataset, run.datasets)
    method = method or run.methods[0]
    _check_choice("method", method, run.methods)
    seed = run.seeds[0] if seed is None else seed
    _check_choice("seed", seed, run.seeds)
    panels = [tuple(p) for p in (panels or default_panels(run, dataset))]
    classes = run.classes(dataset)
    labels = run.store.labels(dataset).astype(np.int64)
    category = pd.Categorical.from_codes(labels, categories=list(classes))
    scatters = []
    for network, name in panels:
        points = run.embedding(dataset, seed, network, method, name)
        if points is None:
            raise MissingDataError(f"{run.path}: no complete {method} embedding of {network} {name} (seed {seed})")
        frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "class": category, "index": np.arange(len(labels))})
        scatter = jscatter.Scatter(data=frame, x="x", y="y", color_by="class", tooltip=True,
                                   tooltip_properties=["class", "index"])
        scatters.append((scatter, name if name == ORIGINAL else f"{network} {name}"))
    widget = jscatter.compose(scatters, sync_selection=True, sync_hover=True,
                              rows=rows or (2 if len(scatters) > 4 else 1))
    widget.scatters = [scatter for scatter, _ in scatters]
    return widget
