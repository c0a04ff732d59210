import json

import numpy as np
import pytest

from repscope.engine.presets.study import REPRESENTATIONS
from repscope.store import CHUNK_ROWS, RunStore, build_representations, chunks_for, find, flag_group

from .conftest import write_complete


def test_the_study_has_22_representations_and_two_beyond():
    names = [r.name for r in REPRESENTATIONS]
    assert sum(r.in_study for r in REPRESENTATIONS) == 22
    assert names[:2] == ["original", "layer1/filter01"] and names[20] == "layer2/filter16"
    assert names[21:] == ["layer3", "layer1/all", "layer2/all"]
    assert [r.dims for r in REPRESENTATIONS if r.channel == 0] == [144, 25]
    assert find(REPRESENTATIONS, "layer2/all").dims == 400 and find(REPRESENTATIONS, "layer1/all").dims == 576
    assert find(REPRESENTATIONS, "layer3").depth == 3 and find(REPRESENTATIONS, "original").dims == 784
    with pytest.raises(KeyError, match="unknown representation 'layer4'"):
        find(REPRESENTATIONS, "layer4")


def test_representations_of_any_layers():
    reps = build_representations(3 * 32 * 32, [("features.0", "channels", (64, 16, 16), 3),
                                               ("features.3", "channels", (8, 100), None),
                                               ("fc", "whole", (10,), None), ("vec", "channels", (5,), None)])
    names = [r.name for r in reps]
    assert names == ["original", "features.0/filter01", "features.0/filter02", "features.0/filter03",
                     *[f"features.3/filter{c:02d}" for c in range(1, 9)], "fc", "vec", "features.0/all", "features.3/all"]
    assert find(reps, "features.0/all").dims == 64 * 256 and find(reps, "features.3/filter02").dims == 100
    assert find(reps, "features.3/filter2").name == "features.3/filter02"  # as people type it: padding aside
    assert [r.depth for r in reps if r.channel is None] == [0, 3, 4, 1, 2]
    assert find(reps, "vec").channel is None  # a flat activation has no channel axis to split
    assert all(type(r).from_record(r.record()) == r for r in reps)
    with pytest.raises(ValueError, match="split 'rows'"):
        build_representations(4, [("x", "rows", (2,), None)])


def test_chunks_hold_one_filter():
    assert chunks_for((60_000, 4, 12, 12)) == (CHUNK_ROWS, 1, 12, 12)
    assert chunks_for((60_000, 8, 100)) == (CHUNK_ROWS, 1, 100)
    assert chunks_for((60_000, 64)) == (CHUNK_ROWS, 64)
    assert chunks_for((5, 16, 5, 5)) == (5, 1, 5, 5)
    assert chunks_for((0,)) == (1,)


def _attrs(store, key):
    return json.loads((store.path / key / "zarr.json").read_text())["attributes"]["repscope"]


def test_rows_and_completion_are_recorded(tmp_path):
    store = RunStore(tmp_path / "s.zarr")
    p = store.prepare("d/x", (5, 3), "float32", {"n": 5}, chunks=(2, 3))
    assert (p.rows_done, p.complete) == (0, False)
    p.array[0:2] = 1.0
    store.commit_rows(p, 2)
    with pytest.raises(RuntimeError, match="2 of 5 rows"):
        store.mark_complete(p)
    assert _attrs(store, "d/x")["rows_done"] == 2 and not store.is_complete("d/x")
    with pytest.raises(KeyError, match="incomplete"):
        store.array("d/x")
    again = RunStore(tmp_path / "s.zarr").prepare("d/x", (5, 3), "float32", {"n": 5}, chunks=(2, 3))
    assert again.rows_done == 2  # resumed, not rebuilt
    again.array[2:5] = 2.0
    store.commit_rows(again, 5)
    store.mark_complete(again)
    assert store.is_complete("d/x")
    np.testing.assert_array_equal(store.array("d/x")[:, 0], [1, 1, 2, 2, 2])


@pytest.mark.parametrize("change", [
    dict(fingerprint={"n": 6}), dict(shape=(6, 3)), dict(dtype="float64"), dict(chunks=(3, 3)),
])
def test_stale_arrays_are_rebuilt(tmp_path, change):
    store = RunStore(tmp_path / "s.zarr")
    args = dict(shape=(5, 3), dtype="float32", fingerprint={"n": 5}, chunks=(2, 3))
    p = store.prepare("x", **args)
    p.array[:] = 7.0
    store.commit_rows(p, 5)
    store.mark_complete(p)
    q = store.prepare("x", **{**args, **change})
    assert (q.rows_done, q.complete) == (0, False)
    assert not q.array[:].any(), "old chunks are gone"


def test_unreadable_metadata_is_rebuilt(tmp_path):
    store = RunStore(tmp_path / "s.zarr")
    p = store.prepare("g/x", (4,), "uint8", {"n": 4}, chunks=(2,))
    store.commit_rows(p, 2)
    meta = tmp_path / "s.zarr" / "g" / "x" / "zarr.json"
    meta.write_text(meta.read_text()[:40])  # a kill in the middle of a metadata write
    q = RunStore(tmp_path / "s.zarr").prepare("g/x", (4,), "uint8", {"n": 4}, chunks=(2,))
    assert q.rows_done == 0 and not q.complete


def test_read_representation_reads_the_right_filter(tmp_path):
    store = RunStore(tmp_path / "s.zarr")
    rng = np.random.default_rng(0)
    n = 7
    layer1 = rng.random((n, 4, 12, 12), dtype=np.float32)
    images = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    write_complete(store, {"m/seed3/trained/layer1": layer1, "m/original": images,
                           "m/labels": np.arange(n, dtype=np.uint8)})
    store.annotate("m/original", scale=255.0)

    def read(name, **kw):
        return store.read_representation("m", 3, kw.pop("network", "trained"), find(REPRESENTATIONS, name), **kw)

    got = read("layer1/filter03")
    assert got.shape == (n, 144) and got.dtype == np.float32
    np.testing.assert_array_equal(got, layer1[:, 2].reshape(n, 144))
    np.testing.assert_array_equal(read("layer1/all"), layer1.reshape(n, 576))
    np.testing.assert_array_equal(read("original", network="untrained", rows=slice(2, 4)),
                                  images[2:4].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(store.labels("m"), np.arange(n))


def test_a_store_at_an_fsspec_url_works_like_a_path(tmp_path):
    url = f"file://{tmp_path}/nested/run.zarr"  # folders that do not exist yet
    store = RunStore(url)
    progress = store.prepare("mnist/labels", (5,), "uint8", {"n": 5})
    progress.array[:] = np.arange(5, dtype=np.uint8)
    store.commit_rows(progress, 5)
    store.mark_complete(progress)
    again = RunStore(url)
    assert again.is_complete("mnist/labels", {"n": 5})
    np.testing.assert_array_equal(again.labels("mnist"), np.arange(5))
    assert (tmp_path / "nested" / "run.zarr" / "mnist" / "labels" / "zarr.json").is_file()


def test_flags_are_per_group_and_cleared_together(tmp_path):
    store = RunStore(tmp_path / "store.zarr")
    store.ensure_groups(flag_group("timeouts-a"))
    assert not store.has_flag("timeouts-a", "mnist/seed42/trained/tsne/layer3")
    store.set_flag("timeouts-a", "mnist/seed42/trained/tsne/layer3")
    assert RunStore(tmp_path / "store.zarr").has_flag("timeouts-a", "mnist/seed42/trained/tsne/layer3")
    assert not store.has_flag("timeouts-b", "mnist/seed42/trained/tsne/layer3")
    store.clear_flags("timeouts-a")
    assert not store.has_flag("timeouts-a", "mnist/seed42/trained/tsne/layer3")
