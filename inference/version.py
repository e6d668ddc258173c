"""Quickbrush's version, for `--version`, the About box and the frozen app's build report.

An installed distribution (a wheel, an editable install) knows its version from pyproject.toml;
a frozen app or a checkout run without installing has no distribution metadata, so the package
keeps the same number (tests/inference/test_version.py checks the two agree).
"""

from __future__ import annotations

from importlib import metadata

FALLBACK_VERSION = "0.1.0"


def version() -> str:
    try:
        return metadata.version("quickbrush")
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION
