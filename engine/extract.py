"""Stream the first N training examples through both networks into the run's store.

Memory is bounded by one batch (one chunk row-block), not by N: images are read from
the memory-mapped IDX file batch by batch, each batch goes through the trained and the
untrained network, and every array of the store gets that row block before the next
batch is read. Progress is committed per array after each block, so a rerun after a
kill resumes at the first unwritten block, recomputes it exactly as before and gives the
same bytes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from store import CHUNK_ROWS, LAYERS, RunStore, labels_key, layer_key, original_key

from .backend import torch_device
from .config import STUDY_SEED, TrainSettings, dataset_spec
from .data import load
from .errors import SettingsError
from .idx import read_rows
from .model import Outputs, to_input
from .runinfo import store_location, update_run_config
from .train import NETWORKS, ensure_checkpoints, load_network

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class _Target:
    """One array to fill: where, what shape, and how to cut its rows out of a batch."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    fingerprint: dict
    take: Callable[[np.ndarray, np.ndarray, dict[str, Outputs]], np.ndarray]


def _targets(dataset: str, seed: int, n: int, data_sums: dict, checkpoint_sha: str) -> list[_Target]:
    base = {"n": n, "chunk_rows": CHUNK_ROWS, "train_sha256": data_sums}
    targets = [
        _Target(labels_key(dataset), (n,), "uint8", base, lambda x, y, out: y),
        _Target(original_key(dataset), (n, 28 * 28), "uint8", base, lambda x, y, out: x.reshape(len(x), -1)),
    ]
    for network in NETWORKS:
        for layer, shape in LAYERS.items():
            targets.append(_Target(
                layer_key(dataset, seed, network, layer), (n, *shape), "float32",
                {**base, "checkpoints_sha256": checkpoint_sha},
                lambda x, y, out, network=network, layer=layer: getattr(out[network], layer).cpu().numpy(),
            ))
    return targets


def extract(
    run_dir: str | os.PathLike,
    dataset: str,
    n: int,
    seed: int = STUDY_SEED,
    data_root: str | os.PathLike | None = None,
    backend: str = "auto",
    settings: TrainSettings = TrainSettings(),
) -> Path:
    """Fill ``<store>/<dataset>`` (``<run_dir>/store.zarr`` unless the run's settings put the
    store elsewhere) with labels, images and every layer of both networks for the first
    ``n`` training examples (training first if the checkpoints are missing). Returns the
    store's location."""
    spec = dataset_spec(dataset)
    data = load(spec.name, data_root)
    total = len(data.train_images)
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise SettingsError(f"--n must be a whole number from 1 to {total}; got {n!r}")
    n = int(n)
    device = torch_device(backend)
    ckpt = ensure_checkpoints(run_dir, data, seed, settings, device)
    nets = {name: load_network(path, device) for name, path in zip(NETWORKS, (ckpt.trained, ckpt.untrained))}

    store_path = store_location(run_dir)
    store = RunStore(store_path)
    train_sums = {k: v for k, v in data.sha256.items() if k.startswith("train-")}
    progress = [
        (t, store.prepare(t.key, t.shape, t.dtype, t.fingerprint))
        for t in _targets(spec.name, seed, n, train_sums, ckpt.sha256)
    ]
    todo = [(t, p) for t, p in progress if not p.complete]
    log.info("%s: extracting N=%d, seed %d, device %s, batch %d rows, into %s (%d of %d arrays to write)",
             spec.name, n, seed, device, CHUNK_ROWS, store_path, len(todo), len(progress))
    started = time.perf_counter()
    if todo:
        start = min(p.rows_done for _, p in todo)
        if start:
            log.info("%s: resuming at row %d", spec.name, start)
        with tqdm(total=n, initial=start, desc=f"extract {spec.name}", unit="img", unit_scale=True) as bar:
            for a in range(start, n, CHUNK_ROWS):
                b = min(a + CHUNK_ROWS, n)
                x = read_rows(data.train_images, a, b)
                y = read_rows(data.train_labels, a, b)
                with torch.inference_mode():
                    inputs = to_input(torch.from_numpy(x).to(device))
                    out = {name: net(inputs) for name, net in nets.items()}
                pending = [(t, p) for t, p in todo if p.rows_done < b]
                for t, p in pending:
                    p.array[a:b] = t.take(x, y, out)
                for _, p in pending:
                    store.commit_rows(p, b)
                bar.update(b - a)
        for _, p in todo:
            store.mark_complete(p)
    seconds = time.perf_counter() - started
    update_run_config(run_dir, {
        "data": {spec.name: {"source": data.source, "sha256": data.sha256, "note": data.note}},
        "extract": {spec.name: {
            "n": n, "seed": seed, "device": device, "chunk_rows": CHUNK_ROWS,
            "checkpoints_sha256": ckpt.sha256, "test_accuracy": ckpt.accuracy,
            "train_attempt": ckpt.attempt, "seconds": round(seconds, 3),
        }},
    })
    log.info("%s: extraction complete in %.1f s", spec.name, seconds)
    return store_path
