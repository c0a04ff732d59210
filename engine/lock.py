"""One writer per run folder: the lock every writing command holds.

``run_lock(run_dir)`` takes an exclusive ``flock`` on ``<run_dir>/.repscope.lock`` and
writes who holds it there (process id, host, command line, start time); a second
process asking for it gets ``RunBusyError`` at once, naming the holder. The holder
removes the file when it lets go, so a command leaves no lock file behind; the
operating system drops the lock when its process ends however it ends (a kill
included), so the file a killed process leaves never blocks a rerun. Within one process the lock is re-entrant (a
whole run's report stage takes it again). The embedding workers (local processes or
Dask workers) write under their driver's lock and take none themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import RunBusyError, SettingsError

LOCK = ".repscope.lock"
_held: dict[Path, int] = {}


def holder(run_dir: str | os.PathLike) -> dict | None:
    """Who holds ``run_dir``'s lock, as it recorded itself, or None when no one does."""
    path = Path(run_dir) / LOCK
    if not path.is_file():
        return None
    with open(path, "r+b") as f:
        if _try_lock(f.fileno()):
            _unlock(f.fileno())
            return None
        f.seek(0)
        try:
            return json.loads(f.read().decode() or "{}")
        except ValueError:
            return {}


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the duration (the folder must exist).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with run_lock(d):
    ...         print(holder(d)["pid"] == os.getpid())
    ...     print((Path(d) / LOCK).exists())
    True
    False
    """
    folder = Path(run_dir).resolve()
    if folder in _held:
        _held[folder] += 1
        try:
            yield folder
        finally:
            _held[folder] -= 1
        return
    fd = _acquire(folder, run_dir)
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        _held[folder] = 1
        try:
            yield folder
        finally:
            del _held[folder]
            with contextlib.suppress(OSError):  # removed while held, so nothing is left behind
                os.unlink(folder / LOCK)
            _unlock(fd)
    finally:
        os.close(fd)


def _acquire(folder: Path, run_dir) -> int:
    """An open descriptor of ``folder``'s lock file, locked by this process.

    The holder removes the file when it lets go; a process that opened the file just
    before and then got the lock holds a file no longer in the folder, so it opens it
    again (the same inode at the path is the test) until the lock and the path agree.
    """
    while True:
        try:
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SettingsError(f"--out {run_dir}: cannot write the run folder's lock file ({exc.strerror}); "
                                "give a folder you can write to") from None
        if not _try_lock(fd):
            busy = _describe(fd)
            os.close(fd)
            raise RunBusyError(f"{folder} is in use by another repscope process ({busy}); wait for it "
                               "to end or stop it, or give another --out")
        try:
            same = os.stat(folder / LOCK).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if same:
            return fd
        _unlock(fd)
        os.close(fd)


def _describe(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except ValueError:
        record = {}
    if not record:
        return "holder unknown"
    return f"pid {record.get('pid')} on {record.get('host')}, `{record.get('command')}`, since {record.get('since')}"


try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # Windows: msvcrt locks the first byte
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
