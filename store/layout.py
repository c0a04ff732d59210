"""Where things live inside a run's Zarr store, and what the representations are.

This module is the one place that knows paths inside ``store.zarr``::

    <dataset>/labels                                 (N,) uint8
    <dataset>/original                               (N, 784) uint8 (network input x 255)
    <dataset>/seed<seed>/<network>/layer1            (N, 4, 12, 12) float32
    <dataset>/seed<seed>/<network>/layer2            (N, 16, 5, 5) float32
    <dataset>/seed<seed>/<network>/layer3            (N, 64) float32
    <dataset>/seed<seed>/<network>/embeddings/<method>/<representation>   (N, 2) float32

The seed level keeps the network pairs of several seeds side by side; labels and
images do not depend on the seed and are stored once. Arrays with a filter axis are
chunked one filter per chunk, so a filter is read without the others.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Shape of one example's activations per layer (channels first where there are any).
LAYERS: dict[str, tuple[int, ...]] = {
    "layer1": (4, 12, 12),
    "layer2": (16, 5, 5),
    "layer3": (64,),
}
#: Depth of each array in the network: 0 for the input.
DEPTH = {"original": 0, "layer1": 1, "layer2": 2, "layer3": 3}
ORIGINAL_DIMS = 28 * 28
#: Rows per chunk of every array; extraction writes exactly one chunk row-block per batch.
CHUNK_ROWS = 2048


@dataclass(frozen=True)
class Representation:
    """One representation of SPEC.md.

    name: the one name used everywhere (``original``, ``layer1/filter3``, ``layer2/all``).
    array: the stored array it is read from (``original``, ``layer1``, ...).
    channel: 0-based filter index into that array, or None for the whole array.
    in_study: False for the whole-layer representations the study did not score.
    """

    name: str
    array: str
    channel: int | None
    in_study: bool

    @property
    def depth(self) -> int:
        return DEPTH[self.array]

    @property
    def dims(self) -> int:
        if self.array == "original":
            return ORIGINAL_DIMS
        shape = LAYERS[self.array]
        size = 1
        for s in shape[1 if self.channel is not None else 0:]:
            size *= s
        return size


def _build() -> tuple[Representation, ...]:
    reps = [Representation("original", "original", None, True)]
    for layer, shape in LAYERS.items():
        if len(shape) == 1:
            reps.append(Representation(layer, layer, None, True))
            continue
        reps += [Representation(f"{layer}/filter{c + 1}", layer, c, True) for c in range(shape[0])]
    reps += [Representation(f"{layer}/all", layer, None, False) for layer, shape in LAYERS.items() if len(shape) > 1]
    return tuple(reps)


#: Every representation, the study's 22 first, then the whole-layer ones beyond it.
REPRESENTATIONS: tuple[Representation, ...] = _build()
STUDY_REPRESENTATIONS = tuple(r for r in REPRESENTATIONS if r.in_study)
_BY_NAME = {r.name: r for r in REPRESENTATIONS}


def representation(name: str) -> Representation:
    """The representation called ``name``; a KeyError lists the valid names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown representation {name!r}; valid names: {', '.join(_BY_NAME)}") from None


def labels_key(dataset: str) -> str:
    return f"{dataset}/labels"


def original_key(dataset: str) -> str:
    return f"{dataset}/original"


def layer_key(dataset: str, seed: int, network: str, layer: str) -> str:
    if layer not in LAYERS:
        raise KeyError(f"unknown layer {layer!r}; valid layers: {', '.join(LAYERS)}")
    return f"{dataset}/seed{seed}/{network}/{layer}"


def array_key(dataset: str, seed: int, network: str, array: str) -> str:
    """Key of a stored array: ``original`` is shared by networks and seeds."""
    return original_key(dataset) if array == "original" else layer_key(dataset, seed, network, array)


def embedding_key(dataset: str, seed: int, network: str, method: str, name: str) -> str:
    """Key of the (N, 2) embedding of representation ``name`` (``layer1/filter3`` nests)."""
    representation(name)
    return f"{dataset}/seed{seed}/{network}/embeddings/{method}/{name}"


def chunks_for(shape: tuple[int, ...], chunk_rows: int = CHUNK_ROWS) -> tuple[int, ...]:
    """Chunk shape of an array of ``shape`` (rows first): a row block, one filter per chunk."""
    rows = max(1, min(chunk_rows, shape[0]))
    if len(shape) == 4:  # (N, C, H, W): one filter per chunk
        return (rows, 1, *shape[2:])
    return (rows, *shape[1:])
