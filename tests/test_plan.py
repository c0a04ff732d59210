"""A run's plan: sizes, the refusal of what does not fit, and the bound it promises."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from repscope.engine import cli
from repscope.engine.errors import SettingsError
from repscope.engine.plan import LayerPlan, Plan, check, folder_size, parse_size

MODEL = '''
from torch import nn


def build():
    # 32 x 32 x 32 = 32 768 values per example at "0"
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 32 * 32, 4))


def to_input(images):
    return images.unsqueeze(1)
'''


@pytest.fixture
def run_file(tmp_path):
    """A run file on 200 random 32 x 32 images of four classes (.npy), the model above, UMAP."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (200, 32, 32), dtype=np.uint8))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, 200))
    (tmp_path / "wide_model.py").write_text(MODEL)

    def write(reduce: str = "none") -> str:
        path = tmp_path / f"run-{reduce.replace(':', '')}.toml"
        path.write_text(textwrap.dedent(f"""
            n = 200
            datasets = [{{source = "npy", x = "x.npy", y = "y.npy", name = "images"}}]
            methods = ["umap"]
            seeds = [0]
            [model]
            factory = "wide_model:build"
            transform = "wide_model:to_input"
            layers = [{{path = "0", reduce = "{reduce}"}}, "3"]
            [training]
            epochs = 0
        """))
        return str(path)

    return write


@pytest.mark.parametrize("given, size", [(1000, 1000), (2.5e9, 2_500_000_000), ("200MB", 200_000_000),
                                         ("200 mb", 200_000_000), ("2GiB", 2**31), ("1.5KiB", 1536), ("7", 7)])
def test_sizes_take_si_and_iec_units(given, size):
    assert parse_size(given) == size


@pytest.mark.parametrize("given", ["", "MB", "2 parsecs", "-5MB", 0, -1, True, "nan", "1e999"])
def test_bad_sizes_are_one_line(given):
    with pytest.raises(SettingsError, match="--max-disk must be a"):
        parse_size(given)


def test_the_plan_is_printed_and_nothing_is_written(tmp_path, run_file, capsys):
    out = tmp_path / "run"
    assert cli.main(["plan", run_file(), "--out", str(out), "--backend", "cpu"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["data", "set", "layer", "read"]
    assert lines[1].split()[:6] == ["images", "0", "32x32x32", "32768", "none", "32768"]
    assert "52.4 MB" in lines[1]  # 200 examples x 32 768 values x 4 bytes x 2 networks
    assert any(line.startswith("disk: ") for line in lines) and any(line.startswith("free: ") for line in lines)
    assert not out.exists()


def test_a_run_that_does_not_fit_is_refused_before_work_and_fits_reduced(tmp_path, run_file, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", run_file(), "--out", str(out), "--backend", "cpu", "--max-disk", "20MB"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1  # one line (beside any log lines)
    err = errors[0]
    assert err.startswith("error: the run needs up to ") and "more than max_disk 20 MB" in err
    assert "its widest layers are 0 (32768 values per example, 52.4 MB)" in err and '"avgpool" (32 values)' in err
    assert not out.exists()

    assert cli.main(["plan", run_file("avgpool"), "--out", str(out), "--backend", "cpu", "--max-disk", "20MB"]) == 0
    planned = int(capsys.readouterr().out.count("\n"))
    assert planned >= 5
    assert cli.main(["run", run_file("avgpool"), "--out", str(out), "--backend", "cpu", "--max-disk", "20MB",
                     "--workers", "0"]) == 0
    from repscope.engine.pipeline import make_plan
    from repscope.engine.settings import from_options

    plan = make_plan(from_options(out=tmp_path / "elsewhere", run_file=run_file("avgpool"), backend="cpu"))
    size = folder_size(out)
    assert size <= plan.disk_bytes <= parse_size("20MB")
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["max_disk"] == 20_000_000
    assert [r["name"] for r in config["representations"]["images"]] == ["original", "0[avgpool]", "3"]


def test_max_disk_does_not_define_the_run(tmp_path, run_file, capsys):
    """A rerun with another max_disk (or none) rebuilds nothing and is not refused."""
    from repscope.engine.settings import contradictions, from_options

    first = from_options(out=tmp_path / "run", run_file=run_file(), max_disk="1GB")
    again = from_options(out=tmp_path / "run", run_file=run_file())
    assert contradictions(again, first.as_record()) == []


def test_free_space_is_a_limit_too():
    layer = LayerPlan("d", "conv", (64, 128, 128), 1 << 20, None, 1 << 20, 4_000_000_000)
    plan = Plan(Path("runs/x"), 500, (0,), (layer,), 4_100_000_000, 10**9,
                free_bytes=1_000_000_000)
    with pytest.raises(SettingsError, match=r"more than the 1 GB free on the disk of runs/x: its widest layers are "
                                            r"conv \(1048576 values per example, 4 GB\); reduce = \"avgpool\""):
        check(plan)
    check(Plan(plan.out, 500, (0,), (layer,), 4_100_000_000, 10**9, free_bytes=1_000_000_000,
               existing_bytes=3_500_000_000))  # a rerun needs only what is not there yet


def test_small_batches_for_wide_activations_give_the_same_arrays(tmp_path, run_file, monkeypatch):
    """A chunk goes through the networks in several batches where its activations are wide."""
    from repscope.engine import extract
    from repscope.store import RunStore

    outs = {}
    for name, budget in (("whole", extract.FORWARD_BYTES), ("batched", 4 * 32 * 32 * 32 * 4 * 7)):
        monkeypatch.setattr(extract, "FORWARD_BYTES", budget)
        assert cli.main(["extract", run_file(), "--out", str(tmp_path / name), "--backend", "cpu"]) == 0
        outs[name] = np.asarray(RunStore(tmp_path / name / "store.zarr").read("images/seed0/trained/0"))
    assert outs["whole"].shape == (200, 32, 32, 32)
    np.testing.assert_allclose(outs["batched"], outs["whole"], rtol=1e-6, atol=1e-6)
