"""Bad runs caught where they start: diverged training, labels beyond the network's outputs,
NaN representations; labels as users have them (far from zero, strings)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import repscope
from repscope.engine.errors import DataError, SettingsError, TrainingError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(layers=["2"], methods=["tsne"], n=100, workers=0, report=False)


def net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y


def _npz(path: Path, x, y) -> Path:
    np.savez(path, x=x, y=y)
    return path


def test_a_loss_that_becomes_nan_stops_training_in_one_line(digits, tmp_path):
    data = _npz(tmp_path / "huge.npz", digits[0] * 1e30, digits[1])
    with pytest.raises(TrainingError) as info:
        repscope.analyze(net, str(data), out=tmp_path / "run", train=True, recipe={"epochs": 1}, **SMALL)
    message = str(info.value)
    assert "\n" not in message
    assert "the training loss became nan at epoch 1 of 1, batch" in message and "learning rate 0.01" in message
    assert not (tmp_path / "run").exists(), "nothing but settings were written: no folder is left"


def test_the_command_line_says_so_in_one_line_with_exit_4(digits, tmp_path):
    data = _npz(tmp_path / "huge.npz", digits[0].reshape(-1, 8, 8) * 1e30, digits[1])
    (tmp_path / "resnet_digits.py").write_text((ROOT / "examples" / "resnet_digits.py").read_text())
    (tmp_path / "run.toml").write_text(f'n = 100\ndatasets = ["{data}"]\nmethods = ["tsne"]\n[model]\n'
                                       'factory = "resnet_digits:build"\ntransform = "resnet_digits:to_input"\nlayers = ["block1"]\n'
                                       '[training]\nepochs = 1\n')
    proc = subprocess.run([sys.executable, "-m", "repscope", "-q", "run", str(tmp_path / "run.toml"), "--out",
                           str(tmp_path / "out"), "--backend", "cpu"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "training diverged; lower learning_rate" in proc.stderr


class NaNAtInference(nn.Module):
    def forward(self, x):
        return x if self.training else x * float("nan")


def test_a_nan_representation_is_caught_at_extraction(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), NaNAtInference(), nn.Linear(16, 10))
    with pytest.raises(DataError, match=r"^digits/seed42/trained/2: 1600 NaN or Inf values in examples 0\.\.99 "
                                        r"\(first: example 0\); the network diverged"):
        repscope.analyze(model, "digits", out=tmp_path / "run", **SMALL)
    assert not any((tmp_path / "run").glob("store.zarr/**/embeddings"))


def test_labels_beyond_the_outputs_are_refused_before_training(digits, tmp_path):
    x, y = digits
    data = _npz(tmp_path / "eleven.npz", x, np.where(y == 9, 10, y))  # 11 labels, 10 outputs
    with pytest.raises(SettingsError, match=r"eleven: labels run from 0 to 10 but the network has 10 outputs, so "
                                            r"training needs labels 0 \.\. 9"):
        repscope.analyze(net, str(data), out=tmp_path / "run", train=True, **SMALL)
    assert not (tmp_path / "run").exists()


def _metrics(run) -> list[tuple]:
    return [tuple(v for k, v in row.items() if k != "dataset") for row in run.metrics]


def test_labels_far_from_zero_are_the_classes_present(digits, tmp_path):
    """Labels 1000..1009: ten classes named by their labels, and the same numbers as 0..9."""
    x, y = digits
    torch.manual_seed(0)
    model = net()
    far = repscope.analyze(model, str(_npz(tmp_path / "far.npz", x, y + 1000)), out=tmp_path / "far", **SMALL)
    near = repscope.analyze(model, str(_npz(tmp_path / "near.npz", x, y)), out=tmp_path / "near", **SMALL)
    data = far.config["data"]["far"]
    assert data["classes"] == [str(v) for v in range(1000, 1010)] and data["label_values"] == list(range(1000, 1010))
    assert np.array_equal(far.labels("far"), near.labels("near"))
    assert "label_values" not in near.config["data"]["near"]  # labels 0..9 are the classes as they are
    assert _metrics(far) == _metrics(near)


def test_classes_are_the_labels_present_with_their_names(digits, tmp_path):
    x, y = digits
    keep = y != 4  # label 4 absent: nine classes, not ten
    names = [f"name{k}" for k in range(10)]
    run = repscope.analyze(net(), {"source": "npz", "path": str(_npz(tmp_path / "gap.npz", x[keep], y[keep])),
                                   "classes": names}, out=tmp_path / "run", **SMALL)
    assert run.config["data"]["gap"]["classes"] == [n for n in names if n != "name4"]
    assert sorted(np.unique(run.labels("gap")).tolist()) == list(range(9))


def test_string_labels_become_classes_named_by_them(digits, tmp_path):
    x, y = digits
    words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    run = repscope.analyze(net, str(_npz(tmp_path / "words.npz", x, words[y])), out=tmp_path / "run", train=True,
                           recipe={"epochs": 3}, **SMALL)
    assert run.config["data"]["words"]["classes"] == sorted(words.tolist())
    assert run.config["extract"]["words"]["test_accuracy"] is None or run.config["extract"]["words"]["test_accuracy"] > 0.3


def test_a_network_at_chance_is_a_warning_naming_the_causes(digits, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="repscope.engine.train"):
        repscope.analyze(net, "digits", out=tmp_path / "run", train=True,
                         recipe={"epochs": 2, "learning_rate": 1e4}, progress=False, **SMALL)
    lines = [r.getMessage() for r in caplog.records if "about chance" in r.getMessage()]
    assert len(lines) == 1 and "learning_rate" in lines[0] and "scale" in lines[0]


def test_values_beyond_what_the_embedders_handle_are_named(digits, tmp_path, caplog):
    """Inputs scaled by 1e25: a warning at extraction (before any embedding), and jobs whose
    embedder returns NaN say which embedder did, from finite input, and why."""
    from repscope.engine.errors import JobsFailedError

    x, y = digits
    data = _npz(tmp_path / "big.npz", x * 1e25, y)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with caplog.at_level(logging.WARNING, logger="repscope.engine.extract"), pytest.raises(JobsFailedError) as info:
        repscope.analyze(model, str(data), out=tmp_path / "run", progress=False, **{**SMALL, "layers": ["1"]})
    warned = [r.getMessage() for r in caplog.records if "outside the 1e-12 to 1e+12 the embedders handle" in r.getMessage()]
    assert any(line.startswith("big/original: its largest magnitude is 1.6e+26") for line in warned)
    assert "opentsne returned 200 NaN or Inf coordinates for big/seed42/trained/tsne/original from finite input" in \
        str(info.value)


# ------------------------------------------------------------------ messages that say what is wrong


def test_too_few_examples_for_t_sne_name_the_data_in_python_words(tmp_path):
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "tiny.npz", rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, 40))
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(SettingsError, match=r"^tiny has 40 training examples; t-SNE with perplexity 30 needs at "
                                            r"least 100 \(give more data, or methods=\['umap'\]\)$"):
        repscope.analyze(model, str(data), layers=["1"], out=tmp_path / "run")
    with pytest.raises(SettingsError, match=r"^n must be at least 100 for t-SNE") as info:
        repscope.analyze(model, str(data), layers=["1"], n=30, out=tmp_path / "run")
    assert "--" not in str(info.value) and not (tmp_path / "run").exists()
    from repscope.engine.settings import from_options

    assert from_options(out=tmp_path / "run", model=None, preset="smoke", n=30, methods="umap").n == 30  # UMAP alone


def test_a_representation_of_one_value_is_refused_before_work(tmp_path):
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "one.npz", rng.normal(size=(120, 1)).astype(np.float32), rng.integers(0, 3, 120))
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(SettingsError, match=r"^one/original: one value per example; t-SNE and UMAP embed in 2-D from "
                                            r"at least two: leave it out with representations"):
        repscope.analyze(model, str(data), layers=["1"], methods=["tsne"], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a folder; give the .npy file itself"),
    (lambda p: p.write_text("0 1 2\n"), "is not a .npy file (it does not start as one); save the array with numpy.save"),
])
def test_the_metrics_command_names_what_its_files_are(tmp_path, make, message):
    make(tmp_path / "points.npy")
    np.save(tmp_path / "labels.npy", np.array([0, 1, 0]))
    proc = subprocess.run([sys.executable, "-m", "repscope", "metrics", str(tmp_path / "points.npy"),
                           str(tmp_path / "labels.npy")], capture_output=True, text=True)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and message in proc.stderr


def test_faiss_tries_of_other_builds_are_not_logged(caplog):
    pytest.importorskip("faiss")
    from repscope.kernels import knn_accuracy

    with caplog.at_level(logging.INFO):
        knn_accuracy(np.random.default_rng(0).normal(size=(50, 3)), np.arange(50) % 2, method="faiss")
    assert not [r for r in caplog.records if r.name.startswith("faiss")]


def test_glyphs_the_fonts_lack_are_one_log_line_not_warnings(tmp_path, caplog, recwarn):
    from matplotlib.figure import Figure

    from repscope.engine import figures

    figures._missing_glyphs.clear()
    figure = Figure()
    figure.add_subplot().set_title("クラス ✓")
    with caplog.at_level(logging.INFO, logger="repscope.engine.figures"):
        figures.save(figure, tmp_path / "a")
        figures.save(figure, tmp_path / "b")
    lines = [r.getMessage() for r in caplog.records if "no glyph" in r.getMessage()]
    assert len(lines) == 1 and "drawn as boxes" in lines[0]
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


# ------------------------------------------------------------------ doubtful cases


def test_one_class_is_said_and_the_findings_are_undefined(digits, tmp_path, caplog):
    from repscope.engine.findings import Depths, check_findings

    x, y = digits
    with caplog.at_level(logging.WARNING, logger="repscope.engine.pipeline"):
        run = repscope.analyze(net(), str(_npz(tmp_path / "single.npz", x, np.zeros_like(y))), out=tmp_path / "run",
                               progress=False, **SMALL)
    assert any("has a single class (0): class separation is undefined" in r.getMessage() for r in caplog.records)
    findings = check_findings(run.metrics, {"single": Depths(run.representations("single"))})
    for finding in findings:
        check = finding.checks["single", "tsne"][42]
        assert check.holds is None and check.detail.startswith("undefined"), (finding.number, check)


def test_duplicate_class_names_are_told_apart_by_their_labels(digits, tmp_path, caplog):
    from repscope.engine.sources import open_source

    x, y = digits
    names = ["odd" if k % 2 else f"even{k}" for k in range(10)]
    with caplog.at_level(logging.WARNING, logger="repscope.engine.sources"):
        source = open_source({"source": "npz", "path": str(_npz(tmp_path / "dup.npz", x, y)), "classes": names})
    assert source.classes[:4] == ("even0", "odd (1)", "even2", "odd (3)") and len(set(source.classes)) == 10
    assert any("'odd' are given to several labels" in r.getMessage() for r in caplog.records)


def test_a_constant_input_has_no_cka_with_itself(tmp_path):
    """All-zeros input: cka_untrained of original is NaN, as cka.csv says, not 1."""
    import csv

    rng = np.random.default_rng(1)
    data = _npz(tmp_path / "zeros.npz", np.zeros((120, 6), np.float32), rng.integers(0, 3, 120))
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    run = repscope.analyze(model, str(data), layers=["1"], methods=["tsne"], workers=0, report=False,
                           out=tmp_path / "run", metrics="cka", progress=False)
    original = [r for r in run.metrics if r["representation"] == "original"]
    assert original and all(np.isnan(r["cka_untrained"]) for r in original)
    with open(tmp_path / "run" / "cka.csv", newline="") as f:
        pairs = [r for r in csv.DictReader(f) if r["representation_a"] == r["representation_b"] == "original"]
    assert all(r["cka"] == "nan" for r in pairs)
