"""The pipeline: data, training, extraction (and the stages built on them).

``import repscope.engine`` imports nothing heavy; each stage imports its libraries when used.
"""

from .. import __version__  # noqa: F401  (one version, the package's)
