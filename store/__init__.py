"""The run store: the Zarr layout of a run folder and resumable row-block writes."""

from .layout import (
    ALL,
    CHUNK_ROWS,
    NETWORKS,
    ORIGINAL,
    SPLITS,
    Representation,
    array_key,
    build_representations,
    channel_name,
    chunks_for,
    components_key,
    embedding_key,
    find,
    holder,
    labels_key,
    layer_key,
    layer_names,
    original_key,
    reduced_key,
)
from .runstore import Progress, RunStore, flag_group, is_url

__all__ = [
    "ALL", "CHUNK_ROWS", "NETWORKS", "ORIGINAL", "SPLITS", "Representation", "array_key", "build_representations",
    "channel_name", "chunks_for", "components_key", "embedding_key", "find", "holder", "labels_key", "layer_key", "layer_names", "original_key",
    "reduced_key", "Progress", "RunStore", "flag_group", "is_url",
]
