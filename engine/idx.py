"""Read and write the IDX format of the MNIST files (unsigned bytes only).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian 32-bit size per dimension (read unsigned), then the data in C
order. Only the unsigned-byte type (0x08), which every file of MNIST and FashionMNIST
uses, is supported.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from pathlib import Path

import numpy as np

from .errors import DataError, MissingDataError

_UBYTE = 0x08


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8, 1 to 3 dimensions) to ``path`` atomically.

    The bytes go to ``<path>.partial`` beside ``path``, which replaces it only once it is
    complete, so a crash never leaves a half-written file under the final name; a write
    that fails removes the partial file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; a directory there is refused.
    array : numpy.ndarray
        uint8 data of 1 to 3 dimensions.

    Raises
    ------
    DataError
        ``array`` is not uint8 of 1 to 3 dimensions, ``path`` is a directory, or the
        write failed (the message names ``path``).
    """
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise DataError(f"IDX files hold uint8 data; got {array.dtype} for {path}")
    if not 1 <= array.ndim <= 3:
        raise DataError(f"IDX files here hold 1 to 3 dimensions; got {array.ndim} for {path}")
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory, not an IDX file; remove it")
    tmp = path.with_name(path.name + ".partial")
    header = struct.pack(">BBBB", 0, 0, _UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(array.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # never leave the partial file behind, whatever stopped the write
        if tmp.is_file():
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, OSError):
            raise DataError(f"{path} could not be written ({exc.strerror or exc})") from None
        raise


def read_idx(path: str | os.PathLike, *, mmap: bool = True) -> np.ndarray:
    """Read an IDX file of unsigned bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file.
    mmap : bool
        Memory-map the data read-only, so that reading the first rows of a large file
        costs only those rows.

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape the header declares.

    Raises
    ------
    MissingDataError
        ``path`` does not exist.
    DataError
        ``path`` is a directory, unreadable, truncated, longer than its header says, or
        not an IDX file of unsigned bytes; the message names it.
    """
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"{path} does not exist")
    if not path.is_file():
        raise DataError(f"{path} is {'a directory' if path.is_dir() else 'not a regular file'}, not an IDX file")
    try:
        return _read(path, mmap)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc})") from None


def _read(path: Path, mmap: bool) -> np.ndarray:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0:
            raise DataError(f"{path} is not an IDX file (bad magic number {head!r})")
        if head[2] != _UBYTE:
            raise DataError(f"{path} holds IDX type 0x{head[2]:02x}; only unsigned bytes (0x08) are supported")
        ndim = head[3]
        if not 1 <= ndim <= 3:
            raise DataError(f"{path} declares {ndim} dimensions; expected 1 to 3")
        dims_raw = f.read(4 * ndim)
        if len(dims_raw) < 4 * ndim:
            raise DataError(f"{path} is truncated inside its header")
        shape = struct.unpack(f">{ndim}I", dims_raw)
    offset = 4 + 4 * ndim
    expected = offset + math.prod(shape)
    if size < expected:
        raise DataError(
            f"{path} is truncated: {size} bytes where its header {tuple(shape)} needs {expected}"
        )
    if size > expected:
        raise DataError(f"{path} has {size - expected} bytes beyond its declared shape {tuple(shape)}")
    if mmap:
        return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=tuple(shape))
    with open(path, "rb") as f:
        f.seek(offset)
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def read_rows(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of an array from ``read_idx``, as a fresh in-memory copy.

    For a memory-mapped file the rows are read with plain file I/O, so that streaming
    through a large file does not leave every page it touched in the resident set.
    """
    if not isinstance(array, np.memmap) or array.filename is None:
        return np.array(array[start:stop])
    stop = min(stop, array.shape[0])
    row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize
    with open(array.filename, "rb") as f:
        f.seek(array.offset + start * row_bytes)
        raw = f.read(max(0, stop - start) * row_bytes)
    return np.frombuffer(raw, dtype=array.dtype).reshape(-1, *array.shape[1:]).copy()
