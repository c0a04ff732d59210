"""``repscope verify``: read every byte of a run's store and check it.

Each complete array is checked chunk by chunk (every chunk there, its crc32c checksum,
and the array's digest: see :mod:`repscope.store.runstore`). A damaged array is marked
incomplete, so the next run rebuilds it (and, where its bytes change, what was computed
from it); nothing else is touched.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ..store import RunStore, Verified
from .errors import MissingDataError
from .progress import progress_bar
from .runinfo import CONFIG, store_location

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """What ``verify_run`` found: every array's result, and the time it took."""

    store: str
    arrays: list[Verified] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def damaged(self) -> list[Verified]:
        return [v for v in self.arrays if v.problem not in (None, "incomplete")]

    @property
    def incomplete(self) -> list[Verified]:
        return [v for v in self.arrays if v.problem == "incomplete"]

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.arrays)

    def summary(self) -> str:
        """One line: how much was read, how fast, and what was found."""
        sound = len(self.arrays) - len(self.damaged) - len(self.incomplete)
        rate = self.nbytes / 1e6 / self.seconds if self.seconds else float("nan")
        line = (f"{self.store}: {sound} of {len(self.arrays)} arrays verified sound ({self.nbytes / 1e6:.1f} MB "
                f"in {self.seconds:.2f} s, {rate:.0f} MB/s)")
        if self.incomplete:
            line += f"; {len(self.incomplete)} incomplete (a rerun finishes them)"
        if self.damaged:
            line += f"; {len(self.damaged)} DAMAGED, now marked incomplete: a rerun rebuilds them"
        return line


def verify_run(run_dir: str | os.PathLike) -> VerifyReport:
    """Verify every array of the run folder's store; mark damaged ones incomplete.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from repscope.store import RunStore
    >>> run = Path(tempfile.mkdtemp()); _ = (run / "config.json").write_text("{}")
    >>> _ = RunStore(run / "store.zarr").write_whole("d/labels", np.arange(5), {"n": 5})
    >>> report = verify_run(run)
    >>> len(report.arrays), report.damaged
    (1, [])
    """
    if not (os.path.isfile(os.path.join(run_dir, CONFIG))):
        raise MissingDataError(f"{run_dir} is not a run folder (it has no {CONFIG}); give the --out of a run")
    location = store_location(run_dir)
    store = RunStore(location)
    report = VerifyReport(str(location))
    started = time.perf_counter()
    for key in progress_bar(store.keys(), desc="verify", unit="array"):
        result = store.verify(key)
        report.arrays.append(result)
        if result.problem not in (None, "incomplete"):
            log.error("%s: %s", key, result.problem)
    report.seconds = time.perf_counter() - started
    log.info("%s", report.summary())
    return report
