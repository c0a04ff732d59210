"""The command line: exit codes and messages a person sees."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


def _engine(*args):
    return subprocess.run([sys.executable, "-m", "repscope", *args], cwd=ROOT, capture_output=True, text=True)


def test_help_lists_the_stages():
    out = _engine("--help").stdout
    assert out.startswith("usage: repscope ")
    for command in ("data", "train", "extract"):
        assert command in out


def test_the_console_script_and_the_version():
    import repscope

    script = Path(sys.executable).with_name("repscope")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"repscope {repscope.__version__}"
    assert "usage: repscope run [-h]" in subprocess.run([str(script), "run", "--help"], capture_output=True,
                                                        text=True).stdout


def test_a_run_file_and_a_preset_together_are_refused(tmp_path):
    proc = _engine("run", str(tmp_path / "x.toml"), "--preset", "smoke", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "give a run file" in proc.stderr and "not both" in proc.stderr


def test_the_wheel_installs_only_repscope(tmp_path):
    """One import name: the wheel holds repscope/ (with engine, kernels, store beneath it) and its metadata."""
    import shutil
    import zipfile

    source = tmp_path / "source"  # a copy, so that no build folder is left in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "runs", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("repscope-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"repscope", wheel.name.split("-py3")[0] + ".dist-info"}
    for member in ("repscope/engine/presets/paper.toml", "repscope/engine/templates/report.html",
                   "repscope/kernels/cuda/pair_sums_2d.cu", "repscope/store/layout.py", "repscope/__main__.py"):
        assert member in names
    entry = zipfile.ZipFile(wheel).read(wheel.name.split("-py3")[0] + ".dist-info/entry_points.txt").decode()
    assert "repscope = repscope.engine.cli:main" in entry


def test_fetch_with_no_source_is_one_clear_line(tmp_path):
    proc = _engine("data", "fetch", "--dataset", "mnist", "--source", "existing", "--root", str(tmp_path))
    assert proc.returncode == 2
    assert "error: could not fetch mnist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.network
@pytest.mark.parametrize("n, message", [
    ("0", "error: --n must be a whole number >= 1; got 0"),
    ("60001", "error: --n 60001 is more than the 60000 examples of mnist; give --n 60000 or less"),
])
def test_bad_n_is_one_clear_line(data_root, tmp_path, n, message):
    proc = _engine("extract", "--dataset", "mnist", "--n", n, "--root", str(data_root), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.network
def test_fetch_logs_the_source_and_checksums(data_root):
    proc = _engine("data", "fetch", "--root", str(data_root))
    assert proc.returncode == 0, proc.stderr
    assert "data source:" in proc.stderr and "sha256" in proc.stderr


def test_progress_is_log_lines_off_a_terminal_and_verbosity_goes_anywhere(data_root):
    proc = _engine("data", "fetch", "--root", str(data_root))  # stderr is a pipe here: no bar redrawn into it
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    assert "repscope.progress: fetch mnist: 0/3 source" in proc.stderr
    assert "repscope.progress: fetch mnist: 0/3 source (existing), done in" in proc.stderr  # found at the first
    for args in (("-q", "data", "fetch"), ("data", "-q", "fetch"), ("data", "fetch", "-q")):
        quiet = _engine(*args, "--root", str(data_root))
        assert quiet.returncode == 0 and "INFO" not in quiet.stderr and "fetch mnist" not in quiet.stderr, args
    from repscope.engine.cli import _parser

    for args in (["-v", "report"], ["report", "-v"], ["data", "fetch", "--verbose"], ["data", "-v", "fetch"]):
        parsed = _parser().parse_args(args)
        assert parsed.verbose and not parsed.quiet, args
    assert not _parser().parse_args(["data", "fetch"]).verbose


def test_bars_only_on_a_terminal_that_shows_info(monkeypatch):
    import io
    import logging

    from repscope.engine.progress import LogProgress, progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    logger = logging.getLogger("repscope")
    level = logger.level
    try:
        monkeypatch.setattr(sys, "stderr", Terminal())
        logger.setLevel(logging.INFO)
        assert not isinstance(progress_bar(range(2), desc="x", disable=True), LogProgress)  # a tqdm bar
        logger.setLevel(logging.WARNING)  # -q
        assert isinstance(progress_bar(range(2), desc="x"), LogProgress)
        monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
        logger.setLevel(logging.INFO)
        assert isinstance(progress_bar(range(2), desc="x"), LogProgress)
    finally:
        logger.setLevel(level)


def _saved(tmp_path, **arrays):
    paths = []
    for name, value in arrays.items():
        np.save(tmp_path / f"{name}.npy", value)
        paths.append(str(tmp_path / f"{name}.npy"))
    return paths


def test_metrics_prints_every_metric(tmp_path):
    import json

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    emb, lab = _saved(tmp_path, emb=rng.normal(size=(200, 2)) + y[:, None], lab=y)
    proc = _engine("metrics", emb, lab)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "avg", "ds", "dd", "cs", "cd", "acc_knn", "acc_knn_loo"]
    proc = _engine("metrics", emb, lab, "--json", "--k", "5")
    values = json.loads(proc.stdout)
    assert list(values) == ["avg", "ds", "dd", "cs", "cd", "acc_knn", "acc_knn_loo"]
    assert values["acc_knn"] >= values["acc_knn_loo"] > 0.5


@pytest.mark.parametrize("emb, lab, message", [
    (np.zeros((1, 2)), np.zeros(1, int), "at least 2 points"),
    (np.zeros((5, 2)), np.zeros(4, int), "4 labels for 5 points"),
    (np.full((3, 2), np.nan), np.zeros(3, int), "NaN or Inf"),
    (np.zeros((3, 2)), np.zeros(3), "integer dtype"),
    (np.zeros((3, 2, 2)), np.zeros(3, int), "2-D"),
])
def test_metrics_bad_input_is_one_clear_line(tmp_path, emb, lab, message):
    proc = _engine("metrics", *_saved(tmp_path, emb=emb, lab=lab))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_metrics_missing_or_foreign_file(tmp_path):
    (tmp_path / "text.npy").write_text("not an array")
    proc = _engine("metrics", str(tmp_path / "none.npy"), str(tmp_path / "text.npy"))
    assert proc.returncode == 2 and "none.npy does not exist" in proc.stderr
    proc = _engine("metrics", str(tmp_path / "text.npy"), str(tmp_path / "text.npy"))
    assert proc.returncode == 2 and "not a readable .npy array" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--preset", "huge"], "--preset: unknown 'huge'"),
    (["run", "--methods", "tsne,pca"], "--methods: unknown 'pca'"),
    (["embed", "--seeds", "1,1"], "--seeds must be distinct"),
])
def test_run_settings_are_checked_before_any_work(tmp_path, args, message):
    proc = _engine(*args, "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_embed_before_extract_is_one_clear_line(tmp_path):
    proc = _engine("embed", "--preset", "smoke", "--backend", "cpu", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "run `repscope extract --out" in proc.stderr

