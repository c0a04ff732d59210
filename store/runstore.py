"""A run's Zarr v3 store: arrays that are filled in row blocks, resumably.

Every array carries, in its attributes under ``repscope``, a *fingerprint* of what it is
computed from (data checksums, checkpoint checksums, N, chunking), how many rows are
written (``rows_done``, advanced only after a row block is fully written) and
``complete`` (set only after the last row block). A kill at any moment therefore leaves
either an array that says how far it got, or, if the kill hit its metadata write, one
that does not open and is rebuilt. An array whose fingerprint differs from the one asked
for is rebuilt from scratch rather than mixed with new rows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from .layout import ORIGINAL, Representation, array_key, chunks_for, labels_key

log = logging.getLogger(__name__)

_ATTR = "repscope"
_FLAGS = "_flags"


def flag_group(group: str) -> str:
    """The store path of a flag group, for ``RunStore.ensure_groups``."""
    return f"{_FLAGS}/{group}"


def _flag_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", ".", name)


@dataclass
class Progress:
    """An array being filled: the zarr array, and how many rows of it are written."""

    key: str
    array: zarr.Array
    rows_done: int
    complete: bool


def _normalise(obj: dict) -> dict:
    return json.loads(json.dumps(obj, sort_keys=True))


def is_url(location: str | os.PathLike) -> bool:
    """Whether a store location is an fsspec URL (``s3://...``, ``file://...``) rather than a path."""
    return isinstance(location, str) and "://" in location


class RunStore:
    """The Zarr store of one run: a local path (``<run>/store.zarr`` by default) or an
    fsspec URL that every worker can reach."""

    def __init__(self, location: str | os.PathLike) -> None:
        self.path = location if is_url(location) else Path(location)
        # fsspec's local file system does not create folders unless asked; object stores have none
        options = {"storage_options": {"auto_mkdir": True}} if str(location).startswith("file://") else {}
        self.root = zarr.open_group(str(self.path), mode="a", zarr_format=3, **options)

    # ------------------------------------------------------------------ writing

    def prepare(
        self,
        key: str,
        shape: tuple[int, ...],
        dtype: str | np.dtype,
        fingerprint: dict,
        chunks: tuple[int, ...] | None = None,
    ) -> Progress:
        """Open ``key`` to resume it, or (re)create it when absent, unreadable or stale."""
        fingerprint = _normalise(fingerprint)
        chunks = chunks or chunks_for(shape)
        state = self._state(key)
        if state is not None:
            array, info = state
            same = (
                info.get("fingerprint") == fingerprint
                and tuple(array.shape) == tuple(shape)
                and array.dtype == np.dtype(dtype)
                and tuple(array.chunks) == tuple(chunks)
            )
            if same:
                return Progress(key, array, int(info.get("rows_done", 0)), bool(info.get("complete", False)))
            log.info("%s: made from other inputs or settings; rebuilding it", key)
        array = self.root.create_array(
            key, shape=shape, dtype=dtype, chunks=chunks, overwrite=True,
            attributes={_ATTR: {"fingerprint": fingerprint, "rows_done": 0, "complete": False}},
        )
        return Progress(key, array, 0, False)

    def commit_rows(self, progress: Progress, rows_done: int) -> None:
        """Record that rows ``[0, rows_done)`` of the array are written."""
        self._set(progress, rows_done=int(rows_done))
        progress.rows_done = int(rows_done)

    def mark_complete(self, progress: Progress) -> None:
        """Mark the array complete; call only after every row is written."""
        if progress.rows_done != progress.array.shape[0]:
            raise RuntimeError(f"{progress.key}: {progress.rows_done} of {progress.array.shape[0]} rows written")
        self._set(progress, complete=True)
        progress.complete = True

    def write_whole(self, key: str, value: np.ndarray, fingerprint: dict,
                    chunks: tuple[int, ...] | None = None) -> Progress:
        """Write ``value`` as array ``key`` at once and mark it complete (for arrays small
        enough to hold in memory: principal components, labels)."""
        progress = self.prepare(key, value.shape, value.dtype, fingerprint, chunks=chunks)
        progress.array[:] = value
        self.commit_rows(progress, len(value))
        self.mark_complete(progress)
        return progress

    def annotate(self, key: str, **values) -> None:
        """Record extra facts about array ``key`` (timings, parameters, results) in its attributes."""
        state = self._state(key)
        if state is None:
            raise KeyError(f"{self.path}/{key} does not exist")
        array, info = state
        array.attrs[_ATTR] = {**info, **values}

    def info(self, key: str) -> dict | None:
        """The recorded attributes of array ``key`` (fingerprint, rows, completion and extras)."""
        state = self._state(key)
        return None if state is None else state[1]

    def ensure_groups(self, *paths: str) -> None:
        """Create groups (and their parents) before parallel writers add arrays under them."""
        for path in paths:
            self.root.require_group(path)

    # ------------------------------------------------------------------ flags

    def set_flag(self, group: str, name: str) -> None:
        """Record that ``name`` happened, under ``group`` (made beforehand with
        ``ensure_groups(flag_group(group))``): one small group per flag, so processes that
        set flags side by side never rewrite a shared file."""
        self.root.require_group(f"{_FLAGS}/{group}/{_flag_name(name)}")

    def has_flag(self, group: str, name: str) -> bool:
        try:
            self.root[f"{_FLAGS}/{group}/{_flag_name(name)}"]
        except KeyError:
            return False
        return True

    def clear_flags(self, group: str) -> None:
        with contextlib.suppress(KeyError):
            del self.root[f"{_FLAGS}/{group}"]

    def _set(self, progress: Progress, **values) -> None:
        current = self.info(progress.key) or {}  # re-read: another handle may have annotated it
        progress.array.attrs[_ATTR] = {**current, **values}

    # ------------------------------------------------------------------ reading

    def _state(self, key: str) -> tuple[zarr.Array, dict] | None:
        try:
            node = self.root[key]
        except KeyError:
            return None
        except Exception as exc:  # metadata cut short by a kill: rebuild the array
            log.warning("%s: metadata unreadable (%s); rebuilding it", key, exc)
            return None
        if not isinstance(node, zarr.Array) or _ATTR not in node.attrs:
            return None
        return node, dict(node.attrs[_ATTR])

    def is_complete(self, key: str, fingerprint: dict | None = None) -> bool:
        """Whether ``key`` is complete (and, if given, made from ``fingerprint``)."""
        state = self._state(key)
        if state is None or not state[1].get("complete"):
            return False
        return fingerprint is None or state[1].get("fingerprint") == _normalise(fingerprint)

    def array(self, key: str) -> zarr.Array:
        """A complete array; a KeyError names it and the stage that writes it otherwise."""
        state = self._state(key)
        if state is None or not state[1].get("complete"):
            raise KeyError(f"{self.path}/{key} is missing or incomplete; run `repscope extract` first")
        return state[0]

    def labels(self, dataset: str) -> np.ndarray:
        """(N,) uint8 class labels of the extracted examples."""
        return self.array(labels_key(dataset))[:]

    def read_representation(
        self, dataset: str, seed: int, network: str, rep: Representation, rows: slice = slice(None)
    ) -> np.ndarray:
        """Representation ``rep`` of ``network`` as a (rows, dims) float32 array.

        ``original`` is the input as the source gives it, divided by the source's scale
        (recorded as ``scale`` in the array's attributes: ``uint8 / 255`` for images); a
        channel reads only its own chunks; ``<layer>/all`` reads the whole layer flattened
        channel-major.
        """
        key = array_key(dataset, seed, network, rep.array)
        arr = self.array(key)
        block = arr[rows] if rep.channel is None else arr[rows, rep.channel]
        block = np.asarray(block).reshape(-1, rep.dims)
        if rep.array == ORIGINAL:
            scale = float((self.info(key) or {}).get("scale", 1.0))
            block = block.astype(np.float32)
            return block / np.float32(scale) if scale != 1.0 else block
        return block.astype(np.float32, copy=False)
