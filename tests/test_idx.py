import numpy as np
import pytest

from repscope.engine.errors import DataError, MissingDataError
from repscope.engine.idx import read_idx, write_idx


@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 28, 28), (1, 1, 1)])
@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip(tmp_path, shape, mmap):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
    write_idx(tmp_path / "f", a)
    b = read_idx(tmp_path / "f", mmap=mmap)
    assert b.dtype == np.uint8 and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    assert not (tmp_path / "f.partial").exists()


@pytest.mark.parametrize("start, stop", [(0, 5), (2, 4), (4, 9), (5, 5)])
def test_read_rows_matches_slicing(tmp_path, start, stop):
    from repscope.engine.idx import read_rows

    a = np.random.default_rng(1).integers(0, 256, size=(5, 3, 2), dtype=np.uint8)
    write_idx(tmp_path / "f", a)
    for arr in (read_idx(tmp_path / "f"), read_idx(tmp_path / "f", mmap=False)):
        got = read_rows(arr, start, stop)
        assert got.flags.writeable and got.shape[1:] == (3, 2)
        np.testing.assert_array_equal(got, a[start:stop])


def test_header_is_the_mnist_one(tmp_path):
    write_idx(tmp_path / "labels", np.arange(3, dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2])


def test_truncated_file_names_itself(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.ones((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="inside its header"):
        read_idx(path)


def test_extra_bytes(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.ones(4, np.uint8))
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(DataError, match="1 bytes beyond"):
        read_idx(path)


@pytest.mark.parametrize("head, message", [
    (bytes([1, 0, 8, 1]), "bad magic"),
    (bytes([0, 0, 0x0D, 1]), "type 0x0d"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
])
def test_malformed(tmp_path, head, message):
    path = tmp_path / "x"
    path.write_bytes(head + bytes(8))
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_empty_file(tmp_path):
    (tmp_path / "x").write_bytes(b"")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "x")


def test_missing(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        read_idx(tmp_path / "nope")


def test_write_rejects_other_dtypes(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "x", np.ones(3, np.float32))


def test_directory_is_not_an_idx_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte is a directory, not an IDX file"):
        read_idx(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="train-images-idx3-ubyte is a directory, not an IDX file; remove it"):
        write_idx(tmp_path / "train-images-idx3-ubyte", np.ones(3, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["train-images-idx3-ubyte"], "no .partial file is left"


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from repscope.engine import idx

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(idx.os, "replace", broken_replace)
    with pytest.raises(DataError, match=r"x could not be written \(No space left on device\)"):
        write_idx(tmp_path / "x", np.ones(3, np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_negative_looking_size_reads_as_truncated(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 8, 1, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]))  # size 2**32 - 1, not -1
    with pytest.raises(DataError, match=r"x is truncated: 10 bytes where its header \(4294967295,\) needs"):
        read_idx(path)
