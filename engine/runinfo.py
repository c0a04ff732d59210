"""The run folder's ``config.json``: settings, decisions, versions and checksums, merged in."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

CONFIG = "config.json"
#: The run's Zarr store inside its folder, unless the ``store`` setting puts it elsewhere.
STORE = "store.zarr"


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """``<run_dir>/config.json`` as a dict ({} where there is none)."""
    path = Path(run_dir) / CONFIG
    return json.loads(path.read_text()) if path.is_file() else {}


def store_location(run_dir: str | os.PathLike) -> str | Path:
    """Where a run's store is: the ``store`` setting recorded in its config.json (a path
    or an fsspec URL), else ``<run_dir>/store.zarr``."""
    return read_run_config(run_dir).get("settings", {}).get("store") or Path(run_dir) / STORE


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries the run used (absent ones left out)."""
    out = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "zarr", "numba", "scikit-learn", "torchvision", "cupy-cuda12x", "cupy",
                 "cuml-cu12", "cuml", "faiss-cpu", "faiss-gpu-cu12", "umap-learn", "openTSNE", "torchdr",
                 "matplotlib", "jinja2", "dask", "distributed", "dask-cuda"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _merge(into: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def update_run_config(run_dir: str | os.PathLike, patch: dict) -> dict:
    """Merge ``patch`` into ``<run_dir>/config.json`` (written atomically) and return it."""
    path = Path(run_dir) / CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    config = json.loads(path.read_text()) if path.is_file() else {}
    _merge(config, patch)
    config["versions"] = versions()
    tmp = path.with_name(CONFIG + ".partial")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return config
