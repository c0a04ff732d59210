"""Stopping a run: SIGTERM and SIGHUP stop it as Ctrl-C does (exit 130, what was complete is
kept), and no worker process outlives it, not even when the run is killed outright."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from repscope.engine import pipeline
from repscope.engine.settings import from_options
from repscope.engine.signals import interrupt_on_signals
from repscope.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "interrupted; what was complete is kept, and a rerun finishes the rest"
# 300 digits, t-SNE only, five representations: nine jobs of a second or two each on two
# workers, so that a signal sent once one of them is complete finds both workers mid-job.
RUN_FILE = """
n = 300
datasets = ["digits"]
methods = ["tsne"]
seeds = [0]

[model]
factory = "resnet_digits:build"
transform = "resnet_digits:to_input"
layers = [{ path = "stem", split = "channels", max_channels = 2 }, { path = "head.2", name = "hidden" }]

[training]
epochs = 1
learning_rate = 0.05
"""
#: Seconds the run and all its processes get to end after a signal.
GRACE = 10.0


def _settings(out: Path, folder: Path):
    return from_options(out=out, run_file=folder / "run.toml", backend="cpu", workers=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A user's folder: the network's module, the run file, and a run trained and extracted (``prepared``)."""
    folder = tmp_path_factory.mktemp("signals")
    shutil.copy(ROOT / "examples" / "resnet_digits.py", folder / "resnet_digits.py")
    (folder / "run.toml").write_text(RUN_FILE)
    settings = _settings(folder / "prepared", folder)
    pipeline.run(settings, ("fetch", "train", "extract"))
    jobs = pipeline.jobs_for(settings, pipeline.recorded_representations(settings.out, settings.datasets))
    (folder / "embeddings.txt").write_text("\n".join(job.store_key for job in jobs))
    return folder


def _embeddings(out: Path) -> list[str]:
    """The store keys of the run's embeddings (nine)."""
    return (out.parent / "embeddings.txt").read_text().split("\n")


@pytest.fixture(scope="module")
def reference(folder) -> Path:
    """The prepared run embedded and evaluated undisturbed."""
    out = folder / "reference"
    shutil.copytree(folder / "prepared", out)
    pipeline.run(_settings(out, folder), ("embed", "evaluate"))
    return out


def _start(folder: Path, name: str, *options: str) -> tuple[subprocess.Popen, Path]:
    """``repscope run`` on a copy of the prepared run (so it goes straight to its embedding jobs)."""
    out = folder / name
    shutil.copytree(folder / "prepared", out)
    with open(folder / f"{name}.stderr", "w") as stderr:  # a file, not a pipe that could fill up
        proc = subprocess.Popen([sys.executable, "-m", "repscope", "run", str(folder / "run.toml"), "--out", str(out),
                                 "--backend", "cpu", "--workers", "2", *options],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    return proc, out


def _states(out: Path) -> dict[str, bool]:
    """Each embedding begun so far: whether it is complete."""
    store = RunStore(out / "store.zarr")
    states = {}
    for key in _embeddings(out):
        info = store.info(key)
        if info is not None:
            states[key] = bool(info.get("complete"))
    return states


def _is_worker(process: psutil.Process) -> bool:
    try:
        return "--multiprocessing-fork" in process.cmdline()
    except psutil.Error:
        return False


def _wait_until_busy(proc: subprocess.Popen, out: Path, stderr: Path, timeout: float = 180.0):
    """Wait until the run has its two workers, an embedding complete and another begun (the
    workers are then mid-job); return every process below the run's, and the embeddings begun
    but not complete."""
    main = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended early ({proc.returncode}): {stderr.read_text()[-3000:]}"
        workers = [p for p in main.children() if _is_worker(p)]
        states = _states(out)
        if len(workers) == 2 and any(states.values()) and not all(states.values()):
            return main.children(recursive=True), {k for k, done in states.items() if not done}
        time.sleep(0.1)
    raise AssertionError(f"the workers never got busy: {stderr.read_text()[-3000:]}")


def _still_running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running (a zombie, waiting for its new parent to reap it, is not) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in processes:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _describe(processes) -> list[str]:
    described = []
    for p in processes:
        try:
            described.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            described.append(str(p.pid))
    return described


def _kill_all(processes) -> None:
    """Clean up after a failed assertion: the test's own processes, by id."""
    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass


# ------------------------------------------------------------------ in one process


def test_the_signals_raise_keyboardinterrupt_and_the_handlers_come_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for signum in before:
        with pytest.raises(KeyboardInterrupt, match=signum.name), interrupt_on_signals():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # never reached: the handler raises as soon as os.kill returns
        assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("how", ["prctl", "thread"])
def test_a_child_ends_itself_when_its_parent_is_killed(tmp_path, how):
    """``end_with_parent``: the kernel's parent-death signal on Linux, the watching thread elsewhere."""
    if how == "prctl" and not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux's")
    pid_file = tmp_path / "child.pid"
    child = textwrap.dedent(f"""
        import os, sys, time
        from repscope.engine import signals
        if {how == "thread"}:
            signals._set_parent_death_signal = lambda: False
        how = signals.end_with_parent(int(sys.argv[1]), interval=0.2)
        open({str(pid_file)!r}, "w").write(f"{{os.getpid()}} {{how}}")
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {child!r}, str(os.getpid())])
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT)
    children = []
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and " " in pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        children = psutil.Process(proc.pid).children()
        pid, used = pid_file.read_text().split()
        assert used == how and [c.pid for c in children] == [int(pid)]
        proc.kill()
        proc.wait()
        assert not _still_running(children, 3.0), "the child outlived its parent"
    finally:
        proc.kill()
        _kill_all(children)


# ------------------------------------------------------------------ a real run, stopped


def _stop_and_check(folder: Path, name: str, signum: signal.Signals, *options: str):
    """Start a run, send ``signum`` once its workers are busy, and check that it and every
    process it started end; return the run folder and the embeddings in flight at the signal."""
    proc, out = _start(folder, name, *options)
    stderr_file = folder / f"{name}.stderr"
    processes = []
    try:
        processes, in_flight = _wait_until_busy(proc, out, stderr_file)
        signalled = time.monotonic()
        proc.send_signal(signum)
        returncode = proc.wait(timeout=60)
        left = _still_running(processes, max(0.0, GRACE - (time.monotonic() - signalled)))
        ended = time.monotonic() - signalled
        stderr = stderr_file.read_text()
        assert not left, f"still running {ended:.1f} s after {signum.name}: {_describe(left)}"
        assert returncode == 130, stderr[-3000:]
        assert MESSAGE in stderr and "Traceback" not in stderr, stderr[-3000:]
        print(f"{signum.name}: the run and its {len(processes)} processes ended within {ended:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(processes)
    return out, in_flight


@pytest.mark.parametrize("signum", [
    pytest.param(signal.SIGTERM, id="SIGTERM"),
    pytest.param(signal.SIGHUP, id="SIGHUP", marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, id="SIGINT", marks=pytest.mark.slow),  # Ctrl-C, sent to the run alone
])
def test_a_signal_stops_the_run_and_its_workers_and_a_rerun_finishes(folder, reference, signum):
    out, in_flight = _stop_and_check(folder, f"stopped-{signum.name}", signum)
    states = _states(out)
    kept = [key for key, done in states.items() if done]
    assert 1 <= len(kept) < len(_embeddings(out)) == 9, states
    # nothing half-written is complete: a job killed mid-way left its embedding incomplete,
    # and every complete one is the undisturbed run's, bit for bit
    assert set(states) - set(kept), f"no job was stopped mid-way (in flight at the signal: {in_flight})"
    store, whole = RunStore(out / "store.zarr"), RunStore(reference / "store.zarr")
    for key in kept:
        assert np.array_equal(store.array(key)[:], whole.array(key)[:]), key
    pipeline.run(_settings(out, folder), ("embed", "evaluate"))
    assert all(_states(out).values()) and len(_states(out)) == 9
    assert (out / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


@pytest.mark.slow
def test_a_signal_stops_a_dask_run_and_its_cluster(folder):
    """The Dask scheduler's LocalCluster closes on the interrupt too (its nannies kill busy workers)."""
    pytest.importorskip("distributed")
    out, _ = _stop_and_check(folder, "stopped-dask", signal.SIGTERM, "--scheduler", "dask")
    assert 1 <= sum(_states(out).values()) < 9


@pytest.mark.slow
def test_the_workers_end_when_the_run_is_killed_outright(folder):
    proc, out = _start(folder, "killed")
    processes = []
    try:
        processes, _ = _wait_until_busy(proc, out, folder / "killed.stderr")
        workers = [p for p in processes if _is_worker(p)]
        assert len(workers) == 2
        killed = time.monotonic()
        proc.kill()
        assert proc.wait(timeout=30) == -signal.SIGKILL
        left = _still_running(processes, GRACE)
        ended = time.monotonic() - killed
        assert not left, f"still running {ended:.1f} s after the run was killed: {_describe(left)}"
        print(f"SIGKILL: the run's {len(processes)} processes ended within {ended:.2f} s")
    finally:
        _kill_all(processes)
    assert sum(_states(out).values()) < 9
