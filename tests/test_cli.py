"""The command line: exit codes and messages a person sees."""

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


def _engine(*args):
    return subprocess.run([sys.executable, "-m", "repscope", *args], cwd=ROOT, capture_output=True, text=True)


def _one_line(proc, code: int) -> str:
    """The one ``error:`` line of a command that exited with ``code`` and printed no traceback."""
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


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
    assert "Warning" not in proc.stderr and "would be ignored" not in proc.stderr, proc.stderr[-2000:]
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
    assert proc.returncode == 3  # data
    assert "error: could not fetch mnist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.network
@pytest.mark.parametrize("n, message", [
    ("0", "error: --n must be a whole number >= 1; got 0"),
    ("60001", "error: --n 60001 is more than the 60000 examples of mnist; give --n 60000 or less"),
])
def test_bad_n_is_one_clear_line(data_root, tmp_path, n, message):
    proc = _engine("extract", "--dataset", "mnist", "--n", n, "--root", str(data_root), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # checked against the data before any folder is made


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
    assert proc.returncode == 3 and message in proc.stderr and "Traceback" not in proc.stderr  # the files' content


def test_metrics_missing_or_foreign_file(tmp_path):
    (tmp_path / "text.npy").write_text("not an array")
    proc = _engine("metrics", str(tmp_path / "none.npy"), str(tmp_path / "text.npy"))
    assert proc.returncode == 3 and "none.npy does not exist" in proc.stderr
    proc = _engine("metrics", str(tmp_path / "text.npy"), str(tmp_path / "text.npy"))
    assert proc.returncode == 3 and "text.npy is not a .npy file" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--preset", "huge"], "--preset: unknown 'huge'"),
    (["run", "--methods", "tsne,pca"], "--methods: unknown 'pca'"),
    (["embed", "--seeds", "1,1"], "--seeds must be distinct"),
    (["run", "--preset", "smoke", "--n", "300", "--k", "400"], "--k must be less than N = 300"),
    (["run", "--preset", "smoke", "--k", "0"], "--k must be a whole number >= 1; got 0"),
    (["embed", "--preset", "smoke", "--seeds", "4294967296"], "whole numbers from 0 to 4294967295"),
    (["train", "--preset", "smoke", "--seed", "99999999999999999999"], "whole numbers from 0 to 4294967295"),
])
def test_run_settings_are_checked_before_any_work(tmp_path, args, message):
    proc = _engine(*args, "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_embed_before_extract_is_one_clear_line(tmp_path):
    proc = _engine("embed", "--preset", "smoke", "--backend", "cpu", "--out", str(tmp_path / "run"))
    assert proc.returncode == 3 and "run `repscope extract --out" in proc.stderr



def test_seeds_span_what_every_library_takes(tmp_path):
    """numpy's RandomState (so scikit-learn's and openTSNE's random_state) is the tightest: 0 .. 2**32 - 1."""
    import torch
    from sklearn.utils import check_random_state

    from repscope.engine.errors import SettingsError
    from repscope.engine.settings import MAX_SEED, from_options

    assert MAX_SEED == 2**32 - 1
    np.random.RandomState(MAX_SEED), check_random_state(MAX_SEED), torch.manual_seed(MAX_SEED)
    with pytest.raises(ValueError):
        np.random.RandomState(MAX_SEED + 1)
    assert from_options(out=tmp_path / "run", preset="smoke", seeds=[0, MAX_SEED]).seeds == (0, MAX_SEED)
    with pytest.raises(SettingsError, match="from 0 to 4294967295"):
        from_options(out=tmp_path / "run", preset="smoke", seeds=[MAX_SEED + 1])


def test_a_refused_gpu_backend_makes_no_folder(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("PyTorch sees a CUDA device here")
    proc = _engine("run", "--preset", "smoke", "--backend", "gpu", "--out", str(tmp_path / "run"))
    assert "--backend gpu: PyTorch sees no CUDA device" in _one_line(proc, 2)
    assert not (tmp_path / "run").exists()


def test_several_bad_values_are_reported_together(tmp_path):
    proc = _engine("run", "--preset", "smoke", "--n", "0", "--seeds=-1", "--backend", "tpu", "--methods", "tsne,pca",
                   "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: 4 problems:" in proc.stderr
    for message in ("--backend: unknown 'tpu'", "--n must be a whole number >= 1; got 0", "--methods: unknown 'pca'",
                    "--seeds must be distinct whole numbers from 0 to 4294967295"):
        assert message in proc.stderr
    assert not (tmp_path / "run").exists()


def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = _engine("run", "--preset", "smoke", "--out", str(afile))
    assert f"--out {afile} is a file, not a folder" in _one_line(proc, 2)
    proc = _engine("train", "--preset", "smoke", "--out", str(afile / "sub" / "run"))
    assert f"{afile} is a file, so no folder can be made under it" in _one_line(proc, 2)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes where permissions forbid it")
def test_an_out_that_cannot_be_written_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        proc = _engine("run", "--preset", "smoke", "--out", str(locked / "run"))
        assert "cannot be written (permission denied)" in _one_line(proc, 2)
        assert not (locked / "run").exists()
    finally:
        locked.chmod(0o700)


def test_check_out_names_a_folder_it_cannot_write(tmp_path, monkeypatch):
    """The same check as above, where permissions are not enforced (root): os.access says no."""
    from repscope.engine import settings
    from repscope.engine.errors import SettingsError

    monkeypatch.setattr(settings.os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(SettingsError, match=re.escape(f"--out {tmp_path / 'run'}: {tmp_path}, where it would be made, "
                                                      "cannot be written (permission denied)")):
        settings.check_out(tmp_path / "run")
    (tmp_path / "other").mkdir()
    assert settings.check_out(tmp_path / "other" / "run") == tmp_path / "other" / "run"


@pytest.mark.parametrize("command", [["report"], ["evaluate", "--preset", "smoke", "--backend", "cpu"]])
def test_an_unreadable_config_json_is_one_line(tmp_path, command):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"settings": {"n": 10')  # cut short
    (run / "metrics.csv").write_text("dataset\n")
    line = _one_line(_engine(*command, "--out", str(run)), 3)
    assert f"{run / 'config.json'} is not readable JSON" in line and "delete it and rerun" in line


@pytest.mark.parametrize("make, message", [
    (lambda run: run.mkdir(), "is not a run folder (no config.json with a run's settings)"),
    (lambda run: run.write_text("x"), str(Path("run"))),
    (lambda run: (run.mkdir(), (run / "config.json").write_text("{}"), (run / "metrics.csv").write_text("x\n")),
     "is not a run folder (no config.json with a run's settings)"),
    (lambda run: (run.mkdir(), (run / "config.json").write_text('{"settings": {"n": 1}}'),
                  (run / "metrics.csv").write_text("x\n")), "store.zarr does not exist yet; the extract stage makes it"),
])
def test_report_on_what_is_not_a_run_folder_is_one_line(tmp_path, make, message):
    make(tmp_path / "run")
    assert message in _one_line(_engine("report", "--out", str(tmp_path / "run")), 3)


def test_report_k_is_checked(tmp_path):
    proc = _engine("report", "--out", str(tmp_path), "--k", "0")
    assert "--k must be a whole number >= 1; got 0" in _one_line(proc, 2)


def test_metrics_k_must_be_less_than_n(tmp_path):
    rng = np.random.default_rng(0)
    emb, lab = _saved(tmp_path, emb=rng.normal(size=(50, 2)), lab=rng.integers(0, 3, 50))
    assert "--k must be less than N = 50" in _one_line(_engine("metrics", emb, lab, "--k", "100"), 2)
    assert _engine("metrics", emb, lab, "--k", "49").returncode == 0


def test_a_truncated_checkpoint_names_the_file(tmp_path):
    import torch

    from repscope.engine.errors import EXIT_DATA, DataError
    from repscope.engine.model import Layer, ModelSpec
    from repscope.engine.train import build, load_network

    spec = ModelSpec(factory=lambda: torch.nn.Linear(4, 3), layers=(Layer("weight"),))
    path = tmp_path / "untrained.pt"
    torch.save({"state_dict": build(spec, 0).state_dict()}, path)
    load_network(spec, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError) as info:
        load_network(spec, path)
    message = str(info.value)
    assert f"checkpoint {path} is unreadable or damaged" in message and "delete it and rerun" in message
    assert "\n" not in message and info.value.exit_code == EXIT_DATA


def test_a_full_disk_is_one_line_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    from repscope.engine import cli, report, runinfo
    from repscope.engine.pipeline import _record_job_times

    run = tmp_path / "run"
    runinfo.update_run_config(run, {"settings": {"n": 1}})
    (run / "store.zarr").mkdir()  # a run past extraction: the commands that read its store go on
    (run / "jobs.csv").write_text("job,embedder,seconds\nearlier,opentsne,1.0\n")
    before = {name: (run / name).read_text() for name in ("config.json", "jobs.csv")}
    write_text = Path.write_text

    def full(self, text, *args, **kwargs):  # half the text fits, then the disk is full
        write_text(self, text[:len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    for write, name in ((lambda: runinfo.update_run_config(run, {"timings": {"x": 1}}), "config.json"),
                        (lambda: _record_job_times(run, None, []), "jobs.csv")):
        with pytest.raises(OSError) as info:
            write()
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(run / name)
    assert {name: (run / name).read_text() for name in before} == before and not list(run.glob("*.partial"))

    monkeypatch.setattr(report, "build_report", lambda out, k: runinfo.update_run_config(out, {"report": {}}))
    capsys.readouterr()
    assert cli.main(["report", "--out", str(run)]) == 3
    err = capsys.readouterr().err
    assert err.strip() == (f"error: no space left on device writing {run / 'config.json'}; free space and rerun: "
                           "what was complete is kept")

    def full_disk(out, k):  # an error naming no file, and one wrapped in another
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise RuntimeError("the store could not write a chunk") from exc

    monkeypatch.setattr(report, "build_report", full_disk)
    assert cli.main(["report", "--out", str(run)]) == 3
    assert f"error: no space left on device writing {run};" in capsys.readouterr().err


def test_every_option_shows_its_values_and_default():
    """--help of every command: each option that takes a value says its default (or that it is required)."""
    import argparse

    from repscope.engine.cli import _parser

    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    seen = 0
    for parser in parsers(_parser()):
        text = parser.format_help()
        assert "None" not in text, parser.prog
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                assert "default" in (action.help or ""), (parser.prog, action.option_strings)
                seen += 1
    assert seen > 30
    run_help = next(p for p in parsers(_parser()) if p.prog == "repscope run").format_help()
    for shown in ("auto, cpu, gpu", "tsne, umap", "0 to 4294967295", "embedding, representation, both",
                  "{local,dask}", "1 to N - 1"):
        assert shown in " ".join(run_help.split()), shown


# ------------------------------------------------------------------ stage commands on a run folder


RUN_FILE = """
n = 120
datasets = ["digits"]
methods = ["tsne"]
seeds = [0]
workers = 0

[model]
factory = "tinynet:build"
layers = ["2"]

[training]
epochs = 1
"""


@pytest.mark.slow
def test_stage_commands_read_the_run_folder_and_refuse_to_change_it(tmp_path):
    import json

    from repscope.engine.lock import run_lock

    (tmp_path / "tinynet.py").write_text("from torch import nn\n\ndef build():\n    return nn.Sequential("
                                         "nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))\n")
    (tmp_path / "tiny.toml").write_text(RUN_FILE)
    out = tmp_path / "run"
    proc = _engine("-q", "extract", str(tmp_path / "tiny.toml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = _engine("-q", "embed", "--out", str(out))  # no run file: the folder's own settings
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["n"] == 120 and config["settings"]["preset"] == str(tmp_path / "tiny.toml")
    message = _one_line(_engine("evaluate", "--out", str(out), "--n", "200", "--k", "5"), 2)
    assert "holds a run made with other settings (n: 200 (the run has 120); k: 5 (the run has 10))" in message
    assert "--reconfigure" in message
    assert _engine("-q", "evaluate", "--out", str(out)).returncode == 0
    assert (out / "metrics.csv").read_text().count("digits,0,") == 4  # original (shared) and 2, both networks
    assert json.loads((out / "config.json").read_text())["settings"] == config["settings"]
    again = _engine("-q", "embed", "--out", str(out))  # nothing to do: the embed time of the run that did it stays
    assert again.returncode == 0
    assert json.loads((out / "config.json").read_text())["timings"]["embed"] == config["timings"]["embed"]
    with run_lock(out):
        line = _one_line(_engine("-q", "evaluate", "--out", str(out)), 5)
        assert f"pid {os.getpid()}" in line and "in use by another repscope process" in line


@pytest.mark.parametrize("command", ["verify", "report", "explore", "evaluate", "embed"])
@pytest.mark.parametrize("folder", ["ordinary", "new", "settings only"])
def test_commands_that_read_a_run_refuse_what_is_not_one_and_write_nothing(tmp_path, command, folder):
    """On an ordinary folder, a path that does not exist, or a run folder whose store the extract
    stage has not made yet: one line naming the folder, exit 3, not a file written."""
    out = tmp_path / "out"
    if folder != "new":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    if folder == "settings only":
        (out / "config.json").write_text('{"settings": {"n": 100, "preset": "smoke"}}')
    before = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = _one_line(_engine(command, "--out", str(out)), 3)
    assert str(out) in line
    assert ("the extract stage makes it" if folder == "settings only" else "is not a run folder") in line
    assert {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert out.exists() == (folder != "new")


def test_verify_of_a_folder_that_is_no_run_leaves_it_as_it_was(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "is not a run folder" in _one_line(_engine("verify", "--out", str(empty)), 3)
    assert list(empty.iterdir()) == []


def test_a_run_folder_that_turns_read_only_is_one_line(tmp_path, monkeypatch, capsys):
    """Writes that fail mid-run because the folder became read-only or unwritable: one line, exit 3."""
    from repscope.engine import cli, report, runinfo

    run = tmp_path / "run"
    runinfo.update_run_config(run, {"settings": {"n": 1}})
    (run / "store.zarr").mkdir()  # a run past extraction: the commands that read its store go on
    for code, words in ((errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
                        (errno.EPERM, "operation not permitted")):
        def unwritable(out, k, code=code):
            try:
                raise OSError(code, os.strerror(code), str(run / "store.zarr" / "c" / "0"))
            except OSError as exc:
                raise RuntimeError("the store could not write a chunk") from exc

        monkeypatch.setattr(report, "build_report", unwritable)
        capsys.readouterr()
        assert cli.main(["report", "--out", str(run)]) == 3
        err = capsys.readouterr().err
        assert err.strip() == (f"error: {words} writing {run / 'store.zarr' / 'c' / '0'}; make the run folder "
                               "writable (or give another --out) and rerun: what was complete is kept")
    assert not (run / ".repscope.lock").exists()
