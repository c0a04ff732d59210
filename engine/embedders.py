"""The 2-D embedders behind the backend switch, with the settings of the study (docs/study.md).

One small class per library, chosen by name (as openTSNE chooses its kNN index). Each
passes every setting explicitly (library defaults differ and change), records its
library, version and parameters, and is seeded. ``embed`` takes a float32 (N, d)
array of its device's module (numpy, or CuPy for the GPU embedders) and returns the
(N, 2) float32 embedding in the same module.

The study: t-SNE with perplexity 30, Euclidean; UMAP with 15 neighbours, min_dist 0.1,
Euclidean. Known traps handled here:

* cuML ``TSNE``'s default ``learning_rate_method='adaptive'`` replaces the neighbour
  count and learning rate for N > 2 000: it is switched off, and ``n_neighbors`` is
  set to 3 x perplexity as openTSNE does.
* cuML ``UMAP`` picks its kNN build by N and seed: ``build_algo`` is fixed to the exact
  brute-force search.
* umap-learn runs single-threaded when seeded (``n_jobs=1`` says so explicitly); the
  scheduler runs such jobs side by side instead.
"""

from __future__ import annotations

import logging
from importlib import metadata

import numpy as np

from .errors import SettingsError

log = logging.getLogger(__name__)

METHODS = ("tsne", "umap")
PERPLEXITY = 30.0
N_NEIGHBORS = 15
MIN_DIST = 0.1


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class Embedder:
    """Base class: ``name`` (unique), ``method`` (tsne or umap), ``library``, ``device``."""

    name = ""
    method = ""
    library = ""
    distribution = ""
    device = "cpu"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    @classmethod
    def available(cls) -> bool:
        """Whether the library imports (and, for GPU embedders, sees a device)."""
        raise NotImplementedError

    def parameters(self, n: int, seed: int) -> dict:
        """Every parameter the library is called with for ``n`` points and ``seed``."""
        raise NotImplementedError

    def embed(self, x, seed: int):
        raise NotImplementedError

    def describe(self, n: int, seed: int) -> dict:
        return {"embedder": self.name, "library": self.library, "version": _version(self.distribution),
                "device": self.device, "parameters": self.parameters(n, seed)}


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except Exception:  # ImportError, or a library broken by its own dependencies
        return False
    return True


def _cuda_ok() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class OpenTSNE(Embedder):
    name, method, library, distribution = "opentsne", "tsne", "openTSNE", "openTSNE"

    @classmethod
    def available(cls) -> bool:
        return _importable("openTSNE")

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "euclidean", "initialization": "pca",
                "learning_rate": "auto", "early_exaggeration_iter": 250, "early_exaggeration": 12,
                "n_iter": 500, "exaggeration": None, "neighbors": "auto",
                "negative_gradient_method": "auto", "random_state": seed, "n_jobs": self.threads}

    def embed(self, x, seed):
        import openTSNE

        return np.asarray(openTSNE.TSNE(**self.parameters(len(x), seed), verbose=False).fit(x), dtype=np.float32)


class SklearnTSNE(Embedder):
    name, method, library, distribution = "sklearn-tsne", "tsne", "scikit-learn", "scikit-learn"

    @classmethod
    def available(cls) -> bool:
        return _importable("sklearn.manifold")

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "euclidean", "init": "pca",
                "learning_rate": "auto", "early_exaggeration": 12.0, "method": "barnes_hut", "angle": 0.5,
                "random_state": seed, "n_jobs": self.threads}

    def embed(self, x, seed):
        from sklearn.manifold import TSNE

        return TSNE(**self.parameters(len(x), seed)).fit_transform(x).astype(np.float32)


class UmapLearn(Embedder):
    name, method, library, distribution = "umap-learn", "umap", "umap-learn", "umap-learn"

    @classmethod
    def available(cls) -> bool:
        return _importable("umap")

    def parameters(self, n, seed):
        return {"n_components": 2, "n_neighbors": N_NEIGHBORS, "min_dist": MIN_DIST, "metric": "euclidean",
                "init": "spectral", "n_epochs": None, "random_state": seed, "n_jobs": 1}

    def embed(self, x, seed):
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "n_jobs overridden by setting random_state"
            return umap.UMAP(**self.parameters(len(x), seed)).fit_transform(x).astype(np.float32)

    @staticmethod
    def warm_up() -> None:
        """Compile umap-learn's numba functions once in this process (about half a minute).

        Above 4 096 points umap-learn switches from an exact neighbour search to
        pynndescent, which compiles code of its own: the warm-up uses enough points to
        take that path too, so no job pays for compilation.
        """
        x = np.random.default_rng(0).normal(size=(4_500, 3)).astype(np.float32)
        UmapLearn().embed(x, 0)


class CumlTSNE(Embedder):
    name, method, library, distribution, device = "cuml-tsne", "tsne", "cuML", "cuml", "cuda"

    @classmethod
    def available(cls) -> bool:
        return _importable("cuml") and _cuda_ok()

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "euclidean", "method": "fft",
                "n_neighbors": int(3 * PERPLEXITY), "learning_rate": 200.0, "learning_rate_method": None,
                "early_exaggeration": 12.0, "exaggeration_iter": 250, "max_iter": 1000, "init": "random",
                "random_state": seed}

    def embed(self, x, seed):
        from cuml.manifold import TSNE

        return TSNE(**self.parameters(len(x), seed), output_type="cupy").fit_transform(x).astype("float32")


class CumlUMAP(Embedder):
    name, method, library, distribution, device = "cuml-umap", "umap", "cuML", "cuml", "cuda"

    @classmethod
    def available(cls) -> bool:
        return _importable("cuml") and _cuda_ok()

    def parameters(self, n, seed):
        return {"n_components": 2, "n_neighbors": N_NEIGHBORS, "min_dist": MIN_DIST, "metric": "euclidean",
                "init": "spectral", "build_algo": "brute_force_knn", "random_state": seed}

    def embed(self, x, seed):
        from cuml.manifold import UMAP

        return UMAP(**self.parameters(len(x), seed), output_type="cupy").fit_transform(x).astype("float32")


class _TorchDR(Embedder):
    device, library, distribution = "cuda", "TorchDR", "torchdr"

    @classmethod
    def available(cls) -> bool:
        if not _importable("torchdr") or not _cuda_ok():
            return False
        import torch

        return torch.cuda.is_available()

    def _estimator(self, n, seed):
        raise NotImplementedError

    def embed(self, x, seed):
        import cupy
        import torch

        out = self._estimator(len(x), seed).fit_transform(torch.from_dlpack(x))
        return cupy.from_dlpack(out.detach().contiguous()).astype(cupy.float32)


class TorchdrTSNE(_TorchDR):
    name, method = "torchdr-tsne", "tsne"

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "sqeuclidean", "init": "pca",
                "early_exaggeration_coeff": 12.0, "early_exaggeration_iter": 250, "max_iter": 2000,
                "backend": None, "device": "cuda", "random_state": seed}

    def _estimator(self, n, seed):
        from torchdr import TSNE

        return TSNE(**self.parameters(n, seed))


class TorchdrUMAP(_TorchDR):
    name, method = "torchdr-umap", "umap"

    def parameters(self, n, seed):
        return {"n_components": 2, "n_neighbors": N_NEIGHBORS, "min_dist": MIN_DIST, "metric": "sqeuclidean",
                "init": "pca", "max_iter": 1000, "backend": None, "device": "cuda", "random_state": seed}

    def _estimator(self, n, seed):
        from torchdr import UMAP

        return UMAP(**self.parameters(n, seed))


#: Every embedder, in the order ``auto`` prefers them per method and device.
EMBEDDERS: dict[str, type[Embedder]] = {
    cls.name: cls for cls in (CumlTSNE, CumlUMAP, TorchdrTSNE, TorchdrUMAP, OpenTSNE, SklearnTSNE, UmapLearn)
}
_GPU_ORDER = {"tsne": ("cuml-tsne", "torchdr-tsne"), "umap": ("cuml-umap", "torchdr-umap")}
_CPU_ORDER = {"tsne": ("opentsne", "sklearn-tsne"), "umap": ("umap-learn",)}


def choose_embedder(method: str, backend: str = "auto", prefer: str | None = None) -> type[Embedder]:
    """The embedder class for ``method`` under ``backend`` (auto, cpu, gpu).

    ``prefer`` names an embedder to use if it is available (``sklearn-tsne``, say).
    ``gpu`` without a GPU embedder for the method is an error naming what to install.
    """
    if method not in METHODS:
        raise SettingsError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")
    if prefer is not None:
        if prefer not in EMBEDDERS or EMBEDDERS[prefer].method != method:
            names = [n for n, c in EMBEDDERS.items() if c.method == method]
            raise SettingsError(f"unknown {method} embedder {prefer!r}: choose from {', '.join(names)}")
        if not EMBEDDERS[prefer].available():
            raise SettingsError(f"embedder {prefer!r} is not usable here (its library or device is missing)")
        return EMBEDDERS[prefer]
    order = []
    if backend in ("auto", "gpu"):
        order += _GPU_ORDER[method]
    if backend in ("auto", "cpu"):
        order += _CPU_ORDER[method]
    for name in order:
        if EMBEDDERS[name].available():
            return EMBEDDERS[name]
    if backend == "gpu":
        raise SettingsError(
            f"backend 'gpu' has no {method} embedder here: install cuML (environment.yml, or the 'gpu' extra) "
            "or TorchDR with a CUDA build of PyTorch, or use --backend auto"
        )
    raise SettingsError(f"no {method} embedder is installed: pip install openTSNE umap-learn")
