"""The engine's errors.

Each subclasses a built-in as well, so callers may catch ``FileNotFoundError`` or
``ValueError`` as usual, or ``EngineError`` for anything the engine raised on purpose.
The command line prints an ``EngineError`` as one message, without a traceback.
"""


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class DataError(EngineError, ValueError):
    """A data file is corrupt, truncated, of the wrong format or of the wrong content."""


class MissingDataError(DataError, FileNotFoundError):
    """A data file that should be there is not."""


class ChecksumError(DataError):
    """A file's sha256 differs from the one recorded for it."""


class FetchError(EngineError, RuntimeError):
    """No source could provide a data set."""


class TrainingError(EngineError, RuntimeError):
    """Training did not reach the accuracy threshold within the allowed attempts."""


class SettingsError(EngineError, ValueError):
    """A setting has a value the engine cannot use."""
