"""The two IDX data sets (MNIST and FashionMNIST): folders, sizes and class names, and the data root.

These describe files on disk (see :mod:`repscope.engine.data`); how a data set is
trained on or analysed belongs to the preset that uses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SettingsError

#: Fewest examples a run takes (t-SNE's perplexity of 30 wants 3 x 30 neighbours).
MIN_N = 100
#: The study's seed, the default of every run.
DEFAULT_SEED = 42
#: The seeds every library takes: numpy's ``RandomState`` (and so scikit-learn, openTSNE and
#: umap-learn) accepts 0 to 2**32 - 1; torch.manual_seed, cuML and TorchDR accept more.
MIN_SEED, MAX_SEED = 0, 2**32 - 1

#: Examples in the standard training set of both data sets.
TRAIN_SIZE = 60_000
TEST_SIZE = 10_000


@dataclass(frozen=True)
class DatasetSpec:
    """One IDX data set.

    name: the engine's name (``mnist``, ``fashion-mnist``).
    folder: torchvision's folder name under the data root (``MNIST``, ``FashionMNIST``).
    classes: class names, index = label.
    """

    name: str
    folder: str
    classes: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        folder="MNIST",
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        folder="FashionMNIST",
        classes=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
    ),
}


def dataset_spec(name: str) -> DatasetSpec:
    """Return the spec of data set ``name``, or a SettingsError listing the valid names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SettingsError(
            f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}"
        ) from None


def dataset_names(choice: str) -> list[str]:
    """Expand a command-line choice (a name, or ``all``) into data set names."""
    if choice == "all":
        return list(DATASETS)
    return [dataset_spec(choice).name]


def default_data_root() -> Path:
    """The data root: ``$ENGINE_DATA_DIR``, else a per-user cache folder."""
    env = os.environ.get("ENGINE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "repscope" / "data"
