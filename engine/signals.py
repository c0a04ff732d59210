"""Stopping signals, and worker processes that end with their parent.

``SIGTERM`` (``kill``, a service manager, a batch scheduler's time limit) and ``SIGHUP``
(a closed terminal or SSH session) stop a run as Ctrl-C does: a ``KeyboardInterrupt``
in the main thread, so that every ``finally`` runs (the local pool kills its workers,
a Dask cluster started here closes) and the command line exits with 130, keeping what
was complete (:func:`interrupt_on_signals`).

A worker process cannot rely on that when its parent is killed outright (``SIGKILL``,
the out-of-memory killer): :func:`end_with_parent` makes it end itself then, through
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux, elsewhere through a thread that watches
the parent's process id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

#: ``prctl`` option: the signal a process receives when its parent (thread) exits.
PR_SET_PDEATHSIG = 1


def stopping_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run as Ctrl-C does, where the platform has them.

    Returns
    -------
    tuple of signal.Signals
        ``SIGTERM`` and, outside Windows, ``SIGHUP``.
    """
    return tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def interrupt_on_signals(signals: tuple[signal.Signals, ...] | None = None):
    """Within the block, ``signals`` raise ``KeyboardInterrupt`` in the main thread, as Ctrl-C does.

    The previous handlers are restored on leaving the block. Outside the main thread
    (where Python cannot set signal handlers) the block runs unchanged.

    Parameters
    ----------
    signals : tuple of signal.Signals, optional
        The signals to turn into ``KeyboardInterrupt``; default :func:`stopping_signals`
        (``SIGTERM`` and ``SIGHUP``).

    Yields
    ------
    None

    Examples
    --------
    >>> import os, signal
    >>> try:
    ...     with interrupt_on_signals():
    ...         os.kill(os.getpid(), signal.SIGTERM)
    ... except KeyboardInterrupt as exc:
    ...     print(exc)
    stopped by SIGTERM
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for signum in stopping_signals() if signals is None else signals:
            previous[signum] = signal.signal(signum, _interrupt)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _set_parent_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)``: whether the kernel took it (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def end_with_parent(parent: int, interval: float = 1.0) -> str:
    """Make this process end as soon as its parent ``parent`` does, however the parent ends.

    On Linux the kernel sends this process ``SIGKILL`` when its parent exits
    (``prctl(PR_SET_PDEATHSIG)``; strictly, when the parent *thread* that started it
    exits, so call it only in processes started from a long-lived thread, such as the
    main thread's process pool). Elsewhere, or where ``prctl`` fails, a daemon thread
    compares ``os.getppid()`` with ``parent`` every ``interval`` seconds and ends the
    process with ``os._exit(1)`` once they differ. A parent already gone ends the process
    at once.

    Parameters
    ----------
    parent : int
        The process id of the parent, read in the parent (``os.getpid()`` there) and
        passed down, so that a parent that died before this call is noticed.
    interval : float, default 1.0
        Seconds between two checks of the watching thread.

    Returns
    -------
    str
        How: ``"prctl"`` or ``"thread"``.
    """
    how = "prctl" if _set_parent_death_signal() else "thread"
    if os.getppid() != parent:  # died before the death signal was armed
        os._exit(1)
    if how == "thread":
        threading.Thread(target=_watch_parent, args=(parent, interval), name="repscope-watch-parent",
                         daemon=True).start()
    return how
