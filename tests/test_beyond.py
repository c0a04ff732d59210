"""The measures beyond the study in a run: metrics.csv's columns, cka.csv, statistics.csv,
the tables' intervals and the report, on a small model of one's own (digits, 2 seeds)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import repscope
from repscope.engine.measures import FAMILIES, parse_families
from repscope.engine.errors import SettingsError
from repscope.kernels import cka_matrix, linear_probe, silhouette_score
from repscope.store import NETWORKS, find
from tests.test_measures import neighbourhood_reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from torch import nn

    torch_net = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    out = tmp_path_factory.mktemp("beyond") / "run"
    return repscope.analyze(torch_net, "digits", layers=["1", "2"], methods=["umap"], n=150, seeds=[1, 2],
                            out=out, train=True, recipe={"epochs": 3, "learning_rate": 0.05}, workers=0,
                            metrics="all")


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_family_fills_its_columns(run):
    rows = [r for r in run.metrics if r["space"] == "embedding"]
    assert len(rows) == 2 * 2 * 3  # seeds x networks x representations (original answers for both)
    for row in rows:
        for column in ("silhouette", "recall", "trustworthiness", "continuity", "probe_accuracy", "cka_untrained"):
            assert not math.isnan(row[column]), (row["representation"], column)
        assert row["queries"] == 150 and row["trustworthiness_se"] == 0.0
        assert 0 <= row["recall"] <= 1 and 0 <= row["probe_accuracy"] <= 1


def test_the_columns_equal_the_kernels_on_the_stored_arrays(run):
    store = run.store
    for row in run.metrics:
        if row["space"] != "embedding" or row["seed"] != 2:
            continue
        name, network = row["representation"], row["network"]
        embedding = run.embedding("digits", name, network=network, seed=2)
        representation = run.representation("digits", name, network=network, seed=2)
        labels = store.labels("digits")
        # digits hold duplicated examples and ReLU layers many equal distances: ties are broken
        # by index here and by argsort order in scikit-learn, so the plain reference is the yardstick
        want = neighbourhood_reference(representation.astype(np.float64), embedding.astype(np.float64), 10)
        np.testing.assert_allclose([row["trustworthiness"], row["continuity"], row["recall"]], want, atol=1e-12)
        assert row["silhouette"] == pytest.approx(silhouette_score(embedding, labels), abs=1e-12)
        rep = find(run.representations("digits"), name)
        holder = "trained" if name == "original" else network
        probe = linear_probe(representation, labels,
                             store.read_representation("digits", 2, holder, rep, heldout=True),
                             store.labels("digits", heldout=True), seed=2)
        assert row["probe_accuracy"] == probe.test_accuracy
        other = run.representation("digits", name, network=NETWORKS[1] if network == "trained" else "trained", seed=2)
        assert row["cka_untrained"] == pytest.approx(cka_matrix([representation, other])[0, 1], abs=1e-10)


def test_the_held_out_examples_are_the_test_split(run):
    from repscope.engine.sources import open_source

    test = open_source("digits").test
    n = min(150, len(test))
    np.testing.assert_array_equal(run.store.labels("digits", heldout=True), test.label_rows(0, n))


def test_cka_between_layers(run):
    rows = _csv(run.path / "cka.csv")
    seeds = {r["seed"] for r in rows}
    assert seeds == {"1", "2"}
    for r in rows:
        if (r["network_a"], r["representation_a"]) == (r["network_b"], r["representation_b"]):
            assert float(r["cka"]) == pytest.approx(1.0, abs=1e-9)
        if r["representation_a"] == r["representation_b"] == "original":
            assert float(r["cka"]) == pytest.approx(1.0, abs=1e-9)
        assert 0.0 <= float(r["cka"]) <= 1.0 + 1e-9
    pairs = {(r["network_a"], r["representation_a"], r["network_b"], r["representation_b"]) for r in rows}
    assert ("trained", "1", "untrained", "1") in pairs and ("trained", "2", "trained", "original") in pairs


def test_a_whole_layers_cka_untrained_is_its_cka_csv_value_to_the_bit(run):
    """metrics.csv takes a whole layer's trained-untrained CKA from the layer matrix; its
    pairs are summed as a lone pair's would be, so the value is the pair's, bit for bit."""
    between = {(r["seed"], r["representation_a"]): r["cka"] for r in _csv(run.path / "cka.csv")
               if (r["network_a"], r["network_b"]) == ("trained", "untrained")
               and r["representation_a"] == r["representation_b"] != "original"}
    assert between
    whole = [r for r in run.metrics if (str(r["seed"]), r["representation"]) in between]
    assert {(str(r["seed"]), r["representation"]) for r in whole} == set(between)
    for row in whole:
        assert f'{row["cka_untrained"]:.17g}' == between[str(row["seed"]), row["representation"]]
        pair = [run.representation("digits", row["representation"], network=network, seed=row["seed"])
                for network in NETWORKS]
        assert row["cka_untrained"] == cka_matrix(pair)[0, 1]


def test_statistics_and_intervals(run):
    rows = _csv(run.path / "statistics.csv")
    wanted = {(r["layer"], r["measure"]) for r in rows}
    assert {("2", "acc_knn_loo"), ("2", "silhouette"), ("2", "probe_accuracy"), ("1", "trustworthiness")} <= wanted
    for r in rows:
        assert r["seeds"] == "2"
        if r["p"] != "nan":
            assert float(r["p"]) in (0.25, 0.5, 0.75, 1.0)  # the exact one-sided test of 2 seeds
            assert float(r["trained_low"]) <= float(r["trained_mean"]) <= float(r["trained_high"])
    ci = (run.path / "tables" / "digits" / "umap" / "2-ci95.md").read_text()
    assert "95 % interval" in ci and "[" in ci


def test_the_report_shows_the_measures(run):
    html = run.report.read_text()
    assert 'id="measures"' in html and "similarity of layers" in html and "p (sign test)" in html
    assert (run.path / "report" / "figures" / "digits" / "cka.png").is_file()


def test_a_rerun_reuses_what_is_kept_and_writes_the_same_bytes(run):
    before = {name: (run.path / name).read_bytes() for name in ("metrics.csv", "cka.csv", "statistics.csv")}
    proc = subprocess.run([sys.executable, "-m", "repscope", "evaluate", "--out", str(run.path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2, "a run made from a model object has no run file to start from"
    from repscope.engine.evaluate import evaluate
    from repscope.engine.jobs import job_list

    reps = {"digits": run.representations("digits")}
    evaluate(run.path, job_list(["digits"], [1, 2], ["umap"], reps), ("embedding",), 10, reps, FAMILIES)
    assert {name: (run.path / name).read_bytes() for name in before} == before


def test_families():
    assert parse_families("default") == ("separation", "recall", "silhouette", "cka")
    assert parse_families(["trustworthiness"]) == ("separation", "trustworthiness")
    with pytest.raises(SettingsError, match="unknown 'bogus'"):
        parse_families("recall,bogus")


def test_a_bad_family_on_the_command_line_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "repscope", "run", "--preset", "smoke", "--out", str(tmp_path / "x"),
                           "--metrics", "recall,bogus", "--neighbourhood-sample", "1"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--metrics: unknown 'bogus'" in proc.stderr and "--neighbourhood-sample" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_sampled_estimate_is_chosen_explicitly_and_says_so(run, tmp_path):
    import shutil

    from repscope.engine.evaluate import evaluate
    from repscope.engine.jobs import job_list

    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    reps = {"digits": run.representations("digits")}
    evaluate(copy, job_list(["digits"], [1, 2], ["umap"], reps), ("embedding",), 10, reps,
             ("separation", "trustworthiness"), sample=60)
    rows = repscope.Run(copy).metrics
    exact = {(r["seed"], r["network"], r["representation"]): r for r in run.metrics if r["space"] == "embedding"}
    for row in rows:
        assert row["queries"] == 60 and row["trustworthiness_se"] > 0 and math.isnan(row["probe_accuracy"])
        want = exact[row["seed"], row["network"], row["representation"]]
        assert abs(row["trustworthiness"] - want["trustworthiness"]) < 5 * row["trustworthiness_se"]


def test_a_source_without_a_test_split_has_no_probe(tmp_path):
    from torch import nn

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    np.savez(tmp_path / "blobs.npz", x=(rng.normal(size=(120, 6)) + y[:, None]).astype(np.float32), y=y)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    run = repscope.analyze(net, str(tmp_path / "blobs.npz"), layers=["1"], methods=["umap"], n=120, seeds=[0],
                           out=tmp_path / "run", workers=0, report=False, metrics="probe")
    rows = [r for r in run.metrics if r["space"] == "embedding"]
    assert rows and all(math.isnan(r["probe_accuracy"]) for r in rows)
    assert run.config["extract"]["blobs"]["heldout"] == 0


def test_dead_filters_have_no_neighbourhood_scores_or_silhouette(smoke_run):
    """The smoke preset's untrained layer2/filter07 is dead (every example one point): NaN,
    as its distance ratios, not the perfect scores of an all-tied picture."""
    from repscope.engine.tables import read_metrics_csv

    rows = [r for r in read_metrics_csv(smoke_run / "metrics.csv") if r["space"] == "embedding"]
    dead = [r for r in rows if math.isnan(r["ds"])]
    assert dead, "the smoke preset has a dead filter"
    for r in dead:
        assert math.isnan(r["recall"]) and math.isnan(r["silhouette"]), r["representation"]
    alive = [r for r in rows if not math.isnan(r["ds"])]
    assert all(0 <= r["recall"] <= 1 and -1 <= r["silhouette"] <= 1 for r in alive)
    # CKA with a dead counterpart (the trained filter whose untrained twin is dead) is NaN too
    has_dead_twin = {(r["dataset"], r["representation"]) for r in dead}
    assert all(math.isnan(r["cka_untrained"]) == ((r["dataset"], r["representation"]) in has_dead_twin)
               for r in rows)


@pytest.mark.gpu
def test_the_measures_on_the_gpu_equal_the_cpus(run, tmp_path, cupy):
    import shutil

    from repscope.engine.evaluate import evaluate
    from repscope.engine.jobs import job_list

    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    reps = {"digits": run.representations("digits")}
    store = repscope.Run(copy).store
    for key in store.keys():  # drop what the CPU kept, so the GPU computes it all again
        info = store.info(key)
        if info and "measures" in info:
            store.annotate(key, measures={})
    evaluate(copy, job_list(["digits"], [1, 2], ["umap"], reps), ("embedding",), 10, reps, FAMILIES, gpu=True)
    cpu = {(r["seed"], r["network"], r["representation"]): r for r in run.metrics}
    for row in repscope.Run(copy).metrics:
        want = cpu[row["seed"], row["network"], row["representation"]]
        for column in ("silhouette", "recall", "trustworthiness", "continuity", "cka_untrained", "probe_accuracy"):
            assert row[column] == pytest.approx(want[column], abs=1e-9), column


def test_values_kept_by_other_kernels_are_computed_again(run, tmp_path):
    """What earlier kernels kept beside the arrays (metrics keyed by k alone, measures of
    another KERNELS_VERSION) is computed again, not reported beside new values."""
    import shutil

    from repscope.engine.evaluate import evaluate
    from repscope.engine.jobs import job_list
    from repscope.kernels import KERNELS_VERSION

    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    reps = {"digits": run.representations("digits")}
    store = repscope.Run(copy).store
    planted = 0
    for key in store.keys():
        info = store.info(key) or {}
        if "metrics" in info:  # an embedding's metrics as a run before the version kept them
            store.annotate(key, metrics={**{m: -1.0 for m in info["metrics"] if m not in ("k", "kernels")}, "k": 10})
            planted += 1
        if info.get("measures"):
            store.annotate(key, measures={name: {"by": {**kept["by"], "kernels": KERNELS_VERSION - 1}, "value": -1.0}
                                          for name, kept in info["measures"].items()})
            planted += 1
    assert planted
    evaluate(copy, job_list(["digits"], [1, 2], ["umap"], reps), ("embedding",), 10, reps, FAMILIES)
    assert (copy / "metrics.csv").read_bytes() == (run.path / "metrics.csv").read_bytes()
    for key in store.keys():
        info = store.info(key) or {}
        if "metrics" in info:
            assert info["metrics"]["kernels"] == KERNELS_VERSION
