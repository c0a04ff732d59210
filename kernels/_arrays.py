"""Array-module helpers: which module an array belongs to, validation, memory budgets.

Kernels take numpy or CuPy arrays and answer in the same module; CuPy is imported only
when a CuPy array is passed in, so a CPU install never imports it.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

#: Working memory a blocked kernel may use for one block, in bytes.
DEFAULT_BLOCK_BYTES = 256 * 2**20


class InputError(ValueError):
    """Arrays a kernel cannot use; the message names the value and the fix."""


def array_module(x) -> ModuleType:
    """``cupy`` for a CuPy array, else ``numpy``."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def is_cupy(xp: ModuleType) -> bool:
    return xp.__name__ == "cupy"


def stable_argsort(a, axis: int = -1):
    """Indices that sort ``a`` stably (equal keys keep their order) along ``axis``.

    CuPy's sort is a stable radix sort and takes no ``kind``; numpy needs ``kind="stable"``.
    """
    xp = array_module(a)
    return xp.argsort(a, axis=axis) if is_cupy(xp) else xp.argsort(a, axis=axis, kind="stable")


def validate(points, labels, *, min_points: int = 2):
    """Check an (N, d) point array and its (N,) integer labels; return them as arrays.

    Raises InputError for: fewer than ``min_points`` rows, a shape other than (N, d),
    labels that are not integers or not as many as the rows, arrays of different
    modules, NaN or Inf.
    """
    xp = array_module(points)
    if array_module(labels) is not xp:
        raise InputError("points and labels must both be numpy arrays or both CuPy arrays")
    points = xp.asarray(points)
    labels = xp.asarray(labels)
    if points.ndim != 2:
        raise InputError(f"points must be a 2-D (N, d) array; got {points.ndim}-D with shape {points.shape}")
    if labels.ndim != 1:
        raise InputError(f"labels must be a 1-D (N,) array; got shape {labels.shape}")
    n, d = points.shape
    if n < min_points:
        raise InputError(f"need at least {min_points} points; got {n}")
    if d < 1:
        raise InputError("points have no dimensions (shape (N, 0))")
    if labels.shape[0] != n:
        raise InputError(f"{labels.shape[0]} labels for {n} points; they must match row for row")
    if points.dtype.kind not in "fiub":
        raise InputError(f"points must be numbers; got dtype {points.dtype}")
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and bool(xp.all(labels == xp.round(labels))):
            raise InputError(
                f"labels must have an integer dtype; got {labels.dtype} (whole numbers: cast with .astype(int))"
            )
        raise InputError(f"labels must be integers; got dtype {labels.dtype}")
    if points.dtype.kind == "f" and not bool(xp.isfinite(points).all()):
        bad = int(xp.count_nonzero(~xp.isfinite(points)))
        raise InputError(f"points hold {bad} NaN or Inf values; remove or replace them")
    return points, labels


def rows_per_block(n_cols: int, arrays: int = 4, itemsize: int = 8, budget: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows of a (rows, n_cols) block such that ``arrays`` such blocks fit in ``budget``."""
    return max(1, budget // max(1, n_cols * arrays * itemsize))
