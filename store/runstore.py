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
checksums in chunk order, so a chunk that is missing, altered, moved to another place of
the array or replaced by another valid chunk changes it. Opening an array to read
(``array``, ``read``) and asking what an array is made from (``made_from``, which every
derived array's fingerprint holds) check that it is complete and that its chunks'
checksums give its digest: only the last 4 bytes of each chunk are read, once per array
and handle (``RunStore`` object) as long as the recorded digest stays the same; decoding
then checks each chunk read against its checksum. ``verify`` reads every stored byte and
checks both. An array that fails is marked incomplete (with the reason, under
``damaged``) and ``DamagedArrayError`` names it, so the stage that writes it rebuilds it
on the next run. Arrays of an earlier format (without checksums, or without seals) count
as incomplete and are rebuilt.

What the engine records beside an array (its fingerprint, completion, digest, the
values the stages keep there: metrics, measures, timings) is *sealed*: each entry of the
record has the sha256 of its canonical JSON recorded beside it (``seals``) whenever the
record is written, and is checked whenever it is read. An entry changed afterwards (an
edit by hand, a bad copy) is damaged metadata: a cached value (``CACHES``) is dropped,
so the stage that uses it computes it again; any other entry makes the whole record
untrustworthy, so the array counts as absent and is rebuilt. ``verify`` names both.
Values kept in a group's attributes (``keep``, ``kept``) carry their seal in the same way.

Metadata is checked too. ``scan`` walks the store folder by folder, reading each node's
``zarr.json`` on its own, so one that is cut short, corrupt or missing is named
(``DamagedNode``) instead of stopping the walk. An array whose metadata does not read
counts as absent, so the stage that writes it rebuilds it; a group's metadata holds only
attributes that the stages write again, so ``repair_groups`` (called by extraction) and
``ensure_groups`` recreate it, and the root group is recreated when the store is opened.
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
#: The store format: 2 adds per-chunk checksums, chunks written even when empty, and digests;
#: 3 seals every entry of the engine's record (``seals``).
FORMAT = 3
#: Where the seals of the record's entries are kept, in the record itself.
_SEALS = "seals"
#: Entries of the record that hold values computed from the array and kept to save time:
#: one whose seal fails is dropped (the stage that uses it computes it again) rather than
#: the whole record being distrusted.
CACHES = ("metrics", "measures", "representation_metrics")
#: Every array's bytes-to-bytes codecs: zarr's default compressor, then a checksum of its output.
COMPRESSORS = (ZstdCodec(level=0, checksum=False), Crc32cCodec())
#: Every array is opened so that a chunk of fill values is written, not left out: a missing
#: chunk is then always damage.
_CONFIG = {"write_empty_chunks": True}
#: Chunks fetched at once when verifying or digesting; metadata files read at once by ``scan``.
_BATCH = 64
#: (store, array, problem) of the damaged records already logged by this process.
_NOTED: set[tuple] = set()
#: A node's metadata file, and how its kind is told from a part of one.
_META = "zarr.json"
_NODE_TYPE = re.compile(rb'"node_type"\s*:\s*"(array|group)"')
_KINDS = ("array", "group")


class DamagedArrayError(ValueError):
    """An array of the store failed its checks (a missing chunk, a checksum or digest that
    does not match, chunks moved or replaced); it has been marked incomplete, so a rerun
    rebuilds it."""

    #: The command line's exit code for data errors.
    exit_code = 3


@dataclass
class DamagedNode:
    """An array or group whose ``zarr.json`` is cut short, corrupt or missing (``scan``)."""

    key: str
    kind: str  # "array" or "group"
    problem: str


@dataclass
class Verified:
    """What ``RunStore.verify`` found for one array: ``problem`` is None when it is sound;
    ``cached`` is True where only values cached in its record were damaged (they are
    dropped, and the array's data is sound)."""

    key: str
    chunks: int
    nbytes: int
    seconds: float
    problem: str | None = None
    cached: bool = False


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


def _seal(value) -> str:
    """sha256 of ``value``'s canonical JSON (sorted keys, no spaces; NaN as zarr writes it)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _sealed(record: dict) -> dict:
    """``record`` as it is written: normalised (as it reads back), with the seal of every entry."""
    body = _normalise({k: v for k, v in record.items() if k != _SEALS})
    return {**body, _SEALS: {name: _seal(value) for name, value in body.items()}}


def _unseal(record: dict) -> tuple[dict, str | None, list[str]]:
    """Check the seals of a record as read.

    Returns
    -------
    info : dict
        The record without its seals and without the cached entries whose seal fails.
    problem : str or None
        What is wrong with an entry other than a cache (the whole record is then not to be
        trusted), in one phrase; None where nothing is, or where the record is of an earlier
        format (rebuilt anyway).
    dropped : list of str
        The cached entries (``CACHES``) whose seal fails, dropped from ``info``.
    """
    info = {k: v for k, v in record.items() if k != _SEALS}
    if info.get("format") != FORMAT:
        return info, None, []
    seals = record.get(_SEALS)
    if not isinstance(seals, dict):
        return info, f"its metadata has no seals ({_SEALS} is missing or not a mapping)", []
    bad = sorted(name for name in set(info) | set(seals) if name not in info or seals.get(name) != _seal(info[name]))
    core = [name for name in bad if name not in CACHES]
    if core:
        return info, f"its metadata was changed after it was written ({', '.join(core)}: not what its seal records)", []
    return {k: v for k, v in info.items() if k not in bad}, None, bad


def _cache_problem(dropped: list[str]) -> str:
    return (f"its metadata was changed after it was written (cached {', '.join(dropped)}: not what its seal "
            "records); not used: dropped, and a rerun computes it again")


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
        #: Groups whose metadata was found damaged and recreated by this handle.
        self.repaired: list[DamagedNode] = []
        #: array -> the digest its chunks' checksums were found to give (checked once per handle).
        self._checked: dict[str, str] = {}
        try:
            self.root = zarr.open_group(str(self.path), mode="a", zarr_format=3, **options)
        except Exception:
            try:
                problem = self._root_problem(options.get("storage_options", {}))
            except Exception:  # not a damaged root (a store that cannot be reached): the error above stands
                problem = None
            if problem is None:
                raise
            self.root = zarr.open_group(str(self.path), mode="a", zarr_format=3, **options)
            self._note_repair(DamagedNode("", "group", problem))

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
        self._checked.pop(key, None)
        array = self.root.create_array(
            key, shape=shape, dtype=dtype, chunks=chunks, overwrite=True, compressors=COMPRESSORS,
            dimension_names=dims or default_dims(key, len(shape)), config=_CONFIG,
            attributes={**(attributes or {}),
                        _ATTR: _sealed({"fingerprint": fingerprint, "rows_done": 0, "complete": False,
                                        "format": FORMAT})},
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
        digest = _digest(b for _, b in trailers)
        _record(progress.array, {**info, "complete": True, "digest": digest})
        self._checked[progress.key] = digest
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
        _record(array, {**info, **values})

    def describe(self, key: str, **attributes) -> None:
        """Set plain attributes (what xarray shows: a description, class names) of the array
        or group ``key``; a group is made where there is nothing."""
        try:
            node = self.root[key]
        except Exception:  # absent, or its metadata cut short: made, or recreated (a group's holds only these)
            node = self._require_group(key)
        values = _normalise(attributes)
        if any(node.attrs.get(name) != value for name, value in values.items()):  # else nothing is written
            node.attrs.update(values)

    def attributes(self, key: str) -> dict:
        """The plain attributes of the array or group ``key`` ({} where there is nothing)."""
        try:
            return dict(self.root[key].attrs)
        except (KeyError, ValueError, TypeError):  # absent, or its metadata unreadable: nothing recorded
            return {}

    def info(self, key: str) -> dict | None:
        """The recorded attributes of array ``key`` (fingerprint, rows, completion and extras)."""
        state = self._state(key)
        return None if state is None else state[1]

    def made_from(self, key: str) -> dict:
        """What array ``key`` is made from and its digest ({} where it does not exist): the
        part of a derived array's fingerprint that says which source bytes it was made of.

        A complete array's chunks are checked against its digest first (``check``), so that
        nothing is taken to be made from bytes that are no longer there; DamagedArrayError
        names it where they are not."""
        state = self._state(key)
        if state is None:
            return {}
        array, info = state
        if info.get("complete") and info.get("format") == FORMAT:
            self._check(key, array, info)
        return {**info.get("fingerprint", {}), "digest": info.get("digest")}

    def keep(self, key: str, name: str, value) -> None:
        """Keep ``value`` (computed from arrays below group ``key``) in the group's attributes
        under ``name``, sealed: ``kept`` gives it back only while it is as written."""
        value = _normalise({"v": value})["v"]
        self.describe(key, **{name: {"value": value, "seal": _seal(value)}})

    def kept(self, key: str, name: str):
        """The value kept under ``name`` in group ``key``'s attributes by ``keep``; None where
        there is none, or where it was changed after it was written (logged: the caller
        computes it again and keeps it anew)."""
        kept = self.attributes(key).get(name)
        if not isinstance(kept, dict) or "seal" not in kept or "value" not in kept:
            return None
        if kept["seal"] != _seal(kept["value"]):
            log.warning("%s: %s", "/".join(p for p in (str(self.path), key) if p), _group_problem([name]))
            return None
        return kept["value"]

    def ensure_groups(self, *paths: str) -> None:
        """Create groups (and their parents) before parallel writers add arrays under them; a
        group among them whose metadata is cut short, corrupt or missing is recreated."""
        done = set()
        for path in paths:
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts) + 1):
                group = "/".join(parts[:depth])
                if group not in done:
                    done.add(group)
                    self._require_group(group)

    def _require_group(self, key: str) -> zarr.Group:
        """Group ``key``, made where there is nothing and recreated where its metadata is unreadable."""
        try:
            return self.root.require_group(key)
        except Exception:
            problem = self._metadata_problem(key)
            if problem is None:
                raise
            return self._recreate_group(DamagedNode(key, "group", problem))

    def _metadata_problem(self, key: str) -> str | None:
        """What is wrong with the ``zarr.json`` of node ``key`` (None where it reads, or is absent)."""
        store, base = self.root.store_path.store, self.root.store_path.path
        buffer = sync(store.get("/".join(p for p in (base, key, _META) if p), default_buffer_prototype()))
        return None if buffer is None else _parse(buffer.to_bytes())[1]

    def scan(self) -> tuple[list[str], list[DamagedNode]]:
        """Walk the whole store, reading every node's ``zarr.json`` on its own.

        Returns
        -------
        arrays : list of str
            Every array the engine wrote (complete or not) whose metadata reads, sorted.
        damaged : list of DamagedNode
            Every array or group whose ``zarr.json`` is cut short, corrupt or not Zarr
            metadata, and every folder that holds nodes (or chunks) but no ``zarr.json``;
            sorted by key. The walk goes on below a damaged group.
        """
        store, base = self.root.store_path.store, self.root.store_path.path
        prototype = default_buffer_prototype()

        def full(key: str) -> str:
            return "/".join(p for p in (base, key) if p)

        async def listing(key: str) -> list[str]:
            """The names in folder ``key`` but its own ``zarr.json`` (none for a file)."""
            try:
                names = [name async for name in store.list_dir(full(key))]
            except (FileNotFoundError, NotADirectoryError):
                return []
            return [name for name in names if name and "/" not in name and name != _META]

        async def children(group: str) -> list[str]:
            return [f"{group}/{name}".lstrip("/") for name in await listing(group)]

        async def metadata(key: str) -> bytes | None:
            buffer = await store.get(full(f"{key}/{_META}"), prototype)
            return None if buffer is None else buffer.to_bytes()

        async def below(key: str) -> str | None:
            """``group`` where a node's metadata lies below ``key``, ``array`` where only chunks do."""
            names = await listing(key)
            for name in names:
                if await store.exists(full(f"{key}/{name}/{_META}")):
                    return "group"
                if name != "c" and await below(f"{key}/{name}") == "group":  # "c": an array's chunks
                    return "group"
            return "array" if "c" in names else None

        async def kind_of(key: str, raw: bytes) -> str:
            """The kind of node whose metadata ``raw`` does not read: as far as it says, else by what is below."""
            found = _NODE_TYPE.search(raw)
            if found:
                return found.group(1).decode()
            return await below(key) or ("array" if b'"shape"' in raw or b'"data_type"' in raw else "group")

        async def walk() -> tuple[list[str], list[DamagedNode]]:
            arrays, damaged, level = [], [], [""]
            while level:
                listed = await asyncio.gather(*(children(g) for g in level))
                keys = [k for names in listed for k in names]
                level = []
                for a in range(0, len(keys), _BATCH):
                    batch = keys[a:a + _BATCH]
                    for key, raw in zip(batch, await asyncio.gather(*(metadata(k) for k in batch))):
                        if raw is None:
                            kind = await below(key)
                            if kind is None:
                                continue  # a stray file or an empty folder: no node
                            damaged.append(DamagedNode(key, kind, f"its {_META} is missing"))
                        else:
                            meta, problem = _parse(raw)
                            if problem is not None:
                                kind = await kind_of(key, raw)
                                damaged.append(DamagedNode(key, kind, problem))
                            else:
                                kind = meta["node_type"]
                                attributes = meta.get("attributes")
                                attributes = attributes if isinstance(attributes, dict) else {}
                                if kind == "array" and isinstance(attributes.get(_ATTR), dict):
                                    sealing = _unseal(attributes[_ATTR])[1]
                                    if sealing is None:
                                        arrays.append(key)
                                    else:  # counts as absent: the stage that writes it rebuilds it
                                        damaged.append(DamagedNode(key, kind, sealing))
                                elif kind == "group":
                                    bad = [name for name, v in attributes.items() if isinstance(v, dict)
                                           and "seal" in v and v.get("seal") != _seal(v.get("value"))]
                                    if bad:
                                        damaged.append(DamagedNode(key, kind, _group_problem(bad)))
                        if kind == "group":
                            level.append(key)
            return sorted(arrays), sorted(damaged, key=lambda node: node.key)

        # zarr's own bridge from its asynchronous store interface (what its synchronous API uses)
        return sync(walk())

    def repair_groups(self) -> list[DamagedNode]:
        """Recreate the metadata of every group whose ``zarr.json`` is cut short, corrupt or
        missing, without attributes (the stages that record attributes on a group write them
        again; the arrays below it are not touched).

        Returns
        -------
        list of DamagedNode
            The groups recreated (with the root, where opening the store recreated it).
        """
        fixed = [node for node in self.scan()[1] if node.kind == "group"]
        for node in fixed:
            self._recreate_group(node)
        return self.repaired[:]

    def _recreate_group(self, node: DamagedNode) -> zarr.Group:
        store, base = self.root.store_path.store, self.root.store_path.path
        sync(store.delete("/".join(p for p in (base, node.key, _META) if p)))
        group = self.root.require_group(node.key)
        self._note_repair(node)
        return group

    def _note_repair(self, node: DamagedNode) -> None:
        self.repaired.append(node)
        log.warning("%s: group metadata damaged (%s); recreated it without attributes (the run writes them again)",
                    "/".join(p for p in (str(self.path), node.key) if p), node.problem)

    def _root_problem(self, storage_options: dict) -> str | None:
        """What is wrong with the root group's ``zarr.json`` (None where nothing is); an
        unreadable one is deleted, so that opening the store recreates it."""
        from zarr.storage import FsspecStore, LocalStore

        location = str(self.path)
        store = FsspecStore.from_url(location, storage_options=storage_options) if is_url(location) \
            else LocalStore(location)
        buffer = sync(store.get(_META, default_buffer_prototype()))
        problem = None if buffer is None else _parse(buffer.to_bytes())[1]
        if problem is not None:
            sync(store.delete(_META))
        return problem

    # ------------------------------------------------------------------ flags

    def set_flag(self, group: str, name: str) -> None:
        """Record that ``name`` happened, under ``group`` (made beforehand with
        ``ensure_groups(flag_group(group))``): one small group per flag, so processes that
        set flags side by side never rewrite a shared file."""
        self.root.require_group(f"{_FLAGS}/{group}/{_flag_name(name)}")

    def has_flag(self, group: str, name: str) -> bool:
        key = f"{_FLAGS}/{group}/{_flag_name(name)}"
        try:
            self.root[key]
        except KeyError:
            return False
        except Exception:
            if self._metadata_problem(key) is None:
                raise
            return True  # made, and its metadata cut short: the flag was set
        return True

    def clear_flags(self, group: str) -> None:
        with contextlib.suppress(KeyError):
            del self.root[f"{_FLAGS}/{group}"]

    def _set(self, progress: Progress, **values) -> None:
        current = self.info(progress.key) or {}  # re-read: another handle may have annotated it
        _record(progress.array, {**current, **values})

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
        self._checked.pop(key, None)
        state = self._state(key)
        if state is not None:
            _record(state[0], {**state[1], "complete": False, "rows_done": 0, "damaged": problem})
        log.error("%s/%s is damaged: %s; marked incomplete", self.path, key, problem)
        return DamagedArrayError(f"{self.path}/{key} is damaged: {problem}; it is marked incomplete, and a rerun "
                                 "rebuilds it and what is computed from it")

    def verify(self, key: str) -> Verified:
        """Read every stored byte of complete array ``key``; check that every chunk is there,
        that its checksum matches and that together they give the recorded digest, and the
        seals of its record. A damaged array is marked incomplete (``problem`` says why);
        cached values whose seal fails are dropped from its record (``problem`` says which,
        ``cached`` is True); an incomplete one is left as it is (``problem``:
        ``incomplete``)."""
        started = time.perf_counter()
        state = self._open(key)
        if state is None or not state[1].get("complete") or state[1].get("format") != FORMAT:
            return Verified(key, 0, 0, 0.0, "incomplete")
        array, info, dropped = state
        if dropped:  # written without them: a rerun computes them again
            _record(array, info)
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
            problem = _REPLACED
        if problem:
            self._damaged(key, problem)
        else:
            self._checked[key] = info["digest"]
            if dropped:
                return Verified(key, array.nchunks, nbytes, time.perf_counter() - started, _cache_problem(dropped),
                                cached=True)
        return Verified(key, array.nchunks, nbytes, time.perf_counter() - started, problem)

    def check(self, key: str) -> None:
        """Check that complete array ``key`` has every chunk and that their checksums give
        its recorded digest (reading only the last 4 bytes of each chunk); DamagedArrayError
        names it where not (it is then marked incomplete). Done once per array and handle
        while its recorded digest stays the same; ``array``, ``read`` and ``made_from`` call it."""
        state = self._state(key)
        if state is not None and state[1].get("complete") and state[1].get("format") == FORMAT:
            self._check(key, *state)

    def _check(self, key: str, array: zarr.Array, info: dict) -> None:
        digest = info.get("digest")
        if digest is not None and self._checked.get(key) == digest:
            return
        trailers, missing = [], []
        for chunk, trailer in self._fetch(array, SuffixByteRequest(4)):
            if trailer is None:
                missing.append(chunk)
            else:
                trailers.append(trailer)
        if missing:
            raise self._damaged(key, f"{len(missing)} of {array.nchunks} chunks are missing (first: {missing[0]})")
        if _digest(trailers) != digest:
            raise self._damaged(key, _REPLACED)
        self._checked[key] = digest

    def keys(self) -> list[str]:
        """Every array the engine wrote (complete or not) whose metadata reads, in store order
        (``scan`` also names the nodes whose metadata does not)."""
        return self.scan()[0]

    # ------------------------------------------------------------------ reading

    def _state(self, key: str) -> tuple[zarr.Array, dict] | None:
        state = self._open(key)
        return None if state is None else state[:2]

    def _open(self, key: str) -> tuple[zarr.Array, dict, list[str]] | None:
        """Array ``key``, its record with the seals checked, and the cached entries dropped
        from it because their seal fails; None where there is no record to trust (absent,
        unreadable, or an entry other than a cache changed: the array is then rebuilt)."""
        try:
            node = self.root[key]
        except KeyError:
            return None
        except Exception as exc:  # metadata cut short by a kill: rebuild the array
            log.warning("%s: metadata unreadable (%s); rebuilding it", key, exc)
            return None
        if not isinstance(node, zarr.Array) or not isinstance(node.attrs.get(_ATTR), dict):
            return None
        info, problem, dropped = _unseal(dict(node.attrs[_ATTR]))
        noted = (str(self.path), key, problem, tuple(dropped))
        if (problem or dropped) and noted not in _NOTED:
            _NOTED.add(noted)  # once per process, not per handle
            log.warning("%s/%s: %s", self.path, key, f"{problem}; it counts as absent, and the stage that writes it "
                        "rebuilds it" if problem else _cache_problem(dropped))
        if problem:
            return None
        return node.with_config(_CONFIG), info, dropped

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
        """A complete array with every chunk there and in its place (``check``: their
        checksums give its digest; each chunk's checksum is checked as it is read); a
        KeyError names it and the stage that writes it when it is incomplete, a
        DamagedArrayError when a chunk is missing, moved or replaced."""
        state = self._state(key)
        if state is None or not state[1].get("complete") or state[1].get("format") != FORMAT:
            raise KeyError(f"{self.path}/{key} is missing or incomplete; run `repscope extract` first")
        damage = self._all_chunks(key, state[0])  # every time: a chunk gone since the check reads as fill values
        if damage is not None:
            raise damage
        self._check(key, *state)
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


def _parse(raw: bytes) -> tuple[dict | None, str | None]:
    """A node's ``zarr.json`` as a mapping, or None and what is wrong with it, in one line."""
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict) or meta.get("node_type") not in _KINDS:
            raise ValueError("not Zarr metadata")
    except (ValueError, RecursionError) as exc:
        text = " ".join(str(exc).split())
        return None, f"its {_META} is cut short or corrupt ({type(exc).__name__}: {text[:160]})"
    return meta, None


def _record(array: zarr.Array, info: dict) -> None:
    """Write the engine's record ``info`` of ``array``, sealed."""
    array.attrs[_ATTR] = _sealed(info)


def _group_problem(names: list[str]) -> str:
    return (f"its metadata was changed after it was written (kept {', '.join(names)}: not what its seal records); "
            "not used: a rerun computes it again")


_REPLACED = ("its chunks do not give the digest recorded when it was written (a chunk was replaced, or moved to "
             "another place)")


def _digest(trailers) -> str:
    """sha256 of the chunks' checksums, in chunk order."""
    h = hashlib.sha256()
    for trailer in trailers:
        h.update(trailer)
    return h.hexdigest()
