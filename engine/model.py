"""A model to analyse: any ``torch.nn.Module``, the layers read by module path, and their splits.

A :class:`ModelSpec` says how to build the network (a factory, from Python or as
``package.module:factory``), which checkpoint makes it the trained network (a state
dict, loaded with ``weights_only=True``; without one the engine trains it with a
:class:`~repscope.engine.train.Recipe`), how a batch of examples becomes its input,
and which layers to read. Layers are captured with forward hooks, so the model needs
no change; their shapes come from one dry forward pass and are never constants.

The two networks compared are ``trained`` and ``untrained``: the same architecture in
a seeded initial state (for a trained checkpoint, a fresh seeded initialisation of the
same class; when the engine trains, the exact initial state it trained from).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..store import NETWORKS, SPLITS  # noqa: F401  (NETWORKS: the names of the two networks)
from .errors import SettingsError


#: Names a layer cannot take: they are folders of the store beside the layers.
RESERVED = ("", "original", "labels", "reduced", "embeddings", "pca")


@dataclass(frozen=True)
class Layer:
    """One layer to analyse.

    path: the module's path in the model (``features.3``, ``layer4.1.conv2``), as
        ``model.named_modules()`` names it; its output is what is read.
    split: ``whole`` (the flattened activation is one representation) or ``channels``
        (one representation per channel, and the whole layer as ``<name>/all`` beside
        them); the channel axis is the first after the batch.
    max_channels: with ``channels``, only the first this many channels get a
        representation of their own (for wide layers); None for all.
    name: the layer's name in the store, tables and figures; the path by default.
    """

    path: str
    split: str = "whole"
    max_channels: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise SettingsError(f"layer {self.path!r}: split {self.split!r} is not one of {', '.join(SPLITS)}")
        if self.max_channels is not None and (isinstance(self.max_channels, bool) or not isinstance(self.max_channels, int)
                                              or self.max_channels < 1):
            raise SettingsError(f"layer {self.path!r}: max_channels must be a whole number >= 1; "
                                f"got {self.max_channels!r}")
        if not isinstance(self.path, str) or not isinstance(self.key, str):
            raise SettingsError(f"a layer's path and name are text; got {self.path!r}, {self.key!r}")
        if self.key in RESERVED or any(c in self.key for c in '/,"\n\r'):
            raise SettingsError(f"layer name {self.key!r} is reserved or contains '/', ',', '\"' or a line break; "
                                "give the layer another name (name = ...)")

    @property
    def key(self) -> str:
        """The layer's name in the store (``name``, else ``path``)."""
        return self.name or self.path

    def record(self) -> dict:
        """A JSON-ready dict of the layer (what config.json keeps)."""
        return {"path": self.path, "split": self.split, "max_channels": self.max_channels, "name": self.key}

    @classmethod
    def parse(cls, item: "Layer | str | Mapping[str, Any]") -> "Layer":
        """A Layer from a Layer, a module path, or a mapping such as a run file's
        ``{path = "features.3", split = "channels", max_channels = 16}``."""
        if isinstance(item, Layer):
            return item
        if isinstance(item, str):
            return cls(item)
        if isinstance(item, Mapping):
            unknown = set(item) - {"path", "split", "max_channels", "name"}
            if unknown or "path" not in item:
                raise SettingsError(f"a layer is given as {{path, split, max_channels, name}}; got {dict(item)!r}")
            return cls(str(item["path"]), str(item.get("split", "whole")), item.get("max_channels"), item.get("name"))
        raise SettingsError(f"a layer is a module path or a table with a path; got {item!r}")


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


@contextlib.contextmanager
def capture(model: nn.Module, layers: Sequence[Layer]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks on ``layers`` for one forward pass: afterwards the dict maps each
    layer's name to its output (a copy, so that a later in-place operation such as
    ``ReLU(inplace=True)`` cannot change it; the first tensor of a tuple output).

    A module called more than once in the pass (one ``ReLU`` object reused, say) is an
    error: which call is meant would be ambiguous.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with capture(net, [Layer("1")]) as out:
    ...     _ = net(torch.ones(5, 3))
    >>> tuple(out["1"].shape)
    (5, 4)
    """
    check_layers(model, layers)
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for layer in layers:
        def hook(module, args, output, key=layer.key, path=layer.path):
            if key in outputs:
                raise SettingsError(f"module {path!r} runs more than once in one forward pass (a module object used "
                                    "twice); name a module that runs once, or give the model a module per use")
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise SettingsError(f"layer {key!r} returns {type(output).__name__}, not a tensor; "
                                    "name a module that returns one")
            outputs[key] = output.detach().clone()
        handles.append(modules[layer.path].register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


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
def probe_shapes(model: nn.Module, spec: ModelSpec, examples: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """One example's activation shape per layer, from one dry forward pass of ``examples``
    (a small batch in natural units); every layer's output must be batch first.

    Examples
    --------
    >>> spec = ModelSpec(factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), layers=(Layer("1"),))
    >>> probe_shapes(build(spec, 0), spec, torch.zeros(2, 2, 2))
    {'1': (3,)}
    """
    model.eval()
    batch = len(examples)
    with capture(model, spec.layers) as outputs:
        try:
            model(spec.transform(examples))
        except SettingsError:
            raise
        except Exception as exc:
            raise SettingsError(f"the model's dry forward pass on examples of shape {tuple(examples.shape[1:])} "
                                f"failed: {type(exc).__name__}: {exc}; check the model's input transform") from None
    missing = [layer.key for layer in spec.layers if layer.key not in outputs]
    if missing:
        raise SettingsError(f"layer(s) {', '.join(missing)} did not run in the model's forward pass; name modules "
                            "that the forward pass calls")
    for key, output in outputs.items():
        if output.ndim == 0 or output.shape[0] != batch:
            raise SettingsError(f"layer {key!r} returns shape {tuple(output.shape)} for a batch of {batch}: not batch "
                                "first; name a module whose output has the batch on its first axis")
    return {layer.key: tuple(int(s) for s in outputs[layer.key].shape[1:]) for layer in spec.layers}


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
