"""A run's Zarr v3 store: arrays that are filled in row blocks, resumably.

Every array carries, in its attributes under ``repscope``, a *fingerprint* of what it is
computed from (data checksums, checkpoint checksums, N, chunking), how many rows are
written (``rows_done``, advanced only after a row block is fully written) and
``complete`` (set only after the last row block). A kill at any moment therefore leaves
either an array that says how far it got, or, if the kill hit its metadata write, one
that does not open and is rebuilt. An array whose fingerprint differs from the one asked
for is rebuilt from scratch rather than mixed with new rows.

Nothing damaged is read as data. Every chunk ends with a crc32c checksum of its stored
bytes (Zarr v3's ``crc32c`` codec after ``zstd``), every chunk is written even when it
holds only zeros, and a complete array records a *digest*: the sha256 of its chunks'
checksums in chunk order, so a chunk that is missing, altered or swapped for another
changes it. Opening an array to read (``array``, ``read``) checks that it is complete
and that every chunk is there; decoding checks each chunk read; ``verify`` reads every
stored byte and checks both. An array that fails is marked incomplete (with the reason,
under ``damaged``) and ``DamagedArrayError`` names it, so the stage that writes it
rebuilds it on the next run. Arrays of an earlier format (without checksums) count as
incomplete and are rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from zarr.abc.store import SuffixByteRequest
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from .layout import ORIGINAL, Representation, array_key, chunks_for, default_dims, heldout_key, labels_key

log = logging.getLogger(__name__)

_ATTR = "repscope"
_FLAGS = "_flags"
#: The store format: 2 adds per-chunk checksums, chunks written even when empty, and digests.
FORMAT = 2
#: Every array's bytes-to-bytes codecs: zarr's default compressor, then a checksum of its output.
COMPRESSORS = (ZstdCodec(level=0, checksum=False), Crc32cCodec())
#: Every array is opened so that a chunk of fill values is written, not left out: a missing
#: chunk is then always damage.
_CONFIG = {"write_empty_chunks": True}
#: Chunks fetched at once when verifying or digesting.
_BATCH = 64


class DamagedArrayError(ValueError):
    """An array of the store failed its checks (a missing chunk, a checksum or digest that
    does not match); it has been marked incomplete, so a rerun rebuilds it."""

    #: The command line's exit code for data errors.
    exit_code = 3


@dataclass
class Verified:
    """What ``RunStore.verify`` found for one array: ``problem`` is None when it is sound."""

    key: str
    chunks: int
    nbytes: int
    seconds: float
    problem: str | None = None


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
        dims: tuple[str, ...] | None = None,
        attributes: dict | None = None,
    ) -> Progress:
        """Open ``key`` to resume it, or (re)create it when absent, unreadable, stale or of
        an earlier format.

        ``dims`` names the axes for xarray (default: ``layout.default_dims``);
        ``attributes`` are plain attributes beside the engine's (descriptions, class names).
        """
        fingerprint = _normalise(fingerprint)
        chunks = chunks or chunks_for(shape)
        state = self._state(key)
        if state is not None:
            array, info = state
            same = (
                info.get("format") == FORMAT
                and info.get("fingerprint") == fingerprint
                and tuple(array.shape) == tuple(shape)
                and array.dtype == np.dtype(dtype)
                and tuple(array.chunks) == tuple(chunks)
            )
            if same and info.get("complete") and self._all_chunks(key, array) is not None:
                return Progress(key, array, 0, False)  # a chunk is missing: marked incomplete, written again
            if same:
                return Progress(key, array, int(info.get("rows_done", 0)), bool(info.get("complete", False)))
            log.info("%s: made from other inputs or settings, or by an earlier format; rebuilding it", key)
        array = self.root.create_array(
            key, shape=shape, dtype=dtype, chunks=chunks, overwrite=True, compressors=COMPRESSORS,
            dimension_names=dims or default_dims(key, len(shape)), config=_CONFIG,
            attributes={**(attributes or {}),
                        _ATTR: {"fingerprint": fingerprint, "rows_done": 0, "complete": False, "format": FORMAT}},
        )
        return Progress(key, array, 0, False)

    def commit_rows(self, progress: Progress, rows_done: int) -> None:
        """Record that rows ``[0, rows_done)`` of the array are written."""
        self._set(progress, rows_done=int(rows_done))
        progress.rows_done = int(rows_done)

    def mark_complete(self, progress: Progress) -> None:
        """Record the array's digest and mark it complete; call only after every row is
        written. A chunk that is not there is an error, never fill values."""
        if progress.rows_done != progress.array.shape[0]:
            raise RuntimeError(f"{progress.key}: {progress.rows_done} of {progress.array.shape[0]} rows written")
        trailers = list(self._fetch(progress.array, SuffixByteRequest(4)))
        missing = [k for k, b in trailers if b is None]
        if missing:
            raise RuntimeError(f"{self.path}/{progress.key}: {len(missing)} chunk(s) were not written ({missing[0]})")
        info = {k: v for k, v in (self.info(progress.key) or {}).items() if k != "damaged"}  # rebuilt: sound again
        progress.array.attrs[_ATTR] = {**info, "complete": True, "digest": _digest(b for _, b in trailers)}
        progress.complete = True

    def write_whole(self, key: str, value: np.ndarray, fingerprint: dict,
                    chunks: tuple[int, ...] | None = None, dims: tuple[str, ...] | None = None,
                    attributes: dict | None = None) -> Progress:
        """Write ``value`` as array ``key`` at once and mark it complete (for arrays small
        enough to hold in memory: principal components, labels)."""
        progress = self.prepare(key, value.shape, value.dtype, fingerprint, chunks=chunks, dims=dims,
                                attributes=attributes)
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

    def describe(self, key: str, **attributes) -> None:
        """Set plain attributes (what xarray shows: a description, class names) of the array
        or group ``key``; a group is made where there is nothing."""
        try:
            node = self.root[key]
        except KeyError:
            node = self.root.require_group(key)
        node.attrs.update(_normalise(attributes))

    def attributes(self, key: str) -> dict:
        """The plain attributes of the array or group ``key`` ({} where there is nothing)."""
        try:
            return dict(self.root[key].attrs)
        except KeyError:
            return {}

    def info(self, key: str) -> dict | None:
        """The recorded attributes of array ``key`` (fingerprint, rows, completion and extras)."""
        state = self._state(key)
        return None if state is None else state[1]

    def made_from(self, key: str) -> dict:
        """What array ``key`` is made from and its digest ({} where it does not exist): the
        part of a derived array's fingerprint that says which source bytes it was made of."""
        info = self.info(key)
        return {} if info is None else {**info.get("fingerprint", {}), "digest": info.get("digest")}

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

    # ------------------------------------------------------------------ checking

    def _fetch(self, array: zarr.Array, byte_range=None):
        """(chunk key, stored bytes or None where absent) of every chunk of ``array``, in
        chunk order; ``byte_range`` reads a part of each (the checksum: the last 4 bytes)."""
        store, prefix = array.store_path.store, array.store_path.path
        keys = [f"{prefix}/{array.metadata.encode_chunk_key(c)}"
                for c in itertools.product(*(range(n) for n in array.cdata_shape))]
        prototype = default_buffer_prototype()

        async def get(batch):
            return await asyncio.gather(*(store.get(k, prototype, byte_range=byte_range) for k in batch))

        for a in range(0, len(keys), _BATCH):
            batch = keys[a:a + _BATCH]
            # zarr's own bridge from its asynchronous store interface (what its synchronous API uses)
            for key, buffer in zip(batch, sync(get(batch))):
                yield key, None if buffer is None else buffer.to_bytes()

    def _damaged(self, key: str, problem: str) -> DamagedArrayError:
        """Mark ``key`` incomplete (a rerun rebuilds it) and return the error naming it."""
        state = self._state(key)
        if state is not None:
            state[0].attrs[_ATTR] = {**state[1], "complete": False, "rows_done": 0, "damaged": problem}
        log.error("%s/%s is damaged: %s; marked incomplete", self.path, key, problem)
        return DamagedArrayError(f"{self.path}/{key} is damaged: {problem}; it is marked incomplete, and a rerun "
                                 "rebuilds it and what is computed from it")

    def verify(self, key: str) -> Verified:
        """Read every stored byte of complete array ``key``; check that every chunk is there,
        that its checksum matches and that together they give the recorded digest. A
        damaged array is marked incomplete (``problem`` says why); an incomplete one is
        left as it is (``problem``: ``incomplete``)."""
        started = time.perf_counter()
        state = self._state(key)
        if state is None or not state[1].get("complete") or state[1].get("format") != FORMAT:
            return Verified(key, 0, 0, 0.0, "incomplete")
        array, info = state
        trailers, missing, bad, nbytes = [], [], [], 0
        for chunk, data in self._fetch(array):
            if data is None:
                missing.append(chunk)
                continue
            nbytes += len(data)
            if len(data) < 4 or np.uint32(google_crc32c.value(data[:-4])).tobytes() != data[-4:]:
                bad.append(chunk)
            trailers.append(data[-4:])
        problem = None
        if missing:
            problem = f"{len(missing)} of {array.nchunks} chunks are missing (first: {missing[0]})"
        elif bad:
            problem = f"{len(bad)} chunk(s) fail their checksum (first: {bad[0]})"
        elif _digest(trailers) != info.get("digest"):
            problem = "its chunks do not give the digest recorded when it was written (a chunk was replaced)"
        if problem:
            self._damaged(key, problem)
        return Verified(key, array.nchunks, nbytes, time.perf_counter() - started, problem)

    def keys(self) -> list[str]:
        """Every array the engine wrote (complete or not), in store order."""
        return sorted(path for path, node in self.root.members(max_depth=None)
                      if isinstance(node, zarr.Array) and _ATTR in node.attrs)

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
        return node.with_config(_CONFIG), dict(node.attrs[_ATTR])

    def is_complete(self, key: str, fingerprint: dict | None = None) -> bool:
        """Whether ``key`` is complete, of the current format, with every chunk there (and,
        if given, made from ``fingerprint``). A complete array with a chunk missing is
        marked incomplete here."""
        state = self._state(key)
        if state is None or not state[1].get("complete") or state[1].get("format") != FORMAT:
            return False
        if fingerprint is not None and state[1].get("fingerprint") != _normalise(fingerprint):
            return False
        return self._all_chunks(key, state[0]) is None

    def _all_chunks(self, key: str, array: zarr.Array) -> DamagedArrayError | None:
        stored = array.nchunks_initialized
        if stored == array.nchunks:
            return None
        return self._damaged(key, f"{array.nchunks - stored} of {array.nchunks} chunks are missing")

    def array(self, key: str) -> zarr.Array:
        """A complete array with every chunk there (each chunk's checksum is checked as it
        is read); a KeyError names it and the stage that writes it when it is incomplete,
        a DamagedArrayError when a chunk is missing."""
        state = self._state(key)
        if state is None or not state[1].get("complete") or state[1].get("format") != FORMAT:
            raise KeyError(f"{self.path}/{key} is missing or incomplete; run `repscope extract` first")
        damage = self._all_chunks(key, state[0])
        if damage is not None:
            raise damage
        return state[0]

    def read(self, key: str, selection=slice(None), orthogonal: bool = False) -> np.ndarray:
        """``array(key)[selection]`` (``orthogonal``: ``get_orthogonal_selection``) as a numpy
        array; a chunk that fails its checksum or does not decode marks the array
        incomplete and raises DamagedArrayError."""
        array = self.array(key)
        try:
            return np.asarray(array.get_orthogonal_selection(selection) if orthogonal else array[selection])
        except Exception as exc:  # zarr raises ValueError (checksum) or the codec's own error
            why = "a chunk fails its checksum" if "checksum" in str(exc) else f"a chunk does not decode ({exc})"
            raise self._damaged(key, why) from None

    def labels(self, dataset: str, heldout: bool = False) -> np.ndarray:
        """(N,) class labels of the extracted examples (of the held-out ones with ``heldout``)."""
        key = labels_key(dataset)
        return self.read(heldout_key(key) if heldout else key)

    def read_representation(
        self, dataset: str, seed: int, network: str, rep: Representation, rows: slice = slice(None),
        heldout: bool = False,
    ) -> np.ndarray:
        """Representation ``rep`` of ``network`` as a (rows, dims) float32 array.

        ``original`` is the input as the source gives it, divided by the source's scale
        (recorded as ``scale`` in the array's attributes: ``uint8 / 255`` for images); a
        channel reads only its own chunks; ``<layer>/all`` reads the whole layer flattened
        channel-major.
        """
        key = array_key(dataset, seed, network, rep.array)
        key = heldout_key(key) if heldout else key
        block = self.read(key, rows if rep.channel is None else (rows, rep.channel))
        block = block.reshape(-1, rep.dims)
        if rep.array == ORIGINAL:
            scale = float((self.info(key) or {}).get("scale", 1.0))
            block = block.astype(np.float32)
            return block / np.float32(scale) if scale != 1.0 else block
        return block.astype(np.float32, copy=False)


def _digest(trailers) -> str:
    """sha256 of the chunks' checksums, in chunk order."""
    h = hashlib.sha256()
    for trailer in trailers:
        h.update(trailer)
    return h.hexdigest()
