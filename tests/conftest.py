"""Shared fixtures: the real data sets, fetched once per test session, and tiny networks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from engine.data import fetch


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
