"""Which implementation serves each part of the work, decided once and logged.

For now the decision covers PyTorch's device (training and extraction); the embedding,
kNN and kernel parts join it as they land.
"""

from __future__ import annotations

import logging

from .errors import SettingsError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cpu", "gpu")


def torch_device(backend: str = "auto") -> str:
    """The torch device for ``backend``: ``cuda`` where asked for or available, else ``cpu``.

    ``gpu`` without a CUDA device is an error rather than a silent fall-back to the CPU.
    """
    if backend not in BACKENDS:
        raise SettingsError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    import torch

    has_cuda = torch.cuda.is_available()
    if backend == "gpu" and not has_cuda:
        raise SettingsError(
            "backend 'gpu' was asked for but PyTorch sees no CUDA device "
            f"(torch {torch.__version__}); use --backend cpu or auto, or install a CUDA build of PyTorch"
        )
    device = "cuda" if has_cuda and backend != "cpu" else "cpu"
    if device == "cuda":
        # Full float32 in convolutions and matrix products: the TF32 tensor-core modes (on by
        # default for cuDNN convolutions on Ampere and later) round inputs to 10 mantissa bits,
        # which moves activations by about 1e-3 against the CPU's.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        detail = f"{torch.cuda.get_device_name(0)}, float32 without TF32"
    else:
        detail = f"{torch.get_num_threads()} threads"
    log.info("torch device: %s (%s; backend %s, torch %s)", device, detail, backend, torch.__version__)
    return device
