"""The engine's errors, and the exit code of each kind.

Each subclasses a built-in as well, so callers may catch ``FileNotFoundError`` or
``ValueError`` as usual, or ``EngineError`` for anything the engine raised on purpose.
The command line prints an ``EngineError`` as one line, without a traceback, and exits
with its kind's code (``exit_code``):

====  =====================================================================
code  kind
====  =====================================================================
0     done
1     an unexpected error (a bug: the traceback is printed)
2     usage: a bad option, value, run file or path given (``SettingsError``)
3     data: a data file or the run's store is missing, corrupt or damaged
      (``DataError``, ``FetchError``, ``StoreDamagedError``)
4     work failed: embedding jobs failed or training did not converge
      (``JobsFailedError``, ``TrainingError``)
5     busy: another repscope process is writing to the run folder (``RunBusyError``)
130   interrupted (Ctrl-C, SIGTERM or SIGHUP); what was complete is kept
====  =====================================================================
"""

#: Exit codes by kind (see the module's docstring).
EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_DATA, EXIT_FAILED, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code = EXIT_USAGE


class DataError(EngineError, ValueError):
    """A data file is corrupt, truncated, of the wrong format or of the wrong content."""

    exit_code = EXIT_DATA


class MissingDataError(DataError, FileNotFoundError):
    """A data file that should be there is not."""


class ChecksumError(DataError):
    """A file's sha256 differs from the one recorded for it."""


class StoreDamagedError(DataError):
    """An array of the run's store fails its checks (a missing chunk, a checksum or digest
    mismatch); it has been marked incomplete, so a rerun rebuilds it."""


class FetchError(EngineError, RuntimeError):
    """No source could provide a data set."""

    exit_code = EXIT_DATA


class TrainingError(EngineError, RuntimeError):
    """Training did not reach the accuracy threshold within the allowed attempts."""

    exit_code = EXIT_FAILED


class JobsFailedError(EngineError, RuntimeError):
    """Some embedding jobs failed; the others are complete and kept."""

    exit_code = EXIT_FAILED


class RunBusyError(EngineError, RuntimeError):
    """Another process holds the run folder's lock."""

    exit_code = EXIT_BUSY


class SettingsError(EngineError, ValueError):
    """A setting has a value the engine cannot use."""

    exit_code = EXIT_USAGE
