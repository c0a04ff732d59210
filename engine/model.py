"""A model to analyse: any ``torch.nn.Module``, the layers read by module path, and their splits.

A :class:`ModelSpec` says how to build the network (a factory, from Python or as
``package.module:factory``), which checkpoint makes it the trained network (a state
dict, loaded with ``weights_only=True``; without one the engine trains it with a
:class:`~repscope.engine.train.Recipe`), how a batch of examples becomes its input,
and which layers to read. Layers are captured with forward hooks (forward pre-hooks
for a module's input), so the model needs no change; their shapes come from one dry
forward pass and are never constants.

What a layer reads is explicit wherever a module's output is more than one tensor of
one kind: a tuple, list or dict output (an RNN's ``(output, hidden)``, a Hugging Face
``ModelOutput``) needs ``element``, a token sequence ``(batch, tokens, features)`` (a
transformer block's, an RNN's) needs ``tokens``; the dry pass refuses either without
its choice, one line per layer, instead of guessing.

The two networks compared are ``trained`` and ``untrained``: the same architecture in
a seeded initial state (for a trained checkpoint, a fresh seeded initialisation of the
same class; when the engine trains, the exact initial state it trained from).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..store import NETWORKS, SPLITS  # noqa: F401  (NETWORKS: the names of the two networks)
from .errors import SettingsError


#: Names a layer cannot take: they are folders of the store beside the layers.
RESERVED = ("", "original", "labels", "reduced", "embeddings", "pca", "projections")
#: What of a layer's module is read: what it returns, or what it is given.
READS = ("output", "input")
#: How a token sequence ``(batch, tokens, features)`` becomes one vector per example,
#: besides a token's index: token 0 (a class token), the mean over tokens, or every
#: token, flattened (``tokens * features`` values).
TOKEN_POOLS = ("cls", "mean", "flatten")
#: How a layer's activation is reduced on each batch before anything is written (after
#: ``read``, ``element`` and ``tokens``): kept whole, the global average or maximum over
#: positions (one value per channel), an adaptive average pool to an H x W grid, a
#: seeded sparse random projection to D values (see :func:`reduce_batch`), or its first
#: D principal components, fitted on a pass over the examples before they are stored.
REDUCTIONS = ("none", "avgpool", "maxpool", "pool:HxW", "project:D", "pca:D")
#: The seed of every ``project:D`` matrix: the same for both networks, every seed and run.
PROJECTION_SEED = 0
#: Characters an element's name cannot hold (it becomes part of the layer's name).
_ELEMENT_FORBIDDEN = '/,"[]\n\r'
#: What to give for a 3-D output without a choice (the one line that refuses it).
_TOKENS_HINT = ('give tokens = "cls" (token 0), "mean" (mean over tokens), a token index such as 0 or -1, or '
                '"flatten" (every token, flattened); for a Conv1d\'s (channels, length) give split = "whole" or '
                '"channels"')


@dataclass(frozen=True)
class Layer:
    """One layer to analyse.

    path: the module's path in the model (``features.3``, ``layer4.1.conv2``), as
        ``model.named_modules()`` names it; its output is what is read (see ``read``).
    split: ``whole`` (the flattened activation is one representation) or ``channels``
        (one representation per channel, and the whole layer as ``<name>/all`` beside
        them); the channel axis is the first after the batch. None (not given) means
        ``whole``, except that a 3-D output ``(batch, a, b)`` then needs ``tokens``:
        giving ``split`` says that it is a Conv1d's ``(batch, channels, length)``.
    max_channels: with ``channels``, only the first this many channels get a
        representation of their own (for wide layers); None for all.
    name: the layer's name in the store, tables and figures; the path by default.
        What is read (below) follows it in brackets: ``blocks.1[mean]``.
    tokens: for a token sequence ``(batch, tokens, features)`` (a transformer block's
        or an RNN's output), which vector per example is analysed: ``"cls"`` (token 0),
        ``"mean"`` (the mean over tokens), a token index (negative counts from the end)
        or ``"flatten"`` (every token, flattened). A token sequence has no channels:
        ``split = "channels"`` with ``tokens`` is refused.
    element: which element of a tuple or list output (a position: ``0``) or of a
        dict, dataclass or named tuple output (a name: ``"last_hidden_state"``) is
        read; with ``read = "input"``, which input (a position, or the name of a
        keyword or positional argument). Needed for an output that is not a tensor.
    read: ``"output"`` (what the module returns) or ``"input"`` (what it is given,
        through a forward pre-hook; its first positional input unless ``element``).
    reduce: how the activation is reduced on each batch before it is written, so that a
        wide layer fits on disk: ``"none"`` (kept whole, the default), ``"avgpool"`` or
        ``"maxpool"`` (over positions: one value per channel), ``"pool:HxW"`` (average
        pooling to an H x W grid, ``C * H * W`` values), ``"project:D"`` (a seeded
        sparse random projection to D values) or ``"pca:D"`` (the first D principal
        components of the network's activations on the analysed examples, fitted on a
        first pass over them). It shows in the name: ``layer1[avgpool]``,
        ``layer1[pool2x2]``, ``layer1[project256]``, ``layer1[pca64]``.

    Examples
    --------
    >>> Layer("blocks.1", tokens="mean").key, Layer("gru", element=0, tokens=-1).key
    ('blocks.1[mean]', 'gru[0][token-1]')
    >>> Layer("head", read="input").key, Layer("encoder", element="last_hidden_state", tokens="cls").key
    ('head[input]', 'encoder[last_hidden_state][cls]')
    >>> Layer("layer1", reduce="avgpool").key, Layer("layer1", reduce="pool: 2x2").key, Layer("fc", reduce="project:64").key
    ('layer1[avgpool]', 'layer1[pool2x2]', 'fc[project64]')
    >>> Layer("blocks.1", split="channels", tokens="cls")
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: layer 'blocks.1[cls]': split = "channels" splits a convolution's channels (filters) and a token sequence has none; leave split out (tokens makes the layer one representation of its features), or give the layer once per token (tokens = 0, tokens = 1, ...)
    """

    path: str
    split: str | None = None
    max_channels: int | None = None
    name: str | None = None
    tokens: int | str | None = None
    element: int | str | None = None
    read: str = "output"
    reduce: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not isinstance(self.name or "", str):
            raise SettingsError(f"a layer's path and name are text; got {self.path!r}, {self.name!r}")
        if self.split is not None and self.split not in SPLITS:
            raise SettingsError(f"layer {self.path!r}: split {self.split!r} is not one of {', '.join(SPLITS)}")
        if self.max_channels is not None and (isinstance(self.max_channels, bool) or not isinstance(self.max_channels, int)
                                              or self.max_channels < 1):
            raise SettingsError(f"layer {self.path!r}: max_channels must be a whole number >= 1; "
                                f"got {self.max_channels!r}")
        if self.read not in READS:
            raise SettingsError(f"layer {self.path!r}: read {self.read!r} is not one of {', '.join(READS)}")
        if isinstance(self.tokens, str) and re.fullmatch(r"-?\d+", self.tokens.strip()):
            object.__setattr__(self, "tokens", int(self.tokens))  # "-1" in a run file: the index -1
        if self.tokens is not None and (isinstance(self.tokens, bool) or not isinstance(self.tokens, (int, str))
                                        or (isinstance(self.tokens, str) and self.tokens not in TOKEN_POOLS)):
            raise SettingsError(f"layer {self.path!r}: tokens = {_spell(self.tokens)} is not one of "
                                f"{', '.join(map(_spell, TOKEN_POOLS))} or a token index (0, 1, -1, ...)")
        if self.element is not None and (isinstance(self.element, bool) or not isinstance(self.element, (int, str))
                                         or (isinstance(self.element, str)
                                             and (not self.element or any(c in self.element
                                                                          for c in _ELEMENT_FORBIDDEN)))):
            raise SettingsError(f"layer {self.path!r}: element = {_spell(self.element)} must be a position (0, 1, ...) or "
                                "a name without '/', ',', '\"', '[', ']' or a line break (\"last_hidden_state\")")
        object.__setattr__(self, "reduce", canonical_reduce(self.reduce, self.path))
        if self.reduce is not None and self.split == "channels":
            raise SettingsError(f"layer {self.path!r}: reduce = {_spell(self.reduce)} with split = \"channels\": a "
                                "reduced layer is one representation; leave split out, or reduce out to split the "
                                "layer's channels")
        if self.reduce is not None and self.tokens == "flatten" and self.reduce.endswith("pool"):
            raise SettingsError(f"layer {self.path!r}: reduce = {_spell(self.reduce)} pools a convolution's "
                                "positions; a token sequence is pooled by tokens: give tokens = \"mean\" instead of "
                                "\"flatten\" with it")
        if self.tokens is not None and self.split == "channels":
            raise SettingsError(f"layer {self.key!r}: split = \"channels\" splits a convolution's channels (filters) "
                                "and a token sequence has none; leave split out (tokens makes the layer one "
                                "representation of its features), or give the layer once per token (tokens = 0, "
                                "tokens = 1, ...)")
        base = self.name or self.path
        if base in RESERVED or any(c in self.key for c in '/,"\n\r'):
            raise SettingsError(f"layer name {self.key!r} is reserved or contains '/', ',', '\"' or a line break; "
                                "give the layer another name (name = ...)")

    @property
    def key(self) -> str:
        """The layer's name in the store: ``name`` (else ``path``), then in brackets what
        is read when it is not the module's output tensor (see :meth:`suffix`)."""
        return (self.name or self.path) + self.suffix

    @property
    def suffix(self) -> str:
        """``[input]`` or ``[input.<element>]`` for an input, ``[<element>]`` for an
        element of the output, then ``[cls]``, ``[mean]``, ``[flatten]`` or ``[token<i>]``
        for the tokens read; empty for a module's output tensor.

        Examples
        --------
        >>> Layer("x").suffix, Layer("x", read="input", element=1, tokens=3).suffix
        ('', '[input.1][token3]')
        """
        parts = []
        if self.read == "input":
            parts.append("input" if self.element is None else f"input.{self.element}")
        elif self.element is not None:
            parts.append(str(self.element))
        if self.tokens is not None:
            parts.append(self.tokens if isinstance(self.tokens, str) else f"token{self.tokens}")
        if self.reduce is not None:
            parts.append(self.reduce.replace(":", ""))
        return "".join(f"[{part}]" for part in parts)

    def reading(self) -> dict:
        """The choices of what is read that are not the defaults (``read``, ``element``,
        ``tokens``): what the array's fingerprint, attributes and record carry.

        Examples
        --------
        >>> Layer("x").reading(), Layer("gru", element=0, tokens="mean").reading()
        ({}, {'element': 0, 'tokens': 'mean'})
        """
        return {**({"read": self.read} if self.read != "output" else {}),
                **({"element": self.element} if self.element is not None else {}),
                **({"tokens": self.tokens} if self.tokens is not None else {}),
                **({"reduce": self.reduce} if self.reduce is not None else {})}

    def describe_reading(self) -> str:
        """What is read, in words: ``the mean over tokens of element 0 of the output``.

        Examples
        --------
        >>> Layer("x").describe_reading(), Layer("gru", element=0, tokens=-1).describe_reading()
        ('the output', 'token -1 of element 0 of the output')
        >>> Layer("head", read="input").describe_reading()
        'the first positional input'
        """
        if self.read == "input":
            what = "the first positional input" if self.element is None else f"input {self.element!r}"
        else:
            what = "the output" if self.element is None else f"element {self.element!r} of the output"
        if self.tokens is not None:
            pool = {"cls": "token 0 (cls)", "mean": "the mean over tokens",
                    "flatten": "every token, flattened,"}.get(self.tokens, f"token {self.tokens}")  # type: ignore[arg-type]
            what = f"{pool} of {what}"
        if self.reduce is None:
            return what
        kind, _, size = self.reduce.partition(":")
        how = {"avgpool": "averaged over positions", "maxpool": "its maximum over positions",
               "pool": f"average-pooled to a {size} grid",
               "project": f"projected to {size} values (sparse random projection, seed {PROJECTION_SEED})",
               "pca": f"projected on its first {size} principal components (fitted on the analysed examples)"}[kind]
        return f"{what}, {how}"

    def record(self) -> dict:
        """A JSON-ready dict of the layer (what config.json keeps)."""
        return {"path": self.path, "split": self.split or "whole", "max_channels": self.max_channels, "name": self.key,
                **self.reading()}

    @classmethod
    def parse(cls, item: "Layer | str | Mapping[str, Any]") -> "Layer":
        """A Layer from a Layer, a module path, or a mapping such as a run file's
        ``{path = "features.3", split = "channels", max_channels = 16}`` or
        ``{path = "gru", element = 0, tokens = "mean"}``.

        Examples
        --------
        >>> Layer.parse({"path": "blocks.1", "tokens": "cls"}).key
        'blocks.1[cls]'
        """
        if isinstance(item, Layer):
            return item
        if isinstance(item, str):
            return cls(item)
        if isinstance(item, Mapping):
            known = ("path", "split", "max_channels", "name", "tokens", "element", "read", "reduce")
            unknown = set(item) - set(known)
            if unknown or "path" not in item:
                raise SettingsError(f"a layer is given as {{{', '.join(known)}}} with a path; got {dict(item)!r}")
            split = item.get("split")
            return cls(str(item["path"]), None if split is None else str(split), item.get("max_channels"),
                       item.get("name"), item.get("tokens"), item.get("element"), str(item.get("read", "output")),
                       item.get("reduce"))
        raise SettingsError(f"a layer is a module path or a table with a path; got {item!r}")


def canonical_reduce(value: Any, path: str = "?") -> str | None:
    """A layer's ``reduce`` setting in its one spelling (``"pool:2x2"``, ``"project:64"``),
    None for ``"none"``; SettingsError (one line) for anything else.

    Examples
    --------
    >>> canonical_reduce("none"), canonical_reduce(" AvgPool "), canonical_reduce("pool: 2 x 3")
    (None, 'avgpool', 'pool:2x3')
    >>> canonical_reduce("project:0", "fc")
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: layer 'fc': reduce = "project:0" is not one of "none", "avgpool", "maxpool", "pool:HxW" (such as "pool:2x2"), "project:D" (such as "project:256"), "pca:D" (such as "pca:64") with H, W, D whole numbers >= 1
    """
    if value is None:
        return None
    text = re.sub(r"\s+", "", value.lower()) if isinstance(value, str) else None
    if text in ("none", "avgpool", "maxpool"):
        return None if text == "none" else text
    match = re.fullmatch(r"(pool):(\d+)x(\d+)|(project|pca):(\d+)", text or "")
    if match and all(int(g) >= 1 for g in match.groups() if g and g.isdigit()):
        return f"pool:{int(match[2])}x{int(match[3])}" if match[1] else f"{match[4]}:{int(match[5])}"
    raise SettingsError(f"layer {path!r}: reduce = {_spell(value)} is not one of \"none\", \"avgpool\", \"maxpool\", "
                        "\"pool:HxW\" (such as \"pool:2x2\"), \"project:D\" (such as \"project:256\"), \"pca:D\" "
                        "(such as \"pca:64\") with H, W, D whole numbers >= 1")


_PROJECTIONS: dict[tuple[int, int, str], torch.Tensor] = {}


def projection_matrix(dims: int, size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """The ``(size, dims)`` sparse random projection of ``project:size`` on ``dims``
    values: scikit-learn's very sparse projection (density ``1 / sqrt(dims)``, entries
    ``±sqrt(1 / (density * size))``, seed :data:`PROJECTION_SEED`) as a float32 torch
    CSR tensor on ``device``; it preserves squared distances in expectation. Never a
    dense ``size x dims`` matrix; made once per process for each shape and device.

    Examples
    --------
    >>> p = projection_matrix(10_000, 64)
    >>> tuple(p.shape), p.layout, bool(torch.equal(p.to_dense(), projection_matrix(10_000, 64).to_dense()))
    ((64, 10000), torch.sparse_csr, True)
    """
    key = (int(dims), int(size), str(device))
    if key not in _PROJECTIONS:
        import numpy as np
        from sklearn.random_projection import SparseRandomProjection

        fitted = SparseRandomProjection(size, density="auto", dense_output=False, random_state=PROJECTION_SEED)
        matrix = fitted.fit(np.zeros((1, dims), np.float32)).components_.tocsr()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR times dense is all it is used for
            warnings.simplefilter("ignore", UserWarning)
            _PROJECTIONS[key] = torch.sparse_csr_tensor(
                torch.from_numpy(matrix.indptr.astype(np.int64)), torch.from_numpy(matrix.indices.astype(np.int64)),
                torch.from_numpy(matrix.data.astype(np.float32)), size=(size, dims), check_invariants=True).to(device)
    return _PROJECTIONS[key]


def reduce_batch(value: torch.Tensor, layer: "Layer", fitted: "Fitted | None" = None) -> torch.Tensor:
    """A batch of ``layer``'s activation ``(batch, ...)`` reduced as its ``reduce`` says:
    ``avgpool``/``maxpool`` over every axis after the channel axis (``(batch, C)``),
    ``pool:HxW`` by ``adaptive_avg_pool2d`` (``(batch, C, H, W)``), ``project:D`` by
    :func:`projection_matrix` of the flattened values (``(batch, D)``), ``pca:D`` on the
    ``fitted`` principal components (without them: the flattened values a fit reads);
    as it is without ``reduce``. What cannot be reduced so is refused in one line.

    Examples
    --------
    >>> x = torch.arange(32.0).reshape(2, 4, 2, 2)
    >>> reduce_batch(x, Layer("c", reduce="avgpool"))[0].tolist()
    [1.5, 5.5, 9.5, 13.5]
    >>> tuple(reduce_batch(x, Layer("c", reduce="pool:1x1")).shape), tuple(reduce_batch(x, Layer("c", reduce="project:3")).shape)
    ((2, 4, 1, 1), (2, 3))
    >>> reduce_batch(torch.zeros(2, 5), Layer("fc", reduce="maxpool"))
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: layer 'fc[maxpool]': reduce = "maxpool" pools over positions (batch, channels, positions...), but module 'fc' gives (2, 5), which has none; leave reduce out or give reduce = "project:D"
    """
    if layer.reduce is None:
        return value
    kind, _, size = layer.reduce.partition(":")
    where = f"layer {layer.key!r}: reduce = {_spell(layer.reduce)}"
    if kind in ("avgpool", "maxpool"):
        if value.ndim < 3:
            raise SettingsError(f"{where} pools over positions (batch, channels, positions...), but module "
                                f"{layer.path!r} gives {tuple(value.shape)}, which has none; leave reduce out or "
                                "give reduce = \"project:D\"")
        flat = value.flatten(2)
        return flat.mean(dim=2) if kind == "avgpool" else flat.amax(dim=2)
    if kind == "pool":
        height, width = (int(v) for v in size.split("x"))
        if value.ndim != 4 or height > value.shape[2] or width > value.shape[3]:
            raise SettingsError(f"{where} pools a (batch, channels, height, width) activation to a smaller grid; "
                                f"module {layer.path!r} gives {tuple(value.shape)}: give a grid no larger than its "
                                "own, or reduce = \"avgpool\"")
        return torch.nn.functional.adaptive_avg_pool2d(value, (height, width))
    flat = value.flatten(1)
    dims, target = flat.shape[1], int(size)
    if target >= dims:
        raise SettingsError(f"{where} projects to {target} values, but module {layer.path!r} gives {dims} per example "
                            f"already; leave reduce out or give fewer than {dims}")
    if kind == "pca":
        return flat if fitted is None else fitted.project(flat)
    matrix = projection_matrix(dims, target, flat.device)
    return torch.sparse.mm(matrix, flat.to(torch.float32).T).T


@dataclass(frozen=True)
class Fitted:
    """A fitted ``pca:D`` projection of one layer of one network: ``mean`` ``(d,)`` and
    ``components`` ``(D, d)`` as float32 tensors on the network's device."""

    mean: torch.Tensor
    components: torch.Tensor

    def project(self, flat: torch.Tensor) -> torch.Tensor:
        """``(flat - mean) @ components.T``: a batch's ``(batch, d)`` values on the components."""
        return (flat.to(torch.float32) - self.mean) @ self.components.T


def fitted_width(layer: "Layer") -> int | None:
    """D of a ``pca:D`` layer (the values it stores per example); None for any other."""
    return int(layer.reduce.split(":")[1]) if layer.reduce and layer.reduce.startswith("pca:") else None


def identity(x):
    """The default input transform: the batch as it is."""
    return x


@dataclass(frozen=True)
class ModelSpec:
    """How to build, load and read a network.

    factory: builds a fresh network with PyTorch's seeded initialisation (called under
        ``torch.manual_seed``); a class or a function of no arguments.
    layers: the layers to analyse, in depth order.
    transform: a float32 batch of examples in natural units (``(B, *example_shape)``,
        the source's values divided by its scale) -> the network's input batch.
    checkpoint: a state dict file that makes the trained network; None to train it.
    reference: how the factory was named (``package.module:factory``), for the record.
    preset: the name of the preset module whose report and findings apply (``study``),
        or "" for the generic report.
    """

    factory: Callable[[], nn.Module]
    layers: tuple[Layer, ...]
    transform: Callable[[torch.Tensor], torch.Tensor] = identity
    checkpoint: Path | None = None
    reference: str = ""
    preset: str = ""

    def __post_init__(self) -> None:
        if not self.layers:
            raise SettingsError("a model needs at least one layer to analyse; name them by module path")
        keys = [layer.key for layer in self.layers]
        if len(set(keys)) != len(keys):
            raise SettingsError(f"layers are named twice: {', '.join(keys)}")

    def record(self) -> dict:
        """A JSON-ready description: how the factory is named, preset, checkpoint, layers."""
        return {"reference": self.reference or describe(self.factory), "preset": self.preset,
                "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "layers": [layer.record() for layer in self.layers]}


def describe(obj) -> str:
    """``module:qualified.name`` of a function or class (``repr`` of anything else).

    Examples
    --------
    >>> describe(describe)
    'repscope.engine.model:describe'
    """
    name = getattr(obj, "__qualname__", None)
    return f"{getattr(obj, '__module__', '?')}:{name}" if name else repr(obj)


def resolve(reference: str, what: str = "factory") -> Callable:
    """The object named ``package.module:attribute`` (the current folder is importable).

    Examples
    --------
    >>> resolve("collections:OrderedDict").__name__
    'OrderedDict'
    """
    if not isinstance(reference, str) or reference.count(":") != 1:
        raise SettingsError(f"{what} {reference!r} must be given as package.module:name")
    module_name, attribute = reference.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"{what} {reference!r}: cannot import {module_name!r} ({exc}); run from the folder "
                            "that holds it or install its package") from None
    obj = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SettingsError(f"{what} {reference!r}: {module_name} has no {attribute!r}") from None
    if not callable(obj):
        raise SettingsError(f"{what} {reference!r} is not callable")
    return obj


def build(spec: ModelSpec, seed: int) -> nn.Module:
    """A fresh network from ``spec.factory`` in the initial state of ``seed`` (the global
    RNG is left as it was).

    Examples
    --------
    >>> spec = ModelSpec(factory=lambda: nn.Linear(2, 2), layers=(Layer("weight"),))
    >>> torch.equal(build(spec, 1).weight, build(spec, 1).weight)
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.factory()
    if not isinstance(model, nn.Module):
        raise SettingsError(f"the model factory {spec.reference or describe(spec.factory)} returned "
                            f"{type(model).__name__}, not a torch.nn.Module")
    return model


def module_names(model: nn.Module) -> list[str]:
    """Every submodule's path, as layers are named (the root's empty name left out)."""
    return [name for name, _ in model.named_modules() if name]


def check_layers(model: nn.Module, layers: Sequence[Layer]) -> None:
    """A SettingsError naming every layer path the model lacks, with the closest names it
    has and its module names (the first 40 of a large model).

    Examples
    --------
    >>> check_layers(nn.Sequential(nn.Linear(2, 2)), [Layer("1")])
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: the model has no module '1'; its modules are: 0
    """
    import difflib

    names = module_names(model)
    missing = [layer.path for layer in layers if layer.path not in set(names)]
    if missing:
        close = sorted({c for m in missing for c in difflib.get_close_matches(m, names, n=3, cutoff=0.6)})
        hint = f"closest: {', '.join(close)}; " if close else ""
        listing = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        raise SettingsError(f"the model has no module {', '.join(map(repr, missing))}; {hint}its modules are: {listing}")


def _spell(value: Any) -> str:
    """A choice as a run file spells it: ``"mean"``, ``-1``."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _shape(value: Any) -> str:
    """A value in a few words: ``tensor (2, 8, 32)``, ``tuple of 2``, ``None``."""
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)}"
    if isinstance(value, (tuple, list, Mapping)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def _elements(value: Any) -> list[tuple[int | str, Any]]:
    """The (position or name, value) pairs of a structured output: a tuple or list's
    positions, a named tuple's fields, a mapping's keys, a dataclass's fields."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return list(zip(value._fields, value))
    if isinstance(value, (tuple, list)):
        return list(enumerate(value))
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    return []


def _listing(pairs: list[tuple[int | str, Any]]) -> str:
    """``0: tensor (2, 8, 32), 1: tensor (1, 2, 32)``: what can be chosen."""
    return ", ".join(f"{k}: {_shape(v)}" for k, v in pairs) or "nothing"


def _element_hint(pairs: list[tuple[int | str, Any]]) -> str:
    """``element = 0`` (or ``element = "last_hidden_state"``): the first tensor's choice."""
    tensors = [k for k, v in pairs if isinstance(v, torch.Tensor)] or [k for k, _ in pairs] or [0]
    return f"element = {_spell(tensors[0])}"


def select_output(output: Any, layer: Layer) -> torch.Tensor:
    """The tensor ``layer`` reads from its module's ``output``: the output itself, or its
    ``element`` (a position of a tuple or list, a name of a named tuple, mapping,
    dataclass or ``ModelOutput``). A SettingsError in one line names the layer, what the
    module returns and what to give.

    Examples
    --------
    >>> out, h = torch.zeros(2, 8, 4), torch.zeros(1, 2, 4)
    >>> select_output((out, h), Layer("gru", element=0)) is out
    True
    >>> select_output((out, h), Layer("gru"))
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: layer 'gru': module 'gru' returns a tuple (0: tensor (2, 8, 4), 1: tensor (1, 2, 4)), not a tensor; choose what to read with element = 0
    """
    where = f"layer {layer.key!r}: module {layer.path!r}"
    element = layer.element
    if element is None:
        if isinstance(output, torch.Tensor):
            return output
        pairs = _elements(output)
        if not pairs:
            raise SettingsError(f"{where} returns {_shape(output)}, not a tensor; name a module that returns one")
        raise SettingsError(f"{where} returns a {type(output).__name__} ({_listing(pairs)}), not a tensor; "
                            f"choose what to read with {_element_hint(pairs)}")
    if isinstance(output, torch.Tensor):
        raise SettingsError(f"{where} returns a tensor {tuple(output.shape)}; element = {_spell(element)} chooses from a "
                            "tuple, list or dict output: leave element out")
    pairs = _elements(output)
    if isinstance(element, int) and isinstance(output, (tuple, list)):
        if not -len(output) <= element < len(output):
            raise SettingsError(f"{where} returns a {type(output).__name__} of {len(output)} ({_listing(pairs)}); "
                                f"element = {element} is not one of them")
        value = output[element]
    else:
        names = {str(k): v for k, v in pairs if isinstance(k, str)}
        if str(element) not in names:
            choices = _listing(pairs)
            raise SettingsError(f"{where} returns a {type(output).__name__} ({choices}); element = {_spell(element)} is "
                                f"not one of them: give {_element_hint(pairs)}")
        value = names[str(element)]
    if not isinstance(value, torch.Tensor):
        raise SettingsError(f"{where}: element {element!r} of its output is {_shape(value)}, not a tensor; choose "
                            f"a tensor of {_listing(pairs)}")
    return value


def select_input(module: nn.Module, args: tuple, kwargs: dict, layer: Layer) -> torch.Tensor:
    """The tensor ``layer`` reads from what its module is given (``read = "input"``): the
    first positional input, or its ``element`` (a position among the positional inputs,
    or the name of an argument, given by position or keyword).

    Examples
    --------
    >>> lin = nn.Linear(3, 2)
    >>> x = torch.ones(4, 3)
    >>> select_input(lin, (x,), {}, Layer("fc", read="input")) is x
    True
    >>> select_input(lin, (x,), {}, Layer("fc", read="input", element="input")) is x
    True
    """
    where = f"layer {layer.key!r}: module {layer.path!r}"
    named: dict[str, Any] = dict(kwargs)
    try:  # an argument given by position has its name too
        named = {**inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments, **kwargs}
    except (TypeError, ValueError):  # no signature to bind: the keyword inputs by name
        pass
    given = _listing([*enumerate(args), *kwargs.items()])
    element = layer.element
    if isinstance(element, str):
        if element not in named:
            raise SettingsError(f"{where} is given {given}; it has no input {element!r}: give element = the "
                                "position or name of one")
        value = named[element]
    else:
        index = 0 if element is None else element
        if not -len(args) <= index < len(args):
            raise SettingsError(f"{where} is given {given}, no positional input {index}: give element = the "
                                "position or name of one")
        value = args[index]
    if not isinstance(value, torch.Tensor):
        raise SettingsError(f"{where}: its input {0 if element is None else element!r} is {_shape(value)}, not a "
                            f"tensor; choose a tensor of {given} with element = its position or name")
    return value


def pool_tokens(value: torch.Tensor, layer: Layer) -> torch.Tensor:
    """The activation ``layer`` analyses of the tensor ``value`` read from its module: a
    token sequence ``(batch, tokens, features)`` pooled as ``layer.tokens`` says (token
    0, a token, the mean over tokens, or all of them), any other tensor as it is. A 3-D
    tensor without a choice of ``tokens`` or ``split`` is refused in one line, as are
    ``tokens`` on a tensor that is no sequence and an index past its end.

    Examples
    --------
    >>> seq = torch.arange(24.0).reshape(2, 3, 4)
    >>> pool_tokens(seq, Layer("b", tokens="cls")).tolist()
    [[0.0, 1.0, 2.0, 3.0], [12.0, 13.0, 14.0, 15.0]]
    >>> pool_tokens(seq, Layer("b", tokens=-1)).tolist()
    [[8.0, 9.0, 10.0, 11.0], [20.0, 21.0, 22.0, 23.0]]
    >>> pool_tokens(seq, Layer("b", tokens="mean")).tolist()
    [[4.0, 5.0, 6.0, 7.0], [16.0, 17.0, 18.0, 19.0]]
    >>> tuple(pool_tokens(seq, Layer("b", tokens="flatten")).shape)
    (2, 3, 4)
    >>> pool_tokens(seq, Layer("b"))
    Traceback (most recent call last):
    ...
    repscope.engine.errors.SettingsError: layer 'b' returns a 3-D output (batch, 3, 4): for a token sequence (batch, tokens, features) give tokens = "cls" (token 0), "mean" (mean over tokens), a token index such as 0 or -1, or "flatten" (every token, flattened); for a Conv1d's (channels, length) give split = "whole" or "channels"
    """
    tokens = layer.tokens
    if tokens is None:
        if value.ndim == 3 and layer.split is None:
            raise SettingsError(f"layer {layer.key!r} returns a 3-D output (batch, {value.shape[1]}, "
                                f"{value.shape[2]}): for a token sequence (batch, tokens, features) {_TOKENS_HINT}")
        return value
    if value.ndim != 3:
        raise SettingsError(f"layer {layer.key!r}: tokens = {_spell(tokens)} reads a token sequence (batch, tokens, features) "
                            f"but module {layer.path!r} gives {tuple(value.shape)}; leave tokens out")
    if tokens == "cls":
        return value[:, 0]
    if tokens == "mean":
        return value.mean(dim=1)
    if tokens == "flatten":
        return value
    count = value.shape[1]
    if not -count <= tokens < count:  # type: ignore[operator]
        raise SettingsError(f"layer {layer.key!r}: module {layer.path!r} gives {count} tokens; tokens = {tokens} is "
                            f"past them: give an index from {-count} to {count - 1}")
    return value[:, tokens]


@contextlib.contextmanager
def capture(model: nn.Module, layers: Sequence[Layer], problems: dict[str, str] | None = None,
            raw: dict[str, tuple[int, ...]] | None = None,
            unreduced: dict[str, tuple[int, ...]] | None = None,
            fitted: Mapping[str, Fitted] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks on ``layers`` for one forward pass: afterwards the dict maps each
    layer's name to its activation (a copy, so that a later in-place operation such as
    ``ReLU(inplace=True)`` cannot change it): the module's output, or what a layer's
    ``read``, ``element`` and ``tokens`` choose (:func:`select_output`,
    :func:`select_input`, :func:`pool_tokens`; an input is read with a forward pre-hook).

    A module called more than once in the pass (one ``ReLU`` object reused, say) is an
    error: which call is meant would be ambiguous. What is wrong with a layer does not
    stop the pass: every layer's problem, one line each, is raised together afterwards
    as one SettingsError, or put into ``problems`` (layer name -> line) when it is given.
    ``raw``, when given, gets the shape of what each layer reads (batch first) before its
    tokens are pooled, ``unreduced`` the shape after that, before its ``reduce``.
    ``fitted`` holds the fitted projection of each ``pca:D`` layer by name (a layer
    without one gives its flattened values, what the fit reads).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with capture(net, [Layer("1")]) as out:
    ...     _ = net(torch.ones(5, 3))
    >>> tuple(out["1"].shape)
    (5, 4)
    >>> with capture(net, [Layer("1", read="input")]) as out:
    ...     _ = net(torch.ones(5, 3))
    >>> torch.equal(out["1[input]"], net[0](torch.ones(5, 3)))
    True
    """
    check_layers(model, layers)
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    found: dict[str, str] = {} if problems is None else problems
    handles = []

    def keep(layer: Layer, read: Callable[[], torch.Tensor]) -> None:
        if layer.key in found:  # its first problem stands
            return
        if layer.key in outputs:
            found[layer.key] = (f"module {layer.path!r} runs more than once in one forward pass (a module object used "
                                "twice); name a module that runs once, or give the model a module per use")
            del outputs[layer.key]
            return
        try:
            value = read()
            if raw is not None:
                raw[layer.key] = tuple(int(s) for s in value.shape)
            pooled = pool_tokens(value, layer)
            if unreduced is not None:
                unreduced[layer.key] = tuple(int(s) for s in pooled.shape)
            pooled = reduce_batch(pooled, layer, (fitted or {}).get(layer.key))
        except SettingsError as exc:
            found[layer.key] = str(exc)
            return
        # a pooled mean or a reduction is a new tensor; anything else is (a view of) the module's own
        fresh = layer.tokens == "mean" or layer.reduce is not None
        outputs[layer.key] = pooled.detach() if fresh else pooled.detach().clone()

    for layer in layers:
        if layer.read == "input":
            def pre_hook(module, args, kwargs, layer=layer):
                keep(layer, lambda: select_input(module, args, kwargs, layer))

            handles.append(modules[layer.path].register_forward_pre_hook(pre_hook, with_kwargs=True))
        else:
            def hook(module, args, output, layer=layer):
                keep(layer, lambda: select_output(output, layer))

            handles.append(modules[layer.path].register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
    if found and problems is None:
        raise SettingsError("\n".join(found.values()))


def to_float(batch: torch.Tensor, scale: float) -> torch.Tensor:
    """A batch of a source's examples (uint8 or float) in natural units: float32 / ``scale``.

    Examples
    --------
    >>> to_float(torch.tensor([0, 51, 255], dtype=torch.uint8), 255.0)
    tensor([0.0000, 0.2000, 1.0000])
    """
    batch = batch.to(torch.float32)
    return batch.div_(scale) if scale != 1.0 else batch


def logits(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """The class scores of a forward pass (the first tensor of a tuple output)."""
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.inference_mode()
def probe_shapes(model: nn.Module, spec: ModelSpec, examples: torch.Tensor,
                 raw: dict[str, tuple[int, ...]] | None = None,
                 unreduced: dict[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    """One example's activation shape per layer, from one dry forward pass of ``examples``
    (a small batch in natural units); every layer's activation must be batch first.

    Every layer is checked in the one pass: a module that does not run or runs twice,
    a structured output without ``element``, a token sequence without ``tokens``, an
    output that is not batch first; all of them are raised as one SettingsError, one
    line per layer. ``raw``, when given, gets each layer's shape before its tokens are
    pooled, ``unreduced`` its shape before its ``reduce``.

    Examples
    --------
    >>> spec = ModelSpec(factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), layers=(Layer("1"),))
    >>> probe_shapes(build(spec, 0), spec, torch.zeros(2, 2, 2))
    {'1': (3,)}
    >>> seq = ModelSpec(factory=lambda: nn.Sequential(nn.Linear(2, 3)), layers=(Layer("0", tokens="mean"),))
    >>> probe_shapes(build(seq, 0), seq, torch.zeros(2, 5, 2))
    {'0[mean]': (3,)}
    """
    model.eval()
    batch = len(examples)
    problems: dict[str, str] = {}
    read: dict[str, tuple[int, ...]] = {}
    before: dict[str, tuple[int, ...]] = {}
    with capture(model, spec.layers, problems, read, before) as outputs:
        try:
            model(spec.transform(examples))
        except SettingsError:
            raise
        except Exception as exc:
            raise SettingsError(f"the model's dry forward pass on examples of shape {tuple(examples.shape[1:])} "
                                f"failed: {type(exc).__name__}: {exc}; check the model's input transform") from None
    missing = [layer.key for layer in spec.layers if layer.key not in outputs and layer.key not in problems]
    if missing:
        problems[missing[0]] = (f"layer(s) {', '.join(missing)} did not run in the model's forward pass; name modules "
                                "that the forward pass calls")
    for key, shape in read.items():  # before tokens are pooled: pooling a tensor that is not batch first is no cure
        if not shape or shape[0] != batch:
            problems[key] = (f"layer {key!r} returns shape {shape} for a batch of {batch}: not batch first; name a "
                             "module whose output has the batch on its first axis")
    if problems:
        order = [layer.key for layer in spec.layers]
        raise SettingsError("\n".join(problems[k] for k in sorted(problems, key=order.index)))
    if raw is not None:
        raw.update({key: shape[1:] for key, shape in read.items()})
    if unreduced is not None:
        unreduced.update({key: shape[1:] for key, shape in before.items()})
    return {layer.key: (fitted_width(layer),) if fitted_width(layer) else tuple(int(s) for s in outputs[layer.key].shape[1:])
            for layer in spec.layers}


def load_state(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a state dict file (a state dict, or a dict holding one under ``state_dict``)
    into ``model`` with ``weights_only=True``; errors name the file and what does not fit."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"checkpoint {path} does not exist; give the path of a saved state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SettingsError(f"checkpoint {path} is not a readable state dict ({type(exc).__name__}: {exc}); save it "
                            "with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SettingsError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        detail = str(exc).strip().splitlines()[-1].strip()
        raise SettingsError(f"checkpoint {path} does not fit the model ({detail}); save the state dict of the "
                            "same architecture") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {', '.join(result.missing_keys[:5])}")
    if result.unexpected_keys:
        problems.append(f"unexpected {', '.join(result.unexpected_keys[:5])}")
    if problems:
        raise SettingsError(f"checkpoint {path} does not fit the model ({'; '.join(problems)}); "
                            "save the state dict of the same architecture")
    return model


def count_parameters(model: nn.Module) -> int:
    """The number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
