"""The kernels against the plain references of tests/reference.py.

Tolerances (relative, on every sum): 1e-9 for float64 input, 1e-5 for float32 input.
Counts must match exactly.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from tests import reference as ref
from repscope.kernels import InputError, centroid_stats, knn_accuracy, knn_votes, pair_sums, separation_metrics

RTOL = {np.float64: 1e-9, np.float32: 1e-5}
SIZES = (2, 3, 17, 500, 2000)
DIMS = (1, 2, 25, 784)
PATTERNS = ("balanced", "unbalanced", "singleton", "one-class", "duplicates", "lattice")


def make_data(n: int, d: int, pattern: str, dtype, seed: int = 0):
    """Points and labels for one adversarial pattern."""
    rng = np.random.default_rng(seed + 7919 * n + 31 * d)
    x = rng.normal(size=(n, d))
    y = rng.integers(0, 10, n)
    if pattern == "unbalanced":
        y = np.minimum(rng.geometric(0.5, n) - 1, 9)
    elif pattern == "singleton":
        y = rng.integers(0, 3, n)
        y[n // 2] = 7  # a label with a single point
    elif pattern == "one-class":
        y = np.full(n, 4)
    elif pattern == "duplicates":
        x[n // 2:] = x[: n - n // 2]  # every point of the second half repeats one of the first
        y[n // 2:] = np.roll(y[: n - n // 2], 1)
    elif pattern == "lattice":
        x = rng.integers(0, 3, size=(n, d)).astype(np.float64)  # many equal distances and duplicates
    return x.astype(dtype), y.astype(np.int64)


def cases():
    for n in SIZES:
        for d in DIMS:
            patterns = PATTERNS if not (n == 2000 and d == 784) else ("balanced", "duplicates")
            for pattern in patterns:
                for dtype in (np.float64, np.float32):
                    yield n, d, pattern, dtype


@functools.lru_cache(maxsize=None)
def expected_pairs(n, d, pattern, dtype):
    return ref.pair_sums(*make_data(n, d, pattern, dtype))


def assert_pairs(got, expected, rtol):
    same, ns, diff, nd = expected
    assert (int(got.same_count), int(got.diff_count)) == (ns, nd)
    np.testing.assert_allclose(float(got.same_sum), same, rtol=rtol, atol=0)
    np.testing.assert_allclose(float(got.diff_sum), diff, rtol=rtol, atol=0)


@pytest.mark.parametrize("n, d, pattern, dtype", list(cases()))
def test_pair_sums(n, d, pattern, dtype):
    x, y = make_data(n, d, pattern, dtype)
    methods = ["blocked"] + (["numba"] if d <= 32 else [])
    for method in methods:
        assert_pairs(pair_sums(x, y, method=method), expected_pairs(n, d, pattern, dtype), RTOL[dtype])


def test_blocks_smaller_than_the_data():
    x, y = make_data(500, 25, "balanced", np.float64)
    got = pair_sums(x, y, method="blocked", block_bytes=4096)  # one row per block
    assert_pairs(got, expected_pairs(500, 25, "balanced", np.float64), 1e-9)


@pytest.mark.parametrize("n", [2, 3, 17])
def test_the_reference_agrees_with_the_pure_python_loop(n):
    x, y = make_data(n, 3, "balanced", np.float64)
    np.testing.assert_allclose(ref.pair_sums(x, y), ref.pair_sums_loops(x, y), rtol=1e-12)


def test_identical_points_are_exactly_zero_apart_in_high_d():
    x = np.tile(np.random.default_rng(1).normal(size=(1, 784)) * 1e3, (50, 1))
    got = pair_sums(x, np.arange(50) % 2, method="blocked")
    assert float(got.same_sum) == 0.0 and float(got.diff_sum) == 0.0


@pytest.mark.parametrize("n, d, pattern, dtype", [c for c in cases() if c[0] <= 500])
def test_centroid_stats(n, d, pattern, dtype):
    x, y = make_data(n, d, pattern, dtype)
    within, between = ref.centroid_stats(x, y)
    got = centroid_stats(x, y)
    np.testing.assert_allclose(float(got.within), within, rtol=RTOL[dtype])
    if math.isnan(between):
        assert math.isnan(float(got.between))
    else:
        np.testing.assert_allclose(float(got.between), between, rtol=RTOL[dtype])


@pytest.mark.parametrize("d", [2, 25, 784])
@pytest.mark.parametrize("method", ["kdtree", "faiss", "exact"])
def test_knn_matches_scikit_learn_on_tie_free_data(d, method):
    from sklearn.neighbors import KNeighborsClassifier

    if method == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(d)
    n = 1500
    y = rng.integers(0, 10, n)
    x = rng.normal(size=(n, d)) + 0.6 * y[:, None]  # separable enough for votes to mean something
    got = knn_accuracy(x, y, 10, method=method)
    expected = KNeighborsClassifier(n_neighbors=10).fit(x, y).score(x, y)
    assert float(got.acc_knn) == expected
    assert float(got.acc_knn_loo) == ref.knn_accuracy(x, y, 10, leave_out_self=True)


@pytest.mark.parametrize("method", ["kdtree", "exact"])
def test_knn_votes_are_labels_and_match_scikit_learn(method):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(7)
    y = rng.choice(np.array([3, 7, 11]), 600)  # labels that are not 0..C-1
    x = rng.normal(size=(600, 2)) + 0.8 * y[:, None]
    votes = knn_votes(x, y, 10, method=method)
    np.testing.assert_array_equal(votes.with_self, KNeighborsClassifier(n_neighbors=10).fit(x, y).predict(x))
    # Leave-one-out: each point's 10 nearest others, the same rule (ties to the smallest label).
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :10]
    expected = []
    for row in y[nearest]:
        labels, counts = np.unique(row, return_counts=True)
        expected.append(labels[counts.argmax()])
    np.testing.assert_array_equal(votes.left_out, expected)


@pytest.mark.parametrize("n, pattern", [(2, "balanced"), (3, "singleton"), (17, "one-class"), (40, "unbalanced")])
def test_knn_small_and_adversarial(n, pattern):
    x, y = make_data(n, 2, pattern, np.float64)
    for method in ("kdtree", "exact"):
        got = knn_accuracy(x, y, 10, method=method)
        assert float(got.acc_knn) == ref.knn_accuracy(x, y, min(10, n), leave_out_self=False)
        assert float(got.acc_knn_loo) == ref.knn_accuracy(x, y, min(10, n - 1), leave_out_self=True)


def test_ties_go_to_the_smallest_label():
    # Point 0 at the origin; its four neighbours: two of label 5, two of label 3.
    x = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float64)
    y = np.array([9, 5, 5, 3, 3])
    got = knn_accuracy(x, y, 4, method="exact")
    assert float(got.acc_knn_loo) == ref.knn_accuracy(x, y, 4, leave_out_self=True)


def test_separation_metrics_from_the_definitions():
    x, y = make_data(300, 2, "unbalanced", np.float64)
    m = separation_metrics(x, y)
    same, ns, diff, nd = ref.pair_sums(x, y)
    avg = (same + diff) / (ns + nd)
    within, between = ref.centroid_stats(x, y)
    expected = {
        "avg": avg, "ds": same / ns / avg, "dd": diff / nd / avg, "cs": within / avg, "cd": between / avg,
        "acc_knn": ref.knn_accuracy(x, y, 10, False), "acc_knn_loo": ref.knn_accuracy(x, y, 10, True),
    }
    assert list(m) == list(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(m[key], value, rtol=1e-9, err_msg=key)


def test_one_class_gives_nan_where_no_pairs_exist():
    x, y = make_data(20, 2, "one-class", np.float64)
    m = separation_metrics(x, y)
    assert math.isnan(m["dd"]) and math.isnan(m["cd"]) and m["ds"] == pytest.approx(1.0)
    assert m["acc_knn"] == m["acc_knn_loo"] == 1.0


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((1, 2)), np.zeros(1, int), "at least 2 points"),
    (np.zeros((5, 2)), np.zeros(4, int), "4 labels for 5 points"),
    (np.array([[0.0, np.nan], [1, 1]]), np.zeros(2, int), "NaN or Inf"),
    (np.array([[0.0, np.inf], [1, 1]]), np.zeros(2, int), "NaN or Inf"),
    (np.zeros((4, 2)), np.array([0.0, 1.0, 0.0, 1.0]), "integer dtype"),
    (np.zeros((4, 2)), np.array([0.5, 1.0, 0.0, 1.0]), "labels must be integers"),
    (np.zeros((4, 2, 2)), np.zeros(4, int), "2-D"),
    (np.zeros(4), np.zeros(4, int), "2-D"),
])
def test_bad_input_is_named(x, y, message):
    with pytest.raises(InputError, match=message):
        separation_metrics(x, y)


@pytest.mark.parametrize("d", [2, 25])
def test_numba_results_do_not_depend_on_the_thread_count(d):
    import numba

    from repscope.kernels.silhouette import class_distance_sums

    x, y = make_data(3000, d, "balanced", np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = pair_sums(x, y, method="numba")
        one_classes = class_distance_sums(x, y, method="numba")[0]
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = pair_sums(x, y, method="numba")
        many_classes = class_distance_sums(x, y, method="numba")[0]
    finally:
        numba.set_num_threads(before)
    assert float(one.same_sum) == float(many.same_sum) and float(one.diff_sum) == float(many.diff_sum)
    assert np.array_equal(one_classes, many_classes)


def ordered_pair_sums(x: np.ndarray, ends: np.ndarray, rows: int, tile: int) -> tuple[float, float]:
    """The order the numba pair kernel defines (kernels/_numba.py), as plain scalar loops:
    blocks of ``rows`` rows paired p with nb - 1 - p; per block, tiles of ``tile`` columns
    from its first row + 1; per tile and row a partial sum from 0.0 over the columns in
    order, each squared distance summed over the dimensions in order; the block adds its
    rows' partial sums in (tile, row) order; numpy sums the blocks' pairs."""
    n, d = x.shape
    nb = (n + rows - 1) // rows
    half = (nb + 1) // 2

    def block(b):
        r0, r1 = b * rows, min(b * rows + rows, n)
        same = diff = 0.0
        for c0 in range(r0 + 1, n, tile):
            for i in range(r0, r1):
                part_same = part_diff = 0.0
                for j in range(max(c0, i + 1), min(c0 + tile, n)):
                    sq = 0.0
                    for k in range(d):
                        u = float(x[j, k]) - float(x[i, k])
                        sq += u * u
                    if j < ends[i]:
                        part_same += math.sqrt(sq)
                    else:
                        part_diff += math.sqrt(sq)
                same += part_same
                diff += part_diff
        return same, diff

    same, diff = np.zeros(half), np.zeros(half)
    for p in range(half):
        same[p], diff[p] = block(p)
        if nb - 1 - p != p:
            s, t = block(nb - 1 - p)
            same[p] += s
            diff[p] += t
    return float(np.sum(same)), float(np.sum(diff))


@pytest.mark.parametrize("rows, tile", [(32, None), (8, 16), (5, 7), (1, 3), (32, 40)])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("pattern", ["balanced", "singleton", "duplicates", "lattice", "one-class"])
def test_the_numba_pair_kernel_takes_its_defined_order_bit_for_bit(rows, tile, d, pattern):
    """Vectorised across rows, the kernel performs exactly the plain loop's additions, at
    any block and tile size: no vector width or compile path can change a bit."""
    from repscope.kernels import _numba
    from repscope.kernels.pairs import sort_by_label

    x, y = make_data(150, d, pattern, np.float64, seed=rows)
    sp = sort_by_label(x, y)
    use = tile if tile is not None else _numba._tile(d)
    assert _numba.pair_sums_direct(sp.x, sp.ends, rows=rows, tile=use) == ordered_pair_sums(sp.x, sp.ends, rows, use)
    if (rows, tile) == (32, None):
        assert pair_sums(x, y, method="numba")[::2] == ordered_pair_sums(sp.x, sp.ends, rows, use)


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("n", [1, 2, 33, 150])
def test_class_distance_sums_do_not_depend_on_the_block_size(d, n):
    """Per (row, class), the distances in column order: the plain loop's bits at any block size."""
    from repscope.kernels import _numba

    x, y = make_data(n, d, "duplicates" if n > 2 else "balanced", np.float64)
    ids = np.unique(y, return_inverse=True)[1]
    classes = int(ids.max()) + 1
    plain = np.zeros((n, classes))
    for i in range(n):
        for j in range(n):
            sq = 0.0
            for k in range(d):
                u = float(x[j, k]) - float(x[i, k])
                sq += u * u
            plain[i, ids[j]] += math.sqrt(sq)
    for rows in (1, 3, 32):
        assert np.array_equal(_numba.class_distance_sums_direct(x, ids, classes, rows=rows), plain)


_CACHE_PROBE = """
import numpy as np
from repscope.kernels import pair_sums
from repscope.kernels.silhouette import class_distance_sums
for seed, n, d in ((0, 1000, 2), (1, 1000, 2), (2, 1003, 2), (3, 3000, 25)):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (rng.normal(size=(n, d)) * 5 + 30 * rng.normal(size=(10, d))[y]).astype(np.float32)
    p = pair_sums(x, y, method="numba")
    print(repr(float(p.same_sum)), repr(float(p.diff_sum)), class_distance_sums(x, y, method="numba")[0].tobytes().hex()[:4000])
"""


def test_numba_results_do_not_depend_on_the_cache_state(tmp_path):
    """The kernels compiled afresh and loaded from numba's cache give the same bits (a
    parallel function with fast-math flags did not)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    cold, warm = (subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True, env=env,
                                 check=True, timeout=300).stdout for _ in range(2))
    assert any((tmp_path / "numba").rglob("*.nbc"))
    assert cold == warm
