"""Train the study's network, keep its exact initial state, save both under the run folder.

SPEC.md: SGD with momentum 0.9, batch 64, shuffled, the data set's learning rate,
5 epochs; below the data set's accuracy threshold the network is re-initialised (a new
initial state, hence a new untrained copy) and trained again, a bounded number of
times. Everything is seeded: attempt 0 uses the run's seed itself, attempt k the seed
``seed + 1_000_003 * k``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .config import DatasetSpec, TrainSettings, dataset_spec
from .data import Dataset
from .errors import TrainingError
from .model import StudyCNN, to_input

log = logging.getLogger(__name__)

NETWORKS = ("trained", "untrained")
_ATTEMPT_STRIDE = 1_000_003


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of training attempt ``attempt`` (0-based) of a run seeded with ``seed``."""
    return seed + _ATTEMPT_STRIDE * attempt


@dataclass(frozen=True)
class Checkpoints:
    """The saved pair of networks of one (dataset, seed)."""

    trained: Path
    untrained: Path
    accuracy: float
    attempt: int
    sha256: str  # of the trained file, then the untrained one: identifies the pair
    reused: bool


def checkpoint_dir(run_dir: str | os.PathLike, dataset: str, seed: int) -> Path:
    return Path(run_dir) / "checkpoints" / dataset / f"seed{seed}"


@torch.inference_mode()
def accuracy(model: StudyCNN, images: np.ndarray, labels: np.ndarray, device: str, batch: int = 2_000) -> float:
    """Share of ``images`` (uint8, (n, 28, 28)) whose arg-max logit equals ``labels``."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        x = to_input(torch.from_numpy(np.array(images[start:start + batch])).to(device))
        y = torch.from_numpy(np.array(labels[start:start + batch])).to(device)
        correct += int((model(x).logits.argmax(1) == y).sum())
    return correct / len(images)


def train_attempt(
    spec: DatasetSpec, data: Dataset, seed: int, settings: TrainSettings, device: str, n_train: int
) -> tuple[dict, dict, float]:
    """One attempt: returns (initial state, trained state, test accuracy)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = StudyCNN()
    initial = copy.deepcopy(model.state_dict())
    model.to(device)
    images = torch.from_numpy(np.array(data.train_images[:n_train])).to(device)
    labels = torch.from_numpy(np.array(data.train_labels[:n_train])).to(device=device, dtype=torch.long)
    optimiser = torch.optim.SGD(model.parameters(), lr=spec.learning_rate, momentum=settings.momentum)
    shuffle = torch.Generator().manual_seed(seed)
    steps = -(-n_train // settings.batch_size)
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        with tqdm(total=steps, desc=f"train {spec.name} epoch {epoch + 1}/{settings.epochs}",
                  unit="batch", leave=False) as bar:
            for start in range(0, n_train, settings.batch_size):
                idx = order[start:start + settings.batch_size]
                loss = F.cross_entropy(model(to_input(images[idx])).logits, labels[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                bar.update()
                if bar.n % 50 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
    acc = accuracy(model, data.test_images, data.test_labels, device)
    trained = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return initial, trained, acc


def train(
    data: Dataset,
    seed: int,
    settings: TrainSettings = TrainSettings(),
    device: str = "cpu",
    n_train: int | None = None,
) -> tuple[dict, dict, float, int]:
    """Train until the data set's threshold is met: (untrained, trained, accuracy, attempt).

    ``n_train`` limits training to the first examples (the study uses all 60 000).
    Raises TrainingError after ``settings.max_attempts`` attempts below the threshold.
    """
    spec = dataset_spec(data.name)
    n_train = len(data.train_images) if n_train is None else int(n_train)
    results = []
    for attempt in range(settings.max_attempts):
        s = attempt_seed(seed, attempt)
        log.info("%s: training attempt %d/%d, seed %d, lr %g, %d epochs, %d examples, device %s",
                 spec.name, attempt + 1, settings.max_attempts, s, spec.learning_rate,
                 settings.epochs, n_train, device)
        initial, trained, acc = train_attempt(spec, data, s, settings, device, n_train)
        log.info("%s: test accuracy %.4f (threshold %.2f)", spec.name, acc, spec.min_accuracy)
        if acc >= spec.min_accuracy:
            return initial, trained, acc, attempt
        results.append(acc)
    raise TrainingError(
        f"{spec.name}: test accuracy stayed below {spec.min_accuracy} in {settings.max_attempts} "
        f"attempts ({', '.join(f'{a:.4f}' for a in results)}) with seed {seed}; "
        "try another --seed or more attempts"
    )


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _pair_sha256(paths: tuple[Path, Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def ensure_checkpoints(
    run_dir: str | os.PathLike,
    data: Dataset,
    seed: int,
    settings: TrainSettings = TrainSettings(),
    device: str = "cpu",
    n_train: int | None = None,
) -> Checkpoints:
    """The (trained, untrained) pair of ``data`` and ``seed``: reused if saved with the same
    settings and data, else trained and saved (untrained first, trained last, each atomically,
    so a present trained file means a complete pair)."""
    spec = dataset_spec(data.name)
    folder = checkpoint_dir(run_dir, spec.name, seed)
    paths = (folder / "trained.pt", folder / "untrained.pt")
    wanted = {
        "dataset": spec.name,
        "seed": seed,
        "learning_rate": spec.learning_rate,
        "min_accuracy": spec.min_accuracy,
        "n_train": len(data.train_images) if n_train is None else int(n_train),
        "train_sha256": [data.sha256.get("train-images-idx3-ubyte"), data.sha256.get("train-labels-idx1-ubyte")],
        **asdict(settings),
    }
    if all(p.is_file() for p in paths):
        try:
            meta = torch.load(paths[0], map_location="cpu", weights_only=True)["meta"]
        except Exception as exc:  # unreadable or foreign file: train again
            log.warning("%s is unreadable (%s); training again", paths[0], exc)
            meta = None
        if meta is not None and meta.get("settings") == wanted:
            log.info("%s: reusing checkpoints in %s (test accuracy %.4f)", spec.name, folder, meta["accuracy"])
            return Checkpoints(*paths, meta["accuracy"], meta["attempt"], _pair_sha256(paths), True)
        if meta is not None:
            log.warning("%s: checkpoints in %s were made with other settings; training again", spec.name, folder)
    untrained, trained, acc, attempt = train(data, seed, settings, device, n_train)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"settings": wanted, "accuracy": acc, "attempt": attempt, "attempt_seed": attempt_seed(seed, attempt),
            "torch": str(torch.__version__)}
    paths[0].unlink(missing_ok=True)
    _save({"state_dict": untrained, "meta": {**meta, "network": "untrained"}}, paths[1])
    _save({"state_dict": trained, "meta": {**meta, "network": "trained"}}, paths[0])
    print(f"{spec.name} (seed {seed}): test accuracy {acc:.4f} after attempt {attempt + 1}")
    return Checkpoints(*paths, acc, attempt, _pair_sha256(paths), False)


def load_network(path: str | os.PathLike, device: str = "cpu") -> StudyCNN:
    """A saved network, in eval mode on ``device``."""
    model = StudyCNN()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return model.to(device).eval()
