"""The smoke preset end to end: every stage, both data sets, both methods, N = 1 000."""

import json

import pytest

from repscope.engine.tables import read_metrics_csv
from repscope.kernels import METRICS

pytestmark = pytest.mark.network


def test_smoke_run_writes_every_row_and_table(smoke_run):
    rows = read_metrics_csv(smoke_run / "metrics.csv")
    study = [r for r in rows if r["in_study"]]
    assert len(study) == 2 * 2 * 2 * 22  # datasets x methods x networks x representations
    assert len(rows) - len(study) == 2 * 2 * 2 * 2
    assert all(r["n"] == 1000 and r["seed"] == 42 for r in rows)
    for dataset in ("mnist", "fashion-mnist"):
        for method in ("tsne", "umap"):
            for table in ("original", "layer1", "layer2", "layer3", "beyond-study"):
                for ext in ("csv", "md", "tex"):
                    assert (smoke_run / "tables" / dataset / method / f"{table}.{ext}").is_file()
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["backend"]["embedders"] == {"tsne": "opentsne", "umap": "umap-learn"}
    # the data sets were fetched before the run (the data_root fixture): its fetch stage did no work
    assert set(config["timings"]) == {"train", "extract", "embed", "evaluate", "report"}
    jobs = (smoke_run / "jobs.csv").read_text().splitlines()
    assert len(jobs) == 1 + 2 * 2 * (1 + 2 * 23)


def test_smoke_run_shows_the_first_finding(smoke_run):
    """Trained layer3 separates the classes better than untrained layer3, by every metric."""
    rows = read_metrics_csv(smoke_run / "metrics.csv")
    cell = {(r["dataset"], r["method"], r["network"], r["representation"]): r for r in rows}
    for dataset in ("mnist", "fashion-mnist"):
        for method in ("tsne", "umap"):
            trained = cell[dataset, method, "trained", "layer3"]
            untrained = cell[dataset, method, "untrained", "layer3"]
            assert trained["ds"] < untrained["ds"] and trained["acc_knn_loo"] > untrained["acc_knn_loo"]
            assert set(METRICS) <= set(trained)
