"""A damaged store never yields a number: missing chunks, altered bytes, swapped chunks,
valid chunks in the wrong place or array, edited metadata (cached values, fingerprints),
arrays of an earlier format; verification, repair by rerun, one writer per folder, and
a store that xarray opens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import repscope
from repscope.engine.errors import EngineError
from repscope.engine.lock import holder, run_lock
from repscope.engine.verify import verify_run
from repscope.store import DamagedArrayError, RunStore, embedding_key, labels_key, layer_key
from repscope.store.runstore import FORMAT, _digest

CLI = [sys.executable, "-m", "repscope"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _chunk(store_path: Path, key: str, index: str = "0/0") -> Path:
    return store_path / key / "c" / index


def _flip(path: Path, at: int = -12) -> None:
    data = bytearray(path.read_bytes())
    at %= len(data)
    data[at:at + 4] = bytes(b ^ 0xFF for b in data[at:at + 4])
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------ the store alone


@pytest.fixture()
def store(tmp_path) -> RunStore:
    s = RunStore(tmp_path / "s.zarr")
    rng = np.random.default_rng(0)
    s.write_whole("d/a", rng.normal(size=(10, 3)).astype(np.float32), {"n": 10}, chunks=(4, 3))
    s.write_whole("d/b", rng.normal(size=(10, 3)).astype(np.float32), {"n": 10}, chunks=(4, 3))
    s.write_whole("d/zeros", np.zeros((10, 2, 2), np.float32), {"n": 10})
    return s


def test_a_sound_store_verifies_and_reads(store):
    assert [store.verify(k).problem for k in store.keys()] == [None, None, None]
    assert store.read("d/zeros").shape == (10, 2, 2)  # chunks of zeros are written, not left out
    assert store.root["d/zeros"].nchunks_initialized == store.root["d/zeros"].nchunks
    assert store.info("d/a")["digest"] and store.info("d/a")["format"] == FORMAT


def test_a_missing_chunk_is_damage_never_zeros(store):
    _chunk(store.path, "d/a", "1/0").unlink()
    with pytest.raises(DamagedArrayError, match=r"d/a is damaged: 1 of 3 chunks are missing.*rerun rebuilds"):
        store.read("d/a")
    assert not store.is_complete("d/a") and store.info("d/a")["damaged"]
    assert store.verify("d/a").problem == "incomplete"  # marked: the stage that writes it rebuilds it
    progress = store.prepare("d/a", (10, 3), "float32", {"n": 10}, chunks=(4, 3))
    assert progress.rows_done == 0 and not progress.complete


def test_altered_bytes_fail_the_checksum_on_read_and_verify(store):
    _flip(_chunk(store.path, "d/b"))
    assert store.is_complete("d/b")  # a chunk is there; its bytes are checked when read
    assert "fail their checksum" in store.verify("d/b").problem
    assert not store.is_complete("d/b")
    _flip(_chunk(store.path, "d/zeros", "0/0/0"), at=-3)  # the checksum itself
    with pytest.raises(DamagedArrayError, match=r"d/zeros is damaged: a chunk fails its checksum"):
        store.read("d/zeros")


def test_a_chunk_swapped_for_another_valid_one_changes_the_digest(store):
    shutil.copy(_chunk(store.path, "d/a"), _chunk(store.path, "d/b"))
    np.testing.assert_array_equal(zarr.open_array(store.path / "d/b")[:4], store.read("d/a")[:4])  # it decodes
    assert "digest" in store.verify("d/b").problem


def _swap(a: Path, b: Path) -> None:
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def test_chunks_swapped_within_an_array_are_refused_before_their_data_is_used(store):
    def trailers() -> list[bytes]:
        return [_chunk(store.path, "d/a", f"{i}/0").read_bytes()[-4:] for i in range(3)]

    before = trailers()
    assert _digest(before) == store.info("d/a")["digest"]
    _swap(_chunk(store.path, "d/a", "0/0"), _chunk(store.path, "d/a", "1/0"))  # each keeps a valid checksum
    zarr.open_array(store.path / "d/a")[:]  # every chunk decodes
    after = trailers()
    assert sorted(after) == sorted(before) and _digest(after) != _digest(before)  # only the order tells
    reader = RunStore(store.path)  # a stage's handle (the writer's trusts what it has just checked)
    with pytest.raises(DamagedArrayError, match=r"d/a is damaged: its chunks do not give the digest.*moved"):
        reader.read("d/a", slice(0, 2))  # a read of one chunk checks the whole array's order
    assert not store.is_complete("d/a") and "moved" in store.info("d/a")["damaged"]
    shutil.copy(_chunk(store.path, "d/b", "1/0"), _chunk(store.path, "d/b", "0/0"))  # one chunk twice
    with pytest.raises(DamagedArrayError, match="d/b is damaged: its chunks do not give the digest"):
        RunStore(store.path).made_from("d/b")  # what a derived array's fingerprint reads first


def test_the_digest_check_reads_only_chunk_trailers_once_per_handle(store, monkeypatch):
    fresh = RunStore(store.path)
    fetched = []
    real = RunStore._fetch

    def spy(self, array, byte_range=None):
        for chunk, data in real(self, array, byte_range):
            fetched.append((chunk, len(data)))
            yield chunk, data

    monkeypatch.setattr(RunStore, "_fetch", spy)
    for _ in range(3):
        fresh.read("d/a", slice(0, 4))
    fresh.made_from("d/a")
    assert [size for _, size in fetched] == [4, 4, 4]  # 3 chunks, their last 4 bytes, once


def test_arrays_of_an_earlier_format_are_rebuilt(store):
    info = store.info("d/a")
    store.root["d/a"].attrs["repscope"] = {k: v for k, v in info.items() if k not in ("format", "digest")}
    assert not store.is_complete("d/a")
    with pytest.raises(KeyError, match="missing or incomplete"):
        store.array("d/a")
    assert store.prepare("d/a", (10, 3), "float32", {"n": 10}, chunks=(4, 3)).rows_done == 0


def test_dimension_names_and_descriptions(store):
    store.write_whole("d/e", np.zeros((10, 2), np.float32), {}, dims=("example", "axis"),
                      attributes={"description": "an embedding"})
    array = store.root["d/e"]
    assert array.metadata.dimension_names == ("example", "axis") and array.attrs["description"] == "an embedding"
    assert store.root["d/zeros"].metadata.dimension_names == ("example", "zeros_axis1", "zeros_axis2")


# ------------------------------------------------------------------ a run: detect, repair, same numbers


def _analyze(out: Path) -> None:
    """A run on scikit-learn's digits: a small network's hidden layer, t-SNE, N = 120 (the
    same weights every time: the network object is the trained network)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    repscope.analyze(net, "digits", layers=["2"], methods=["tsne"], n=120, out=out, workers=0, report=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("integrity") / "run"
    _analyze(out)
    return out


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_verify_names_a_damaged_embedding_and_a_rerun_repairs_it(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    reference = (tiny_run / "metrics.csv").read_bytes()
    key = embedding_key("digits", 42, "untrained", "tsne", "2")
    _chunk(run / "store.zarr", key).unlink()
    proc = subprocess.run([*CLI, "verify", "--out", str(run)], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert key in proc.stderr and "DAMAGED" in proc.stdout and "Traceback" not in proc.stderr
    _analyze(run)
    assert (run / "metrics.csv").read_bytes() == reference
    assert not verify_run(run).damaged and not verify_run(run).incomplete


def test_cached_metrics_of_an_altered_embedding_are_not_used(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    key = embedding_key("digits", 42, "trained", "tsne", "2")
    _flip(_chunk(run / "store.zarr", key))
    (run / "metrics.csv").unlink()
    with pytest.raises(DamagedArrayError, match=f"{key}: 1 chunk"):
        _rerun_evaluate(run)
    assert not (run / "metrics.csv").exists()
    _analyze(run)  # embeds it again: the same bytes, the same numbers
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()


def _rerun_evaluate(run: Path) -> None:
    from repscope.engine import pipeline
    from repscope.engine.api import Run

    settings = Run(run).config["settings"]
    from repscope.engine.evaluate import evaluate

    reps = pipeline.recorded_representations(run, settings["datasets"])
    jobs = pipeline.job_list(settings["datasets"], settings["seeds"], settings["methods"], reps)
    evaluate(run, jobs, ("embedding",), settings["k"], reps)


def test_a_damaged_layer_is_rebuilt_to_the_same_bytes_and_nothing_downstream_reruns(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    key = layer_key("digits", 42, "trained", "2")
    digest = RunStore(run / "store.zarr").info(key)["digest"]
    _flip(_chunk(run / "store.zarr", key))
    with pytest.raises(DamagedArrayError, match=key):
        repscope.Run(run).representation("digits", "2")
    embedded = {p: p.stat().st_mtime_ns for p in (run / "store.zarr").rglob("embeddings/*/*/c/*/*")}
    _analyze(run)
    store = RunStore(run / "store.zarr")
    assert store.info(key)["digest"] == digest and "damaged" not in store.info(key)
    assert {p: p.stat().st_mtime_ns for p in embedded} == embedded  # same digest: embeddings stand
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()


def test_a_missing_layer_chunk_is_found_before_extraction_trusts_it(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    key = layer_key("digits", 42, "untrained", "2")
    _chunk(run / "store.zarr", key).unlink()  # read as fill values, this made a live layer look dead
    _analyze(run)
    assert not verify_run(run).damaged and (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()


def test_xarray_opens_the_store_with_named_dimensions(tiny_run):
    import xarray  # a test dependency: the store must open in it
    tree = xarray.open_datatree(tiny_run / "store.zarr", engine="zarr", consolidated=False)
    digits = tree["digits"]
    assert digits.attrs["classes"] == [str(c) for c in range(10)]
    assert digits["labels"].dims == ("example",) and digits["original"].dims == ("example", "feature")
    np.testing.assert_array_equal(digits["example"].values, np.arange(120))
    layer = tree["digits/seed42/trained"]["2"]
    assert layer.dims == ("example", "2_unit") and "Linear" not in layer.attrs["module_type"]
    assert "ReLU" in layer.attrs["module_type"] and "trained network" in layer.attrs["description"]
    embedding = tree["digits/seed42/untrained/embeddings/tsne"]["2"]
    assert embedding.dims == ("example", "axis") and embedding.shape == (120, 2)


# ------------------------------------------------------------------ one writer per folder


def test_a_second_writer_exits_at_once_naming_the_holder(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    with run_lock(run):
        assert holder(run)["pid"] == os.getpid()
        for command in (["verify"], ["report"], ["explore"]):
            proc = subprocess.run([*CLI, "-q", *command, "--out", str(run)], capture_output=True, text=True, env=ENV,
                                  timeout=120)
            assert proc.returncode == 5, (command, proc.stderr[-2000:])
            assert f"pid {os.getpid()}" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert holder(run) is None and not (run / ".repscope.lock").exists()  # released and removed
    assert json.loads((run / "config.json").read_text())["settings"]["n"] == 120


def test_a_rerun_with_nothing_to_do_keeps_the_stage_timings(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    before = json.loads((run / "config.json").read_text())
    _analyze(run)
    after = json.loads((run / "config.json").read_text())
    for stage in ("train", "extract", "embed"):
        assert after["timings"][stage] == before["timings"][stage], stage
    assert after["extract"]["digits"]["seconds"] == before["extract"]["digits"]["seconds"]
    latest = {r["stage"]: r["work"] for r in after["stage_runs"][-5:]}
    assert latest == {"fetch": False, "train": False, "extract": False, "embed": False, "evaluate": False}
    assert len(after["stage_runs"]) == len(before["stage_runs"]) + 5


# ------------------------------------------------------------------ damaged metadata (zarr.json)


def _cut_short(path: Path, keep: int = 40) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _verify_cli(run: Path, capsys) -> tuple[int, str]:
    from repscope.engine import cli

    capsys.readouterr()
    code = cli.main(["-q", "verify", "--out", str(run)])
    return code, capsys.readouterr().err


def test_a_truncated_embedding_metadata_is_named_by_verify_and_rebuilt(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path / "run")
    key = embedding_key("digits", 42, "trained", "tsne", "2")
    _cut_short(run / "store.zarr" / key / "zarr.json")
    code, err = _verify_cli(run, capsys)
    assert code == 3 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {key}: its zarr.json is cut short or corrupt")
    _analyze(run)  # the embedding is computed again: the same bytes, the same numbers
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert _chunk(run / "store.zarr", key).read_bytes() == _chunk(tiny_run / "store.zarr", key).read_bytes()
    report = verify_run(run)
    assert not report.damaged and not report.incomplete and key in [v.key for v in report.arrays]


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_damaged_group_metadata_is_named_by_verify_and_recreated(tiny_run, tmp_path, capsys, damage):
    run = _copy(tiny_run, tmp_path / "run")
    group = "digits/seed42/trained/embeddings"
    meta = run / "store.zarr" / group / "zarr.json"
    _cut_short(meta) if damage == "truncated" else meta.unlink()
    code, err = _verify_cli(run, capsys)
    problem = "is cut short or corrupt" if damage == "truncated" else "is missing"
    assert code == 3 and "Traceback" not in err and f"error: {group}: its zarr.json {problem}" in err
    assert len(verify_run(run).arrays) == 8  # the arrays below it are still found and checked
    _analyze(run)
    assert meta.read_bytes() == (tiny_run / "store.zarr" / group / "zarr.json").read_bytes()
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert not verify_run(run).damaged


def test_errors_before_any_work_leave_no_run_folder_and_a_run_leaves_no_lock_file(tiny_run, tmp_path):
    from torch import nn

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(64, 10)

        def forward(self, x, mask):
            return self.layer(x.flatten(1)) * mask

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    for model, layers in ((net, ["2", "9"]), (TwoInputs(), ["layer"])):  # a layer typo; a forward of two inputs
        out = tmp_path / "run"
        with pytest.raises(EngineError):
            repscope.analyze(model, "digits", layers=layers, methods=["tsne"], n=120, out=out, workers=0,
                             report=False)
        assert not out.exists()
    assert not (tiny_run / ".repscope.lock").exists()


def test_a_rerun_with_nothing_to_do_writes_nothing_and_says_so(tiny_run, tmp_path):
    import torch
    from torch import nn

    run = _copy(tiny_run, tmp_path / "run")

    def again():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
        repscope.analyze(net, "digits", layers=["2"], methods=["tsne"], n=120, out=run, workers=0, report=True)
        files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()
                 and p.name != "config.json"}
        return files, json.loads((run / "config.json").read_text())["stage_runs"]

    first, _ = again()  # writes the report
    second, stage_runs = again()
    assert second == first
    assert {r["stage"]: r["work"] for r in stage_runs[-6:]} == {stage: False for stage in
                                                                ("fetch", "train", "extract", "embed", "evaluate",
                                                                 "report")}


# ------------------------------------------------------------------ valid chunks in the wrong place


def test_a_layer_chunk_replaced_by_a_valid_one_is_named_and_nothing_is_embedded_from_it(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    store_path = run / "store.zarr"
    layer = layer_key("digits", 42, "trained", "2")
    embedding = embedding_key("digits", 42, "trained", "tsne", "2")
    digest = RunStore(store_path).info(layer)["digest"]
    # the untrained network's chunk: same shape, a valid checksum, other activations
    shutil.copy(_chunk(store_path, layer_key("digits", 42, "untrained", "2")), _chunk(store_path, layer))
    shutil.rmtree(store_path / embedding)
    with pytest.raises(DamagedArrayError, match=f"{layer} is damaged: its chunks do not give the digest") as caught:
        _analyze(run)
    assert caught.value.exit_code == 3  # the command line's code for data errors
    store = RunStore(store_path)
    assert store.info(embedding) is None  # nothing embedded from the wrong bytes
    assert not store.is_complete(layer) and "digest" in store.info(layer)["damaged"]
    _analyze(run)  # rebuilds the layer (the same bytes), then the embedding
    assert RunStore(store_path).info(layer)["digest"] == digest
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert not verify_run(run).damaged


def test_labels_replaced_by_validly_encoded_shuffled_labels_are_named_before_any_score(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    store_path = run / "store.zarr"
    key = labels_key("digits")
    labels = RunStore(store_path).labels("digits")
    shuffled = np.random.default_rng(0).permutation(labels)
    forged = RunStore(tmp_path / "forged.zarr")
    forged.write_whole("l", shuffled, {}, chunks=zarr.open_array(store_path / key).chunks)
    shutil.copy(_chunk(forged.path, "l", "0"), _chunk(store_path, key, "0"))
    np.testing.assert_array_equal(zarr.open_array(store_path / key)[:], shuffled)  # it decodes, checksum and all
    embedding = embedding_key("digits", 42, "trained", "tsne", "original")
    shutil.rmtree(store_path / embedding)  # its job scores it with the labels
    with pytest.raises(DamagedArrayError, match=f"{key} is damaged: its chunks do not give the digest"):
        _analyze(run)
    assert RunStore(store_path).info(embedding) is None
    with pytest.raises(KeyError, match="missing or incomplete"):  # marked: evaluate cannot score with them
        _rerun_evaluate(run)
    _analyze(run)
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert not verify_run(run).damaged


# ------------------------------------------------------------------ values kept in metadata are sealed


def _edit_attributes(path: Path, change) -> None:
    """Change a node's attributes in its zarr.json by hand (as JSON, so the file still reads)."""
    meta = json.loads(path.read_text())
    change(meta["attributes"])
    path.write_text(json.dumps(meta, indent=2))


def _edit_cka(attributes: dict) -> None:
    kept = attributes["cka"]
    matrix = kept.get("value", kept)["matrix"]  # trained/2 against untrained/2: cka_untrained of "2"
    matrix[1][2] = matrix[2][1] = matrix[1][2] + 0.1


_TRAINED_EMBEDDING = embedding_key("digits", 42, "trained", "tsne", "2")
EDITS = {
    "a cached metric": (_TRAINED_EMBEDDING, lambda a: a["repscope"]["metrics"].update(ds=0.9)),
    "a cached measure": (_TRAINED_EMBEDDING, lambda a: a["repscope"]["measures"]["silhouette"].update(value=0.9)),
    "a group's kept CKA": ("digits/seed42", _edit_cka),
    "a layer's fingerprint": (layer_key("digits", 42, "trained", "2"),
                              lambda a: a["repscope"]["fingerprint"].update(n=121)),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_metadata_is_named_by_verify_and_never_used(tiny_run, tmp_path, capsys, edit):
    run = _copy(tiny_run, tmp_path / "run")
    key, change = EDITS[edit]
    _edit_attributes(run / "store.zarr" / key / "zarr.json", change)
    code, err = _verify_cli(run, capsys)
    assert code == 3 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {key}: its metadata was changed after it was written")
    _analyze(run)
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert (run / "cka.csv").read_bytes() == (tiny_run / "cka.csv").read_bytes()
    assert not verify_run(run).damaged


def test_an_edited_cached_metric_is_not_used_by_a_run_without_verify(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    _edit_attributes(run / "store.zarr" / _TRAINED_EMBEDDING / "zarr.json",
                     lambda a: a["repscope"]["metrics"].update(ds=0.9))
    _analyze(run)  # the value is computed again from the (sound) embedding
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert not verify_run(run).damaged
