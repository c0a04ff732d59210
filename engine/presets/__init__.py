"""Shipped run files and the preset modules they choose.

A run file (TOML) names everything a run does; the shipped ones are run files like any
other: ``smoke.toml`` (N = 1 000, the CI run), ``paper.toml`` (N = 5 000, the published
setting) and ``full.toml`` (N = 60 000), all three choosing the study's preset
(``preset = "study"``, :mod:`repscope.engine.presets.study`). A preset module provides
a model spec, a training recipe per data set, and its own findings and figure grid.
"""

from __future__ import annotations

import importlib
from importlib.resources import files
from pathlib import Path
from types import ModuleType

from ..errors import SettingsError

#: Preset modules by the name a run file gives them.
MODULES = {"study": "study"}


def run_files() -> dict[str, Path]:
    """The shipped run files by name (``smoke``, ``paper``, ``full``)."""
    return {p.name[:-5]: Path(str(p)) for p in files(__package__).iterdir() if p.name.endswith(".toml")}


def run_file(name: str) -> Path:
    """The shipped run file called ``name``; a SettingsError lists the names."""
    found = run_files()
    if name not in found:
        raise SettingsError(f"--preset: unknown {name!r}; choose from auto, {', '.join(sorted(found))}, "
                            "or give a run file (repscope run RUN.toml)")
    return found[name]


def preset_module(name: str) -> ModuleType:
    """The module of preset ``name`` (``study``)."""
    if name not in MODULES:
        raise SettingsError(f"unknown preset {name!r}; choose from {', '.join(MODULES)}")
    return importlib.import_module(f"{__package__}.{MODULES[name]}")
