"""The command line: exit codes and messages a person sees."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _engine(*args, env_root=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True)


def test_help_lists_the_stages():
    out = _engine("--help").stdout
    for command in ("data", "train", "extract"):
        assert command in out


def test_fetch_with_no_source_is_one_clear_line(tmp_path):
    proc = _engine("data", "fetch", "--dataset", "mnist", "--source", "existing", "--root", str(tmp_path))
    assert proc.returncode == 2
    assert "error: could not fetch mnist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.network
def test_bad_n_is_one_clear_line(data_root, tmp_path):
    proc = _engine("extract", "--dataset", "mnist", "--n", "0", "--root", str(data_root), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "error: --n must be a whole number from 1 to 60000; got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.network
def test_fetch_logs_the_source_and_checksums(data_root):
    proc = _engine("data", "fetch", "--root", str(data_root))
    assert proc.returncode == 0, proc.stderr
    assert "data source:" in proc.stderr and "sha256" in proc.stderr
