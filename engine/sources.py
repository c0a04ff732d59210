"""Data sets as sources: any labelled examples behind one small interface.

A *source* is a named data set with a training split (the examples analysed, and
those the network is trained on), an optional held-out test split, class names and
the scale that brings its examples to natural units. ``open_source`` opens one from a
*spec*, a string or a mapping:

=========================================  ==========================================
spec                                       source
=========================================  ==========================================
``"mnist"``, ``"fashion-mnist"``           the study's IDX data sets (``engine.data``)
``{"source": "idx", "name": "mnist"}``     the same; optional ``root``
``"digits"``, ``{"source": "digits"}``     scikit-learn's 8x8 digits (no download)
``"path/to/data.npz"``                     a NumPy archive (``x``, ``y``, ...)
``{"source": "npz", "path": ...}``         the same; optional ``name``, ``scale``,
                                           ``classes``
``{"source": "npy", "x": ..., "y": ...}``  two ``.npy`` files; optional ``x_test``,
                                           ``y_test``, ``name``, ``scale``, ``classes``
``"torchvision:CIFAR10"``                  a torchvision data set already on disk
``{"source": "torchvision", "class": ..}`` the same; optional ``root``, ``name``,
                                           ``scale``
``{"source": "memory", "name": ..,``      data given from memory to this process
``"sha256": ..}``                          (``from_memory``), found again by its name
                                           and content digest
=========================================  ==========================================

Examples are uint8 (kept as they are, memory-mapped where the file allows it) or
float32; ``Split.rows`` reads a block of rows into memory, with plain file I/O for a
memory-mapped file so that streaming through a large file keeps memory flat. Float
examples are checked for NaN and Inf when a source is opened, a block of rows at a
time, before any work: one that holds any raises ``DataError`` naming the array, how
many examples hold them and the first. Nothing here downloads anything: data that is
not on disk raises ``MissingDataError`` naming what to do.

Data in memory (arrays, a mapping of them, a ``torch.utils.data.Dataset`` or a
``DataLoader``) becomes a source through ``from_memory``: it is checked as a file's data
is, digested (sha256 of its arrays, and of them all with its classes and scale), and kept
in a process-level registry under its name and digest, so that ``memory_spec(source)``, a
plain JSON mapping that settings and ``config.json`` record, opens it again in the same
process. Another process (the command line) has no such data: ``open_source`` then raises
``MissingDataError`` saying to resume from Python.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import mmap
import logging
import os
import re
import sys
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .config import DATASETS, dataset_spec, default_data_root
from .errors import DataError, MissingDataError, SettingsError
from .idx import read_rows

log = logging.getLogger(__name__)

#: The kinds of source ``open_source`` knows, as given under a mapping's ``source`` key.
SOURCE_KINDS = ("idx", "digits", "npz", "npy", "torchvision", "memory")

#: Keys a mapping spec may hold, per kind: (required, optional).
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "idx": (("name",), ("root",)),
    "digits": ((), ("name",)),
    "npz": (("path",), ("name", "scale", "classes")),
    "npy": (("x", "y"), ("x_test", "y_test", "name", "scale", "classes")),
    "torchvision": (("class",), ("root", "name", "scale")),
    "memory": (("name", "sha256"), ()),
}

#: Keys searched, in order, for the examples and the labels of an ``.npz`` archive.
NPZ_EXAMPLE_KEYS = ("x", "images", "features")
NPZ_LABEL_KEYS = ("y", "labels")

#: The fixed digits split: example ``i`` is held out where ``i % DIGITS_FOLD == DIGITS_TEST_REMAINDER``.
DIGITS_FOLD = 5
DIGITS_TEST_REMAINDER = 4

_TORCHVISION_PREFIX = "torchvision:"

#: Rows read at once when float examples are checked for NaN and Inf (``check_finite``).
FINITE_BLOCK_ROWS = 4096

#: A data set as ``open_source`` takes it: a name, a path or a mapping with a ``source`` key.
Spec = Union[str, os.PathLike, Mapping[str, Any]]
#: A data set in memory as ``from_memory`` takes it: ``(x, y)``, a mapping of arrays, a
#: torch ``Dataset`` or ``DataLoader``.
InMemory = Union[tuple, Mapping[str, Any], "torch.utils.data.Dataset", "torch.utils.data.DataLoader"]

#: The name of a data set given from memory without one.
MEMORY_NAME = "memory"
#: Keys of a mapping that gives a data set from memory (a mapping without a ``source`` key).
MEMORY_KEYS = ("x", "y", "x_test", "y_test", "classes", "name", "scale")
#: The key of ``Source.sha256`` that holds an in-memory source's content digest.
CONTENT_KEY = "content"
#: Bumped where the content digest is computed otherwise (old digests then differ).
_CONTENT_FORMAT = 1
#: In-memory sources of this process by (name, content digest); an entry lasts as long as
#: its Source object is referred to elsewhere (a run in progress holds its own).
_IN_MEMORY: "weakref.WeakValueDictionary[tuple[str, str], Source]" = weakref.WeakValueDictionary()


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Split:
    """Examples and their integer labels, row for row.

    examples: ``(n, *example_shape)``, uint8 or float32; may be memory-mapped.
    labels: ``(n,)`` integer labels ``0 .. C-1`` (any integer dtype).
    """

    examples: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.labels.ndim != 1 or self.examples.ndim < 1 or len(self.labels) != len(self.examples):
            raise DataError(
                f"a split needs labels (n,) for examples (n, ...); got labels {self.labels.shape} "
                f"for examples {self.examples.shape}"
            )

    def __len__(self) -> int:
        return int(self.examples.shape[0])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Examples ``[start, stop)`` as an in-memory array (clipped to the split).

        Parameters
        ----------
        start, stop : int
            Row bounds, as for a slice (negative values count from the end).

        Returns
        -------
        numpy.ndarray
            A fresh ``(stop - start, *example_shape)`` array, not memory-mapped.
        """
        return _read_block(self.examples, start, stop)

    def label_rows(self, start: int, stop: int) -> np.ndarray:
        """Labels ``[start, stop)`` as an in-memory array; see ``rows``."""
        return _read_block(self.labels, start, stop)


@dataclass(frozen=True)
class Source:
    """A labelled data set: what the engine analyses, trains on and reports.

    name: the data set's name in the store, ``metrics.csv`` and reports.
    classes: class names, one per class present, in the order of ``label_values``.
    label_values: the labels present (sorted): class i is the examples labelled
        ``label_values[i]``; empty where the labels are the class indices 0 .. C - 1 already.
    train: the examples analysed (the first N of them) and used for training.
    test: held-out examples (test accuracy), or None where the source has none.
    scale: ``examples / scale`` is the input in natural units (255.0 for uint8 images,
        16.0 for digits, 1.0 for float data).
    description: one line saying where the data came from.
    sha256: checksums of the files read, or for packaged and array data of the arrays'
        bytes.
    note: a caveat to report with the results (the FashionMNIST split note), or "".
    kind: one of ``SOURCE_KINDS``.
    """

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split | None
    scale: float
    description: str
    sha256: dict[str, str]
    note: str = ""
    kind: str = ""
    label_values: tuple = ()

    def class_index(self, labels: np.ndarray) -> np.ndarray:
        """Each label's class index 0 .. C - 1 (the labels as they are where they are indices already).

        Examples
        --------
        >>> import numpy as np
        >>> src = Source("s", ("1000", "1003"), Split(np.zeros((3, 2)), np.array([1003, 1000, 1003])), None, 1.0,
        ...              "", {}, label_values=(1000, 1003))
        >>> src.class_index(src.train.labels).tolist()
        [1, 0, 1]
        """
        if not self.label_values:
            return labels
        return np.searchsorted(np.asarray(self.label_values), np.asarray(labels)).astype(np.int64)

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """The training targets of ``labels``: integer labels as they are (the network's
        outputs are indexed by them), string labels by their class index."""
        labels = np.asarray(labels)
        return self.class_index(labels) if labels.dtype.kind in "US" else labels

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example: ``train.examples.shape[1:]``."""
        return tuple(int(d) for d in self.train.examples.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether an example is an image.

        Accepted layouts: ``(H, W)``; channels first ``(C, H, W)`` with C in 1, 3, 4;
        channels last ``(H, W, C)`` with C in 3, 4. Everything else (feature vectors
        ``(F,)``, other 3-D or higher shapes) is not an image.
        """
        shape = self.example_shape
        if len(shape) == 2:
            return True
        if len(shape) == 3:
            return shape[0] in (1, 3, 4) or shape[2] in (3, 4)
        return False


# --------------------------------------------------------------------------- public


def open_source(
    spec: str | Mapping[str, Any],
    data_root: str | os.PathLike | None = None,
    *,
    fetch: bool = True,
) -> Source:
    """Open the data set that ``spec`` names.

    Parameters
    ----------
    spec : str or Mapping
        ``"mnist"``, ``"fashion-mnist"``, ``"digits"``, a path ending in ``.npz``,
        ``"torchvision:<Class>"``, or a mapping whose ``source`` key is one of
        ``SOURCE_KINDS`` (see the module's docstring for each kind's keys). Relative
        paths are read from the working directory.
    data_root : str or os.PathLike, optional
        Root of the IDX data sets and the default root of torchvision data sets;
        default ``engine.config.default_data_root()``.
    fetch : bool, default True
        For the IDX data sets: fetch them first where they are not yet in
        ``data_root`` (``engine.data.fetch``). With False a data set that is not there
        raises ``MissingDataError``. Other kinds never download anything.

    Returns
    -------
    Source
        The data set, with its training split, its test split where it has one, its
        class names, scale and checksums.

    Raises
    ------
    SettingsError
        An unknown spec or source kind, a mapping without a required key or with an
        unknown one, or torchvision not importable for a torchvision source.
    MissingDataError
        A file, or a torchvision data set, that is not on disk.
    DataError
        Unreadable files, labels that do not match the examples or are not
        non-negative integers, too few class names, examples without a feature
        dimension, float examples that hold NaN or Inf.

    Examples
    --------
    >>> src = open_source("digits")
    >>> src.name, len(src.train), src.example_shape, src.classes[:3]
    ('digits', 1438, (8, 8), ('0', '1', '2'))
    >>> len(src.test), src.scale, src.is_image, src.train.rows(0, 2).shape
    (359, 16.0, True, (2, 8, 8))
    """
    kind, opts = _parse(spec)
    if kind == "idx":
        return _open_idx(opts, data_root, fetch)
    if kind == "digits":
        return _open_digits(opts)
    if kind == "npz":
        return _open_npz(opts)
    if kind == "npy":
        return _open_npy(opts)
    if kind == "memory":
        return _open_memory(opts)
    return _open_torchvision(opts, data_root)


def source_name(spec: str | Mapping[str, Any]) -> str:
    """The name ``open_source(spec)`` gives its source, without loading anything.

    The spec is checked as ``open_source`` checks it (kind, required and unknown keys,
    the name), so that settings can be validated before any work starts; whether the
    files exist is not checked.

    Parameters
    ----------
    spec : str or Mapping
        As for ``open_source``.

    Returns
    -------
    str
        The data set's name.

    Raises
    ------
    SettingsError
        Where ``open_source`` would raise it for the spec itself.

    Examples
    --------
    >>> source_name("digits"), source_name("runs/my-data.npz"), source_name("torchvision:CIFAR10")
    ('digits', 'my-data', 'cifar10')
    """
    kind, opts = _parse(spec)
    return _name_of(kind, opts)


def is_in_memory(data: Any) -> bool:
    """Whether ``data`` is a data set given from memory (``from_memory`` takes it), not a spec.

    Such are: a tuple ``(x, y)`` whose ``x`` is an array (anything with ``__array__``, a
    torch tensor among them); a mapping without a ``source`` key that holds any of ``x``,
    ``y``, ``x_test``, ``y_test``; a ``torch.utils.data.Dataset`` or ``DataLoader``.

    Parameters
    ----------
    data : object
        What a caller gave as a data set.

    Returns
    -------
    bool

    Examples
    --------
    >>> x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    >>> is_in_memory((x, y)), is_in_memory({"x": x, "y": y}), is_in_memory(("digits", "mnist"))
    (True, True, False)
    >>> is_in_memory("digits"), is_in_memory({"source": "npz", "path": "a.npz"})
    (False, False)
    """
    if isinstance(data, tuple):
        return len(data) == 2 and is_array_like(data[0])
    if isinstance(data, Mapping):
        return "source" not in data and any(key in data for key in ("x", "y", "x_test", "y_test"))
    return _torch_data_kind(data) is not None


def from_memory(data: InMemory, name: str | None = None) -> Source:
    """A source of examples and labels in memory, checked as a file's are and registered.

    Parameters
    ----------
    data : tuple, Mapping, torch.utils.data.Dataset or torch.utils.data.DataLoader
        One of:

        * ``(x, y)``: examples ``(n, ...)`` and labels ``(n,)``, numpy arrays or torch
          tensors;
        * ``{"x": ..., "y": ..., "x_test": ..., "y_test": ..., "classes": ..., "name": ...,
          "scale": ...}``: ``x_test`` and ``y_test`` (a held-out split) together or not at
          all; ``classes`` a list of names indexed by label or a mapping ``{label: name}``;
          ``scale`` what brings the examples to natural units;
        * a map-style (or iterable) ``Dataset`` whose items are ``(x, y)`` pairs, read item
          by item in index order;
        * a ``DataLoader`` yielding ``(x, y)`` batches, iterated as it is (its collate
          function, its workers) and the batches concatenated; one that shuffles is refused.

        A Dataset or DataLoader is read into memory once: for data larger than memory, save
        ``.npy`` files and use the ``npy`` source, which is memory-mapped.
    name : str, optional
        The data set's name where ``data`` gives none (a mapping's ``name``); default
        ``MEMORY_NAME``.

    Returns
    -------
    Source
        Of kind ``"memory"``, its ``sha256`` the digests of its arrays (``x``, ``y``,
        ``x_test``, ``y_test``) and of its whole content (``CONTENT_KEY``: the arrays as the
        engine reads them, its classes and scale). It is registered for this process:
        ``open_source(memory_spec(source))`` returns it while it is referred to.

    Raises
    ------
    SettingsError
        A form that is no data set, unknown mapping keys, a name that cannot be a folder, a
        DataLoader that shuffles, batches that are not ``(x, y)`` pairs.
    DataError
        Content that cannot be analysed: examples and labels of different lengths, no
        examples, labels that are neither integers nor strings, NaN or Inf in the examples.

    Examples
    --------
    >>> x = np.arange(12, dtype=np.float64).reshape(6, 2)
    >>> src = from_memory((x, np.array(["b", "a", "b", "a", "b", "a"])))
    >>> src.name, src.kind, src.classes, len(src.train), src.test, src.scale
    ('memory', 'memory', ('a', 'b'), 6, None, 1.0)
    >>> spec = memory_spec(src)
    >>> sorted(spec), open_source(spec) is src, source_name(spec)
    (['name', 'sha256', 'source'], True, 'memory')
    >>> from_memory({"x": x, "y": np.array([0, 1, 0, 1, 0, 1]), "name": "pairs"}).name
    'pairs'
    >>> from_memory((x, np.array([0, 1, 0.5, 1, 0, 1])))
    Traceback (most recent call last):
    ...
    repscope.engine.errors.DataError: y of data set 'memory': labels are not integers (dtype float64); give integer or string labels
    """
    if name is not None:
        _check_name(name)
    kind = "tuple" if isinstance(data, tuple) else "mapping" if isinstance(data, Mapping) else _torch_data_kind(data)
    if kind is None or not is_in_memory(data):
        raise SettingsError(f"{type_name(data)} is not a data set in memory; give (x, y), {{'x': ..., 'y': ...}}, "
                            "a torch Dataset or a DataLoader")
    if kind == "mapping":
        return _memory_source(**_memory_mapping(data, name))
    name = _check_name(name if name is not None else MEMORY_NAME)
    origin = f"data set {name!r}"
    if kind == "tuple":
        x, y = (_as_array(v, f"{part} of {origin}") for v, part in zip(data, ("x", "y")))
        described = f"arrays from memory: x {_shape(x)}, y {_shape(y)}"
    elif kind == "loader":
        _refuse_shuffling(data, origin)
        x, y = _read_pairs(data, f"{origin} (a DataLoader)")
        described = f"a {type_name(data.dataset, article=False)} through a DataLoader, read into memory: x {_shape(x)}"
    else:
        x, y = _read_dataset(data, f"{origin} (a Dataset)")
        described = f"a {type_name(data, article=False)}, read into memory: x {_shape(x)}"
    return _memory_source(name=name, x=x, y=y, description=described)


def memory_spec(source: Source) -> dict[str, str]:
    """The spec of an in-memory source: what settings and ``config.json`` record of it.

    Parameters
    ----------
    source : Source
        A source ``from_memory`` made.

    Returns
    -------
    dict
        ``{"source": "memory", "name": <its name>, "sha256": <its content digest>}``: plain
        JSON, which ``open_source`` opens again while this process holds the source.

    Examples
    --------
    >>> spec = memory_spec(from_memory((np.eye(3), np.arange(3)), name="eye"))
    >>> spec["source"], spec["name"], len(spec["sha256"])
    ('memory', 'eye', 64)
    """
    if source.kind != "memory" or CONTENT_KEY not in source.sha256:
        raise SettingsError(f"data set {source.name!r} was not given from memory (its kind is {source.kind or 'none'})")
    return {"source": "memory", "name": source.name, "sha256": source.sha256[CONTENT_KEY]}


def require_at_hand(spec: Any) -> None:
    """Raise ``MissingDataError`` where ``spec`` names a data set given from memory that this
    process does not hold (a run made from memory, resumed on the command line); any other
    spec passes unchecked.

    Parameters
    ----------
    spec : object
        A recorded data set spec.

    Raises
    ------
    MissingDataError
        Saying that the data can be given again only from Python.

    Examples
    --------
    >>> require_at_hand("digits")
    >>> require_at_hand({"source": "memory", "name": "mine", "sha256": "0" * 64})
    Traceback (most recent call last):
    ...
    repscope.engine.errors.MissingDataError: data set 'mine' was given from memory (arrays in Python); the command line cannot supply it: resume from Python with repscope.analyze(..., the same data, out=...)
    """
    if isinstance(spec, Mapping) and str(spec.get("source", "")).lower() == "memory":
        open_source(spec)


# --------------------------------------------------------------------------- specs


def _parse(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A spec as (kind, options), with the required keys present and no unknown one."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if isinstance(spec, str):
        return _parse_string(spec)
    if not isinstance(spec, Mapping):
        shown = "" if hasattr(spec, "__array__") or len(repr(spec)) > 60 else f" ({spec!r})"
        raise SettingsError(f"a data source is a string or a mapping, not {type_name(spec)}{shown}")
    if "source" not in spec:
        keys = ", ".join(map(repr, list(spec)[:8])) or "none"
        raise SettingsError(
            f"a data source mapping (keys {keys}) has no 'source' key: give one of {', '.join(SOURCE_KINDS)}, "
            "or examples from memory as {'x': ..., 'y': ...}"
        )
    kind = spec["source"]
    if not isinstance(kind, str) or kind.lower() not in SOURCE_KINDS:
        raise SettingsError(f"unknown data source kind {kind!r}: choose one of {', '.join(SOURCE_KINDS)}")
    kind = kind.lower()
    required, optional = _KEYS[kind]
    opts = {k: v for k, v in spec.items() if k != "source"}
    for key in required:
        if opts.get(key) is None or (isinstance(opts[key], str) and opts[key] == ""):
            raise SettingsError(f"data source of kind {kind!r} needs the key {key!r}; its keys are "
                                f"{', '.join(map(repr, spec)) or 'none'}")
    unknown = sorted(set(opts) - set(required) - set(optional), key=str)
    if unknown:
        allowed = ", ".join(("source", *required, *optional))
        raise SettingsError(
            f"data source of kind {kind!r} has unknown key {unknown[0]!r}: its keys are {allowed}"
        )
    if kind == "npy" and (opts.get("x_test") is None) != (opts.get("y_test") is None):
        have, need = ("x_test", "y_test") if opts.get("x_test") is not None else ("y_test", "x_test")
        raise SettingsError(f"data source of kind 'npy' has {have!r} but not {need!r}: give both or neither")
    if kind == "memory" and not (isinstance(opts["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", opts["sha256"])):
        raise SettingsError("data source of kind 'memory' needs 'sha256', the 64 hex digits of its content digest")
    _name_of(kind, opts)  # validates the name
    _scale_option(opts)
    _classes_option(opts)
    return kind, opts


def _parse_string(spec: str) -> tuple[str, dict[str, Any]]:
    text = spec.strip()
    if text in DATASETS:
        return "idx", {"name": text}
    if text == "digits":
        return "digits", {}
    if text.startswith(_TORCHVISION_PREFIX):
        cls = text[len(_TORCHVISION_PREFIX):].strip()
        if not cls:
            raise SettingsError(f"data source {spec!r} names no class: write e.g. 'torchvision:CIFAR10'")
        return "torchvision", {"class": cls}
    if text.lower().endswith(".npz"):
        return "npz", {"path": text}
    if text.lower().endswith(".npy"):
        raise SettingsError(
            f"data source {spec!r} is a single .npy file; examples and labels need two: give "
            f"{{'source': 'npy', 'x': {text!r}, 'y': <labels .npy>}}"
        )
    raise SettingsError(
        f"unknown data source {spec!r}: give {', '.join(DATASETS)}, digits, a path ending in .npz, "
        f"torchvision:<Class>, or a mapping whose 'source' is one of {', '.join(SOURCE_KINDS)}"
    )


def _name_of(kind: str, opts: Mapping[str, Any]) -> str:
    name = opts.get("name")
    if kind == "idx":
        return dataset_spec(str(opts["name"])).name
    if name is None and kind == "memory":
        name = MEMORY_NAME
    if name is None:
        if kind == "digits":
            name = "digits"
        elif kind == "npz":
            name = Path(os.fspath(opts["path"])).stem
        elif kind == "npy":
            name = Path(os.fspath(opts["x"])).stem
        else:
            name = str(opts["class"]).lower()
    return _check_name(name)


def _check_name(name: Any) -> str:
    """A data set name usable as a folder and a table value: no separators, not blank."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise SettingsError(f"data set name {name!r} must be a non-blank string without surrounding spaces")
    if name in (".", "..") or any(c in name for c in '/\\,"') or any(ord(c) < 32 for c in name):
        raise SettingsError(
            f"data set name {name!r} cannot hold '/', '\\', ',', '\"' or control characters, nor be '.' or '..': "
            "give another with the key 'name'"
        )
    return name


def _scale_option(opts: Mapping[str, Any]) -> float | None:
    """The spec's ``scale``, checked; None where it gives none."""
    value = opts.get("scale")
    if value is None:
        return None
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = math.nan
    if isinstance(value, bool) or not math.isfinite(scale) or scale <= 0:
        raise SettingsError(f"scale {value!r} must be a positive finite number")
    return scale


def _classes_option(opts: Mapping[str, Any]) -> tuple[str, ...] | dict | None:
    classes = opts.get("classes")
    if classes is None:
        return None
    if isinstance(classes, Mapping):
        return {str(k): str(v) for k, v in classes.items()}
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        shown = repr(classes) if len(repr(classes)) <= 60 else f"of type {type(classes).__name__}"
        raise SettingsError(f"classes {shown} must be a list of class names (index = label) or a mapping "
                            "{label: name}")
    return tuple(str(c) for c in classes)


# --------------------------------------------------------------------------- checks


def _read_block(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    start, stop, _ = slice(start, stop).indices(array.shape[0])
    stop = max(start, stop)
    # read_rows seeks from the memmap's offset: only valid for a whole, C-ordered mapping
    # of a file (a slice of one keeps its parent's offset).
    if (
        isinstance(array, np.memmap)
        and array.filename is not None
        and isinstance(array.base, mmap.mmap)
        and array.flags.c_contiguous
    ):
        return read_rows(array, start, stop)
    return np.array(array[start:stop])


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _sha256_array(array: np.ndarray, chunk_rows: int = 4096) -> str:
    """sha256 of an array's C-ordered bytes, a block of rows at a time."""
    h = hashlib.sha256()
    if array.ndim == 0:
        h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()
    for start in range(0, array.shape[0], chunk_rows):
        h.update(np.ascontiguousarray(array[start:start + chunk_rows]).tobytes())
    return h.hexdigest()


def _existing(path: Any, what: str) -> Path:
    path = Path(os.fspath(path)).expanduser()
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise MissingDataError(f"{what} {path}{where} does not exist: check the path in the data source")
    return path


def _examples(array: np.ndarray, origin: str, scale: float | None) -> tuple[np.ndarray, float]:
    """Examples as uint8 (kept) or float32, with their default or given scale."""
    if array.ndim < 2:
        raise DataError(
            f"{origin}: examples have shape {array.shape}, without a feature dimension; "
            "give (n, features) or (n, H, W)"
        )
    if array.shape[0] == 0:
        raise DataError(f"{origin}: no examples (shape {array.shape})")
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array, 255.0 if scale is None else scale
    if kind in "fiub":
        # Floats are cast (not float32, which is kept: a memory-mapped file stays one, read
        # with plain file I/O); other integer dtypes are not assumed to be pixels: give uint8,
        # or a scale. A wider float beyond float32's range becomes Inf, which check_finite names.
        if array.dtype != np.float32:
            with np.errstate(over="ignore"):
                array = np.asarray(array, dtype=np.float32)
        return array, 1.0 if scale is None else scale
    raise DataError(f"{origin}: examples of dtype {array.dtype} are not numbers; give uint8 or float arrays")


def check_finite(examples: np.ndarray, origin: str, block_rows: int = FINITE_BLOCK_ROWS,
                 given_as: np.dtype | None = None) -> None:
    """Raise DataError where float examples hold NaN or Inf, a block of rows at a time.

    Integer examples (uint8 images) cannot hold either and are not read. Each block is
    read as ``Split.rows`` reads it (plain file I/O for a memory-mapped file), so memory
    stays flat in the number of examples; a block's minimum and maximum find a NaN or an
    Inf in it, and only such a block is searched row by row.

    Parameters
    ----------
    examples : numpy.ndarray
        ``(n, *example_shape)`` examples, as a split holds them.
    origin : str
        The array's name in the message (file and key).
    block_rows : int, default FINITE_BLOCK_ROWS
        Rows read at once.
    given_as : numpy.dtype, optional
        The dtype the examples were given as, where they were cast to float32: a wider
        float's values beyond float32's range became Inf, which the message then says.

    Raises
    ------
    DataError
        Naming ``origin``, how many examples hold NaN or Inf, the first of them and the fix.

    Examples
    --------
    >>> x = np.zeros((5, 3), np.float32); x[[1, 3], 2] = [np.nan, np.inf]
    >>> check_finite(x, "data.npz[x]")
    Traceback (most recent call last):
    ...
    repscope.engine.errors.DataError: data.npz[x]: 2 of the 5 examples hold NaN or Inf values (the first is example 1); replace them (numpy.nan_to_num) or drop those examples, and save the data again
    """
    if examples.dtype.kind != "f" or examples.size == 0:
        return
    bad, first = 0, -1
    for start in range(0, examples.shape[0], block_rows):
        block = _read_block(examples, start, start + block_rows).reshape(-1, int(np.prod(examples.shape[1:])))
        if np.isfinite(block.min()) and np.isfinite(block.max()):  # NaN and +-Inf reach one of them
            continue
        rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if first < 0:
            first = start + int(rows[0])
        bad += len(rows)
    if bad:
        wide = given_as is not None and given_as.kind == "f" and given_as.itemsize > 4
        cast = f" (or {given_as} values beyond float32's range, +-3.4e38, which become Inf)" if wide else ""
        verb = "holds" if bad == 1 else "hold"
        raise DataError(
            f"{origin}: {bad} of the {examples.shape[0]} examples {verb} NaN or Inf values{cast} (the first is "
            f"example {first}); replace them (numpy.nan_to_num) or drop those examples, and save the data again"
        )


def _labels(array: np.ndarray, origin: str) -> np.ndarray:
    """Labels as a 1-D array of integers (integer dtypes are kept) or of strings (class names)."""
    if array.ndim != 1:
        raise DataError(f"{origin}: labels have shape {array.shape}; give a 1-D array (n,) of integers or strings")
    kind = array.dtype.kind
    if kind == "b":
        return np.asarray(array, dtype=np.uint8)
    if kind == "f":
        values = np.asarray(array)
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise DataError(f"{origin}: labels are not integers (dtype {array.dtype}); give integer or string labels")
        return values.astype(np.int64)
    if kind == "S":
        array = np.char.decode(np.asarray(array), "utf-8")
        kind = "U"
    if kind == "U":
        array = np.asarray(array)
        if len(array) and (np.char.str_len(array) == 0).any():
            first = int(np.flatnonzero(np.char.str_len(array) == 0)[0])
            raise DataError(f"{origin}: label {first} is an empty string; name every example's class")
        return array
    if kind not in "iu":
        raise DataError(f"{origin}: labels of dtype {array.dtype} are neither integers nor strings; give integer "
                        "labels or class names")
    return array


def _split(examples: np.ndarray, labels: np.ndarray, x_origin: str, y_origin: str,
           scale: float | None) -> tuple[Split, float]:
    given_as = examples.dtype
    examples, scale = _examples(examples, x_origin, scale)
    check_finite(examples, x_origin, given_as=given_as)
    labels = _labels(labels, y_origin)
    if len(labels) != len(examples):
        raise DataError(
            f"{y_origin}: {len(labels)} labels for the {len(examples)} examples of {x_origin}; "
            "give one label per example"
        )
    return Split(examples, labels), scale


def _classes(splits: Sequence[Split], given: Sequence[str] | Mapping | None,
             origin: str) -> tuple[tuple[str, ...], tuple]:
    """(class names, label values): the classes are the labels present, sorted.

    Integer labels that are already 0 .. C - 1 give no label values (they are the class
    indices). Names: string labels are their own; for integer labels the given names are
    indexed by label value (a sequence longer than the largest label) or looked up in a
    mapping {label: name}; without names, the label values written out.
    """
    values = np.unique(np.concatenate([np.unique(np.asarray(s.labels)) for s in splits]))
    strings = values.dtype.kind == "U"
    if strings:
        if given is not None:
            raise DataError(f"{origin}: the labels are class names already; leave out classes")
        names = tuple(str(v) for v in values)
    elif given is None:
        names = tuple(str(int(v)) for v in values)
    elif isinstance(given, Mapping):
        lookup = {str(k): str(v) for k, v in given.items()}
        absent = [str(int(v)) for v in values if str(int(v)) not in lookup]
        if absent:
            raise DataError(f"{origin}: no class name for label(s) {', '.join(absent[:5])}; name every label present")
        names = tuple(lookup[str(int(v))] for v in values)
    else:
        given = tuple(str(c) for c in given)
        if int(values[0]) < 0 or len(given) <= int(values[-1]):
            raise DataError(f"{origin}: {len(given)} class names for labels from {int(values[0])} to {int(values[-1])}; "
                            "give a name per label value (index = label), or a mapping {label: name}")
        names = tuple(given[int(v)] for v in values)
    twice = {name for name in names if names.count(name) > 1}
    if twice:  # told apart everywhere (legends, tooltips, tables) by their labels
        log.warning("%s: class name(s) %s are given to several labels; each is shown with its label", origin,
                    ", ".join(sorted(map(repr, twice))[:5]))
        names = tuple(f"{name} ({v.item()})" if name in twice else name for name, v in zip(names, values))
    identity = not strings and values.tolist() == list(range(len(values)))
    return names, () if identity else tuple(v.item() for v in values)


def _build(name: str, kind: str, train: tuple[np.ndarray, np.ndarray, str, str],
           test: tuple[np.ndarray, np.ndarray, str, str] | None, *, scale: float | None,
           classes: Sequence[str] | Mapping | None, classes_origin: str, description: str,
           sha256: dict[str, str], note: str = "") -> Source:
    train_split, default_scale = _split(*train, scale)
    test_split = None
    if test is not None:
        test_split, _ = _split(*test, scale)
        if test_split.examples.shape[1:] != train_split.examples.shape[1:]:
            raise DataError(
                f"{test[2]}: test examples have shape {test_split.examples.shape[1:]}, the training "
                f"examples of {train[2]} {train_split.examples.shape[1:]}; give examples of one shape"
            )
        if test_split.examples.dtype != train_split.examples.dtype:
            raise DataError(
                f"{test[2]}: test examples are {test[0].dtype}, the training examples of {train[2]} "
                f"{train[0].dtype}; give both as uint8 or both as floats, on one scale"
            )
    splits = [train_split] + ([test_split] if test_split is not None else [])
    if test_split is not None and (train_split.labels.dtype.kind == "U") != (test_split.labels.dtype.kind == "U"):
        raise DataError(f"{test[3]}: test labels are {test_split.labels.dtype}, the training labels of {train[3]} "
                        f"{train_split.labels.dtype}; give both as integers or both as class names")
    names, label_values = _classes(splits, classes, classes_origin)
    return Source(
        name=name,
        classes=names,
        label_values=label_values,
        train=train_split,
        test=test_split,
        scale=float(default_scale),
        description=description,
        sha256=sha256,
        note=note,
        kind=kind,
    )


# --------------------------------------------------------------------------- kinds


def _open_idx(opts: Mapping[str, Any], data_root: str | os.PathLike | None, fetch: bool) -> Source:
    from . import data  # imported here: the IDX machinery is needed only for these sets

    spec = dataset_spec(str(opts["name"]))
    root = opts.get("root", data_root)
    if fetch:
        data.fetch(spec.name, root)
    ds = data.load(spec.name, root)
    return Source(
        name=spec.name,
        classes=tuple(spec.classes),
        train=Split(ds.train_images, ds.train_labels),
        test=Split(ds.test_images, ds.test_labels),
        scale=255.0,
        description=ds.source,
        sha256=dict(ds.sha256),
        note=ds.note,
        kind="idx",
    )


def _open_digits(opts: Mapping[str, Any]) -> Source:
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError as exc:  # a dependency of the project; still, one clear line
        raise SettingsError(f"the digits source needs scikit-learn ({exc}): pip install scikit-learn") from None
    bunch = load_digits()
    images = np.asarray(bunch.images)
    if images.min() < 0 or images.max() > 16 or not np.all(images == np.round(images)):
        raise DataError("scikit-learn's digits are not integers 0..16 as expected")
    images = images.astype(np.uint8)
    labels = np.asarray(bunch.target).astype(np.uint8)
    held_out = np.arange(len(images)) % DIGITS_FOLD == DIGITS_TEST_REMAINDER
    name = _name_of("digits", opts)
    return Source(
        name=name,
        classes=tuple(str(d) for d in range(10)),
        train=Split(images[~held_out], labels[~held_out]),
        test=Split(images[held_out], labels[held_out]),
        scale=16.0,
        description=(
            f"scikit-learn {sklearn.__version__} load_digits(): UCI optical handwritten digits, "
            f"8x8 values 0-16; test = every index i with i % {DIGITS_FOLD} == {DIGITS_TEST_REMAINDER}"
        ),
        sha256={"digits-images": _sha256_array(images), "digits-labels": _sha256_array(labels)},
        kind="digits",
    )


def _npz_member(archive: Any, path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: array {key!r} is unreadable ({exc}); save plain numeric arrays with numpy.savez"
        ) from None


def _open_npz(opts: Mapping[str, Any]) -> Source:
    path = _existing(opts["path"], "npz file")
    name = _name_of("npz", opts)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); write it with numpy.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not an .npz archive; write it with numpy.savez(x=..., y=...)")
    with archive:
        keys = set(archive.files)
        x_key = next((k for k in NPZ_EXAMPLE_KEYS if k in keys), None)
        y_key = next((k for k in NPZ_LABEL_KEYS if k in keys), None)
        for found, wanted in ((x_key, NPZ_EXAMPLE_KEYS), (y_key, NPZ_LABEL_KEYS)):
            if found is None:
                raise DataError(
                    f"{path} has no array named {' or '.join(wanted)} (it holds {', '.join(sorted(keys)) or 'none'})"
                )
        if ("x_test" in keys) != ("y_test" in keys):
            have, need = ("x_test", "y_test") if "x_test" in keys else ("y_test", "x_test")
            raise DataError(f"{path} has {have!r} but not {need!r}: save both or neither")
        x, y = _npz_member(archive, path, x_key), _npz_member(archive, path, y_key)
        test = None
        if "x_test" in keys:
            test = (_npz_member(archive, path, "x_test"), _npz_member(archive, path, "y_test"),
                    f"{path}[x_test]", f"{path}[y_test]")
        classes = _classes_option(opts)
        if classes is None and "classes" in keys:
            names = _npz_member(archive, path, "classes")
            if names.ndim != 1:
                raise DataError(f"{path}: 'classes' has shape {names.shape}; give a 1-D array of names")
            classes = tuple(str(c) for c in names.tolist())
    return _build(
        name, "npz", (x, y, f"{path}[{x_key}]", f"{path}[{y_key}]"), test,
        scale=_scale_option(opts), classes=classes, classes_origin=str(path),
        description=f"npz file {path.resolve()}", sha256={path.name: _sha256_file(path)},
    )


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file ({exc}); write it with numpy.save") from None
    if not isinstance(array, np.ndarray):
        if isinstance(array, np.lib.npyio.NpzFile):
            array.close()
        raise DataError(f"{path} is not a single-array .npy file; write it with numpy.save (or use the npz source)")
    return array


def _open_npy(opts: Mapping[str, Any]) -> Source:
    name = _name_of("npy", opts)
    keys = ["x", "y"] + (["x_test", "y_test"] if opts.get("x_test") is not None else [])
    paths = {k: _existing(opts[k], f"npy file {k!r}") for k in keys}
    arrays = {k: _load_npy(p) for k, p in paths.items()}
    sums: dict[str, str] = {}
    for path in paths.values():
        key = path.name if path.name not in sums else str(path)
        sums.setdefault(key, _sha256_file(path))
    test = None
    if "x_test" in arrays:
        test = (arrays["x_test"], arrays["y_test"], str(paths["x_test"]), str(paths["y_test"]))
    return _build(
        name, "npy", (arrays["x"], arrays["y"], str(paths["x"]), str(paths["y"])), test,
        scale=_scale_option(opts), classes=_classes_option(opts),
        classes_origin=f"classes of data source {name!r}",
        description="npy files " + ", ".join(f"{k}={p.resolve()}" for k, p in paths.items()),
        sha256=sums,
    )


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else value.numpy()
    return np.asarray(value)


def _open_torchvision(opts: Mapping[str, Any], data_root: str | os.PathLike | None) -> Source:
    cls_name = str(opts["class"])
    name = _name_of("torchvision", opts)
    try:
        import torchvision
        import torchvision.datasets
    except Exception as exc:  # noqa: BLE001 - ImportError, or a torchvision built for another torch
        raise SettingsError(
            f"the torchvision source {cls_name} needs torchvision, which does not import "
            f"({exc.__class__.__name__}: {exc}): pip install torchvision"
        ) from None
    cls = getattr(torchvision.datasets, cls_name, None)
    if not isinstance(cls, type):
        raise SettingsError(f"torchvision.datasets has no data set class {cls_name!r} (names are case-sensitive)")
    root_value = opts.get("root")
    if root_value is None:
        root_value = data_root if data_root is not None else default_data_root()
    root = Path(os.fspath(root_value)).expanduser()
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = cls(str(root), train=train, download=False)
        except TypeError as exc:
            raise SettingsError(
                f"torchvision.datasets.{cls_name} does not take train=True/False ({exc}); "
                "only such data sets can be a torchvision source: save others as .npz"
            ) from None
        except (RuntimeError, OSError) as exc:
            raise MissingDataError(
                f"torchvision.datasets.{cls_name} ({split}) is not in {root} ({exc}); the engine never "
                f"downloads at run time: download it once with "
                f"torchvision.datasets.{cls_name}({str(root)!r}, train={train}, download=True)"
            ) from None
        missing = [a for a in ("data", "targets") if not hasattr(ds, a)]
        if missing:
            raise SettingsError(
                f"torchvision.datasets.{cls_name} has no .{missing[0]} array; only data sets with "
                ".data and .targets can be a torchvision source: save others as .npz"
            )
        splits[split] = (ds, _to_numpy(ds.data), _to_numpy(ds.targets))
    given = getattr(splits["train"][0], "classes", None)
    classes = tuple(str(c) for c in given) if given is not None and len(given) else None
    origin = f"torchvision.datasets.{cls_name} in {root}"
    version = getattr(torchvision, "__version__", "?")
    return _build(
        name, "torchvision",
        (splits["train"][1], splits["train"][2], f"{origin} (train .data)", f"{origin} (train .targets)"),
        (splits["test"][1], splits["test"][2], f"{origin} (test .data)", f"{origin} (test .targets)"),
        scale=_scale_option(opts), classes=classes, classes_origin=origin,
        description=f"torchvision {version} datasets.{cls_name} in {root.resolve()}",
        sha256={
            f"{name}-{split}-{part}": _sha256_array(arr)
            for split, (_, x, y) in splits.items()
            for part, arr in (("examples", x), ("labels", y))
        },
    )


# --------------------------------------------------------------------------- in memory


def type_name(value: Any, article: bool = True) -> str:
    """``value``'s type for a message, never the value itself.

    Parameters
    ----------
    value : object
        Anything.
    article : bool, default True
        Begin with "a" or "an".

    Returns
    -------
    str
        The type's qualified name (its module but for builtins).

    Examples
    --------
    >>> type_name(np.zeros(3)), type_name(3), type_name([1], article=False)
    ('a numpy.ndarray', 'an int', 'list')
    """
    cls = type(value)
    module = cls.__module__
    name = cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    if not article:
        return name
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def is_array_like(value: Any) -> bool:
    """Whether ``value`` is an array: a numpy array, a torch tensor or anything else with
    ``__array__`` (not a string, bytes or a mapping).

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_array_like(np.zeros(3)), is_array_like([1, 2]), is_array_like("x")
    (True, False, False)
    """
    return not isinstance(value, (str, bytes, Mapping)) and (isinstance(value, np.ndarray) or hasattr(value, "__array__"))


def _torch_data_kind(value: Any) -> str | None:
    """``"loader"`` for a torch DataLoader, ``"dataset"`` for a torch Dataset, else None
    (without importing torch: where it is not imported, nothing is either)."""
    data = sys.modules.get("torch.utils.data")
    if data is None:
        return None
    if isinstance(value, data.DataLoader):
        return "loader"
    if isinstance(value, data.Dataset):
        return "dataset"
    return None


def _as_array(value: Any, origin: str) -> np.ndarray:
    """``value`` as a numpy array: a torch tensor detached and on the CPU, anything else through numpy."""
    if "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
        import torch

        tensor = value.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        raise DataError(f"{origin}: {type_name(value)} that numpy cannot make one array of (rows of different "
                        "lengths?); give a numpy array or a torch tensor") from None


def _shape(array: np.ndarray) -> str:
    return f"{array.dtype} {tuple(array.shape)}"


def _memory_mapping(data: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """The keyword arguments of ``_memory_source`` from a mapping of arrays, its keys checked."""
    unknown = [key for key in data if key not in MEMORY_KEYS]
    if unknown:
        raise SettingsError(f"a data set from memory has unknown key {str(unknown[0])[:40]!r}: its keys are "
                            f"{', '.join(MEMORY_KEYS)} (or give a 'source' key for a data set on disk)")
    missing = [key for key in ("x", "y") if data.get(key) is None]
    if missing:
        raise SettingsError(f"a data set from memory needs {' and '.join(map(repr, missing))}: give "
                            "{'x': examples, 'y': labels}")
    if (data.get("x_test") is None) != (data.get("y_test") is None):
        have, need = ("x_test", "y_test") if data.get("x_test") is not None else ("y_test", "x_test")
        raise SettingsError(f"a data set from memory has {have!r} but not {need!r}: give both or neither")
    paths = [key for key in ("x", "y", "x_test", "y_test") if isinstance(data.get(key), (str, os.PathLike))]
    if paths:
        raise SettingsError(f"a data set from memory has a path as {paths[0]!r}: for .npy files give "
                            "{'source': 'npy', 'x': ..., 'y': ...}, for arrays the arrays themselves")
    name = _check_name(data["name"] if data.get("name") is not None else name if name is not None else MEMORY_NAME)
    origin = f"data set {name!r}"
    arrays = {key: _as_array(data[key], f"{key} of {origin}") for key in ("x", "y", "x_test", "y_test")
              if data.get(key) is not None}
    described = ", ".join(f"{key} {_shape(array)}" for key, array in arrays.items())
    return dict(name=name, **arrays, classes=_classes_option(data), scale=_scale_option(data),
                description=f"arrays from memory: {described}")


def _refuse_shuffling(loader: Any, origin: str) -> None:
    """A DataLoader whose sampler draws examples at random gives another order each pass."""
    from torch.utils.data import RandomSampler, SubsetRandomSampler, WeightedRandomSampler

    samplers = (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None))
    drawn = next((s for s in samplers if isinstance(s, (RandomSampler, SubsetRandomSampler, WeightedRandomSampler))),
                 None)
    if drawn is not None:
        raise SettingsError(f"{origin}: the DataLoader draws its examples at random ({type(drawn).__name__}); the "
                            "order of examples must be fixed: give shuffle=False")


def _read_dataset(dataset: Any, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """A Dataset's ``(x, y)`` items as two arrays: a TensorDataset's tensors as they are,
    another map-style data set item by item in index order, an iterable one as it yields."""
    from torch.utils.data import IterableDataset, TensorDataset

    if isinstance(dataset, TensorDataset):
        if len(dataset.tensors) != 2:
            raise SettingsError(f"{origin}: a TensorDataset of {len(dataset.tensors)} tensor(s); give two, "
                                "TensorDataset(x, y)")
        x, y = (_as_array(t, f"{part} of {origin}") for t, part in zip(dataset.tensors, ("x", "y")))
        return x, y
    if isinstance(dataset, IterableDataset):
        return _read_pairs(dataset, origin)
    try:
        size = len(dataset)
    except TypeError:
        raise SettingsError(f"{origin}: {type_name(dataset)} has no length (__len__); give a map-style data "
                            "set, or a DataLoader over it") from None
    return _read_pairs((dataset[i] for i in range(size)), origin)


def _read_pairs(items: Any, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` items, single examples (a 0-d label each) or batches, as two arrays."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    single: bool | None = None
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise SettingsError(f"{origin}: item {i} is {type_name(item)}"
                                f"{f' of {len(item)}' if isinstance(item, (tuple, list)) else ''}, not an (x, y) "
                                "pair; give one that yields (examples, labels)")
        x, y = _as_array(item[0], f"x of {origin}"), _as_array(item[1], f"y of {origin}")
        if single is None:
            single = y.ndim == 0
        if single != (y.ndim == 0):
            raise DataError(f"{origin}: item {i} has labels of shape {y.shape}, item 0 {'one' if single else 'a batch'}"
                            "; give one label per example, or a batch of them, throughout")
        xs.append(x[np.newaxis] if single else x)
        ys.append(y[np.newaxis] if single else y)
    if not xs:
        raise DataError(f"{origin}: no examples (it yields nothing)")
    try:
        x = np.concatenate(xs)
    except ValueError:
        shapes = sorted({tuple(b.shape[1:]) for b in xs}, key=str)[:3]
        raise DataError(f"x of {origin}: examples of different shapes ({', '.join(map(str, shapes))}); give "
                        "examples of one shape") from None
    try:
        y = np.concatenate(ys)
    except (TypeError, ValueError):
        raise DataError(f"y of {origin}: labels of different types or shapes across items; give integer labels, or "
                        "class names, one per example") from None
    return x, y


def _memory_source(*, name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None = None,
                   y_test: np.ndarray | None = None, classes: Sequence[str] | Mapping | None = None,
                   scale: float | None = None, description: str) -> Source:
    """Checked, digested and registered: the Source of arrays in memory."""
    origin = f"data set {name!r}"
    test = None if x_test is None else (x_test, y_test, f"x_test of {origin}", f"y_test of {origin}")
    source = _build(name, "memory", (x, y, f"x of {origin}", f"y of {origin}"), test, scale=scale, classes=classes,
                    classes_origin=f"classes of {origin}", description=description, sha256={})
    source = dataclasses.replace(source, sha256=_content_digests(source))
    _IN_MEMORY[(source.name, source.sha256[CONTENT_KEY])] = source
    return source


def _labels_digest(labels: np.ndarray) -> str:
    """sha256 of labels by value: integers of any dtype as int64, strings as UTF-8."""
    if labels.dtype.kind == "U":
        return hashlib.sha256(json.dumps(labels.tolist()).encode("utf-8", "surrogatepass")).hexdigest()
    return _sha256_array(np.asarray(labels, dtype=np.int64))


def _content_digests(source: Source) -> dict[str, str]:
    """Digests of a source's arrays as the engine reads them (uint8 or float32 examples,
    labels by value), and under ``CONTENT_KEY`` of them all with their shapes, the classes
    and the scale: what decides a run's numbers."""
    splits = {"": source.train, "_test": source.test}
    sums: dict[str, str] = {}
    shapes: dict[str, list] = {}
    for suffix, split in splits.items():
        if split is not None:
            sums[f"x{suffix}"] = _sha256_array(split.examples)
            sums[f"y{suffix}"] = _labels_digest(split.labels)
            shapes[f"x{suffix}"] = [str(split.examples.dtype), list(split.examples.shape)]
            shapes[f"y{suffix}"] = ["str" if split.labels.dtype.kind == "U" else "int", list(split.labels.shape)]
    content = {"format": _CONTENT_FORMAT, "sha256": sums, "shapes": shapes, "classes": list(source.classes),
               "label_values": list(source.label_values), "scale": source.scale}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()
    return {**sums, CONTENT_KEY: digest}


def _open_memory(opts: Mapping[str, Any]) -> Source:
    name = _name_of("memory", opts)
    source = _IN_MEMORY.get((name, str(opts["sha256"])))
    if source is None:
        raise MissingDataError(f"data set {name!r} was given from memory (arrays in Python); the command line cannot "
                               "supply it: resume from Python with repscope.analyze(..., the same data, out=...)")
    return source
