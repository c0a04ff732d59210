"""The pipeline: data, training, extraction (and the stages built on them).

``import engine`` imports nothing heavy; each stage imports its libraries when used.
"""

__version__ = "0.1.0"
