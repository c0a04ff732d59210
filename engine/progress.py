"""Progress of long work: a bar on a terminal, plain log lines elsewhere.

``progress_bar(...)`` takes tqdm's arguments. Where standard error is a terminal and the
``repscope`` loggers show INFO (not ``-q``), it is a tqdm bar; otherwise (a log file, a
pipe, CI, ``-q``) it writes no bar at all, only an INFO line when the work starts, at
most every ``INTERVAL`` seconds while it goes on, and when it ends, so logs stay short.

Examples
--------
>>> import logging, sys
>>> logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s", force=True)
>>> for _ in progress_bar(range(3), desc="count", unit="step"):
...     pass
count: 0/3 step
count: 3/3 step, done in 0.0 s
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Iterable

log = logging.getLogger("repscope.progress")

#: Seconds between two log lines of the same work.
INTERVAL = 30.0


def bars_wanted() -> bool:
    """Whether to draw bars: standard error is a terminal and INFO messages are shown."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and logging.getLogger("repscope").isEnabledFor(
        logging.INFO)


class LogProgress:
    """The part of tqdm's interface the engine uses, reported as log lines."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: float | None = None,
                 unit: str = "it", initial: float = 0, **_ignored) -> None:
        self.iterable, self.desc, self.unit, self.n = iterable, desc, unit, initial
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.postfix = total, ""
        self.started = self.last = time.monotonic()
        self.closed = self.total == 0  # nothing to do: nothing to say
        if not self.closed:
            self._log("")

    def _log(self, tail: str) -> None:
        of = f"/{self.total:g}" if self.total is not None else ""
        postfix = f" ({self.postfix})" if self.postfix else ""
        log.info("%s: %g%s %s%s%s", self.desc, self.n, of, self.unit, postfix, tail)

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= INTERVAL:
            self.last = now
            self._log(f", {now - self.started:.0f} s so far")

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self, stopped: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self._log(f", {'stopped after' if stopped else 'done in'} {time.monotonic() - self.started:.1f} s")

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(stopped=kind is not None)


def progress_bar(iterable: Iterable | None = None, **options):
    """A tqdm bar where :func:`bars_wanted`, else a :class:`LogProgress` (same arguments)."""
    if bars_wanted():
        from tqdm.auto import tqdm

        return tqdm(iterable, **options)
    return LogProgress(iterable, **options)


@contextlib.contextmanager
def shown(show: bool = True) -> Iterator[None]:
    """Show the engine's INFO lines and progress on standard error for the block, where
    logging is not configured (a script or a notebook calling the Python API).

    Where the program has configured logging (a handler on the root or ``repscope``
    logger), or ``show`` is False, nothing changes.

    Examples
    --------
    >>> with shown(False):
    ...     logging.getLogger("repscope").isEnabledFor(logging.DEBUG)
    False
    """
    logger = logging.getLogger("repscope")
    if not show or logging.getLogger().handlers or logger.handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
