"""The smoke preset end to end: every stage, both data sets, both methods, N = 1 000; the
study's presets give their reference bytes."""

import hashlib
import json
from pathlib import Path

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


REFERENCES = json.loads((Path(__file__).parent / "references" / "presets.json").read_text())


def assert_reference_bytes(run_dir: Path, preset: str) -> None:
    """``run_dir``'s metrics.csv is the reference bytes of ``preset`` (tests/references/presets.json),
    where the libraries that make the numbers are the reference's versions."""
    versions = json.loads((run_dir / "config.json").read_text())["versions"]
    other = {name: (versions.get(name), want) for name, want in REFERENCES["versions"].items()
             if versions.get(name) != want}
    if other:
        pytest.skip("the reference bytes hold for other library versions: "
                    + ", ".join(f"{name} {have} here, {want} there" for name, (have, want) in other.items()))
    digest = hashlib.sha256((run_dir / "metrics.csv").read_bytes()).hexdigest()
    assert digest == REFERENCES["metrics_csv_sha256"][preset], (
        f"the {preset} preset's metrics.csv changed (sha256 {digest}); a change meant to change results updates "
        "tests/references/presets.json in the same commit and says why")


def test_the_smoke_presets_metrics_are_the_reference_bytes(smoke_run):
    assert_reference_bytes(smoke_run, "smoke")


@pytest.mark.slow
def test_the_paper_presets_metrics_are_the_reference_bytes(data_root, tmp_path):
    """The whole paper preset (about half an hour on two cores)."""
    from repscope.engine import pipeline
    from repscope.engine.settings import from_options

    pipeline.run(from_options(out=tmp_path / "paper", preset="paper", data_root=data_root))
    assert_reference_bytes(tmp_path / "paper", "paper")
