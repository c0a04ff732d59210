"""Where things live inside a run's Zarr store, and what the representations are.

This module is the one place that knows paths inside ``store.zarr``::

    <dataset>/labels                                   (N,) labels
    <dataset>/example                                  (N,) the examples' indices in the source
    <dataset>/original                                 (N, D) the examples as the source gives them, flattened
    <dataset>/seed<seed>/<network>/<layer>             (N, *shape) float32, one array per analysed layer
    <dataset>/seed<seed>/<network>/reduced/<name>      (N, 50) float32, PCA of a wide representation
    <dataset>/seed<seed>/<network>/pca/<name>          (50, dims) float32, its principal components
    <dataset>/seed<seed>/<network>/embeddings/<method>/<name>   (N, 2) float32
    <dataset>/heldout/{labels,example,original}        the held-out (test) examples, when stored
    <dataset>/seed<seed>/<network>/heldout/<layer>     their activations (for linear probes)

The seed level keeps the network pairs of several seeds side by side; labels and
inputs do not depend on the seed and are stored once. Arrays with a channel axis are
chunked one channel per chunk, so a channel is read without the others. No shape is
fixed here: each array's shape comes from the model's dry forward pass and is
recorded in the array's metadata.

Every array names its axes (Zarr v3 ``dimension_names``), so that
``xarray.open_datatree(store, engine="zarr")`` opens a run: the first axis of every
array is ``example`` (``<dataset>/example`` holds its coordinate, the indices of the
examples analysed), a layer's other axes are named after the layer (``layer1_channel``,
``layer1_y``, ``layer1_x``: layers of one group differ in size), an embedding's is
``axis``, a reduced array's ``component``.

A *representation* is what one embedding is made of: ``original`` (the input), a
whole layer (``<layer>``, the flattened activation), one channel of a layer split by
channel (``<layer>/filter<c>``, 1-based and zero-padded to the width of the channel
count, at least two digits, so that names sort in channel order: ``filter01`` ..
``filter16``; a name given without the padding, ``layer2/filter7``, means the same), or, for such a layer, the whole layer as
well (``<layer>/all``). The channel representations and the whole ones form the
run's main set (``in_study``: for the study's preset its 22); ``<layer>/all`` of a
channel-split layer is a view beyond it, reported apart.

A layer's name says what is read from its module when that is not simply the module's
output tensor (:class:`repscope.engine.model.Layer`): its module path (or given name),
then in brackets which input is read (``[input]``, ``[input.1]``), which element of a
structured output (``[0]``, ``[last_hidden_state]``), and how a token sequence
``(batch, tokens, features)`` becomes one vector per example (``[cls]``, ``[mean]``,
``[token3]``, ``[token-1]``, ``[flatten]``): ``blocks.1[mean]``, ``gru[0][token-1]``,
``head[input]``. That name is the array's, the representation's and the tables'; the
choices themselves are recorded with the representation (``read``, ``element``,
``tokens``) and in the array's attributes. A pooled layer's axis is named
``<layer>_feature``; a flattened sequence keeps its ``<layer>_token`` and
``<layer>_feature`` axes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from math import prod
from typing import Any, Iterable, Mapping, Sequence

#: Rows per chunk of every array; extraction writes exactly one chunk row-block per batch.
CHUNK_ROWS = 2048
#: The representation of the input, shared by both networks.
ORIGINAL = "original"
#: Suffix of the whole-layer view of a channel-split layer.
ALL = "all"
#: The two networks compared: the trained one and the same architecture untrained.
NETWORKS = ("trained", "untrained")
#: How a layer's activation becomes representations.
SPLITS = ("whole", "channels")


@dataclass(frozen=True)
class Representation:
    """One representation.

    name: the one name used everywhere (``original``, ``conv1/filter03``, ``conv1/all``, ``fc``).
    array: the stored array it is read from (``original`` or a layer's name).
    channel: 0-based channel index into that array, or None for the whole array.
    in_study: whether it belongs to the run's main set (False for ``<layer>/all``).
    depth: 0 for the input, then 1, 2, ... in the order the layers are analysed.
    dims: its width, the number of values per example.
    read: ``output`` (what the layer's module returns) or ``input`` (what it is given).
    element: which element of a structured output (or which input) is read: a position
        or a name; None for the module's tensor (its first positional input).
    tokens: how a token sequence became one vector per example (``cls``, ``mean``,
        ``flatten`` or a token index); None for an output that is no token sequence.
    reduce: how the activation was reduced before it was stored (``avgpool``,
        ``maxpool``, ``pool:HxW``, ``project:D``); None where it is stored whole.
    """

    name: str
    array: str
    channel: int | None
    in_study: bool
    depth: int
    dims: int
    read: str = "output"
    element: int | str | None = None
    tokens: int | str | None = None
    reduce: str | None = None

    def record(self) -> dict:
        """A JSON-ready dict (``from_record`` reads it back); ``read``, ``element``,
        ``tokens`` and ``reduce`` only where they are not the defaults.

        Examples
        --------
        >>> Representation("gru[0][token-1]", "gru[0][token-1]", None, True, 1, 32, element=0, tokens=-1).record()
        {'name': 'gru[0][token-1]', 'array': 'gru[0][token-1]', 'channel': None, 'in_study': True, 'depth': 1,
         'dims': 32, 'element': 0, 'tokens': -1}
        """
        record = asdict(self)
        for key, default in _READING_DEFAULTS.items():
            if record[key] == default:
                del record[key]
        return record

    @classmethod
    def from_record(cls, record: dict) -> "Representation":
        return cls(**{k: record[k] for k in ("name", "array", "channel", "in_study", "depth", "dims")},
                   **{k: record[k] for k in _READING_DEFAULTS if k in record})


#: What a representation reads from its layer's module when nothing else is chosen.
_READING_DEFAULTS: dict[str, Any] = {"read": "output", "element": None, "tokens": None, "reduce": None}


def channel_name(layer: str, channel: int, count: int = 1) -> str:
    """The name of 0-based channel ``channel`` of a layer of ``count`` channels analysed,
    padded to sort in channel order.

    Examples
    --------
    >>> channel_name("conv1", 2, 16), channel_name("conv1", 2, 128)
    ('conv1/filter03', 'conv1/filter003')
    """
    return f"{layer}/filter{channel + 1:0{max(2, len(str(count)))}d}"


def same_name(name: str) -> str:
    """The form of a representation's name that ignores the channel number's padding, for
    matching names as people type them: ``conv1/filter03`` and ``conv1/filter3`` give
    ``conv1/filter3``."""
    return re.sub(r"/filter0*(\d+)$", r"/filter\1", name)


def build_representations(
    input_dims: int,
    layers: Iterable[tuple[str, str, tuple[int, ...], int | None] | tuple[str, str, tuple[int, ...], int | None,
                                                                          Mapping[str, Any]]],
) -> tuple[Representation, ...]:
    """Every representation of a run, main set first, then the whole-layer views.

    ``layers``: (name, split, shape of one example's activation, cap on channels) per
    analysed layer, in depth order; ``split`` is ``whole`` or ``channels`` (the first
    axis of ``shape`` is the channel axis; at most ``cap`` channels, all if None). A
    fifth item, a mapping of ``read``, ``element`` and ``tokens``, says what was read
    from the layer's module (recorded with each of its representations).

    Examples
    --------
    >>> reps = build_representations(100, [("conv", "channels", (3, 6, 6), None), ("fc", "whole", (8,), None)])
    >>> [(r.name, r.dims) for r in reps]  # doctest: +NORMALIZE_WHITESPACE
    [('original', 100), ('conv/filter01', 36), ('conv/filter02', 36), ('conv/filter03', 36), ('fc', 8),
     ('conv/all', 108)]
    >>> build_representations(64, [("blocks.1[mean]", "whole", (16,), None, {"tokens": "mean"})])[1]
    Representation(name='blocks.1[mean]', array='blocks.1[mean]', channel=None, in_study=True, depth=1, dims=16,
                   read='output', element=None, tokens='mean', reduce=None)
    """
    reps = [Representation(ORIGINAL, ORIGINAL, None, True, 0, int(input_dims))]
    beyond = []
    for depth, (layer, split, shape, cap, *more) in enumerate(layers, start=1):
        if split not in SPLITS:
            raise ValueError(f"layer {layer!r}: split {split!r} is not one of {', '.join(SPLITS)}")
        reading = {k: v for k, v in (more[0] if more else {}).items() if k in _READING_DEFAULTS}
        whole = int(prod(shape))
        if split == "whole" or len(shape) < 2:
            reps.append(Representation(layer, layer, None, True, depth, whole, **reading))
            continue
        count = shape[0] if cap is None else min(cap, shape[0])
        per_channel = int(prod(shape[1:]))
        reps += [Representation(channel_name(layer, c, count), layer, c, True, depth, per_channel, **reading)
                 for c in range(count)]
        beyond.append(Representation(f"{layer}/{ALL}", layer, None, False, depth, whole, **reading))
    return tuple(reps + beyond)


def find(representations: Sequence[Representation], name: str) -> Representation:
    """The representation called ``name`` (``same_name``: padding aside); a KeyError lists the valid names."""
    for rep in representations:
        if same_name(rep.name) == same_name(name):
            return rep
    raise KeyError(f"unknown representation {name!r}; valid names: {', '.join(r.name for r in representations)}")


def layer_names(representations: Sequence[Representation]) -> list[str]:
    """The analysed layers in depth order (``original`` first)."""
    return list(dict.fromkeys(r.array for r in sorted(representations, key=lambda r: r.depth)))


#: The first axis of every array: the analysed examples.
EXAMPLE = "example"
#: The axes of an (N, 2) embedding.
EMBEDDING_DIMS = (EXAMPLE, "axis")
#: The axes of a layer's activation after ``example``, by the number of its axes.
_LAYER_AXES = {0: (), 1: ("unit",), 2: ("channel", "position"), 3: ("channel", "y", "x"), 4: ("channel", "z", "y", "x")}


def layer_dims(layer: str, shape: tuple[int, ...], tokens: int | str | None = None,
               reduce: str | None = None) -> tuple[str, ...]:
    """Dimension names of a stored layer of per-example ``shape``: ``example``, then axes
    named after the layer. A layer read from a token sequence (``tokens`` given) has
    ``feature`` axes, and ``token`` first where the sequence is kept (``flatten``); a
    pooled layer a ``channel`` axis, a projected one a ``component`` axis.

    Examples
    --------
    >>> layer_dims("layer1", (6, 24, 24))
    ('example', 'layer1_channel', 'layer1_y', 'layer1_x')
    >>> layer_dims("fc", (10,))
    ('example', 'fc_unit')
    >>> layer_dims("blocks.1[mean]", (16,), "mean"), layer_dims("blocks.1[flatten]", (17, 16), "flatten")
    (('example', 'blocks.1[mean]_feature'), ('example', 'blocks.1[flatten]_token', 'blocks.1[flatten]_feature'))
    >>> layer_dims("l1[avgpool]", (256,), reduce="avgpool"), layer_dims("l1[project64]", (64,), reduce="project:64")
    (('example', 'l1[avgpool]_channel'), ('example', 'l1[project64]_component'))
    """
    if reduce is not None and len(shape) == 1:
        return (EXAMPLE, f"{layer}_{'component' if reduce.startswith('project') else 'channel'}")
    if tokens is not None and len(shape) in (1, 2):
        return (EXAMPLE, *(f"{layer}_{axis}" for axis in ("token", "feature")[2 - len(shape):]))
    axes = _LAYER_AXES.get(len(shape)) or tuple(f"axis{i}" for i in range(1, len(shape) + 1))
    return (EXAMPLE, *(f"{layer}_{axis}" for axis in axes))


def default_dims(key: str, ndim: int) -> tuple[str, ...]:
    """Dimension names of an array that is given none: ``example``, then axes named after
    the array (``<leaf>_axis1``, ...), which never clash with another array's."""
    leaf = key.rsplit("/", 1)[-1]
    return (EXAMPLE, *(f"{leaf}_axis{i}" for i in range(1, ndim)))


def example_key(dataset: str) -> str:
    """Key of the (N,) indices of the analysed examples in the source (the ``example`` coordinate)."""
    return f"{dataset}/{EXAMPLE}"


def labels_key(dataset: str) -> str:
    return f"{dataset}/labels"


def original_key(dataset: str) -> str:
    return f"{dataset}/{ORIGINAL}"


def layer_key(dataset: str, seed: int, network: str, layer: str) -> str:
    return f"{dataset}/seed{seed}/{network}/{layer}"


def array_key(dataset: str, seed: int, network: str, array: str) -> str:
    """Key of a stored array: ``original`` is shared by networks and seeds."""
    return original_key(dataset) if array == ORIGINAL else layer_key(dataset, seed, network, array)


#: The folder of the held-out (test) examples' arrays, beside their training counterparts.
HELDOUT = "heldout"


def heldout_key(key: str) -> str:
    """Key of the held-out examples' counterpart of array ``key`` (labels, input or a layer).

    Examples
    --------
    >>> heldout_key("mnist/labels"), heldout_key("mnist/seed42/trained/layer1")
    ('mnist/heldout/labels', 'mnist/seed42/trained/heldout/layer1')
    """
    parent, leaf = key.rsplit("/", 1)
    return f"{parent}/{HELDOUT}/{leaf}"


def reduced_key(dataset: str, seed: int, network: str, name: str) -> str:
    """Key of the PCA-reduced form of a wide representation (``original``'s is under ``trained``)."""
    return f"{dataset}/seed{seed}/{network}/reduced/{name}"


def components_key(dataset: str, seed: int, network: str, name: str) -> str:
    """Key of the (k, dims) principal components behind ``reduced_key``'s array."""
    return f"{dataset}/seed{seed}/{network}/pca/{name}"


def projection_key(dataset: str, seed: int, network: str, name: str, part: str) -> str:
    """Key of a ``pca:D`` layer's fitted projection: its ``components`` (D, d) or ``mean`` (d,).

    Examples
    --------
    >>> projection_key("images", 0, "trained", "layer1[pca64]", "components")
    'images/seed0/trained/projections/layer1[pca64]/components'
    """
    return f"{dataset}/seed{seed}/{network}/projections/{name}/{part}"


def embedding_key(dataset: str, seed: int, network: str, method: str, name: str) -> str:
    """Key of the (N, 2) embedding of representation ``name`` (``conv1/filter03`` nests).
    ``original`` is shared by both networks and stored once, under ``trained``."""
    return f"{dataset}/seed{seed}/{holder(network, name)}/embeddings/{method}/{name}"


def holder(network: str, name: str) -> str:
    """The network whose folder holds representation ``name``'s arrays: ``trained`` for
    ``original`` (the input, shared by both networks), else ``network`` itself."""
    return NETWORKS[0] if name == ORIGINAL else network


def chunks_for(shape: tuple[int, ...], chunk_rows: int = CHUNK_ROWS) -> tuple[int, ...]:
    """Chunk shape of an array of ``shape`` (rows first): a row block, one channel per chunk
    for arrays with a channel axis and more (``(N, C, H, W)``, ``(N, C, L)``)."""
    rows = max(1, min(chunk_rows, shape[0]))
    if len(shape) >= 3:
        return (rows, 1, *shape[2:])
    return (rows, *shape[1:])
