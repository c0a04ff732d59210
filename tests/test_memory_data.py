"""Data straight from memory: ``repscope.analyze`` on (x, y), a mapping of arrays, a torch
Dataset and a DataLoader gives the numbers a file would; a rerun with other data is refused;
the command line says that such a run resumes only from Python; bad input is one line and
leaves no run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import repscope
from repscope.engine.errors import EXIT_DATA, DataError, MissingDataError, SettingsError
from repscope.engine.sources import (
    CONTENT_KEY,
    SOURCE_KINDS,
    from_memory,
    is_in_memory,
    memory_spec,
    open_source,
    source_name,
)

ROOT = Path(__file__).resolve().parents[1]
N = 200
FAST = dict(layers=["2"], methods=["tsne"], n=N, seeds=[0], workers=0, report=False, progress=False)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


@pytest.fixture(scope="module")
def net() -> nn.Module:
    """One network object for the whole module: the same weights in every run (made under a
    seed other than the runs', whose untrained twin is a re-initialisation under theirs)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def reference(digits, net, tmp_path_factory) -> Path:
    """A run on the digits given as (x, y) numpy arrays."""
    out = tmp_path_factory.mktemp("memory") / "run"
    repscope.analyze(net, digits, out=out, **FAST)
    return out


def _numbers(rows: list[dict]) -> dict[tuple, list]:
    """Each metrics row's numbers, by what the row describes (the data set's name left out)."""
    keys = ("seed", "network", "method", "space", "representation")
    return {tuple(row[k] for k in keys): [v for k, v in row.items() if isinstance(v, float)] for row in rows}


def _assert_same_numbers(rows: list[dict], expected: list[dict]) -> None:
    got, want = _numbers(rows), _numbers(expected)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=0, equal_nan=True, err_msg=str(key))


def _stage_work(out: Path) -> dict[str, bool]:
    """Whether the latest run of each stage did work."""
    runs = json.loads((out / "config.json").read_text())["stage_runs"]
    return {r["stage"]: r["work"] for r in runs}


# ------------------------------------------------------------------ the forms give the same numbers


def test_arrays_from_memory_are_a_data_set_named_memory(reference, digits):
    run = repscope.Run(reference)
    assert {row["dataset"] for row in run.metrics} == {"memory"}
    assert {row["n"] for row in run.metrics} == {N}
    np.testing.assert_array_equal(run.labels("memory"), digits[1][:N])
    config = json.loads((reference / "config.json").read_text())
    spec = config["settings"]["sources"][0]
    assert spec["source"] == "memory" and spec["name"] == "memory" and len(spec["sha256"]) == 64
    assert config["data"]["memory"]["sha256"][CONTENT_KEY] == spec["sha256"]
    assert config["data"]["memory"]["size"] == len(digits[0])


@pytest.mark.parametrize("form", ["tensors", "mapping", "TensorDataset", "Dataset", "DataLoader"])
def test_every_form_gives_the_same_metrics(form, reference, digits, net, tmp_path):
    x, y = digits
    tx, ty = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    data = {
        "tensors": (tx, ty),
        # a held-out split changes nothing the default measures score
        "mapping": {"x": x, "y": y, "x_test": x[:50], "y_test": y[:50]},
        "TensorDataset": TensorDataset(tx, ty),
        "Dataset": _Pairs(x, y),
        "DataLoader": DataLoader(TensorDataset(tx, ty), batch_size=50, shuffle=False),
    }[form]
    run = repscope.analyze(net, data, out=tmp_path / "run", **FAST)
    _assert_same_numbers(run.metrics, repscope.Run(reference).metrics)
    digests = [json.loads((folder / "config.json").read_text())["settings"]["sources"][0]["sha256"]
               for folder in (tmp_path / "run", reference)]
    assert (digests[0] == digests[1]) == (form != "mapping"), "the same content (the mapping's adds a test split)"


class _Pairs(Dataset):
    """A map-style data set of (example, label) pairs, as users write them."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.x[i]).float(), int(self.y[i])


def test_named_sets_from_memory_beside_a_spec(digits, net, tmp_path):
    x, y = digits
    run = repscope.analyze(net, [{"x": x[:300], "y": y[:300], "name": "first"}, "digits",
                                 {"x": x[300:600], "y": y[300:600], "name": "second"}],
                           out=tmp_path / "run", **FAST)
    assert {row["dataset"] for row in run.metrics} == {"first", "digits", "second"}
    np.testing.assert_array_equal(run.labels("second"), y[300:300 + N])


def test_n_defaults_to_the_size_of_the_data_in_memory(digits, net, tmp_path):
    x, y = digits
    run = repscope.analyze(net, (x[:150], y[:150]), out=tmp_path / "run", **{**FAST, "n": None})
    assert {row["n"] for row in run.metrics} == {150}


# ------------------------------------------------------------------ reruns


def test_a_rerun_with_the_same_data_does_no_work_and_other_data_is_refused(digits, net, tmp_path):
    x, y = digits
    out = tmp_path / "run"
    first = repscope.analyze(net, (x, y), out=out, **FAST).metrics
    again = repscope.analyze(net, (x.astype(np.float32), torch.tensor(y)), out=out, **FAST)
    assert not any(_stage_work(out).values()), _stage_work(out)
    _assert_same_numbers(again.metrics, first)

    permuted = np.random.default_rng(0).permutation(y)
    with pytest.raises(SettingsError) as info:
        repscope.analyze(net, (x, permuted), out=out, **FAST)
    assert "holds a run made with other settings (sources:" in str(info.value)
    assert "reconfigure=True" in str(info.value) and "\n" not in str(info.value)
    np.testing.assert_array_equal(repscope.Run(out).labels("memory"), y[:N])  # nothing was changed

    rebuilt = repscope.analyze(net, (x, permuted), out=out, reconfigure=True, **FAST)
    np.testing.assert_array_equal(rebuilt.labels("memory"), permuted[:N])


def test_the_command_line_says_a_run_from_memory_resumes_from_python(reference, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "repscope", "-q", "run", "--out", str(reference)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == EXIT_DATA == MissingDataError.exit_code, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert ("data set 'memory' was given from memory (arrays in Python); the command line cannot supply it: resume "
            "from Python with repscope.analyze(..., the same data, out=...)") in proc.stderr


# ------------------------------------------------------------------ bad input: one line, no folder


def _bad_inputs(x: np.ndarray, y: np.ndarray) -> dict[str, tuple]:
    nan, inf = x.copy(), x.copy()
    nan[7, 3], inf[9, 0] = np.nan, np.inf
    shuffled = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=50, shuffle=True)
    return {
        "lengths": ((x, y[:-1]), DataError, "1796 labels for the 1797 examples of x of data set 'memory'"),
        "float labels": ((x, y + 0.5), DataError, "labels are not integers (dtype float64)"),
        "object labels": ((x, np.array([object()] * len(y))), DataError, "neither integers nor strings"),
        "empty": ((x[:0], y[:0]), DataError, "no examples"),
        "empty loader": (DataLoader(TensorDataset(torch.tensor(x[:0]), torch.tensor(y[:0]))), DataError,
                         "no examples"),
        "NaN": ((nan, y), DataError, "1 of the 1797 examples holds NaN or Inf values"),
        "Inf": ({"x": inf, "y": y}, DataError, "the first is example 9"),
        "shuffled": (shuffled, SettingsError, "draws its examples at random (RandomSampler); the order of examples "
                                              "must be fixed: give shuffle=False"),
        "unnamed": ([(x, y), {"x": x, "y": y}], SettingsError, "2 data sets are given from memory; name each"),
        "same names": ([{"x": x, "y": y, "name": "a"}, {"x": x, "y": y, "name": "a"}], SettingsError,
                       "several data sets from memory are named 'a'"),
        "an array": (x, SettingsError, "data: a numpy.ndarray is not a data set; give (x, y)"),
        "a tensor": (torch.tensor(x), SettingsError, "data: a torch.Tensor is not a data set"),
        "a list of arrays": ([x, y], SettingsError, "a list is several data sets: give examples and labels as a tuple"),
        "unknown key": ({"x": x, "y": y, "labels": y}, SettingsError, "unknown key 'labels'"),
        "no labels": ({"x": x}, SettingsError, "needs 'y'"),
        "half a test split": ({"x": x, "y": y, "x_test": x}, SettingsError, "'x_test' but not 'y_test'"),
        "not pairs": (TensorDataset(torch.tensor(x)), SettingsError, "a TensorDataset of 1 tensor(s); give two"),
        "bad name": ({"x": x, "y": y, "name": "a/b"}, SettingsError, "cannot hold '/'"),
        "paths": ({"x": "x.npy", "y": "y.npy"}, SettingsError, "has a path as 'x': for .npy files give"),
    }


BAD = ("lengths", "float labels", "object labels", "empty", "empty loader", "NaN", "Inf", "shuffled", "unnamed",
       "same names", "an array", "a tensor", "a list of arrays", "unknown key", "no labels", "half a test split",
       "not pairs", "bad name", "paths")


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_leaves_no_folder(case, digits, net, tmp_path):
    cases = _bad_inputs(*digits)
    assert set(cases) == set(BAD)
    data, error, words = cases[case]
    out = tmp_path / "run"
    with pytest.raises(error) as info:
        repscope.analyze(net, data, out=out, **FAST)
    message = str(info.value)
    assert type(info.value) is error
    assert words in message, message
    assert "\n" not in message and len(message) < 400 and "[[" not in message, "one line, no array printed"
    assert not out.exists()


# ------------------------------------------------------------------ the source itself


def test_the_digest_is_of_the_content_as_the_engine_reads_it(digits):
    x, y = digits
    base = from_memory((x, y))
    assert base.kind == "memory" and base.name == "memory" and base.test is None
    assert set(base.sha256) == {"x", "y", CONTENT_KEY}
    same = [from_memory((x.astype(np.float32), y.astype(np.int32))), from_memory((torch.tensor(x), torch.tensor(y))),
            from_memory({"x": x, "y": y})]
    assert all(s.sha256 == base.sha256 for s in same)
    other = [from_memory((x, y[::-1].copy())), from_memory((x.reshape(-1, 8, 8), y)),
             from_memory({"x": x, "y": y, "scale": 16}), from_memory({"x": x, "y": y, "classes": list("abcdefghij")}),
             from_memory({"x": x, "y": y, "x_test": x[:5], "y_test": y[:5]})]
    digests = {s.sha256[CONTENT_KEY] for s in other}
    assert len(digests) == len(other) and base.sha256[CONTENT_KEY] not in digests


def test_the_recorded_spec_opens_the_registered_source_in_this_process_only(digits):
    x, y = digits
    source = from_memory({"x": x, "y": y, "name": "mine", "classes": {i: f"digit {i}" for i in range(10)}})
    spec = json.loads(json.dumps(memory_spec(source)))  # as config.json keeps it
    assert spec == {"source": "memory", "name": "mine", "sha256": source.sha256[CONTENT_KEY]}
    assert open_source(spec) is source and source_name(spec) == "mine"
    assert source.classes[:2] == ("digit 0", "digit 1")
    assert "memory" in SOURCE_KINDS
    with pytest.raises(MissingDataError, match="^data set 'mine' was given from memory"):
        open_source({**spec, "sha256": "0" * 64})
    with pytest.raises(SettingsError, match="64 hex digits"):
        source_name({"source": "memory", "name": "mine", "sha256": "abc"})
    with pytest.raises(SettingsError, match="needs the key 'sha256'"):
        source_name({"source": "memory", "name": "mine"})


def test_string_labels_and_loader_batches_of_names(digits):
    x, y = digits
    words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    by_name = from_memory((x, words))
    assert by_name.classes == tuple(sorted(set(words.tolist())))
    loader = DataLoader(list(zip(torch.tensor(x), words.tolist())), batch_size=64)  # default_collate: a list of str
    assert from_memory(loader).sha256 == by_name.sha256


def test_forms_that_are_and_are_not_in_memory(digits):
    x, y = digits
    assert is_in_memory((x, y)) and is_in_memory((torch.tensor(x), y.tolist()))
    assert is_in_memory({"x": x, "y": y}) and is_in_memory(TensorDataset(torch.tensor(x)))
    assert not is_in_memory(("digits", "mnist")) and not is_in_memory({"source": "digits"})
    assert not is_in_memory([x, y]) and not is_in_memory(x)


def test_spec_messages_name_types_and_keys_not_values():
    huge = np.zeros((300, 300))
    with pytest.raises(SettingsError) as info:
        source_name(huge)
    assert str(info.value) == "a data source is a string or a mapping, not a numpy.ndarray"
    with pytest.raises(SettingsError) as info:
        source_name({"path": "a.npz", "data": list(range(10_000))})
    assert "keys 'path', 'data'" in str(info.value) and "9999" not in str(info.value)
