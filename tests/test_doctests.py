"""The examples in the packages' docstrings run (doctest), and importing a module for them
has no side effect of ours (no file written, no ``IOC_`` setting set, no logging handler
installed; third-party libraries may set their own variables, e.g. rasterio's
``GDAL_CURL_CA_BUNDLE``).

Modules are found by their source: every module of the packages with a ``>>>`` prompt is
imported and its examples run, so a new example is tested without registering it here.
"""

from __future__ import annotations

import doctest
import importlib
import logging
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gis", "nlp", "vntext", "crawler", "api", "ioc")
PROMPT = re.compile(r"^\s*>>> ", re.MULTILINE)


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if PROMPT.search(path.read_text(encoding="utf-8")):
                rel = path.relative_to(REPO).with_suffix("")
                parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
                names.append(".".join(parts))
    return names


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert {"gis.alerts", "gis.change.features", "vntext"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a module writing on import would leave files here
    ours = {k: v for k, v in os.environ.items() if k.startswith("IOC_")}
    handlers = list(logging.getLogger().handlers)
    module = importlib.import_module(name)
    assert {k: v for k, v in os.environ.items() if k.startswith("IOC_")} == ours, (
        f"importing {name} changed IOC_ settings"
    )
    assert logging.getLogger().handlers == handlers, f"importing {name} configured logging"
    assert not list(tmp_path.iterdir()), f"importing {name} wrote files"
    # (a '>>>' inside a plain string is no example: attempted may be 0)
    result = doctest.testmod(
        module,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
