"""``repscope verify``: read every byte of a run's store and check it.

Each complete array is checked chunk by chunk (every chunk there, its crc32c checksum,
and the array's digest, which fixes each chunk's place: see :mod:`repscope.store.runstore`).
A damaged array is marked incomplete, so the next run rebuilds it (and, where its bytes
change, what was computed from it); nothing else is touched. Every node's metadata
(``zarr.json``) is read on its own: an array or group whose metadata is cut short,
corrupt or missing is named as damaged too; the next run rebuilds such an array (it
counts as absent) and recreates such a group's metadata. Only the root group's is
recreated at once (nothing opens without it). The engine's record of every array and the
values kept in a group's attributes are checked against the seals written with them: an
array whose fingerprint, digest or another entry was changed counts as absent (rebuilt);
a cached value (metrics, measures) that was changed is dropped here and computed again
by the next run; a group's kept value that was changed is named, and the next run
recreates the group's metadata and computes it again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ..store import DamagedNode, RunStore, Verified
from .progress import progress_bar
from .runinfo import require_run, store_location

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """What ``verify_run`` found: every array's result, the groups whose metadata is
    damaged, and the time it took."""

    store: str
    arrays: list[Verified] = field(default_factory=list)
    groups: list[DamagedNode] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def damaged(self) -> list[Verified | DamagedNode]:
        """The damaged arrays, then the groups with damaged metadata (each has ``key`` and ``problem``)."""
        return [v for v in self.arrays if v.problem not in (None, "incomplete")] + self.groups

    @property
    def incomplete(self) -> list[Verified]:
        return [v for v in self.arrays if v.problem == "incomplete"]

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.arrays)

    def summary(self) -> str:
        """One line: how much was read, how fast, and what was found."""
        cached = sum(1 for v in self.arrays if v.cached)
        arrays = len(self.damaged) - len(self.groups) - cached
        sound = len(self.arrays) - arrays - cached - len(self.incomplete)
        rate = self.nbytes / 1e6 / self.seconds if self.seconds else float("nan")
        line = (f"{self.store}: {sound} of {len(self.arrays)} arrays verified sound ({self.nbytes / 1e6:.1f} MB "
                f"in {self.seconds:.2f} s, {rate:.0f} MB/s)")
        if self.incomplete:
            line += f"; {len(self.incomplete)} incomplete (a rerun finishes them)"
        if arrays:
            line += f"; {arrays} DAMAGED, now counted incomplete: a rerun rebuilds them"
        if cached:
            line += f"; {cached} with DAMAGED cached values in their metadata, now dropped: a rerun computes them again"
        if self.groups:
            line += f"; {len(self.groups)} group(s) with DAMAGED metadata: a rerun recreates them"
        return line


def verify_run(run_dir: str | os.PathLike) -> VerifyReport:
    """Verify every array of the run folder's store; mark damaged ones incomplete.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from repscope.store import RunStore
    >>> run = Path(tempfile.mkdtemp()); _ = (run / "config.json").write_text('{"settings": {"n": 5}}')
    >>> _ = RunStore(run / "store.zarr").write_whole("d/labels", np.arange(5), {"n": 5})
    >>> report = verify_run(run)
    >>> len(report.arrays), report.damaged
    (1, [])
    """
    require_run(run_dir, store=True)  # nothing is made where there is no run, or no store yet
    location = store_location(run_dir)
    started = time.perf_counter()
    store = RunStore(location)  # an unreadable root group is recreated here
    report = VerifyReport(str(location), groups=[DamagedNode(n.key or "(root)", n.kind, f"{n.problem}; recreated")
                                                 for n in store.repaired])
    keys, damaged = store.scan()
    for node in damaged:
        if node.kind == "array":  # counts as absent: the stage that writes it rebuilds it
            report.arrays.append(Verified(node.key, 0, 0, 0.0, node.problem))
        else:
            report.groups.append(node)
    for key in progress_bar(keys, desc="verify", unit="array"):
        report.arrays.append(store.verify(key))
    for node in report.damaged:
        log.error("%s: %s", node.key, node.problem)
    report.seconds = time.perf_counter() - started
    log.info("%s", report.summary())
    return report
