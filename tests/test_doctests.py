"""Every Examples section of every module's docstrings runs as a doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import repscope

PACKAGES = ("repscope.engine", "repscope.kernels", "repscope.store")
MODULES = sorted({"repscope", *PACKAGES, *(m.name for p in PACKAGES
                                           for m in pkgutil.walk_packages(importlib.import_module(p).__path__, p + "."))})
#: Modules that import an optional library at the top (skipped where it is not installed).
OPTIONAL = {"repscope.engine.cluster": "distributed"}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name, tmp_path, monkeypatch):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples of {name} failed"


def test_the_public_entry_points_have_examples():
    from repscope.engine.api import analyze
    from repscope.engine.sources import open_source

    for function in (repscope.analyze, repscope.separation_metrics, analyze, open_source, repscope.Run):
        assert "Examples" in (function.__doc__ or ""), function
