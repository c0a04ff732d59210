"""The measures beyond the study's against scikit-learn and plain references.

Tolerances: 1e-12 absolute on trustworthiness, continuity and recall (sums of whole
ranks, one division), 1e-10 relative on silhouettes and class sums (1e-7 absolute against
scikit-learn, whose GEMM distances put duplicated points about 1e-8 apart), 1e-10
absolute on CKA. Inputs: random, tied (a lattice: many equal distances), duplicated, one class,
N = 1 and 2, and each kernel's own edge (k at its limit, a constant representation).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from sklearn.metrics import silhouette_samples as sk_silhouette_samples
from sklearn.metrics import silhouette_score as sk_silhouette_score

from repscope.kernels import (
    InputError, class_distance_sums, cka_matrix, linear_cka, linear_probe, neighbourhood_scores, pair_sums,
    silhouette_samples, silhouette_score,
)
from repscope.kernels.neighbourhood import query_sample
from tests.test_kernels import make_data


# -- plain references ------------------------------------------------------------------

def _order(dist_row: np.ndarray, i: int) -> list[int]:
    """Other points by (distance, index)."""
    return sorted((j for j in range(len(dist_row)) if j != i), key=lambda j: (dist_row[j], j))


def neighbourhood_reference(high, low, k):
    """Trustworthiness, continuity, recall from full distance matrices and Python loops."""
    n = len(high)
    dh = np.sqrt(((high[:, None] - high[None]) ** 2).sum(-1))
    dl = np.sqrt(((low[:, None] - low[None]) ** 2).sum(-1))
    t = c = r = 0.0
    for i in range(n):
        oh, ol = _order(dh[i], i), _order(dl[i], i)
        rank_h = {j: p + 1 for p, j in enumerate(oh)}
        rank_l = {j: p + 1 for p, j in enumerate(ol)}
        nh, nl = set(oh[:k]), set(ol[:k])
        t += sum(rank_h[j] - k for j in nl - nh)
        c += sum(rank_l[j] - k for j in nh - nl)
        r += len(nh & nl) / k
    scale = 2.0 / (n * k * (2 * n - 3 * k - 1))
    return 1 - scale * t, 1 - scale * c, r / n


def silhouette_reference(x, y):
    n = len(x)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    out = []
    for i in range(n):
        own = [j for j in range(n) if y[j] == y[i] and j != i]
        if not own:
            out.append(0.0)
            continue
        a = d[i, own].mean()
        b = min(d[i, y == c].mean() for c in set(y.tolist()) if c != y[i])
        out.append(0.0 if max(a, b) == 0 else (b - a) / max(a, b))
    return np.array(out)


def cka_reference(x, y):
    """HSIC form with the N x N Gram matrices (what the kernel avoids)."""
    h = np.eye(len(x)) - 1.0 / len(x)
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    den = np.sqrt((k * k).sum() * (l * l).sum())
    return (k * l).sum() / den if den > 1e-20 else np.nan


PATTERNS = ("balanced", "duplicates", "lattice")


# -- neighbourhood ---------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("n,k", [(5, 1), (9, 4), (60, 5), (120, 10)])
def test_neighbourhood_matches_the_reference(pattern, n, k):
    high, _ = make_data(n, 12, pattern, np.float64)
    low, _ = make_data(n, 2, pattern, np.float64, seed=1)
    low = high[:, :2] * 0.5 + low  # related, not equal
    got = neighbourhood_scores(high, low, k=k)
    want = neighbourhood_reference(high, low, k)
    np.testing.assert_allclose(got[:3], want, atol=1e-12)
    assert got.queries == n and got[3:6] == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("n,k", [(50, 1), (200, 10), (301, 7)])
def test_trustworthiness_and_continuity_match_scikit_learn(n, k):
    rng = np.random.default_rng(n)
    high = rng.normal(size=(n, 20))
    low = high[:, :2] + rng.normal(size=(n, 2))
    got = neighbourhood_scores(high, low, k=k)
    assert got.trustworthiness == pytest.approx(trustworthiness(high, low, n_neighbors=k), abs=1e-12)
    assert got.continuity == pytest.approx(trustworthiness(low, high, n_neighbors=k), abs=1e-12)


def test_several_embeddings_in_one_pass_equal_each_alone_and_small_blocks_change_nothing():
    high, _ = make_data(200, 30, "balanced", np.float64)
    lows = [high[:, :2], high[:, 3:5] + high[:, :2]]
    together = neighbourhood_scores(high, lows, k=6, block_bytes=20_000)
    assert together == [neighbourhood_scores(high, low, k=6) for low in lows]


def test_a_faithful_embedding_scores_one_and_float32_input_is_accepted():
    x = np.random.default_rng(3).normal(size=(80, 2)).astype(np.float32)
    assert neighbourhood_scores(x, x * 3 + 1, k=5)[:3] == (1.0, 1.0, 1.0)


def test_a_sample_estimates_the_exact_value_within_its_standard_error():
    rng = np.random.default_rng(0)
    high = rng.normal(size=(1500, 10))
    low = high[:, :2] + 0.3 * rng.normal(size=(1500, 2))
    exact = neighbourhood_scores(high, low, k=10)
    est = neighbourhood_scores(high, low, k=10, sample=300, seed=4)
    assert est.queries == 300
    for m in range(3):
        assert 0 < est[3 + m] < 0.05
        assert abs(est[m] - exact[m]) < 4 * est[3 + m]
    assert est == neighbourhood_scores(high, low, k=10, sample=300, seed=4), "seeded: the same sample"
    assert query_sample(1500, 300, 4).tolist() == sorted(set(query_sample(1500, 300, 4).tolist()))


@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (10, 5)])
def test_too_few_points_for_k_is_one_clear_error(n, k):
    x = np.zeros((n, 3))
    with pytest.raises(InputError, match=r"k < N / 2"):
        neighbourhood_scores(x, x[:, :2], k=k)


def test_bad_inputs_are_named():
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(InputError, match="does not match"):
        neighbourhood_scores(x, x[:10, :2], k=2)
    with pytest.raises(InputError, match="NaN"):
        neighbourhood_scores(x, np.full((20, 2), np.nan), k=2)
    with pytest.raises(InputError, match="sample"):
        neighbourhood_scores(x, x[:, :2], k=2, sample=1)


# -- silhouette -------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["balanced", "unbalanced", "singleton", "duplicates", "lattice"])
@pytest.mark.parametrize("method,n,d", [(m, n, d) for m in ("numba", "blocked")
                                        for n, d in [(3, 1), (17, 2), (300, 2), (300, 25), (120, 40)]
                                        if m == "blocked" or d <= 32])  # the compiled kernel serves d <= 32
def test_silhouette_matches_scikit_learn_and_the_reference(method, pattern, n, d):
    x, y = make_data(n, d, pattern, np.float64)
    if not 2 <= len(np.unique(y)) <= n - 1:
        with pytest.raises(InputError, match="2 to N - 1 classes"):
            silhouette_score(x, y, method=method)
        return
    got = silhouette_samples(x, y, method=method, block_bytes=50_000)
    np.testing.assert_allclose(got, silhouette_reference(x, y), rtol=1e-10, atol=1e-12)
    # scikit-learn's distances are GEMM-based: a duplicated pair comes out about 1e-8 apart, not 0
    np.testing.assert_allclose(got, sk_silhouette_samples(x, y), rtol=1e-10, atol=1e-7)
    assert silhouette_score(x, y, method=method) == pytest.approx(sk_silhouette_score(x, y), rel=1e-10, abs=1e-7)


@pytest.mark.parametrize("n", [1, 2])
def test_silhouette_of_one_or_two_points_or_one_class_is_one_clear_error(n):
    with pytest.raises(InputError, match="classes"):
        silhouette_score(np.zeros((n, 2)), np.arange(n))
    with pytest.raises(InputError, match="classes"):
        silhouette_score(np.random.default_rng(0).normal(size=(9, 2)), np.zeros(9, dtype=int))


def test_class_sums_generalise_the_pair_kernel():
    x, y = make_data(500, 3, "unbalanced", np.float64)
    sums, classes = class_distance_sums(x, y)
    ids = np.searchsorted(classes, y)
    same = sums[np.arange(len(y)), ids].sum() / 2
    pairs = pair_sums(x, y)
    assert same == pytest.approx(float(pairs.same_sum), rel=1e-10)
    assert (sums.sum() / 2 - same) == pytest.approx(float(pairs.diff_sum), rel=1e-10)
    blocked, _ = class_distance_sums(x, y, method="blocked", block_bytes=10_000)
    np.testing.assert_allclose(blocked, sums, rtol=1e-10)


# -- CKA -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("n", [2, 3, 50, 400])
def test_cka_matches_the_gram_matrix_form(pattern, n):
    x, _ = make_data(n, 15, pattern, np.float64)
    y = np.tanh(x @ np.random.default_rng(n).normal(size=(15, 6))) + 50.0
    z = x[:, :1] ** 2
    got = cka_matrix([x, y, z], block_rows=7)
    for (i, a), (j, b) in [((0, x), (1, y)), ((0, x), (2, z)), ((1, y), (2, z))]:
        want = cka_reference(a, b)
        if np.isnan(want):
            assert np.isnan(got[i, j])
        else:
            assert got[i, j] == pytest.approx(want, abs=1e-10)
            assert got[j, i] == got[i, j]
    np.testing.assert_allclose(linear_cka(x, y), got[0, 1], atol=1e-12, equal_nan=True)


def test_cka_is_one_under_rotation_scaling_and_shift_and_nan_for_a_constant():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32).reshape(300, 2, 3)  # trailing axes are flattened
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    m = cka_matrix([x, 4.0 * x.reshape(300, 6) @ rotation - 1e3, np.ones((300, 4))])
    assert m[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(m[2]).all() and np.isnan(m[:, 2]).all()


def test_cka_reads_a_zarr_array_block_by_block(tmp_path):
    import zarr

    x = np.random.default_rng(1).normal(size=(1000, 8)).astype(np.float32)
    stored = zarr.create_array(str(tmp_path / "x.zarr"), shape=x.shape, chunks=(100, 8), dtype="float32")
    stored[:] = x
    assert cka_matrix([stored, x[:, ::-1]], block_rows=128)[0, 1] == pytest.approx(1.0, abs=1e-9)


def test_cka_bad_inputs():
    with pytest.raises(InputError, match="row for row"):
        cka_matrix([np.zeros((5, 2)), np.zeros((4, 2))])
    with pytest.raises(InputError, match="at least 2"):
        cka_matrix([np.zeros((1, 2))])
    with pytest.raises(InputError, match="NaN"):
        cka_matrix([np.full((5, 2), np.inf), np.zeros((5, 2))])


# -- linear probe ----------------------------------------------------------------------

def test_the_probe_equals_scikit_learns_pipeline_and_is_deterministic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_data(600, 20, "unbalanced", np.float64)
    x = x + y[:, None] * 0.3
    got = linear_probe(x[:400], y[:400], x[400:], y[400:], seed=3)
    want = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=3)).fit(x[:400], y[:400])
    assert got.test_accuracy == pytest.approx(want.score(x[400:], y[400:]), abs=0)
    assert got.train_accuracy == pytest.approx(want.score(x[:400], y[:400]), abs=0)
    assert got == linear_probe(x[:400], y[:400], x[400:], y[400:], seed=3)


def test_the_probe_handles_constant_features_and_duplicates_and_refuses_one_class():
    x = np.zeros((40, 3))
    x[:, 0] = np.repeat([0.0, 1.0], 20)
    y = np.repeat([0, 1], 20)
    assert linear_probe(x, y, x[:2], y[:2]).test_accuracy == 1.0
    with pytest.raises(InputError, match="2 classes"):
        linear_probe(x, np.zeros(40, dtype=int), x, y)
    with pytest.raises(InputError, match="features"):
        linear_probe(x, y, x[:, :2], y)
