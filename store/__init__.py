"""The run store: the Zarr layout of a run folder and resumable row-block writes."""

from .layout import (
    CHUNK_ROWS,
    LAYERS,
    REPRESENTATIONS,
    STUDY_REPRESENTATIONS,
    Representation,
    array_key,
    chunks_for,
    embedding_key,
    labels_key,
    layer_key,
    original_key,
    representation,
)
from .runstore import Progress, RunStore, flag_group, is_url

__all__ = [
    "CHUNK_ROWS", "LAYERS", "REPRESENTATIONS", "STUDY_REPRESENTATIONS", "Representation",
    "array_key", "chunks_for", "embedding_key", "labels_key", "layer_key", "original_key", "representation",
    "Progress", "RunStore", "flag_group", "is_url",
]
