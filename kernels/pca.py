"""Principal components of a representation too large to hold, fitted block by block.

The fit is incremental (scikit-learn's ``IncrementalPCA`` on numpy blocks, cuML's on
CuPy blocks), so memory is bounded by one block, never by N: one pass fits, a second
projects each block. Blocks smaller than the number of components (the last one, say)
are joined to a neighbour, since an incremental fit needs at least as many rows as
components per step. Keeping every component the fit is exact (scikit-learn's PCA to
1e-8 in the tests); keeping fewer it approximates the leading components, within 1 %
of the exact explained variance where they stand out from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from ._arrays import InputError, array_module, is_cupy


@dataclass
class PCAResult:
    """A fitted projection: ``components`` (k, d), ``mean`` (d,), the variance ratios."""

    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray
    library: str


def _joined(blocks: Iterable, minimum: int) -> Iterator:
    """The blocks, with any run of fewer than ``minimum`` rows joined to a neighbour (the
    next block, or for the last one the block before)."""
    held = pending = None  # held: a block of enough rows not yet given out
    for block in blocks:
        xp = array_module(block)
        pending = block if pending is None else xp.concatenate([pending, block])
        if len(pending) >= minimum:
            if held is not None:
                yield held
            held, pending = pending, None
    if pending is not None:
        held = pending if held is None else array_module(held).concatenate([held, pending])
    if held is not None:
        yield held


def _estimator(xp, n_components: int):
    if is_cupy(xp):
        from cuml.decomposition import IncrementalPCA

        return IncrementalPCA(n_components=n_components, output_type="cupy"), "cuML IncrementalPCA"
    from sklearn.decomposition import IncrementalPCA

    return IncrementalPCA(n_components=n_components), "scikit-learn IncrementalPCA"


def fit_transform_blocks(
    blocks: Callable[[], Iterable], n_components: int, out=None
) -> PCAResult | tuple[PCAResult, object]:
    """Fit a PCA of ``n_components`` on the rows of ``blocks()`` and project them.

    ``blocks`` is called twice (fit, then projection) and must give the same (rows, d)
    blocks, in order, each time (numpy or CuPy, float). The projection is written into
    ``out`` (an (N, k) array-like, e.g. a Zarr array) block by block when given, and
    the result alone is returned; else ``(result, projection)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20))
    >>> result, y = fit_transform_blocks(lambda: (x[a:a + 64] for a in range(0, 300, 64)), 5)
    >>> y.shape, result.components.shape
    ((300, 5), (5, 20))
    """
    if not isinstance(n_components, int) or n_components < 1:
        raise InputError(f"n_components must be a whole number >= 1; got {n_components!r}")
    estimator = library = None
    rows = 0
    for block in _joined(blocks(), n_components):
        xp = array_module(block)
        if estimator is None:
            estimator, library = _estimator(xp, n_components)
            if block.shape[1] < n_components:
                raise InputError(f"{block.shape[1]} dimensions cannot give {n_components} components")
        if len(block) < n_components:
            raise InputError(f"{rows + len(block)} rows cannot give {n_components} components")  # all there are
        estimator.partial_fit(block)
        rows += len(block)
    if estimator is None:
        raise InputError("no rows to fit a PCA on")
    pieces, start = [], 0
    for block in blocks():
        projected = estimator.transform(block).astype("float32")
        if out is not None:
            host = projected.get() if is_cupy(array_module(projected)) else projected
            out[start:start + len(block)] = host
        else:
            pieces.append(projected)
        start += len(block)
    xp = array_module(estimator.components_)

    def host(a):
        return a.get() if is_cupy(xp) else np.asarray(a)

    result = PCAResult(host(estimator.components_), host(estimator.mean_),
                       host(estimator.explained_variance_ratio_), library)
    if out is not None:
        return result
    return result, (array_module(pieces[0]).concatenate(pieces) if pieces else np.empty((0, n_components), "float32"))
