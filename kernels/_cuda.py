"""The CuPy pair kernel for 2-D points (source: ``cuda/pair_sums_2d.cu``).

Compiled once per device and dtype with ``cupy.RawModule`` and memoised. float32
points are processed in float32 (the square root with ``--prec-sqrt=false``, the
hardware's fast path) with float64 sums; float64 points entirely in float64.
"""

from __future__ import annotations

import functools
from importlib.resources import files

import numpy as np

_BLOCK = 256  # must match BLOCK in the .cu source
_TILES_PER_BLOCK = 8
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@functools.lru_cache(maxsize=None)
def _kernel(device_id: int, ctype: str):
    import cupy

    source = files(__package__).joinpath("cuda", "pair_sums_2d.cu").read_text()
    name = f"pair_sums_2d<{ctype}>"
    with cupy.cuda.Device(device_id):
        module = cupy.RawModule(code=source, options=("--std=c++14", "--prec-sqrt=false"), name_expressions=[name])
        return module.get_function(name)


def launch_shape(n: int) -> tuple[tuple[int, int], tuple[int]]:
    """(grid, block) of the kernel for n points."""
    rows = -(-n // _BLOCK)
    chunks = -(-n // (_BLOCK * _TILES_PER_BLOCK))
    if rows >= 2**31 or chunks >= 2**16:
        raise ValueError(f"{n} points need a grid of {rows} x {chunks} blocks, beyond CUDA's limits (2^31 - 1 x 65535)")
    return (rows, chunks), (_BLOCK,)


def pair_sums_2d(x, ends):
    """(same_sum, diff_sum) as 0-d float64 CuPy arrays, for label-sorted (n, 2) points on the device."""
    import cupy

    dtype = np.dtype(x.dtype)
    if dtype not in _CTYPES:
        raise TypeError(f"the CUDA pair kernel takes float32 or float64 points; got {dtype}")
    n = x.shape[0]
    x0 = cupy.ascontiguousarray(x[:, 0])
    x1 = cupy.ascontiguousarray(x[:, 1])
    ends = cupy.ascontiguousarray(ends, dtype=cupy.int64)
    out = cupy.zeros(2, dtype=cupy.float64)
    grid, block = launch_shape(n)
    _kernel(x.device.id, _CTYPES[dtype])(grid, block, (x0, x1, ends, np.int64(n), np.int32(_TILES_PER_BLOCK), out))
    return out[0], out[1]
