"""Any model, any data: a residual network defined outside the package, through a run file and the Python API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import repscope
from repscope.engine.errors import DataError, MissingDataError, SettingsError
from repscope.engine.findings import Depths, check_findings
from repscope.engine.settings import from_options
from repscope.store import build_representations

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "resnet_digits.py"
RUN_FILE = """
n = 200
datasets = ["digits"]
methods = ["tsne", "umap"]
seeds = [3]

[model]
factory = "resnet_digits:build"
transform = "resnet_digits:to_input"
layers = [{ path = "stem", split = "channels", max_channels = 2 }, "block1", { path = "head.2", name = "hidden" }]

[training]
epochs = 4
learning_rate = 0.05
"""


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    """A user's own folder: their network's module and a run file beside it."""
    folder = tmp_path_factory.mktemp("mine")
    shutil.copy(EXAMPLE, folder / "resnet_digits.py")
    (folder / "digits.toml").write_text(RUN_FILE)
    return folder


@pytest.fixture(scope="module")
def cli_run(user_folder) -> Path:
    out = user_folder / "runs" / "digits"
    proc = subprocess.run([sys.executable, "-m", "repscope", "run", str(user_folder / "digits.toml"), "--out", str(out),
                           "--backend", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report:  {out / 'report' / 'index.html'}" in proc.stdout
    assert f"explorer: {out / 'report' / 'explore.html'}" in proc.stdout
    return out


def test_a_run_file_runs_a_model_of_ones_own(cli_run):
    run = repscope.Run(cli_run)
    rows = run.metrics
    names = ["original", "stem/filter01", "stem/filter02", "block1", "hidden", "stem/all"]
    assert [r.name for r in run.representations("digits")] == names
    assert {(r["method"], r["network"], r["representation"]) for r in rows} == {
        (m, net, name) for m in ("tsne", "umap") for net in ("trained", "untrained") for name in names}
    assert all(r["n"] == 200 and r["seed"] == 3 and r["dataset"] == "digits" for r in rows)
    cell = {(r["method"], r["network"], r["representation"]): r for r in rows}
    for method in ("tsne", "umap"):  # 15 s of training separates the digits far better than random weights
        assert cell[method, "trained", "hidden"]["acc_knn_loo"] > cell[method, "untrained", "hidden"]["acc_knn_loo"]
    assert run.embedding("digits", "block1", "umap", "untrained").shape == (200, 2)
    config = json.loads((cli_run / "config.json").read_text())
    assert config["settings"]["model"]["reference"] == "resnet_digits:build"
    assert config["extract"]["digits"]["layers"] == {"stem": [32, 8, 8], "block1": [32, 8, 8], "hidden": [64]}
    assert config["data"]["digits"]["classes"] == [str(d) for d in range(10)]
    for table in ("original", "stem", "block1", "hidden", "beyond-study"):
        assert (cli_run / "tables" / "digits" / "umap" / f"{table}.md").is_file()


def test_the_wide_layers_were_reduced_and_recorded(cli_run):
    run = repscope.Run(cli_run)
    assert json.loads((cli_run / "config.json").read_text())["extract"]["digits"]["reduced"] == ["block1", "stem/all"]
    info = run.store.info("digits/seed3/trained/embeddings/tsne/block1")
    assert info["reduced"]["from_dims"] == 2048 and info["reduced"]["components"] == 50
    assert 0 < info["reduced"]["explained_variance_total"] <= 1
    assert "reduced" not in run.store.info("digits/seed3/trained/embeddings/tsne/hidden")


def test_the_generic_report(cli_run):
    page = (cli_run / "report" / "index.html").read_text()
    assert "<h2 id=\"findings\">Findings</h2>" in page and "published" not in page
    assert "Outliers of the trained stem/all embedding" not in page  # the last layer is hidden
    assert "Outliers of the trained hidden embedding" in page
    assert "stem (2 of 32 maps of 8\u00d78)" in page  # the filter figures of the channel-split layer, its analysed channels
    for figure in ("digits/umap/seed3/trained/grid.png", "digits/umap/depth/acc_knn_loo.svg",
                   "digits/filters/seed3/0.png"):
        assert (cli_run / "report" / "figures" / figure).is_file(), figure
    for word in ("layer3", "fashion", "28&times;28", "(784"):
        assert word not in page, word


def test_the_python_api_runs_the_same_kind_of_model(user_folder, tmp_path):
    sys.path.insert(0, str(user_folder))
    try:
        from resnet_digits import SmallResNet, to_input
    finally:
        sys.path.remove(str(user_folder))
    run = repscope.analyze(SmallResNet(), "digits", layers=["block2", {"path": "head.2", "name": "hidden"}],
                           transform=to_input, methods=["umap"], n=150, seeds=[1], out=tmp_path / "api",
                           train=True, recipe={"epochs": 2, "learning_rate": 0.05}, workers=0)
    assert run.report is not None and run.report.is_file()
    assert run.explorer is not None and '"umap/1/untrained/hidden"' in run.explorer.read_text()  # any model
    rows = run.metrics
    assert {r["representation"] for r in rows} == {"original", "block2", "hidden"}
    assert run.embedding("digits", "hidden").shape == (150, 2)
    assert run.representation("digits", "block2").shape == (150, 512)
    assert (tmp_path / "api" / "tables" / "digits" / "umap" / "hidden.csv").is_file()


def test_a_model_object_as_it_is_is_the_trained_network(tmp_path):
    from torch import nn

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    run = repscope.analyze(net, "digits", layers=["2"], methods=["tsne"], n=120, out=tmp_path / "obj", workers=0,
                           report=False)
    assert (tmp_path / "obj" / "checkpoints" / "given.pt").is_file()
    assert run.embedding("digits", "2", network="untrained").shape == (120, 2)


def _folder_bytes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_api_refuses_to_replace_a_run_without_reconfigure(tmp_path):
    """Another n, or another model object's weights, on a finished run folder: SettingsError
    naming what differs, and not a byte of the folder changes; reconfigure=True rebuilds."""
    import copy

    import torch
    from torch import nn

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    options = dict(layers=["2"], methods=["tsne"], out=tmp_path / "run", workers=0, report=False)
    repscope.analyze(net, "digits", n=120, **options)
    before = _folder_bytes(tmp_path / "run")
    with pytest.raises(SettingsError, match=r"holds a run made with other settings \(n: 100 \(the run has 120\)\); "
                                            r"pass reconfigure=True"):
        repscope.analyze(net, "digits", n=100, **options)
    with torch.no_grad():
        other = copy.deepcopy(net)
        other[1].weight += 1
    with pytest.raises(SettingsError, match=r"the model's weights \(they differ from those the run saved"):
        repscope.analyze(other, "digits", n=120, **options)
    assert _folder_bytes(tmp_path / "run") == before
    run = repscope.analyze(net, "digits", n=100, reconfigure=True, **options)
    assert {row["n"] for row in run.metrics} == {100}


# ------------------------------------------------------------------ bad input, one clear line each


def _settings(tmp_path, **options):
    return from_options(out=tmp_path / "run", **options)


def test_a_layer_that_does_not_exist_lists_the_modules(user_folder, tmp_path):
    sys.path.insert(0, str(user_folder))
    try:
        from resnet_digits import SmallResNet, to_input
    finally:
        sys.path.remove(str(user_folder))
    with pytest.raises(SettingsError, match=r"no module 'block3'; closest: block1, block2; its modules are: stem, stem.0, stem.1, block1"):
        repscope.analyze(SmallResNet, "digits", layers=["block3"], transform=to_input, n=150, out=tmp_path / "x")


def test_a_checkpoint_that_does_not_fit_is_named(user_folder, tmp_path):
    import torch

    sys.path.insert(0, str(user_folder))
    try:
        from resnet_digits import SmallResNet, to_input
    finally:
        sys.path.remove(str(user_folder))
    wrong = tmp_path / "wrong.pt"
    torch.save(SmallResNet(channels=8).state_dict(), wrong)
    with pytest.raises(SettingsError, match=r"checkpoint .*wrong.pt does not fit the model"):
        repscope.analyze(SmallResNet, "digits", layers=["block1"], transform=to_input, checkpoint=wrong, n=150,
                         out=tmp_path / "x", methods=["umap"])


def test_labels_whose_count_differs_are_named(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 4), np.float32), y=np.zeros(9, np.int64))
    with pytest.raises(DataError, match=r"bad.npz\[y\]: 9 labels for the 10 examples of .*bad.npz\[x\]; give one label"):
        repscope.analyze(lambda: None, str(tmp_path / "bad.npz"), layers=["x"], n=150, out=tmp_path / "x")


def test_a_data_source_missing_from_disk_is_named(tmp_path):
    with pytest.raises(MissingDataError, match=r"none.npz"):
        repscope.analyze(lambda: None, str(tmp_path / "none.npz"), layers=["x"], n=150, out=tmp_path / "x")


def test_n_is_bounded_by_the_source(user_folder, tmp_path):
    from repscope.engine import pipeline

    settings = from_options(run_file=user_folder / "digits.toml", out=tmp_path / "x", n=5_000)
    with pytest.raises(SettingsError, match=r"--n 5000 is more than the 1438 examples of digits"):
        pipeline.run(settings)


@pytest.mark.parametrize("text, message", [
    ("n = ", "is not valid TOML"),
    ("n = 200\ncolour = 'red'", r"unknown key\(s\) colour"),
    ("n = 200\ndatasets = ['digits']", "no model: give a run file with a \\[model\\] table"),
    ("n = 200\ndatasets = ['digits']\n[model]\nlayers = ['x']", "\\[model\\] needs factory"),
    ("n = 200\ndatasets = ['digits']\n[model]\nfactory = 'resnet_digits:build'", "\\[model\\] needs layers"),
    ("n = 200\ndatasets = ['digits']\n[model]\nfactory = 'nowhere:build'\nlayers = ['x']", "cannot import 'nowhere'"),
    ("n = 200\ndatasets = ['digits']\n[model]\nfactory = 'resnet_digits:build'\nlayers = ['x']\n[training]\nepoch = 1",
     r"\[training\]: unknown key\(s\) epoch"),
    ("preset = 'study'\ndatasets = ['digits']\n[model]\nfactory = 'resnet_digits:build'\nlayers = ['x']",
     "either preset = 'study' or a \\[model\\] table"),
])
def test_bad_run_files(user_folder, tmp_path, text, message):
    path = user_folder / f"bad-{abs(hash(text))}.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        from_options(run_file=path, out=tmp_path / "x")


def test_a_missing_run_file(tmp_path):
    with pytest.raises(SettingsError, match=r"run file .*none.toml does not exist"):
        from_options(run_file=tmp_path / "none.toml", out=tmp_path / "x")


def test_flags_override_the_run_file(user_folder, tmp_path):
    settings = from_options(run_file=user_folder / "digits.toml", out=tmp_path / "x", n=300, methods="umap")
    assert settings.n == 300 and settings.methods == ("umap",) and settings.seeds == (3,)
    assert settings.recipe.epochs == 4 and settings.datasets == ("digits",)
    assert settings.model.layers[2].key == "hidden"


def test_the_shipped_presets_are_run_files(tmp_path):
    for name, n in (("smoke", 1_000), ("paper", 5_000), ("full", 60_000)):
        settings = from_options(preset=name, out=tmp_path)
        assert settings.n == n and settings.datasets == ("mnist", "fashion-mnist") and settings.model.preset == "study"
        assert settings.recipe_for("mnist").learning_rate == 0.01
        assert settings.recipe_for("fashion-mnist").learning_rate == 0.03


# ------------------------------------------------------------------ the findings any model gets


def _cells(trained_last, untrained_last, original):
    def values(v):
        return {"ds": 1 - v, "dd": 1 + v, "cs": 1 - v, "cd": 1 + v, "acc_knn": v, "acc_knn_loo": v}

    return [{"dataset": "d", "seed": 0, "network": network, "method": "umap", "space": "embedding",
             "representation": name, **values(v)}
            for network, name, v in (("trained", "fc", trained_last), ("untrained", "fc", untrained_last),
                                     ("trained", "original", original), ("untrained", "original", original))]


def test_generic_findings():
    depths = {"d": Depths(build_representations(16, [("conv", "channels", (2, 2, 2), None), ("fc", "whole", (4,), None)]))}
    assert depths["d"].last == "fc"
    holds = check_findings(_cells(0.9, 0.5, 0.7), depths)
    assert [f.checks["d", "umap"][0].holds for f in holds] == [True, True]
    fails = check_findings(_cells(0.6, 0.8, 0.7), depths)
    assert [f.checks["d", "umap"][0].holds for f in fails] == [False, False]
    missing = check_findings(_cells(0.9, 0.5, 0.7)[:1], depths)
    assert missing[0].checks["d", "umap"][0].holds is None and "untrained fc" in missing[0].checks["d", "umap"][0].detail


def test_every_run_file_key_is_read(user_folder, tmp_path):
    path = user_folder / "all-keys.toml"
    path.write_text(RUN_FILE.replace("seeds = [3]", "seeds = [3]\nbackend = 'cpu'\nk = 15\nworkers = 1\n"
                                     "space = 'both'\njob_timeout = 60\nstore = 'elsewhere.zarr'\n"
                                     "representations = ['original', 'hidden']\nmetrics = ['probe']\n"
                                     "neighbourhood_sample = 50"))
    s = from_options(run_file=path, out=tmp_path / "x")
    assert (s.backend, s.k, s.workers, s.space, s.job_timeout) == ("cpu", 15, 1, "both", 60.0)
    assert s.metrics == ("separation", "probe") and s.neighbourhood_sample == 50
    assert s.store == str(user_folder / "elsewhere.zarr") and s.representations == ("original", "hidden")
    assert from_options(run_file=path, out=tmp_path / "x", k=5, backend="auto").k == 5  # a flag overrides the file


def test_the_study_preset_refuses_data_sets_it_has_no_recipe_for(tmp_path):
    with pytest.raises(SettingsError, match=r"the study preset trains its network on mnist, fashion-mnist only; "
                                            r"digits needs a run file with a \[model\] table"):
        from_options(preset="smoke", datasets="digits", out=tmp_path)


@pytest.mark.parametrize("recipe, message", [
    ({"epochs": "3"}, "epochs must be a whole number >= 0"),
    ({"max_attempts": 0}, "max_attempts must be a whole number >= 1"),
    ({"momentum": 2}, "momentum must be a number from 0 to 1"),
])
def test_bad_recipes(user_folder, tmp_path, recipe, message):
    with pytest.raises(SettingsError, match=message):
        from_options(run_file=user_folder / "digits.toml", recipe=recipe, out=tmp_path / "x")


def test_an_object_whose_parameters_cannot_be_reinitialised_is_refused(tmp_path):
    import torch
    from torch import nn

    class WithToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.zeros(64))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1) + self.token)

    with pytest.raises(SettingsError, match=r"leaves token unchanged .* give the model as a factory"):
        repscope.analyze(WithToken(), "digits", layers=["fc"], n=120, out=tmp_path / "x", methods=["tsne"])


def test_a_model_object_is_saved_once(tmp_path):
    import torch
    from torch import nn

    from repscope.engine.api import model_spec

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model_spec(net, ["1"], out=tmp_path)
    saved = tmp_path / "checkpoints" / "given.pt"
    stamp = saved.stat().st_mtime_ns
    model_spec(net, ["1"], out=tmp_path)
    assert saved.stat().st_mtime_ns == stamp, "the same weights are not written again"
    with torch.no_grad():
        net[1].weight += 1
    model_spec(net, ["1"], out=tmp_path)
    assert saved.stat().st_mtime_ns != stamp
