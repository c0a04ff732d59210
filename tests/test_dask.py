"""The Dask scheduler: same results as the local one, a worker death survived, a job
that keeps killing its worker or hangs named at the end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import dask  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from repscope.engine import pipeline  # noqa: E402
from repscope.engine.errors import EngineError, SettingsError  # noqa: E402
from repscope.engine.settings import from_options  # noqa: E402
from repscope.store import RunStore  # noqa: E402

from .conftest import with_checkpoints  # noqa: E402
from .dask_plugins import Misbehave  # noqa: E402

pytestmark = pytest.mark.network
SMALL = dict(n=200, datasets="mnist", methods="tsne", representations="original,layer3,layer2/filter01")
JOB = "mnist/seed42/trained/tsne/layer3"


@pytest.fixture(scope="module")
def local_csv(smoke_run, data_root, tmp_path_factory):
    out = with_checkpoints(smoke_run, tmp_path_factory.mktemp("local"))
    pipeline.run(from_options(out=out, workers=2, data_root=data_root, **SMALL), pipeline.STAGES[:-1])
    return (out / "metrics.csv").read_text()


@pytest.fixture()
def cluster():
    """Two single-task worker processes; a job whose worker dies twice fails."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
                Client(c) as client:
            yield c, client


def _run(out: Path, data_root: Path, address: str, **kw):
    options = dict(SMALL, out=out, data_root=data_root, scheduler="dask", dask_address=address, workers=2)
    options.update(kw)
    return pipeline.run(from_options(**options), pipeline.STAGES[:-1])


@pytest.mark.slow
def test_smoke_preset_on_a_local_cluster_matches_the_local_scheduler(smoke_run, data_root, tmp_path):
    """The whole smoke preset on a LocalCluster started by the run itself, with as many
    workers as the local run had (2 on a 2-core machine; the count changes no number).

    Seven minutes on two cores, so ``slow``; the tests below compare the Dask runs of a
    few jobs with the local scheduler's byte for byte in every suite."""
    out = with_checkpoints(smoke_run, tmp_path)
    workers = json.loads((smoke_run / "config.json").read_text())["backend"]["workers"]
    settings = from_options(out=out, preset="smoke", data_root=data_root, scheduler="dask", workers=workers)
    pipeline.run(settings, pipeline.STAGES[:-1])
    assert (out / "metrics.csv").read_bytes() == (smoke_run / "metrics.csv").read_bytes()


def test_a_worker_killed_mid_job_is_survived(smoke_run, data_root, tmp_path, cluster, local_csv):
    """Also with the store outside the run folder, at an fsspec URL the workers write to."""
    c, client = cluster
    marker = tmp_path / "kills"
    client.register_plugin(Misbehave(JOB, str(marker), "kill-once"))
    out = with_checkpoints(smoke_run, tmp_path / "run")
    url = f"file://{tmp_path}/shared/run.zarr"
    _run(out, data_root, c.scheduler_address, store=url)
    assert marker.read_text().count("\n") == 1  # the worker did die once
    assert (out / "metrics.csv").read_text() == local_csv
    assert not (out / "store.zarr").exists()
    assert RunStore(url).is_complete("mnist/seed42/trained/embeddings/tsne/layer3")


def test_a_job_that_keeps_killing_its_worker_is_named_and_the_rest_kept(smoke_run, data_root, tmp_path, cluster):
    c, client = cluster
    marker = tmp_path / "kills"
    client.register_plugin(Misbehave(JOB, str(marker), "kill-always"))
    out = with_checkpoints(smoke_run, tmp_path / "run")
    with pytest.raises(EngineError, match=f"1 of 5 embedding jobs failed \\({JOB}: its worker process died"):
        _run(out, data_root, c.scheduler_address)
    assert marker.read_text().count("\n") == 2  # tried twice (allowed-failures 1)
    store = RunStore(out / "store.zarr")
    complete = [k for k in ("original", "layer2/filter01") if store.is_complete(f"mnist/seed42/trained/embeddings/tsne/{k}")]
    assert complete == ["original", "layer2/filter01"]
    assert not store.is_complete("mnist/seed42/trained/embeddings/tsne/layer3")


@pytest.mark.slow
def test_a_job_past_its_timeout_is_stopped_and_named(smoke_run, data_root, tmp_path, cluster):
    c, client = cluster
    client.register_plugin(Misbehave(JOB, str(tmp_path / "unused"), "hang"))
    out = with_checkpoints(smoke_run, tmp_path / "run")
    with pytest.raises(EngineError, match=f"{JOB}: timed out after 20 s; the worker was stopped"):
        _run(out, data_root, c.scheduler_address, job_timeout=20)


@pytest.mark.parametrize("options, message", [
    (dict(dask_address="127.0.0.1:8786"), "--dask-address 127.0.0.1:8786 needs --scheduler dask"),
    (dict(scheduler="dask", dask_address="not an address"), "--dask-address takes HOST:PORT"),
    (dict(scheduler="dask", workers=0), "--workers 0 (in-process) is for --scheduler local"),
    (dict(scheduler="slurm"), "--scheduler: unknown 'slurm'; choose from local, dask"),
])
def test_bad_scheduler_settings_are_named(options, message, tmp_path):
    with pytest.raises(SettingsError) as info:
        from_options(out=tmp_path, **options)
    assert message in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is None, reason="needs dask-cuda")
def test_local_cuda_cluster_runs_the_jobs(smoke_run, data_root, tmp_path):
    # skipped before its fixtures: without dask-cuda the smoke run is not built for nothing
    out = with_checkpoints(smoke_run, tmp_path)
    pipeline.run(from_options(out=out, data_root=data_root, scheduler="dask", **SMALL), pipeline.STAGES[:-1])
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # original answers for both networks
