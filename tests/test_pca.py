"""PCA by blocks against scikit-learn's exact PCA, on random and adversarial data."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from repscope.kernels import InputError
from repscope.kernels import pca
from repscope.kernels.pca import fit_pca, fit_transform_blocks, project


def _blocks(x, rows):
    return lambda: (x[a:a + rows] for a in range(0, len(x), rows))


def _aligned(a, b):
    """b's columns with the signs that match a's (a component's sign is arbitrary)."""
    signs = np.sign(np.sum(a * b, axis=0))
    signs[signs == 0] = 1
    return b * signs


@pytest.mark.parametrize("rows", [7, 16, 1000])
def test_all_components_equal_the_exact_pca_up_to_sign(rows):
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6)) + 3.0
    result, y = fit_transform_blocks(_blocks(x, rows), 6)
    exact = PCA(6).fit(x)
    np.testing.assert_allclose(result.explained_variance_ratio, exact.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(_aligned(exact.transform(x), y), exact.transform(x), rtol=1e-4, atol=1e-4)  # float32 out
    np.testing.assert_allclose(result.mean, x.mean(axis=0), rtol=1e-10)


def test_a_truncated_fit_explains_about_what_the_exact_one_does():
    """Within 1 % where the kept components stand out (as a layer's leading ones do); an
    incremental fit that keeps fewer components than there are is an approximation."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 40)) * np.r_[np.linspace(10, 6, 5), np.full(35, 0.5)]
    result, y = fit_transform_blocks(_blocks(x, 128), 5)
    exact = PCA(5).fit(x)
    assert y.shape == (600, 5) and y.dtype == np.float32
    assert result.explained_variance_ratio.sum() == pytest.approx(exact.explained_variance_ratio_.sum(), rel=0.01)


def test_short_blocks_are_joined_to_their_neighbour():
    x = np.random.default_rng(2).normal(size=(53, 8))
    sizes = []

    def blocks():
        for a in range(0, 53, 10):
            sizes.append(min(10, 53 - a))
            yield x[a:a + 10]

    result, y = fit_transform_blocks(blocks, 8)  # the fit joins the last block of 3 to the one before
    assert y.shape == (53, 8) and sizes[-1] == 3
    np.testing.assert_allclose(result.explained_variance_ratio, PCA(8).fit(x).explained_variance_ratio_, rtol=1e-8)


def test_duplicates_and_ties():
    x = np.repeat(np.random.default_rng(3).normal(size=(10, 4)), 5, axis=0)  # every row five times
    result, y = fit_transform_blocks(_blocks(x, 12), 4)
    np.testing.assert_allclose(result.explained_variance_ratio, PCA(4).fit(x).explained_variance_ratio_, rtol=1e-8)
    assert np.all(y[::5] == y[4::5])  # duplicate rows project to the same point


def test_written_into_an_output_array():
    x = np.random.default_rng(4).normal(size=(40, 5))
    out = np.zeros((40, 2), np.float32)
    result = fit_transform_blocks(_blocks(x, 9), 2, out=out)
    np.testing.assert_allclose(out, fit_transform_blocks(_blocks(x, 9), 2)[1])
    assert result.components.shape == (2, 5)


@pytest.mark.parametrize("n, d, k, message", [
    (1, 3, 2, "1 rows cannot give 2 components"),
    (2, 3, 3, "2 rows cannot give 3 components"),
    (10, 2, 3, "2 dimensions cannot give 3 components"),
    (0, 3, 1, "no rows"),
])
def test_too_few_rows_or_dimensions(n, d, k, message):
    x = np.ones((n, d))
    with pytest.raises(InputError, match=message):
        fit_transform_blocks(_blocks(x, 4), k)


def test_bad_component_counts():
    with pytest.raises(InputError, match="n_components must be a whole number >= 1"):
        fit_transform_blocks(_blocks(np.ones((4, 2)), 2), 0)


@pytest.mark.gpu
def test_cupy_blocks_fit_with_cuml(cupy):
    pytest.importorskip("cuml")
    x = np.random.default_rng(5).normal(size=(500, 20)).astype(np.float32)
    result, y = fit_transform_blocks(lambda: (cupy.asarray(x[a:a + 128]) for a in range(0, 500, 128)), 5)
    cpu, y_cpu = fit_transform_blocks(_blocks(x, 128), 5)
    assert result.library.startswith("cuML")
    np.testing.assert_allclose(result.explained_variance_ratio, cpu.explained_variance_ratio, rtol=1e-3)
    np.testing.assert_allclose(_aligned(y_cpu, cupy.asnumpy(y)), y_cpu, rtol=1e-3, atol=1e-3)


# fit_pca: the covariance (d <= covariance_dims) and the randomized sketch (wider)


def _exact(x, k):
    return PCA(k, svd_solver="full").fit(x)


def _same_up_to_sign(components, exact, atol):
    """Each row of ``components`` equal to the same row of ``exact`` or to its negation."""
    signs = np.sign(np.sum(components * exact, axis=1))
    np.testing.assert_allclose(components * signs[:, None], exact, rtol=0, atol=atol)


def _decaying(seed, n=2000, d=400, power=1.0, offset=3.0):
    """Rows whose standard deviations along random orthogonal axes fall as 1 / i**power."""
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (rng.normal(size=(n, d)) / np.arange(1, d + 1) ** power) @ axes + offset


@pytest.fixture()
def small_sketch(monkeypatch):
    """The sketch at its least size, l = 2k + 50 columns, so that l < d on small data."""
    monkeypatch.setattr(pca, "FIT_BYTES", 0)


@pytest.mark.parametrize("rows", [1, 7, 16, 1000])
@pytest.mark.parametrize("covariance_dims, passes", [(4096, 1), (5, 1), (5, 3)])
def test_every_regime_is_exact_where_it_sees_every_direction(rows, covariance_dims, passes):
    """The covariance, and a sketch as wide as the data (l = d, as up to 3 344 columns by
    default), give scikit-learn's exact PCA to rounding, on blocks of any size (1 row too)."""
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6)) + 3.0
    exact = _exact(x, 6)
    fit = fit_pca(_blocks(x, rows), 6, covariance_dims=covariance_dims, passes=passes)
    assert fit.library.startswith("repscope covariance" if covariance_dims >= 6 else "repscope randomized sketch (l=6")
    np.testing.assert_allclose(fit.explained_variance_ratio, exact.explained_variance_ratio_, rtol=1e-9)
    _same_up_to_sign(fit.components, exact.components_, atol=1e-9)
    np.testing.assert_allclose(fit.mean, x.mean(axis=0), rtol=1e-12)


def test_the_covariance_of_float32_blocks_is_within_float32_rounding():
    """float32 blocks: float32 products summed in float64, within 1e-6 of the exact
    ratios; a large common offset costs nothing (the sums are about the first row)."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(3000, 64)) * np.linspace(3, 0.1, 64) + 1000.0).astype(np.float32)
    fit = fit_pca(_blocks(x, 500), 10)
    exact = _exact(x.astype(np.float64), 10)
    assert fit.library == "repscope covariance (float32)"
    np.testing.assert_allclose(fit.explained_variance_ratio, exact.explained_variance_ratio_, rtol=1e-6)
    _same_up_to_sign(fit.components, exact.components_, atol=1e-4)


@pytest.mark.parametrize("power, k", [(1.0, 10), (2.0, 5)])
def test_the_sketch_on_a_decaying_spectrum(small_sketch, power, k):
    """l = 2k + 50 columns of 400: one pass explains within 1 % of the exact variance,
    never more (its Nystrom approximation lies below the covariance); three passes
    within 1e-6; the components of three passes are the exact ones."""
    x = _decaying(int(power), power=power)
    exact = _exact(x, k)
    target = exact.explained_variance_ratio_.sum()
    one = fit_pca(_blocks(x, 97), k, covariance_dims=100)
    three = fit_pca(_blocks(x, 97), k, covariance_dims=100, passes=3)
    assert one.library == f"repscope randomized sketch (l={2 * k + 50}, float64), 1 pass"
    assert three.library.endswith(", 3 passes")
    assert target * 0.99 < one.explained_variance_ratio.sum() <= target * (1 + 1e-12)
    assert three.explained_variance_ratio.sum() == pytest.approx(target, rel=1e-6)
    _same_up_to_sign(three.components, exact.components_, atol=1e-3)
    np.testing.assert_allclose(np.diff(one.explained_variance_ratio) <= 0, True)


def test_one_pass_falls_short_on_a_slowly_decaying_spectrum(small_sketch):
    """What one pass cannot do: with standard deviations falling as 1 / sqrt(i), the
    top 10 of 400 directions hold little more than the rest, and a one-pass sketch of
    70 columns explains about 10 % less than the exact PCA (a wider one, as the default
    size gives, less: see sketch_size); a second pass brings it within 0.1 %."""
    x = _decaying(5, power=0.5)
    target = _exact(x, 10).explained_variance_ratio_.sum()
    one = fit_pca(_blocks(x, 256), 10, covariance_dims=100).explained_variance_ratio.sum()
    two = fit_pca(_blocks(x, 256), 10, covariance_dims=100, passes=2).explained_variance_ratio.sum()
    assert 0.8 * target < one < 0.95 * target
    assert two == pytest.approx(target, rel=1e-3)


def test_passes_read_the_blocks_once_each_and_only_where_sketched():
    x = np.random.default_rng(6).normal(size=(50, 8))
    calls = []

    def blocks():
        calls.append(1)
        return iter([x[:20], x[20:]])

    for covariance_dims, passes, expected in [(8, 1, 1), (8, 3, 1), (4, 1, 1), (4, 3, 3)]:
        calls.clear()
        fit_pca(blocks, 2, covariance_dims=covariance_dims, passes=passes)
        assert len(calls) == expected


@pytest.mark.parametrize("covariance_dims", [4096, 2])
def test_every_row_the_same_has_no_variance(covariance_dims):
    """Zero total variance: the ratios are zeros (not NaN) and the components the first k axes."""
    x = np.tile([1.5, -2.0, 0.1, 7.0], (9, 1))
    fit = fit_pca(_blocks(x, 4), 3, covariance_dims=covariance_dims)
    assert fit.explained_variance_ratio.tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(fit.components, np.eye(3, 4))
    np.testing.assert_array_equal(fit.mean, x[0])


@pytest.mark.parametrize("covariance_dims", [4096, 2])
def test_one_row_and_two_rows(covariance_dims):
    one = fit_pca(_blocks(np.array([[1.0, 2.0, 3.0]]), 1), 1, covariance_dims=covariance_dims)
    assert one.explained_variance_ratio.tolist() == [0.0] and one.mean.tolist() == [1.0, 2.0, 3.0]
    x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]])
    two = fit_pca(_blocks(x, 1), 2, covariance_dims=covariance_dims)
    np.testing.assert_allclose(two.explained_variance_ratio, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(two.components[0], np.array([-1.0, 0.0, 2.0]) / np.sqrt(5), atol=1e-12)  # signed
    np.testing.assert_allclose(two.components @ two.components.T, np.eye(2), atol=1e-12)


@pytest.mark.parametrize("covariance_dims", [4096, 3])
def test_duplicate_rows_and_every_component(covariance_dims):
    x = np.repeat(np.random.default_rng(7).normal(size=(10, 4)), 5, axis=0)
    fit = fit_pca(_blocks(x, 12), 4, covariance_dims=covariance_dims)
    exact = _exact(x, 4)
    np.testing.assert_allclose(fit.explained_variance_ratio, exact.explained_variance_ratio_, rtol=1e-9)
    assert fit.explained_variance_ratio.sum() == pytest.approx(1.0, rel=1e-12)
    y = project(_blocks(x, 12), fit)
    assert np.all(y[::5] == y[4::5])  # duplicate rows project to the same point


def test_the_sign_rule():
    x = _decaying(8, n=300, d=30)
    for fit in (fit_pca(_blocks(x, 64), 5), fit_pca(_blocks(-x, 64), 5), fit_pca(_blocks(x, 64), 5, covariance_dims=4)):
        largest = fit.components[np.arange(5), np.abs(fit.components).argmax(axis=1)]
        assert np.all(largest > 0)


@pytest.mark.parametrize("covariance_dims, passes", [(4096, 1), (100, 1), (100, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_same_bytes_from_tensors_uneven_blocks_or_any_thread_count(small_sketch, covariance_dims, passes, dtype):
    """Torch tensors give the bytes numpy arrays give, on 1 or 2 threads (restored after);
    uneven blocks, 1-row ones among them, give the same fit up to rounding."""
    x = _decaying(9, n=700, d=200).astype(dtype)
    sizes = [1, 1, 33, 1, 200, 64, 1, 399]
    starts = np.cumsum([0, *sizes])

    def uneven():
        return (x[a:b] for a, b in zip(starts[:-1], starts[1:]))

    fits = []
    for threads, blocks in [(1, _blocks(x, 128)), (2, _blocks(x, 128)),
                            (2, lambda: (torch.from_numpy(x[a:a + 128]) for a in range(0, 700, 128)))]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            fits.append(fit_pca(blocks, 8, covariance_dims=covariance_dims, passes=passes))
            assert torch.get_num_threads() == threads
        finally:
            torch.set_num_threads(before)
    for fit in fits[1:]:
        for name in ("components", "mean", "explained_variance_ratio"):
            assert getattr(fit, name).tobytes() == getattr(fits[0], name).tobytes(), name
    other = fit_pca(uneven, 8, covariance_dims=covariance_dims, passes=passes)
    np.testing.assert_allclose(other.explained_variance_ratio, fits[0].explained_variance_ratio,
                               rtol=1e-5 if dtype == np.float32 else 1e-10)


def test_the_seed_chooses_the_test_matrix(small_sketch):
    x = _decaying(10, n=500, d=300)
    first, again, other = (fit_pca(_blocks(x, 100), 5, covariance_dims=10, seed=s) for s in (0, 0, 1))
    assert first.components.tobytes() == again.components.tobytes()
    assert first.components.tobytes() != other.components.tobytes()
    assert other.explained_variance_ratio.sum() == pytest.approx(first.explained_variance_ratio.sum(), rel=0.01)


def test_integers_and_half_precision_are_numbers():
    x = np.random.default_rng(11).integers(-5, 5, size=(40, 6))
    np.testing.assert_allclose(fit_pca(_blocks(x, 16), 3).explained_variance_ratio,
                               _exact(x.astype(float), 3).explained_variance_ratio_, rtol=1e-9)
    half = fit_pca(lambda: [torch.from_numpy(x).to(torch.float16)], 3)
    assert half.library == "repscope covariance (float32)"


def test_project_writes_float32_block_by_block():
    x = _decaying(12, n=90, d=12)
    fit = fit_pca(_blocks(x, 25), 4)
    y = project(_blocks(x, 25), fit)
    assert y.dtype == np.float32 and y.shape == (90, 4)
    np.testing.assert_allclose(y, (x - fit.mean) @ fit.components.T, rtol=1e-6, atol=1e-6)
    out = np.zeros((90, 4), np.float32)
    assert project(lambda: (torch.from_numpy(x[a:a + 7]) for a in range(0, 90, 7)), fit, out=out) is out
    np.testing.assert_array_equal(out, y)
    assert project(lambda: [], fit).shape == (0, 4)
    with pytest.raises(InputError, match="^block 1 has 11 columns and the fit 12$"):
        project(lambda: [x, x[:, 1:]], fit)


@pytest.mark.parametrize("n, d, k, message", [
    (1, 3, 2, "^1 rows cannot give 2 components$"),
    (2, 3, 3, "^2 rows cannot give 3 components$"),
    (10, 2, 3, "^2 dimensions cannot give 3 components$"),
    (0, 3, 1, "^no rows to fit a PCA on$"),
])
@pytest.mark.parametrize("covariance_dims", [4096, 1])
def test_fit_pca_too_few_rows_or_dimensions(n, d, k, message, covariance_dims):
    with pytest.raises(InputError, match=message):
        fit_pca(_blocks(np.ones((n, d)), 4), k, covariance_dims=covariance_dims)


@pytest.mark.parametrize("arguments, message", [
    ({"n_components": 0}, "n_components must be a whole number >= 1; got 0"),
    ({"n_components": 2.0}, "n_components must be a whole number >= 1; got 2.0"),
    ({"n_components": True}, "n_components must be a whole number >= 1; got True"),
    ({"passes": 0}, "passes must be a whole number >= 1; got 0"),
    ({"seed": -1}, "seed must be a whole number >= 0; got -1"),
    ({"covariance_dims": None}, "covariance_dims must be a whole number >= 0; got None"),
])
def test_fit_pca_bad_counts(arguments, message):
    with pytest.raises(InputError, match=message):
        fit_pca(_blocks(np.ones((4, 2)), 2), **{"n_components": 1, **arguments})


@pytest.mark.parametrize("blocks, message", [
    ([np.ones((3, 2)), np.array([[1.0, np.nan], [np.nan, 0.0]])], "^block 1 holds 2 NaN and 0 infinite values"),
    ([np.array([[np.inf, 1.0]])], "^block 0 holds 0 NaN and 1 infinite values; remove or replace them$"),
    ([np.array([[0.0, 1.0], [1e200, 1.0]])], "^block 0 holds values too large to square in float64; scale them down$"),
    ([np.ones(3)], r"^blocks must be 2-D \(rows, d\); block 0 has shape \(3,\)$"),
    ([np.ones((2, 3)), np.ones((2, 4))],
     "^block 1 has 4 columns and the first 3; every block must have the same width$"),
    ([np.array([["a", "b"]])], "^blocks must hold numbers; block 0 holds <U1$"),
    ([np.ones((2, 2), complex)], "^blocks must hold numbers"),
])
@pytest.mark.parametrize("covariance_dims", [4096, 1])
def test_fit_pca_bad_blocks(blocks, message, covariance_dims):
    with pytest.raises(InputError, match=message):
        fit_pca(lambda: iter(blocks), 1, covariance_dims=covariance_dims)


def test_blocks_that_change_between_passes():
    x = np.random.default_rng(13).normal(size=(30, 6))
    given = iter([[x], [x[:20]]])
    with pytest.raises(InputError, match=r"^blocks\(\) gave 20 rows on pass 2 and 30 on pass 1; it must give the"):
        fit_pca(lambda: next(given), 2, covariance_dims=3, passes=2)
    bad = x.copy()
    bad[4, 2] = np.nan
    given = iter([[x], [bad]])
    with pytest.raises(InputError, match="NaN or infinite values on pass 2 and none on pass 1"):
        fit_pca(lambda: next(given), 2, covariance_dims=3, passes=2)


@pytest.mark.gpu
def test_cuda_tensors_fit_on_the_gpu():
    x = _decaying(14, n=3000, d=500).astype(np.float32)
    for covariance_dims in (4096, 100):
        gpu = fit_pca(lambda: (torch.from_numpy(x[a:a + 512]).cuda() for a in range(0, 3000, 512)), 10,
                      covariance_dims=covariance_dims)
        cpu = fit_pca(_blocks(x, 512), 10, covariance_dims=covariance_dims)
        np.testing.assert_allclose(gpu.explained_variance_ratio, cpu.explained_variance_ratio, rtol=1e-5)
        _same_up_to_sign(gpu.components, cpu.components, atol=1e-3)
        y = project(lambda: (torch.from_numpy(x[a:a + 512]).cuda() for a in range(0, 3000, 512)), gpu)
        np.testing.assert_allclose(y, project(_blocks(x, 512), gpu), rtol=1e-4, atol=1e-4)
