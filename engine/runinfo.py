"""The run folder's ``config.json``: settings, decisions, versions and checksums, merged in."""

from __future__ import annotations

import errno
import json
import os
import platform
from importlib import metadata
from pathlib import Path

from .errors import DataError, MissingDataError

CONFIG = "config.json"
#: The run's Zarr store inside its folder, unless the ``store`` setting puts it elsewhere.
STORE = "store.zarr"


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """``<run_dir>/config.json`` as a dict ({} where there is none).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.

    Returns
    -------
    dict
        The recorded settings, decisions, versions and checksums.

    Raises
    ------
    DataError
        Where the file is not a JSON object (cut short, say); the message names it and
        says how to have it written again.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        detail = str(exc)
    else:
        if isinstance(config, dict):
            return config
        detail = f"it holds a {type(config).__name__}, not an object"
    raise DataError(f"{path} is not readable JSON ({detail}); delete it and rerun `repscope run` with the same "
                    "settings to write it again (checkpoints and the store are reused)")


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all (a ``.partial`` file, then a rename).

    A file that holds ``text`` already is left as it is, its time included, so that a
    rerun with nothing to do changes nothing (and says so: see ``pipeline``).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is made where it is not there.
    text : str
        Its new content.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        As writing raised it, the partial file removed and the old file left as it was;
        one with ``errno.ENOSPC`` (no space left on the device) names ``path``.
    """
    path = Path(path)
    try:
        if path.read_text() == text:
            return path
    except (OSError, UnicodeDecodeError):  # not there (or not text): written below
        pass
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    return path


def require_run(run_dir: str | os.PathLike, store: bool = False) -> dict:
    """The config of the run folder ``run_dir``, checked before a command reads it; nothing is written.

    Raises MissingDataError (one line, exit 3) where ``run_dir`` is not a run folder (no
    config.json recording a run's settings) or, with ``store``, where the run's store does
    not exist yet (the extract stage makes it).

    Examples
    --------
    >>> import tempfile
    >>> require_run(tempfile.mkdtemp() + "/nothing")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    repscope.engine.errors.MissingDataError: .../nothing is not a run folder (no config.json with a run's settings); make one with `repscope run --out .../nothing` or repscope.analyze(..., out=...)
    """
    path = Path(run_dir)
    config = read_run_config(path) if (path / CONFIG).is_file() else {}
    if not config.get("settings"):
        make = (f"run `repscope extract --out {path}` first (it makes the run's store) or `repscope run --out {path}`"
                if store else f"make one with `repscope run --out {path}`")
        raise MissingDataError(f"{path} is not a run folder (no {CONFIG} with a run's settings); {make} "
                               "or repscope.analyze(..., out=...)")
    if store:
        location = config["settings"].get("store") or path / STORE
        if "://" not in str(location) and not Path(location).is_dir():
            raise MissingDataError(f"{path}: the run's store {location} does not exist yet; the extract stage makes "
                                   f"it (`repscope extract --out {path}`)")
    return config


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
    config = read_run_config(run_dir)
    _merge(config, patch)
    config["versions"] = versions()
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config
