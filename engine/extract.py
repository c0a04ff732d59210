"""Stream the first N examples of a source through both networks into the run's store.

Memory is bounded by one batch (one chunk row-block), not by N: examples are read from
the source batch by batch, each batch goes through the trained and the untrained
network with forward hooks on the analysed layers, and every array of the store gets
that row block before the next batch is read. Progress is committed per array after
each block, so a rerun after a kill resumes at the first unwritten block, recomputes it
exactly as before and gives the same bytes.

Representations wider than ``WIDE`` values are then reduced to ``COMPONENTS``
principal components, fitted chunk-wise over the store (:mod:`repscope.kernels.pca`),
and the reduced arrays are what the embedders read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..store import (
    CHUNK_ROWS, EXAMPLE, ORIGINAL, Representation, RunStore, build_representations, components_key, example_key,
    heldout_key, labels_key, layer_dims, layer_key, original_key, projection_key, reduced_key,
)
from .backend import torch_device
from .errors import DataError, SettingsError
from .jobs import COMPONENTS, LARGE_VALUES, SMALL_VALUES, WIDE, needs_reduction
from .model import (
    NETWORKS, Fitted, Layer, ModelSpec, build, capture, describe, fitted_width, identity, logits, probe_shapes, to_float,
)
from .progress import progress_bar
from .runinfo import store_location, update_run_config
from .sources import Source
from .train import Checkpoints, Recipe, ensure_checkpoints, load_network

log = logging.getLogger(__name__)

#: The memory one forward pass of a batch may take for its activations: a chunk's rows go
#: through the networks in batches of as many as fit (all of them for small networks).
FORWARD_BYTES = 1 << 30

def plan_representations(spec: ModelSpec, source: Source, log_reading: bool = False,
                         found: dict | None = None) -> tuple[tuple[Representation, ...], dict]:
    """The representations of ``spec`` on ``source`` and each layer's activation shape,
    from one dry forward pass of the first examples through a freshly built network.

    The dry pass checks every layer before any work (one line per bad layer): a module
    that does not run, a structured output without ``element``, a token sequence
    without ``tokens``, an output that is not batch first. With ``log_reading``, what is
    read of each layer that is not simply its module's output (an input, an element,
    pooled tokens, a reduction) is logged. ``found``, when given, gets each layer's shape
    as read (``read``), before its ``reduce`` (``values``) and as stored (``stored``), the
    network's parameter count (``parameters``) and the examples of a forward batch
    (``batch``): what :mod:`repscope.engine.plan` needs."""
    model = build(spec, 0)
    # three examples: an RNN's hidden state (layers, batch, features) of one or two layers is then not batch first
    examples = to_float(torch.from_numpy(np.asarray(source.train.rows(0, min(3, len(source.train))))), source.scale)
    raw: dict[str, tuple[int, ...]] = {}
    unreduced: dict[str, tuple[int, ...]] = {}
    shapes = probe_shapes(model, spec, examples, raw=raw, unreduced=unreduced)
    if found is not None:
        from .model import count_parameters

        found.update(read=raw, values=unreduced, stored=shapes, parameters=count_parameters(model),
                     batch=forward_rows(model, spec, source.train, source.scale))
    for layer in spec.layers if log_reading else ():
        if layer.reading():
            log.info("%s: layer %s reads %s of module %s: %s per example, analysed as %s", source.name, layer.key,
                     layer.describe_reading(), layer.path, raw.get(layer.key), shapes[layer.key])
    layers = [(layer.key, layer.split or "whole", shapes[layer.key], layer.max_channels, layer.reading())
              for layer in spec.layers]
    flat = [layer.key for layer in spec.layers if layer.split == "channels" and len(shapes[layer.key]) < 2]
    if flat:
        raise SettingsError(f"layer(s) {', '.join(flat)} have no channel axis to split (shape "
                            f"{shapes[flat[0]]}); give split = \"whole\"")
    if spec.checkpoint is None:  # trained here: every label must index one of the network's outputs
        check_targets(model, spec, source, examples)
    input_dims = int(np.prod(source.example_shape))
    return build_representations(input_dims, layers), shapes


def check_targets(model: torch.nn.Module, spec: ModelSpec, source: Source, examples: torch.Tensor) -> None:
    """SettingsError (one line) where training targets fall outside the network's outputs."""
    with torch.inference_mode():
        output = logits(model(spec.transform(examples)))
    width = int(output.shape[-1]) if output.ndim == 2 else None
    if width is None:
        raise SettingsError(f"the model's output has shape {tuple(output.shape)} for a batch of {len(examples)}; "
                            "training needs logits (batch, classes): give a checkpoint, or a model that returns them")
    splits = [source.train] + ([source.test] if source.test is not None else [])
    targets = np.concatenate([np.asarray(source.targets(np.asarray(split.labels))) for split in splits])
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= width:
        raise SettingsError(
            f"{source.name}: labels run from {low} to {high} but the network has {width} outputs, so training "
            f"needs labels 0 .. {width - 1}: relabel the data (its labels as 0 .. C - 1), give a network with "
            f"{high + 1} outputs, or give trained weights (checkpoint)")


@dataclass(frozen=True)
class _Target:
    """One array to fill: where, what shape, and how to cut its rows out of a batch."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    fingerprint: dict
    take: Callable[[np.ndarray, np.ndarray, dict[str, dict[str, torch.Tensor]]], np.ndarray]
    #: What the engine records about it (read back by later stages).
    info: dict
    #: Its axes and its plain attributes, for xarray.
    dims: tuple[str, ...]
    attributes: dict


def _module_text(module: torch.nn.Module) -> str:
    """``Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))``: the module's type and settings."""
    return f"{type(module).__name__}({module.extra_repr()})"


def layer_fingerprint(base: dict, ckpt: Checkpoints, path: str, transform: dict, layer: Layer) -> dict:
    """What decides a layer's stored values: the examples (``base``), the networks, the
    module, the input transform, what is read of it, and for ``pca:D`` the fit's version."""
    record = {**base, "checkpoints_sha256": ckpt.sha256, "module": path, "transform": transform, **layer.reading()}
    if fitted_width(layer):
        from ..kernels.pca import FIT_VERSION

        record["fit"] = FIT_VERSION
    return record


def _transform_record(spec: ModelSpec, source: Source) -> dict:
    """The input transform by name and by what it does to the first examples."""
    with torch.inference_mode():
        first = spec.transform(to_float(torch.from_numpy(np.asarray(source.train.rows(0, 2))), source.scale))
    return {"name": describe(spec.transform),
            "sha256": hashlib.sha256(first.contiguous().cpu().numpy().tobytes()).hexdigest()}


def _targets(spec: ModelSpec, source: Source, seed: int, n: int, shapes: dict, ckpt: Checkpoints,
             nets: dict[str, torch.nn.Module], heldout: bool = False) -> list[_Target]:
    """The arrays of the first ``n`` training examples, or with ``heldout`` of the first
    ``n`` test examples (under ``heldout/``, beside their training counterparts)."""
    base = {"n": n, "chunk_rows": CHUNK_ROWS, "train_sha256": source.sha256, "scale": source.scale,
            **({"split": "test"} if heldout else {})}
    example = {"example_shape": list(source.example_shape), "scale": source.scale}
    # the class index of each example: the labels themselves where they are 0 .. C - 1 already
    mapped = {"label_values": list(source.label_values)} if source.label_values else {}
    labels_dtype = "<i8" if mapped else np.asarray(source.train.label_rows(0, 1)).dtype.str
    place = heldout_key if heldout else (lambda key: key)
    which = "held-out test example" if heldout else "example"
    targets = [
        _Target(place(labels_key(source.name)), (n,), labels_dtype, {**base, **mapped},
                lambda x, y, out: source.class_index(y), {"classes": list(source.classes), **mapped}, (EXAMPLE,),
                {"description": f"class of each {which} of {source.name} (index into classes"
                                + (", whose labels are label_values" if mapped else "") + ")",
                 "classes": list(source.classes), **mapped}),
        _Target(place(original_key(source.name)), (n, int(np.prod(source.example_shape))), np.dtype(source.train.examples.dtype).str,
                base, lambda x, y, out: x.reshape(len(x), -1), example, (EXAMPLE, "feature"),
                {"description": f"the {which}s of {source.name} as the source gives them, flattened "
                                f"(shape {tuple(source.example_shape)}; divide by scale {source.scale:g} for the network's units)",
                 **example}),
    ]
    paths = {layer.key: layer.path for layer in spec.layers}
    layers = {layer.key: layer for layer in spec.layers}
    transform = _transform_record(spec, source)
    for network in NETWORKS:
        modules = dict(nets[network].named_modules())
        for layer, shape in shapes.items():
            module = _module_text(modules[paths[layer]])
            reading = layers[layer].reading()  # {} for a module's output tensor: the arrays stay as they were
            targets.append(_Target(
                place(layer_key(source.name, seed, network, layer)), (n, *shape), "float32",
                {**layer_fingerprint(base, ckpt, paths[layer], transform, layers[layer])},
                lambda x, y, out, network=network, layer=layer: out[network][layer].cpu().numpy(),
                {"layer": layer, "activation_shape": list(shape)}, layer_dims(layer, shape, layers[layer].tokens,
                                                                               layers[layer].reduce),
                {"description": f"{layers[layer].describe_reading() if reading else 'output'} of {layer} "
                                f"(module {paths[layer]}: {module}) of the {network} network, seed {seed}"
                                f"{', held-out test examples' if heldout else ''}",
                 "layer": layer, "module": paths[layer], "module_type": module, **reading},
            ))
    return targets


def extract(
    run_dir: str | os.PathLike,
    spec: ModelSpec,
    source: Source,
    recipe: Recipe,
    n: int,
    seed: int,
    backend: str = "auto",
    heldout: bool = False,
) -> Path:
    """Fill ``<store>/<dataset>`` (``<run_dir>/store.zarr`` unless the run's settings put the
    store elsewhere) with labels, inputs and every analysed layer of both networks for the
    first ``n`` examples of ``source`` (training first if the checkpoints are missing), then
    reduce the wide representations. With ``heldout``, also the first ``min(n, test size)``
    test examples under ``heldout/`` (for linear probes). Returns the store's location."""
    total = len(source.train)
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise SettingsError(f"--n must be a whole number from 1 to {total} (the size of {source.name}); got {n!r}")
    n = int(n)
    device = torch_device(backend)
    ckpt = ensure_checkpoints(run_dir, spec, source, recipe, seed, device)
    nets = {name: load_network(spec, path, device) for name, path in zip(NETWORKS, (ckpt.trained, ckpt.untrained))}
    representations, shapes = plan_representations(spec, source, log_reading=True)

    store_path = store_location(run_dir)
    store = RunStore(store_path)
    store.repair_groups()  # groups whose zarr.json is cut short or missing (the stages write their attributes again)
    started = time.perf_counter()
    fitted = fit_projections(store, spec, source, n, seed, ckpt, nets, device)
    wrote = _fill(store, source, source.train, _targets(spec, source, seed, n, shapes, ckpt, nets), n, seed,
                  spec, nets, device, store_path, fitted=fitted)
    streamed = time.perf_counter() - started  # the examples through both networks into the store
    store.describe(source.name, description=f"{source.description}: the first {n} training examples",
                   classes=list(source.classes), example_shape=list(source.example_shape))
    n_heldout = 0
    if heldout and source.test is None:
        log.warning("%s has no test split: no held-out examples, so no linear probes", source.name)
    elif heldout:
        n_heldout = min(n, len(source.test))
        wrote |= _fill(store, source, source.test, _targets(spec, source, seed, n_heldout, shapes, ckpt, nets,
                                                             heldout=True), n_heldout, seed, spec, nets, device,
                       store_path, heldout=True, fitted=fitted)
    reduced = reduce_wide(store, source.name, seed, representations, device)
    seconds = time.perf_counter() - started
    update_run_config(run_dir, {
        "data": {source.name: {"source": source.description, "sha256": source.sha256, "note": source.note,
                               "classes": list(source.classes), "example_shape": list(source.example_shape),
                               **({"label_values": list(source.label_values)} if source.label_values else {}),
                               "image": source.is_image, "size": total}},
        "representations": {source.name: [r.record() for r in representations]},
        "extract": {source.name: {
            "n": n, "seed": seed, "device": device, "chunk_rows": CHUNK_ROWS,
            "checkpoints_sha256": ckpt.sha256, "test_accuracy": ckpt.accuracy,
            "train_attempt": ckpt.attempt,  # the times kept from the run that wrote
            **({"seconds": round(seconds, 3), "stream_seconds": round(streamed, 3)} if wrote else {}),
            **({"heldout": n_heldout} if heldout else {}),  # 0: the source has no test split
            "layers": {k: list(v) for k, v in shapes.items()}, "reduced": reduced,
        }},
    })
    log.info("%s: extraction complete in %.1f s", source.name, seconds)
    return Path(store_path) if not isinstance(store_path, str) else store_path


def _fill(store: RunStore, source: Source, split, targets: list[_Target], n: int, seed: int, spec: ModelSpec,
          nets: dict[str, torch.nn.Module], device: str, store_path, heldout: bool = False,
          fitted: dict[str, dict[str, Fitted]] | None = None) -> bool:
    """Stream the first ``n`` rows of ``split`` through both networks into ``targets``
    (``pca:D`` layers on their ``fitted`` projections, per network); resumable per array.
    Returns whether anything was written."""
    progress = []
    for t in targets:
        p = store.prepare(t.key, t.shape, t.dtype, t.fingerprint, dims=t.dims, attributes=t.attributes)
        if t.info and not p.complete:
            store.annotate(t.key, **t.info)
        progress.append((t, p))
    base = progress[0][0].fingerprint
    indices = heldout_key(example_key(source.name)) if heldout else example_key(source.name)
    if not store.is_complete(indices, base):
        store.write_whole(indices, np.arange(n, dtype=np.int64), base, dims=(EXAMPLE,),
                          attributes={"description": f"index of each analysed example in {source.name}'s "
                                                     f"{'test' if heldout else 'training'} split"})
    todo = [(t, p) for t, p in progress if not p.complete]
    what = "held-out " if heldout else ""
    log.info("%s: extracting %sN=%d, seed %d, device %s, batch %d rows, into %s (%d of %d arrays to write)",
             source.name, what, n, seed, device, CHUNK_ROWS, store_path, len(todo), len(progress))
    if not todo:
        return False
    start = min(p.rows_done for _, p in todo)
    if start:
        log.info("%s: resuming at row %d", source.name, start)
    batch = forward_rows(nets["trained"], spec, split, source.scale, device)
    if batch < CHUNK_ROWS:
        log.info("%s: the networks' activations take much memory: batches of %d examples", source.name, batch)
    largest = dict.fromkeys((t.key for t, _ in todo), 0.0)  # each array's largest magnitude, for the embedders
    with progress_bar(total=n, initial=start, desc=f"extract {what}{source.name}", unit="ex", unit_scale=True) as bar:
        for a in range(start, n, CHUNK_ROWS):
            b = min(a + CHUNK_ROWS, n)
            x = split.rows(a, b)
            y = split.label_rows(a, b)
            out = _forward(nets, spec.layers, spec, x, source.scale, device, batch, fitted)
            pending = [(t, p) for t, p in todo if p.rows_done < b]
            for t, p in pending:
                rows = np.asarray(t.take(x, y, out))
                _check_finite(rows, t.key, a)
                if rows.dtype.kind == "f" and rows.size:
                    largest[t.key] = max(largest[t.key], float(np.abs(rows).max()))
                p.array[a:b] = rows
            for _, p in pending:
                store.commit_rows(p, b)
            bar.update(b - a)
    for _, p in todo:
        store.mark_complete(p)
    for key, top in largest.items():
        if top > LARGE_VALUES or 0 < top < SMALL_VALUES:
            log.warning("%s: its largest magnitude is %.3g, outside the %g to %g the embedders handle (they compute "
                        "squared distances in float32, which overflow beyond about 1.8e19 and lose precision long "
                        "before): its embeddings may be degraded or fail; rescale the data (scale, transform)", key,
                        top, SMALL_VALUES, LARGE_VALUES)
    return True


def _forward(nets: dict[str, torch.nn.Module], layers, spec: ModelSpec, x: np.ndarray, scale: float, device: str,
             batch: int, fitted: dict[str, dict[str, Fitted]] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """The activations of ``layers`` on the examples ``x`` (a chunk's rows) in each of
    ``nets``, by network and layer name: the examples go through the networks in batches
    of ``batch`` rows (one batch where the chunk fits); ``pca:D`` layers on their
    network's ``fitted`` projections, or flattened without one."""
    pieces: dict[str, dict[str, list[torch.Tensor]]] = {name: {} for name in nets}
    with torch.inference_mode():
        for a in range(0, len(x), batch):
            rows = min(batch, len(x) - a)
            inputs = spec.transform(to_float(torch.from_numpy(np.asarray(x[a:a + batch])).to(device), scale))
            for name, net in nets.items():
                with capture(net, layers, fitted=(fitted or {}).get(name)) as captured:
                    net(inputs)
                wrong = [f"{key} {tuple(v.shape)}" for key, v in captured.items() if v.shape[0] != rows]
                if wrong:  # the dry pass's batch matched another axis by chance
                    raise SettingsError(f"layer(s) {', '.join(wrong)} are not batch first on a batch of {rows}; "
                                        "name modules whose output has the batch on its first axis")
                for key, value in captured.items():
                    pieces[name].setdefault(key, []).append(value)
    return {name: {key: parts[0] if len(parts) == 1 else torch.cat(parts) for key, parts in found.items()}
            for name, found in pieces.items()}


def fit_projections(store: RunStore, spec: ModelSpec, source: Source, n: int, seed: int, ckpt: Checkpoints,
                    nets: dict[str, torch.nn.Module], device: str) -> dict[str, dict[str, Fitted]]:
    """The fitted projection of every ``pca:D`` layer of each network, by network and layer
    name: its principal components on the first ``n`` training examples, fitted in one
    pass over them (nothing stored but the fit: :func:`repscope.kernels.pca.fit_pca`) and
    kept in the store (``projections/<layer>/components`` and ``mean``), so that a rerun
    reuses them."""
    layers = [layer for layer in spec.layers if fitted_width(layer)]
    fitted: dict[str, dict[str, Fitted]] = {network: {} for network in nets}
    if not layers:
        return fitted
    from ..kernels import InputError
    from ..kernels.pca import fit_pca

    base = {"n": n, "chunk_rows": CHUNK_ROWS, "train_sha256": source.sha256, "scale": source.scale}
    transform = _transform_record(spec, source)
    batch = forward_rows(nets["trained"], spec, source.train, source.scale, device)
    for network, net in nets.items():
        for layer in layers:
            width = fitted_width(layer)
            keys = {part: projection_key(source.name, seed, network, layer.key, part) for part in ("components", "mean")}
            fingerprint = layer_fingerprint(base, ckpt, layer.path, transform, layer)
            if not all(store.is_complete(key, fingerprint) for key in keys.values()):
                log.info("%s/seed%d/%s: %s: fitting %d principal components on %d examples (one pass)", source.name,
                         seed, network, layer.key, width, n)
                started = time.perf_counter()

                def blocks(net=net, layer=layer, network=network):
                    with progress_bar(total=n, desc=f"fit {layer.key} ({network})", unit="ex", unit_scale=True) as bar:
                        for a in range(0, n, CHUNK_ROWS):
                            x = source.train.rows(a, min(a + CHUNK_ROWS, n))
                            yield _forward({network: net}, (layer,), spec, x, source.scale, device, batch)[network][layer.key]
                            bar.update(len(x))

                try:
                    result = fit_pca(blocks, width)
                except InputError as exc:
                    raise SettingsError(f"layer {layer.key!r}: reduce = \"{layer.reduce}\" cannot be fitted on N = {n} "
                                        f"examples ({exc}); give fewer components or more examples") from None
                components = np.asarray(result.components, dtype=np.float32)
                store.write_whole(keys["components"], components, fingerprint, chunks=(1, components.shape[1]),
                                  dims=("component", f"{layer.key}_feature"),
                                  attributes={"description": f"the first {width} principal components of {layer.key} "
                                                             f"of the {network} network on {n} examples"})
                store.annotate(keys["components"], fit={
                    "library": result.library, "seconds": round(time.perf_counter() - started, 3),
                    "explained_variance_ratio": [float(v) for v in result.explained_variance_ratio],
                    "explained_variance_total": float(np.sum(result.explained_variance_ratio))})
                store.write_whole(keys["mean"], np.asarray(result.mean, dtype=np.float32), fingerprint,
                                  dims=(f"{layer.key}_feature",))
            fitted[network][layer.key] = Fitted(torch.from_numpy(store.read(keys["mean"])).to(device),
                                                torch.from_numpy(store.read(keys["components"])).to(device))
    return fitted


def forward_rows(net: torch.nn.Module, spec: ModelSpec, split, scale: float, device: str = "cpu") -> int:
    """How many examples go through ``net`` at once: a chunk's rows (``CHUNK_ROWS``) where
    the activations of that many fit in ``FORWARD_BYTES``, fewer for a network whose
    largest activation is wide (a ResNet's first stages on 224 x 224 images). The largest
    tensor any module returns, per example, is measured on a dry pass of two examples.

    Examples
    --------
    >>> from torch import nn
    >>> from repscope.engine.model import Layer
    >>> from repscope.engine.sources import Split
    >>> spec = ModelSpec(factory=lambda: nn.Sequential(nn.Conv2d(3, 64, 3, padding=1)), layers=(Layer("0"),))
    >>> forward_rows(spec.factory(), spec, Split(np.zeros((2, 3, 224, 224), np.uint8), np.zeros(2, int)), 255.0)
    20
    """
    largest = [0]

    def hook(module, args, output):
        if isinstance(output, torch.Tensor) and output.ndim and output.shape[0] == 2:
            largest[0] = max(largest[0], output[0].numel() * output.element_size())

    examples = to_float(torch.from_numpy(np.asarray(split.rows(0, 2))).to(device), scale)
    if len(examples) < 2:
        return CHUNK_ROWS
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.inference_mode():
            net(spec.transform(examples))
    finally:
        handle.remove()
    # a module's output, the next one's, and a copy kept by a hook can be alive at once
    return int(max(1, min(CHUNK_ROWS, FORWARD_BYTES // max(1, 4 * largest[0]))))


def _check_finite(rows: np.ndarray, key: str, first: int) -> None:
    """DataError (one line, exit 3) where a batch of a representation holds NaN or Inf, before it is stored."""
    if rows.dtype.kind != "f":
        return
    bad = ~np.isfinite(rows.reshape(len(rows), -1))
    if bad.any():
        where = np.flatnonzero(bad.any(axis=1))
        raise DataError(f"{key}: {int(bad.sum())} NaN or Inf values in examples {first}..{first + len(rows) - 1} "
                        f"(first: example {first + int(where[0])}); the network diverged or its inputs are out of "
                        "range: check its training (learning_rate) and the inputs' scale")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def reduce_wide(store: RunStore, dataset: str, seed: int, representations, device: str = "cpu") -> list[str]:
    """PCA-reduce every wide representation of both networks (``original`` once, under
    ``trained``) into ``reduced/<name>``; resumable per array. On ``cuda`` the blocks go
    to the GPU and cuML's incremental PCA fits them. Returns the names reduced."""
    from ..kernels.pca import fit_transform_blocks

    to_device, library = identity, "numpy"
    if device == "cuda" and _importable("cuml") and _importable("cupy"):
        import cupy

        to_device, library = cupy.asarray, "cupy"

    wide = [r for r in representations if needs_reduction(r)]
    for rep in wide:
        for network in (("trained",) if rep.array == ORIGINAL else NETWORKS):
            key = reduced_key(dataset, seed, network, rep.name)
            source = store.made_from(layer_key(dataset, seed, network, rep.array) if rep.array != ORIGINAL
                                     else original_key(dataset))
            n = int(source.get("n", 0))
            components = min(COMPONENTS, rep.dims, n)
            fingerprint = {"source": source,
                           "components": components,
                           "representation": rep.name, "arrays": library}
            if store.is_complete(key, fingerprint):
                continue
            started = time.perf_counter()
            log.info("%s/seed%d/%s: %s has %d dimensions (> %d): PCA to %d components, fitted chunk-wise",
                     dataset, seed, network, rep.name, rep.dims, WIDE, components)

            def blocks(network=network, rep=rep):
                for a in range(0, n, CHUNK_ROWS):
                    yield to_device(store.read_representation(dataset, seed, network, rep,
                                                              rows=slice(a, min(a + CHUNK_ROWS, n))))

            progress = store.prepare(key, (n, components), "float32", fingerprint,
                                     chunks=(min(CHUNK_ROWS, n), components), dims=(EXAMPLE, "component"),
                                     attributes={"description": f"{rep.name} of the {network} network projected on "
                                                                f"its first {components} principal components"})
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1):  # BLAS threads change the last bits; one gives the same on any machine
                pca = fit_transform_blocks(blocks, components, out=progress.array)
            store.commit_rows(progress, n)
            store.annotate(key, pca={"from_dims": rep.dims, "components": components,
                                     "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio],
                                     "explained_variance_total": float(np.sum(pca.explained_variance_ratio)),
                                     "library": pca.library, "seconds": round(time.perf_counter() - started, 3)})
            store.write_whole(components_key(dataset, seed, network, rep.name), pca.components.astype(np.float32),
                              fingerprint, chunks=pca.components.shape,
                              dims=("component", f"{rep.name.rsplit('/', 1)[-1]}_feature"))
            store.mark_complete(progress)  # last: a complete reduced array means its components are there
    return [r.name for r in wide]
