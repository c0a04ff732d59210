"""PCA by blocks against scikit-learn's exact PCA, on random and adversarial data."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from repscope.kernels import InputError
from repscope.kernels.pca import fit_transform_blocks


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
