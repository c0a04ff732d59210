"""The 2-D embedders behind the backend switch, with the settings of the study (docs/study.md).

One small class per library, chosen by name (as openTSNE chooses its kNN index). Each
passes every setting explicitly (library defaults differ and change), records its
library, version, device and parameters, and is seeded. ``embed`` takes a float32
(N, d) array of its device's module (numpy on the CPU, CuPy on a GPU) and returns the
(N, 2) float32 embedding in the same module. TorchDR's embedders run on either device.

openTSNE and umap-learn are the references; the others follow their optimisation as
far as each library allows, and each class says what it cannot match
(``benchmarks/parity.py`` measures the difference).

The study: t-SNE with perplexity 30, Euclidean; UMAP with 15 neighbours, min_dist 0.1,
Euclidean. Known traps handled here:

* cuML ``TSNE``'s default ``learning_rate_method='adaptive'`` replaces the neighbour
  count, learning rate and exaggeration for N > 2 000: it is switched off, and
  ``n_neighbors`` is set to 3 x perplexity as openTSNE does. Its defaults (learning rate
  200, 1 000 iterations, random initialisation, momentum 0.5 while exaggerated) are
  replaced by openTSNE's.
* TorchDR's t-SNE defaults to 2 000 iterations of plain momentum SGD with a learning
  rate floor: it runs openTSNE's gradient descent instead (``tsne_optim``).
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
#: openTSNE's schedule, which the other t-SNE embedders follow: 250 exaggerated
#: iterations, then 500.
TSNE_EXAGGERATION_ITER = 250
TSNE_ITER = 500


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class Embedder:
    """Base class: ``name`` (unique), ``method`` (tsne or umap), ``library``, ``devices``.

    ``devices`` are the devices the library can run on, the preferred first; an
    instance runs on one of them (``device``), chosen by :func:`embedder_device`.
    """

    name = ""
    method = ""
    library = ""
    distribution = ""
    devices: tuple[str, ...] = ("cpu",)

    def __init__(self, threads: int = 1, device: str | None = None) -> None:
        self.threads = threads
        self.device = device or self.devices[0]
        if self.device not in self.devices:
            raise SettingsError(f"embedder {self.name!r} runs on {', '.join(self.devices)}, not {self.device!r}")

    @classmethod
    def available(cls, device: str | None = None) -> bool:
        """Whether the library imports and can run on ``device`` (default: on any of its devices)."""
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
    def available(cls, device=None) -> bool:
        return device in (None, "cpu") and _importable("openTSNE")

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "euclidean", "initialization": "pca",
                "learning_rate": "auto", "early_exaggeration_iter": TSNE_EXAGGERATION_ITER, "early_exaggeration": 12,
                "n_iter": TSNE_ITER, "exaggeration": None, "neighbors": "auto",
                "negative_gradient_method": "auto", "random_state": seed, "n_jobs": self.threads}

    def embed(self, x, seed):
        import openTSNE

        return np.asarray(openTSNE.TSNE(**self.parameters(len(x), seed), verbose=False).fit(x), dtype=np.float32)


class SklearnTSNE(Embedder):
    name, method, library, distribution = "sklearn-tsne", "tsne", "scikit-learn", "scikit-learn"

    @classmethod
    def available(cls, device=None) -> bool:
        return device in (None, "cpu") and _importable("sklearn.manifold")

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
    def available(cls, device=None) -> bool:
        return device in (None, "cpu") and _importable("umap")

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
    def warm_up(n: int = 4_500) -> None:
        """Compile umap-learn's numba functions once in this process, for jobs of up to ``n`` points.

        Up to 4 096 points umap-learn searches neighbours exactly (about 15 s to
        compile); above, it switches to pynndescent, which compiles code of its own
        (about a minute more): the warm-up takes the path of ``n`` points, so that no job
        pays for compilation and a small run does not pay for pynndescent's.
        """
        points = 4_500 if n > 4_096 else 300
        x = np.random.default_rng(0).normal(size=(points, 3)).astype(np.float32)
        UmapLearn().embed(x, 0)


class CumlTSNE(Embedder):
    """cuML's t-SNE (FFT), aligned with openTSNE where cuML's parameters reach.

    Matched: perplexity, 90 neighbours (3 x perplexity), early exaggeration 12 for 250
    iterations, 750 iterations in all, PCA initialisation scaled to a standard deviation
    of 1e-4, momentum 0.8 throughout, gains with a floor of 0.01, no early stop, and
    the learning rate N / 12 while exaggerated (cuML's gradient, like openTSNE's, leaves
    out the factor 4). Not matched: cuML fixes the learning rate after exaggeration to
    twice the first (N / 6, where openTSNE takes N); it neither clips steps nor
    re-centres; its FFT and kNN are its own, and its runs are not bit-for-bit
    repeatable. ``learning_rate_method=None`` keeps cuML's "adaptive" mode from replacing
    the neighbour count, learning rate and exaggeration above 2 000 points.
    """

    name, method, library, distribution, devices = "cuml-tsne", "tsne", "cuML", "cuml", ("cuda",)

    @classmethod
    def available(cls, device=None) -> bool:
        return device in (None, "cuda") and _importable("cuml") and _cuda_ok()

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "euclidean", "method": "fft",
                "n_neighbors": int(3 * PERPLEXITY), "learning_rate": max(n / 12.0, 1.0),
                "learning_rate_method": None, "early_exaggeration": 12.0, "late_exaggeration": 1.0,
                "exaggeration_iter": TSNE_EXAGGERATION_ITER, "max_iter": TSNE_EXAGGERATION_ITER + TSNE_ITER,
                "pre_momentum": 0.8, "post_momentum": 0.8, "min_grad_norm": 0.0, "init": "pca",
                "square_distances": True, "random_state": seed}

    def embed(self, x, seed):
        from cuml.manifold import TSNE

        return TSNE(**self.parameters(len(x), seed), output_type="cupy").fit_transform(x).astype("float32")


def umap_epochs(n: int) -> int:
    """umap-learn's (and cuML's) epochs for ``n`` points: 500 up to 10 000, else 200."""
    return 500 if n <= 10_000 else 200


class CumlUMAP(Embedder):
    """cuML's UMAP with umap-learn's settings spelled out.

    Matched: neighbours, min_dist, spread, learning rate 1 decaying linearly, epochs
    (:func:`umap_epochs`), 5 negative samples per edge, spectral initialisation. The
    kNN graph is cuML's exact brute-force search (``build_algo``), so it does not change
    with N or seed, where umap-learn uses an exact search up to 4 096 points and
    pynndescent above. cuML's epochs run in parallel and are not bit-for-bit repeatable.
    """

    name, method, library, distribution, devices = "cuml-umap", "umap", "cuML", "cuml", ("cuda",)

    @classmethod
    def available(cls, device=None) -> bool:
        return device in (None, "cuda") and _importable("cuml") and _cuda_ok()

    def parameters(self, n, seed):
        return {"n_components": 2, "n_neighbors": N_NEIGHBORS, "min_dist": MIN_DIST, "spread": 1.0,
                "metric": "euclidean", "n_epochs": umap_epochs(n), "learning_rate": 1.0,
                "negative_sample_rate": 5, "repulsion_strength": 1.0, "set_op_mix_ratio": 1.0,
                "local_connectivity": 1.0, "init": "spectral", "build_algo": "brute_force_knn",
                "random_state": seed}

    def embed(self, x, seed):
        from cuml.manifold import UMAP

        return UMAP(**self.parameters(len(x), seed), output_type="cupy").fit_transform(x).astype("float32")


def _torchdr_knn_backend(device: str) -> str | None:
    """TorchDR's backend for the neighbour graph: KeOps on a GPU where it imports, else FAISS, else torch."""
    if device == "cuda" and _importable("pykeops"):
        return "keops"
    if _importable("faiss"):
        return "faiss"
    return None


class _TorchDR(Embedder):
    """TorchDR's estimators, on a GPU or on the CPU (``devices``); numpy in and out on the CPU, CuPy on a GPU."""

    library, distribution, devices = "TorchDR", "torchdr", ("cuda", "cpu")

    @classmethod
    def available(cls, device=None) -> bool:
        if not _importable("torchdr"):
            return False
        if device in (None, "cpu"):
            return True
        import torch

        return device == "cuda" and torch.cuda.is_available() and _cuda_ok()

    def _estimator(self, x, seed):
        raise NotImplementedError

    def embed(self, x, seed):
        import torch

        if self.device == "cuda":
            import cupy

            xt = torch.from_dlpack(x)
        else:
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.threads))
        try:
            out = self._estimator(xt, seed).fit_transform(xt).detach().contiguous()
        finally:
            torch.set_num_threads(threads)
        if self.device == "cuda":
            return cupy.from_dlpack(out).astype(cupy.float32)
        return out.cpu().numpy().astype(np.float32)


class TorchdrTSNE(_TorchDR):
    """TorchDR's t-SNE optimised as openTSNE optimises (:mod:`repscope.engine.tsne_optim`).

    Matched: perplexity with 90 neighbours, Gaussian affinities on squared Euclidean
    distances, PCA initialisation scaled to a standard deviation of 1e-4, exaggeration 12
    for 250 iterations, 750 in all, openTSNE's gradient descent (momentum 0.8, gains,
    steps clipped to 5, re-centring) and learning rate (N / exaggeration), no early stop.
    Not matched: the repulsion is exact (all pairs), where openTSNE interpolates it
    (FFT); with KeOps (on a GPU where ``pykeops`` imports) it never holds the N x N
    matrix, without it the pairwise matrix is held on the device.
    """

    name, method = "torchdr-tsne", "tsne"

    def parameters(self, n, seed):
        return {"n_components": 2, "perplexity": PERPLEXITY, "metric": "sqeuclidean", "init": "pca",
                "init_scaling": 1e-4, "early_exaggeration_coeff": 12.0,
                "early_exaggeration_iter": TSNE_EXAGGERATION_ITER, "max_iter": TSNE_EXAGGERATION_ITER + TSNE_ITER,
                "lr": "auto", "learning_rate_rule": "openTSNE: N / exaggeration",
                "optimizer": "GainsSGD", "optimizer_kwargs": {"momentum": 0.8, "min_gain": 0.01, "max_step_norm": 5.0},
                "min_grad_norm": 0.0, "backend": _torchdr_knn_backend(self.device), "device": self.device,
                "random_state": seed}

    def _estimator(self, x, seed):
        from .tsne_optim import GainsSGD, opentsne_schedule_tsne

        params = self.parameters(len(x), seed)
        del params["learning_rate_rule"]
        params["optimizer"] = GainsSGD
        if params["backend"] != "keops":
            gigabytes = 4 * len(x) ** 2 / 1e9
            log.log(logging.WARNING if gigabytes > 4 else logging.INFO,
                    "torchdr-tsne: exact repulsion over all %d x %d pairs (about %.1f GB per pairwise matrix on %s); "
                    "pykeops computes it without the matrix", len(x), len(x), gigabytes, self.device)
        return opentsne_schedule_tsne(**params)


class TorchdrUMAP(_TorchDR):
    """TorchDR's UMAP with umap-learn's settings where TorchDR has them.

    Matched: neighbours, min_dist and spread (hence a and b), learning rate 1 decaying
    linearly to 0, epochs (:func:`umap_epochs`), negative sample rate 5, no early stop.
    Not matched: TorchDR has no spectral initialisation; it starts from the PCA
    projection scaled to umap-learn's range (largest coordinate 10). TorchDR draws
    5 x 15 negative samples per point and step, umap-learn 5 per sampled edge.
    """

    name, method = "torchdr-umap", "umap"

    def parameters(self, n, seed):
        return {"n_components": 2, "n_neighbors": N_NEIGHBORS, "min_dist": MIN_DIST, "spread": 1.0,
                "metric": "sqeuclidean", "init": "pca", "init_range": 10.0, "lr": 1.0, "scheduler": "LinearLR",
                "max_iter": umap_epochs(n), "negative_sample_rate": 5, "min_grad_norm": 0.0,
                "backend": _torchdr_knn_backend(self.device), "device": self.device, "random_state": seed}

    def _estimator(self, x, seed):
        from torchdr import UMAP

        params = self.parameters(len(x), seed)
        params["init_scaling"] = _pca_scaling(x, params.pop("init_range"))
        return UMAP(**params)


def _pca_scaling(x, largest: float) -> float:
    """TorchDR's ``init_scaling`` (the first component's standard deviation) that puts the
    largest coordinate of the 2-D PCA projection of ``x`` at ``largest``, as umap-learn scales."""
    import torch

    centred = (x - x.mean(dim=0, keepdim=True)).double()
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending: the last is the first component
    projected = centred @ vectors[:, [-1, -2]] if x.shape[1] > 1 else centred
    peak = projected.abs().max()
    if not peak > 0:
        return 1e-4
    return float(largest * projected[:, 0].std() / peak)


#: Every embedder, in the order ``auto`` prefers them per method and device.
EMBEDDERS: dict[str, type[Embedder]] = {
    cls.name: cls for cls in (CumlTSNE, CumlUMAP, TorchdrTSNE, TorchdrUMAP, OpenTSNE, SklearnTSNE, UmapLearn)
}
_GPU_ORDER = {"tsne": ("cuml-tsne", "torchdr-tsne"), "umap": ("cuml-umap", "torchdr-umap")}
_CPU_ORDER = {"tsne": ("opentsne", "sklearn-tsne", "torchdr-tsne"), "umap": ("umap-learn", "torchdr-umap")}


def embedder_device(cls: type[Embedder], backend: str = "auto") -> str:
    """The device ``cls`` runs on under ``backend``: a GPU where allowed and usable, else the CPU.

    Examples
    --------
    >>> embedder_device(EMBEDDERS["opentsne"], "cpu")
    'cpu'
    """
    if backend != "cpu" and "cuda" in cls.devices and cls.available("cuda"):
        return "cuda"
    if backend != "gpu" and "cpu" in cls.devices and cls.available("cpu"):
        return "cpu"
    if backend == "cpu":
        raise SettingsError(f"embedder {cls.name!r} runs only on a GPU; use --backend auto or gpu, or another embedder")
    if backend == "gpu":
        raise SettingsError(f"embedder {cls.name!r} has no usable GPU here (its library, CuPy or CUDA is missing); "
                            "use --backend cpu or auto")
    raise SettingsError(f"embedder {cls.name!r} is not usable here (its library or device is missing)")


def choose_embedder(method: str, backend: str = "auto", prefer: str | None = None) -> type[Embedder]:
    """The embedder class for ``method`` under ``backend`` (auto, cpu, gpu).

    ``prefer`` names an embedder to use if it can run under ``backend`` (``sklearn-tsne``,
    or ``torchdr-tsne`` with ``backend="cpu"``, say). ``gpu`` without a GPU embedder for
    the method is an error naming what to install. :func:`embedder_device` gives the
    device the chosen class runs on.

    Examples
    --------
    >>> choose_embedder("tsne", "cpu").name
    'opentsne'
    """
    if method not in METHODS:
        raise SettingsError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")
    if prefer is not None:
        if prefer not in EMBEDDERS or EMBEDDERS[prefer].method != method:
            names = [n for n, c in EMBEDDERS.items() if c.method == method]
            raise SettingsError(f"unknown {method} embedder {prefer!r}: choose from {', '.join(names)}")
        embedder_device(EMBEDDERS[prefer], backend)  # raises where it cannot run
        return EMBEDDERS[prefer]
    candidates = []
    if backend in ("auto", "gpu"):
        candidates += [(name, "cuda") for name in _GPU_ORDER[method]]
    if backend in ("auto", "cpu"):
        candidates += [(name, "cpu") for name in _CPU_ORDER[method]]
    for name, device in candidates:
        if EMBEDDERS[name].available(device):
            return EMBEDDERS[name]
    if backend == "gpu":
        raise SettingsError(
            f"backend 'gpu' has no {method} embedder here: install cuML (environment.yml, or the 'gpu' extra) "
            "or TorchDR with a CUDA build of PyTorch, or use --backend auto"
        )
    raise SettingsError(f"no {method} embedder is installed: pip install openTSNE umap-learn")
