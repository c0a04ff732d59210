"""Principal components of a representation too large to hold, fitted block by block.

Two routines, both reading (rows, d) blocks from a function that yields them, so that
memory is bounded by a block (and, for :func:`fit_pca`, by a (d, d) or a (d, l)
matrix), never by N.

:func:`fit_pca` fits in one pass over the blocks (or ``passes``), in PyTorch on the
blocks' device. Up to :data:`COVARIANCE_DIMS` columns it sums the rows, their squares
and the Gram matrix X^T X in float64 and takes the top eigenvectors of the covariance:
exact up to rounding (scikit-learn's exact PCA to 1e-9 in the tests on float64 data).
Wider, it never forms a (d, d) matrix: a seeded Gaussian test matrix Omega (d, l),
l = :func:`sketch_size`, is multiplied by the covariance block by block (the sum of
X_b^T (X_b Omega), less the mean's share), and the components come from the stable
Nystrom approximation of the covariance from that sketch (Tropp, Yurtsever, Udell and
Cevher 2017, "Fixed-rank approximation of a positive-semidefinite matrix from streaming
data", Algorithm 3), in one pass; each further pass is one step of subspace iteration
(the next Omega an orthonormal basis of the last product), the last pass's product
giving the Nystrom step, so no pass is spent on a final projection. The total variance
always comes from the sums of squares, so the explained variance ratios of a sketch
are exact ratios of its eigenvalue estimates, which are at most the exact ones. The
arithmetic runs on one CPU thread (see :func:`fit_pca`) so that the bytes of a fit
do not depend on the machine's thread count. :func:`project` applies a fit block by block.

:func:`fit_transform_blocks` is the earlier routine, kept for the results that depend
on its bytes: scikit-learn's ``IncrementalPCA`` on numpy blocks, cuML's on CuPy blocks;
one pass fits, a second projects each block. Blocks smaller than the number of
components (the last one, say) are joined to a neighbour, since an incremental fit needs
at least as many rows as components per step. Keeping every component the fit is exact
(scikit-learn's PCA to 1e-8 in the tests); keeping fewer it approximates the leading
components, within 1 % of the exact explained variance where they stand out from the rest.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ._arrays import DEFAULT_BLOCK_BYTES, InputError, array_module, is_cupy, rows_per_block


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


#: Working memory of :func:`fit_pca`'s own matrices (beside a block and its float64 copy).
FIT_BYTES = DEFAULT_BLOCK_BYTES
#: The widest representation whose covariance :func:`fit_pca` forms: at 4 096 columns
#: the (d, d) float64 Gram matrix is 128 MiB and a block's float32 product added to it
#: 64 MiB, together within ``FIT_BYTES`` (256 MiB); at 8 192 they would be 768 MiB.
#: Wider representations are sketched, in (d, l) matrices (:func:`sketch_size`).
COVARIANCE_DIMS = 4096
#: The version of :func:`fit_pca`'s results, raised whenever they change in any bit, so
#: that stored fits (the engine's ``pca:D`` projections) are made again.
FIT_VERSION = 1


def sketch_size(n_components: int, dims: int) -> int:
    """Columns l of :func:`fit_pca`'s randomized sketch of k components of d dimensions.

    As many as three (d, l) float64 matrices (the test matrix, its product with the
    covariance, the Nystrom factor) hold in ``FIT_BYTES``, and at least 2k + 50; at
    most d. A one-pass sketch misses less variance the more columns it has beyond k
    (Tropp et al. 2017, Theorem 4.1): on the layer of 8 192 values of
    ``benchmarks/pca_fit.py``, whose leading eigenvalues are nearly flat, 150 columns
    miss 20 % of the top 50 components' variance in one pass, 1 365 (this rule's) 0.6 %.
    Its arithmetic per pass, 4 N d l = N ``FIT_BYTES`` / 6 where the budget sets l, does
    not grow with d: 4/3 of the covariance's (2 N d^2) at ``COVARIANCE_DIMS``.

    Examples
    --------
    >>> sketch_size(50, 8192), sketch_size(50, 2**20), sketch_size(5, 20)
    (1365, 150, 20)
    """
    return min(dims, max(2 * n_components + 50, FIT_BYTES // (3 * 8 * dims)))


def fit_pca(blocks: Callable[[], Iterable], n_components: int, *, passes: int = 1, seed: int = 0,
            covariance_dims: int = COVARIANCE_DIMS) -> PCAResult:
    """The first ``n_components`` principal components of the rows of ``blocks()``.

    Parameters
    ----------
    blocks
        A function giving the (rows, d) blocks, in order: numpy arrays or PyTorch tensors
        (CPU or CUDA; the arithmetic runs on the first block's device). It is called once
        per pass and must give the same blocks each time; with ``passes=1``, or up to
        ``covariance_dims`` columns, it is called exactly once, so the blocks may come
        from a network's forward passes. Blocks of no rows are skipped.
    n_components
        How many components, k: at least 1, at most d and at most the number of rows.
    passes
        Passes over the blocks where they are sketched (d > ``covariance_dims``): one
        gives the one-pass Nystrom approximation, each further one a step of subspace
        iteration. Up to ``covariance_dims`` columns the fit is exact in one pass, and
        ``passes`` is not used.
    seed
        The seed of the sketch's Gaussian test matrix.
    covariance_dims
        The widest d whose (d, d) covariance is formed (:data:`COVARIANCE_DIMS`).

    Returns
    -------
    PCAResult
        ``components`` (k, d) float64, by decreasing variance, each with its entry of
        largest magnitude (the first of equals) positive; ``mean`` (d,) float64;
        ``explained_variance_ratio`` (k,): each component's variance over the total
        variance, which comes from the sums of squares (exact in both regimes); all zero
        where every row is the same, the components then the first k axes; ``library``:
        the method.

    Raises
    ------
    InputError
        For counts that are not whole numbers, no rows, fewer rows or dimensions than
        components, blocks that are not 2-D, of another width or not numbers, NaN or
        infinite values, and passes that give another number of rows (or NaN) than the first.

    Notes
    -----
    The column sums, the sums of squares and the products are accumulated in float64
    about the first row, so that a large common offset costs no precision and a
    constant column sums to exactly 0. A float32 (or narrower) block's products are
    computed in float32 and added to the float64 sums (float64 ones in float64): twice
    as fast. Measured on layers like ``benchmarks/pca_fit.py``'s (N = 16 384), against
    float64 products: covariance (d = 4 096), variance ratios within 5e-8 relative,
    components within 1e-6, the fit 15 % faster (the eigensolver takes much of it);
    sketch (d = 8 192), variance ratios within 1e-7, the fit 25 % faster.

    The sketch's eigenvalues are those of its Nystrom approximation of the covariance,
    which lies below the covariance: its explained variance is at most the exact one.
    On ``benchmarks/pca_fit.py``'s layers (N = 16 384, d = 8 192, k = 50, l = 1 365),
    whose leading eigenvalues are nearly flat, one pass reports 0.4 to 0.6 % less than
    the exact PCA, though the data's variance along its components is within 0.01 % of
    the exact; two passes are within 1e-6. A smaller sketch, or a spectrum decaying
    more slowly, leaves one pass further short (:func:`sketch_size`, tests/test_pca.py).

    PyTorch's and BLAS's results depend in their last bits on how many threads share
    a product or a factorization (measured: a (2 048, 8 192) by (8 192, 256) float32
    product on 1 and on 2 threads), so every step of the fit runs on one thread (the
    count restored afterwards, and not held while ``blocks`` makes its next block): the
    same blocks give the same bytes whatever the thread settings. Another CPU (other
    BLAS kernels) or a GPU may differ in the last bits.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 20)) @ np.diag(np.linspace(3, 0.1, 20))
    >>> def blocks():
    ...     return (x[a:a + 64] for a in range(0, 300, 64))
    >>> fit = fit_pca(blocks, 3)
    >>> fit.components.shape, fit.library
    ((3, 20), 'repscope covariance (float64)')
    >>> bool(np.all(np.diff(fit.explained_variance_ratio) <= 0))
    True
    >>> fit_pca(blocks, 3, covariance_dims=10, passes=2).library
    'repscope randomized sketch (l=20, float64), 2 passes'
    >>> project(blocks, fit).shape
    (300, 3)
    """
    _check_whole("n_components", n_components, 1)
    _check_whole("passes", passes, 1)
    _check_whole("seed", seed, 0)
    _check_whole("covariance_dims", covariance_dims, 0)
    moments = fit = None
    for pass_ in range(passes):
        rows = 0
        for index, block in enumerate(blocks()):
            x = _tensor(block, index, moments)
            if len(x) == 0:
                continue
            with _one_thread():
                if moments is None:
                    moments = _Moments(x[0])
                    fit = _start(x, n_components, seed, covariance_dims)
                _add(x, index, moments, fit, first_pass=pass_ == 0)
            rows += len(x)
        if moments is None:
            raise InputError("no rows to fit a PCA on")
        if rows != moments.rows:
            raise InputError(f"blocks() gave {rows} rows on pass {pass_ + 1} and {moments.rows} on pass 1; "
                             "it must give the same blocks each time")
        if moments.rows < n_components:
            raise InputError(f"{moments.rows} rows cannot give {n_components} components")
        if fit.exact or pass_ == passes - 1:
            break
        with _one_thread():
            fit.next_pass(moments)
    with _one_thread():
        return _result(moments, fit, n_components)


def project(blocks: Callable[[], Iterable], result: PCAResult, out=None):
    """``(x - mean) @ components.T`` of each block of ``blocks()``, as float32.

    Computed in float64 in PyTorch on each block's device, on one thread (as
    :func:`fit_pca`), and rounded to float32, so that a row's projection does not depend
    on the block it comes in; written into ``out`` (an (N, k) array-like, e.g. a Zarr
    array) block by block where given, else gathered. Returns ``out``, or the (N, k)
    float32 numpy array.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(6, 2)
    >>> fit = fit_pca(lambda: [x], 1)
    >>> project(lambda: [x[:4], x[4:]], fit)[:, 0].astype(float).round(3).tolist()
    [-7.071, -4.243, -1.414, 1.414, 4.243, 7.071]
    """
    pieces, start, weights = [], 0, {}
    for index, block in enumerate(blocks()):
        x = _tensor(block, index, None)
        if x.shape[1] != result.components.shape[1]:
            raise InputError(f"block {index} has {x.shape[1]} columns and the fit {result.components.shape[1]}")
        if x.device not in weights:  # the mean and components, in float64 on the block's device
            weights[x.device] = [torch.from_numpy(np.asarray(a, np.float64)).to(x.device)
                                 for a in (result.mean, result.components)]
        mean, components = weights[x.device]
        with _one_thread():
            projected = ((x.to(torch.float64) - mean) @ components.T).to(torch.float32).cpu().numpy()
        if out is not None:
            out[start:start + len(projected)] = projected
        else:
            pieces.append(projected)
        start += len(projected)
    if out is not None:
        return out
    return np.concatenate(pieces) if pieces else np.empty((0, len(result.components)), np.float32)


def _check_whole(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise InputError(f"{name} must be a whole number >= {least}; got {value!r}")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """PyTorch, and the MKL or OpenBLAS it drives, on one thread inside the block
    (SciPy's BLAS is limited where it is called: :func:`_top_eigenvectors`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensor(block, index: int, moments: "_Moments | None") -> torch.Tensor:
    """Block ``index`` as a 2-D floating-point tensor (numpy's without a copy), on the
    first block's device where ``moments`` says which; InputError for anything else."""
    if isinstance(block, torch.Tensor):
        x = block.detach()
    elif is_cupy(array_module(block)):
        x = torch.from_dlpack(block)
    else:
        a = np.asarray(block)
        if a.dtype.kind not in "fiub":
            raise InputError(f"blocks must hold numbers; block {index} holds {a.dtype}")
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        with warnings.catch_warnings():  # read, never written to
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(a)
    if x.ndim != 2:
        raise InputError(f"blocks must be 2-D (rows, d); block {index} has shape {tuple(x.shape)}")
    if x.is_complex():
        raise InputError(f"blocks must hold real numbers; block {index} holds {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if moments is not None:
        if x.shape[1] != len(moments.shift):
            raise InputError(f"block {index} has {x.shape[1]} columns and the first {len(moments.shift)}; "
                             "every block must have the same width")
        x = x.to(moments.shift.device)
    return x


class _Moments:
    """The number of rows and, in float64, the column sums and sums of squares of the
    rows less ``shift`` (the first row)."""

    def __init__(self, first_row: torch.Tensor):
        self.shift = first_row.to(torch.float64, copy=True)
        self.rows = 0
        self.sums = torch.zeros_like(self.shift)
        self.squares = torch.zeros_like(self.shift)

    def add(self, centred: torch.Tensor) -> None:
        self.rows += len(centred)
        self.sums += centred.sum(dim=0)
        self.squares += (centred * centred).sum(dim=0)

    def finite(self) -> bool:
        """Whether every value added so far was finite (NaN and infinities carry into the sums)."""
        return bool(torch.isfinite(self.squares).all())

    def centred_mean(self) -> torch.Tensor:
        """The mean less ``shift``."""
        return self.sums / self.rows

    def total_scatter(self) -> float:
        """The sum of squared distances of the rows to their mean ((n - 1) times the total
        variance), summed over the columns exactly."""
        sums, squares = self.sums.cpu().numpy(), self.squares.cpu().numpy()
        return max(0.0, math.fsum(squares - sums * sums / self.rows))


def _add(x: torch.Tensor, index: int, moments: _Moments, fit, first_pass: bool) -> None:
    """Add block ``index`` to the fit (and, on the first pass, to the moments), by pieces
    whose float64 copies fit in ``FIT_BYTES``."""
    for piece in x.split(rows_per_block(x.shape[1], arrays=2, budget=FIT_BYTES)):
        centred = piece.to(torch.float64, copy=True).sub_(moments.shift)
        if first_pass:
            moments.add(centred)
        fit.add(centred if fit.dtype == torch.float64 else centred.to(fit.dtype))
    if first_pass and not moments.finite():
        bad = int((~torch.isfinite(x)).sum())
        if bad == 0:
            raise InputError(f"block {index} holds values too large to square in float64; scale them down")
        nan = int(torch.isnan(x).sum())
        raise InputError(f"block {index} holds {nan} NaN and {bad - nan} infinite values; remove or replace them")


def _start(x: torch.Tensor, k: int, seed: int, covariance_dims: int):
    """The accumulator for blocks like ``x``: the covariance up to ``covariance_dims`` columns, else a sketch."""
    d = x.shape[1]
    if d < k:
        raise InputError(f"{d} dimensions cannot give {k} components")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # of the products; sums are float64
    if d <= covariance_dims:
        return _Covariance(d, x.device, dtype)
    return _Sketch(d, sketch_size(k, d), x.device, dtype, seed)


class _Covariance:
    """The Gram matrix of the centred rows, summed in float64: exact in one pass."""

    exact = True

    def __init__(self, d: int, device: torch.device, dtype: torch.dtype):
        self.dtype = dtype
        self.gram = torch.zeros(d, d, dtype=torch.float64, device=device)
        self.library = f"repscope covariance ({_name(dtype)})"

    def add(self, x: torch.Tensor) -> None:
        if x.dtype == torch.float64:
            self.gram.addmm_(x.T, x)
        else:
            self.gram += x.T @ x

    def eigen(self, moments: _Moments, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The top ``k`` eigenvalues of the scatter matrix and their eigenvectors (d, k), largest first."""
        mean = moments.centred_mean()
        scatter = self.gram.addr_(mean, mean, alpha=-moments.rows)  # in place: the Gram is not needed again
        return _top_eigenvectors(scatter, k)


def _top_eigenvectors(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest eigenvalues of a symmetric matrix (from its lower triangle) and
    their eigenvectors, largest first: on the CPU LAPACK's MRRR for that subset (SciPy,
    on one BLAS thread; 2.4 times faster than PyTorch's full eigh at d = 4 096), on a
    GPU PyTorch's eigh."""
    d = len(matrix)
    if matrix.is_cuda:
        values, vectors = torch.linalg.eigh(matrix)
        values, vectors = values[d - k:], vectors[:, d - k:]
    else:
        import scipy.linalg
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            values, vectors = scipy.linalg.eigh(matrix.numpy(), subset_by_index=(d - k, d - 1), driver="evr",
                                                lower=True, overwrite_a=True, check_finite=False)
        values, vectors = torch.from_numpy(values), torch.from_numpy(vectors)
    return values.flip(0), vectors.flip(1)


class _Sketch:
    """The scatter matrix S (centred X^T X) times a test matrix Omega (d, l), summed over
    the blocks as X_b^T (X_b Omega); between passes Omega becomes an orthonormal basis
    of S Omega (subspace iteration)."""

    exact = False

    def __init__(self, d: int, size: int, device: torch.device, dtype: torch.dtype, seed: int):
        self.dtype = dtype
        generator = torch.Generator().manual_seed(seed)  # on the CPU: the same Omega for any device
        self._use(torch.linalg.qr(torch.randn(d, size, generator=generator, dtype=torch.float64)).Q.to(device))
        self.passes = 1
        self.library = f"repscope randomized sketch (l={size}, {_name(dtype)})"

    def _use(self, omega: torch.Tensor) -> None:
        self.omega, self.omega_product = omega, omega.to(self.dtype)
        self.product = torch.zeros_like(omega)

    def add(self, x: torch.Tensor) -> None:
        self.product += x.T @ (x @ self.omega_product)

    def _scatter_times_omega(self, moments: _Moments) -> torch.Tensor:
        """S Omega: the product less n mean (mean^T Omega), in place."""
        if not bool(torch.isfinite(self.product).all()):
            raise InputError(f"blocks() gave NaN or infinite values on pass {self.passes} and none on pass 1; "
                             "it must give the same blocks each time")
        mean = moments.centred_mean()
        return self.product.addr_(mean, mean @ self.omega, alpha=-moments.rows)

    def next_pass(self, moments: _Moments) -> None:
        self._use(torch.linalg.qr(self._scatter_times_omega(moments)).Q)
        self.passes += 1

    def eigen(self, moments: _Moments, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The top ``k`` eigenpairs of the Nystrom approximation S Omega (Omega^T S Omega)^+ Omega^T S.

        Computed stably as Tropp et al. (2017, Algorithm 3) do: with a shift nu (at
        least the rounding of the (l, l) core Omega^T (S + nu) Omega), removed at the
        end; the core's inverse square root comes from its eigendecomposition, its
        eigenvalues held at nu or more, where a Cholesky factor could fail for rounding
        (a singular S, from fewer rows than l). The leading singular pairs of the factor
        F (d, l) come from the eigendecomposition of F^T F (l, l), several times faster
        than F's SVD and as accurate for the leading ones, the only ones kept; a QR of
        the k vectors keeps any of no variance orthogonal to the rest.
        """
        y = self._scatter_times_omega(moments)
        d, size = y.shape
        nu = torch.finfo(torch.float64).eps * max(math.sqrt(d), size) * float(torch.linalg.matrix_norm(y))
        if nu == 0:  # S Omega = 0: no variance the sketch can see
            return torch.zeros(k, dtype=torch.float64, device=y.device), self.omega[:, :k]
        y = y.add_(self.omega, alpha=nu)  # (S + nu I) Omega
        core = self.omega.T @ y
        values, vectors = torch.linalg.eigh((core + core.T) / 2)
        factor = y @ (vectors / values.clamp(min=nu).sqrt())  # F F^T: the Nystrom approximation of S + nu I
        squares, right = torch.linalg.eigh(factor.T @ factor)
        squares, right = squares[size - k:].flip(0).clamp(min=nu), right[:, size - k:].flip(1)
        left = torch.linalg.qr(factor @ (right / squares.sqrt())).Q
        return (squares - nu).clamp_(min=0), left


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _result(moments: _Moments, fit, k: int) -> PCAResult:
    """The fit's components, largest variance first and signed; variance ratios from the moments."""
    total = moments.total_scatter()
    if total > 0:
        values, vectors = fit.eigen(moments, k)
        ratios = values.clamp(min=0).cpu().numpy() / total
        components = _signed(vectors.T.cpu().numpy())
    else:  # every row the same: no direction has variance; the first k axes
        ratios, components = np.zeros(k), np.eye(k, len(moments.shift))
    mean = (moments.shift + moments.centred_mean()).cpu().numpy()
    library = fit.library if fit.exact else f"{fit.library}, {fit.passes} pass{'es' if fit.passes > 1 else ''}"
    return PCAResult(np.ascontiguousarray(components), mean, ratios, library)


def _signed(components: np.ndarray) -> np.ndarray:
    """Each row times the sign of its entry of largest magnitude (the first of equals)."""
    largest = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
    return components * np.where(largest < 0, -1.0, 1.0)[:, None]
