"""Train a network, keep its exact initial state, save both under the run folder.

A :class:`Recipe` says how: SGD with momentum on cross-entropy, shuffled mini-batches,
a learning rate, a number of epochs; below ``min_accuracy`` on the source's held-out
examples the network is re-initialised (a new initial state, hence a new untrained
copy) and trained again, at most ``max_attempts`` times. Everything is seeded: attempt
0 uses the run's seed itself, attempt k the seed ``seed + 1_000_003 * k``. A model given
with a checkpoint is not trained: the checkpoint is the trained network and a fresh
seeded initialisation the untrained one.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .errors import DataError, SettingsError, TrainingError
from .model import ModelSpec, build, describe, load_state, logits, to_float
from .progress import progress_bar
from .sources import Source

log = logging.getLogger(__name__)

_ATTEMPT_STRIDE = 1_000_003


@dataclass(frozen=True)
class Recipe:
    """How a network is trained (when no checkpoint is given).

    Examples
    --------
    >>> Recipe(epochs=2, learning_rate=0.05).batch_size
    64
    """

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.01
    momentum: float = 0.9
    #: Test accuracy below which training is repeated with a new initial state (0: never).
    min_accuracy: float = 0.0
    max_attempts: int = 1

    def __post_init__(self) -> None:
        def whole(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"{name} must be a whole number >= {low}; got {value!r}")

        def number(name, low, high):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise SettingsError(f"{name} must be a number from {low} to {high}; got {value!r}")

        whole("epochs", 0)
        whole("batch_size", 1)
        whole("max_attempts", 1)
        number("learning_rate", 0, float("inf"))
        number("momentum", 0, 1)
        number("min_accuracy", 0, 1)


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of training attempt ``attempt`` (0-based) of a run seeded with ``seed``."""
    return seed + _ATTEMPT_STRIDE * attempt


@dataclass(frozen=True)
class Checkpoints:
    """The saved pair of networks of one (dataset, seed)."""

    trained: Path
    untrained: Path
    accuracy: float | None
    attempt: int
    sha256: str  # of the trained file, then the untrained one: identifies the pair
    reused: bool


def checkpoint_dir(run_dir: str | os.PathLike, dataset: str, seed: int) -> Path:
    return Path(run_dir) / "checkpoints" / dataset / f"seed{seed}"


def _batches(source: Source, split, spec: ModelSpec, device: str, rows: np.ndarray | slice):
    return spec.transform(to_float(torch.from_numpy(np.array(split.examples[rows])).to(device), source.scale))


@torch.inference_mode()
def accuracy(model: torch.nn.Module, spec: ModelSpec, source: Source, device: str, batch: int = 2_000) -> float | None:
    """Share of the source's held-out examples whose arg-max output equals their label
    (None without held-out examples)."""
    split = source.test
    if split is None or len(split) == 0:
        return None
    model.eval()
    correct = 0
    for start in range(0, len(split), batch):
        x = _batches(source, split, spec, device, slice(start, start + batch))
        y = torch.from_numpy(np.array(source.targets(split.labels[start:start + batch]))).to(device)
        correct += int((logits(model(x)).argmax(1) == y).sum())
    return correct / len(split)


def train_attempt(
    spec: ModelSpec, source: Source, recipe: Recipe, seed: int, device: str, n_train: int
) -> tuple[dict, dict, float | None]:
    """One attempt: returns (initial state, trained state, test accuracy)."""
    model = build(spec, seed)
    initial = copy.deepcopy(model.state_dict())
    model.to(device)
    images = torch.from_numpy(np.array(source.train.examples[:n_train])).to(device)
    labels = torch.from_numpy(np.array(source.targets(source.train.labels[:n_train]))).to(device=device,
                                                                                            dtype=torch.long)
    optimiser = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=recipe.momentum)
    shuffle = torch.Generator().manual_seed(seed)
    steps = -(-n_train // recipe.batch_size)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        with progress_bar(total=steps, desc=f"train {source.name} epoch {epoch + 1}/{recipe.epochs}",
                          unit="batch", leave=False) as bar:
            for start in range(0, n_train, recipe.batch_size):
                idx = order[start:start + recipe.batch_size]
                x = spec.transform(to_float(images[idx], source.scale))
                loss = F.cross_entropy(logits(model(x)), labels[idx])
                if not math.isfinite(loss.item()):  # diverged: nothing after this step means anything
                    raise TrainingError(
                        f"{source.name}: the training loss became {loss.item()} at epoch {epoch + 1} of "
                        f"{recipe.epochs}, batch {start // recipe.batch_size + 1} of {steps} (learning rate "
                        f"{recipe.learning_rate:g}, seed {seed}): training diverged; lower learning_rate, or check "
                        "that the inputs are in a usual range (the data's scale, the transform)")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                bar.update()
                if bar.n % 50 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
    acc = accuracy(model, spec, source, device)
    trained = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return initial, trained, acc


def train(
    spec: ModelSpec,
    source: Source,
    recipe: Recipe,
    seed: int,
    device: str = "cpu",
    n_train: int | None = None,
) -> tuple[dict, dict, float | None, int]:
    """Train until the recipe's threshold is met: (untrained, trained, accuracy, attempt).

    ``n_train`` limits training to the first examples (the study uses all 60 000).
    Raises TrainingError after ``recipe.max_attempts`` attempts below the threshold.
    """
    n_train = len(source.train) if n_train is None else int(n_train)
    results = []
    for attempt in range(recipe.max_attempts):
        s = attempt_seed(seed, attempt)
        log.info("%s: training attempt %d/%d, seed %d, lr %g, %d epochs, %d examples, device %s",
                 source.name, attempt + 1, recipe.max_attempts, s, recipe.learning_rate,
                 recipe.epochs, n_train, device)
        initial, trained, acc = train_attempt(spec, source, recipe, s, device, n_train)
        if acc is None:
            log.info("%s: no held-out examples; accuracy not measured", source.name)
            return initial, trained, acc, attempt
        log.info("%s: test accuracy %.4f (threshold %.2f)", source.name, acc, recipe.min_accuracy)
        if acc >= recipe.min_accuracy:
            return initial, trained, acc, attempt
        results.append(acc)
    raise TrainingError(
        f"{source.name}: test accuracy stayed below {recipe.min_accuracy} in {recipe.max_attempts} "
        f"attempts ({', '.join(f'{a:.4f}' for a in results)}) with seed {seed}; "
        "try another --seed or more attempts"
    )


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def state_digest(state: dict, values: bool = True) -> str:
    """sha256 of a state dict's names, shapes, dtypes and (with ``values``) contents: the same
    weights give the same digest however often they are saved."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if values:
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _pair_sha256(paths: tuple[Path, Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def ensure_checkpoints(
    run_dir: str | os.PathLike,
    spec: ModelSpec,
    source: Source,
    recipe: Recipe,
    seed: int,
    device: str = "cpu",
    n_train: int | None = None,
) -> Checkpoints:
    """The (trained, untrained) pair of ``source`` and ``seed``: reused if saved with the same
    settings and data, else trained (or, with ``spec.checkpoint``, loaded) and saved
    (untrained first, trained last, each atomically, so a present trained file means a
    complete pair)."""
    folder = checkpoint_dir(run_dir, source.name, seed)
    paths = (folder / "trained.pt", folder / "untrained.pt")
    given = None if spec.checkpoint is None else load_state(build(spec, seed), spec.checkpoint)
    wanted = {
        "dataset": source.name,
        "model": spec.record()["reference"],
        "architecture": state_digest(build(spec, seed).state_dict(), values=False),
        "transform": describe(spec.transform),
        "scale": source.scale,
        "seed": seed,
        "n_train": len(source.train) if n_train is None else int(n_train),
        "train_sha256": source.sha256,
        "checkpoint": None if given is None else state_digest(given.state_dict()),
        **({} if given is not None else asdict(recipe)),
    }
    if all(p.is_file() for p in paths):
        try:
            meta = torch.load(paths[0], map_location="cpu", weights_only=True)["meta"]
        except Exception as exc:  # unreadable or foreign file: train again
            log.warning("%s is unreadable (%s); training again", paths[0], exc)
            meta = None
        if meta is not None and meta.get("settings") == wanted:
            log.info("%s: reusing checkpoints in %s (test accuracy %s)", source.name, folder, meta["accuracy"])
            return Checkpoints(*paths, meta["accuracy"], meta["attempt"], _pair_sha256(paths), True)
        if meta is not None:
            log.warning("%s: checkpoints in %s were made with other settings; making them again", source.name, folder)
    if given is not None:
        untrained = build(spec, seed).state_dict()
        model = given
        if _same_weights(untrained, model.state_dict()):
            raise SettingsError(f"the model's fresh initialisation equals checkpoint {spec.checkpoint}: the factory "
                                f"{spec.record()['reference']} loads trained weights itself; give a factory that builds "
                                "an untrained network")
        acc = accuracy(model.to(device), spec, source, device)
        trained = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        attempt = 0
        log.info("%s: trained network from %s (test accuracy %s)", source.name, spec.checkpoint, acc)
    else:
        untrained, trained, acc, attempt = train(spec, source, recipe, seed, device, n_train)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"settings": wanted, "accuracy": acc, "attempt": attempt, "attempt_seed": attempt_seed(seed, attempt),
            "torch": str(torch.__version__)}
    paths[0].unlink(missing_ok=True)
    _save({"state_dict": untrained, "meta": {**meta, "network": "untrained"}}, paths[1])
    _save({"state_dict": trained, "meta": {**meta, "network": "trained"}}, paths[0])
    if spec.checkpoint is None:
        shown = "not measured" if acc is None else f"{acc:.4f}"
        print(f"{source.name} (seed {seed}): test accuracy {shown} after attempt {attempt + 1}")
    warn_if_chance(source, acc, "trained here" if given is None else f"from {spec.checkpoint}")
    return Checkpoints(*paths, acc, attempt, _pair_sha256(paths), False)


def warn_if_chance(source: Source, acc: float | None, made: str) -> bool:
    """Warn where the trained network's held-out accuracy is at chance (below 1.5 times
    1 / classes), naming the likely causes; return whether it warned."""
    chance = 1 / max(len(source.classes), 1)
    if acc is None or len(source.classes) < 2 or acc >= 1.5 * chance:
        return False
    log.warning("%s: the trained network (%s) classifies %.1f %% of the held-out examples right, about chance "
                "(%.1f %% for %d classes): its results will look like an untrained network's; likely causes: training "
                "that diverged or collapsed (learning_rate), inputs on another scale or of another dtype than the "
                "network expects (scale, transform), or a checkpoint of another task", source.name, made, 100 * acc,
                100 * chance, len(source.classes))
    return True


def load_network(spec: ModelSpec, path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """A saved network of ``spec``'s architecture, in eval mode on ``device``.

    Parameters
    ----------
    spec : ModelSpec
        The model whose architecture the file holds.
    path : str or os.PathLike
        A checkpoint saved by :func:`ensure_checkpoints` (``trained.pt``, ``untrained.pt``).
    device : str
        Where the network goes.

    Returns
    -------
    torch.nn.Module
        The network in eval mode.

    Raises
    ------
    DataError
        Where the file cannot be read (cut short, say) or holds no state dict of the
        architecture; the message names it and says to delete it, so that it is made again.
    """
    model = build(spec, 0)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    except Exception as exc:  # a truncated zip, a foreign pickle, missing keys: all the file's fault
        detail = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]  # torch's first sentence says it
        raise DataError(f"checkpoint {path} is unreadable or damaged ({type(exc).__name__}: {detail}); delete it "
                        "and rerun, and the pair of networks is made again") from None
    return model.to(device).eval()
