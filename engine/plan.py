"""A run's plan before any work: per layer what is stored, and the disk and memory the run needs.

The plan comes from the same dry forward pass that checks the layers (three examples
through a freshly built network), so it costs a second at most. Its ``disk_bytes`` is an
upper bound of the finished run folder: every array uncompressed (Zarr's compression
only makes them smaller) plus the checkpoints, the embeddings, the tables, the report's
figures and the explorer's files. A run whose plan does not fit (more than ``max_disk``,
or more than the free space of the run folder's disk less a margin) is refused before
work starts, in one line that names the widest layers and reductions that would fit.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..store import CHUNK_ROWS, ORIGINAL, Representation
from .errors import SettingsError
from .explore import THUMB_MAX
from .extract import FORWARD_BYTES
from .jobs import COMPONENTS, WIDE

#: Bytes of one stored value of a layer (float32).
VALUE_BYTES = 4
#: What the report's figures and tables, the explorer's page and the run's small files take
#: at most: a fixed part, and a part per embedded (data set, seed, method, network).
REPORT_FIXED_BYTES = 8_000_000
REPORT_BYTES_PER_EMBEDDING_SET = 3_000_000
#: Zarr's metadata and the chunk files' rounding, per stored array (an upper bound).
ARRAY_OVERHEAD_BYTES = 16_384
#: The part of the free space a run may plan to fill (the rest is kept for everything else).
FREE_SPACE_SHARE = 0.95
#: The widths suggested for a projection in a refusal, largest first.
_PROJECTIONS = (1024, 256, 64)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: int | float | str, what: str = "max_disk") -> int:
    """A size in bytes from a number of bytes or a text with SI or IEC units.

    Examples
    --------
    >>> parse_size("200MB"), parse_size("2GiB"), parse_size(1e9), parse_size(" 1.5 kb ")
    (200000000, 2147483648, 1000000000, 1500)
    >>> parse_size("lots")
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: --max-disk must be a size in bytes, such as 200MB, 2GiB or 5e9; got 'lots'
    """
    flag = "--" + what.replace("_", "-")
    if isinstance(value, bool):
        raise SettingsError(f"{flag} must be a size in bytes, such as 200MB, 2GiB or 5e9; got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
        if not match or match[2].lower() not in _UNITS:
            raise SettingsError(f"{flag} must be a size in bytes, such as 200MB, 2GiB or 5e9; got {value!r}")
        number, unit = float(match[1]), match[2].lower()
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size <= 0:
        raise SettingsError(f"{flag} must be a positive size in bytes, such as 200MB, 2GiB or 5e9; got {value!r}")
    return int(size)


def format_size(size: float | None) -> str:
    """Bytes in SI units, three significant digits: ``3.21 GB``; ``unknown`` for None.

    Examples
    --------
    >>> format_size(3_211_264), format_size(999), format_size(None)
    ('3.21 MB', '999 B', 'unknown')
    """
    if size is None:
        return "unknown"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} B"


@dataclass(frozen=True)
class LayerPlan:
    """What one analysed layer stores on one data set.

    read_shape: one example's shape as read from the module (before ``tokens`` pool it);
    values: its values per example as analysed, before any ``reduce``;
    reduce: the layer's reduction (None: stored whole);
    stored: the values per example that are stored;
    bytes: the stored bytes of both networks, every seed, N examples (and the held-out
        examples where probes are scored);
    channels: whether it is split into its channels (then it cannot be reduced).
    """

    dataset: str
    name: str
    read_shape: tuple[int, ...]
    values: int
    reduce: str | None
    stored: int
    bytes: int
    channels: bool = False


@dataclass(frozen=True)
class Plan:
    """A run's plan: per layer what it stores, and the totals.

    disk_bytes: an upper bound of the finished run folder's size;
    memory_bytes: an estimate of the run's peak memory (the larger of extraction's, with
        both networks and a batch of activations, and the embedders');
    free_bytes: the free space of the run folder's disk, None where the store is elsewhere
        (an fsspec URL) or the disk cannot be asked;
    existing_bytes: what the run folder already holds (a rerun needs only the rest).
    """

    out: Path
    n: int
    seeds: tuple[int, ...]
    layers: tuple[LayerPlan, ...]
    disk_bytes: int
    memory_bytes: int
    free_bytes: int | None
    existing_bytes: int = 0

    def table(self) -> str:
        """The plan as a text table, one line per data set and layer, then the totals."""
        head = ("data set", "layer", "read shape", "values", "reduce", "stored", f"bytes (N={self.n}, 2 networks, "
                f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''})")
        rows = [(p.dataset, p.name, "x".join(map(str, p.read_shape)) or "1", str(p.values), p.reduce or "none",
                 str(p.stored), format_size(p.bytes)) for p in self.layers]
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (head, *rows)]
        lines += [f"disk: {format_size(self.disk_bytes)} at most for the finished run folder {self.out}"
                  + (f" ({format_size(self.existing_bytes)} there already)" if self.existing_bytes else ""),
                  f"free: {format_size(self.free_bytes)} on its disk",
                  f"peak memory: about {format_size(self.memory_bytes)}"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def widest(self, count: int = 3) -> list[LayerPlan]:
        """The layers that store the most, largest first."""
        return sorted(self.layers, key=lambda p: -p.bytes)[:count]


def _stored_per_example(shape: Sequence[int]) -> int:
    return int(math.prod(shape)) if shape else 1


def estimate(out: Path, n: int, seeds: Sequence[int], methods: Sequence[str], heldout: bool,
             datasets: Mapping[str, Mapping[str, Any]], parameters: int, store_elsewhere: bool = False) -> Plan:
    """A :class:`Plan` from what the dry pass found per data set.

    ``datasets`` maps each data set's name to ``source`` (its :class:`Source`),
    ``representations`` (its :class:`Representation` tuple), ``layers`` (the model's
    :class:`Layer` objects), ``read`` (each layer's read shape), ``values`` (each
    layer's shape before ``reduce``), ``stored`` (each layer's stored shape) and
    ``batch`` (examples per forward pass); ``parameters`` is the network's parameter
    count.
    """
    seeds = tuple(seeds)
    disk = memory = 0
    layer_plans = []
    arrays = 0
    for name, found in datasets.items():
        source = found["source"]
        rows = n + (min(n, len(source.test)) if heldout and source.test is not None else 0)
        input_values = _stored_per_example(source.example_shape)
        itemsize = source.train.examples.dtype.itemsize
        disk += rows * (input_values * itemsize + 16)  # inputs, labels and example indices
        arrays += 3 * (2 if heldout else 1)
        activations = kept = 0
        for layer in found["layers"]:
            stored = _stored_per_example(found["stored"][layer.key])
            values = _stored_per_example(found["values"][layer.key])
            size = rows * stored * VALUE_BYTES * 2 * len(seeds)
            layer_plans.append(LayerPlan(name, layer.key, tuple(found["read"][layer.key]), values, layer.reduce, stored,
                                         size, layer.split == "channels"))
            disk += size
            arrays += 2 * len(seeds) * (2 if heldout else 1)
            if layer.reduce and layer.reduce.startswith("pca:"):  # its fitted components and mean, per network
                disk += 2 * len(seeds) * (stored + 1) * values * VALUE_BYTES
                arrays += 4 * len(seeds)
            activations += values
            kept += stored
        reps: tuple[Representation, ...] = found["representations"]
        for rep in reps:
            networks = 1 if rep.name == ORIGINAL else 2
            if rep.dims > WIDE:  # the embedders' PCA: the reduced array and its components
                components = min(COMPONENTS, rep.dims, n)
                disk += networks * len(seeds) * (n * components + components * rep.dims) * VALUE_BYTES
                arrays += 2 * networks * len(seeds)
            disk += networks * len(seeds) * len(methods) * n * 2 * VALUE_BYTES  # its embeddings
            arrays += networks * len(seeds) * len(methods)
        # explorer: every embedding again (16-bit codes in base64) and images as thumbnails (PNG sheets, at most
        # THUMB_MAX pixels a side, of noise at worst)
        disk += sum(1 if rep.name == ORIGINAL else 2 for rep in reps) * len(seeds) * len(methods) * n * 2 * 2 * 4 // 3
        disk += n * min(input_values, THUMB_MAX ** 2 * 4) * 11 // 10 if source.is_image else 0
        disk += len(seeds) * len(methods) * 2 * REPORT_BYTES_PER_EMBEDDING_SET
        widest = max((rep.dims for rep in reps), default=1)
        # extraction: a batch through both networks (the activations, their copies), and the embedders' PCA block;
        # the embedders: one representation of N examples and their neighbour graph
        rows_at_once = found.get("batch", CHUNK_ROWS)
        batch = (rows_at_once * (input_values + 3 * activations) + CHUNK_ROWS * 2 * kept) * VALUE_BYTES
        batch += FORWARD_BYTES if rows_at_once < CHUNK_ROWS else 0
        embed = n * (min(widest, WIDE) + 3 * 90) * VALUE_BYTES * 2 + CHUNK_ROWS * widest * 8
        memory = max(memory, batch, embed)
    disk += len(seeds) * len(datasets) * 2 * parameters * VALUE_BYTES + REPORT_FIXED_BYTES + arrays * ARRAY_OVERHEAD_BYTES
    memory += 2 * parameters * VALUE_BYTES + 500_000_000  # both networks, and Python with its libraries
    return Plan(out=out, n=n, seeds=seeds, layers=tuple(layer_plans), disk_bytes=int(disk), memory_bytes=int(memory),
                free_bytes=None if store_elsewhere else free_space(out), existing_bytes=folder_size(out))


def free_space(path: Path) -> int | None:
    """The free bytes of the disk that holds ``path`` (or the nearest folder above it that
    exists); None where it cannot be asked."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return int(shutil.disk_usage(folder).free)
            except OSError:
                return None
    return None


def folder_size(path: Path) -> int:
    """The bytes of the files under ``path`` (0 where it does not exist).

    Examples
    --------
    >>> folder_size(Path("no/such/folder"))
    0
    """
    total = 0
    for root, _, files in os.walk(path):
        for file in files:
            try:
                total += os.lstat(os.path.join(root, file)).st_size
            except OSError:
                continue
    return total


def _embedders_pca_bytes(plan: Plan, values: int) -> int:
    """What the embedders' PCA stores for a representation of ``values`` values (both
    networks, every seed): nothing where it is narrow enough to be embedded as it is."""
    if values <= WIDE:
        return 0
    components = min(COMPONENTS, values, plan.n)
    return 2 * len(plan.seeds) * (plan.n * components + components * values) * VALUE_BYTES


def _fits(plan: Plan, widths: dict[str, int]) -> int:
    """The plan's disk with the layers named in ``widths`` storing that many values per example."""
    def at(p: LayerPlan, values: int) -> int:
        return p.bytes * values // max(p.stored, 1) + _embedders_pca_bytes(plan, values)

    return plan.disk_bytes - sum(at(p, p.stored) - at(p, widths[p.name]) for p in plan.layers if p.name in widths)


def check(plan: Plan, max_disk: int | None = None) -> None:
    """SettingsError (one line) where ``plan`` does not fit: more than ``max_disk`` bytes, or
    more than the free space of the run folder's disk (less a margin) beyond what the
    folder holds already. The line names the widest layers, their sizes, and reductions
    of them that would fit.

    Examples
    --------
    >>> layer = LayerPlan("d", "layer1", (256, 56, 56), 802_816, None, 802_816, 6_422_528_000)
    >>> plan = Plan(Path("runs/x"), 1000, (0,), (layer,), 6_500_000_000, 10**9, None)
    >>> check(plan, max_disk=10**12)
    >>> check(plan, max_disk=200_000_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: the run needs up to 6.5 GB on disk, more than max_disk 200 MB: its widest layers are layer1 (802816 values per example, 6.42 GB); reduce = "avgpool" (256 values), "pool:2x2" ... would fit: give one as their reduce, or a larger max_disk
    """
    limits = []
    if max_disk is not None:
        limits.append((max_disk, f"max_disk {format_size(max_disk)}"))
    if plan.free_bytes is not None:
        room = int(plan.free_bytes * FREE_SPACE_SHARE) + plan.existing_bytes
        limits.append((room, f"the {format_size(plan.free_bytes)} free on the disk of {plan.out}"))
    over = [(limit, words) for limit, words in limits if plan.disk_bytes > limit]
    if not over:
        return
    limit, words = min(over)
    widest = plan.widest()
    sizes = ", ".join(f"{p.dataset + '/' if len({q.dataset for q in plan.layers}) > 1 else ''}{p.name} "
                      f"({p.stored} values per example, {format_size(p.bytes)})" for p in widest)
    fitting = _reductions_that_fit(plan, limit, widest)
    split = [p.name for p in widest if p.channels]
    unsplit = f" with split left out of {', '.join(split)}" if split else ""
    advice = (f"reduce = {fitting} would fit: give one as their reduce{unsplit}, or a larger max_disk" if fitting else "no reduction of them fits: analyse fewer or narrower layers, a smaller N, "
              "or give more room")
    raise SettingsError(f"the run needs up to {format_size(plan.disk_bytes)} on disk, more than {words}: its widest "
                        f"layers are {sizes}; {advice}")


def _reductions_that_fit(plan: Plan, limit: int, widest: Sequence[LayerPlan]) -> str:
    """``"avgpool" (256 values), "project:256"``: reductions that, given to each of the
    widest layers, would bring the plan under ``limit``."""
    choices = []
    shape = widest[0].read_shape if widest else ()
    if widest and widest[0].reduce is None and len(shape) >= 2 and widest[0].values == math.prod(shape):
        channels = shape[0]  # a convolution's (channels, positions...): pooling keeps a value or four per channel
        choices += [("avgpool", channels)] + ([("pool:2x2", channels * 4)] if len(shape) == 3 else [])
    choices += [(f"project:{d}", d) for d in _PROJECTIONS]
    good = []
    for reduce, values in choices:
        if _fits(plan, {p.name: min(values, p.stored) for p in widest}) <= limit:
            good.append(f"\"{reduce}\" ({values} values)" if reduce.endswith("pool") or reduce.startswith("pool")
                        else f"\"{reduce}\"")
    return ", ".join(good)
