"""The embedders' alignment with the references: openTSNE's optimiser in TorchDR, cuML's parameters, parity.

TorchDR runs on the CPU here, so its t-SNE and UMAP are run and compared with openTSNE
and umap-learn within the bands of ``repscope.engine.parity``; cuML cannot be installed
here, so its parameters are checked against the signature documented for the pinned
release (cuML 26.10) and against what each is meant to match.
"""

from __future__ import annotations

import numpy as np
import pytest

from repscope.engine import embedders as EM
from repscope.engine.errors import SettingsError
from repscope.engine.parity import BANDED, compare, make, score_seeds

from .conftest import write_complete

torch = pytest.importorskip("torch")
pytest.importorskip("torchdr")


# ------------------------------------------------------------------ openTSNE's optimiser


_TARGET = np.random.default_rng(4).normal(size=(40, 2)) * 3


def _gradient(z: np.ndarray) -> np.ndarray:
    """A fixed, non-linear gradient field (a bowl with ripples) that both libraries step through.

    Contractive, so that rounding differences do not grow chaotically over the steps.
    """
    return 0.05 * (z - _TARGET) + 0.01 * np.sin(3.0 * z)


@pytest.mark.parametrize("lr, momentum, steps", [(1.0, 0.8, 60), (5.0, 0.5, 40), (400.0, 0.8, 20)])
def test_gains_sgd_steps_as_opentsne_gradient_descent(lr, momentum, steps):
    """GainsSGD against openTSNE's own ``gradient_descent`` (gains, momentum, re-centring; at
    lr 400 most steps are clipped to openTSNE's norm of 5), to 1e-8 in float64."""
    from openTSNE.tsne import gradient_descent

    from repscope.engine.tsne_optim import GainsSGD

    z0 = np.random.default_rng(3).normal(size=(40, 2))
    ours = torch.nn.Parameter(torch.from_numpy(z0.copy()))
    opt = GainsSGD([ours], lr=lr, momentum=momentum)
    clipped = 0
    for _ in range(steps):
        opt.zero_grad()
        ours.grad = torch.from_numpy(_gradient(ours.detach().numpy()))
        opt.step()
        clipped += int((opt.state[ours]["update"].norm(dim=1) > 5 - 1e-9).sum())
    theirs = z0.copy()
    gradient_descent()(theirs, None, steps, lambda e, P, **kw: (0.0, _gradient(np.asarray(e))),
                       learning_rate=lr, momentum=momentum)
    np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=0, atol=1e-8)
    assert (clipped > 0) == (lr > 100)


def test_gains_sgd_on_ties_and_zero_gradients():
    """Zero gradients leave points still (the first gain step is the only change); two tied points move alike."""
    from repscope.engine.tsne_optim import GainsSGD

    z = torch.nn.Parameter(torch.tensor([[1.0, 1.0], [1.0, 1.0], [-2.0, -2.0]], dtype=torch.float64))
    opt = GainsSGD([z], lr=1.0)
    z.grad = torch.zeros_like(z)
    opt.step()
    np.testing.assert_allclose(z.detach().numpy(), [[1.0, 1.0], [1.0, 1.0], [-2.0, -2.0]])
    z.grad = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    opt.step()
    assert torch.equal(z[0], z[1])
    with pytest.raises(ValueError, match="learning rate must be positive"):
        GainsSGD([z], lr=0.0)


def test_opentsne_schedule_keeps_the_optimizer_and_uses_n_over_exaggeration():
    from repscope.engine.tsne_optim import GainsSGD, opentsne_schedule_tsne

    x = torch.randn(80, 4, generator=torch.Generator().manual_seed(1))
    seen = []

    tsne = opentsne_schedule_tsne(perplexity=5.0, max_iter=30, early_exaggeration_iter=10, lr="auto",
                                  optimizer=GainsSGD, device="cpu", random_state=0, min_grad_norm=0.0)
    real_end = tsne.on_training_step_end

    def spy():
        out = real_end()
        seen.append((int(tsne.n_iter_), id(tsne.optimizer_), tsne.optimizer_.param_groups[0]["lr"]))
        return out

    tsne.on_training_step_end = spy
    tsne.fit_transform(x)
    lrs = {n: lr for n, _, lr in seen}
    assert lrs[5] == pytest.approx(80 / 12 / 4) and lrs[20] == pytest.approx(80 / 4)
    assert len({opt for _, opt, _ in seen}) == 1  # one optimizer: gains and momentum carry over
    assert len(seen) == 30  # no early stop


# ------------------------------------------------------------------ devices and choice


def test_torchdr_runs_on_the_cpu_when_asked():
    cls = EM.choose_embedder("tsne", "cpu", prefer="torchdr-tsne")
    assert cls.name == "torchdr-tsne" and EM.embedder_device(cls, "cpu") == "cpu"
    assert EM.embedder_device(EM.EMBEDDERS["torchdr-umap"], "auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SettingsError, match="runs on cuda, cpu, not 'tpu'"):
        EM.TorchdrTSNE(device="tpu")
    with pytest.raises(SettingsError, match="'cuml-umap' runs only on a GPU"):
        EM.embedder_device(EM.EMBEDDERS["cuml-umap"], "cpu")


def test_torchdr_records_device_and_neighbour_path():
    p = EM.TorchdrTSNE(device="cpu").describe(1000, 3)
    assert p["device"] == "cpu" and p["parameters"]["device"] == "cpu"
    assert p["parameters"]["backend"] in ("faiss", None)
    assert p["parameters"]["max_iter"] == 750 and p["parameters"]["optimizer"] == "GainsSGD"
    u = EM.TorchdrUMAP(device="cpu").parameters(20_000, 3)
    assert u["max_iter"] == 200 and u["lr"] == 1.0 and u["scheduler"] == "LinearLR"


def test_a_torchdr_job_on_the_cpu_writes_its_device(tmp_path):
    from repscope.engine.jobs import JobKey, JobSettings, run_job
    from repscope.store import Representation, RunStore

    store = RunStore(tmp_path / "store.zarr")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50).astype(np.uint8)
    x = (rng.normal(size=(150, 5)) + 4 * labels[:, None]).astype(np.float32)
    write_complete(store, {"toy/labels": labels, "toy/seed1/trained/feat": x})
    rep = Representation(name="feat", array="feat", channel=None, in_study=True, depth=1, dims=5)
    settings = JobSettings(embedders={"umap": "torchdr-umap"}, devices={"umap": "cpu"})
    result = run_job(tmp_path, JobKey("toy", 1, "trained", "umap", "feat", rep), settings)
    assert result["metrics"]["acc_knn"] == 1.0 and result["metrics"]["cs"] < 0.5
    info = store.info("toy/seed1/trained/embeddings/umap/feat")
    assert info["complete"] and info["fingerprint"]["device"] == "cpu"
    assert info["fingerprint"]["embedder"] == "torchdr-umap"


# ------------------------------------------------------------------ cuML, by its documented signature

#: cuML 26.10's documented constructor parameters (python/cuml/cuml/manifold/t_sne.pyx, umap/umap.pyx).
CUML_TSNE_SIGNATURE = {
    "n_components", "perplexity", "early_exaggeration", "late_exaggeration", "learning_rate", "max_iter",
    "n_iter_without_progress", "min_grad_norm", "metric", "metric_params", "init", "random_state", "method",
    "angle", "n_neighbors", "perplexity_max_iter", "exaggeration_iter", "pre_momentum", "post_momentum",
    "learning_rate_method", "square_distances", "precomputed_knn", "verbose", "output_type",
}
CUML_UMAP_SIGNATURE = {
    "n_neighbors", "n_components", "metric", "metric_kwds", "n_epochs", "learning_rate", "min_dist", "spread",
    "set_op_mix_ratio", "local_connectivity", "repulsion_strength", "negative_sample_rate", "transform_queue_size",
    "init", "a", "b", "target_n_neighbors", "target_weight", "target_metric", "hash_input", "random_state",
    "force_serial_epochs", "precomputed_knn", "callback", "build_algo", "build_kwds", "device_ids", "verbose",
    "output_type",
}


@pytest.mark.parametrize("n", [1_000, 5_000, 60_000])
def test_cuml_tsne_parameters_mean_what_opentsne_does(n):
    p = EM.CumlTSNE().parameters(n, 42)
    assert set(p) <= CUML_TSNE_SIGNATURE
    o = EM.OpenTSNE().parameters(n, 42)
    # 'adaptive' would replace neighbours, learning rate and exaggeration above 2 000 points
    assert p["learning_rate_method"] is None
    assert p["n_neighbors"] == 3 * o["perplexity"] and p["perplexity"] == o["perplexity"]
    assert p["early_exaggeration"] == o["early_exaggeration"] and p["exaggeration_iter"] == o["early_exaggeration_iter"]
    assert p["max_iter"] == o["early_exaggeration_iter"] + o["n_iter"]  # cuML counts all iterations
    assert p["learning_rate"] == pytest.approx(n / 12)  # openTSNE's N / exaggeration while exaggerated
    assert p["pre_momentum"] == p["post_momentum"] == 0.8  # openTSNE's momentum, both phases
    assert p["init"] == "pca" and p["min_grad_norm"] == 0.0 and p["method"] == "fft"
    assert p["square_distances"] and p["metric"] == "euclidean" and p["late_exaggeration"] == 1.0


@pytest.mark.parametrize("n, epochs", [(1_000, 500), (10_000, 500), (10_001, 200), (60_000, 200)])
def test_cuml_umap_parameters_mean_what_umap_learn_does(n, epochs):
    import umap

    p = EM.CumlUMAP().parameters(n, 42)
    assert set(p) <= CUML_UMAP_SIGNATURE
    defaults = umap.UMAP()
    for name in ("learning_rate", "negative_sample_rate", "repulsion_strength", "set_op_mix_ratio",
                 "local_connectivity", "spread", "init"):
        assert p[name] == getattr(defaults, name), name
    assert p["n_epochs"] == epochs and p["build_algo"] == "brute_force_knn"
    assert p["n_neighbors"] == EM.N_NEIGHBORS and p["min_dist"] == EM.MIN_DIST


def test_cuml_embedders_pass_only_their_parameters(monkeypatch):
    """With a stand-in cuML, each embedder calls the estimator with exactly ``parameters()``."""
    import sys
    import types

    calls = {}

    class Estimator:
        def __init__(self, **kwargs):
            calls[type(self).__name__] = kwargs

        def fit_transform(self, x):
            return types.SimpleNamespace(astype=lambda dtype: np.zeros((len(x), 2), dtype))

    manifold = types.ModuleType("cuml.manifold")
    manifold.TSNE = type("TSNE", (Estimator,), {})
    manifold.UMAP = type("UMAP", (Estimator,), {})
    monkeypatch.setitem(sys.modules, "cuml", types.ModuleType("cuml"))
    monkeypatch.setitem(sys.modules, "cuml.manifold", manifold)
    x = np.zeros((300, 4), np.float32)
    EM.CumlTSNE().embed(x, 5)
    EM.CumlUMAP().embed(x, 5)
    assert calls["TSNE"] == {**EM.CumlTSNE().parameters(300, 5), "output_type": "cupy"}
    assert calls["UMAP"] == {**EM.CumlUMAP().parameters(300, 5), "output_type": "cupy"}


# ------------------------------------------------------------------ parity on the CPU


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x[:500].astype(np.float32), y[:500]


SEEDS = (42, 43, 44)


@pytest.mark.parametrize("method, other", [("tsne", "torchdr-tsne@cpu"), ("umap", "torchdr-umap@cpu")])
def test_torchdr_on_the_cpu_matches_the_reference_within_its_band(digits, method, other):
    from repscope.engine.parity import REFERENCE

    x, y = digits
    reference = score_seeds(make(REFERENCE[method]), x, y, SEEDS)
    rows = score_seeds(make(other), x, y, SEEDS)
    result = compare(reference, rows)
    misses = {m: result[m] for m in BANDED if not result[m]["within"]}
    assert not misses, misses


def test_a_run_with_torchdr_on_the_cpu_records_its_choice(tmp_path):
    """``analyze`` with ``backend="cpu"`` and TorchDR by name: every job runs TorchDR on the CPU."""
    import json

    from torch import nn

    import repscope

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    run = repscope.analyze(net, "digits", layers=["2"], n=150, out=tmp_path, workers=0, report=False,
                           backend="cpu", tsne_embedder="torchdr-tsne", umap_embedder="torchdr-umap")
    decisions = json.loads((tmp_path / "config.json").read_text())["backend"]
    assert decisions["embedders"] == {"tsne": "torchdr-tsne", "umap": "torchdr-umap"}
    assert decisions["devices"] == {"tsne": "cpu", "umap": "cpu"} and decisions["kernels"] == "numpy"
    for method in ("tsne", "umap"):
        info = run.store.info(f"digits/seed42/untrained/embeddings/{method}/2")
        assert info["complete"] and info["fingerprint"]["device"] == "cpu"
    assert len(run.metrics) == 8 and all(0.0 < row["acc_knn"] <= 1.0 for row in run.metrics)
