"""CuPy kernels against the CPU ones (run where a CUDA device and CuPy are present)."""

import numpy as np
import pytest

from repscope.kernels import centroid_stats, knn_accuracy, pair_sums, separation_metrics
from tests.test_kernels import RTOL, make_data

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("n", [2, 17, 2000, 20_001])
@pytest.mark.parametrize("d", [2, 25, 784])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pattern", ["balanced", "singleton", "duplicates", "one-class"])
def test_pair_sums_on_the_device(cupy, n, d, dtype, pattern):
    if n == 20_001 and d == 784:
        pytest.skip("covered by the benchmark")
    x, y = make_data(n, d, pattern, dtype)
    cpu = pair_sums(x, y)
    gpu = pair_sums(cupy.asarray(x), cupy.asarray(y))
    assert all(isinstance(v, cupy.ndarray) for v in gpu), "CuPy in, CuPy out"
    assert (int(gpu.same_count), int(gpu.diff_count)) == (int(cpu.same_count), int(cpu.diff_count))
    np.testing.assert_allclose(float(gpu.same_sum), float(cpu.same_sum), rtol=RTOL[dtype])
    np.testing.assert_allclose(float(gpu.diff_sum), float(cpu.diff_sum), rtol=RTOL[dtype])


def test_the_cuda_kernel_is_the_one_used_in_2d(cupy):
    x, y = make_data(3000, 2, "balanced", np.float32)
    a = pair_sums(cupy.asarray(x), cupy.asarray(y), method="cuda")
    b = pair_sums(cupy.asarray(x), cupy.asarray(y), method="blocked")
    np.testing.assert_allclose(float(a.same_sum), float(b.same_sum), rtol=1e-5)


@pytest.mark.parametrize("d", [2, 64])
def test_centroids_and_knn_on_the_device(cupy, d):
    x, y = make_data(1500, d, "unbalanced", np.float64)
    cpu_c, gpu_c = centroid_stats(x, y), centroid_stats(cupy.asarray(x), cupy.asarray(y))
    np.testing.assert_allclose(float(gpu_c.within), float(cpu_c.within), rtol=1e-9)
    np.testing.assert_allclose(float(gpu_c.between), float(cpu_c.between), rtol=1e-9)
    cpu_k = knn_accuracy(x, y, method="exact")
    gpu_k = knn_accuracy(cupy.asarray(x), cupy.asarray(y), method="exact")
    assert float(gpu_k.acc_knn) == float(cpu_k.acc_knn) and float(gpu_k.acc_knn_loo) == float(cpu_k.acc_knn_loo)


def test_all_metrics_on_the_device(cupy):
    x, y = make_data(4000, 2, "balanced", np.float32)
    cpu = separation_metrics(x, y)
    gpu = separation_metrics(cupy.asarray(x), cupy.asarray(y))
    for key in cpu:
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("pattern", ["balanced", "duplicates", "lattice"])
def test_neighbourhood_measures_on_the_device(cupy, pattern):
    from repscope.kernels import neighbourhood_scores

    high, _ = make_data(700, 30, pattern, np.float64)
    low = high[:, :2] + make_data(700, 2, pattern, np.float64, seed=1)[0]
    cpu = neighbourhood_scores(high, low, k=10)
    gpu = neighbourhood_scores(cupy.asarray(high), cupy.asarray(low), k=10, block_bytes=2_000_000)
    np.testing.assert_allclose(gpu[:3], cpu[:3], atol=1e-12)


@pytest.mark.parametrize("d", [2, 64])
@pytest.mark.parametrize("pattern", ["balanced", "singleton", "duplicates"])
def test_silhouette_and_class_sums_on_the_device(cupy, d, pattern):
    from repscope.kernels import class_distance_sums, silhouette_score

    x, y = make_data(1500, d, pattern, np.float64)
    cpu_sums, _ = class_distance_sums(x, y)
    gpu_sums, _ = class_distance_sums(cupy.asarray(x), cupy.asarray(y))
    assert isinstance(gpu_sums, cupy.ndarray)
    np.testing.assert_allclose(gpu_sums.get(), cpu_sums, rtol=1e-10)
    assert silhouette_score(cupy.asarray(x), cupy.asarray(y)) == pytest.approx(silhouette_score(x, y), rel=1e-10)


def test_cka_on_the_device(cupy):
    from repscope.kernels import cka_matrix

    x, _ = make_data(3000, 40, "balanced", np.float64)
    y = np.tanh(x[:, :10]) + 3.0
    cpu = cka_matrix([x, y, x[:, :2]])
    gpu = cka_matrix([cupy.asarray(x), cupy.asarray(y), cupy.asarray(x[:, :2])])
    np.testing.assert_allclose(gpu, cpu, atol=1e-10)
