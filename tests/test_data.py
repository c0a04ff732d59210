"""Data: conversion from both registry formats on small synthetic packages, the real
fetch (once per session), verification on load and the errors for broken files."""

import gzip
import io
import json
import pickle
import shutil
import tarfile
import zipfile

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
def test_fetch_repairs_a_corrupt_file(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    manifest = D.fetch("mnist", mnist_copy)
    assert manifest["sha256"] == D.OFFICIAL_SHA256["mnist"]
    assert D.load("mnist", mnist_copy).train_images.shape == (60_000, 28, 28)


@pytest.mark.network
def test_files_without_a_record_are_adopted(mnist_copy):
    (mnist_copy / "MNIST" / "raw" / D.MANIFEST).unlink()
    manifest = D.fetch("mnist", mnist_copy, source="existing")
    assert manifest["source"] == "existing files"
    assert manifest["sha256"] == D.OFFICIAL_SHA256["mnist"]


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
