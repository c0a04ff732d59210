"""The run store: the Zarr layout of a run folder and resumable row-block writes."""

from .layout import (
    ALL,
    CHUNK_ROWS,
    EMBEDDING_DIMS,
    EXAMPLE,
    NETWORKS,
    ORIGINAL,
    SPLITS,
    Representation,
    array_key,
    build_representations,
    channel_name,
    chunks_for,
    components_key,
    default_dims,
    embedding_key,
    example_key,
    HELDOUT,
    find,
    heldout_key,
    holder,
    labels_key,
    layer_dims,
    layer_key,
    layer_names,
    original_key,
    projection_key,
    reduced_key,
    same_name,
)
from .runstore import DamagedArrayError, DamagedNode, Progress, RunStore, Verified, flag_group, is_url

__all__ = [
    "ALL", "CHUNK_ROWS", "EMBEDDING_DIMS", "EXAMPLE", "NETWORKS", "ORIGINAL", "SPLITS", "Representation", "array_key",
    "build_representations", "channel_name", "chunks_for", "components_key", "default_dims", "embedding_key",
    "example_key", "find", "HELDOUT", "heldout_key", "holder", "labels_key", "layer_dims", "layer_key", "layer_names", "original_key",
    "projection_key", "reduced_key", "same_name", "DamagedArrayError", "DamagedNode", "Progress", "RunStore", "Verified", "flag_group", "is_url",
]
