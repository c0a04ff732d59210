"""The run: backend decisions, settings validation, the job list, the tables, resumption."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from repscope.engine import embedders as EM
from repscope.engine import pipeline
from repscope.engine.errors import EngineError, SettingsError
from repscope.engine.findings import Depths
from repscope.engine.jobs import job_list
from repscope.engine.presets.study import REPRESENTATIONS
from repscope.engine.settings import from_options
from repscope.engine.tables import read_metrics_csv, study_tables, write_metrics_csv, write_tables
from repscope.kernels import METRICS

from .conftest import with_checkpoints, write_complete

ROOT = Path(__file__).parents[1]


# ------------------------------------------------------------------ backend decision


@pytest.fixture()
def fake_cuml(monkeypatch):
    """A module called cuml and a CuPy that sees one device: enough for the dispatch only."""
    cuml = types.ModuleType("cuml")
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cuml", cuml)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(EM, "_importable", lambda name: name in ("cuml", "openTSNE", "umap", "sklearn.manifold"))
    return cuml


def test_cpu_embedders_without_cuml(monkeypatch):
    monkeypatch.setattr(EM, "_cuda_ok", lambda: False)
    assert EM.choose_embedder("tsne").name == "opentsne"
    assert EM.choose_embedder("umap").name == "umap-learn"
    assert EM.choose_embedder("tsne", prefer="sklearn-tsne").name == "sklearn-tsne"
    with pytest.raises(SettingsError, match="backend 'gpu' has no tsne embedder here: install cuML"):
        EM.choose_embedder("tsne", "gpu")


def test_cuml_when_present(fake_cuml):
    assert EM.choose_embedder("tsne").name == "cuml-tsne"
    assert EM.choose_embedder("umap", "gpu").name == "cuml-umap"
    assert EM.choose_embedder("tsne", "cpu").name == "opentsne"


def test_torchdr_when_cuda_but_no_cuml(monkeypatch):
    monkeypatch.setattr(EM, "_importable", lambda name: name != "cuml")
    monkeypatch.setattr(EM, "_cuda_ok", lambda: True)
    monkeypatch.setattr(EM._TorchDR, "available", classmethod(lambda cls, device=None: True))
    assert EM.choose_embedder("tsne").name == "torchdr-tsne"
    assert EM.choose_embedder("umap").name == "torchdr-umap"


def test_cuml_tsne_settings_avoid_its_traps():
    p = EM.CumlTSNE().parameters(60_000, 42)
    assert p["learning_rate_method"] is None and p["n_neighbors"] == 90 and p["perplexity"] == 30
    assert EM.CumlUMAP().parameters(60_000, 42)["build_algo"] == "brute_force_knn"


def test_every_embedder_is_seeded_and_described():
    for cls in EM.EMBEDDERS.values():
        description = cls(threads=2).describe(1000, 7)
        assert description["parameters"]["random_state"] == 7
        assert description["embedder"] == cls.name and description["library"]


def test_seed_reaches_the_library(monkeypatch):
    import openTSNE

    seen = {}
    real = openTSNE.TSNE

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(openTSNE, "TSNE", spy)
    x = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)
    EM.OpenTSNE().embed(x, 123)
    assert seen["random_state"] == 123 and seen["perplexity"] == 30 and seen["metric"] == "euclidean"


# ------------------------------------------------------------------ settings and jobs


@pytest.mark.parametrize("options, message", [
    ({"preset": "huge"}, "--preset: unknown 'huge'"),
    ({"n": 0}, "--n must be a whole number >= 1"),
    ({"n": 50}, "--n must be at least 100"),
    ({"datasets": "mnist,cifar"}, "--datasets: unknown data source 'cifar'"),
    ({"datasets": "mnist,mnist"}, "--datasets lists a data set twice"),
    ({"methods": "pca"}, "--methods: unknown 'pca'"),
    ({"methods": "tsne,tsne"}, "lists a value twice"),
    ({"seeds": "42,x"}, "--seeds takes whole numbers"),
    ({"seeds": "42,42"}, "distinct"),
    ({"backend": "tpu"}, "--backend: unknown 'tpu'"),
    ({"space": "latent"}, "--space: unknown 'latent'"),
    ({"workers": -1}, "--workers must be"),
    ({"job_timeout": 0}, "--job-timeout must be"),
    ({"tsne_embedder": "umap-learn"}, "--tsne-embedder: unknown"),
    ({"store": "nosuch://bucket/run.zarr"}, "fsspec knows no protocol 'nosuch'"),
])
def test_bad_settings_are_named(options, message):
    with pytest.raises(SettingsError, match=message):
        from_options(out="runs/x", **options)


def test_a_store_path_is_made_absolute_and_a_url_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert from_options(out="x", store="elsewhere/run.zarr").store == str(tmp_path / "elsewhere" / "run.zarr")
    assert from_options(out="x", store="file:///shared/run.zarr").store == "file:///shared/run.zarr"
    assert from_options(out="x").store is None


def test_presets():
    assert from_options(out="x", preset="smoke").n == 1000
    assert from_options(out="x", preset="paper").n == 5000
    assert from_options(out="x", preset="full").n == 60000
    assert from_options(out="x", preset="auto", backend="cpu").preset == "paper"


def test_the_job_list_covers_the_study():
    reps = {"mnist": REPRESENTATIONS, "fashion-mnist": REPRESENTATIONS}
    jobs = job_list(("mnist", "fashion-mnist"), (42,), ("tsne", "umap"), reps)
    study = [j for j in jobs if j.in_study]
    assert len(study) == 2 * 2 * (1 + 2 * 21)  # original once, shared by both networks
    assert len(jobs) - len(study) == 2 * 2 * 2 * 2  # layer1/all and layer2/all, both networks
    assert len({j.store_key for j in jobs}) == len(jobs)
    assert len(job_list(("mnist",), (42, 43), ("tsne",), reps)) == 2 * (1 + 2 * 23)
    assert [j.id for j in job_list(("mnist",), (42,), ("umap",), reps, ["original", "layer3"])] == [
        "mnist/seed42/trained/umap/original", "mnist/seed42/trained/umap/layer3", "mnist/seed42/untrained/umap/layer3"]


# ------------------------------------------------------------------ tables


def _rows(seeds=(42,)):
    rows = []
    for seed in seeds:
        for network, shift in (("trained", 0.0), ("untrained", 0.5)):
            for rep in ("original", "layer1/filter01", "layer1/filter02", "layer3", "layer1/all"):
                value = {"original": 1.0, "layer1/filter01": 2.0, "layer1/filter02": 4.0, "layer3": 0.25,
                         "layer1/all": 3.0}[rep] + shift + (seed - 42) * 0.1
                rows.append({"dataset": "mnist", "seed": seed, "network": network, "method": "tsne",
                             "space": "embedding", "representation": rep, "in_study": rep != "layer1/all",
                             "n": 100, "k": 10, **{m: value for m in METRICS}})
    return rows


ORDER = {"mnist": [r.name for r in REPRESENTATIONS]}
DEPTHS = {"mnist": Depths(REPRESENTATIONS)}


def test_tables_from_a_hand_made_metrics_csv(tmp_path):
    path = write_metrics_csv(_rows(), tmp_path / "metrics.csv", ORDER)
    rows = read_metrics_csv(path)
    assert len(rows) == 10 and rows[0]["representation"] == "original" and rows[0]["network"] == "trained"
    tables = study_tables(rows, DEPTHS)
    layer1 = tables["mnist", "embedding", "tsne", "layer1", "mean"]
    assert layer1["header"] == ["representation", *METRICS]
    assert [r[0] for r in layer1["body"]] == ["layer1/filter01", "layer1/filter02", "mean of filters"]
    assert layer1["body"][0][1] == "2.0000 / 2.5000"
    assert layer1["body"][2][3] == "3.0000 / 3.5000"
    assert tables["mnist", "embedding", "tsne", "beyond-study", "mean"]["body"][0][1] == "3.0000 / 3.5000"
    assert ("mnist", "embedding", "tsne", "layer1", "std") not in tables
    paths = write_tables(rows, tmp_path / "tables", DEPTHS)
    names = {p.relative_to(tmp_path / "tables").as_posix() for p in paths}
    assert {"mnist/tsne/layer1.csv", "mnist/tsne/layer1.md", "mnist/tsne/layer1.tex", "mnist/tsne/original.md",
            "mnist/tsne/beyond-study.tex"} <= names
    assert "| layer1/filter01 | 2.0000 / 2.5000 |" in (tmp_path / "tables/mnist/tsne/layer1.md").read_text()
    assert r"acc\_knn" in (tmp_path / "tables/mnist/tsne/layer3.tex").read_text()


def test_several_seeds_give_means_and_standard_deviations():
    tables = study_tables(_rows(seeds=(42, 43, 44)), DEPTHS)
    mean = tables["mnist", "embedding", "tsne", "layer3", "mean"]["body"][0][1]
    std = tables["mnist", "embedding", "tsne", "layer3", "std"]["body"][0][1]
    assert mean == "0.3500 / 0.8500" and std == "0.1000 / 0.1000"
    assert "3 seeds" in tables["mnist", "embedding", "tsne", "layer3", "std"]["title"]


# ------------------------------------------------------------------ runs and resumption


@pytest.fixture(scope="session")
def trained_run(smoke_run):
    """A run folder with the real checkpoints of seed 42: the smoke run's."""
    return smoke_run


def _small(out, data_root, **kw):
    options = dict(out=out, n=200, datasets="mnist", methods="tsne,umap",
                   representations="original,layer3,layer2/filter01", workers=0, data_root=data_root)
    options.update(kw)
    return from_options(**options)


@pytest.fixture()
def reference_csv(trained_run, data_root, tmp_path_factory):
    out = with_checkpoints(trained_run, tmp_path_factory.mktemp("reference"))
    pipeline.run(_small(out, data_root))
    return (out / "metrics.csv").read_text()


@pytest.mark.network
def test_resume_after_an_exception_in_a_job(trained_run, data_root, tmp_path, reference_csv, monkeypatch):
    out = with_checkpoints(trained_run, tmp_path / "run")
    calls = []
    real = EM.OpenTSNE.embed

    def flaky(self, x, seed):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        return real(self, x, seed)

    monkeypatch.setattr(EM.OpenTSNE, "embed", flaky)
    with pytest.raises(EngineError, match=r"1 of 10 embedding jobs failed \(mnist/seed42/.*injected failure"):
        pipeline.run(_small(out, data_root))
    monkeypatch.setattr(EM.OpenTSNE, "embed", real)
    embedded = []
    for cls in (EM.OpenTSNE, EM.UmapLearn):
        monkeypatch.setattr(cls, "embed", lambda self, x, seed, real=cls.embed: embedded.append(1) or real(self, x, seed))
    pipeline.run(_small(out, data_root))
    assert len(embedded) == 1, "only the failed job runs again"
    assert (out / "metrics.csv").read_text() == reference_csv


@pytest.mark.network
def test_resume_after_sigkill(trained_run, data_root, tmp_path, reference_csv, monkeypatch):
    out = with_checkpoints(trained_run, tmp_path / "run")
    script = textwrap.dedent(f"""
        import os, signal
        import repscope.engine.jobs, repscope.engine.scheduler
        from repscope.engine import pipeline
        from repscope.engine.settings import from_options
        real, count = repscope.engine.jobs.run_job, [0]
        def run_job(*args, **kwargs):
            count[0] += 1
            if count[0] == 4:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        repscope.engine.scheduler.run_job = run_job
        pipeline.run(from_options(out={str(out)!r}, n=200, datasets="mnist", methods="tsne,umap",
                     representations="original,layer3,layer2/filter01", workers=0, data_root={str(data_root)!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    embedded = []
    for cls in (EM.OpenTSNE, EM.UmapLearn):
        monkeypatch.setattr(cls, "embed", lambda self, x, seed, real=cls.embed: embedded.append(1) or real(self, x, seed))
    pipeline.run(_small(out, data_root))
    assert len(embedded) == 10 - 3, "the three jobs done before the kill are kept"
    assert (out / "metrics.csv").read_text() == reference_csv


@pytest.mark.network
def test_a_job_past_its_timeout_is_stopped_and_named(trained_run, data_root, tmp_path):
    out = with_checkpoints(trained_run, tmp_path / "run")
    settings = _small(out, data_root, methods="tsne", representations="layer3", workers=1, job_timeout=0.5)
    with pytest.raises(EngineError, match=r"timed out after 0.5 s"):
        pipeline.run(settings)


@pytest.mark.network
def test_representation_space(trained_run, data_root, tmp_path):
    out = with_checkpoints(trained_run, tmp_path / "run")
    pipeline.run(_small(out, data_root, methods="umap", space="both"))
    rows = read_metrics_csv(out / "metrics.csv")
    spaces = {r["space"] for r in rows}
    assert spaces == {"embedding", "representation"}
    rep = [r for r in rows if r["space"] == "representation"]
    assert {r["representation"] for r in rep} == {"original", "layer3", "layer2/filter01"}
    assert all(r["method"] == "none" for r in rep) and len(rep) == 6
    assert (out / "tables/mnist/representation/layer3.md").is_file()


def test_a_missing_cell_makes_the_filter_mean_nan_not_a_crash():
    rows = [r for r in _rows() if not (r["network"] == "untrained" and r["representation"] == "layer1/filter02")]
    body = study_tables(rows, DEPTHS)["mnist", "embedding", "tsne", "layer1", "mean"]["body"]
    assert body[1][1] == "4.0000 / nan" and body[2][1] == "3.0000 / nan"


def test_a_dead_filter_embeds_to_one_point(tmp_path):
    from repscope.engine.jobs import JobKey, JobSettings, run_job
    from repscope.store import RunStore, find

    def job(name):
        return JobKey("mnist", 42, "trained", "tsne", name, find(REPRESENTATIONS, name))

    store = RunStore(tmp_path / "store.zarr")
    rng = np.random.default_rng(0)
    layer2 = rng.random((150, 16, 5, 5), dtype=np.float32)
    layer2[:, 0] = 0.0  # filter01 dead: the same (zero) representation for every example
    write_complete(store, {"mnist/labels": rng.integers(0, 10, 150).astype(np.uint8),
                           "mnist/seed42/trained/layer2": layer2})
    settings = JobSettings(embedders={"tsne": "opentsne"})
    result = run_job(tmp_path, job("layer2/filter01"), settings)
    assert result["metrics"]["avg"] == 0.0 and np.isnan(result["metrics"]["ds"])
    info = store.info("mnist/seed42/trained/embeddings/tsne/layer2/filter01")
    assert info["complete"] and info["constant_input"]
    assert not store.array("mnist/seed42/trained/embeddings/tsne/layer2/filter01")[:].any()
    live = run_job(tmp_path, job("layer2/filter02"), settings)
    assert live["metrics"]["avg"] > 0 and not store.info("mnist/seed42/trained/embeddings/tsne/layer2/filter02")["constant_input"]


def test_a_dead_filter_is_left_out_of_the_filter_mean_and_marked():
    rows = _rows()
    for r in rows:
        if r["network"] == "untrained" and r["representation"] == "layer1/filter02":
            r.update({m: float("nan") for m in ("ds", "dd", "cs", "cd")})
    table = study_tables(rows, DEPTHS)["mnist", "embedding", "tsne", "layer1", "mean"]
    ds = table["header"].index("ds")
    assert table["body"][2][ds] == "3.0000 / 2.5000*"
    from repscope.engine.tables import _render

    assert "dead filter" in _render(table["title"], table["header"], table["body"])["md"]


def test_the_evaluate_stage_alone_decides_its_kernels_and_scores_a_finished_run_again(smoke_run, tmp_path):
    """``repscope evaluate --out RUN`` without the embed stage (whose decisions it used to read)."""
    import shutil

    from repscope.engine import cli

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("report"))
    (run / "metrics.csv").unlink()
    assert cli.main(["evaluate", "--out", str(run)]) == 0
    assert (run / "metrics.csv").read_bytes() == (smoke_run / "metrics.csv").read_bytes()
