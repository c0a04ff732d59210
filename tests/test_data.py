"""Data: conversion from both registry formats on small synthetic packages, the real
fetch (once per session), verification on load against the known builds, damaged
manifests and the errors for broken files."""

import gzip
import io
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from repscope.engine import data as D
from repscope.engine.errors import ChecksumError, DataError, FetchError, MissingDataError


# ----------------------------------------------------------------- synthetic packages


def _fake_wheel(path, parts):
    payload = gzip.compress(pickle.dumps(parts, protocol=2))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", payload)
    return path


def test_mnist_wheel_conversion_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    pixels = [rng.integers(0, 256, size=(n, 784)).astype(np.uint8) for n in (5, 3, 4)]
    labels = [rng.integers(0, 10, size=len(p)).astype(np.int64) for p in pixels]
    parts = tuple((p.astype(np.float32) / np.float32(256), y) for p, y in zip(pixels, labels))
    splits = D.mnist_from_wheel(_fake_wheel(tmp_path / "m.whl", parts))
    train_x, train_y = splits["train"]
    test_x, test_y = splits["test"]
    assert train_x.dtype == np.uint8 and train_x.shape == (8, 28, 28)
    np.testing.assert_array_equal(train_x.reshape(8, -1), np.concatenate(pixels[:2]))
    np.testing.assert_array_equal(train_y, np.concatenate(labels[:2]))
    np.testing.assert_array_equal(test_x.reshape(4, -1), pixels[2])
    np.testing.assert_array_equal(test_y, labels[2])


def test_mnist_wheel_rejects_other_scaling(tmp_path):
    x = np.full((2, 784), 0.3, np.float32)  # not k/256
    parts = ((x, np.zeros(2)), (x, np.zeros(2)), (x, np.zeros(2)))
    with pytest.raises(DataError, match="not uint8/256"):
        D.mnist_from_wheel(_fake_wheel(tmp_path / "m.whl", parts))


def test_mnist_wheel_without_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.whl", "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(DataError, match="no member mnist/data/mnist.pkl.gz"):
        D.mnist_from_wheel(tmp_path / "m.whl")


def _fake_tarball(path, classes):
    with tarfile.open(path, "w:gz") as tf:
        for label, rows in enumerate(classes):
            raw = json.dumps({"data": rows}).encode()
            info = tarfile.TarInfo(f"package/src/clothes/{label}.json")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


def _class_rows(label, count):
    # Row r of class c is filled with a value that identifies it: (c * 20 + r) % 256, never 0.
    return [[(label * 20 + r) % 255 + 1] * 784 for r in range(count)]


def test_fashion_tarball_rebuild(tmp_path):
    per_class = {"test": 2, "train": 3}
    classes = [_class_rows(c, 5) for c in range(4)]
    classes[0].insert(2, [])  # the package's empty rows, inside and at the end
    classes[0].append([])
    splits = D.fashion_from_tarball(_fake_tarball(tmp_path / "f.tgz", classes), per_class=per_class, n_classes=4)
    for split, count in per_class.items():
        x, y = splits[split]
        assert x.shape == (4 * count, 28, 28) and y.shape == (4 * count,)
        assert np.bincount(y).tolist() == [count] * 4
        offset = 0 if split == "test" else 2
        for c in range(4):  # every expected row is there exactly once, under its label
            got = sorted(x[y == c, 0, 0].tolist())
            assert got == sorted((c * 20 + r) % 255 + 1 for r in range(offset, offset + count))
    # the order interleaves classes and is fixed
    again = D.fashion_from_tarball(tmp_path / "f.tgz", per_class=per_class, n_classes=4)
    np.testing.assert_array_equal(again["train"][1], splits["train"][1])
    assert splits["train"][1].tolist() != sorted(splits["train"][1].tolist())


@pytest.mark.parametrize("damage, message", [
    (lambda cls: cls[1].__setitem__(0, [1] * 783), "has 783 values"),
    (lambda cls: cls[2].pop(), "4 non-empty images; expected 5"),
    (lambda cls: cls[3].__setitem__(0, [300] * 784), "outside 0-255"),
])
def test_fashion_tarball_rejects_damage(tmp_path, damage, message):
    classes = [_class_rows(c, 5) for c in range(4)]
    damage(classes)
    with pytest.raises(DataError, match=message):
        D.fashion_from_tarball(_fake_tarball(tmp_path / "f.tgz", classes), per_class={"test": 2, "train": 3}, n_classes=4)


def test_fashion_tarball_missing_class(tmp_path):
    with pytest.raises(DataError, match="no member package/src/clothes/3.json"):
        D.fashion_from_tarball(_fake_tarball(tmp_path / "f.tgz", [_class_rows(c, 5) for c in range(3)]),
                               per_class={"test": 2, "train": 3}, n_classes=4)


def test_registry_package_with_wrong_checksum_is_refused(tmp_path):
    (tmp_path / "p").write_bytes(b"not the package")
    with pytest.raises(FetchError, match="not the pinned"):
        D._check_package(tmp_path / "p", "0" * 64)


# ----------------------------------------------------------------- the real data sets


@pytest.mark.network
def test_real_data_sets(data_root):
    mnist = D.load("mnist", data_root)
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.sha256 == D.REGISTRY_SHA256["mnist"] == D.OFFICIAL_SHA256["mnist"]
    fashion = D.load("fashion-mnist", data_root)
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert "statistically equivalent" in fashion.note
    for ds in (mnist, fashion):
        for images, labels, n in ((ds.train_images, ds.train_labels, 60_000), (ds.test_images, ds.test_labels, 10_000)):
            assert images.shape == (n, 28, 28) and images.dtype == np.uint8
            assert labels.shape == (n,) and labels.dtype == np.uint8
            assert set(np.unique(labels).tolist()) == set(range(10))
            assert (images.reshape(n, -1).max(axis=1) > 0).all(), "no empty images"


@pytest.mark.network
def test_fetch_is_idempotent(data_root, monkeypatch):
    def no_client(*args, **kwargs):
        raise AssertionError("a verified data set must not be fetched again")

    monkeypatch.setattr(D, "_run_client", no_client)
    for name in ("mnist", "fashion-mnist"):
        assert D.fetch(name, data_root)["sha256"] == D.load(name, data_root).sha256


@pytest.fixture()
def mnist_copy(data_root, tmp_path):
    shutil.copytree(data_root / "MNIST", tmp_path / "MNIST")
    return tmp_path


@pytest.mark.network
def test_corrupt_file_names_file_and_fix(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError) as err:
        D.load("mnist", mnist_copy)
    assert str(path) in str(err.value)
    assert f"repscope data fetch --dataset mnist --root {mnist_copy}" in str(err.value)


@pytest.mark.network
def test_truncated_file_names_file_and_fix(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte is corrupt"):
        D.load("mnist", mnist_copy)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated.*data fetch --dataset mnist"):
        D.load("mnist", mnist_copy, verify=False)


@pytest.mark.network
def test_missing_file_names_file_and_fix(mnist_copy):
    (mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    with pytest.raises(MissingDataError, match=r"train-images-idx3-ubyte is missing; run `repscope data fetch"):
        D.load("mnist", mnist_copy)


@pytest.mark.network
def test_fetch_refuses_a_corrupt_file_then_repairs_once_deleted(mnist_copy):
    raw = mnist_copy / "MNIST" / "raw"
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ChecksumError, match=f"{path} is corrupt: sha256 {D.sha256_file(path)}"):
        D.fetch("mnist", mnist_copy)  # auto does not overwrite it unseen
    for name in D.IDX_NAMES:
        (raw / name).unlink()
    manifest = D.fetch("mnist", mnist_copy)
    assert manifest["sha256"] == D.OFFICIAL_SHA256["mnist"]
    assert D.load("mnist", mnist_copy).train_images.shape == (60_000, 28, 28)


@pytest.mark.network
def test_files_without_a_record_are_adopted(mnist_copy):
    (mnist_copy / "MNIST" / "raw" / D.MANIFEST).unlink()
    manifest = D.fetch("mnist", mnist_copy, source="existing")
    assert manifest["source"] == "existing files, identical to the official files"
    assert manifest["sha256"] == D.OFFICIAL_SHA256["mnist"]
    assert D._read_manifest(D.dataset_spec("mnist"), mnist_copy / "MNIST" / "raw") == (manifest, "")


# ----------------------------------------------------------------- known builds, damaged manifests

FASHION = D.dataset_spec("fashion-mnist")


@pytest.fixture()
def fashion_copy(data_root, tmp_path):
    """A private copy of the real FashionMNIST files (the registry build) and manifest."""
    shutil.copytree(data_root / "FashionMNIST", tmp_path / "FashionMNIST")
    return tmp_path


@pytest.fixture(scope="module")
def fashion_shared(data_root, tmp_path_factory):
    """One copy for the tests that replace only the manifest (each writes its own first)."""
    root = tmp_path_factory.mktemp("fashion")
    shutil.copytree(data_root / "FashionMNIST", root / "FashionMNIST")
    return root


@pytest.fixture()
def no_client(monkeypatch):
    """Fail a test that would fetch a registry package."""
    def refuse(*args, **kwargs):
        raise AssertionError("files already there must not be replaced by a fetch")

    monkeypatch.setattr(D, "_run_client", refuse)


def _flip(path, at=1000):
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


JUNK = b"\x00\xff\xfe not json {"
DAMAGES = {
    "flip": _flip,
    "truncate": lambda path: path.write_bytes(path.read_bytes()[:-100]),
    "magic": lambda path: path.write_bytes(b"\x08\x03\x00\x00" + path.read_bytes()[4:]),
}


def test_known_builds():
    assert D.REGISTRY_SHA256["mnist"] == D.OFFICIAL_SHA256["mnist"]
    for name, builds in D.KNOWN_BUILDS.items():
        for build, sums in builds.items():
            assert sorted(sums) == sorted(D.IDX_NAMES)
            assert all(D._SUM.fullmatch(v) for v in sums.values())
            expected = "official" if name == "mnist" else build  # MNIST's two builds are the same bytes
            assert D._match_build(D.dataset_spec(name), Path("raw"), dict(sums)) == expected


def test_mixed_builds_are_refused():
    sums = dict(D.REGISTRY_SHA256["fashion-mnist"], **{"train-labels-idx1-ubyte": D.OFFICIAL_SHA256[
        "fashion-mnist"]["train-labels-idx1-ubyte"]})
    with pytest.raises(ChecksumError, match=r"mixes files of different builds.*train-labels-idx1-ubyte official"):
        D._match_build(FASHION, Path("raw"), sums)


@pytest.mark.parametrize("source", ["existing", "auto"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("manifest", ["junk", "records the damage"])
def test_damaged_file_is_refused_whatever_the_manifest(fashion_copy, no_client, source, damage, manifest):
    raw = fashion_copy / "FashionMNIST" / "raw"
    path = raw / "train-images-idx3-ubyte"
    DAMAGES[damage](path)
    digest = D.sha256_file(path)
    if manifest == "junk":
        (raw / D.MANIFEST).write_bytes(JUNK)
    else:  # a manifest that records the damaged file's sum is no excuse
        record = json.loads((raw / D.MANIFEST).read_text())
        record["sha256"][path.name] = digest
        (raw / D.MANIFEST).write_text(json.dumps(record))
    before = (raw / D.MANIFEST).read_bytes()
    fix = f"delete the IDX files in {raw} and run `repscope data fetch --dataset fashion-mnist --root {fashion_copy}`"
    for call in (lambda: D.fetch("fashion-mnist", fashion_copy, source=source), lambda: D.load("fashion-mnist", fashion_copy)):
        with pytest.raises(ChecksumError) as err:
            call()
        message = str(err.value)
        assert message == f"{path} is corrupt: sha256 {digest} matches no known build of fashion-mnist " \
                          f"(official, registry); {fix}"
    assert (raw / D.MANIFEST).read_bytes() == before, "no manifest is written for files that are refused"


def _manifest_variants():
    good = {"dataset": "fashion-mnist", "source": "x", "note": "", "sha256": dict(D.REGISTRY_SHA256["fashion-mnist"])}

    def edit(change):
        record = json.loads(json.dumps(good))
        change(record)
        return json.dumps(record).encode()

    first = "train-images-idx3-ubyte"
    return {
        "junk bytes": JUNK,
        "empty": b"",
        "list": b"[]",
        "null": b"null",
        "empty object": b"{}",
        "null sums": b'{"sha256": null}',
        "deep nesting": b"[" * 100_000,
        "sum not hex": edit(lambda r: r["sha256"].__setitem__(first, "z" * 64)),
        "sum too short": edit(lambda r: r["sha256"].__setitem__(first, "ab" * 10)),
        "sum not a string": edit(lambda r: r["sha256"].__setitem__(first, 12)),
        "missing name": edit(lambda r: r["sha256"].pop(first)),
        "extra name": edit(lambda r: r["sha256"].__setitem__("extra-idx1-ubyte", "0" * 64)),
        "other data set": edit(lambda r: r.__setitem__("dataset", "mnist")),
        "other sums": edit(lambda r: r["sha256"].__setitem__(first, "0" * 64)),
    }


MANIFEST_VARIANTS = _manifest_variants()


@pytest.mark.parametrize("entry", ["fetch existing", "fetch auto", "load"])
@pytest.mark.parametrize("variant", sorted(MANIFEST_VARIANTS))
def test_damaged_manifest_is_rebuilt_from_verified_files(fashion_shared, no_client, caplog, variant, entry):
    raw = fashion_shared / "FashionMNIST" / "raw"
    (raw / D.MANIFEST).write_bytes(MANIFEST_VARIANTS[variant])
    with caplog.at_level(logging.WARNING, logger="repscope.engine.data"):
        if entry == "load":
            assert D.load("fashion-mnist", fashion_shared).train_images.shape == (60_000, 28, 28)
        else:
            D.fetch("fashion-mnist", fashion_shared, source=entry.split()[1])
    assert any(str(raw / D.MANIFEST) in r.getMessage() and "rebuilt" in r.getMessage() for r in caplog.records)
    record = json.loads((raw / D.MANIFEST).read_text())
    assert record == {
        "dataset": "fashion-mnist",
        "source": "existing files, identical to the registry conversion",
        "note": D.FASHION_SPLIT_NOTE,
        "sha256": D.REGISTRY_SHA256["fashion-mnist"],
    }
    assert not list(raw.glob("*.partial"))
    caplog.clear()
    D.load("fashion-mnist", fashion_shared)  # the new record is used as it is
    assert not caplog.records


def test_damaged_manifest_with_damaged_file_is_refused(fashion_copy, no_client):
    raw = fashion_copy / "FashionMNIST" / "raw"
    (raw / D.MANIFEST).write_bytes(b'{"sha256": null}')
    _flip(raw / "t10k-labels-idx1-ubyte", at=5000)
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte is corrupt"):
        D.fetch("fashion-mnist", fashion_copy, source="existing")
    assert (raw / D.MANIFEST).read_bytes() == b'{"sha256": null}'


@pytest.mark.parametrize("call", ["fetch existing", "fetch auto", "fetch registry", "load"])
def test_directory_in_place_of_an_idx_file(tmp_path, no_client, call):
    raw = tmp_path / "FashionMNIST" / "raw"
    (raw / "train-images-idx3-ubyte").mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\0")
    with pytest.raises(DataError) as err:
        if call == "load":
            D.load("fashion-mnist", tmp_path)
        else:
            D.fetch("fashion-mnist", tmp_path, source=call.split()[1])
    assert str(err.value) == (f"{raw / 'train-images-idx3-ubyte'} is a directory, not an IDX file; remove it and run "
                              f"`repscope data fetch --dataset fashion-mnist --root {tmp_path}`")
    assert sorted(p.name for p in raw.iterdir()) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]


@pytest.mark.parametrize("damage, message", [
    ("truncate", "is truncated"),
    ("magic", "is not an IDX file"),
])
def test_unverified_load_names_a_broken_file(fashion_copy, damage, message):
    path = fashion_copy / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    DAMAGES[damage](path)
    with pytest.raises(DataError, match=f"{path} {message}.*data fetch --dataset fashion-mnist"):
        D.load("fashion-mnist", fashion_copy, verify=False)


def test_cli_refuses_a_damaged_file_in_one_line(fashion_copy):
    raw = fashion_copy / "FashionMNIST" / "raw"
    (raw / D.MANIFEST).write_bytes(JUNK)
    _flip(raw / "train-images-idx3-ubyte")
    proc = subprocess.run(
        [sys.executable, "-m", "repscope", "-q", "data", "fetch", "--dataset", "fashion-mnist",
         "--root", str(fashion_copy), "--source", "existing"],
        capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {raw / 'train-images-idx3-ubyte'} is corrupt: sha256 ")
    assert "repscope data fetch --dataset fashion-mnist" in lines[0]


def test_never_fetched(tmp_path):
    with pytest.raises(MissingDataError, match=r"has not been fetched.*repscope data fetch --dataset fashion-mnist"):
        D.load("fashion-mnist", tmp_path)


def test_fetch_with_no_usable_source(tmp_path):
    with pytest.raises(FetchError, match="could not fetch mnist"):
        D.fetch("mnist", tmp_path, source="existing")


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        D.load("cifar")
    with pytest.raises(FetchError, match="unknown source"):
        D.fetch("mnist", source="ftp")


def test_data_root_from_environment(monkeypatch, tmp_path):
    from repscope.engine.config import default_data_root

    monkeypatch.setenv("ENGINE_DATA_DIR", str(tmp_path))
    assert default_data_root() == tmp_path
    assert D.raw_dir(D.dataset_spec("fashion-mnist")) == tmp_path / "FashionMNIST" / "raw"
    monkeypatch.delenv("ENGINE_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_root() == tmp_path / "cache" / "repscope" / "data"
