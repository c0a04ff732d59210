"""The report's figures, drawn from arrays with matplotlib (no pyplot: no global state).

Every function takes arrays, names and an output path and knows nothing of the run
folder. Files are written atomically (a partial file never has the final name), as PNG,
and the line plots also as SVG.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Scatter plots: one colour per class (matplotlib's tab10).
PALETTE = "tab10"
DPI = 110


def _plain_text(draw):
    """Run ``draw`` with mathtext off: names are text, so a ``$`` in a class or layer name
    (``$^$``) is drawn as it is instead of parsed as mathematics, which may fail."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        from matplotlib import rc_context

        with rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def save(fig, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats``; return the paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        final = path.with_suffix(f".{fmt}")
        tmp = final.with_name(final.name + ".partial")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(tmp, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
        _report_missing_glyphs(caught)
        os.replace(tmp, final)
        written.append(final)
    return written


_GLYPH = re.compile(r"Glyph \d+ \((.+)\) missing from font")
_missing_glyphs: set[str] = set()


def _report_missing_glyphs(caught: list) -> None:
    """One log line for the characters the fonts lack (drawn as boxes), the first time each
    is met, instead of a warning per figure and character; other warnings are passed on."""
    new = []
    for item in caught:
        found = _GLYPH.search(str(item.message))
        if found is None:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        elif found.group(1) not in _missing_glyphs:
            _missing_glyphs.add(found.group(1))
            new.append(found.group(1))
    if new:
        log.info("figures: the fonts have no glyph for %d character(s) of a class or layer name (%s); they are drawn "
                 "as boxes", len(new), ", ".join(new[:5]) + (", ..." if len(new) > 5 else ""))


def class_colours(n_classes: int) -> np.ndarray:
    """One RGBA colour per class: matplotlib's tab10 up to 10 classes, tab20 up to 20, else
    hues a golden-ratio step apart at three lightnesses, so that classes next to each other
    (by label) never get nearly the same colour. The explorer takes the same colours
    (:func:`hex_colours`).

    Examples
    --------
    >>> class_colours(3).shape
    (3, 4)
    >>> bool(np.abs(class_colours(100)[:-1, :3] - class_colours(100)[1:, :3]).sum(axis=1).min() > 0.3)
    True
    """
    import colorsys

    from matplotlib import colormaps

    if n_classes <= 10:
        return colormaps[PALETTE](np.arange(n_classes))
    if n_classes <= 20:
        return colormaps["tab20"](np.arange(n_classes))
    golden = (np.sqrt(5) - 1) / 2
    rgb = [colorsys.hls_to_rgb((k * golden) % 1.0, (0.45, 0.62, 0.32)[k % 3], 0.8) for k in range(n_classes)]
    return np.column_stack([np.array(rgb), np.ones(n_classes)])


def hex_colours(n_classes: int) -> list[str]:
    """:func:`class_colours` as ``#rrggbb`` strings."""
    return ["#" + "".join(f"{round(255 * c):02x}" for c in colour[:3]) for colour in class_colours(n_classes)]


def marker_size(n: int, panel_inches: float) -> float:
    """Marker area (points^2) so that N points cover a panel without a solid blot."""
    return float(np.clip(2.5e3 * panel_inches ** 2 / max(n, 1) / 4, 0.05, 12.0))


def draw_scatter(ax, points: np.ndarray, labels: np.ndarray, size: float) -> None:
    """Points coloured by class, drawn in a fixed shuffled order so no class hides under another."""
    order = np.random.default_rng(0).permutation(len(points))
    colours = class_colours(int(labels.max()) + 1)[labels[order]]
    ax.scatter(points[order, 0], points[order, 1], c=colours, s=size, linewidths=0, rasterized=True)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])


#: Characters of a class name shown in a legend (the page's tables give the whole name).
LEGEND_NAME = 28
_ROW_INCHES = 0.17  # one legend row at font size 7


def legend_names(classes: tuple[str, ...]) -> list[str]:
    """The class names as a legend shows them: cut to ``LEGEND_NAME`` characters with an ellipsis."""
    return [c if len(c) <= LEGEND_NAME else c[:LEGEND_NAME - 1] + "…" for c in classes]


def _column_inches(names: list[str]) -> float:
    """The width of one legend column: the marker and the longest name at font size 7."""
    return 0.35 + 0.062 * max((len(n) for n in names), default=1)


def _legend(target, classes: tuple[str, ...], ncol: int, **kwargs) -> None:
    from matplotlib.lines import Line2D

    colours = class_colours(len(classes))
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[i], markersize=5) for i in range(len(classes))]
    target.legend(handles, legend_names(classes), frameon=False, fontsize=7, handletextpad=0.2, ncol=ncol,
                  columnspacing=0.8, labelspacing=0.3, borderaxespad=0.2, **kwargs)


@_plain_text
def embedding_figure(points: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], title: str,
                     path: Path) -> list[Path]:
    """One embedding, coloured by class, with every class name beside it (in as many
    columns as the classes need; the figure widens for them)."""
    plot, height = 4.1, 4.4
    rows = max(1, int((height - 0.3) / _ROW_INCHES))
    ncol = -(-len(classes) // rows)
    legend = ncol * _column_inches(legend_names(classes))
    width = plot + 0.2 + legend
    fig = _figure(width, height)
    ax = fig.add_axes((0.02 * 5.6 / width, 0.04, plot / width, 0.86))
    draw_scatter(ax, points, labels, marker_size(len(points), 4.0))
    ax.set_title(title, fontsize=9)
    _legend(fig, classes, ncol, loc="center left", bbox_to_anchor=((plot + 0.15) / width, 0.5))
    return save(fig, path)


@_plain_text
def grid_figure(panels: list[tuple[str, np.ndarray | None]], labels: np.ndarray, classes: tuple[str, ...],
                title: str, path: Path, columns: int = 8) -> list[Path]:
    """Several embeddings of the same points side by side; a None panel is left blank
    (with its title: the embedding is missing). Rows of ``columns`` panels; every class
    name below them, in as many legend rows as the names need."""
    rows = -(-len(panels) // columns)
    side = 1.9
    width = columns * side
    names = legend_names(classes)
    ncol = max(1, min(len(classes), 10, int(0.95 * width / _column_inches(names))))
    legend = -(-len(classes) // ncol) * _ROW_INCHES + 0.15
    height = rows * side + 0.5 + legend
    fig = _figure(width, height)
    size = marker_size(len(labels), side)
    for i, (name, points) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        if points is None:
            ax.axis("off")
            if name:
                ax.set_title(f"{name}\n(missing)", fontsize=7)
            continue
        draw_scatter(ax, points, labels, size)
        ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    _legend(fig, classes, ncol, loc="lower center", bbox_to_anchor=(0.5, 0.0))
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.5 / height, bottom=legend / height, wspace=0.05,
                        hspace=0.25)
    return save(fig, path)


@_plain_text
def depth_figure(metric: str, depths: list[str], series: dict[str, tuple[np.ndarray, np.ndarray | None]],
                 title: str, note: str, path: Path) -> list[Path]:
    """One metric's per-layer average against depth; one line per network, error bars
    (one standard deviation across seeds) where given. PNG and SVG."""
    fig = _figure(4.6, 3.3)
    ax = fig.add_subplot()
    x = np.arange(len(depths))
    styles = {"trained": ("tab:blue", "o", "-"), "untrained": ("tab:orange", "s", "--")}
    for network, (mean, std) in series.items():
        colour, marker, line = styles.get(network, ("tab:gray", "^", ":"))
        ax.errorbar(x, mean, yerr=std, color=colour, marker=marker, linestyle=line, capsize=3, label=network)
    ax.set_xticks(x, [f"{i}\n{d}" for i, d in enumerate(depths)], fontsize=8)
    ax.set_xlabel("depth", fontsize=8)
    ax.set_ylabel(metric, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    if note:
        fig.text(0.99, 0.01, note, fontsize=6, ha="right", va="bottom", color="0.4")
    fig.tight_layout()
    return save(fig, path, ("png", "svg"))


class ImageRow:
    """A reusable figure of a few grey images in a row: the outlier figures are many
    and small, so one figure is redrawn instead of built for each."""

    @_plain_text
    def __init__(self, count: int, shape: tuple[int, ...]) -> None:
        self.fig = _figure(1.9 * count, 2.45)
        self.axes = [self.fig.add_subplot(1, count, i + 1) for i in range(count)]
        self.images = [ax.imshow(np.zeros(shape), cmap="gray", vmin=0, vmax=255) for ax in self.axes]
        for ax in self.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        self.title = self.fig.suptitle("", fontsize=8)
        self.fig.subplots_adjust(left=0.02, right=0.98, top=0.74, bottom=0.02, wspace=0.08)

    @_plain_text
    def draw(self, images: list[np.ndarray], captions: list[str], title: str, path: Path) -> list[Path]:
        for image, artist, ax, caption in zip(images, self.images, self.axes, captions):
            artist.set_data(image)
            ax.set_title(caption, fontsize=7)
        self.title.set_text(title)
        return save(self.fig, path)


@_plain_text
def filter_figure(image: np.ndarray, maps: dict[str, np.ndarray], title: str, path: Path,
                  columns: int = 8) -> list[Path]:
    """An input image and its feature maps: the input first, then each layer's maps,
    a layer on the same row as what precedes it when it fits, else on new rows.

    ``maps``: layer name -> (channels, h, w); each layer's maps share one colour scale
    (from 0, or from the layer's minimum where it is negative), so a dead (all-zero) map
    shows as blank rather than stretched noise.
    """
    slots, position = {}, 1
    for name, stack in maps.items():
        if position % columns + len(stack) > columns:
            position = -(-position // columns) * columns
        slots[name] = position
        position += len(stack)
    rows = -(-position // columns)
    height = rows * 1.2 + 0.35
    fig = _figure(columns * 1.05, height)
    ax = fig.add_subplot(rows, columns, 1)
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_title("input", fontsize=7)
    ax.axis("off")
    for name, stack in maps.items():
        low = min(0.0, float(stack.min()))
        top = float(stack.max()) if float(stack.max()) > low else low + 1.0
        for c, fmap in enumerate(stack):
            ax = fig.add_subplot(rows, columns, slots[name] + c + 1)
            ax.imshow(fmap, cmap="magma", vmin=low, vmax=top)
            ax.set_title(f"{name} f{c + 1}", fontsize=6)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / height, bottom=0.01, wspace=0.1, hspace=0.35)
    return save(fig, path)


@_plain_text
def cka_figure(layers: list[str], matrices: dict[str, np.ndarray], across: np.ndarray, title: str, note: str,
               path: Path) -> list[Path]:
    """Heat maps of linear CKA between the layers of each network (``matrices``: network ->
    (L, L), rows and columns in ``layers``' order) and a panel of CKA between the trained
    and the untrained network at each layer (``across``: (L,)); values written in the cells."""
    from matplotlib.figure import Figure

    count = len(matrices)
    side = max(2.6, 0.55 * len(layers) + 1.2)
    fig = Figure(figsize=(side * count + 4.4, side + 1.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, count + 1, gridspec_kw={"width_ratios": [side] * count + [side * 0.9]})
    image = None
    for ax, (network, matrix) in zip(axes, matrices.items()):
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(layers)), layers, fontsize=8)
        ax.set_title(f"{network} network", fontsize=10)
        for i in range(len(layers)):
            for j in range(len(layers)):
                value = matrix[i, j]
                if np.isfinite(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if value > 0.6 else "white")
    ax = axes[-1]
    ax.barh(range(len(layers)), across, color="#4c72b0")
    for i, value in enumerate(across):
        if np.isfinite(value):
            ax.text(min(value, 0.98), i, f"{value:.2f}", ha="right", va="center", fontsize=7, color="white")
    ax.set_yticks(range(len(layers)), layers, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("CKA", fontsize=8)
    ax.set_title("trained vs untrained", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes[count - 1], fraction=0.05, pad=0.03)
    fig.suptitle(f"{title}\n{note}", fontsize=10)
    return save(fig, path, ("png", "svg"))
