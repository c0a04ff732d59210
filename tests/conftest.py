"""Shared fixtures: the real data sets, fetched once per test session, and tiny networks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from repscope.engine.data import fetch


def with_checkpoints(run_dir: Path, to: Path) -> Path:
    """A new run folder ``to`` holding ``run_dir``'s checkpoints, so that training is skipped."""
    shutil.copytree(run_dir / "checkpoints", to / "checkpoints")
    return to


def write_complete(store, arrays: dict) -> None:
    """Write each ``key: array`` of ``arrays`` into ``store`` whole and mark it complete."""
    for key, value in arrays.items():
        store.write_whole(key, value, {})


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run where PyTorch sees a CUDA device and skip elsewhere."""
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root holding both real data sets, fetched (or verified) once per session.

    ``$ENGINE_DATA_DIR`` keeps the files between sessions (CI points it at its cache).
    """
    root = Path(os.environ.get("ENGINE_DATA_DIR") or tmp_path_factory.mktemp("data"))
    for name in ("mnist", "fashion-mnist"):
        fetch(name, root)
    return root


@pytest.fixture()
def fresh_torch_seed():
    """Run a test with torch's global RNG restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture()
def cupy():
    """CuPy, for tests marked ``gpu``."""
    return pytest.importorskip("cupy")


@pytest.fixture(scope="session")
def smoke_run(data_root, tmp_path_factory) -> Path:
    """The smoke preset, run once per session: both data sets, both methods, N = 1 000."""
    from repscope.engine import pipeline
    from repscope.engine.settings import from_options

    out = tmp_path_factory.mktemp("smoke")
    pipeline.run(from_options(out=out, preset="smoke", data_root=data_root))
    return out
